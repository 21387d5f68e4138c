//! `cargo xtask golden FILE...`: every case of every file through the engine (op cases through
//! `mm_tensor::golden`, whole-model cases through the model crate's `mm_models::zoo::golden`),
//! one line per failing case and per skipped case, then `golden: N passed, M failed, K skipped`.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use mm_tensor::Float;
use mm_tensor::golden::{self, Case, Outcome};

/// Run golden files (format mm-golden/1: PyTorch forward values and gradients) through the
/// engine and report every case that fails.
///
/// Model cases (`transformer`, `bow`, `rnn`, `gru`, `mlp_makemore`) run makemore.py's models of
/// `mm_models::zoo`, their parameters loaded by their PyTorch names. Prints one line per failing
/// case (its name, the worst element, got vs want) and per skipped case, then `golden: N passed,
/// M failed, K skipped`. Exits non-zero if any case fails, names an unknown op, a file cannot
/// be read, or no case ran at all (empty files, or every case skipped).
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
            match check(case, args.precision) {
                Verdict::Skip(why) => {
                    skipped += 1;
                    println!("skip {}: {why}", case.name);
                }
                Verdict::Lines(lines) if lines.is_empty() => passed += 1,
                Verdict::Lines(lines) => {
                    failed += 1;
                    lines.iter().for_each(|l| println!("{l}"));
                }
            }
        }
    }
    println!("golden: {passed} passed, {failed} failed, {skipped} skipped");
    if passed + failed == 0 {
        // Nothing was checked: a run that proves nothing must not look like a success.
        let files: Vec<String> = args.files.iter().map(|p| p.display().to_string()).collect();
        anyhow::bail!("no case of {} ran (0 passed, 0 failed, {skipped} skipped)", files.join(", "));
    }
    Ok(failed == 0)
}

/// A precision's name and the harness run in it.
type Run = (&'static str, fn(&Case) -> Outcome);

/// A case in precision `T`: a whole model through the model crate, an op through the engine's
/// harness.
fn run_case<T: Float>(case: &Case) -> Outcome {
    if golden::MODEL_OPS.contains(&case.op.as_str()) {
        mm_models::zoo::golden::run::<T>(case)
    } else {
        golden::run::<T>(case)
    }
}

/// What became of one case.
enum Verdict {
    /// Its failure lines (none when it passes).
    Lines(Vec<String>),
    /// Not run, and why.
    Skip(String),
}

/// Runs one case in the chosen precisions.
fn check(case: &Case, precision: Precision) -> Verdict {
    let runs: &[Run] = match precision {
        Precision::F32 => &[("f32", run_case::<f32>)],
        Precision::F64 => &[("f64", run_case::<f64>)],
        Precision::Both => &[("f64", run_case::<f64>), ("f32", run_case::<f32>)],
    };
    let mut lines = Vec::new();
    for (name, run) in runs {
        match run(case) {
            Outcome::Pass => {}
            Outcome::Skipped(why) => return Verdict::Skip(why),
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
    Verdict::Lines(lines)
}
