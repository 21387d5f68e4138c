//! `ModelError`: what went wrong in a model, its training or its sampling.

/// An error of mm-models.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An error of the data (an unknown character, a bad split, ...).
    #[error(transparent)]
    Data(#[from] mm_data::DataError),
    /// An error of the engine (shapes, ids).
    #[error(transparent)]
    Tensor(#[from] mm_tensor::TensorError),
    /// A zoo model's parameter that cannot be loaded (missing, misshapen, unexpected).
    #[error(transparent)]
    Param(#[from] crate::zoo::ParamError),
    /// A checkpoint that cannot be read, written or trusted.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// A file that is not in the expected format (e.g. a sweep's CSV).
    #[error("invalid file: {0}")]
    Format(String),
    /// A configuration value out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Training diverged: the loss, the dev loss or a parameter became NaN or infinite
    /// ([`crate::train_saving`] stops there, so that a run never saves such weights).
    #[error("training diverged at step {step}: {what}; lower the learning rate or the weight decay")]
    Diverged {
        /// The step (from 1) at which it was found.
        step: usize,
        /// What was not finite (e.g. "the training loss is NaN").
        what: String,
    },
    /// More than one shard for a model that normalises with its batch's statistics
    /// (BatchNorm): each shard would normalise with its own rows' statistics, another model
    /// than the one trained on the whole batch.
    #[error(
        "{kind} normalises with its batch's statistics (BatchNorm), so its step cannot be cut into \
         {shards} shards; train it with 1 shard"
    )]
    ShardedBatchNorm {
        /// The model's kind.
        kind: &'static str,
        /// The shards asked for.
        shards: usize,
    },
    /// The models of an ensemble do not read alike ([`crate::evaluate_ensemble`],
    /// [`crate::sample_ensemble`]): model `member` (counted from 1) differs from model 1 in
    /// `what` (its vocabulary, layout or block_size).
    #[error(
        "model {member} of the ensemble has {what} {got}, model 1 has {first}: the models of an \
         ensemble must share their vocabulary, layout and block_size"
    )]
    EnsembleMismatch {
        /// The model that differs, counted from 1 (so never 1).
        member: usize,
        /// What differs: `"vocabulary"`, `"layout"` or `"block_size"`.
        what: &'static str,
        /// Its value of it.
        got: String,
        /// Model 1's value of it.
        first: String,
    },
    /// A stop request ended work whose partial result would mislead (a learning-rate sweep or
    /// grid); `train` itself reports a stop in its `TrainReport` instead.
    #[error("{0} was stopped before it finished")]
    Stopped(&'static str),
}

/// mm-models' `Result`.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
