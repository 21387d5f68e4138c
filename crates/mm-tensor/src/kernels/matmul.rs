//! Matrix multiply for makemore's skinny shapes (`[32, 30] @ [30, 200]`, `[32, 200] @ [200, 27]`
//! and their backward forms), written for small sizes: register-blocked, no packing, and no
//! allocation (general-purpose GEMMs allocate packing buffers on every call).
//!
//! Two forms cover the forward pass and both gradients, with `C` always row-major contiguous:
//! - [`gemm_nn`]: `C (+)= A · B` where B's rows are contiguous and `A` may be strided (so `Aᵀ · G`,
//!   the weight gradient, needs no transpose copy);
//! - [`gemm_nt`]: `C (+)= A · Bᵀ` with both `A` and `B` row-contiguous (the input gradient
//!   `G · Wᵀ`), as blocked dot products.

use multiversion::multiversion;

use super::Acc;
use crate::Float;

/// Rows of `C` computed together.
const MR: usize = 4;
/// Columns of `C` computed together (one AVX-512 register of `f32`).
const NR: usize = 16;

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

    #[inline(always)]
    fn at(&self, i: usize, j: usize) -> T {
        self.data[i * self.rs + j * self.cs]
    }
}

/// `x * y + z`, fused where the selected instruction set has FMA.
#[inline(always)]
fn madd<T: Float>(x: T, y: T, z: T, fma: bool) -> T {
    if fma { x.mul_add(y, z) } else { x * y + z }
}

/// `C[m×n] (+)= A[m×k] · B[k×n]`, `B` and `C` row-major contiguous.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn gemm_nn<T: Float>(
    (m, k, n): (usize, usize, usize),
    a: Strided<'_, T>,
    b: &[T],
    c: &mut [T],
    acc: Acc,
) {
    const FMA: bool = multiversion::target::selected_target!().supports_feature_str("fma");
    let c = &mut c[..m * n];
    let b = &b[..k * n];
    let mut i0 = 0;
    while i0 < m {
        let mr = MR.min(m - i0);
        let mut j0 = 0;
        while j0 < n {
            let nr = NR.min(n - j0);
            let mut sum = [[T::zero(); NR]; MR];
            if mr == MR && nr == NR {
                for p in 0..k {
                    let brow: &[T; NR] = b[p * n + j0..][..NR].try_into().expect("NR elements");
                    for (r, sum) in sum.iter_mut().enumerate() {
                        let av = a.at(i0 + r, p);
                        for (s, &bv) in sum.iter_mut().zip(brow) {
                            *s = madd(av, bv, *s, FMA);
                        }
                    }
                }
            } else {
                for p in 0..k {
                    let brow = &b[p * n + j0..][..nr];
                    for (r, sum) in sum.iter_mut().enumerate().take(mr) {
                        let av = a.at(i0 + r, p);
                        for (s, &bv) in sum.iter_mut().zip(brow) {
                            *s = madd(av, bv, *s, FMA);
                        }
                    }
                }
            }
            for (r, sum) in sum.iter().enumerate().take(mr) {
                let crow = &mut c[(i0 + r) * n + j0..][..nr];
                match acc {
                    Acc::Write => crow.copy_from_slice(&sum[..nr]),
                    Acc::Add => crow.iter_mut().zip(sum).for_each(|(c, &s)| *c += s),
                }
            }
            j0 += NR;
        }
        i0 += MR;
    }
}

/// Dot products computed together by [`gemm_nt`]: one row of `A` against this many rows of `B`.
const NB: usize = 4;
/// Lanes of each dot product's partial sums.
const LANES: usize = 16;

/// `C[m×n] (+)= A[m×k] · B[n×k]ᵀ`, all row-major contiguous.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn gemm_nt<T: Float>(
    (m, k, n): (usize, usize, usize),
    a: &[T],
    b: &[T],
    c: &mut [T],
    acc: Acc,
) {
    const FMA: bool = multiversion::target::selected_target!().supports_feature_str("fma");
    let c = &mut c[..m * n];
    let full = k / LANES * LANES;
    for i in 0..m {
        let arow = &a[i * k..][..k];
        let mut j0 = 0;
        while j0 < n {
            let nb = NB.min(n - j0);
            let mut lanes = [[T::zero(); LANES]; NB];
            let mut tail = [T::zero(); NB];
            for (q, (lanes, tail)) in lanes.iter_mut().zip(&mut tail).enumerate().take(nb) {
                let brow = &b[(j0 + q) * k..][..k];
                for (ac, bc) in arow[..full].chunks_exact(LANES).zip(brow[..full].chunks_exact(LANES)) {
                    for l in 0..LANES {
                        lanes[l] = madd(ac[l], bc[l], lanes[l], FMA);
                    }
                }
                for (&x, &y) in arow[full..].iter().zip(&brow[full..]) {
                    *tail = madd(x, y, *tail, FMA);
                }
            }
            let crow = &mut c[i * n + j0..][..nb];
            for (q, cv) in crow.iter_mut().enumerate() {
                let dot = lanes[q].iter().fold(tail[q], |s, &x| s + x);
                match acc {
                    Acc::Write => *cv = dot,
                    Acc::Add => *cv += dot,
                }
            }
            j0 += NB;
        }
    }
}
