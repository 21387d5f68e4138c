//! The BatchNorm MLP of makemore part 3: part 2's MLP with its initialisation fixed (`W1` scaled
//! by `(5/3) / sqrt(fan_in)`, the gain of tanh; `W2` by 0.01; `b2` zero) and a batch
//! normalisation layer before the tanh, which makes `b1` redundant (its mean is subtracted):
//!
//! ```text
//! hpreact = emb.view(B, -1) @ W1
//! hpreact = bngain * (hpreact - hpreact.mean(0)) / hpreact.std(0) + bnbias
//! logits  = tanh(hpreact) @ W2 + b2
//! ```
//!
//! The lecture's BatchNorm has no epsilon and uses the Bessel-corrected `std`; while training it
//! keeps running averages `bnmean_running` and `bnstd_running` (momentum 0.001), which
//! evaluation and sampling normalise with. 12,097 parameters for 27 tokens.

use mm_data::Vocab;
use mm_tensor::{BatchStatsLog, BufferId, Graph, ParamId, ParamStore, Var, init};
use ndarray::{ArrayD, ArrayView2};
use rand::Rng;

use crate::{Model, ModelError, Result};

/// The BatchNorm MLP's hyperparameters; the default is the lecture's (block 3, n_embd 10,
/// n_hidden 200, momentum 0.001).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BnMlpConfig {
    /// Characters of context.
    pub block_size: usize,
    /// Dimensions of a character's embedding (columns of `C`).
    pub n_embd: usize,
    /// Units of the hidden layer.
    pub n_hidden: usize,
    /// How far each step moves the running statistics towards the batch's.
    pub momentum: f32,
}

impl Default for BnMlpConfig {
    fn default() -> Self {
        BnMlpConfig { block_size: 3, n_embd: 10, n_hidden: 200, momentum: 0.001 }
    }
}

/// The BatchNorm MLP language model.
#[derive(Clone, Debug)]
pub struct BnMlp {
    config: BnMlpConfig,
    vocab: Vocab,
    params: ParamStore<f32>,
    c: ParamId,
    w1: ParamId,
    w2: ParamId,
    b2: ParamId,
    bngain: ParamId,
    bnbias: ParamId,
    bnmean_running: BufferId,
    bnstd_running: BufferId,
    /// The batch's std, computed from its variance at each update (kept to reuse its memory).
    std: Vec<f32>,
}

impl BnMlp {
    /// A freshly initialised BatchNorm MLP over `vocab`, its weights drawn from `rng` in the
    /// lecture's order (`C`, `W1`, `W2`).
    pub fn new<R: Rng + ?Sized>(config: BnMlpConfig, vocab: &Vocab, rng: &mut R) -> Result<BnMlp> {
        let BnMlpConfig { block_size, n_embd, n_hidden, momentum } = config;
        if block_size == 0 || n_embd == 0 || n_hidden == 0 {
            return Err(ModelError::Config(format!(
                "block_size, n_embd and n_hidden must be at least 1 (got {block_size}, {n_embd}, {n_hidden})"
            )));
        }
        if !(0.0..=1.0).contains(&momentum) {
            return Err(ModelError::Config(format!("momentum {momentum} is not in [0, 1]")));
        }
        let v = vocab.len();
        let fan_in = block_size.checked_mul(n_embd).ok_or_else(|| {
            ModelError::Config(format!("block_size {block_size} x n_embd {n_embd} is too large"))
        })?;
        let mut params = ParamStore::new();
        let mut randn = |name: &str, shape: &[usize], scale: f32| {
            params.add(name, init::randn::<f32, _>(shape, rng).mapv(|x| x * scale))
        };
        let c = randn("C", &[v, n_embd], 1.0)?;
        let w1 = randn("W1", &[fan_in, n_hidden], (5.0 / 3.0) / (fan_in as f32).sqrt())?;
        let w2 = randn("W2", &[n_hidden, v], 0.01)?;
        let b2 = params.add("b2", ArrayD::zeros(vec![v]))?;
        let bngain = params.add("bngain", ArrayD::ones(vec![n_hidden]))?;
        let bnbias = params.add("bnbias", ArrayD::zeros(vec![n_hidden]))?;
        let bnmean_running = params.add_buffer("bnmean_running", ArrayD::zeros(vec![n_hidden]))?;
        let bnstd_running = params.add_buffer("bnstd_running", ArrayD::ones(vec![n_hidden]))?;
        Ok(BnMlp {
            config,
            vocab: vocab.clone(),
            params,
            c,
            w1,
            w2,
            b2,
            bngain,
            bnbias,
            bnmean_running,
            bnstd_running,
            std: Vec::new(),
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> BnMlpConfig {
        self.config
    }
}

impl Model for BnMlp {
    fn kind(&self) -> &'static str {
        "bn-mlp"
    }

    fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    fn block_size(&self) -> usize {
        self.config.block_size
    }

    fn config(&self) -> Vec<(&'static str, String)> {
        let c = self.config;
        vec![
            ("block_size", c.block_size.to_string()),
            ("n_embd", c.n_embd.to_string()),
            ("n_hidden", c.n_hidden.to_string()),
            ("momentum", c.momentum.to_string()),
        ]
    }

    fn params(&self) -> &ParamStore<f32> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamStore<f32> {
        &mut self.params
    }

    /// `hpreact = C[X].view(B, -1) @ W1`; BatchNorm with the batch's mean and std while training
    /// (a graph with gradients), with `bnmean_running` and `bnstd_running` otherwise; `tanh`;
    /// `@ W2 + b2`.
    fn forward<'g>(&self, g: &'g Graph<'g, f32>, x: ArrayView2<'_, u32>) -> Var<'g, f32> {
        let b = x.nrows();
        let emb = g.param(self.c).embedding(&x); // [B, block_size, n_embd]
        let embcat = emb.reshape(&[b, self.config.block_size * self.config.n_embd]);
        let hpreact = embcat.matmul(g.param(self.w1)); // [B, n_hidden]
        let (gain, bias) = (g.param(self.bngain), g.param(self.bnbias));
        // The lecture's `(h - mean) / std` is batch_norm with correction 1 and no epsilon.
        let hpreact = if g.is_grad() {
            hpreact.batch_norm(gain, bias, &[0], 1, 0.0)
        } else {
            let std = g.buffer(self.bnstd_running);
            hpreact.batch_norm_eval(gain, bias, &[0], (g.buffer(self.bnmean_running), std * std), 0.0)
        };
        hpreact.tanh().linear(g.param(self.w2), g.param(self.b2)) // [B, V]
    }

    /// It normalises the hidden layer with the batch's statistics.
    fn batch_statistics(&self) -> bool {
        true
    }

    /// `bnmean_running = 0.999 * bnmean_running + 0.001 * bnmeani`, and the same for the std.
    fn update_running(&mut self, stats: &BatchStatsLog<f32>) -> Result<()> {
        let (mean, var) = stats.get(0).ok_or_else(|| ModelError::Config("no BatchNorm statistics".into()))?;
        let m = self.config.momentum;
        self.std.clear();
        self.std.extend(var.iter().map(|v| v.sqrt()));
        self.params.blend_buffer(self.bnmean_running, mean, m)?;
        self.params.blend_buffer(self.bnstd_running, &self.std, m)?;
        Ok(())
    }
}
