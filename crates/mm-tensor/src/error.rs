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
    /// An operand that must broadcast to a given shape (a `masked_fill` mask to its input's) and
    /// does not.
    #[error("{op}: shape {from} does not broadcast to {to}")]
    BroadcastTo {
        /// The op.
        op: &'static str,
        /// The operand's shape.
        from: Shape,
        /// The shape it must broadcast to.
        to: Shape,
    },
    /// A product (`matmul`, `linear`, `linear_t`) of operands whose inner dimensions differ,
    /// whose batch axes do not broadcast, or of rank below 2. For `linear_t` the right operand is
    /// the weight as stored, `[out, in]`.
    #[error("{op}: cannot multiply {lhs} by {rhs}")]
    MatMul {
        /// The op: `matmul`, `linear` or `linear_t`.
        op: &'static str,
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
    /// `concat` or `stack` of tensors whose other dimensions differ (no tensors at all is
    /// [`TensorError::NothingToJoin`]).
    #[error("concat: cannot join {lhs} and {rhs} along axis {axis}")]
    Concat {
        /// The first operand's shape.
        lhs: Shape,
        /// The mismatching operand's shape.
        rhs: Shape,
        /// The axis.
        axis: usize,
    },
    /// `permute` with a list that is not a permutation of the axes.
    #[error("permute: {perm:?} is not a permutation of the {} axes of shape {shape}", shape.rank())]
    Permutation {
        /// The axis order asked for.
        perm: Vec<usize>,
        /// The operand's shape.
        shape: Shape,
    },
    /// `narrow` past the end of an axis.
    #[error("narrow: elements {start}..{end} of axis {axis} are past the end of shape {shape}", end = start.saturating_add(*len))]
    Narrow {
        /// The axis.
        axis: usize,
        /// The first element asked for.
        start: usize,
        /// How many elements.
        len: usize,
        /// The operand's shape.
        shape: Shape,
    },
    /// A set of axes an op cannot reduce over: repeated, out of range, or (for `batch_norm`)
    /// none or all of them.
    #[error("{op}: cannot reduce shape {shape} over axes {axes:?}: {hint}")]
    Axes {
        /// The op.
        op: &'static str,
        /// The axes asked for.
        axes: Vec<usize>,
        /// The operand's shape.
        shape: Shape,
        /// What would work.
        hint: &'static str,
    },
    /// An op that needs at least some rank got a tensor of fewer axes.
    #[error("{op}: expected a tensor of rank {min} or more, got shape {got}")]
    RankBelow {
        /// The op.
        op: &'static str,
        /// The least rank it takes.
        min: usize,
        /// The shape it got.
        got: Shape,
    },
    /// A variance's correction past what the engine stores (0 to 255; PyTorch's are 0 and 1).
    #[error("{op}: correction {correction} is not supported (0 to 255: 0 as BatchNorm1d, 1 as x.var())")]
    Correction {
        /// The op.
        op: &'static str,
        /// The correction asked for.
        correction: usize,
    },
    /// A variance over too few values for its correction (a batch of one with Bessel's
    /// correction divides by zero).
    #[error(
        "{op}: {count} value(s) per statistic with correction {correction} divides by zero \
         (shape {shape}); use a larger batch or correction 0"
    )]
    TooFewValues {
        /// The op.
        op: &'static str,
        /// Values per mean/variance.
        count: usize,
        /// The correction asked for.
        correction: usize,
        /// The operand's shape.
        shape: Shape,
    },
    /// `cross_entropy` whose targets are all ignored: the mean over no targets is undefined.
    #[error(
        "cross_entropy: all {targets} targets equal ignore_index {ignore_index}; the mean over none is undefined"
    )]
    AllIgnored {
        /// The number of targets.
        targets: usize,
        /// The ignored id.
        ignore_index: i64,
    },
    /// A dropout probability outside `[0, 1]`.
    #[error("{op}: p = {p} is not a probability in [0, 1]")]
    Probability {
        /// The op.
        op: &'static str,
        /// The probability given.
        p: f64,
    },
    /// A sum of shard gradients asked for with no gradients in the shards: before a sharded
    /// step's backward, or after one that failed.
    #[error("shards: no gradients to sum; run Shards::backward first (and check that it succeeded)")]
    NoShardGradients,
    /// A data-parallel shard whose weight (its share of the batch) is not a positive number.
    #[error("shards: shard {shard} has weight {weight}; a shard's weight is its share of the batch, above 0")]
    ShardWeight {
        /// The shard.
        shard: usize,
        /// The weight it returned.
        weight: f64,
    },
    /// `causal_self_attention` of a tensor that is not `[B, T, 3 · n_head · head_size]`.
    #[error(
        "attention: {shape} is not [B, T, 3C] with C split into {heads} heads (q, k and v side by side on the last axis)"
    )]
    Heads {
        /// The operand's shape.
        shape: Shape,
        /// The number of heads asked for.
        heads: usize,
    },
    /// `rotary_qk` of a tensor that is not `[B, T, 3 · n_head · head_size]` with an even
    /// `head_size`.
    #[error(
        "rotary: {shape} is not [B, T, 3C] with C split into {heads} heads of an even size (q, k and v side by side on the last axis)"
    )]
    RotaryHeads {
        /// The operand's shape.
        shape: Shape,
        /// The number of heads asked for.
        heads: usize,
    },
    /// `concat` or `stack` of no tensors.
    #[error("{op}: no tensors to join")]
    NothingToJoin {
        /// The op.
        op: &'static str,
    },
    /// Logits whose class axis is empty: no class for a target to be.
    #[error("cross_entropy: logits of shape {logits} have no classes")]
    NoClasses {
        /// The logits' shape.
        logits: Shape,
    },
    /// `lookup_cross_entropy` with as many ids as targets required, and another count given.
    #[error("lookup_cross_entropy: {ids} ids but {targets} targets")]
    IdsTargets {
        /// The number of ids.
        ids: usize,
        /// The number of targets.
        targets: usize,
    },
    /// A linear layer's bias that is not one value per output.
    #[error("linear: a bias of shape {bias} for a weight of shape {weight} ({outputs} outputs)")]
    Bias {
        /// The weight's shape.
        weight: Shape,
        /// The bias's shape.
        bias: Shape,
        /// The outputs the weight has.
        outputs: usize,
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
    /// A running statistic of BatchNorm in evaluation mode that depends on parameters: the op
    /// gives running statistics no gradient, so it would be lost without a word.
    #[error(
        "{op}: the running {what} depends on parameters, and running statistics get no gradient: pass a buffer or a constant (as PyTorch's running_mean and running_var)"
    )]
    RunningStatGrad {
        /// The op.
        op: &'static str,
        /// `mean` or `variance`.
        what: &'static str,
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
