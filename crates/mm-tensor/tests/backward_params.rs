//! `Graph::backward_params`, the training step's backward pass, which recycles node gradients:
//! the same parameter gradients as `backward`, to the bit, step after step on one tape (the
//! recycled buffers come from the step before), and no node gradient left to read.

use mm_tensor::{Grads, ParamStore, Tape, init};
use rand::SeedableRng;

/// A graph with the shapes of a training step: a product, a residual `add` and a `reshape`
/// (whose gradients pass through without a copy), `tanh`, a second use of one node (whose
/// gradient is added), layer norm and a cross-entropy.
#[test]
fn backward_params_gives_backwards_gradients_to_the_bit() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut params = ParamStore::<f32>::new();
    let w1 = params.add("w1", init::randn(&[12, 12], &mut rng)).unwrap();
    let b1 = params.add("b1", init::randn(&[12], &mut rng)).unwrap();
    let ln_w = params.add("ln_w", init::randn(&[12], &mut rng)).unwrap();
    let ln_b = params.add("ln_b", init::randn(&[12], &mut rng)).unwrap();
    let w2 = params.add("w2", init::randn(&[12, 5], &mut rng)).unwrap();
    let targets: Vec<u32> = (0..8).map(|i| (i * 3 % 5) as u32).collect();
    let data: Vec<f32> = (0..96).map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0).collect();
    let (mut kept, mut recycled) = (Tape::new(), Tape::new());
    let (mut want, mut got) = (Grads::new(&params), Grads::new(&params));
    for step in 0..3 {
        let run = |tape: &mut Tape<f32>, grads: &mut Grads<f32>, recycle: bool| {
            let g = tape.graph(&params);
            let x = g.input(&[8, 12], &data);
            let h = x.linear(g.param(w1), g.param(b1)).tanh();
            let r = (h + x).reshape(&[2, 4, 12]).layer_norm(g.param(ln_w), g.param(ln_b), 1e-5);
            let y = (r.reshape(&[8, 12]) * h).matmul(g.param(w2));
            let loss = y.cross_entropy(&targets[..]);
            let value = if recycle { g.backward_params(loss, grads) } else { g.backward(loss, grads) };
            let kept: Vec<bool> = [h, r, y, loss].iter().map(|v| v.grad().is_some()).collect();
            (value.unwrap(), kept)
        };
        let (loss, kept_grads) = run(&mut kept, &mut want, false);
        let (loss_r, recycled_grads) = run(&mut recycled, &mut got, true);
        assert_eq!(loss.to_bits(), loss_r.to_bits(), "step {step}: the loss");
        assert_eq!(kept_grads, [true; 4], "step {step}: backward keeps every node's gradient");
        assert_eq!(recycled_grads, [false; 4], "step {step}: backward_params keeps none");
        for id in params.ids() {
            let (a, b) = (want.get(id), got.get(id));
            assert!(
                a.iter().zip(b.iter()).all(|(a, b)| a.to_bits() == b.to_bits()),
                "step {step}: the gradient of {} differs",
                params.name(id)
            );
        }
    }
}
