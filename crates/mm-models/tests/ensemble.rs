//! Ensembles (`evaluate_ensemble`, `sample_ensemble`): an ensemble of one model is that model
//! (its loss to the bit, its samples); two models give the mixture of their distributions,
//! computed here by hand in `f64` from each model's own forward logits, for the loss and for a
//! greedy decoding; the mixture's loss is below the mean of its members' (Jensen); models that
//! read differently are refused with an error naming the difference.

use std::sync::atomic::AtomicBool;

mod common;

use common::{examples, names, vocab};

use mm_data::{Examples, Split, SplitSpec, Vocab};
use mm_models::checkpoint::AnyModel;
use mm_models::{
    Model, ModelError, OptimizerKind, SampleConfig, Schedule, Spec, TrainConfig, evaluate, evaluate_ensemble,
    sample, sample_ensemble, train,
};
use mm_tensor::Tape;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

/// A spec from its JSON.
fn spec(v: serde_json::Value) -> Spec {
    serde_json::from_value(v).unwrap()
}

/// A small Transformer of block size `block_size`.
fn transformer(block_size: usize) -> Spec {
    spec(json!({"kind": "transformer", "block_size": block_size, "n_layer": 1, "n_head": 2, "n_embd": 16}))
}

/// `spec` built from `seed` and trained `steps` steps of its own optimizer (batch 16, rate 0.1
/// for SGD, 1e-2 for AdamW, minibatches from `seed`) on `words`.
fn trained(spec: &Spec, vocab: &Vocab, words: &[String], seed: u64, steps: usize) -> AnyModel {
    let mut model = spec.build(vocab, &mut StdRng::seed_from_u64(seed)).unwrap();
    let m = model.neural_mut().unwrap();
    let ex = Examples::new(words, m.vocab(), m.layout(), m.block_size()).unwrap();
    let base = spec.train_config();
    let lr = if base.optimizer == OptimizerKind::Sgd { 0.1 } else { 1e-2 };
    let cfg = TrainConfig {
        steps,
        batch_size: Some(16),
        schedule: Schedule::Constant(lr),
        eval_every: 0,
        seed,
        ..base
    };
    train(m, &ex, None, &cfg, &AtomicBool::new(false), |_| {}).unwrap();
    model
}

/// The dozen names as strings.
fn words() -> Vec<String> {
    common::WORDS.iter().map(|w| w.to_string()).collect()
}

/// `m`'s forward logits over `x`, as `f64` rows `[rows, V]`.
fn logits(m: &dyn Model, x: ndarray::ArrayView2<'_, u32>) -> Vec<Vec<f64>> {
    let mut tape = Tape::new();
    let g = tape.no_grad(m.params());
    let l = m.forward(&g, x).to_array();
    let v = *l.shape().last().unwrap();
    l.as_slice().unwrap().chunks(v).map(|r| r.iter().map(|&z| f64::from(z)).collect()).collect()
}

/// A row's softmax, in `f64`.
fn softmax(row: &[f64]) -> Vec<f64> {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = row.iter().map(|z| (z - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

#[test]
fn an_ensemble_of_one_is_the_model_itself() {
    let data = names();
    let split = Split::new(data.words(), SplitSpec::default()).unwrap();
    let train_words = &split.train[..2000];
    let specs = [
        // Windows; the dev split's 22,655 windows are 23 chunks, on every core.
        spec(json!({"kind": "mlp", "block_size": 3, "n_embd": 10, "n_hidden": 64, "init": "kaiming"})),
        // Words, with a decoder (its key/value cache).
        transformer(16),
        // Words, without a decoder (the forward pass over the prefix at each step).
        spec(json!({"kind": "gru", "block_size": 16, "n_embd": 16, "n_embd2": 16})),
    ];
    for s in &specs {
        let model = trained(s, &data.vocab(), train_words, 3, 30);
        let m = model.neural().unwrap();
        let dev = Examples::new(&split.dev, m.vocab(), m.layout(), m.block_size()).unwrap();
        let (one, alone) = (evaluate_ensemble(&[m], &dev).unwrap(), evaluate(m, &dev).unwrap());
        assert_eq!(one.to_bits(), alone.to_bits(), "{}: {one} vs {alone}", m.kind());
        // Past a chunk of 256 samples (the decoder starts afresh), with each setting in play.
        for cfg in [
            SampleConfig { n: 300, seed: 5, ..SampleConfig::default() },
            SampleConfig {
                n: 40,
                seed: 6,
                temperature: 0.7,
                top_k: Some(5),
                prefix: "ma".into(),
                max_len: 12,
            },
        ] {
            let (one, alone) = (sample_ensemble(&[m], &cfg).unwrap(), sample(m, &cfg).unwrap());
            assert_eq!(one, alone, "{}", m.kind());
        }
    }
}

#[test]
fn two_transformers_give_the_mixture_of_their_distributions() {
    let (vocab, words) = (vocab(), words());
    let a = trained(&transformer(10), &vocab, &words, 1, 40);
    let b = trained(&transformer(10), &vocab, &words, 2, 40);
    let (a, b) = (a.neural().unwrap(), b.neural().unwrap());
    let ex = examples(a);
    let y = ex.y.as_slice().unwrap();
    let (la, lb) = (logits(a, ex.x.view()), logits(b, ex.x.view()));
    // By hand: -log((softmax(a) + softmax(b)) / 2) at each target; and, to show that the
    // comparison can tell, the loss of the mean of the logits (another model).
    let (mut mixture, mut mean_logits, mut n) = (0.0, 0.0, 0);
    for (r, &t) in y.iter().enumerate() {
        if t == mm_data::Examples::NO_TARGET {
            continue;
        }
        let (pa, pb) = (softmax(&la[r]), softmax(&lb[r]));
        mixture -= ((pa[t as usize] + pb[t as usize]) / 2.0).ln();
        let avg: Vec<f64> = la[r].iter().zip(&lb[r]).map(|(x, z)| (x + z) / 2.0).collect();
        mean_logits -= softmax(&avg)[t as usize].ln();
        n += 1;
    }
    let (mixture, mean_logits) = (mixture / n as f64, mean_logits / n as f64);
    let got = evaluate_ensemble(&[a, b], &ex).unwrap();
    assert!((got - mixture).abs() <= 2e-6 * mixture, "{got} vs {mixture} by hand");
    assert!(
        (mixture - mean_logits).abs() > 1e-3,
        "{mixture} vs {mean_logits}: the test cannot tell them apart"
    );
    // The order of the members does not matter (to rounding).
    let ba = evaluate_ensemble(&[b, a], &ex).unwrap();
    assert!((ba - got).abs() <= 2e-6 * got, "{ba} vs {got}");

    // Greedy decoding (top-k 1) of the mixture, by hand: at each step both models' full forward
    // pass over the prefix, the mixture's likeliest next character. sample_ensemble goes through
    // the Transformers' key/value caches instead.
    let mut ids = vec![0u32];
    loop {
        let x = ndarray::Array2::from_shape_vec((1, ids.len()), ids.clone()).unwrap();
        let (pa, pb) = (logits(a, x.view()), logits(b, x.view()));
        let (pa, pb) = (softmax(pa.last().unwrap()), softmax(pb.last().unwrap()));
        let next = (0..pa.len()).max_by(|&i, &j| (pa[i] + pb[i]).total_cmp(&(pa[j] + pb[j]))).unwrap();
        if next == 0 || ids.len() > 9 {
            break;
        }
        ids.push(next as u32);
    }
    let by_hand = vocab.decode(&ids[1..]).unwrap();
    let cfg = SampleConfig { n: 3, top_k: Some(1), max_len: 9, ..SampleConfig::default() };
    assert_eq!(sample_ensemble(&[a, b], &cfg).unwrap(), vec![by_hand.clone(); 3]);
    // The mixture's greedy name is not both members' own, so the comparison can tell.
    let greedy = |m: &dyn Model| sample(m, &cfg).unwrap().remove(0);
    assert!(greedy(a) != by_hand || greedy(b) != by_hand, "{by_hand}: the test cannot tell");
}

#[test]
fn the_mixture_loses_less_than_its_members_on_average() {
    // Jensen: -log of a mean of probabilities is at most the mean of the -logs, and below it
    // when the members differ.
    let data = names();
    let split = Split::new(data.words(), SplitSpec::default()).unwrap();
    let train_words = &split.train[..4000];
    let kinds = [
        (transformer(16), transformer(16)),
        // Of different kinds: a Transformer with a GRU (both read words of 16).
        (transformer(16), spec(json!({"kind": "gru", "block_size": 16, "n_embd": 16, "n_embd2": 16}))),
        // The lectures' MLP, two seeds.
        (
            spec(json!({"kind": "mlp", "block_size": 3, "n_embd": 10, "n_hidden": 64, "init": "kaiming"})),
            spec(json!({"kind": "mlp", "block_size": 3, "n_embd": 10, "n_hidden": 64, "init": "kaiming"})),
        ),
    ];
    for (sa, sb) in &kinds {
        let a = trained(sa, &data.vocab(), train_words, 11, 60);
        let b = trained(sb, &data.vocab(), train_words, 12, 60);
        let (a, b) = (a.neural().unwrap(), b.neural().unwrap());
        let dev = Examples::new(&split.dev, a.vocab(), a.layout(), a.block_size()).unwrap();
        let (la, lb) = (evaluate(a, &dev).unwrap(), evaluate(b, &dev).unwrap());
        let mixture = evaluate_ensemble(&[a, b], &dev).unwrap();
        assert!(mixture < (la + lb) / 2.0, "{} + {}: {mixture} vs {la}, {lb}", a.kind(), b.kind());
        // A model mixed with itself is itself (to rounding).
        let twice = evaluate_ensemble(&[a, a], &dev).unwrap();
        assert!((twice - la).abs() <= 1e-5 * la, "{twice} vs {la}");
    }
}

/// The members of an ensemble.
type Members<'a> = &'a [&'a dyn Model];

#[test]
fn models_that_read_differently_are_refused_by_name() {
    let (vocab, words) = (vocab(), words());
    let build = |s: &Spec, v: &Vocab| s.build(v, &mut StdRng::seed_from_u64(1)).unwrap();
    let t10 = build(&transformer(10), &vocab);
    let t12 = build(&transformer(12), &vocab);
    let mlp = build(
        &spec(json!({"kind": "mlp", "block_size": 10, "n_embd": 4, "n_hidden": 8, "init": "kaiming"})),
        &vocab,
    );
    let other = build(&transformer(10), &Vocab::from_words(&["xyz", "zyx"]));
    let (t10, t12, mlp, other) =
        (t10.neural().unwrap(), t12.neural().unwrap(), mlp.neural().unwrap(), other.neural().unwrap());
    let ex = examples(t10);
    let cfg = SampleConfig { n: 2, ..SampleConfig::default() };
    let letters = format!("{:?}", vocab.itos().iter().collect::<String>());
    // The models, and what model `models.len()` has that model 1 has not.
    let cases: [(Members, [&str; 3]); 3] = [
        (&[t10, t10, t12], ["block_size", "12", "10"]),
        (&[t10, mlp], ["layout", "windows", "words"]),
        (&[t10, other], ["vocabulary", "\".xyz\"", &letters]),
    ];
    for (models, [what, got, first]) in cases {
        for err in [evaluate_ensemble(models, &ex).unwrap_err(), sample_ensemble(models, &cfg).unwrap_err()] {
            let ModelError::EnsembleMismatch { member, what: w, got: g, first: f } = &err else {
                panic!("{err:?}")
            };
            assert_eq!((*member, *w, g.as_str(), f.as_str()), (models.len(), what, got, first));
            let says =
                format!("model {} of the ensemble has {what} {got}, model 1 has {first}: ", models.len());
            assert!(err.to_string().starts_with(&says), "{err}");
        }
    }
    assert!(matches!(evaluate_ensemble(&[], &ex), Err(ModelError::Config(_))));
    assert!(matches!(sample_ensemble(&[], &cfg), Err(ModelError::Config(_))));
    // Examples cut for another block size are refused as evaluate refuses them.
    let cut = Examples::new(&words, &vocab, mm_data::Layout::Words, 12).unwrap();
    assert!(matches!(evaluate_ensemble(&[t10, t10], &cut), Err(ModelError::Config(_))));
}
