//! Every case of the PyTorch reference files (copies of `shared/golden/ops.json` and
//! `shared/golden/zoo/zoo.json`) must pass, in `f64` and in the training precision `f32`; the
//! zoo's model cases are skipped here by name (the model crate runs them).

use mm_tensor::golden::{self, Outcome};

const OPS: &str = include_str!("fixtures/ops.json");
const ZOO: &str = include_str!("fixtures/zoo.json");

/// Runs every case of `text`; returns how many were skipped.
fn run_all<T: mm_tensor::Float>(text: &str, min_cases: usize) -> usize {
    let file = golden::parse(text).expect("the fixture parses");
    assert!(file.cases.len() >= min_cases, "the fixture has all its cases");
    let outcomes: Vec<_> = file.cases.iter().map(|c| (c.name.clone(), golden::run::<T>(c))).collect();
    let failures: Vec<_> =
        outcomes.iter().filter(|(_, o)| !matches!(o, Outcome::Pass | Outcome::Skipped(_))).collect();
    assert!(failures.is_empty(), "{} golden cases failed in {}: {failures:#?}", failures.len(), T::NAME);
    outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Skipped(_))).count()
}

#[test]
fn golden_cases_pass_in_f64() {
    assert_eq!(run_all::<f64>(OPS, 34), 0);
}

#[test]
fn golden_cases_pass_in_f32() {
    assert_eq!(run_all::<f32>(OPS, 34), 0);
}

#[test]
fn zoo_op_cases_pass_in_both_precisions_and_only_model_cases_are_skipped() {
    for skipped in [run_all::<f64>(ZOO, 23), run_all::<f32>(ZOO, 23)] {
        assert_eq!(skipped, golden::MODEL_OPS.len());
    }
}

#[test]
fn a_wrong_reference_value_fails() {
    let mut file = golden::parse(OPS).unwrap();
    let case = file.cases.iter_mut().find(|c| c.op == "matmul").unwrap();
    case.grads[1].data[3] += 0.5;
    match golden::run::<f64>(case) {
        Outcome::Fail(m) => {
            assert_eq!((m[0].what.as_str(), m[0].index, m[0].failed), ("grad[1]", Some(3), 1))
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn an_unknown_op_is_an_error() {
    let mut file = golden::parse(OPS).unwrap();
    file.cases[0].op = "conv2d".into();
    assert!(matches!(golden::run::<f64>(&file.cases[0]), Outcome::Error(e) if e.contains("unknown op")));
}

/// Found on review: with the file's f32 tolerances in f64, a zero gradient passed where every
/// expected value is below the absolute tolerance (`softmax-large`), and a tanh gradient 2e-5
/// too large passed. In f64 the tolerances are f64's, scaled to each tensor's magnitude.
#[test]
fn f64_runs_catch_what_f32_tolerances_cannot_see() {
    let file = golden::parse(OPS).unwrap();
    let mut tiny = file.cases.iter().find(|c| c.name.contains("softmax-large")).unwrap().clone();
    assert!(tiny.grads[0].data.iter().all(|g| g.abs() < tiny.atol), "every expected gradient is below atol");
    tiny.grads[0].data.iter_mut().for_each(|g| *g = 0.0);
    assert!(matches!(golden::run::<f64>(&tiny), Outcome::Fail(_)), "a zero gradient fails in f64");
    let mut tanh = file.cases.iter().find(|c| c.op == "tanh").unwrap().clone();
    tanh.grads[0].data[0] *= 1.0 + 2e-5;
    assert!(matches!(golden::run::<f64>(&tanh), Outcome::Fail(_)), "2e-5 too large fails in f64");
    assert_eq!(golden::run::<f32>(&tanh), Outcome::Pass, "(within the file's f32 tolerance)");
}
