//! `makemore train`: train, evaluate, sample, and save the run.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use mm_data::{Examples, Layout, Split, SplitSpec};
use mm_models::checkpoint::{AnyModel, CheckpointMeta, to_bytes};
use mm_models::{
    BigramCounts, LrDecay, Novelty, OptimizerKind, Origin, Progress, SampleConfig, SavePoint, Schedule, Spec,
    TrainConfig, evaluate, sample, sample_counts, train_saving,
};
use mm_tensor::{AdamWState, ParamStore};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use mm_cli::run_dir::RunDir;
use mm_cli::run_files::{self, MetricsRow, Summary, read_metrics};

use crate::cli::{OptimizerArg, TrainArgs};

/// The largest model `train` builds: 250 million parameters (1 GB of weights, as much again for
/// their gradients). Beyond that a typo in a size flag would exhaust memory.
const MAX_PARAMS: u64 = 250_000_000;

/// The settings of a run, resolved from the flags and each kind's defaults (the registry's:
/// the lectures' for theirs, makemore.py's for its models). summary.json records them (as
/// "config"), so that `--resume` continues the run exactly. The model's settings are those of
/// its [`Spec`]; a setting the kind does not have is stored as 0 and never read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct RunConfig {
    model: String,
    seed: u64,
    /// 0 until the data is loaded, for makemore's models without --block-size (then the
    /// longest item + 1).
    block_size: usize,
    n_embd: usize,
    n_hidden: usize,
    init: String,
    #[serde(default)]
    n_layer: usize,
    #[serde(default)]
    n_head: usize,
    #[serde(default)]
    n_embd2: usize,
    #[serde(default)]
    momentum: f32,
    reg: f32,
    alpha: f32,
    /// `None`: the whole training set every step.
    batch_size: Option<usize>,
    steps: usize,
    lr: f32,
    decay_step: usize,
    lr_decayed: f32,
    optimizer: String,
    #[serde(default = "default_beta2")]
    beta2: f32,
    weight_decay: f32,
    eval_every: usize,
    /// The Transformer's levers (issue #14), at makemore.py's values for the other kinds and for
    /// runs saved before they were settings.
    #[serde(default)]
    dropout: f32,
    #[serde(default)]
    tie_weights: bool,
    #[serde(default)]
    rotary: bool,
    #[serde(default)]
    warmup: usize,
    #[serde(default)]
    lr_decay: LrDecay,
    #[serde(default)]
    min_lr: f32,
    #[serde(default)]
    decay_matrices_only: bool,
    #[serde(default)]
    grad_clip: f32,
    /// The shards of each step's batch (`TrainConfig::shards`): they fix the rounding, so a
    /// resumed run keeps them; 1 for runs saved before it was a setting.
    #[serde(default = "one")]
    shards: usize,
}

/// One shard, for runs saved before shards were a setting.
fn one() -> usize {
    1
}

/// PyTorch's AdamW beta2, for runs saved before it was a setting.
fn default_beta2() -> f32 {
    0.999
}

impl RunConfig {
    /// A new run's settings, from the flags (checked by [`TrainArgs::check_flags`]) and the
    /// kind's defaults.
    fn from_args(args: &TrainArgs, kind: &str) -> anyhow::Result<RunConfig> {
        args.check_flags(kind).map_err(anyhow::Error::msg)?;
        let given = args.settings();
        let get = |key: &str| given.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
        let mut spec = Spec::parse(kind, get, false)?;
        if spec.layout() == Layout::Words && args.block_size.is_none() {
            spec = spec.with_block_size(0); // the data's longest item + 1, once it is loaded
        }
        Self::from_spec(args, spec)
    }

    /// A new run's settings for the model `spec` (from `--spec FILE`, or from the flags), with
    /// the training flags and the kind's training defaults.
    fn from_spec(args: &TrainArgs, spec: Spec) -> anyhow::Result<RunConfig> {
        let kind = spec.kind();
        // A flag the spec file's model does not take is a usage error, as with --model.
        args.check_flags(kind).map_err(|msg| match &args.spec {
            Some(path) => anyhow::Error::new(Usage(format!("{}: {msg}", path.display()))),
            None => anyhow::Error::msg(msg),
        })?;
        let base = spec.train_config();
        let steps = args.steps.map_or(base.steps, |s| s as usize);
        // The kind's schedule, stretched to the steps asked for: the decay at the same fraction
        // of the run, to the same fraction of the rate.
        let (lr0, at, then) = match base.schedule {
            Schedule::Step { lr, at, then } => (lr, at, then),
            // A warmup and cosine decay: its peak, decaying over the whole run (--decay-step).
            Schedule::WarmupCosine { lr, .. } => (lr, base.steps, lr),
            ref other => (other.lr(0), base.steps, other.lr(0)),
        };
        let lr = args.lr.unwrap_or(lr0);
        let decay_step = match args.decay_step {
            Some(s) => s as usize,
            None if base.steps == 0 => steps,
            None => (at as u128 * steps as u128 / base.steps as u128) as usize,
        };
        let size = |key: &str| spec.setting(key).and_then(|v| v.parse().ok()).unwrap_or(0);
        // Flags that would change nothing with the others given: said, not silently ignored.
        let cosine = spec.setting("lr_decay").as_deref() == Some("cosine");
        if args.min_lr.is_some() && !cosine {
            bail!("--min-lr is where --lr-decay cosine ends: add --lr-decay cosine, or drop --min-lr");
        }
        if cosine && args.lr_decayed.is_some() {
            bail!(
                "--lr-decayed is the step decay's rate, and --lr-decay cosine decays to --min-lr: drop --lr-decayed"
            );
        }
        let adamw = match args.optimizer {
            Some(o) => o == OptimizerArg::Adamw,
            None => base.optimizer == OptimizerKind::AdamW,
        };
        if args.beta2.is_some() && !adamw {
            bail!("--beta2 is AdamW's: add --optimizer adamw, or drop --beta2");
        }
        let warmup = size("warmup") > 0;
        if warmup && !cosine && (args.decay_step.is_some() || args.lr_decayed.is_some()) {
            bail!(
                "--warmup without --lr-decay cosine holds the rate after the warmup, so --decay-step and --lr-decayed \
                 do nothing: add --lr-decay cosine (which ends at --decay-step), or drop them"
            );
        }
        if args.decay_step.is_some() && args.lr_decayed.is_none() && !cosine && !warmup && then == lr0 {
            bail!(
                "--decay-step does nothing for {kind}, whose rate does not decay unless told: add --lr-decayed RATE \
                 (the rate after it), or --lr-decay cosine"
            );
        }
        Ok(RunConfig {
            model: kind.into(),
            seed: args.seed,
            block_size: spec.block_size(),
            n_embd: size("n_embd"),
            n_hidden: size("n_hidden"),
            init: spec.setting("init").unwrap_or_else(|| "lecture".into()),
            n_layer: size("n_layer"),
            n_head: size("n_head"),
            n_embd2: size("n_embd2"),
            momentum: spec.setting("momentum").and_then(|v| v.parse().ok()).unwrap_or(0.0),
            reg: spec.setting("reg").and_then(|v| v.parse().ok()).unwrap_or(0.0),
            alpha: args.alpha.unwrap_or(1.0),
            batch_size: base.batch_size.map(|b| args.batch_size.map_or(b, |a| a as usize)),
            steps,
            lr,
            decay_step,
            lr_decayed: args.lr_decayed.unwrap_or(if lr0 > 0.0 { lr * (then / lr0) } else { lr }),
            optimizer: match args.optimizer {
                Some(OptimizerArg::Adamw) => "adamw",
                Some(OptimizerArg::Sgd) => "sgd",
                None if base.optimizer == OptimizerKind::AdamW => "adamw",
                None => "sgd",
            }
            .into(),
            beta2: args.beta2.unwrap_or(base.betas.1),
            weight_decay: args.weight_decay.unwrap_or(base.weight_decay),
            eval_every: args
                .eval_every
                .map_or(if base.eval_every > 0 { base.eval_every } else { 10_000 }, |e| e as usize),
            dropout: spec.setting("dropout").and_then(|v| v.parse().ok()).unwrap_or(0.0),
            tie_weights: spec.setting("tie_weights").as_deref() == Some("true"),
            rotary: spec.setting("rotary").as_deref() == Some("true"),
            warmup: size("warmup"),
            lr_decay: if spec.setting("lr_decay").as_deref() == Some("cosine") {
                LrDecay::Cosine
            } else {
                LrDecay::Constant
            },
            min_lr: spec.setting("min_lr").and_then(|v| v.parse().ok()).unwrap_or(0.0),
            decay_matrices_only: base.decay_matrices_only,
            grad_clip: base.grad_clip,
            shards: args.shards.map_or(base.shards, |s| s as usize),
        })
    }

    /// Checks every setting against the ranges of its flag ([`mm_models::limits`]): the model's
    /// sizes, the batch size, the steps, the rates. The flags are checked as they are parsed;
    /// settings read from a file (a run's summary.json, a `--spec FILE`) are checked here, before
    /// anything is sized by them.
    fn check(&self) -> anyhow::Result<()> {
        self.spec()?.check_limits()?;
        if self.model != "bigram" {
            self.train_config().check_limits()?;
        }
        mm_models::limits::check_rate("alpha", self.alpha)?;
        Ok(())
    }

    /// The model's kind and settings, from the run's (through the registry).
    fn spec(&self) -> anyhow::Result<Spec> {
        self.spec_over(&[])
    }

    /// The spec of these settings, with `recorded`'s (a checkpoint's model settings) in place of
    /// the run's where it has them.
    fn spec_over(&self, recorded: &[(&str, String)]) -> anyhow::Result<Spec> {
        let fields = serde_json::to_value(self)?;
        let get = |key: &str| match recorded.iter().find(|(k, _)| *k == key) {
            Some((_, v)) => Some(v.clone()),
            None => match &fields[key] {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            },
        };
        Ok(Spec::parse(&self.model, get, true)?)
    }

    /// Whether `model` (read from a checkpoint) is the model these settings build. A checkpoint
    /// records the model's own settings (sizes, dropout), not the training's (steps, learning
    /// rate, batch size), which a Transformer's spec holds too: those are the run's.
    fn same_model(&self, model: &AnyModel) -> anyhow::Result<bool> {
        let Some(m) = model.neural() else { return Ok(true) };
        Ok(self.spec_over(&m.config())? == self.spec()?)
    }

    /// The spec for a vocabulary of `vocab_size`, checked to make at most [`MAX_PARAMS`]
    /// parameters before anything is allocated (a typo in a size flag would exhaust memory), and
    /// the training flags the loop would refuse in the library's words, refused in the flags'.
    fn checked_spec(&self, vocab_size: usize) -> anyhow::Result<Spec> {
        if self.decay_matrices_only && self.optimizer != "adamw" {
            bail!(
                "--decay-matrices-only (decay_matrices_only in a spec) needs --optimizer adamw (SGD's L2 decay applies to every parameter)"
            );
        }
        let spec = self.spec()?;
        // makemore.py's block size may come from the data (its longest item + 1).
        spec.check_limits().with_context(|| format!("a {} of these sizes cannot be trained", self.model))?;
        let params = spec.num_params(vocab_size);
        if params > u128::from(MAX_PARAMS) {
            let sizes: Vec<String> = spec
                .settings()
                .iter()
                .filter_map(|k| Some(format!("--{} {}", k.replace('_', "-"), spec.setting(k)?)))
                .collect();
            bail!(
                "{} make a {} of {params} parameters, more than {MAX_PARAMS}: choose smaller sizes",
                sizes.join(" "),
                self.model
            );
        }
        Ok(spec)
    }

    /// The training loop's configuration.
    fn train_config(&self) -> TrainConfig {
        TrainConfig {
            steps: self.steps,
            batch_size: self.batch_size,
            // A warmup or a cosine decay (ending at --decay-step); else the lectures' step decay.
            schedule: if self.warmup > 0 || self.lr_decay == LrDecay::Cosine {
                let min_lr = if self.lr_decay == LrDecay::Cosine { self.min_lr } else { self.lr };
                Schedule::WarmupCosine { lr: self.lr, warmup: self.warmup, min_lr, steps: self.decay_step }
            } else {
                Schedule::Step { lr: self.lr, at: self.decay_step, then: self.lr_decayed }
            },
            optimizer: if self.optimizer == "adamw" { OptimizerKind::AdamW } else { OptimizerKind::Sgd },
            betas: (0.9, self.beta2),
            weight_decay: self.weight_decay,
            decay_matrices_only: self.decay_matrices_only,
            grad_clip: self.grad_clip,
            eval_every: self.eval_every,
            seed: self.seed,
            shards: self.shards,
            threads: 0,
        }
    }

    /// A fresh neural model, its weights drawn with the run's seed.
    fn new_model(&self, vocab: &mm_data::Vocab) -> anyhow::Result<AnyModel> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        Ok(self.checked_spec(vocab.len())?.build(vocab, &mut rng)?)
    }
}

/// A usage error found once the model is known (a flag its kind does not take, with
/// `--spec FILE`): `makemore` exits with 2, as for the flags it checks before running.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// What `--resume` carries over from the run it continues.
struct Resumed {
    model: AnyModel,
    progress: Progress,
    /// metrics.csv up to the checkpoint's step.
    metrics: Vec<MetricsRow>,
    /// The run's time so far.
    elapsed: f64,
    /// The best dev loss of the run so far, and its step.
    best: Option<(usize, f32)>,
}

/// Opens the run in `out` to continue it: its settings (with `--steps` applied), its checkpoint
/// and optimizer state, and its logs, checked to be of the same save: a checkpoint at the
/// summary's step, a row of metrics.csv for each step up to it, and the summary's best. Also the
/// sha256 and the path of the dataset it recorded.
fn open_run(out: &Path, args: &TrainArgs) -> anyhow::Result<(RunConfig, Resumed, String, Option<PathBuf>)> {
    let checkpoint = out.join("model.safetensors");
    if !checkpoint.exists() {
        bail!(
            "{} holds no run to resume (no model.safetensors): train without --resume first",
            out.display()
        );
    }
    let summary_path = out.join("summary.json");
    let summary: Summary<RunConfig> = Summary::read(&summary_path)?;
    let mut config = summary.config.clone();
    // An edited file gets the flags' ranges, before the checkpoint is read or anything is sized.
    config.check().map_err(|e| {
        anyhow::anyhow!(
            "{}: {e:#} (the range of its flag): correct the file, or train the run again with --force",
            summary_path.display()
        )
    })?;
    if let Some(kind) = &args.model
        && *kind != config.model
    {
        bail!("{} holds a {} run, not {kind}: drop --model or pass --out", out.display(), config.model);
    }
    if config.model == "bigram" {
        bail!("{} holds a bigram counting model: it has no training steps to resume", out.display());
    }
    let (model, meta) = mm_models::checkpoint::load(&checkpoint)?;
    let step = meta.step as usize;
    let mixed = |what: String| {
        anyhow::anyhow!(
            "{} does not hold one save of a run ({what}): its files were changed by hand or by another \
             program; train it again with --force",
            out.display()
        )
    };
    if summary.steps != meta.step {
        return Err(mixed(format!("model.safetensors is at step {step}, summary.json at {}", summary.steps)));
    }
    if !config.same_model(&model)? {
        return Err(mixed(format!(
            "model.safetensors is a {} of other settings than summary.json's",
            model.kind()
        )));
    }
    // More steps, after the check above: the spec of a Transformer holds its steps (where its
    // cosine decay ends), and the run's own are summary.json's until now.
    let planned = config.steps;
    if let Some(steps) = args.steps {
        config.steps = steps as usize;
    }
    if step >= config.steps {
        match args.steps {
            Some(steps) => bail!(
                "the run in {} has done {step} steps already, and --steps {steps} asks for no more: pass --steps above {step} to train longer",
                out.display()
            ),
            None => bail!(
                "the run in {} has done {step} of its {} steps: pass --steps with more to train longer",
                out.display(),
                config.steps
            ),
        }
    }
    // Past the end of its decay the rate stays where the decay left it. Steps added to a run by
    // --steps at a rate of 0 would train nothing: refused (a run stopped before its own end
    // still resumes to it, as if never stopped).
    let first_added = step.max(planned);
    if config.steps > planned
        && first_added >= config.decay_step
        && config.train_config().schedule.lr(first_added) == 0.0
    {
        bail!(
            "the run in {} ended its learning-rate decay at step {} with a rate of 0, so steps {} to {} would train at a rate of 0: \
             train a new run with --steps {} instead (with its decay over them: a later --decay-step, or a floor, --min-lr or --lr-decayed)",
            out.display(),
            config.decay_step,
            first_added + 1,
            config.steps,
            config.steps
        );
    }
    if model.neural().is_none() {
        bail!("{} holds a bigram counting model", checkpoint.display());
    }
    let sha = meta.dataset_sha256.clone();
    // The log: a row for each step up to the checkpoint's, never silently restarted.
    let log = out.join("metrics.csv");
    let metrics: Vec<MetricsRow> = read_metrics(&log)?.into_iter().filter(|m| m.step <= step).collect();
    if metrics.len() != step || metrics.iter().enumerate().any(|(i, m)| m.step != i + 1) {
        return Err(mixed(format!("metrics.csv has {} of the checkpoint's {step} steps", metrics.len())));
    }
    // A run evaluates its last step, on the evaluation grid or not. Continued to more steps, that
    // step is not its last any more, and a run that never stopped has no evaluation there: the
    // log continues as that run's (the summary's best may still be the step's).
    let mut metrics = metrics;
    if let Some(last) = metrics.last_mut()
        && config.eval_every > 0
        && !step.is_multiple_of(config.eval_every)
    {
        last.dev_loss = None;
    }
    let elapsed = metrics.last().map_or(0.0, |m| m.elapsed_s);
    let best = summary.best.as_ref().map(|b| (b.step as usize, b.dev_loss));
    if let Some((best_step, _)) = best {
        let (_, best_meta) = mm_models::checkpoint::load(&out.join("best.safetensors"))?;
        if best_meta.step as usize != best_step {
            return Err(mixed(format!(
                "best.safetensors is at step {}, summary.json's best at {best_step}",
                best_meta.step
            )));
        }
    }
    let progress = Progress { step, adamw: meta.adamw };
    let data = summary.dataset.map(|d| d.path);
    Ok((config, Resumed { model, progress, metrics, elapsed, best }, sha, data))
}

/// How `makemore train` ended, when it saved its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Every step ran.
    Finished,
    /// Ctrl-C or SIGTERM stopped it; the run is saved and `--resume` continues it.
    Stopped,
}

/// Runs `makemore train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<Ended> {
    // The model: a spec file's, or --model with its flags.
    let spec_file = match &args.spec {
        Some(path) => {
            // Bounded, and a regular file: --spec /dev/zero is refused, not read until memory ends.
            let text = run_files::read_bounded(path, run_files::SUMMARY_LIMIT)?;
            let spec: Spec = serde_json::from_slice(&text).with_context(|| {
                format!(
                    "{} is not a model spec (`makemore models --json` prints one per kind)",
                    path.display()
                )
            })?;
            Some(spec)
        }
        None => None,
    };
    let kind: String = match &spec_file {
        Some(spec) => spec.kind().into(),
        None => args.model.clone().unwrap_or_else(|| "mlp".into()),
    };
    let kind = kind.as_str();
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(kind));
    // A new run's settings are checked before the directory is touched.
    let fresh = match (&spec_file, args.resume) {
        (_, true) => None,
        (Some(spec), false) => {
            let config = RunConfig::from_spec(args, spec.clone())?;
            // The spec file's settings get the flags' ranges.
            config.check().map_err(|e| {
                let path = args.spec.as_deref().unwrap_or(Path::new("--spec")).display();
                anyhow::anyhow!("{path}: {e:#} (the range of its flag): correct the file")
            })?;
            Some(config)
        }
        (None, false) => Some(RunConfig::from_args(args, kind)?),
    };
    // The directory: writable, and ours until the run ends (a failure before the first save
    // removes it again if this run created it).
    let mut dir = RunDir::open(&out)?;
    if let Ok(name) = std::env::var(FAIL_WRITE) {
        // Full-disk tests: the writes of this run file fail with ENOSPC.
        dir.fail_writes_of(&name);
    }
    if let Ok(at) = std::env::var(CRASH_AT) {
        // Crash-consistency tests: die at a point of a save, as a SIGKILL would.
        dir.set_hook(Box::new(move |point| {
            if point == at {
                std::process::abort();
            }
        }));
    }
    let (config, mut resumed, resumed_sha, recorded) = match fresh {
        None => {
            let (c, r, sha, data) = open_run(&out, args)?;
            (c, Some(r), Some(sha), data)
        }
        Some(config) => {
            if !args.force && dir.holds_a_run() {
                bail!(
                    "{} already holds a run: pass --resume to continue it, --force to overwrite it, or --out DIR",
                    out.display()
                );
            }
            (config, None, None, None)
        }
    };
    // A resumed run's dataset is the one it recorded, unless --data names another.
    let data_path = match recorded.clone() {
        Some(path) if !args.data_given => path,
        _ => args.data.data.clone(),
    };
    let data_path = data_path.as_path();
    let say = |line: String| {
        if !args.json {
            println!("{line}");
        }
    };

    // The data: validated before anything is written.
    // Read once (a pipe can be read only once), and the hash of what was read.
    let from_run = recorded.is_some() && !args.data_given;
    let (data, sha) = crate::data::load_hashed(data_path).map_err(|e| {
        if from_run {
            e.context(format!("the dataset the run in {} recorded (pass --data with it)", out.display()))
        } else {
            e
        }
    })?;
    if let Some(was) = resumed_sha.filter(|s| !s.is_empty() && *s != sha) {
        bail!(
            "{} is not the dataset the run was trained on (sha256 {}, the run's {}): pass --data with that file",
            data_path.display(),
            &sha[..12.min(sha.len())],
            &was[..12.min(was.len())]
        );
    }
    let vocab = data.vocab();
    if let Some(r) = &resumed
        && r.model.vocab() != &vocab
    {
        bail!(
            "the run's vocabulary {} is not the dataset's {}: pass --data with the run's file",
            crate::data::shown(&r.model.vocab().to_string()),
            crate::data::shown(&vocab.to_string())
        );
    }
    let split = Split::new(data.words(), SplitSpec::default())?;
    let stats = data.stats();
    let sizes = format!(
        "{} words split {} / {} / {} (80/10/10)",
        stats.items,
        split.train.len(),
        split.dev.len(),
        split.test.len()
    );
    if split.train.is_empty() {
        bail!("{}: the training split is empty ({sizes}): train on at least 2 words", data_path.display());
    }
    // A small dataset may leave the dev or test split empty: it is reported as such, not as a loss.
    for (name, words) in [("dev", &split.dev), ("test", &split.test)] {
        if words.is_empty() && !args.json {
            let what =
                if name == "dev" { "no dev loss, no evaluation during training" } else { "no test loss" };
            eprintln!("note: the {name} split is empty ({sizes}): {what}");
        }
    }
    say(format!(
        "{}: {} items ({} distinct), vocabulary of {}, split {} / {} / {} words",
        data_path.display(),
        stats.items,
        stats.distinct,
        vocab.len(),
        split.train.len(),
        split.dev.len(),
        split.test.len()
    ));
    let mut config = config;
    if config.block_size == 0 {
        // makemore's: the longest item and its end token.
        config.block_size = stats.max_len + 1;
        let most = *mm_models::limits::BLOCK_SIZE.end() as usize;
        if config.block_size > most {
            bail!(
                "the longest line of {} has {} characters, and a {} reads a whole line at once, up to {}: \
                 shorten or drop the longer lines",
                args.data.data.display(),
                stats.max_len,
                config.model,
                most - 1
            );
        }
    }
    let spec = config.checked_spec(vocab.len())?;
    let (block_size, layout) = (spec.block_size(), spec.layout());
    if layout == Layout::Words && block_size <= stats.max_len {
        // Said here with the flag or setting to change, for the whole dataset (each split's
        // examples would name the longest word of that split only).
        let fix = match &args.spec {
            Some(path) => format!("set block_size to {} or more in {}", stats.max_len + 1, path.display()),
            None => format!(
                "pass --block-size {} or more (or leave it out: it defaults to that)",
                stats.max_len + 1
            ),
        };
        bail!(
            "the longest line of {} has {} characters, and a {} with block_size {block_size} reads lines of at most {}: {fix}",
            data_path.display(),
            stats.max_len,
            config.model,
            block_size - 1,
        );
    }
    let sets = [&split.train, &split.dev, &split.test].map(|w| Examples::new(w, &vocab, layout, block_size));
    let [tr, dev, test] = sets;
    let (tr, dev, test) = (tr?, dev?, test?);

    // Ctrl-C and SIGTERM stop training after the current step; the run is still saved.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));

    let start = Instant::now();
    let (metrics, elapsed_before) =
        resumed.as_mut().map_or((Vec::new(), 0.0), |r| (std::mem::take(&mut r.metrics), r.elapsed));
    let metrics = RefCell::new(metrics);
    let mut files = RunFiles {
        config: &config,
        sha: sha.clone(),
        // Recorded absolute, so that --resume finds it from any working directory.
        data: &std::path::absolute(data_path).unwrap_or_else(|_| data_path.to_path_buf()),
        items: stats.items,
        vocab: vocab.to_string(),
        best_before: resumed.as_ref().and_then(|r| r.best),
        best_written: None,
        resumed: resumed.is_some(),
        csv: Vec::new(),
        csv_rows: 0,
    };
    let (model, steps, stopped, losses, names, adamw, best) = match config.model.as_str() {
        "bigram" => {
            let counts = BigramCounts::fit(&split.train, &vocab)?;
            say(format!("{} parameters (the counts N)", vocab.len() * vocab.len()));
            let alpha = alpha_f64(config.alpha);
            let nll = |w: &[String]| (!w.is_empty()).then(|| counts.nll(w, alpha)).transpose();
            let losses = [nll(&split.train)?, nll(&split.dev)?, nll(&split.test)?];
            let cfg = SampleConfig { seed: config.seed, ..SampleConfig::default() };
            let names = sample_counts(&counts, alpha, &cfg)?;
            (AnyModel::Counts(counts), 0, false, losses, names, None, None)
        }
        _ => {
            let (mut model, from) = match resumed.take() {
                Some(r) => {
                    say(format!(
                        "resuming {} at step {} of {}",
                        out.display(),
                        r.progress.step,
                        config.steps
                    ));
                    (r.model, r.progress)
                }
                None => (config.new_model(&vocab)?, Progress::default()),
            };
            say(format!("{} parameters", model.num_params()));
            let template = model.clone();
            let net = model.neural_mut().expect("only the counting model is not neural");
            // The threads are this session's: they never change the result.
            let cfg =
                TrainConfig { threads: args.threads.map_or(0, |t| t as usize), ..config.train_config() };
            // A step too large for this machine would abort in an allocation: refused here,
            // with the flag to change. The step's tape (estimated from steps of 16 and 32 rows),
            // and the parameters' copies: the weights, their gradients, AdamW's two moments and
            // each shard's gradients.
            let rows = cfg.batch_size.unwrap_or(tr.len());
            // The model says whether it normalises over its batch (bn-mlp, wavenet).
            if net.batch_statistics() && rows < 2 {
                bail!(
                    "{} normalises over its batch with the lecture's unbiased variance, which a batch of one \
                     divides by zero: pass --batch-size 2 or more",
                    config.model
                );
            }
            let copies = 2 + 2 * u128::from(cfg.optimizer == OptimizerKind::AdamW) + cfg.shards as u128;
            let need = mm_models::step_bytes(&*net, &tr, rows)? + copies * 4 * net.num_params() as u128;
            if let Some(free) = crate::memory::available()
                && need > u128::from(free)
            {
                let fix = match cfg.batch_size {
                    Some(_) => "choose a smaller --batch-size (or smaller sizes)",
                    None => "it steps on the whole training split at once: train on a smaller dataset",
                };
                bail!(
                    "a training step of this {} on {rows} rows needs about {} of memory, and {} is available: {fix}",
                    config.model,
                    crate::memory::shown(need),
                    crate::memory::shown(u128::from(free))
                );
            }
            if cfg.shards > 1 {
                let threads = match cfg.threads {
                    0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                    t => t,
                };
                let threads = threads.min(cfg.shards);
                let plural = if threads == 1 { "thread" } else { "threads" };
                say(format!("each step in {} shards on {threads} {plural}", cfg.shards));
            }
            let bar = progress_bar(cfg.steps as u64, args.json);
            bar.set_position(from.step as u64);
            bar.reset_eta();
            let done_before = from.step;
            let save_every = args.save_every.map_or(config.eval_every, |n| n as usize);
            // The step of the run's last save, for the error of a run that diverges.
            let saved = std::cell::Cell::new((from.step > 0).then_some(from.step));
            let observe = |m: &mm_models::StepMetrics| {
                let elapsed = elapsed_before + m.elapsed.as_secs_f64();
                let row = MetricsRow {
                    step: m.step + 1,
                    lr: m.lr,
                    train_loss: m.loss,
                    dev_loss: m.dev_loss,
                    elapsed_s: elapsed,
                };
                metrics.borrow_mut().push(row);
                if m.step.is_multiple_of(100) || m.dev_loss.is_some() {
                    bar.set_position(m.step as u64 + 1);
                    let rate = (m.step + 1 - done_before) as f64 / m.elapsed.as_secs_f64().max(1e-9);
                    bar.set_message(format!("loss {:.4}  lr {:.4}  {rate:.0} steps/s", m.loss, m.lr));
                }
            };
            // A resumable checkpoint every `save_every` steps: SIGKILL loses at most that many.
            let periodic = |p: &SavePoint| -> anyhow::Result<()> {
                let model = template.with_params(p.params);
                let best = p.best.map(|b| (b.step + 1, b.dev_loss, &b.params));
                let at = Saved {
                    model: &model,
                    step: p.progress.step,
                    adamw: p.progress.adamw.clone(),
                    stopped: true,
                    best,
                };
                files.save(&mut dir, &at, &metrics.borrow(), None)?;
                saved.set(Some(p.progress.step));
                Ok(())
            };
            let report = train_saving(
                net,
                &tr,
                (!dev.is_empty()).then_some(&dev),
                &cfg,
                &from,
                &stop,
                observe,
                save_every,
                periodic,
            )
            .map_err(|e| diverged(e, &out, saved.get()))?;
            bar.finish_and_clear();
            if report.stopped {
                eprintln!(
                    "stopped by Ctrl-C or SIGTERM after {} steps; saving the run (continue it with --resume)",
                    report.steps
                );
            }
            let net = &*net;
            let loss = |e: &Examples| (!e.is_empty()).then(|| evaluate(net, e)).transpose();
            let losses = [loss(&tr)?, loss(&dev)?, loss(&test)?];
            let max_len = crate::sample::default_max_len(&template);
            let names = sample(net, &SampleConfig { seed: config.seed, max_len, ..SampleConfig::default() })?;
            let best = report.best.map(|b| (b.step + 1, b.dev_loss, b.params));
            (model, report.steps, report.stopped, losses, names, report.progress.adamw, best)
        }
    };
    let elapsed = elapsed_before + start.elapsed().as_secs_f64();
    let metrics = metrics.into_inner();

    // Report.
    let [tr_loss, dev_loss, test_loss] = losses.map(loss_text);
    say(format!("train loss {tr_loss}  dev loss {dev_loss}  test loss {test_loss}"));
    let novelty = Novelty::new(&split);
    let samples: Vec<_> = names
        .iter()
        .map(|n| {
            let origin = match novelty.origin(n) {
                Origin::Train => "in train",
                Origin::Held => "in dev/test",
                Origin::New => "new",
            };
            (n.clone(), origin)
        })
        .collect();
    for (n, origin) in &samples {
        // Escaped as `sample` prints them: a vocabulary may hold characters a terminal acts on.
        say(format!("  {:20} {origin}", crate::data::shown(n)));
    }

    // The run directory.
    let best = best.as_ref().map(|(s, d, p)| (*s, *d, p));
    let at = Saved { model: &model, step: steps, adamw, stopped, best };
    let summary = files.save(&mut dir, &at, &metrics, Some((losses, &samples, elapsed)))?;
    let checkpoint = dir.file("model.safetensors");
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        let plot = if metrics.is_empty() { "" } else { ", loss.png" };
        let best = if summary.best.is_none() { "" } else { ", best.safetensors" };
        println!("saved {} (and metrics.csv, summary.json{plot}{best})", checkpoint.display());
    }
    Ok(if stopped { Ended::Stopped } else { Ended::Finished })
}

/// A run that diverged is not saved (its weights are NaN): the error says what the directory
/// keeps.
fn diverged(e: anyhow::Error, out: &Path, saved: Option<usize>) -> anyhow::Error {
    if !matches!(e.downcast_ref(), Some(mm_models::ModelError::Diverged { .. })) {
        return e;
    }
    match saved {
        Some(step) => anyhow::anyhow!("{e} ({} keeps the run's last save, at step {step})", out.display()),
        None => anyhow::anyhow!("{e} (nothing of this run was saved)"),
    }
}

/// A progress bar on stderr (drawn only when stderr is a terminal).
fn progress_bar(len: u64, quiet: bool) -> ProgressBar {
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(len) };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {human_pos}/{human_len} steps  {msg}  ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// The environment variable that makes `train` abort at a point of a save (see
/// [`mm_cli::run_dir::Hook`]): for the crash-consistency tests.
const CRASH_AT: &str = "MAKEMORE_CRASH_AT";

/// The environment variable that makes every write of a run file (e.g. `model.safetensors`)
/// fail as on a full disk (see [`RunDir::fail_writes_of`]): for the full-disk tests.
const FAIL_WRITE: &str = "MAKEMORE_FAIL_WRITE";

/// The end of a run, for its summary: the losses on each split (none for a split without words:
/// `null` in the summary), the samples with their origin, and the run's time.
type End<'a> = ([Option<f64>; 3], &'a [(String, &'a str)], f64);

/// A loss as `train` prints it: 4 decimals, or `n/a (empty split)`.
fn loss_text(loss: Option<f64>) -> String {
    loss.map_or_else(|| "n/a (empty split)".into(), |l| format!("{l:.4}"))
}

/// A point of the run to save.
struct Saved<'a> {
    model: &'a AnyModel,
    /// Steps done.
    step: usize,
    adamw: Option<AdamWState<f32>>,
    /// Whether the run is unfinished (stopped, or a periodic checkpoint).
    stopped: bool,
    /// This session's best by dev loss: its step (from 1), dev loss and parameters.
    best: Option<(usize, f32, &'a ParamStore<f32>)>,
}

/// The files of one run, each save of them one commit of the run directory: metrics.csv,
/// best.safetensors (when it changed), model.safetensors, loss.png, and summary.json last.
struct RunFiles<'a> {
    config: &'a RunConfig,
    sha: String,
    data: &'a Path,
    items: usize,
    vocab: String,
    /// The best of the run before it was resumed (step, dev loss): best.safetensors holds it.
    best_before: Option<(usize, f32)>,
    /// The step of the best.safetensors this session saved.
    best_written: Option<usize>,
    /// Whether the run was resumed (its files in the directory are this run's).
    resumed: bool,
    /// metrics.csv as written so far (it only grows), and its rows.
    csv: Vec<u8>,
    csv_rows: usize,
}

/// `--alpha` as the f64 written as the flag was (0.1, not 0.10000000149011612, the f32's exact
/// value): the smoothing the counts use and the checkpoint records, as the user typed it.
fn alpha_f64(alpha: f32) -> f64 {
    alpha.to_string().parse().unwrap_or(f64::from(alpha))
}

impl RunFiles<'_> {
    /// Saves `at` with the log `metrics` (and, at the end of a run, its losses, samples and time),
    /// and returns the summary.
    fn save(
        &mut self,
        dir: &mut RunDir,
        at: &Saved,
        metrics: &[MetricsRow],
        end: Option<End>,
    ) -> anyhow::Result<Summary<RunConfig>> {
        let (mut written, mut kept) = (Vec::new(), Vec::new());
        run_files::write_metrics(&mut self.csv, &metrics[self.csv_rows..])?;
        self.csv_rows = metrics.len();
        dir.stage("metrics.csv", &self.csv)?;
        written.push("metrics.csv");

        let meta = |step: usize, adamw| CheckpointMeta {
            step: step as u64,
            seed: self.config.seed,
            dataset_sha256: self.sha.clone(),
            adamw,
            // The counting model's smoothing, which `eval` and `sample` then use by default.
            alpha: (self.config.model == "bigram").then(|| alpha_f64(self.config.alpha)),
        };
        // The parameters with the lowest dev loss seen (over the whole run, when it was resumed).
        let best_path = dir.file("best.safetensors");
        let mut best_step = None;
        let best_of = |step: usize, dev_loss| run_files::Best {
            checkpoint: best_path.clone(),
            dev_loss,
            step: step as u64,
        };
        let best = match (at.best, self.best_before) {
            // Equal losses keep the earlier step, as the training loop does.
            (Some((_, d, _)), Some((s, was))) if d >= was => {
                kept.push("best.safetensors");
                Some(best_of(s, was))
            }
            (Some((step, dev_loss, params)), _) => {
                if self.best_written == Some(step) {
                    kept.push("best.safetensors");
                } else {
                    let best = at.model.with_params(params);
                    dir.stage("best.safetensors", &to_bytes(&best_path, &best, &meta(step, None))?)?;
                    written.push("best.safetensors");
                    best_step = Some(step);
                }
                Some(best_of(step, dev_loss))
            }
            (None, Some((s, was))) => {
                kept.push("best.safetensors");
                Some(best_of(s, was))
            }
            (None, None) => None,
        };
        let model_path = dir.file("model.safetensors");
        dir.stage("model.safetensors", &to_bytes(&model_path, at.model, &meta(at.step, at.adamw.clone()))?)?;
        written.push("model.safetensors");
        // The picture is drawn at the end of a run; a periodic save keeps the run's own, if any
        // (it is not needed to resume, and drawing it at each save would slow training).
        if end.is_some() && !metrics.is_empty() {
            let points: Vec<_> = metrics.iter().map(|m| (m.step, m.train_loss, m.dev_loss)).collect();
            mm_cli::plot::loss(&points, &dir.staged("loss.png"))?;
            written.push("loss.png");
        } else if end.is_none() && self.resumed {
            kept.push("loss.png");
        }
        let (loss, samples, elapsed) = match end {
            Some((l, samples, elapsed)) => (
                Some(run_files::Losses { train: l[0], dev: l[1], test: l[2] }),
                samples
                    .iter()
                    .map(|(n, o)| run_files::SampleName { name: n.clone(), origin: o.to_string() })
                    .collect(),
                elapsed,
            ),
            None => (None, Vec::new(), metrics.last().map_or(0.0, |m| m.elapsed_s)),
        };
        let summary = Summary {
            best,
            checkpoint: dir.file("model.safetensors"),
            config: self.config.clone(),
            dataset: Some(run_files::Dataset {
                items: self.items as u64,
                path: self.data.to_path_buf(),
                sha256: self.sha.clone(),
                vocab: self.vocab.clone(),
            }),
            elapsed_s: elapsed,
            loss,
            model: self.config.model.clone(),
            parameters: at.model.num_params() as u64,
            samples,
            seed: self.config.seed,
            steps: at.step as u64,
            stopped: at.stopped,
        };
        dir.stage("summary.json", summary.to_json()?.as_bytes())?;
        written.push("summary.json");
        dir.commit(&written, &kept)?;
        if best_step.is_some() {
            self.best_written = best_step;
        }
        Ok(summary)
    }
}
