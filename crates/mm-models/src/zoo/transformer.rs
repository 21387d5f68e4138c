//! makemore.py's `Transformer` ("exactly as seen in GPT-2"): token and position embeddings
//! (`wte`, `wpe`), `n_layer` pre-LayerNorm blocks of causal multi-head self-attention and a 4x
//! MLP with `NewGELU`, a final LayerNorm (`ln_f`) and `lm_head` without bias. makemore's
//! default (n_layer 4, n_head 4, n_embd 64, block_size 16, vocab 27) has 204,544 parameters.

use mm_tensor::{Float, Graph, ParamStore, Var};
use ndarray::ArrayView2;

use super::{Builder, Embedding, LayerNorm, Linear, ModelConfig, ZooModel};
use crate::Result;

/// makemore's `CausalSelfAttention`: `c_attn` projects to q, k, v for all heads at once
/// (`[3 n_embd, n_embd]`), `c_proj` mixes the heads' outputs.
#[derive(Clone, Debug)]
struct CausalSelfAttention {
    c_attn: Linear,
    c_proj: Linear,
    n_head: usize,
}

impl CausalSelfAttention {
    /// `y = c_proj(softmax(q kᵀ / sqrt(hs), causal) v)` per head, for `x` `[B, T, C]`.
    /// makemore splits c_attn's output into q, k, v, views each as `[B, nh, T, hs]`, masks and
    /// softmaxes the scores, and joins the heads back into `[B, T, C]`; the engine's
    /// `causal_self_attention(n_head)` is that whole middle in one op (the same values and
    /// gradients as the `narrow` / `reshape` / `transpose` / `causal_attention` composition,
    /// without its copies).
    fn forward<'g, T: Float>(&self, x: Var<'g, T>) -> Var<'g, T> {
        let qkv = self.c_attn.forward(x); // [B, T, 3C]: q, k, v side by side
        let y = qkv.causal_self_attention(self.n_head); // [B, T, C]: the heads side by side
        self.c_proj.forward(y)
    }
}

/// makemore's `Block`: `x + attn(ln_1(x))`, then `x + mlp.c_proj(gelu(mlp.c_fc(ln_2(x))))`.
#[derive(Clone, Debug)]
struct Block {
    ln_1: LayerNorm,
    attn: CausalSelfAttention,
    ln_2: LayerNorm,
    c_fc: Linear,
    c_proj: Linear,
}

impl Block {
    fn new<T: Float>(b: &mut Builder<'_, T>, name: &str, c: &ModelConfig) -> Result<Self> {
        let n = c.n_embd;
        Ok(Block {
            ln_1: LayerNorm::new(b, &format!("{name}.ln_1"), n)?,
            attn: CausalSelfAttention {
                c_attn: Linear::new(b, &format!("{name}.attn.c_attn"), n, 3 * n, true)?,
                c_proj: Linear::new(b, &format!("{name}.attn.c_proj"), n, n, true)?,
                n_head: c.n_head,
            },
            ln_2: LayerNorm::new(b, &format!("{name}.ln_2"), n)?,
            c_fc: Linear::new(b, &format!("{name}.mlp.c_fc"), n, 4 * n, true)?,
            c_proj: Linear::new(b, &format!("{name}.mlp.c_proj"), 4 * n, n, true)?,
        })
    }

    fn forward<'g, T: Float>(&self, x: Var<'g, T>) -> Var<'g, T> {
        let x = x + self.attn.forward(self.ln_1.forward(x));
        // `gelu` is the tanh approximation: makemore's `NewGELU`.
        x + self.c_proj.forward(self.c_fc.forward(self.ln_2.forward(x)).gelu())
    }
}

/// makemore.py's `Transformer` language model.
#[derive(Clone, Debug)]
pub struct Transformer<T = f32> {
    config: ModelConfig,
    params: ParamStore<T>,
    wte: Embedding,
    wpe: Embedding,
    h: Vec<Block>,
    ln_f: LayerNorm,
    lm_head: Linear,
}

impl<T: Float> ZooModel<T> for Transformer<T> {
    fn kind(&self) -> &'static str {
        "transformer"
    }

    /// `transformer.wte`, `transformer.wpe`, `transformer.h.{i}.*`, `transformer.ln_f`,
    /// `lm_head` (no bias).
    fn build(config: ModelConfig, mut b: Builder<'_, T>) -> Result<Self> {
        config.check("transformer")?;
        let c = &config;
        let wte = Embedding::new(&mut b, "transformer.wte", c.vocab_size, c.n_embd)?;
        let wpe = Embedding::new(&mut b, "transformer.wpe", c.block_size, c.n_embd)?;
        let h = (0..c.n_layer)
            .map(|i| Block::new(&mut b, &format!("transformer.h.{i}"), c))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = LayerNorm::new(&mut b, "transformer.ln_f", c.n_embd)?;
        let lm_head = Linear::new(&mut b, "lm_head", c.n_embd, c.vocab_size, false)?;
        Ok(Transformer { config, params: b.finish()?, wte, wpe, h, ln_f, lm_head })
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

    /// `x = wte(idx) + wpe(arange(t))`; the blocks; `lm_head(ln_f(x))`. A `t` beyond
    /// `block_size` is the error of the position table's narrow (makemore asserts).
    fn forward<'g>(&self, g: &'g Graph<'_, T>, idx: ArrayView2<'_, u32>) -> Var<'g, T> {
        let tok_emb = self.wte.forward(g, &idx); // [B, T, C]
        let pos_emb = self.wpe.first(g, idx.ncols()); // [T, C], broadcast over the batch
        let mut x = tok_emb + pos_emb;
        for block in &self.h {
            x = block.forward(x);
        }
        self.lm_head.forward(self.ln_f.forward(x))
    }
}
