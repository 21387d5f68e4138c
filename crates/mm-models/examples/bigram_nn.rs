//! Trains the bigram neural net of part 1 by full-batch gradient descent and compares it with the
//! counting model it converges to.
//!
//! `cargo run --release -p mm-models --example bigram_nn [-- steps]` (after `cargo xtask download`)

use std::sync::atomic::AtomicBool;

use mm_data::{Dataset, Examples, default_dataset_path};
use mm_models::{BigramCounts, BigramNet, Model, TrainConfig, evaluate, train};
use rand::SeedableRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = Dataset::load(default_dataset_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))?;
    let vocab = data.vocab();
    let examples = Examples::windows(data.words(), &vocab, 1)?;
    let mut cfg = TrainConfig::bigram_nn();
    if let Some(steps) = std::env::args().nth(1).and_then(|s| s.parse().ok()) {
        cfg.steps = steps;
    }
    let mut net = BigramNet::new(&vocab, 0.01, &mut rand::rngs::StdRng::seed_from_u64(2147483647))?;
    let report = train(&mut net, &examples, None, &cfg, &AtomicBool::new(false), |m| {
        if m.step % 20 == 0 {
            println!("step {:>4}  loss {:.4}", m.step, m.loss);
        }
    })?;
    let counts = BigramCounts::fit(data.words(), &vocab)?;
    let nn = evaluate(&net, &examples)?;
    let cm = counts.nll(data.words(), 1.0)?;
    println!("after {} steps: bigram-nn data NLL {nn:.6}, counting model (alpha 1) {cm:.6}", report.steps);
    let w = net.params().get(net.w()).mapv(|x| f64::from(x).exp());
    let p = counts.probs(1.0)?;
    let mut max_diff = 0.0f64;
    for (row_w, row_p) in w.rows().into_iter().zip(p.rows()) {
        let sum = row_w.sum();
        for (a, b) in row_w.iter().zip(row_p) {
            max_diff = max_diff.max((a / sum - b).abs());
        }
    }
    println!("max |softmax(W) - P| = {max_diff:.4}");
    Ok(())
}
