//! Plain kernels over row-major slices: what the ops compute, apart from graph bookkeeping.
//!
//! Hot kernels are compiled for several instruction sets with `multiversion` and the best one for
//! the running CPU is picked at run time, so that no build flag is needed for AVX2 or AVX-512.
#![allow(unsafe_code)] // the `multiversion` attribute expands to guarded `unsafe` dispatch

pub(crate) mod axis;
pub(crate) mod broadcast;
pub(crate) mod exp;
#[cfg(target_arch = "x86_64")]
pub(crate) mod gemm_avx512;
pub(crate) mod matmul;
pub(crate) mod tanh;

/// Whether a kernel writes its result over the destination or adds it to what is there: the first
/// gradient contribution to a buffer is written, later ones accumulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acc {
    /// Overwrite the destination (its old contents may be anything).
    Write,
    /// Add to the destination.
    Add,
}

/// `dst = src` or `dst += src`, element by element, resizing `dst` on a write.
pub(crate) fn store<T: crate::Float>(dst: &mut Vec<T>, acc: Acc, src: impl Iterator<Item = T>) {
    match acc {
        Acc::Write => {
            dst.clear();
            dst.extend(src);
        }
        Acc::Add => dst.iter_mut().zip(src).for_each(|(d, s)| *d += s),
    }
}

/// Sets `dst` to `n` zeros, reusing its allocation.
pub(crate) fn zeros<T: crate::Float>(dst: &mut Vec<T>, n: usize) {
    dst.clear();
    dst.resize(n, T::zero());
}

/// Sets `dst` to `n` elements of unspecified value (zeros), for a kernel that writes them all.
pub(crate) fn sized<T: crate::Float>(dst: &mut Vec<T>, n: usize) {
    if dst.len() != n {
        zeros(dst, n);
    }
}
