//! One training step of any model kind of the zoo, timed in `train()` as users run it: our side
//! of the "<kind> training step" rows of `cargo xtask bench --zoo`, and a stand-alone target for
//! profilers.
//!
//! ```text
//! cargo run --release -p mm-models --example zoo_step -- --model KIND [--steps N] [--json | --phases] [--data PATH]
//!     [--shards S] [--threads N]
//! ```
//!
//! KIND is one of makemore.py's models (`transformer`, `bow`, `rnn`, `gru`, `mlp-makemore`,
//! `bigram-makemore`: `mm_models::zoo::Makemore` at makemore's default sizes, whole words of the
//! longest word + 1 positions, trained as makemore trains them: AdamW at 5e-4, weight decay
//! 0.01, betas (0.9, 0.99), batches of 32 words) or one of the lectures' (`bn-mlp`, part 3's
//! BatchNorm MLP over windows of 3, and `wavenet`, part 5's, over windows of 8; SGD at 0.1,
//! batches of 32 windows). The data is names.txt's train split, as the lectures split it.
//!
//! The time is `mm_models::train` itself (`eval_every` 0), so that the minibatch draw counts, as
//! PyTorch's data loading counts on its side (`bench/pytorch_zoo.py KIND_step`): 20 warm-up
//! steps, then the best of 3 calls of N steps (default 200), in ms per step, as
//! `mm-tensor`'s `examples/transformer_step.rs` times its step. Each call starts a fresh tape
//! and optimizer, whose first step allocates: a cost of about one step per call, under 1% at
//! N = 200. Also timed alone: the batch draw (`Examples::sample_into`), best of 3 runs of N.
//!
//! Without flags it prints the model, its parameter count (to check against PyTorch's: the
//! same model has the same count) and the timings. `--json` prints one JSON object instead
//! (`value` in ms per step, `params`, `batch_ms`, ...) for `cargo xtask bench`. `--phases`
//! also splits a step into its phases (batch, forward, backward, optimizer and running
//! statistics), the median of each over as many steps again, with the training loop's calls
//! written out, to show where the time goes.
//!
//! `--shards S --threads N` time `train()` with each step's batch cut into S shards on up to N
//! threads (`TrainConfig::shards`, `threads`; default 1 and 0, one per core): how much a second
//! core buys for the kind. `--phases` always splits the one-shard step.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use mm_data::{Batch, Dataset, Examples, Layout, Split, SplitSpec, default_dataset_path};
use mm_models::zoo::ModelConfig;
use mm_models::{BnMlpConfig, Model, Schedule, Spec, TrainConfig, WaveNetConfig, train};
use mm_tensor::{BatchStatsLog, Grads, Tape};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Every kind this example times, in the bench's order.
const KINDS: [&str; 8] =
    ["transformer", "bow", "rnn", "gru", "mlp-makemore", "bigram-makemore", "bn-mlp", "wavenet"];

/// Warm-up steps before the timed blocks (the tape's buffers and the caches fill).
const WARM_UP: usize = 20;

/// Timed blocks; the best counts.
const BLOCKS: usize = 3;

/// A model with the examples it reads and the training it gets.
struct Setup {
    model: Box<dyn Model>,
    train: Examples,
    cfg: TrainConfig,
    /// The multiply-adds of a step's matrix products ([`step_macs`]).
    macs: u64,
}

/// The examples per step.
const B: u64 = 32;

/// The multiply-adds of one training step's matrix products, counted from the shapes as
/// `bench/pytorch_zoo.py` counts them (so that the bench can check that both sides count the
/// same model): the forward's, times 3, since the backward computes the gradients of both
/// operands of each product. Whole-word models run every product over N = B·T rows (T the
/// block size, padding included, as makemore computes it); attention and the bag of words
/// over the whole T x T. The bench's bound "60% of the FMA peak" is made of them: products
/// only, so that the elementwise work is what the other 40% pays for. The bigram models have
/// none (their forward is a lookup).
fn step_macs(kind: &str, zoo: &ModelConfig, bn: &BnMlpConfig, wave: &WaveNetConfig) -> u64 {
    let z = |v: usize| v as u64;
    let (t, c, c2, v) = (z(zoo.block_size), z(zoo.n_embd), z(zoo.n_embd2), z(zoo.vocab_size));
    let n = B * t;
    let forward = match kind {
        // Per layer: c_attn 3C², attn.c_proj C², mlp.c_fc 4C², mlp.c_proj 4C² per row; q kᵀ and
        // att @ v over the heads; then lm_head.
        "transformer" => z(zoo.n_layer) * (12 * n * c * c + 2 * B * t * t * c) + n * c * v,
        // att @ x, mlp.c_fc, mlp.c_proj, lm_head.
        "bow" => B * t * t * c + 2 * n * c * c2 + n * c * v,
        // One Linear(n_embd + n_embd2, n_embd2) per position (three for the GRU), lm_head.
        "rnn" => n * (c + c2) * c2 + n * c2 * v,
        "gru" => 3 * n * (c + c2) * c2 + n * c2 * v,
        // Linear(block_size · n_embd, n_embd2) and Linear(n_embd2, vocab) at every position.
        "mlp-makemore" => n * t * c * c2 + n * c2 * v,
        // emb @ W1 and h @ W2 over B windows.
        "bn-mlp" => B * z(bn.block_size * bn.n_embd) * z(bn.n_hidden) + B * z(bn.n_hidden) * v,
        // Each level fuses pairs: B·T/2 rows of 2·n_embd, then B·T/4 rows of 2·n_hidden, ...
        // down to B rows; then the output layer.
        "wavenet" => {
            let (mut t, mut width, h) = (z(wave.block_size), z(wave.n_embd), z(wave.n_hidden));
            let mut sum = 0;
            while t > 1 {
                t /= 2;
                sum += B * t * 2 * width * h;
                width = h;
            }
            sum + B * h * v
        }
        _ => 0,
    };
    3 * forward
}

/// The model `kind` at its default size over `words`' train split, freshly initialised.
fn setup(kind: &str, data: &Dataset) -> Result<Setup, Box<dyn std::error::Error>> {
    let vocab = data.vocab();
    let split = Split::new(data.words(), SplitSpec::default())?;
    let mut rng = StdRng::seed_from_u64(3407);
    let (bn, wave) = (BnMlpConfig::default(), WaveNetConfig::default());
    // makemore's block_size: the longest word and its start token (16 for names.txt).
    let longest = data.words().iter().map(|w| w.chars().count()).max().unwrap_or(0);
    let zoo = ModelConfig { block_size: longest + 1, vocab_size: vocab.len(), ..ModelConfig::default() };
    // Through the registry, at each kind's defaults, trained as its lecture or makemore.py does.
    let mut spec = Spec::default_of(kind)
        .filter(|s| KINDS.contains(&s.kind()))
        .ok_or_else(|| format!("unknown model {kind:?}: one of {}", KINDS.join(", ")))?;
    if spec.layout() == Layout::Words {
        spec = spec.with_block_size(zoo.block_size);
    }
    let cfg = spec.train_config();
    let model = spec.build(&vocab, &mut rng)?.into_neural().ok_or("a neural model")?;
    let train = Examples::new(&split.train, &vocab, model.layout(), model.block_size())?;
    let macs = step_macs(kind, &zoo, &bn, &wave);
    Ok(Setup { model, train, cfg: TrainConfig { eval_every: 0, ..cfg }, macs })
}

/// The learning rate of the first step: the timed steps are all before any decay.
fn first_lr(cfg: &TrainConfig) -> f32 {
    match &cfg.schedule {
        Schedule::Constant(lr) | Schedule::Step { lr, .. } | Schedule::WarmupCosine { lr, .. } => *lr,
        Schedule::Piecewise(points) => points.first().map_or(0.0, |p| p.1),
    }
}

/// The median milliseconds of each phase of a step (batch, forward, backward, optimizer,
/// running statistics) over `BLOCKS` x `steps` steps of the training loop written out as
/// `train()` runs it. Medians, not means: this VM stalls a thread for 0.1-0.3 ms now and then,
/// which swamps the short phases' means.
fn phases(s: &mut Setup, steps: usize) -> Result<[f64; 5], Box<dyn std::error::Error>> {
    let cfg = &s.cfg;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut batch = Batch::new(cfg.batch_size.unwrap_or(32), s.model.block_size());
    let mut tape = Tape::new();
    let mut grads = Grads::new(s.model.params());
    let mut stats = BatchStatsLog::new();
    let mut opt = cfg.optimizer();
    opt.set_lr(first_lr(cfg));
    let mut times: [Vec<f64>; 5] = Default::default();
    for step in 0..WARM_UP + BLOCKS * steps {
        let t0 = Instant::now();
        s.train.sample_into(&mut rng, &mut batch)?;
        let y = batch.y.as_slice().ok_or("a batch is contiguous")?;
        let t1 = Instant::now();
        let (t2, t3);
        {
            let g = tape.graph(s.model.params());
            let loss = s.model.loss(&g, batch.x.view(), y);
            t2 = Instant::now();
            g.backward_params(loss, &mut grads)?;
            g.batch_stats(&mut stats);
            t3 = Instant::now();
        }
        opt.step(s.model.params_mut(), &grads)?;
        let t4 = Instant::now();
        if !stats.is_empty() {
            s.model.update_running(&stats)?;
        }
        let t5 = Instant::now();
        if step >= WARM_UP {
            for (v, d) in times.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4]) {
                v.push(d.as_secs_f64() * 1e3);
            }
        }
    }
    Ok(times.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = format!(
        "usage: zoo_step --model KIND [--steps N] [--json | --phases] [--data PATH] [--shards S] [--threads N]; KIND: {}",
        KINDS.join(", ")
    );
    let (mut kind, mut steps, mut json, mut split_phases) = (None, 200usize, false, false);
    let (mut shards, mut threads) = (1usize, 0usize);
    let mut data = default_dataset_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => kind = Some(args.next().ok_or(usage.clone())?),
            "--steps" => {
                steps = args.next().and_then(|n| n.parse().ok()).filter(|&n| n >= 1).ok_or(usage.clone())?
            }
            "--data" => data = PathBuf::from(args.next().ok_or(usage.clone())?),
            "--shards" => {
                shards = args.next().and_then(|n| n.parse().ok()).filter(|&n| n >= 1).ok_or(usage.clone())?
            }
            "--threads" => threads = args.next().and_then(|n| n.parse().ok()).ok_or(usage.clone())?,
            "--json" => json = true,
            "--phases" => split_phases = true,
            "--help" | "-h" => {
                println!("{usage}");
                return Ok(());
            }
            other => return Err(format!("{usage}; not {other:?}").into()),
        }
    }
    let kind = kind.ok_or(usage.clone())?;
    if !KINDS.contains(&kind.as_str()) {
        return Err(format!("unknown model {kind:?}; {usage}").into());
    }
    let dataset =
        Dataset::load(&data).map_err(|e| format!("{e} (run `cargo xtask download`, or pass --data)"))?;
    let mut s = setup(&kind, &dataset)?;
    s.cfg.shards = shards;
    s.cfg.threads = threads;
    let params = s.model.num_params();
    let stop = AtomicBool::new(false);

    if !json {
        let config: Vec<String> = s.model.config().iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "{kind}: {params} parameters; {}; {:?} of {} positions, {} train rows; {:?}, batch {}; {} shard(s), threads {}",
            config.join(", "),
            s.model.layout(),
            s.model.block_size(),
            s.train.len(),
            s.cfg.optimizer,
            s.cfg.batch_size.unwrap_or(0),
            shards,
            if threads == 0 { "one per core".to_string() } else { threads.to_string() }
        );
    }
    let warm = TrainConfig { steps: WARM_UP, ..s.cfg.clone() };
    let first = train(&mut *s.model, &s.train, None, &warm, &stop, |_| ())?.last_loss;
    let cfg = TrainConfig { steps, ..s.cfg.clone() };
    let mut blocks = Vec::new();
    let mut loss = first;
    for _ in 0..BLOCKS {
        let t = Instant::now();
        loss = train(&mut *s.model, &s.train, None, &cfg, &stop, |_| ())?.last_loss;
        blocks.push(t.elapsed().as_secs_f64() * 1e3 / steps as f64);
    }
    let best = blocks.iter().copied().fold(f64::INFINITY, f64::min);
    if !loss.is_finite() {
        return Err(format!("{kind}: the loss is {loss} after training").into());
    }
    // The batch draw alone, as PyTorch's side reports its data loading.
    let mut rng = StdRng::seed_from_u64(1);
    let mut batch = Batch::new(s.cfg.batch_size.unwrap_or(32), s.model.block_size());
    let mut batch_ms = f64::INFINITY;
    for _ in 0..BLOCKS {
        let t = Instant::now();
        for _ in 0..steps {
            s.train.sample_into(&mut rng, &mut batch)?;
        }
        batch_ms = batch_ms.min(t.elapsed().as_secs_f64() * 1e3 / steps as f64);
    }
    let split = if split_phases { Some(phases(&mut s, steps)?) } else { None };

    let list = blocks.iter().map(|b| format!("{b:.4}")).collect::<Vec<_>>().join(", ");
    if json {
        let phases = split.map_or(String::new(), |p| {
            let p = p.map(|v| format!("{v:.4}"));
            format!(", \"phases_ms\": {{\"batch\": {}, \"forward\": {}, \"backward\": {}, \"optimizer\": {}, \"running\": {}}}", p[0], p[1], p[2], p[3], p[4])
        });
        println!(
            "{{\"workload\": \"zoo_step\", \"model\": \"{kind}\", \"value\": {best:.4}, \"unit\": \"ms\", \
             \"blocks\": [{list}], \"steps\": {steps}, \"params\": {params}, \"macs\": {}, \
             \"batch_ms\": {batch_ms:.4}, \"loss\": {loss:.4}, \"shards\": {shards}, \"threads\": {threads}{phases}}}",
            s.macs
        );
    } else {
        println!("loss: {first:.4} after {WARM_UP} warm-up steps, {loss:.4} after {} more", BLOCKS * steps);
        println!("train(): best of {BLOCKS} blocks of {steps} steps: {best:.4} ms/step ({list})");
        println!(
            "multiply-adds per step (forward + backward products): {}, {:.1} GMAC/s",
            s.macs,
            s.macs as f64 / best / 1e6
        );
        println!("the batch draw alone: {:.2} us/step", batch_ms * 1e3);
        if let Some(p) = split {
            println!(
                "one step by phase (the training loop written out; medians of {} steps):",
                BLOCKS * steps
            );
            for (name, ms) in
                ["batch", "forward", "backward", "optimizer", "running statistics"].iter().zip(p)
            {
                println!("  {name:<20} {:>10.1} us", ms * 1e3);
            }
            println!("  {:<20} {:>10.1} us", "sum", p.iter().sum::<f64>() * 1e3);
        }
    }
    Ok(())
}
