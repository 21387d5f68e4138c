//! `Op`: what each node of a tape computes, with its input ids and small attributes.
//!
//! The backward pass is one exhaustive `match` over this enum (in `backward.rs`), so a new op
//! cannot be added without its gradient rule.

use crate::ParamId;

/// The index of a node on its tape. Insertion order is topological order.
pub(crate) type NodeId = u32;

/// A span of the tape's id arena: the ids of an `embedding` or the targets of a `cross_entropy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) len: u32,
}

impl Span {
    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

/// One node's computation. Formulas use `y` for the node's value and `g` for its gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Op {
    /// A constant (data, targets as floats, a scalar): no gradient.
    Input,
    /// A parameter of the graph's [`crate::ParamStore`]; its gradient goes to [`crate::Grads`].
    Param(ParamId),
    /// Stands in for the result of an op that failed; the tape holds the error.
    Poison,
    /// `a + b`, broadcasting.
    Add(NodeId, NodeId),
    /// `a - b`, broadcasting.
    Sub(NodeId, NodeId),
    /// `a * b`, broadcasting.
    Mul(NodeId, NodeId),
    /// `a / b`, broadcasting.
    Div(NodeId, NodeId),
    /// `-x`.
    Neg(NodeId),
    /// `x ^ exponent`.
    Pow(NodeId, f64),
    /// `exp(x)`.
    Exp(NodeId),
    /// `ln(x)`.
    Log(NodeId),
    /// `tanh(x)`.
    Tanh(NodeId),
    /// `max(x, 0)`.
    Relu(NodeId),
    /// `1 / (1 + exp(-x))`.
    Sigmoid(NodeId),
    /// Sum over one axis, or all elements when `axis` is `None`.
    Sum { x: NodeId, axis: Option<u8> },
    /// Mean over one axis, or all elements when `axis` is `None`.
    Mean { x: NodeId, axis: Option<u8> },
    /// Softmax along an axis.
    Softmax { x: NodeId, axis: u8 },
    /// Log-softmax along an axis.
    LogSoftmax { x: NodeId, axis: u8 },
    /// Same elements, another shape (shares its input's value).
    Reshape(NodeId),
    /// Matrix transpose.
    Transpose(NodeId),
    /// Inputs `links[span]` joined along `axis`.
    Concat { inputs: Span, axis: u8 },
    /// Matrix product `a @ b`.
    MatMul(NodeId, NodeId),
    /// `x @ w + b` (a bias row added to every row), fused: `torch.addmm(b, x, w)`.
    Linear { x: NodeId, w: NodeId, b: NodeId },
    /// Rows of `table` picked by the ids in `ids[span]`.
    Embedding { table: NodeId, ids: Span },
    /// Mean cross-entropy of `logits` rows against class ids `ids[span]`.
    CrossEntropy { logits: NodeId, targets: Span },
    /// Mean cross-entropy of the rows of `table` picked by `ids[ids]` against `ids[targets]`:
    /// `CrossEntropy(Embedding(table, ids), targets)` fused.
    LookupCrossEntropy { table: NodeId, ids: Span, targets: Span },
}
