//! # mm-models
//!
//! The models of the makemore lectures on the mm-tensor engine, as a library: no printing, no
//! exiting; progress goes to callbacks the caller owns.
//!
//! - [`BigramCounts`]: the counting model of part 1 (`N`, smoothing, NLL).
//!
//! Still to come (the mm-models issue): the bigram neural net, the MLP, the training loop,
//! sampling and checkpoints.

mod bigram;
mod error;

pub use bigram::BigramCounts;
pub use error::{ModelError, Result};
