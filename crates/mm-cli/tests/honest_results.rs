//! Issue #15, "Honest results": a dataset too small to fill every split trains and reports an
//! empty split as such (every kind), or refuses naming the split and the counts; `--resume`
//! reads the dataset its run recorded; `info` escapes invisible characters; and flags that would
//! be ignored or contradict each other are usage errors.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

mod common;

use common::{makemore, workdir};

fn run(dir: &Path, args: &[&str]) -> Output {
    makemore().current_dir(dir).args(args).timeout(Duration::from_secs(300)).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

/// Four words split 3 / 0 / 1: every kind trains, and its dev loss is said to be missing, not a
/// number (the bigram model printed `-0.0000` on no words).
#[test]
fn an_empty_dev_split_is_reported_as_such_for_every_kind() {
    let d = workdir();
    std::fs::write(d.join("four.txt"), "emma\nolivia\nava\nisabella\n").unwrap();
    let kinds = [
        "bigram",
        "bigram-nn",
        "mlp",
        "bn-mlp",
        "wavenet",
        "transformer",
        "bow",
        "rnn",
        "gru",
        "mlp-makemore",
        "bigram-makemore",
    ];
    for kind in kinds {
        let steps: &[&str] = if kind == "bigram" { &[] } else { &["--steps", "3"] };
        let args = [&["train", "--model", kind, "--data", "four.txt", "--out", kind][..], steps].concat();
        let o = run(&d, &args);
        assert!(o.status.success(), "{kind}: {}", text(&o.stderr));
        let out = text(&o.stdout);
        assert!(out.contains("split 3 / 0 / 1 words"), "{kind}: {out}");
        assert!(out.contains("dev loss n/a (empty split)"), "{kind}: {out}");
        assert!(text(&o.stderr).contains("the dev split is empty (4 words split 3 / 0 / 1"), "{kind}");
        let s = summary(&d.join(kind));
        assert!(s["loss"]["dev"].is_null(), "{kind}: {}", s["loss"]);
        assert!(s["loss"]["train"].as_f64().is_some_and(|l| l > 0.0), "{kind}: {}", s["loss"]);
        assert!(s["loss"]["test"].as_f64().is_some_and(|l| l > 0.0), "{kind}: {}", s["loss"]);
        assert!(s["best"].is_null(), "{kind}: a best without a dev split");
        let checkpoint = format!("{kind}/model.safetensors");
        let o = run(&d, &["eval", "--checkpoint", &checkpoint, "--data", "four.txt"]);
        assert!(o.status.success(), "{kind}: {}", text(&o.stderr));
        let out = text(&o.stdout);
        assert!(out.contains("dev   no words (the split of 4 words is 3 / 0 / 1"), "{kind}: {out}");
        assert!(!out.contains("NaN") && !out.contains("-0.0000"), "{kind}: {out}");
    }
    // One word: nothing to train on; the error names the split and the counts.
    std::fs::write(d.join("one.txt"), "emma\n").unwrap();
    for kind in ["bigram", "mlp"] {
        let o = run(&d, &["train", "--model", kind, "--data", "one.txt", "--out", "one"]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{kind}: {err}");
        assert!(err.contains("the training split is empty (1 words split 0 / 0 / 1"), "{kind}: {err}");
        assert!(!d.join("one").exists(), "{kind}");
    }
    std::fs::remove_dir_all(d).unwrap();
}

/// `--resume` without `--data` reads the dataset the run recorded, not `data/names.txt`.
#[test]
fn resume_reads_the_dataset_the_run_recorded() {
    let d = workdir();
    let data = d.join("names.txt").display().to_string();
    let o = run(&d, &["train", "--data", &data, "--out", "run", "--steps", "20", "--eval-every", "10"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // From another directory, which has no data/names.txt.
    let elsewhere = d.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let run_dir = d.join("run").display().to_string();
    let o = run(&elsewhere, &["train", "--resume", "--out", &run_dir, "--steps", "30"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).starts_with(&format!("{data}: ")), "{}", text(&o.stdout));
    assert!(!elsewhere.join("data").exists(), "it looked for data/names.txt");
    assert_eq!(summary(&d.join("run"))["steps"], 30);
    std::fs::remove_dir_all(d).unwrap();
}

/// `info` shows a vocabulary's invisible characters escaped, as `sample` does.
#[test]
fn info_escapes_invisible_characters() {
    let d = workdir();
    std::fs::write(d.join("zwj.txt"), "e\u{200d}mma\nava\n").unwrap();
    let o = run(&d, &["info", "--data", "zwj.txt"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("\\u{200d}") && !out.contains('\u{200d}'), "{out}");
    std::fs::remove_dir_all(d).unwrap();
}

/// Flags that would be ignored, or that contradict each other, are usage errors (exit 2) that
/// say so.
#[test]
fn ignored_or_contradictory_flags_are_usage_errors() {
    let d = workdir();
    let usage = |args: &[&str], says: &str| {
        let o = run(&d, args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err:?} should contain {says:?}");
    };
    for flag in [&["--steps", "10"][..], &["--lr", "0.1"], &["--eval-every", "5"], &["--optimizer", "sgd"]] {
        let args = [&["train", "--model", "bigram", "--data", "names.txt", "--out", "b"][..], flag].concat();
        usage(&args, &format!("--model bigram is counted, not trained: it takes no {}", flag[0]));
    }
    assert!(!d.join("b").exists());
    usage(
        &["train", "--model", "bigram", "--data", "names.txt", "--out", "b", "--batch-size", "8"],
        "it takes no --batch-size",
    );
    usage(
        &["train", "--model", "bigram-nn", "--data", "names.txt", "--out", "b", "--batch-size", "8"],
        "--model bigram-nn trains on the whole training set at each step: it takes no --batch-size",
    );
    assert!(!d.join("b").exists());
    // The prefix alone is longer than a name may be.
    let o = run(&d, &["train", "--model", "bigram", "--data", "names.txt", "--out", "b"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    usage(
        &["sample", "--checkpoint", "b/model.safetensors", "--prefix", "emma", "--max-len", "3"],
        "--prefix \"emma\" has 4 characters, more than --max-len 3",
    );
    // 0 is not a temperature, and the message says what is.
    for t in ["0", "-1"] {
        let args = ["sample", "--checkpoint", "b/model.safetensors", "--temperature", t];
        usage(&args, "must be a finite number > 0");
    }
    std::fs::remove_dir_all(d).unwrap();
}

/// makemore.py's kinds read a whole line at once, so their block size is the longest line + 1:
/// a line past the limit is one error that says which limit and what to do.
#[test]
fn a_line_too_long_for_a_whole_word_model_says_what_to_do() {
    let d = workdir();
    let long = "a".repeat(1500);
    std::fs::write(d.join("long.txt"), format!("emma\nolivia\n{long}\nava\nisabella\nmia\n")).unwrap();
    let out = run(&d, &["train", "--model", "bigram-makemore", "--data", "long.txt", "--out", "r"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("the longest line of long.txt has 1500 characters")
            && err.contains("up to 1023: shorten or drop the longer lines"),
        "{err}"
    );
}
