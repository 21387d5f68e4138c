//! Every model kind's training step takes `Graph::backward_params` (`train()` does), which
//! recycles node gradients: it must give `Graph::backward`'s parameter gradients to the bit, on
//! a tape that has run steps before (whose buffers it recycles), dropout's masks included.

mod common;

use mm_data::Batch;
use mm_models::Spec;
use mm_tensor::{Grads, Tape};
use rand::SeedableRng;

#[test]
fn every_kinds_parameter_gradients_are_backwards_to_the_bit() {
    let vocab = common::vocab();
    let levers: Spec = serde_json::from_str(
        r#"{"kind": "transformer", "block_size": 10, "n_layer": 2, "n_head": 2, "n_embd": 16,
            "dropout": 0.2, "tie_weights": true, "rotary": true}"#,
    )
    .unwrap();
    for spec in common::neural_specs().chain([levers]) {
        let mut model = spec.build(&vocab, &mut rand::rngs::StdRng::seed_from_u64(1)).unwrap();
        let m = model.neural_mut().unwrap();
        let ex = common::examples(m);
        let mut batch = Batch::new(8, m.block_size());
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let (mut kept, mut recycled) = (Tape::new(), Tape::new());
        let (mut want, mut got) = (Grads::new(m.params()), Grads::new(m.params()));
        for step in 0..3 {
            ex.sample_into(&mut rng, &mut batch).unwrap();
            m.begin_step(7, step);
            let (x, y) = (batch.x.view(), batch.y.as_slice().unwrap());
            let a = {
                let g = kept.graph(m.params());
                g.backward(m.loss(&g, x, y), &mut want).unwrap()
            };
            let b = {
                let g = recycled.graph(m.params());
                g.backward_params(m.loss(&g, x, y), &mut got).unwrap()
            };
            let kind = spec.kind();
            assert_eq!(a.to_bits(), b.to_bits(), "{kind}, step {step}: the loss");
            for id in m.params().ids() {
                let same =
                    want.get(id).iter().zip(got.get(id).iter()).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{kind}, step {step}: the gradient of {}", m.params().name(id));
            }
        }
    }
}
