//! `cargo xtask lr-sweep`: find the learning rate as the lecture does (one step at each of many
//! increasing rates), smoothed and averaged over repeats, or by a grid of short runs.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use mm_data::{Examples, Layout, Split, SplitSpec};
use mm_models::{Model, Spec, SweepConfig, TrainConfig, lr_grid, lr_sweep};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The largest model a sweep builds (as `makemore train`): a typo in a size would exhaust memory.
const MAX_PARAMS: u128 = 250_000_000;

/// Find a learning rate: one training step at each of --points rates from 10^--min-exp to
/// 10^--max-exp (the lecture's sweep), repeated over --repeats seeds, smoothed and averaged; or,
/// with --grid, short runs at a few fixed rates compared by their dev loss.
///
/// Any neural kind of the registry (`makemore models` lists them), trained with its own
/// optimizer (SGD for the lectures' models, AdamW for makemore.py's) at its default sizes unless
/// set otherwise. Writes <out>/sweep.csv, sweep.png and sweep.svg (or grid.csv), and prints the
/// suggested rate with the rule that chose it.
#[derive(clap::Args)]
pub struct Args {
    /// The model kind.
    #[arg(long, default_value = "mlp", value_parser = clap::builder::PossibleValuesParser::new(Spec::names()))]
    model: String,

    /// The dataset, one item per line (`cargo xtask download` fetches the default).
    #[arg(long, value_name = "PATH", default_value = mm_data::DEFAULT_DATASET)]
    data: PathBuf,

    /// The directory for sweep.csv and the plots [default: runs/lr-sweep-<model>].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Rates per repeat (one training step each).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(2..=1_000_000))]
    points: u64,

    /// The first rate is 10^MIN_EXP.
    #[arg(long, default_value_t = -3.0, allow_negative_numbers = true)]
    min_exp: f32,

    /// The last rate is 10^MAX_EXP.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    max_exp: f32,

    /// Fresh models (seeds --seed, --seed + 1, ...) whose smoothed curves are averaged.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    repeats: u64,

    /// The factor beta of the exponential moving average that smooths each curve (0: none).
    #[arg(long, default_value_t = 0.98, allow_negative_numbers = true)]
    smoothing: f32,

    /// The seed of the first repeat's model and batches.
    #[arg(long, default_value_t = 42)]
    seed: u64,

    /// Examples (windows, or words for makemore.py's kinds) per step; 0 for the whole training
    /// split (full-batch gradient descent).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    batch_size: u64,

    /// Characters of context (windows), or the longest sequence (makemore.py's kinds) [default:
    /// the kind's; for makemore.py's kinds the longest word + 1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    block_size: Option<u64>,

    /// Dimensions of each character's embedding [default: the kind's].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    n_embd: Option<u64>,

    /// MLP kinds: units of the hidden layer [default: the kind's].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=65536))]
    n_hidden: Option<u64>,

    /// Any other setting of the kind, as KEY=VALUE (e.g. `--set n_layer=2 --set n_head=2`,
    /// `--set init=kaiming`; `makemore models` lists each kind's settings). Each setting is
    /// given once, by a flag or here.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,

    /// Instead of the sweep: train --grid-steps steps at each of --grid-points rates from
    /// 10^--min-exp to 10^--max-exp (the same initial weights and batches for each), and report
    /// each one's loss on the dev split.
    #[arg(long)]
    grid: bool,

    /// Grid: steps per rate.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    grid_steps: u64,

    /// Grid: how many rates, evenly spaced in exponent.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..=1000))]
    grid_points: u64,
}

impl Args {
    /// The kind's spec with the settings given (a setting the kind does not have is an error
    /// that lists the ones it has).
    fn spec(&self, max_len: usize, vocab_size: usize) -> anyhow::Result<Spec> {
        let mut given: Vec<(String, String)> = Vec::new();
        for (key, value) in
            [("block_size", self.block_size), ("n_embd", self.n_embd), ("n_hidden", self.n_hidden)]
        {
            if let Some(v) = value {
                given.push((key.into(), v.to_string()));
            }
        }
        for kv in &self.set {
            let (k, v) = kv.split_once('=').with_context(|| format!("--set {kv}: expected KEY=VALUE"))?;
            let key = k.trim().replace('-', "_");
            if given.iter().any(|(g, _)| *g == key) {
                bail!("{key} is given twice (--set {kv}); give each setting once");
            }
            given.push((key, v.trim().to_string()));
        }
        let default = Spec::default_of(&self.model).context("a kind of the registry")?;
        let settings = default.settings();
        if let Some((key, _)) = given.iter().find(|(k, _)| !settings.contains(k)) {
            bail!(
                "the {} has no setting {key}; its settings: {}",
                self.model,
                if settings.is_empty() { "none".into() } else { settings.join(", ") }
            );
        }
        let get = |key: &str| given.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let mut spec = Spec::parse(&self.model, get, false)?;
        // makemore.py's kinds read whole words: by default, the longest one and its end token.
        if spec.layout() == Layout::Words && !given.iter().any(|(k, _)| k == "block_size") {
            spec = spec.with_block_size(max_len + 1);
        }
        // The flags' ranges, for the settings given as text too, and a bound on the model's size
        // before anything is allocated for it.
        spec.check_limits()?;
        let params = spec.num_params(vocab_size);
        if params > MAX_PARAMS {
            bail!(
                "these settings make a {} of {params} parameters, more than {MAX_PARAMS}: choose smaller sizes",
                self.model
            );
        }
        Ok(spec)
    }
}

/// Runs the sweep (or the grid), writes its files and prints the suggestion.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (data, data_path) = crate::dataset(&args.data)?;
    let vocab = data.vocab();
    let split = Split::new(data.words(), SplitSpec::default())?;
    let spec = args.spec(data.stats().max_len, vocab.len())?;
    if spec.train_config().steps == 0 {
        bail!("the {} is counted, not trained: it has no learning rate", spec.kind());
    }
    let (layout, block_size) = (spec.layout(), spec.block_size());
    // The sweep trains on the training split; the grid compares rates by their dev loss.
    if split.train.is_empty() || (args.grid && split.dev.is_empty()) {
        let (a, b, c) = (split.train.len(), split.dev.len(), split.test.len());
        let needs = if args.grid { "the training and dev splits" } else { "the training split" };
        bail!(
            "{}: {} words split {a} / {b} / {c} (80/10/10), and this needs words in {needs}: use a larger dataset",
            data_path.display(),
            a + b + c
        );
    }
    let train = Examples::new(&split.train, &vocab, layout, block_size)?;
    let dev = Examples::new(&split.dev, &vocab, layout, block_size)?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/lr-sweep-{}", spec.kind())));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let batch_size = (args.batch_size > 0).then_some(args.batch_size as usize);
    let stop = AtomicBool::new(false);
    let new = |seed| -> mm_models::Result<Box<dyn Model>> {
        let model = spec.build(&vocab, &mut StdRng::seed_from_u64(seed))?;
        model.into_neural().ok_or_else(|| mm_models::ModelError::Config("a model with parameters".into()))
    };
    let settings: Vec<String> =
        spec.settings().iter().filter_map(|k| Some(format!("{k} {}", spec.setting(k)?))).collect();
    let optimizer = match spec.train_config().optimizer {
        mm_models::OptimizerKind::Sgd => "SGD",
        mm_models::OptimizerKind::AdamW => "AdamW",
    };
    eprintln!(
        "lr-sweep: {} of {} parameters ({}), trained by {optimizer}",
        spec.kind(),
        new(args.seed)?.num_params(),
        settings.join(", ")
    );
    if args.grid {
        grid(new, (&train, &dev), &spec, batch_size, args, &out, &stop)
    } else {
        sweep(new, &train, &spec, batch_size, args, &out, &stop)
    }
}

fn bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} steps, {per_sec}, eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

fn sweep<M: Model>(
    new_model: impl FnMut(u64) -> mm_models::Result<M>,
    train: &Examples,
    spec: &Spec,
    batch_size: Option<usize>,
    args: &Args,
    out: &Path,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let cfg = SweepConfig {
        points: args.points as usize,
        min_exp: args.min_exp,
        max_exp: args.max_exp,
        repeats: args.repeats as usize,
        smoothing: args.smoothing,
        batch_size,
        seed: args.seed,
        base: spec.train_config(),
    };
    let pb = bar(args.points * args.repeats, "sweep");
    let start = std::time::Instant::now();
    let result = lr_sweep(new_model, train, &cfg, stop, |done| pb.set_position(done as u64))?;
    pb.finish_and_clear();
    let csv = out.join("sweep.csv");
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&csv).with_context(|| format!("cannot write {}", csv.display()))?,
    );
    result.write_csv(&mut w).with_context(|| format!("cannot write {}", csv.display()))?;
    std::io::Write::flush(&mut w)?;
    for ext in ["png", "svg"] {
        mm_cli::plot::lr_sweep(&result, &out.join(format!("sweep.{ext}")))?;
    }
    eprintln!(
        "swept {} rates x {} repeats in {:.2} s; wrote {}, sweep.png, sweep.svg",
        cfg.points,
        cfg.repeats,
        start.elapsed().as_secs_f64(),
        csv.display()
    );
    if let Some(i) = result.argmin() {
        println!(
            "lowest smoothed loss {:.4} at lr {:.4} (10^{:.2})",
            result.mean[i],
            result.lr(i),
            result.exps[i]
        );
    }
    match result.suggest() {
        Some(s) => {
            println!("suggested learning rate: {:.4} (10^{:.2}), by {}", s.lr, s.exp, s.rule);
            if s.at_edge {
                eprintln!(
                    "warning: the loss was still falling at the largest rate; sweep higher (--max-exp)"
                );
            }
        }
        None => bail!("the loss never fell over this range: try a wider one (--min-exp, --max-exp)"),
    }
    Ok(())
}

fn grid<M: Model>(
    new_model: impl FnMut(u64) -> mm_models::Result<M>,
    (train, dev): (&Examples, &Examples),
    spec: &Spec,
    batch_size: Option<usize>,
    args: &Args,
    out: &Path,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let spacing = SweepConfig {
        points: args.grid_points as usize,
        min_exp: args.min_exp,
        max_exp: args.max_exp,
        ..SweepConfig::default()
    };
    let rates: Vec<f32> = spacing.exponents().iter().map(|e| 10f32.powf(*e)).collect();
    let cfg =
        TrainConfig { steps: args.grid_steps as usize, batch_size, seed: args.seed, ..spec.train_config() };
    let pb = bar(args.grid_steps * args.grid_points, "grid");
    let points = lr_grid(new_model, train, dev, &rates, &cfg, stop, |done| pb.set_position(done as u64))?;
    pb.finish_and_clear();
    let csv = out.join("grid.csv");
    let mut text = String::from("lr,train_loss,dev_loss\n");
    println!("{:>10}  {:>10}  {:>10}", "lr", "train", "dev");
    for p in &points {
        text += &format!("{},{},{}\n", p.lr, p.train_loss, p.dev_loss);
        println!("{:>10.4}  {:>10.4}  {:>10.4}", p.lr, p.train_loss, p.dev_loss);
    }
    std::fs::write(&csv, text).with_context(|| format!("cannot write {}", csv.display()))?;
    eprintln!("wrote {}", csv.display());
    let best = points
        .iter()
        .filter(|p| p.dev_loss.is_finite())
        .min_by(|a, b| a.dev_loss.total_cmp(&b.dev_loss))
        .context("every run diverged: try lower rates (--min-exp, --max-exp)")?;
    println!(
        "suggested learning rate: {:.4}, by the lowest dev loss after {} steps ({:.4})",
        best.lr, args.grid_steps, best.dev_loss
    );
    Ok(())
}
