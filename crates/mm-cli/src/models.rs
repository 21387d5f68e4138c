//! `makemore models`: every model kind of the registry, with its default settings, its size
//! on `names.txt` (27 tokens, words of up to 15 characters) and how it trains by default.

use mm_models::{OptimizerKind, Schedule, Spec, TrainConfig};

use crate::cli::ModelsArgs;

/// `names.txt`'s vocabulary: the end token and 26 letters.
const VOCAB: usize = 27;

/// How `cfg` trains, in a few words: `sgd 200000 steps, lr 0.1 -> 0.01 at 100000`.
fn training(cfg: &TrainConfig) -> String {
    if cfg.steps == 0 {
        return "counted, not trained".into();
    }
    let opt = if cfg.optimizer == OptimizerKind::AdamW { "adamw" } else { "sgd" };
    let batch = cfg.batch_size.map_or("full batch".to_string(), |b| format!("batch {b}"));
    let lr = match &cfg.schedule {
        Schedule::Step { lr, at, then } => format!("lr {lr} -> {then} at {at}"),
        other => format!("lr {}", other.lr(0)),
    };
    format!("{opt} {} steps, {batch}, {lr}", cfg.steps)
}

/// Runs `makemore models`.
pub fn run(args: &ModelsArgs) -> anyhow::Result<()> {
    let kinds = Spec::all();
    if args.json {
        for spec in &kinds {
            let line = serde_json::json!({
                "spec": spec,
                "parameters": spec.num_params(VOCAB) as u64,
                "layout": format!("{:?}", spec.layout()).to_lowercase(),
                "training": training(&spec.train_config()),
                "about": spec.about(),
            });
            println!("{line}");
        }
        return Ok(());
    }
    let rows: Vec<[String; 5]> = kinds
        .iter()
        .map(|s| {
            let settings: Vec<String> = s
                .settings()
                .iter()
                .filter_map(|k| Some(format!("--{} {}", k.replace('_', "-"), s.setting(k)?)))
                .collect();
            [
                s.kind().to_string(),
                s.num_params(VOCAB).to_string(),
                settings.join(" "),
                training(&s.train_config()),
                s.about().to_string(),
            ]
        })
        .collect();
    let head = ["model", "parameters", "defaults", "training", "about"];
    let widths: Vec<usize> =
        (0..4).map(|i| rows.iter().map(|r| r[i].len()).chain([head[i].len()]).max().unwrap_or(0)).collect();
    let line = |r: [&str; 5]| {
        format!(
            "{:w0$}  {:>w1$}  {:w2$}  {:w3$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        )
    };
    println!("{}", line(head).trim_end());
    for r in &rows {
        println!("{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]).trim_end());
    }
    println!(
        "\nParameters on names.txt (27 tokens; makemore.py's models: block size 16, its longest word + 1, \
         which `train` takes from the data). `makemore train --model KIND` with any of the defaults' flags."
    );
    Ok(())
}
