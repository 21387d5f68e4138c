//! makemore.py's `BoW` ("bag of words"): token and position embeddings (`wte`, `wpe`), one
//! `BoWBlock` (the causal average of the positions so far, then a tanh MLP, each added to its
//! input) and `lm_head`. makemore's default (n_embd 64, n_embd2 64, block_size 16, vocab 27)
//! has 12,827 parameters.

use mm_tensor::{Float, Graph, ParamStore, Var};
use ndarray::ArrayView2;

use super::{Builder, Embedding, Linear, ModelConfig, ZooModel};
use crate::Result;

/// makemore's `CausalBoW`: each position becomes the mean of the positions up to it. makemore
/// writes it as attention with zero scores, `softmax(zeros.masked_fill(mask, -inf)) @ x`, whose
/// weights are `1 / (t + 1)` on and below the diagonal: the running mean along the sequence
/// axis, which `causal_mean` takes in one pass instead of a `T x T` product per sequence (the
/// two agree to rounding: `tests/zoo_ops.rs` in mm-tensor).
fn causal_bow<'g, T: Float>(x: Var<'g, T>) -> Var<'g, T> {
    x.causal_mean(1) // x is [B, T, C]
}

/// makemore's `BoWBlock`: `x + cbow(x)`, then `x + mlp.c_proj(tanh(mlp.c_fc(x)))`.
#[derive(Clone, Debug)]
struct BoWBlock {
    c_fc: Linear,
    c_proj: Linear,
}

impl BoWBlock {
    fn forward<'g, T: Float>(&self, x: Var<'g, T>) -> Var<'g, T> {
        let x = x + causal_bow(x);
        x + self.c_proj.forward(self.c_fc.forward(x).tanh())
    }
}

/// makemore.py's `BoW` language model.
#[derive(Clone, Debug)]
pub struct BoW<T = f32> {
    config: ModelConfig,
    params: ParamStore<T>,
    wte: Embedding,
    wpe: Embedding,
    context_block: BoWBlock,
    lm_head: Linear,
}

impl<T: Float> ZooModel<T> for BoW<T> {
    fn kind(&self) -> &'static str {
        "bow"
    }

    /// `wte`, `wpe`, `context_block.mlp.c_fc`, `context_block.mlp.c_proj`, `lm_head`.
    fn build(config: ModelConfig, mut b: Builder<'_, T>) -> Result<Self> {
        config.check("bow")?;
        let c = &config;
        let wte = Embedding::new(&mut b, "wte", c.vocab_size, c.n_embd)?;
        let wpe = Embedding::new(&mut b, "wpe", c.block_size, c.n_embd)?;
        let context_block = BoWBlock {
            c_fc: Linear::new(&mut b, "context_block.mlp.c_fc", c.n_embd, c.n_embd2, true)?,
            c_proj: Linear::new(&mut b, "context_block.mlp.c_proj", c.n_embd2, c.n_embd, true)?,
        };
        let lm_head = Linear::new(&mut b, "lm_head", c.n_embd, c.vocab_size, true)?;
        Ok(BoW { config, params: b.finish()?, wte, wpe, context_block, lm_head })
    }

    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn params(&self) -> &ParamStore<T> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamStore<T> {
        &mut self.params
    }

    /// `x = wte(idx) + wpe(arange(t))`; `lm_head(context_block(x))`. A `t` beyond `block_size`
    /// is the error of the position table's narrow (makemore asserts).
    fn forward<'g>(&self, g: &'g Graph<'_, T>, idx: ArrayView2<'_, u32>) -> Var<'g, T> {
        let x = self.wte.forward(g, &idx) + self.wpe.first(g, idx.ncols());
        self.lm_head.forward(self.context_block.forward(x))
    }
}
