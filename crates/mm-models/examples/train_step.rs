//! Times `train()` on names.txt with the lecture's MLP and defaults (minibatches of 32, SGD):
//! the best of 40 runs of 2,000 steps, per step. This is what `cargo xtask bench` reports as the
//! MLP training step, as a stand-alone target for profilers.
//!
//! `cargo run --release -p mm-models --example train_step` (after `cargo xtask download`)

use std::sync::atomic::AtomicBool;

use mm_data::{Dataset, Examples, Split, SplitSpec, default_dataset_path};
use mm_models::{Mlp, MlpConfig, TrainConfig, train};
use rand::SeedableRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = Dataset::load(default_dataset_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))?;
    let vocab = data.vocab();
    let split = Split::new(data.words(), SplitSpec::default())?;
    let tr = Examples::windows(&split.train, &vocab, 3)?;
    let mut model = Mlp::new(MlpConfig::default(), &vocab, &mut rand::rngs::StdRng::seed_from_u64(1))?;
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
