//! makemore.py's `MLP` (Bengio et al. 2003 over whole words): at every position, the embeddings
//! (`wte`) of the `block_size` previous tokens, a blank token (id `vocab_size`, the table's
//! extra row) before the start of the word, concatenated and passed through
//! `mlp = Sequential(Linear, Tanh, Linear)`. makemore's default (block_size 16, n_embd 64,
//! n_embd2 64, vocab 27) has 69,147 parameters.

use mm_tensor::{Float, Graph, ParamStore, Var};
use ndarray::{Array3, ArrayView2};

use super::{Builder, Embedding, Linear, ModelConfig, ZooModel};
use crate::Result;

thread_local! {
    /// The context ids of the last forward pass on this thread (see [`MlpMakemore::context`]).
    static CONTEXT: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// makemore.py's `MLP` language model (the lectures' MLP is [`crate::Mlp`]).
#[derive(Clone, Debug)]
pub struct MlpMakemore<T = f32> {
    config: ModelConfig,
    params: ParamStore<T>,
    wte: Embedding,
    /// `mlp.0`: `[n_embd2, block_size * n_embd]`.
    hidden: Linear,
    /// `mlp.2`: `[vocab_size, n_embd2]` (`mlp.1` is the Tanh).
    out: Linear,
}

impl<T: Float> MlpMakemore<T> {
    /// makemore's context ids for `idx` `[B, T]`: `[B, T, block_size]`, where entry `k` at
    /// position `t` is the token `k` places back, `idx[b, t - k]`, or the blank token
    /// `vocab_size` before the start. This is what makemore's loop of
    /// `idx = torch.roll(idx, 1, 1); idx[:, 0] = vocab_size` produces, computed on the host.
    pub fn context(&self, idx: ArrayView2<'_, u32>) -> Array3<u32> {
        let mut ids = Vec::new();
        self.context_into(idx, &mut ids);
        let (b, t) = idx.dim();
        Array3::from_shape_vec((b, t, self.config.block_size), ids).expect("b * t * block_size ids")
    }

    /// [`MlpMakemore::context`] into `ids` (cleared first), row-major: the forward pass reuses
    /// its buffer.
    fn context_into(&self, idx: ArrayView2<'_, u32>, ids: &mut Vec<u32>) {
        let (bs, blank) = (self.config.block_size, self.config.vocab_size as u32);
        let (b, t) = idx.dim();
        ids.clear();
        ids.extend((0..b * t * bs).map(|n| {
            let (i, j, k) = (n / (t * bs), n / bs % t, n % bs);
            if k <= j { idx[[i, j - k]] } else { blank }
        }));
    }
}

impl<T: Float> ZooModel<T> for MlpMakemore<T> {
    fn kind(&self) -> &'static str {
        "mlp"
    }

    /// `wte` (`vocab_size + 1` rows: the blank token), `mlp.0`, `mlp.2`.
    fn build(config: ModelConfig, mut b: Builder<'_, T>) -> Result<Self> {
        config.check("mlp")?;
        let c = &config;
        let fan_in = c.block_size * c.n_embd;
        let wte = Embedding::new(&mut b, "wte", c.vocab_size + 1, c.n_embd)?;
        let hidden = Linear::new(&mut b, "mlp.0", fan_in, c.n_embd2, true)?;
        let out = Linear::new(&mut b, "mlp.2", c.n_embd2, c.vocab_size, true)?;
        Ok(MlpMakemore { config, params: b.finish()?, wte, hidden, out })
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

    /// `x = cat([wte(idx rolled k places) for k in 0..block_size], -1)`; `mlp(x)`. The
    /// concatenation is one embedding of the context ids `[B, T, block_size]` (`k` major, as
    /// makemore concatenates), and `mlp.0` reads it through the engine's fused
    /// `embedding_linear_t`, which multiplies the table's 28 rows instead of 512 gathered rows of
    /// 1,024 (`wte(ids).view(B, T, -1)` then `mlp.0`, to rounding).
    fn forward<'g>(&self, g: &'g Graph<'_, T>, idx: ArrayView2<'_, u32>) -> Var<'g, T> {
        let (b, t) = idx.dim();
        let bs = self.config.block_size;
        // The context ids in this thread's buffer, which the op copies into the tape: a warm
        // step allocates nothing.
        let h = CONTEXT.with_borrow_mut(|ids| {
            self.context_into(idx, ids);
            let view = ndarray::ArrayView3::from_shape((b, t, bs), &ids[..]).expect("b * t * bs ids");
            let (wte, (w, bias)) = (g.param(self.wte.weight), self.hidden.weight_and_bias(g));
            wte.embedding_linear_t(&view, w, Some(bias))
        });
        self.out.forward(h.tanh())
    }
}
