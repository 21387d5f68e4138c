//! Dropout's mask and output in one pass, from a counter-based generator: element `i`'s draw is a
//! hash of `i` and the call's key, so the mask is computed in SIMD lanes, in any order, with no
//! generator state carried from one element to the next.
//!
//! Why: a training step of the regularised Transformer has nine dropout sites (`[B·T, n_embd]`
//! each), and drawing one `f32` per element from a sequential generator (`SmallRng`, one element
//! at a time) took 10% of the step's time. PyTorch's CUDA dropout does the same with Philox (a
//! counter-based generator); its CPU dropout draws a Bernoulli tensor sequentially.
//!
//! The hash is Chris Wellons' `lowbias32` (a bijection of `u32` with good avalanche), applied
//! twice with a key word xor-ed in before each round. It is not a cryptographic generator, and
//! does not need to be: the masks must be unbiased, independent of the data and of each other's
//! positions, and reproducible from the key; one mask per call, a fresh 64-bit key per call.

use multiversion::multiversion;

use crate::Float;

/// Chris Wellons' `lowbias32`: an invertible mix of 32 bits.
#[inline(always)]
fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The two key words of the elements whose index has the high half of `i`: the index's high
/// half (tensors of more than 2^32 elements) is folded into the first.
#[inline(always)]
fn key_words(key: u64, i: u64) -> (u32, u32) {
    ((key as u32) ^ lowbias32((i >> 32) as u32), (key >> 32) as u32)
}

/// Element `i`'s draw for `key`: uniform on `u32`.
#[cfg(test)]
pub(crate) fn draw(key: u64, i: u64) -> u32 {
    let (k0, k1) = key_words(key, i);
    lowbias32(lowbias32(i as u32 ^ k0) ^ k1)
}

/// The threshold of dropping with probability `p` in `[0, 1)`: a draw below it drops the element
/// (`round(p · 2^32)` draws of the `2^32`).
pub(crate) fn threshold(p: f64) -> u32 {
    (p * 4_294_967_296.0).round().min(f64::from(u32::MAX)) as u32
}

/// `mask[i] = 0` where element `i`'s draw is below `threshold`, else `keep`; `out[i] = x[i] ·
/// mask[i]` (all three of one length).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn forward<T: Float>(key: u64, threshold: u32, keep: T, x: &[T], mask: &mut [T], out: &mut [T]) {
    const BLOCK: usize = 1 << 12;
    for (b, ((x, mask), out)) in
        x.chunks(BLOCK).zip(mask.chunks_mut(BLOCK)).zip(out.chunks_mut(BLOCK)).enumerate()
    {
        // Within a block the index's high half is fixed: its key words are computed once, and
        // the loop over the low halves vectorizes.
        let first = (b * BLOCK) as u64;
        let (k0, k1) = key_words(key, first);
        let low = first as u32;
        for (j, ((&x, m), o)) in x.iter().zip(mask.iter_mut()).zip(out.iter_mut()).enumerate() {
            let h = lowbias32(lowbias32(low.wrapping_add(j as u32) ^ k0) ^ k1);
            *m = if h < threshold { T::zero() } else { keep };
            *o = x * *m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blocked_kernel_draws_what_draw_draws() {
        let n = 10_000;
        let x: Vec<f64> = (0..n).map(|i| i as f64 + 1.0).collect();
        let (mut mask, mut out) = (vec![0.0; n], vec![0.0; n]);
        let (key, thr) = (0x0123_4567_89ab_cdef, threshold(0.3));
        forward(key, thr, 2.0, &x, &mut mask, &mut out);
        for i in 0..n {
            let want = if draw(key, i as u64) < thr { 0.0 } else { 2.0 };
            assert_eq!(mask[i], want, "element {i}");
            assert_eq!(out[i], x[i] * want);
        }
    }

    #[test]
    fn the_dropped_fraction_is_p_and_keys_give_unrelated_masks() {
        let n = 1 << 20;
        for p in [0.1, 0.2, 0.5] {
            let thr = threshold(p);
            let a: Vec<bool> = (0..n).map(|i| draw(7, i) < thr).collect();
            let b: Vec<bool> = (0..n).map(|i| draw(8, i) < thr).collect();
            let frac = a.iter().filter(|&&d| d).count() as f64 / n as f64;
            // The binomial's standard deviation is sqrt(p(1-p)/n) < 5e-4: 6 of them.
            assert!((frac - p).abs() < 3e-3, "p {p}: dropped {frac}");
            // Two keys: both dropped with probability p², as independent masks.
            let both = a.iter().zip(&b).filter(|(a, b)| **a && **b).count() as f64 / n as f64;
            assert!((both - p * p).abs() < 3e-3, "p {p}: both dropped {both}");
            // Neighbours are independent too.
            let next = a.windows(2).filter(|w| w[0] && w[1]).count() as f64 / n as f64;
            assert!((next - p * p).abs() < 3e-3, "p {p}: neighbours dropped {next}");
        }
        assert_eq!(threshold(0.0), 0);
    }
}
