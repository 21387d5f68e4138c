//! Invariants that hold for any input (proptest), and the engine's behaviour on bad input.

use mm_tensor::{AdamW, AdamWState, Grads, Optimizer, ParamStore, Sgd, Tape, TensorError};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

/// A `[rows, cols]` matrix of moderate values.
fn matrix() -> impl Strategy<Value = (usize, usize, Vec<f64>)> {
    (1usize..8, 1usize..30)
        .prop_flat_map(|(r, c)| (Just(r), Just(c), prop::collection::vec(-30.0f64..30.0, r * c)))
}

fn store(name: &str, dims: &[usize], data: Vec<f64>) -> (ParamStore<f64>, mm_tensor::ParamId) {
    let mut p = ParamStore::new();
    let id = p.add(name, ArrayD::from_shape_vec(IxDyn(dims), data).unwrap()).unwrap();
    (p, id)
}

proptest! {
    #[test]
    fn softmax_rows_sum_to_one((r, c, data) in matrix()) {
        let (params, x) = store("x", &[r, c], data);
        let mut tape = Tape::new();
        let g = tape.no_grad(&params);
        let y = g.param(x).softmax(1).to_array();
        for row in y.rows() {
            prop_assert!((row.sum() - 1.0).abs() < 1e-12);
            prop_assert!(row.iter().all(|&p| (0.0..=1.0).contains(&p)));
        }
    }

    #[test]
    fn cross_entropy_of_zero_logits_is_ln_v(rows in 1usize..40, classes in 2usize..60, seed in 0u32..1000) {
        let targets: Vec<u32> = (0..rows as u32).map(|i| (i * 7 + seed) % classes as u32).collect();
        let params = ParamStore::<f32>::new();
        let mut tape = Tape::new();
        let g = tape.no_grad(&params);
        let loss = g.input(&[rows, classes], &vec![0.0; rows * classes]).cross_entropy(&targets[..]);
        prop_assert!((loss.item().unwrap() - (classes as f32).ln()).abs() < 1e-6);
    }

    #[test]
    fn gradient_shapes_equal_input_shapes((r, c, data) in matrix(), k in 1usize..6) {
        let mut params = ParamStore::new();
        let a = params.add("a", ArrayD::from_shape_vec(IxDyn(&[r, c]), data).unwrap()).unwrap();
        let w = params.add("w", ArrayD::ones(IxDyn(&[c, k]))).unwrap();
        let b = params.add("b", ArrayD::ones(IxDyn(&[k]))).unwrap();
        let mut grads = Grads::new(&params);
        let mut tape = Tape::new();
        let g = tape.graph(&params);
        let loss = (g.param(a).tanh().matmul(g.param(w)) + g.param(b)).sum_axis(0, true).mean();
        g.backward(loss, &mut grads).unwrap();
        for id in params.ids() {
            prop_assert_eq!(grads.get(id).shape().to_vec(), params.get(id).shape().to_vec());
        }
    }

    #[test]
    fn tanh_f32_is_within_5e7_of_f64(x in -30.0f32..30.0) {
        let mut y = [0.0f32];
        mm_tensor::tanh_f32(&[x], &mut y);
        prop_assert!((f64::from(y[0]) - f64::from(x).tanh()).abs() < 5e-7);
    }
}

#[test]
fn tanh_f32_max_error_over_a_dense_grid() {
    // Every 1e-4 over [-12, 12], plus the extremes and special values.
    let xs: Vec<f32> = (-120_000..=120_000)
        .map(|i| i as f32 * 1e-4)
        .chain([1e-30, -1e-30, 1e30, -1e30, f32::MAX, f32::MIN])
        .collect();
    let mut ys = vec![0.0; xs.len()];
    mm_tensor::tanh_f32(&xs, &mut ys);
    let worst =
        xs.iter().zip(&ys).map(|(&x, &y)| (f64::from(y) - f64::from(x).tanh()).abs()).fold(0.0, f64::max);
    assert!(worst < 5e-7, "max abs error {worst:e}");
    let mut special = [0.0; 4];
    mm_tensor::tanh_f32(&[0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN], &mut special);
    assert_eq!(&special[..3], &[0.0, 1.0, -1.0]);
    assert!(special[3].is_nan());
}

#[test]
fn errors_name_the_op_and_shapes() {
    let params = ParamStore::<f32>::new();
    let mut tape = Tape::new();
    let g = tape.graph(&params);
    let a = g.input(&[32, 30], &[0.0; 960]);
    let b = g.input(&[20, 200], &vec![0.0; 4000]);
    let err = a.try_matmul(b).unwrap_err();
    assert_eq!(err.to_string(), "matmul: cannot multiply [32, 30] by [20, 200]");
    let c = g.input(&[4, 5], &[0.0; 20]);
    let d = g.input(&[4, 3], &[0.0; 12]);
    assert_eq!(
        c.try_add(d).unwrap_err().to_string(),
        "add: shapes [4, 5] and [4, 3] do not broadcast together"
    );
    assert_eq!(
        c.try_reshape(&[3, 7]).unwrap_err().to_string(),
        "reshape: cannot reshape [4, 5] (20 elements) into [3, 7] (21 elements)"
    );
    assert_eq!(c.try_softmax(2).unwrap_err().to_string(), "softmax: axis 2 is out of range for shape [4, 5]");
    assert_eq!(
        c.try_embedding(&[0u32, 4][..]).unwrap_err().to_string(),
        "embedding: index 4 is out of range for 4 rows or classes"
    );
    assert_eq!(
        c.try_cross_entropy(&[0u32, 5, 1, 1][..]).unwrap_err().to_string(),
        "cross_entropy: index 5 is out of range for 5 rows or classes"
    );
    assert_eq!(
        c.try_cross_entropy(&[0u32][..]).unwrap_err().to_string(),
        "cross_entropy: 1 targets for logits of shape [4, 5]"
    );
    assert!(matches!(g.try_one_hot(&[3u32][..], 3), Err(TensorError::Index { op: "one_hot", .. })));
    assert!(matches!(g.try_input(&[2, 2], &[1.0]), Err(TensorError::DataLength { .. })));
}

#[test]
fn errors_are_sticky_and_returned_by_backward_and_item() {
    let mut params = ParamStore::<f32>::new();
    let w = params.add("w", ArrayD::zeros(IxDyn(&[3, 4]))).unwrap();
    let mut grads = Grads::new(&params);
    let mut tape = Tape::new();
    let g = tape.graph(&params);
    let x = g.input(&[2, 5], &[1.0; 10]);
    // The first error (a bad matmul) is kept; later ops on the placeholder are skipped.
    let loss = (x.matmul(g.param(w)).tanh() + 1.0).reshape(&[99]).mean();
    let first = TensorError::MatMul { op: "matmul", lhs: x.shape(), rhs: g.param(w).shape() };
    assert_eq!(loss.item(), Err(first.clone()));
    assert_eq!(g.backward(loss, &mut grads), Err(first.clone()));
    assert_eq!(g.check(), Err(first.clone()));
    // The try_ form of a later op returns the same first error.
    assert_eq!(loss.try_matmul(loss).unwrap_err(), first);
    // A new graph on the same tape starts clean.
    let g = tape.graph(&params);
    assert_eq!(g.param(w).sum().item(), Ok(0.0));
}

#[test]
fn backward_refuses_what_it_cannot_do() {
    let mut params = ParamStore::<f32>::new();
    let w = params.add("w", ArrayD::ones(IxDyn(&[2, 2]))).unwrap();
    let mut grads = Grads::new(&params);
    let mut tape = Tape::new();
    {
        let g = tape.graph(&params);
        let err = g.backward(g.param(w).exp(), &mut grads).unwrap_err();
        assert_eq!(err.to_string(), "item: expected a one-element tensor (a loss), got shape [2, 2]");
    }
    {
        let g = tape.no_grad(&params);
        assert_eq!(g.backward(g.param(w).sum(), &mut grads), Err(TensorError::NoGrad));
    }
    let mut other = ParamStore::<f32>::new();
    other.add("v", ArrayD::ones(IxDyn(&[3]))).unwrap();
    let g = tape.graph(&params);
    let loss = g.param(w).sum();
    assert!(matches!(g.backward(loss, &mut Grads::new(&other)), Err(TensorError::ShapeMismatch { .. })));
}

#[test]
fn unused_parameters_get_zero_gradients() {
    let mut params = ParamStore::<f64>::new();
    let a = params.add("a", ArrayD::ones(IxDyn(&[2]))).unwrap();
    let b = params.add("b", ArrayD::ones(IxDyn(&[2]))).unwrap();
    let mut grads = Grads::new(&params);
    let mut tape = Tape::new();
    for use_b in [true, false] {
        let g = tape.graph(&params);
        let loss = if use_b { (g.param(a) * g.param(b)).sum() } else { g.param(a).sum() };
        g.backward(loss, &mut grads).unwrap();
    }
    assert_eq!(grads.data(b), &[0.0, 0.0], "no stale gradient from the previous step");
    assert_eq!(grads.data(a), &[1.0, 1.0]);
}

#[test]
fn sgd_and_adamw_updates() {
    let mut params = ParamStore::<f64>::new();
    let p = params.add("p", ArrayD::from_shape_vec(IxDyn(&[3]), vec![1.0, -2.0, 0.5]).unwrap()).unwrap();
    let mut grads = Grads::new(&params);
    let mut tape = Tape::new();
    {
        let g = tape.graph(&params);
        let loss = (g.param(p) * g.param(p)).sum() * 0.5; // gradient = p
        g.backward(loss, &mut grads).unwrap();
    }
    assert_eq!(grads.data(p), &[1.0, -2.0, 0.5]);

    let mut sgd_params = params.clone();
    let mut sgd = Sgd::new(0.1).with_weight_decay(0.5);
    sgd.step(&mut sgd_params, &grads).unwrap();
    // p - lr * (g + wd * p) = p * (1 - 0.1 * 1.5)
    for (got, want) in sgd_params.data(p).iter().zip([0.85, -1.7, 0.425]) {
        assert!((got - want).abs() < 1e-15);
    }

    // AdamW's first step: decay, then m̂ = g, v̂ = g², so p -= lr * g / (|g| + eps).
    let mut adam = AdamW::new(0.01);
    adam.step(&mut params, &grads).unwrap();
    for ((&got, x0), g) in params.data(p).iter().zip([1.0, -2.0, 0.5]).zip([1.0f64, -2.0, 0.5]) {
        let want = x0 * (1.0 - 0.01 * 0.01) - 0.01 * g / (g.abs() + 1e-8);
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
    assert_eq!(adam.steps(), 1);
    adam.set_lr(0.5);
    assert_eq!(adam.lr(), 0.5);

    // Its state: none before a step; after one, t = 1, m = (1 - beta1) g, v = (1 - beta2) g².
    assert_eq!(AdamW::<f64>::new(0.1).state(), None);
    let state = adam.state().unwrap();
    assert_eq!(state.t, 1);
    assert!((state.m[0][1] - 0.1 * -2.0).abs() < 1e-15 && (state.v[0][1] - 0.001 * 4.0).abs() < 1e-15);
    // A state that does not fit the parameters is refused and changes nothing.
    let mut fresh = AdamW::new(0.01);
    let wrong_len = AdamWState { t: 1, m: vec![vec![0.0; 2]], v: vec![vec![0.0; 2]] };
    assert!(matches!(fresh.set_state(&params, wrong_len), Err(TensorError::DataLength { .. })));
    let wrong_count = AdamWState { t: 1, m: vec![], v: vec![] };
    assert!(matches!(fresh.set_state(&params, wrong_count), Err(TensorError::ParamCount { .. })));
    assert_eq!(fresh.state(), None);
    fresh.set_state(&params, state.clone()).unwrap();
    assert_eq!(fresh.state(), Some(state));
}

#[test]
fn exp_f32_is_within_3_ulp_of_f64() {
    // Every 1e-4 over [-87, 88.7], where the result is a normal f32.
    let xs: Vec<f32> = (-870_000..=887_000).map(|i| i as f32 * 1e-4).collect();
    let mut ys = xs.clone();
    mm_tensor::exp_f32(&mut ys);
    let worst = xs
        .iter()
        .zip(&ys)
        .map(|(&x, &y)| {
            let want = f64::from(x).exp();
            (f64::from(y) - want).abs() / (want * f64::from(f32::EPSILON))
        })
        .fold(0.0, f64::max);
    assert!(worst <= 3.0, "max error {worst:.2} ulp");
    let mut special = [0.0, -200.0, 100.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
    mm_tensor::exp_f32(&mut special);
    assert_eq!(special[0], 1.0);
    assert_eq!(special[1], 0.0);
    assert_eq!(&special[2..4], &[f32::INFINITY, f32::INFINITY]);
    assert_eq!(special[4], 0.0);
    assert!(special[5].is_nan());
}

#[test]
fn sigmoid_f32_is_within_4_ulp_of_f64() {
    // The `sigmoid` op on its fast f32 path, every 1e-3 over [-80, 80] (the result leaves the
    // normal range below about -87.3), and at the ends of the range.
    let xs: Vec<f32> = (-80_000..=80_000).map(|i| i as f32 * 1e-3).collect();
    let params = ParamStore::<f32>::new();
    let mut tape = Tape::new();
    let g = tape.no_grad(&params);
    let ys = g.input(&[xs.len()], &xs).sigmoid().to_array();
    let worst = xs
        .iter()
        .zip(&ys)
        .map(|(&x, &y)| {
            let want = 1.0 / (1.0 + (-f64::from(x)).exp());
            (f64::from(y) - want).abs() / (want * f64::from(f32::EPSILON))
        })
        .fold(0.0, f64::max);
    assert!(worst <= 4.0, "max error {worst:.2} ulp");
    let special = [0.0, -200.0, 200.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
    let ys = g.input(&[6], &special).sigmoid().to_array();
    assert_eq!(&ys.as_slice().unwrap()[..5], &[0.5, 0.0, 1.0, 1.0, 0.0]);
    assert!(ys[5].is_nan());
}

#[test]
fn ids_come_as_slices_vecs_arrays_and_ndarrays() {
    let mut params = ParamStore::<f32>::new();
    let c = params.add("C", ArrayD::from_shape_fn(IxDyn(&[3, 2]), |i| (i[0] * 2 + i[1]) as f32)).unwrap();
    let mut tape = Tape::new();
    let g = tape.no_grad(&params);
    let table = g.param(c);
    let want = vec![4.0, 5.0, 0.0, 1.0];
    assert_eq!(table.embedding(&vec![2u32, 0]).to_array().into_raw_vec_and_offset().0, want);
    assert_eq!(table.embedding(&[2u32, 0]).to_array().into_raw_vec_and_offset().0, want);
    assert_eq!(table.embedding(&[2u32, 0][..]).to_array().into_raw_vec_and_offset().0, want);
    let x = ndarray::array![[2u32], [0]];
    assert_eq!(table.embedding(&x).shape().dims(), &[2, 1, 2]);
    assert_eq!(table.embedding(&x.t()).shape().dims(), &[1, 2, 2]);
    // A view that is not contiguous is read in its logical order (the ids are copied from a
    // slice only where they are one), for the embedding and the cross-entropy alike.
    let x = ndarray::array![[2u32, 1], [0, 2]];
    let (xt, copy) = (x.t(), x.t().as_standard_layout().into_owned());
    assert!(xt.as_slice().is_none());
    let (by_view, by_copy) = (table.embedding(&xt), table.embedding(&copy));
    assert_eq!(by_view.to_array(), by_copy.to_array());
    assert_eq!(by_view.to_array().into_raw_vec_and_offset().0, vec![4.0, 5.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let t = ndarray::array![[1u32, 0, 1], [0, 1, 0]].reversed_axes(); // [3, 2], not contiguous
    let l = g.input(&[3, 2, 2], &[0.5, -1.0, 2.0, 0.0, 1.0, 1.5, -0.5, 0.25, 3.0, 1.0, 0.0, -2.0]);
    assert!(t.as_slice().is_none());
    let (by_view, by_copy) = (l.cross_entropy(&t), l.cross_entropy(&t.as_standard_layout().into_owned()));
    assert_eq!(by_view.item().unwrap(), by_copy.item().unwrap());
    let mut ignored = t.clone();
    ignored[[1, 0]] = mm_tensor::IGNORE;
    assert!(ignored.as_slice().is_none());
    let (by_view, by_copy) =
        (l.cross_entropy(&ignored), l.cross_entropy(&ignored.as_standard_layout().into_owned()));
    assert_eq!(by_view.item().unwrap(), by_copy.item().unwrap());
    // Signed targets (makemore's -1 after a word's end), likewise.
    let signed = ndarray::array![[1i64, 0, -1], [0, 1, 0]].reversed_axes();
    assert!(signed.as_slice().is_none());
    let by_view = l.cross_entropy_ignore(&signed, -1).item().unwrap();
    let by_copy = l.cross_entropy_ignore(&signed.as_standard_layout().into_owned(), -1).item().unwrap();
    assert_eq!(by_view, by_copy);
    let as_ids = signed.mapv(|t| if t < 0 { mm_tensor::IGNORE } else { t as u32 });
    assert_eq!(by_view, l.cross_entropy(&as_ids).item().unwrap());
}
