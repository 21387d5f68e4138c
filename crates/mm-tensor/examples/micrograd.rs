//! micrograd's lecture, on our engine: `cargo run -p mm-tensor --example micrograd [-- --dot]`.
//!
//! A micrograd `Value` is a 0-d tensor on the tape; `_backward` is one arm of the engine's
//! backward match; the topological order micrograd builds is the tape's order of recording. With
//! `--dot`, prints the neuron's graph as Graphviz DOT instead (`| dot -Tsvg > neuron.svg`).

use mm_tensor::{Grads, Optimizer, ParamId, ParamStore, Sgd, Tape, TensorError, init};
use ndarray::ArrayD;
use rand::SeedableRng;

/// micrograd's `Value(x)`: a 0-d parameter.
fn value(params: &mut ParamStore<f64>, name: &str, x: f64) -> Result<ParamId, TensorError> {
    params.add(name, ArrayD::from_elem(vec![], x))
}

fn main() -> Result<(), TensorError> {
    let dot = std::env::args().any(|a| a == "--dot");

    // The expression: L = (a*b + c) * f.
    let mut p = ParamStore::new();
    let (a, b) = (value(&mut p, "a", 2.0)?, value(&mut p, "b", -3.0)?);
    let (c, f) = (value(&mut p, "c", 10.0)?, value(&mut p, "f", -2.0)?);
    let mut tape = Tape::new();
    let mut grads = Grads::new(&p);
    let g = tape.graph(&p);
    let e = g.param(a) * g.param(b);
    let d = e + g.param(c);
    let l = d * g.param(f);
    let loss = g.backward(l, &mut grads)?;
    let grad = |id| grads.get(id).sum();
    let inner = |v: mm_tensor::Var<'_, f64>| v.grad().map_or(0.0, |g| g.sum());
    if !dot {
        println!("L = {loss}");
        println!(
            "dL/da = {}, dL/db = {}, dL/dc = {}, dL/de = {}, dL/dd = {}, dL/df = {}",
            grad(a),
            grad(b),
            grad(c),
            inner(e),
            inner(d),
            grad(f)
        );
    }

    // The neuron: o = tanh(x1 w1 + x2 w2 + b).
    let mut p = ParamStore::new();
    let (x1, x2) = (value(&mut p, "x1", 2.0)?, value(&mut p, "x2", 0.0)?);
    let (w1, w2) = (value(&mut p, "w1", -3.0)?, value(&mut p, "w2", 1.0)?);
    let bias = value(&mut p, "b", 6.881_373_587_019_543)?;
    let mut grads = Grads::new(&p);
    let g = tape.graph(&p);
    let n = g.param(x1) * g.param(w1) + g.param(x2) * g.param(w2) + g.param(bias);
    let o = n.tanh();
    let out = g.backward(o, &mut grads)?;
    if dot {
        print!("{}", g.to_dot(Some(&grads)));
        return Ok(());
    }
    let grad = |id| grads.get(id).sum();
    println!(
        "o = {out:.4}; do/dx1 = {:.4}, do/dw1 = {:.4}, do/dx2 = {:.4}, do/dw2 = {:.4}",
        grad(x1),
        grad(w1),
        grad(x2),
        grad(w2)
    );

    // MLP(3, [4, 4, 1]) of tanh neurons, squared error, plain gradient descent.
    let xs = [2.0, 3.0, -1.0, 3.0, -1.0, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0, -1.0];
    let ys = [1.0, -1.0, -1.0, 1.0];
    let mut rng = rand::rngs::StdRng::seed_from_u64(1337);
    let mut p = ParamStore::<f64>::new();
    let sizes = [3, 4, 4, 1];
    let mut layers = Vec::new();
    for i in 0..3 {
        let w = p.add(&format!("w{i}"), init::uniform(&[sizes[i], sizes[i + 1]], -1.0, 1.0, &mut rng))?;
        let b = p.add(&format!("b{i}"), init::uniform(&[sizes[i + 1]], -1.0, 1.0, &mut rng))?;
        layers.push((w, b));
    }
    let mut grads = Grads::new(&p);
    let mut sgd = Sgd::new(0.05);
    for step in 0..200 {
        let g = tape.graph(&p);
        let mut h = g.input(&[4, 3], &xs);
        for &(w, b) in &layers {
            h = h.linear(g.param(w), g.param(b)).tanh();
        }
        let diff = h - g.input(&[4, 1], &ys);
        let loss = g.backward((diff * diff).sum(), &mut grads)?;
        if step % 40 == 0 || step == 199 {
            let preds: Vec<String> = h.to_array().iter().map(|y| format!("{y:+.3}")).collect();
            println!("step {step:3}: loss {loss:.5}, predictions [{}]", preds.join(", "));
        }
        sgd.step(&mut p, &grads)?;
    }
    Ok(())
}
