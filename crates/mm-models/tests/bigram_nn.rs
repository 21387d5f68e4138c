//! The bigram net converges to the counting model (on the real `names.txt`).

use std::sync::atomic::AtomicBool;

mod common;

use mm_data::Examples;
use mm_models::{BigramCounts, BigramNet, Model, TrainConfig, evaluate, train};
use rand::SeedableRng;

#[test]
fn the_bigram_net_converges_to_the_counting_model() {
    let data = common::names();
    let vocab = data.vocab();
    let examples = Examples::windows(data.words(), &vocab, 1).unwrap();
    let mut net = BigramNet::new(&vocab, 0.01, &mut rand::rngs::StdRng::seed_from_u64(2147483647)).unwrap();
    let before = evaluate(&net, &examples).unwrap();
    train(&mut net, &examples, None, &TrainConfig::bigram_nn(), &AtomicBool::new(false), |_| {}).unwrap();
    let nn = evaluate(&net, &examples).unwrap();
    let counts = BigramCounts::fit(data.words(), &vocab).unwrap();
    let smoothed = counts.nll(data.words(), 1.0).unwrap();
    assert!(before > 3.5, "a random W starts far off ({before:.3})");
    assert!((nn - smoothed).abs() < 0.01, "bigram-nn {nn:.5} vs counts {smoothed:.5}");
    // softmax(W) row by row against P = (N + 1) normalised.
    let w = net.params().get(net.w()).mapv(|x| f64::from(x).exp());
    let p = counts.probs(1.0).unwrap();
    for (row_w, row_p) in w.rows().into_iter().zip(p.rows()) {
        let sum = row_w.sum();
        for (a, b) in row_w.iter().zip(row_p) {
            assert!((a / sum - b).abs() < 0.06, "{} vs {b}", a / sum);
        }
    }
}
