//! The counting model's figures of the lecture, on the real `names.txt`.

mod common;

use common::names;
use mm_models::BigramCounts;

#[test]
fn the_lectures_nll_with_and_without_smoothing() {
    let data = names();
    let m = BigramCounts::fit(data.words(), &data.vocab()).unwrap();
    // python: -sum(log P[a, b]) / n over the 228,146 bigrams, in float64.
    assert!((m.nll(data.words(), 1.0).unwrap() - 2.454_576_820_116_076).abs() < 1e-6);
    assert!((m.nll(data.words(), 0.0).unwrap() - 2.454_014_489_154_366_7).abs() < 1e-6);
    assert_eq!(m.counts().sum(), 228_146);
}

#[test]
fn the_lectures_top_counts() {
    let data = names();
    let m = BigramCounts::fit(data.words(), &data.vocab()).unwrap();
    assert_eq!(m.top(4), [('n', '.', 6763), ('a', '.', 6640), ('a', 'n', 5438), ('.', 'a', 4410)]);
}

#[test]
fn an_unseen_pair_without_smoothing_is_infinite_nll_not_a_crash() {
    let data = names();
    let m = BigramCounts::fit(data.words(), &data.vocab()).unwrap();
    // "jq" never occurs in names.txt (the lecture's example of an infinite loss).
    assert_eq!(m.counts()[[10, 17]], 0);
    assert_eq!(m.nll(&["andrejq"], 0.0).unwrap(), f64::INFINITY);
    assert!(m.nll(&["andrejq"], 1.0).unwrap().is_finite());
    let p = m.probs(1.0).unwrap();
    // A smoothing that is not one is a typed error, not uniform or negative "probabilities".
    for bad in [f64::NAN, -1.0, f64::INFINITY] {
        assert!(matches!(m.probs(bad), Err(mm_models::ModelError::Config(_))), "alpha {bad}");
        assert!(m.nll(&["emma"], bad).is_err(), "alpha {bad}");
    }
    for row in p.rows() {
        assert!((row.sum() - 1.0).abs() < 1e-12);
    }
}
