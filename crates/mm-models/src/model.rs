//! The interface every neural model shares: what the training loop, evaluation and sampling need.

use mm_data::Vocab;
use mm_tensor::{Graph, ParamStore, Var};
use ndarray::ArrayView2;

/// A neural character model: from a batch of contexts to logits over the vocabulary. Models are
/// `Sync`, so that evaluation can share one among threads.
pub trait Model: Sync {
    /// The model's kind, e.g. `"mlp"` or `"bigram-nn"` (checkpoints record it).
    fn kind(&self) -> &'static str;

    /// The vocabulary.
    fn vocab(&self) -> &Vocab;

    /// How many previous characters the model sees.
    fn block_size(&self) -> usize;

    /// The hyperparameters, as `(name, value)` pairs (checkpoints record them as metadata).
    fn config(&self) -> Vec<(&'static str, String)>;

    /// The named parameters.
    fn params(&self) -> &ParamStore<f32>;

    /// The named parameters, writable (the optimizer updates them).
    fn params_mut(&mut self) -> &mut ParamStore<f32>;

    /// The forward pass: logits `[B, V]` for contexts `x` `[B, block_size]`.
    fn forward<'g>(&self, g: &'g Graph<'g, f32>, x: ArrayView2<'_, u32>) -> Var<'g, f32>;

    /// The training loss for contexts `x` and targets `y`: the mean cross-entropy, plus any
    /// regularisation the model has (the bigram net's `reg * mean(W²)`).
    fn loss<'g>(&self, g: &'g Graph<'g, f32>, x: ArrayView2<'_, u32>, y: &[u32]) -> Var<'g, f32> {
        self.forward(g, x).cross_entropy(y)
    }

    /// The number of scalar parameters.
    fn num_params(&self) -> usize {
        self.params().numel()
    }
}
