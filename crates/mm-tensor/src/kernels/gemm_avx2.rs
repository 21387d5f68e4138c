//! The `f32` matrix multiply written with AVX2 + FMA intrinsics: the path [`super::matmul::gemm`]
//! takes on a CPU with AVX2 and FMA but no AVX-512 (AMD Zen, Intel client cores).
//!
//! The same design as [`super::gemm_avx512`], fitted to 16 registers of 8 lanes:
//! - blocks of 6 rows × 2 vectors (12 accumulators, the 2 vectors of a row of `B` and a broadcast
//!   of `A`: 15 of the 16 registers), and 8 rows × 1 vector for an odd last vector, with the rows
//!   of `C` shared evenly between the blocks of a column strip, so that `m = 32` in blocks of up to
//!   6 rows is 6, 6, 5, 5, 5, 5 and not 6 × 5 + 2 (a 2-row block is bound by the FMA latency);
//! - a row-major `B` is read in place, neither copied nor padded: the last, partial vector of a
//!   row is read whole, its lanes past `n` from the next row (their products are never stored),
//!   and under a mask (`vmaskmovps`) only where a whole vector would end past `B`. Only where its
//!   column strips would not stay in L1 (rows a large power of two apart, see `rows_per_set`)
//!   and there are enough rows of `A` to pay for the copy is it packed, strip by strip;
//! - a transposed `B` (the `G · Wᵀ` products) is packed once per call with 8×8 in-register
//!   transposes, strip by strip where the strips would not stay in L1 (and as rows otherwise);
//! - `C`'s columns are covered by vectors of 8 lanes, the last one loaded under a mask and stored
//!   by plain stores of 4, 2 and 1 lanes, so the awkward widths (27, 30) need no scalar loop.
//!   `vmaskmovps` is slow on AMD's cores: on Zen 4, with it in the inner loop and for the stores,
//!   `hᵀ · dlogits` (200 × 32 × 27) took 4.5-4.6 µs, more than the same product with `n = 32`
//!   (3.8 µs); without, 3.9 µs (`examples/gemm_shapes avx2`).
//!
//! `f64` does not come here: it runs the portable kernel (its only use is gradient checking).

use std::arch::x86_64::{
    __m256, __m256i, _mm_castps_pd, _mm_movehl_ps, _mm_store_sd, _mm_store_ss, _mm_storeu_ps,
    _mm256_castps256_ps128, _mm256_extractf128_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_loadu_si256,
    _mm256_maskload_ps, _mm256_permute2f128_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_shuffle_ps,
    _mm256_storeu_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
};

use super::ahead;
use super::matmul::{Start, Strided};

/// Lanes of an `f32` vector.
const LANES: usize = 8;

/// Whether this CPU can run [`gemm`] (the answer is cached by the standard library).
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// Sixteen `-1`s then sixteen `0`s: the mask of the first `n` of `w` lanes (`w` ≤ 16) is the `w`
/// entries from `16 - n` (also for the rows of 16 of `attention_avx2`).
pub(super) static MASKS: [i32; 4 * LANES] = {
    let mut m = [0; 4 * LANES];
    let mut i = 0;
    while i < 2 * LANES {
        m[i] = -1;
        i += 1;
    }
    m
};

/// The mask of the first `n` lanes (`1 ≤ n ≤ 8`), for `vmaskmovps`.
#[target_feature(enable = "avx2,fma")]
fn lanes(n: usize) -> __m256i {
    assert!((1..=LANES).contains(&n), "a mask of 1 to 8 lanes");
    let from = &MASKS[2 * LANES - n..][..LANES];
    // SAFETY: AVX is enabled; `from` holds 8 `i32`s (32 bytes), and the load is unaligned.
    unsafe { _mm256_loadu_si256(from.as_ptr().cast()) }
}

/// Rows of `C` per block for a block `width` vectors wide (1 or 2): the accumulators, the `width`
/// vectors of a row of `B` and a broadcast of `A` fit the 16 `ymm` registers.
const fn rows_per_block(width: usize) -> usize {
    if width == 1 { 8 } else { 6 }
}

/// `C[m×n] = start + A[m×k] · B[k×n]`: [`super::matmul::gemm`] for `f32` on AVX2 + FMA.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA ([`available`]).
#[target_feature(enable = "avx2,fma")]
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
    assert!(a.cs == 1 || a.rs == 1, "A is row-major or transposed");
    let nv = n.div_ceil(LANES);
    // A transposed `B` is packed, a row-major one read in place; either strip by strip where
    // `packs_strips` says so.
    let strips = packs_strips((m, k, nv), b);
    let packed = b.cs != 1 || strips;
    if packed {
        let len = k * nv * LANES;
        if pack.len() < len {
            pack.resize(len, 0.0);
        }
        // SAFETY: AVX2 and FMA are enabled (this function's contract); `b` holds `[k, n]`, or
        // `[n, k]` when transposed (checked above, with `b.rs == 1` then by the caller's
        // unit-stride assertion), and `pack` holds `nv` vectors of lanes for each of the `k` rows.
        unsafe {
            if b.cs == 1 {
                pack_rows(b, (k, n), &mut pack[..len]);
            } else {
                pack_transposed(b, (k, n), &mut pack[..len], strips);
            }
        }
    }
    let tail = n - (nv - 1) * LANES;
    let mask = lanes(tail);
    // The rows `p` of `B` (in place) whose last vector, read whole (`nv` vectors from the row's
    // start), ends inside `B`'s data: `p · ldb + nv · 8 ≤ len`. A packed `B` is padded to whole
    // vectors. (A row stride of 0, every row the same, reads the one row: all `k` if it holds
    // the vectors.)
    let whole = if packed {
        k
    } else {
        let room = b.data.len().checked_sub(nv * LANES);
        room.map_or(0, |room| room.checked_div(b.rs).map_or(k, |q| q + 1))
    };
    debug_assert!(packed || whole == 0 || (whole - 1) * b.rs + nv * LANES <= b.data.len());
    // Large operands are fetched ahead (see `ahead`): `C`'s rows a block before the block writes
    // them, and an unpacked `B`'s next strip (all `k` rows by up to 2 vectors), a share of its
    // rows at each block of this one. (A packed `B` was just written, and is in cache.)
    let (ahead_b, ahead_c) = (!packed && ahead::worth(k * n), ahead::worth(m * n));
    // The strip of `B` that starts at vector `v0`: where its first row starts, and its row stride.
    let strip = |v0: usize| {
        if strips {
            // SAFETY: (of the offset) inside `pack`, `strip_at`'s layout.
            (pack.as_ptr().wrapping_add(strip_at(k, nv, 0, v0 * LANES)), (nv - v0).min(2) * LANES)
        } else if packed {
            (pack.as_ptr().wrapping_add(v0 * LANES), nv * LANES)
        } else {
            (b.data.as_ptr().wrapping_add(v0 * LANES), b.rs)
        }
    };
    let mut v0 = 0;
    // Column strips of 2 vectors, and one of 1 for an odd count. (Strips of 3 vectors in blocks of
    // 4 rows fill all 16 registers, and LLVM then spilled an accumulator to the stack in the inner
    // loop.)
    while v0 < nv {
        let width = (nv - v0).min(2);
        let masked = v0 + width == nv && tail != LANES;
        // The rows shared evenly among the fewest blocks of at most `rows_per_block` rows.
        let blocks = m.div_ceil(rows_per_block(width));
        let next = (ahead_b && v0 + width < nv).then(|| (v0 + width, (nv - v0 - width).min(2)));
        let (bs, ldb) = strip(v0);
        let mut i0 = 0;
        for blk in 0..blocks {
            let rows = m / blocks + usize::from(blk < m % blocks);
            if let Some((v1, w1)) = next {
                // This block's share of the strip's rows.
                let (p0, share) = (blk * k / blocks, (blk + 1) * k / blocks - blk * k / blocks);
                // (Only an unpacked `B` is fetched ahead: rows `ldb` apart, as this strip's.)
                let row = strip(v1).0.wrapping_add(p0 * ldb);
                ahead::rows_to_l2(row, ldb, share, (w1 * LANES).min(n - v1 * LANES));
            }
            if ahead_c {
                // The next block's rows (its row count may differ by one: the same lines or one more).
                let at = c.as_ptr().wrapping_add((i0 + rows) * n + v0 * LANES);
                let next_rows = m.saturating_sub(i0 + rows).min(rows);
                ahead::rows_to_write(at, n, next_rows, (width * LANES).min(n - v0 * LANES));
            }
            let at = Block {
                k,
                a: if a.cs == 1 { a.data[i0 * a.rs..].as_ptr() } else { a.data[i0..].as_ptr() },
                lda: if a.cs == 1 { a.rs } else { a.cs },
                // SAFETY: (of the offset) `v0 < nv`, so the column is inside `C` (and `bs` inside
                // `B` or its pack).
                b: bs,
                ldb,
                c: c[i0 * n + v0 * LANES..].as_mut_ptr(),
                ldc: n,
                mask,
                tail,
                whole,
                add: matches!(start, Start::C),
                bias: bias.map(|bias| bias.wrapping_add(v0 * LANES)),
            };
            // SAFETY: AVX2 and FMA are enabled; the block's rows, columns and `k` are inside the
            // operands (checked above); when `masked`, the last vector is read whole only in the
            // first `whole` rows of `B`, where it ends inside `B` or its pack (counted above), and
            // is otherwise loaded and stored at `n`.
            unsafe { at.dispatch(rows, width, a.cs == 1, masked) };
            i0 += rows;
        }
        debug_assert_eq!(i0, m);
        v0 += width;
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
    /// The lanes of `C`'s last, partial vector (used only by a masked block), as a mask and as a
    /// count.
    mask: __m256i,
    tail: usize,
    /// How many of `B`'s first rows the block may read as whole vectors, past `n` (into the next
    /// row, or the padding of a packed `B`) without leaving `B`: the later ones are read under
    /// the mask.
    whole: usize,
    /// Add to `C` rather than overwrite it.
    add: bool,
    /// The block's columns of a row added to every row of `C`.
    bias: Option<*const f32>,
}

impl Block {
    /// Runs the block with `rows` rows (1 to [`rows_per_block`]`(width)`) and `width` vectors
    /// (1 or 2), the last one under the mask when `masked`.
    ///
    /// # Safety
    ///
    /// AVX2 and FMA, and the block must lie inside its operands, but for its last vector's
    /// reads of `B`: in `B`'s first `whole` rows they may pass column `n` and must end inside
    /// `B`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dispatch(&self, rows: usize, width: usize, a_rows: bool, masked: bool) {
        macro_rules! go {
            ($(($w:literal: $($r:literal)*))*) => {
                match (rows, width, a_rows, masked) {
                    $($(
                        ($r, $w, true, false) => self.run::<$r, $w, true, false>(),
                        ($r, $w, true, true) => self.run::<$r, $w, true, true>(),
                        ($r, $w, false, false) => self.run::<$r, $w, false, false>(),
                        ($r, $w, false, true) => self.run::<$r, $w, false, true>(),
                    )*)*
                    _ => unreachable!("blocks of 1 or 2 vectors have 8 or 6 rows at most"),
                }
            };
        }
        // SAFETY: `run` asks what `dispatch` does, the target features and a block inside its
        // operands, for the block's sizes, which each arm passes as they are.
        unsafe { go!((1: 1 2 3 4 5 6 7 8) (2: 1 2 3 4 5 6)) }
    }

    /// The `R × V` block: `R·V` accumulators in registers, one multiply-add each per `k` step.
    /// With `MASKED`, the last vector is partial: `C`'s and the bias's are read under the mask and
    /// `C`'s written by plain stores ([`store_first`]); `B`'s is read whole, its lanes past `n`
    /// from the next row of `B` (their products land in lanes that are never stored), and under
    /// the mask only in the rows past `whole` (the last), where a whole vector could end past
    /// `B`. `vmaskmovps` in the inner loop and to memory cost more than the multiply-adds they
    /// spared on Zen 4 (see the module).
    ///
    /// # Safety
    ///
    /// As [`Block::dispatch`].
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn run<const R: usize, const V: usize, const A_ROWS: bool, const MASKED: bool>(&self) {
        let Block { k, a, lda, b, ldb, c, ldc, mask, tail, whole, add, bias } = *self;
        let partial = |v: usize| MASKED && v == V - 1;
        // SAFETY: (all pointer reads and writes) inside the operands, by the caller's contract;
        // a partial vector touches only the lanes of its mask, except in `B`'s first `whole`
        // rows, whose whole vectors end inside `B` (the caller's count).
        unsafe {
            let load = |p: *const f32, v: usize| {
                if partial(v) { _mm256_maskload_ps(p, mask) } else { _mm256_loadu_ps(p) }
            };
            let mut sum = [[_mm256_setzero_ps(); V]; R];
            if add {
                for (r, row) in sum.iter_mut().enumerate() {
                    for (v, s) in row.iter_mut().enumerate() {
                        *s = load(c.add(r * ldc + v * LANES), v);
                    }
                }
            } else if let Some(bias) = bias {
                let start: [__m256; V] = std::array::from_fn(|v| load(bias.add(v * LANES), v));
                sum = [start; R];
            }
            let mut step = |p: usize, bv: [__m256; V]| {
                for (r, row) in sum.iter_mut().enumerate() {
                    let x = if A_ROWS { *a.add(r * lda + p) } else { *a.add(p * lda + r) };
                    let av = _mm256_set1_ps(x);
                    for (s, &bv) in row.iter_mut().zip(&bv) {
                        *s = _mm256_fmadd_ps(av, bv, *s);
                    }
                }
            };
            let whole = if MASKED { whole.min(k) } else { k };
            for p in 0..whole {
                let brow = b.add(p * ldb);
                step(p, std::array::from_fn(|v| _mm256_loadu_ps(brow.add(v * LANES))));
            }
            for p in whole..k {
                let brow = b.add(p * ldb);
                step(p, std::array::from_fn(|v| load(brow.add(v * LANES), v)));
            }
            for (r, row) in sum.iter().enumerate() {
                for (v, &s) in row.iter().enumerate() {
                    let dst = c.add(r * ldc + v * LANES);
                    if partial(v) {
                        store_first(dst, s, tail);
                    } else {
                        _mm256_storeu_ps(dst, s);
                    }
                }
            }
        }
    }
}

/// Writes the first `n` lanes of `x` (`1 ≤ n ≤ 8`) to `dst` by plain stores of 4, 2 and 1
/// lanes (in place of `vmaskmovps`, see [`Block::run`]).
///
/// # Safety
///
/// AVX; `dst` holds `n` floats.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn store_first(dst: *mut f32, x: __m256, n: usize) {
    debug_assert!((1..=LANES).contains(&n));
    // SAFETY: each store writes lanes below `n`.
    unsafe {
        let (mut part, mut at) = (_mm256_castps256_ps128(x), 0);
        if n >= 4 {
            _mm_storeu_ps(dst, part);
            (part, at) = (_mm256_extractf128_ps::<1>(x), 4);
        }
        if n - at == 4 {
            _mm_storeu_ps(dst.add(at), part);
            return;
        }
        if n - at >= 2 {
            _mm_store_sd(dst.add(at).cast(), _mm_castps_pd(part));
            (part, at) = (_mm_movehl_ps(part, part), at + 2);
        }
        if n > at {
            _mm_store_ss(dst.add(at), part);
        }
    }
}

/// How many of the `k` rows of a column strip of `B`, `ldb` floats apart, share each L1 set they
/// fall into: where that passes the set's ways, the strip does not stay in L1 while the row
/// blocks run over it, and [`gemm`] packs `B` strip by strip.
///
/// Why: L1's set (64 sets of 8 lines on Zen 4 and most x86 cores) is fixed by an address's place
/// in a 4 KB page. Rows whose stride is a multiple of a large power of two come back to the same
/// place every `period` rows, so a strip's one line per row falls into only `period` sets. The
/// Transformer's `B`s are such: `x` (`[512, 64]`, period 16, 32 rows a set) in the weight
/// gradients `Gᵀ x`, `W` (`[64, 256]`, period 4, 16 a set; `[192, 64]`, 12) in `G W`. Packed
/// strip by strip ([`strip_at`]), a strip's rows are contiguous. On Zen 4 (`examples/gemm_shapes
/// --transformer avx2`, this change's build against the one before, alternated) `c_fc Gᵀ x`
/// went from 178-186 to 164-167 µs and `mlp_proj G W` from 176-182 to 166-170; with the
/// transposed `B`s packed the same way, `c_fc x Wᵀ` 178-179 → 162-166 and `mlp_proj x Wᵀ`
/// 161-168 → 154-156. `c_proj G W` (4 a set: not packed) measured the same packed. Where the
/// copy is an extra pass (a row-major `B`) it pays only past the 8 ways: WaveNet's first layer
/// `x @ W` (128 × 48 × 128, 6 a set) lost 0.8 of 15 µs to it (toggled in one process); where
/// the pack is done anyway (a transposed `B`) strips pay past 4 (half the ways: `A` and `C` take
/// lines too), e.g. 14.7 against 15.3 µs for the same layer's `x @ Wᵀ`.
fn rows_per_set(k: usize, ldb: usize) -> usize {
    // 1,024 floats are 4 KB. (Rows closer than a strip's width share lines, and pack themselves.)
    let period = 1024 >> ldb.trailing_zeros().min(10);
    if ldb >= 2 * LANES { k.div_ceil(period) } else { 0 }
}

/// Whether [`gemm`] packs `B` strip by strip (see [`strip_at`]) for a product of `m` rows, `k`
/// and `nv` vectors of columns: where its strips would not stay in L1 ([`rows_per_set`]) and
/// there are enough blocks of rows to pay for the copy, about a read of each strip from L2 (on
/// Zen 4, this path forced: `Gᵀ x` with m = 64, 11 blocks, lost 4-10 µs to it, and the MLP's
/// `dpre @ W1ᵀ`, m = 32, 0.6 µs).
fn packs_strips((m, k, nv): (usize, usize, usize), b: Strided<'_, f32>) -> bool {
    m >= 128 && if b.cs == 1 { rows_per_set(k, b.rs) > 8 } else { rows_per_set(k, nv * LANES) > 4 }
}

/// Where `B[p, col]` is in a packed `B` of `k` rows and `nv` vectors of columns: strip by strip
/// as [`gemm`] runs them (2 vectors, and 1 for an odd last), each strip's `k` rows contiguous.
fn strip_at(k: usize, nv: usize, p: usize, col: usize) -> usize {
    let first = col / (2 * LANES) * (2 * LANES);
    let width = (nv * LANES - first).min(2 * LANES);
    first * k + p * width + (col - first)
}

/// Packs a row-major `B` (`[k, n]`, rows `b.rs` apart) into `out` strip by strip ([`strip_at`]).
/// The lanes past `n` are zeros.
///
/// # Safety
///
/// AVX2 and FMA; `b` holds `[k, n]`, and `out` is `k × nv` vectors of lanes (`nv` = `n / 8`
/// rounded up).
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_rows(b: Strided<'_, f32>, (k, n): (usize, usize), out: &mut [f32]) {
    let nv = n.div_ceil(LANES);
    debug_assert!(out.len() == k * nv * LANES && b.data.len() > (k - 1) * b.rs + n - 1);
    for v0 in (0..nv).step_by(2) {
        let width = (nv - v0).min(2) * LANES;
        let cols = width.min(n - v0 * LANES);
        let strip = &mut out[strip_at(k, nv, 0, v0 * LANES)..][..k * width];
        for (p, row) in strip.chunks_exact_mut(width).enumerate() {
            let src = &b.data[p * b.rs + v0 * LANES..][..cols];
            let (whole, rest) = row.split_at_mut(cols / LANES * LANES);
            for (to, from) in whole.chunks_exact_mut(LANES).zip(src.chunks_exact(LANES)) {
                // SAFETY: AVX; each is 8 floats.
                unsafe { _mm256_storeu_ps(to.as_mut_ptr(), _mm256_loadu_ps(from.as_ptr())) };
            }
            let (part, zeros) = rest.split_at_mut(cols % LANES);
            part.copy_from_slice(&src[whole.len()..]);
            zeros.fill(0.0);
        }
    }
}

/// Packs a transposed `B` (`B[p, j]` is `b.data[p + j * b.cs]`, i.e. the rows of a stored
/// `[n, k]` matrix are `B`'s columns) into `out`, strip by strip ([`strip_at`]) or as `k` rows of
/// `nv` vectors, eight columns by eight rows at a time. The lanes past `n` hold copies of other
/// values: the kernel reads them (a packed row is read in whole vectors) into lanes it never
/// stores.
///
/// # Safety
///
/// AVX2 and FMA; `b` holds `[n, k]`, and `out` is `k × nv` vectors of lanes (`nv` = `n / 8`
/// rounded up).
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_transposed(b: Strided<'_, f32>, (k, n): (usize, usize), out: &mut [f32], strips: bool) {
    let nv = n.div_ceil(LANES);
    debug_assert!(out.len() == k * nv * LANES && b.data.len() >= (n - 1) * b.cs + k);
    let (src, dst) = (b.data.as_ptr(), out.as_mut_ptr());
    for j0 in (0..n).step_by(LANES) {
        let jn = (n - j0).min(LANES);
        // Where row `p` of these 8 columns goes: `at + p · stride`.
        let (at, stride) = if strips {
            (strip_at(k, nv, 0, j0), strip_at(k, nv, 1, j0) - strip_at(k, nv, 0, j0))
        } else {
            (j0, nv * LANES)
        };
        // Rows past `n` repeat the last row: they land in lanes past `n`, whose products the
        // kernel never stores.
        let rows: [*const f32; LANES] =
            std::array::from_fn(|r| src.wrapping_add((j0 + r.min(jn - 1)) * b.cs));
        for p0 in (0..k).step_by(LANES) {
            let pn = (k - p0).min(LANES);
            let mask = lanes(pn);
            let tile: [__m256; LANES] = std::array::from_fn(|r| {
                // SAFETY: AVX2; `rows[r]` is a row of `b`, and the mask reads only its elements
                // `p0..k`.
                unsafe {
                    if pn == LANES {
                        _mm256_loadu_ps(rows[r].add(p0))
                    } else {
                        _mm256_maskload_ps(rows[r].add(p0), mask)
                    }
                }
            });
            for (q, col) in transpose(tile).into_iter().take(pn).enumerate() {
                // SAFETY: AVX; columns `j0..j0 + 8` of row `p0 + q < k` are 8 floats of a row (of
                // one strip), inside `out`.
                unsafe { _mm256_storeu_ps(dst.add(at + (p0 + q) * stride), col) };
            }
        }
    }
}

/// The transpose of an 8×8 tile held as 8 row vectors: three rounds of 8 shuffles (32-bit
/// interleave, 64-bit shuffle, then 128-bit lane moves).
#[target_feature(enable = "avx2,fma")]
pub(super) fn transpose(r: [__m256; LANES]) -> [__m256; LANES] {
    // `t[2g]`, `t[2g + 1]`: rows `2g` and `2g + 1` interleaved, low and high pairs.
    let t: [__m256; LANES] = std::array::from_fn(|i| {
        let (x, y) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 { _mm256_unpacklo_ps(x, y) } else { _mm256_unpackhi_ps(x, y) }
    });
    // `u[4h + c]` holds, in each 128-bit lane `L`, rows `4h..4h + 4` of column `4L + c`.
    let mut u = [_mm256_setzero_ps(); LANES];
    for h in 0..2 {
        let t = &t[4 * h..4 * h + 4];
        u[4 * h] = _mm256_shuffle_ps::<0x44>(t[0], t[2]);
        u[4 * h + 1] = _mm256_shuffle_ps::<0xee>(t[0], t[2]);
        u[4 * h + 2] = _mm256_shuffle_ps::<0x44>(t[1], t[3]);
        u[4 * h + 3] = _mm256_shuffle_ps::<0xee>(t[1], t[3]);
    }
    // Column `c` is the low lanes of `u[c]` and `u[4 + c]`; column `4 + c` their high lanes.
    let mut out = [_mm256_setzero_ps(); LANES];
    for c in 0..4 {
        out[c] = _mm256_permute2f128_ps::<0x20>(u[c], u[4 + c]);
        out[4 + c] = _mm256_permute2f128_ps::<0x31>(u[c], u[4 + c]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_of_a_tile() {
        if !available() {
            eprintln!("transpose_of_a_tile: skipped avx2 (this CPU lacks AVX2 or FMA)");
            return;
        }
        eprintln!("transpose_of_a_tile: ran avx2");
        let m: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let mut out = vec![0.0f32; 64];
        // SAFETY: AVX2 and FMA are available (checked above); each load and store is of 8 floats
        // inside `m` and `out`.
        unsafe {
            let rows: [__m256; LANES] = std::array::from_fn(|r| _mm256_loadu_ps(m[r * LANES..].as_ptr()));
            for (q, col) in transpose(rows).iter().enumerate() {
                _mm256_storeu_ps(out[q * LANES..].as_mut_ptr(), *col);
            }
        }
        for r in 0..LANES {
            for q in 0..LANES {
                assert_eq!(out[q * LANES + r], m[r * LANES + q], "element ({r}, {q})");
            }
        }
    }

    #[test]
    fn store_first_writes_the_first_lanes_only() {
        if !available() {
            eprintln!("store_first_writes_the_first_lanes_only: skipped avx2 (this CPU lacks AVX2 or FMA)");
            return;
        }
        for n in 1..=LANES {
            let mut out = [-1.0f32; 3 * LANES];
            // SAFETY: AVX2 and FMA are available; 8 floats in, `n ≤ 8` out inside `out`.
            unsafe {
                let x = _mm256_loadu_ps([10.0f32, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0].as_ptr());
                store_first(out[LANES..].as_mut_ptr(), x, n);
            }
            for (i, &v) in out.iter().enumerate() {
                let want = if (LANES..LANES + n).contains(&i) { (10 + i - LANES) as f32 } else { -1.0 };
                assert_eq!(v, want, "{n} lanes: element {i}");
            }
        }
    }

    /// A row stride of 0 (every row of `B` the same row) is a product like any other.
    #[test]
    fn a_b_of_one_repeated_row() {
        if !available() {
            eprintln!("a_b_of_one_repeated_row: skipped avx2 (this CPU lacks AVX2 or FMA)");
            return;
        }
        let (a, row): (Vec<f32>, Vec<f32>) = (vec![1.0; 6], (0..16).map(|i| i as f32).collect());
        let mut c = vec![0.0f32; 10];
        let (a, b) = (Strided::rows(&a, 3), Strided { data: &row, rs: 0, cs: 1 });
        // SAFETY: AVX2 and FMA are available; `A` is 2 × 3, `B` 3 × 5 (every row `row[..5]`).
        unsafe { gemm((2, 3, 5), a, b, &mut c, Start::Zero, &mut Vec::new()) };
        assert_eq!(c, [0.0, 3.0, 6.0, 9.0, 12.0, 0.0, 3.0, 6.0, 9.0, 12.0]);
    }

    /// Runs [`gemm`] on `C` (holding `old`) from start `start` (0: zero, 1: `C`, 2: `bias`) and
    /// checks every element against a chain of `mul_add`s in `p` order, to the bit.
    fn gemm_gives_a_chains_bits(
        (m, k, n): (usize, usize, usize),
        (a, b): (Strided<'_, f32>, Strided<'_, f32>),
        (c, old): (&mut [f32], &[f32]),
        (start, bias): (usize, &[f32]),
        pack: &mut Vec<f32>,
        case: &str,
    ) {
        let (start, first): (Start<'_, f32>, &dyn Fn(usize, usize) -> f32) = match start {
            0 => (Start::Zero, &|_, _| 0.0),
            1 => (Start::C, &|i, j| old[i * n + j]),
            _ => (Start::Bias(bias), &|_, j| bias[j]),
        };
        // SAFETY: the callers checked AVX2 and FMA; the operands hold `[m, k]`, `[k, n]` and
        // `[m, n]` (and the bias `n`).
        unsafe { gemm((m, k, n), a, b, c, start, pack) };
        for (i, j) in (0..m).flat_map(|i| (0..n).map(move |j| (i, j))) {
            let want = (0..k).fold(first(i, j), |s, p| {
                a.data[i * a.rs + p * a.cs].mul_add(b.data[p * b.rs + j * b.cs], s)
            });
            let got = c[i * n + j];
            assert_eq!(got.to_bits(), want.to_bits(), "{case}: C[{i}, {j}] = {got}, want {want}");
        }
    }

    /// A `B` that [`gemm`] packs strip by strip gives the bits of a `mul_add` chain in `p` order,
    /// as the other layouts do: row-major with rows 64 floats apart (in strips for 130 or more
    /// rows and `m` ≥ 128; in place for 65 rows, or `m` = 127), and transposed (in strips where
    /// [`packs_strips`] says so, e.g. `n` = 63 or 64, `n` = 27 and 130 rows, and `n` = 20 and 520
    /// rows for an odd last strip; rows of `nv` vectors otherwise); partial vectors, both layouts of
    /// `A`, every start. The columns past `n` of a row-major `B` (NaN) never reach `C`. Which
    /// layout each case takes is asserted, so that the rule cannot drift away from the test.
    #[test]
    fn packed_strips_give_a_chains_bits() {
        if !available() {
            eprintln!("packed_strips_give_a_chains_bits: skipped avx2 (this CPU lacks AVX2 or FMA)");
            return;
        }
        const LDB: usize = 64;
        assert!(
            (rows_per_set(128, LDB), rows_per_set(129, LDB)) == (8, 9)
                && rows_per_set(512, 200) == 4
                && rows_per_set(100_000, 8) == 0
        );
        let value = |i: usize| ((i * 7919 % 1009) as f32 - 504.0) / 256.0;
        let mut pack = Vec::new();
        let mut layouts = [0; 2];
        for k in [65, 130, 520] {
            let b_all: Vec<f32> = (0..k * LDB).map(|i| value(i + 5)).collect();
            for n in [1, 9, 20, 27, 63, 64] {
                if k == 520 && n != 20 {
                    continue;
                }
                let masked: Vec<f32> =
                    b_all.iter().enumerate().map(|(i, &v)| if i % LDB < n { v } else { f32::NAN }).collect();
                let b_rows = Strided { data: &masked[..(k - 1) * LDB + n], rs: LDB, cs: 1 };
                let b_cols = Strided::transposed(&b_all[..k * n], k);
                let bias: Vec<f32> = (0..n).map(|j| value(j + 3)).collect();
                for m in [127, 128, 133] {
                    let a_all: Vec<f32> = (0..m * k).map(value).collect();
                    let old: Vec<f32> = (0..m * n).map(|i| value(i + 11)).collect();
                    for (b, a_t, start) in [b_rows, b_cols]
                        .into_iter()
                        .flat_map(|b| [false, true].map(|a_t| (b, a_t)))
                        .flat_map(|(b, a_t)| [0, 1, 2].map(|s| (b, a_t, s)))
                    {
                        let a = if a_t { Strided::transposed(&a_all, m) } else { Strided::rows(&a_all, k) };
                        let strips = packs_strips((m, k, n.div_ceil(LANES)), b);
                        let want_strips = m >= 128
                            && if b.cs == 1 { k >= 130 } else { (n, k) == (27, 130) || n >= 63 || k == 520 };
                        assert_eq!(strips, want_strips, "{m}x{k}x{n}, B transposed {}", b.cs != 1);
                        layouts[usize::from(strips)] += 1;
                        let mut c = old.clone();
                        let case = format!("{m}x{k}x{n}, B rows {} apart, a_t {a_t}", b.rs.max(b.cs));
                        gemm_gives_a_chains_bits(
                            (m, k, n),
                            (a, b),
                            (&mut c, &old),
                            (start, &bias),
                            &mut pack,
                            &case,
                        );
                    }
                }
            }
        }
        assert!(layouts[0] > 0 && layouts[1] > 0, "both layouts ran: {layouts:?}");
    }

    /// Reads of a partial last vector past column `n` stay inside `B`: every operand ends where
    /// an unreadable page begins, so a read past its end faults. And the columns between `n` and
    /// the row stride (NaN here) never reach `C`, which is a chain of `mul_add`s in `p` order, to
    /// the bit.
    #[cfg(target_os = "linux")]
    #[test]
    fn partial_vectors_stay_inside_their_operands() {
        if !available() {
            eprintln!(
                "partial_vectors_stay_inside_their_operands: skipped avx2 (this CPU lacks AVX2 or FMA)"
            );
            return;
        }
        let value = |i: usize| ((i * 7919 % 1009) as f32 - 504.0) / 256.0;
        let mut pack = Vec::new();
        for n in [1, 3, 7, 8, 9, 15, 17, 27, 30] {
            for k in [1, 2, 5, 17] {
                for gap in [0, 1, 9] {
                    // Row-major `B` (`k` rows `n + gap` apart), and transposed (`n` rows of `k +
                    // gap`), each ending at a guard page.
                    let ldb = n + gap;
                    let b_rows =
                        Guarded::new(
                            (k - 1) * ldb + n,
                            |i| if i % ldb < n { value(i + 5) } else { f32::NAN },
                        );
                    let ldt = k + gap;
                    let b_cols =
                        Guarded::new(
                            (n - 1) * ldt + k,
                            |i| if i % ldt < k { value(i + 9) } else { f32::NAN },
                        );
                    let bias = Guarded::new(n, |j| value(j + 3));
                    for m in [1, 6, 7, 13] {
                        let a_all: Vec<f32> = (0..m * k).map(value).collect();
                        let old: Vec<f32> = (0..m * n).map(|i| value(i + 11)).collect();
                        for (b, a_t, start) in [(&b_rows, ldb, 1), (&b_cols, 1, ldt)]
                            .iter()
                            .flat_map(|&(g, rs, cs)| {
                                [false, true].map(|a_t| (Strided { data: g.get(), rs, cs }, a_t))
                            })
                            .flat_map(|(b, a_t)| [0, 1, 2].map(|s| (b, a_t, s)))
                        {
                            let a =
                                if a_t { Strided::transposed(&a_all, m) } else { Strided::rows(&a_all, k) };
                            let mut c = Guarded::new(m * n, |i| old[i]);
                            let case = format!("{m}x{k}x{n}, B rows {} apart, a_t {a_t}", b.rs.max(b.cs));
                            let c = (c.get_mut(), &old[..]);
                            gemm_gives_a_chains_bits(
                                (m, k, n),
                                (a, b),
                                c,
                                (start, bias.get()),
                                &mut pack,
                                &case,
                            );
                        }
                    }
                }
            }
        }
    }

    /// `len` floats that end where a page without access begins (Linux's `mmap` and `mprotect`).
    #[cfg(target_os = "linux")]
    struct Guarded {
        map: *mut std::ffi::c_void,
        map_len: usize,
        data: *mut f32,
        len: usize,
    }

    #[cfg(target_os = "linux")]
    unsafe extern "C" {
        fn mmap(
            addr: *mut std::ffi::c_void,
            len: usize,
            prot: i32,
            flags: i32,
            fd: i32,
            off: i64,
        ) -> *mut std::ffi::c_void;
        fn mprotect(addr: *mut std::ffi::c_void, len: usize, prot: i32) -> i32;
        fn munmap(addr: *mut std::ffi::c_void, len: usize) -> i32;
    }

    #[cfg(target_os = "linux")]
    impl Guarded {
        const PAGE: usize = 4096;

        fn new(len: usize, fill: impl Fn(usize) -> f32) -> Self {
            let pages = (len * 4).div_ceil(Self::PAGE).max(1);
            let map_len = (pages + 1) * Self::PAGE;
            // SAFETY: an anonymous private mapping (PROT_READ | PROT_WRITE, MAP_PRIVATE |
            // MAP_ANONYMOUS), its last page then made unreadable (PROT_NONE); `data` is the last
            // `len` floats before that page, written here before any read.
            unsafe {
                let map = mmap(std::ptr::null_mut(), map_len, 3, 0x22, -1, 0);
                assert!(map as isize != -1, "mmap");
                assert_eq!(mprotect(map.cast::<u8>().add(pages * Self::PAGE).cast(), Self::PAGE, 0), 0);
                let data = map.cast::<u8>().add(pages * Self::PAGE - len * 4).cast::<f32>();
                (0..len).for_each(|i| data.add(i).write(fill(i)));
                Guarded { map, map_len, data, len }
            }
        }

        fn get(&self) -> &[f32] {
            // SAFETY: `len` initialised floats, borrowed with `self`.
            unsafe { std::slice::from_raw_parts(self.data, self.len) }
        }

        fn get_mut(&mut self) -> &mut [f32] {
            // SAFETY: as `get`, borrowed mutably with `self`.
            unsafe { std::slice::from_raw_parts_mut(self.data, self.len) }
        }
    }

    #[cfg(target_os = "linux")]
    impl Drop for Guarded {
        fn drop(&mut self) {
            // SAFETY: the mapping made in `new`, unmapped once.
            unsafe { munmap(self.map, self.map_len) };
        }
    }

    #[test]
    fn masks_cover_the_first_lanes() {
        if !available() {
            eprintln!("masks_cover_the_first_lanes: skipped avx2 (this CPU lacks AVX2 or FMA)");
            return;
        }
        eprintln!("masks_cover_the_first_lanes: ran avx2");
        let src: Vec<f32> = (1..=8).map(|i| i as f32).collect();
        for n in 1..=LANES {
            let mut out = [0.0f32; LANES];
            // SAFETY: AVX2 and FMA are available; 8 floats in and out.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), _mm256_maskload_ps(src.as_ptr(), lanes(n))) };
            let want: Vec<f32> = (0..LANES).map(|l| if l < n { src[l] } else { 0.0 }).collect();
            assert_eq!(out[..], want[..], "{n} lanes");
        }
    }
}
