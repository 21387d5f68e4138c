//! Matrix multiply for makemore's skinny shapes (`[32, 30] @ [30, 200]`, `[32, 200] @ [200, 27]`
//! and their backward forms), written for small sizes: register-blocked, no packing, and no
//! allocation (general-purpose GEMMs allocate packing buffers on every call).
//!
//! One kernel, [`gemm`], computes `C (+)= A · B` with `C` row-major and `A`, `B` each row-major or
//! transposed, so the forward product, the weight gradient `Aᵀ · G` and the input gradient
//! `G · Wᵀ` all run without a transpose copy.
//!
//! `C` is computed in blocks of `MR` rows by `NR` columns held in registers (8 vector
//! accumulators), looping over `k` with one broadcast of `A` and one row of `B` per step. The
//! `NR` columns of `B` are first packed into a contiguous, zero-padded panel (reused scratch),
//! so a block at the right edge (`n = 27` is one block of 32 lanes) needs no scalar tail, and a
//! transposed `B` is read in the same way.

use multiversion::multiversion;

use super::Acc;
use crate::Float;

/// Rows of `C` computed together: 6 rows by 2 vector registers is 12 accumulators, enough to
/// hide the FMA latency on two ports, and with the row of `B` and a broadcast of `A` it still
/// fits AVX2's 16 registers.
const MR: usize = 6;
/// A matrix operand read element by element: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Strided<'a, T> {
    pub(crate) data: &'a [T],
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl<'a, T: Copy> Strided<'a, T> {
    /// A row-major matrix with `cols` columns.
    pub(crate) fn rows(data: &'a [T], cols: usize) -> Self {
        Strided { data, rs: cols, cs: 1 }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub(crate) fn transposed(data: &'a [T], cols: usize) -> Self {
        Strided { data, rs: 1, cs: cols }
    }

    /// Copies columns `j0..j0 + nr` of this `[k, _]` operand into `pack` as `k` rows of `NR`
    /// lanes, zero-padded past `nr`.
    fn pack_panel<'p, const NR: usize>(
        &self,
        j0: usize,
        nr: usize,
        k: usize,
        pack: &'p mut Vec<T>,
    ) -> &'p [[T; NR]]
    where
        T: Float,
    {
        // The scratch only grows: a call with a smaller `k` uses a prefix (no clearing, no fill).
        if pack.len() < k * NR {
            pack.resize(k * NR, T::zero());
        }
        let panel = &mut pack.as_chunks_mut::<NR>().0[..k];
        if nr < NR {
            panel.iter_mut().for_each(|row| row[nr..].fill(T::zero()));
        }
        if self.cs == 1 {
            for (p, dst) in panel.iter_mut().enumerate() {
                let src = &self.data[p * self.rs + j0..];
                if nr == NR {
                    *dst = src[..NR].try_into().expect("NR elements");
                } else {
                    dst[..nr].copy_from_slice(&src[..nr]);
                }
            }
        } else {
            // Transposed: column `j0 + l` of the operand is a contiguous row of the stored
            // matrix. Read it 16 elements at a time (one vector load) and store them down column
            // `l` of the panel.
            const CHUNK: usize = 16;
            for l in 0..nr {
                let src = &self.data[(j0 + l) * self.cs..][..k];
                let (chunks, rest) = src.as_chunks::<CHUNK>();
                for (dst, chunk) in panel.chunks_exact_mut(CHUNK).zip(chunks) {
                    for q in 0..CHUNK {
                        dst[q][l] = chunk[q];
                    }
                }
                for (dst, &v) in panel[k - rest.len()..].iter_mut().zip(rest) {
                    dst[l] = v;
                }
            }
        }
        panel
    }

    /// Column `p` of rows `i0..i0 + R` of a row-major operand (`cs == 1`): the rows are cut to
    /// length `k` up front, so indexing them by `p < k` needs no bounds checks.
    #[inline(always)]
    fn row_major<const R: usize>(&self, i0: usize, k: usize) -> impl Fn(usize) -> [T; R] + 'a {
        let rows: [&'a [T]; R] = std::array::from_fn(|r| &self.data[(i0 + r) * self.rs..][..k]);
        move |p| std::array::from_fn(|r| rows[r][p])
    }

    /// Column `p` of rows `i0..i0 + R` of a transposed operand (`rs == 1`): `R` adjacent elements.
    #[inline(always)]
    fn column_major<const R: usize>(&self, i0: usize) -> impl Fn(usize) -> [T; R] + 'a {
        let (data, cs) = (self.data, self.cs);
        move |p| data[p * cs + i0..][..R].try_into().expect("R elements")
    }
}

/// `x * y + z`, fused where the selected instruction set has FMA.
#[inline(always)]
fn madd<T: Float>(x: T, y: T, z: T, fma: bool) -> T {
    if fma { x.mul_add(y, z) } else { x * y + z }
}

/// `C[m×n] (+)= A[m×k] · B[k×n]`, `C` row-major contiguous, `A` and `B` row-major or transposed.
/// `pack` is scratch space for one column panel of `B` (reused: no allocation once grown).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn gemm<T: Float>(
    (m, k, n): (usize, usize, usize),
    a: Strided<'_, T>,
    b: Strided<'_, T>,
    c: &mut [T],
    acc: Acc,
    pack: &mut Vec<T>,
) {
    const FMA: bool = multiversion::target::selected_target!().supports_feature_str("fma");
    const WIDE: bool = multiversion::target::selected_target!().supports_feature_str("avx512f");
    /// Columns of `C` per block: two vector registers of `f32`.
    const NR: usize = if WIDE { 32 } else { 16 };
    let c = &mut c[..m * n];
    for j0 in (0..n).step_by(NR) {
        let nr = NR.min(n - j0);
        let panel = b.pack_panel::<NR>(j0, nr, k, pack);
        for i0 in (0..m).step_by(MR) {
            let at = (i0, j0, nr);
            // A full block of MR rows, or the last rows of `C` in one block of their exact count.
            macro_rules! rows {
                ($r:literal) => {
                    if a.cs == 1 {
                        write_block(&block::<T, $r, NR>(a.row_major(i0, k), panel, FMA), c, at, n, acc)
                    } else {
                        write_block(&block::<T, $r, NR>(a.column_major(i0), panel, FMA), c, at, n, acc)
                    }
                };
            }
            match (m - i0).min(MR) {
                1 => rows!(1),
                2 => rows!(2),
                3 => rows!(3),
                4 => rows!(4),
                5 => rows!(5),
                _ => rows!(6),
            }
        }
    }
}

/// An `R × NR` block of `A · B` from a packed panel of `B`, kept in registers: `R` and `NR` are
/// constants, so every loop over them unrolls. `a(p)` gives the `R` elements of column `p` of
/// the block's rows of `A`.
#[inline(always)]
fn block<T: Float, const R: usize, const NR: usize>(
    a: impl Fn(usize) -> [T; R],
    panel: &[[T; NR]],
    fma: bool,
) -> [[T; NR]; R] {
    let mut sum = [[T::zero(); NR]; R];
    for (p, brow) in panel.iter().enumerate() {
        let av = a(p);
        for r in 0..R {
            for l in 0..NR {
                sum[r][l] = madd(av[r], brow[l], sum[r][l], fma);
            }
        }
    }
    sum
}

/// Writes (or adds) the first `nr` columns of a block into `C`; a full block (`nr == NR`) with
/// fixed-size vector stores rather than a `memcpy` call per row.
#[inline(always)]
fn write_block<T: Float, const R: usize, const NR: usize>(
    sum: &[[T; NR]; R],
    c: &mut [T],
    (i0, j0, nr): (usize, usize, usize),
    n: usize,
    acc: Acc,
) {
    for (r, sum) in sum.iter().enumerate() {
        let start = (i0 + r) * n + j0;
        if let Some(crow) = c.get_mut(start..start + NR).filter(|_| nr == NR) {
            let crow: &mut [T; NR] = crow.try_into().expect("NR elements");
            for l in 0..NR {
                crow[l] = if acc == Acc::Add { crow[l] + sum[l] } else { sum[l] };
            }
        } else {
            for (c, &s) in c[start..start + nr].iter_mut().zip(sum) {
                *c = if acc == Acc::Add { *c + s } else { s };
            }
        }
    }
}
