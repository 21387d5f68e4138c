//! makemore's self-attention written with AVX2 + FMA intrinsics for heads of 16 and sequences of
//! at most 16: the counterpart of [`super::attention_avx512`] on the AVX2 gemm path, with a row
//! of q, k, v (16 floats) as two vectors of 8. [`crate::Var::causal_self_attention`] takes it for
//! `f32` when the gemm path is AVX2 ([`super::matmul::gemm_path`]) and the sizes fit ([`fits`]).
//!
//! Why: on that path the general one (a gemm per slice and product, 3,072 products of
//! 16 × 16 × 16 a step) took 168 µs a layer (81 forward, 87 backward) against the AVX-512
//! kernels' 110 on the same Zen 4 core; these take 135 (60 and 75; `MM_GEMM=avx2
//! examples/transformer_step 100 --ops`, pinned). A first version that copied each slice's rows
//! into 32 vectors (which spill: 16 registers) took 193. The design is the AVX-512 module's (see there): a slice's k, v, G (or P, dS) held as
//! 16 rows, each product a run of broadcast multiply-adds into a group of rows (4 here: 8
//! accumulators of the 16 registers), the outputs stored straight into `[B, T, C]` or
//! `[B, T, 3C]`. Rows shorter than 16 (`t < 16`) are loaded under a mask and stored by plain
//! stores of their first lanes (`vmaskmovps` stores are slow on AMD's cores).
//!
//! The sums run in the same order as the AVX-512 kernels', so the two give the same bits but for
//! the backward's `rowsum(dP ⊙ P)` (a vector reduction of another width). The causal softmax
//! gives the general kernel's bits (a test checks every `t`).

use std::arch::x86_64::{
    __m256, __m256i, _mm_add_ps, _mm_add_ss, _mm_cvtss_f32, _mm_max_ps, _mm_movehl_ps, _mm_shuffle_ps,
    _mm256_add_epi32, _mm256_add_ps, _mm256_and_ps, _mm256_blendv_ps, _mm256_castps_si256,
    _mm256_castps256_ps128, _mm256_castsi256_ps, _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_fnmadd_ps,
    _mm256_loadu_ps, _mm256_loadu_si256, _mm256_maskload_ps, _mm256_max_ps, _mm256_min_ps, _mm256_mul_ps,
    _mm256_set1_epi32, _mm256_set1_ps, _mm256_setzero_ps, _mm256_slli_epi32, _mm256_srai_epi32,
    _mm256_storeu_ps, _mm256_sub_epi32, _mm256_sub_ps,
};

use super::Acc;
use super::attention::Dims;
use super::gemm_avx2::{MASKS, store_first, transpose};

/// The one head size and the longest sequence this path takes: a row is 16 floats.
const L: usize = 16;
/// Lanes of a vector.
const LANES: usize = 8;
/// Rows of accumulators at a time: 4 rows of 2 vectors, 8 of the 16 registers.
const R: usize = 4;

/// A row of 16 floats as two vectors.
type Row = [__m256; 2];

/// Whether this path takes these sizes on this CPU: heads of 16, sequences of 1 to 16.
pub(crate) fn fits(d: Dims) -> bool {
    d.n_head > 0 && d.c == d.n_head * L && (1..=L).contains(&d.t) && super::gemm_avx2::available()
}

/// The mask of a row's first `n` lanes (`0 ≤ n ≤ 16`), as two vectors.
#[target_feature(enable = "avx2,fma")]
fn lanes(n: usize) -> [__m256i; 2] {
    let from = &MASKS[L - n..][..L];
    // SAFETY: AVX; `from` holds 16 `i32`s, read as two unaligned vectors.
    std::array::from_fn(|h| unsafe { _mm256_loadu_si256(from[h * LANES..].as_ptr().cast()) })
}

/// The first `n` floats at `p` (`1 ≤ n ≤ 16`) as a row, zeros past them.
///
/// # Safety
///
/// AVX2; `p` holds `n` floats.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load(p: *const f32, n: usize) -> Row {
    // SAFETY: by the contract; the masked loads read only the lanes below `n`, and the second
    // vector's address is formed only when some of its lanes are (`p + 8` may be past the end).
    unsafe {
        if n == L {
            [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(LANES))]
        } else if n > LANES {
            let m = lanes(n);
            [_mm256_maskload_ps(p, m[0]), _mm256_maskload_ps(p.add(LANES), m[1])]
        } else {
            [_mm256_maskload_ps(p, lanes(n)[0]), _mm256_setzero_ps()]
        }
    }
}

/// Writes the first `n` lanes of `x` (`1 ≤ n ≤ 16`) to `p`.
///
/// # Safety
///
/// AVX2; `p` holds `n` floats.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn store(p: *mut f32, x: Row, n: usize) {
    // SAFETY: by the contract; each store writes lanes below `n`.
    unsafe {
        if n >= LANES {
            _mm256_storeu_ps(p, x[0]);
            if n == L {
                _mm256_storeu_ps(p.add(LANES), x[1]);
            } else if n > LANES {
                store_first(p.add(LANES), x[1], n - LANES);
            }
        } else {
            store_first(p, x[0], n);
        }
    }
}

/// The sum of a vector's lanes: lane l plus lane l + 4, then 2 apart, then 1.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn sum8(x: __m256) -> f32 {
    let s4 = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
    let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps::<0b01>(s2, s2)))
}

/// The transpose of 16 rows of 16: four 8 × 8 transposes, the off-diagonal tiles swapped.
#[target_feature(enable = "avx2,fma")]
fn transpose16(x: &[Row; L]) -> [Row; L] {
    let tile = |r0: usize, h: usize| transpose(std::array::from_fn(|r| x[r0 + r][h]));
    let (tl, tr, bl, br) = (tile(0, 0), tile(0, 1), tile(LANES, 0), tile(LANES, 1));
    std::array::from_fn(|c| if c < LANES { [tl[c], bl[c]] } else { [tr[c - LANES], br[c - LANES]] })
}

/// `out[r] (+)= Σ_{j < n} w[r][j] · x[j]` for `r < t`: rows of weights (`w`, rows `ldw` apart)
/// times the rows of 16 floats at `x` (`ldx` apart, read in place: 32 vectors do not fit the
/// registers); `out`'s rows are `ldo` apart, of which the first `width` lanes are written. With
/// `causal`, row `r`'s weights past `r` are zero and are skipped (a group stops at its last
/// row's). As [`super::attention_avx512`]'s `weigh`.
///
/// # Safety
///
/// AVX2 and FMA; `w` holds `t` rows of `n` weights, `x` `n` rows of 16 floats, `out` `t` rows
/// of `width` floats.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn weigh(
    w: *const f32,
    ldw: usize,
    x: (*const f32, usize),
    (n, causal): (usize, bool),
    out: *mut f32,
    ldo: usize,
    t: usize,
    (width, add): (usize, bool),
) {
    let mut r0 = 0;
    while r0 < t {
        let rows = (t - r0).min(R);
        let end = if causal { (r0 + rows).min(n) } else { n };
        let (w, out) = (w.wrapping_add(r0 * ldw), out.wrapping_add(r0 * ldo));
        // SAFETY: inside `w` and `out`, by the contract.
        unsafe {
            match rows {
                R => weigh_rows::<R>(w, ldw, x, end, out, ldo, (width, add)),
                3 => weigh_rows::<3>(w, ldw, x, end, out, ldo, (width, add)),
                2 => weigh_rows::<2>(w, ldw, x, end, out, ldo, (width, add)),
                _ => weigh_rows::<1>(w, ldw, x, end, out, ldo, (width, add)),
            }
        }
        r0 += rows;
    }
}

/// [`weigh`] for the `N` rows at `w` and `out`, over the first `end` rows of `x`.
///
/// # Safety
///
/// As [`weigh`], for `N` rows.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn weigh_rows<const N: usize>(
    w: *const f32,
    ldw: usize,
    (x, ldx): (*const f32, usize),
    end: usize,
    out: *mut f32,
    ldo: usize,
    (width, add): (usize, bool),
) {
    // SAFETY: (all reads and writes) inside `w` and `out`, by the contract.
    unsafe {
        let mut sum = [[_mm256_setzero_ps(); 2]; N];
        for j in 0..end {
            let xj = [_mm256_loadu_ps(x.add(j * ldx)), _mm256_loadu_ps(x.add(j * ldx + LANES))];
            for (k, s) in sum.iter_mut().enumerate() {
                let wk = _mm256_set1_ps(*w.add(k * ldw + j));
                *s = [_mm256_fmadd_ps(wk, xj[0], s[0]), _mm256_fmadd_ps(wk, xj[1], s[1])];
            }
        }
        for (k, s) in sum.iter().enumerate() {
            let o = out.add(k * ldo);
            let s = if add {
                let old = load(o, width);
                [_mm256_add_ps(old[0], s[0]), _mm256_add_ps(old[1], s[1])]
            } else {
                *s
            };
            store(o, s, width);
        }
    }
}

/// The scores `q kᵀ` of every slice into `att` (`[b · n_head, t, t]`), unscaled and unmasked,
/// as the general path's products leave them for `causal_softmax`.
///
/// # Safety
///
/// AVX2, FMA and [`fits`]; `qkv` is `[b, t, 3c]` and `att` `b · n_head · t · t` long.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn scores(qkv: &[f32], d: Dims, att: &mut [f32]) {
    let (t, w) = (d.t, 3 * d.c);
    assert!(qkv.len() >= d.b * t * w && att.len() >= d.b * d.n_head * t * t, "attention operands");
    for i in 0..d.b * d.n_head {
        // SAFETY: slice `i`'s rows of q and k are inside `qkv` (checked above), and its block
        // of scores inside `att`.
        unsafe {
            let kt = transposed_rows(qkv.as_ptr().add(d.offset::<L>(i, 1, w)), w, t);
            let (q, s) = (qkv.as_ptr().add(d.offset::<L>(i, 0, w)), att.as_mut_ptr().add(i * t * t));
            weigh(q, w, (kt.as_ptr().cast(), L), (L, false), s, t, t, (t, false));
        }
    }
}

/// The causal softmax of the scores in place, as [`super::axis::causal_softmax`] computes it and
/// to the same bits, for blocks of `t ≤ 16`: one row (two vectors) at a time, its lanes past the
/// row's position masked; the steps as in [`super::attention_avx512::causal_softmax`].
///
/// # Safety
///
/// AVX2 and FMA; `1 ≤ t ≤ 16` and `att` holds whole `[t, t]` blocks.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn causal_softmax(att: &mut [f32], t: usize, scale: f32) {
    use super::exp::{LN2_HI, LN2_LO, LOG2E, ROUND};
    assert!((1..=L).contains(&t) && att.len().is_multiple_of(t * t), "causal softmax of [{t}, {t}] blocks");
    let (sc, round) = (_mm256_set1_ps(scale), _mm256_set1_ps(ROUND));
    let pow2 = |e: __m256i| {
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(e, _mm256_set1_epi32(127))))
    };
    // exp1, operation by operation. Clamp (`max`/`min` return their second operand on a NaN, so
    // a NaN stays one).
    let exp = |z: __m256| {
        let z = _mm256_min_ps(_mm256_set1_ps(89.0), _mm256_max_ps(_mm256_set1_ps(-104.0), z));
        let tt = _mm256_add_ps(_mm256_mul_ps(z, _mm256_set1_ps(LOG2E)), round);
        let n = _mm256_sub_ps(tt, round);
        let ni = _mm256_sub_epi32(_mm256_castps_si256(tt), _mm256_castps_si256(round));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), z));
        let mut p = _mm256_set1_ps(1.0 / 5040.0);
        for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let half = _mm256_srai_epi32::<1>(ni);
        _mm256_mul_ps(_mm256_mul_ps(p, pow2(half)), pow2(_mm256_sub_epi32(ni, half)))
    };
    for (i, row) in att.chunks_exact_mut(t).enumerate() {
        let seen = lanes(i % t + 1).map(|m| _mm256_castsi256_ps(m));
        // SAFETY: `row` holds `t` floats.
        let x = unsafe { load(row.as_ptr(), t) };
        // The max of the seen lanes (exact in any order).
        let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
        let m = _mm256_max_ps(_mm256_blendv_ps(ninf, x[0], seen[0]), _mm256_blendv_ps(ninf, x[1], seen[1]));
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let max = _mm256_set1_ps(_mm_cvtss_f32(_mm_max_ps(m2, _mm_shuffle_ps::<0b01>(m2, m2))));
        // The lanes past the row's position are zeros from the start (exp(0) = 1 in the general
        // kernel, left out of its sum and zeroed at the end), then zeroed again after `exp`.
        let e: Row = std::array::from_fn(|h| {
            let z = _mm256_and_ps(_mm256_mul_ps(_mm256_sub_ps(x[h], max), sc), seen[h]);
            _mm256_and_ps(exp(z), seen[h])
        });
        // The sum in `axis::lanes`'s order: lane l plus lane l + 8, then 4, 2 and 1 apart.
        let inv = _mm256_set1_ps(1.0 / sum8(_mm256_add_ps(e[0], e[1])));
        // SAFETY: as the load.
        unsafe { store(row.as_mut_ptr(), [_mm256_mul_ps(e[0], inv), _mm256_mul_ps(e[1], inv)], t) };
    }
}

/// Every slice's `P v` (`P` the softmaxed `att`), written into its head's columns of `out`
/// (`[b, t, c]`).
///
/// # Safety
///
/// As [`scores`]; `out` is `b · t · c` long.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn mix(qkv: &[f32], d: Dims, att: &[f32], out: &mut [f32]) {
    let (t, w) = (d.t, 3 * d.c);
    assert!(qkv.len() >= d.b * t * w && att.len() >= d.b * d.n_head * t * t, "attention operands");
    assert!(out.len() >= d.b * t * d.c, "attention output");
    for i in 0..d.b * d.n_head {
        // SAFETY: as above; slice `i`'s output rows are inside `out`.
        unsafe {
            let v = qkv.as_ptr().add(d.offset::<L>(i, 2, w));
            let o = out.as_mut_ptr().add(d.offset::<L>(i, 0, d.c));
            weigh(att.as_ptr().add(i * t * t), t, (v, w), (t, true), o, d.c, t, (L, false));
        }
    }
}

/// The gradient of `qkv` from the output's `g` (`[b, t, c]`), per slice with `P` from `att`:
/// `dP = G vᵀ`, `dS = P ⊙ (dP - rowsum(dP ⊙ P)) · scale`, then `dq = dS k`, `dk = dSᵀ q`,
/// `dv = Pᵀ G`, each written (or added, with [`Acc::Add`]) in its block of `dst`. The operands
/// of the slice `n_head` ahead are fetched into L2 ([`Dims::slice_to_l2`]).
///
/// # Safety
///
/// As [`scores`]; `g` is `b · t · c` long and `dst` as long as `qkv`.
#[target_feature(enable = "avx2,fma")]
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
    let (add, sc) = (acc == Acc::Add, _mm256_set1_ps(scale));
    // dS of one slice, rows of 16 (zeros past `t`: only `t` lanes of `t` rows are ever written),
    // and P likewise.
    let mut ds = [[0f32; L]; L];
    let mut p = [[0f32; L]; L];
    for i in 0..d.b * d.n_head {
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
            let vt = transposed_rows(qkv_p.add(at(2)), w, t);
            weigh(gi, d.c, (vt.as_ptr().cast(), L), (L, false), ds.as_mut_ptr().cast(), L, t, (t, false));
            for r in 0..t {
                let pr = load(pi.add(r * t), t);
                let dp = load(ds[r].as_ptr(), t);
                let prod = _mm256_add_ps(_mm256_mul_ps(dp[0], pr[0]), _mm256_mul_ps(dp[1], pr[1]));
                let dot = _mm256_set1_ps(sum8(prod));
                let dsr = std::array::from_fn(|h| {
                    _mm256_mul_ps(_mm256_mul_ps(pr[h], _mm256_sub_ps(dp[h], dot)), sc)
                });
                store(ds[r].as_mut_ptr(), dsr, t);
                store(p[r].as_mut_ptr(), pr, t);
            }
            // dq = dS k (dS is zero past the diagonal, as P is).
            let k = (qkv_p.add(at(1)), w);
            weigh(ds.as_ptr().cast(), L, k, (t, true), dst_p.add(at(0)), w, t, (L, add));
            // dk = dSᵀ q and dv = Pᵀ G: the transposes' rows past `t` are zero.
            let (ds_t, p_t) =
                (transposed_rows(ds.as_ptr().cast(), L, L), transposed_rows(p.as_ptr().cast(), L, L));
            let q = (qkv_p.add(at(0)), w);
            weigh(ds_t.as_ptr().cast(), L, q, (t, false), dst_p.add(at(1)), w, t, (L, add));
            weigh(p_t.as_ptr().cast(), L, (gi, d.c), (t, false), dst_p.add(at(2)), w, t, (L, add));
        }
    }
}

/// The transpose of the `[t, 16]` block at `p` (rows `stride` apart, zeros past `t`): 16 rows
/// whose first `t` lanes are the block's columns (the weights or rows [`weigh`] reads).
///
/// # Safety
///
/// AVX2; `p` points at `t ≤ 16` rows of 16 floats, `stride` apart.
#[target_feature(enable = "avx2,fma")]
unsafe fn transposed_rows(p: *const f32, stride: usize, t: usize) -> [[f32; L]; L] {
    // SAFETY: by the contract, rows `r < t` are readable; every row of the result is 16 floats.
    unsafe {
        let rows =
            std::array::from_fn(
                |r| if r < t { load(p.add(r * stride), L) } else { [_mm256_setzero_ps(); 2] },
            );
        let mut out = [[0f32; L]; L];
        for (row, v) in out.iter_mut().zip(transpose16(&rows)) {
            store(row.as_mut_ptr(), v, L);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transpose_of_16_rows() {
        if !super::super::gemm_avx2::available() {
            eprintln!("a_transpose_of_16_rows: skipped avx2 (no AVX2 and FMA)");
            return;
        }
        let m: [[f32; L]; L] = std::array::from_fn(|r| std::array::from_fn(|c| (r * L + c) as f32));
        // SAFETY: AVX2 and FMA are available (checked above); `m` is 16 rows of 16.
        let t = unsafe { transposed_rows(m.as_ptr().cast(), L, L) };
        for (r, c) in (0..L).flat_map(|r| (0..L).map(move |c| (r, c))) {
            assert_eq!(t[c][r], m[r][c], "({r}, {c})");
        }
    }
}
