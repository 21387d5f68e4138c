//! makemore.py's own models, on the engine: [`Transformer`], [`BoW`], [`Rnn`] and [`Gru`]
//! (makemore's `RNN(cell_type="rnn")` and `RNN(cell_type="gru")`: one recurrent model over a
//! [`RnnCell`] or a [`GruCell`]), [`MlpMakemore`] (makemore's `MLP`, with its blank token) and
//! [`BigramMakemore`], sized by one [`ModelConfig`] as in makemore. [`Makemore`] is any of them
//! ([`Kind`]) with its vocabulary, as a [`crate::Model`] that trains, samples and saves.
//!
//! Unlike the lectures' models, these read whole words: `idx` `[B, T]` is makemore's
//! `CharDataset` input (`[0, w...]` padded with 0), the logits are `[B, T, vocab_size]` (one
//! prediction per position), and the loss is makemore's
//! `F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-1)`
//! ([`ZooModel::loss`]).
//!
//! Parameters carry makemore's `state_dict()` names in PyTorch's layouts (an `nn.Linear` weight
//! is `[out, in]`, applied with `linear_t`), registered in `named_parameters()` order, so that a
//! PyTorch state dict loads by name ([`ZooModel::load`]) and the golden cases' gradients line up.
//! A fresh model ([`ZooModel::new`]) starts as PyTorch's modules do.

mod bigram;
mod bow;
#[cfg(feature = "golden")]
pub mod golden;
mod layers;
mod makemore;
mod mlp_makemore;
mod params;
mod rnn;
mod transformer;

pub use bigram::BigramMakemore;
pub use bow::BoW;
pub use layers::{Embedding, LayerNorm, Linear};
pub use makemore::{Kind, Makemore};
pub use mlp_makemore::MlpMakemore;
pub use params::{Builder, Init, ParamError};
pub use rnn::{Cell, Gru, GruCell, Recurrent, Rnn, RnnCell};
pub use transformer::{KvCache, Transformer, TransformerOptions};

use mm_tensor::{Float, Graph, ParamStore, Var};
use ndarray::ArrayView2;
use rand::RngCore;

use crate::{ModelError, Result};

/// The sizes of a model, as makemore's `ModelConfig`; each model reads the fields it uses
/// (makemore's comment: "parameters below control the sizes of each model slightly
/// differently").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// Length of the input sequences (makemore: the longest word + 1).
    pub block_size: usize,
    /// Token ids are in `0..vocab_size` (0 is the start/end token).
    pub vocab_size: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block (`n_embd` must be a multiple).
    pub n_head: usize,
    /// Embedding width.
    pub n_embd: usize,
    /// The second width: the RNN's hidden state, the BoW's and the MLP's hidden layer.
    pub n_embd2: usize,
}

impl Default for ModelConfig {
    /// makemore's defaults (n_layer 4, n_head 4, n_embd 64, n_embd2 64) on `names.txt`
    /// (block_size 16, vocab_size 27).
    fn default() -> Self {
        ModelConfig { block_size: 16, vocab_size: 27, n_layer: 4, n_head: 4, n_embd: 64, n_embd2: 64 }
    }
}

impl ModelConfig {
    /// The size called `key` (`block_size`, `vocab_size`, `n_layer`, `n_head`, `n_embd`,
    /// `n_embd2`); 0 for another name.
    pub fn size(&self, key: &str) -> usize {
        match key {
            "block_size" => self.block_size,
            "vocab_size" => self.vocab_size,
            "n_layer" => self.n_layer,
            "n_head" => self.n_head,
            "n_embd" => self.n_embd,
            "n_embd2" => self.n_embd2,
            _ => 0,
        }
    }

    /// Checks the sizes `kind` uses: all at least 1, and for the Transformer `n_embd` a
    /// multiple of `n_head` (makemore asserts it).
    pub fn check(&self, kind: &str) -> Result<()> {
        let c = self;
        let mut sizes =
            vec![("block_size", c.block_size), ("vocab_size", c.vocab_size), ("n_embd", c.n_embd)];
        match kind {
            "transformer" => sizes.extend([("n_layer", c.n_layer), ("n_head", c.n_head)]),
            "bigram" => sizes.retain(|(name, _)| *name != "n_embd"),
            _ => sizes.push(("n_embd2", c.n_embd2)),
        }
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(ModelError::Config(format!("{kind}: {name} must be at least 1")));
        }
        if kind == "transformer" && !c.n_embd.is_multiple_of(c.n_head) {
            return Err(ModelError::Config(format!(
                "transformer: n_embd {} is not a multiple of n_head {}",
                c.n_embd, c.n_head
            )));
        }
        Ok(())
    }
}

/// What every makemore.py model shares: built from a [`ModelConfig`] by declaring its
/// parameters once ([`ZooModel::build`]), either freshly initialised or loaded by name, and a
/// forward pass from `idx` `[B, T]` to logits `[B, T, vocab_size]`.
pub trait ZooModel<T: Float>: Sized {
    /// makemore's `--type` name: `transformer`, `bow`, `rnn`, `gru`, `mlp`.
    fn kind(&self) -> &'static str;

    /// Declares the model's parameters through `b`, in `named_parameters()` order, and returns
    /// the model owning them.
    fn build(config: ModelConfig, b: Builder<'_, T>) -> Result<Self>;

    /// The sizes.
    fn config(&self) -> &ModelConfig;

    /// The parameters, under makemore's `state_dict()` names.
    fn params(&self) -> &ParamStore<T>;

    /// The parameters, writable (the optimizer updates them).
    fn params_mut(&mut self) -> &mut ParamStore<T>;

    /// makemore's `forward(idx)`: logits `[B, T, vocab_size]` for `idx` `[B, T]`.
    fn forward<'g>(&self, g: &'g Graph<'_, T>, idx: ArrayView2<'_, u32>) -> Var<'g, T>;

    /// makemore's `forward(idx, targets)`'s loss:
    /// `F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-1)`, the mean over
    /// the targets that are not -1.
    fn loss<'g>(
        &self,
        g: &'g Graph<'_, T>,
        idx: ArrayView2<'_, u32>,
        targets: ArrayView2<'_, i64>,
    ) -> Var<'g, T> {
        self.forward(g, idx).cross_entropy_ignore(&targets, -1)
    }

    /// A fresh model, initialised as PyTorch's modules are (see [`Init`]), from `rng`.
    fn new(config: ModelConfig, rng: &mut dyn RngCore) -> Result<Self> {
        Self::build(config, Builder::init(rng))
    }

    /// The model with the parameters of `state` (looked up by their `state_dict()` names, as
    /// `load_state_dict(strict=True)`: a missing, misshapen or unexpected parameter is an error).
    fn load(config: ModelConfig, state: &ParamStore<T>) -> Result<Self> {
        Self::build(config, Builder::load(state))
    }

    /// The number of scalar parameters.
    fn num_params(&self) -> usize {
        self.params().numel()
    }
}
