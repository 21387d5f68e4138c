//! `makemore train --resume`: a run stopped (by `--steps` or by Ctrl-C) and resumed ends bit for
//! bit where one uninterrupted run ends, with the same log; what cannot be resumed says why.

use std::path::Path;
use std::process::Output;

mod common;

use common::{makemore, signal_once_training, workdir};
use mm_models::checkpoint::load;

/// `makemore train ARGS --data <d>/names.txt --out <d>/<out>`, run.
fn run_train(d: &Path, out: &str, args: &[&str]) -> Output {
    makemore()
        .arg("train")
        .args(args)
        .arg("--data")
        .arg(d.join("names.txt"))
        .arg("--out")
        .arg(d.join(out))
        .output()
        .unwrap()
}

/// The same, checked to succeed.
fn train(d: &Path, out: &str, args: &[&str]) -> Output {
    let o = run_train(d, out, args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// The parameters (and AdamW's moments) of a run's checkpoint, as raw bits, and its step.
fn checkpoint_bits(run: &Path) -> (Vec<u32>, u64, Option<Vec<u32>>) {
    let (model, meta) = load(&run.join("model.safetensors")).unwrap();
    let params = model.neural().expect("a neural model").params().clone();
    let bits = params.ids().flat_map(|id| params.data(id).iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    let adamw = meta.adamw.map(|s| s.m.iter().chain(&s.v).flatten().map(|x| x.to_bits()).collect());
    (bits.collect(), meta.step, adamw)
}

/// metrics.csv without its elapsed-time column.
fn log(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    text.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
}

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn thirty_then_resumed_to_sixty_equals_sixty_for_each_optimizer_and_model() {
    let d = workdir();
    for (name, flags) in [
        ("mlp-sgd", &["--model", "mlp", "--decay-step", "40"][..]),
        ("mlp-adamw", &["--model", "mlp", "--optimizer", "adamw", "--lr", "0.01", "--decay-step", "40"][..]),
        ("bigram-nn", &["--model", "bigram-nn"][..]),
    ] {
        let common = [flags, &["--eval-every", "10", "--seed", "5"]].concat();
        train(&d, &format!("{name}-whole"), &[&common[..], &["--steps", "60"]].concat());
        train(&d, &format!("{name}-part"), &[&common[..], &["--steps", "30"]].concat());
        let part = d.join(format!("{name}-part"));
        // The part run recorded 30 steps: --steps 60 raises them (the decay step stays 40).
        let o = train(&d, &format!("{name}-part"), &["--resume", "--steps", "60"]);
        assert!(String::from_utf8_lossy(&o.stdout).contains("resuming"), "{name}");

        let whole = d.join(format!("{name}-whole"));
        let (w, p) = (checkpoint_bits(&whole), checkpoint_bits(&part));
        assert!(w == p, "{name}: the checkpoints differ (step {} vs {})", w.1, p.1);
        assert_eq!(p.1, 60);
        assert_eq!(p.2.is_some(), name == "mlp-adamw", "{name}: AdamW's moments are saved");
        assert_eq!(log(&part), log(&whole), "{name}: the logs");
        assert_eq!(log(&part).len(), 61);
        let (sw, sp) = (summary(&whole), summary(&part));
        assert_eq!(sp["steps"], 60);
        assert_eq!(sp["loss"], sw["loss"], "{name}");
        assert_eq!(sp["best"]["dev_loss"], sw["best"]["dev_loss"], "{name}");
        assert_eq!(sp["samples"], sw["samples"], "{name}");
    }
}

fn fails(d: &Path, out: &str, args: &[&str], code: i32, contains: &str) {
    let o = run_train(d, out, args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(contains),
        "{args:?}: {err:?} should contain {contains:?}"
    );
    if code == 1 {
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn what_cannot_be_resumed_says_why() {
    let d = workdir();
    fails(&d, "none", &["--resume"], 1, "holds no run to resume");
    train(&d, "done", &["--steps", "20", "--eval-every", "10"]);
    let before = std::fs::read(d.join("done/model.safetensors")).unwrap();
    fails(&d, "done", &["--resume"], 1, "has done 20 of its 20 steps: pass --steps");
    fails(
        &d,
        "done",
        &["--resume", "--steps", "10"],
        1,
        "has done 20 steps already, and --steps 10 asks for no more",
    );
    // A cosine decay ended at rate 0: more steps would change nothing, and say so.
    let small = [
        "--model",
        "transformer",
        "--n-layer",
        "1",
        "--n-head",
        "2",
        "--n-embd",
        "8",
        "--steps",
        "20",
        "--eval-every",
        "10",
    ];
    train(&d, "cosine", &[&small[..], &["--lr-decay", "cosine"]].concat());
    fails(
        &d,
        "cosine",
        &["--resume", "--steps", "40"],
        1,
        "ended its learning-rate decay at step 20 with a rate of 0",
    );
    // One with a floor (--min-lr) continues at it.
    train(&d, "floor", &[&small[..], &["--lr-decay", "cosine", "--min-lr", "0.0001"]].concat());
    train(&d, "floor", &["--resume", "--steps", "30"]);
    // So does the lectures' step decay to a rate of 0.
    train(&d, "step", &["--steps", "20", "--decay-step", "10", "--lr-decayed", "0"]);
    fails(
        &d,
        "step",
        &["--resume", "--steps", "40"],
        1,
        "ended its learning-rate decay at step 10 with a rate of 0",
    );
    // Training flags come from the run: changing them is a usage error.
    fails(&d, "done", &["--resume", "--steps", "40", "--lr", "0.5"], 2, "--lr");
    fails(&d, "done", &["--resume", "--force"], 2, "--force");
    fails(
        &d,
        "done",
        &["--resume", "--steps", "40", "--model", "bigram-nn"],
        1,
        "holds a mlp run, not bigram-nn",
    );
    // Another dataset.
    std::fs::write(d.join("other.txt"), "anna\nbob\n").unwrap();
    let o = makemore()
        .args(["train", "--resume", "--steps", "40", "--data"])
        .arg(d.join("other.txt"))
        .arg("--out")
        .arg(d.join("done"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("is not the dataset the run was trained on"), "{err}");
    assert_eq!(std::fs::read(d.join("done/model.safetensors")).unwrap(), before, "nothing was changed");
    train(&d, "counts", &["--model", "bigram"]);
    fails(&d, "counts", &["--resume", "--steps", "40"], 1, "bigram counting model");
    // An existing run names the way out.
    fails(&d, "done", &[], 1, "pass --resume to continue it, --force to overwrite it");
}

/// Ctrl-C, then `--resume`: the run continues as if it had not been interrupted.
#[cfg(unix)]
#[test]
fn a_run_stopped_by_ctrl_c_resumes_where_it_stopped() {
    let d = workdir();
    let flags = ["--steps", "5000000", "--decay-step", "100", "--eval-every", "1000"];
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_makemore"))
        .arg("train")
        .args(flags)
        .arg("--data")
        .arg(d.join("names.txt"))
        .arg("--out")
        .arg(d.join("stopped"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    signal_once_training(&mut child, "-INT");
    let o = child.wait_with_output().unwrap();
    // Saved, but unfinished: 130, as a shell reports an interrupted command.
    assert_eq!(o.status.code(), Some(130), "{}", String::from_utf8_lossy(&o.stderr));
    let s = summary(&d.join("stopped"));
    assert_eq!(s["stopped"], true);
    let k = s["steps"].as_u64().unwrap();
    assert!(k > 0 && k < 5_000_000, "stopped at {k}");

    let total = (k + 150).to_string();
    train(&d, "stopped", &["--resume", "--steps", &total]);
    let whole_flags = ["--steps", &total, "--decay-step", "100", "--eval-every", "1000"];
    train(&d, "whole", &whole_flags);
    assert!(checkpoint_bits(&d.join("stopped")) == checkpoint_bits(&d.join("whole")), "stopped at {k}");
    assert_eq!(log(&d.join("stopped")), log(&d.join("whole")));

    // A run stopped after its decay reached a rate of 0 still resumes within its own steps: only
    // steps added past them are refused (what_cannot_be_resumed_says_why).
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_makemore"))
        .args(["train", "--steps", "5000000", "--decay-step", "10", "--lr-decayed", "0", "--data"])
        .arg(d.join("names.txt"))
        .arg("--out")
        .arg(d.join("zero"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    signal_once_training(&mut child, "-INT");
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(130));
    let k = summary(&d.join("zero"))["steps"].as_u64().unwrap();
    assert!(k > 10, "stopped at {k}, before the decay");
    train(&d, "zero", &["--resume", "--steps", &(k + 20).to_string()]);
}

/// Stopped off the evaluation grid (issue #18, item 5): a run finished at step 25 of a run
/// evaluating every 10, or killed after a periodic save at step 7, resumed to 60, has the log of
/// the run of 60 steps never interrupted (apart from times): no evaluation at step 25 or 7, which
/// that run never made; and the same weights.
#[test]
fn stopped_off_the_evaluation_grid_the_resumed_log_is_the_uninterrupted_one() {
    let d = workdir();
    for (name, flags) in [
        ("mlp", &["--model", "mlp", "--decay-step", "40"][..]),
        ("bigram-makemore", &["--model", "bigram-makemore", "--lr", "0.05"][..]),
    ] {
        let common = [flags, &["--eval-every", "10", "--seed", "9"]].concat();
        let whole = format!("{name}-whole");
        train(&d, &whole, &[&common[..], &["--steps", "60"]].concat());
        let whole = d.join(whole);
        // Finished at 25, then asked for more.
        let finished = format!("{name}-finished");
        train(&d, &finished, &[&common[..], &["--steps", "25"]].concat());
        let rows = log(&d.join(&finished));
        assert!(!rows[25].ends_with(','), "{name}: the run's last step is evaluated: {}", rows[25]);
        train(&d, &finished, &["--resume", "--steps", "60"]);
        // Killed after its first periodic save, at step 7.
        let killed = format!("{name}-killed");
        let o = makemore()
            .arg("train")
            .args([&common[..], &["--steps", "60", "--save-every", "7"]].concat())
            .arg("--data")
            .arg(d.join("names.txt"))
            .arg("--out")
            .arg(d.join(&killed))
            .env("MAKEMORE_CRASH_AT", "committed")
            .output()
            .unwrap();
        assert!(!o.status.success(), "{name}: the run was killed");
        assert_eq!(summary(&d.join(&killed))["steps"], 7, "{name}");
        train(&d, &killed, &["--resume", "--steps", "60"]);
        for run in [finished, killed] {
            let run = d.join(run);
            assert_eq!(log(&run), log(&whole), "{name}: {}", run.display());
            assert!(checkpoint_bits(&run) == checkpoint_bits(&whole), "{name}: {}", run.display());
            assert_eq!(summary(&run)["loss"], summary(&whole)["loss"], "{name}");
        }
    }
}

/// `--shards 2`: the run records its shards, and continued with another `--threads` (1, then 2)
/// it ends bit for bit where the uninterrupted run on 2 threads ends; `--resume` takes no
/// `--shards`, and the BatchNorm kinds refuse them by name.
#[test]
fn a_sharded_run_resumed_with_another_thread_count_is_bit_identical() {
    let d = workdir();
    // A small Transformer with training levers off their defaults (steps, batch size, learning
    // rate, dropout): its spec holds them, its checkpoint does not, and `--resume` takes the
    // run's (it once compared them with the checkpoint's defaults and refused).
    let flags: Vec<&str> =
        "--model transformer --n-layer 1 --n-head 2 --n-embd 8 --batch-size 9 --lr 0.002 --dropout 0.1 --shards 2 --eval-every 10 --seed 5"
            .split(' ')
            .collect();
    train(&d, "sharded-whole", &[&flags[..], &["--steps", "20", "--threads", "2"]].concat());
    let o = train(&d, "sharded-part", &[&flags[..], &["--steps", "10", "--threads", "1"]].concat());
    assert!(String::from_utf8_lossy(&o.stdout).contains("each step in 2 shards on 1 thread\n"));
    assert_eq!(summary(&d.join("sharded-part"))["config"]["shards"], 2);
    let o = train(&d, "sharded-part", &["--resume", "--steps", "20", "--threads", "2"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("each step in 2 shards on 2 threads"));
    let (whole, part) = (d.join("sharded-whole"), d.join("sharded-part"));
    assert!(checkpoint_bits(&whole) == checkpoint_bits(&part), "the checkpoints differ");
    assert_eq!(log(&part), log(&whole));
    let o = run_train(&d, "sharded-part", &["--resume", "--steps", "30", "--shards", "1"]);
    assert!(!o.status.success());
    let o = run_train(&d, "bn", &["--model", "bn-mlp", "--steps", "5", "--shards", "2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("bn-mlp normalises with its batch's statistics"), "{err}");
    // A spec file holds its shards (a tuned spec is reproduced at the shards it was tuned at):
    // the same run as the flags', to the bit, and `--shards` on the command line overrides it.
    let block_size = summary(&whole)["config"]["block_size"].clone();
    let spec = serde_json::json!({"kind": "transformer", "block_size": block_size, "n_layer": 1, "n_head": 2,
        "n_embd": 8, "dropout": 0.1, "batch_size": 9, "lr": 0.002, "steps": 20, "shards": 2});
    std::fs::write(d.join("spec.json"), spec.to_string()).unwrap();
    let spec_path = d.join("spec.json").display().to_string();
    let from_file = ["--spec", spec_path.as_str(), "--eval-every", "10", "--seed", "5"];
    let o = train(&d, "from-spec", &from_file);
    assert!(String::from_utf8_lossy(&o.stdout).contains("each step in 2 shards"));
    assert_eq!(summary(&d.join("from-spec"))["config"]["shards"], 2);
    assert!(checkpoint_bits(&d.join("from-spec")) == checkpoint_bits(&whole), "the spec's run differs");
    train(&d, "from-spec-1", &[&from_file[..], &["--shards", "1"]].concat());
    assert_eq!(summary(&d.join("from-spec-1"))["config"]["shards"], 1);
}
