//! `makemore sample`: names from a checkpoint.

use std::path::Path;

use anyhow::bail;
use mm_models::checkpoint::{AnyModel, CheckpointError, CheckpointMeta, LoadOptions, ModelRef, load_with};
use mm_models::{ModelError, SampleConfig, sample, sample_counts};

use crate::cli::SampleArgs;

/// Loads the checkpoint at `path` for `sample`, `eval` and `plot`, with finite weights unless
/// `allow_non_finite`. The loader checks the file's safetensors header before reading the rest,
/// so that `/dev/zero` or a pipe is an error, not memory exhausted.
pub fn load_checkpoint(path: &Path, allow_non_finite: bool) -> anyhow::Result<(AnyModel, CheckpointMeta)> {
    match load_with(path, LoadOptions { allow_non_finite }) {
        Err(ModelError::Checkpoint(CheckpointError::NonFinite { name, count, .. })) => bail!(
            "{}: tensor {name:?} holds {count} NaN or infinite values (the run diverged): retrain it with a smaller learning rate, or pass --allow-non-finite to use it anyway",
            path.display()
        ),
        other => Ok(other?),
    }
}

/// Runs `makemore sample`.
pub fn run(args: &SampleArgs) -> anyhow::Result<()> {
    let (model, _) = load_checkpoint(&args.checkpoint, args.allow_non_finite)?;
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
        // Escaped: a checkpoint's vocabulary may hold characters a terminal would act on (ESC)
        // or that do not show (a zero-width joiner).
        writeln!(out, "{}", crate::data::shown(&name))?;
    }
    Ok(())
}
