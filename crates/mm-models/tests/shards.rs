//! Training over shards (`TrainConfig::shards`) on threads (`TrainConfig::threads`): the shard
//! count fixes the arithmetic and the thread count never changes a bit (1 and 2 threads give the
//! same losses and weights, and a run continued with another thread count is the uninterrupted
//! run); a sharded gradient is the whole batch's (in f64 to 1e-12); BatchNorm kinds refuse
//! shards by name; bad shard settings are errors, not panics.

use std::sync::atomic::AtomicBool;

mod common;

use common::{WORDS, bits, examples, vocab};

use mm_data::Examples;
use mm_models::zoo::{Builder, ModelConfig, Transformer, TransformerOptions, ZooModel};
use mm_models::{Model, ModelError, Progress, Spec, TrainConfig, train, train_from};
use mm_tensor::{Grads, Shards, Tape};
use ndarray::s;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A small model of `json`'s spec (block size 10 for makemore's kinds).
fn build(json: &str) -> Box<dyn Model> {
    let spec: Spec = serde_json::from_str(json).unwrap();
    let spec = if spec.layout() == mm_data::Layout::Words { spec.with_block_size(10) } else { spec };
    spec.build(&vocab(), &mut StdRng::seed_from_u64(3)).unwrap().into_neural().unwrap()
}

/// A small Transformer, with dropout so that each shard draws its own masks.
const TRANSFORMER: &str = r#"{"kind": "transformer", "block_size": 10, "n_layer": 2, "n_head": 2,
    "n_embd": 8, "dropout": 0.1, "batch_size": 7, "lr": 0.01}"#;
const RNN: &str = r#"{"kind": "rnn", "block_size": 10, "n_embd": 8, "n_embd2": 8}"#;
const MLP: &str = r#"{"kind": "mlp", "block_size": 3, "n_embd": 4, "n_hidden": 16, "init": "lecture"}"#;

/// `steps` steps of `json`'s model over `shards` shards on `threads` threads (batches of 7, an
/// odd number, so that the shards are uneven): every step's loss bits and the final weights.
fn run(json: &str, steps: usize, shards: usize, threads: usize) -> (Vec<u32>, Vec<u32>) {
    run_with(json, steps, shards, threads, |cfg| cfg)
}

/// [`run`] with `tweak` applied to the training configuration.
fn run_with(
    json: &str,
    steps: usize,
    shards: usize,
    threads: usize,
    tweak: impl Fn(TrainConfig) -> TrainConfig,
) -> (Vec<u32>, Vec<u32>) {
    let mut m = build(json);
    let ex = examples(&*m);
    let spec: Spec = serde_json::from_str(json).unwrap();
    let cfg = tweak(TrainConfig { steps, batch_size: Some(7), shards, threads, ..spec.train_config() });
    let mut losses = Vec::new();
    train(&mut *m, &ex, None, &cfg, &AtomicBool::new(false), |s| losses.push(s.loss.to_bits())).unwrap();
    (losses, bits(m.params()))
}

#[test]
fn one_and_two_threads_give_the_same_bits_for_the_same_shards() {
    for json in [TRANSFORMER, RNN, MLP] {
        for shards in [2, 3] {
            let one = run(json, 12, shards, 1);
            let two = run(json, 12, shards, 2);
            assert_eq!(one, two, "{json}: {shards} shards");
            assert_eq!(one, run(json, 12, shards, 0), "{json}: {shards} shards, a thread per core");
        }
    }
}

/// With AdamW and no clipping, the update sums the shards' gradients as it applies them
/// (`AdamW::step_shards`); a clip needs the summed gradient, written out first
/// (`Shards::sum_into`). A clip that never clips takes the second way to the same bits.
#[test]
fn adamw_summing_the_shards_in_its_update_gives_the_bits_of_the_sum_written_out() {
    for json in [TRANSFORMER, RNN] {
        let spec: Spec = serde_json::from_str(json).unwrap();
        assert_eq!(spec.train_config().optimizer, mm_models::OptimizerKind::AdamW, "{json}");
        for threads in [1, 2] {
            let fused = run_with(json, 12, 2, threads, |cfg| TrainConfig { grad_clip: 0.0, ..cfg });
            let written = run_with(json, 12, 2, threads, |cfg| TrainConfig { grad_clip: 1e30, ..cfg });
            assert_eq!(fused, written, "{json}: {threads} threads");
        }
    }
}

/// Sharding changes the rounding only: the losses of a sharded run stay close to the unsharded
/// run's (f32, a few steps: the weights drift apart by rounding only). With dropout the shards
/// draw other masks than one batch would, so this compares runs without it.
#[test]
fn a_sharded_run_follows_the_unsharded_one_to_rounding() {
    let plain = TRANSFORMER.replace(r#""dropout": 0.1"#, r#""dropout": 0.0"#);
    for json in [plain.as_str(), RNN, MLP] {
        let (one, _) = run(json, 8, 1, 1);
        let (two, _) = run(json, 8, 2, 2);
        for (step, (a, b)) in one.iter().zip(&two).enumerate() {
            let (a, b) = (f32::from_bits(*a), f32::from_bits(*b));
            assert!((a - b).abs() <= 1e-5 * a.abs(), "{json}: step {step}: {a} vs {b}");
        }
        assert_ne!(one, two, "{json}: other rounding (else the shards would not be tested)");
    }
}

/// One step's gradient over 2 and 3 shards is the whole batch's, in f64 to 1e-12: each shard's
/// mean loss weighted by its number of targets (here uneven: words of different lengths, cut
/// into shards of 4 and 3 rows, or 2, 2 and 3).
#[test]
fn a_sharded_gradient_is_the_whole_batchs_in_f64() {
    let v = vocab();
    let config = ModelConfig {
        block_size: 10,
        n_layer: 2,
        n_head: 2,
        n_embd: 8,
        vocab_size: v.len(),
        ..ModelConfig::default()
    };
    let mut rng = StdRng::seed_from_u64(5);
    let model: Transformer<f64> =
        Transformer::build_with(config, TransformerOptions::default(), Builder::init(&mut rng)).unwrap();
    let ex = Examples::new(&WORDS[..7], &v, mm_data::Layout::Words, 10).unwrap();
    let (x, y) = (ex.x.view(), ex.y.as_slice().unwrap());
    let params = model.params();
    let mut whole = Grads::new(params);
    let mut tape = Tape::new();
    let loss = {
        let g = tape.graph(params);
        g.backward(model.forward(&g, x).cross_entropy(y), &mut whole).unwrap()
    };
    for n in [2, 3] {
        let mut grads = Grads::new(params);
        let mut shards = Shards::new(params, n, 2);
        let rows = x.nrows();
        let sharded = shards
            .step(params, &mut grads, |g, i| {
                let (a, b) = (i * rows / n, (i + 1) * rows / n);
                let t = &y[a * 10..b * 10];
                let w = t.iter().filter(|&&t| t != mm_tensor::IGNORE).count() as f64;
                Ok((model.forward_shard(g, x.slice(s![a..b, ..]), i).cross_entropy(t), w))
            })
            .unwrap();
        assert!((sharded - loss).abs() < 1e-12, "{n} shards: loss {sharded} vs {loss}");
        for id in params.ids() {
            for (a, b) in grads.data(id).iter().zip(whole.data(id)) {
                assert!((a - b).abs() < 1e-12, "{n} shards: {}: {a} vs {b}", params.name(id));
            }
        }
    }
}

/// A run of 12 steps over 2 shards, stopped after 5 on 1 thread and continued on 2 (AdamW's
/// moments carried over), is bit for bit the run of 12 steps at once.
#[test]
fn a_run_continued_with_another_thread_count_is_bit_identical() {
    for json in [TRANSFORMER, RNN] {
        let (losses, weights) = run(json, 12, 2, 2);
        let mut m = build(json);
        let ex = examples(&*m);
        let spec: Spec = serde_json::from_str(json).unwrap();
        let cfg = TrainConfig { steps: 12, batch_size: Some(7), shards: 2, ..spec.train_config() };
        let stop = AtomicBool::new(false);
        let mut seen = Vec::new();
        let first = TrainConfig { steps: 5, threads: 1, ..cfg.clone() };
        let report = train(&mut *m, &ex, None, &first, &stop, |s| seen.push(s.loss.to_bits())).unwrap();
        let from = Progress { step: 5, adamw: report.progress.adamw };
        let rest = TrainConfig { threads: 2, ..cfg };
        train_from(&mut *m, &ex, None, &rest, &from, &stop, |s| seen.push(s.loss.to_bits())).unwrap();
        assert_eq!(seen, losses, "{json}");
        assert_eq!(bits(m.params()), weights, "{json}");
    }
}

#[test]
fn batchnorm_kinds_refuse_shards_by_name() {
    for kind in ["bn-mlp", "wavenet"] {
        let mut m = Spec::default_of(kind).unwrap().build(&vocab(), &mut StdRng::seed_from_u64(1)).unwrap();
        let m = m.neural_mut().unwrap();
        let ex = examples(m);
        let cfg = TrainConfig { steps: 2, shards: 2, ..TrainConfig::mlp() };
        let err = train(m, &ex, None, &cfg, &AtomicBool::new(false), |_| {}).unwrap_err();
        assert!(matches!(err, ModelError::ShardedBatchNorm { kind: k, shards: 2 } if k == kind), "{err}");
        assert!(
            err.to_string().starts_with(&format!("{kind} normalises with its batch's statistics")),
            "{err}"
        );
        // One shard is today's training.
        let cfg = TrainConfig { shards: 1, ..cfg };
        train(m, &ex, None, &cfg, &AtomicBool::new(false), |_| {}).unwrap();
    }
}

#[test]
fn bad_shard_settings_are_errors() {
    let mut m = build(MLP);
    let ex = examples(&*m);
    let stop = AtomicBool::new(false);
    for (cfg, want) in [
        (TrainConfig { steps: 1, shards: 0, ..TrainConfig::mlp() }, "shards must be at least 1"),
        (
            TrainConfig { steps: 1, batch_size: Some(3), shards: 4, ..TrainConfig::mlp() },
            "batch_size of 3 rows cannot be cut into 4 shards: use at most 3",
        ),
    ] {
        let err = train(&mut *m, &ex, None, &cfg, &stop, |_| {}).unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
    let huge = TrainConfig { shards: 5000, ..TrainConfig::mlp() };
    assert_eq!(huge.check_limits().unwrap_err().to_string(), "shards 5000 is not in 1..=1024");
    // The whole training set as one batch (the bigram net's full-batch steps) shards too.
    let mut net = build(r#"{"kind": "bigram-nn", "reg": 0.01}"#);
    let ex = examples(&*net);
    let cfg = TrainConfig { steps: 3, shards: 2, threads: 2, ..TrainConfig::bigram_nn() };
    let a = train(&mut *net, &ex, None, &cfg, &stop, |_| {}).unwrap().last_loss;
    assert!(a.is_finite());
}
