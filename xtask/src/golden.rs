//! `cargo xtask golden FILE...`: every case of every file through the engine, one line per
//! failing case and per skipped case, then `golden: N passed, M failed, K skipped`.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use mm_tensor::golden::{self, Case, Outcome};

/// Run golden files (format mm-golden/1: PyTorch forward values and gradients) through the
/// engine and report every case that fails.
///
/// Prints one line per failing case (its name, the worst element, got vs want) and per skipped
/// case (a whole model, which the model crate runs), then `golden: N passed, M failed, K
/// skipped`. Exits non-zero if any case fails, names an unknown op, or a file cannot be read.
#[derive(clap::Args)]
pub struct Args {
    /// Golden files to run, e.g. ../shared/golden/ops.json.
    #[arg(required = true)]
    files: Vec<PathBuf>,

    /// Precision to run the engine in; with `both` a case passes only if it passes in each.
    #[arg(long, value_enum, default_value_t = Precision::Both)]
    precision: Precision,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Precision {
    F32,
    F64,
    Both,
}

/// Runs the files; `Ok(true)` when every case passed.
pub fn run(args: &Args) -> anyhow::Result<bool> {
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for path in &args.files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file = golden::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for case in &file.cases {
            if let Some(why) = golden::skip_reason(case) {
                skipped += 1;
                println!("skip {}: {why}", case.name);
                continue;
            }
            let lines = check(case, args.precision);
            if lines.is_empty() {
                passed += 1;
            } else {
                failed += 1;
                lines.iter().for_each(|l| println!("{l}"));
            }
        }
    }
    println!("golden: {passed} passed, {failed} failed, {skipped} skipped");
    Ok(failed == 0)
}

/// A precision's name and the harness run in it.
type Run = (&'static str, fn(&Case) -> Outcome);

/// The failure lines of one case (none when it passes).
fn check(case: &Case, precision: Precision) -> Vec<String> {
    let runs: &[Run] = match precision {
        Precision::F32 => &[("f32", golden::run::<f32>)],
        Precision::F64 => &[("f64", golden::run::<f64>)],
        Precision::Both => &[("f64", golden::run::<f64>), ("f32", golden::run::<f32>)],
    };
    let mut lines = Vec::new();
    for (name, run) in runs {
        match run(case) {
            Outcome::Pass | Outcome::Skipped(_) => {}
            Outcome::Error(e) => lines.push(format!("FAIL {} [{name}]: {e}", case.name)),
            Outcome::Fail(mismatches) => {
                for m in mismatches {
                    let at = m.index.map_or(String::new(), |i| format!("[{i}]"));
                    lines.push(format!(
                        "FAIL {} [{name}]: {}{at}: got {} want {} ({} element{} out of tolerance)",
                        case.name,
                        m.what,
                        m.got,
                        m.want,
                        m.failed,
                        if m.failed == 1 { "" } else { "s" }
                    ));
                }
            }
        }
    }
    lines
}
