//! `makemore sample`: names from a checkpoint.

use mm_models::checkpoint::{ModelRef, load};
use mm_models::{SampleConfig, sample, sample_counts};

use crate::cli::SampleArgs;

/// Runs `makemore sample`.
pub fn run(args: &SampleArgs) -> anyhow::Result<()> {
    let (model, _) = load(&args.checkpoint)?;
    let cfg = SampleConfig {
        n: args.n as usize,
        seed: args.seed,
        temperature: args.temperature,
        top_k: args.top_k.map(|k| k as usize),
        prefix: args.prefix.clone(),
        max_len: args.max_len as usize,
    };
    let names = match model.as_model() {
        ModelRef::Counts(m) => sample_counts(m, f64::from(args.alpha), &cfg)?,
        ModelRef::Neural(m) => sample(m, &cfg)?,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for name in names {
        use std::io::Write;
        writeln!(out, "{name}")?;
    }
    Ok(())
}
