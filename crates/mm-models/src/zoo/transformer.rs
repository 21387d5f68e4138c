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

/// The keys and values of every position fed so far, per layer: what makes sampling one
/// position at a time cost one position's work (makemore's `generate` recomputes the whole
/// prefix for every new character). `[n, block_size, n_embd]` per layer for keys and for values,
/// the heads side by side as `c_attn` produces them.
#[derive(Clone, Debug)]
pub struct KvCache {
    n: usize,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Transformer<f32> {
    /// A cache for `n` sequences.
    pub fn kv_cache(&self, n: usize) -> KvCache {
        let size = n * self.config.block_size * self.config.n_embd;
        KvCache { n, k: vec![vec![0.0; size]; self.h.len()], v: vec![vec![0.0; size]; self.h.len()] }
    }

    /// Feeds `ids[i]` as the token at position `t` of sequence `rows[i]` (whose positions
    /// `0..t` were fed before) and returns the logits of the next token, `[rows.len(),
    /// vocab_size]`: the same as row `t` of [`ZooModel::forward`] on the whole prefix, up to
    /// rounding. The dense layers run on the engine (a graph without gradients on `tape`); the
    /// attention of one query over the cached keys runs here.
    pub fn decode(
        &self,
        tape: &mut mm_tensor::Tape<f32>,
        cache: &mut KvCache,
        rows: &[usize],
        ids: &[u32],
        t: usize,
    ) -> Result<ndarray::Array2<f32>> {
        let (c, bs, nh) = (self.config.n_embd, self.config.block_size, self.config.n_head);
        let bad = |msg: String| Err(crate::ModelError::Config(msg));
        if t >= bs {
            return bad(format!("position {t} is past the block size {bs}"));
        }
        if rows.len() != ids.len() || rows.iter().any(|&r| r >= cache.n) || cache.k.len() != self.h.len() {
            return bad(format!(
                "{} rows for {} ids, in a cache of {} sequences",
                rows.len(),
                ids.len(),
                cache.n
            ));
        }
        let hs = c / nh;
        let scale = 1.0 / (hs as f32).sqrt();
        let g = tape.no_grad(&self.params);
        let mut x = self.wte.forward(&g, ids) + self.wpe.forward(&g, &[t as u32]); // [B, C]
        let mut y = vec![0.0f32; rows.len() * c];
        let mut att = vec![0.0f32; t + 1];
        for (layer, block) in self.h.iter().enumerate() {
            let qkv = block.attn.c_attn.forward(block.ln_1.forward(x)); // [B, 3C]
            let (k_cache, v_cache) = (&mut cache.k[layer], &mut cache.v[layer]);
            qkv.with_data(|qkv| {
                for (i, &r) in rows.iter().enumerate() {
                    let (q, kv) = qkv[i * 3 * c..(i + 1) * 3 * c].split_at(c);
                    let at = (r * bs + t) * c;
                    k_cache[at..at + c].copy_from_slice(&kv[..c]);
                    v_cache[at..at + c].copy_from_slice(&kv[c..]);
                    for h in 0..nh {
                        let q = &q[h * hs..(h + 1) * hs];
                        let key = |j: usize| &k_cache[(r * bs + j) * c + h * hs..][..hs];
                        for (j, a) in att.iter_mut().enumerate() {
                            *a = q.iter().zip(key(j)).map(|(q, k)| q * k).sum::<f32>() * scale;
                        }
                        let max = att.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        att.iter_mut().for_each(|a| *a = (*a - max).exp());
                        let inv = 1.0 / att.iter().sum::<f32>();
                        let out = &mut y[i * c + h * hs..][..hs];
                        out.fill(0.0);
                        for (j, a) in att.iter().enumerate() {
                            let (w, value) = (a * inv, &v_cache[(r * bs + j) * c + h * hs..][..hs]);
                            out.iter_mut().zip(value).for_each(|(o, v)| *o += w * v);
                        }
                    }
                }
            });
            x = x + block.attn.c_proj.forward(g.input(&[rows.len(), c], &y));
            x = x + block.c_proj.forward(block.c_fc.forward(block.ln_2.forward(x)).gelu());
        }
        let logits = self.lm_head.forward(self.ln_f.forward(x));
        g.check()?;
        Ok(logits.to_array().into_dimensionality().map_err(mm_tensor::TensorError::from)?)
    }
}
