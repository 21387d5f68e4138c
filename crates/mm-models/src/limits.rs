//! The ranges of a model's settings and of a run's training settings, in one place.
//!
//! Why: a setting can come from a flag (`--block-size`), or from a file: a run's `summary.json`
//! read by `train --resume`, a `--spec FILE`, a checkpoint's metadata. A value the flags refuse
//! must be refused from a file too, before anything is sized by it: an edited `summary.json` with
//! a block size of 10^6 or a batch of 10^12 would otherwise allocate terabytes and abort. So the
//! command line parses its flags with these ranges, and [`Spec::check_limits`] and
//! [`TrainConfig::check_limits`] check the same ranges on settings read from anywhere.

use std::ops::RangeInclusive;

use crate::{Schedule, Spec, TrainConfig};

/// Characters of context (the lectures' models) or the longest sequence (makemore.py's).
pub const BLOCK_SIZE: RangeInclusive<u64> = 1..=1024;
/// Dimensions of a character's embedding.
pub const N_EMBD: RangeInclusive<u64> = 1..=4096;
/// Units of a hidden layer (the lectures' MLPs, the WaveNet).
pub const N_HIDDEN: RangeInclusive<u64> = 1..=65536;
/// Transformer blocks.
pub const N_LAYER: RangeInclusive<u64> = 1..=256;
/// Attention heads per block.
pub const N_HEAD: RangeInclusive<u64> = 1..=256;
/// The second width of makemore.py's BoW, RNN, GRU and MLP.
pub const N_EMBD2: RangeInclusive<u64> = 1..=65536;
/// Examples per training step.
pub const BATCH_SIZE: RangeInclusive<u64> = 1..=1_000_000;
/// Optimisation steps of a run.
pub const STEPS: RangeInclusive<u64> = 1..=100_000_000;
/// Shards of a training step's batch ([`TrainConfig::shards`]).
pub const SHARDS: RangeInclusive<u64> = 1..=1024;
/// Threads of a sharded training step ([`TrainConfig::threads`]; 0 for one per core).
pub const THREADS: RangeInclusive<u64> = 0..=1024;

/// The range of the size setting `key` of a spec (`block_size`, `n_embd`, ...), if it is one.
pub fn size_range(key: &str) -> Option<RangeInclusive<u64>> {
    Some(match key {
        "block_size" => BLOCK_SIZE,
        "n_embd" => N_EMBD,
        "n_hidden" => N_HIDDEN,
        "n_layer" => N_LAYER,
        "n_head" => N_HEAD,
        "n_embd2" => N_EMBD2,
        "batch_size" => BATCH_SIZE,
        "steps" => STEPS,
        "warmup" => 0..=*STEPS.end(),
        _ => return None,
    })
}

/// What a rate (a learning rate, a weight decay, a regularisation strength, a smoothing) must be.
pub const RATE: &str = "a finite number >= 0";
/// What a fraction (a momentum, AdamW's betas) must be.
pub const FRACTION: &str = "in [0, 1)";

/// Whether `v` is a rate: finite and not negative.
pub fn is_rate(v: f32) -> bool {
    v.is_finite() && v >= 0.0
}

/// Whether `v` is a fraction: in [0, 1).
pub fn is_fraction(v: f32) -> bool {
    (0.0..1.0).contains(&v)
}

/// A setting outside its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key} {value} is not {allowed}")]
pub struct LimitError {
    /// The setting (`block_size`, `batch_size`, `lr`, ...).
    pub key: String,
    /// Its value, as text.
    pub value: String,
    /// What it must be (`in 1..=1024`, `a finite number >= 0`, ...).
    pub allowed: String,
}

/// Checks the size `value` of setting `key` against `range`.
pub fn check_size(key: &str, value: u64, range: &RangeInclusive<u64>) -> Result<(), LimitError> {
    if range.contains(&value) {
        return Ok(());
    }
    let allowed = format!("in {}..={}", range.start(), range.end());
    Err(LimitError { key: key.into(), value: value.to_string(), allowed })
}

/// Checks that setting `key` is a rate ([`is_rate`]).
pub fn check_rate(key: &str, value: f32) -> Result<(), LimitError> {
    if is_rate(value) {
        return Ok(());
    }
    Err(LimitError { key: key.into(), value: value.to_string(), allowed: RATE.into() })
}

/// Checks that setting `key` is a fraction ([`is_fraction`]).
pub fn check_fraction(key: &str, value: f32) -> Result<(), LimitError> {
    if is_fraction(value) {
        return Ok(());
    }
    Err(LimitError { key: key.into(), value: value.to_string(), allowed: FRACTION.into() })
}

impl Spec {
    /// Checks every setting of the spec against the ranges the command line's flags have: sizes
    /// ([`size_range`]), `momentum` and `dropout` fractions, `reg` and the Transformer's
    /// training levers (`lr`, `min_lr`, `weight_decay`, `grad_clip`) rates. Settings read from a file go
    /// through it before anything is allocated for them.
    ///
    /// ```
    /// use mm_models::Spec;
    /// let spec = Spec::parse("mlp", |k| (k == "block_size").then(|| "1000000".into()), false)?;
    /// let err = spec.check_limits().unwrap_err();
    /// assert_eq!(err.to_string(), "block_size 1000000 is not in 1..=1024");
    /// assert!(Spec::all().iter().all(|s| s.check_limits().is_ok()));
    /// # Ok::<(), mm_models::SpecError>(())
    /// ```
    pub fn check_limits(&self) -> Result<(), LimitError> {
        for key in self.settings() {
            let Some(text) = self.setting(&key) else { continue };
            let bad = || LimitError { key: key.clone(), value: text.clone(), allowed: "a number".into() };
            if let Some(range) = size_range(&key) {
                check_size(&key, text.parse().map_err(|_| bad())?, &range)?;
            } else if matches!(key.as_str(), "momentum" | "dropout") {
                check_fraction(&key, text.parse().map_err(|_| bad())?)?;
            } else if matches!(key.as_str(), "reg" | "lr" | "min_lr" | "weight_decay" | "grad_clip") {
                check_rate(&key, text.parse().map_err(|_| bad())?)?;
            }
        }
        Ok(())
    }
}

impl TrainConfig {
    /// Checks the training settings against the ranges of the command line's flags: `steps`
    /// ([`STEPS`]), `batch_size` ([`BATCH_SIZE`]), `shards` ([`SHARDS`]), `threads`
    /// ([`THREADS`]), the learning rates and the weight decay (rates), AdamW's betas (fractions).
    ///
    /// ```
    /// use mm_models::TrainConfig;
    /// assert!(TrainConfig::mlp().check_limits().is_ok());
    /// let huge = TrainConfig { batch_size: Some(1_000_000_000_000), ..TrainConfig::mlp() };
    /// assert_eq!(huge.check_limits().unwrap_err().to_string(), "batch_size 1000000000000 is not in 1..=1000000");
    /// ```
    pub fn check_limits(&self) -> Result<(), LimitError> {
        check_size("steps", self.steps as u64, &STEPS)?;
        if let Some(b) = self.batch_size {
            check_size("batch_size", b as u64, &BATCH_SIZE)?;
        }
        match &self.schedule {
            Schedule::Constant(lr) => check_rate("lr", *lr)?,
            Schedule::Step { lr, then, .. } => {
                check_rate("lr", *lr)?;
                check_rate("lr_decayed", *then)?;
            }
            Schedule::Piecewise(points) => {
                for (_, lr) in points {
                    check_rate("lr", *lr)?;
                }
            }
            Schedule::WarmupCosine { lr, warmup, min_lr, .. } => {
                check_rate("lr", *lr)?;
                check_rate("min_lr", *min_lr)?;
                check_size("warmup", *warmup as u64, &(0..=*STEPS.end()))?;
            }
        }
        check_fraction("beta1", self.betas.0)?;
        check_fraction("beta2", self.betas.1)?;
        check_rate("grad_clip", self.grad_clip)?;
        check_size("shards", self.shards as u64, &SHARDS)?;
        check_size("threads", self.threads as u64, &THREADS)?;
        check_rate("weight_decay", self.weight_decay)
    }
}

#[cfg(test)]
mod tests {
    use crate::Spec;

    /// The Transformer's levers, read from a spec file, get their flags' ranges.
    #[test]
    fn the_transformers_levers_are_range_checked() {
        for (key, value, want) in [
            ("dropout", "1.5", "dropout 1.5 is not in [0, 1)"),
            ("lr", "-1", "lr -1 is not a finite number >= 0"),
            ("grad_clip", "-0.5", "grad_clip -0.5 is not a finite number >= 0"),
            ("batch_size", "0", "batch_size 0 is not in 1..=1000000"),
            ("warmup", "1000000000", "warmup 1000000000 is not in 0..=100000000"),
        ] {
            let spec = Spec::parse("transformer", |k| (k == key).then(|| value.to_string()), false).unwrap();
            assert_eq!(spec.check_limits().unwrap_err().to_string(), want, "{key}");
        }
    }
}
