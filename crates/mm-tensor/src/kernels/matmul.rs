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
/// What a product's block starts from before the multiply-adds.
#[derive(Clone, Copy)]
// `pub` (in a private module) so that the sealed `Float::gemm` may name it.
pub enum Start<'a, T> {
    /// Zero: `C = A · B` (the old contents of `C` may be anything).
    Zero,
    /// `C` itself: `C += A · B`.
    C,
    /// A row of `n` values added to every row: `C = bias + A · B` (`torch.addmm`).
    Bias(&'a [T]),
}

impl<T> From<Acc> for Start<'_, T> {
    fn from(acc: Acc) -> Self {
        match acc {
            Acc::Write => Start::Zero,
            Acc::Add => Start::C,
        }
    }
}

/// A matrix operand read element by element: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
// `pub` (in a private module) so that the sealed `Float::gemm` may name it.
pub struct Strided<'a, T> {
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

/// `C[m×n] = start + A[m×k] · B[k×n]`, `C` row-major contiguous, `A` and `B` row-major or
/// transposed. `pack` is scratch space for a packed copy of `B` (reused: no allocation once
/// grown).
///
/// Each precision picks its kernel ([`crate::Float`]'s `gemm`): `f32` runs the path of
/// [`gemm_path`] ([`gemm_f32`]); `f64` runs the portable kernel below.
pub(crate) fn gemm<T: Float>(
    dims: (usize, usize, usize),
    a: Strided<'_, T>,
    b: Strided<'_, T>,
    c: &mut [T],
    start: Start<'_, T>,
    pack: &mut Vec<T>,
) {
    #[cfg(feature = "kernel-timers")]
    let _timer = crate::timers::Timer::start((
        match (a.cs == 1, b.cs == 1) {
            (true, true) => "gemm A@B",
            (false, true) => "gemm Aᵀ@B",
            (true, false) => "gemm A@Bᵀ",
            (false, false) => "gemm Aᵀ@Bᵀ",
        },
        [dims.0, dims.1, dims.2],
    ));
    T::gemm(dims, a, b, c, start, pack);
}

/// The kernels the `f32` matrix multiply can run. One is chosen per process, the first time a
/// product runs ([`gemm_path`]): the fastest this CPU supports, or the one named by the
/// environment variable `MM_GEMM` (`avx512`, `avx2`, `portable`, `portable-avx2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GemmPath {
    /// Intrinsics for AVX-512F: blocks of up to 8 rows × 3 vectors of 16 lanes
    /// (`kernels/gemm_avx512.rs`).
    Avx512,
    /// Intrinsics for AVX2 + FMA: blocks of 4 × 3, 6 × 2 or 8 × 1 vectors of 8 lanes
    /// (`kernels/gemm_avx2.rs`).
    Avx2,
    /// The portable kernel (blocks of 6 rows × 2 vectors, from a zero-padded panel of `B`),
    /// compiled by `multiversion` for the best instruction set of this CPU among AVX-512,
    /// AVX2 + FMA and NEON, else the baseline. `f64` always runs it.
    Portable,
    /// The portable kernel as compiled for AVX2 + FMA, even on a CPU with AVX-512: what a CPU
    /// with AVX2 but no AVX-512 ran before the AVX2 kernel, for measuring that on any x86_64.
    PortableAvx2,
}

impl GemmPath {
    /// Every path, fastest first.
    pub const ALL: [GemmPath; 4] =
        [GemmPath::Avx512, GemmPath::Avx2, GemmPath::Portable, GemmPath::PortableAvx2];

    /// The path's name, as `MM_GEMM` takes it: `avx512`, `avx2`, `portable`, `portable-avx2`.
    pub fn name(self) -> &'static str {
        match self {
            GemmPath::Avx512 => "avx512",
            GemmPath::Avx2 => "avx2",
            GemmPath::Portable => "portable",
            GemmPath::PortableAvx2 => "portable-avx2",
        }
    }

    /// The path of a name ([`GemmPath::name`]).
    pub fn from_name(name: &str) -> Option<GemmPath> {
        GemmPath::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Why this CPU cannot run the path, or `None` if it can.
    pub fn unsupported(self) -> Option<&'static str> {
        match self {
            GemmPath::Portable => None,
            #[cfg(target_arch = "x86_64")]
            GemmPath::Avx512 => (!super::gemm_avx512::available()).then_some("this CPU has no AVX-512F"),
            #[cfg(target_arch = "x86_64")]
            GemmPath::Avx2 | GemmPath::PortableAvx2 => {
                (!super::gemm_avx2::available()).then_some("this CPU lacks AVX2 or FMA")
            }
            #[cfg(not(target_arch = "x86_64"))]
            GemmPath::Avx512 | GemmPath::Avx2 | GemmPath::PortableAvx2 => Some("not an x86_64 CPU"),
        }
    }

    /// The fastest path this CPU supports: AVX-512, else AVX2 + FMA, else portable.
    pub fn best() -> GemmPath {
        [GemmPath::Avx512, GemmPath::Avx2]
            .into_iter()
            .find(|p| p.unsupported().is_none())
            .unwrap_or(GemmPath::Portable)
    }

    fn code(self) -> u8 {
        match self {
            GemmPath::Avx512 => 1,
            GemmPath::Avx2 => 2,
            GemmPath::Portable => 3,
            GemmPath::PortableAvx2 => 4,
        }
    }
}

impl std::fmt::Display for GemmPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A gemm path that cannot be used: an unknown name, or a path this CPU does not support.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GemmPathError {
    /// A name that is not a path's ([`GemmPath::name`]).
    #[error("unknown gemm path {0:?} (the paths: avx512, avx2, portable, portable-avx2)")]
    Unknown(String),
    /// A path this CPU cannot run, and why.
    #[error("gemm path {path} cannot run here: {why}")]
    Unsupported {
        /// The path asked for.
        path: GemmPath,
        /// Why this CPU cannot run it.
        why: &'static str,
    },
}

/// The path in use, as [`GemmPath::code`]; 0 before the first choice.
static PATH: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// The first choice of the process: from `MM_GEMM` if it names a path this CPU runs, else the
/// fastest; and what was wrong with `MM_GEMM`, if anything.
static CHOSEN: std::sync::OnceLock<(GemmPath, Option<GemmPathError>)> = std::sync::OnceLock::new();

/// The first choice ([`CHOSEN`]), made on the first call.
fn chosen() -> &'static (GemmPath, Option<GemmPathError>) {
    CHOSEN.get_or_init(|| match std::env::var("MM_GEMM") {
        Err(_) => (GemmPath::best(), None),
        Ok(name) => match GemmPath::from_name(name.trim()) {
            None => (GemmPath::best(), Some(GemmPathError::Unknown(name))),
            Some(path) => match path.unsupported() {
                None => (path, None),
                Some(why) => (GemmPath::best(), Some(GemmPathError::Unsupported { path, why })),
            },
        },
    })
}

/// The path the `f32` matrix multiply runs: chosen once per process, on first use, from
/// `MM_GEMM` when it names a path this CPU supports, else the fastest (AVX-512, AVX2 + FMA,
/// portable); or the one set since by [`set_gemm_path`].
pub fn gemm_path() -> GemmPath {
    use std::sync::atomic::Ordering::Relaxed;
    match PATH.load(Relaxed) {
        1 => GemmPath::Avx512,
        2 => GemmPath::Avx2,
        3 => GemmPath::Portable,
        4 => GemmPath::PortableAvx2,
        _ => {
            let path = chosen().0;
            // A concurrent `set_gemm_path` wins: this only fills the unset value.
            let _ = PATH.compare_exchange(0, path.code(), Relaxed, Relaxed);
            path
        }
    }
}

/// What was wrong with `MM_GEMM`, if it is set to an unknown name or to a path this CPU cannot
/// run (then [`gemm_path`] is the fastest path instead). For a program to report, or refuse.
pub fn gemm_path_problem() -> Option<&'static GemmPathError> {
    chosen().1.as_ref()
}

/// Makes every later `f32` product of the process run on `path` (benches that compare paths in
/// one run). An error, and no change, if this CPU cannot run it.
///
/// # Errors
///
/// [`GemmPathError::Unsupported`] for a path this CPU does not support.
pub fn set_gemm_path(path: GemmPath) -> Result<(), GemmPathError> {
    if let Some(why) = path.unsupported() {
        return Err(GemmPathError::Unsupported { path, why });
    }
    chosen(); // the environment is read once, before any override
    PATH.store(path.code(), std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// [`gemm`] for `f32` on the path of [`gemm_path`].
pub(crate) fn gemm_f32(
    dims: (usize, usize, usize),
    a: Strided<'_, f32>,
    b: Strided<'_, f32>,
    c: &mut [f32],
    start: Start<'_, f32>,
    pack: &mut Vec<f32>,
) {
    let path = gemm_path();
    // `gemm_path` only returns paths this CPU supports.
    let done = gemm_f32_on(path, dims, a, b, c, start, pack);
    debug_assert!(done.is_ok(), "{done:?}");
}

/// [`gemm`] for `f32` on a given path (tests and benches run each path through it).
///
/// # Errors
///
/// [`GemmPathError::Unsupported`], and nothing computed, for a path this CPU cannot run.
pub(crate) fn gemm_f32_on(
    path: GemmPath,
    dims: (usize, usize, usize),
    a: Strided<'_, f32>,
    b: Strided<'_, f32>,
    c: &mut [f32],
    start: Start<'_, f32>,
    pack: &mut Vec<f32>,
) -> Result<(), GemmPathError> {
    // The intrinsics kernels read each operand along a unit stride (`Strided::rows` or
    // `Strided::transposed`, the only constructors): checked here, as their memory safety rests
    // on it.
    assert!((a.rs == 1 || a.cs == 1) && (b.rs == 1 || b.cs == 1), "gemm operands have a unit stride");
    if let Some(why) = path.unsupported() {
        return Err(GemmPathError::Unsupported { path, why });
    }
    match path {
        GemmPath::Portable => gemm_portable(dims, a, b, c, start, pack),
        GemmPath::PortableAvx2 => gemm_portable_with(dims, a, b, c, start, pack, portable_kernel_avx2),
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        // SAFETY: the CPU has AVX-512F (`unsupported` is `None`, checked just above), and each
        // operand has a unit stride (asserted above).
        GemmPath::Avx512 => unsafe { super::gemm_avx512::gemm(dims, a, b, c, start, pack) },
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        // SAFETY: the CPU has AVX2 and FMA (`unsupported` is `None`, checked just above), and
        // each operand has a unit stride (asserted above).
        GemmPath::Avx2 => unsafe { super::gemm_avx2::gemm(dims, a, b, c, start, pack) },
        #[cfg(not(target_arch = "x86_64"))]
        GemmPath::Avx512 | GemmPath::Avx2 => unreachable!("unsupported off x86_64 (checked above)"),
    }
    Ok(())
}

/// [`gemm`] on any CPU: the start is written into `C` (for a bias) and the portable kernel adds
/// the product.
pub(crate) fn gemm_portable<T: Float>(
    dims: (usize, usize, usize),
    a: Strided<'_, T>,
    b: Strided<'_, T>,
    c: &mut [T],
    start: Start<'_, T>,
    pack: &mut Vec<T>,
) {
    gemm_portable_with(dims, a, b, c, start, pack, portable_kernel);
}

/// A portable kernel's signature ([`portable_kernel`], [`portable_kernel_avx2`]).
type Kernel<T> = fn((usize, usize, usize), Strided<'_, T>, Strided<'_, T>, &mut [T], Acc, &mut Vec<T>);

/// [`gemm_portable`] with a given compilation of the portable kernel.
fn gemm_portable_with<T: Float>(
    dims: (usize, usize, usize),
    a: Strided<'_, T>,
    b: Strided<'_, T>,
    c: &mut [T],
    start: Start<'_, T>,
    pack: &mut Vec<T>,
    kernel: Kernel<T>,
) {
    if dims.0 == 0 || dims.2 == 0 {
        return; // an empty product
    }
    let acc = match start {
        Start::Zero => Acc::Write,
        Start::C => Acc::Add,
        Start::Bias(bias) => {
            let (m, _, n) = dims;
            c[..m * n].chunks_exact_mut(n).for_each(|row| row.copy_from_slice(&bias[..n]));
            Acc::Add
        }
    };
    kernel(dims, a, b, c, acc, pack);
}

#[cfg(test)]
impl<T> Start<'_, T> {
    fn name(&self) -> &'static str {
        match self {
            Start::Zero => "zero",
            Start::C => "C",
            Start::Bias(_) => "bias",
        }
    }
}

/// The portable kernel: [`gemm`] for `f64`, and for `f32` on the [`GemmPath::Portable`] path.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn portable_kernel<T: Float>(
    dims: (usize, usize, usize),
    a: Strided<'_, T>,
    b: Strided<'_, T>,
    c: &mut [T],
    acc: Acc,
    pack: &mut Vec<T>,
) {
    const FMA: bool = selected_fma!();
    const WIDE: bool = selected_avx512f!();
    /// Columns of `C` per block: two vector registers of `f32`.
    const NR: usize = if WIDE { 32 } else { 16 };
    portable_body::<T, NR, FMA>(dims, a, b, c, acc, pack);
}

/// The portable kernel compiled for AVX2 + FMA only ([`GemmPath::PortableAvx2`]): on a CPU
/// without them, the baseline compilation.
#[multiversion(targets("x86_64+avx2+fma"))]
fn portable_kernel_avx2<T: Float>(
    dims: (usize, usize, usize),
    a: Strided<'_, T>,
    b: Strided<'_, T>,
    c: &mut [T],
    acc: Acc,
    pack: &mut Vec<T>,
) {
    const FMA: bool = selected_fma!();
    portable_body::<T, 16, FMA>(dims, a, b, c, acc, pack);
}

/// The body of the portable kernel, inlined into each compilation: blocks of [`MR`] rows by `NR`
/// columns, multiply-adds fused when `FMA`.
#[inline(always)]
fn portable_body<T: Float, const NR: usize, const FMA: bool>(
    (m, k, n): (usize, usize, usize),
    a: Strided<'_, T>,
    b: Strided<'_, T>,
    c: &mut [T],
    acc: Acc,
    pack: &mut Vec<T>,
) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `C (+)= A · B` in `f64`, one element at a time.
    fn reference(
        (m, k, n): (usize, usize, usize),
        a: Strided<'_, f32>,
        b: Strided<'_, f32>,
        c: &mut [f64],
        acc: Acc,
    ) {
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k)
                    .map(|p| f64::from(a.data[i * a.rs + p * a.cs]) * f64::from(b.data[p * b.rs + j * b.cs]))
                    .sum();
                c[i * n + j] = if acc == Acc::Add { c[i * n + j] + dot } else { dot };
            }
        }
    }

    /// Says which `f32` gemm paths a test runs and which it skips, and why (shown with
    /// `--nocapture`, and on failure), and returns the ones to run. Every path is forced by name
    /// ([`gemm_f32_on`]), so a path the CPU lacks is skipped, never silently replaced by another.
    fn report(test: &str) -> Vec<GemmPath> {
        let ran: Vec<GemmPath> = GemmPath::ALL.into_iter().filter(|p| p.unsupported().is_none()).collect();
        let skipped: Vec<String> =
            GemmPath::ALL.iter().filter_map(|p| Some(format!("{p} ({})", p.unsupported()?))).collect();
        eprintln!(
            "{test}: ran {}; skipped {}",
            ran.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "),
            if skipped.is_empty() { "none".into() } else { skipped.join(", ") }
        );
        ran
    }

    /// One product on a path, for the tests: the path must be one [`report`] returned.
    fn run_on(
        path: GemmPath,
        dims: (usize, usize, usize),
        a: Strided<'_, f32>,
        b: Strided<'_, f32>,
        c: &mut [f32],
        start: Start<'_, f32>,
        pack: &mut Vec<f32>,
    ) {
        gemm_f32_on(path, dims, a, b, c, start, pack).expect("a path this CPU supports");
    }

    #[test]
    fn the_gemm_paths_are_named_and_the_best_is_supported() {
        let names: Vec<&str> = GemmPath::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["avx512", "avx2", "portable", "portable-avx2"]);
        for p in GemmPath::ALL {
            assert_eq!(GemmPath::from_name(p.name()), Some(p));
        }
        assert_eq!(GemmPath::from_name("avx"), None);
        assert!(GemmPath::Portable.unsupported().is_none(), "the portable kernel runs everywhere");
        assert!(GemmPath::best().unsupported().is_none());
        assert!(gemm_path().unsupported().is_none(), "the path in use is one this CPU runs");
        // The best is the first supported of AVX-512, AVX2, portable.
        let best = GemmPath::ALL[..3].iter().find(|p| p.unsupported().is_none()).copied();
        assert_eq!(Some(GemmPath::best()), best);
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(GemmPath::Avx512.unsupported().is_none(), is_x86_feature_detected!("avx512f"));
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            assert_eq!(GemmPath::Avx2.unsupported().is_none(), avx2);
            assert_eq!(GemmPath::PortableAvx2.unsupported().is_none(), avx2);
        }
    }

    /// A path the CPU lacks is an error, and `C` is left as it was; never another kernel.
    #[test]
    fn an_unsupported_path_is_an_error_not_another_kernel() {
        let lacking: Vec<GemmPath> =
            GemmPath::ALL.into_iter().filter(|p| p.unsupported().is_some()).collect();
        eprintln!(
            "an_unsupported_path_is_an_error_not_another_kernel: {}",
            if lacking.is_empty() {
                "this CPU runs every path: nothing to check".to_string()
            } else {
                format!("checked {}", lacking.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "))
            }
        );
        for path in lacking {
            let (a, b) = ([1.0f32; 4], [1.0f32; 4]);
            let mut c = [9.0f32; 4];
            let got = gemm_f32_on(
                path,
                (2, 2, 2),
                Strided::rows(&a, 2),
                Strided::rows(&b, 2),
                &mut c,
                Start::Zero,
                &mut Vec::new(),
            );
            assert!(matches!(got, Err(GemmPathError::Unsupported { path: p, .. }) if p == path), "{got:?}");
            assert_eq!(c, [9.0; 4]);
        }
    }

    /// Each `f32` gemm path this CPU can run, forced by name (the others skipped, and said so),
    /// against an `f64` reference: every layout of `A` and `B` and all
    /// three starts, at sizes around each block and vector edge and at makemore's own. `C` sits
    /// between guard values that must not change.
    #[test]
    fn f32_gemm_matches_a_reference_at_every_edge() {
        let runs = report("f32_gemm_matches_a_reference_at_every_edge");
        let sizes = [1, 2, 3, 7, 8, 9, 15, 16, 17, 27, 30, 32, 33, 47, 48, 49, 64, 65, 112, 128, 200];
        let value = |i: usize| ((i * 7919 % 1009) as f32 - 504.0) / 256.0;
        let (a_all, b_all): (Vec<f32>, Vec<f32>) =
            ((0..200 * 200).map(value).collect(), (0..200 * 200).map(|i| value(i + 5)).collect());
        let mut pack = Vec::new();
        for (s, &m) in sizes.iter().enumerate() {
            // All of `k` and `n` for a few `m`, and a spread of triples for the rest.
            let ks: Vec<usize> =
                if s % 4 == 0 { sizes.to_vec() } else { vec![sizes[(s * 5) % sizes.len()], 30, 200] };
            for &k in &ks {
                for (t, &n) in sizes.iter().enumerate() {
                    if s % 4 != 0 && t % 3 != s % 3 && n != 27 {
                        continue;
                    }
                    for (a_t, b_t, start) in (0..12).map(|f| (f & 1 == 1, f & 2 == 2, f >> 2)) {
                        let a = if a_t {
                            Strided::transposed(&a_all[..m * k], m)
                        } else {
                            Strided::rows(&a_all[..m * k], k)
                        };
                        let b = if b_t {
                            Strided::transposed(&b_all[..k * n], k)
                        } else {
                            Strided::rows(&b_all[..k * n], n)
                        };
                        let bias: Vec<f32> = (0..n).map(|j| value(j + 3)).collect();
                        let old: Vec<f32> = (0..m * n).map(|i| value(i + 11)).collect();
                        let (start, mut want): (Start<'_, f32>, Vec<f64>) = match start {
                            0 => (Start::Zero, vec![0.0; m * n]),
                            1 => (Start::C, old.iter().map(|&v| f64::from(v)).collect()),
                            _ => (Start::Bias(&bias), (0..m * n).map(|i| f64::from(bias[i % n])).collect()),
                        };
                        reference((m, k, n), a, b, &mut want, Acc::Add);
                        for &path in &runs {
                            let mut buf = vec![-7.0f32; m * n + 32];
                            buf[16..16 + m * n].copy_from_slice(&old);
                            let c = &mut buf[16..16 + m * n];
                            run_on(path, (m, k, n), a, b, c, start, &mut pack);
                            let case =
                                format!("{m}x{k}x{n} a_t={a_t} b_t={b_t} {} path={path}", start.name());
                            assert!(
                                buf[..16].iter().chain(&buf[16 + m * n..]).all(|&v| v == -7.0),
                                "guard: {case}"
                            );
                            for (i, (&got, &want)) in buf[16..16 + m * n].iter().zip(&want).enumerate() {
                                let tol = 1e-5 * (k as f64 + 1.0) * 4.0;
                                assert!(
                                    (f64::from(got) - want).abs() <= tol,
                                    "{case}: C[{i}] = {got}, want {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// An empty inner dimension: the product is zero, so `C` becomes its start.
    #[test]
    fn a_product_over_k_0_is_its_start() {
        let (m, n) = (3, 20);
        let (a, b) = (Strided::rows(&[][..], 0), Strided::rows(&[][..], n));
        let bias: Vec<f32> = (0..n).map(|j| j as f32).collect();
        let mut pack = Vec::new();
        let runs = report("a_product_over_k_0_is_its_start");
        for &path in &runs {
            let run = |start: Start<'_, f32>, c: &mut [f32], pack: &mut Vec<f32>| {
                run_on(path, (m, 0, n), a, b, c, start, pack);
            };
            let mut c = vec![5.0f32; m * n];
            run(Start::C, &mut c, &mut pack);
            assert!(c.iter().all(|&x| x == 5.0));
            run(Start::Bias(&bias), &mut c, &mut pack);
            assert!(c.chunks(n).all(|row| row == &bias[..]));
            run(Start::Zero, &mut c, &mut pack);
            assert!(c.iter().all(|&x| x == 0.0));
        }
    }
}
