//! The real `makemore` binary: each command, and each bad input with its one-line error, its exit
//! code (2 for usage, 1 for failures) and no partial files.

use std::path::{Path, PathBuf};

mod common;

use common::{makemore, workdir};

/// The real names.txt at the workspace root.
fn real_names() -> PathBuf {
    let p = mm_data::default_dataset_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    assert!(p.is_file(), "{} is missing: run `cargo xtask download` (offline: --from PATH)", p.display());
    p
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_explains_every_flag_with_its_default() {
    let out = makemore().args(["train", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--model",
        "--data",
        "--out",
        "--seed",
        "--block-size",
        "--n-embd",
        "--n-hidden",
        "--batch-size",
        "--steps",
        "--lr",
        "--decay-step",
        "--lr-decayed",
        "--init",
        "--reg",
        "--alpha",
        "--optimizer",
        "--weight-decay",
        "--eval-every",
        "--json",
        "--force",
        "--resume",
    ] {
        assert!(help.contains(flag), "{flag} is documented");
    }
    assert!(help.contains("[default: mlp") && help.contains("[default: data/names.txt]"));
}

#[test]
fn each_model_trains_on_a_small_dataset_then_samples_and_evaluates() {
    let d = workdir();
    let data = d.join("names.txt");
    let kinds = [
        ("bigram", &[][..]),
        ("bigram-nn", &[]),
        ("mlp", &[]),
        ("bn-mlp", &[]),
        ("wavenet", &["--n-embd", "8", "--n-hidden", "16"]),
        ("transformer", &["--n-layer", "1", "--n-head", "2", "--n-embd", "16"]),
        ("bow", &["--n-embd", "16", "--n-embd2", "16"]),
        ("rnn", &["--n-embd", "16", "--n-embd2", "16"]),
        ("gru", &["--n-embd", "16", "--n-embd2", "16"]),
        ("mlp-makemore", &["--n-embd", "8", "--n-embd2", "16"]),
        ("bigram-makemore", &[]),
    ];
    for (model, sizes) in kinds {
        let out = d.join(model);
        // The counting model takes no training flags.
        let training: &[&str] =
            if model == "bigram" { &[] } else { &["--steps", "50", "--eval-every", "10"] };
        let run = makemore()
            .args(["train", "--model", model, "--json"])
            .args(training)
            .args(sizes)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(run.status.success(), "{model}: {}", stderr(&run));
        let summary: serde_json::Value =
            serde_json::from_slice(&run.stdout).expect("stdout is one JSON object");
        assert_eq!(summary["model"], model);
        assert_eq!(summary["samples"].as_array().unwrap().len(), 20);
        for f in ["model.safetensors", "metrics.csv", "summary.json"] {
            assert!(out.join(f).is_file(), "{model}: {f}");
        }
        let ckpt = out.join("model.safetensors");
        let s = makemore().arg("sample").arg("--checkpoint").arg(&ckpt).args(["-n", "5"]).output().unwrap();
        assert!(s.status.success(), "{}", stderr(&s));
        assert_eq!(String::from_utf8_lossy(&s.stdout).lines().count(), 5);
        let e =
            makemore().arg("eval").arg("--checkpoint").arg(&ckpt).arg("--data").arg(&data).output().unwrap();
        assert!(e.status.success(), "{}", stderr(&e));
        assert_eq!(String::from_utf8_lossy(&e.stdout).lines().filter(|l| l.contains("loss")).count(), 3);
    }
    // A run of a model that reads whole words continues where it stopped.
    let run = makemore()
        .args(["train", "--resume", "--steps", "60", "--json", "--out"])
        .arg(d.join("gru"))
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!((summary["model"].as_str(), summary["steps"].as_u64()), (Some("gru"), Some(60)));
    // The best parameters by dev loss are saved beside the final ones, and loadable.
    let best = d.join("mlp/best.safetensors");
    assert!(best.is_file());
    let e = makemore().arg("eval").arg("--checkpoint").arg(&best).arg("--data").arg(&data).output().unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    let metrics = std::fs::read_to_string(d.join("mlp/metrics.csv")).unwrap();
    assert!(metrics.starts_with("step,lr,train_loss,dev_loss,elapsed_s\n"));
    assert_eq!(metrics.lines().count(), 51);
}

#[test]
fn the_neural_models_train_briefly_on_names_txt() {
    let d = workdir();
    // 300 steps from part 3's initialisation reach a dev loss of about 2.50 (measured).
    let run = makemore()
        .args(["train", "--steps", "300", "--init", "kaiming", "--json"])
        .arg("--data")
        .arg(real_names())
        .arg("--out")
        .arg(d.join("mlp"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!((summary["parameters"].as_u64(), summary["steps"].as_u64()), (Some(11_897), Some(300)));
    assert!(summary["loss"]["dev"].as_f64().unwrap() < 2.7, "{summary}");
    let run = makemore()
        .args(["train", "--model", "bigram-nn", "--steps", "20", "--json"])
        .arg("--data")
        .arg(real_names())
        .arg("--out")
        .arg(d.join("nn"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["parameters"].as_u64(), Some(729));
}

#[test]
fn models_lists_every_kind_with_its_parameters() {
    let out = makemore().arg("models").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for (kind, params) in [
        ("bigram-nn", "729"),
        ("mlp", "11897"),
        ("bn-mlp", "12097"),
        ("wavenet", "76579"),
        ("transformer", "204544"),
        ("bow", "12827"),
        ("rnn", "11803"),
        ("gru", "28315"),
        ("mlp-makemore", "69147"),
    ] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{kind} ")))
            .unwrap_or_else(|| panic!("{kind}: {text}"));
        assert!(line.split_whitespace().nth(1) == Some(params), "{line}");
    }
    let out = makemore().args(["models", "--json"]).output().unwrap();
    let specs: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(specs.len(), 11);
    assert_eq!(
        specs[5]["spec"],
        serde_json::json!({"kind": "transformer", "block_size": 16, "n_layer": 4, "n_head": 4, "n_embd": 64})
    );
}

#[test]
fn info_prints_the_lectures_split_sizes() {
    let out = makemore().arg("info").arg("--data").arg(real_names()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("items        32033") && text.contains("train 182625 / dev 22655 / test 22866"),
        "{text}"
    );
}

#[test]
fn sampling_is_deterministic_per_seed_and_honours_the_prefix() {
    let d = workdir();
    makemore()
        .args(["train", "--model", "bigram"])
        .arg("--data")
        .arg(real_names())
        .arg("--out")
        .arg(d.join("b"))
        .output()
        .unwrap();
    let ckpt = d.join("b/model.safetensors");
    let run = |seed: &str| {
        makemore()
            .arg("sample")
            .arg("--checkpoint")
            .arg(&ckpt)
            .args(["-n", "30", "--seed", seed, "--prefix", "ka"])
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(run("7"), run("7"));
    assert_ne!(run("7"), run("8"));
    assert!(String::from_utf8_lossy(&run("7")).lines().all(|l| l.starts_with("ka")));
}

/// The counting model's `--alpha` is saved with it: `eval` gives the losses `train` printed, and
/// `sample` the names it printed, without the flag; the flag still overrides it, and is refused
/// for a neural model.
#[test]
fn bigram_counts_keep_their_alpha() {
    let d = workdir();
    let data = d.join("names.txt");
    let run = makemore()
        .args(["train", "--model", "bigram", "--alpha", "10", "--json", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(d.join("b"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let ckpt = d.join("b/model.safetensors");
    let eval = |alpha: &[&str]| {
        let e = makemore()
            .arg("eval")
            .arg("--checkpoint")
            .arg(&ckpt)
            .arg("--data")
            .arg(&data)
            .args(alpha)
            .output();
        let e = e.unwrap();
        assert!(e.status.success(), "{}", stderr(&e));
        String::from_utf8(e.stdout).unwrap()
    };
    let train_loss = format!("train loss {:.4}", summary["loss"]["train"].as_f64().unwrap());
    assert!(eval(&[]).contains(&train_loss), "{} should show {train_loss}", eval(&[]));
    assert_eq!(eval(&["--alpha", "10"]), eval(&[]));
    assert_ne!(eval(&["--alpha", "1"]), eval(&[]));
    let s = makemore().arg("sample").arg("--checkpoint").arg(&ckpt).output().unwrap();
    let names: Vec<String> = String::from_utf8_lossy(&s.stdout).lines().map(String::from).collect();
    let printed: Vec<String> = summary["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, printed, "sample draws what train drew, with the run's alpha");

    let nn = d.join("nn");
    let run = makemore()
        .args(["train", "--model", "bigram-nn", "--steps", "5", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&nn)
        .output();
    assert!(run.unwrap().status.success());
    let e = makemore()
        .arg("eval")
        .arg("--checkpoint")
        .arg(nn.join("model.safetensors"))
        .arg("--data")
        .arg(&data)
        .args(["--alpha", "2"])
        .output()
        .unwrap();
    assert_eq!(e.status.code(), Some(1));
    assert!(stderr(&e).contains("--alpha is the smoothing of bigram counts"), "{}", stderr(&e));
}

/// Runs `makemore args` and checks it fails with `code` and a one-line `error:`.
fn fails(args: &[&str], extra: &[&Path], code: i32, contains: &str) {
    let mut cmd = makemore();
    cmd.args(args);
    for p in extra {
        cmd.arg(p);
    }
    let out = cmd.output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.starts_with("error: "), "{args:?}: {err}");
    assert!(err.contains(contains), "{args:?}: {err:?} should contain {contains:?}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    fails(&["train", "--steps", "0"], &[], 2, "--steps");
    fails(&["train", "--lr", "-0.1"], &[], 2, "--lr");
    fails(&["train", "--lr", "NaN"], &[], 2, "--lr");
    fails(&["train", "--block-size", "0"], &[], 2, "--block-size");
    fails(&["sample", "--checkpoint", "x", "-n", "99999999999"], &[], 2, "-n");
    fails(&["sample", "--checkpoint", "x", "--temperature", "0"], &[], 2, "--temperature");
    fails(&["train", "--model", "gpt"], &[], 2, "--model");
    // A flag the model does not take.
    fails(&["train", "--model", "mlp", "--n-layer", "2"], &[], 2, "--model mlp does not take --n-layer");
    fails(&["train", "--model", "transformer", "--n-hidden", "9"], &[], 2, "does not take --n-hidden");
    fails(&["train", "--model", "rnn", "--n-head", "2"], &[], 2, "does not take --n-head");
    fails(&["train", "--n-embd2", "8"], &[], 2, "--model mlp does not take --n-embd2");
    fails(&["train", "--model", "bigram-makemore", "--n-embd", "8"], &[], 2, "does not take --n-embd");
    fails(&["train", "--model", "mlp", "--momentum", "0.1"], &[], 2, "--model mlp does not take --momentum");
    fails(&["train", "--model", "bn-mlp", "--momentum", "1.5"], &[], 2, "--momentum");
}

#[test]
fn failures_exit_1_with_one_line_and_leave_no_files() {
    let d = workdir();
    let out = d.join("run");
    // A missing dataset.
    fails(&["train", "--out"], &[&out, Path::new("--data"), &d.join("missing.txt")], 1, "cannot read");
    // A dataset with invalid UTF-8.
    std::fs::write(d.join("bad.txt"), b"emma\nol\xffivia\n").unwrap();
    fails(
        &["train", "--out"],
        &[&out, Path::new("--data"), &d.join("bad.txt")],
        1,
        "line 2 is not valid UTF-8",
    );
    // Sizes that would not fit in memory.
    fails(
        &["train", "--n-hidden", "65536", "--n-embd", "4096", "--block-size", "64", "--out"],
        &[&out, Path::new("--data"), &d.join("names.txt")],
        1,
        "choose smaller sizes",
    );
    // A block_size too short for the longest line ("charlotte", 9): the flag and the size that
    // holds every line, not the first line that does not fit.
    fails(
        &["train", "--model", "bow", "--block-size", "5", "--out"],
        &[&out, Path::new("--data"), &d.join("names.txt")],
        1,
        "pass --block-size 10 or more",
    );
    // A batch whose step would not fit in memory (a Transformer's step on a million rows keeps
    // about 420 GiB): refused before it is allocated, where the allocation would abort.
    fails(
        &["train", "--model", "transformer", "--batch-size", "1000000", "--out"],
        &[&out, Path::new("--data"), &d.join("names.txt")],
        1,
        "of memory, and",
    );
    // Settings the training loop refuses, refused in the flags' words.
    fails(
        &["train", "--model", "bn-mlp", "--batch-size", "1", "--out"],
        &[&out, Path::new("--data"), &d.join("names.txt")],
        1,
        "pass --batch-size 2 or more",
    );
    fails(
        &["train", "--model", "transformer", "--optimizer", "sgd", "--decay-matrices-only", "--out"],
        &[&out, Path::new("--data"), &d.join("names.txt")],
        1,
        "--decay-matrices-only (decay_matrices_only in a spec) needs --optimizer adamw",
    );
    fails(
        &["train", "--model", "wavenet", "--batch-size", "1", "--out"],
        &[&out, Path::new("--data"), &d.join("names.txt")],
        1,
        "pass --batch-size 2 or more",
    );
    // Flags that would change nothing with the others given.
    for (flags, says) in [
        (&["--warmup", "5", "--decay-step", "10"][..], "--warmup without --lr-decay cosine"),
        (&["--decay-step", "10"], "--decay-step does nothing for transformer"),
        (&["--min-lr", "0.001"], "--min-lr is where --lr-decay cosine ends"),
        (&["--lr-decay", "cosine", "--lr-decayed", "0.001"], "drop --lr-decayed"),
        (&["--optimizer", "sgd", "--beta2", "0.95"], "--beta2 is AdamW's"),
    ] {
        let mut args = vec!["train", "--model", "transformer"];
        args.extend_from_slice(flags);
        args.push("--out");
        fails(&args, &[&out, Path::new("--data"), &d.join("names.txt")], 1, says);
    }
    assert!(!out.exists(), "no run directory after a failure");
    // And a checkpoint evaluated on data with longer lines than it reads, before any loss.
    let short = d.join("short.txt");
    // Every character of names.txt, in lines of at most 4.
    std::fs::write(&short, "emma\nava\nmia\nbob\nphil\ncher\ntony\nsly").unwrap();
    let bow = d.join("bow");
    let run = makemore()
        .args(["train", "--model", "bow", "--n-embd", "8", "--n-embd2", "8", "--steps", "2", "--data"])
        .arg(&short)
        .arg("--out")
        .arg(&bow)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let e = makemore()
        .arg("eval")
        .arg("--checkpoint")
        .arg(bow.join("model.safetensors"))
        .arg("--data")
        .arg(d.join("names.txt"))
        .output()
        .unwrap();
    assert_eq!(e.status.code(), Some(1), "{}", stderr(&e));
    assert!(e.stdout.is_empty(), "no split's loss before the error");
    assert!(stderr(&e).contains("reads lines of at most 4 (its block_size is 5)"), "{}", stderr(&e));
    // Its names are at most block_size - 1 long unless --max-len says more, as makemore's
    // print_samples (a model of a hundred steps rarely ends a name by itself).
    let names = |extra: &[&str]| {
        let s = makemore()
            .arg("sample")
            .arg("--checkpoint")
            .arg(bow.join("model.safetensors"))
            .args(extra)
            .output();
        let s = s.unwrap();
        assert!(s.status.success(), "{}", stderr(&s));
        String::from_utf8(s.stdout).unwrap().lines().map(|l| l.chars().count()).max().unwrap()
    };
    assert_eq!(names(&["-n", "2000"]), 4);
    assert!(names(&["-n", "2000", "--max-len", "30"]) > 4);
    fails(
        &["sample", "--prefix", "abcde", "--checkpoint"],
        &[&bow.join("model.safetensors")],
        1,
        "have at most 4 unless --max-len says more",
    );
    // And on data with a character it has never seen, naming the checkpoint.
    std::fs::write(d.join("zoe.txt"), "zoe\nava\nmia").unwrap();
    fails(
        &["eval", "--checkpoint"],
        &[&bow.join("model.safetensors"), Path::new("--data"), &d.join("zoe.txt")],
        1,
        "has the character 'z', which the vocabulary of",
    );
    // A missing, a corrupt and a truncated checkpoint.
    fails(&["sample", "--checkpoint"], &[&d.join("none.safetensors")], 1, "none.safetensors");
    std::fs::write(d.join("junk.safetensors"), b"junk").unwrap();
    fails(&["sample", "--checkpoint"], &[&d.join("junk.safetensors")], 1, "not a valid checkpoint");
    makemore()
        .args(["train", "--model", "bigram"])
        .arg("--data")
        .arg(d.join("names.txt"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    std::fs::write(d.join("cut.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    fails(
        &["eval", "--checkpoint"],
        &[&d.join("cut.safetensors"), Path::new("--data"), &d.join("names.txt")],
        1,
        "not a valid checkpoint",
    );
    // A prefix with a character not in the vocabulary.
    fails(
        &["sample", "--prefix", "zoë", "--checkpoint"],
        &[&out.join("model.safetensors")],
        1,
        "not in the vocabulary",
    );
}

#[test]
fn a_run_directory_is_not_overwritten_without_force() {
    let d = workdir();
    let out = d.join("run");
    let train = |force: bool| {
        let mut c = makemore();
        c.args(["train", "--model", "bigram"]).arg("--data").arg(d.join("names.txt")).arg("--out").arg(&out);
        if force {
            c.arg("--force");
        }
        c.output().unwrap()
    };
    assert!(train(false).status.success());
    let before = std::fs::read(out.join("summary.json")).unwrap();
    let again = train(false);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already holds a run: pass --resume to continue it, --force to overwrite it")
    );
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), before);
    assert!(train(true).status.success());
}

#[test]
fn graph_draws_a_training_step_as_svg_or_dot() {
    let d = workdir();
    let data = d.join("names.txt");
    for (model, out) in [("mlp", "mlp.svg"), ("mlp", "mlp.dot"), ("gru", "gru.svg")] {
        let path = d.join(out);
        let run = makemore()
            .args(["graph", "--model", model, "--out"])
            .arg(&path)
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", stderr(&run));
        let text = std::fs::read_to_string(&path).unwrap();
        if model == "mlp" {
            for name in ["C", "W1", "b1", "W2", "b2", "Embedding", "Linear", "Tanh", "CrossEntropy"] {
                assert!(text.contains(name), "{out}: {name}");
            }
        }
        assert!(text.starts_with(if out.ends_with(".svg") { "<?xml" } else { "digraph" }), "{out}");
        // Colours every SVG renderer reads: no alpha byte (librsvg draws `#ffffffff` black).
        assert!(!text.contains("ffffffff\"") && !text.contains("00000000\""), "{out}");
    }
    fails(&["graph", "--out", "x.png"], &[], 2, ".svg or .dot");
    fails(
        &["graph", "--model", "bigram", "--out"],
        &[&d.join("b.svg"), Path::new("--data"), &data],
        1,
        "no training step",
    );
}

#[test]
fn a_spec_file_chooses_the_model_and_its_sizes() {
    let d = workdir();
    let data = d.join("names.txt");
    let spec = d.join("tiny.json");
    std::fs::write(
        &spec,
        r#"{"kind": "transformer", "block_size": 12, "n_layer": 1, "n_head": 2, "n_embd": 16}"#,
    )
    .unwrap();
    let run = makemore()
        .args(["train", "--steps", "20", "--json", "--spec"])
        .arg(&spec)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(d.join("tiny"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let want: mm_models::Spec = serde_json::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    assert_eq!(summary["model"], "transformer");
    assert_eq!(
        summary["parameters"].as_u64().map(u128::from),
        Some(want.num_params(summary["dataset"]["vocab"].as_str().unwrap().chars().count()))
    );
    assert_eq!(summary["config"]["block_size"], 12);
    // A block too short for the data names the file's setting, not a flag --spec refuses.
    let short = d.join("short.json");
    std::fs::write(
        &short,
        r#"{"kind": "transformer", "block_size": 5, "n_layer": 1, "n_head": 2, "n_embd": 16}"#,
    )
    .unwrap();
    let out = d.join("short");
    fails(
        &["train", "--spec"],
        &[&short, Path::new("--data"), &data, Path::new("--out"), &out],
        1,
        "set block_size to 10 or more in",
    );
    // A spec that is not one names the file; a spec with --model is a usage error.
    std::fs::write(&spec, r#"{"kind": "transformer", "n_layers": 1}"#).unwrap();
    fails(
        &["train", "--spec"],
        &[&spec, Path::new("--data"), &data, Path::new("--out"), &d.join("bad")],
        1,
        "is not a model spec",
    );
    fails(&["train", "--model", "mlp", "--spec"], &[&spec], 2, "--spec");
}
