//! Times `train()` on names.txt with the lecture's MLP and defaults (minibatches of 32, SGD):
//! the best of 40 runs of 2,000 steps, per step. This is what `cargo xtask bench` reports as the
//! MLP training step, as a stand-alone target for profilers.
//!
//! `cargo run --release -p mm-models --example train_step [N_HIDDEN [N_EMBD]]` (after `cargo
//! xtask download`). Other sizes than the lecture's (200 and 10) time the same loop on a
//! smaller model: at 1 and 1 its products are next to nothing, and what is left is the part of
//! a step that every size pays (docs/performance.md, session 18).

use std::sync::atomic::AtomicBool;

use mm_data::{Dataset, Examples, Split, SplitSpec, default_dataset_path};
use mm_models::{Mlp, MlpConfig, TrainConfig, train};
use rand::SeedableRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = Dataset::load(default_dataset_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))?;
    let vocab = data.vocab();
    let split = Split::new(data.words(), SplitSpec::default())?;
    let tr = Examples::windows(&split.train, &vocab, 3)?;
    let size = |i: usize, default: usize| -> Result<usize, String> {
        std::env::args().nth(i).map_or(Ok(default), |a| {
            a.parse().map_err(|_| format!("usage: train_step [N_HIDDEN [N_EMBD]] (got {a:?}, not a count)"))
        })
    };
    let config = MlpConfig { n_hidden: size(1, 200)?, n_embd: size(2, 10)?, ..MlpConfig::default() };
    let mut model = Mlp::new(config, &vocab, &mut rand::rngs::StdRng::seed_from_u64(1))?;
    let cfg = TrainConfig { steps: 2000, eval_every: 0, ..TrainConfig::mlp() };
    let stop = AtomicBool::new(false);
    let mut best = f64::INFINITY;
    for _ in 0..40 {
        let t = std::time::Instant::now();
        train(&mut model, &tr, None, &cfg, &stop, |_| ())?;
        best = best.min(t.elapsed().as_secs_f64() * 1e6 / 2000.0);
    }
    println!("train(): best of 40 runs of 2,000 steps: {best:.2} us/step");
    Ok(())
}
