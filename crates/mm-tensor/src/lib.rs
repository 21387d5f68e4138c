//! # mm-tensor
//!
//! A small tensor and reverse-mode autograd engine over [`ndarray`], sized for makemore:
//! matrices like 32x30 and 200x27, hundreds of thousands of steps, where per-op overhead and
//! allocation matter as much as arithmetic.
//!
//! - A [`Tape`] is an arena of nodes reused step after step; [`Tape::graph`] opens a [`Graph`]
//!   for one step, and ops on its `Copy` handles ([`Var`]) are evaluated eagerly and recorded in
//!   order, so backward is a single reverse loop with one gradient rule per op.
//! - Parameters live outside the tape in a [`ParamStore`]; [`Graph::backward`] writes their
//!   gradients into a reusable [`Grads`]; an [`Optimizer`] ([`Sgd`], [`AdamW`]) applies them.
//! - Fused ops where makemore needs them: [`Var::cross_entropy`], [`Var::embedding`], and a fast
//!   `tanh`. Errors are typed ([`TensorError`]) and sticky: maths reads without `?`, and
//!   [`Graph::backward`] or [`Var::item`] returns the first error.
//!
//! Fitting `y = 2x + 1`:
//!
//! ```
//! use mm_tensor::{Grads, Optimizer, ParamStore, Sgd, Tape};
//! use ndarray::{ArrayD, IxDyn};
//!
//! let mut params = ParamStore::<f64>::new();
//! let w = params.add("w", ArrayD::zeros(IxDyn(&[1, 1])))?;
//! let b = params.add("b", ArrayD::zeros(IxDyn(&[1])))?;
//! let xs = [-1.0, 0.0, 1.0, 2.0];
//! let ys = xs.map(|x| 2.0 * x + 1.0);
//! let (mut tape, mut grads, mut opt) = (Tape::new(), Grads::new(&params), Sgd::new(0.1));
//! for _ in 0..500 {
//!     let g = tape.graph(&params);
//!     let x = g.input(&[4, 1], &xs);
//!     let y = g.input(&[4, 1], &ys);
//!     let pred = x.matmul(g.param(w)) + g.param(b);
//!     let loss = (pred - y).pow(2.0).mean();
//!     g.backward(loss, &mut grads)?;
//!     opt.step(&mut params, &grads)?;
//! }
//! assert!((params.data(w)[0] - 2.0).abs() < 1e-6 && (params.data(b)[0] - 1.0).abs() < 1e-6);
//! # Ok::<(), mm_tensor::TensorError>(())
//! ```

mod backward;
mod dot;
mod error;
mod float;
#[cfg(feature = "golden")]
pub mod golden;
pub mod init;
mod kernels;
mod op;
mod ops;
mod optim;
mod parallel;
mod param;
mod shape;
mod shards;
mod tape;
#[cfg(feature = "kernel-timers")]
pub mod timers;

pub use error::{Result, TensorError};
pub use float::Float;
pub use kernels::matmul::{GemmPath, GemmPathError, gemm_path, gemm_path_problem, set_gemm_path};
pub use ops::elementwise::causal_mask;
pub use ops::norm::BatchStatsLog;
pub use ops::rotary::ROTARY_BASE;
pub use ops::{AsIds, AsTargets};
pub use optim::{AdamW, AdamWState, Optimizer, Sgd};
pub use parallel::Workers;
pub use param::{BufferId, Grads, ParamId, ParamStore};
pub use shape::{MAX_RANK, Shape};
pub use shards::Shards;
pub use tape::{Graph, Tape, Var};

/// The class id that [`Var::cross_entropy`] ignores: a row with this target predicts nothing
/// (PyTorch's `ignore_index`; makemore marks a word's positions after its end with -1, and
/// `mm_data::Examples::NO_TARGET` is this id). The loss is the mean over the other rows.
pub const IGNORE: u32 = op::IGNORED;

/// `y = tanh(x)` elementwise with the engine's fast `f32` kernel (exposed for tests and
/// benchmarks; [`Var::tanh`] uses it).
pub fn tanh_f32(x: &[f32], y: &mut [f32]) {
    kernels::tanh::tanh_f32(x, y);
}

/// `x = exp(x)` elementwise with the engine's fast `f32` kernel (exposed for tests and
/// benchmarks; [`Var::exp`] and the softmax of [`Var::cross_entropy`] use it).
pub fn exp_f32(x: &mut [f32]) {
    kernels::exp::exp_f32(x);
}

/// `c = a · b` for row-major `c` `[m, n]`, with `a` `[m, k]` and `b` `[k, n]` each stored
/// row-major or, when `a_t` / `b_t`, as the row-major transpose (`[k, m]`, `[n, k]`): the
/// engine's matrix-multiply kernel, exposed for benchmarks ([`Var::matmul`] and its backward use
/// it). `pack` is its reusable scratch.
///
/// # Panics
///
/// If a slice is shorter than its shape.
pub fn gemm_f32(
    (m, k, n): (usize, usize, usize),
    (a, a_t): (&[f32], bool),
    (b, b_t): (&[f32], bool),
    c: &mut [f32],
    pack: &mut Vec<f32>,
) {
    use kernels::matmul::Strided;
    let a = if a_t { Strided::transposed(&a[..m * k], m) } else { Strided::rows(&a[..m * k], k) };
    let b = if b_t { Strided::transposed(&b[..k * n], k) } else { Strided::rows(&b[..k * n], n) };
    kernels::matmul::gemm((m, k, n), a, b, &mut c[..m * n], kernels::matmul::Start::Zero, pack);
}

/// [`gemm_f32`] on a given path rather than [`gemm_path`]'s (benches compare the paths in one
/// run).
///
/// # Errors
///
/// [`GemmPathError::Unsupported`], and `c` unchanged, for a path this CPU cannot run.
///
/// # Panics
///
/// If a slice is shorter than its shape.
pub fn gemm_f32_on(
    path: GemmPath,
    (m, k, n): (usize, usize, usize),
    (a, a_t): (&[f32], bool),
    (b, b_t): (&[f32], bool),
    c: &mut [f32],
    pack: &mut Vec<f32>,
) -> Result<(), GemmPathError> {
    use kernels::matmul::Strided;
    let a = if a_t { Strided::transposed(&a[..m * k], m) } else { Strided::rows(&a[..m * k], k) };
    let b = if b_t { Strided::transposed(&b[..k * n], k) } else { Strided::rows(&b[..k * n], n) };
    kernels::matmul::gemm_f32_on(path, (m, k, n), a, b, &mut c[..m * n], kernels::matmul::Start::Zero, pack)
}

/// Multiply-adds per second that one core of this CPU reaches on the vectors of `path` (16
/// `f32` lanes for AVX-512, 8 for AVX2 + FMA), measured now by a loop of independent FMAs (about
/// 25 ms): the peak that "the products at 60% of peak" is measured against. It is the clock the
/// core runs at, turbo included, not the nominal one `/proc/cpuinfo` reports. `None` where the
/// path cannot run here, or off x86_64 (where the loop has no kernel yet).
pub fn fma_peak(path: GemmPath) -> Option<f64> {
    kernels::peak::fma_peak(path)
}

/// The vector instruction sets of this CPU that the engine's kernels use, each with whether the
/// CPU has it: on x86_64 `avx512f`, `avx2`, `fma`; on aarch64 `neon`.
pub fn cpu_features() -> Vec<(&'static str, bool)> {
    #[cfg(target_arch = "x86_64")]
    let features = vec![
        ("avx512f", is_x86_feature_detected!("avx512f")),
        ("avx2", is_x86_feature_detected!("avx2")),
        ("fma", is_x86_feature_detected!("fma")),
    ];
    #[cfg(target_arch = "aarch64")]
    let features = vec![("neon", std::arch::is_aarch64_feature_detected!("neon"))];
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let features = Vec::new();
    features
}
