//! `makemore`: the command line of makemore-rs. Thin: parsing, progress, files; the logic is in
//! the libraries (mm-data, mm-models).

mod cli;
mod data;
mod eval;
mod info;
mod sample;
mod train;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Usage errors: clap prints `error: ...` and exits with code 2.
    let cli = cli::Cli::parse();
    let result = match &cli.command {
        cli::Command::Train(args) => train::run(args),
        cli::Command::Sample(args) => sample::run(args),
        cli::Command::Eval(args) => eval::run(args),
        cli::Command::Info(args) => info::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what went wrong, with its causes.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
