//! `makemore`: the command line of makemore-rs. Thin: parsing, progress, files; the logic is in
//! the libraries (mm-data, mm-models).

// The doc comments of the flags are clap's help text: `[default: ...]` and `<placeholders>`
// read well there, and are not rustdoc links or HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod cli;
mod data;
mod eval;
mod graph;
mod info;
mod memory;
mod models;
mod sample;
mod train;

use std::process::ExitCode;

use anyhow::Context;

use clap::FromArgMatches;
use mm_cli::plot;

/// The picture a `makemore plot` command writes (its `--out`, or the default).
fn plot_out(what: &cli::PlotCommand) -> std::path::PathBuf {
    match what {
        cli::PlotCommand::Bigram { out, .. } | cli::PlotCommand::Embeddings { out, .. } => out.clone(),
        cli::PlotCommand::Loss { run, out } => out.clone().unwrap_or_else(|| run.join("loss.png")),
        cli::PlotCommand::LrSweep { csv, out } => out.clone().unwrap_or_else(|| csv.with_extension("png")),
    }
}

/// Runs `makemore plot ...`.
fn plot_command(what: &cli::PlotCommand) -> anyhow::Result<()> {
    let written = match what {
        cli::PlotCommand::Bigram { data, out } => {
            let d = data::load(&data.data)?;
            let counts = mm_models::BigramCounts::fit(d.words(), &d.vocab())?;
            plot::bigram(d.vocab().itos(), counts.counts(), out)?;
            out.clone()
        }
        cli::PlotCommand::Embeddings { checkpoint, out, allow_non_finite } => {
            let (model, _) = sample::load_checkpoint(checkpoint, *allow_non_finite)?;
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
        cli::PlotCommand::Loss { run, .. } => {
            let out = plot_out(what);
            let rows = mm_cli::run_files::read_metrics(&run.join("metrics.csv"))?;
            plot::loss(&rows.iter().map(|m| (m.step, m.train_loss, m.dev_loss)).collect::<Vec<_>>(), &out)?;
            out
        }
        cli::PlotCommand::LrSweep { csv, .. } => {
            let out = plot_out(what);
            let file = std::fs::File::open(csv).with_context(|| format!("cannot read {}", csv.display()))?;
            let sweep = mm_models::LrSweep::read_csv(std::io::BufReader::new(file))
                .with_context(|| csv.display().to_string())?;
            plot::lr_sweep(&sweep, &out)?;
            if let Some(s) = sweep.suggest() {
                println!("suggested learning rate: {:.4} (10^{:.2}), by {}", s.lr, s.exp, s.rule);
                if s.at_edge {
                    eprintln!("warning: the loss was still falling at the largest rate; sweep higher");
                }
            }
            out
        }
    };
    println!("wrote {}", written.display());
    Ok(())
}

/// The exit code of a training run stopped by Ctrl-C or SIGTERM and saved (128 + SIGINT's 2).
const STOPPED: u8 = 130;

fn main() -> ExitCode {
    // Usage errors: clap prints `error: ...` and exits with code 2.
    let matches = <cli::Cli as clap::CommandFactory>::command().get_matches();
    let mut cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let cli::Command::Train(args) = &mut cli.command {
        let source = matches.subcommand_matches("train").and_then(|m| m.value_source("data"));
        args.data_given = source == Some(clap::parser::ValueSource::CommandLine);
        let source = matches.subcommand_matches("train").and_then(|m| m.value_source("batch_size"));
        args.batch_size_given = source == Some(clap::parser::ValueSource::CommandLine);
    }
    // A flag the chosen model does not take is a usage error too (the model of a resumed run is
    // its own; --resume takes no model flags).
    if let cli::Command::Train(args) = &cli.command
        && let Err(msg) = args.check_flags(args.model.as_deref().unwrap_or("mlp"))
        && !args.resume
    {
        use clap::CommandFactory;
        cli::Cli::command().error(clap::error::ErrorKind::ArgumentConflict, msg).exit();
    }
    // A picture's format is its extension: another one is a usage error, found before any work.
    if let cli::Command::Plot(what) = &cli.command
        && let Err(e) = plot::format_of(&plot_out(what))
    {
        use clap::CommandFactory;
        cli::Cli::command().error(clap::error::ErrorKind::InvalidValue, e).exit();
    }
    // A prefix longer than the names may be would be cut or returned as it is: refused.
    if let cli::Command::Sample(args) = &cli.command
        && let Some(max_len) = args.max_len
        && args.prefix.chars().count() as u64 > max_len
    {
        use clap::CommandFactory;
        let msg = format!(
            "--prefix {:?} has {} characters, more than --max-len {}: raise --max-len or shorten the prefix",
            args.prefix,
            args.prefix.chars().count(),
            max_len
        );
        cli::Cli::command().error(clap::error::ErrorKind::ArgumentConflict, msg).exit();
    }
    if let cli::Command::Graph(args) = &cli.command
        && let Err(e) = graph::format_of(&args.out)
    {
        use clap::CommandFactory;
        cli::Cli::command().error(clap::error::ErrorKind::InvalidValue, e).exit();
    }
    // A run stopped by Ctrl-C or SIGTERM is saved, but not finished: it exits 130 (a shell's
    // code for Ctrl-C; one code for either signal), so that a script or a scheduler does not
    // take it for a finished run.
    let stopped = std::cell::Cell::new(false);
    let result = match &cli.command {
        cli::Command::Train(args) => {
            train::run(args).map(|ended| stopped.set(ended == train::Ended::Stopped))
        }
        cli::Command::Sample(args) => sample::run(args),
        cli::Command::Eval(args) => eval::run(args),
        cli::Command::Info(args) => info::run(args),
        cli::Command::Models(args) => models::run(args),
        cli::Command::Graph(args) => graph::run(args),
        cli::Command::Plot(what) => plot_command(what),
    };
    match result {
        Ok(()) if stopped.get() => ExitCode::from(STOPPED),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(train::Usage(msg)) = e.downcast_ref() {
                use clap::CommandFactory;
                cli::Cli::command().error(clap::error::ErrorKind::ArgumentConflict, msg).exit();
            }
            // One line: what went wrong, with its causes.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
