//! The training loop (one loop for every model, as makemore's), the learning-rate schedule, and
//! the loss over a whole split.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mm_data::{Batch, Examples, Layout};
use mm_tensor::{AdamW, AdamWState, BatchStatsLog, Grads, Optimizer, ParamStore, Sgd, Shards, Tape};
use ndarray::{ArrayView2, s};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::{Model, ModelError, Result};

/// The learning rate as a function of the step.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// The same rate throughout.
    Constant(f32),
    /// `lr` before step `at`, `then` from it on: the lecture's 0.1, then 0.01 from step 100,000.
    Step {
        /// The initial rate.
        lr: f32,
        /// The first step of the decayed rate.
        at: usize,
        /// The decayed rate.
        then: f32,
    },
    /// Piecewise constant: `(first step, rate)` pairs in increasing order of step; before the
    /// first pair, the first rate.
    Piecewise(Vec<(usize, f32)>),
    /// Linear warmup, then cosine decay, as GPT training does (nanoGPT's `get_lr`): from step 0
    /// the rate climbs linearly, `lr * (step + 1) / warmup`, reaching `lr` at step `warmup - 1`;
    /// then it follows half a cosine, `min_lr + (lr - min_lr) * (1 + cos(pi * r)) / 2` with
    /// `r = (step - warmup) / (steps - warmup)`, from `lr` down to `min_lr` at step `steps`,
    /// and stays at `min_lr` after it. PyTorch: `LinearLR` chained with `CosineAnnealingLR`.
    WarmupCosine {
        /// The peak rate, reached at the end of the warmup.
        lr: f32,
        /// Steps of linear warmup (0 for none).
        warmup: usize,
        /// The rate at the end of the decay.
        min_lr: f32,
        /// The step at which the decay reaches `min_lr`: the run's length.
        steps: usize,
    },
}

impl Schedule {
    /// The rate at `step`.
    ///
    /// ```
    /// use mm_models::Schedule;
    /// let s = Schedule::Step { lr: 0.1, at: 100_000, then: 0.01 };
    /// assert_eq!((s.lr(99_999), s.lr(100_000)), (0.1, 0.01));
    /// let p = Schedule::Piecewise(vec![(0, 1.0), (10, 0.5), (20, 0.25)]);
    /// assert_eq!((p.lr(5), p.lr(10), p.lr(25)), (1.0, 0.5, 0.25));
    /// ```
    pub fn lr(&self, step: usize) -> f32 {
        match self {
            Schedule::Constant(lr) => *lr,
            Schedule::Step { lr, at, then } => {
                if step < *at {
                    *lr
                } else {
                    *then
                }
            }
            Schedule::Piecewise(points) => points
                .iter()
                .take_while(|(from, _)| *from <= step)
                .last()
                .or(points.first())
                .map_or(0.0, |p| p.1),
            Schedule::WarmupCosine { lr, warmup, min_lr, steps } => {
                if step < *warmup {
                    return (f64::from(*lr) * (step + 1) as f64 / *warmup as f64) as f32;
                }
                let span = steps.saturating_sub(*warmup);
                let r = if span == 0 { 1.0 } else { ((step - warmup) as f64 / span as f64).min(1.0) };
                let coeff = 0.5 * (1.0 + (std::f64::consts::PI * r).cos());
                (f64::from(*min_lr) + coeff * (f64::from(*lr) - f64::from(*min_lr))) as f32
            }
        }
    }

    fn check(&self) -> Result<()> {
        let rates: Vec<f32> = match self {
            Schedule::Constant(lr) => vec![*lr],
            Schedule::Step { lr, then, .. } => vec![*lr, *then],
            Schedule::Piecewise(p) if p.is_empty() => {
                return Err(ModelError::Config("an empty schedule".into()));
            }
            Schedule::Piecewise(p) => p.iter().map(|x| x.1).collect(),
            Schedule::WarmupCosine { lr, min_lr, .. } => vec![*lr, *min_lr],
        };
        match rates.iter().find(|r| !(r.is_finite() && **r >= 0.0)) {
            Some(r) => {
                Err(ModelError::Config(format!("learning rate {r} is not a finite, non-negative number")))
            }
            None => Ok(()),
        }
    }
}

/// Which optimizer to train with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OptimizerKind {
    /// Stochastic gradient descent, as the lectures.
    #[default]
    Sgd,
    /// AdamW (betas from [`TrainConfig::betas`]; eps 1e-8).
    AdamW,
}

/// How to train.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Optimisation steps.
    pub steps: usize,
    /// Examples per step, drawn with replacement; `None` for the whole training set every step
    /// (full-batch gradient descent, as the bigram net of part 1).
    pub batch_size: Option<usize>,
    /// The learning rate over the steps.
    pub schedule: Schedule,
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// AdamW's `(beta1, beta2)`: PyTorch's default `(0.9, 0.999)`; makemore trains with
    /// `(0.9, 0.99)`. SGD ignores them.
    pub betas: (f32, f32),
    /// Weight decay (L2 for SGD, decoupled for AdamW); 0 for none.
    pub weight_decay: f32,
    /// AdamW: decay only the matrices (parameters of two or more axes: the weights of linear
    /// layers and the embedding tables), not the vectors (biases, LayerNorm's gains and
    /// shifts), as nanoGPT's `configure_optimizers` groups them (`p.dim() >= 2`). `false`:
    /// every parameter decays, as makemore.py's `AdamW(model.parameters(), ...)`.
    pub decay_matrices_only: bool,
    /// Clip the gradients' global norm to this before each update
    /// (`torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)`); 0 for no clipping.
    pub grad_clip: f32,
    /// Evaluate on the dev set every this many steps (and after the last); 0 for never.
    pub eval_every: usize,
    /// The seed of the minibatch sampling.
    pub seed: u64,
    /// Data parallelism: each step's batch is cut into this many shards of consecutive rows
    /// (as equal as the batch allows), each recorded and differentiated on its own tape, and
    /// their gradients summed in shard order, each weighted by its number of targets
    /// ([`mm_tensor::Shards`]). The gradient is the whole batch's, up to rounding; the shard
    /// count fixes the rounding, so it is part of a run (record it with the run, and continue
    /// the run with the same). 1 (the default): one tape, today's allocation-free step. Models
    /// that normalise with their batch's statistics (BatchNorm: `bn-mlp`, `wavenet`) refuse more
    /// than one ([`ModelError::ShardedBatchNorm`]).
    pub shards: usize,
    /// The threads that run the shards, and then AdamW's update (the parameters cut across them):
    /// at most this many (0: one per core of the machine), never more than the shards; one
    /// without shards. The threads never change the result: a run gives the same
    /// bits on 1 thread and on 2 for the same `shards`, and may be continued with another
    /// thread count. The extra threads wait between steps ([`mm_tensor::Workers`]).
    pub threads: usize,
}

impl TrainConfig {
    /// The lecture's MLP training: 200,000 SGD steps of 32 examples, learning rate 0.1 then 0.01
    /// from step 100,000.
    pub fn mlp() -> TrainConfig {
        TrainConfig {
            steps: 200_000,
            batch_size: Some(32),
            schedule: Schedule::Step { lr: 0.1, at: 100_000, then: 0.01 },
            optimizer: OptimizerKind::Sgd,
            betas: (0.9, 0.999),
            weight_decay: 0.0,
            decay_matrices_only: false,
            grad_clip: 0.0,
            eval_every: 10_000,
            seed: 42,
            shards: 1,
            threads: 0,
        }
    }

    /// The lecture's bigram-net training: full-batch gradient descent at learning rate 50, for
    /// 500 steps (the data NLL is then within 0.01 of the smoothed counting model's).
    pub fn bigram_nn() -> TrainConfig {
        TrainConfig {
            steps: 500,
            batch_size: None,
            schedule: Schedule::Constant(50.0),
            optimizer: OptimizerKind::Sgd,
            betas: (0.9, 0.999),
            weight_decay: 0.0,
            decay_matrices_only: false,
            grad_clip: 0.0,
            eval_every: 0,
            seed: 42,
            shards: 1,
            threads: 0,
        }
    }

    /// makemore.py's training of its models: AdamW at learning rate 5e-4, weight decay 0.01,
    /// betas (0.9, 0.99), eps 1e-8, batches of 32 words; 10,000 steps (makemore runs until
    /// stopped; the zoo's references are taken at 10,000), evaluating every 1,000.
    pub fn makemore() -> TrainConfig {
        TrainConfig {
            steps: 10_000,
            batch_size: Some(32),
            schedule: Schedule::Constant(5e-4),
            optimizer: OptimizerKind::AdamW,
            betas: (0.9, 0.99),
            weight_decay: 0.01,
            decay_matrices_only: false,
            grad_clip: 0.0,
            eval_every: 1_000,
            seed: 3407,
            shards: 1,
            threads: 0,
        }
    }

    /// A fresh optimizer of these settings at the schedule's first rate, as `train()` sets its
    /// own up (before a resumed state, or `decay_matrices_only`, is applied): for training
    /// loops written out, as `examples/zoo_step`'s phases and the zoo's criterion bench are.
    pub fn optimizer(&self) -> Box<dyn Optimizer<f32>> {
        let lr = self.schedule.lr(0);
        match self.optimizer {
            OptimizerKind::Sgd => Box::new(Sgd::new(lr).with_weight_decay(self.weight_decay)),
            OptimizerKind::AdamW => {
                let mut a = AdamW::new(lr);
                a.weight_decay = self.weight_decay;
                (a.beta1, a.beta2) = self.betas;
                Box::new(a)
            }
        }
    }
}

/// What one step did, for observers (progress bars, logs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepMetrics {
    /// The step, from 0.
    pub step: usize,
    /// The learning rate used.
    pub lr: f32,
    /// The minibatch loss before the update.
    pub loss: f32,
    /// The loss on the dev set after the update, on evaluation steps.
    pub dev_loss: Option<f32>,
    /// Time since training started.
    pub elapsed: Duration,
}

/// The parameters with the lowest dev loss seen.
#[derive(Clone, Debug)]
pub struct Best {
    /// The step after which they were evaluated.
    pub step: usize,
    /// Their dev loss.
    pub dev_loss: f32,
    /// The parameters.
    pub params: ParamStore<f32>,
}

/// Where a run stands: what [`train_from`] needs, besides the model's parameters, to continue it
/// exactly as if it had never stopped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    /// Steps done.
    pub step: usize,
    /// AdamW's moments (`None` for SGD, which keeps no state, and before the first step).
    pub adamw: Option<AdamWState<f32>>,
}

/// The outcome of training.
#[derive(Clone, Debug)]
pub struct TrainReport {
    /// Steps done, counting those of the run it continued.
    pub steps: usize,
    /// Whether the stop flag ended training early.
    pub stopped: bool,
    /// The last minibatch loss.
    pub last_loss: f32,
    /// The best parameters by dev loss, when there was a dev set and an evaluation.
    pub best: Option<Best>,
    /// Where the run stands, to save with the model and continue later with [`train_from`].
    pub progress: Progress,
}

/// Trains `model` on `train`, evaluating on `dev` every `cfg.eval_every` steps. Checks `stop`
/// before each step (set it from another thread, e.g. on Ctrl-C) and calls `observe` after each.
/// The same seed gives bit-identical losses and weights on the same machine.
pub fn train<M: Model + ?Sized>(
    model: &mut M,
    train: &Examples,
    dev: Option<&Examples>,
    cfg: &TrainConfig,
    stop: &AtomicBool,
    observe: impl FnMut(&StepMetrics),
) -> Result<TrainReport> {
    train_from(model, train, dev, cfg, &Progress::default(), stop, observe)
}

/// Continues a run that stopped at `from.step` (its model already holds the parameters of that
/// step) up to `cfg.steps`, with the same `cfg` it was started with: the schedule carries on from
/// `from.step`, AdamW from its saved moments, and the minibatch sampler is fast-forwarded past
/// the batches already drawn. Training `n` steps, then continuing to `m`, gives bit for bit the
/// weights and losses of training `m` steps at once.
pub fn train_from<M: Model + ?Sized>(
    model: &mut M,
    train: &Examples,
    dev: Option<&Examples>,
    cfg: &TrainConfig,
    from: &Progress,
    stop: &AtomicBool,
    observe: impl FnMut(&StepMetrics),
) -> Result<TrainReport> {
    run(model, train, dev, cfg, from, stop, observe, 0, |_| Ok(()), false)
}

/// A point of a run to save so that it can be continued from there (see [`train_saving`]).
#[derive(Debug)]
pub struct SavePoint<'a> {
    /// Where the run stands: steps done, and AdamW's moments.
    pub progress: Progress,
    /// The parameters after `progress.step` steps.
    pub params: &'a ParamStore<f32>,
    /// The best parameters by dev loss so far in this call, if any.
    pub best: Option<&'a Best>,
}

/// [`train_from`], calling `save` after every `save_every` steps (after `observe`; never after
/// the last step, whose state the caller has in the report; 0 for never), so that a run killed
/// later can continue from the last save. Saving does not change the training: the weights and
/// losses are bit for bit those of [`train_from`]. An error of `save` ends training with it.
///
/// Unlike [`train`] and [`train_from`] (which run on, as a learning-rate sweep does past the
/// rates that diverge), it stops with [`ModelError::Diverged`] when a minibatch loss or a dev
/// loss is NaN or infinite, and checks that the parameters are finite before each save and at
/// the end: a run it trains never saves or returns NaN weights, and its last save is the last
/// good state.
#[allow(clippy::too_many_arguments)]
pub fn train_saving<M: Model + ?Sized, E: From<ModelError>>(
    model: &mut M,
    train: &Examples,
    dev: Option<&Examples>,
    cfg: &TrainConfig,
    from: &Progress,
    stop: &AtomicBool,
    observe: impl FnMut(&StepMetrics),
    save_every: usize,
    save: impl FnMut(&SavePoint) -> std::result::Result<(), E>,
) -> std::result::Result<TrainReport, E> {
    run(model, train, dev, cfg, from, stop, observe, save_every, save, true)
}

/// The training loop of [`train_from`] and [`train_saving`]; `finite` stops it on a non-finite
/// loss or parameter.
#[allow(clippy::too_many_arguments)]
fn run<M: Model + ?Sized, E: From<ModelError>>(
    model: &mut M,
    train: &Examples,
    dev: Option<&Examples>,
    cfg: &TrainConfig,
    from: &Progress,
    stop: &AtomicBool,
    mut observe: impl FnMut(&StepMetrics),
    save_every: usize,
    mut save: impl FnMut(&SavePoint) -> std::result::Result<(), E>,
    finite: bool,
) -> std::result::Result<TrainReport, E> {
    cfg.schedule.check()?;
    if from.step > cfg.steps {
        let msg = format!("the run is at step {}, past the {} steps asked for", from.step, cfg.steps);
        return Err(ModelError::Config(msg).into());
    }
    if train.is_empty() {
        return Err(ModelError::Config("no training examples".into()).into());
    }
    check_examples(model, train)?;
    if let Some(dev) = dev {
        check_examples(model, dev)?;
    }
    if cfg.batch_size == Some(0) {
        return Err(ModelError::Config("batch_size must be at least 1".into()).into());
    }
    if !(cfg.grad_clip.is_finite() && cfg.grad_clip >= 0.0) {
        let msg = format!("grad_clip {} is not a finite, non-negative norm", cfg.grad_clip);
        return Err(ModelError::Config(msg).into());
    }
    if cfg.decay_matrices_only && cfg.optimizer != OptimizerKind::AdamW {
        let msg = "decay_matrices_only needs AdamW (SGD's L2 decay applies to every parameter)";
        return Err(ModelError::Config(msg.into()).into());
    }
    if cfg.shards == 0 {
        return Err(ModelError::Config("shards must be at least 1".into()).into());
    }
    if cfg.shards > 1 && model.batch_statistics() {
        return Err(ModelError::ShardedBatchNorm { kind: model.kind(), shards: cfg.shards }.into());
    }
    let rows = cfg.batch_size.unwrap_or(train.len());
    if rows < cfg.shards {
        let what = if cfg.batch_size.is_some() { "batch_size" } else { "the training set" };
        let msg =
            format!("{what} of {rows} rows cannot be cut into {} shards: use at most {rows}", cfg.shards);
        return Err(ModelError::Config(msg).into());
    }
    let threads = match cfg.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut shards = (cfg.shards > 1).then(|| Shards::new(model.params(), cfg.shards, threads));
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut batch = Batch::new(cfg.batch_size.unwrap_or(0), model.block_size());
    let mut tape = Tape::new();
    let mut grads = Grads::new(model.params());
    let mut stats = BatchStatsLog::new();
    let mut sgd = Sgd::new(cfg.schedule.lr(0)).with_weight_decay(cfg.weight_decay);
    let mut adamw = AdamW::new(cfg.schedule.lr(0));
    adamw.weight_decay = cfg.weight_decay;
    (adamw.beta1, adamw.beta2) = cfg.betas;
    if let Some(shards) = &shards {
        adamw.set_workers(shards.workers().clone());
    }
    if cfg.decay_matrices_only {
        let params = model.params();
        for id in params.ids() {
            adamw.set_decay(id, params.shape(id).rank() >= 2);
        }
    }
    match (&from.adamw, cfg.optimizer) {
        (Some(state), OptimizerKind::AdamW) => {
            adamw.set_state(model.params(), state.clone()).map_err(ModelError::from)?
        }
        (None, _) if from.step > 0 && cfg.optimizer == OptimizerKind::AdamW => {
            return Err(ModelError::Config("continuing an AdamW run needs its optimizer state".into()).into());
        }
        (Some(_), OptimizerKind::Sgd) => {
            return Err(ModelError::Config("an AdamW state for a run with SGD".into()).into());
        }
        _ => {}
    }
    // The optimizer, chosen at each use (not held as a `&mut dyn Optimizer`), so that AdamW's
    // state can be read between steps for a save.
    macro_rules! opt {
        () => {
            match cfg.optimizer {
                OptimizerKind::Sgd => &mut sgd as &mut dyn Optimizer<f32>,
                OptimizerKind::AdamW => &mut adamw as &mut dyn Optimizer<f32>,
            }
        };
    }
    // With shards, AdamW sums their gradients as it applies them (the same bits as summing them
    // into `grads` first), unless the summed gradient is needed on its own: to clip it.
    let sum_in_update = cfg.optimizer == OptimizerKind::AdamW && cfg.grad_clip == 0.0;
    // The batches of the steps already done: drawn again (and dropped) so that the sampler
    // continues where it was (how many random numbers a batch takes varies).
    if cfg.batch_size.is_some() {
        for _ in 0..from.step {
            train.sample_into(&mut rng, &mut batch).map_err(ModelError::from)?;
        }
    }
    let start = Instant::now();
    let mut report = TrainReport {
        steps: from.step,
        stopped: false,
        last_loss: f32::NAN,
        best: None,
        progress: Progress::default(),
    };
    for step in from.step..cfg.steps {
        if stop.load(Ordering::Relaxed) {
            report.stopped = true;
            break;
        }
        let lr = cfg.schedule.lr(step);
        opt!().set_lr(lr);
        let (x, y) = match cfg.batch_size {
            None => (train.x.view(), train.y.as_slice().expect("examples are contiguous")),
            Some(_) => {
                train.sample_into(&mut rng, &mut batch).map_err(ModelError::from)?;
                (batch.x.view(), batch.y.as_slice().expect("a batch is contiguous"))
            }
        };
        // Dropout's masks are drawn from the run's seed and the step, so that a continued run
        // draws those of an uninterrupted one.
        model.begin_step(cfg.seed, step);
        let loss = match &mut shards {
            None => {
                let g = tape.graph(model.params());
                let loss = model.loss(&g, x, y);
                let loss = g.backward_params(loss, &mut grads).map_err(ModelError::from)?;
                g.batch_stats(&mut stats);
                loss
            }
            Some(shards) => {
                let loss = sharded_loss(&*model, shards, x, y)?;
                if !sum_in_update {
                    shards.sum_into(model.params(), &mut grads).map_err(ModelError::from)?;
                }
                loss
            }
        };
        if finite && !loss.is_finite() {
            let what = format!("the training loss is {loss}");
            return Err(ModelError::Diverged { step: step + 1, what }.into());
        }
        if cfg.grad_clip > 0.0 {
            grads.clip_norm(f64::from(cfg.grad_clip));
        }
        match &shards {
            Some(shards) if sum_in_update => adamw.step_shards(model.params_mut(), shards),
            _ => opt!().step(model.params_mut(), &grads),
        }
        .map_err(ModelError::from)?;
        if !stats.is_empty() {
            model.update_running(&stats)?;
        }
        report.steps = step + 1;
        report.last_loss = loss;
        let last = step + 1 == cfg.steps;
        let dev_loss = match dev {
            Some(dev) if cfg.eval_every > 0 && ((step + 1) % cfg.eval_every == 0 || last) => {
                let d = evaluate(model, dev)? as f32;
                if finite && !d.is_finite() {
                    let what = format!("the dev loss is {d}");
                    return Err(ModelError::Diverged { step: step + 1, what }.into());
                }
                if report.best.as_ref().is_none_or(|b| d < b.dev_loss) {
                    report.best = Some(Best { step, dev_loss: d, params: model.params().clone() });
                }
                Some(d)
            }
            _ => None,
        };
        observe(&StepMetrics { step, lr, loss, dev_loss, elapsed: start.elapsed() });
        if save_every > 0 && (step + 1) % save_every == 0 && !last {
            let state = if cfg.optimizer == OptimizerKind::AdamW { adamw.state() } else { None };
            let progress = Progress { step: step + 1, adamw: state };
            if finite {
                check_finite(model.params(), step + 1)?;
            }
            save(&SavePoint { progress, params: model.params(), best: report.best.as_ref() })?;
        }
    }
    if finite {
        check_finite(model.params(), report.steps)?;
    }
    let adamw = if cfg.optimizer == OptimizerKind::AdamW { adamw.state() } else { None };
    report.progress = Progress { step: report.steps, adamw };
    Ok(report)
}

/// The rows of shard `i` of `n` of a batch of `rows` rows: consecutive, as equal as `rows`
/// allows (the first and last shards' sizes differ by at most one).
fn shard_rows(rows: usize, n: usize, i: usize) -> std::ops::Range<usize> {
    i * rows / n..(i + 1) * rows / n
}

/// One step's loss over `shards`, each shard's gradient left in it ([`Shards::backward`]):
/// shard `i` is the model's [`Model::shard_loss`] on its rows ([`shard_rows`]) and their
/// targets, weighted by its number of targets, so that the sum of the gradients is the whole
/// batch's mean's.
fn sharded_loss<M: Model + ?Sized>(
    model: &M,
    shards: &mut Shards<f32>,
    x: ndarray::ArrayView2<'_, u32>,
    y: &[u32],
) -> Result<f32> {
    let (rows, n) = (x.nrows(), shards.len());
    let per_row = y.len() / rows.max(1);
    let loss = shards.backward(model.params(), |g, i| {
        let r = shard_rows(rows, n, i);
        let targets = &y[r.start * per_row..r.end * per_row];
        let weight = targets.iter().filter(|&&t| t != mm_tensor::IGNORE).count() as f64;
        Ok((model.shard_loss(g, x.slice(s![r, ..]), targets, i), weight))
    })?;
    Ok(loss)
}

/// [`ModelError::Diverged`] at `step` if a parameter or buffer of `params` is not finite.
fn check_finite(params: &ParamStore<f32>, step: usize) -> Result<()> {
    let bad = params
        .ids()
        .find(|&id| params.data(id).iter().any(|x| !x.is_finite()))
        .map(|id| params.name(id).to_string())
        .or_else(|| {
            params
                .buffer_ids()
                .find(|&id| params.buffer_data(id).iter().any(|x| !x.is_finite()))
                .map(|id| params.buffer_name(id).to_string())
        });
    match bad {
        Some(name) => {
            Err(ModelError::Diverged { step, what: format!("the parameter {name} is NaN or infinite") })
        }
        None => Ok(()),
    }
}

/// Checks that `examples` are cut as `model` reads them: windows or words of its block size.
pub(crate) fn check_examples<M: Model + ?Sized>(model: &M, examples: &Examples) -> Result<()> {
    let (layout, bs) = (model.layout(), model.block_size());
    let per_row = if layout == Layout::Words { bs } else { 1 };
    if examples.block_size() != bs || examples.targets_per_row() != per_row {
        let (got, targets) = (examples.block_size(), examples.targets_per_row());
        return Err(ModelError::Config(format!(
            "examples of block_size {got} with {targets} target(s) per row for a {} model reading \
             {layout:?} of block_size {bs} (cut them with Examples::new(words, vocab, {layout:?}, {bs}))",
            model.kind()
        )));
    }
    Ok(())
}

/// About how many bytes a training step of `batch_size` rows of `examples` keeps on its tape
/// (values, gradients, the kernels' scratch), extrapolated from the steps of 16 and of 32 rows
/// that it runs ([`Tape::bytes`]; a step's tape grows with its rows, its parameters aside): so that a
/// caller can refuse a batch that would not fit in memory before allocating it, since Rust
/// aborts the process when an allocation fails. The model is not changed.
///
/// ```
/// # fn demo(model: &mm_models::Mlp, train: &mm_data::Examples) -> mm_models::Result<()> {
/// let need = mm_models::step_bytes(model, train, 32)?;
/// assert!(need > 0);
/// # Ok(()) }
/// ```
pub fn step_bytes<M: Model + ?Sized>(model: &M, examples: &Examples, batch_size: usize) -> Result<u128> {
    check_examples(model, examples)?;
    if examples.is_empty() {
        return Err(ModelError::Config("no examples to measure a step on".into()));
    }
    let measure = |rows: usize| -> Result<u128> {
        let idx: Vec<usize> = (0..rows).map(|i| i % examples.len()).collect();
        let x = examples.x.select(ndarray::Axis(0), &idx);
        let y = examples.y.select(ndarray::Axis(0), &idx);
        let mut tape = Tape::new();
        let mut grads = Grads::new(model.params());
        {
            let g = tape.graph(model.params());
            let loss = model.loss(&g, x.view(), y.as_slice().expect("a selection is contiguous"));
            g.backward_params(loss, &mut grads).map_err(ModelError::from)?;
        }
        Ok(tape.bytes() as u128)
    };
    let (small, large) = (measure(16)?, measure(32)?);
    let per_row = large.saturating_sub(small).div_ceil(16);
    Ok(small + per_row * (batch_size as u128).saturating_sub(16))
}

/// The perplexity of a mean cross-entropy: `exp(loss)`, the effective number of equally likely
/// next characters (27 for a uniform guess over `names.txt`'s vocabulary).
pub fn perplexity(loss: f64) -> f64 {
    loss.exp()
}

/// The mean cross-entropy of `model` over all of `examples` (a whole split): the summed NLL of
/// every target over their number, so that models that read windows and models that read
/// words are measured alike (per predicted character). In batches of about 1,024 targets
/// (small enough that a batch's activations stay in cache) and without gradient machinery,
/// accumulated in `f64`. The batches are shared among the machine's cores; each batch's loss is summed in
/// order, so the result does not depend on how many there are. [`perplexity`] turns it into a
/// perplexity.
pub fn evaluate<M: Model + ?Sized>(model: &M, examples: &Examples) -> Result<f64> {
    if examples.is_empty() {
        return Err(ModelError::Config("no examples to evaluate".into()));
    }
    check_examples(model, examples)?;
    evaluate_chunks(examples, Tape::new, |tape, x, targets| {
        let g = tape.no_grad(model.params());
        Ok(model.forward(&g, x).cross_entropy(targets).item()?)
    })
}

/// The mean NLL per target over all of `examples` (checked by the caller against the model or
/// models that read them), in chunks of about 1,024 targets (1,024 windows, or 64 words of 16
/// positions) shared among the machine's cores:
/// `chunk_loss(state, x, targets)` gives the mean NLL of a chunk's rows `x` over its targets
/// (`mm_tensor::IGNORE` where a position has none; a chunk without any is skipped), with a
/// `state` of its thread's own, made by `state()` (a tape reused chunk after chunk). Each
/// chunk's summed loss goes to its own slot and the slots are summed in order in `f64`, so the
/// result does not depend on the number of cores. [`evaluate`] and
/// [`crate::evaluate_ensemble`] share it.
pub(crate) fn evaluate_chunks<S>(
    examples: &Examples,
    state: impl Fn() -> S + Sync,
    chunk_loss: impl Fn(&mut S, ArrayView2<'_, u32>, &[u32]) -> Result<f32> + Sync,
) -> Result<f64> {
    // Targets per chunk. A chunk's activations are all kept until its loss is read: 1,024
    // rows of words were 16,384 positions, 800 MB of a Transformer's activations, rewritten
    // page by page for each chunk; 1,024 positions stay in the caches.
    const TARGETS: usize = 1024;
    if examples.is_empty() {
        return Err(ModelError::Config("no examples to evaluate".into()));
    }
    let y = examples.y.as_slice().expect("examples are contiguous");
    let k = examples.targets_per_row();
    let chunk = (TARGETS / k.max(1)).max(1);
    let chunks = examples.len().div_ceil(chunk);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(chunks);
    // Each thread takes every `threads`-th chunk, and writes the chunk's summed loss to its slot.
    let mut sums = vec![0.0f64; chunks];
    let work = |first: usize, out: &mut Vec<(usize, f64)>| -> Result<()> {
        let mut state = state();
        for c in (first..chunks).step_by(threads) {
            let (start, end) = (c * chunk, ((c + 1) * chunk).min(examples.len()));
            let x = examples.x.slice(s![start..end, ..]);
            let targets = &y[start * k..end * k];
            let count = targets.iter().filter(|&&t| t != mm_tensor::IGNORE).count();
            if count == 0 {
                continue;
            }
            let loss = chunk_loss(&mut state, x, targets)?;
            out.push((c, f64::from(loss) * count as f64));
        }
        Ok(())
    };
    let parts: Vec<Result<Vec<(usize, f64)>>> = std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = (1..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    work(t, &mut out).map(|()| out)
                })
            })
            .collect();
        let mut mine = Vec::new();
        let first = work(0, &mut mine).map(|()| mine);
        std::iter::once(first)
            .chain(handles.into_iter().map(|h| h.join().expect("an evaluation thread panicked")))
            .collect()
    });
    for part in parts {
        for (c, sum) in part? {
            sums[c] = sum;
        }
    }
    let targets = examples.targets();
    if targets == 0 {
        return Err(ModelError::Config("no targets to evaluate".into()));
    }
    Ok(sums.iter().sum::<f64>() / targets as f64)
}
