//! The ops, as methods on [`Var`] (and a few on [`crate::Graph`]), one file per family, each
//! with its forward pass (shape checks, the kernel, recording on the tape) and its gradient
//! rules side by side. `backward.rs` holds the one exhaustive `match` that sends each [`Op`]
//! to its rule here.
//!
//! Every op has a `try_` form that returns the error at once; the plain form records it on the
//! graph (sticky) so that maths reads without `?` after every operator.
//!
//! Adding an op: a variant of [`Op`] (`op.rs`), its forward method and gradient rule in the
//! family's file, and one arm in `backward.rs` (the compiler asks for it).
//!
//! [`Op`]: crate::op::Op
//! [`Var`]: crate::Var

use ndarray::{ArrayBase, ArrayViewD, Data, Dimension};

pub(crate) mod attention;
pub(crate) mod elementwise;
pub(crate) mod embedding_linear;
pub(crate) mod index;
pub(crate) mod loss;
pub(crate) mod matmul;
pub(crate) mod norm;
pub(crate) mod recurrent;
pub(crate) mod reduce;
pub(crate) mod rotary;
pub(crate) mod shape;

/// Token ids for [`crate::Var::embedding`], [`crate::Var::cross_entropy`] and
/// [`crate::Graph::one_hot`]: a slice or any ndarray array of `u32` (e.g. a batch of contexts
/// `[B, block_size]`, or targets `[B]`).
pub trait AsIds {
    /// The ids as an n-dimensional view.
    fn as_ids(&self) -> ArrayViewD<'_, u32>;
}

impl AsIds for [u32] {
    fn as_ids(&self) -> ArrayViewD<'_, u32> {
        ndarray::ArrayView1::from(self).into_dyn()
    }
}

impl AsIds for Vec<u32> {
    fn as_ids(&self) -> ArrayViewD<'_, u32> {
        self.as_slice().as_ids()
    }
}

impl<const N: usize> AsIds for [u32; N] {
    fn as_ids(&self) -> ArrayViewD<'_, u32> {
        self.as_slice().as_ids()
    }
}

impl<S: Data<Elem = u32>, D: Dimension> AsIds for ArrayBase<S, D> {
    fn as_ids(&self) -> ArrayViewD<'_, u32> {
        self.view().into_dyn()
    }
}

/// Signed targets for [`crate::Var::cross_entropy_ignore`]: a slice or any ndarray array of
/// `i64` (PyTorch's `long`), where one value (makemore's -1) marks a position without a target.
pub trait AsTargets {
    /// The targets as an n-dimensional view.
    fn as_targets(&self) -> ArrayViewD<'_, i64>;
}

impl AsTargets for [i64] {
    fn as_targets(&self) -> ArrayViewD<'_, i64> {
        ndarray::ArrayView1::from(self).into_dyn()
    }
}

impl AsTargets for Vec<i64> {
    fn as_targets(&self) -> ArrayViewD<'_, i64> {
        self.as_slice().as_targets()
    }
}

impl<const N: usize> AsTargets for [i64; N] {
    fn as_targets(&self) -> ArrayViewD<'_, i64> {
        self.as_slice().as_targets()
    }
}

impl<S: Data<Elem = i64>, D: Dimension> AsTargets for ArrayBase<S, D> {
    fn as_targets(&self) -> ArrayViewD<'_, i64> {
        self.view().into_dyn()
    }
}

/// Returns `v` itself from the enclosing function when it stands for a failed op: unary ops
/// pass a poisoned input through.
macro_rules! or_poisoned {
    ($v:expr) => {
        if $v.g.live(&[$v.id]).is_err() {
            return $v;
        }
    };
}
pub(crate) use or_poisoned;
