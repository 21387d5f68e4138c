//! Plain kernels over row-major slices: what the ops compute, apart from graph bookkeeping.
//!
//! Hot kernels are compiled for several instruction sets with `multiversion` and the best one for
//! the running CPU is picked at run time, so that no build flag is needed for AVX2 or AVX-512.
// The `multiversion` attribute expands to guarded `unsafe` dispatch, so the kernels allow
// `unsafe`; each block written here still says why it is sound (`clippy::undocumented_unsafe_blocks`
// is on for the workspace, and CI denies its warnings).
#![allow(unsafe_code)]

/// Whether the `multiversion` target being compiled has fused multiply-add: on x86_64 when it
/// lists `fma`; on aarch64 always (scalar and NEON `fmla` are in the base ISA, and
/// `target-features` knows no aarch64 feature named `fma`: asking panics at compile time).
macro_rules! selected_fma {
    () => {
        cfg!(target_arch = "aarch64")
            || (cfg!(target_arch = "x86_64")
                && multiversion::target::selected_target!().supports_feature_str("fma"))
    };
}

/// Whether the `multiversion` target being compiled has AVX-512F (never off x86_64, where the
/// feature name is unknown).
macro_rules! selected_avx512f {
    () => {
        cfg!(target_arch = "x86_64")
            && multiversion::target::selected_target!().supports_feature_str("avx512f")
    };
}

#[cfg(target_arch = "x86_64")]
mod ahead;
pub(crate) mod attention;
#[cfg(target_arch = "x86_64")]
pub(crate) mod attention_avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod attention_avx512;
pub(crate) mod axis;
pub(crate) mod broadcast;
pub(crate) mod dropout;
pub(crate) mod exp;
pub(crate) mod gelu;
#[cfg(target_arch = "x86_64")]
pub(crate) mod gemm_avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod gemm_avx512;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod peak;
pub(crate) mod tanh;
pub(crate) mod update;

/// Whether a kernel writes its result over the destination or adds it to what is there: the first
/// gradient contribution to a buffer is written, later ones accumulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acc {
    /// Overwrite the destination (its old contents may be anything).
    Write,
    /// Add to the destination.
    Add,
}

/// `dst = src` or `dst += src`, element by element, resizing `dst` on a write. Compiled for the
/// CPU's widest vectors: the elementwise gradient rules (e.g. `tanh`'s) run through it, and
/// their closures inline into it.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn store<T: crate::Float, I: Iterator<Item = T>>(dst: &mut Vec<T>, acc: Acc, src: I) {
    match acc {
        // An exact-size source (every caller's) is written in place: one indexed loop that
        // vectorizes, where `extend` pushes element by element.
        Acc::Write => match src.size_hint() {
            (len, Some(max)) if len == max => {
                sized(dst, len);
                dst.iter_mut().zip(src).for_each(|(d, s)| *d = s);
            }
            _ => {
                dst.clear();
                dst.extend(src);
            }
        },
        Acc::Add => dst.iter_mut().zip(src).for_each(|(d, s)| *d += s),
    }
}

/// `dst[j] += Σ_i rows[i][j]` over the rows of `n` elements of `rows`: the column sums of a
/// matrix (a bias gradient), added row by row in order.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn add_rows<T: crate::Float>(rows: &[T], dst: &mut [T]) {
    /// Adds columns `j0..j0 + W` of every row into `dst`, the `W` sums held in registers.
    #[inline(always)]
    fn columns<T: crate::Float, const W: usize>(rows: &[T], dst: &mut [T], j0: usize) {
        let n = dst.len();
        let acc: &mut [T; W] = (&mut dst[j0..j0 + W]).try_into().expect("W columns");
        let mut sum = *acc;
        for row in rows.chunks_exact(n) {
            let row: &[T; W] = row[j0..j0 + W].try_into().expect("W columns");
            for l in 0..W {
                sum[l] += row[l];
            }
        }
        *acc = sum;
    }
    let n = dst.len();
    let mut j0 = 0;
    while j0 < n {
        j0 += match n - j0 {
            64.. => {
                columns::<T, 64>(rows, dst, j0);
                64
            }
            16.. => {
                columns::<T, 16>(rows, dst, j0);
                16
            }
            8.. => {
                columns::<T, 8>(rows, dst, j0);
                8
            }
            _ => {
                columns::<T, 1>(rows, dst, j0);
                1
            }
        };
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
