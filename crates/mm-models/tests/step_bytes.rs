//! `step_bytes`: what a training step of a batch keeps on its tape, estimated from steps of 16
//! and 32 rows before the batch is allocated, against the tape of a real step of that batch.

mod common;

use mm_models::step_bytes;
use mm_tensor::{Grads, Tape};
use rand::SeedableRng;

#[test]
fn the_estimate_is_the_tape_of_a_real_step() {
    for spec in common::neural_specs() {
        let model = spec.build(&common::vocab(), &mut rand::rngs::StdRng::seed_from_u64(1)).unwrap();
        let m = model.neural().unwrap();
        let examples = common::examples(m);
        for rows in [16, 33, 100, 1000] {
            let need = step_bytes(m, &examples, rows).unwrap();
            // A real step of `rows` rows (the examples repeated), as the training loop runs one.
            let idx: Vec<usize> = (0..rows).map(|i| i % examples.len()).collect();
            let x = examples.x.select(ndarray::Axis(0), &idx);
            let y = examples.y.select(ndarray::Axis(0), &idx);
            let mut tape = Tape::new();
            let mut grads = Grads::new(m.params());
            {
                let g = tape.graph(m.params());
                let loss = m.loss(&g, x.view(), y.as_slice().unwrap());
                g.backward_params(loss, &mut grads).unwrap();
            }
            let held = tape.bytes() as f64;
            let ratio = need as f64 / held;
            // Within a fifth: the check it serves refuses batches many times too large.
            assert!(
                (0.8..=1.25).contains(&ratio),
                "{}: {rows} rows: estimate {need} B, tape {held} B",
                m.kind()
            );
        }
    }
}
