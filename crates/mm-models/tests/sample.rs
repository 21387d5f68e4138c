//! Sampling: deterministic per seed, prefixes, temperature and top-k, the length guard, novelty.

mod common;

use common::names;
use mm_data::{Split, SplitSpec};
use mm_models::{
    BigramCounts, Mlp, MlpConfig, ModelError, Novelty, Origin, SampleConfig, sample, sample_counts,
};
use rand::SeedableRng;

#[test]
fn samples_are_deterministic_per_seed() {
    let data = names();
    let m = BigramCounts::fit(data.words(), &data.vocab()).unwrap();
    let cfg = SampleConfig { n: 50, ..SampleConfig::default() };
    let a = sample_counts(&m, 1.0, &cfg).unwrap();
    assert_eq!(a, sample_counts(&m, 1.0, &cfg).unwrap());
    assert_ne!(a, sample_counts(&m, 1.0, &SampleConfig { seed: 43, ..cfg.clone() }).unwrap());
    assert_eq!(a.len(), 50);
    assert!(a.iter().all(|s| s.chars().all(|c| c.is_ascii_lowercase())));
}

#[test]
fn a_prefix_starts_every_sample_and_must_be_in_the_vocabulary() {
    let data = names();
    let m = BigramCounts::fit(data.words(), &data.vocab()).unwrap();
    let cfg = SampleConfig { n: 30, prefix: "mar".into(), ..SampleConfig::default() };
    assert!(sample_counts(&m, 1.0, &cfg).unwrap().iter().all(|s| s.starts_with("mar")));
    let bad = SampleConfig { prefix: "zoë".into(), ..cfg.clone() };
    let err = sample_counts(&m, 1.0, &bad).unwrap_err();
    assert!(matches!(err, ModelError::Data(mm_data::DataError::UnknownChar { ch: 'ë', .. })), "{err:?}");
    let dot = SampleConfig { prefix: "a.".into(), ..cfg };
    assert!(matches!(sample_counts(&m, 1.0, &dot), Err(ModelError::Config(_))));
}

#[test]
fn temperature_and_top_k_are_checked_and_work() {
    let data = names();
    let m = BigramCounts::fit(data.words(), &data.vocab()).unwrap();
    for t in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let cfg = SampleConfig { temperature: t, ..SampleConfig::default() };
        assert!(matches!(sample_counts(&m, 1.0, &cfg), Err(ModelError::Config(_))), "temperature {t}");
    }
    assert!(matches!(
        sample_counts(&m, 1.0, &SampleConfig { top_k: Some(0), ..Default::default() }),
        Err(ModelError::Config(_))
    ));
    // top-1 is greedy: every sample is the same, whatever the seed.
    let greedy = SampleConfig { n: 10, top_k: Some(1), max_len: 20, ..SampleConfig::default() };
    let g = sample_counts(&m, 1.0, &greedy).unwrap();
    assert!(g.iter().all(|s| s == &g[0]));
    assert_eq!(g, sample_counts(&m, 1.0, &SampleConfig { seed: 9, ..greedy }).unwrap());
}

/// makemore's `generate` keeps every logit at or above the k-th (`logits < v[:, [-1]]` go to
/// -inf): a tie at the k-th value keeps all the tied characters, and never drops a likelier one
/// that comes later in the vocabulary (an earlier version kept the first k in index order).
#[test]
fn top_k_keeps_every_character_tied_with_the_kth() {
    let vocab = mm_data::Vocab::from_words(&["abcd"]); // . a b c d
    let mut n = ndarray::Array2::<u32>::zeros((5, 5));
    // After the start: a, b and c once each, d 100 times; every letter then ends the word.
    n.row_mut(0).assign(&ndarray::arr1(&[0, 1, 1, 1, 100]));
    n.column_mut(0).slice_mut(ndarray::s![1..]).fill(1);
    let m = BigramCounts::from_counts(vocab, n).unwrap();
    let count = |top_k| {
        let cfg = SampleConfig { n: 2000, top_k, max_len: 1, ..SampleConfig::default() };
        let s = sample_counts(&m, 0.0, &cfg).unwrap();
        ["a", "b", "c", "d"].map(|c| s.iter().filter(|x| x.as_str() == c).count())
    };
    // top-2: d and the three tied at the second value, in the full distribution's proportions.
    let [a, b, c, d] = count(Some(2));
    assert_eq!(a + b + c + d, 2000);
    assert!(a > 0 && b > 0 && c > 0, "a tie at the k-th keeps every tied character: {a} {b} {c}");
    assert!(d > 1900, "the likeliest character is kept: {d} of 2000");
    assert_eq!(count(Some(2)), count(None));
    // top-1 is d alone.
    assert_eq!(count(Some(1)), [0, 0, 0, 2000]);
}

#[test]
fn the_length_guard_bounds_every_sample() {
    let data = names();
    let m = BigramCounts::fit(data.words(), &data.vocab()).unwrap();
    // A very high temperature makes the end token rare: the guard must stop the samples.
    let cfg = SampleConfig { n: 200, temperature: 50.0, max_len: 12, ..SampleConfig::default() };
    let s = sample_counts(&m, 1.0, &cfg).unwrap();
    assert!(s.iter().all(|s| s.chars().count() <= 12));
    assert!(s.iter().any(|s| s.chars().count() == 12));
}

#[test]
fn neural_models_sample_in_batches_and_novelty_is_classified() {
    let data = names();
    let vocab = data.vocab();
    let mlp = Mlp::new(MlpConfig::default(), &vocab, &mut rand::rngs::StdRng::seed_from_u64(1)).unwrap();
    let s = sample(&mlp, &SampleConfig { n: 1000, max_len: 30, ..SampleConfig::default() }).unwrap();
    assert_eq!(s.len(), 1000);
    assert!(s.iter().all(|s| s.chars().count() <= 30));
    let split = Split::new(data.words(), SplitSpec::default()).unwrap();
    let novelty = Novelty::new(&split);
    assert_eq!(novelty.origin(&split.train[0]), Origin::Train);
    assert_eq!(novelty.origin(&split.dev[0]), Origin::Held);
    assert_eq!(novelty.origin(&split.test[0]), Origin::Held);
    assert_eq!(novelty.origin("xqzzyx"), Origin::New);
}
