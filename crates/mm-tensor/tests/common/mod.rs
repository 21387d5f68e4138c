//! The finite-difference gradient check shared by `gradcheck.rs` (each op) and
//! `shared_nodes.rs` (every op read by shared nodes).

// Each test binary uses a part of this module.
#![allow(dead_code)]

use mm_tensor::{Grads, Graph, ParamStore, Tape, Var, init};
use ndarray::ArrayD;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// How inputs are drawn.
#[derive(Clone, Copy)]
pub enum Dist {
    /// Standard normal.
    Normal,
    /// Positive, away from zero (for `log`, fractional `pow`, divisors).
    Positive,
}

/// Checks the gradient of `f` with respect to inputs of the given shapes, the inputs and a
/// random upstream `u` drawn from `seed`: the analytic gradient of `L = sum(f(x) * u)` against
/// `(L(x + h) - L(x - h)) / 2h` element by element in `f64` (the worst element is reported).
/// The training step's pass (`backward_params`: node gradients dropped once used, their buffers
/// recycled), run twice on one tape, and then `backward` on the buffers it left, must give the
/// same gradients to the bit.
pub fn check_seeded(
    name: &str,
    seed: u64,
    shapes: &[(&[usize], Dist)],
    f: impl for<'g> Fn(&'g Graph<'g, f64>, &[Var<'g, f64>]) -> Var<'g, f64>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut params = ParamStore::<f64>::new();
    for (i, (shape, dist)) in shapes.iter().enumerate() {
        let mut x = init::randn::<f64, _>(shape, &mut rng);
        if let Dist::Positive = dist {
            x.mapv_inplace(|v| v.abs() + 0.5);
        }
        params.add(&format!("x{i}"), x).unwrap();
    }
    let ids: Vec<_> = params.ids().collect();
    let mut tape = Tape::new();

    // Analytic gradients of sum(f(x) * u).
    let mut grads = Grads::new(&params);
    let upstream = {
        let g = tape.graph(&params);
        let x: Vec<_> = ids.iter().map(|&id| g.param(id)).collect();
        let out = f(&g, &x);
        g.check().unwrap_or_else(|e| panic!("{name}: {e}"));
        let u: ArrayD<f64> = init::randn(out.shape().dims(), &mut rng);
        g.backward_from(out, u.view(), &mut grads).unwrap();
        u
    };
    {
        let mut recycled = Grads::new(&params);
        for round in 0..3 {
            let g = tape.graph(&params);
            let x: Vec<_> = ids.iter().map(|&id| g.param(id)).collect();
            let loss = (f(&g, &x) * g.array(upstream.view())).sum();
            if round < 2 {
                // Twice on one tape: the second pass runs on buffers the first left in its pool.
                g.backward_params(loss, &mut recycled).unwrap();
            } else {
                // `backward` on buffers the recycling passes left (stale contents, right length).
                g.backward(loss, &mut recycled).unwrap();
            }
            for &id in &ids {
                assert_eq!(recycled.data(id), grads.data(id), "{name}: round {round} d/d{}", params.name(id));
            }
        }
    }
    let loss = |params: &ParamStore<f64>, tape: &mut Tape<f64>| {
        // A training graph (not `no_grad`), so that dropout draws the same mask as above.
        let g = tape.graph(params);
        let x: Vec<_> = ids.iter().map(|&id| g.param(id)).collect();
        let out = f(&g, &x).to_array();
        (out * &upstream).sum()
    };

    // Central differences, element by element.
    let h = 1e-6;
    let mut worst = (0.0f64, String::new());
    for &id in &ids {
        let numel = params.data(id).len();
        for k in 0..numel {
            let x0 = params.data(id)[k];
            params.data_mut(id)[k] = x0 + h;
            let up = loss(&params, &mut tape);
            params.data_mut(id)[k] = x0 - h;
            let down = loss(&params, &mut tape);
            params.data_mut(id)[k] = x0;
            let numeric = (up - down) / (2.0 * h);
            let analytic = grads.data(id)[k];
            let tol = 1e-6 + 1e-5 * numeric.abs();
            let err = (analytic - numeric).abs() / tol;
            if err > worst.0 {
                worst =
                    (err, format!("d/d{}[{k}]: analytic {analytic} vs numeric {numeric}", params.name(id)));
            }
        }
    }
    assert!(worst.0 <= 1.0, "{name}: {}", worst.1);
}
