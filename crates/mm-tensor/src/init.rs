//! Seeded initialisation: every constructor draws from a caller-given RNG, so the same seed
//! gives the same parameters.

use ndarray::{ArrayD, IxDyn};
use ndarray_rand::RandomExt;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};

use crate::Float;

/// Samples from the standard normal distribution (`torch.randn`).
///
/// ```
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(2147483647);
/// let w = mm_tensor::init::randn::<f32, _>(&[27, 27], &mut rng);
/// assert_eq!(w.shape(), &[27, 27]);
/// ```
pub fn randn<T: Float, R: Rng + ?Sized>(shape: &[usize], rng: &mut R) -> ArrayD<T>
where
    StandardNormal: Distribution<T>,
{
    ArrayD::random_using(IxDyn(shape), StandardNormal, rng)
}

/// Samples uniformly from `[low, high)`; `low < high` is required, else all elements are `low`.
pub fn uniform<T, R: Rng + ?Sized>(shape: &[usize], low: T, high: T, rng: &mut R) -> ArrayD<T>
where
    T: Float + rand_distr::uniform::SampleUniform,
{
    match Uniform::new(low, high) {
        Ok(dist) => ArrayD::random_using(IxDyn(shape), dist, rng),
        Err(_) => ArrayD::from_elem(IxDyn(shape), low),
    }
}

/// Kaiming (He) normal initialisation: standard normal scaled by `gain / sqrt(fan_in)`, as in
/// makemore part 3 (`W1 * (5/3) / sqrt(n_embd * block_size)` for a tanh layer).
pub fn kaiming<T: Float, R: Rng + ?Sized>(shape: &[usize], fan_in: usize, gain: f64, rng: &mut R) -> ArrayD<T>
where
    StandardNormal: Distribution<T>,
{
    let scale = T::of(gain / (fan_in.max(1) as f64).sqrt());
    randn(shape, rng).mapv(|x: T| x * scale)
}
