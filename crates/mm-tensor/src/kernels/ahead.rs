//! Prefetch hints for the x86_64 kernels (the gemms, the fused attention's backward): the cache
//! lines of an operand asked for a block, a strip or a slice before the kernel reaches them.
//!
//! Why: in a training step the large operands of a product were last touched long before (a
//! value written in the forward pass and read by the backward's weight gradient; an output
//! buffer written a step ago), and the kernels walk them in ways the hardware prefetchers do
//! not follow: `C` in column strips whose rows are a row (1 KB for n = 256) apart, a row-major
//! `B` in strips of 128 rows by 3 or 4 vectors (AVX-512; all `k` rows by 2 vectors on AVX2).
//! Each new row then waited on memory. Measured on the 2-vCPU AMD EPYC (Zen 4), AVX-512 path,
//! each product alone with one operand cold (`examples/gemm_shapes --cold`, µs per call):
//!
//! | product | warm | cold, before | cold, fetched ahead |
//! | --- | --- | --- | --- |
//! | `mlp.c_fc` x@Wᵀ, `C` cold | 153-168 | 196-201 | 177-178 |
//! | `c_attn` x@Wᵀ, `C` cold | 114-119 | 148-173 | 130-133 |
//! | `mlp.c_proj` Gᵀ@x, `B` cold | 146-152 | 208-218 | 169-173 |
//!
//! Warm, the hints cost up to 3% (`mlp.c_proj` Gᵀ@x 148 → 152 µs). On the AVX2 path (the same
//! CPU, forced; the hints toggled in one process) `C` ahead helped as much (`mlp.c_fc` x@Wᵀ
//! with `C` cold 281-313 → 206-217 µs) and `B`'s next strip not clearly (`mlp.c_proj` Gᵀ@x with `B` cold: 211-216 without,
//! 203-219 with), in a noisier hour; no AVX2-only CPU was at hand. Operands under [`MIN`]
//! elements are left alone: they stay in cache from call to call (the lecture MLP's), and the
//! hints would only cost instructions. `A` is not fetched ahead: in a step it is the value or
//! gradient just computed, still in cache.
//!
//! The attention's backward asks for the slice `n_head` ahead in the same way (see
//! `attention::Dims::slice_to_l2`, which both vector paths' `grad` call).
//!
//! A hint never faults, so the addresses need not be inside the operand; the callers keep them
//! inside anyway.

use std::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1, _mm_prefetch};

/// Operands of at least this many elements (128 KB of `f32`) are fetched ahead.
pub(super) const MIN: usize = 1 << 15;

/// Whether an operand of `len` elements is fetched ahead.
pub(super) fn worth(len: usize) -> bool {
    len >= MIN
}

/// Rows `0..rows` of a matrix whose rows start `stride` floats apart from `p`: the lines of
/// `len` floats at the start of each, into L1, for a block about to write them (`C`).
#[inline(always)]
pub(super) fn rows_to_write(p: *const f32, stride: usize, rows: usize, len: usize) {
    for r in 0..rows {
        lines(p.wrapping_add(r * stride), len, |at| {
            // SAFETY: a prefetch is a hint that does not fault, whatever the address.
            unsafe { _mm_prefetch::<{ _MM_HINT_T0 }>(at) }
        });
    }
}

/// As [`rows_to_write`], into L2, for rows read after the current block or strip (`B`'s next
/// strip; the attention's next slice): not L1, which the current one fills.
#[inline(always)]
pub(super) fn rows_to_l2(p: *const f32, stride: usize, rows: usize, len: usize) {
    for r in 0..rows {
        lines(p.wrapping_add(r * stride), len, |at| {
            // SAFETY: a prefetch is a hint that does not fault, whatever the address.
            unsafe { _mm_prefetch::<{ _MM_HINT_T1 }>(at) }
        });
    }
}

/// `hint` at each 64-byte line that holds one of `len` floats from `p`.
#[inline(always)]
fn lines(p: *const f32, len: usize, hint: impl Fn(*const i8)) {
    let (mut at, end) = (p as usize & !63, p.wrapping_add(len) as usize);
    while at < end {
        hint(at as *const i8);
        at += 64;
    }
}
