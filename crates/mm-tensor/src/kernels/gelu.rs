//! GELU with the tanh approximation (makemore's `NewGELU`), forward and backward, compiled for the
//! CPU's widest vectors: `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))`.

use multiversion::multiversion;

use super::Acc;
use crate::Float;

/// `sqrt(2 / π)`.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// The cubic coefficient.
const C3: f64 = 0.044_715;

/// `y = gelu(x)`, with the derivative `gelu'(x)` written to `d` for the backward pass (all three
/// of one length). In blocks that stay in L1: the tanh's argument in `y`, its tanh `t` in `d`,
/// then the value and the derivative,
/// `gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t²) sqrt(2/π) (1 + 3 · 0.044715 x²)`.
///
/// Keeping the derivative rather than `t` costs a few multiply-adds here, on values in L1, and
/// saves the backward pass a read of `x`: it is the largest elementwise pass of a Transformer's
/// step (`[B·T, 4 n_embd]` per layer), and bound by memory.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn forward<T: Float>(x: &[T], y: &mut [T], d: &mut [T]) {
    let (c, k, k3, half, one) = (T::of(SQRT_2_OVER_PI), T::of(C3), T::of(3.0 * C3), T::of(0.5), T::one());
    const BLOCK: usize = 256;
    for ((x, y), d) in x.chunks(BLOCK).zip(y.chunks_mut(BLOCK)).zip(d.chunks_mut(BLOCK)) {
        y.iter_mut().zip(x).for_each(|(u, &x)| *u = c * (x + k * x * x * x));
        T::tanh_slice(y, d);
        for ((y, &x), d) in y.iter_mut().zip(x).zip(d.iter_mut()) {
            let t = *d;
            *y = half * x * (one + t);
            *d = half * (one + t) + half * x * (one - t * t) * c * (one + k3 * x * x);
        }
    }
}

/// `dx (+)= g · gelu'(x)`, from the derivative `d` saved by [`forward`].
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn backward<T: Float>(g: &[T], d: &[T], dst: &mut [T], acc: Acc) {
    let it = dst.iter_mut().zip(g).zip(d);
    match acc {
        Acc::Write => it.for_each(|((o, &g), &d)| *o = g * d),
        Acc::Add => it.for_each(|((o, &g), &d)| *o += g * d),
    }
}
