//! Issue #15, "Hangs, aborts, unbounded memory" and "Honest results": runs that diverge, plots
//! of NaN, zero and negative data, datasets and checkpoints that are devices or pipes, a dataset
//! read from stdin, byte-order marks and invisible characters, and plots that fail. Each test
//! fails on the code before its fix (a hang is a timeout here).

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::{makemore, workdir};

/// Long enough for a debug build on a busy machine; a plot that spins never ends.
const PATIENCE: Duration = Duration::from_secs(120);

/// A work directory with `names.txt`: the first 200 names of the dataset.
fn names_dir() -> PathBuf {
    let d = workdir();
    let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/names.txt");
    let text = std::fs::read_to_string(&all).expect("data/names.txt (cargo xtask download)");
    let head: Vec<&str> = text.lines().take(200).collect();
    std::fs::write(d.join("names.txt"), head.join("\n")).unwrap();
    d
}

/// Runs makemore in `dir`: (exit code, stdout, stderr).
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = makemore().current_dir(dir).args(args).timeout(PATIENCE).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// The error of a failed command: one line, `error: ...`, without Rust's debug text.
fn one_line_error(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line: {stderr}");
    for debug in ["Os {", "kind:", "Error(", "IoError", "panicked"] {
        assert!(!lines[0].contains(debug), "Rust debug text in {:?}", lines[0]);
    }
    lines[0]
}

fn summary_steps(run_dir: &Path) -> u64 {
    let text = std::fs::read_to_string(run_dir.join("summary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["steps"].as_u64().unwrap()
}

/// A diverged run exits 1 with an error that says so, saves nothing of its NaN weights, and keeps
/// the last good save (loadable, finite, resumable).
#[test]
fn a_diverged_run_stops_with_an_error_and_keeps_its_last_save() {
    let d = names_dir();
    // Diverges at once: nothing saved, no directory left.
    let (code, _, err) = run(&d, &["train", "--data", "names.txt", "--out", "r1", "--weight-decay", "1e12"]);
    assert_eq!(code, 1, "{err}");
    assert!(one_line_error(&err).contains("diverged"), "{err}");
    assert!(!d.join("r1").exists(), "a run that saved nothing leaves no directory");

    // Diverges after some periodic saves (every 20 steps): the last of them stays.
    let args = ["--data", "names.txt", "--out", "r2", "--steps", "300", "--eval-every", "20"];
    let (code, _, err) = run(&d, &[&["train", "--weight-decay", "40"], &args[..]].concat());
    assert_eq!(code, 1, "{err}");
    let line = one_line_error(&err);
    assert!(line.contains("diverged") && line.contains("keeps the run's last save"), "{line}");
    let steps = summary_steps(&d.join("r2"));
    assert!(steps > 0 && steps < 300 && steps.is_multiple_of(20), "the last save is at step {steps}");
    assert!(line.contains(&format!("at step {steps}")), "{line}");
    // Its weights are finite: the loader (which refuses NaN) takes it, and eval prints numbers.
    let (code, out, err) =
        run(&d, &["eval", "--checkpoint", "r2/model.safetensors", "--data", "names.txt", "--split", "dev"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("NaN"), "{out}");
    std::fs::remove_dir_all(d).unwrap();
}

fn write_metrics(run_dir: &Path, rows: &[(&str, &str)]) {
    std::fs::create_dir_all(run_dir).unwrap();
    let mut csv = String::from("step,lr,train_loss,dev_loss,elapsed_s\n");
    for (i, (train, dev)) in rows.iter().enumerate() {
        csv += &format!("{},0.1,{train},{dev},{}.0\n", i + 1, i);
    }
    std::fs::write(run_dir.join("metrics.csv"), csv).unwrap();
}

/// `plot loss` ends on any series: NaN, infinite, all zero, negative, mixed.
#[test]
fn the_loss_plot_ends_on_nan_zero_and_negative_losses() {
    let d = workdir();
    let cases: [(&str, Vec<(&str, &str)>); 5] = [
        ("nan", vec![("NaN", ""), ("NaN", "NaN"), ("NaN", "")]),
        ("inf", vec![("2.5", ""), ("inf", "inf"), ("-inf", "")]),
        ("zero", vec![("0", ""), ("0", "0"), ("0", "")]),
        ("negative", vec![("-1.5", ""), ("-2", "-3"), ("-0.5", "")]),
        ("mixed", vec![("3.2", ""), ("NaN", "2.9"), ("2.7", "NaN"), ("0", ""), ("2.5", "inf")]),
    ];
    for (name, rows) in cases {
        let run_dir = d.join(name);
        write_metrics(&run_dir, &rows);
        for ext in ["png", "svg"] {
            let out = format!("{name}.{ext}");
            let (code, _, err) = run(&d, &["plot", "loss", "--run", name, "--out", &out]);
            assert_eq!(code, 0, "{name}.{ext}: {err}");
            assert!(std::fs::metadata(d.join(&out)).unwrap().len() > 0, "{out}");
        }
    }
    std::fs::remove_dir_all(d).unwrap();
}

fn write_sweep(path: &Path, losses: &[&str]) {
    let mut csv = String::from("exp,lr,loss_seed42,smoothed_seed42,mean_smoothed\n");
    for (i, l) in losses.iter().enumerate() {
        let exp = -3.0 + i as f32;
        csv += &format!("{exp},{},{l},{l},{l}\n", 10f32.powf(exp));
    }
    std::fs::write(path, csv).unwrap();
}

/// The files of `dir` whose names start with '.' (temporaries).
fn hidden(dir: &Path) -> Vec<String> {
    let names = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap());
    names.filter(|n| n.starts_with('.')).collect()
}

/// A plot that fails leaves no file (neither a blank PNG nor an empty SVG, nor a temporary), its
/// error is one line without Rust's debug text, and an output that is neither .png nor .svg is a
/// usage error (exit 2).
#[test]
fn a_failed_plot_leaves_no_file_and_says_why() {
    let d = names_dir();
    write_sweep(&d.join("sweep.csv"), &["NaN", "NaN", "inf"]);
    for out in ["sweep.png", "sweep.svg"] {
        let (code, _, err) = run(&d, &["plot", "lr-sweep", "sweep.csv", "--out", out]);
        assert_eq!(code, 1, "{err}");
        one_line_error(&err);
        assert!(!d.join(out).exists(), "a failed plot left {out}");
    }
    assert!(hidden(&d).is_empty(), "temporaries left: {:?}", hidden(&d));

    // A directory that does not exist: the system's message, on one line.
    let (code, _, err) = run(&d, &["plot", "bigram", "--data", "names.txt", "--out", "missing/bigram.png"]);
    assert_eq!(code, 1, "{err}");
    let line = one_line_error(&err);
    assert!(line.contains("missing/bigram.png") && line.contains("No such file or directory"), "{line}");

    for out in ["bigram.jpg", "bigram"] {
        let (code, _, err) = run(&d, &["plot", "bigram", "--data", "names.txt", "--out", out]);
        assert_eq!(code, 2, "{out}: {err}");
        assert!(err.contains(".png or .svg"), "{err}");
        assert!(!d.join(out).exists());
    }
    std::fs::remove_dir_all(d).unwrap();
}

/// `--data /dev/stdin` is read once: the run records the sha256 of what it trained on, and
/// `--resume` with the same data as a file continues it.
#[test]
fn a_dataset_from_stdin_is_read_once_and_hashed() {
    let d = names_dir();
    let bytes = std::fs::read(d.join("names.txt")).unwrap();
    let args = ["train", "--data", "/dev/stdin", "--out", "run", "--steps", "20", "--eval-every", "10"];
    let out = makemore().current_dir(&d).args(args).write_stdin(bytes).timeout(PATIENCE).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/summary.json")).unwrap()).unwrap();
    let sha = mm_data::download::sha256_file(&d.join("names.txt")).unwrap();
    assert_eq!(summary["dataset"]["sha256"], sha.as_str());
    assert_eq!(summary["dataset"]["items"], 200);
    let (code, _, err) =
        run(&d, &["train", "--resume", "--out", "run", "--steps", "30", "--data", "names.txt"]);
    assert_eq!(code, 0, "{err}");
    std::fs::remove_dir_all(d).unwrap();
}

/// A device as the dataset or the checkpoint is an error past a stated limit, or at once, not
/// memory exhausted.
#[test]
fn devices_as_data_or_checkpoint_are_refused() {
    let d = workdir();
    for dev in ["/dev/zero", "/dev/urandom"] {
        if !Path::new(dev).exists() {
            continue;
        }
        let (code, _, err) = run(&d, &["info", "--data", dev]);
        assert_eq!(code, 1, "{dev}: {err}");
        let line = one_line_error(&err);
        // /dev/zero is all NULs: past the limit; /dev/urandom may fail earlier on invalid UTF-8.
        assert!(line.contains(dev), "{line}");
        if dev == "/dev/zero" {
            assert!(line.contains("256 MiB") && line.contains("not a regular file"), "{line}");
        }
        for cmd in
            [&["sample", "--checkpoint", dev][..], &["eval", "--checkpoint", dev, "--data", "names.txt"]]
        {
            let (code, _, err) = run(&d, cmd);
            assert_eq!(code, 1, "{cmd:?}: {err}");
            assert!(one_line_error(&err).contains("not a regular file"), "{err}");
        }
    }
    // A file whose header claims more than it holds is refused before the rest is read.
    std::fs::write(d.join("huge.safetensors"), u64::MAX.to_le_bytes()).unwrap();
    let (code, _, err) = run(&d, &["sample", "--checkpoint", "huge.safetensors"]);
    assert_eq!(code, 1, "{err}");
    assert!(one_line_error(&err).contains("not a valid checkpoint"), "{err}");
    std::fs::remove_dir_all(d).unwrap();
}

/// A leading byte-order mark is not a token; an ESC or a line separator is an error naming its
/// line; an invisible character is a token, shown escaped in samples and named on stderr.
#[test]
fn byte_order_marks_control_and_invisible_characters() {
    let d = workdir();
    let names = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia"];
    std::fs::write(d.join("bom.txt"), format!("\u{feff}{}", names.join("\n"))).unwrap();
    let (code, out, err) = run(&d, &["info", "--data", "bom.txt"]);
    assert_eq!(code, 0, "{err}");
    let plain = names.join("");
    let mut chars: Vec<char> = plain.chars().collect();
    chars.sort();
    chars.dedup();
    assert!(out.contains(&format!("vocabulary   {} tokens", chars.len() + 1)), "{out}");
    assert!(!out.contains('\u{feff}'), "{out}");

    for (bad, code_point) in [("a\u{1b}[31mb", "U+001B"), ("a\u{2028}b", "U+2028"), ("a\u{202e}b", "U+202E")]
    {
        std::fs::write(d.join("bad.txt"), format!("emma\nava\n{bad}\n")).unwrap();
        let (code, _, err) = run(&d, &["info", "--data", "bad.txt"]);
        assert_eq!(code, 1, "{err}");
        let line = one_line_error(&err);
        assert!(line.contains("line 3") && line.contains(code_point), "{line}");
        assert!(!line.contains('\u{1b}') && !line.contains('\u{202e}'), "raw control character in {line:?}");
    }

    // Every name holds a zero-width joiner: the samples of a model trained on them hold it too.
    let zwj: Vec<String> = names.iter().map(|n| format!("{}\u{200d}{}", &n[..1], &n[1..])).collect();
    std::fs::write(d.join("zwj.txt"), zwj.join("\n")).unwrap();
    let (code, _, err) = run(&d, &["train", "--model", "bigram", "--data", "zwj.txt", "--out", "zwj"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("\\u{200d}"), "the invisible token is named: {err}");
    let (code, out, err) = run(&d, &["sample", "--checkpoint", "zwj/model.safetensors", "-n", "20"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\\u{200d}") && !out.contains('\u{200d}'), "{out}");
    std::fs::remove_dir_all(d).unwrap();
}
