//! `TensorError`: what went wrong, naming the op and the shapes involved.

use crate::Shape;

/// An error of the engine. The message names the op and the shapes, e.g.
/// `matmul: cannot multiply [32, 30] by [20, 200]`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    /// A binary elementwise op on shapes that do not broadcast together.
    #[error("{op}: shapes {lhs} and {rhs} do not broadcast together")]
    Broadcast {
        /// The op, e.g. `add`.
        op: &'static str,
        /// The left operand's shape.
        lhs: Shape,
        /// The right operand's shape.
        rhs: Shape,
    },
    /// `matmul` of matrices whose inner dimensions differ, or that are not 2-D.
    #[error("matmul: cannot multiply {lhs} by {rhs}")]
    MatMul {
        /// The left operand's shape.
        lhs: Shape,
        /// The right operand's shape.
        rhs: Shape,
    },
    /// An op that needs a tensor of a given rank got another.
    #[error("{op}: expected a {expected}-D tensor, got shape {got}")]
    Rank {
        /// The op.
        op: &'static str,
        /// The rank it needs.
        expected: usize,
        /// The shape it got.
        got: Shape,
    },
    /// More dimensions than the engine supports.
    #[error("shape: rank {rank} exceeds the maximum of {max}", max = crate::MAX_RANK)]
    RankTooLarge {
        /// The rank asked for.
        rank: usize,
    },
    /// An axis that the shape does not have.
    #[error("{op}: axis {axis} is out of range for shape {shape}")]
    Axis {
        /// The op.
        op: &'static str,
        /// The axis asked for.
        axis: usize,
        /// The operand's shape.
        shape: Shape,
    },
    /// `reshape` to a shape with another number of elements.
    #[error("reshape: cannot reshape {from} ({} elements) into {to} ({} elements)", from.numel(), to.numel())]
    Reshape {
        /// The operand's shape.
        from: Shape,
        /// The shape asked for.
        to: Shape,
    },
    /// Data whose length does not fill the shape it is given.
    #[error("{op}: {len} values do not fill shape {shape} ({} elements)", shape.numel())]
    DataLength {
        /// The op or constructor.
        op: &'static str,
        /// The number of values given.
        len: usize,
        /// The shape asked for.
        shape: Shape,
    },
    /// An id (a row of `embedding`, a class of `cross_entropy` or `one_hot`) out of range.
    #[error("{op}: index {index} is out of range for {len} rows or classes")]
    Index {
        /// The op.
        op: &'static str,
        /// The offending id.
        index: usize,
        /// The number of rows or classes.
        len: usize,
    },
    /// `cross_entropy` with a number of targets other than the number of rows of the logits.
    #[error("cross_entropy: {targets} targets for logits of shape {logits}")]
    Targets {
        /// The logits' shape.
        logits: Shape,
        /// The number of targets given.
        targets: usize,
    },
    /// `concat` of tensors whose other dimensions differ, or of no tensors.
    #[error("concat: cannot join {lhs} and {rhs} along axis {axis}")]
    Concat {
        /// The first operand's shape.
        lhs: Shape,
        /// The mismatching operand's shape.
        rhs: Shape,
        /// The axis.
        axis: usize,
    },
    /// `backward` or `item` of a tensor with more than one element.
    #[error("item: expected a one-element tensor (a loss), got shape {shape}")]
    NonScalar {
        /// The loss's shape.
        shape: Shape,
    },
    /// An ndarray shape error (an array whose layout does not fit).
    #[error("array: {0}")]
    Array(String),
    /// `backward` on a graph recorded without gradients ([`crate::Tape::no_grad`]).
    #[error("backward: this graph was recorded without gradients (Tape::no_grad)")]
    NoGrad,
    /// A parameter name registered twice.
    #[error("params: a parameter named {name:?} exists already")]
    DuplicateParam {
        /// The name.
        name: String,
    },
    /// A parameter or gradient of the wrong shape (e.g. gradients made for another store).
    #[error("{op}: expected shape {expected}, got {got}")]
    ShapeMismatch {
        /// The op.
        op: &'static str,
        /// The shape it needs.
        expected: Shape,
        /// The shape it got.
        got: Shape,
    },
    /// Gradients or optimizer state made for another parameter store.
    #[error("{op}: made for {expected} parameters, the store has {got}")]
    ParamCount {
        /// The op.
        op: &'static str,
        /// How many parameters the state was made for.
        expected: usize,
        /// How many the store has.
        got: usize,
    },
}

impl From<ndarray::ShapeError> for TensorError {
    fn from(e: ndarray::ShapeError) -> Self {
        TensorError::Array(e.to_string())
    }
}

/// The engine's `Result`.
pub type Result<T, E = TensorError> = std::result::Result<T, E>;
