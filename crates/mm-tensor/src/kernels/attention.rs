//! makemore's self-attention on a fast path where there is one: for `f32`, heads of 16 and
//! sequences of at most 16 on the AVX-512 gemm path (`kernels/attention_avx512.rs`). The op
//! ([`crate::Var::causal_self_attention`]) asks here first and runs its general path (a gemm
//! per slice and product) where the answer is no.

use super::Acc;

/// The sizes of a self-attention: batch `b`, sequence `t`, width `c` (`3c` in `qkv`), heads.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub b: usize,
    pub t: usize,
    pub c: usize,
    pub n_head: usize,
}

/// Whether the fast path runs these sizes on this CPU and gemm path.
#[cfg(target_arch = "x86_64")]
fn fast(d: Dims) -> bool {
    super::matmul::gemm_path() == super::matmul::GemmPath::Avx512 && super::attention_avx512::fits(d)
}

/// The forward pass on the fast path: the scores, the causal softmax (scaled by `scale`) into
/// `att` (`[b · n_head, t, t]`), and the heads' outputs into `out` (`[b, t, c]`). False, and
/// nothing written, where there is no fast path.
pub(crate) fn forward_f32(qkv: &[f32], d: Dims, scale: f32, att: &mut [f32], out: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if fast(d) {
        #[cfg(feature = "kernel-timers")]
        let _timer = crate::timers::Timer::start(("attention forward", [d.b, d.t, d.c]));
        // SAFETY: `fast` checked AVX-512F and the sizes (`t ≤ 16`); the kernels check the lengths.
        unsafe {
            super::attention_avx512::scores(qkv, d, att);
            super::attention_avx512::causal_softmax(att, d.t, scale);
        }
        // SAFETY: as above.
        unsafe { super::attention_avx512::mix(qkv, d, att, out) };
        return true;
    }
    let _ = (qkv, d, scale, att, out);
    false
}

/// The gradient of `qkv` (written or added into `dst`, as long as `qkv`) from the output's
/// gradient `g` on the fast path, with the softmaxed scores `att`. False, and nothing written,
/// where there is no fast path.
pub(crate) fn grad_f32(
    (qkv, att, g): (&[f32], &[f32], &[f32]),
    d: Dims,
    scale: f32,
    dst: &mut [f32],
    acc: Acc,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if fast(d) {
        #[cfg(feature = "kernel-timers")]
        let _timer = crate::timers::Timer::start(("attention backward", [d.b, d.t, d.c]));
        // SAFETY: `fast` checked AVX-512F and the sizes; the kernel checks the lengths.
        unsafe { super::attention_avx512::grad(qkv, att, g, d, scale, dst, acc) };
        return true;
    }
    let _ = (qkv, att, g, d, scale, dst, acc);
    false
}
