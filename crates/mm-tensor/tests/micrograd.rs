//! micrograd's lecture on our engine: its worked examples, with the lecture's values, on 0-d
//! tensors (micrograd's `Value`s) and, for the MLP, on matrices (micrograd's neurons side by
//! side). `cargo run -p mm-tensor --example micrograd` prints the same.

use mm_tensor::{Grads, Optimizer, ParamId, ParamStore, Sgd, Tape, init};
use ndarray::ArrayD;
use rand::SeedableRng;

/// A 0-d parameter: micrograd's `Value(x)`.
fn value(params: &mut ParamStore<f64>, name: &str, x: f64) -> ParamId {
    params.add(name, ArrayD::from_elem(vec![], x)).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn the_expression_l_and_its_gradients() {
    // a = 2, b = -3, c = 10, e = a*b, d = e + c, f = -2, L = d*f
    let mut p = ParamStore::new();
    let [a, b, c, f] = [("a", 2.0), ("b", -3.0), ("c", 10.0), ("f", -2.0)].map(|(n, x)| value(&mut p, n, x));
    let mut tape = Tape::new();
    let mut grads = Grads::new(&p);
    let g = tape.graph(&p);
    let e = g.param(a) * g.param(b);
    let d = e + g.param(c);
    let l = d * g.param(f);
    assert_eq!(g.backward(l, &mut grads).unwrap(), -8.0);
    let grad = |id| grads.get(id).sum();
    assert_eq!([grad(a), grad(b), grad(c), grad(f)], [6.0, -4.0, -2.0, 4.0]);
    assert_eq!([e.grad().unwrap().sum(), d.grad().unwrap().sum()], [-2.0, -2.0]);
}

/// The neuron `o = tanh(x1 w1 + x2 w2 + b)`, its tanh either the op or written out as
/// `(exp(2n) - 1) / (exp(2n) + 1)`: `o` and the gradients of x1, w1, x2, w2.
fn neuron(tanh_by_hand: bool) -> (f64, [f64; 4]) {
    let mut p = ParamStore::new();
    let [x1, x2, w1, w2, b] =
        [("x1", 2.0), ("x2", 0.0), ("w1", -3.0), ("w2", 1.0), ("b", 6.881_373_587_019_543)]
            .map(|(n, x)| value(&mut p, n, x));
    let mut tape = Tape::new();
    let mut grads = Grads::new(&p);
    let g = tape.graph(&p);
    let n = g.param(x1) * g.param(w1) + g.param(x2) * g.param(w2) + g.param(b);
    let o = if tanh_by_hand {
        let e = (n * 2.0).exp();
        (e - 1.0) / (e + 1.0)
    } else {
        n.tanh()
    };
    let out = g.backward(o, &mut grads).unwrap();
    (out, [x1, w1, x2, w2].map(|id| grads.get(id).sum()))
}

#[test]
fn the_neuron_and_its_gradients_with_tanh_as_an_op_and_written_out() {
    for by_hand in [false, true] {
        let (o, [x1, w1, x2, w2]) = neuron(by_hand);
        assert!(close(o, std::f64::consts::FRAC_1_SQRT_2), "{o} = 1/sqrt(2), the lecture's 0.7071");
        assert!(close(x1, -1.5) && close(w1, 1.0) && close(x2, 0.5) && close(w2, 0.0), "{x1} {w1} {x2} {w2}");
    }
}

#[test]
fn an_mlp_of_tanh_neurons_fits_the_four_examples() {
    // MLP(3, [4, 4, 1]): each layer's neurons side by side, weights and biases from U(-1, 1).
    let xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]];
    let ys = [1.0, -1.0, -1.0, 1.0];
    let mut rng = rand::rngs::StdRng::seed_from_u64(1337);
    let mut p = ParamStore::<f64>::new();
    let sizes = [3, 4, 4, 1];
    let layers: Vec<(ParamId, ParamId)> = (0..3)
        .map(|i| {
            let w = p
                .add(&format!("w{i}"), init::uniform(&[sizes[i], sizes[i + 1]], -1.0, 1.0, &mut rng))
                .unwrap();
            let b = p.add(&format!("b{i}"), init::uniform(&[sizes[i + 1]], -1.0, 1.0, &mut rng)).unwrap();
            (w, b)
        })
        .collect();
    assert_eq!(p.numel(), 41, "micrograd's MLP(3, [4, 4, 1]) has 41 parameters");
    let x: Vec<f64> = xs.iter().flatten().copied().collect();
    let mut tape = Tape::new();
    let mut grads = Grads::new(&p);
    let mut sgd = Sgd::new(0.05);
    let mut losses = Vec::new();
    let mut preds = Vec::new();
    for _ in 0..200 {
        let g = tape.graph(&p);
        let mut h = g.input(&[4, 3], &x);
        for &(w, b) in &layers {
            h = h.linear(g.param(w), g.param(b)).tanh();
        }
        let diff = h - g.input(&[4, 1], &ys);
        let loss = (diff * diff).sum();
        losses.push(g.backward(loss, &mut grads).unwrap());
        preds = h.to_array().iter().copied().collect();
        sgd.step(&mut p, &grads).unwrap();
    }
    assert!(losses[199] < 0.01 && losses[199] < losses[0] / 10.0, "{} -> {}", losses[0], losses[199]);
    for (pred, y) in preds.iter().zip(ys) {
        assert_eq!(pred.signum(), y, "{preds:?}");
    }
}

/// micrograd's `Value` supports `+ - * / **`, `exp`, `tanh`, `relu`: every elementwise op of the
/// engine works on 0-d tensors, forward and backward (against a central difference), and the
/// optimizers step 0-d parameters.
#[test]
fn scalars_go_through_every_elementwise_op_and_the_optimizers() {
    type Op = for<'a> fn(mm_tensor::Var<'a, f64>, mm_tensor::Var<'a, f64>) -> mm_tensor::Var<'a, f64>;
    type Plain = fn(f64, f64) -> f64;
    let ops: [(&str, Op, Plain); 16] = [
        ("a + b", |a, b| a + b, |a, b| a + b),
        ("a - b", |a, b| a - b, |a, b| a - b),
        ("a * b", |a, b| a * b, |a, b| a * b),
        ("a / b", |a, b| a / b, |a, b| a / b),
        ("a * 3 - 1 / b", |a, b| a * 3.0 - b.pow(-1.0), |a, b| a * 3.0 - 1.0 / b),
        ("-a", |a, _| -a, |a, _| -a),
        ("a ** 3", |a, _| a.pow(3.0), |a, _| a.powi(3)),
        ("exp", |a, _| a.exp(), |a, _| a.exp()),
        ("log", |a, b| (a * b).log(), |a, b| (a * b).ln()),
        ("sqrt", |a, b| (a * b).sqrt(), |a, b| (a * b).sqrt()),
        ("tanh", |a, _| a.tanh(), |a, _| a.tanh()),
        ("relu", |a, _| a.relu(), |a, _| a.max(0.0)),
        ("sigmoid", |a, _| a.sigmoid(), |a, _| 1.0 / (1.0 + (-a).exp())),
        (
            "gelu",
            |a, _| a.gelu(),
            |a, _| {
                0.5 * a * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (a + 0.044715 * a.powi(3))).tanh())
            },
        ),
        ("sum", |a, b| (a * b).sum(), |a, b| a * b),
        ("mean", |a, b| (a + b).mean(), |a, b| a + b),
    ];
    let (x, y) = (0.7, 1.3);
    for (name, op, f) in ops {
        let mut p = ParamStore::new();
        let (a, b) = (value(&mut p, "a", x), value(&mut p, "b", y));
        let mut tape = Tape::new();
        let mut grads = Grads::new(&p);
        let g = tape.graph(&p);
        let out = op(g.param(a), g.param(b));
        assert_eq!(out.shape().dims(), [] as [usize; 0], "{name} keeps a scalar a scalar");
        let got = g.backward(out, &mut grads).unwrap();
        assert!(close(got, f(x, y)), "{name}: {got} vs {}", f(x, y));
        let h = 1e-6;
        let (da, db) = ((f(x + h, y) - f(x - h, y)) / (2.0 * h), (f(x, y + h) - f(x, y - h)) / (2.0 * h));
        let (ga, gb) = (grads.get(a).sum(), grads.get(b).sum());
        assert!(close(ga, da) && close(gb, db), "{name}: gradients ({ga}, {gb}) vs ({da}, {db})");
    }
    // SGD: a -= lr * grad; AdamW's first step moves each by lr against the gradient's sign.
    let mut p = ParamStore::new();
    let a = value(&mut p, "a", 2.0);
    let mut tape = Tape::new();
    let mut grads = Grads::new(&p);
    {
        let g = tape.graph(&p);
        let loss = g.param(a) * g.param(a); // d/da = 2a = 4
        g.backward(loss, &mut grads).unwrap();
    }
    Sgd::new(0.1).step(&mut p, &grads).unwrap();
    assert!(close(p.get(a).sum(), 2.0 - 0.1 * 4.0));
    let mut adamw = mm_tensor::AdamW::new(0.01);
    adamw.weight_decay = 0.0;
    adamw.step(&mut p, &grads).unwrap();
    assert!(close(p.get(a).sum(), 1.6 - 0.01), "{}", p.get(a).sum());
}
