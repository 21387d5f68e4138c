//! Project tasks, run as `cargo xtask <task>`.
//!
//! - `cargo xtask download [--from SOURCE]`: fetches the dataset to `data/names.txt`, checked by
//!   sha256.
//! - `cargo xtask golden FILE...`: runs golden files (`mm-golden/1`, PyTorch reference values)
//!   through the engine.

mod download;
mod golden;

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
    Download(download::Args),
    Golden(golden::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Download(args) => download::run(&args).map(|()| true),
        Task::Golden(args) => golden::run(&args),
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
