//! makemore's self-attention on a fast path where there is one: for `f32`, heads of 16 and
//! sequences of at most 16 on the AVX-512 gemm path (`kernels/attention_avx512.rs`) and on the
//! AVX2 one (`kernels/attention_avx2.rs`). The op ([`crate::Var::causal_self_attention`]) asks
//! here first and runs its general path (a gemm per slice and product) where the answer is no.

use super::Acc;

/// The sizes of a self-attention: batch `b`, sequence `t`, width `c` (`3c` in `qkv`), heads.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub b: usize,
    pub t: usize,
    pub c: usize,
    pub n_head: usize,
}

impl Dims {
    /// The offset of slice `i`'s first row (batch `i / n_head`, head `i % n_head`) in a tensor of
    /// rows `width` wide, `part` blocks of `c` in (q, k, v of `[B, T, 3C]`: parts 0, 1, 2), for
    /// heads of `HS` (a constant: `c / n_head` was a division at every call).
    pub(super) fn offset<const HS: usize>(&self, i: usize, part: usize, width: usize) -> usize {
        debug_assert_eq!(self.c, self.n_head * HS);
        let (batch, head) = (i / self.n_head, i % self.n_head);
        batch * self.t * width + part * self.c + head * HS
    }

    /// Asks for slice `i`'s operands of the attention's backward pass (its q, k and v in `qkv`
    /// and in the gradient `dst`, its rows of `g`, its `[t, t]` block of `att`) into L2, the line
    /// of each row's start; nothing past the last slice. Why: in a training step they were
    /// written long before (q, k, v in the forward pass, the gradient's buffer in the previous
    /// step) and have left the caches, and a slice's rows are 768 bytes apart (`[B, T, 3C]`), a
    /// pattern the hardware prefetchers do not follow. Both vector paths' `grad` ask for the
    /// slice `n_head` ahead (the same head of the next sequence): in `examples/transformer_step`
    /// on the 2-vCPU AMD EPYC (Zen 4), AVX-512 path, that kernel took 180-210 µs a layer against
    /// 52 µs alone on warm operands, and 94-131 µs with the hints. Not into L1: a sequence's
    /// operands are 32 KB, as much as L1 holds (`prefetcht0` did not help).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(super) fn slice_to_l2<const HS: usize>(
        &self,
        i: usize,
        qkv: &[f32],
        g: &[f32],
        att: &[f32],
        dst: &[f32],
    ) {
        use super::ahead::rows_to_l2;
        if i >= self.b * self.n_head {
            return;
        }
        let (t, w) = (self.t, 3 * self.c);
        for part in 0..3 {
            rows_to_l2(qkv.as_ptr().wrapping_add(self.offset::<HS>(i, part, w)), w, t, 1);
            rows_to_l2(dst.as_ptr().wrapping_add(self.offset::<HS>(i, part, w)), w, t, 1);
        }
        rows_to_l2(g.as_ptr().wrapping_add(self.offset::<HS>(i, 0, self.c)), self.c, t, 1);
        // `att`'s block is contiguous: one hint per 64-byte line of 16 floats.
        rows_to_l2(att.as_ptr().wrapping_add(i * t * t), 16, (t * t).div_ceil(16), 1);
    }
}

/// The fast paths: one per gemm path with vectors.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fast {
    Avx512,
    Avx2,
}

/// The fast path that runs these sizes on this CPU and the gemm path in use, if one does.
#[cfg(target_arch = "x86_64")]
fn fast(d: Dims) -> Option<Fast> {
    fast_on(super::matmul::gemm_path(), d)
}

/// The fast path that runs these sizes on this CPU and gemm `path`, if one does.
#[cfg(target_arch = "x86_64")]
fn fast_on(path: super::matmul::GemmPath, d: Dims) -> Option<Fast> {
    use super::matmul::GemmPath;
    match path {
        GemmPath::Avx512 if super::attention_avx512::fits(d) => Some(Fast::Avx512),
        GemmPath::Avx2 if super::attention_avx2::fits(d) => Some(Fast::Avx2),
        _ => None,
    }
}

/// The forward pass on the fast path: the scores, the causal softmax (scaled by `scale`) into
/// `att` (`[b · n_head, t, t]`), and the heads' outputs into `out` (`[b, t, c]`). False, and
/// nothing written, where there is no fast path.
pub(crate) fn forward_f32(qkv: &[f32], d: Dims, scale: f32, att: &mut [f32], out: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let Some(path) = fast(d) {
        #[cfg(feature = "kernel-timers")]
        let _timer = crate::timers::Timer::start(("attention forward", [d.b, d.t, d.c]));
        // SAFETY: `fast` checked the CPU's features (AVX-512F, or AVX2 and FMA) and the sizes
        // (`t ≤ 16`); the kernels check the lengths.
        unsafe {
            match path {
                Fast::Avx512 => {
                    super::attention_avx512::scores(qkv, d, att);
                    super::attention_avx512::causal_softmax(att, d.t, scale);
                    super::attention_avx512::mix(qkv, d, att, out);
                }
                Fast::Avx2 => {
                    super::attention_avx2::scores(qkv, d, att);
                    super::attention_avx2::causal_softmax(att, d.t, scale);
                    super::attention_avx2::mix(qkv, d, att, out);
                }
            }
        }
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
    if let Some(path) = fast(d) {
        #[cfg(feature = "kernel-timers")]
        let _timer = crate::timers::Timer::start(("attention backward", [d.b, d.t, d.c]));
        // SAFETY: `fast` checked the CPU's features and the sizes; the kernels check the lengths.
        unsafe {
            match path {
                Fast::Avx512 => super::attention_avx512::grad(qkv, att, g, d, scale, dst, acc),
                Fast::Avx2 => super::attention_avx2::grad(qkv, att, g, d, scale, dst, acc),
            }
        }
        return true;
    }
    let _ = (qkv, att, g, d, scale, dst, acc);
    false
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::kernels::matmul::GemmPath;

    /// makemore's attention sizes take the fast path of each gemm path with vectors, on a CPU
    /// that runs it (so that a test on the op, run with that path forced, runs the kernels);
    /// other head sizes, longer sequences and the portable paths do not.
    #[test]
    fn makemores_sizes_take_each_paths_kernels() {
        let d = Dims { b: 32, t: 16, c: 64, n_head: 4 };
        for (path, fast) in [(GemmPath::Avx512, Fast::Avx512), (GemmPath::Avx2, Fast::Avx2)] {
            if path.unsupported().is_some() {
                eprintln!("makemores_sizes_take_each_paths_kernels: skipped {path} (not on this CPU)");
                continue;
            }
            assert_eq!(fast_on(path, d), Some(fast), "{path}");
            for t in [1, 7, 9] {
                assert_eq!(fast_on(path, Dims { t, ..d }), Some(fast), "{path}, t = {t}");
            }
            assert_eq!(fast_on(path, Dims { t: 17, ..d }), None, "{path}, t = 17");
            assert_eq!(fast_on(path, Dims { c: 32, ..d }), None, "{path}, heads of 8");
        }
        for path in [GemmPath::Portable, GemmPath::PortableAvx2] {
            assert_eq!(fast_on(path, d), None, "{path}");
        }
    }

    /// Each fast path's causal softmax gives [`super::super::axis::causal_softmax`]'s bits, for
    /// every size of block (some scores past `exp`'s clamp once scaled, three blocks each; a
    /// row's max is sometimes one of its masked entries).
    #[test]
    fn the_causal_softmax_kernels_give_the_general_kernels_bits() {
        type Kernel = unsafe fn(&mut [f32], usize, f32);
        let kernels: [(&str, bool, Kernel); 2] = [
            (
                "avx512",
                super::super::gemm_avx512::available(),
                super::super::attention_avx512::causal_softmax,
            ),
            ("avx2", super::super::gemm_avx2::available(), super::super::attention_avx2::causal_softmax),
        ];
        for (name, available, kernel) in kernels {
            if !available {
                eprintln!(
                    "the_causal_softmax_kernels_give_the_general_kernels_bits: skipped {name} (not on this CPU)"
                );
                continue;
            }
            let mut seed = 12345u64;
            let mut next = || {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 300.0
            };
            for t in 1..=16 {
                for scale in [0.25f32, 1.0, 3.7] {
                    let scores: Vec<f32> = (0..3 * t * t).map(|_| next()).collect();
                    let (mut want, mut got) = (scores.clone(), scores);
                    super::super::axis::causal_softmax(&mut want, t, scale);
                    // SAFETY: the kernel's CPU features are available (checked above); whole
                    // [t, t] blocks with t ≤ 16.
                    unsafe { kernel(&mut got, t, scale) };
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(
                            g.to_bits(),
                            w.to_bits(),
                            "{name}, t = {t}, scale {scale}, element {i}: {g} against {w}"
                        );
                    }
                }
            }
        }
    }
}
