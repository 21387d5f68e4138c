//! `makemore sample`: names from a checkpoint.

use std::path::{Path, PathBuf};

use anyhow::bail;
use mm_models::checkpoint::{AnyModel, CheckpointError, CheckpointMeta, LoadOptions, ModelRef, load_with};
use mm_models::{Model, ModelError, SampleConfig, check_ensemble, sample, sample_counts, sample_ensemble};

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

/// The models of `sample`'s and `eval`'s `--checkpoint PATH...`, loaded as
/// [`load_checkpoint`] loads one, and the smoothing of bigram counts: `--alpha` (`flag`) if
/// given, else the one the checkpoint records (1 for one that does not). `--alpha` for neural
/// models is an error, not a flag silently ignored.
pub fn load_checkpoints(
    paths: &[PathBuf],
    allow_non_finite: bool,
    flag: Option<f32>,
) -> anyhow::Result<(Vec<AnyModel>, f64)> {
    let loaded =
        paths.iter().map(|p| load_checkpoint(p, allow_non_finite)).collect::<anyhow::Result<Vec<_>>>()?;
    let alpha = match (&loaded[..], flag) {
        ([(AnyModel::Counts(_), meta)], flag) => match (flag, meta.alpha) {
            (Some(a), _) => f64::from(a),
            (None, Some(a)) => a,
            (None, None) => {
                // A checkpoint saved before counts recorded their smoothing.
                eprintln!(
                    "note: {} does not record the smoothing it was trained with: using alpha 1 (pass --alpha to choose)",
                    paths[0].display()
                );
                1.0
            }
        },
        (_, None) => 1.0,
        // Counts in an ensemble: the ensemble's own error says so.
        (many, Some(_)) if many.iter().any(|(m, _)| matches!(m, AnyModel::Counts(_))) => 1.0,
        ([(model, _)], Some(_)) => bail!(
            "--alpha is the smoothing of bigram counts, and {} holds a {} model: drop --alpha",
            paths[0].display(),
            model.kind()
        ),
        (_, Some(_)) => {
            bail!("--alpha is the smoothing of bigram counts, which cannot join an ensemble: drop --alpha")
        }
    };
    Ok((loaded.into_iter().map(|(model, _)| model).collect(), alpha))
}

/// The neural models of an ensemble of checkpoints (`models` loaded from `paths`): bigram counts
/// cannot join one, and the models must read alike; else a one-line error naming the
/// checkpoints.
pub fn ensemble<'a>(paths: &[PathBuf], models: &'a [AnyModel]) -> anyhow::Result<Vec<&'a dyn Model>> {
    let neural = paths
        .iter()
        .zip(models)
        .map(|(path, m)| match m.neural() {
            Some(m) => Ok(m),
            None => Err(anyhow::anyhow!(
                "{} holds bigram counts, which cannot join an ensemble (they have no logits to mix): evaluate or sample it alone",
                path.display()
            )),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    match check_ensemble(&neural) {
        Err(ModelError::EnsembleMismatch { member, what, got, first }) => bail!(
            "{} (checkpoint {member}) has {what} {got}, {} (checkpoint 1) has {first}: the checkpoints of an ensemble must share their vocabulary, layout and block_size",
            paths[member - 1].display(),
            paths[0].display()
        ),
        other => other?,
    }
    Ok(neural)
}

/// The longest name `model` samples unless told: for a model that reads whole words (makemore's),
/// the longest its block_size holds, `block_size - 1` characters, as makemore's `print_samples`
/// generates; else [`SampleConfig`]'s guard of 64.
pub fn default_max_len(model: &AnyModel) -> usize {
    match model.neural() {
        Some(m) if m.layout() == mm_data::Layout::Words => m.block_size().saturating_sub(1).max(1),
        _ => SampleConfig::default().max_len,
    }
}

/// Runs `makemore sample`.
pub fn run(args: &SampleArgs) -> anyhow::Result<()> {
    let (models, alpha) = load_checkpoints(&args.checkpoint, args.allow_non_finite, args.alpha)?;
    let max_len = args.max_len.map_or(default_max_len(&models[0]), |n| n as usize);
    if args.prefix.chars().count() > max_len {
        bail!(
            "--prefix {:?} has {} characters, and names from {} have at most {max_len} unless --max-len says more: shorten the prefix or pass --max-len",
            args.prefix,
            args.prefix.chars().count(),
            args.checkpoint[0].display()
        );
    }
    let cfg = SampleConfig {
        n: args.n as usize,
        seed: args.seed,
        temperature: args.temperature,
        top_k: args.top_k.map(|k| k as usize),
        prefix: args.prefix.clone(),
        max_len,
    };
    let names = match models.as_slice() {
        [model] => match model.as_model() {
            ModelRef::Counts(m) => sample_counts(m, alpha, &cfg)?,
            ModelRef::Neural(m) => sample(m, &cfg)?,
        },
        _ => sample_ensemble(&ensemble(&args.checkpoint, &models)?, &cfg)?,
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
