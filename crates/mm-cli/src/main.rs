//! `makemore`: the command line of makemore-rs. Thin: parsing, progress, files; the logic is in
//! the libraries (mm-data, mm-models).

mod cli;
mod data;
mod eval;
mod info;
mod plot;
mod sample;
mod train;

use std::process::ExitCode;

use clap::Parser;

/// Runs `makemore plot ...`.
fn plot_command(what: &cli::PlotCommand) -> anyhow::Result<()> {
    let written = match what {
        cli::PlotCommand::Bigram { data, out } => {
            let d = data::load(&data.data)?;
            let counts = mm_models::BigramCounts::fit(d.words(), &d.vocab())?;
            plot::bigram(d.vocab().itos(), counts.counts(), out)?;
            out.clone()
        }
        cli::PlotCommand::Embeddings { checkpoint, out } => {
            let (model, _) = mm_models::checkpoint::load(checkpoint)?;
            let mm_models::checkpoint::AnyModel::Mlp(mlp) = &model else {
                anyhow::bail!(
                    "{} holds a {} model: embeddings need an mlp checkpoint",
                    checkpoint.display(),
                    model.kind()
                );
            };
            use mm_models::Model;
            let c = mlp.params().get(mlp.params().id("C").expect("an MLP has C"));
            let c = c.into_dimensionality::<ndarray::Ix2>()?.to_owned();
            plot::embeddings(mlp.vocab().itos(), &c, out)?;
            out.clone()
        }
        cli::PlotCommand::Loss { run, out } => {
            let out = out.clone().unwrap_or_else(|| run.join("loss.png"));
            plot::loss(&plot::read_metrics(&run.join("metrics.csv"))?, &out)?;
            out
        }
    };
    println!("wrote {}", written.display());
    Ok(())
}

fn main() -> ExitCode {
    // Usage errors: clap prints `error: ...` and exits with code 2.
    let cli = cli::Cli::parse();
    let result = match &cli.command {
        cli::Command::Train(args) => train::run(args),
        cli::Command::Sample(args) => sample::run(args),
        cli::Command::Eval(args) => eval::run(args),
        cli::Command::Info(args) => info::run(args),
        cli::Command::Plot(what) => plot_command(what),
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
