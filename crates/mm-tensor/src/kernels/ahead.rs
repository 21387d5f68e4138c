//! Prefetch hints for the x86_64 gemm kernels: the cache lines of an operand asked for a block
//! or a strip before the kernel reaches them.
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
//! CPU, forced; the hints toggled in one process) `C` ahead helped as much (`mlp.c_fc` x@Wᵀ with `C` cold 281-313 → 206-217 µs)
//! and `B`'s next strip not clearly (`mlp.c_proj` Gᵀ@x with `B` cold: 211-216 without,
//! 203-219 with), in a noisier hour; no AVX2-only CPU was at hand. Operands under [`MIN`]
//! elements are left alone: they stay in cache from call to call (the lecture MLP's), and the
//! hints would only cost instructions. `A` is not fetched ahead: in a step it is the value or
//! gradient just computed, still in cache.
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

/// The lines of `len` floats from `p`, into L1, for a block about to write them (`C`).
#[inline(always)]
pub(super) fn to_write(p: *const f32, len: usize) {
    lines(p, len, |at| {
        // SAFETY: a prefetch is a hint that does not fault, whatever the address.
        unsafe { _mm_prefetch::<{ _MM_HINT_T0 }>(at) }
    });
}

/// The lines of `len` floats from `p`, into L2, for a strip read after the current one (`B`):
/// not L1, which the current strip fills.
#[inline(always)]
pub(super) fn to_read_next(p: *const f32, len: usize) {
    lines(p, len, |at| {
        // SAFETY: a prefetch is a hint that does not fault, whatever the address.
        unsafe { _mm_prefetch::<{ _MM_HINT_T1 }>(at) }
    });
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
