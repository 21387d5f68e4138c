//! The run directory's typed files (issue #15): a run saved by the writer before them still
//! resumes bit for bit; a run finds its dataset from any working directory; a flag the model of a
//! `--spec FILE` does not take is a usage error.

use std::path::Path;
use std::process::Output;

mod common;

use common::{makemore, workdir};
use mm_models::checkpoint::load;

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn checkpoint_bits(run: &Path) -> Vec<u32> {
    let (model, _) = load(&run.join("model.safetensors")).unwrap();
    let params = model.neural().expect("a neural model").params().clone();
    params.ids().flat_map(|id| params.data(id).iter().map(|x| x.to_bits()).collect::<Vec<_>>()).collect()
}

/// metrics.csv without its elapsed-time column.
fn log(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    text.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
}

/// `fixtures/before-typed/KIND` are runs of 50 steps (seed 42, evaluated every 10) on the tests'
/// ten names, saved at 13:03 UTC on 2026-11-30 by the writer before the typed files (summary.json
/// built with `serde_json::json!`: keys sorted, f32 settings widened to f64, and without the
/// settings added since, such as `dropout`), one with SGD and one with AdamW's moments. Resumed
/// to 60 steps by this version, each ends where an uninterrupted run of 60 steps ends.
#[test]
fn runs_saved_before_the_typed_files_resume_bit_for_bit() {
    let d = workdir();
    for kind in ["bigram-nn", "bigram-makemore"] {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/before-typed").join(kind);
        let run = d.join(format!("{kind}-old"));
        std::fs::create_dir_all(&run).unwrap();
        for name in ["summary.json", "metrics.csv", "model.safetensors", "best.safetensors"] {
            std::fs::copy(fixture.join(name), run.join(name)).unwrap();
        }
        let old_log = log(&run);
        // Its recorded dataset is gone (a test's temporary directory): --data names it.
        let o = ok(makemore()
            .args(["train", "--resume", "--steps", "60", "--data"])
            .arg(d.join("names.txt"))
            .arg("--out")
            .arg(&run)
            .output()
            .unwrap());
        assert!(String::from_utf8_lossy(&o.stdout).contains("resuming"), "{kind}");
        let whole = d.join(format!("{kind}-whole"));
        ok(makemore()
            .args(["train", "--model", kind, "--steps", "60", "--eval-every", "10"])
            .arg("--data")
            .arg(d.join("names.txt"))
            .arg("--out")
            .arg(&whole)
            .output()
            .unwrap());
        assert!(checkpoint_bits(&run) == checkpoint_bits(&whole), "{kind}: the weights differ");
        assert_eq!(log(&run), log(&whole), "{kind}");
        // The old rows are read and written back as they were.
        assert_eq!(log(&run)[..old_log.len()], old_log[..], "{kind}");
        let summary = |run: &Path| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
        };
        let (r, w) = (summary(&run), summary(&whole));
        assert_eq!(r["steps"], 60);
        for key in ["loss", "best", "samples"] {
            let strip = |v: &serde_json::Value| {
                let mut v = v.clone();
                if let Some(b) = v.as_object_mut() {
                    b.remove("checkpoint");
                }
                v
            };
            assert_eq!(strip(&r[key]), strip(&w[key]), "{kind}: {key}");
        }
    }
    std::fs::remove_dir_all(d).unwrap();
}

/// A relative `--data` is recorded absolute: `--resume` from another working directory finds it.
#[test]
fn a_relative_data_path_resumes_from_another_directory() {
    let d = workdir();
    ok(makemore()
        .current_dir(&d)
        .args(["train", "--steps", "10", "--eval-every", "5", "--data", "names.txt", "--out", "run"])
        .output()
        .unwrap());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/summary.json")).unwrap()).unwrap();
    let recorded = Path::new(summary["dataset"]["path"].as_str().unwrap());
    assert!(recorded.is_absolute(), "{}", recorded.display());
    assert_eq!(std::fs::canonicalize(recorded).unwrap(), std::fs::canonicalize(d.join("names.txt")).unwrap());
    let elsewhere = d.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    ok(makemore()
        .current_dir(&elsewhere)
        .args(["train", "--resume", "--steps", "20", "--out"])
        .arg(d.join("run"))
        .output()
        .unwrap());
    // A recorded dataset that is gone says so, and how to go on.
    std::fs::rename(d.join("names.txt"), d.join("moved.txt")).unwrap();
    let o =
        makemore().args(["train", "--resume", "--steps", "30", "--out"]).arg(d.join("run")).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: the dataset the run in ") && err.contains("pass --data"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    std::fs::remove_dir_all(d).unwrap();
}

/// `--spec FILE` naming the counting model, with a training flag: a usage error (exit 2), as
/// `--model bigram --steps 5` is; a flag the spec's kind takes is not.
#[test]
fn a_flag_the_spec_files_model_does_not_take_is_a_usage_error() {
    let d = workdir();
    let spec = d.join("bigram.json");
    std::fs::write(&spec, r#"{"kind": "bigram"}"#).unwrap();
    for flags in [&["--steps", "5"][..], &["--lr", "0.1"], &["--eval-every", "3"]] {
        let o = makemore()
            .arg("train")
            .args(flags)
            .arg("--spec")
            .arg(&spec)
            .arg("--data")
            .arg(d.join("names.txt"))
            .arg("--out")
            .arg(d.join("run"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.starts_with("error: ") && err.contains(&format!("no {}", flags[0])), "{err}");
        assert!(!d.join("run").exists(), "a usage error touches nothing");
    }
    std::fs::remove_dir_all(d).unwrap();
}

/// A finished run resumed for more steps keeps the evaluation of its old last step as a candidate
/// for the best (docs/cli.md says why): when that evaluation was the best, the resumed run's
/// best stays there, with best.safetensors, while metrics.csv drops it to stay the log of the
/// uninterrupted run, whose best is another step.
#[test]
fn a_resumed_finished_run_keeps_its_last_evaluation_as_a_candidate_for_best() {
    let d = workdir();
    let summary = |run: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
    };
    let train = |out: &Path, args: &[&str]| {
        ok(makemore()
            .arg("train")
            .args(args)
            .arg("--data")
            .arg(d.join("names.txt"))
            .arg("--out")
            .arg(out)
            .output()
            .unwrap())
    };
    // A seed whose run of 25 steps (evaluated every 10 and at its end) is best at step 25: 11
    // and 24 on the machine this was written on; the others in case the arithmetic differs.
    let seeds = [11, 24].into_iter().chain(1..=40);
    let found = seeds.map(|s| s.to_string()).find(|seed| {
        let run = d.join(format!("finished-{seed}"));
        train(&run, &["--steps", "25", "--eval-every", "10", "--decay-step", "40", "--seed", seed]);
        summary(&run)["best"]["step"] == 25
    });
    let seed = found.expect("no seed of 42 has its best at the last step");
    let run = d.join(format!("finished-{seed}"));
    train(&run, &["--resume", "--steps", "60"]);
    let whole = d.join("whole");
    train(&whole, &["--steps", "60", "--eval-every", "10", "--decay-step", "40", "--seed", &seed]);
    let (r, w) = (summary(&run), summary(&whole));
    assert_eq!(r["best"]["step"], 25, "seed {seed}");
    assert_ne!(w["best"]["step"], 25, "seed {seed}");
    assert_eq!(load(&run.join("best.safetensors")).unwrap().1.step, 25);
    assert_eq!(log(&run), log(&whole), "seed {seed}: metrics.csv is the uninterrupted run's");
    assert_eq!(r["loss"], w["loss"], "seed {seed}: the final losses are the same");
    std::fs::remove_dir_all(d).unwrap();
}
