//! Trains the lecture's MLP on names.txt with the lecture's split and schedule, prints the loss on
//! each split and 20 samples, each marked new, in train, or in dev/test, and saves the model to
//! runs/example-mlp/model.safetensors.
//!
//! `cargo run --release -p mm-models --example mlp [-- kaiming]` (after `cargo xtask download`)

use std::sync::atomic::AtomicBool;

use mm_data::{Dataset, Examples, Split, SplitSpec, default_dataset_path};
use mm_models::checkpoint::{AnyModel, CheckpointMeta, save};
use mm_models::{
    Init, Mlp, MlpConfig, Model, Novelty, Origin, SampleConfig, TrainConfig, evaluate, sample, train,
};
use rand::SeedableRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let init = if std::env::args().any(|a| a == "kaiming") { Init::Kaiming } else { Init::Lecture };
    let data = Dataset::load(default_dataset_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")))?;
    let vocab = data.vocab();
    let split = Split::new(data.words(), SplitSpec::default())?;
    let config = MlpConfig { init, ..MlpConfig::default() };
    let [tr, dev, test] =
        [&split.train, &split.dev, &split.test].map(|w| Examples::windows(w, &vocab, config.block_size));
    let (tr, dev, test) = (tr?, dev?, test?);
    let mut model = Mlp::new(config, &vocab, &mut rand::rngs::StdRng::seed_from_u64(2147483647))?;
    println!("{} parameters, init {init:?}", model.num_params());
    let start = std::time::Instant::now();
    let cfg = TrainConfig::mlp();
    let report = train(&mut model, &tr, Some(&dev), &cfg, &AtomicBool::new(false), |m| {
        if let Some(d) = m.dev_loss {
            println!("step {:>6}  lr {:.3}  loss {:.4}  dev {:.4}", m.step + 1, m.lr, m.loss, d);
        }
    })?;
    let secs = start.elapsed().as_secs_f64();
    println!("{} steps in {secs:.1} s", report.steps);
    for (name, ex) in [("train", &tr), ("dev", &dev), ("test", &test)] {
        println!("{name:5} loss {:.4}", evaluate(&model, ex)?);
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runs/example-mlp");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("model.safetensors");
    let meta = CheckpointMeta {
        step: report.steps as u64,
        seed: cfg.seed,
        dataset_sha256: mm_data::download::NAMES_SHA256.into(),
        ..CheckpointMeta::default()
    };
    save(&path, &AnyModel::Mlp(model.clone()), &meta)?;
    println!("saved {}", path.canonicalize()?.display());
    let novelty = Novelty::new(&split);
    for name in sample(&model, &SampleConfig::default())? {
        let mark = match novelty.origin(&name) {
            Origin::Train => "in train",
            Origin::Held => "in dev/test",
            Origin::New => "new",
        };
        println!("{name:16} {mark}");
    }
    Ok(())
}
