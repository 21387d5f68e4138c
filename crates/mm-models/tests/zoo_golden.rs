//! makemore.py's models against PyTorch: every model case of `fixtures/zoo.json` (a copy of
//! `shared/golden/zoo/zoo.json`: `transformer`, `bow`, `rnn`, `gru`, `mlp_makemore`, makemore's
//! own classes with their parameters by name) runs through the zoo's real model types, loaded by
//! their PyTorch names, and its loss and every parameter's gradient match, in `f64` and `f32`.

use mm_models::zoo::{self, ModelConfig, Transformer, ZooModel};
use mm_models::{ModelError, zoo::ParamError};
use mm_tensor::golden::{self, Case, MODEL_OPS, Outcome};
use mm_tensor::{Float, ParamStore};

const ZOO: &str = include_str!("fixtures/zoo.json");

fn model_cases() -> Vec<Case> {
    let file = golden::parse(ZOO).expect("the fixture parses");
    file.cases.into_iter().filter(|c| MODEL_OPS.contains(&c.op.as_str())).collect()
}

fn all_pass<T: Float>() {
    let cases = model_cases();
    let ops: Vec<_> = cases.iter().map(|c| c.op.as_str()).collect();
    assert_eq!(ops, ["transformer", "bow", "rnn", "gru", "mlp_makemore"], "the fixture has every model");
    let failures: Vec<_> = cases
        .iter()
        .map(|c| (c.name.as_str(), zoo::golden::run::<T>(c)))
        .filter(|(_, o)| *o != Outcome::Pass)
        .collect();
    assert!(failures.is_empty(), "model cases failed in {}: {failures:#?}", T::NAME);
}

#[test]
fn every_model_case_passes_in_f64() {
    all_pass::<f64>();
}

#[test]
fn every_model_case_passes_in_f32() {
    all_pass::<f32>();
}

#[test]
fn model_cases_pass_at_a_hundredth_of_the_tolerance_in_f64() {
    // The f64 models agree with PyTorch far inside the file's tolerances (rtol 1e-4, atol 1e-5).
    for mut case in model_cases() {
        (case.rtol, case.atol) = (case.rtol / 100.0, case.atol / 100.0);
        assert_eq!(zoo::golden::run::<f64>(&case), Outcome::Pass, "{}", case.name);
    }
}

#[test]
fn a_wrong_gradient_fails_and_names_its_parameter_index() {
    let mut case = model_cases().into_iter().find(|c| c.op == "gru").unwrap();
    case.grads[4].data[7] += 0.5; // cell.xh_to_r.weight
    match zoo::golden::run::<f64>(&case) {
        Outcome::Fail(m) => {
            assert_eq!(m.len(), 1);
            assert_eq!((m[0].what.as_str(), m[0].index, m[0].failed), ("grad[4]", Some(7), 1));
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_case_that_is_not_a_model_is_an_error() {
    let mut case = model_cases().remove(0);
    case.op = "lstm".into();
    assert!(
        matches!(zoo::golden::run::<f64>(&case), Outcome::Error(e) if e.contains("\"lstm\" is not a model"))
    );
}

/// The transformer case's config and parameters, as a state dict.
fn transformer_state() -> (ModelConfig, ParamStore<f64>) {
    let case = model_cases().remove(0);
    let size = |k: &str| case.attrs[k].as_u64().unwrap() as usize;
    let config = ModelConfig {
        block_size: size("block_size"),
        vocab_size: size("vocab_size"),
        n_layer: size("n_layer"),
        n_head: size("n_head"),
        n_embd: size("n_embd"),
        n_embd2: size("n_embd2"),
    };
    let mut state = ParamStore::new();
    for (name, t) in case.attrs["param_names"].as_array().unwrap().iter().zip(&case.inputs) {
        let a = ndarray::ArrayD::from_shape_vec(t.shape.clone(), t.data.clone()).unwrap();
        state.add(name.as_str().unwrap(), a).unwrap();
    }
    (config, state)
}

#[test]
fn loading_takes_parameters_by_name_in_any_order_into_named_parameters_order() {
    let (config, state) = transformer_state();
    let mut reversed = ParamStore::new();
    for id in state.ids().collect::<Vec<_>>().into_iter().rev() {
        reversed.add(state.name(id), state.get(id).to_owned()).unwrap();
    }
    let model = Transformer::load(config, &reversed).unwrap();
    let names = |s: &ParamStore<f64>| s.ids().map(|id| s.name(id).to_string()).collect::<Vec<_>>();
    assert_eq!(names(model.params()), names(&state));
    for id in state.ids() {
        assert_eq!(model.params().get(id), state.get(id));
    }
}

#[test]
fn loading_a_missing_misshapen_or_unexpected_parameter_is_an_error_naming_it() {
    let (config, state) = transformer_state();
    let rebuilt = |skip: &str, extra: Option<(&str, &[usize])>| {
        let mut s = ParamStore::<f64>::new();
        for id in state.ids().filter(|&id| state.name(id) != skip) {
            s.add(state.name(id), state.get(id).to_owned()).unwrap();
        }
        if let Some((name, shape)) = extra {
            s.add(name, ndarray::ArrayD::zeros(shape)).unwrap();
        }
        s
    };
    let err = |s: ParamStore<f64>| match Transformer::load(config, &s) {
        Err(ModelError::Param(e)) => e,
        other => panic!("expected a parameter error, got {:?}", other.map(|m| m.num_params())),
    };
    let e = err(rebuilt("transformer.h.1.attn.c_attn.bias", None));
    assert_eq!(e, ParamError::Missing { name: "transformer.h.1.attn.c_attn.bias".into(), shape: vec![48] });
    let e = err(rebuilt("lm_head.weight", Some(("lm_head.weight", &[16, 27]))));
    assert_eq!(e.to_string(), "parameter \"lm_head.weight\" has shape [16, 27], the model needs [27, 16]");
    let e = err(rebuilt("", Some(("lm_head.bias", &[27]))));
    assert_eq!(e, ParamError::Unexpected { name: "lm_head.bias".into() });
}
