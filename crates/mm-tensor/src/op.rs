//! `Op`: what each node of a tape computes, with its input ids and small attributes.
//!
//! The backward pass is one exhaustive `match` over this enum (in `backward.rs`), so a new op
//! cannot be added without its gradient rule.

use crate::{BufferId, MAX_RANK, ParamId};

/// The index of a node on its tape. Insertion order is topological order.
pub(crate) type NodeId = u32;

/// A span of the tape's id arena: the ids of an `embedding`, the targets of a `cross_entropy`,
/// the mask of a `masked_fill`.
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
    /// A buffer of the graph's [`crate::ParamStore`] (state that is not trained, such as
    /// BatchNorm's running statistics): read like a parameter, never differentiated.
    Buffer(BufferId),
    /// Stands in for the result of an op that failed; the tape holds the error.
    Poison,

    // Elementwise (`ops/elementwise.rs`).
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
    /// `sqrt(x)`.
    Sqrt(NodeId),
    /// `tanh(x)`.
    Tanh(NodeId),
    /// `max(x, 0)`.
    Relu(NodeId),
    /// `1 / (1 + exp(-x))`.
    Sigmoid(NodeId),
    /// GELU, tanh approximation; `aux` holds its derivative at `x`.
    Gelu(NodeId),
    /// `x` where the mask `ids[mask]` (0 or 1, broadcast over leading axes) is 0, `value` where 1.
    MaskedFill { x: NodeId, mask: Span, value: f64 },
    /// `x * m` for the dropout mask `m` (0 or `1 / (1 - p)`) kept in `aux`.
    Dropout(NodeId),

    // Reductions (`ops/reduce.rs`).
    /// Sum over one axis, or all elements when `axis` is `None`.
    Sum { x: NodeId, axis: Option<u8> },
    /// Mean over one axis, or all elements when `axis` is `None`.
    Mean { x: NodeId, axis: Option<u8> },
    /// Mean over the axes of the bit set `axes`.
    MeanAxes { x: NodeId, axes: u8 },
    /// Variance over the axes of the bit set `axes`, dividing by `n - correction`; `aux` holds
    /// the mean.
    VarAxes { x: NodeId, axes: u8, correction: u8 },
    /// Softmax along an axis.
    Softmax { x: NodeId, axis: u8 },
    /// Log-softmax along an axis.
    LogSoftmax { x: NodeId, axis: u8 },
    /// The running mean along an axis: element `k` is the mean of elements `0..=k`.
    CausalMean { x: NodeId, axis: u8 },

    // Shapes (`ops/shape.rs`).
    /// Same elements, another shape (shares its input's value).
    Reshape(NodeId),
    /// Matrix transpose.
    Transpose(NodeId),
    /// Axes reordered: output axis `i` is input axis `perm[i]`.
    Permute { x: NodeId, perm: [u8; MAX_RANK] },
    /// Elements `start..start + len` along `axis`.
    Narrow { x: NodeId, axis: u8, start: u32, len: u32 },
    /// The node's inputs, in the order of its input list, joined along `axis`.
    Concat { axis: u8 },

    // Products (`ops/matmul.rs`).
    /// Matrix product `a @ b`, batched over broadcast leading axes (`torch.matmul`).
    MatMul(NodeId, NodeId),
    /// `x @ w (+ b)`, fused (`torch.addmm`); with `w_t` the weight is stored `[out, in]` and
    /// used transposed (`F.linear`, `nn.Linear`'s layout).
    Linear { x: NodeId, w: NodeId, b: Option<NodeId>, w_t: bool },
    /// Causal scaled dot-product attention of `q`, `k`, `v` `[.., T, hs]`; `aux` holds the
    /// attention weights.
    Attention { q: NodeId, k: NodeId, v: NodeId },
    /// Causal self-attention of `heads` heads read in place from `qkv` `[B, T, 3C]` (q, k, v
    /// side by side), written as `[B, T, C]`; `aux` holds the attention weights.
    SelfAttention { qkv: NodeId, heads: u32 },
    /// Rotary position embeddings on q and k of `heads` heads in `qkv` `[B, T, 3C]`; `aux`
    /// holds the angles' cosines, then their sines (`ops/rotary.rs`).
    Rotary { qkv: NodeId, heads: u32 },

    /// `table[ids].flatten(-2) @ w (+ b)`, fused; with `w_t` the weight is stored `[out, in]`
    /// (`F.linear`). `aux` holds the table's product with each slot's block of `w`.
    EmbeddingLinear { table: NodeId, ids: Span, w: NodeId, b: Option<NodeId>, w_t: bool },

    // Recurrent cells over a sequence (`ops/recurrent.rs`).
    /// makemore's `RNNCell` over every position of `x` `[B, T, E]` from `h0`, weight `w`
    /// `[H, E + H]`, bias `b`; `aux` holds each position's `cat([x_t, h_{t-1}])`.
    RnnScan { x: NodeId, h0: NodeId, w: NodeId, b: NodeId },
    /// makemore's `GRUCell` over every position of `x` from `h0`, the gates' weights and biases
    /// in the order z, r, hbar; `aux` holds the gates' inputs and values.
    GruScan { x: NodeId, h0: NodeId, w: [NodeId; 3], b: [NodeId; 3] },

    // Normalisation (`ops/norm.rs`).
    /// LayerNorm over the last axis with weight and bias; `aux` holds each row's mean and
    /// `1 / std`.
    LayerNorm { x: NodeId, w: NodeId, b: NodeId, eps: f64 },
    /// BatchNorm over the leading `lead` axes with weight and bias; `aux` holds the mean,
    /// variance and `1 / std` used.
    BatchNorm { x: NodeId, w: NodeId, b: NodeId, lead: u8, eps: f64, stats: BatchStats },

    // Lookups and losses (`ops/index.rs`, `ops/loss.rs`).
    /// Rows of `table` picked by the ids in `ids[span]`.
    Embedding { table: NodeId, ids: Span },
    /// Mean cross-entropy of the rows of `logits` against class ids `ids[span]`, over the
    /// targets that are not [`IGNORED`].
    CrossEntropy { logits: NodeId, targets: Span },
    /// Mean cross-entropy of the rows of `table` picked by `ids[ids]` against `ids[targets]`:
    /// `CrossEntropy(Embedding(table, ids), targets)` fused.
    LookupCrossEntropy { table: NodeId, ids: Span, targets: Span },
}

/// Where BatchNorm's statistics come from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum BatchStats {
    /// Training: the batch's mean and variance, the variance dividing by `n - correction`.
    Batch { correction: u8 },
    /// Evaluation: fixed running statistics (nodes that get no gradient).
    Running { mean: NodeId, var: NodeId },
}

/// A cross-entropy target that is ignored (`ignore_index` in PyTorch); public as
/// [`crate::IGNORE`].
pub(crate) const IGNORED: u32 = u32::MAX;
