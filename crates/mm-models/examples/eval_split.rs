//! Times the loss over the whole train split of names.txt (182,625 contexts) with the lecture's
//! MLP, without gradients: the best of 20 runs. A stand-alone target for profilers.
//!
//! `cargo run --release -p mm-models --example eval_split` (after `cargo xtask download`)

use mm_data::{Dataset, Examples, Split, SplitSpec, default_dataset_path};
use mm_models::{Mlp, MlpConfig, evaluate};
use rand::SeedableRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = Dataset::load(default_dataset_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))?;
    let vocab = data.vocab();
    let split = Split::new(data.words(), SplitSpec::default())?;
    let tr = Examples::windows(&split.train, &vocab, 3)?;
    let model = Mlp::new(MlpConfig::default(), &vocab, &mut rand::rngs::StdRng::seed_from_u64(1))?;
    let mut best = f64::INFINITY;
    let mut loss = 0.0;
    for _ in 0..20 {
        let t = std::time::Instant::now();
        loss = evaluate(&model, &tr)?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    println!("loss over {} contexts: {loss:.4}; best of 20: {best:.1} ms", tr.len());
    Ok(())
}
