//! An ensemble of neural models, evaluated and sampled as one model: the mixture of their
//! predicted distributions, `p(y) = (1/K) Σ_k softmax(logits_k)(y)`.
//!
//! Why: models trained from different seeds (or of different kinds) make partly independent
//! errors, and averaging their probabilities cancels some of them. The mixture's NLL is never
//! above the mean of its members' NLLs (the logarithm is concave: Jensen's inequality), and is
//! below it whenever they differ: one of issue #14's levers, bought at sampling and evaluation
//! time only (K forward passes), with no training of its own.
//!
//! The PyTorch equivalent averages the members' `F.softmax` outputs:
//!
//! ```python
//! probs = torch.stack([F.softmax(m(x), dim=-1) for m in models]).mean(0)
//! loss = F.nll_loss(torch.log(probs).view(-1, V), y.view(-1), ignore_index=-1)
//! ```
//!
//! computed here stably, as `torch.logsumexp` of the members' `F.log_softmax` (a log-mean-exp),
//! in `f64`, from each member's `f32` logits. The result is handed on as the mixture's *logits*,
//! `z(y) = log Σ_k exp(l_k(y) − (lse_k − lse_0))` with `lse_k` the log-sum-exp of member `k`'s
//! logits `l_k`: the mixture's log-probabilities `log p(y)` up to the row's constant
//! `lse_0 + log K` (which the softmax ignores), chosen so that an ensemble of one model passes
//! that model's logits through unchanged. So the rest is the single model's code: the loss is
//! the engine's fused cross-entropy of those logits, chunked and threaded as
//! [`crate::evaluate`] (an ensemble of one gives `evaluate`'s loss to the bit), and sampling is
//! [`crate::sample`]'s loop, each member's next-character logits from its decoder or its full
//! forward pass as `sample` gets them (an ensemble of one draws `sample`'s names for the same
//! seed). Temperature and top-k apply to the
//! mixture, as to any model: with temperature 1 the names are drawn from `p` itself.
//!
//! The members must read alike: the same vocabulary, layout (windows or words) and block size,
//! or [`ModelError::EnsembleMismatch`] names the first difference. Their kinds and sizes may
//! differ (a Transformer with a GRU, an MLP with a WaveNet of the same context). The counting
//! model has no logits of its own to mix: ensembles are of neural models.

use mm_data::{Examples, Layout};
use mm_tensor::{ParamStore, Tape};
use ndarray::Array2;

use crate::sample::{NextLogits, sample_with};
use crate::train::{check_examples, evaluate_chunks};
use crate::{Model, ModelError, Result, SampleConfig};

/// The mean NLL per target of the ensemble `models` (their mixture, see the [module
/// docs](self)) over all of `examples`, cut as the models read them: [`crate::evaluate`] of the
/// mixture, in the same chunks of about 1,024 targets on the machine's cores, the same for any
/// number of cores. An ensemble of one model gives [`crate::evaluate`]'s loss, bit for bit.
///
/// ```no_run
/// # fn demo(a: &dyn mm_models::Model, b: &dyn mm_models::Model, dev: &mm_data::Examples)
/// # -> mm_models::Result<()> {
/// let mixture = mm_models::evaluate_ensemble(&[a, b], dev)?;
/// let mean = (mm_models::evaluate(a, dev)? + mm_models::evaluate(b, dev)?) / 2.0;
/// assert!(mixture <= mean + 1e-6); // Jensen
/// # Ok(()) }
/// ```
pub fn evaluate_ensemble(models: &[&dyn Model], examples: &Examples) -> Result<f64> {
    check_ensemble(models)?;
    if examples.is_empty() {
        return Err(ModelError::Config("no examples to evaluate".into()));
    }
    check_examples(models[0], examples)?;
    // A tape per member (each records the same ops chunk after chunk, so its buffers are
    // reused), one for the loss, with no parameters, and the mixture's logits.
    let state = || (models.iter().map(|_| Tape::new()).collect::<Vec<_>>(), Tape::new(), Vec::new());
    let empty = ParamStore::new();
    evaluate_chunks(
        examples,
        state,
        |(tapes, loss_tape, mixed): &mut (Vec<Tape<f32>>, Tape<f32>, Vec<f32>), x, targets| {
            let mut logits = Vec::with_capacity(models.len());
            for (m, tape) in models.iter().zip(tapes.iter_mut()) {
                let g = tape.no_grad(m.params());
                let l = m.forward(&g, x);
                g.check()?;
                logits.push(l.to_array());
            }
            let shape = logits[0].shape().to_vec();
            if let Some((k, l)) = logits.iter().enumerate().find(|(_, l)| l.shape() != shape.as_slice()) {
                return Err(ModelError::Config(format!(
                    "model {} of the ensemble gave logits of shape {:?} where model 1 gave {shape:?}",
                    k + 1,
                    l.shape()
                )));
            }
            let rows: Vec<&[f32]> =
                logits.iter().map(|l| l.as_slice().expect("a node's value is contiguous")).collect();
            mix(&rows, *shape.last().expect("logits have a vocabulary axis"), mixed);
            let g = loss_tape.no_grad(&empty);
            Ok(g.input(&shape, mixed).cross_entropy(targets).item()?)
        },
    )
}

/// Samples `cfg.n` items from the ensemble `models`: at each step the next character is drawn
/// from the mixture of the members' next-character distributions (see the [module docs](self)),
/// each member's logits from its [`crate::Decoder`] when it has one, else from its forward pass
/// over the prefix, as [`crate::sample`]. The same seed gives the same samples, and an ensemble
/// of one model gives [`crate::sample`]'s.
///
/// ```no_run
/// # fn demo(a: &dyn mm_models::Model, b: &dyn mm_models::Model) -> mm_models::Result<()> {
/// let cfg = mm_models::SampleConfig { n: 5, ..Default::default() };
/// for name in mm_models::sample_ensemble(&[a, b], &cfg)? {
///     println!("{name}");
/// }
/// # Ok(()) }
/// ```
pub fn sample_ensemble(models: &[&dyn Model], cfg: &SampleConfig) -> Result<Vec<String>> {
    check_ensemble(models)?;
    let mut members: Vec<_> = models.iter().map(|&m| NextLogits::new(m, cfg.n)).collect();
    sample_with(models[0].vocab(), cfg, |first_step, active, out| {
        let logits =
            members.iter_mut().map(|m| m.logits(first_step, active, out)).collect::<Result<Vec<_>>>()?;
        let classes = logits[0].ncols();
        if let Some((k, l)) = logits.iter().enumerate().find(|(_, l)| l.dim() != logits[0].dim()) {
            return Err(ModelError::Config(format!(
                "model {} of the ensemble gave next-character logits of shape {:?} where model 1 gave {:?}",
                k + 1,
                l.dim(),
                logits[0].dim()
            )));
        }
        let logits: Vec<_> = logits.iter().map(|l| l.as_standard_layout()).collect();
        let rows: Vec<&[f32]> =
            logits.iter().map(|l| l.as_slice().expect("an array in standard layout is a slice")).collect();
        let mut mixed = Vec::new();
        mix(&rows, classes, &mut mixed);
        Ok(Array2::from_shape_vec(logits[0].dim(), mixed).map_err(mm_tensor::TensorError::from)?)
    })
}

/// Checks that `models` can form an ensemble: at least one, and each reading as the first does
/// (vocabulary, layout, block size); else the error naming the first difference, with the
/// models counted from 1.
pub fn check_ensemble(models: &[&dyn Model]) -> Result<()> {
    let Some(first) = models.first() else {
        return Err(ModelError::Config("an ensemble needs at least one model".into()));
    };
    let want = reading(*first);
    for (i, m) in models.iter().enumerate().skip(1) {
        for ((what, got), (_, first)) in reading(*m).into_iter().zip(want.clone()) {
            if got != first {
                return Err(ModelError::EnsembleMismatch { member: i + 1, what, got, first });
            }
        }
    }
    Ok(())
}

/// How `m` reads, as the ensemble's error names it: its vocabulary, layout and block size.
fn reading(m: &dyn Model) -> [(&'static str, String); 3] {
    let layout = match m.layout() {
        Layout::Windows => "windows",
        Layout::Words => "words",
    };
    [
        ("vocabulary", format!("{:?}", m.vocab().itos().iter().collect::<String>())),
        ("layout", layout.to_string()),
        ("block_size", m.block_size().to_string()),
    ]
}

/// The mixture's logits, `out[r, y]`, from its `K` members' logits `members[k][r, y]` (each
/// `[rows, classes]`, row-major): per row, with `lse_k` the log-sum-exp of member `k`'s row,
///
/// `out[y] = log Σ_k exp(l_k[y] − (lse_k − lse_0))`,
///
/// which is `log Σ_k softmax(l_k)[y] + lse_0`: the mixture's log-probability `log p(y)` up to
/// the row's constant `lse_0 + log K`, which a softmax or a cross-entropy ignores. Each term is
/// a member's logit shifted to model 0's normalisation, of the size of a logit, and the sum is
/// taken as a log-sum-exp (its largest term factored out), in `f64`: stable for any logits.
/// With one member the shift is exactly 0, the sum `exp(0) = 1` and its log 0, so `out` is that
/// member's logits, bit for bit.
fn mix(members: &[&[f32]], classes: usize, out: &mut Vec<f32>) {
    let len = members[0].len();
    out.clear();
    out.reserve(len);
    let mut shift = vec![0.0f64; members.len()];
    let mut terms = vec![0.0f64; members.len()];
    for start in (0..len).step_by(classes.max(1)) {
        let row = |k: usize| &members[k][start..start + classes];
        let lse0 = log_sum_exp(row(0).iter().map(|&l| f64::from(l)));
        for (k, s) in shift.iter_mut().enumerate() {
            *s = log_sum_exp(row(k).iter().map(|&l| f64::from(l))) - lse0;
        }
        for y in 0..classes {
            for (k, t) in terms.iter_mut().enumerate() {
                *t = f64::from(row(k)[y]) - shift[k];
            }
            out.push(log_sum_exp(terms.iter().copied()) as f32);
        }
    }
}

/// `log Σ exp(x)`, its largest term factored out: `max + ln(1 + Σ_{others} exp(x − max))`
/// (`-inf` for no terms or all `-inf`; NaN if any is NaN). When the others add nothing (one
/// term, or the rest underflow) it is `max` itself, bit for bit (a `-0.0` stays `-0.0`).
fn log_sum_exp(x: impl Iterator<Item = f64> + Clone) -> f64 {
    let mut top = None::<(usize, f64)>;
    for (i, v) in x.clone().enumerate() {
        if v.is_nan() {
            return v;
        }
        if top.is_none_or(|(_, m)| v > m) {
            top = Some((i, v));
        }
    }
    let Some((at, max)) = top else { return f64::NEG_INFINITY };
    if max == f64::NEG_INFINITY {
        return max;
    }
    let rest: f64 = x.enumerate().filter(|&(i, _)| i != at).map(|(_, v)| (v - max).exp()).sum();
    if rest == 0.0 { max } else { max + rest.ln_1p() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `log Σ_k softmax(l_k)[y]` in the plain way, for rows of modest logits.
    fn log_mixture(members: &[&[f32]], y: usize) -> f64 {
        let p: f64 = members
            .iter()
            .map(|l| {
                let z: f64 = l.iter().map(|&v| f64::from(v).exp()).sum();
                f64::from(l[y]).exp() / z
            })
            .sum();
        (p / members.len() as f64).ln()
    }

    #[test]
    fn one_member_passes_its_logits_through_and_two_give_the_mixture() {
        let a = [1.5f32, -2.0, 0.25, 3.0, -0.5, 0.0];
        let b = [-1.0f32, 2.0, 0.5, 0.0, 0.0, 7.0];
        let mut out = Vec::new();
        mix(&[&a], 3, &mut out);
        assert_eq!(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), a.map(f32::to_bits));
        mix(&[&a, &b], 3, &mut out);
        for r in 0..2 {
            let row = |x: &[f32; 6]| x[3 * r..3 * r + 3].to_vec();
            let (ra, rb) = (row(&a), row(&b));
            // The mixture's log-probabilities: the logits' own log-softmax.
            let z = &out[3 * r..3 * r + 3];
            let lse = log_sum_exp(z.iter().map(|&v| f64::from(v)));
            for (y, &zy) in z.iter().enumerate() {
                let want = log_mixture(&[&ra, &rb], y);
                assert!((f64::from(zy) - lse - want).abs() < 1e-6, "row {r}, class {y}");
            }
        }
    }

    #[test]
    fn mixing_is_stable_for_large_logits() {
        // exp(1000) overflows: a plain mixture is NaN, the log-sum-exp is not.
        let a = [1000.0f32, 0.0, -1000.0];
        let b = [0.0f32, 1000.0, -1000.0];
        let mut out = Vec::new();
        mix(&[&a, &b], 3, &mut out);
        assert!(out.iter().all(|v| v.is_finite()), "{out:?}");
        // Each of the first two classes has half the mass; the third none to speak of.
        let lse = log_sum_exp(out.iter().map(|&v| f64::from(v)));
        assert!((f64::from(out[0]) - lse - 0.5f64.ln()).abs() < 1e-6);
        assert!((f64::from(out[1]) - lse - 0.5f64.ln()).abs() < 1e-6);
        assert!(f64::from(out[2]) - lse < -1000.0);
    }
}
