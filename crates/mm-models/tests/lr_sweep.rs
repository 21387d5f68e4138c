//! The learning-rate sweep and grid: the suggestion rule on known curves, the CSV round trip, and
//! real sweeps on `names.txt` (the lecture's MLP lands where the lecture says).

use std::sync::atomic::AtomicBool;

mod common;

use mm_data::{Examples, Split, SplitSpec, Vocab};
use mm_models::lr_sweep::{SUGGESTION_RULE, smooth};
use mm_models::{
    BigramNet, LrSweep, Mlp, MlpConfig, ModelError, SweepConfig, TrainConfig, lr_grid, lr_sweep,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn exps(n: usize, lo: f32, hi: f32) -> Vec<f32> {
    SweepConfig { points: n, min_exp: lo, max_exp: hi, ..SweepConfig::default() }.exponents()
}

/// A sweep whose every repeat is `f(exp)`, unsmoothed.
fn curve(f: impl Fn(f32) -> f32) -> LrSweep {
    let e = exps(301, -3.0, 0.0);
    let loss: Vec<f32> = e.iter().map(|&x| f(x)).collect();
    LrSweep::from_losses(e, vec![(1, loss.clone()), (2, loss)], 0.0).unwrap()
}

#[test]
fn exponents_are_evenly_spaced_and_inclusive() {
    let e = exps(4, -3.0, 0.0);
    assert_eq!(e, [-3.0, -2.0, -1.0, 0.0]);
}

#[test]
fn the_suggestion_is_half_a_decade_below_the_minimum() {
    let s = curve(|e| 2.0 + (e + 0.5).powi(2)).suggest().unwrap();
    assert!((s.exp - -1.0).abs() < 1e-5, "{s:?}");
    assert!((s.lr - 0.1).abs() < 1e-5);
    assert_eq!(s.rule, SUGGESTION_RULE);
    assert!(!s.at_edge);
    // A minimum near the first rate: never below the range.
    let s = curve(|e| 2.0 + (e + 2.9).powi(2)).suggest().unwrap();
    assert_eq!(s.exp, -3.0);
    // Still falling at the last rate: flagged.
    assert!(curve(|e| -e).suggest().unwrap().at_edge);
    // Never falling: no suggestion.
    assert_eq!(curve(|e| e).suggest(), None);
    // A diverged tail (NaN, inf) does not count as low.
    let s = curve(|e| if e > -0.4 { f32::NAN } else { 2.0 + (e + 1.5).powi(2) }).suggest().unwrap();
    assert!((s.exp - -2.0).abs() < 1e-5, "{s:?}");
}

#[test]
fn smoothing_removes_noise_without_moving_the_minimum() {
    let e = exps(1000, -3.0, 0.0);
    let argmin = |v: &[f32]| e[(0..v.len()).min_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()];
    // A parabola with its minimum at -1: a one-way average moves the minimum to higher rates
    // (by about 50 points, 0.15 of a decade); forwards and backwards it stays.
    let clean: Vec<f32> = e.iter().map(|&x| 3.0 + 2.0 * (x + 1.0).powi(2)).collect();
    assert!(argmin(&mm_models::ema(&clean, 0.98)) > -0.9);
    assert!((argmin(&smooth(&clean, 0.98)) - -1.0).abs() < 0.01);
    // Noise of amplitude 1 is smoothed away.
    let mut rng = StdRng::seed_from_u64(3);
    let noisy: Vec<f32> = clean.iter().map(|&y| y + rand::Rng::random_range(&mut rng, -1.0..1.0)).collect();
    let s = smooth(&noisy, 0.98);
    let rough = |v: &[f32]| v.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f32>();
    assert!(rough(&s) * 20.0 < rough(&noisy));
    // Away from the ends (where the average has seen few points) it follows the curve.
    assert!(s[100..900].iter().zip(&clean[100..900]).all(|(a, b)| (a - b).abs() < 0.3));
    // A diverged tail stays out of the curve, and does not poison what came before it.
    let mut diverged = clean.clone();
    diverged[900] = f32::INFINITY;
    diverged[950] = f32::NAN;
    let s = smooth(&diverged, 0.98);
    assert!(s[..900].iter().all(|v| v.is_finite()) && s[900..].iter().all(|v| v.is_nan()));
}

#[test]
fn csv_round_trips_and_rejects_other_files() {
    let mut sweep = curve(|e| 2.0 + (e + 0.5).powi(2));
    sweep.runs[1].loss[7] = f32::INFINITY;
    let mut buf = Vec::new();
    sweep.write_csv(&mut buf).unwrap();
    let text = String::from_utf8(buf.clone()).unwrap();
    assert!(text.starts_with("exp,lr,loss_seed1,smoothed_seed1,loss_seed2,smoothed_seed2,mean_smoothed\n"));
    assert_eq!(LrSweep::read_csv(&buf[..]).unwrap(), sweep);
    for bad in [
        "",
        "step,lr,train_loss,dev_loss,elapsed_s\n1,0.1,2.0,,0.1\n",
        "exp,lr,loss_seed1,smoothed_seed1,mean_smoothed\n-3,0.001,2,2\n",
        "exp,lr,loss_seed1,smoothed_seed1,mean_smoothed\n-3,0.001,2,x,2\n0,1,2,2,2\n",
        "exp,lr,loss_seed1,smoothed_seed1,mean_smoothed\n-3,0.001,2,2,2\n",
    ] {
        assert!(matches!(LrSweep::read_csv(bad.as_bytes()), Err(ModelError::Format(_))), "{bad:?}");
    }
}

/// The lecture's split of names.txt: vocabulary, train and dev examples.
fn data(block_size: usize) -> (Vocab, Examples, Examples) {
    let d = common::names();
    let vocab = d.vocab();
    let split = Split::new(d.words(), SplitSpec::default()).unwrap();
    let tr = Examples::windows(&split.train, &vocab, block_size).unwrap();
    let dev = Examples::windows(&split.dev, &vocab, block_size).unwrap();
    (vocab, tr, dev)
}

#[test]
fn the_lecture_mlp_sweep_suggests_a_rate_near_the_lectures() {
    let (vocab, tr, _) = data(3);
    let new = |seed| Mlp::new(MlpConfig::default(), &vocab, &mut StdRng::seed_from_u64(seed));
    let cfg = SweepConfig::default();
    let mut calls = 0;
    let sweep = lr_sweep(new, &tr, &cfg, &AtomicBool::new(false), |done| {
        calls += 1;
        assert_eq!(done, calls);
    })
    .unwrap();
    assert_eq!(calls, 3000);
    assert_eq!(sweep.runs.iter().map(|r| r.seed).collect::<Vec<_>>(), [42, 43, 44]);
    assert!(sweep.runs.iter().all(|r| r.loss.len() == 1000 && r.loss.iter().all(|l| l.is_finite())));
    let s = sweep.suggest().unwrap();
    assert!((0.03..=0.3).contains(&s.lr), "{s:?}");
    assert!(!s.at_edge);
    // Deterministic for a seed.
    let again = lr_sweep(new, &tr, &cfg, &AtomicBool::new(false), |_| ()).unwrap();
    assert_eq!(again, sweep);
}

#[test]
fn the_grid_compares_rates_on_the_dev_set() {
    let (vocab, tr, dev) = data(1);
    let new = |seed| BigramNet::new(&vocab, 0.01, &mut StdRng::seed_from_u64(seed));
    let cfg = TrainConfig { steps: 300, ..TrainConfig::mlp() };
    let rates = [0.01, 1.0, 1e4];
    let grid = lr_grid(new, &tr, &dev, &rates, &cfg, &AtomicBool::new(false), |_| ()).unwrap();
    assert_eq!(grid.iter().map(|p| p.lr).collect::<Vec<_>>(), rates);
    // Too slow, about right, far too fast.
    assert!(grid[1].dev_loss < grid[0].dev_loss && grid[1].dev_loss < grid[2].dev_loss, "{grid:?}");
    assert!(grid[1].dev_loss < 2.9 && (grid[1].train_loss - grid[1].dev_loss as f32).abs() < 0.3);
}

#[test]
fn bad_sweeps_are_typed_errors() {
    let vocab = Vocab::from_words(&["ab"]);
    let tr = Examples::windows(&["ab", "ba"], &vocab, 1).unwrap();
    let new = |seed| BigramNet::new(&vocab, 0.0, &mut StdRng::seed_from_u64(seed));
    let no = AtomicBool::new(false);
    for cfg in [
        SweepConfig { points: 1, ..SweepConfig::default() },
        SweepConfig { repeats: 0, ..SweepConfig::default() },
        SweepConfig { min_exp: 0.0, max_exp: -3.0, ..SweepConfig::default() },
        SweepConfig { max_exp: f32::NAN, ..SweepConfig::default() },
        SweepConfig { smoothing: 1.0, ..SweepConfig::default() },
        SweepConfig { batch_size: Some(0), ..SweepConfig::default() },
    ] {
        assert!(matches!(lr_sweep(new, &tr, &cfg, &no, |_| ()), Err(ModelError::Config(_))), "{cfg:?}");
    }
    let cfg = TrainConfig { steps: 10, ..TrainConfig::mlp() };
    assert!(matches!(lr_grid(new, &tr, &tr, &[], &cfg, &no, |_| ()), Err(ModelError::Config(_))));
    // A stop request: no partial result, and an error that says so.
    let stop = AtomicBool::new(true);
    let err = lr_sweep(new, &tr, &SweepConfig::default(), &stop, |_| ()).unwrap_err();
    assert!(matches!(err, ModelError::Stopped(_)));
    assert_eq!(err.to_string(), "the sweep was stopped before it finished");
    let err = lr_grid(new, &tr, &tr, &[0.1], &cfg, &stop, |_| ()).unwrap_err();
    assert_eq!(err.to_string(), "the grid was stopped before it finished");
}
