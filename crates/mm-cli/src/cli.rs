//! The command line: every command and flag, with its help text and default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mm_models::limits;

/// makemore: make more of the things in a text file (new names from a list of names), with the
/// models of Karpathy's makemore lectures (bigram counts, a bigram neural net, an MLP) and of
/// makemore.py (Transformer, bag of words, RNN, GRU, MLP, Bigram).
#[derive(Parser, Debug)]
#[command(name = "makemore", version)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model, report its loss on each split, print samples, and save the run.
    ///
    /// Ctrl-C or SIGTERM stops training after the current step and saves the run (continue it
    /// with --resume); the command then exits with code 130, not 0, since the run is unfinished.
    Train(Box<TrainArgs>),
    /// Print names sampled from a checkpoint.
    Sample(SampleArgs),
    /// Print a checkpoint's loss on the splits of a dataset.
    Eval(EvalArgs),
    /// Print a dataset's statistics and split sizes.
    Info(InfoArgs),
    /// List the model kinds, with their default settings, parameters and training.
    Models(ModelsArgs),
    /// Draw one training step of a model as a graph (micrograd's draw_dot), as SVG or Graphviz
    /// DOT (by the output's extension).
    Graph(GraphArgs),
    /// Draw the lectures' pictures, as PNG or SVG (by the output's extension).
    #[command(subcommand)]
    Plot(PlotCommand),
}

/// `makemore plot`.
#[derive(Subcommand, Debug)]
pub enum PlotCommand {
    /// The 27x27 grid of bigram counts, each cell labelled with its pair and count.
    Bigram {
        #[command(flatten)]
        data: DataArg,
        /// The picture to write (.png or .svg).
        #[arg(long, value_name = "PATH", default_value = "bigram.png")]
        out: PathBuf,
    },
    /// The learnt embeddings C of an MLP checkpoint, labelled by character (two principal
    /// components when n_embd > 2).
    Embeddings {
        /// An MLP checkpoint.
        #[arg(long, value_name = "PATH")]
        checkpoint: PathBuf,
        /// The picture to write (.png or .svg).
        #[arg(long, value_name = "PATH", default_value = "embeddings.png")]
        out: PathBuf,
        /// Load a checkpoint whose weights hold NaN or infinite values (non-finite points are
        /// left out of the picture).
        #[arg(long)]
        allow_non_finite: bool,
    },
    /// Training and dev loss over steps (log scale), from a run's metrics.csv.
    Loss {
        /// The run directory.
        #[arg(long, value_name = "DIR")]
        run: PathBuf,
        /// The picture to write (.png or .svg) [default: <run>/loss.png].
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// A learning-rate sweep's loss against log10(rate), with the suggested rate marked, from the
    /// sweep.csv of `cargo xtask lr-sweep`.
    LrSweep {
        /// The sweep's CSV.
        #[arg(value_name = "CSV")]
        csv: PathBuf,
        /// The picture to write (.png or .svg) [default: the CSV's path with .png].
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
}

/// `--model`'s values: every kind of the registry ([`mm_models::Spec::all`]), each with its line
/// of help.
fn model_kinds() -> clap::builder::PossibleValuesParser {
    let kinds = mm_models::Spec::all();
    clap::builder::PossibleValuesParser::new(
        kinds.iter().map(|s| clap::builder::PossibleValue::new(s.kind()).help(s.about())),
    )
}

/// The MLP's initialisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InitKind {
    /// Every weight from a standard normal (part 2).
    Lecture,
    /// Part 3's fix: W1 scaled by (5/3)/sqrt(fan_in), W2 by 0.01, b2 zero.
    Kaiming,
}

/// The optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    /// Stochastic gradient descent.
    Sgd,
    /// AdamW.
    Adamw,
}

/// How the Transformer's learning rate goes after the warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LrDecayArg {
    /// The same rate to the end.
    Constant,
    /// Half a cosine down to --min-lr.
    Cosine,
}

/// Which split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// The training split (80% of the words).
    Train,
    /// The dev split (10%).
    Dev,
    /// The test split (10%).
    Test,
    /// All three.
    All,
}

/// The dataset flag shared by commands.
#[derive(Args, Debug)]
pub struct DataArg {
    /// The dataset: a UTF-8 text file, one item per line. When the default file is missing it is
    /// downloaded (and checked) first.
    #[arg(long, value_name = "PATH", default_value = mm_data::DEFAULT_DATASET)]
    pub data: PathBuf,
}

/// `makemore train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The model to train (`makemore models` lists them with their defaults) [default: mlp;
    /// with --resume, the run's].
    #[arg(long, value_parser = model_kinds())]
    pub model: Option<String>,

    /// A model spec file instead of --model and its size flags: a JSON object with the kind and
    /// every setting of its spec, e.g. {"kind": "transformer", "block_size": 16, "n_layer": 4,
    /// "n_head": 4, "n_embd": 64} (`makemore models --json` prints each kind's default spec).
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "model", "resume", "block_size", "n_embd", "n_hidden", "init", "n_layer", "n_head", "n_embd2",
        "momentum", "reg", "alpha", "dropout", "tie_weights", "rotary", "warmup", "lr_decay", "min_lr",
        "decay_matrices_only", "grad_clip",
    ])]
    pub spec: Option<PathBuf>,

    #[command(flatten)]
    pub data: DataArg,

    /// The run directory for the checkpoint, metrics.csv and summary.json [default: runs/<model>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Overwrite a run directory that already holds a run.
    #[arg(long)]
    pub force: bool,

    /// Continue the run in --out from its checkpoint, with the optimizer's state, as if it had
    /// never stopped (e.g. after Ctrl-C): the same model, data, seed and training flags (from its
    /// summary.json). --steps may raise the number of steps (the decay keeps its end, so a run
    /// decayed to a rate of 0 cannot go on); the other training flags cannot be given.
    #[arg(long, conflicts_with_all = [
        "force", "seed", "block_size", "n_embd", "n_hidden", "init", "n_layer", "n_head", "n_embd2", "momentum",
        "batch_size", "lr", "decay_step", "lr_decayed", "optimizer", "beta2", "weight_decay", "reg",
        "alpha", "eval_every", "dropout", "tie_weights", "rotary", "warmup", "lr_decay", "min_lr",
        "decay_matrices_only", "grad_clip", "shards",
    ])]
    pub resume: bool,

    /// The seed of the initialisation and of the minibatches.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Characters of context (wavenet: a power of two), or the longest sequence
    /// (makemore's models) [default: 3 for mlp and bn-mlp, 8 for wavenet; the longest item + 1
    /// for makemore's models].
    #[arg(long, value_parser = clap::value_parser!(u64).range(limits::BLOCK_SIZE))]
    pub block_size: Option<u64>,

    /// Dimensions of each character's embedding [default: 10 for mlp and bn-mlp, 24 for
    /// wavenet, 64 for makemore's models].
    #[arg(long, value_parser = clap::value_parser!(u64).range(limits::N_EMBD))]
    pub n_embd: Option<u64>,

    /// mlp, bn-mlp, wavenet: units of each hidden layer [default: 200; 128 for wavenet].
    #[arg(long, value_parser = clap::value_parser!(u64).range(limits::N_HIDDEN))]
    pub n_hidden: Option<u64>,

    /// MLP: the initialisation [default: lecture].
    #[arg(long, value_enum)]
    pub init: Option<InitKind>,

    /// Transformer: blocks [default: 4].
    #[arg(long, value_parser = clap::value_parser!(u64).range(limits::N_LAYER))]
    pub n_layer: Option<u64>,

    /// Transformer: attention heads per block; --n-embd must be a multiple [default: 4].
    #[arg(long, value_parser = clap::value_parser!(u64).range(limits::N_HEAD))]
    pub n_head: Option<u64>,

    /// bn-mlp, wavenet: how far each step moves BatchNorm's running statistics towards the
    /// batch's [default: 0.001 for bn-mlp, 0.1 for wavenet].
    #[arg(long, value_parser = parse_beta)]
    pub momentum: Option<f32>,

    /// bow, rnn, gru, mlp-makemore: the second width (hidden state or layer) [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u64).range(limits::N_EMBD2))]
    pub n_embd2: Option<u64>,

    /// Examples per step: characters for the MLP, words for makemore's models (not for the
    /// bigram net, which uses the whole training set, nor the counting model) [default: 32, or
    /// a spec file's batch_size].
    #[arg(long, value_parser = clap::value_parser!(u64).range(limits::BATCH_SIZE))]
    pub batch_size: Option<u64>,

    /// Transformer: dropout on the residual stream in training (after the embeddings and each
    /// block's two projections, as GPT-2) [default: 0].
    #[arg(long, value_parser = parse_beta)]
    pub dropout: Option<f32>,

    /// Transformer: lm_head shares the token embedding's weight (weight tying).
    #[arg(long)]
    pub tie_weights: bool,

    /// Transformer: rotary position embeddings on each block's queries and keys (RoPE) in place
    /// of the learned position table wpe.
    #[arg(long)]
    pub rotary: bool,

    /// Transformer: steps of linear warmup to --lr [default: 0].
    #[arg(long, value_name = "STEPS")]
    pub warmup: Option<u64>,

    /// Transformer: the rate after the warmup [default: constant].
    #[arg(long, value_enum)]
    pub lr_decay: Option<LrDecayArg>,

    /// Transformer: the rate at the end of a cosine decay (at --decay-step, default the last
    /// step) [default: 0].
    #[arg(long, allow_negative_numbers = true, value_parser = parse_rate)]
    pub min_lr: Option<f32>,

    /// Transformer: AdamW decays only the matrices, not biases and LayerNorm's vectors.
    #[arg(long)]
    pub decay_matrices_only: bool,

    /// Transformer: clip the gradients' global norm to this before each step; 0 for none
    /// [default: 0].
    #[arg(long, allow_negative_numbers = true, value_parser = parse_rate)]
    pub grad_clip: Option<f32>,

    /// Cut each step's batch into this many shards of consecutive rows, each differentiated on
    /// its own tape (on its own thread: see --threads), the gradients summed in shard order; 2
    /// uses both cores of a 2-core machine. The shard count fixes the rounding, so the run
    /// records it (summary.json) and --resume keeps it. Not for bn-mlp and wavenet, whose
    /// BatchNorm normalises with the batch's statistics [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(limits::SHARDS))]
    pub shards: Option<u64>,

    /// Threads for the shards of a step: at most this many, never more than --shards; 0 for
    /// one per core. The threads never change the result: the same seed and --shards give the
    /// same bits on any number of threads, and a run may be resumed with another --threads
    /// [default: 0, one per core].
    #[arg(long, value_parser = clap::value_parser!(u64).range(limits::THREADS))]
    pub threads: Option<u64>,

    /// Optimisation steps [default: 200000 for mlp, bn-mlp and wavenet, 500 for the bigram net,
    /// 10000 for makemore's models].
    #[arg(long, value_parser = clap::value_parser!(u64).range(limits::STEPS))]
    pub steps: Option<u64>,

    /// The learning rate [default: 0.1 for the MLP, 50 for the bigram net, 5e-4 for makemore's
    /// models].
    #[arg(long, allow_negative_numbers = true, value_parser = parse_rate)]
    pub lr: Option<f32>,

    /// The step from which the learning rate decays to --lr-decayed [default: half of --steps,
    /// three quarters for wavenet; never for makemore's models].
    #[arg(long, value_name = "STEP")]
    pub decay_step: Option<u64>,

    /// The learning rate after --decay-step [default: --lr / 10 for mlp, bn-mlp and wavenet,
    /// --lr otherwise].
    #[arg(long, allow_negative_numbers = true, value_parser = parse_rate)]
    pub lr_decayed: Option<f32>,

    /// The optimizer [default: sgd for the lectures' models, adamw for makemore's].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerArg>,

    /// AdamW's beta2 [default: 0.999 for the lectures' models, 0.99 for makemore's, as
    /// makemore.py].
    #[arg(long, value_parser = parse_beta)]
    pub beta2: Option<f32>,

    /// Weight decay (L2 for SGD, decoupled for AdamW) [default: 0 for the lectures' models,
    /// 0.01 for makemore's].
    #[arg(long, allow_negative_numbers = true, value_parser = parse_rate)]
    pub weight_decay: Option<f32>,

    /// Bigram net: the strength of the regularisation reg * mean(W²) [default: 0.01].
    #[arg(long, allow_negative_numbers = true, value_parser = parse_rate)]
    pub reg: Option<f32>,

    /// Bigram counts: the smoothing added to every count [default: 1].
    #[arg(long, allow_negative_numbers = true, value_parser = parse_rate)]
    pub alpha: Option<f32>,

    /// Evaluate on the dev split every this many steps, and at the last (0: never during
    /// training, so no best.safetensors; the losses at the end are still printed) [default:
    /// 10000; 1000 for makemore's models].
    #[arg(long)]
    pub eval_every: Option<u64>,

    /// Save a resumable checkpoint (atomically, as at the end) every this many steps, so that even
    /// a SIGKILL loses at most that many; 0: only at the end [default: at each evaluation,
    /// --eval-every].
    #[arg(long, value_name = "STEPS")]
    pub save_every: Option<u64>,

    /// Print the run's summary as one JSON object on stdout, and nothing else there.
    #[arg(long)]
    pub json: bool,

    /// Whether --data was given on the command line (not its default): `--resume` without it
    /// reads the dataset the run recorded.
    #[arg(skip)]
    pub data_given: bool,

    /// Whether --batch-size was given on the command line (not its default): the models that
    /// take no batches refuse it.
    #[arg(skip)]
    pub batch_size_given: bool,
}

impl TrainArgs {
    /// The model settings given on the command line, by their names in the registry's specs
    /// (`--n-embd` is `n_embd`), as text.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let sizes = [
            ("block_size", self.block_size),
            ("n_embd", self.n_embd),
            ("n_hidden", self.n_hidden),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_embd2", self.n_embd2),
        ];
        let mut out: Vec<_> = sizes.iter().filter_map(|(k, v)| Some((*k, (*v)?.to_string()))).collect();
        if let Some(init) = self.init {
            out.push(("init", if init == InitKind::Kaiming { "kaiming" } else { "lecture" }.into()));
        }
        if let Some(m) = self.momentum {
            out.push(("momentum", m.to_string()));
        }
        if let Some(reg) = self.reg {
            out.push(("reg", reg.to_string()));
        }
        // The Transformer's levers (settings of its spec).
        let levers = [
            ("dropout", self.dropout.map(|v| v.to_string())),
            ("tie_weights", self.tie_weights.then(|| "true".to_string())),
            ("rotary", self.rotary.then(|| "true".to_string())),
            ("warmup", self.warmup.map(|v| v.to_string())),
            (
                "lr_decay",
                self.lr_decay.map(|v| if v == LrDecayArg::Cosine { "cosine" } else { "constant" }.into()),
            ),
            ("min_lr", self.min_lr.map(|v| v.to_string())),
            ("decay_matrices_only", self.decay_matrices_only.then(|| "true".to_string())),
            ("grad_clip", self.grad_clip.map(|v| v.to_string())),
        ];
        out.extend(levers.into_iter().filter_map(|(k, v)| Some((k, v?))));
        out
    }

    /// A usage error if a flag is given that the model `kind` does not take (`--n-layer` for the
    /// MLP): each kind takes the settings of its spec.
    pub fn check_flags(&self, kind: &str) -> Result<(), String> {
        let takes: Vec<String> = mm_models::Spec::default_of(kind)
            .map(|s| s.settings().into_iter().chain(s.levers().into_iter().map(|(k, _)| k)).collect())
            .unwrap_or_default();
        let mut given: Vec<&str> = self.settings().into_iter().map(|(k, _)| k).collect();
        if self.alpha.is_some() {
            given.push("alpha");
        }
        let takes_alpha = kind == "bigram";
        if kind == "bigram" {
            // Counted, not trained: a training flag would be ignored.
            let training = [
                ("steps", self.steps.is_some()),
                ("lr", self.lr.is_some()),
                ("decay-step", self.decay_step.is_some()),
                ("lr-decayed", self.lr_decayed.is_some()),
                ("optimizer", self.optimizer.is_some()),
                ("beta2", self.beta2.is_some()),
                ("weight-decay", self.weight_decay.is_some()),
                ("eval-every", self.eval_every.is_some()),
                ("save-every", self.save_every.is_some()),
                ("batch-size", self.batch_size_given),
                ("shards", self.shards.is_some()),
                ("threads", self.threads.is_some()),
            ];
            if let Some((flag, _)) = training.iter().find(|(_, given)| *given) {
                return Err(format!(
                    "--model bigram is counted, not trained: it takes no --{flag} (`makemore models` lists each model's settings)"
                ));
            }
        }
        if kind == "bigram-nn" && self.batch_size_given {
            return Err(
                "--model bigram-nn trains on the whole training set at each step: it takes no --batch-size"
                    .into(),
            );
        }
        match given.iter().find(|k| !(takes.iter().any(|t| t == *k) || (**k == "alpha" && takes_alpha))) {
            Some(key) => Err(format!(
                "--model {kind} does not take --{}; `makemore models` lists each model's settings",
                key.replace('_', "-")
            )),
            None => Ok(()),
        }
    }
}

/// `makemore sample`.
#[derive(Args, Debug)]
pub struct SampleArgs {
    /// The checkpoint to sample from (a model.safetensors of a run). Repeat the flag for an
    /// ensemble (--checkpoint A --checkpoint B ...): each next character is drawn from the
    /// mixture (the mean) of the models' predicted distributions, temperature and top-k applied
    /// to the mixture. An ensemble's models must share their vocabulary, layout and block size,
    /// and bigram counts cannot join one.
    #[arg(long, value_name = "PATH", required = true)]
    pub checkpoint: Vec<PathBuf>,

    /// How many names.
    #[arg(short, long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub n: u64,

    /// The seed: the same seed gives the same names.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Below 1 more conservative, above 1 more adventurous.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, value_parser = parse_positive)]
    pub temperature: f32,

    /// Sample only among the k likeliest characters (and any tied with the k-th, as makemore).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub top_k: Option<u64>,

    /// Characters every name starts with.
    #[arg(long, default_value = "")]
    pub prefix: String,

    /// The longest name to produce [default: for makemore's models, the longest their
    /// block_size holds (block_size - 1), as makemore's print_samples; else 64].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_len: Option<u64>,

    /// Bigram counts: the smoothing [default: the one the run trained with, which its checkpoint
    /// records; 1 for a checkpoint that does not say].
    #[arg(long, allow_negative_numbers = true, value_parser = parse_rate)]
    pub alpha: Option<f32>,
    /// Load a checkpoint whose weights hold NaN or infinite values (a run that diverged); by
    /// default it is refused.
    #[arg(long)]
    pub allow_non_finite: bool,
}

/// `makemore eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The checkpoint to evaluate. Repeat the flag for an ensemble (--checkpoint A
    /// --checkpoint B ...): the loss of the mixture (the mean) of the models' predicted
    /// distributions. An ensemble's models must share their vocabulary, layout and block size,
    /// and bigram counts cannot join one.
    #[arg(long, value_name = "PATH", required = true)]
    pub checkpoint: Vec<PathBuf>,

    #[command(flatten)]
    pub data: DataArg,

    /// Which split to evaluate (the lectures' split: seed 42, 80/10/10).
    #[arg(long, value_enum, default_value_t = SplitArg::All)]
    pub split: SplitArg,

    /// Bigram counts: the smoothing [default: the one the run trained with, which its checkpoint
    /// records; 1 for a checkpoint that does not say].
    #[arg(long, allow_negative_numbers = true, value_parser = parse_rate)]
    pub alpha: Option<f32>,
    /// Load a checkpoint whose weights hold NaN or infinite values (a run that diverged); by
    /// default it is refused.
    #[arg(long)]
    pub allow_non_finite: bool,
}

/// `makemore graph`.
#[derive(Args, Debug)]
pub struct GraphArgs {
    /// The model whose step to draw, at its default sizes.
    #[arg(long, value_parser = model_kinds(), default_value = "mlp")]
    pub model: String,

    #[command(flatten)]
    pub data: DataArg,

    /// Examples in the drawn step's batch (the graph's shapes; small tensors show their values).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(2..=1024))]
    pub batch_size: u64,

    /// The seed of the weights and of the batch.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// The picture to write: .svg (drawn here, no Graphviz needed) or .dot (Graphviz's input).
    #[arg(long, value_name = "PATH", default_value = "graph.svg")]
    pub out: PathBuf,
}

/// `makemore models`.
#[derive(Args, Debug)]
pub struct ModelsArgs {
    /// Print one JSON object per kind (its spec, parameters and training) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `makemore info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub data: DataArg,
    /// Describe this machine instead of a dataset: the CPU, its vector instruction sets and the
    /// matrix-multiply kernel in use (set by the environment variable MM_GEMM: avx512, avx2,
    /// portable, portable-avx2).
    #[arg(long)]
    pub system: bool,
}

/// A finite, non-negative number ([`limits::is_rate`], as settings read from files).
fn parse_rate(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if limits::is_rate(v) { Ok(v) } else { Err(format!("{s} must be {}", limits::RATE)) }
}

/// A number in [0, 1) ([`limits::is_fraction`], as settings read from files).
fn parse_beta(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if limits::is_fraction(v) { Ok(v) } else { Err(format!("{s} must be {}", limits::FRACTION)) }
}

/// A finite, positive number.
fn parse_positive(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() && v > 0.0 { Ok(v) } else { Err(format!("{s} must be a finite number > 0")) }
}
