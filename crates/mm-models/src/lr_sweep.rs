//! Finding the learning rate. The lecture's sweep: a fresh model takes one step at each of many
//! rates, spaced evenly in exponent and increasing, and the loss is recorded at each; here it is
//! also smoothed, repeated over seeds and averaged, and read by a stated rule. [`lr_grid`] is the
//! slower, more reliable alternative: short runs at a few fixed rates, compared on the dev set.

use std::io::{BufRead, Write};
use std::sync::atomic::AtomicBool;

use mm_data::Examples;

use crate::{Model, ModelError, Result, Schedule, TrainConfig, evaluate, train};

/// How to sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepConfig {
    /// Rates (and steps) per repeat: the lecture's 1,000.
    pub points: usize,
    /// The first rate is `10^min_exp` (the lecture's -3).
    pub min_exp: f32,
    /// The last rate is `10^max_exp` (the lecture's 0).
    pub max_exp: f32,
    /// Fresh models, each with its own seed, whose curves are averaged.
    pub repeats: usize,
    /// The factor `beta` of the exponential moving average that [`smooth`]s each curve
    /// (`avg = beta * avg + (1 - beta) * loss`, bias-corrected, forwards then backwards); 0 for
    /// none.
    pub smoothing: f32,
    /// Examples per step (`None`: the whole training set).
    pub batch_size: Option<usize>,
    /// The seed of the first repeat; repeat `r` uses `seed + r` for its model and its batches.
    pub seed: u64,
    /// How the model trains apart from the rate: its optimizer (the lectures' SGD, or AdamW for
    /// makemore.py's kinds: the registry's [`crate::Spec::train_config`]). Its steps, schedule,
    /// batch size, evaluation and seed are the sweep's.
    pub base: TrainConfig,
}

impl Default for SweepConfig {
    /// The lecture's sweep (1,000 rates from 0.001 to 1, batches of 32), repeated 3 times and
    /// smoothed with `beta` 0.98.
    fn default() -> Self {
        SweepConfig {
            points: 1000,
            min_exp: -3.0,
            max_exp: 0.0,
            repeats: 3,
            smoothing: 0.98,
            batch_size: Some(32),
            seed: 42,
            base: TrainConfig::mlp(),
        }
    }
}

impl SweepConfig {
    /// The exponents: `points` values from `min_exp` to `max_exp`, evenly spaced.
    pub fn exponents(&self) -> Vec<f32> {
        let n = self.points;
        (0..n)
            .map(|i| {
                let t = if n > 1 { i as f32 / (n - 1) as f32 } else { 0.0 };
                self.min_exp + t * (self.max_exp - self.min_exp)
            })
            .collect()
    }

    fn check(&self) -> Result<()> {
        let bad = |msg: String| Err(ModelError::Config(msg));
        if self.points < 2 {
            return bad(format!("a sweep needs at least 2 points (got {})", self.points));
        }
        if self.repeats == 0 {
            return bad("a sweep needs at least 1 repeat".into());
        }
        if !(self.min_exp.is_finite() && self.max_exp.is_finite() && self.min_exp < self.max_exp) {
            return bad(format!(
                "the exponents must be finite with min < max (got {} and {})",
                self.min_exp, self.max_exp
            ));
        }
        if !(0.0..1.0).contains(&self.smoothing) {
            return bad(format!("smoothing must be in [0, 1) (got {})", self.smoothing));
        }
        Ok(())
    }
}

/// One repeat of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRun {
    /// The seed of its model and batches.
    pub seed: u64,
    /// The minibatch loss at each rate (before that rate's update).
    pub loss: Vec<f32>,
    /// `loss` smoothed by [`smooth`] (an exponential moving average, forwards and backwards).
    pub smoothed: Vec<f32>,
}

/// A sweep's outcome: the loss at each exponent, per repeat, and the mean of the smoothed curves.
#[derive(Clone, Debug, PartialEq)]
pub struct LrSweep {
    /// The exponents (the rates are `10^exp`).
    pub exps: Vec<f32>,
    /// One curve per repeat.
    pub runs: Vec<SweepRun>,
    /// The mean over repeats of the smoothed curves: the curve the suggestion reads.
    pub mean: Vec<f32>,
}

/// A suggested learning rate and the rule that chose it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Suggestion {
    /// The exponent.
    pub exp: f32,
    /// The rate, `10^exp`.
    pub lr: f32,
    /// The rule, in words.
    pub rule: &'static str,
    /// The curve was lowest at the sweep's last rate: the loss was still falling, so the
    /// minimum (and the suggestion) may lie higher; sweep a wider range.
    pub at_edge: bool,
}

/// The suggestion rule, in words.
pub const SUGGESTION_RULE: &str = "half a decade below the minimum of the mean smoothed loss";

/// The exponential moving average of `xs` with factor `beta`, bias-corrected (so the first values
/// are not pulled towards 0). Non-finite values (a diverged loss) stay non-finite from there on.
///
/// ```
/// let s = mm_models::ema(&[4.0, 2.0, 2.0], 0.5);
/// assert_eq!(s[0], 4.0); // bias-corrected: not 2.0
/// assert!((s[2] - (0.5 * 2.0 + 0.25 * 2.0 + 0.125 * 4.0) / 0.875).abs() < 1e-6);
/// ```
pub fn ema(xs: &[f32], beta: f32) -> Vec<f32> {
    let (beta, mut avg, mut weight) = (f64::from(beta), 0.0f64, 1.0f64);
    xs.iter()
        .map(|&x| {
            avg = beta * avg + (1.0 - beta) * f64::from(x);
            weight *= beta;
            (avg / (1.0 - weight)) as f32
        })
        .collect()
}

/// The sweep's smoothing: [`ema`] forwards, then backwards over the result. A one-way average
/// lags (with `beta` 0.98 by about 50 points, 0.15 of a decade in the default sweep), which
/// would move the curve's minimum to higher rates; the two passes cancel the lag. From the first
/// non-finite loss on (training diverged) the result is NaN, so the backward pass cannot carry
/// the divergence into the rates before it.
///
/// ```
/// // A straight line stays where it is (up to the ends' bias correction).
/// let line: Vec<f32> = (0..200).map(|i| i as f32).collect();
/// let s = mm_models::lr_sweep::smooth(&line, 0.9);
/// assert!((s[100] - 100.0).abs() < 0.01);
/// ```
pub fn smooth(xs: &[f32], beta: f32) -> Vec<f32> {
    let finite = xs.iter().position(|x| !x.is_finite()).unwrap_or(xs.len());
    let mut back: Vec<f32> = ema(&xs[..finite], beta).into_iter().rev().collect();
    back = ema(&back, beta);
    back.reverse();
    back.resize(xs.len(), f32::NAN);
    back
}

impl LrSweep {
    /// Builds a sweep from its exponents and raw losses per repeat, smoothing each with `beta`.
    pub fn from_losses(exps: Vec<f32>, runs: Vec<(u64, Vec<f32>)>, beta: f32) -> Result<LrSweep> {
        if runs.is_empty() || runs.iter().any(|r| r.1.len() != exps.len()) {
            return Err(ModelError::Config("every repeat needs one loss per exponent".into()));
        }
        let runs: Vec<SweepRun> = runs
            .into_iter()
            .map(|(seed, loss)| SweepRun { seed, smoothed: smooth(&loss, beta), loss })
            .collect();
        let mean = (0..exps.len())
            .map(|i| runs.iter().map(|r| r.smoothed[i]).sum::<f32>() / runs.len() as f32)
            .collect();
        Ok(LrSweep { exps, runs, mean })
    }

    /// The rate at point `i`.
    pub fn lr(&self, i: usize) -> f32 {
        10f32.powf(self.exps[i])
    }

    /// The index of the lowest point of the mean smoothed curve (non-finite values never count).
    pub fn argmin(&self) -> Option<usize> {
        (0..self.mean.len())
            .filter(|&i| self.mean[i].is_finite())
            .min_by(|&a, &b| self.mean[a].total_cmp(&self.mean[b]))
    }

    /// The suggested rate by [`SUGGESTION_RULE`]: the minimum of the mean smoothed curve is
    /// where the steps start to do more harm than good (beyond it the loss climbs and training
    /// turns unstable), so back off from it by half a decade (a factor of √10), the same idea as
    /// the common "a tenth of the rate at the minimum" but less timid; never below the sweep's
    /// first rate. `None` when the curve is lowest at the first rate (it never fell).
    ///
    /// On names.txt this agrees with [`lr_grid`]: the lecture's MLP gets about 0.058, and short
    /// runs at fixed rates do best between 0.03 and 0.1 (docs/lr-sweep.md).
    pub fn suggest(&self) -> Option<Suggestion> {
        let i = self.argmin().filter(|&i| i > 0)?;
        let exp = (self.exps[i] - 0.5).max(self.exps[0]);
        let at_edge = i + 1 == self.exps.len();
        Some(Suggestion { exp, lr: 10f32.powf(exp), rule: SUGGESTION_RULE, at_edge })
    }

    /// Writes the sweep as CSV: `exp,lr,loss_0,smoothed_0,...,mean_smoothed`, one line per rate,
    /// after a header that names the repeats' seeds (`loss_seed42`).
    pub fn write_csv(&self, mut w: impl Write) -> std::io::Result<()> {
        let mut header = String::from("exp,lr");
        for r in &self.runs {
            header += &format!(",loss_seed{0},smoothed_seed{0}", r.seed);
        }
        writeln!(w, "{header},mean_smoothed")?;
        for i in 0..self.exps.len() {
            write!(w, "{},{}", self.exps[i], self.lr(i))?;
            for r in &self.runs {
                write!(w, ",{},{}", r.loss[i], r.smoothed[i])?;
            }
            writeln!(w, ",{}", self.mean[i])?;
        }
        Ok(())
    }

    /// Reads what [`LrSweep::write_csv`] wrote.
    pub fn read_csv(r: impl BufRead) -> Result<LrSweep> {
        let format = |line: usize, what: &str| {
            ModelError::Format(format!("line {line}: {what} (expected a sweep.csv of `xtask lr-sweep`)"))
        };
        let mut lines = r.lines();
        let header =
            lines.next().ok_or_else(|| format(1, "empty file"))?.map_err(|e| format(1, &e.to_string()))?;
        let cols: Vec<&str> = header.trim_end().split(',').collect();
        let repeats = (cols.len().saturating_sub(3)) / 2;
        let seeds: Option<Vec<u64>> =
            (0..repeats).map(|k| cols[2 + 2 * k].strip_prefix("loss_seed")?.parse().ok()).collect();
        let seeds = match seeds {
            Some(s) if repeats > 0 && cols.len() == 3 + 2 * repeats && cols[..2] == ["exp", "lr"] => s,
            _ => {
                return Err(format(
                    1,
                    "the header is not exp,lr,loss_seedN,smoothed_seedN,...,mean_smoothed",
                ));
            }
        };
        let mut exps = Vec::new();
        let mut runs = vec![(Vec::new(), Vec::new()); repeats];
        let mut mean = Vec::new();
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            let line = line.map_err(|e| format(n, &e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let v: Vec<f32> = line
                .trim_end()
                .split(',')
                .map(str::parse)
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| format(n, "a value is not a number"))?;
            if v.len() != cols.len() {
                return Err(format(n, &format!("{} values for {} columns", v.len(), cols.len())));
            }
            exps.push(v[0]);
            for (k, run) in runs.iter_mut().enumerate() {
                run.0.push(v[2 + 2 * k]);
                run.1.push(v[3 + 2 * k]);
            }
            mean.push(v[v.len() - 1]);
        }
        if exps.len() < 2 {
            return Err(format(exps.len() + 1, "fewer than 2 rates"));
        }
        let runs = seeds
            .into_iter()
            .zip(runs)
            .map(|(seed, (loss, smoothed))| SweepRun { seed, loss, smoothed })
            .collect();
        Ok(LrSweep { exps, runs, mean })
    }
}

/// The lecture's sweep: for each repeat `r`, `new_model(seed + r)` is trained for `points` steps,
/// step `i` at rate `10^exps[i]`, its batches drawn with the same seed. `observe` is called after
/// every step with the number of steps done over all repeats. `stop` ends the sweep early with
/// [`ModelError::Stopped`] (a partial sweep would mislead).
pub fn lr_sweep<M: Model>(
    mut new_model: impl FnMut(u64) -> Result<M>,
    examples: &Examples,
    cfg: &SweepConfig,
    stop: &AtomicBool,
    mut observe: impl FnMut(usize),
) -> Result<LrSweep> {
    cfg.check()?;
    let exps = cfg.exponents();
    let schedule = Schedule::Piecewise(exps.iter().enumerate().map(|(i, e)| (i, 10f32.powf(*e))).collect());
    let mut runs = Vec::with_capacity(cfg.repeats);
    for r in 0..cfg.repeats {
        let seed = cfg.seed.wrapping_add(r as u64);
        let mut model = new_model(seed)?;
        let tc = TrainConfig {
            steps: cfg.points,
            batch_size: cfg.batch_size,
            schedule: schedule.clone(),
            eval_every: 0,
            seed,
            ..cfg.base.clone()
        };
        let mut loss = Vec::with_capacity(cfg.points);
        let report = train(&mut model, examples, None, &tc, stop, |m| {
            loss.push(m.loss);
            observe(r * cfg.points + m.step + 1);
        })?;
        if report.stopped {
            return Err(ModelError::Stopped("the sweep"));
        }
        runs.push((seed, loss));
    }
    LrSweep::from_losses(exps, runs, cfg.smoothing)
}

/// One rate of [`lr_grid`] and where its short run ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GridPoint {
    /// The rate.
    pub lr: f32,
    /// The mean minibatch loss over the run's last tenth of steps.
    pub train_loss: f32,
    /// The loss over the whole dev set after the run.
    pub dev_loss: f64,
}

/// Short runs of `cfg` (its steps and batch size; the schedule is replaced by each rate in turn),
/// each from `new_model(cfg.seed)`: the same initial weights and the same batches for every rate,
/// so the comparison is paired. Returns the dev loss at each rate; `observe` is called after every
/// step with the number of steps done over all rates. `stop` ends it with [`ModelError::Stopped`].
pub fn lr_grid<M: Model>(
    mut new_model: impl FnMut(u64) -> Result<M>,
    train_examples: &Examples,
    dev: &Examples,
    rates: &[f32],
    cfg: &TrainConfig,
    stop: &AtomicBool,
    mut observe: impl FnMut(usize),
) -> Result<Vec<GridPoint>> {
    if rates.is_empty() || cfg.steps == 0 {
        return Err(ModelError::Config("a grid needs at least one rate and one step".into()));
    }
    let mut out = Vec::with_capacity(rates.len());
    for (k, &lr) in rates.iter().enumerate() {
        let mut model = new_model(cfg.seed)?;
        let tc = TrainConfig { schedule: Schedule::Constant(lr), eval_every: 0, ..cfg.clone() };
        let tail = (cfg.steps / 10).max(1);
        let (mut sum, mut count) = (0.0f64, 0usize);
        let report = train(&mut model, train_examples, None, &tc, stop, |m| {
            if m.step + tail >= cfg.steps {
                sum += f64::from(m.loss);
                count += 1;
            }
            observe(k * cfg.steps + m.step + 1);
        })?;
        if report.stopped {
            return Err(ModelError::Stopped("the grid"));
        }
        let train_loss = (sum / count.max(1) as f64) as f32;
        let dev_loss = evaluate(&model, dev)?;
        out.push(GridPoint { lr, train_loss, dev_loss });
    }
    Ok(out)
}
