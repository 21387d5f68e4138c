//! `makemore eval` and `makemore sample` with several `--checkpoint`s: an ensemble of two tiny
//! trained Transformers, whose loss is at most the mean of theirs on every split; bigram counts
//! and models that read differently are refused with a one-line error naming the checkpoints.

use std::path::{Path, PathBuf};

mod common;

use common::{makemore, workdir};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Trains a tiny model into `d/name` with `flags`, and returns its checkpoint.
fn train(d: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let out = d.join(name);
    let run = makemore()
        .arg("train")
        .args(flags)
        .arg("--data")
        .arg(d.join("names.txt"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{name}: {}", stderr(&run));
    out.join("model.safetensors")
}

/// `makemore eval` of `checkpoints`: each split's loss, in the order printed.
fn eval(d: &Path, checkpoints: &[&Path]) -> Vec<(String, f64)> {
    let mut cmd = makemore();
    cmd.arg("eval").arg("--data").arg(d.join("names.txt"));
    for c in checkpoints {
        cmd.arg("--checkpoint").arg(c);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f[1], "loss", "{l}");
            (f[0].to_string(), f[2].parse().unwrap())
        })
        .collect()
}

/// `makemore sample` of `checkpoints` with `flags`: its output.
fn sample(checkpoints: &[&Path], flags: &[&str]) -> std::process::Output {
    let mut cmd = makemore();
    cmd.arg("sample").args(flags);
    for c in checkpoints {
        cmd.arg("--checkpoint").arg(c);
    }
    cmd.output().unwrap()
}

const TINY: [&str; 10] =
    ["--model", "transformer", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--steps", "40"];

#[test]
fn two_checkpoints_evaluate_and_sample_as_an_ensemble() {
    let d = workdir();
    let a = train(&d, "a", &[&TINY[..], &["--seed", "1", "--lr", "0.01"]].concat());
    let b = train(&d, "b", &[&TINY[..], &["--seed", "2", "--lr", "0.01"]].concat());
    let (la, lb, both) = (eval(&d, &[&a]), eval(&d, &[&b]), eval(&d, &[&a, &b]));
    assert_eq!(both.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), ["train", "dev", "test"]);
    for ((x, y), (split, mix)) in la.iter().zip(&lb).zip(&both) {
        // Jensen: the mixture's loss is at most the mean of its members' (each printed to 4
        // decimals, so to 1e-4).
        assert!(*mix <= (x.1 + y.1) / 2.0 + 1e-4, "{split}: {mix} against {} and {}", x.1, y.1);
    }
    assert_ne!(both, la);

    let flags = ["-n", "30", "--seed", "7"];
    let s = sample(&[&a, &b], &flags);
    assert!(s.status.success(), "{}", stderr(&s));
    assert_eq!(String::from_utf8_lossy(&s.stdout).lines().count(), 30);
    assert_eq!(s.stdout, sample(&[&a, &b], &flags).stdout, "the same seed, the same names");
    let prefixed = sample(&[&a, &b], &["-n", "5", "--prefix", "em", "--top-k", "3"]);
    assert!(prefixed.status.success(), "{}", stderr(&prefixed));
    assert!(String::from_utf8_lossy(&prefixed.stdout).lines().all(|l| l.starts_with("em")));
    // An ensemble of one checkpoint is the checkpoint.
    assert_eq!(eval(&d, &[&a]), la);
}

#[test]
fn counts_and_models_that_read_differently_cannot_join_an_ensemble() {
    let d = workdir();
    let t = train(&d, "t", &TINY);
    let counts = train(&d, "counts", &["--model", "bigram"]);
    // The data's longest name + 1 is 10; this one reads 12.
    let longer = train(&d, "longer", &[&TINY[..], &["--block-size", "12"]].concat());
    let mlp = train(&d, "mlp", &["--model", "mlp", "--steps", "5", "--block-size", "10"]);
    let cases: [(&[&Path], &[&str]); 3] = [
        (&[&t, &counts], &["counts/model.safetensors holds bigram counts, which cannot join an ensemble"]),
        (
            &[&t, &t, &longer],
            &[
                "longer/model.safetensors (checkpoint 3) has block_size 12",
                "t/model.safetensors (checkpoint 1) has 10",
            ],
        ),
        (
            &[&t, &mlp],
            &["mlp/model.safetensors (checkpoint 2) has layout windows", "(checkpoint 1) has words"],
        ),
    ];
    for (checkpoints, says) in cases {
        let mut e = makemore();
        e.arg("eval").arg("--data").arg(d.join("names.txt"));
        for c in checkpoints {
            e.arg("--checkpoint").arg(c);
        }
        for out in [e.output().unwrap(), sample(checkpoints, &["-n", "3"])] {
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(err.starts_with("error: ") && err.lines().count() == 1, "{err}");
            for s in says {
                assert!(err.contains(s), "{err:?} should say {s:?}");
            }
            assert!(out.stdout.is_empty());
        }
    }
    // Alone, the counts sample and evaluate as before.
    assert!(sample(&[&counts], &["-n", "3"]).status.success());
}
