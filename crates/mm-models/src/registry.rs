//! The one list of model kinds. A [`Spec`] is a kind with its hyperparameters: it builds the
//! model, knows how the model reads words and how the lectures (or makemore.py) train it, and is
//! what a checkpoint's metadata and a run's settings record. [`AnyModel`] holds a model of any
//! kind. The command line's `--model` values, its flags per kind, `makemore models`, the
//! checkpoint loader, evaluation and sampling all go through this file: adding a model is its
//! own file plus one variant here in [`Spec`] and one in [`AnyModel`].
//!
//! A spec serialises as a flat object tagged by its kind, e.g.
//! `{"kind": "transformer", "block_size": 16, "n_layer": 4, "n_head": 4, "n_embd": 64}`; each
//! field is a setting of the same name (`--n-embd` on the command line, `n_embd` in a
//! checkpoint's metadata).
//!
//! The Transformer also has **levers** (issue #14): optional settings that makemore.py does not
//! have, for the model (`dropout`, `tie_weights`, `rotary`) and for its training (`batch_size`, `lr`,
//! `warmup`, `lr_decay`, `min_lr`, `weight_decay`, `decay_matrices_only`, `grad_clip`, `steps`,
//! `shards`),
//! which [`Spec::train_config`] turns into a [`TrainConfig`]. A lever at its default is not
//! written (so makemore's spec, `makemore models` and existing checkpoints read as before) and
//! may be left out of a spec file; [`Spec::levers`] lists them.

use mm_data::{Layout, Vocab};
use mm_tensor::ParamStore;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::zoo::{Kind, Makemore, ModelConfig, TransformerOptions};
use crate::{
    BigramCounts, BigramNet, BnMlp, BnMlpConfig, Init, Mlp, MlpConfig, Model, ModelError, Result, Schedule,
    TrainConfig, WaveNet, WaveNetConfig,
};

/// A model kind and its hyperparameters. [`Spec::all`] lists every kind at its defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Spec {
    /// The bigram counting model of part 1 (fitted, not trained).
    Bigram {},
    /// The bigram neural net of part 1.
    BigramNn {
        /// The strength of the regularisation `reg * mean(W²)`.
        reg: f32,
    },
    /// The MLP of part 2.
    Mlp {
        /// Characters of context.
        block_size: usize,
        /// Dimensions of a character's embedding.
        n_embd: usize,
        /// Units of the hidden layer.
        n_hidden: usize,
        /// The initialisation.
        init: Init,
    },
    /// The BatchNorm MLP of part 3.
    BnMlp {
        /// Characters of context.
        block_size: usize,
        /// Dimensions of a character's embedding.
        n_embd: usize,
        /// Units of the hidden layer.
        n_hidden: usize,
        /// The running statistics' momentum.
        momentum: f32,
    },
    /// The WaveNet of part 5.
    #[serde(rename = "wavenet")]
    WaveNet {
        /// Characters of context (a power of two).
        block_size: usize,
        /// Dimensions of a character's embedding.
        n_embd: usize,
        /// Units of each hidden layer.
        n_hidden: usize,
        /// The running statistics' momentum.
        momentum: f32,
    },
    /// makemore.py's `Transformer`, its default model, with the levers of issue #14 (each
    /// optional, at makemore.py's value by default).
    Transformer {
        /// The longest sequence.
        block_size: usize,
        /// Blocks.
        n_layer: usize,
        /// Attention heads per block.
        n_head: usize,
        /// The embedding width.
        n_embd: usize,
        /// Dropout on the residual stream in training (GPT-2's places but the attention
        /// weights; see [`crate::zoo::TransformerOptions`]); 0 for none, as makemore.py.
        #[serde(default, skip_serializing_if = "is_zero")]
        dropout: f32,
        /// Whether `lm_head` shares the token embedding's weight; makemore.py does not.
        #[serde(default, skip_serializing_if = "is_false")]
        tie_weights: bool,
        /// Rotary position embeddings in place of the learned `wpe`; makemore.py has `wpe`.
        #[serde(default, skip_serializing_if = "is_false")]
        rotary: bool,
        /// Words per step (makemore.py's 32).
        #[serde(default = "levers::batch_size", skip_serializing_if = "levers::is_batch_size")]
        batch_size: usize,
        /// The learning rate (makemore.py's 5e-4); with warmup or cosine decay, the peak.
        #[serde(default = "levers::lr", skip_serializing_if = "levers::is_lr")]
        lr: f32,
        /// Steps of linear warmup to `lr` (0, makemore.py's, for none).
        #[serde(default, skip_serializing_if = "is_zero_usize")]
        warmup: usize,
        /// The rate after the warmup: constant (makemore.py's) or cosine decay to `min_lr`
        /// over the run.
        #[serde(default, skip_serializing_if = "LrDecay::is_constant")]
        lr_decay: LrDecay,
        /// The rate at the end of a cosine decay.
        #[serde(default, skip_serializing_if = "is_zero")]
        min_lr: f32,
        /// AdamW's decoupled weight decay (makemore.py's 0.01).
        #[serde(default = "levers::weight_decay", skip_serializing_if = "levers::is_weight_decay")]
        weight_decay: f32,
        /// Decay only the matrices, not the biases and LayerNorm's vectors (makemore.py decays
        /// every parameter).
        #[serde(default, skip_serializing_if = "is_false")]
        decay_matrices_only: bool,
        /// Clip the gradients' global norm to this; 0 (makemore.py's) for no clipping.
        #[serde(default, skip_serializing_if = "is_zero")]
        grad_clip: f32,
        /// Training steps (the zoo's 10,000); a cosine decay ends at the last.
        #[serde(default = "levers::steps", skip_serializing_if = "levers::is_steps")]
        steps: usize,
        /// Shards of each step's batch ([`TrainConfig::shards`]; 1, makemore.py's, for one
        /// tape): a setting of the training, not of the model, which fixes the rounding, so a
        /// spec that was tuned at 2 shards is reproduced bit for bit at 2. The threads that run
        /// them are the machine's business, not the spec's.
        #[serde(default = "levers::shards", skip_serializing_if = "levers::is_shards")]
        shards: usize,
    },
    /// makemore.py's `BoW`.
    Bow {
        /// The longest sequence.
        block_size: usize,
        /// The embedding width.
        n_embd: usize,
        /// The hidden layer's width.
        n_embd2: usize,
    },
    /// makemore.py's `RNN(cell_type="rnn")`.
    Rnn {
        /// The longest sequence.
        block_size: usize,
        /// The embedding width.
        n_embd: usize,
        /// The hidden state's width.
        n_embd2: usize,
    },
    /// makemore.py's `RNN(cell_type="gru")`.
    Gru {
        /// The longest sequence.
        block_size: usize,
        /// The embedding width.
        n_embd: usize,
        /// The hidden state's width.
        n_embd2: usize,
    },
    /// makemore.py's `MLP`.
    MlpMakemore {
        /// The longest sequence, and the context of each prediction.
        block_size: usize,
        /// The embedding width.
        n_embd: usize,
        /// The hidden layer's width.
        n_embd2: usize,
    },
    /// makemore.py's `Bigram`.
    BigramMakemore {
        /// The longest sequence.
        block_size: usize,
    },
}

/// How the learning rate goes after the warmup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrDecay {
    /// The same rate to the end (makemore.py's).
    #[default]
    Constant,
    /// Half a cosine from the rate down to `min_lr` at the last step ([`Schedule::WarmupCosine`]).
    Cosine,
}

impl LrDecay {
    fn is_constant(&self) -> bool {
        *self == LrDecay::Constant
    }
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

fn is_zero_usize(x: &usize) -> bool {
    *x == 0
}

fn is_false(x: &bool) -> bool {
    !*x
}

/// The training levers' defaults: makemore.py's training ([`TrainConfig::makemore`]).
mod levers {
    use crate::TrainConfig;

    pub(super) fn batch_size() -> usize {
        TrainConfig::makemore().batch_size.unwrap_or(32)
    }
    pub(super) fn is_batch_size(x: &usize) -> bool {
        *x == batch_size()
    }
    pub(super) fn lr() -> f32 {
        TrainConfig::makemore().schedule.lr(0)
    }
    pub(super) fn is_lr(x: &f32) -> bool {
        *x == lr()
    }
    pub(super) fn weight_decay() -> f32 {
        TrainConfig::makemore().weight_decay
    }
    pub(super) fn is_weight_decay(x: &f32) -> bool {
        *x == weight_decay()
    }
    pub(super) fn steps() -> usize {
        TrainConfig::makemore().steps
    }
    pub(super) fn is_steps(x: &usize) -> bool {
        *x == steps()
    }
    pub(super) fn shards() -> usize {
        TrainConfig::makemore().shards
    }
    pub(super) fn is_shards(x: &usize) -> bool {
        *x == shards()
    }
}

impl Spec {
    /// makemore.py's Transformer of these sizes, every lever at its default (makemore.py's
    /// model and training).
    pub fn transformer(block_size: usize, n_layer: usize, n_head: usize, n_embd: usize) -> Spec {
        Spec::Transformer {
            block_size,
            n_layer,
            n_head,
            n_embd,
            dropout: 0.0,
            tie_weights: false,
            rotary: false,
            batch_size: levers::batch_size(),
            lr: levers::lr(),
            warmup: 0,
            lr_decay: LrDecay::Constant,
            min_lr: 0.0,
            weight_decay: levers::weight_decay(),
            decay_matrices_only: false,
            grad_clip: 0.0,
            steps: levers::steps(),
            shards: levers::shards(),
        }
    }

    /// The kind's levers (optional settings, not written at their defaults) with their
    /// defaults, as JSON values: the Transformer's; none for the other kinds.
    ///
    /// ```
    /// use mm_models::Spec;
    /// let t = Spec::default_of("transformer").unwrap();
    /// let names: Vec<String> = t.levers().into_iter().map(|(k, _)| k).collect();
    /// assert!(names.contains(&"dropout".to_string()) && names.contains(&"grad_clip".to_string()));
    /// assert!(Spec::default_of("mlp").unwrap().levers().is_empty());
    /// ```
    pub fn levers(&self) -> Vec<(String, serde_json::Value)> {
        if !matches!(self, Spec::Transformer { .. }) {
            return Vec::new();
        }
        let all = serde_json::json!({
            "dropout": 0.0, "tie_weights": false, "rotary": false, "batch_size": levers::batch_size(), "lr": levers::lr(),
            "warmup": 0, "lr_decay": LrDecay::Constant, "min_lr": 0.0,
            "weight_decay": levers::weight_decay(), "decay_matrices_only": false, "grad_clip": 0.0,
            "steps": levers::steps(), "shards": levers::shards(),
        });
        match all {
            serde_json::Value::Object(all) => all.into_iter().collect(),
            _ => Vec::new(),
        }
    }

    /// Every setting of the spec, as JSON: the written ones and the levers at their defaults.
    fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut fields = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(fields)) => fields,
            _ => serde_json::Map::new(),
        };
        for (k, v) in self.levers() {
            fields.entry(k).or_insert(v);
        }
        fields
    }

    /// Every kind at its defaults (the lectures' and makemore.py's on `names.txt`), in the order
    /// `makemore models` lists them.
    pub fn all() -> Vec<Spec> {
        let m = ModelConfig::default();
        let (block_size, n_embd, n_embd2) = (m.block_size, m.n_embd, m.n_embd2);
        let mlp = MlpConfig::default();
        let bn = BnMlpConfig::default();
        let wn = WaveNetConfig::default();
        vec![
            Spec::Bigram {},
            Spec::BigramNn { reg: 0.01 },
            Spec::Mlp {
                block_size: mlp.block_size,
                n_embd: mlp.n_embd,
                n_hidden: mlp.n_hidden,
                init: mlp.init,
            },
            Spec::BnMlp {
                block_size: bn.block_size,
                n_embd: bn.n_embd,
                n_hidden: bn.n_hidden,
                momentum: bn.momentum,
            },
            Spec::WaveNet {
                block_size: wn.block_size,
                n_embd: wn.n_embd,
                n_hidden: wn.n_hidden,
                momentum: wn.momentum,
            },
            Spec::transformer(block_size, m.n_layer, m.n_head, n_embd),
            Spec::Bow { block_size, n_embd, n_embd2 },
            Spec::Rnn { block_size, n_embd, n_embd2 },
            Spec::Gru { block_size, n_embd, n_embd2 },
            Spec::MlpMakemore { block_size, n_embd, n_embd2 },
            Spec::BigramMakemore { block_size },
        ]
    }

    /// The names of every kind, as `--model` takes them.
    pub fn names() -> Vec<&'static str> {
        Spec::all().iter().map(Spec::kind).collect()
    }

    /// The kind called `name` at its defaults, if there is one.
    pub fn default_of(name: &str) -> Option<Spec> {
        Spec::all().into_iter().find(|s| s.kind() == name)
    }

    /// The kind's name: `bigram`, `bigram-nn`, `mlp`, `bn-mlp`, `wavenet`, `transformer`, `bow`,
    /// `rnn`, `gru`, `mlp-makemore`, `bigram-makemore`.
    pub fn kind(&self) -> &'static str {
        match self {
            Spec::Bigram {} => "bigram",
            Spec::BigramNn { .. } => "bigram-nn",
            Spec::Mlp { .. } => "mlp",
            Spec::BnMlp { .. } => "bn-mlp",
            Spec::WaveNet { .. } => "wavenet",
            Spec::Transformer { .. } => "transformer",
            Spec::Bow { .. } => "bow",
            Spec::Rnn { .. } => "rnn",
            Spec::Gru { .. } => "gru",
            Spec::MlpMakemore { .. } => "mlp-makemore",
            Spec::BigramMakemore { .. } => "bigram-makemore",
        }
    }

    /// One line about the kind and where it comes from.
    pub fn about(&self) -> &'static str {
        match self {
            Spec::Bigram {} => "bigram counts, smoothed (lecture 1)",
            Spec::BigramNn { .. } => "bigram neural net, one 27x27 layer (lecture 1)",
            Spec::Mlp { .. } => "MLP of Bengio et al. 2003 over context windows (lecture 2)",
            Spec::BnMlp { .. } => "the MLP with BatchNorm and a fixed initialisation (lecture 3)",
            Spec::WaveNet { .. } => "WaveNet: the context fused two neighbours at a time (lecture 5)",
            Spec::Transformer { .. } => "GPT-2 style Transformer, makemore.py's default",
            Spec::Bow { .. } => "makemore.py's causal bag of words",
            Spec::Rnn { .. } => "makemore.py's RNN",
            Spec::Gru { .. } => "makemore.py's GRU",
            Spec::MlpMakemore { .. } => "makemore.py's MLP over whole words, with a blank token",
            Spec::BigramMakemore { .. } => "makemore.py's Bigram: a table of logits",
        }
    }

    /// The names of the kind's settings (its fields), e.g. `["block_size", "n_embd",
    /// "n_hidden", "init"]` for the MLP.
    pub fn settings(&self) -> Vec<String> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(fields)) => {
                fields.keys().filter(|k| *k != "kind").cloned().collect()
            }
            _ => Vec::new(),
        }
    }

    /// The setting `key` as text, levers included (`None` if the kind has no such setting).
    pub fn setting(&self, key: &str) -> Option<String> {
        let value = self.fields().get(key)?.clone();
        Some(match value {
            serde_json::Value::String(s) => s,
            // f32 settings print as f32 (0.01, not 0.009999999776482582).
            serde_json::Value::Number(n) if n.is_f64() => (n.as_f64()? as f32).to_string(),
            other => other.to_string(),
        })
    }

    /// The kind `name` with its settings read by `get` (as text, e.g. from a checkpoint's
    /// metadata or the command line): a setting `get` does not have keeps its default when
    /// `strict` is false, and is an error when it is true; a lever ([`Spec::levers`]) is always
    /// optional.
    pub fn parse(name: &str, get: impl Fn(&str) -> Option<String>, strict: bool) -> Result<Spec, SpecError> {
        let default = Spec::default_of(name).ok_or_else(|| SpecError::UnknownKind(name.to_string()))?;
        let levers: Vec<String> = default.levers().into_iter().map(|(k, _)| k).collect();
        let mut fields = default.fields();
        if fields.is_empty() {
            let problem = "not serialisable as an object".to_string();
            return Err(SpecError::Setting { key: name.to_string(), problem });
        }
        for (key, value) in fields.iter_mut().filter(|(k, _)| *k != "kind") {
            let Some(text) = get(key) else {
                if strict && !levers.contains(key) {
                    return Err(SpecError::Setting { key: key.clone(), problem: "missing".into() });
                }
                continue;
            };
            let bad =
                |what: &str| SpecError::Setting { key: key.clone(), problem: format!("{text:?}, {what}") };
            *value = match value {
                serde_json::Value::Bool(_) => serde_json::Value::Bool(match text.trim() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("not true or false")),
                }),
                serde_json::Value::Number(n) if n.is_u64() => serde_json::Value::from(
                    text.trim().parse::<u64>().map_err(|_| bad("not a whole number"))?,
                ),
                serde_json::Value::Number(_) => {
                    let v: f64 = text.trim().parse().map_err(|_| bad("not a number"))?;
                    if !v.is_finite() {
                        return Err(bad("not a finite number"));
                    }
                    serde_json::Value::from(v)
                }
                _ => serde_json::Value::String(text.clone()),
            };
        }
        // A value serde refuses (an unknown variant `xyz`) is named by its setting (`init`), the
        // one whose text the message quotes; else by the kind.
        let texts: Vec<(String, String)> = fields
            .iter()
            .filter(|(k, _)| *k != "kind")
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| {
            let problem = e.to_string();
            let key = texts.iter().find(|(_, t)| problem.contains(&format!("`{t}`"))).map(|(k, _)| k.clone());
            SpecError::Setting { key: key.unwrap_or_else(|| name.to_string()), problem }
        })
    }

    /// How the kind reads words: context windows (the lectures') or whole words (makemore.py's).
    pub fn layout(&self) -> Layout {
        match self {
            Spec::Bigram {}
            | Spec::BigramNn { .. }
            | Spec::Mlp { .. }
            | Spec::BnMlp { .. }
            | Spec::WaveNet { .. } => Layout::Windows,
            _ => Layout::Words,
        }
    }

    /// The context (windows) or the longest sequence (words).
    pub fn block_size(&self) -> usize {
        match self {
            Spec::Bigram {} | Spec::BigramNn { .. } => 1,
            Spec::Mlp { block_size, .. }
            | Spec::BnMlp { block_size, .. }
            | Spec::WaveNet { block_size, .. }
            | Spec::Transformer { block_size, .. }
            | Spec::Bow { block_size, .. }
            | Spec::Rnn { block_size, .. }
            | Spec::Gru { block_size, .. }
            | Spec::MlpMakemore { block_size, .. }
            | Spec::BigramMakemore { block_size } => *block_size,
        }
    }

    /// The spec with another block size (makemore.py's kinds take the longest word + 1 of the
    /// data); kinds with a fixed context of one keep theirs.
    pub fn with_block_size(mut self, n: usize) -> Spec {
        match &mut self {
            Spec::Bigram {} | Spec::BigramNn { .. } => {}
            Spec::Mlp { block_size, .. }
            | Spec::BnMlp { block_size, .. }
            | Spec::WaveNet { block_size, .. }
            | Spec::Transformer { block_size, .. }
            | Spec::Bow { block_size, .. }
            | Spec::Rnn { block_size, .. }
            | Spec::Gru { block_size, .. }
            | Spec::MlpMakemore { block_size, .. }
            | Spec::BigramMakemore { block_size } => *block_size = n,
        }
        self
    }

    /// How the lecture (or makemore.py) trains the kind: SGD at 0.1, then 0.01 from half of
    /// 200,000 steps (three quarters for the WaveNet); full-batch steps at 50 for the bigram net;
    /// AdamW for makemore.py's kinds ([`TrainConfig::makemore`]).
    pub fn train_config(&self) -> TrainConfig {
        match *self {
            Spec::Bigram {} => TrainConfig { steps: 0, ..TrainConfig::bigram_nn() },
            Spec::BigramNn { .. } => TrainConfig::bigram_nn(),
            Spec::Mlp { .. } | Spec::BnMlp { .. } => TrainConfig::mlp(),
            Spec::WaveNet { .. } => TrainConfig {
                schedule: Schedule::Step { lr: 0.1, at: 150_000, then: 0.01 },
                ..TrainConfig::mlp()
            },
            Spec::Transformer {
                batch_size,
                lr,
                warmup,
                lr_decay,
                min_lr,
                weight_decay,
                decay_matrices_only,
                grad_clip,
                steps,
                shards,
                ..
            } => {
                let schedule = match (warmup, lr_decay) {
                    (0, LrDecay::Constant) => Schedule::Constant(lr),
                    (_, LrDecay::Constant) => Schedule::WarmupCosine { lr, warmup, min_lr: lr, steps },
                    (_, LrDecay::Cosine) => Schedule::WarmupCosine { lr, warmup, min_lr, steps },
                };
                TrainConfig {
                    steps,
                    batch_size: Some(batch_size),
                    schedule,
                    weight_decay,
                    decay_matrices_only,
                    grad_clip,
                    shards,
                    ..TrainConfig::makemore()
                }
            }
            _ => TrainConfig::makemore(),
        }
    }

    /// The Transformer's model levers (the defaults for the other kinds).
    fn transformer_options(&self) -> TransformerOptions {
        match *self {
            Spec::Transformer { dropout, tie_weights, rotary, .. } => {
                TransformerOptions { dropout, tie_weights, rotary }
            }
            _ => TransformerOptions::default(),
        }
    }

    /// makemore.py's kind and sizes, for its kinds.
    fn makemore(&self, vocab_size: usize) -> Option<(Kind, ModelConfig)> {
        let d = ModelConfig { vocab_size, ..ModelConfig::default() };
        Some(match *self {
            Spec::Transformer { block_size, n_layer, n_head, n_embd, .. } => {
                (Kind::Transformer, ModelConfig { block_size, n_layer, n_head, n_embd, ..d })
            }
            Spec::Bow { block_size, n_embd, n_embd2 } => {
                (Kind::Bow, ModelConfig { block_size, n_embd, n_embd2, ..d })
            }
            Spec::Rnn { block_size, n_embd, n_embd2 } => {
                (Kind::Rnn, ModelConfig { block_size, n_embd, n_embd2, ..d })
            }
            Spec::Gru { block_size, n_embd, n_embd2 } => {
                (Kind::Gru, ModelConfig { block_size, n_embd, n_embd2, ..d })
            }
            Spec::MlpMakemore { block_size, n_embd, n_embd2 } => {
                (Kind::Mlp, ModelConfig { block_size, n_embd, n_embd2, ..d })
            }
            Spec::BigramMakemore { block_size } => (Kind::Bigram, ModelConfig { block_size, ..d }),
            _ => return None,
        })
    }

    /// The number of scalar parameters of the kind over `vocab_size` tokens, computed, not
    /// built (saturating: absurd sizes give a huge number, never an overflow), so that sizes can
    /// be refused before anything is allocated.
    ///
    /// ```
    /// use mm_models::Spec;
    /// let counts: Vec<(&str, u128)> = Spec::all().iter().map(|s| (s.kind(), s.num_params(27))).collect();
    /// assert_eq!(counts[..5], [("bigram", 729), ("bigram-nn", 729), ("mlp", 11_897), ("bn-mlp", 12_097), ("wavenet", 76_579)]);
    /// assert_eq!(counts[5], ("transformer", 204_544));
    /// ```
    pub fn num_params(&self, vocab_size: usize) -> u128 {
        let v = vocab_size as u128;
        let c = |x: usize| x as u128;
        match *self {
            Spec::Bigram {} | Spec::BigramNn { .. } => v * v,
            Spec::Mlp { block_size, n_embd, n_hidden, .. } => {
                let fan_in = c(block_size).saturating_mul(c(n_embd));
                v * c(n_embd) + fan_in.saturating_mul(c(n_hidden)) + c(n_hidden) + c(n_hidden) * v + v
            }
            Spec::BnMlp { block_size, n_embd, n_hidden, .. } => {
                let fan_in = c(block_size).saturating_mul(c(n_embd));
                v * c(n_embd) + fan_in.saturating_mul(c(n_hidden)) + c(n_hidden) * v + v + 2 * c(n_hidden)
            }
            Spec::WaveNet { block_size, n_embd, n_hidden, .. } => {
                let (levels, h) = (u128::from(block_size.max(1).trailing_zeros()), c(n_hidden));
                let hidden = levels.saturating_sub(1).saturating_mul(2 * h).saturating_mul(h);
                v * c(n_embd) + 2 * c(n_embd) * h + hidden + levels * 2 * h + h * v + v
            }
            _ => {
                let (kind, config) = self.makemore(vocab_size).expect("makemore.py's kinds");
                // A tied lm_head has no weight of its own.
                let options = self.transformer_options();
                let tied = if options.tie_weights { c(config.n_embd) * v } else { 0 };
                // Rotary positions have no wpe table.
                let wpe = if options.rotary { c(config.block_size) * c(config.n_embd) } else { 0 };
                kind.num_params(&config).saturating_sub(tied).saturating_sub(wpe)
            }
        }
    }

    /// A fresh model of this spec over `vocab`, its weights drawn from `rng` (as the lecture or
    /// PyTorch initialises them). The counting model is fitted to data, not built: an error.
    pub fn build(&self, vocab: &Vocab, rng: &mut dyn RngCore) -> Result<AnyModel> {
        Ok(match *self {
            Spec::Bigram {} => {
                return Err(ModelError::Config(
                    "the bigram counting model is fitted to words, not built".into(),
                ));
            }
            Spec::BigramNn { reg } => AnyModel::BigramNet(BigramNet::new(vocab, reg, rng)?),
            Spec::Mlp { block_size, n_embd, n_hidden, init } => {
                AnyModel::Mlp(Mlp::new(MlpConfig { block_size, n_embd, n_hidden, init }, vocab, rng)?)
            }
            Spec::BnMlp { block_size, n_embd, n_hidden, momentum } => AnyModel::BnMlp(BnMlp::new(
                BnMlpConfig { block_size, n_embd, n_hidden, momentum },
                vocab,
                rng,
            )?),
            Spec::WaveNet { block_size, n_embd, n_hidden, momentum } => AnyModel::WaveNet(WaveNet::new(
                WaveNetConfig { block_size, n_embd, n_hidden, momentum },
                vocab,
                rng,
            )?),
            Spec::Transformer { .. } => {
                let (_, config) = self.makemore(vocab.len()).expect("makemore.py's kinds");
                AnyModel::Makemore(Makemore::transformer(config, self.transformer_options(), vocab, rng)?)
            }
            _ => {
                let (kind, config) = self.makemore(vocab.len()).expect("makemore.py's kinds");
                AnyModel::Makemore(Makemore::new(kind, config, vocab, rng)?)
            }
        })
    }
}

/// What is wrong with a spec's settings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// No kind of that name.
    #[error("unknown model kind {0:?}")]
    UnknownKind(String),
    /// A setting is missing or not of its type.
    #[error("setting {key:?} is {problem}")]
    Setting {
        /// The setting.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// A model of any kind, as a checkpoint holds it.
#[derive(Clone, Debug)]
pub enum AnyModel {
    /// The bigram counting model.
    Counts(BigramCounts),
    /// The bigram neural net.
    BigramNet(BigramNet),
    /// The MLP.
    Mlp(Mlp),
    /// The BatchNorm MLP of part 3 (with its running statistics).
    BnMlp(BnMlp),
    /// The WaveNet of part 5 (with its running statistics).
    WaveNet(WaveNet),
    /// One of makemore.py's models (its parameters under makemore's `state_dict()` names).
    Makemore(Makemore),
}

/// A model of any kind, borrowed: the counting model, or a neural [`Model`].
#[derive(Clone, Copy)]
pub enum ModelRef<'a> {
    /// The bigram counting model (no parameters to train; its own NLL and sampler).
    Counts(&'a BigramCounts),
    /// A model with parameters, trained by the training loop.
    Neural(&'a dyn Model),
}

impl AnyModel {
    /// The model as the counting model or as a neural [`Model`]: what evaluation and sampling
    /// tell apart.
    pub fn as_model(&self) -> ModelRef<'_> {
        match self {
            AnyModel::Counts(m) => ModelRef::Counts(m),
            AnyModel::BigramNet(m) => ModelRef::Neural(m),
            AnyModel::Mlp(m) => ModelRef::Neural(m),
            AnyModel::BnMlp(m) => ModelRef::Neural(m),
            AnyModel::WaveNet(m) => ModelRef::Neural(m),
            AnyModel::Makemore(m) => ModelRef::Neural(m),
        }
    }

    /// The model as a writable neural [`Model`] (to train it), unless it is the counting model.
    pub fn neural_mut(&mut self) -> Option<&mut dyn Model> {
        Some(match self {
            AnyModel::Counts(_) => return None,
            AnyModel::BigramNet(m) => m,
            AnyModel::Mlp(m) => m,
            AnyModel::BnMlp(m) => m,
            AnyModel::WaveNet(m) => m,
            AnyModel::Makemore(m) => m,
        })
    }

    /// The model as an owned neural [`Model`], unless it is the counting model.
    pub fn into_neural(self) -> Option<Box<dyn Model>> {
        Some(match self {
            AnyModel::Counts(_) => return None,
            AnyModel::BigramNet(m) => Box::new(m),
            AnyModel::Mlp(m) => Box::new(m),
            AnyModel::BnMlp(m) => Box::new(m),
            AnyModel::WaveNet(m) => Box::new(m),
            AnyModel::Makemore(m) => Box::new(m),
        })
    }

    /// The model as a neural [`Model`], unless it is the counting model.
    pub fn neural(&self) -> Option<&dyn Model> {
        match self.as_model() {
            ModelRef::Counts(_) => None,
            ModelRef::Neural(m) => Some(m),
        }
    }

    /// The kind, as recorded: `bigram`, `bigram-nn`, `mlp`, ... (see [`Spec::kind`]).
    pub fn kind(&self) -> &'static str {
        match self.as_model() {
            ModelRef::Counts(_) => "bigram",
            ModelRef::Neural(m) => m.kind(),
        }
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        match self.as_model() {
            ModelRef::Counts(m) => m.vocab(),
            ModelRef::Neural(m) => m.vocab(),
        }
    }

    /// The number of scalar parameters (the counting model's: its 27x27 counts).
    pub fn num_params(&self) -> usize {
        match self.as_model() {
            ModelRef::Counts(c) => c.vocab().len() * c.vocab().len(),
            ModelRef::Neural(m) => m.num_params(),
        }
    }

    /// The model's spec: its kind and hyperparameters, as its checkpoint records them.
    pub fn spec(&self) -> Spec {
        let Some(m) = self.neural() else { return Spec::Bigram {} };
        let config = m.config();
        let get = |key: &str| config.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
        Spec::parse(m.kind(), get, true).expect("a model's config is its spec's settings")
    }

    /// A copy of the model with `params` (parameters and buffers of the same names and shapes)
    /// in place of its own, e.g. the best by dev loss. The counting model has none: a copy.
    pub fn with_params(&self, params: &ParamStore<f32>) -> AnyModel {
        let mut copy = self.clone();
        if let Some(m) = copy.neural_mut() {
            *m.params_mut() = params.clone();
        }
        copy
    }
}
