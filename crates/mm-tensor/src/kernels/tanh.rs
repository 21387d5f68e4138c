//! A fast, vectorizable `tanh` for `f32`: a rational function instead of libm's `tanhf`, which
//! costs more than all six matrix multiplies of an MLP training step.
//!
//! The approximation is the 13th convergent of Lambert's continued fraction
//! `tanh x = x / (1 + x²/(3 + x²/(5 + x²/(7 + ...))))`, written as `x · P(x²) / Q(x²)` with
//! polynomials of degree 6 whose coefficients are all positive, so evaluating them in `f32`
//! involves no cancellation. Inputs are clamped to `[-9, 9]`, beyond which `tanh` rounds to ±1 in
//! `f32`. The maximum absolute error over the whole real line is 3.7e-7 in `f32` (3.7e-8 in
//! exact arithmetic); the tests check it against `f64` on a dense grid.

use multiversion::multiversion;

/// Numerator coefficients of `P(y)`, constant term first (integers of the exact convergent).
const P: [f32; 7] =
    [7_905_853_580_625.0, 1_159_525_191_825.0, 41_247_931_725.0, 523_783_260.0, 2_552_550.0, 4_095.0, 1.0];
/// Denominator coefficients of `Q(y)`, constant term first.
const Q: [f32; 7] = [
    7_905_853_580_625.0,
    3_794_809_718_700.0,
    252_070_693_875.0,
    5_237_832_600.0,
    41_351_310.0,
    120_120.0,
    91.0,
];
/// Beyond this magnitude `tanh` rounds to ±1 in `f32`.
const CLAMP: f32 = 9.0;

/// `tanh` of one value (the scalar form of [`tanh_f32`]); `FMA` says whether to fuse
/// multiply-adds.
#[inline(always)]
pub(crate) fn tanh1<const FMA: bool>(x: f32) -> f32 {
    let madd = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    let z = x.clamp(-CLAMP, CLAMP); // NaN stays NaN
    let y = z * z;
    let mut p = P[6];
    let mut q = Q[6];
    for i in (0..6).rev() {
        p = madd(p, y, P[i]);
        q = madd(q, y, Q[i]);
    }
    // Saturated inputs give exactly ±1 (the rational alone gives 0.99999994 at the clamp).
    if x >= CLAMP {
        1.0
    } else if x <= -CLAMP {
        -1.0
    } else {
        z * p / q
    }
}

/// `y[i] = tanh(x[i])` for slices of equal length.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn tanh_f32(x: &[f32], y: &mut [f32]) {
    const FMA: bool = multiversion::target::selected_target!().supports_feature_str("fma");
    for (y, &x) in y.iter_mut().zip(x) {
        *y = tanh1::<FMA>(x);
    }
}
