//! Measures the core's FMA peak and the lecture MLP's training step in turn, round after round:
//! whether the step's swings from minute to minute follow the core's clock (then the peak moves
//! with them, and a bound measured beside the step would steady the bench's verdict) or the
//! rest of the host (the peak stays where it was). Each round prints the peak before and after
//! the step (GMAC/s, [`mm_tensor::fma_peak`], about 45 ms each), the step (the best of 10
//! blocks of 2,000 steps of `train()`, as `cargo xtask bench` times it) and the step over its
//! bound at the better of the two peaks (the products at 60% of it; under 1 meets it).
//!
//! `cargo run --release -p mm-models --example peak_beside_step [ROUNDS]` (default 15, after
//! `cargo xtask download`); pin it (`taskset -c 1`) to keep the step and the peak on one core.

use std::sync::atomic::AtomicBool;

use mm_data::{Dataset, Examples, Split, SplitSpec, default_dataset_path};
use mm_models::{Mlp, MlpConfig, TrainConfig, train};
use rand::SeedableRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds = match std::env::args().nth(1) {
        None => 15,
        Some(a) => a.parse().map_err(|_| format!("usage: peak_beside_step [ROUNDS] (got {a:?})"))?,
    };
    let path = mm_tensor::gemm_path();
    let peak = || mm_tensor::fma_peak(path).ok_or("this CPU's FMA peak cannot be measured here");
    let data = Dataset::load(default_dataset_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))?;
    let vocab = data.vocab();
    let split = Split::new(data.words(), SplitSpec::default())?;
    let tr = Examples::windows(&split.train, &vocab, 3)?;
    let config = MlpConfig::default();
    let mut model = Mlp::new(config, &vocab, &mut rand::rngs::StdRng::seed_from_u64(1))?;
    let cfg = TrainConfig { steps: 2000, eval_every: 0, ..TrainConfig::mlp() };
    let b = cfg.batch_size.unwrap_or(1);
    // The products of a step, forward and backward (1,094,400 at the lecture's sizes).
    let macs = 3 * b * (config.block_size * config.n_embd * config.n_hidden + config.n_hidden * vocab.len());
    let stop = AtomicBool::new(false);
    println!("round  peak before  peak after   step (best of 10 x 2,000)   step / bound");
    for round in 1..=rounds {
        let before = peak()? / 1e9;
        let mut best = f64::INFINITY;
        for _ in 0..10 {
            let t = std::time::Instant::now();
            train(&mut model, &tr, None, &cfg, &stop, |_| ())?;
            best = best.min(t.elapsed().as_secs_f64() * 1e6 / 2000.0);
        }
        let after = peak()? / 1e9;
        let bound = macs as f64 / (0.6 * before.max(after) * 1e3); // µs
        println!(
            "{round:>5}  {before:>6.1} GMAC/s {after:>6.1} GMAC/s  {best:>8.2} µs (bound {bound:.2})  {:>10.3}",
            best / bound
        );
    }
    Ok(())
}
