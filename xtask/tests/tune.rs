//! `cargo xtask tune` as a user runs it, on a tiny search (a 1-layer Transformer of width 8, a
//! few steps per trial, on names.txt): the CSV of trials and rungs, the promotion of the best
//! by dev loss, best.json that `makemore train --spec` reads, the picture, and a rerun after a
//! stop that trains only what is missing and gets the same numbers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tune(dir: &Path, extra: &[&str]) -> Output {
    let tiny = ["--trials", "4", "--min-steps", "5", "--eta", "2", "--rungs", "2", "--jobs", "2"];
    search(dir, &[&tiny[..], extra].concat())
}

/// `cargo xtask tune ARGS` over `dir`'s base.json and space.json, into `dir`.
fn search(dir: &Path, extra: &[&str]) -> Output {
    let names = workspace().join("data/names.txt");
    assert!(names.is_file(), "{} is missing: run `cargo xtask download`", names.display());
    let (base, space) = (dir.join("base.json"), dir.join("space.json"));
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(workspace())
        .arg("tune")
        .args(["--base", base.to_str().unwrap(), "--space", space.to_str().unwrap()])
        .args(["--out", dir.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}

/// (trial, rung, steps, dev loss, spec) of each row of trials.csv.
fn rows(dir: &Path) -> Vec<(usize, usize, usize, f64, String)> {
    let csv = std::fs::read_to_string(dir.join("trials.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("trial,rung,steps,seconds,train_loss,dev_loss,spec"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.splitn(7, ',').collect();
            let spec = f[6].trim_matches('"').replace("\"\"", "\"");
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap(), f[5].parse().unwrap(), spec)
        })
        .collect()
}

#[test]
fn a_tiny_search_promotes_the_best_writes_its_spec_and_resumes() {
    let dir = std::env::temp_dir().join(format!("xtask-tune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("base.json"),
        r#"{"kind": "transformer", "block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 8, "batch_size": 8}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("space.json"),
        r#"{"lr": {"log_uniform": [1e-3, 3e-2]}, "dropout": [0.0, 0.2], "tie_weights": [false, true]}"#,
    )
    .unwrap();
    let out = tune(&dir, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));

    let first = rows(&dir);
    assert_eq!(first.len(), 4 + 2, "{first:?}");
    let rung0: Vec<_> = first.iter().filter(|r| r.1 == 0).collect();
    let rung1: Vec<_> = first.iter().filter(|r| r.1 == 1).collect();
    assert!(rung0.iter().all(|r| r.2 == 5) && rung1.iter().all(|r| r.2 == 10));
    // Every trial is trained to the same horizon: the last rung's steps.
    assert!(first.iter().all(|r| r.4.contains("\"steps\":10")), "{first:?}");
    // The second rung holds the best half of the first, by dev loss.
    let mut by_dev: Vec<_> = rung0.iter().map(|r| (r.3, r.0)).collect();
    by_dev.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut want: Vec<usize> = by_dev[..2].iter().map(|p| p.1).collect();
    let mut got: Vec<usize> = rung1.iter().map(|r| r.0).collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want);
    // Training longer lowers a trial's dev loss at these rates.
    for r in &rung1 {
        let before = rung0.iter().find(|p| p.0 == r.0).unwrap();
        assert!(r.3 < before.3, "trial {}: {} then {}", r.0, before.3, r.3);
    }

    // best.json: the spec of the second rung's best, as `makemore train --spec` reads it.
    let best = rung1.iter().min_by(|a, b| a.3.total_cmp(&b.3)).unwrap();
    let text = std::fs::read_to_string(dir.join("best.json")).unwrap();
    let spec: mm_models::Spec = serde_json::from_str(&text).unwrap();
    assert_eq!(spec, serde_json::from_str::<mm_models::Spec>(&best.4).unwrap());
    assert!(stdout.contains("makemore train --spec"), "{stdout}");
    let png = std::fs::read(dir.join("tune.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // A stop before the last trial finished: the rerun trains that one again (from scratch: its
    // checkpoint is past the first rung) and gets the numbers of the uninterrupted run.
    let csv = std::fs::read_to_string(dir.join("trials.csv")).unwrap();
    let kept: Vec<&str> = csv.lines().collect();
    std::fs::write(dir.join("trials.csv"), format!("{}\n", kept[..kept.len() - 1].join("\n"))).unwrap();
    let again = tune(&dir, &[]);
    let stdout = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(stdout.contains("continuing from 5 finished trial rungs"), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("trial ")).count(), 1, "{stdout}");
    assert_eq!(rows(&dir), first);

    // Another search's settings are refused, not mixed into the file.
    let other = tune(&dir, &["--seed", "7"]);
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("other settings"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A search at one rung, as for levers that pay late (dropout): trial 0 is the base itself
/// (`--include-base`), every trial keeps its dev curve (`--eval-every`) in curves.csv, and the
/// trials' specs and best.json hold the search's `--shards`, so that `makemore train --spec`
/// repeats the best trial's rounding.
#[test]
fn one_rung_with_the_base_keeps_curves_and_shards() {
    let dir = std::env::temp_dir().join(format!("xtask-tune-one-rung-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base = r#"{"kind": "transformer", "block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 8, "batch_size": 8, "lr": 0.01}"#;
    std::fs::write(dir.join("base.json"), base).unwrap();
    std::fs::write(dir.join("space.json"), r#"{"lr": {"log_uniform": [1e-3, 3e-2]}, "dropout": [0.0, 0.2]}"#)
        .unwrap();
    let flags = ["--rungs", "1", "--trials", "3", "--min-steps", "6", "--include-base", "--eval-every", "2"];
    let out = search(&dir, &[&flags[..], &["--shards", "2", "--threads", "2", "--jobs", "2"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let found = rows(&dir);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found.iter().all(|r| r.1 == 0 && r.2 == 6));
    let trial0 = found.iter().find(|r| r.0 == 0).unwrap();
    let mut want: serde_json::Value = serde_json::from_str(base).unwrap();
    want["steps"] = 6.into();
    want["shards"] = 2.into();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&trial0.4).unwrap(), want);
    assert!(found.iter().all(|r| r.4.contains("\"shards\":2")), "{found:?}");
    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("best.json")).unwrap()).unwrap();
    assert_eq!(best["shards"], 2);

    // Each trial's curve: the dev loss after steps 2 and 4 (the end of the rung is its row).
    let curves = std::fs::read_to_string(dir.join("curves.csv")).unwrap();
    let mut lines = curves.lines();
    assert_eq!(lines.next(), Some("trial,steps,seconds,dev_loss"));
    let mut points: Vec<(usize, usize, f64)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[3].parse().unwrap())
        })
        .collect();
    points.sort_by_key(|p| (p.0, p.1));
    assert_eq!(
        points.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>(),
        [(0, 2), (0, 4), (1, 2), (1, 4), (2, 2), (2, 4)]
    );
    assert!(points.iter().all(|p| p.2.is_finite() && p.2 > 1.0 && p.2 < 4.0), "{points:?}");

    // The same search without the curves and on one thread: the same trials, the same dev
    // losses to the bit (the evaluations and the threads do not change the training).
    let plain = dir.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    for f in ["base.json", "space.json"] {
        std::fs::copy(dir.join(f), plain.join(f)).unwrap();
    }
    let out = search(
        &plain,
        &["--rungs", "1", "--trials", "3", "--min-steps", "6", "--include-base", "--shards", "2"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dev = |rows: Vec<(usize, usize, usize, f64, String)>| {
        rows.into_iter().map(|r| (r.0, r.3, r.4)).collect::<Vec<_>>()
    };
    let (mut a, mut b) = (dev(found), dev(rows(&plain)));
    a.sort_by_key(|r| r.0);
    b.sort_by_key(|r| r.0);
    assert_eq!(a, b);
    std::fs::remove_dir_all(&dir).unwrap();
}
