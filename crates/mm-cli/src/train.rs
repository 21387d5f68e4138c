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
    BigramCounts, BigramNet, Init, Mlp, MlpConfig, Model, Novelty, OptimizerKind, Origin, SampleConfig,
    Schedule, TrainConfig, evaluate, sample, sample_counts, train,
};
use rand::SeedableRng;
use serde_json::json;

use crate::cli::{InitKind, ModelKind, OptimizerArg, TrainArgs};

/// Runs `makemore train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let kind = match args.model {
        ModelKind::Bigram => "bigram",
        ModelKind::BigramNn => "bigram-nn",
        ModelKind::Mlp => "mlp",
    };
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(kind));
    if !args.force && (out.join("model.safetensors").exists() || out.join("summary.json").exists()) {
        bail!("{} already holds a run: pass --force to overwrite it, or --out DIR", out.display());
    }
    let say = |line: String| {
        if !args.json {
            println!("{line}");
        }
    };

    // The data: validated before anything is written.
    let data = crate::data::load(&args.data.data)?;
    let vocab = data.vocab();
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
    let block_size = if args.model == ModelKind::Mlp { args.block_size as usize } else { 1 };
    let sets = [&split.train, &split.dev, &split.test].map(|w| Examples::windows(w, &vocab, block_size));
    let [tr, dev, test] = sets;
    let (tr, dev, test) = (tr?, dev?, test?);

    // Ctrl-C stops training after the current step; the run is still saved.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));

    let start = Instant::now();
    let mut metrics = Vec::new();
    let mut best = None;
    let (model, steps, stopped, losses, names) = match args.model {
        ModelKind::Bigram => {
            let counts = BigramCounts::fit(&split.train, &vocab)?;
            say(format!("{} parameters (the counts N)", vocab.len() * vocab.len()));
            let alpha = f64::from(args.alpha);
            let losses = [
                counts.nll(&split.train, alpha)?,
                counts.nll(&split.dev, alpha)?,
                counts.nll(&split.test, alpha)?,
            ];
            let cfg = SampleConfig { seed: args.seed, ..SampleConfig::default() };
            let names = sample_counts(&counts, alpha, &cfg)?;
            (AnyModel::Counts(counts), 0, false, losses, names)
        }
        ModelKind::BigramNn | ModelKind::Mlp => {
            let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
            let mut model: Box<dyn NeuralModel> = if args.model == ModelKind::Mlp {
                let init = if args.init == InitKind::Kaiming { Init::Kaiming } else { Init::Lecture };
                let cfg = MlpConfig {
                    block_size,
                    n_embd: args.n_embd as usize,
                    n_hidden: args.n_hidden as usize,
                    init,
                };
                Box::new(Mlp::new(cfg, &vocab, &mut rng)?)
            } else {
                Box::new(BigramNet::new(&vocab, args.reg, &mut rng)?)
            };
            say(format!("{} parameters", model.num_params()));
            let cfg = train_config(args);
            let bar = progress_bar(cfg.steps as u64, args.json);
            let report = train(&mut *model, &tr, Some(&dev), &cfg, &stop, |m| {
                metrics.push((m.step + 1, m.lr, m.loss, m.dev_loss, m.elapsed.as_secs_f64()));
                if m.step % 100 == 0 || m.dev_loss.is_some() {
                    bar.set_position(m.step as u64 + 1);
                    let rate = (m.step + 1) as f64 / m.elapsed.as_secs_f64().max(1e-9);
                    bar.set_message(format!("loss {:.4}  lr {:.4}  {rate:.0} steps/s", m.loss, m.lr));
                }
            })?;
            bar.finish_and_clear();
            if report.stopped {
                eprintln!("stopped by Ctrl-C after {} steps; saving the run", report.steps);
            }
            best = report.best.map(|b| (model.snapshot(&b.params), b.step + 1, b.dev_loss));
            let losses = [evaluate(&*model, &tr)?, evaluate(&*model, &dev)?, evaluate(&*model, &test)?];
            let names = sample(&*model, &SampleConfig { seed: args.seed, ..SampleConfig::default() })?;
            (model.into_any(), report.steps, report.stopped, losses, names)
        }
    };
    let elapsed = start.elapsed().as_secs_f64();

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
    let sha = mm_data::download::sha256_file(&args.data.data).unwrap_or_default();
    save(
        &checkpoint,
        &model,
        &CheckpointMeta { step: steps as u64, seed: args.seed, dataset_sha256: sha.clone() },
    )?;
    // The parameters with the lowest dev loss seen, when there were evaluations.
    let best_json = match &best {
        Some((best_model, step, dev_loss)) => {
            let path = out.join("best.safetensors");
            let meta = CheckpointMeta { step: *step as u64, seed: args.seed, dataset_sha256: sha.clone() };
            save(&path, best_model, &meta)?;
            json!({ "step": step, "dev_loss": dev_loss, "checkpoint": path })
        }
        None => serde_json::Value::Null,
    };
    write_metrics(&out.join("metrics.csv"), &metrics)?;
    if !metrics.is_empty() {
        let points: Vec<_> = metrics.iter().map(|m| (m.0, m.2, m.3)).collect();
        mm_cli::plot::loss(&points, &out.join("loss.png"))?;
    }
    let summary = json!({
        "model": kind,
        "parameters": match &model { AnyModel::Counts(_) => vocab.len() * vocab.len(), AnyModel::BigramNet(m) => m.num_params(), AnyModel::Mlp(m) => m.num_params() },
        "steps": steps,
        "stopped": stopped,
        "seed": args.seed,
        "elapsed_s": elapsed,
        "loss": { "train": losses[0], "dev": losses[1], "test": losses[2] },
        "dataset": { "path": args.data.data, "sha256": sha, "items": stats.items, "vocab": vocab.to_string() },
        "checkpoint": checkpoint,
        "best": best_json,
        "samples": samples.iter().map(|(n, o)| json!({ "name": n, "origin": o })).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&summary)?;
    std::fs::write(out.join("summary.json"), &text)
        .with_context(|| format!("cannot write {}", out.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        let plot = if metrics.is_empty() { "" } else { ", loss.png" };
        let best = if best.is_some() { ", best.safetensors" } else { "" };
        println!("saved {} (and metrics.csv, summary.json{plot}{best})", checkpoint.display());
    }
    Ok(())
}

/// The training configuration from the flags, with each model's lecture defaults.
fn train_config(args: &TrainArgs) -> TrainConfig {
    let base = if args.model == ModelKind::Mlp { TrainConfig::mlp() } else { TrainConfig::bigram_nn() };
    let steps = args.steps.map_or(base.steps, |s| s as usize);
    let lr = args.lr.unwrap_or(base.schedule.lr(0));
    let decayed = args.lr_decayed.unwrap_or(if args.model == ModelKind::Mlp { lr / 10.0 } else { lr });
    let at = args.decay_step.map_or(steps / 2, |s| s as usize);
    TrainConfig {
        steps,
        batch_size: if args.model == ModelKind::Mlp { Some(args.batch_size as usize) } else { None },
        schedule: Schedule::Step { lr, at, then: decayed },
        optimizer: if args.optimizer == OptimizerArg::Adamw {
            OptimizerKind::AdamW
        } else {
            OptimizerKind::Sgd
        },
        weight_decay: args.weight_decay,
        eval_every: args.eval_every as usize,
        seed: args.seed,
    }
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
fn write_metrics(path: &Path, metrics: &[(usize, f32, f32, Option<f32>, f64)]) -> anyhow::Result<()> {
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
