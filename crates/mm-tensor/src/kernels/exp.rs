//! A fast, vectorizable `exp` for `f32` (libm's `expf` is a call per element): the softmax of
//! every cross-entropy goes through it.
//!
//! `exp x = 2ⁿ · eʳ` with `n = round(x / ln 2)` and `r = x - n ln 2` (`|r| <= ln 2 / 2`, `ln 2`
//! split in two parts so that `r` is exact), `eʳ` by its Taylor polynomial of degree 7 (truncation
//! error below 1.5e-9 relative) and `2ⁿ` built from exponent bits as `2^(n/2) · 2^(n - n/2)`,
//! so that each factor is a normal number over the whole range. Inputs are clamped to
//! `[-104, 89]`, beyond which `exp` underflows to 0 or overflows to `inf` in `f32` anyway (the
//! product of the factors does so by itself). The tests bound the relative error against `f64` at
//! 3 ulp over the normal range.

use multiversion::multiversion;

pub(super) const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` rounded to 16 significant bits, so that `n * LN2_HI` is exact for `|n| < 2⁸`.
pub(super) const LN2_HI: f32 = 0.693_145_75;
/// The rest of `ln 2`.
pub(super) const LN2_LO: f32 = 1.428_606_8e-6;

/// `1.5 · 2²³`: adding it to a float of magnitude below 2²² rounds it to an integer (ties to
/// even) held in the low mantissa bits, so the integer can be read from the bits without a
/// float-to-int conversion (which Rust's saturating `as` would build lane by lane).
pub(super) const ROUND: f32 = 12_582_912.0;

/// `exp` of one value (the scalar form of [`exp_f32`]); `FMA` says whether to fuse multiply-adds.
#[inline(always)]
pub(crate) fn exp1<const FMA: bool>(x: f32) -> f32 {
    let madd = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    let z = x.clamp(-104.0, 89.0); // NaN stays NaN
    let t = z * LOG2E + ROUND;
    let n = t - ROUND; // round(z / ln 2)
    let ni = t.to_bits() as i32 - ROUND.to_bits() as i32; // the same, as an integer
    let r = madd(-n, LN2_LO, madd(-n, LN2_HI, z));
    // 1 + r + r²/2! + ... + r⁷/7!, by Horner.
    let mut p = 1.0 / 5040.0;
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = madd(p, r, c);
    }
    let pow2 = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    let half = ni >> 1;
    p * pow2(half) * pow2(ni - half)
}

/// `x[i] = exp(x[i])` in place.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn exp_f32(x: &mut [f32]) {
    const FMA: bool = selected_fma!();
    for v in x.iter_mut() {
        *v = exp1::<FMA>(*v);
    }
}

/// `y[i] = 1 / (1 + exp(-x[i]))`, the logistic sigmoid, on [`exp1`]: one vectorised loop in
/// place of a call to libm's `expf` per element (a GRU step takes two sigmoids of every hidden
/// channel).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn sigmoid_f32(x: &[f32], y: &mut [f32]) {
    const FMA: bool = selected_fma!();
    for (y, &x) in y.iter_mut().zip(x) {
        *y = 1.0 / (1.0 + exp1::<FMA>(-x));
    }
}
