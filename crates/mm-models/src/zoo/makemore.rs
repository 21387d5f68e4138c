//! makemore.py's models behind the [`Model`] interface that training, evaluation, sampling and
//! checkpoints share: [`Makemore`] is one of them with its vocabulary, and [`Kind`] is the list
//! of them. A model reads whole words ([`Layout::Words`]): `x` `[B, T]`, logits `[B, T, V]`.

use mm_data::{Layout, Vocab};
use mm_tensor::{Graph, ParamStore, Tape, Var};
use ndarray::ArrayView2;
use rand::RngCore;

use super::transformer::KvCache;
use super::{
    BigramMakemore, BoW, Builder, Gru, MlpMakemore, ModelConfig, Rnn, Transformer, TransformerOptions,
    ZooModel,
};
use crate::{Decoder, Model, ModelError, Result};

/// One of makemore.py's model types (its `--type`), under its name in this project.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `Transformer`, makemore's default: GPT-2 style.
    Transformer,
    /// `BoW`: a causal bag of words.
    Bow,
    /// `RNN(cell_type="rnn")`.
    Rnn,
    /// `RNN(cell_type="gru")`.
    Gru,
    /// `MLP`: Bengio et al. 2003 over whole words.
    Mlp,
    /// `Bigram`: a table of logits.
    Bigram,
}

impl Kind {
    /// Every kind, makemore's default first.
    pub const ALL: [Kind; 6] = [Kind::Transformer, Kind::Bow, Kind::Rnn, Kind::Gru, Kind::Mlp, Kind::Bigram];

    /// The name on the command line and in checkpoints: `transformer`, `bow`, `rnn`, `gru`,
    /// `mlp-makemore`, `bigram-makemore` (the last two apart from the lectures' `mlp` and
    /// `bigram`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Transformer => "transformer",
            Kind::Bow => "bow",
            Kind::Rnn => "rnn",
            Kind::Gru => "gru",
            Kind::Mlp => "mlp-makemore",
            Kind::Bigram => "bigram-makemore",
        }
    }

    /// The kind called `name`, if any.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The number of scalar parameters of a model of this kind and `config` (computed, not
    /// built: to refuse absurd sizes before allocating them).
    ///
    /// ```
    /// use mm_models::zoo::{Kind, ModelConfig};
    /// let c = ModelConfig::default();
    /// let counts: Vec<u128> = Kind::ALL.iter().map(|k| k.num_params(&c)).collect();
    /// assert_eq!(counts, [204_544, 12_827, 11_803, 28_315, 69_147, 729]); // makemore's
    /// ```
    pub fn num_params(self, config: &ModelConfig) -> u128 {
        let c = |v: usize| v as u128;
        let (v, t, l, e, e2) = (
            c(config.vocab_size),
            c(config.block_size),
            c(config.n_layer),
            c(config.n_embd),
            c(config.n_embd2),
        );
        let linear = |i: u128, o: u128| i * o + o;
        match self {
            // wte, wpe; per block ln_1, c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj; ln_f;
            // lm_head (no bias).
            Kind::Transformer => {
                let block =
                    2 * e + linear(e, 3 * e) + linear(e, e) + 2 * e + linear(e, 4 * e) + linear(4 * e, e);
                (v + t) * e + l * block + 2 * e + e * v
            }
            Kind::Bow => (v + t) * e + linear(e, e2) + linear(e2, e) + linear(e, v),
            Kind::Rnn => e2 + v * e + linear(e + e2, e2) + linear(e2, v),
            Kind::Gru => e2 + v * e + 3 * linear(e + e2, e2) + linear(e2, v),
            Kind::Mlp => (v + 1) * e + linear(t * e, e2) + linear(e2, v),
            Kind::Bigram => v * v,
        }
    }

    /// Which sizes of [`ModelConfig`] the kind reads besides `block_size` and `vocab_size`.
    pub fn sizes(self) -> &'static [&'static str] {
        match self {
            Kind::Transformer => &["n_layer", "n_head", "n_embd"],
            Kind::Bow | Kind::Rnn | Kind::Gru | Kind::Mlp => &["n_embd", "n_embd2"],
            Kind::Bigram => &[],
        }
    }
}

/// The Transformer's incremental decoder: its key/value cache and a tape reused step after step.
struct TransformerDecoder<'a> {
    model: &'a Transformer,
    tape: Tape<f32>,
    cache: KvCache,
}

impl Decoder for TransformerDecoder<'_> {
    fn step(&mut self, rows: &[usize], ids: &[u32], t: usize) -> Result<ndarray::Array2<f32>> {
        self.model.decode(&mut self.tape, &mut self.cache, rows, ids, t)
    }
}

/// The network inside a [`Makemore`]: one variant per [`Kind`].
#[derive(Clone, Debug)]
enum Net {
    Transformer(Transformer),
    Bow(BoW),
    Rnn(Rnn),
    Gru(Gru),
    Mlp(MlpMakemore),
    Bigram(BigramMakemore),
}

/// `$body` with `$m` bound to the network, whichever it is.
macro_rules! each {
    ($net:expr, $m:ident => $body:expr) => {
        match $net {
            Net::Transformer($m) => $body,
            Net::Bow($m) => $body,
            Net::Rnn($m) => $body,
            Net::Gru($m) => $body,
            Net::Mlp($m) => $body,
            Net::Bigram($m) => $body,
        }
    };
}

/// One of makemore.py's models with its vocabulary: a [`Model`] that trains, evaluates, samples
/// and saves as the lectures' models do. Its parameters keep makemore's `state_dict()` names.
///
/// ```
/// use mm_data::{Examples, Layout, Vocab};
/// use mm_models::zoo::{Kind, Makemore, ModelConfig};
/// use mm_models::{Model, evaluate};
/// use rand::SeedableRng;
/// let words = ["emma", "olivia", "ava"];
/// let vocab = Vocab::from_words(&words);
/// let config = ModelConfig { block_size: 7, vocab_size: vocab.len(), ..ModelConfig::default() };
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3407);
/// let model = Makemore::new(Kind::Transformer, config, &vocab, &mut rng)?;
/// assert_eq!((model.kind(), model.layout()), ("transformer", Layout::Words));
/// let ex = Examples::new(&words, &vocab, model.layout(), model.block_size())?;
/// let loss = evaluate(&model, &ex)?; // about ln(vocab.len()) before training
/// assert!((loss - (vocab.len() as f64).ln()).abs() < 0.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Makemore {
    kind: Kind,
    vocab: Vocab,
    net: Net,
}

impl Makemore {
    /// A fresh model of `kind`, initialised as PyTorch's modules are, from `rng`.
    /// `config.vocab_size` must be the vocabulary's size.
    pub fn new(kind: Kind, config: ModelConfig, vocab: &Vocab, rng: &mut dyn RngCore) -> Result<Makemore> {
        Self::build(kind, config, TransformerOptions::default(), vocab, Builder::init(rng))
    }

    /// A fresh Transformer with the levers of `options` (dropout, weight tying), initialised
    /// from `rng`.
    pub fn transformer(
        config: ModelConfig,
        options: TransformerOptions,
        vocab: &Vocab,
        rng: &mut dyn RngCore,
    ) -> Result<Makemore> {
        Self::build(Kind::Transformer, config, options, vocab, Builder::init(rng))
    }

    /// The model of `kind` with the parameters of `state`, by their `state_dict()` names (as
    /// `load_state_dict(strict=True)`).
    pub fn load(kind: Kind, config: ModelConfig, vocab: &Vocab, state: &ParamStore<f32>) -> Result<Makemore> {
        Self::build(kind, config, TransformerOptions::default(), vocab, Builder::load(state))
    }

    fn build(
        kind: Kind,
        config: ModelConfig,
        options: TransformerOptions,
        vocab: &Vocab,
        b: Builder<'_, f32>,
    ) -> Result<Makemore> {
        if config.vocab_size != vocab.len() {
            return Err(ModelError::Config(format!(
                "{}: vocab_size {} is not the vocabulary's {} tokens",
                kind.name(),
                config.vocab_size,
                vocab.len()
            )));
        }
        let net = match kind {
            Kind::Transformer => Net::Transformer(Transformer::build_with(config, options, b)?),
            Kind::Bow => Net::Bow(BoW::build(config, b)?),
            Kind::Rnn => Net::Rnn(Rnn::build(config, b)?),
            Kind::Gru => Net::Gru(Gru::build(config, b)?),
            Kind::Mlp => Net::Mlp(MlpMakemore::build(config, b)?),
            Kind::Bigram => Net::Bigram(BigramMakemore::build(config, b)?),
        };
        Ok(Makemore { kind, vocab: vocab.clone(), net })
    }

    /// The kind.
    pub fn model_kind(&self) -> Kind {
        self.kind
    }

    /// The sizes.
    pub fn model_config(&self) -> &ModelConfig {
        each!(&self.net, m => m.config())
    }

    /// The Transformer's levers (the defaults for the other kinds, which have none).
    pub fn transformer_options(&self) -> TransformerOptions {
        match &self.net {
            Net::Transformer(m) => m.options(),
            _ => TransformerOptions::default(),
        }
    }
}

impl Model for Makemore {
    fn kind(&self) -> &'static str {
        self.kind.name()
    }

    fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    fn block_size(&self) -> usize {
        self.model_config().block_size
    }

    fn layout(&self) -> Layout {
        Layout::Words
    }

    /// `block_size`, `vocab_size`, the sizes the kind reads, and the Transformer's levers that
    /// are not at their defaults (so that makemore's models record what they always did).
    fn config(&self) -> Vec<(&'static str, String)> {
        let c = self.model_config();
        let mut out =
            vec![("block_size", c.block_size.to_string()), ("vocab_size", c.vocab_size.to_string())];
        out.extend(self.kind.sizes().iter().map(|&name| (name, c.size(name).to_string())));
        let o = self.transformer_options();
        if o.dropout != 0.0 {
            out.push(("dropout", o.dropout.to_string()));
        }
        if o.tie_weights {
            out.push(("tie_weights", "true".into()));
        }
        if o.rotary {
            out.push(("rotary", "true".into()));
        }
        out
    }

    fn begin_step(&self, seed: u64, step: usize) {
        if let Net::Transformer(m) = &self.net {
            m.begin_step(seed, step);
        }
    }

    /// The Transformer draws dropout's masks of shard `shard`; the other kinds draw nothing.
    fn shard_loss<'g>(
        &self,
        g: &'g Graph<'g, f32>,
        x: ArrayView2<'_, u32>,
        y: &[u32],
        shard: usize,
    ) -> Var<'g, f32> {
        match &self.net {
            Net::Transformer(m) => m.forward_shard(g, x, shard).cross_entropy(y),
            _ => self.loss(g, x, y),
        }
    }

    fn params(&self) -> &ParamStore<f32> {
        each!(&self.net, m => m.params())
    }

    fn params_mut(&mut self) -> &mut ParamStore<f32> {
        each!(&mut self.net, m => m.params_mut())
    }

    fn forward<'g>(&self, g: &'g Graph<'g, f32>, x: ArrayView2<'_, u32>) -> Var<'g, f32> {
        each!(&self.net, m => m.forward(g, x))
    }

    /// The Transformer decodes with its key/value cache; the others re-read the prefix.
    fn decoder(&self, n: usize) -> Option<Box<dyn Decoder + '_>> {
        match &self.net {
            Net::Transformer(model) => {
                Some(Box::new(TransformerDecoder { model, tape: Tape::new(), cache: model.kv_cache(n) }))
            }
            _ => None,
        }
    }
}
