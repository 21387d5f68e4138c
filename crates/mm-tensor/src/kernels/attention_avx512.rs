//! makemore's self-attention written with AVX-512 intrinsics for heads of 16 (one vector per
//! row of q, k or v) and sequences of at most 16: makemore's default (`n_embd` 64, 4 heads,
//! block 16). [`crate::Var::causal_self_attention`] takes this path for `f32` when the gemm path
//! is AVX-512 ([`super::matmul::gemm_path`]) and the sizes fit ([`fits`]); any other case runs
//! the general one (a gemm per slice and product).
//!
//! Why: each of a step's 4 × 128 slices is six products of 16 × 16 × 16 (two forward, four
//! backward), 3,072 gemm calls a step. Each call checks its operands, packs a transposed one,
//! and runs blocks of one vector that are bound by their loads; at this size that costs more
//! than the 4,096 multiply-adds. Here a slice's k, v, G (or P, dS) stay in registers as 16
//! vectors, a product is a run of broadcast multiply-adds into 8 rows at a time, and the
//! outputs go straight to their places in `[B, T, C]` or `[B, T, 3C]` (no block copied in).
//!
//! The sums run in the gemm's order (over the inner index, one fused multiply-add after the
//! other); the backward's `rowsum(dP ⊙ P)` is a vector reduction, whose order differs from the
//! general path's. `tests/attention_paths.rs` checks values and gradients against `f64`.

use std::arch::x86_64::{
    __m512, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_storeu_ps,
    _mm512_maskz_loadu_ps, _mm512_mul_ps, _mm512_reduce_add_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_storeu_ps, _mm512_sub_ps,
};

use super::Acc;
use super::attention::Dims;
use super::gemm_avx512::transpose;

/// Lanes of a vector, and the one head size and the longest sequence this path takes.
const L: usize = 16;

/// Whether this path takes these sizes on this CPU: heads of 16, sequences of 1 to 16.
pub(crate) fn fits(d: Dims) -> bool {
    d.n_head > 0 && d.c == d.n_head * L && (1..=L).contains(&d.t) && super::gemm_avx512::available()
}

/// Every lane.
const ALL: __mmask16 = 0xffff;

/// The mask of the first `n` lanes (`1 ≤ n ≤ 16`).
fn lanes(n: usize) -> __mmask16 {
    (u32::MAX >> (32 - n)) as __mmask16
}

/// Rows `0..t` of a `[t, 16]` block whose rows are `stride` apart, as vectors; zeros past `t`.
///
/// # Safety
///
/// AVX-512F; `p` points at `t` rows of 16 floats, `stride` apart.
#[target_feature(enable = "avx512f")]
unsafe fn rows(p: *const f32, stride: usize, t: usize) -> [__m512; L] {
    std::array::from_fn(|r| {
        if r < t {
            // SAFETY: by the contract, rows `r < t` are readable.
            unsafe { _mm512_loadu_ps(p.add(r * stride)) }
        } else {
            _mm512_setzero_ps()
        }
    })
}

/// Row groups: 8 rows of accumulators at a time (a group's broadcasts share each load of `x`).
const R: usize = 8;

/// Runs `f::<N>(r0)` over the row groups of `0..t`: full groups of [`R`] rows, then the rest, each
/// with its row count as a constant, so that the loops over a group's rows unroll into registers.
macro_rules! groups {
    ($t:expr, |$r0:ident, $n:ident| $body:expr) => {{
        let t = $t;
        let mut $r0 = 0;
        while $r0 + R <= t {
            {
                const $n: usize = R;
                $body
            }
            $r0 += R;
        }
        match t - $r0 {
            0 => {}
            1 => {
                const $n: usize = 1;
                $body
            }
            2 => {
                const $n: usize = 2;
                $body
            }
            3 => {
                const $n: usize = 3;
                $body
            }
            4 => {
                const $n: usize = 4;
                $body
            }
            5 => {
                const $n: usize = 5;
                $body
            }
            6 => {
                const $n: usize = 6;
                $body
            }
            _ => {
                const $n: usize = 7;
                $body
            }
        }
    }};
}

/// `out[r] (+)= Σ_{j < n} w[r][j] · x[j]` for `r < t`: rows of weights (`w`, rows `ldw` apart)
/// times the vectors `x`; `out`'s rows are `ldo` apart, stored under `mask`. With `causal`, row
/// `r`'s weights past `r` are zero and are skipped (a group stops at its last row's). With `x`
/// the transpose of a `[t, 16]` block `b` and `n` = 16, this is `a bᵀ` (the scores, dP).
///
/// # Safety
///
/// AVX-512F; `w` holds `t` rows of `n` weights, `out` `t` rows of the lanes of `mask`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn weigh(
    w: *const f32,
    ldw: usize,
    x: &[__m512; L],
    (n, causal): (usize, bool),
    out: *mut f32,
    ldo: usize,
    t: usize,
    (mask, add): (__mmask16, bool),
) {
    groups!(t, |r0, N| {
        let end = if causal { (r0 + N).min(n) } else { n };
        // SAFETY: inside `w` and `out`, by the contract.
        unsafe { weigh_rows::<N>(w.add(r0 * ldw), ldw, x, end, out.add(r0 * ldo), ldo, (mask, add)) }
    })
}

/// [`weigh`] for the `N` rows at `w` and `out`, over the first `end` vectors of `x`.
///
/// # Safety
///
/// As [`weigh`], for `N` rows.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn weigh_rows<const N: usize>(
    w: *const f32,
    ldw: usize,
    x: &[__m512; L],
    end: usize,
    out: *mut f32,
    ldo: usize,
    (mask, add): (__mmask16, bool),
) {
    // SAFETY: (all reads and writes) inside `w` and `out`, by the contract.
    unsafe {
        let mut sum = [_mm512_setzero_ps(); N];
        for (j, &xj) in x.iter().enumerate().take(end) {
            for (k, s) in sum.iter_mut().enumerate() {
                *s = _mm512_fmadd_ps(_mm512_set1_ps(*w.add(k * ldw + j)), xj, *s);
            }
        }
        for (k, &s) in sum.iter().enumerate() {
            let o = out.add(k * ldo);
            let s = if add { _mm512_add_ps(_mm512_maskz_loadu_ps(mask, o), s) } else { s };
            _mm512_mask_storeu_ps(o, mask, s);
        }
    }
}

/// The scores `q kᵀ` of every slice into `att` (`[b · n_head, t, t]`), unscaled and unmasked,
/// as the general path's products leave them for `causal_softmax`.
///
/// # Safety
///
/// AVX-512F and [`fits`]; `qkv` is `[b, t, 3c]` and `att` `b · n_head · t · t` long.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn scores(qkv: &[f32], d: Dims, att: &mut [f32]) {
    let (t, w) = (d.t, 3 * d.c);
    assert!(qkv.len() >= d.b * t * w && att.len() >= d.b * d.n_head * t * t, "attention operands");
    for i in 0..d.b * d.n_head {
        // SAFETY: slice `i`'s rows of q and k are inside `qkv` (checked above), and its block
        // of scores inside `att`.
        unsafe {
            let kt = transpose(rows(qkv.as_ptr().add(d.offset::<L>(i, 1, w)), w, t));
            let (q, s) = (qkv.as_ptr().add(d.offset::<L>(i, 0, w)), att.as_mut_ptr().add(i * t * t));
            weigh(q, w, &kt, (L, false), s, t, t, (lanes(t), false));
        }
    }
}

/// The causal softmax of the scores in place, as [`super::axis::causal_softmax`] computes it and
/// to the same bits, for blocks of `t ≤ 16`: one vector per row, its lanes past the row's
/// position masked. The general kernel takes a row in pieces of 8 and runs `exp` over every
/// block in a second pass, then the sums in a third; here a row is loaded once, and its max,
/// `exp` and sum stay in registers. In `perf` of `examples/transformer_step` (the 2-vCPU Intel
/// Xeon, model 167, AVX-512 gemm path), the causal softmax
/// and its `exp` went from 3.6% of the step's samples to 2.1%, and the step from 5.05-5.10 ms to
/// 4.95-4.98 ms (alternated, pinned).
///
/// The same bits, step by step: the max of the seen lanes (exact in any order); `(x - max) ·
/// scale`; `exp` as [`super::exp::exp1`] with its operations in its order; the sum as
/// `axis::lanes` folds a row (lane `l` plus lane `l + 8`, then halves: 4, 2, 1); `e · (1 / sum)`.
///
/// # Safety
///
/// AVX-512F; `1 ≤ t ≤ 16` and `att` holds whole `[t, t]` blocks.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn causal_softmax(att: &mut [f32], t: usize, scale: f32) {
    use super::exp::{LN2_HI, LN2_LO, LOG2E, ROUND};
    use std::arch::x86_64::{
        __m512i, _mm_add_ps, _mm_add_ss, _mm_cvtss_f32, _mm_movehl_ps, _mm_shuffle_ps, _mm256_add_ps,
        _mm256_castpd_ps, _mm256_castps256_ps128, _mm256_extractf128_ps, _mm512_add_epi32, _mm512_castps_pd,
        _mm512_castps_si512, _mm512_castps512_ps256, _mm512_castsi512_ps, _mm512_extractf64x4_pd,
        _mm512_fnmadd_ps, _mm512_mask_reduce_max_ps, _mm512_maskz_mov_ps, _mm512_max_ps, _mm512_min_ps,
        _mm512_set1_epi32, _mm512_slli_epi32, _mm512_srai_epi32, _mm512_sub_epi32,
    };
    assert!((1..=L).contains(&t) && att.len().is_multiple_of(t * t), "causal softmax of [{t}, {t}] blocks");
    let (in_row, sc, round) = (lanes(t), _mm512_set1_ps(scale), _mm512_set1_ps(ROUND));
    let pow2 = |e: __m512i| {
        _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(e, _mm512_set1_epi32(127))))
    };
    for (i, row) in att.chunks_exact_mut(t).enumerate() {
        let seen = lanes(i % t + 1);
        // SAFETY: `row` holds `t` floats, the lanes of `in_row`.
        let x = unsafe { _mm512_maskz_loadu_ps(in_row, row.as_ptr()) };
        let max = _mm512_set1_ps(_mm512_mask_reduce_max_ps(seen, x));
        // The lanes past the row's position: exp(0) = 1 in the general kernel, left out of its
        // sum and zeroed at the end; zeros here from the start, which its sum adds as zeros.
        let z = _mm512_maskz_mov_ps(seen, _mm512_mul_ps(_mm512_sub_ps(x, max), sc));
        // exp1, operation by operation. Clamp (`max`/`min` return their second operand on a
        // NaN, so a NaN stays one).
        let z = _mm512_min_ps(_mm512_set1_ps(89.0), _mm512_max_ps(_mm512_set1_ps(-104.0), z));
        let tt = _mm512_add_ps(_mm512_mul_ps(z, _mm512_set1_ps(LOG2E)), round);
        let n = _mm512_sub_ps(tt, round);
        let ni = _mm512_sub_epi32(_mm512_castps_si512(tt), _mm512_castps_si512(round));
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), z));
        let mut p = _mm512_set1_ps(1.0 / 5040.0);
        for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let half = _mm512_srai_epi32::<1>(ni);
        let e = _mm512_mul_ps(_mm512_mul_ps(p, pow2(half)), pow2(_mm512_sub_epi32(ni, half)));
        let e = _mm512_maskz_mov_ps(seen, e);
        // The sum in `axis::lanes`'s order: lane l plus lane l + 8, then 4, 2 and 1 apart.
        let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(e)));
        let s8 = _mm256_add_ps(_mm512_castps512_ps256(e), high);
        let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        let s1 = _mm_add_ss(s2, _mm_shuffle_ps::<0b01>(s2, s2));
        let inv = _mm512_set1_ps(1.0 / _mm_cvtss_f32(s1));
        // SAFETY: as the load.
        unsafe { _mm512_mask_storeu_ps(row.as_mut_ptr(), in_row, _mm512_mul_ps(e, inv)) };
    }
}

/// Every slice's `P v` (`P` the softmaxed `att`), written into its head's columns of `out`
/// (`[b, t, c]`).
///
/// # Safety
///
/// As [`scores`]; `out` is `b · t · c` long.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn mix(qkv: &[f32], d: Dims, att: &[f32], out: &mut [f32]) {
    let (t, w) = (d.t, 3 * d.c);
    assert!(qkv.len() >= d.b * t * w && att.len() >= d.b * d.n_head * t * t, "attention operands");
    assert!(out.len() >= d.b * t * d.c, "attention output");
    for i in 0..d.b * d.n_head {
        // SAFETY: as above; slice `i`'s output rows are inside `out`.
        unsafe {
            let v = rows(qkv.as_ptr().add(d.offset::<L>(i, 2, w)), w, t);
            let o = out.as_mut_ptr().add(d.offset::<L>(i, 0, d.c));
            weigh(att.as_ptr().add(i * t * t), t, &v, (t, true), o, d.c, t, (ALL, false));
        }
    }
}

/// The gradient of `qkv` from the output's `g` (`[b, t, c]`), per slice with `P` from `att`:
/// `dP = G vᵀ`, `dS = P ⊙ (dP - rowsum(dP ⊙ P)) · scale`, then `dq = dS k`, `dk = dSᵀ q`,
/// `dv = Pᵀ G`, each written (or added, with [`Acc::Add`]) in its block of `dst`.
///
/// # Safety
///
/// As [`scores`]; `g` is `b · t · c` long and `dst` as long as `qkv`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn grad(
    qkv: &[f32],
    att: &[f32],
    g: &[f32],
    d: Dims,
    scale: f32,
    dst: &mut [f32],
    acc: Acc,
) {
    let (t, w) = (d.t, 3 * d.c);
    assert!(qkv.len() >= d.b * t * w && att.len() >= d.b * d.n_head * t * t, "attention operands");
    assert!(g.len() >= d.b * t * d.c && dst.len() >= d.b * t * w, "attention gradients");
    let add = acc == Acc::Add;
    let (mask, sc) = (lanes(t), _mm512_set1_ps(scale));
    // dS of one slice, rows of 16 (zeros past `t`), and P likewise.
    let mut ds = [[0f32; L]; L];
    let mut p = [[0f32; L]; L];
    for i in 0..d.b * d.n_head {
        // The operands of the slice `n_head` ahead (the same head of the next sequence).
        d.slice_to_l2::<L>(i + d.n_head, qkv, g, att, dst);
        // SAFETY: slice `i`'s rows of `qkv`, `g`, `att` and `dst` are inside them (checked
        // above); `ds` and `p` are 16 × 16.
        unsafe {
            let (qkv_p, dst_p) = (qkv.as_ptr(), dst.as_mut_ptr());
            // Where slice `i`'s q, k or v (`part` 0, 1, 2) starts in `qkv` and `dst`.
            let at = |part| d.offset::<L>(i, part, w);
            let gi = g.as_ptr().add(d.offset::<L>(i, 0, d.c));
            let pi = att.as_ptr().add(i * t * t);
            // dP = G vᵀ, into `ds`, then dS row by row.
            let vt = transpose(rows(qkv_p.add(at(2)), w, t));
            weigh(gi, d.c, &vt, (L, false), ds.as_mut_ptr().cast(), L, t, (mask, false));
            for r in 0..t {
                let pr = _mm512_maskz_loadu_ps(mask, pi.add(r * t));
                let dp = _mm512_maskz_loadu_ps(mask, ds[r].as_ptr());
                let dot = _mm512_set1_ps(_mm512_reduce_add_ps(_mm512_mul_ps(dp, pr)));
                let dsr = _mm512_mul_ps(_mm512_mul_ps(pr, _mm512_sub_ps(dp, dot)), sc);
                _mm512_mask_storeu_ps(ds[r].as_mut_ptr(), mask, dsr);
                _mm512_mask_storeu_ps(p[r].as_mut_ptr(), mask, pr);
            }
            // dq = dS k (dS is zero past the diagonal, as P is).
            let k = rows(qkv_p.add(at(1)), w, t);
            weigh(ds.as_ptr().cast(), L, &k, (t, true), dst_p.add(at(0)), w, t, (ALL, add));
            // dk = dSᵀ q and dv = Pᵀ G: the transposes' rows past `t` are zero.
            let (ds_t, p_t) = (transposed(&ds), transposed(&p));
            let q = rows(qkv_p.add(at(0)), w, t);
            weigh(ds_t.as_ptr().cast(), L, &q, (t, false), dst_p.add(at(1)), w, t, (ALL, add));
            let gr = rows(gi, d.c, t);
            weigh(p_t.as_ptr().cast(), L, &gr, (t, false), dst_p.add(at(2)), w, t, (ALL, add));
        }
    }
}

/// `m` transposed, as rows of floats (the weights [`weigh`] reads).
///
/// # Safety
///
/// AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn transposed(m: &[[f32; L]; L]) -> [[f32; L]; L] {
    // SAFETY: every row of `m` and of the result is 16 floats.
    unsafe {
        let t = transpose(std::array::from_fn(|r| _mm512_loadu_ps(m[r].as_ptr())));
        let mut out = [[0f32; L]; L];
        for (row, v) in out.iter_mut().zip(t) {
            _mm512_storeu_ps(row.as_mut_ptr(), v);
        }
        out
    }
}
