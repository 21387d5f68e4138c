//! GELU with the tanh approximation (makemore's `NewGELU`), forward and backward, compiled for the
//! CPU's widest vectors: `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))`.

use multiversion::multiversion;

use super::Acc;
use crate::Float;

/// `sqrt(2 / π)`.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// The cubic coefficient.
const C3: f64 = 0.044_715;

/// `y = gelu(x)`, with the inner `tanh` written to `t` for the backward pass (all three of one
/// length). In blocks that stay in L1: the tanh's argument in `y`, its tanh, then the value.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn forward<T: Float>(x: &[T], y: &mut [T], t: &mut [T]) {
    let (c, k, half) = (T::of(SQRT_2_OVER_PI), T::of(C3), T::of(0.5));
    const BLOCK: usize = 256;
    for ((x, y), t) in x.chunks(BLOCK).zip(y.chunks_mut(BLOCK)).zip(t.chunks_mut(BLOCK)) {
        y.iter_mut().zip(x).for_each(|(u, &x)| *u = c * (x + k * x * x * x));
        T::tanh_slice(y, t);
        y.iter_mut().zip(x).zip(t.iter()).for_each(|((y, &x), &t)| *y = half * x * (T::one() + t));
    }
}

/// `dx (+)= g · gelu'(x)`, `gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t²) sqrt(2/π) (1 + 3 · 0.044715 x²)`
/// from the saved tanh `t`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn backward<T: Float>(g: &[T], x: &[T], t: &[T], dst: &mut [T], acc: Acc) {
    let (c, k3, half, one) = (T::of(SQRT_2_OVER_PI), T::of(3.0 * C3), T::of(0.5), T::one());
    let d = |g: T, x: T, t: T| g * (half * (one + t) + half * x * (one - t * t) * c * (one + k3 * x * x));
    let it = dst.iter_mut().zip(g).zip(x).zip(t);
    match acc {
        Acc::Write => it.for_each(|(((o, &g), &x), &t)| *o = d(g, x, t)),
        Acc::Add => it.for_each(|(((o, &g), &x), &t)| *o += d(g, x, t)),
    }
}
