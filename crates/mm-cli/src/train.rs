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
use mm_models::zoo::{Kind, Makemore, ModelConfig};
use mm_models::{
    BigramCounts, BigramNet, BnMlp, BnMlpConfig, Init, Mlp, MlpConfig, Model, Novelty, OptimizerKind, Origin,
    Progress, SampleConfig, SavePoint, Schedule, TrainConfig, WaveNet, WaveNetConfig, evaluate, sample,
    sample_counts, train_saving,
};
use mm_tensor::{AdamWState, ParamStore};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use mm_cli::plot::{MetricRow, read_metrics};
use mm_cli::run_dir::RunDir;

use crate::cli::{InitKind, ModelKind, OptimizerArg, TrainArgs};

/// The largest model `train` builds: 250 million parameters (1 GB of weights, as much again for
/// their gradients). Beyond that a typo in a size flag would exhaust memory.
const MAX_PARAMS: u64 = 250_000_000;

/// The settings of a run, resolved from the flags and each model's defaults (the lectures' for
/// theirs, makemore.py's for its models). summary.json records them (as "config"), so that
/// `--resume` continues the run exactly.
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
}

/// PyTorch's AdamW beta2, for runs saved before it was a setting.
fn default_beta2() -> f32 {
    0.999
}

impl RunConfig {
    /// A new run's settings, from the flags; a flag the kind does not take is an error.
    fn from_args(args: &TrainArgs, kind: ModelKind) -> anyhow::Result<RunConfig> {
        let zoo = kind.makemore();
        let mlp = kind == ModelKind::Mlp;
        let wavenet = kind == ModelKind::Wavenet;
        // The lectures' models with hidden layers, trained as the MLP.
        let hidden = mlp || wavenet || kind == ModelKind::BnMlp;
        args.check_flags(kind).map_err(anyhow::Error::msg)?;
        let base = match (kind, zoo) {
            (_, Some(_)) => TrainConfig::makemore(),
            _ if hidden => TrainConfig::mlp(),
            _ => TrainConfig::bigram_nn(),
        };
        let steps = args.steps.map_or(base.steps, |s| s as usize);
        let lr = args.lr.unwrap_or(base.schedule.lr(0));
        let defaults = ModelConfig::default();
        let size = |flag: Option<u64>, default: usize| flag.map_or(default, |v| v as usize);
        let c = RunConfig {
            model: kind.name().into(),
            seed: args.seed,
            block_size: match zoo {
                _ if wavenet => size(args.block_size, 8),
                _ if hidden => size(args.block_size, 3),
                None => 1,
                Some(_) => size(args.block_size, 0),
            },
            n_embd: size(
                args.n_embd,
                if wavenet {
                    24
                } else if hidden {
                    10
                } else {
                    defaults.n_embd
                },
            ),
            n_hidden: size(args.n_hidden, if wavenet { 128 } else { 200 }),
            init: if args.init == Some(InitKind::Kaiming) { "kaiming" } else { "lecture" }.into(),
            n_layer: size(args.n_layer, defaults.n_layer),
            n_head: size(args.n_head, defaults.n_head),
            n_embd2: size(args.n_embd2, defaults.n_embd2),
            reg: args.reg.unwrap_or(0.01),
            alpha: args.alpha.unwrap_or(1.0),
            batch_size: base.batch_size.map(|_| args.batch_size as usize),
            steps,
            lr,
            decay_step: args.decay_step.map_or(
                if zoo.is_some() {
                    steps
                } else if wavenet {
                    steps / 4 * 3
                } else {
                    steps / 2
                },
                |s| s as usize,
            ),
            lr_decayed: args.lr_decayed.unwrap_or(if hidden { lr / 10.0 } else { lr }),
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
                .map_or(if zoo.is_some() { base.eval_every } else { 10_000 }, |e| e as usize),
        };
        if hidden {
            let (b, e, h) = (c.block_size as u64, c.n_embd as u64, c.n_hidden as u64);
            let levels = u64::from(b.trailing_zeros());
            let params = if wavenet {
                // 27 e + 2 e h + (levels - 1) 2 h h, the BatchNorms, the output layer.
                27 * e + 2 * e * h + levels.saturating_sub(1) * 2 * h * h + levels * 2 * h + h * 27 + 27
            } else {
                27 * e + b * e * h + h + h * 27 + 27
            };
            if params > MAX_PARAMS {
                bail!(
                    "--block-size {b} --n-embd {e} --n-hidden {h} make a {} of about {params} parameters, \
                     more than {MAX_PARAMS}: choose smaller sizes",
                    kind.name()
                );
            }
        }
        Ok(c)
    }

    /// The sizes of makemore's model `kind` for a vocabulary of `vocab_size`, checked (n_embd
    /// a multiple of n_head, at most [`MAX_PARAMS`] parameters) before anything is allocated.
    fn model_config(&self, kind: Kind, vocab_size: usize) -> anyhow::Result<ModelConfig> {
        let c = ModelConfig {
            block_size: self.block_size,
            vocab_size,
            n_layer: self.n_layer,
            n_head: self.n_head,
            n_embd: self.n_embd,
            n_embd2: self.n_embd2,
        };
        let name = match kind {
            Kind::Mlp => "mlp",
            Kind::Bigram => "bigram",
            other => other.name(),
        };
        c.check(name)?;
        let params = kind.num_params(&c);
        if params > u128::from(MAX_PARAMS) {
            bail!(
                "these sizes make a {} of {params} parameters, more than {MAX_PARAMS}: choose smaller sizes",
                kind.name()
            );
        }
        Ok(c)
    }

    /// The training loop's configuration.
    fn train_config(&self) -> TrainConfig {
        TrainConfig {
            steps: self.steps,
            batch_size: self.batch_size,
            schedule: Schedule::Step { lr: self.lr, at: self.decay_step, then: self.lr_decayed },
            optimizer: if self.optimizer == "adamw" { OptimizerKind::AdamW } else { OptimizerKind::Sgd },
            betas: (0.9, self.beta2),
            weight_decay: self.weight_decay,
            eval_every: self.eval_every,
            seed: self.seed,
        }
    }

    /// A fresh neural model, its weights drawn with the run's seed.
    fn new_model(&self, vocab: &mm_data::Vocab) -> anyhow::Result<Box<dyn NeuralModel>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        if let Some(kind) = Kind::from_name(&self.model) {
            let config = self.model_config(kind, vocab.len())?;
            return Ok(Box::new(Makemore::new(kind, config, vocab, &mut rng)?));
        }
        let (block_size, n_embd, n_hidden) = (self.block_size, self.n_embd, self.n_hidden);
        if self.model == "bn-mlp" {
            let cfg = BnMlpConfig { block_size, n_embd, n_hidden, ..BnMlpConfig::default() };
            return Ok(Box::new(BnMlp::new(cfg, vocab, &mut rng)?));
        }
        if self.model == "wavenet" {
            let cfg = WaveNetConfig { block_size, n_embd, n_hidden, ..WaveNetConfig::default() };
            return Ok(Box::new(WaveNet::new(cfg, vocab, &mut rng)?));
        }
        Ok(if self.model == "mlp" {
            let init = if self.init == "kaiming" { Init::Kaiming } else { Init::Lecture };
            let cfg =
                MlpConfig { block_size: self.block_size, n_embd: self.n_embd, n_hidden: self.n_hidden, init };
            Box::new(Mlp::new(cfg, vocab, &mut rng)?)
        } else {
            Box::new(BigramNet::new(vocab, self.reg, &mut rng)?)
        })
    }

    /// How the model reads words.
    fn layout(&self) -> Layout {
        if Kind::from_name(&self.model).is_some() { Layout::Words } else { Layout::Windows }
    }
}

/// What `--resume` carries over from the run it continues.
struct Resumed {
    model: Box<dyn NeuralModel>,
    progress: Progress,
    /// metrics.csv up to the checkpoint's step.
    metrics: Vec<MetricRow>,
    /// The run's time so far.
    elapsed: f64,
    /// The best dev loss of the run so far, and its step.
    best: Option<(usize, f64)>,
}

/// Opens the run in `out` to continue it: its settings (with `--steps` applied), its checkpoint
/// and optimizer state, and its logs, checked to be of the same save: a checkpoint at the
/// summary's step, a row of metrics.csv for each step up to it, and the summary's best.
fn open_run(out: &Path, args: &TrainArgs) -> anyhow::Result<(RunConfig, Resumed, String)> {
    let checkpoint = out.join("model.safetensors");
    if !checkpoint.exists() {
        bail!(
            "{} holds no run to resume (no model.safetensors): train without --resume first",
            out.display()
        );
    }
    let summary_path = out.join("summary.json");
    let text = std::fs::read_to_string(&summary_path)
        .with_context(|| format!("cannot read {}", summary_path.display()))?;
    let summary: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", summary_path.display()))?;
    let mut config: RunConfig = serde_json::from_value(summary["config"].clone()).with_context(|| {
        format!("{} has no run settings to resume from: train it again with --force", summary_path.display())
    })?;
    if let Some(kind) = args.model
        && kind.name() != config.model
    {
        bail!(
            "{} holds a {} run, not {}: drop --model or pass --out",
            out.display(),
            config.model,
            kind.name()
        );
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
    if summary["steps"].as_u64() != Some(meta.step) {
        return Err(mixed(format!(
            "model.safetensors is at step {step}, summary.json at {}",
            summary["steps"]
        )));
    }
    if let Some(steps) = args.steps {
        config.steps = steps as usize;
    }
    if step >= config.steps {
        bail!(
            "the run in {} has done {step} of its {} steps: pass --steps with more to train longer",
            out.display(),
            config.steps
        );
    }
    let model: Box<dyn NeuralModel> = match model {
        AnyModel::Mlp(m) => Box::new(m),
        AnyModel::BigramNet(m) => Box::new(m),
        AnyModel::BnMlp(m) => Box::new(m),
        AnyModel::WaveNet(m) => Box::new(m),
        AnyModel::Makemore(m) => Box::new(m),
        AnyModel::Counts(_) => bail!("{} holds a bigram counting model", checkpoint.display()),
    };
    let sha = meta.dataset_sha256.clone();
    // The log: a row for each step up to the checkpoint's, never silently restarted.
    let log = out.join("metrics.csv");
    let metrics: Vec<MetricRow> = read_metrics(&log)?.into_iter().filter(|m| m.0 <= step).collect();
    if metrics.len() != step || metrics.iter().enumerate().any(|(i, m)| m.0 != i + 1) {
        return Err(mixed(format!("metrics.csv has {} of the checkpoint's {step} steps", metrics.len())));
    }
    let elapsed = metrics.last().map_or(0.0, |m| m.4);
    let best = summary["best"]["dev_loss"]
        .as_f64()
        .zip(summary["best"]["step"].as_u64())
        .map(|(d, s)| (s as usize, d));
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
    Ok((config, Resumed { model, progress, metrics, elapsed, best }, sha))
}

/// Runs `makemore train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let kind = args.model.unwrap_or(ModelKind::Mlp);
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(kind.name()));
    // A new run's settings are checked before the directory is touched.
    let fresh = if args.resume { None } else { Some(RunConfig::from_args(args, kind)?) };
    // The directory: writable, and ours until the run ends (a failure before the first save
    // removes it again if this run created it).
    let mut dir = RunDir::open(&out)?;
    if let Ok(at) = std::env::var(CRASH_AT) {
        // Crash-consistency tests: die at a point of a save, as a SIGKILL would.
        dir.set_hook(Box::new(move |point| {
            if point == at {
                std::process::abort();
            }
        }));
    }
    let (config, mut resumed, resumed_sha) = match fresh {
        None => {
            let (c, r, sha) = open_run(&out, args)?;
            (c, Some(r), Some(sha))
        }
        Some(config) => {
            if !args.force && dir.holds_a_run() {
                bail!(
                    "{} already holds a run: pass --resume to continue it, --force to overwrite it, or --out DIR",
                    out.display()
                );
            }
            (config, None, None)
        }
    };
    let say = |line: String| {
        if !args.json {
            println!("{line}");
        }
    };

    // The data: validated before anything is written.
    let data = crate::data::load(&args.data.data)?;
    let sha = mm_data::download::sha256_file(&args.data.data).unwrap_or_default();
    if let Some(was) = resumed_sha.filter(|s| !s.is_empty() && *s != sha) {
        bail!(
            "{} is not the dataset the run was trained on (sha256 {}, the run's {}): pass --data with that file",
            args.data.data.display(),
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
            r.model.vocab(),
            vocab
        );
    }
    let split = Split::new(data.words(), SplitSpec::default())?;
    let stats = data.stats();
    say(format!(
        "{}: {} items ({} distinct), vocabulary of {}, split {} / {} / {} words",
        args.data.data.display(),
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
    }
    if let Some(kind) = Kind::from_name(&config.model) {
        config.model_config(kind, vocab.len())?;
    }
    let (block_size, layout) = (config.block_size, config.layout());
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
        data: &args.data.data,
        items: stats.items,
        vocab: vocab.to_string(),
        best_before: resumed.as_ref().and_then(|r| r.best),
        best_written: None,
        resumed: resumed.is_some(),
        csv: String::new(),
        csv_rows: 0,
    };
    let (model, steps, stopped, losses, names, adamw, best) = match config.model.as_str() {
        "bigram" => {
            let counts = BigramCounts::fit(&split.train, &vocab)?;
            say(format!("{} parameters (the counts N)", vocab.len() * vocab.len()));
            let alpha = f64::from(config.alpha);
            let losses = [
                counts.nll(&split.train, alpha)?,
                counts.nll(&split.dev, alpha)?,
                counts.nll(&split.test, alpha)?,
            ];
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
            let cfg = config.train_config();
            let bar = progress_bar(cfg.steps as u64, args.json);
            bar.set_position(from.step as u64);
            bar.reset_eta();
            let done_before = from.step;
            let template = model.snapshot(model.params());
            let save_every = args.save_every.map_or(config.eval_every, |n| n as usize);
            let observe = |m: &mm_models::StepMetrics| {
                let elapsed = elapsed_before + m.elapsed.as_secs_f64();
                metrics.borrow_mut().push((m.step + 1, m.lr, m.loss, m.dev_loss, elapsed));
                if m.step.is_multiple_of(100) || m.dev_loss.is_some() {
                    bar.set_position(m.step as u64 + 1);
                    let rate = (m.step + 1 - done_before) as f64 / m.elapsed.as_secs_f64().max(1e-9);
                    bar.set_message(format!("loss {:.4}  lr {:.4}  {rate:.0} steps/s", m.loss, m.lr));
                }
            };
            // A resumable checkpoint every `save_every` steps: SIGKILL loses at most that many.
            let periodic = |p: &SavePoint| -> anyhow::Result<()> {
                let model = with_params_any(&template, p.params);
                let best = p.best.map(|b| (b.step + 1, b.dev_loss, &b.params));
                let at = Saved {
                    model: &model,
                    step: p.progress.step,
                    adamw: p.progress.adamw.clone(),
                    stopped: true,
                    best,
                };
                files.save(&mut dir, &at, &metrics.borrow(), None)?;
                Ok(())
            };
            let report = train_saving(
                &mut *model,
                &tr,
                Some(&dev),
                &cfg,
                &from,
                &stop,
                observe,
                save_every,
                periodic,
            )?;
            bar.finish_and_clear();
            if report.stopped {
                eprintln!(
                    "stopped by Ctrl-C or SIGTERM after {} steps; saving the run (continue it with --resume)",
                    report.steps
                );
            }
            let losses = [evaluate(&*model, &tr)?, evaluate(&*model, &dev)?, evaluate(&*model, &test)?];
            let names = sample(&*model, &SampleConfig { seed: config.seed, ..SampleConfig::default() })?;
            let best = report.best.map(|b| (b.step + 1, b.dev_loss, b.params));
            (model.into_any(), report.steps, report.stopped, losses, names, report.progress.adamw, best)
        }
    };
    let elapsed = elapsed_before + start.elapsed().as_secs_f64();
    let metrics = metrics.into_inner();

    // Report.
    say(format!("train loss {:.4}  dev loss {:.4}  test loss {:.4}", losses[0], losses[1], losses[2]));
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
        say(format!("  {n:20} {origin}"));
    }

    // The run directory.
    let best = best.as_ref().map(|(s, d, p)| (*s, *d, p));
    let at = Saved { model: &model, step: steps, adamw, stopped, best };
    let summary = files.save(&mut dir, &at, &metrics, Some((losses, &samples, elapsed)))?;
    let checkpoint = dir.file("model.safetensors");
    let best_json = &summary["best"];
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        let plot = if metrics.is_empty() { "" } else { ", loss.png" };
        let best = if best_json.is_null() { "" } else { ", best.safetensors" };
        println!("saved {} (and metrics.csv, summary.json{plot}{best})", checkpoint.display());
    }
    Ok(())
}

/// A neural model behind a box: the trait object the train command works with.
trait NeuralModel: Model {
    /// The model, for saving.
    fn into_any(self: Box<Self>) -> AnyModel;
    /// A copy of the model with other parameters (of the same shapes), e.g. the best by dev loss.
    fn snapshot(&self, params: &mm_tensor::ParamStore<f32>) -> AnyModel;
}

impl NeuralModel for Mlp {
    fn into_any(self: Box<Self>) -> AnyModel {
        AnyModel::Mlp(*self)
    }
    fn snapshot(&self, params: &mm_tensor::ParamStore<f32>) -> AnyModel {
        AnyModel::Mlp(with_params(self, params))
    }
}

impl NeuralModel for Makemore {
    fn into_any(self: Box<Self>) -> AnyModel {
        AnyModel::Makemore(*self)
    }
    fn snapshot(&self, params: &mm_tensor::ParamStore<f32>) -> AnyModel {
        AnyModel::Makemore(with_params(self, params))
    }
}

impl NeuralModel for BnMlp {
    fn into_any(self: Box<Self>) -> AnyModel {
        AnyModel::BnMlp(*self)
    }
    fn snapshot(&self, params: &mm_tensor::ParamStore<f32>) -> AnyModel {
        AnyModel::BnMlp(with_params(self, params))
    }
}

impl NeuralModel for WaveNet {
    fn into_any(self: Box<Self>) -> AnyModel {
        AnyModel::WaveNet(*self)
    }
    fn snapshot(&self, params: &mm_tensor::ParamStore<f32>) -> AnyModel {
        AnyModel::WaveNet(with_params(self, params))
    }
}

impl NeuralModel for BigramNet {
    fn into_any(self: Box<Self>) -> AnyModel {
        AnyModel::BigramNet(*self)
    }
    fn snapshot(&self, params: &mm_tensor::ParamStore<f32>) -> AnyModel {
        AnyModel::BigramNet(with_params(self, params))
    }
}

/// A copy of `model` with `params` in place of its own.
fn with_params<M: Model + Clone>(model: &M, params: &mm_tensor::ParamStore<f32>) -> M {
    let mut m = model.clone();
    *m.params_mut() = params.clone();
    m
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

/// A model of the same kind and sizes as `template`, with `params`.
fn with_params_any(template: &AnyModel, params: &ParamStore<f32>) -> AnyModel {
    match template {
        AnyModel::Mlp(m) => AnyModel::Mlp(with_params(m, params)),
        AnyModel::BigramNet(m) => AnyModel::BigramNet(with_params(m, params)),
        AnyModel::BnMlp(m) => AnyModel::BnMlp(with_params(m, params)),
        AnyModel::WaveNet(m) => AnyModel::WaveNet(with_params(m, params)),
        AnyModel::Makemore(m) => AnyModel::Makemore(with_params(m, params)),
        AnyModel::Counts(c) => AnyModel::Counts(c.clone()),
    }
}

/// The end of a run, for its summary: the losses on each split, the samples with their origin,
/// and the run's time.
type End<'a> = ([f64; 3], &'a [(String, &'a str)], f64);

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
    best_before: Option<(usize, f64)>,
    /// The step of the best.safetensors this session saved.
    best_written: Option<usize>,
    /// Whether the run was resumed (its files in the directory are this run's).
    resumed: bool,
    /// metrics.csv as written so far (it only grows), and its rows.
    csv: String,
    csv_rows: usize,
}

impl RunFiles<'_> {
    /// Saves `at` with the log `metrics` (and, at the end of a run, its losses, samples and time),
    /// and returns the summary.
    fn save(
        &mut self,
        dir: &mut RunDir,
        at: &Saved,
        metrics: &[MetricRow],
        end: Option<End>,
    ) -> anyhow::Result<serde_json::Value> {
        let (mut written, mut kept) = (Vec::new(), Vec::new());
        if self.csv.is_empty() {
            self.csv = "step,lr,train_loss,dev_loss,elapsed_s\n".into();
        }
        for (step, lr, loss, dev, t) in &metrics[self.csv_rows..] {
            let dev = dev.map_or(String::new(), |d| d.to_string());
            self.csv += &format!("{step},{lr},{loss},{dev},{t:.3}\n");
        }
        self.csv_rows = metrics.len();
        dir.stage("metrics.csv", self.csv.as_bytes())?;
        written.push("metrics.csv");

        let meta = |step: usize, adamw| CheckpointMeta {
            step: step as u64,
            seed: self.config.seed,
            dataset_sha256: self.sha.clone(),
            adamw,
        };
        // The parameters with the lowest dev loss seen (over the whole run, when it was resumed).
        let best_path = dir.file("best.safetensors");
        let mut best_step = None;
        let best_json = match (at.best, self.best_before) {
            (Some((_, d, _)), Some((s, was))) if f64::from(d) >= was => {
                kept.push("best.safetensors");
                json!({ "step": s, "dev_loss": was, "checkpoint": best_path })
            }
            (Some((step, dev_loss, params)), _) => {
                if self.best_written == Some(step) {
                    kept.push("best.safetensors");
                } else {
                    let best = with_params_any(at.model, params);
                    dir.stage("best.safetensors", &to_bytes(&best_path, &best, &meta(step, None))?)?;
                    written.push("best.safetensors");
                    best_step = Some(step);
                }
                json!({ "step": step, "dev_loss": dev_loss, "checkpoint": best_path })
            }
            (None, Some((s, was))) => {
                kept.push("best.safetensors");
                json!({ "step": s, "dev_loss": was, "checkpoint": best_path })
            }
            (None, None) => serde_json::Value::Null,
        };
        let model_path = dir.file("model.safetensors");
        dir.stage("model.safetensors", &to_bytes(&model_path, at.model, &meta(at.step, at.adamw.clone()))?)?;
        written.push("model.safetensors");
        // The picture is drawn at the end of a run; a periodic save keeps the run's own, if any
        // (it is not needed to resume, and drawing it at each save would slow training).
        if end.is_some() && !metrics.is_empty() {
            let points: Vec<_> = metrics.iter().map(|m| (m.0, m.2, m.3)).collect();
            mm_cli::plot::loss(&points, &dir.staged("loss.png"))?;
            written.push("loss.png");
        } else if end.is_none() && self.resumed {
            kept.push("loss.png");
        }
        let (loss, samples, elapsed) = match end {
            Some((l, samples, elapsed)) => (
                json!({ "train": l[0], "dev": l[1], "test": l[2] }),
                samples.iter().map(|(n, o)| json!({ "name": n, "origin": o })).collect(),
                elapsed,
            ),
            None => (serde_json::Value::Null, Vec::new(), metrics.last().map_or(0.0, |m| m.4)),
        };
        let parameters = at.model.num_params();
        let summary = json!({
            "model": self.config.model,
            "parameters": parameters,
            "steps": at.step,
            "stopped": at.stopped,
            "seed": self.config.seed,
            "elapsed_s": elapsed,
            "loss": loss,
            "dataset": { "path": self.data, "sha256": self.sha, "items": self.items, "vocab": self.vocab },
            "checkpoint": dir.file("model.safetensors"),
            "best": best_json,
            "samples": samples,
            "config": self.config,
        });
        dir.stage("summary.json", serde_json::to_string_pretty(&summary)?.as_bytes())?;
        written.push("summary.json");
        dir.commit(&written, &kept)?;
        if best_step.is_some() {
            self.best_written = best_step;
        }
        Ok(summary)
    }
}
