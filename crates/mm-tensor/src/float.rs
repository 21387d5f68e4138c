//! The element types the engine computes in: `f32` for training, `f64` for gradient checks.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A floating-point element type of the engine (`f32` or `f64`).
///
/// Beyond ordinary arithmetic it names the few kernels whose best implementation differs by
/// precision: `f32` uses a fast rational `tanh` and a fast polynomial `exp`, `f64` the exact
/// library functions (it is the precision in which gradients are checked against finite
/// differences).
pub trait Float:
    sealed::Kernels
    + num_traits::Float
    + ndarray::ScalarOperand
    + ndarray::LinalgScalar
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + 'static
{
    /// The type's name, `"f32"` or `"f64"`.
    const NAME: &'static str;

    /// Converts from `f64`, rounding to nearest.
    fn of(v: f64) -> Self;

    /// Converts to `f64` exactly.
    fn as_f64(self) -> f64;

    /// Writes `tanh(x)` for every element of `x` into `y` (same length).
    fn tanh_slice(x: &[Self], y: &mut [Self]);

    /// Replaces every element of `x` by its `exp`.
    fn exp_slice(x: &mut [Self]);

    /// Writes the logistic sigmoid `1 / (1 + exp(-x))` of every element of `x` into `y` (same
    /// length).
    fn sigmoid_slice(x: &[Self], y: &mut [Self]);
}

/// The kernels that differ by more than arithmetic between the precisions, in a supertrait that
/// only this crate can implement (its module is private): `Float` is sealed to `f32` and `f64`.
mod sealed {
    use crate::kernels::Acc;
    use crate::kernels::attention::Dims;
    use crate::kernels::matmul::{Start, Strided};

    pub trait Kernels: Sized {
        /// `C = start + A · B` ([`crate::kernels::matmul::gemm`]) with this precision's kernel.
        fn gemm(
            dims: (usize, usize, usize),
            a: Strided<'_, Self>,
            b: Strided<'_, Self>,
            c: &mut [Self],
            start: Start<'_, Self>,
            pack: &mut Vec<Self>,
        );

        /// makemore's self-attention forward on this precision's fast path, if it has one for
        /// these sizes on this CPU ([`crate::kernels::attention::forward_f32`]); false, and
        /// nothing written, where not.
        fn self_attention(qkv: &[Self], d: Dims, scale: Self, att: &mut [Self], out: &mut [Self]) -> bool {
            let _ = (qkv, d, scale, att, out);
            false
        }

        /// Its gradient on the fast path ([`crate::kernels::attention::grad_f32`]); false where
        /// there is none.
        fn self_attention_grad(
            operands: (&[Self], &[Self], &[Self]),
            d: Dims,
            scale: Self,
            dst: &mut [Self],
            acc: Acc,
        ) -> bool {
            let _ = (operands, d, scale, dst, acc);
            false
        }
    }

    impl Kernels for f32 {
        fn gemm(
            dims: (usize, usize, usize),
            a: Strided<'_, f32>,
            b: Strided<'_, f32>,
            c: &mut [f32],
            start: Start<'_, f32>,
            pack: &mut Vec<f32>,
        ) {
            crate::kernels::matmul::gemm_f32(dims, a, b, c, start, pack);
        }

        fn self_attention(qkv: &[f32], d: Dims, scale: f32, att: &mut [f32], out: &mut [f32]) -> bool {
            crate::kernels::attention::forward_f32(qkv, d, scale, att, out)
        }

        fn self_attention_grad(
            operands: (&[f32], &[f32], &[f32]),
            d: Dims,
            scale: f32,
            dst: &mut [f32],
            acc: Acc,
        ) -> bool {
            crate::kernels::attention::grad_f32(operands, d, scale, dst, acc)
        }
    }

    impl Kernels for f64 {
        fn gemm(
            dims: (usize, usize, usize),
            a: Strided<'_, f64>,
            b: Strided<'_, f64>,
            c: &mut [f64],
            start: Start<'_, f64>,
            pack: &mut Vec<f64>,
        ) {
            crate::kernels::matmul::gemm_portable(dims, a, b, c, start, pack);
        }
    }
}

impl Float for f32 {
    const NAME: &'static str = "f32";

    fn of(v: f64) -> Self {
        v as f32
    }

    fn as_f64(self) -> f64 {
        f64::from(self)
    }

    fn tanh_slice(x: &[Self], y: &mut [Self]) {
        crate::kernels::tanh::tanh_f32(x, y);
    }

    fn exp_slice(x: &mut [Self]) {
        crate::kernels::exp::exp_f32(x);
    }

    fn sigmoid_slice(x: &[Self], y: &mut [Self]) {
        crate::kernels::exp::sigmoid_f32(x, y);
    }
}

impl Float for f64 {
    const NAME: &'static str = "f64";

    fn of(v: f64) -> Self {
        v
    }

    fn as_f64(self) -> f64 {
        self
    }

    fn tanh_slice(x: &[Self], y: &mut [Self]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x.tanh();
        }
    }

    fn exp_slice(x: &mut [Self]) {
        x.iter_mut().for_each(|v| *v = v.exp());
    }

    fn sigmoid_slice(x: &[Self], y: &mut [Self]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = 1.0 / (1.0 + (-x).exp());
        }
    }
}
