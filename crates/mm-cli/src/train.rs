//! `makemore train`: train, evaluate, sample, and save the run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use mm_data::{Examples, Split, SplitSpec};
use mm_models::checkpoint::{AnyModel, CheckpointMeta, save};
use mm_models::{
    BigramCounts, BigramNet, Init, Mlp, MlpConfig, Model, Novelty, OptimizerKind, Origin, Progress,
    SampleConfig, Schedule, TrainConfig, evaluate, sample, sample_counts, train_from,
};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use mm_cli::plot::{MetricRow, read_metrics};

use crate::cli::{InitKind, ModelKind, OptimizerArg, TrainArgs};

/// The largest model `train` builds: 250 million parameters (1 GB of weights, as much again for
/// their gradients). Beyond that a typo in a size flag would exhaust memory.
const MAX_PARAMS: u64 = 250_000_000;

/// The settings of a run, resolved from the flags and each model's lecture defaults. summary.json
/// records them (as "config"), so that `--resume` continues the run exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct RunConfig {
    model: String,
    seed: u64,
    block_size: usize,
    n_embd: usize,
    n_hidden: usize,
    init: String,
    reg: f32,
    alpha: f32,
    /// `None`: the whole training set every step.
    batch_size: Option<usize>,
    steps: usize,
    lr: f32,
    decay_step: usize,
    lr_decayed: f32,
    optimizer: String,
    weight_decay: f32,
    eval_every: usize,
}

impl RunConfig {
    /// A new run's settings, from the flags.
    fn from_args(args: &TrainArgs, kind: ModelKind) -> anyhow::Result<RunConfig> {
        let mlp = kind == ModelKind::Mlp;
        let base = if mlp { TrainConfig::mlp() } else { TrainConfig::bigram_nn() };
        let steps = args.steps.map_or(base.steps, |s| s as usize);
        let lr = args.lr.unwrap_or(base.schedule.lr(0));
        let c = RunConfig {
            model: kind_name(kind).into(),
            seed: args.seed,
            block_size: if mlp { args.block_size as usize } else { 1 },
            n_embd: args.n_embd as usize,
            n_hidden: args.n_hidden as usize,
            init: if args.init == InitKind::Kaiming { "kaiming" } else { "lecture" }.into(),
            reg: args.reg,
            alpha: args.alpha,
            batch_size: mlp.then_some(args.batch_size as usize),
            steps,
            lr,
            decay_step: args.decay_step.map_or(steps / 2, |s| s as usize),
            lr_decayed: args.lr_decayed.unwrap_or(if mlp { lr / 10.0 } else { lr }),
            optimizer: if args.optimizer == OptimizerArg::Adamw { "adamw" } else { "sgd" }.into(),
            weight_decay: args.weight_decay,
            eval_every: args.eval_every as usize,
        };
        if mlp {
            let (b, e, h) = (c.block_size as u64, c.n_embd as u64, c.n_hidden as u64);
            let params = 27 * e + b * e * h + h + h * 27 + 27;
            if params > MAX_PARAMS {
                bail!(
                    "--block-size {b} --n-embd {e} --n-hidden {h} make an MLP of about {params} parameters, \
                     more than {MAX_PARAMS}: choose smaller sizes"
                );
            }
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
            weight_decay: self.weight_decay,
            eval_every: self.eval_every,
            seed: self.seed,
        }
    }

    /// A fresh neural model, its weights drawn with the run's seed.
    fn new_model(&self, vocab: &mm_data::Vocab) -> anyhow::Result<Box<dyn NeuralModel>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        Ok(if self.model == "mlp" {
            let init = if self.init == "kaiming" { Init::Kaiming } else { Init::Lecture };
            let cfg =
                MlpConfig { block_size: self.block_size, n_embd: self.n_embd, n_hidden: self.n_hidden, init };
            Box::new(Mlp::new(cfg, vocab, &mut rng)?)
        } else {
            Box::new(BigramNet::new(vocab, self.reg, &mut rng)?)
        })
    }
}

fn kind_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Bigram => "bigram",
        ModelKind::BigramNn => "bigram-nn",
        ModelKind::Mlp => "mlp",
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
/// and optimizer state, and its logs.
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
        && kind_name(kind) != config.model
    {
        bail!(
            "{} holds a {} run, not {}: drop --model or pass --out",
            out.display(),
            config.model,
            kind_name(kind)
        );
    }
    if config.model == "bigram" {
        bail!("{} holds a bigram counting model: it has no training steps to resume", out.display());
    }
    let (model, meta) = mm_models::checkpoint::load(&checkpoint)?;
    let step = meta.step as usize;
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
        AnyModel::Counts(_) => bail!("{} holds a bigram counting model", checkpoint.display()),
    };
    let sha = meta.dataset_sha256.clone();
    // The log up to the checkpoint's step (a run without one, e.g. 0 steps, has an empty log).
    let log = out.join("metrics.csv");
    let metrics: Vec<MetricRow> = if log.exists() { read_metrics(&log)? } else { Vec::new() };
    let metrics: Vec<MetricRow> = metrics.into_iter().filter(|m| m.0 <= step).collect();
    let elapsed = metrics.last().map_or(0.0, |m| m.4);
    let best = summary["best"]["dev_loss"]
        .as_f64()
        .zip(summary["best"]["step"].as_u64())
        .map(|(d, s)| (s as usize, d));
    let progress = Progress { step, adamw: meta.adamw };
    Ok((config, Resumed { model, progress, metrics, elapsed, best }, sha))
}

/// Runs `makemore train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let kind = args.model.unwrap_or(ModelKind::Mlp);
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(kind_name(kind)));
    let (config, mut resumed, resumed_sha) = if args.resume {
        let (c, r, sha) = open_run(&out, args)?;
        (c, Some(r), Some(sha))
    } else {
        if !args.force && (out.join("model.safetensors").exists() || out.join("summary.json").exists()) {
            bail!(
                "{} already holds a run: pass --resume to continue it, --force to overwrite it, or --out DIR",
                out.display()
            );
        }
        (RunConfig::from_args(args, kind)?, None, None)
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
    let block_size = config.block_size;
    let sets = [&split.train, &split.dev, &split.test].map(|w| Examples::windows(w, &vocab, block_size));
    let [tr, dev, test] = sets;
    let (tr, dev, test) = (tr?, dev?, test?);

    // Ctrl-C stops training after the current step; the run is still saved.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));

    let start = Instant::now();
    let (mut metrics, elapsed_before) =
        resumed.as_mut().map_or((Vec::new(), 0.0), |r| (std::mem::take(&mut r.metrics), r.elapsed));
    let best_before = resumed.as_ref().and_then(|r| r.best);
    let mut best = None;
    let mut adamw = None;
    let (model, steps, stopped, losses, names) = match config.model.as_str() {
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
            (AnyModel::Counts(counts), 0, false, losses, names)
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
            let report = train_from(&mut *model, &tr, Some(&dev), &cfg, &from, &stop, |m| {
                let elapsed = elapsed_before + m.elapsed.as_secs_f64();
                metrics.push((m.step + 1, m.lr, m.loss, m.dev_loss, elapsed));
                if m.step % 100 == 0 || m.dev_loss.is_some() {
                    bar.set_position(m.step as u64 + 1);
                    let rate = (m.step + 1 - done_before) as f64 / m.elapsed.as_secs_f64().max(1e-9);
                    bar.set_message(format!("loss {:.4}  lr {:.4}  {rate:.0} steps/s", m.loss, m.lr));
                }
            })?;
            bar.finish_and_clear();
            if report.stopped {
                eprintln!(
                    "stopped by Ctrl-C after {} steps; saving the run (continue it with --resume)",
                    report.steps
                );
            }
            best = report.best.map(|b| (model.snapshot(&b.params), b.step + 1, b.dev_loss));
            adamw = report.progress.adamw;
            let losses = [evaluate(&*model, &tr)?, evaluate(&*model, &dev)?, evaluate(&*model, &test)?];
            let names = sample(&*model, &SampleConfig { seed: config.seed, ..SampleConfig::default() })?;
            (model.into_any(), report.steps, report.stopped, losses, names)
        }
    };
    let elapsed = elapsed_before + start.elapsed().as_secs_f64();

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
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let checkpoint = out.join("model.safetensors");
    let meta = |step: usize, adamw| CheckpointMeta {
        step: step as u64,
        seed: config.seed,
        dataset_sha256: sha.clone(),
        adamw,
    };
    save(&checkpoint, &model, &meta(steps, adamw))?;
    // The parameters with the lowest dev loss seen (over the whole run, when it was resumed).
    let best_path = out.join("best.safetensors");
    let best_json = match (&best, best_before) {
        (Some((_, _, d)), Some((s, was))) if f64::from(*d) >= was => {
            json!({ "step": s, "dev_loss": was, "checkpoint": best_path })
        }
        (Some((best_model, step, dev_loss)), _) => {
            save(&best_path, best_model, &meta(*step, None))?;
            json!({ "step": step, "dev_loss": dev_loss, "checkpoint": best_path })
        }
        (None, Some((s, was))) => json!({ "step": s, "dev_loss": was, "checkpoint": best_path }),
        (None, None) => serde_json::Value::Null,
    };
    write_metrics(&out.join("metrics.csv"), &metrics)?;
    if !metrics.is_empty() {
        let points: Vec<_> = metrics.iter().map(|m| (m.0, m.2, m.3)).collect();
        mm_cli::plot::loss(&points, &out.join("loss.png"))?;
    }
    let summary = json!({
        "model": config.model,
        "parameters": match &model { AnyModel::Counts(_) => vocab.len() * vocab.len(), AnyModel::BigramNet(m) => m.num_params(), AnyModel::Mlp(m) => m.num_params() },
        "steps": steps,
        "stopped": stopped,
        "seed": config.seed,
        "elapsed_s": elapsed,
        "loss": { "train": losses[0], "dev": losses[1], "test": losses[2] },
        "dataset": { "path": args.data.data, "sha256": sha, "items": stats.items, "vocab": vocab.to_string() },
        "checkpoint": checkpoint,
        "best": best_json,
        "samples": samples.iter().map(|(n, o)| json!({ "name": n, "origin": o })).collect::<Vec<_>>(),
        "config": config,
    });
    let text = serde_json::to_string_pretty(&summary)?;
    std::fs::write(out.join("summary.json"), &text)
        .with_context(|| format!("cannot write {}", out.display()))?;
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

/// Writes `step,lr,train_loss,dev_loss,elapsed_s`, one line per step.
fn write_metrics(path: &Path, metrics: &[MetricRow]) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "step,lr,train_loss,dev_loss,elapsed_s")?;
    for (step, lr, loss, dev, t) in metrics {
        let dev = dev.map_or(String::new(), |d| d.to_string());
        writeln!(w, "{step},{lr},{loss},{dev},{t:.3}")?;
    }
    w.flush()?;
    Ok(())
}
