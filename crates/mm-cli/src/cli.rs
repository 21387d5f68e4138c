//! The command line: every command and flag, with its help text and default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    Train(Box<TrainArgs>),
    /// Print names sampled from a checkpoint.
    Sample(SampleArgs),
    /// Print a checkpoint's loss on the splits of a dataset.
    Eval(EvalArgs),
    /// Print a dataset's statistics and split sizes.
    Info(InfoArgs),
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

/// The kind of model: the lectures' three, and makemore.py's six (which read whole words).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    /// The bigram counting model (makemore part 1).
    Bigram,
    /// The bigram neural net (makemore part 1).
    BigramNn,
    /// The MLP of Bengio et al. 2003 (makemore part 2).
    Mlp,
    /// The MLP with BatchNorm and a fixed initialisation (makemore part 3).
    BnMlp,
    /// The WaveNet: the context fused two neighbours at a time (makemore part 5).
    Wavenet,
    /// makemore.py's default: a GPT-2 style Transformer (--n-layer, --n-head, --n-embd).
    Transformer,
    /// makemore.py's causal bag of words (--n-embd, --n-embd2).
    Bow,
    /// makemore.py's RNN (--n-embd, --n-embd2).
    Rnn,
    /// makemore.py's GRU (--n-embd, --n-embd2).
    Gru,
    /// makemore.py's MLP over whole words, with its blank token (--n-embd, --n-embd2).
    MlpMakemore,
    /// makemore.py's Bigram: a table of logits trained with AdamW.
    BigramMakemore,
}

impl ModelKind {
    /// The kind's name, as in checkpoints and run directories.
    pub fn name(self) -> &'static str {
        match self.makemore() {
            Some(k) => k.name(),
            None => match self {
                ModelKind::Bigram => "bigram",
                ModelKind::BigramNn => "bigram-nn",
                ModelKind::BnMlp => "bn-mlp",
                ModelKind::Wavenet => "wavenet",
                _ => "mlp",
            },
        }
    }

    /// The kind of makemore.py's model, for those.
    pub fn makemore(self) -> Option<mm_models::zoo::Kind> {
        use mm_models::zoo::Kind;
        match self {
            ModelKind::Bigram
            | ModelKind::BigramNn
            | ModelKind::Mlp
            | ModelKind::BnMlp
            | ModelKind::Wavenet => None,
            ModelKind::Transformer => Some(Kind::Transformer),
            ModelKind::Bow => Some(Kind::Bow),
            ModelKind::Rnn => Some(Kind::Rnn),
            ModelKind::Gru => Some(Kind::Gru),
            ModelKind::MlpMakemore => Some(Kind::Mlp),
            ModelKind::BigramMakemore => Some(Kind::Bigram),
        }
    }
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
    /// The model to train [default: mlp; with --resume, the run's].
    #[arg(long, value_enum)]
    pub model: Option<ModelKind>,

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
    /// summary.json). --steps may raise the number of steps; the other training flags cannot be
    /// given.
    #[arg(long, conflicts_with_all = [
        "force", "seed", "block_size", "n_embd", "n_hidden", "init", "n_layer", "n_head", "n_embd2",
        "batch_size", "lr", "decay_step", "lr_decayed", "optimizer", "beta2", "weight_decay", "reg",
        "alpha", "eval_every",
    ])]
    pub resume: bool,

    /// The seed of the initialisation and of the minibatches.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Characters of context (mlp, bn-mlp, wavenet: a power of two), or the longest sequence
    /// (makemore's models) [default: 3 for mlp and bn-mlp, 8 for wavenet; the longest item + 1
    /// for makemore's models].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub block_size: Option<u64>,

    /// Dimensions of each character's embedding [default: 10 for mlp and bn-mlp, 24 for
    /// wavenet, 64 for makemore's models].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub n_embd: Option<u64>,

    /// mlp, bn-mlp, wavenet: units of each hidden layer [default: 200; 128 for wavenet].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub n_hidden: Option<u64>,

    /// MLP: the initialisation [default: lecture].
    #[arg(long, value_enum)]
    pub init: Option<InitKind>,

    /// Transformer: blocks [default: 4].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub n_layer: Option<u64>,

    /// Transformer: attention heads per block; --n-embd must be a multiple [default: 4].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub n_head: Option<u64>,

    /// bow, rnn, gru, mlp-makemore: the second width (hidden state or layer) [default: 64].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub n_embd2: Option<u64>,

    /// Examples per step: characters for the MLP, words for makemore's models (the bigram net
    /// always uses the whole training set).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_size: u64,

    /// Optimisation steps [default: 200000 for mlp, bn-mlp and wavenet, 500 for the bigram net,
    /// 10000 for makemore's models].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
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

    /// Evaluate on the dev split every this many steps (0: only at the end) [default: 10000;
    /// 1000 for makemore's models].
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
}

impl TrainArgs {
    /// A usage error if a flag is given that `kind` does not take (`--n-layer` for the MLP).
    pub fn check_flags(&self, kind: ModelKind) -> Result<(), String> {
        use mm_models::zoo::Kind;
        let zoo = kind.makemore();
        let mlp = kind == ModelKind::Mlp;
        // The lectures' models with an embedding and hidden layers.
        let hidden = mlp || kind == ModelKind::BnMlp || kind == ModelKind::Wavenet;
        let reads = |size: &str| zoo.is_some_and(|k| k.sizes().contains(&size));
        let flags = [
            ("--block-size", self.block_size.is_some(), hidden || zoo.is_some_and(|k| k != Kind::Bigram)),
            ("--n-embd", self.n_embd.is_some(), hidden || reads("n_embd")),
            ("--n-hidden", self.n_hidden.is_some(), hidden),
            ("--init", self.init.is_some(), mlp),
            ("--n-layer", self.n_layer.is_some(), reads("n_layer")),
            ("--n-head", self.n_head.is_some(), reads("n_head")),
            ("--n-embd2", self.n_embd2.is_some(), reads("n_embd2")),
            ("--reg", self.reg.is_some(), kind == ModelKind::BigramNn),
            ("--alpha", self.alpha.is_some(), kind == ModelKind::Bigram),
        ];
        match flags.iter().find(|(_, given, takes)| *given && !takes) {
            Some((flag, _, _)) => Err(format!(
                "--model {} does not take {flag}; `makemore train --help` says which model takes which flag",
                kind.name()
            )),
            None => Ok(()),
        }
    }
}

/// `makemore sample`.
#[derive(Args, Debug)]
pub struct SampleArgs {
    /// The checkpoint to sample from (a model.safetensors of a run).
    #[arg(long, value_name = "PATH")]
    pub checkpoint: PathBuf,

    /// How many names.
    #[arg(short, long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub n: u64,

    /// The seed: the same seed gives the same names.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Below 1 more conservative, above 1 more adventurous.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, value_parser = parse_positive)]
    pub temperature: f32,

    /// Sample only among the k likeliest characters.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub top_k: Option<u64>,

    /// Characters every name starts with.
    #[arg(long, default_value = "")]
    pub prefix: String,

    /// The longest name to produce.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_len: u64,

    /// Bigram counts: the smoothing.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, value_parser = parse_rate)]
    pub alpha: f32,
}

/// `makemore eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The checkpoint to evaluate.
    #[arg(long, value_name = "PATH")]
    pub checkpoint: PathBuf,

    #[command(flatten)]
    pub data: DataArg,

    /// Which split to evaluate (the lectures' split: seed 42, 80/10/10).
    #[arg(long, value_enum, default_value_t = SplitArg::All)]
    pub split: SplitArg,

    /// Bigram counts: the smoothing.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, value_parser = parse_rate)]
    pub alpha: f32,
}

/// `makemore info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub data: DataArg,
}

/// A finite, non-negative number.
fn parse_rate(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() && v >= 0.0 { Ok(v) } else { Err(format!("{s} must be a finite number >= 0")) }
}

/// A number in [0, 1).
fn parse_beta(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..1.0).contains(&v) { Ok(v) } else { Err(format!("{s} must be in [0, 1)")) }
}

/// A finite, positive number.
fn parse_positive(s: &str) -> Result<f32, String> {
    let v = parse_rate(s)?;
    if v > 0.0 { Ok(v) } else { Err(format!("{s} must be greater than 0")) }
}
