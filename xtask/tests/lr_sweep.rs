//! `cargo xtask lr-sweep` on names.txt, as a user runs it: the files it writes, and a suggestion
//! inside the swept range.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn outdir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()))
}

/// Runs `xtask lr-sweep ARGS` in the workspace.
fn run(args: &[&str]) -> std::process::Output {
    let names = workspace().join("data/names.txt");
    assert!(names.is_file(), "{} is missing: run `cargo xtask download`", names.display());
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(workspace())
        .arg("lr-sweep")
        .args(args)
        .output()
        .unwrap()
}

/// Runs `xtask lr-sweep ARGS`, which must succeed, and returns its stdout.
fn lr_sweep(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The rate on the line `suggested learning rate: <lr> ...`.
fn suggested(stdout: &str) -> f32 {
    let line = stdout.lines().find(|l| l.starts_with("suggested learning rate: ")).expect(stdout);
    line["suggested learning rate: ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches(',')
        .parse()
        .unwrap()
}

#[test]
fn a_short_sweep_finds_the_minimum_and_suggests_half_a_decade_below_it() {
    let dir = outdir("sweep");
    let d = dir.to_str().unwrap();
    let stdout =
        lr_sweep(&["--points", "300", "--repeats", "2", "--min-exp", "-2.5", "--max-exp", "0", "--out", d]);
    let lr = suggested(&stdout);
    assert!(stdout.contains("half a decade below the minimum"), "the rule is named: {stdout}");

    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "exp,lr,loss_seed42,smoothed_seed42,loss_seed43,smoothed_seed43,mean_smoothed"
    );
    // (exp, mean smoothed loss) per rate, in increasing order of rate.
    let curve: Vec<(f32, f32)> = lines
        .map(|l| {
            let f: Vec<f32> = l.split(',').map(|v| v.parse().unwrap()).collect();
            (f[0], f[6])
        })
        .collect();
    assert_eq!(curve.len(), 300);
    // What a sweep that does not train, runs its rates backwards, or smooths wrongly would
    // break: the loss falls well below where it starts, to a minimum inside the range, and rises
    // (or diverges) after it; the suggestion is the stated rule applied to that minimum.
    let start = curve[0].1;
    let (i_min, &(exp_min, min)) = curve
        .iter()
        .enumerate()
        .filter(|(_, p)| p.1.is_finite())
        .min_by(|a, b| a.1.1.total_cmp(&b.1.1))
        .unwrap();
    assert!(min < 0.6 * start, "the loss falls: {start} -> {min}");
    assert!(i_min > 30 && i_min < 290, "the minimum (10^{exp_min}) is inside the range");
    let last = curve[299].1;
    assert!(!last.is_finite() || last > 1.03 * min, "the loss rises past the minimum: {min} -> {last}");
    let rule = 10f32.powf(exp_min - 0.5);
    assert!((lr / rule - 1.0).abs() < 1e-3, "suggested {lr}, half a decade below 10^{exp_min}: {rule}");

    let png = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(dir.join("sweep.png")).unwrap()));
    let info = png.read_info().unwrap();
    assert_eq!((info.info().width, info.info().height), (900, 560));
    let svg = std::fs::read_to_string(dir.join("sweep.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("suggested: lr"), "the SVG marks the suggestion");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_grid_reports_the_dev_loss_of_each_rate() {
    let dir = outdir("grid");
    let d = dir.to_str().unwrap();
    let stdout = lr_sweep(&["--grid", "--grid-steps", "300", "--grid-points", "3", "--out", d]);
    let csv = std::fs::read_to_string(dir.join("grid.csv")).unwrap();
    let rows: Vec<Vec<f32>> =
        csv.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    let rates: Vec<f32> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(rates, [0.001, 10f32.powf(-1.5), 1.0]);
    let best = rows.iter().min_by(|a, b| a[2].total_cmp(&b[2])).unwrap()[0];
    assert_eq!(suggested(&stdout), (best * 1e4).round() / 1e4);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_dataset_is_one_line_with_the_fix() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["lr-sweep", "--data", "/nonexistent/names.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains("cargo xtask download"), "{err}");
}

/// Runs `xtask lr-sweep ARGS` and returns its exit code and stderr.
fn lr_sweep_status(args: &[&str]) -> (Option<i32>, String) {
    let out = run(args);
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn any_kind_of_the_registry_is_swept_with_its_own_optimizer_and_settings() {
    // makemore.py's GRU with settings of its own: the spec the registry builds is the one swept,
    // trained by AdamW over whole words.
    let dir = outdir("gru");
    let d = dir.to_str().unwrap();
    let args = ["--model", "gru", "--n-embd", "8", "--set", "n_embd2=12", "--points", "40", "--repeats", "1"];
    let (code, err) = lr_sweep_status(&[&args[..], &["--out", d]].concat());
    assert_eq!(code, Some(0), "{err}");
    let spec = mm_models::Spec::Gru { block_size: 16, n_embd: 8, n_embd2: 12 };
    let params = spec.num_params(27);
    assert!(
        err.contains(&format!("lr-sweep: gru of {params} parameters (")) && err.contains("trained by AdamW"),
        "{err}"
    );
    assert!(err.contains("n_embd 8") && err.contains("n_embd2 12") && err.contains("block_size 16"), "{err}");
    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 41, "a header and one row per rate");
    std::fs::remove_dir_all(dir).unwrap();
    // The lectures' MLP keeps SGD.
    let (code, err) =
        lr_sweep_status(&["--points", "20", "--repeats", "1", "--out", outdir("mlp").to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("lr-sweep: mlp of 11897 parameters") && err.contains("trained by SGD"), "{err}");
    std::fs::remove_dir_all(outdir("mlp")).unwrap();
    // A setting the kind does not have, and the counting model, are one-line errors.
    let (code, err) = lr_sweep_status(&["--model", "bow", "--n-hidden", "10"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("the bow has no setting n_hidden; its settings: "), "{err}");
    let (code, err) = lr_sweep_status(&["--model", "bigram"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("counted, not trained"), "{err}");
    // A setting given twice, sizes past the flags' ranges, and a model too large to build.
    let (code, err) = lr_sweep_status(&["--model", "gru", "--n-embd", "8", "--set", "n_embd=16"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("n_embd is given twice"), "{err}");
    let (code, err) = lr_sweep_status(&["--model", "gru", "--set", "n_embd2=100000"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("n_embd2 100000 is not in 1..=65536"), "{err}");
    let (code, err) =
        lr_sweep_status(&["--model", "mlp", "--set", "n_hidden=65536", "--set", "block_size=1024"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("more than 250000000"), "{err}");
    // A block size set as text is the one swept (not the data's longest word + 1).
    let dir = outdir("gru-block");
    let args = ["--model", "gru", "--set", "block_size=20", "--points", "2", "--repeats", "1", "--out"];
    let (code, err) = lr_sweep_status(&[&args[..], &[dir.to_str().unwrap()]].concat());
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("block_size 20"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}
