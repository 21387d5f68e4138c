//! Settings read from files get the ranges of their flags (issue #15, item 7): a run's
//! summary.json edited by hand, read by `train --resume`, and a `--spec FILE`. Out of range is a
//! one-line error naming the file and the setting (exit 1), never an abort on a huge allocation
//! nor a run trained on other settings than the file says; and the checkpoint `--resume` reads is
//! checked before it is read whole (item 8).

use std::path::Path;
use std::process::Output;
use std::time::Duration;

mod common;

use common::{makemore, workdir};

fn run_train(d: &Path, out: &str, args: &[&str]) -> Output {
    makemore()
        .arg("train")
        .args(args)
        .arg("--data")
        .arg(d.join("names.txt"))
        .arg("--out")
        .arg(d.join(out))
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap()
}

fn one_line_error(o: &Output, contains: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    for c in contains {
        assert!(err.contains(c), "{err:?} should contain {c:?}");
    }
}

#[test]
fn an_edited_summary_gets_the_flags_ranges_on_resume() {
    let d = workdir();
    let o = run_train(&d, "run", &["--steps", "20", "--eval-every", "10"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = d.join("run");
    let original = std::fs::read_to_string(run.join("summary.json")).unwrap();
    let checkpoint = std::fs::read(run.join("model.safetensors")).unwrap();
    let cases: [(&str, serde_json::Value, &str); 6] = [
        ("batch_size", 1_000_000_000_000u64.into(), "batch_size 1000000000000 is not in 1..=1000000"),
        ("block_size", 1_000_000.into(), "block_size 1000000 is not in 1..=1024"),
        ("n_embd", 100_000.into(), "n_embd 100000 is not in 1..=4096"),
        ("steps", 1_000_000_000_000u64.into(), "steps 1000000000000 is not in 1..=100000000"),
        ("lr", (-1.0).into(), "lr -1 is not a finite number >= 0"),
        ("beta2", 1.5.into(), "beta2 1.5 is not in [0, 1)"),
    ];
    for (key, value, says) in cases {
        let mut s: serde_json::Value = serde_json::from_str(&original).unwrap();
        s["config"][key] = value;
        std::fs::write(run.join("summary.json"), serde_json::to_string_pretty(&s).unwrap()).unwrap();
        // `steps` is the run's own; the others are resumed to more steps.
        let args: &[&str] = if key == "steps" { &["--resume"] } else { &["--resume", "--steps", "40"] };
        one_line_error(&run_train(&d, "run", args), &["summary.json", says, "--force"]);
        assert_eq!(std::fs::read(run.join("model.safetensors")).unwrap(), checkpoint, "{key}: changed");
    }
    // In range, but not the checkpoint's: the files are not of one save.
    let mut s: serde_json::Value = serde_json::from_str(&original).unwrap();
    s["config"]["n_embd"] = 20.into();
    std::fs::write(run.join("summary.json"), serde_json::to_string_pretty(&s).unwrap()).unwrap();
    one_line_error(
        &run_train(&d, "run", &["--resume", "--steps", "40"]),
        &["does not hold one save of a run", "other settings than summary.json's"],
    );
    // As it was, it resumes.
    std::fs::write(run.join("summary.json"), &original).unwrap();
    let o = run_train(&d, "run", &["--resume", "--steps", "40"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_spec_file_gets_the_flags_ranges() {
    let d = workdir();
    for (spec, says) in [
        (
            r#"{"kind": "mlp", "block_size": 3, "n_embd": 100000, "n_hidden": 1, "init": "lecture"}"#,
            "n_embd 100000",
        ),
        (r#"{"kind": "bigram-makemore", "block_size": 1000000}"#, "block_size 1000000"),
        (
            r#"{"kind": "bn-mlp", "block_size": 3, "n_embd": 10, "n_hidden": 20, "momentum": 1.5}"#,
            "momentum 1.5",
        ),
    ] {
        std::fs::write(d.join("spec.json"), spec).unwrap();
        let spec_path = d.join("spec.json").display().to_string();
        let o = run_train(&d, "spec-run", &["--spec", &spec_path, "--steps", "5"]);
        one_line_error(&o, &[&spec_path, says]);
        assert!(!d.join("spec-run").exists(), "{spec}: a directory was left");
    }
}

/// `--resume` reads the run's checkpoint through the loader's header check: a pipe in its place
/// is refused at once, not read (or waited on) for ever.
#[cfg(unix)]
#[test]
fn resume_checks_the_checkpoint_before_reading_it() {
    let d = workdir();
    let o = run_train(&d, "run", &["--steps", "20", "--eval-every", "10"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = d.join("run/model.safetensors");
    std::fs::remove_file(&model).unwrap();
    if !std::process::Command::new("mkfifo").arg(&model).status().is_ok_and(|s| s.success()) {
        return;
    }
    let o = run_train(&d, "run", &["--resume", "--steps", "40"]);
    one_line_error(&o, &["model.safetensors is not a regular file"]);
    std::fs::remove_dir_all(d).unwrap();
}
