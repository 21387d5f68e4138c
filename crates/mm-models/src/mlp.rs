//! The MLP of makemore part 2 (Bengio et al. 2003): the previous `block_size` characters are
//! embedded by the table `C`, concatenated, passed through a tanh hidden layer (`W1`, `b1`) and a
//! linear output layer (`W2`, `b2`).

use mm_data::Vocab;
use mm_tensor::{Graph, ParamId, ParamStore, Var, init};
use ndarray::ArrayView2;
use rand::Rng;

use crate::{Model, ModelError, Result};

/// How the MLP's weights start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Every parameter from a standard normal, as in part 2.
    #[default]
    Lecture,
    /// Part 3's fix: `W1` scaled by `(5/3) / sqrt(fan_in)` (Kaiming for tanh), `b1` by 0.01, `W2`
    /// by 0.01 and `b2` zero, so the initial loss is near `ln V` and tanh does not saturate.
    Kaiming,
}

/// The MLP's hyperparameters. The default is the lecture's: block 3, n_embd 10, n_hidden 200,
/// plain standard-normal initialisation (11,897 parameters for 27 tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MlpConfig {
    /// Characters of context.
    pub block_size: usize,
    /// Dimensions of a character's embedding (columns of `C`).
    pub n_embd: usize,
    /// Units of the hidden layer.
    pub n_hidden: usize,
    /// The initialisation.
    pub init: Init,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig { block_size: 3, n_embd: 10, n_hidden: 200, init: Init::Lecture }
    }
}

/// The MLP language model.
#[derive(Clone, Debug)]
pub struct Mlp {
    config: MlpConfig,
    vocab: Vocab,
    params: ParamStore<f32>,
    c: ParamId,
    w1: ParamId,
    b1: ParamId,
    w2: ParamId,
    b2: ParamId,
}

impl Mlp {
    /// A freshly initialised MLP over `vocab`, its weights drawn from `rng`.
    pub fn new<R: Rng + ?Sized>(config: MlpConfig, vocab: &Vocab, rng: &mut R) -> Result<Mlp> {
        let MlpConfig { block_size, n_embd, n_hidden, init } = config;
        if block_size == 0 || n_embd == 0 || n_hidden == 0 {
            return Err(ModelError::Config(format!(
                "block_size, n_embd and n_hidden must be at least 1 (got {block_size}, {n_embd}, {n_hidden})"
            )));
        }
        let v = vocab.len();
        let fan_in = block_size.checked_mul(n_embd).ok_or_else(|| {
            ModelError::Config(format!("block_size {block_size} x n_embd {n_embd} is too large"))
        })?;
        let (w1_scale, b1_scale, w2_scale, b2_scale) = match init {
            Init::Lecture => (1.0, 1.0, 1.0, 1.0),
            Init::Kaiming => ((5.0 / 3.0) / (fan_in as f32).sqrt(), 0.01, 0.01, 0.0),
        };
        let mut params = ParamStore::new();
        let mut add = |name: &str, shape: &[usize], scale: f32| {
            params.add(name, init::randn::<f32, _>(shape, rng).mapv(|x| x * scale))
        };
        let c = add("C", &[v, n_embd], 1.0)?;
        let w1 = add("W1", &[fan_in, n_hidden], w1_scale)?;
        let b1 = add("b1", &[n_hidden], b1_scale)?;
        let w2 = add("W2", &[n_hidden, v], w2_scale)?;
        let b2 = add("b2", &[v], b2_scale)?;
        Ok(Mlp { config, vocab: vocab.clone(), params, c, w1, b1, w2, b2 })
    }

    /// The hyperparameters.
    pub fn config(&self) -> MlpConfig {
        self.config
    }
}

impl Model for Mlp {
    fn kind(&self) -> &'static str {
        "mlp"
    }

    fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    fn block_size(&self) -> usize {
        self.config.block_size
    }

    fn config(&self) -> Vec<(&'static str, String)> {
        let c = self.config;
        let init = if c.init == Init::Kaiming { "kaiming" } else { "lecture" };
        vec![
            ("block_size", c.block_size.to_string()),
            ("n_embd", c.n_embd.to_string()),
            ("n_hidden", c.n_hidden.to_string()),
            ("init", init.to_string()),
        ]
    }

    fn params(&self) -> &ParamStore<f32> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamStore<f32> {
        &mut self.params
    }

    /// `emb = C[X]`; `h = tanh(emb.view(B, -1) @ W1 + b1)`; `logits = h @ W2 + b2`. Each
    /// `@ W + b` is one fused `linear` op (`torch.addmm`), the same as `matmul` then `+`.
    fn forward<'g>(&self, g: &'g Graph<'g, f32>, x: ArrayView2<'_, u32>) -> Var<'g, f32> {
        let b = x.nrows();
        let emb = g.param(self.c).embedding(&x); // [B, block_size, n_embd]
        let flat = emb.reshape(&[b, self.config.block_size * self.config.n_embd]);
        let h = flat.linear(g.param(self.w1), g.param(self.b1)).tanh(); // [B, n_hidden]
        h.linear(g.param(self.w2), g.param(self.b2)) // [B, V]
    }
}
