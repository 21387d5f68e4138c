//! `cargo xtask bench` runs every workload and prints its table (the timings themselves are not
//! checked: they belong to the benchmark, not to a test).

use std::path::Path;
use std::process::Command;

#[test]
fn the_quick_bench_prints_every_workload() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert!(
        workspace.join("data/names.txt").is_file(),
        "data/names.txt is missing: run `cargo xtask download`"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(&workspace)
        .args(["bench", "--quick", "--no-scaling", "--no-torch", "--rounds", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for row in [
        "MLP training step (batch 32)",
        "loss over the train split (182,625)",
        "bigram counts of names.txt",
        "bigram net full-batch step (228,146)",
        "sample 10,000 names (trained MLP)",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row:?}:\n{stdout}"));
        // Our figure is a number with its unit; PyTorch's column says it was not compared.
        assert!(line.contains(" n/a "), "{line}");
        let figure: f64 = line[row.len()..].split_whitespace().next().unwrap().parse().unwrap();
        assert!(figure > 0.0 && figure.is_finite(), "{line}");
    }
}
