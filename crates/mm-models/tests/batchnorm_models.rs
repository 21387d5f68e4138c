//! The BatchNorm MLP (part 3) and the WaveNet (part 5) against the lectures' formulas written
//! out by hand in f64: the forward pass with the batch's statistics while training and the
//! running ones at evaluation, the running averages' updates, the parameter counts, and runs that
//! save, load and continue bit for bit with their running statistics.

use std::sync::atomic::AtomicBool;

use mm_data::{Examples, Vocab};
use mm_models::checkpoint::{AnyModel, CheckpointMeta, load, save};
use mm_models::{
    BnMlp, BnMlpConfig, Model, Progress, Schedule, TrainConfig, WaveNet, WaveNetConfig, evaluate, train,
    train_from,
};
use mm_tensor::Tape;
use ndarray::{Array1, Array2, ArrayView2, Axis, s};
use rand::SeedableRng;
use rand::rngs::StdRng;

const WORDS: [&str; 10] =
    ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia", "harper", "evelyn"];

fn vocab() -> Vocab {
    Vocab::from_words(&WORDS)
}

/// A parameter or buffer of `m` as an f64 matrix (vectors as one row).
fn get(m: &dyn Model, name: &str) -> Array2<f64> {
    let p = m.params();
    let (data, dims) = match p.id(name) {
        Some(id) => (p.data(id).to_vec(), p.shape(id).dims().to_vec()),
        None => {
            let id = p.buffer_id(name).unwrap_or_else(|| panic!("no {name}"));
            (p.buffer_data(id).to_vec(), p.buffer_shape(id).dims().to_vec())
        }
    };
    let (r, c) = if dims.len() == 1 { (1, dims[0]) } else { (dims[0], dims[1]) };
    Array2::from_shape_vec((r, c), data.iter().map(|&x| f64::from(x)).collect()).unwrap()
}

/// `C[x]` with each row's embeddings side by side: `[B, T * n_embd]`.
fn embed(c: &Array2<f64>, x: ArrayView2<'_, u32>) -> Array2<f64> {
    let e = c.ncols();
    Array2::from_shape_fn((x.nrows(), x.ncols() * e), |(b, j)| c[[x[[b, j / e]] as usize, j % e]])
}

/// The lecture's BatchNorm over the rows of `h`: `(h - mean) / sqrt(var + eps) * gain + bias`,
/// with the batch's Bessel-corrected statistics or the given ones; returns them too.
fn batch_norm(
    h: &Array2<f64>,
    gain: &Array2<f64>,
    bias: &Array2<f64>,
    eps: f64,
    fixed: Option<(Array1<f64>, Array1<f64>)>,
) -> (Array2<f64>, Array1<f64>, Array1<f64>) {
    let n = h.nrows() as f64;
    let (mean, var) = fixed.unwrap_or_else(|| {
        let mean = h.mean_axis(Axis(0)).unwrap();
        let var = (h - &mean).mapv(|d| d * d).sum_axis(Axis(0)) / (n - 1.0);
        (mean, var)
    });
    let out = (h - &mean) / var.mapv(|v| (v + eps).sqrt()) * gain.row(0) + bias.row(0);
    (out, mean, var)
}

fn close(a: &Array2<f64>, b: ArrayView2<'_, f32>, what: &str) {
    assert_eq!(a.dim(), b.dim(), "{what}");
    for (x, y) in a.iter().zip(b.iter()) {
        assert!((x - f64::from(*y)).abs() <= 2e-4 * (1.0 + x.abs()), "{what}: {x} vs {y}");
    }
}

fn logits(m: &dyn Model, x: ArrayView2<'_, u32>, grad: bool) -> Array2<f32> {
    let mut tape = Tape::new();
    let g = if grad { tape.graph(m.params()) } else { tape.no_grad(m.params()) };
    m.forward(&g, x).to_array().into_dimensionality().unwrap()
}

/// A full-batch SGD step at learning rate 0: the parameters stay, the running statistics move.
fn still_step(m: &mut dyn Model, ex: &Examples) {
    let cfg = TrainConfig {
        steps: 1,
        batch_size: None,
        schedule: Schedule::Constant(0.0),
        eval_every: 0,
        ..TrainConfig::mlp()
    };
    train(m, ex, None, &cfg, &AtomicBool::new(false), |_| {}).unwrap();
}

#[test]
fn the_lectures_parameter_counts() {
    let v = Vocab::from_words(&["abcdefghijklmnopqrstuvwxyz"]);
    let rng = &mut StdRng::seed_from_u64(0);
    assert_eq!(BnMlp::new(BnMlpConfig::default(), &v, rng).unwrap().num_params(), 12_097);
    assert_eq!(WaveNet::new(WaveNetConfig::default(), &v, rng).unwrap().num_params(), 76_579);
    let bad = WaveNetConfig { block_size: 6, ..WaveNetConfig::default() };
    let err = WaveNet::new(bad, &v, rng).unwrap_err();
    assert!(err.to_string().contains("power of two"), "{err}");
}

#[test]
fn bn_mlp_is_the_lectures_formula_while_training_and_at_evaluation() {
    let v = vocab();
    let mut m = BnMlp::new(BnMlpConfig::default(), &v, &mut StdRng::seed_from_u64(1)).unwrap();
    let ex = Examples::windows(&WORDS, &v, 3).unwrap();
    let x = ex.x.view();
    let hpreact = embed(&get(&m, "C"), x).dot(&get(&m, "W1"));
    let (gain, bias) = (get(&m, "bngain"), get(&m, "bnbias"));
    let (w2, b2) = (get(&m, "W2"), get(&m, "b2"));
    let head = |h: &Array2<f64>| h.mapv(f64::tanh).dot(&w2) + b2.row(0);
    let (normed, mean, var) = batch_norm(&hpreact, &gain, &bias, 0.0, None);
    close(&head(&normed), logits(&m, x, true).view(), "training");

    // One step moves the running statistics by 0.001 towards the batch's mean and std.
    still_step(&mut m, &ex);
    let running_mean = get(&m, "bnmean_running");
    let running_std = get(&m, "bnstd_running");
    for j in 0..mean.len() {
        assert!((running_mean[[0, j]] - 0.001 * mean[j]).abs() < 1e-6);
        assert!((running_std[[0, j]] - (0.999 + 0.001 * var[j].sqrt())).abs() < 1e-6);
    }
    // Evaluation normalises with them: `(h - bnmean_running) / bnstd_running`.
    let fixed = (running_mean.row(0).to_owned(), running_std.row(0).mapv(|s| s * s));
    let (normed, _, _) = batch_norm(&hpreact, &gain, &bias, 0.0, Some(fixed));
    close(&head(&normed), logits(&m, x, false).view(), "evaluation");
}

/// The lecture's WaveNet written out: per level, pairs of neighbours side by side, `@ W`,
/// BatchNorm over every (example, position), tanh. Returns the logits and each level's batch
/// statistics.
#[allow(clippy::type_complexity)]
fn wavenet_by_hand(
    m: &WaveNet,
    x: ArrayView2<'_, u32>,
    running: bool,
) -> (Array2<f64>, Vec<(Array1<f64>, Array1<f64>)>) {
    let b = x.nrows();
    // Rows are (example, position) pairs; neighbours' features are adjacent in `embed`'s rows.
    let mut h = embed(&get(m, "layers.0.weight"), x); // [B, T * C]
    let mut t = x.ncols();
    let mut stats = Vec::new();
    let mut layer = 2;
    while t > 1 {
        t /= 2;
        let width = h.ncols() / t;
        let rows = h.into_shape_with_order((b * t, width)).unwrap();
        let pre = rows.dot(&get(m, &format!("layers.{layer}.weight")));
        let bn = layer + 1;
        let fixed = running.then(|| {
            let mean = get(m, &format!("layers.{bn}.running_mean")).row(0).to_owned();
            (mean, get(m, &format!("layers.{bn}.running_var")).row(0).to_owned())
        });
        let gamma = get(m, &format!("layers.{bn}.gamma"));
        let beta = get(m, &format!("layers.{bn}.beta"));
        let (normed, mean, var) = batch_norm(&pre, &gamma, &beta, 1e-5, fixed);
        stats.push((mean, var));
        let n = normed.ncols();
        h = normed.mapv(f64::tanh).into_shape_with_order((b, t * n)).unwrap();
        layer += 4;
    }
    let out = h.dot(&get(m, &format!("layers.{}.weight", layer - 1)))
        + get(m, &format!("layers.{}.bias", layer - 1)).row(0);
    (out, stats)
}

#[test]
fn wavenet_is_the_lectures_tree_while_training_and_at_evaluation() {
    let v = vocab();
    let cfg = WaveNetConfig { block_size: 8, n_embd: 5, n_hidden: 7, momentum: 0.1 };
    let mut m = WaveNet::new(cfg, &v, &mut StdRng::seed_from_u64(2)).unwrap();
    let names: Vec<_> = m.params().ids().map(|id| m.params().name(id).to_string()).collect();
    assert_eq!(names[..4], ["layers.0.weight", "layers.2.weight", "layers.3.gamma", "layers.3.beta"]);
    assert_eq!(names[names.len() - 2..], ["layers.13.weight", "layers.13.bias"]);
    assert_eq!(m.params().buffer_id("layers.11.running_var").map(|_| ()), Some(()));
    let ex = Examples::windows(&WORDS, &v, 8).unwrap();
    let x = ex.x.view();
    let (want, stats) = wavenet_by_hand(&m, x, false);
    close(&want, logits(&m, x, true).view(), "training");
    still_step(&mut m, &ex);
    for (level, (mean, var)) in stats.iter().enumerate() {
        let bn = 3 + 4 * level;
        let rm = get(&m, &format!("layers.{bn}.running_mean"));
        let rv = get(&m, &format!("layers.{bn}.running_var"));
        for j in 0..mean.len() {
            assert!((rm[[0, j]] - 0.1 * mean[j]).abs() < 1e-5, "level {level}");
            assert!((rv[[0, j]] - (0.9 + 0.1 * var[j])).abs() < 1e-5, "level {level}");
        }
    }
    let (want, _) = wavenet_by_hand(&m, x, true);
    close(&want, logits(&m, x, false).view(), "evaluation");
    // The smallest batch that trains: two examples (the last level's statistics, over examples
    // only, need two rows for Bessel's correction).
    let one = ex.x.slice(s![0..2, ..]);
    assert!(logits(&m, one, true).iter().all(|v| v.is_finite()));
}

#[test]
fn runs_with_running_statistics_save_load_and_continue_bit_for_bit() {
    let v = vocab();
    let dir = std::env::temp_dir().join(format!("mm-batchnorm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let no = AtomicBool::new(false);
    let cfg = |steps| TrainConfig { steps, eval_every: 5, seed: 3, ..TrainConfig::mlp() };
    let fresh: [Box<dyn Fn() -> AnyModel>; 2] = [
        Box::new(|| {
            AnyModel::BnMlp(
                BnMlp::new(BnMlpConfig::default(), &vocab(), &mut StdRng::seed_from_u64(4)).unwrap(),
            )
        }),
        Box::new(|| {
            let c = WaveNetConfig { n_embd: 6, n_hidden: 16, ..WaveNetConfig::default() };
            AnyModel::WaveNet(WaveNet::new(c, &vocab(), &mut StdRng::seed_from_u64(4)).unwrap())
        }),
    ];
    for make in &fresh {
        let bits = |m: &AnyModel| {
            let p = m.neural().unwrap().params();
            let mut b: Vec<u32> = p.ids().flat_map(|id| p.data(id).to_vec()).map(f32::to_bits).collect();
            b.extend(p.buffer_ids().flat_map(|id| p.buffer_data(id).to_vec()).map(f32::to_bits));
            b
        };
        let train_any = |m: &mut AnyModel, cfg: &TrainConfig, from: &Progress, ex: &Examples| match m {
            AnyModel::BnMlp(m) => train_from(m, ex, Some(ex), cfg, from, &no, |_| {}).unwrap(),
            AnyModel::WaveNet(m) => train_from(m, ex, Some(ex), cfg, from, &no, |_| {}).unwrap(),
            _ => unreachable!(),
        };
        let mut whole = make();
        let block = whole.neural().unwrap().block_size();
        let ex = Examples::windows(&WORDS, &v, block).unwrap();
        train_any(&mut whole, &cfg(20), &Progress::default(), &ex);

        let mut first = make();
        let report = train_any(&mut first, &cfg(10), &Progress::default(), &ex);
        let path = dir.join(format!("{}.safetensors", first.kind()));
        save(&path, &first, &CheckpointMeta { step: 10, ..Default::default() }).unwrap();
        let (mut second, meta) = load(&path).unwrap();
        assert_eq!(bits(&second), bits(&first), "{}: parameters and running statistics saved", first.kind());
        let from = Progress { step: meta.step as usize, adamw: report.progress.adamw };
        train_any(&mut second, &cfg(20), &from, &ex);
        assert!(bits(&second) == bits(&whole), "{}: continued bit for bit", whole.kind());
        // Evaluation normalises with the running statistics, which the run moved from their
        // start (zero mean, unit std or variance): resetting them changes the loss.
        let m = whole.neural().unwrap();
        let trained = evaluate(m, &ex).unwrap();
        let mut reset = whole.clone();
        let p = reset.neural_mut().unwrap().params_mut();
        for id in p.buffer_ids().collect::<Vec<_>>() {
            let start = if p.buffer_name(id).contains("mean") { 0.0 } else { 1.0 };
            p.buffer_data_mut(id).fill(start);
        }
        assert_ne!(evaluate(reset.neural().unwrap(), &ex).unwrap(), trained);
    }
    std::fs::remove_dir_all(dir).unwrap();
}
