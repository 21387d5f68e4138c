//! `cargo xtask tune`: a search over a spec's settings by random search with successive halving
//! (Jamieson & Talwalkar 2016; one bracket of Hyperband), each trial a real training run.
//!
//! Why this method: a trial's dev loss after a few hundred steps already ranks most settings
//! (a bad rate or too much dropout shows early), so many random settings get a small budget and
//! only the best third of them (`--eta 3`) three times as much, rung after rung; on a CPU the
//! search costs about `rungs` times the budget of the first rung instead of `trials` full
//! runs. Random search rather than a grid, because only a few of the settings matter and a grid
//! spends its trials on the others (Bergstra & Bengio 2012).
//!
//! Every trial is trained to the same horizon: its spec's `steps` is the last rung's budget, so
//! a warmup and a cosine decay are those of the full run, and a trial promoted to the next rung
//! continues from its checkpoint (`trials/trial-NNN.safetensors`, with AdamW's moments), bit for
//! bit as if it had never stopped. Trials are chosen on the dev split only; the test split is
//! never read.
//!
//! Successive halving assumes that a trial's rank early says its rank late. Dropout breaks
//! that: it pays only late (on names.txt, dropout 0.3 is behind 0.2 until about 40,000 of
//! 50,000 steps; docs/tuning.md), so a search over such levers runs one rung at the full length
//! (`--rungs 1`: plain random search, Hyperband's last bracket), with `--eval-every` to keep
//! each trial's dev curve and `--include-base` to make the spec it starts from trial 0.
//!
//! Files in `--out`: `trials.csv` (a row per trial and rung: its spec, steps, cumulative
//! training seconds, last training loss, dev loss), read back on a rerun so that a stopped
//! search continues where it stopped (the trials' settings are drawn again from `--seed` and
//! checked against the file); `curves.csv` (with `--eval-every`: each trial's dev loss along
//! the way); `best.json`, the best spec, which `makemore train --spec` takes; `tune.png`, dev
//! loss against training time per trial.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use mm_data::{Examples, Split, SplitSpec};
use mm_models::checkpoint::CheckpointMeta;
use mm_models::{Progress, Spec, TrainConfig, evaluate, train_from};
use plotters::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

/// The levers of issue #14 and the Transformer's sizes, as `--space` takes them: each setting
/// either a list of choices or `{"log_uniform": [lo, hi]}` / `{"uniform": [lo, hi]}`.
const DEFAULT_SPACE: &str = r#"{
    "lr": {"log_uniform": [3e-4, 3e-3]},
    "dropout": [0.0, 0.1, 0.2, 0.3],
    "weight_decay": [0.01, 0.1],
    "decay_matrices_only": [false, true],
    "warmup": [0, 100],
    "lr_decay": ["constant", "cosine"],
    "min_lr": [1e-5, 1e-4],
    "grad_clip": [0.0, 1.0],
    "tie_weights": [false, true],
    "rotary": [false, true],
    "batch_size": [32, 64],
    "n_layer": [3, 4, 5],
    "n_embd": [64, 96]
}"#;

/// Search a spec's settings: random search with successive halving, each trial a training run
/// of the Transformer (or of the --base spec's kind), chosen by dev loss.
///
/// Writes <out>/trials.csv (resumable: run the same command again to continue), best.json (for
/// `makemore train --spec`) and tune.png (dev loss against training time per trial).
#[derive(clap::Args)]
pub struct Args {
    /// The spec the search starts from: a JSON file as `makemore models --json` prints [default:
    /// makemore's Transformer, block_size the data's longest word + 1].
    #[arg(long, value_name = "FILE")]
    base: Option<PathBuf>,

    /// The search space: a JSON file mapping settings of the spec to a list of choices or to
    /// {"log_uniform": [lo, hi]} or {"uniform": [lo, hi]} [default: the issue's levers, n_layer
    /// and n_embd].
    #[arg(long, value_name = "FILE")]
    space: Option<PathBuf>,

    /// The dataset, one item per line (`cargo xtask download` fetches the default).
    #[arg(long, value_name = "PATH", default_value = mm_data::DEFAULT_DATASET)]
    data: PathBuf,

    /// The directory for trials.csv, the trials' checkpoints, best.json and tune.png.
    #[arg(long, value_name = "DIR", default_value = "runs/tune")]
    out: PathBuf,

    /// Settings drawn for the first rung.
    #[arg(long, default_value_t = 27, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    trials: u64,

    /// Training steps of the first rung; each rung trains its trials --eta times as long.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    min_steps: u64,

    /// Rungs: the last trains its trials min_steps * eta^(rungs - 1) steps, the spec's steps.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=10))]
    rungs: u64,

    /// Each rung keeps the best 1/eta of the last one's trials.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(2..=100))]
    eta: u64,

    /// The seed of the settings drawn, and of every trial's weights and minibatches (the same
    /// for all trials, so that they differ by their settings only).
    #[arg(long, default_value_t = 42)]
    seed: u64,

    /// Trials trained at once [default: the machine's cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: Option<u64>,

    /// Each trial's steps cut into this many shards (`makemore train --shards`): with --jobs 1
    /// and --threads 2, one trial at a time over both cores. The shards fix the rounding, so a
    /// Transformer's trial specs (and best.json) hold them, and `makemore train --spec` repeats
    /// the best trial bit for bit; rerun a search with the same --shards to resume it
    /// [default: the base spec's, 1 if it has none].
    #[arg(long, value_parser = clap::value_parser!(u64).range(mm_models::limits::SHARDS))]
    shards: Option<u64>,

    /// Threads for each trial's shards (never more than --shards; they never change the
    /// results) [default: 1].
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    threads: u64,

    /// Make trial 0 the --base spec itself (at the search's steps and shards), the others drawn
    /// from the space: the search then says whether anything in the space beats where it
    /// started.
    #[arg(long)]
    include_base: bool,

    /// Measure each trial's dev loss every this many steps too (written to curves.csv and drawn
    /// in tune.png; the evaluations count in the trial's seconds); 0 for only at the end of
    /// each rung.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000_000))]
    eval_every: u64,
}

/// One row of trials.csv: a trial after a rung.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    trial: usize,
    rung: usize,
    steps: usize,
    /// Training seconds of the trial so far (its earlier rungs included; evaluation not).
    seconds: f64,
    train_loss: f64,
    dev_loss: f64,
    spec: String,
}

const HEADER: &str = "trial,rung,steps,seconds,train_loss,dev_loss,spec";

impl Row {
    fn to_csv(&self) -> String {
        format!(
            "{},{},{},{:.3},{:.6},{:.6},\"{}\"",
            self.trial,
            self.rung,
            self.steps,
            self.seconds,
            self.train_loss,
            self.dev_loss,
            self.spec.replace('"', "\"\"")
        )
    }

    fn parse(line: &str) -> Option<Row> {
        let mut f = line.splitn(7, ',');
        let mut next = || f.next();
        let (trial, rung, steps) = (next()?.parse().ok()?, next()?.parse().ok()?, next()?.parse().ok()?);
        let (seconds, train_loss, dev_loss) =
            (next()?.parse().ok()?, next()?.parse().ok()?, next()?.parse().ok()?);
        let spec = next()?.strip_prefix('"')?.strip_suffix('"')?.replace("\"\"", "\"");
        Some(Row { trial, rung, steps, seconds, train_loss, dev_loss, spec })
    }
}

/// The search space: each setting's choices or range.
enum Dim {
    Choices(Vec<Value>),
    LogUniform(f64, f64),
    Uniform(f64, f64),
}

fn parse_space(text: &str) -> anyhow::Result<Vec<(String, Dim)>> {
    let space: Map<String, Value> =
        serde_json::from_str(text).context("the search space is not a JSON object")?;
    let range = |key: &str, v: &Value| -> anyhow::Result<(f64, f64)> {
        match v.as_array().map(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<_>>>()) {
            Some(Some(r)) if r.len() == 2 && r[0].is_finite() && r[1].is_finite() && r[0] <= r[1] => {
                Ok((r[0], r[1]))
            }
            _ => bail!("space: {key}: the range must be [lo, hi] with lo <= hi, not {v}"),
        }
    };
    space
        .into_iter()
        .map(|(key, v)| {
            if key == "steps" {
                // Every trial's steps are the last rung's budget: a space cannot set them.
                bail!("space: steps are the last rung's budget (--min-steps × --eta^(--rungs - 1)), not a setting to search");
            }
            let dim = match &v {
                Value::Array(c) if !c.is_empty() => Dim::Choices(c.clone()),
                Value::Object(o) if o.len() == 1 && o.contains_key("log_uniform") => {
                    let (lo, hi) = range(&key, &o["log_uniform"])?;
                    if lo <= 0.0 {
                        bail!("space: {key}: a log-uniform range must be above 0");
                    }
                    Dim::LogUniform(lo, hi)
                }
                Value::Object(o) if o.len() == 1 && o.contains_key("uniform") => {
                    let (lo, hi) = range(&key, &o["uniform"])?;
                    Dim::Uniform(lo, hi)
                }
                _ => bail!(
                    "space: {key}: expected a list of choices, {{\"log_uniform\": [lo, hi]}} or \
                     {{\"uniform\": [lo, hi]}}, not {v}"
                ),
            };
            Ok((key, dim))
        })
        .collect()
}

/// Rounds a drawn number to 3 significant digits, so that specs read well.
fn round3(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(2 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// How every trial of a search is trained: its steps (the last rung's), its shards (for a kind
/// whose spec holds them), and whether trial 0 is the base spec itself.
#[derive(Clone, Copy)]
struct Trials {
    n: usize,
    steps: usize,
    shards: Option<usize>,
    include_base: bool,
}

/// `t.n` specs drawn from `space` on top of `base`, each at `t.steps` and `t.shards` (the first
/// the base itself with `t.include_base`). A draw that makes no valid model (e.g. n_embd not a
/// multiple of n_head) is drawn again.
fn draw(base: &Spec, space: &[(String, Dim)], t: Trials, seed: u64) -> anyhow::Result<Vec<Spec>> {
    let has_shards = base.levers().iter().any(|(k, _)| k == "shards");
    let Value::Object(base) = serde_json::to_value(base)? else { bail!("a spec is a JSON object") };
    let training = |mut fields: Map<String, Value>| -> anyhow::Result<Spec> {
        fields.insert("steps".into(), Value::from(t.steps));
        if let (Some(shards), true) = (t.shards, has_shards) {
            fields.insert("shards".into(), Value::from(shards));
        }
        serde_json::from_value(Value::Object(fields))
            .context("the search space names a setting the spec does not have, or a value of the wrong type")
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let vocab = mm_data::Vocab::from_words(&["abcdefghijklmnopqrstuvwxyz"]);
    let (n, mut out) = (t.n, Vec::with_capacity(t.n));
    if t.include_base {
        out.push(training(base.clone())?);
    }
    while out.len() < n {
        let mut tries = 0;
        let spec = loop {
            tries += 1;
            let mut fields = base.clone();
            for (key, dim) in space {
                let v = match dim {
                    Dim::Choices(c) => c[rng.random_range(0..c.len())].clone(),
                    Dim::LogUniform(lo, hi) => {
                        Value::from(round3((lo.ln() + rng.random::<f64>() * (hi / lo).ln()).exp()))
                    }
                    Dim::Uniform(lo, hi) => Value::from(round3(lo + rng.random::<f64>() * (hi - lo))),
                };
                fields.insert(key.clone(), v);
            }
            let spec = training(fields)?;
            // The flags' ranges first (what `makemore train --spec` checks), then the sizes on a
            // tiny vocabulary: building allocates the model, small at these sizes.
            let why = match (spec.check_limits(), spec.train_config().check_limits()) {
                (Err(e), _) | (_, Err(e)) => Some(e.to_string()),
                _ if spec.num_params(vocab.len()) >= 1 << 28 => Some("more than 2^28 parameters".into()),
                _ => spec.build(&vocab, &mut StdRng::seed_from_u64(0)).err().map(|e| e.to_string()),
            };
            let Some(why) = why else { break spec };
            if tries >= 100 {
                bail!(
                    "100 draws from the search space made no valid model, the last because {why}: {spec:?}"
                );
            }
        };
        out.push(spec);
    }
    Ok(out)
}

/// The result of training one trial to one rung's budget.
struct Done {
    row: Row,
    /// The dev loss along the way (`--eval-every`): (steps, seconds, dev loss).
    curve: Vec<(usize, f64, f64)>,
}

const CURVES_HEADER: &str = "trial,steps,seconds,dev_loss";

/// Trains trial `trial` (`spec`) to `steps`, from its checkpoint at `from` steps if there is one
/// (else from scratch), saves its checkpoint, and measures its dev loss.
#[allow(clippy::too_many_arguments)]
fn run_trial(
    trial: usize,
    rung: usize,
    spec: &Spec,
    steps: usize,
    before: Option<&Row>,
    dir: &Path,
    data: &Data,
    args: &Args,
    pb: &ProgressBar,
) -> anyhow::Result<Done> {
    let seed = args.seed;
    let ckpt = dir.join(format!("trial-{trial:03}.safetensors"));
    let resumed = match before {
        Some(row) if ckpt.is_file() => {
            let (model, meta) = mm_models::checkpoint::load_with(
                &ckpt,
                mm_models::checkpoint::LoadOptions { allow_non_finite: true },
            )?;
            (meta.step as usize == row.steps).then_some((model, meta, row.seconds))
        }
        _ => None,
    };
    let (mut model, progress, seconds_before) = match resumed {
        Some((model, meta, secs)) => (model, Progress { step: meta.step as usize, adamw: meta.adamw }, secs),
        // No checkpoint at the last rung's step: train from scratch (the same bits: a run continued
        // from a save is one run).
        None => (spec.build(&data.vocab, &mut StdRng::seed_from_u64(seed))?, Progress::default(), 0.0),
    };
    // The bar counts each rung's new steps once, also when a trial is trained again from scratch.
    let counted = before.map_or(0, |r| r.steps);
    let base = spec.train_config();
    // A Transformer's spec holds its shards (drawn with them); another kind takes --shards.
    let shards = args.shards.map_or(base.shards, |s| s as usize);
    let (threads, eval_every) = (args.threads as usize, args.eval_every as usize);
    let cfg = TrainConfig { steps, eval_every, seed, shards, threads, ..base };
    let m = model.neural_mut().context("the search trains neural models")?;
    let stop = AtomicBool::new(false);
    let mut recent = VecDeque::with_capacity(50);
    let mut curve = Vec::new();
    let start = Instant::now();
    let dev = (eval_every > 0).then_some(&data.dev);
    let report = train_from(m, &data.train, dev, &cfg, &progress, &stop, |s| {
        if recent.len() == 50 {
            recent.pop_front();
        }
        recent.push_back(f64::from(s.loss));
        if s.step >= counted {
            pb.inc(1);
        }
        // The loop also evaluates after the last step, which the rung's row measures in f64.
        if let Some(d) = s.dev_loss.filter(|_| s.step + 1 < steps) {
            curve.push((s.step + 1, seconds_before + s.elapsed.as_secs_f64(), f64::from(d)));
        }
    })?;
    let seconds = seconds_before + start.elapsed().as_secs_f64();
    let dev = evaluate(m, &data.dev)?;
    let dev_loss = if dev.is_finite() { dev } else { f64::INFINITY };
    let meta = CheckpointMeta {
        step: steps as u64,
        seed,
        dataset_sha256: String::new(),
        adamw: report.progress.adamw,
        alpha: None,
    };
    mm_models::checkpoint::save(&ckpt, &model, &meta)?;
    let train_loss = recent.iter().sum::<f64>() / recent.len().max(1) as f64;
    let spec = serde_json::to_string(spec)?;
    Ok(Done { row: Row { trial, rung, steps, seconds, train_loss, dev_loss, spec }, curve })
}

/// The data every trial reads.
struct Data {
    vocab: mm_data::Vocab,
    train: Examples,
    dev: Examples,
}

/// The trials of rung `rung`: all of them for the first, else the best `1/eta` of the last
/// rung's by dev loss (ties to the earlier trial).
fn promoted(rows: &BTreeMap<(usize, usize), Row>, rung: usize, trials: usize, eta: usize) -> Vec<usize> {
    if rung == 0 {
        return (0..trials).collect();
    }
    let mut last: Vec<&Row> = rows.values().filter(|r| r.rung == rung - 1).collect();
    let n = promoted(rows, rung - 1, trials, eta).len().div_ceil(eta);
    last.sort_by(|a, b| a.dev_loss.total_cmp(&b.dev_loss).then(a.trial.cmp(&b.trial)));
    let mut keep: Vec<usize> = last.iter().take(n).map(|r| r.trial).collect();
    keep.sort_unstable();
    keep
}

/// Runs the search.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let (dataset, data_path) = crate::dataset(&args.data)?;
    let vocab = dataset.vocab();
    let split = Split::new(dataset.words(), SplitSpec::default())?;
    let base = match &args.base {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let spec: Spec = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a model spec", path.display()))?;
            // The ranges of `makemore train`'s flags, before anything is sized by them.
            let checked = spec.check_limits().and_then(|()| spec.train_config().check_limits());
            checked.map_err(|e| {
                anyhow::anyhow!("{}: {e} (the range of its flag): correct the file", path.display())
            })?;
            spec
        }
        None => {
            let spec = Spec::default_of("transformer").context("the registry has a transformer")?;
            let spec = spec.with_block_size(dataset.stats().max_len + 1);
            spec.check_limits().map_err(|e| {
                anyhow::anyhow!(
                    "{e}: the block_size of the default base is the longest line of {} + 1",
                    data_path.display()
                )
            })?;
            spec
        }
    };
    // A trial is compared by its dev loss, and trains on the training split.
    if split.train.is_empty() || split.dev.is_empty() {
        let (a, b, c) = (split.train.len(), split.dev.len(), split.test.len());
        bail!(
            "{}: {} words split {a} / {b} / {c} (80/10/10), and tune needs words in the training and dev splits: use a larger dataset",
            data_path.display(),
            a + b + c
        );
    }
    let space_text = match &args.space {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => DEFAULT_SPACE.to_string(),
    };
    let space = parse_space(&space_text)?;
    let (trials, eta, rungs) = (args.trials as usize, args.eta as usize, args.rungs as usize);
    let budget = |r: usize| (args.min_steps as usize).saturating_mul(eta.saturating_pow(r as u32));
    let horizon = budget(rungs - 1);
    mm_models::limits::check_size("steps", horizon as u64, &mm_models::limits::STEPS).map_err(|e| {
        anyhow::anyhow!(
            "the last rung's budget, --min-steps × --eta^(--rungs - 1): {e}; choose fewer or smaller"
        )
    })?;
    let shards = args.shards.map(|s| s as usize);
    let plan = Trials { n: trials, steps: horizon, shards, include_base: args.include_base };
    let specs = draw(&base, &space, plan, args.seed)?;
    let (layout, block_size) = (base.layout(), base.block_size());
    let data = Data {
        train: Examples::new(&split.train, &vocab, layout, block_size)?,
        dev: Examples::new(&split.dev, &vocab, layout, block_size)?,
        vocab,
    };

    let out = &args.out;
    let dir = out.join("trials");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let csv = out.join("trials.csv");
    let mut rows: BTreeMap<(usize, usize), Row> = BTreeMap::new();
    if csv.is_file() {
        let text = std::fs::read_to_string(&csv).with_context(|| format!("cannot read {}", csv.display()))?;
        for (i, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            let row = Row::parse(line)
                .with_context(|| format!("{}: line {} is not a trial", csv.display(), i + 1))?;
            let ours = specs.get(row.trial).map(serde_json::to_string).transpose()?;
            if ours.as_deref() != Some(row.spec.as_str())
                || row.rung >= rungs
                || row.steps != budget(row.rung)
            {
                bail!(
                    "{} was written by a search with other settings (trial {} rung {}): pass the same flags, \
                     or another --out",
                    csv.display(),
                    row.trial,
                    row.rung
                );
            }
            rows.insert((row.trial, row.rung), row);
        }
        if !rows.is_empty() {
            println!("{}: continuing from {} finished trial rungs", csv.display(), rows.len());
        }
    } else {
        std::fs::write(&csv, format!("{HEADER}\n"))
            .with_context(|| format!("cannot write {}", csv.display()))?;
    }
    // The dev curves of the finished trial rungs (a trial trained again from scratch writes its
    // points again, with the same values: the last line of a point wins).
    let curves_csv = out.join("curves.csv");
    let mut curves: BTreeMap<(usize, usize), (f64, f64)> = BTreeMap::new();
    if curves_csv.is_file() {
        let text = std::fs::read_to_string(&curves_csv)
            .with_context(|| format!("cannot read {}", curves_csv.display()))?;
        for (i, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split(',').collect();
            let point = match f[..] {
                [t, s, secs, d] => {
                    (|| Some((t.parse().ok()?, s.parse().ok()?, secs.parse().ok()?, d.parse().ok()?)))()
                }
                _ => None,
            };
            let (t, s, secs, d) = point.with_context(|| {
                format!("{}: line {} is not a point of a curve", curves_csv.display(), i + 1)
            })?;
            curves.insert((t, s), (secs, d));
        }
    } else {
        std::fs::write(&curves_csv, format!("{CURVES_HEADER}\n"))
            .with_context(|| format!("cannot write {}", curves_csv.display()))?;
    }
    let mut curves_file = std::fs::OpenOptions::new().append(true).open(&curves_csv)?;

    let jobs =
        args.jobs.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |j| j as usize);
    let total: u64 = (0..rungs)
        .map(|r| {
            promoted_count(trials, eta, r) as u64
                * (budget(r) - if r == 0 { 0 } else { budget(r - 1) }) as u64
        })
        .sum();
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps, {per_sec}, eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let done_steps: u64 =
        rows.values().map(|r| (r.steps - if r.rung == 0 { 0 } else { budget(r.rung - 1) }) as u64).sum();
    pb.set_position(done_steps);
    println!(
        "tune: {trials} trials, rungs of {} steps, keeping 1/{eta} each rung, {jobs} at once; {}",
        (0..rungs).map(|r| budget(r).to_string()).collect::<Vec<_>>().join(" / "),
        csv.display()
    );
    let mut file = std::fs::OpenOptions::new().append(true).open(&csv)?;
    for rung in 0..rungs {
        let todo: Vec<usize> = promoted(&rows, rung, trials, eta)
            .into_iter()
            .filter(|t| !rows.contains_key(&(*t, rung)))
            .collect();
        let queue = Mutex::new(todo.into_iter().collect::<VecDeque<usize>>());
        let (tx, rx) = std::sync::mpsc::channel::<anyhow::Result<Done>>();
        let best_so_far = rows.values().map(|r| r.dev_loss).fold(f64::INFINITY, f64::min);
        pb.set_message(format!("rung {}/{rungs}, best dev {best_so_far:.4}", rung + 1));
        let before: BTreeMap<usize, Row> =
            rows.values().filter(|r| rung > 0 && r.rung == rung - 1).map(|r| (r.trial, r.clone())).collect();
        std::thread::scope(|s| -> anyhow::Result<()> {
            for _ in 0..jobs {
                let tx = tx.clone();
                let (queue, specs, before, dir, data, pb) = (&queue, &specs, &before, &dir, &data, &pb);
                s.spawn(move || {
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                        let Some(t) = next else { break };
                        let done =
                            run_trial(t, rung, &specs[t], budget(rung), before.get(&t), dir, data, args, pb);
                        let failed = done.is_err();
                        if tx.send(done).is_err() || failed {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for done in rx {
                let Done { row, curve } = done?;
                // The curve first: a row in trials.csv says its trial rung is finished.
                for &(steps, secs, dev) in &curve {
                    writeln!(curves_file, "{},{steps},{secs:.3},{dev:.6}", row.trial)?;
                    curves.insert((row.trial, steps), (secs, dev));
                }
                curves_file.flush()?;
                writeln!(file, "{}", row.to_csv())?;
                file.flush()?;
                pb.suspend(|| {
                    println!(
                        "trial {:>3} rung {}: {:>6} steps {:>8.1} s  train {:.4}  dev {:.4}  {}",
                        row.trial, rung, row.steps, row.seconds, row.train_loss, row.dev_loss, row.spec
                    )
                });
                rows.insert((row.trial, rung), row);
                let best = rows.values().map(|r| r.dev_loss).fold(f64::INFINITY, f64::min);
                pb.set_message(format!("rung {}/{rungs}, best dev {best:.4}", rung + 1));
            }
            Ok(())
        })?;
    }
    pb.finish_and_clear();

    // The best: the lowest dev loss of the last rung (the longest runs).
    let last = rows.values().filter(|r| r.rung == rungs - 1).min_by(|a, b| a.dev_loss.total_cmp(&b.dev_loss));
    let best = last.context("no trial reached the last rung")?;
    let spec: Spec = serde_json::from_str(&best.spec)?;
    let best_path = out.join("best.json");
    std::fs::write(&best_path, format!("{}\n", serde_json::to_string_pretty(&spec)?))
        .with_context(|| format!("cannot write {}", best_path.display()))?;
    let picture = out.join("tune.png");
    draw_picture(&rows, &curves, best.trial, &picture)?;
    println!(
        "best: trial {} at {} steps, dev {:.4} (train {:.4}, {:.1} s)\nwrote {}, {}; train it with \
         `makemore train --spec {}`",
        best.trial,
        best.steps,
        best.dev_loss,
        best.train_loss,
        best.seconds,
        best_path.display(),
        picture.display(),
        best_path.display()
    );
    Ok(())
}

/// How many trials rung `r` trains.
fn promoted_count(trials: usize, eta: usize, r: usize) -> usize {
    (0..r).fold(trials, |n, _| n.div_ceil(eta))
}

/// DejaVu Sans (Bitstream Vera license, crates/mm-cli/assets/DejaVuSans-LICENSE.txt): text
/// renders on a machine without system fonts.
static FONT: &[u8] = include_bytes!("../../crates/mm-cli/assets/DejaVuSans.ttf");

/// Dev loss against training seconds, a line per trial through its rungs (and its curve's
/// points, with `--eval-every`), the best in red.
fn draw_picture(
    rows: &BTreeMap<(usize, usize), Row>,
    curves: &BTreeMap<(usize, usize), (f64, f64)>,
    best: usize,
    path: &Path,
) -> anyhow::Result<()> {
    plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT)
        .map_err(|_| anyhow::anyhow!("the embedded font is invalid"))?;
    let mut lines: BTreeMap<usize, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows.values().filter(|r| r.dev_loss.is_finite()) {
        lines.entry(r.trial).or_default().push((r.seconds, r.dev_loss));
    }
    for (&(trial, _), &(secs, dev)) in curves.iter().filter(|(_, p)| p.1.is_finite()) {
        lines.entry(trial).or_default().push((secs, dev));
    }
    for line in lines.values_mut() {
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let points = || lines.values().flatten();
    let (x_max, lo, hi) = points().fold((1e-3f64, f64::INFINITY, f64::NEG_INFINITY), |(x, lo, hi), p| {
        (x.max(p.0), lo.min(p.1), hi.max(p.1))
    });
    let (lo, hi) = if lo.is_finite() { (lo, hi.max(lo + 1e-3)) } else { (0.0, 1.0) };
    let pad = (hi - lo) * 0.05;
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("tuning: dev loss against training time, one line per trial", ("sans-serif", 22))
            .margin(12)
            .margin_right(30)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max * 1.05, (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .x_desc("training seconds")
            .y_desc("dev loss")
            .y_label_formatter(&|y| format!("{y:.3}"))
            .draw()?;
        let grey = RGBColor(150, 150, 150);
        for (trial, line) in &lines {
            let colour = if *trial == best { RED } else { grey };
            chart.draw_series(LineSeries::new(
                line.clone(),
                colour.stroke_width(if *trial == best { 3 } else { 1 }),
            ))?;
            chart.draw_series(line.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_the_csv() {
        let row = Row {
            trial: 3,
            rung: 1,
            steps: 1500,
            seconds: 12.5,
            train_loss: 2.1,
            dev_loss: 2.2,
            spec: r#"{"kind":"transformer","block_size":16,"lr_decay":"cosine"}"#.into(),
        };
        assert_eq!(Row::parse(&row.to_csv()), Some(row));
    }

    #[test]
    fn each_rung_keeps_the_best_third() {
        let row = |trial, rung, dev_loss| Row {
            trial,
            rung,
            steps: 1,
            seconds: 0.0,
            train_loss: 0.0,
            dev_loss,
            spec: String::new(),
        };
        let losses = [2.5, 2.1, f64::INFINITY, 2.3, 2.0, 2.4, 2.2];
        let rows: BTreeMap<_, _> = losses.iter().enumerate().map(|(t, &d)| ((t, 0), row(t, 0, d))).collect();
        assert_eq!(promoted(&rows, 0, 7, 3), [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(promoted(&rows, 1, 7, 3), [1, 4, 6]);
        assert_eq!(promoted_count(7, 3, 1), 3);
        assert_eq!(promoted_count(7, 3, 2), 1);
    }

    #[test]
    fn draws_are_seeded_and_inside_the_space() {
        let base = Spec::default_of("transformer").unwrap();
        let space = parse_space(DEFAULT_SPACE).unwrap();
        let plan = Trials { n: 5, steps: 900, shards: None, include_base: false };
        let a = draw(&base, &space, plan, 1).unwrap();
        assert_eq!(a, draw(&base, &space, plan, 1).unwrap());
        assert_ne!(a, draw(&base, &space, plan, 2).unwrap());
        for s in &a {
            let lr: f64 = s.setting("lr").unwrap().parse().unwrap();
            assert!((3e-4..=3e-3).contains(&lr), "{lr}");
            assert_eq!(s.setting("steps").as_deref(), Some("900"));
        }
        assert!(parse_space(r#"{"lr": {"log_uniform": [0, 1]}}"#).is_err());
        assert!(parse_space(r#"{"lr": []}"#).is_err());
        let steps = parse_space(r#"{"steps": [100, 200]}"#).err().map(|e| e.to_string());
        assert!(steps.is_some_and(|e| e.contains("last rung's budget")));
        let one = Trials { n: 1, steps: 10, shards: None, include_base: false };
        assert!(draw(&base, &parse_space(r#"{"n_hidden": [3]}"#).unwrap(), one, 1).is_err());
        // The base as trial 0, the others drawn as without it; every trial at the shards.
        let with_base = Trials { include_base: true, shards: Some(2), ..plan };
        let b = draw(&base, &space, with_base, 1).unwrap();
        let at = |s: &Spec, k: &str| s.setting(k).unwrap();
        assert_eq!(
            b[0],
            serde_json::from_value(serde_json::json!({"kind": "transformer",
            "block_size": at(&base, "block_size").parse::<u64>().unwrap(), "n_layer": 4, "n_head": 4,
            "n_embd": 64, "steps": 900, "shards": 2}))
            .unwrap()
        );
        assert_eq!(b.len(), 5);
        for (x, y) in b[1..].iter().zip(&a) {
            assert_eq!(
                (at(x, "lr"), at(x, "dropout"), at(x, "shards")),
                (at(y, "lr"), at(y, "dropout"), "2".into())
            );
        }
    }
}
