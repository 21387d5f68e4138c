//! `cargo xtask download`: fetch the dataset to `data/names.txt`, checked by sha256.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use mm_data::download::{Fetched, NAMES_SHA256, NAMES_URL, Request, fetch};

/// Fetch the dataset to data/names.txt (or --to), checked by sha256.
///
/// The file is streamed through sha256 into a temporary file and renamed into place only once the
/// checksum matches: an interrupted or corrupt download leaves nothing behind. A file already
/// there with the right checksum is not fetched again.
#[derive(clap::Args)]
pub struct Args {
    /// Where to fetch from: an http(s) URL, or a local path (offline machines and CI use
    /// ../shared/data/names.txt).
    #[arg(long, value_name = "SOURCE", default_value = NAMES_URL)]
    from: String,

    /// The expected sha256 of the source, as 64 hex digits (the default is names.txt's).
    #[arg(long, value_name = "HEX", default_value = NAMES_SHA256)]
    sha256: String,

    /// Where to write the file [default: data/names.txt in the workspace].
    #[arg(long, value_name = "PATH")]
    to: Option<PathBuf>,

    /// Fetch even if the file is already there with the right checksum.
    #[arg(long)]
    force: bool,
}

/// Runs the download, printing one line about what happened.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = args.to.clone().unwrap_or_else(|| mm_data::default_dataset_path(&workspace));
    let req = Request {
        source: args.from.clone(),
        target: target.clone(),
        sha256: args.sha256.clone(),
        force: args.force,
    };
    let bar = if req.is_url() { ProgressBar::new(0) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message("downloading");
    let result = fetch(&req, |p| {
        if let Some(total) = p.total {
            bar.set_length(total);
        }
        bar.set_position(p.bytes);
    });
    bar.finish_and_clear();
    let shown = target.canonicalize().unwrap_or(target);
    match result? {
        Fetched::AlreadyPresent => {
            println!(
                "{} is already there with the right sha256 (use --force to fetch again)",
                shown.display()
            )
        }
        Fetched::Downloaded { bytes } => {
            println!("fetched {bytes} bytes from {} to {} (sha256 checked)", req.source, shown.display())
        }
    }
    Ok(())
}
