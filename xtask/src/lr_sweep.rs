//! `cargo xtask lr-sweep`: find the learning rate as the lecture does (one step at each of many
//! increasing rates), smoothed and averaged over repeats, or by a grid of short runs.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use mm_data::{Dataset, Examples, Split, SplitSpec};
use mm_models::{BigramNet, Init, Mlp, MlpConfig, Model, SweepConfig, TrainConfig, lr_grid, lr_sweep};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Find a learning rate: one training step at each of --points rates from 10^--min-exp to
/// 10^--max-exp (the lecture's sweep), repeated over --repeats seeds, smoothed and averaged; or,
/// with --grid, short runs at a few fixed rates compared by their dev loss.
///
/// Writes <out>/sweep.csv, sweep.png and sweep.svg (or grid.csv), and prints the suggested rate
/// with the rule that chose it.
#[derive(clap::Args)]
pub struct Args {
    /// The model.
    #[arg(long, value_enum, default_value_t = ModelArg::Mlp)]
    model: ModelArg,

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
    #[arg(long, default_value_t = 0.98)]
    smoothing: f32,

    /// The seed of the first repeat's model and batches.
    #[arg(long, default_value_t = 42)]
    seed: u64,

    /// Examples per step; 0 for the whole training split (full-batch gradient descent).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    batch_size: u64,

    /// MLP: characters of context.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=64))]
    block_size: u64,

    /// MLP: dimensions of each character's embedding.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=4096))]
    n_embd: u64,

    /// MLP: units of the hidden layer.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=65536))]
    n_hidden: u64,

    /// MLP: the initialisation (lecture: standard normal; kaiming: part 3's scaling).
    #[arg(long, value_enum, default_value_t = InitArg::Lecture)]
    init: InitArg,

    /// Bigram net: the strength of the regularisation reg * mean(W²).
    #[arg(long, default_value_t = 0.01)]
    reg: f32,

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

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ModelArg {
    /// The MLP of makemore part 2.
    Mlp,
    /// The bigram neural net of makemore part 1.
    BigramNn,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum InitArg {
    /// Every weight from a standard normal (part 2).
    Lecture,
    /// Part 3's scaling of W1, b1, W2 and b2.
    Kaiming,
}

/// Runs the sweep (or the grid), writes its files and prints the suggestion.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let data = Dataset::load(&args.data).map_err(|e| {
        anyhow::anyhow!("{:#} (run `cargo xtask download`, or pass --data)", anyhow::Error::from(e))
    })?;
    let vocab = data.vocab();
    let split = Split::new(data.words(), SplitSpec::default())?;
    let mlp = MlpConfig {
        block_size: args.block_size as usize,
        n_embd: args.n_embd as usize,
        n_hidden: args.n_hidden as usize,
        init: if args.init == InitArg::Kaiming { Init::Kaiming } else { Init::Lecture },
    };
    let (name, block_size) = match args.model {
        ModelArg::Mlp => ("mlp", mlp.block_size),
        ModelArg::BigramNn => ("bigram-nn", 1),
    };
    let train = Examples::windows(&split.train, &vocab, block_size)?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/lr-sweep-{name}")));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let batch_size = (args.batch_size > 0).then_some(args.batch_size as usize);
    let stop = AtomicBool::new(false);
    match args.model {
        ModelArg::Mlp => {
            let new = |seed| Mlp::new(mlp, &vocab, &mut StdRng::seed_from_u64(seed));
            if args.grid {
                grid(new, &train, &split, &vocab, block_size, batch_size, args, &out, &stop)
            } else {
                sweep(new, &train, batch_size, args, &out, &stop)
            }
        }
        ModelArg::BigramNn => {
            let new = |seed| BigramNet::new(&vocab, args.reg, &mut StdRng::seed_from_u64(seed));
            if args.grid {
                grid(new, &train, &split, &vocab, block_size, batch_size, args, &out, &stop)
            } else {
                sweep(new, &train, batch_size, args, &out, &stop)
            }
        }
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

#[allow(clippy::too_many_arguments)]
fn grid<M: Model>(
    new_model: impl FnMut(u64) -> mm_models::Result<M>,
    train: &Examples,
    split: &Split,
    vocab: &mm_data::Vocab,
    block_size: usize,
    batch_size: Option<usize>,
    args: &Args,
    out: &Path,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let dev = Examples::windows(&split.dev, vocab, block_size)?;
    let spacing = SweepConfig {
        points: args.grid_points as usize,
        min_exp: args.min_exp,
        max_exp: args.max_exp,
        ..SweepConfig::default()
    };
    let rates: Vec<f32> = spacing.exponents().iter().map(|e| 10f32.powf(*e)).collect();
    let cfg =
        TrainConfig { steps: args.grid_steps as usize, batch_size, seed: args.seed, ..TrainConfig::mlp() };
    let pb = bar(args.grid_steps * args.grid_points, "grid");
    let points = lr_grid(new_model, train, &dev, &rates, &cfg, stop, |done| pb.set_position(done as u64))?;
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
