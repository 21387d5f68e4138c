//! The counting model of makemore part 1: counts, the NLL with and without smoothing, the top
//! bigrams, and 10 samples.
//!
//! `cargo run --release -p mm-models --example bigram_counts` (after `cargo xtask download`)

use mm_data::{Dataset, default_dataset_path};
use mm_models::{BigramCounts, SampleConfig, sample_counts};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = Dataset::load(default_dataset_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))?;
    let model = BigramCounts::fit(data.words(), &data.vocab())?;
    println!("{} bigrams", model.counts().sum());
    for alpha in [1.0, 0.0] {
        println!("average NLL with alpha {alpha}: {:.6}", model.nll(data.words(), alpha)?);
    }
    println!("top bigrams: {:?}", model.top(4));
    let cfg = SampleConfig { n: 10, seed: 2147483647, ..SampleConfig::default() };
    println!("samples: {}", sample_counts(&model, 1.0, &cfg)?.join(", "));
    Ok(())
}
