//! The model cases of golden files (`mm_tensor::golden`'s `mm-golden/1` format, e.g.
//! `shared/golden/zoo/zoo.json`) run through the zoo's real models: op `transformer`, `bow`,
//! `rnn`, `gru` or `mlp_makemore` ([`mm_tensor::golden::MODEL_OPS`]), the sizes in `attrs`, the
//! parameters (`inputs`) loaded by their PyTorch names (`attrs.param_names`), `indices` `[X, Y]`,
//! the output makemore's loss and `grads[i]` the gradient of `output * upstream` with respect to
//! parameter `i`. `cargo xtask golden` sends model cases here; the op cases stay with
//! `mm_tensor::golden::run`.

use mm_tensor::golden::{self, Case, FloatTensor, IndexTensor, Outcome};
use mm_tensor::{Float, Grads, ParamStore, Tape};
use ndarray::{Array2, ArrayD, IxDyn};

use super::{BoW, Gru, MlpMakemore, ModelConfig, Rnn, Transformer, ZooModel};

/// Runs the model case `case` in precision `T`: [`Outcome::Pass`], the worst mismatches, or
/// the error (an op that is not a model, a parameter that does not load, ...).
pub fn run<T: Float>(case: &Case) -> Outcome {
    match evaluate::<T>(case) {
        Ok((output, grads)) => golden::judge::<T>(case, &output, &grads),
        Err(e) => Outcome::Error(e),
    }
}

/// The case's loss and the gradient of each of its parameters (in `inputs` order).
fn evaluate<T: Float>(case: &Case) -> Result<(ArrayD<f64>, Vec<ArrayD<f64>>), String> {
    let config = config(case)?;
    let state = state::<T>(case)?;
    match case.op.as_str() {
        "transformer" => loss_and_grads(Transformer::load(config, &state), case),
        "bow" => loss_and_grads(BoW::load(config, &state), case),
        "rnn" => loss_and_grads(Rnn::load(config, &state), case),
        "gru" => loss_and_grads(Gru::load(config, &state), case),
        "mlp_makemore" => loss_and_grads(MlpMakemore::load(config, &state), case),
        other => Err(format!("{other:?} is not a model of the zoo")),
    }
}

/// The model's loss on `[X, Y]`, backward from `upstream`; the gradients by the case's names.
fn loss_and_grads<T: Float, M: ZooModel<T>>(
    model: crate::Result<M>,
    case: &Case,
) -> Result<(ArrayD<f64>, Vec<ArrayD<f64>>), String> {
    let model = model.map_err(|e| format!("{}: {e}", case.op))?;
    let (x, y) = (indices(case, 0)?, indices(case, 1)?);
    let x = x.mapv(|v| u32::try_from(v).unwrap_or(u32::MAX)); // a negative id is out of range
    let mut tape = Tape::new();
    let mut grads = Grads::new(model.params());
    let g = tape.graph(model.params());
    let loss = model.loss(&g, x.view(), y.view());
    let upstream = array::<T>(&case.upstream)?;
    g.backward_from(loss, upstream.view(), &mut grads).map_err(|e| e.to_string())?;
    let output = loss.to_array().mapv(|v| v.as_f64());
    let grads = names(case)?
        .iter()
        .map(|name| {
            let id = model.params().id(name).ok_or_else(|| format!("the model has no parameter {name:?}"))?;
            Ok(grads.get(id).mapv(|v| v.as_f64()))
        })
        .collect::<Result<_, String>>()?;
    Ok((output, grads))
}

/// The sizes in `attrs`: `block_size` and `vocab_size` are required, the others default to
/// makemore's (`ModelConfig`'s dataclass defaults).
fn config(case: &Case) -> Result<ModelConfig, String> {
    let d = ModelConfig::default();
    let size = |key: &str, default: Option<usize>| match case.attrs.get(key) {
        Some(v) => v
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| format!("{}: attribute {key:?} is not a size", case.op)),
        None => default.ok_or_else(|| format!("{}: attribute {key:?} is missing", case.op)),
    };
    Ok(ModelConfig {
        block_size: size("block_size", None)?,
        vocab_size: size("vocab_size", None)?,
        n_layer: size("n_layer", Some(d.n_layer))?,
        n_head: size("n_head", Some(d.n_head))?,
        n_embd: size("n_embd", Some(d.n_embd))?,
        n_embd2: size("n_embd2", Some(d.n_embd2))?,
    })
}

/// `attrs.param_names`.
fn names(case: &Case) -> Result<Vec<String>, String> {
    let names = case.attrs.get("param_names").and_then(|v| v.as_array());
    let names = names.ok_or_else(|| format!("{}: attribute \"param_names\" is missing", case.op))?;
    names
        .iter()
        .map(|n| {
            n.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{}: a parameter name is not a string", case.op))
        })
        .collect()
}

/// The case's inputs as a state dict, under `attrs.param_names`.
fn state<T: Float>(case: &Case) -> Result<ParamStore<T>, String> {
    let names = names(case)?;
    if names.len() != case.inputs.len() {
        return Err(format!("{}: {} parameter names for {} inputs", case.op, names.len(), case.inputs.len()));
    }
    let mut state = ParamStore::new();
    for (name, t) in names.iter().zip(&case.inputs) {
        state.add(name, array(t)?).map_err(|e| e.to_string())?;
    }
    Ok(state)
}

fn array<T: Float>(t: &FloatTensor) -> Result<ArrayD<T>, String> {
    ArrayD::from_shape_vec(IxDyn(&t.shape), t.data.iter().map(|&x| T::of(x)).collect())
        .map_err(|e| format!("tensor of shape {:?}: {e}", t.shape))
}

/// Index tensor `i` (`X` or `Y`), `[B, T]`.
fn indices(case: &Case, i: usize) -> Result<Array2<i64>, String> {
    let t: &IndexTensor =
        case.indices.get(i).ok_or_else(|| format!("{}: index tensor {i} is missing", case.op))?;
    let &[b, n] = t.shape.as_slice() else {
        return Err(format!("{}: index tensor {i} has shape {:?}, not [B, T]", case.op, t.shape));
    };
    Array2::from_shape_vec((b, n), t.data.clone()).map_err(|e| format!("{}: index tensor {i}: {e}", case.op))
}
