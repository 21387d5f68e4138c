//! makemore.py's `Transformer` ("exactly as seen in GPT-2"): token and position embeddings
//! (`wte`, `wpe`), `n_layer` pre-LayerNorm blocks of causal multi-head self-attention and a 4x
//! MLP with `NewGELU`, a final LayerNorm (`ln_f`) and `lm_head` without bias. makemore's
//! default (n_layer 4, n_head 4, n_embd 64, block_size 16, vocab 27) has 204,544 parameters.
//!
//! [`TransformerOptions`] adds two levers that makemore.py does not have (issue #14), both off
//! by default, so that the default model is makemore's exactly (its parameters, names, values
//! and golden cases):
//!
//! - **Dropout** where GPT-2 (nanoGPT's `model.py`) puts it on the residual stream: on the sum
//!   of the token and position embeddings (`transformer.drop`), after attention's `c_proj`
//!   (`resid_dropout`) and after the MLP's `c_proj` (`mlp.dropout`). GPT-2's fourth place, on
//!   the attention weights (`attn_dropout`), is left out: the engine's fused
//!   `causal_self_attention` keeps its weights inside one node, and dropping them would mean
//!   going back to the composed attention (or a new op). Dropout is the identity in a graph
//!   without gradients (evaluation, sampling), as in `model.eval()`.
//! - **Weight tying** (Press & Wolf 2017; GPT-2's `wte.weight = lm_head.weight`): `lm_head`
//!   reads its `[vocab_size, n_embd]` weight from `transformer.wte.weight`, one parameter used
//!   twice, whose gradient is the sum of both uses. The tied model has no `lm_head.weight`;
//!   the shared table starts as nanoGPT's does when it ties, with the `nn.Linear` initialisation
//!   of `lm_head` (uniform in `±1/sqrt(n_embd)`), not `nn.Embedding`'s `N(0, 1)`, whose logits
//!   would start `sqrt(n_embd)` times too large.
//! - **Rotary positions** (RoPE, Su et al. 2021) in place of the learned position table `wpe`:
//!   each block turns its heads' queries and keys by an angle that grows with the position
//!   ([`mm_tensor::Var::rotary_qk`], GPT-NeoX's and LLaMA's "rotate half" form, base 10,000), so
//!   attention sees how far apart two characters are rather than where each one is. The
//!   rotary model has no `transformer.wpe.weight`.

use std::sync::atomic::{AtomicU64, Ordering};

use mm_tensor::{Float, Graph, ParamStore, Var};
use ndarray::ArrayView2;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::{Builder, Embedding, Init, LayerNorm, Linear, ModelConfig, ZooModel};
use crate::{ModelError, Result};

/// The Transformer's levers beyond makemore.py (see the module's documentation). The default
/// is makemore's model: no dropout, no tying.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TransformerOptions {
    /// The probability of zeroing an activation of the residual stream in training (`nn.Dropout(p)`
    /// after the embeddings and each block's two projections); 0 for none.
    pub dropout: f32,
    /// Whether `lm_head` shares its weight with the token embedding `wte`.
    pub tie_weights: bool,
    /// Rotary position embeddings on each block's queries and keys in place of `wpe`.
    pub rotary: bool,
}

impl TransformerOptions {
    /// Checks the options: a dropout probability in `[0, 1)`.
    pub fn check(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelError::Config(format!(
                "transformer: dropout {} is not a probability in [0, 1)",
                self.dropout
            )));
        }
        Ok(())
    }
}

/// The seed of dropout's masks for the current step, set by the training loop before each step
/// ([`Transformer::begin_step`]). Each training forward pass draws its masks from a generator
/// seeded afresh from it and the pass's shard ([`Transformer::forward_shard`]), so that the
/// masks depend on the run, the step and the shard only: never on which thread runs a shard or
/// in what order (the shards of one step run at once on their threads). An atomic, because the
/// forward pass reads the model through a shared reference.
#[derive(Debug)]
struct MaskSeed(AtomicU64);

impl MaskSeed {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// The generator of shard `shard`'s masks: shard 0's is seeded with the step's seed itself
    /// (the masks of a run without shards), the others' with it mixed with the shard.
    fn rng(&self, shard: usize) -> SmallRng {
        let mix = (shard as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
        SmallRng::seed_from_u64(self.get() ^ mix)
    }
}

impl Clone for MaskSeed {
    fn clone(&self) -> Self {
        MaskSeed(AtomicU64::new(self.get()))
    }
}

/// makemore's `CausalSelfAttention`: `c_attn` projects to q, k, v for all heads at once
/// (`[3 n_embd, n_embd]`), `c_proj` mixes the heads' outputs.
#[derive(Clone, Debug)]
struct CausalSelfAttention {
    c_attn: Linear,
    c_proj: Linear,
    n_head: usize,
    /// Rotary positions on q and k (see the module).
    rotary: bool,
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
        let qkv = if self.rotary { qkv.rotary_qk(self.n_head, 0) } else { qkv };
        // (GPT-2's attn_dropout would act on the weights inside the next op: see the module.)
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
    fn new<T: Float>(b: &mut Builder<'_, T>, name: &str, c: &ModelConfig, rotary: bool) -> Result<Self> {
        let n = c.n_embd;
        Ok(Block {
            ln_1: LayerNorm::new(b, &format!("{name}.ln_1"), n)?,
            attn: CausalSelfAttention {
                c_attn: Linear::new(b, &format!("{name}.attn.c_attn"), n, 3 * n, true)?,
                c_proj: Linear::new(b, &format!("{name}.attn.c_proj"), n, n, true)?,
                n_head: c.n_head,
                rotary,
            },
            ln_2: LayerNorm::new(b, &format!("{name}.ln_2"), n)?,
            c_fc: Linear::new(b, &format!("{name}.mlp.c_fc"), n, 4 * n, true)?,
            c_proj: Linear::new(b, &format!("{name}.mlp.c_proj"), 4 * n, n, true)?,
        })
    }

    /// `drop` is the dropout of the residual branches (the identity without dropout).
    fn forward<'g, T: Float>(
        &self,
        x: Var<'g, T>,
        drop: &mut impl FnMut(Var<'g, T>) -> Var<'g, T>,
    ) -> Var<'g, T> {
        let x = x + drop(self.attn.forward(self.ln_1.forward(x)));
        // `gelu` is the tanh approximation: makemore's `NewGELU`.
        x + drop(self.c_proj.forward(self.c_fc.forward(self.ln_2.forward(x)).gelu()))
    }
}

/// makemore.py's `Transformer` language model.
#[derive(Clone, Debug)]
pub struct Transformer<T = f32> {
    config: ModelConfig,
    options: TransformerOptions,
    seed: MaskSeed,
    params: ParamStore<T>,
    wte: Embedding,
    /// The learned positions; none with rotary positions.
    wpe: Option<Embedding>,
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
    fn build(config: ModelConfig, b: Builder<'_, T>) -> Result<Self> {
        Self::build_with(config, TransformerOptions::default(), b)
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

    /// `x = drop(wte(idx) + wpe(arange(t)))` (`drop(wte(idx))` with rotary positions); the
    /// blocks; `lm_head(ln_f(x))`. A `t` beyond `block_size` is the error of the position
    /// table's narrow (makemore asserts); rotary positions have no table. Dropout
    /// draws shard 0's masks ([`Transformer::forward_shard`]).
    fn forward<'g>(&self, g: &'g Graph<'_, T>, idx: ArrayView2<'_, u32>) -> Var<'g, T> {
        self.forward_shard(g, idx, 0)
    }
}

impl<T: Float> Transformer<T> {
    /// The model with `options`, its parameters declared through `b` (as [`ZooModel::build`],
    /// which builds makemore's model: the default options).
    pub fn build_with(
        config: ModelConfig,
        options: TransformerOptions,
        mut b: Builder<'_, T>,
    ) -> Result<Self> {
        config.check("transformer")?;
        options.check()?;
        let c = &config;
        let wte = if options.tie_weights {
            // lm_head's weight, shared: nn.Linear's initialisation (see the module).
            let init = Init::Uniform { fan_in: c.n_embd };
            Embedding { weight: b.param("transformer.wte.weight", &[c.vocab_size, c.n_embd], init)? }
        } else {
            Embedding::new(&mut b, "transformer.wte", c.vocab_size, c.n_embd)?
        };
        if options.rotary && !(c.n_embd / c.n_head).is_multiple_of(2) {
            return Err(ModelError::Config(format!(
                "transformer: rotary positions need heads of an even size; n_embd {} in {} heads gives {}",
                c.n_embd,
                c.n_head,
                c.n_embd / c.n_head
            )));
        }
        let wpe = match options.rotary {
            true => None,
            false => Some(Embedding::new(&mut b, "transformer.wpe", c.block_size, c.n_embd)?),
        };
        let h = (0..c.n_layer)
            .map(|i| Block::new(&mut b, &format!("transformer.h.{i}"), c, options.rotary))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = LayerNorm::new(&mut b, "transformer.ln_f", c.n_embd)?;
        let lm_head = if options.tie_weights {
            Linear { weight: wte.weight, bias: None }
        } else {
            Linear::new(&mut b, "lm_head", c.n_embd, c.vocab_size, false)?
        };
        let seed = MaskSeed(AtomicU64::new(0));
        Ok(Transformer { config, options, seed, params: b.finish()?, wte, wpe, h, ln_f, lm_head })
    }

    /// The levers beyond makemore.py.
    pub fn options(&self) -> TransformerOptions {
        self.options
    }

    /// Reseeds dropout's masks for step `step` of a run seeded `seed` (see
    /// [`crate::Model::begin_step`]); nothing without dropout.
    pub fn begin_step(&self, seed: u64, step: usize) {
        if self.options.dropout > 0.0 {
            let mixed = seed ^ (step as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            self.seed.0.store(mixed, Ordering::Relaxed);
        }
    }

    /// The forward pass of shard `shard` of a training step's batch (see
    /// [`crate::TrainConfig::shards`]): [`ZooModel::forward`] with dropout's masks drawn from
    /// the shard's own generator, seeded from the step's seed and `shard` (shard 0's is the
    /// step's seed itself, so one shard draws what a run without shards draws). Without dropout,
    /// or in a graph without gradients, every shard's pass is the same.
    pub fn forward_shard<'g>(
        &self,
        g: &'g Graph<'_, T>,
        idx: ArrayView2<'_, u32>,
        shard: usize,
    ) -> Var<'g, T> {
        let tok_emb = self.wte.forward(g, &idx); // [B, T, C]
        // [T, C], broadcast over the batch; rotary positions act inside the attention instead.
        // (With rotary positions there is no table, and no error past `block_size`: the angles
        // go on. Training and sampling never feed more than `block_size` positions.)
        let x = match &self.wpe {
            Some(wpe) => tok_emb + wpe.first(g, idx.ncols()),
            None => tok_emb,
        };
        // The masks' generator, only when dropout draws anything.
        let p = f64::from(self.options.dropout);
        let mut rng = (p > 0.0 && g.is_grad()).then(|| self.seed.rng(shard));
        let mut drop = |v: Var<'g, T>| match rng.as_mut() {
            Some(rng) => v.dropout(p, rng),
            None => v,
        };
        let mut x = drop(x);
        for block in &self.h {
            x = block.forward(x, &mut drop);
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
        let mut x = self.wte.forward(&g, ids); // [B, C]
        if let Some(wpe) = &self.wpe {
            x = x + wpe.forward(&g, &[t as u32]);
        }
        let mut y = vec![0.0f32; rows.len() * c];
        let mut att = vec![0.0f32; t + 1];
        for (layer, block) in self.h.iter().enumerate() {
            let qkv = block.attn.c_attn.forward(block.ln_1.forward(x)); // [B, 3C]
            // Rotary positions turn this position's query and key (the cached keys were turned
            // at their own positions).
            let qkv = match block.attn.rotary {
                true => qkv.reshape(&[rows.len(), 1, 3 * c]).rotary_qk(nh, t).reshape(&[rows.len(), 3 * c]),
                false => qkv,
            };
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
