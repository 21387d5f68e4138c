//! The run directory survives anything (issue #15, "Data loss"): a crash at any instant of a save
//! leaves the old run or the new one, never a mixture; `--resume` never silently restarts the
//! metrics; one `train` at a time per directory; SIGTERM saves as Ctrl-C does, and periodic
//! checkpoints bound what SIGKILL loses; an unwritable `--out` is found before training; and
//! `--force` leaves nothing of the old run behind.

#![cfg(unix)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

#[allow(dead_code)]
mod common;

use common::{Training, signal_once_training, workdir};
use mm_models::checkpoint::load;

fn cmd(d: &Path, out: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_makemore"));
    c.arg("train").args(args).arg("--data").arg(d.join("names.txt")).arg("--out").arg(d.join(out));
    c
}

fn run(d: &Path, out: &str, args: &[&str]) -> Output {
    cmd(d, out, args).output().unwrap()
}

fn train(d: &Path, out: &str, args: &[&str]) -> Output {
    let o = run(d, out, args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

fn spawn(d: &Path, out: &str, args: &[&str]) -> Child {
    cmd(d, out, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn signal(child: &Child, sig: &str) {
    Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
}

/// Checks `o` failed with exit code `code` and one line `error: ...` containing `contains`.
fn one_line_error(o: &Output, code: i32, contains: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert!(err.starts_with("error: ") && err.contains(contains), "{err:?} should contain {contains:?}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The parameters and AdamW moments of a checkpoint, as bits, and its step.
fn bits(path: &Path) -> (Vec<u32>, u64, Option<Vec<u32>>) {
    let (model, meta) = load(path).unwrap();
    let params = model.neural().expect("a neural model").params().clone();
    let b = params.ids().flat_map(|id| params.data(id).iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    let adamw = meta.adamw.map(|s| s.m.iter().chain(&s.v).flatten().map(|x| x.to_bits()).collect());
    (b.collect(), meta.step, adamw)
}

/// metrics.csv without its elapsed-time column.
fn log(run: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    text.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
}

fn summary(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

/// The run's files agree: the checkpoint is at the summary's step, metrics.csv has a row for
/// every step up to it, and best.safetensors is the summary's best.
/// Checked as `train` sees the directory: after opening it, which finishes a save killed between
/// its commit record and its last rename.
fn consistent(run: &Path) -> u64 {
    drop(mm_cli::run_dir::RunDir::open(run).unwrap());
    let s = summary(run);
    let step = s["steps"].as_u64().unwrap();
    assert_eq!(bits(&run.join("model.safetensors")).1, step, "{}", run.display());
    assert_eq!(log(run).len() as u64, step + 1, "{}", run.display());
    if let Some(b) = s["best"]["step"].as_u64() {
        assert_eq!(bits(&run.join("best.safetensors")).1, b);
    }
    step
}

// The decay step is given: by default it is half of --steps, which differ between the runs.
const FLAGS: [&str; 8] = ["--optimizer", "adamw", "--lr", "0.01", "--eval-every", "10", "--decay-step", "45"];

/// The best of a run's summary: its step and dev loss.
fn best(run: &Path) -> (serde_json::Value, serde_json::Value) {
    let s = summary(run);
    (s["best"]["step"].clone(), s["best"]["dev_loss"].clone())
}

/// A save killed at each of its points (after the new files are written, after the commit record,
/// after each rename) leaves the old run or the new one, which `--resume` continues to the same
/// bits as a run never interrupted.
#[test]
fn a_save_killed_at_any_point_leaves_the_old_run_or_the_new_one() {
    let d = workdir();
    train(&d, "whole", &[&FLAGS[..], &["--steps", "60"]].concat());
    let points = [
        "staged",
        "journal",
        "renamed metrics.csv",
        "renamed best.safetensors",
        "renamed model.safetensors",
        "renamed loss.png",
        "renamed summary.json",
        "committed",
    ];
    for point in points {
        let out = format!("crash-{}", point.replace(' ', "-"));
        train(&d, &out, &[&FLAGS[..], &["--steps", "20"]].concat());
        // Resumed to 40: the save at step 30 is killed at `point`.
        let o =
            cmd(&d, &out, &["--resume", "--steps", "40"]).env("MAKEMORE_CRASH_AT", point).output().unwrap();
        assert!(!o.status.success(), "{point}: the run was killed");
        let run = d.join(&out);
        let step = consistent(&run);
        // The run before, or of the save killed: the periodic one at 30, or (for loss.png, drawn
        // only at the end) the last one at 40.
        assert!([20, 30, 40].contains(&step), "{point}: step {step}");
        train(&d, &out, &["--resume", "--steps", "60"]);
        assert!(bits(&run.join("model.safetensors")) == bits(&d.join("whole/model.safetensors")), "{point}");
        assert_eq!(log(&run), log(&d.join("whole")), "{point}");
        assert_eq!(best(&run), best(&d.join("whole")), "{point}");
        // No temporaries are left.
        for e in std::fs::read_dir(&run).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(!name.contains("tmp") && !name.starts_with(".new"), "{point}: {name} left behind");
        }
    }
}

/// A metrics.csv cut short (as an in-place rewrite killed mid-way left it) is refused by
/// `--resume`, not silently restarted.
#[test]
fn resume_refuses_a_cut_metrics_log_rather_than_restart_it() {
    let d = workdir();
    train(&d, "cut", &["--steps", "20", "--eval-every", "10"]);
    let run = d.join("cut");
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    std::fs::write(run.join("metrics.csv"), &text[..text.len() / 2]).unwrap();
    one_line_error(&run_resume(&d, "cut"), 1, "metrics.csv");
    std::fs::write(run.join("metrics.csv"), "").unwrap();
    one_line_error(&run_resume(&d, "cut"), 1, "metrics.csv");
    std::fs::remove_file(run.join("metrics.csv")).unwrap();
    one_line_error(&run_resume(&d, "cut"), 1, "metrics.csv");
    // A checkpoint from another point of the run than the summary's.
    std::fs::write(run.join("metrics.csv"), &text).unwrap();
    train(&d, "later", &["--steps", "30", "--eval-every", "10"]);
    std::fs::copy(d.join("later/model.safetensors"), run.join("model.safetensors")).unwrap();
    one_line_error(&run_resume(&d, "cut"), 1, "model.safetensors");
}

fn run_resume(d: &Path, out: &str) -> Output {
    run(d, out, &["--resume", "--steps", "40"])
}

/// A second `train` into a directory in use fails at once, naming it; the first is unharmed.
#[test]
fn a_second_train_into_the_same_directory_is_refused() {
    let d = workdir();
    let mut first = spawn(&d, "busy", &["--steps", "100000000", "--eval-every", "0"]);
    let training = Training::wait(&mut first);
    let o = run(&d, "busy", &["--force", "--steps", "10"]);
    let second = o.clone();
    training.signal(&first, "-INT");
    let first = first.wait_with_output().unwrap();
    // Stopped and saved: 130.
    assert_eq!(first.status.code(), Some(130), "{}", String::from_utf8_lossy(&first.stderr));
    one_line_error(&second, 1, "is in use by another");
    assert!(String::from_utf8_lossy(&second.stderr).contains(&d.join("busy").display().to_string()));
    consistent(&d.join("busy"));
    // Once the first has finished, the directory is free again.
    train(
        &d,
        "busy",
        &["--resume", "--steps", &(summary(&d.join("busy"))["steps"].as_u64().unwrap() + 10).to_string()],
    );
}

/// SIGTERM (a scheduler, `timeout`, a container stop) saves the run as Ctrl-C does.
#[test]
fn sigterm_saves_the_run_as_ctrl_c_does() {
    let d = workdir();
    let mut child = spawn(&d, "term", &["--steps", "100000000", "--eval-every", "0"]);
    signal_once_training(&mut child, "-TERM");
    let o = child.wait_with_output().unwrap();
    // Saved, but unfinished: 130, as a shell reports an interrupted command.
    assert_eq!(o.status.code(), Some(130), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(summary(&d.join("term"))["stopped"], true);
    assert!(consistent(&d.join("term")) > 0);
}

/// SIGKILL loses at most the steps since the last periodic checkpoint (`--save-every`, by default
/// each evaluation), and `--resume` continues from it bit for bit.
#[test]
fn sigkill_loses_at_most_one_interval_and_resume_continues_bit_for_bit() {
    let d = workdir();
    let flags = ["--decay-step", "100", "--eval-every", "1000"];
    let child = spawn(&d, "killed", &[&flags[..], &["--steps", "100000000", "--save-every", "500"]].concat());
    let run = d.join("killed");
    // Killed once a periodic save is on disk (polled: a fixed sleep races with a slow start on a
    // loaded machine).
    let saved = || std::fs::read(run.join("summary.json")).is_ok_and(|s| !s.is_empty());
    let start = std::time::Instant::now();
    while !saved() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, "-KILL");
    child.wait_with_output().unwrap();
    let k = consistent(&run);
    assert!(k > 0 && k.is_multiple_of(500), "saved at {k}");
    let total = (k + 1250).to_string();
    train(&d, "killed", &["--resume", "--steps", &total]);
    train(&d, "whole", &[&flags[..], &["--steps", &total]].concat());
    assert!(bits(&run.join("model.safetensors")) == bits(&d.join("whole/model.safetensors")), "from {k}");
    assert_eq!(log(&run), log(&d.join("whole")));
    assert_eq!(best(&run), best(&d.join("whole")));
}

/// An unwritable `--out` is an error before training, not after it.
#[test]
fn an_unwritable_out_is_found_before_training() {
    let d = workdir();
    std::fs::write(d.join("file"), "x").unwrap();
    for out in [d.join("file"), d.join("file/run"), "/proc".into(), "/proc/version/run".into()] {
        let o = Command::new(env!("CARGO_BIN_EXE_makemore"))
            .args(["train", "--steps", "5000000"])
            .arg("--data")
            .arg(d.join("names.txt"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        one_line_error(&o, 1, &out.display().to_string());
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("train loss"),
            "{}: trained first",
            out.display()
        );
    }
}

/// `--force` with another kind of model leaves none of the old run's files.
#[test]
fn force_leaves_nothing_of_the_old_run() {
    let d = workdir();
    train(&d, "one", &["--steps", "20", "--eval-every", "10"]);
    let run = d.join("one");
    assert!(run.join("best.safetensors").is_file() && run.join("loss.png").is_file());
    train(&d, "one", &["--force", "--model", "bigram"]);
    for f in ["best.safetensors", "loss.png"] {
        assert!(!run.join(f).exists(), "{f} of the mlp run is left beside the bigram run");
    }
    assert_eq!(summary(&run)["model"], "bigram");
    assert!(summary(&run)["best"].is_null());
}

/// A full disk (an injected ENOSPC, on each file of a save) fails `train` with a one-line error
/// (exit 1) and leaves the previous save whole, with no staged file; `--resume` then continues
/// it to the bits and log of a run that never failed. A new run that cannot save its first
/// checkpoint leaves no directory.
#[test]
fn a_full_disk_during_a_save_leaves_the_previous_save_whole() {
    let d = workdir();
    train(&d, "whole", &[&FLAGS[..], &["--steps", "60"]].concat());
    for file in ["metrics.csv", "best.safetensors", "model.safetensors", "summary.json"] {
        let out = format!("full-{file}");
        train(&d, &out, &[&FLAGS[..], &["--steps", "20"]].concat());
        let run = d.join(&out);
        let before: Vec<_> = ["metrics.csv", "model.safetensors", "summary.json"]
            .iter()
            .map(|f| std::fs::read(run.join(f)).unwrap())
            .collect();
        // The save at step 30 fails.
        let o =
            cmd(&d, &out, &["--resume", "--steps", "40"]).env("MAKEMORE_FAIL_WRITE", file).output().unwrap();
        one_line_error(&o, 1, "No space left on device");
        assert!(String::from_utf8_lossy(&o.stderr).contains(file), "{file}: the error names the file");
        assert_eq!(consistent(&run), 20, "{file}");
        let after: Vec<_> = ["metrics.csv", "model.safetensors", "summary.json"]
            .iter()
            .map(|f| std::fs::read(run.join(f)).unwrap())
            .collect();
        assert!(before == after, "{file}: the previous save changed");
        for e in std::fs::read_dir(&run).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(!name.contains("tmp") && !name.starts_with(".new"), "{file}: {name} left behind");
        }
        train(&d, &out, &["--resume", "--steps", "60"]);
        assert!(bits(&run.join("model.safetensors")) == bits(&d.join("whole/model.safetensors")), "{file}");
        assert_eq!(log(&run), log(&d.join("whole")), "{file}");
        assert_eq!(best(&run), best(&d.join("whole")), "{file}");
    }
    let o = cmd(&d, "fresh", &["--steps", "20"])
        .env("MAKEMORE_FAIL_WRITE", "model.safetensors")
        .output()
        .unwrap();
    one_line_error(&o, 1, "No space left on device");
    assert!(!d.join("fresh").exists(), "a run that saved nothing leaves no directory");
}
