//! Project tasks, run as `cargo xtask <task>`.
//!
//! - `cargo xtask bench`: makemore-rs against PyTorch on each workload of the lectures, in one
//!   table, and the scaling with 10x and 100x the data.
//! - `cargo xtask download [--from SOURCE]`: fetches the dataset to `data/names.txt`, checked by
//!   sha256.
//! - `cargo xtask golden FILE...`: runs golden files (`mm-golden/1`, PyTorch reference values)
//!   through the engine.
//! - `cargo xtask lr-sweep`: finds the learning rate (the lecture's sweep, smoothed and repeated,
//!   or a grid of short runs), with sweep.csv and a plot.
//! - `cargo xtask tune`: searches a spec's settings (random search with successive halving),
//!   with trials.csv (resumable), best.json for `makemore train --spec`, and a plot.

// The doc comments of the flags are clap's help text: `[default: ...]` and `<placeholders>`
// read well there, and are not rustdoc links or HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod bench;
mod download;
mod golden;
mod lr_sweep;
mod tune;

use clap::{Parser, Subcommand};

/// Project tasks for makemore-rs.
#[derive(Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    Bench(bench::Args),
    Download(download::Args),
    Golden(golden::Args),
    LrSweep(lr_sweep::Args),
    Tune(tune::Args),
}

/// The dataset at `path` (`--data`), loaded, and the path it was read from. The default,
/// `data/names.txt`, is read from the workspace (where `cargo xtask download` writes it) when the
/// working directory has none, so the tasks find it from any directory, as `download` writes it
/// from any.
pub(crate) fn dataset(path: &std::path::Path) -> anyhow::Result<(mm_data::Dataset, std::path::PathBuf)> {
    let path = match path == std::path::Path::new(mm_data::DEFAULT_DATASET) && !path.exists() {
        true => {
            mm_data::default_dataset_path(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        }
        false => path.to_path_buf(),
    };
    let data = mm_data::Dataset::load(&path).map_err(|e| {
        anyhow::anyhow!("{:#} (run `cargo xtask download`, or pass --data)", anyhow::Error::from(e))
    })?;
    Ok((data, path))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Bench(args) => bench::run(&args).map(|()| true),
        Task::Download(args) => download::run(&args).map(|()| true),
        Task::Golden(args) => golden::run(&args),
        Task::LrSweep(args) => lr_sweep::run(&args).map(|()| true),
        Task::Tune(args) => tune::run(&args).map(|()| true),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
