//! The picture of one training step (`Graph::to_dot`, micrograd's `draw_dot` for tensors)
//! names every op of the lecture MLP's forward pass and its five parameters.

use mm_data::{Examples, Vocab};
use mm_models::{Mlp, MlpConfig, Model};
use mm_tensor::{Grads, Tape};
use rand::SeedableRng;

#[test]
fn the_mlp_steps_picture_names_its_ops_and_parameters() {
    let words = ["emma", "olivia", "ava"];
    let vocab = Vocab::from_words(&words);
    let m = Mlp::new(MlpConfig::default(), &vocab, &mut rand::rngs::StdRng::seed_from_u64(0)).unwrap();
    let ex = Examples::windows(&words, &vocab, 3).unwrap();
    let mut tape = Tape::new();
    let mut grads = Grads::new(m.params());
    let g = tape.graph(m.params());
    let loss = m.loss(&g, ex.x.view(), ex.y.as_slice().unwrap());
    g.backward(loss, &mut grads).unwrap();
    let dot = g.to_dot(Some(&grads));
    for name in
        ["C |", "W1 |", "b1 |", "W2 |", "b2 |", "Embedding", "Reshape", "Linear", "Tanh", "CrossEntropy"]
    {
        assert!(dot.contains(name), "{name} is missing from\n{dot}");
    }
    // Every node but the last feeds another: the edges reach the loss.
    let nodes = dot.lines().filter(|l| l.contains("[label=")).count();
    let edges = dot.lines().filter(|l| l.contains("->")).count();
    assert!(edges >= nodes - 1, "{nodes} nodes, {edges} edges");
    // The loss is a scalar: its value is shown, with the seed gradient 1.
    assert!(
        dot.lines().any(|l| l.contains("CrossEntropy | [] | data") && l.contains("grad 1.0000")),
        "{dot}"
    );
}
