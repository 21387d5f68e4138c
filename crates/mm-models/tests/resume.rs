//! Resuming: training 50 steps, saving, loading and continuing to 100 gives bit for bit what 100
//! steps at once give, for SGD across a learning-rate decay and for AdamW; and what cannot be
//! continued is a typed error.

use std::sync::atomic::AtomicBool;

mod common;

use mm_data::{Examples, Split, SplitSpec, Vocab};
use mm_models::checkpoint::{AnyModel, CheckpointMeta, load, save};
use mm_models::{
    Mlp, MlpConfig, Model, ModelError, OptimizerKind, Progress, Schedule, StepMetrics, TrainConfig, train,
    train_from, train_saving,
};
use rand::SeedableRng;

fn data() -> (Vocab, Examples, Examples) {
    let d = common::names();
    let vocab = d.vocab();
    let split = Split::new(d.words(), SplitSpec::default()).unwrap();
    let tr = Examples::windows(&split.train, &vocab, 3).unwrap();
    let dev = Examples::windows(&split.dev, &vocab, 3).unwrap();
    (vocab, tr, dev)
}

fn config(optimizer: OptimizerKind) -> TrainConfig {
    TrainConfig {
        steps: 100,
        schedule: Schedule::Step { lr: 0.1, at: 60, then: 0.01 },
        optimizer,
        weight_decay: 0.001,
        eval_every: 25,
        seed: 7,
        ..TrainConfig::mlp()
    }
}

fn bits(m: &Mlp) -> Vec<u32> {
    let p = m.params();
    p.ids().flat_map(|id| p.data(id).iter().map(|x| x.to_bits()).collect::<Vec<_>>()).collect()
}

fn log(metrics: &mut Vec<(usize, u32, u32, Option<u32>)>) -> impl FnMut(&StepMetrics) + '_ {
    |m| metrics.push((m.step, m.lr.to_bits(), m.loss.to_bits(), m.dev_loss.map(f32::to_bits)))
}

#[test]
fn fifty_then_fifty_equals_a_hundred_bit_for_bit() {
    let (vocab, tr, dev) = data();
    let no = AtomicBool::new(false);
    let dir = std::env::temp_dir().join(format!("mm-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for optimizer in [OptimizerKind::Sgd, OptimizerKind::AdamW] {
        let cfg = config(optimizer);
        let fresh =
            || Mlp::new(MlpConfig::default(), &vocab, &mut rand::rngs::StdRng::seed_from_u64(1)).unwrap();

        let mut whole = fresh();
        let mut whole_log = Vec::new();
        let report = train(&mut whole, &tr, Some(&dev), &cfg, &no, log(&mut whole_log)).unwrap();
        assert_eq!(report.progress.step, 100);
        assert_eq!(report.progress.adamw.is_some(), optimizer == OptimizerKind::AdamW);

        // 50 steps, saved with the optimizer's state; loaded; continued to 100.
        let mut first = fresh();
        let mut parts_log = Vec::new();
        let half = TrainConfig { steps: 50, ..cfg.clone() };
        let report = train(&mut first, &tr, Some(&dev), &half, &no, log(&mut parts_log)).unwrap();
        let path = dir.join(format!("{optimizer:?}.safetensors"));
        let meta =
            CheckpointMeta { step: 50, seed: 7, adamw: report.progress.adamw, ..CheckpointMeta::default() };
        save(&path, &AnyModel::Mlp(first), &meta).unwrap();
        let (AnyModel::Mlp(mut second), meta) = load(&path).unwrap() else { panic!("an mlp") };
        let from = Progress { step: meta.step as usize, adamw: meta.adamw };
        let report = train_from(&mut second, &tr, Some(&dev), &cfg, &from, &no, log(&mut parts_log)).unwrap();
        assert_eq!(report.steps, 100);

        assert!(bits(&second) == bits(&whole), "{optimizer:?}: the weights differ");
        // Step 50 is an evaluation step of both runs (every 25 steps, and the last step).
        assert_eq!(parts_log, whole_log, "{optimizer:?}: every step's rate, loss and dev loss");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// `train_saving` trains as `train` does, and each of its saves (every 30 steps, with AdamW's
/// moments and the best so far), loaded and continued, ends bit for bit where one run ends.
#[test]
fn periodic_saves_continue_bit_for_bit_and_do_not_change_training() {
    let (vocab, tr, dev) = data();
    let no = AtomicBool::new(false);
    for optimizer in [OptimizerKind::Sgd, OptimizerKind::AdamW] {
        let cfg = config(optimizer);
        let fresh =
            || Mlp::new(MlpConfig::default(), &vocab, &mut rand::rngs::StdRng::seed_from_u64(1)).unwrap();
        let mut whole = fresh();
        let mut whole_log = Vec::new();
        train(&mut whole, &tr, Some(&dev), &cfg, &no, log(&mut whole_log)).unwrap();

        let mut saving = fresh();
        let mut saving_log = Vec::new();
        let mut saves = Vec::new();
        let report = train_saving(
            &mut saving,
            &tr,
            Some(&dev),
            &cfg,
            &Progress::default(),
            &no,
            log(&mut saving_log),
            30,
            |p| {
                assert_eq!(p.params.ids().count(), 5);
                let best = p.best.map(|b| b.step);
                saves.push((p.progress.clone(), p.params.clone(), best));
                Ok::<(), ModelError>(())
            },
        )
        .unwrap();
        assert_eq!(report.steps, 100);
        assert!(bits(&saving) == bits(&whole), "{optimizer:?}: saving changed the training");
        assert_eq!(saving_log, whole_log);
        // Saved after steps 30, 60 and 90 (never after the last), the best by then evaluated at
        // step 25, 50 or 75 (0-based 24, 49, 74).
        let at: Vec<_> = saves.iter().map(|s| (s.0.step, s.0.adamw.is_some(), s.2.is_some())).collect();
        let adamw = optimizer == OptimizerKind::AdamW;
        assert_eq!(at, [(30, adamw, true), (60, adamw, true), (90, adamw, true)]);
        for (progress, params, _) in saves {
            let mut m = fresh();
            *m.params_mut() = params;
            let mut rest = Vec::new();
            train_from(&mut m, &tr, Some(&dev), &cfg, &progress, &no, log(&mut rest)).unwrap();
            assert!(bits(&m) == bits(&whole), "{optimizer:?}: continued from {}", progress.step);
            assert_eq!(rest[..], whole_log[progress.step..], "{optimizer:?}: from {}", progress.step);
        }
    }
}

#[test]
fn what_cannot_be_continued_is_an_error() {
    let (vocab, tr, _) = data();
    let no = AtomicBool::new(false);
    let mut m = Mlp::new(MlpConfig::default(), &vocab, &mut rand::rngs::StdRng::seed_from_u64(1)).unwrap();
    let past = Progress { step: 101, adamw: None };
    let cfg = config(OptimizerKind::Sgd);
    assert!(matches!(train_from(&mut m, &tr, None, &cfg, &past, &no, |_| ()), Err(ModelError::Config(_))));
    let no_state = Progress { step: 10, adamw: None };
    let adamw = config(OptimizerKind::AdamW);
    assert!(matches!(
        train_from(&mut m, &tr, None, &adamw, &no_state, &no, |_| ()),
        Err(ModelError::Config(_))
    ));
    let wrong = Progress {
        step: 10,
        adamw: Some(mm_tensor::AdamWState { t: 10, m: vec![vec![0.0; 3]], v: vec![vec![0.0; 3]] }),
    };
    assert!(matches!(train_from(&mut m, &tr, None, &adamw, &wrong, &no, |_| ()), Err(ModelError::Tensor(_))));
    assert!(matches!(train_from(&mut m, &tr, None, &cfg, &wrong, &no, |_| ()), Err(ModelError::Config(_))));
    // A run already at its last step has nothing to do.
    let done = Progress { step: 100, adamw: None };
    assert_eq!(train_from(&mut m, &tr, None, &cfg, &done, &no, |_| ()).unwrap().steps, 100);
}
