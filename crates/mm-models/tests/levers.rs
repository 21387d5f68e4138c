//! The Transformer's levers of issue #14, each shown to do what it says: the warmup and cosine
//! schedule against its formula (and the loop using it), gradient clipping leaving a global norm
//! of `max_norm`, weight decay on the matrices only, weight tying as one parameter whose
//! gradient is the sum of both uses, and dropout (deterministic in evaluation, drawing masks in
//! training from the run's seed and step, so that a continued run matches an uninterrupted one).
//! And their defaults leave makemore.py's spec, model and training as they were.

use std::sync::atomic::AtomicBool;

mod common;

use common::{bits, examples, vocab};

use mm_data::Examples;
use mm_models::checkpoint::{AnyModel, CheckpointMeta, load, save};
use mm_models::{Model, OptimizerKind, Progress, Schedule, Spec, TrainConfig, evaluate, train, train_from};
use mm_tensor::{Grads, Tape};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

/// A small Transformer's spec with `levers` on top (a spec file's JSON).
fn spec(levers: serde_json::Value) -> Spec {
    let mut v = json!({"kind": "transformer", "block_size": 10, "n_layer": 2, "n_head": 2, "n_embd": 8});
    for (k, x) in levers.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn build(spec: &Spec, seed: u64) -> AnyModel {
    spec.build(&vocab(), &mut StdRng::seed_from_u64(seed)).unwrap()
}

/// The training loss and gradients of one graph over the first `n` words.
fn loss_and_grads(m: &dyn Model, ex: &Examples, n: usize) -> (f32, Grads<f32>) {
    let mut tape = Tape::new();
    let mut grads = Grads::new(m.params());
    let g = tape.graph(m.params());
    let x = ex.x.slice(ndarray::s![..n, ..]);
    let y = &ex.y.as_slice().unwrap()[..n * ex.targets_per_row()];
    let loss = m.loss(&g, x, y);
    let loss = g.backward(loss, &mut grads).unwrap();
    (loss, grads)
}

#[test]
fn the_defaults_are_makemores_spec_and_training() {
    let t = Spec::default_of("transformer").unwrap();
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        r#"{"kind":"transformer","block_size":16,"n_layer":4,"n_head":4,"n_embd":64}"#
    );
    assert_eq!(t.settings(), ["block_size", "n_embd", "n_head", "n_layer"]);
    assert_eq!(t.train_config(), TrainConfig::makemore());
    // Leaving a lever out of a spec file is its default; a default lever is not written back.
    assert_eq!(spec(json!({"dropout": 0.0, "lr": 5e-4})), spec(json!({})));
    let model = build(&t.clone().with_block_size(10), 1);
    assert!(!model.neural().unwrap().config().iter().any(|(k, _)| *k == "dropout" || *k == "tie_weights"));
}

#[test]
fn levers_round_trip_through_json_text_and_checkpoints() {
    let s = spec(json!({
        "dropout": 0.2, "tie_weights": true, "batch_size": 64, "lr": 1e-3, "warmup": 100,
        "lr_decay": "cosine", "min_lr": 1e-4, "weight_decay": 0.1, "decay_matrices_only": true,
        "grad_clip": 1.0, "steps": 1000, "shards": 2,
    }));
    let text = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<Spec>(&text).unwrap(), s, "{text}");
    assert_eq!(Spec::parse("transformer", |k| s.setting(k), true).unwrap(), s);
    assert_eq!(s.setting("lr_decay").as_deref(), Some("cosine"));
    assert_eq!(s.setting("tie_weights").as_deref(), Some("true"));
    let e = Spec::parse("transformer", |k| (k == "tie_weights").then(|| "yes".to_string()), false);
    assert!(e.unwrap_err().to_string().contains("tie_weights"));
    let bad: Result<Spec, _> = serde_json::from_value(json!({"kind": "transformer", "block_size": 10,
        "n_layer": 2, "n_head": 2, "n_embd": 8, "lr_decay": "linear"}));
    assert!(bad.is_err());
    // The training levers make its training.
    let cfg = s.train_config();
    assert_eq!(cfg.batch_size, Some(64));
    assert_eq!(cfg.schedule, Schedule::WarmupCosine { lr: 1e-3, warmup: 100, min_lr: 1e-4, steps: 1000 });
    assert_eq!((cfg.weight_decay, cfg.decay_matrices_only, cfg.grad_clip, cfg.steps), (0.1, true, 1.0, 1000));
    assert_eq!(cfg.shards, 2);
    // One shard, makemore.py's one tape, is the default and is not written.
    let one = spec(json!({"shards": 1}));
    assert_eq!(
        (one.train_config().shards, serde_json::to_string(&one).unwrap().contains("shards")),
        (1, false)
    );
    // The model's levers are saved with it and read back.
    let model = build(&s, 3);
    assert_eq!(model.num_params() as u128, s.num_params(vocab().len()));
    let dir = std::env::temp_dir().join(format!("mm-levers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tied.safetensors");
    save(&path, &model, &CheckpointMeta::default()).unwrap();
    let (back, _) = load(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let (a, b) = (model.spec(), back.spec());
    assert_eq!(a, b);
    assert_eq!(
        (a.setting("dropout").as_deref(), a.setting("tie_weights").as_deref()),
        (Some("0.2"), Some("true"))
    );
    assert_eq!(bits(model.neural().unwrap().params()), bits(back.neural().unwrap().params()));
}

#[test]
fn warmup_and_cosine_follow_the_formula_and_the_loop_uses_them() {
    let (lr, min_lr, warmup, steps) = (1e-3f64, 1e-4f64, 10usize, 110usize);
    let s = Schedule::WarmupCosine { lr: lr as f32, warmup, min_lr: min_lr as f32, steps };
    let formula = |t: usize| {
        if t < warmup {
            lr * (t + 1) as f64 / warmup as f64
        } else {
            let r = ((t - warmup) as f64 / (steps - warmup) as f64).min(1.0);
            min_lr + 0.5 * (1.0 + (std::f64::consts::PI * r).cos()) * (lr - min_lr)
        }
    };
    for t in [0, 1, 5, 9, 10, 11, 35, 60, 85, 109, 110, 500] {
        let (got, want) = (f64::from(s.lr(t)), formula(t));
        assert!((got - want).abs() <= 1e-9, "step {t}: {got} vs {want}");
    }
    // The landmarks: a tenth at the first step, the peak at the end of the warmup, halfway down
    // halfway through the decay, the floor at the end and after.
    let close = |t: usize, want: f64| assert!((f64::from(s.lr(t)) - want).abs() < 1e-9, "step {t}");
    close(0, lr / 10.0);
    close(9, lr);
    close(10, lr);
    close(60, (lr + min_lr) / 2.0);
    close(110, min_lr);
    close(1000, min_lr);
    // The training loop takes each step's rate from it.
    let sp = spec(json!({"warmup": 3, "lr_decay": "cosine", "min_lr": 1e-5, "lr": 1e-2, "steps": 12}));
    let mut model = build(&sp, 1);
    let m = model.neural_mut().unwrap();
    let ex = examples(m);
    let cfg = TrainConfig { eval_every: 0, ..sp.train_config() };
    let mut rates = Vec::new();
    train(m, &ex, None, &cfg, &AtomicBool::new(false), |s| rates.push((s.step, s.lr))).unwrap();
    assert_eq!(rates.len(), 12);
    for (t, r) in rates {
        assert_eq!(r, cfg.schedule.lr(t), "step {t}");
    }
}

#[test]
fn clipping_leaves_a_global_norm_of_max_norm() {
    let model = build(&spec(json!({})), 2);
    let m = model.neural().unwrap();
    let ex = examples(m);
    let (_, grads) = loss_and_grads(m, &ex, 8);
    let norm = grads.global_norm();
    assert!(norm > 0.1, "a fresh model's gradient norm {norm}");
    // Below the norm: scaled to max_norm, every gradient by the same factor.
    let max = norm / 4.0;
    let mut clipped = grads.clone();
    assert_eq!(clipped.clip_norm(max), norm);
    assert!((clipped.global_norm() - max).abs() < 1e-5 * max, "{} vs {max}", clipped.global_norm());
    for id in m.params().ids() {
        for (c, g) in clipped.data(id).iter().zip(grads.data(id)) {
            assert!((f64::from(*c) - f64::from(*g) * max / norm).abs() < 1e-6, "{}", m.params().name(id));
        }
    }
    // Above the norm: untouched.
    let mut same = grads.clone();
    same.clip_norm(norm * 2.0);
    assert_eq!(same, grads);
    // In the loop: one SGD step at rate 1 moves the weights by the clipped gradient, whose norm
    // is max_norm.
    let sp = spec(json!({}));
    let mut model = build(&sp, 2);
    let m = model.neural_mut().unwrap();
    let before = m.params().clone();
    let cfg = TrainConfig {
        steps: 1,
        optimizer: OptimizerKind::Sgd,
        schedule: Schedule::Constant(1.0),
        weight_decay: 0.0,
        grad_clip: 0.05,
        eval_every: 0,
        ..sp.train_config()
    };
    train(m, &ex, None, &cfg, &AtomicBool::new(false), |_| {}).unwrap();
    let moved: f64 = m
        .params()
        .ids()
        .flat_map(|id| m.params().data(id).iter().zip(before.data(id)).map(|(a, b)| f64::from(a - b).powi(2)))
        .sum::<f64>()
        .sqrt();
    assert!((moved - 0.05).abs() < 1e-4, "the step moved the weights by {moved}");
}

#[test]
fn weight_decay_on_matrices_only_spares_the_vectors() {
    // One AdamW step with and without weight decay: the same gradient, so the weights differ by
    // the decay alone, `lr * wd * p` for the matrices and nothing for the vectors.
    let (lr, wd) = (0.01f32, 0.5f32);
    let sp = spec(json!({"lr": lr, "weight_decay": wd, "decay_matrices_only": true, "steps": 1}));
    let step = |wd: f32| {
        let mut model = build(&sp, 4);
        let m = model.neural_mut().unwrap();
        let ex = examples(m);
        let cfg = TrainConfig { weight_decay: wd, eval_every: 0, ..sp.train_config() };
        train(m, &ex, None, &cfg, &AtomicBool::new(false), |_| {}).unwrap();
        model
    };
    let (decayed, plain, start) = (step(wd), step(0.0), build(&sp, 4));
    let [d, p, s] = [&decayed, &plain, &start].map(|m| m.neural().unwrap().params());
    let (mut matrices, mut vectors) = (0, 0);
    for id in s.ids() {
        let name = s.name(id);
        if s.shape(id).rank() >= 2 {
            matrices += 1;
            for ((a, b), x) in d.data(id).iter().zip(p.data(id)).zip(s.data(id)) {
                let want = f64::from(-lr * wd * x);
                assert!((f64::from(a - b) - want).abs() < 1e-6, "{name}: {} vs {want}", a - b);
            }
        } else {
            vectors += 1;
            assert_eq!(d.data(id), p.data(id), "{name} decayed");
        }
    }
    assert!(matrices > 0 && vectors > 0);
    // SGD decays every parameter: asking it for matrices only is an error, not ignored.
    let mut model = build(&sp, 4);
    let m = model.neural_mut().unwrap();
    let ex = examples(m);
    let cfg = TrainConfig { optimizer: OptimizerKind::Sgd, ..sp.train_config() };
    assert!(train(m, &ex, None, &cfg, &AtomicBool::new(false), |_| {}).is_err());
}

#[test]
fn tied_weights_are_one_parameter_with_both_gradients() {
    let untied = build(&spec(json!({})), 5);
    let tied = build(&spec(json!({"tie_weights": true})), 5);
    let (u, t) = (untied.neural().unwrap(), tied.neural().unwrap());
    let v = vocab().len();
    assert_eq!(u.num_params() - t.num_params(), v * 8);
    assert!(u.params().id("lm_head.weight").is_some());
    assert!(t.params().id("lm_head.weight").is_none());
    // The untied model with lm_head holding wte's values: the same function as the tied model.
    let mut same = untied.clone();
    let wte = t.params().id("transformer.wte.weight").unwrap();
    {
        let m = same.neural_mut().unwrap();
        let p = m.params_mut();
        for id in p.ids() {
            let name = p.name(id).to_string();
            let src = if name == "lm_head.weight" { wte } else { t.params().id(&name).unwrap() };
            let values = t.params().data(src).to_vec();
            p.data_mut(id).copy_from_slice(&values);
        }
    }
    let s = same.neural().unwrap();
    let ex = examples(t);
    let (lt, gt) = loss_and_grads(t, &ex, 6);
    let (ls, gs) = loss_and_grads(s, &ex, 6);
    assert!((lt - ls).abs() < 1e-6, "{lt} vs {ls}");
    let (sw, sh) =
        (s.params().id("transformer.wte.weight").unwrap(), s.params().id("lm_head.weight").unwrap());
    let both: Vec<f32> = gs.data(sw).iter().zip(gs.data(sh)).map(|(a, b)| a + b).collect();
    let scale = both.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!(gs.data(sh).iter().any(|x| x.abs() > 1e-4), "lm_head has a gradient");
    for (i, (a, b)) in gt.data(wte).iter().zip(&both).enumerate() {
        assert!((a - b).abs() <= 1e-5 * scale.max(1.0), "element {i}: {a} vs {b}");
    }
    // Every other parameter's gradient is the untied model's.
    for id in t.params().ids().filter(|&id| id != wte) {
        let other = s.params().id(t.params().name(id)).unwrap();
        for (a, b) in gt.data(id).iter().zip(gs.data(other)) {
            assert!((a - b).abs() < 1e-5, "{}", t.params().name(id));
        }
    }
}

#[test]
fn dropout_is_deterministic_in_evaluation_and_draws_masks_in_training() {
    let plain = build(&spec(json!({})), 6);
    let dropped = build(&spec(json!({"dropout": 0.3})), 6);
    let (p, d) = (plain.neural().unwrap(), dropped.neural().unwrap());
    assert_eq!(bits(p.params()), bits(d.params()), "dropout draws no weights");
    let ex = examples(d);
    // Evaluation: the identity, so the same loss as without dropout, every time.
    let e = evaluate(d, &ex).unwrap();
    assert_eq!(e, evaluate(d, &ex).unwrap());
    assert_eq!(e, evaluate(p, &ex).unwrap());
    // Training: masks, so another loss; the same step of the same run draws the same masks,
    // another step other masks.
    let (lp, _) = loss_and_grads(p, &ex, 8);
    d.begin_step(42, 0);
    let (l0, _) = loss_and_grads(d, &ex, 8);
    d.begin_step(42, 0);
    let (again, _) = loss_and_grads(d, &ex, 8);
    d.begin_step(42, 1);
    let (l1, _) = loss_and_grads(d, &ex, 8);
    assert_ne!(l0, lp);
    assert_eq!(l0.to_bits(), again.to_bits());
    assert_ne!(l0, l1);
}

#[test]
fn a_run_with_every_lever_continues_bit_for_bit() {
    let sp = spec(json!({
        "dropout": 0.2, "tie_weights": true, "batch_size": 4, "lr": 1e-2, "warmup": 5,
        "lr_decay": "cosine", "min_lr": 1e-3, "weight_decay": 0.1, "decay_matrices_only": true,
        "grad_clip": 0.5, "steps": 30,
    }));
    let cfg = TrainConfig { eval_every: 0, ..sp.train_config() };
    let stop = AtomicBool::new(false);
    let mut whole = build(&sp, 7);
    let m = whole.neural_mut().unwrap();
    let ex = examples(m);
    let losses = std::cell::RefCell::new(Vec::new());
    train(m, &ex, None, &cfg, &stop, |s| losses.borrow_mut().push(s.loss)).unwrap();
    let mut parts = build(&sp, 7);
    let m = parts.neural_mut().unwrap();
    let half = TrainConfig { steps: 12, ..cfg.clone() };
    let mut seen = Vec::new();
    let r = train(m, &ex, None, &half, &stop, |s| seen.push(s.loss)).unwrap();
    let progress = Progress { step: 12, adamw: r.progress.adamw };
    train_from(m, &ex, None, &cfg, &progress, &stop, |s| seen.push(s.loss)).unwrap();
    assert_eq!(seen, *losses.borrow());
    assert_eq!(bits(whole.neural().unwrap().params()), bits(parts.neural().unwrap().params()));
    // And the levers changed the run: the same model and batches without them end elsewhere.
    let sp = spec(json!({"tie_weights": true, "batch_size": 4, "lr": 1e-2, "steps": 30}));
    let mut base = build(&sp, 7);
    let m = base.neural_mut().unwrap();
    let cfg = TrainConfig { eval_every: 0, ..sp.train_config() };
    train(m, &ex, None, &cfg, &stop, |_| {}).unwrap();
    assert_ne!(bits(whole.neural().unwrap().params()), bits(base.neural().unwrap().params()));
}

/// The spec files shipped in `specs/` are specs, within the flags' ranges; the tuned preset
/// (and the previous one) holds its two shards and rotary positions, so `makemore train --spec
/// specs/names-rotary.json` needs no flag to repeat its runs.
#[test]
fn the_shipped_spec_files_parse() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let spec: Spec =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            spec.check_limits().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            spec.train_config().check_limits().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 4, "{seen} spec files in {}", dir.display());
    for (preset, rotary) in [("names-rotary.json", true), ("names-best.json", false)] {
        let best: Spec = serde_json::from_str(&std::fs::read_to_string(dir.join(preset)).unwrap()).unwrap();
        assert_eq!((best.train_config().shards, best.train_config().steps), (2, 50_000), "{preset}");
        assert!(matches!(best, Spec::Transformer { rotary: r, .. } if r == rotary), "{preset}");
    }
}

/// Rotary positions (`"rotary": true`): no `wpe`, as many parameters as the spec counts, a
/// training run that learns, the key/value cache's logits equal to the whole prefix's (the
/// cached keys turned at their own positions), a checkpoint that loads into the same function,
/// and heads of an odd size refused.
#[test]
fn rotary_positions_replace_wpe_and_the_cache_and_checkpoints_follow() {
    let sp = spec(json!({"rotary": true, "batch_size": 4, "lr": 1e-2, "steps": 40}));
    assert_eq!(sp.setting("rotary").as_deref(), Some("true"));
    let mut model = build(&sp, 3);
    let plain = build(&spec(json!({})), 3);
    let m = model.neural_mut().unwrap();
    assert!(m.params().id("transformer.wpe.weight").is_none());
    assert!(plain.neural().unwrap().params().id("transformer.wpe.weight").is_some());
    assert_eq!(m.num_params() as u128, sp.num_params(vocab().len()));
    assert_eq!(plain.neural().unwrap().num_params() - m.num_params(), 10 * 8);
    let ex = examples(m);
    let before = evaluate(m, &ex).unwrap();
    let cfg = TrainConfig { eval_every: 0, ..sp.train_config() };
    train(m, &ex, None, &cfg, &AtomicBool::new(false), |_| {}).unwrap();
    let after = evaluate(m, &ex).unwrap();
    assert!(after < before - 0.3, "{before} -> {after}");
    // The cache against the forward pass over the whole prefix, rows in another order.
    let v = m.vocab().len() as u32;
    let idx = ndarray::Array2::from_shape_fn((3, m.block_size()), |(i, j)| ((i * 5 + j * 3 + 1) as u32) % v);
    common::decoder_matches_prefix(m, &idx, &[2, 0, 1], 1e-4);
    // A checkpoint of the rotary model loads as one, and computes the same loss.
    let path = std::env::temp_dir().join(format!("mm-rotary-{}.safetensors", std::process::id()));
    save(&path, &model, &CheckpointMeta::default()).unwrap();
    let (back, _) = load(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let back = back.neural().unwrap();
    assert!(back.params().id("transformer.wpe.weight").is_none());
    assert_eq!(evaluate(back, &ex).unwrap().to_bits(), after.to_bits());
    // Heads of 3 cannot be turned in pairs.
    let odd = spec(json!({"rotary": true, "n_embd": 6}));
    let e = odd.build(&vocab(), &mut StdRng::seed_from_u64(1)).expect_err("odd heads are refused");
    assert!(e.to_string().contains("even"), "{e}");
}
