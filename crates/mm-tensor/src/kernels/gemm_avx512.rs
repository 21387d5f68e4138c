//! The `f32` matrix multiply written with AVX-512 intrinsics: the path [`super::matmul::gemm`]
//! takes on a CPU with AVX-512 (every training step runs through it).
//!
//! The portable kernel leaves the register allocation to LLVM, which at 8 rows or more spills
//! the accumulators. Here they are `__m512` values, so a block of up to 8 rows by 3 vectors, or
//! 6 rows by 4 (24 of the 32 registers), stays in registers, and:
//! - a row-major `B` is read in place, with a masked load for the last, partial vector, so it is
//!   neither copied nor padded;
//! - a transposed `B` (the `G · Wᵀ` products) is packed once per call with 16×16 in-register
//!   transposes, in place of one scalar store per element;
//! - `C`'s columns are covered by vectors of 16 lanes, the last one masked, so `n = 200` costs
//!   13 vectors, not 14 (or 7 blocks of 32 lanes).

use std::arch::x86_64::{
    __m512, __mmask16, _mm512_castpd_ps, _mm512_castps_pd, _mm512_fmadd_ps, _mm512_mask_storeu_ps,
    _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_shuffle_f32x4, _mm512_storeu_ps,
    _mm512_unpackhi_pd, _mm512_unpackhi_ps, _mm512_unpacklo_pd, _mm512_unpacklo_ps,
};

use super::ahead;
use super::matmul::{Start, Strided};

/// Lanes of an `f32` vector.
const LANES: usize = 16;
/// Rows of `C` per block: 8 rows by up to 3 vectors is 24 accumulators.
const MR: usize = 8;
/// Rows of `C` per block of 4 vectors: 6 rows by 4 vectors is 24 accumulators, fed by 6
/// broadcasts and 4 loads per step of `k` (8 × 3 takes 8 and 3).
const MR4: usize = 6;
/// The longest slice of `k` a block runs over before moving on (see [`gemm`]).
const KC: usize = 128;

/// Whether this CPU can run [`gemm`] (the answer is cached by the standard library).
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// The mask of the first `n` lanes (`1 ≤ n ≤ 16`).
fn lanes(n: usize) -> __mmask16 {
    debug_assert!((1..=LANES).contains(&n));
    (u32::MAX >> (32 - n)) as __mmask16
}

/// `C[m×n] = start + A[m×k] · B[k×n]`: [`super::matmul::gemm`] for `f32` on AVX-512.
///
/// # Safety
///
/// The CPU must support AVX-512F ([`available`]).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn gemm(
    (m, k, n): (usize, usize, usize),
    a: Strided<'_, f32>,
    b: Strided<'_, f32>,
    c: &mut [f32],
    start: Start<'_, f32>,
    pack: &mut Vec<f32>,
) {
    if m == 0 || n == 0 {
        return;
    }
    let c = &mut c[..m * n];
    let bias = match start {
        Start::Bias(bias) => Some(bias[..n].as_ptr()),
        Start::Zero | Start::C => None,
    };
    if k == 0 {
        match start {
            Start::Zero => c.fill(0.0),
            Start::C => {}
            Start::Bias(bias) => c.chunks_exact_mut(n).for_each(|row| row.copy_from_slice(&bias[..n])),
        }
        return;
    }
    // Every element read below is at most these offsets: checked once, here.
    assert!(a.data.len() > (m - 1) * a.rs + (k - 1) * a.cs, "A is shorter than its shape");
    assert!(b.data.len() > (k - 1) * b.rs + (n - 1) * b.cs, "B is shorter than its shape");
    debug_assert!(a.cs == 1 || a.rs == 1, "A is row-major or transposed");
    let nv = n.div_ceil(LANES);
    // `B` as rows of `ldb` floats, of which the first `n` are read.
    let (bp, ldb) = if b.cs == 1 {
        (b.data.as_ptr(), b.rs)
    } else {
        let width = nv * LANES;
        if pack.len() < k * width {
            pack.resize(k * width, 0.0);
        }
        // SAFETY: AVX-512F is enabled (this function's contract); the sizes were checked above.
        unsafe { pack_transposed(b, (k, n), &mut pack[..k * width]) };
        (pack.as_ptr(), width)
    };
    let last = lanes(n - (nv - 1) * LANES);
    // Large operands are fetched ahead (see `ahead`): `C`'s rows a block before the block writes
    // them, and a row-major `B`'s next strip, a share of its rows at each block of this one.
    let (ahead_b, ahead_c) = (b.cs == 1 && ahead::worth(k * n), ahead::worth(m * n));
    // `k` in slices of at most `KC`: the slice of a column block of `B` (`KC` rows of up to 4
    // vectors, 32 KB) stays in L1 while every row block of `A` runs over it. Later slices add
    // to `C`.
    for k0 in (0..k).step_by(KC) {
        let (kc, first) = ((k - k0).min(KC), k0 == 0);
        let mut v0 = 0;
        while v0 < nv {
            let width = block_width(nv - v0);
            let mask = if v0 + width == nv { last } else { lanes(LANES) };
            let mr = if width == 4 { MR4 } else { MR };
            // The strip of `B` read next: the next column block's, or the next slice's first.
            let next = if !ahead_b {
                None
            } else if v0 + width < nv {
                Some((k0, kc, v0 + width, block_width(nv - v0 - width)))
            } else if k0 + KC < k {
                Some((k0 + KC, (k - k0 - KC).min(KC), 0, block_width(nv)))
            } else {
                None
            };
            let blocks = m.div_ceil(mr);
            for (j, i0) in (0..m).step_by(mr).enumerate() {
                let rows = (m - i0).min(mr);
                if let Some((k1, kc1, v1, w1)) = next {
                    // This block's share of the strip's rows.
                    let p0 = j * kc1 / blocks;
                    let share = (j + 1) * kc1 / blocks - p0;
                    let row = bp.wrapping_add((k1 + p0) * ldb + v1 * LANES);
                    ahead::rows_to_l2(row, ldb, share, (w1 * LANES).min(n - v1 * LANES));
                }
                // The next block's rows of `C`, on the first slice of `k` (later slices find
                // them in L2 when `C` fits there, as at makemore's sizes: 128 KB for k > 128).
                if ahead_c && first {
                    let (row, rows) = (i0 + mr, m.saturating_sub(i0 + mr).min(mr));
                    let at = c.as_ptr().wrapping_add(row * n + v0 * LANES);
                    ahead::rows_to_write(at, n, rows, (width * LANES).min(n - v0 * LANES));
                }
                let at = Block {
                    k: kc,
                    a: if a.cs == 1 {
                        a.data[i0 * a.rs + k0..].as_ptr()
                    } else {
                        a.data[k0 * a.cs + i0..].as_ptr()
                    },
                    lda: if a.cs == 1 { a.rs } else { a.cs },
                    // SAFETY: (of the offsets) `k0 < k` and `v0 < nv`, so the row and column
                    // are inside `B` and `C`.
                    b: bp.wrapping_add(k0 * ldb + v0 * LANES),
                    ldb,
                    c: c[i0 * n + v0 * LANES..].as_mut_ptr(),
                    ldc: n,
                    mask,
                    add: !first || matches!(start, Start::C),
                    bias: if first { bias.map(|bias| bias.wrapping_add(v0 * LANES)) } else { None },
                };
                // SAFETY: AVX-512F is enabled; the block's rows, columns and `kc` steps from
                // `k0` are inside the operands (checked above), and the last vector is masked
                // at `n`.
                unsafe { at.dispatch(rows, width, a.cs == 1) };
            }
            v0 += width;
        }
    }
}

/// The width in vectors of the column block that starts with `left` vectors still to cover:
/// blocks of 3 vectors; 4 (64 columns, makemore's n_embd) or 8 left are blocks of 4 vectors by 6
/// rows, and a remainder of 2 is one of 2. For n = 64 that replaced two blocks of 8 × 2, whose 8
/// broadcasts and 8 row addresses per 16 multiply-adds left the FMA ports idle: 85-95 → 100-106
/// GMAC/s on the Transformer's products with n = 64 (the Xeon model 167; `examples/gemm_shapes
/// --transformer`). 4 × 4 for n = 256 measured the same as 3 + 3 + 3 + 3 + 4.
fn block_width(left: usize) -> usize {
    match left {
        4 | 8 => 4,
        2 => 2,
        _ => left.min(3),
    }
}

/// One block of `C` and where its operands start.
#[derive(Clone, Copy)]
struct Block {
    k: usize,
    /// `A`'s first row of the block. Row-major: `A[r, p]` is `a[r * lda + p]`; transposed:
    /// `a[p * lda + r]`.
    a: *const f32,
    lda: usize,
    /// `B[p, l]` of the block's columns is `b[p * ldb + l]`.
    b: *const f32,
    ldb: usize,
    /// `C[r, l]` of the block is `c[r * ldc + l]`.
    c: *mut f32,
    ldc: usize,
    /// The lanes of the block's last vector that are inside `C`.
    mask: __mmask16,
    /// Add to `C` rather than overwrite it.
    add: bool,
    /// The block's columns of a row added to every row of `C`.
    bias: Option<*const f32>,
}

impl Block {
    /// Runs the block with `rows` rows (1 to [`MR`]; 1 to [`MR4`] for 4 vectors) and `width`
    /// vectors (1 to 4).
    ///
    /// # Safety
    ///
    /// AVX-512F, and the block must lie inside its operands.
    #[target_feature(enable = "avx512f")]
    unsafe fn dispatch(&self, rows: usize, width: usize, a_rows: bool) {
        macro_rules! go {
            ($($r:literal)*) => {
                match (rows, width, a_rows) {
                    $(
                        ($r, 1, true) => self.run::<$r, 1, true>(),
                        ($r, 2, true) => self.run::<$r, 2, true>(),
                        ($r, 3, true) => self.run::<$r, 3, true>(),
                        ($r, 1, false) => self.run::<$r, 1, false>(),
                        ($r, 2, false) => self.run::<$r, 2, false>(),
                        ($r, 3, false) => self.run::<$r, 3, false>(),
                    )*
                    _ => unreachable!("blocks have 1 to {MR} rows and 1 to 3 vectors"),
                }
            };
        }
        macro_rules! go4 {
            ($($r:literal)*) => {
                match (rows, a_rows) {
                    $(
                        ($r, true) => self.run::<$r, 4, true>(),
                        ($r, false) => self.run::<$r, 4, false>(),
                    )*
                    _ => unreachable!("blocks of 4 vectors have 1 to {MR4} rows"),
                }
            };
        }
        // SAFETY: `run` asks what `dispatch` does, the target features and a block inside its
        // operands, for the block's sizes, which each arm passes as they are.
        unsafe { if width == 4 { go4!(1 2 3 4 5 6) } else { go!(1 2 3 4 5 6 7 8) } }
    }

    /// The `R × V` block: `R·V` accumulators in registers, one multiply-add each per `k` step.
    ///
    /// # Safety
    ///
    /// As [`Block::dispatch`].
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn run<const R: usize, const V: usize, const A_ROWS: bool>(&self) {
        let Block { k, a, lda, b, ldb, c, ldc, mask, add, bias } = *self;
        let full = lanes(LANES);
        let mask_of = |v: usize| if v == V - 1 { mask } else { full };
        // SAFETY: (all pointer reads and writes) inside the operands, by the caller's contract.
        unsafe {
            let mut sum = [[_mm512_setzero_ps(); V]; R];
            if add {
                for (r, row) in sum.iter_mut().enumerate() {
                    for (v, s) in row.iter_mut().enumerate() {
                        *s = _mm512_maskz_loadu_ps(mask_of(v), c.add(r * ldc + v * LANES));
                    }
                }
            } else if let Some(bias) = bias {
                let start: [__m512; V] =
                    std::array::from_fn(|v| _mm512_maskz_loadu_ps(mask_of(v), bias.add(v * LANES)));
                sum = [start; R];
            }
            for p in 0..k {
                let brow = b.add(p * ldb);
                let bv: [__m512; V] =
                    std::array::from_fn(|v| _mm512_maskz_loadu_ps(mask_of(v), brow.add(v * LANES)));
                for (r, row) in sum.iter_mut().enumerate() {
                    let x = if A_ROWS { *a.add(r * lda + p) } else { *a.add(p * lda + r) };
                    let av = _mm512_set1_ps(x);
                    for (s, &bv) in row.iter_mut().zip(&bv) {
                        *s = _mm512_fmadd_ps(av, bv, *s);
                    }
                }
            }
            for (r, row) in sum.iter().enumerate() {
                for (v, &s) in row.iter().enumerate() {
                    let dst = c.add(r * ldc + v * LANES);
                    if v == V - 1 && mask != full {
                        _mm512_mask_storeu_ps(dst, mask, s);
                    } else {
                        _mm512_storeu_ps(dst, s);
                    }
                }
            }
        }
    }
}

/// Packs a transposed `B` (`B[p, j]` is `b.data[p + j * b.cs]`, i.e. the rows of a stored
/// `[n, k]` matrix are `B`'s columns) into `out` as `k` rows of `width` (a multiple of 16) lanes,
/// sixteen columns by sixteen rows at a time. The lanes past `n` hold copies of other values,
/// which the kernel never reads: it masks them off.
///
/// # Safety
///
/// AVX-512F; `b` holds `[n, k]`, and `out` is `k × width` with `width ≥ n` rounded up to 16.
#[target_feature(enable = "avx512f")]
unsafe fn pack_transposed(b: Strided<'_, f32>, (k, n): (usize, usize), out: &mut [f32]) {
    let width = out.len() / k;
    debug_assert!(width >= n && width.is_multiple_of(LANES) && b.data.len() >= (n - 1) * b.cs + k);
    let (src, dst) = (b.data.as_ptr(), out.as_mut_ptr());
    for j0 in (0..n).step_by(LANES) {
        let jn = (n - j0).min(LANES);
        // Rows past `n` repeat the last row: they land in lanes past `n`, which the kernel
        // masks off when it loads the last vector.
        let rows: [*const f32; LANES] =
            std::array::from_fn(|r| src.wrapping_add((j0 + r.min(jn - 1)) * b.cs));
        for p0 in (0..k).step_by(LANES) {
            let pn = (k - p0).min(LANES);
            let mask = lanes(pn);
            let tile: [__m512; LANES] = std::array::from_fn(|r| {
                // SAFETY: AVX-512F; `rows[r]` is a row of `b`, and the mask reads only its
                // elements `p0..k`.
                unsafe { _mm512_maskz_loadu_ps(mask, rows[r].add(p0)) }
            });
            for (q, col) in transpose(tile).into_iter().take(pn).enumerate() {
                // SAFETY: AVX-512F; row `p0 + q < k` of `out` holds `width ≥ j0 + 16` floats.
                unsafe { _mm512_storeu_ps(dst.add((p0 + q) * width + j0), col) };
            }
        }
    }
}

/// The transpose of a 16×16 tile held as 16 row vectors: four rounds of 16 shuffles
/// (32-bit interleave, 64-bit interleave, then two rounds of 128-bit lane moves).
#[target_feature(enable = "avx512f")]
pub(super) fn transpose(r: [__m512; LANES]) -> [__m512; LANES] {
    // After the two interleaves, `u[4g + c]` holds, in each 128-bit lane `L`, rows `4g..4g + 4`
    // of column `4L + c`.
    let mut u = [_mm512_setzero_ps(); LANES];
    for g in 0..4 {
        let r = &r[4 * g..4 * g + 4];
        let t = [
            _mm512_castps_pd(_mm512_unpacklo_ps(r[0], r[1])),
            _mm512_castps_pd(_mm512_unpackhi_ps(r[0], r[1])),
            _mm512_castps_pd(_mm512_unpacklo_ps(r[2], r[3])),
            _mm512_castps_pd(_mm512_unpackhi_ps(r[2], r[3])),
        ];
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t[0], t[2]));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t[0], t[2]));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t[1], t[3]));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t[1], t[3]));
    }
    // Gather lane `L` of `u[c]`, `u[4 + c]`, `u[8 + c]` and `u[12 + c]` into column `4L + c`.
    let mut out = [_mm512_setzero_ps(); LANES];
    for c in 0..4 {
        let x_even = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
        let x_odd = _mm512_shuffle_f32x4::<0xdd>(u[c], u[4 + c]);
        let y_even = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
        let y_odd = _mm512_shuffle_f32x4::<0xdd>(u[8 + c], u[12 + c]);
        out[c] = _mm512_shuffle_f32x4::<0x88>(x_even, y_even);
        out[4 + c] = _mm512_shuffle_f32x4::<0x88>(x_odd, y_odd);
        out[8 + c] = _mm512_shuffle_f32x4::<0xdd>(x_even, y_even);
        out[12 + c] = _mm512_shuffle_f32x4::<0xdd>(x_odd, y_odd);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::arch::x86_64::_mm512_loadu_ps;

    #[test]
    fn transpose_of_a_tile() {
        if !available() {
            eprintln!("transpose_of_a_tile: skipped avx512 (this CPU has no AVX-512F)");
            return;
        }
        eprintln!("transpose_of_a_tile: ran avx512");
        let m: Vec<f32> = (0..256).map(|i| i as f32).collect();
        // SAFETY: AVX-512F is available (checked above).
        let t = unsafe {
            let rows: [__m512; LANES] = std::array::from_fn(|r| _mm512_loadu_ps(m[r * LANES..].as_ptr()));
            transpose(rows)
        };
        let mut out = vec![0.0f32; 256];
        for (q, col) in t.iter().enumerate() {
            // SAFETY: AVX-512F; 16 floats.
            unsafe { _mm512_storeu_ps(out[q * LANES..].as_mut_ptr(), *col) };
        }
        for r in 0..LANES {
            for q in 0..LANES {
                assert_eq!(out[q * LANES + r], m[r * LANES + q], "element ({r}, {q})");
            }
        }
    }
}
