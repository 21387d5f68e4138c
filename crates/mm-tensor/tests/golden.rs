//! Every case of the PyTorch reference file (a copy of `shared/golden/ops.json`) must pass, in
//! `f64` and in the training precision `f32`.

use mm_tensor::golden::{self, Outcome};

const OPS: &str = include_str!("fixtures/ops.json");

fn run_all<T: mm_tensor::Float>() {
    let file = golden::parse(OPS).expect("the fixture parses");
    assert!(file.cases.len() >= 34, "the fixture has all its cases");
    let failures: Vec<_> = file
        .cases
        .iter()
        .map(|c| (c.name.clone(), golden::run::<T>(c)))
        .filter(|(_, o)| *o != Outcome::Pass)
        .collect();
    assert!(failures.is_empty(), "{} golden cases failed in {}: {failures:#?}", failures.len(), T::NAME);
}

#[test]
fn golden_cases_pass_in_f64() {
    run_all::<f64>();
}

#[test]
fn golden_cases_pass_in_f32() {
    run_all::<f32>();
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
