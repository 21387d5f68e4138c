//! The interface every neural model shares: what the training loop, evaluation and sampling need.

use mm_data::{Layout, Vocab};
use mm_tensor::{BatchStatsLog, Graph, ParamStore, Var};
use ndarray::ArrayView2;

/// A neural character model: from a batch of inputs to logits over the vocabulary. The
/// lectures' models read context windows ([`Layout::Windows`]: `x` `[B, block_size]`, logits
/// `[B, V]`, one prediction per row); makemore.py's read whole words ([`Layout::Words`]: `x`
/// `[B, T]` with `T <= block_size`, logits `[B, T, V]`, one prediction per position, each
/// seeing only the positions before it). Models are `Sync`, so that evaluation can share one
/// among threads.
pub trait Model: Sync {
    /// The model's kind, e.g. `"mlp"` or `"transformer"` (checkpoints record it).
    fn kind(&self) -> &'static str;

    /// The vocabulary.
    fn vocab(&self) -> &Vocab;

    /// How many positions the model sees: the context of a window, or the longest sequence.
    fn block_size(&self) -> usize;

    /// How the model reads words: windows (the default) or whole words.
    fn layout(&self) -> Layout {
        Layout::Windows
    }

    /// The hyperparameters, as `(name, value)` pairs (checkpoints record them as metadata).
    fn config(&self) -> Vec<(&'static str, String)>;

    /// The named parameters (and buffers, such as BatchNorm's running statistics).
    fn params(&self) -> &ParamStore<f32>;

    /// The named parameters, writable (the optimizer updates them).
    fn params_mut(&mut self) -> &mut ParamStore<f32>;

    /// The forward pass: logits `[B, V]` for windows `x` `[B, block_size]`, or `[B, T, V]` for
    /// words `x` `[B, T]`.
    fn forward<'g>(&self, g: &'g Graph<'g, f32>, x: ArrayView2<'_, u32>) -> Var<'g, f32>;

    /// The training loss for inputs `x` and their targets `y` (one per row of the logits,
    /// flattened: `[B]` for windows, `[B·T]` for words, `mm_tensor::IGNORE` where a position has
    /// none): the mean cross-entropy over the targets, plus any regularisation the model has (the
    /// bigram net's `reg * mean(W²)`).
    fn loss<'g>(&self, g: &'g Graph<'g, f32>, x: ArrayView2<'_, u32>, y: &[u32]) -> Var<'g, f32> {
        self.forward(g, x).cross_entropy(y)
    }

    /// The training loss of shard `shard` of a step whose batch is cut into shards
    /// ([`crate::TrainConfig::shards`]), for the shard's rows `x` and targets `y`: [`Model::loss`]
    /// itself (the default) for every model whose training forward draws no random numbers. A
    /// model with dropout draws shard `shard`'s own masks, from a generator seeded by
    /// [`Model::begin_step`]'s seed and step and the shard alone, so that the masks never depend
    /// on which thread runs the shard or when; shard 0's are the masks [`Model::loss`] draws.
    fn shard_loss<'g>(
        &self,
        g: &'g Graph<'g, f32>,
        x: ArrayView2<'_, u32>,
        y: &[u32],
        _shard: usize,
    ) -> Var<'g, f32> {
        self.loss(g, x, y)
    }

    /// Whether the training forward pass normalises with the batch's own statistics
    /// (BatchNorm): its loss then depends on how the batch is cut, and the training loop
    /// refuses more than one shard for it ([`crate::ModelError::ShardedBatchNorm`]). `false`,
    /// the default, for models without BatchNorm.
    fn batch_statistics(&self) -> bool {
        false
    }

    /// Updates the state that training changes besides the parameters, from the training
    /// step's BatchNorm statistics in the order its forward pass recorded them: BatchNorm's
    /// running averages (PyTorch updates them inside `forward`; here the graph holds the
    /// parameters while it lives, so the training loop calls this after the optimizer's step).
    /// Models without BatchNorm keep the default, which does nothing. In a graph without
    /// gradients ([`mm_tensor::Tape::no_grad`]) a model normalises with its running statistics.
    fn update_running(&mut self, _stats: &BatchStatsLog<f32>) -> crate::Result<()> {
        Ok(())
    }

    /// Called by the training loop before step `step` of a run seeded `seed`: a model with
    /// dropout reseeds the generator of its masks from the two, so that the masks depend on the
    /// run and the step only (a continued run draws those of an uninterrupted one, as
    /// [`crate::train_from`] promises). Models without dropout keep the default, which does
    /// nothing.
    fn begin_step(&self, _seed: u64, _step: usize) {}

    /// A decoder of `n` sequences for sampling, for models that read words and can feed one
    /// position at a time faster than re-reading the whole prefix (the Transformer, with its
    /// key/value cache). `None`, the default: sampling runs the forward pass over the prefix at
    /// each step, as makemore's `generate` does.
    fn decoder(&self, _n: usize) -> Option<Box<dyn Decoder + '_>> {
        None
    }

    /// The number of scalar parameters (buffers, such as running statistics, are not).
    fn num_params(&self) -> usize {
        self.params().numel()
    }
}

/// A boxed model is a model (every method forwarded, the defaults too: a method left to its
/// default here would silently skip the inner model's own): what a kind chosen at
/// run time from the registry ([`crate::AnyModel::into_neural`]) gives to generic code such as
/// [`crate::lr_sweep()`].
impl<M: Model + ?Sized> Model for Box<M> {
    fn kind(&self) -> &'static str {
        (**self).kind()
    }

    fn vocab(&self) -> &Vocab {
        (**self).vocab()
    }

    fn block_size(&self) -> usize {
        (**self).block_size()
    }

    fn layout(&self) -> Layout {
        (**self).layout()
    }

    fn config(&self) -> Vec<(&'static str, String)> {
        (**self).config()
    }

    fn params(&self) -> &ParamStore<f32> {
        (**self).params()
    }

    fn params_mut(&mut self) -> &mut ParamStore<f32> {
        (**self).params_mut()
    }

    fn forward<'g>(&self, g: &'g Graph<'g, f32>, x: ArrayView2<'_, u32>) -> Var<'g, f32> {
        (**self).forward(g, x)
    }

    fn loss<'g>(&self, g: &'g Graph<'g, f32>, x: ArrayView2<'_, u32>, y: &[u32]) -> Var<'g, f32> {
        (**self).loss(g, x, y)
    }

    fn shard_loss<'g>(
        &self,
        g: &'g Graph<'g, f32>,
        x: ArrayView2<'_, u32>,
        y: &[u32],
        shard: usize,
    ) -> Var<'g, f32> {
        (**self).shard_loss(g, x, y, shard)
    }

    fn batch_statistics(&self) -> bool {
        (**self).batch_statistics()
    }

    fn update_running(&mut self, stats: &BatchStatsLog<f32>) -> crate::Result<()> {
        (**self).update_running(stats)
    }

    fn begin_step(&self, seed: u64, step: usize) {
        (**self).begin_step(seed, step)
    }

    fn decoder(&self, n: usize) -> Option<Box<dyn Decoder + '_>> {
        (**self).decoder(n)
    }

    fn num_params(&self) -> usize {
        (**self).num_params()
    }
}

/// Incremental decoding, for sampling: sequences fed one position at a time, the decoder keeping
/// what later positions need of the earlier ones.
pub trait Decoder {
    /// Feeds `ids[i]` as the token at position `t` of sequence `rows[i]` (positions `0..t` of
    /// those sequences fed before) and returns the logits of the next token,
    /// `[rows.len(), vocab]`: row `t` of the forward pass over the whole prefix, up to rounding.
    fn step(&mut self, rows: &[usize], ids: &[u32], t: usize) -> crate::Result<ndarray::Array2<f32>>;
}
