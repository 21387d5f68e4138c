//! # mm-models
//!
//! The models of the makemore lectures on the mm-tensor engine, as a library: no printing, no
//! exiting; progress goes to an observer the caller owns.
//!
//! - [`BigramCounts`]: the counting model of part 1 (`N`, smoothing, NLL).
//! - [`BigramNet`]: the bigram neural net of part 1 (`W`, L2 regularisation).
//! - [`Mlp`]: the MLP of part 2 (`C`, `W1`, `b1`, `W2`, `b2`), with part 3's initialisation as an
//!   option.
//! - [`BnMlp`]: the BatchNorm MLP of part 3 (`bngain`, `bnbias`, running mean and std).
//! - [`WaveNet`]: the WaveNet of part 5 (pairs of neighbours fused level by level).
//! - [`train`] and [`evaluate`]: one training loop for every [`Model`], and the loss on a split.
//! - [`sample`] and [`sample_counts`]: new items, batched, with temperature, top-k and a prefix;
//!   [`Novelty`] tells them apart as in the training set, in dev/test, or new.
//! - [`ensemble`]: several neural models as one, the mixture of their predicted distributions
//!   ([`evaluate_ensemble`], [`sample_ensemble`]).
//! - [`lr_sweep()`] and [`lr_grid`]: finding the learning rate, as the lecture does and more
//!   reliably.
//! - [`zoo`]: makemore.py's own models (`Transformer`, `BoW`, `RNN` with its RNN and GRU cells,
//!   `MLP`), parameters under its `state_dict()` names, checked against PyTorch's golden values.
//! - [`registry`]: the one list of model kinds: a [`Spec`] (kind and hyperparameters) builds
//!   any model; [`AnyModel`] holds one.
//! - [`limits`]: the ranges of every setting, for flags and files alike.
//! - [`checkpoint`]: safetensors files with the lectures' tensor names, readable by PyTorch.

mod bigram;
mod bigram_nn;
mod bn_mlp;
pub mod checkpoint;
pub mod ensemble;
mod error;
pub mod limits;
pub mod lr_sweep;
mod mlp;
mod model;
pub mod registry;
mod sample;
mod train;
mod wavenet;
pub mod zoo;

// mm-data marks a position without a target as the engine's loss ignores it.
const _: () = assert!(mm_data::Examples::NO_TARGET == mm_tensor::IGNORE);

pub use bigram::BigramCounts;
pub use bigram_nn::BigramNet;
pub use bn_mlp::{BnMlp, BnMlpConfig};
pub use ensemble::{check_ensemble, evaluate_ensemble, sample_ensemble};
pub use error::{ModelError, Result};
pub use limits::LimitError;
pub use lr_sweep::{GridPoint, LrSweep, Suggestion, SweepConfig, ema, lr_grid, lr_sweep};
pub use mlp::{Init, Mlp, MlpConfig};
pub use model::{Decoder, Model};
pub use registry::{AnyModel, LrDecay, ModelRef, Spec, SpecError};
pub use sample::{Novelty, Origin, SampleConfig, sample, sample_counts};
pub use train::{
    Best, OptimizerKind, Progress, SavePoint, Schedule, StepMetrics, TrainConfig, TrainReport, evaluate,
    perplexity, step_bytes, train, train_from, train_saving,
};
pub use wavenet::{WaveNet, WaveNetConfig};
