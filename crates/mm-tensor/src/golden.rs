//! Runs reference cases in the `mm-golden/1` format (PyTorch forward values and gradients) through
//! the engine. Enabled by the `golden` feature; used by the crate's tests and by
//! `cargo xtask golden FILE...`.
//!
//! A case names an op, its float inputs and integer indices, the expected output, an `upstream`
//! tensor and the expected gradients of `L = sum(output * upstream)` with respect to each input.
//! An element passes when `|got - want| <= atol + rtol * |want|`.

use std::collections::BTreeMap;

use ndarray::{ArrayD, IxDyn};
use serde::Deserialize;

use crate::{Float, Grads, ParamStore, Tape, TensorError, Var};

/// A file of golden cases.
#[derive(Debug, Clone, Deserialize)]
pub struct GoldenFile {
    /// The format tag, `mm-golden/1`.
    pub format: String,
    /// The cases.
    pub cases: Vec<Case>,
}

/// A float tensor of a case: shape and row-major data.
#[derive(Debug, Clone, Deserialize)]
pub struct FloatTensor {
    /// The dimensions (empty for a scalar).
    pub shape: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<f64>,
}

/// An integer tensor of a case (ids or targets).
#[derive(Debug, Clone, Deserialize)]
pub struct IndexTensor {
    /// The dimensions.
    pub shape: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<i64>,
}

/// One reference case.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    /// A unique name, e.g. `matmul/32x30@30x200`.
    pub name: String,
    /// The op, e.g. `matmul`, `cross_entropy`, `mlp`.
    pub op: String,
    /// Attributes: `axis`, `keepdim`, `exponent`, `shape`, `reg`, `block_size`, ...
    #[serde(default)]
    pub attrs: BTreeMap<String, serde_json::Value>,
    /// The float inputs (the tensors differentiated against).
    pub inputs: Vec<FloatTensor>,
    /// Integer inputs: ids, targets.
    #[serde(default)]
    pub indices: Vec<IndexTensor>,
    /// The expected forward value.
    pub output: FloatTensor,
    /// The upstream gradient, shaped like the output.
    pub upstream: FloatTensor,
    /// The expected gradient of each input.
    pub grads: Vec<FloatTensor>,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
}

/// The worst element of a failing comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// What was compared: `output` or `grad[i]`.
    pub what: String,
    /// The flat index of the worst element (or `None` for a shape mismatch).
    pub index: Option<usize>,
    /// The engine's value.
    pub got: f64,
    /// The reference value.
    pub want: f64,
    /// How many elements failed.
    pub failed: usize,
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every element of the output and every gradient is within tolerance.
    Pass,
    /// Some comparison failed; the worst element of each failing comparison.
    Fail(Vec<Mismatch>),
    /// The case could not be run: an unknown op, a missing attribute, or an engine error.
    Error(String),
    /// The case is of a kind this harness does not build (a whole model: the model crates run
    /// those); the reason says which.
    Skipped(String),
}

/// Model-level case ops: whole makemore models, built by the model crate (`mm-models`), not by
/// this op-level harness, which reports them as [`Outcome::Skipped`].
pub const MODEL_OPS: &[&str] = &["transformer", "bow", "rnn", "gru", "mlp_makemore"];

/// Why this harness skips `case`, if it does: a model case ([`MODEL_OPS`]).
pub fn skip_reason(case: &Case) -> Option<String> {
    MODEL_OPS
        .contains(&case.op.as_str())
        .then(|| format!("{} is a model case: mm-models builds makemore's model and runs it", case.op))
}

/// Parses a golden file (any file of the `mm-golden/1` format).
pub fn parse(text: &str) -> Result<GoldenFile, String> {
    let file: GoldenFile = serde_json::from_str(text).map_err(|e| format!("not a golden file: {e}"))?;
    if file.format != "mm-golden/1" {
        return Err(format!("unknown format {:?} (expected \"mm-golden/1\")", file.format));
    }
    Ok(file)
}

/// Runs one case in precision `T`.
pub fn run<T: Float>(case: &Case) -> Outcome {
    if let Some(why) = skip_reason(case) {
        return Outcome::Skipped(why);
    }
    match evaluate::<T>(case) {
        Ok((output, grads)) => judge::<T>(case, &output, &grads),
        Err(e) => Outcome::Error(e),
    }
}

/// Judges an `output` and `grads` (one per input, in order) computed in precision `T` against
/// `case`'s expected values: [`Outcome::Pass`], or the worst element of each failing comparison.
/// The model crate's runner of model cases judges with it too.
///
/// In `f32` an element passes within the file's tolerances, `atol + rtol · |want|`. The expected
/// values are float64 math on the same inputs, so in `f64` the tolerances are those of `f64`:
/// [`F64_RTOL`], with an absolute part scaled to the tensor's largest magnitude (a gradient whose
/// values are all near 1e-11 is checked to its own digits, not passed by a fixed 1e-5).
pub fn judge<T: Float>(case: &Case, output: &ArrayD<f64>, grads: &[ArrayD<f64>]) -> Outcome {
    if grads.len() != case.grads.len() {
        return Outcome::Error(format!("{} gradients expected, {} computed", case.grads.len(), grads.len()));
    }
    let mut fails = Vec::new();
    fails.extend(compare::<T>("output", output, &case.output, case));
    for (i, (got, want)) in grads.iter().zip(&case.grads).enumerate() {
        fails.extend(compare::<T>(&format!("grad[{i}]"), got, want, case));
    }
    if fails.is_empty() { Outcome::Pass } else { Outcome::Fail(fails) }
}

/// The relative tolerance of the `f64` comparisons (and, times each tensor's largest magnitude,
/// their absolute one).
pub const F64_RTOL: f64 = 1e-9;

fn compare<T: Float>(what: &str, got: &ArrayD<f64>, want: &FloatTensor, case: &Case) -> Option<Mismatch> {
    if got.shape() != want.shape.as_slice() || want.data.len() != got.len() {
        let got_shape = format!("{:?}", got.shape());
        return Some(Mismatch {
            what: format!("{what} shape {got_shape} vs {:?}", want.shape),
            index: None,
            got: f64::NAN,
            want: f64::NAN,
            failed: want.data.len().max(got.len()),
        });
    }
    let (atol, rtol) = if T::NAME == "f64" {
        let scale = want.data.iter().fold(0.0f64, |m, w| m.max(w.abs()));
        (F64_RTOL * scale, F64_RTOL)
    } else {
        (case.atol, case.rtol)
    };
    let mut worst: Option<(usize, f64)> = None;
    let mut failed = 0;
    for (i, (&g, &w)) in got.iter().zip(&want.data).enumerate() {
        let excess = (g - w).abs() - (atol + rtol * w.abs());
        if excess > 0.0 || excess.is_nan() {
            failed += 1;
            let score = if excess.is_nan() { f64::INFINITY } else { excess };
            if worst.is_none_or(|(_, s)| score > s) {
                worst = Some((i, score));
            }
        }
    }
    worst.map(|(i, _)| Mismatch {
        what: what.to_string(),
        index: Some(i),
        got: got.as_slice().map_or(f64::NAN, |s| s[i]),
        want: want.data[i],
        failed,
    })
}

fn to_array<T: Float>(t: &FloatTensor) -> Result<ArrayD<T>, String> {
    ArrayD::from_shape_vec(IxDyn(&t.shape), t.data.iter().map(|&x| T::of(x)).collect())
        .map_err(|e| format!("tensor of shape {:?}: {e}", t.shape))
}

fn ids(case: &Case, i: usize) -> Result<ArrayD<u32>, String> {
    let t = case.indices.get(i).ok_or_else(|| format!("{}: index tensor {i} is missing", case.op))?;
    let data = t
        .data
        .iter()
        .map(|&x| u32::try_from(x).map_err(|_| format!("{}: index {x} is negative or too large", case.op)))
        .collect::<Result<Vec<_>, _>>()?;
    ArrayD::from_shape_vec(IxDyn(&t.shape), data).map_err(|e| e.to_string())
}

fn attr_f64(case: &Case, key: &str) -> Result<f64, String> {
    case.attrs
        .get(key)
        .and_then(|v| v.as_f64())
        .ok_or_else(|| format!("{}: attribute {key:?} is missing", case.op))
}

fn targets(case: &Case, i: usize) -> Result<ArrayD<i64>, String> {
    let t = case.indices.get(i).ok_or_else(|| format!("{}: index tensor {i} is missing", case.op))?;
    ArrayD::from_shape_vec(IxDyn(&t.shape), t.data.clone()).map_err(|e| e.to_string())
}

/// `attrs.shape` of a reshape of `numel` elements, where one `-1` stands for what the others
/// leave (as `torch.reshape`).
fn attr_shape(case: &Case, numel: usize) -> Result<Vec<usize>, String> {
    let dims: Vec<i64> = case
        .attrs
        .get("shape")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .ok_or("reshape: attribute \"shape\" is missing or not a list of integers")?;
    let known = dims.iter().filter(|&&d| d >= 0).try_fold(1usize, |n, &d| n.checked_mul(d as usize));
    let known = known.ok_or_else(|| format!("reshape: shape {dims:?} has too many elements"))?;
    match dims.iter().filter(|&&d| d < 0).count() {
        0 => Ok(dims.iter().map(|&d| d as usize).collect()),
        1 if known > 0 && numel.is_multiple_of(known) && dims.contains(&-1) => {
            Ok(dims.iter().map(|&d| if d < 0 { numel / known } else { d as usize }).collect())
        }
        _ => Err(format!("reshape: shape {dims:?} does not fit {numel} elements")),
    }
}

/// An axis as PyTorch takes one: an integer, negative ones counting from the end of `rank`.
fn axis_in(case: &Case, v: &serde_json::Value, rank: usize) -> Result<usize, String> {
    let a = v.as_i64().ok_or_else(|| format!("{}: axis {v} is not an integer", case.op))?;
    let a = if a < 0 { a + rank as i64 } else { a };
    usize::try_from(a)
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| format!("{}: axis {v} is out of range for rank {rank}", case.op))
}

/// The axis `attrs[key]` (negative ones count from the end of `rank`).
fn attr_axis_at(case: &Case, key: &str, rank: usize) -> Result<usize, String> {
    let v = case.attrs.get(key).ok_or_else(|| format!("{}: attribute {key:?} is missing", case.op))?;
    axis_in(case, v, rank)
}

/// The list of axes `attrs[key]` (negative ones count from the end of `rank`).
fn attr_axes(case: &Case, key: &str, rank: usize) -> Result<Vec<usize>, String> {
    let list = case
        .attrs
        .get(key)
        .and_then(|v| v.as_array())
        .ok_or_else(|| format!("{}: attribute {key:?} is missing or not a list of axes", case.op))?;
    list.iter().map(|v| axis_in(case, v, rank)).collect()
}

fn attr_usize(case: &Case, key: &str) -> Result<usize, String> {
    case.attrs
        .get(key)
        .and_then(|v| v.as_u64())
        .map(|v| v as usize)
        .ok_or_else(|| format!("{}: attribute {key:?} is missing", case.op))
}

/// `attrs.axis` of a reduction resolved against a rank: `None` for null or an empty list (every
/// axis, as `x.sum(dim=())` in PyTorch), else one axis or a list of them (`torch.sum(x, dim=(0,
/// 2))`), negative ones counting from the end.
fn attr_axis(case: &Case, rank: usize) -> Result<Option<Vec<usize>>, String> {
    match case.attrs.get("axis") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Array(list)) if list.is_empty() => Ok(None),
        Some(serde_json::Value::Array(_)) => attr_axes(case, "axis", rank).map(Some),
        Some(v) => axis_in(case, v, rank).map(|a| Some(vec![a])),
    }
}

/// Builds the case's computation on `g` from its inputs `x`.
fn build<'g, T: Float>(case: &Case, x: &[Var<'g, T>]) -> Result<Var<'g, T>, String> {
    let arity = match case.op.as_str() {
        "add" | "sub" | "mul" | "div" | "matmul" => 2,
        "layer_norm" | "batch_norm" | "attention" => 3,
        "mlp" => 5,
        "concat" => x.len().max(1),
        "pow" | "neg" | "exp" | "log" | "sqrt" | "tanh" | "relu" | "sigmoid" | "gelu" | "sum" | "mean"
        | "softmax" | "log_softmax" | "reshape" | "transpose" | "permute" | "narrow" | "embedding"
        | "cross_entropy" | "bigram_nn" => 1,
        other => return Err(format!("unknown op {other:?}")),
    };
    if x.len() != arity {
        return Err(format!("{}: expected {arity} inputs, got {}", case.op, x.len()));
    }
    let e = |r: Result<Var<'g, T>, TensorError>| r.map_err(|e| e.to_string());
    let a = x[0];
    let rank = a.shape().rank();
    Ok(match case.op.as_str() {
        "add" => e(a.try_add(x[1]))?,
        "sub" => e(a.try_sub(x[1]))?,
        "mul" => e(a.try_mul(x[1]))?,
        "div" => e(a.try_div(x[1]))?,
        "matmul" => e(a.try_matmul(x[1]))?,
        "pow" => a.pow(attr_f64(case, "exponent")?),
        "neg" => -a,
        "exp" => a.exp(),
        "log" => a.log(),
        "tanh" => a.tanh(),
        "relu" => a.relu(),
        "sigmoid" => a.sigmoid(),
        "sqrt" => a.sqrt(),
        "gelu" => match case.attrs.get("approximate").and_then(|v| v.as_str()) {
            Some("tanh") => a.gelu(),
            other => return Err(format!("gelu: approximate {other:?} is not supported (only \"tanh\")")),
        },
        "permute" => e(a.try_permute(&attr_axes(case, "dims", rank)?))?,
        "narrow" => {
            let (axis, start) = (attr_axis_at(case, "axis", rank)?, attr_usize(case, "start")?);
            e(a.try_narrow(axis, start, attr_usize(case, "length")?))?
        }
        "concat" => e(a.graph().try_concat(x, attr_axis_at(case, "axis", rank)?))?,
        "layer_norm" => e(a.try_layer_norm(x[1], x[2], attr_f64(case, "eps")?))?,
        "batch_norm" => {
            let (axes, eps) = (attr_axes(case, "axes", rank)?, attr_f64(case, "eps")?);
            e(a.try_batch_norm(x[1], x[2], &axes, attr_usize(case, "correction")?, eps))?
        }
        "attention" => {
            let causal = case.attrs.get("causal").and_then(|v| v.as_bool()).unwrap_or(true);
            let scale = case.attrs.get("scale").and_then(|v| v.as_str()).unwrap_or("1/sqrt(head_size)");
            if !causal || scale != "1/sqrt(head_size)" {
                return Err(format!(
                    "attention: only causal with scale 1/sqrt(head_size), got {causal} and {scale}"
                ));
            }
            e(a.try_causal_attention(x[1], x[2]))?
        }
        "sum" | "mean" => {
            let keepdim = case.attrs.get("keepdim").and_then(|v| v.as_bool()).unwrap_or(false);
            let mean = case.op == "mean";
            match attr_axis(case, rank)? {
                // Every axis: a scalar, or with keepdim a tensor of rank ones (as PyTorch).
                None => {
                    let all = if mean { a.mean() } else { a.sum() };
                    if keepdim { e(all.try_reshape(&vec![1; rank]))? } else { all }
                }
                Some(axes) if mean && axes.len() == 1 => e(a.try_mean_axis(axes[0], keepdim))?,
                Some(axes) if mean => e(a.try_mean_axes(&axes, keepdim))?,
                Some(mut axes) => {
                    // From the last axis down, so that the axes still to sum keep their places.
                    // An axis named twice is an error, as in PyTorch (and as `mean_axes` says).
                    axes.sort_unstable();
                    if let Some(w) = axes.windows(2).find(|w| w[0] == w[1]) {
                        return Err(format!("sum: axis {} appears twice in {:?}", w[0], case.attrs["axis"]));
                    }
                    axes.iter().rev().try_fold(a, |y, &ax| e(y.try_sum_axis(ax, keepdim)))?
                }
            }
        }
        "softmax" | "log_softmax" => {
            let ax = attr_axis_at(case, "axis", rank)?;
            if case.op == "softmax" { e(a.try_softmax(ax))? } else { e(a.try_log_softmax(ax))? }
        }
        "reshape" => e(a.try_reshape(&attr_shape(case, a.shape().numel())?))?,
        // `torch.transpose(x, dim0, dim1)`; without them `x.T`, which reverses every axis (a
        // matrix's transpose).
        "transpose" => match (case.attrs.get("dim0"), case.attrs.get("dim1")) {
            (None, None) => e(a.try_permute(&(0..rank).rev().collect::<Vec<_>>()))?,
            _ => e(a.try_transpose(attr_axis_at(case, "dim0", rank)?, attr_axis_at(case, "dim1", rank)?))?,
        },
        "embedding" => e(a.try_embedding(&ids(case, 0)?))?,
        "cross_entropy" => match case.attrs.get("ignore_index").and_then(|v| v.as_i64()) {
            Some(ignore) => e(a.try_cross_entropy_ignore(&targets(case, 0)?, ignore))?,
            None => e(a.try_cross_entropy(&ids(case, 0)?))?,
        },
        "bigram_nn" => {
            let (xs, ys) = (ids(case, 0)?, ids(case, 1)?);
            let reg = attr_f64(case, "reg")?;
            e(a.try_embedding(&xs).and_then(|logits| logits.try_cross_entropy(&ys)))?
                + a.pow(2.0).mean() * T::of(reg)
        }
        "mlp" => {
            let (xb, yb) = (ids(case, 0)?, ids(case, 1)?);
            let (bs, ne) = (attr_usize(case, "block_size")?, attr_usize(case, "n_embd")?);
            let (c, w1, b1, w2, b2) = (x[0], x[1], x[2], x[3], x[4]);
            let emb = e(c.try_embedding(&xb))?;
            let rows = *xb.shape().first().ok_or("mlp: the contexts are a scalar, not [B, block_size]")?;
            let h = (e(emb.try_reshape(&[rows, bs * ne]))?.matmul(w1) + b1).tanh();
            let logits = h.matmul(w2) + b2;
            e(logits.try_cross_entropy(&yb))?
        }
        other => return Err(format!("unknown op {other:?}")),
    })
}

/// The case's output and the gradients of its inputs, as `f64` arrays.
fn evaluate<T: Float>(case: &Case) -> Result<(ArrayD<f64>, Vec<ArrayD<f64>>), String> {
    let mut params = ParamStore::<T>::new();
    let ids = case
        .inputs
        .iter()
        .enumerate()
        .map(|(i, t)| params.add(&format!("x{i}"), to_array(t)?).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tape = Tape::new();
    let mut grads = Grads::new(&params);
    let g = tape.graph(&params);
    let x: Vec<_> = ids.iter().map(|&id| g.param(id)).collect();
    let out = build(case, &x)?;
    g.check().map_err(|e| e.to_string())?;
    let upstream = to_array::<T>(&case.upstream)?;
    g.backward_from(out, upstream.view(), &mut grads).map_err(|e| e.to_string())?;
    let output = out.to_array().mapv(|v| v.as_f64());
    let grads = ids.iter().map(|&id| grads.get(id).mapv(|v| v.as_f64())).collect();
    Ok((output, grads))
}
