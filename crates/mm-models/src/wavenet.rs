//! The WaveNet of makemore part 5: instead of squashing the whole context into one hidden layer,
//! fuse it progressively, two neighbours at a time, as a tree (van den Oord et al. 2016, without
//! the dilated convolutions' sharing across positions):
//!
//! ```text
//! Embedding(27, 24)                                   [B, 8, 24]
//! FlattenConsecutive(2), Linear(48, 128), BatchNorm1d, Tanh   [B, 4, 128]
//! FlattenConsecutive(2), Linear(256, 128), BatchNorm1d, Tanh  [B, 2, 128]
//! FlattenConsecutive(2), Linear(256, 128), BatchNorm1d, Tanh  [B, 128]
//! Linear(128, 27)                                     [B, 27]
//! ```
//!
//! The lecture's own layers: `Linear` without bias before each BatchNorm, its weight
//! `randn(fan_in, fan_out) / sqrt(fan_in)`; the last `Linear`'s weight scaled by 0.1;
//! `BatchNorm1d` over `(0, 1)` for 3-D input, with eps 1e-5, Bessel's variance and momentum 0.1.
//! Parameters are named by their place in the lecture's `Sequential` (`layers.2.weight`,
//! `layers.3.gamma`, `layers.3.running_mean`, ...). 76,579 parameters at the defaults.

use mm_data::Vocab;
use mm_tensor::{BatchStatsLog, BufferId, Graph, ParamId, ParamStore, Var, init};
use ndarray::{ArrayD, ArrayView2};
use rand::Rng;

use crate::{Model, ModelError, Result};

/// The WaveNet's hyperparameters; the default is the lecture's (block 8, n_embd 24, n_hidden
/// 128, momentum 0.1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WaveNetConfig {
    /// Characters of context: a power of two, `2^levels`.
    pub block_size: usize,
    /// Dimensions of a character's embedding.
    pub n_embd: usize,
    /// Units of each hidden layer.
    pub n_hidden: usize,
    /// How far each step moves the running statistics towards the batch's.
    pub momentum: f32,
}

impl Default for WaveNetConfig {
    fn default() -> Self {
        WaveNetConfig { block_size: 8, n_embd: 24, n_hidden: 128, momentum: 0.1 }
    }
}

/// One level of the tree: `FlattenConsecutive(2)`, `Linear` (no bias), `BatchNorm1d`, `Tanh`.
#[derive(Clone, Debug)]
struct Level {
    weight: ParamId,
    gamma: ParamId,
    beta: ParamId,
    running_mean: BufferId,
    running_var: BufferId,
}

/// The WaveNet language model.
#[derive(Clone, Debug)]
pub struct WaveNet {
    config: WaveNetConfig,
    vocab: Vocab,
    params: ParamStore<f32>,
    embedding: ParamId,
    levels: Vec<Level>,
    out_weight: ParamId,
    out_bias: ParamId,
}

/// BatchNorm1d's epsilon.
const EPS: f64 = 1e-5;

impl WaveNet {
    /// A freshly initialised WaveNet over `vocab`, its weights drawn from `rng` in the
    /// lecture's order.
    pub fn new<R: Rng + ?Sized>(config: WaveNetConfig, vocab: &Vocab, rng: &mut R) -> Result<WaveNet> {
        let WaveNetConfig { block_size, n_embd, n_hidden, momentum } = config;
        if block_size < 2 || !block_size.is_power_of_two() {
            return Err(ModelError::Config(format!(
                "a WaveNet fuses pairs: block_size must be a power of two, at least 2 (got {block_size})"
            )));
        }
        if n_embd == 0 || n_hidden == 0 {
            return Err(ModelError::Config(format!(
                "n_embd and n_hidden must be at least 1 (got {n_embd}, {n_hidden})"
            )));
        }
        if !(0.0..=1.0).contains(&momentum) {
            return Err(ModelError::Config(format!("momentum {momentum} is not in [0, 1]")));
        }
        let v = vocab.len();
        let mut params = ParamStore::new();
        let mut randn = |p: &mut ParamStore<f32>, name: &str, shape: &[usize], scale: f32| {
            p.add(name, init::randn::<f32, _>(shape, rng).mapv(|x| x * scale))
        };
        let embedding = randn(&mut params, "layers.0.weight", &[v, n_embd], 1.0)?;
        let mut levels = Vec::new();
        let mut width = n_embd;
        for l in 0..block_size.trailing_zeros() as usize {
            // Sequential index: Embedding 0, then per level Flatten, Linear, BatchNorm, Tanh.
            let (linear, bn) = (2 + 4 * l, 3 + 4 * l);
            let fan_in = 2 * width;
            let scale = 1.0 / (fan_in as f32).sqrt();
            let weight = randn(&mut params, &format!("layers.{linear}.weight"), &[fan_in, n_hidden], scale)?;
            let ones = || ArrayD::ones(vec![n_hidden]);
            let zeros = || ArrayD::zeros(vec![n_hidden]);
            levels.push(Level {
                weight,
                gamma: params.add(&format!("layers.{bn}.gamma"), ones())?,
                beta: params.add(&format!("layers.{bn}.beta"), zeros())?,
                running_mean: params.add_buffer(&format!("layers.{bn}.running_mean"), zeros())?,
                running_var: params.add_buffer(&format!("layers.{bn}.running_var"), ones())?,
            });
            width = n_hidden;
        }
        let last = 1 + 4 * levels.len();
        // The last layer less confident at first: its weight scaled by 0.1.
        let scale = 0.1 / (n_hidden as f32).sqrt();
        let out_weight = randn(&mut params, &format!("layers.{last}.weight"), &[n_hidden, v], scale)?;
        let out_bias = params.add(&format!("layers.{last}.bias"), ArrayD::zeros(vec![v]))?;
        Ok(WaveNet { config, vocab: vocab.clone(), params, embedding, levels, out_weight, out_bias })
    }

    /// The hyperparameters.
    pub fn config(&self) -> WaveNetConfig {
        self.config
    }
}

impl Model for WaveNet {
    fn kind(&self) -> &'static str {
        "wavenet"
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

    /// The embedding `[B, T, C]`; per level, neighbours fused (`[B, T/2, 2C]`, the last level
    /// `[B, 2C]`), `@ W`, BatchNorm (the batch's statistics while training, the running ones
    /// otherwise), tanh; the output layer.
    fn forward<'g>(&self, g: &'g Graph<'g, f32>, x: ArrayView2<'_, u32>) -> Var<'g, f32> {
        let (b, mut t) = x.dim();
        let table = g.param(self.embedding);
        let mut h = table; // replaced by the first level's product
        let mut width = self.config.n_embd;
        for (i, level) in self.levels.iter().enumerate() {
            // FlattenConsecutive(2): pairs of neighbours side by side; squeezed when one is left.
            t /= 2;
            width *= 2;
            let w = g.param(level.weight);
            h = if i == 0 {
                // The first level reads pairs of embeddings, C[x] viewed as [B, T/2, 2 n_embd]:
                // the fused `embedding_linear` takes its product with the table's rows instead.
                let pairs = if t == 1 {
                    x.to_shape((b, 2)).map(|p| p.into_dyn())
                } else {
                    x.to_shape((b, t, 2)).map(|p| p.into_dyn())
                };
                match pairs {
                    Ok(pairs) => table.embedding_linear(&pairs, w, None),
                    Err(_) => table.embedding(&x).reshape(&[b, t, width]).matmul(w),
                }
            } else if t == 1 {
                h.reshape(&[b, width]).matmul(w)
            } else {
                h.reshape(&[b, t, width]).matmul(w)
            };
            let axes: &[usize] = if t == 1 { &[0] } else { &[0, 1] };
            let (gamma, beta) = (g.param(level.gamma), g.param(level.beta));
            h = if g.is_grad() {
                h.batch_norm(gamma, beta, axes, 1, EPS)
            } else {
                let running = (g.buffer(level.running_mean), g.buffer(level.running_var));
                h.batch_norm_eval(gamma, beta, axes, running, EPS)
            };
            h = h.tanh();
            width = self.config.n_hidden;
        }
        h.linear(g.param(self.out_weight), g.param(self.out_bias)) // [B, V]
    }

    /// Each level normalises with the batch's statistics.
    fn batch_statistics(&self) -> bool {
        true
    }

    /// Each level's `running_mean` and `running_var` moved by `momentum` towards the batch's
    /// mean and (Bessel-corrected) variance, as the lecture's `BatchNorm1d`.
    fn update_running(&mut self, stats: &BatchStatsLog<f32>) -> Result<()> {
        if stats.len() != self.levels.len() {
            let msg = format!("{} BatchNorm statistics for {} levels", stats.len(), self.levels.len());
            return Err(ModelError::Config(msg));
        }
        let m = self.config.momentum;
        for (i, level) in self.levels.iter().enumerate() {
            let (mean, var) = stats.get(i).expect("checked count");
            self.params.blend_buffer(level.running_mean, mean, m)?;
            self.params.blend_buffer(level.running_var, var, m)?;
        }
        Ok(())
    }
}
