//! `Graph::backward_params`, the training step's backward pass, which recycles node gradients:
//! the same parameter gradients as `backward`, to the bit, step after step on one tape (the
//! recycled buffers come from the step before), and no node gradient left to read.

use mm_tensor::{Grads, ParamStore, Tape, init};
use rand::SeedableRng;

/// How a step back-propagates.
#[derive(Clone, Copy, PartialEq)]
enum Pass {
    Keep,
    Recycle,
}

/// A graph with the shapes of a training step, and the gradient buffers shared in every way
/// recycling must respect: a residual `add` and chained `reshape`s, whose gradients pass through
/// without a copy; an `add` whose two inputs have no other use, which passes one buffer to both
/// (with nodes of the same length between the two, which take buffers from the pool); a node
/// used twice (its gradient added); layer norm and a cross-entropy.
struct Net {
    params: ParamStore<f32>,
    data: Vec<f32>,
    targets: Vec<u32>,
}

impl Net {
    fn new() -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut params = ParamStore::<f32>::new();
        for (name, shape) in [
            ("w1", &[12, 12][..]),
            ("b1", &[12]),
            ("w3", &[12, 12]),
            ("w4", &[12, 12]),
            ("ln_w", &[12]),
            ("ln_b", &[12]),
            ("w2", &[12, 5]),
        ] {
            params.add(name, init::randn(shape, &mut rng)).unwrap();
        }
        let targets = (0..8).map(|i| (i * 3 % 5) as u32).collect();
        let data = (0..96).map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0).collect();
        Net { params, data, targets }
    }

    /// One step's loss, with every parameter's gradient in `grads`, and the gradients of the
    /// nodes `h`, `a`, `s` and `r` as `Var::grad` gives them afterwards.
    fn step(&self, tape: &mut Tape<f32>, grads: &mut Grads<f32>, pass: Pass) -> (f32, Vec<Option<Vec<f32>>>) {
        let p = |name: &str| self.params.id(name).unwrap();
        let g = tape.graph(&self.params);
        let x = g.input(&[8, 12], &self.data);
        let h = x.linear(g.param(p("w1")), g.param(p("b1"))).tanh(); // used twice
        let a = x.matmul(g.param(p("w3"))).tanh();
        // `* 1.0`: one more node of the same length between the two sharers of a buffer.
        let b = h.matmul(g.param(p("w4"))).tanh() * 1.0;
        let s = (a + b).reshape(&[2, 4, 12]).reshape(&[8, 12]);
        let r = (s + x).reshape(&[2, 4, 12]).layer_norm(g.param(p("ln_w")), g.param(p("ln_b")), 1e-5);
        let y = (r.reshape(&[8, 12]) * h).matmul(g.param(p("w2")));
        let loss = y.cross_entropy(&self.targets[..]);
        let value = match pass {
            Pass::Keep => g.backward(loss, grads),
            Pass::Recycle => g.backward_params(loss, grads),
        };
        let nodes = [h, a, s, r].iter().map(|v| v.grad().map(|g| g.iter().copied().collect())).collect();
        (value.unwrap(), nodes)
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn backward_params_gives_backwards_gradients_to_the_bit() {
    let net = Net::new();
    // A tape that keeps every gradient, one that recycles, and one that alternates the two.
    let (mut kept, mut recycled, mut mixed) = (Tape::new(), Tape::new(), Tape::new());
    let [mut want, mut got, mut got_mixed] = [(); 3].map(|_| Grads::new(&net.params));
    for step in 0..4 {
        let (loss, kept_nodes) = net.step(&mut kept, &mut want, Pass::Keep);
        let (loss_r, recycled_nodes) = net.step(&mut recycled, &mut got, Pass::Recycle);
        let mixed_pass = if step % 2 == 0 { Pass::Recycle } else { Pass::Keep };
        let (loss_m, mixed_nodes) = net.step(&mut mixed, &mut got_mixed, mixed_pass);
        assert_eq!([loss.to_bits(), loss_m.to_bits()], [loss_r.to_bits(); 2], "step {step}: the loss");
        assert!(kept_nodes.iter().all(Option::is_some), "step {step}: backward keeps every node's gradient");
        assert!(recycled_nodes.iter().all(Option::is_none), "step {step}: backward_params keeps none");
        if mixed_pass == Pass::Keep {
            // After a recycling step, the node gradients of a keeping one are still right.
            for (i, (k, m)) in kept_nodes.iter().zip(&mixed_nodes).enumerate() {
                assert_eq!(bits(k.as_ref().unwrap()), bits(m.as_ref().unwrap()), "step {step}: node {i}");
            }
        }
        for id in net.params.ids() {
            let name = net.params.name(id);
            let want = bits(want.data(id));
            assert_eq!(want, bits(got.data(id)), "step {step}: {name}, recycled");
            assert_eq!(want, bits(got_mixed.data(id)), "step {step}: {name}, alternated");
        }
    }
}
