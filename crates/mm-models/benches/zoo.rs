//! Criterion benches of one training step of every model kind of the registry that trains on
//! minibatches (`Spec::all()` but the bigram counts, which do not train, and the bigram net,
//! which takes the whole split as its batch: `cargo xtask bench` has its row), at its default
//! size (the lectures' for `mlp`, `bn-mlp` and `wavenet`, makemore.py's for `transformer`,
//! `bow`, `rnn`, `gru`, `mlp-makemore` and `bigram-makemore`), as `train()` runs it: the batch
//! draw, forward, backward, the optimizer's update and BatchNorm's running statistics.
//!
//! `cargo bench -p mm-models --bench zoo` (one kind: `-- transformer`)
//!
//! The words are made up here (2,000 of 3 to 15 letters, so that makemore's block is 16, as
//! names.txt's), so the bench needs no dataset; the steps' arithmetic is that of names.txt's.
//! The side-by-side figures with PyTorch are `cargo xtask bench --zoo`'s (`examples/zoo_step`).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mm_data::{Batch, Examples, Layout, Vocab};
use mm_models::Spec;
use mm_tensor::{BatchStatsLog, Grads, Tape};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// 2,000 words of 3 to 15 letters from a to z.
fn words() -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(3407);
    (0..2000)
        .map(|i| {
            let len = if i == 0 { 15 } else { rng.random_range(3..=15) };
            (0..len).map(|_| rng.random_range(b'a'..=b'z') as char).collect()
        })
        .collect()
}

fn zoo_steps(c: &mut Criterion) {
    let words = words();
    let vocab = Vocab::from_words(&words);
    let block = words.iter().map(String::len).max().unwrap_or(0) + 1;
    for mut spec in Spec::all() {
        let mut rng = StdRng::seed_from_u64(3407);
        let kind = spec.kind();
        if spec.layout() == Layout::Words {
            spec = spec.with_block_size(block);
        }
        let cfg = spec.train_config();
        let Some(rows) = cfg.batch_size else { continue };
        let Some(mut model) = spec.build(&vocab, &mut rng).expect("the default model builds").into_neural()
        else {
            continue;
        };
        let train = Examples::new(&words, &vocab, model.layout(), model.block_size()).expect("examples");
        let mut batch = Batch::new(rows, model.block_size());
        let mut opt = cfg.optimizer();
        let (mut tape, mut grads, mut stats) =
            (Tape::new(), Grads::new(model.params()), BatchStatsLog::new());
        c.bench_function(&format!("{kind} training step (batch {rows})"), |b| {
            b.iter(|| {
                train.sample_into(&mut rng, &mut batch).unwrap();
                let loss = {
                    let g = tape.graph(model.params());
                    let loss = model.loss(&g, batch.x.view(), batch.y.as_slice().unwrap());
                    let loss = g.backward_params(loss, &mut grads).unwrap();
                    g.batch_stats(&mut stats);
                    loss
                };
                opt.step(model.params_mut(), &grads).unwrap();
                if !stats.is_empty() {
                    model.update_running(&stats).unwrap();
                }
                black_box(loss)
            })
        });
    }
}

criterion_group!(benches, zoo_steps);
criterion_main!(benches);
