//! Finding the dataset: the given path, or the default one, downloaded on first use.

use std::path::Path;

use anyhow::{Context, bail};
use mm_data::Dataset;
use mm_data::download::{DownloadError, Fetched, Request, fetch};

/// Loads the dataset at `path`. When `path` is the default (`data/names.txt`) and missing, it is
/// downloaded and checked first, with a message on stderr.
pub fn load(path: &Path) -> anyhow::Result<Dataset> {
    fetch_default(path)?;
    let data = Dataset::load(path)?;
    note_invisible(path, &data);
    Ok(data)
}

/// [`load`], reading the file once, with the sha256 of the bytes the dataset was loaded from (so
/// that `--data /dev/stdin` records the hash of what was trained on).
pub fn load_hashed(path: &Path) -> anyhow::Result<(Dataset, String)> {
    fetch_default(path)?;
    let (data, sha) = Dataset::load_hashed(path, mm_data::LoadOptions::default())?;
    note_invisible(path, &data);
    Ok((data, sha))
}

/// Whether `c` does not show when printed (a zero-width joiner, a soft hyphen, a byte-order
/// mark, a variation selector, a space other than ' ') or is one a terminal acts on (ESC).
fn invisible(c: char) -> bool {
    c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(c, '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}')
        || matches!(c, '\u{feff}' | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}')
        || matches!(c, '\u{2060}'..='\u{206f}' | '\u{fe00}'..='\u{fe0f}' | '\u{e0000}'..='\u{e0fff}')
}

/// `text` with its invisible characters written as `\u{...}`, for printing.
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if invisible(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Says on stderr which invisible characters the dataset's vocabulary holds (they are tokens
/// like any other, but would not show in its listing or in samples).
fn note_invisible(path: &Path, data: &Dataset) {
    let hidden: String = data.vocab().itos().iter().filter(|&&c| invisible(c)).collect();
    if !hidden.is_empty() {
        eprintln!(
            "note: {} holds invisible characters, each a token: {} (shown escaped in samples)",
            path.display(),
            shown(&hidden)
        );
    }
}

/// When `path` is the default (`data/names.txt`) and missing, downloads and checks it.
fn fetch_default(path: &Path) -> anyhow::Result<()> {
    if !path.exists() && path == Path::new(mm_data::DEFAULT_DATASET) {
        eprintln!(
            "{} not found: downloading names.txt from {}",
            path.display(),
            mm_data::download::NAMES_URL
        );
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists());
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let result = fetch(&Request::names(path), |_| {});
        if result.is_err() {
            // Leave nothing behind: remove the directory this command created.
            if let Some(dir) = dir {
                let _ = std::fs::remove_dir(dir);
            }
        }
        match result {
            Ok(Fetched::Downloaded { bytes }) => {
                eprintln!("downloaded {bytes} bytes to {} (sha256 checked)", path.display())
            }
            Ok(Fetched::AlreadyPresent) => {}
            Err(DownloadError::Network { url, reason }) => bail!(
                "cannot download {url} ({reason}): pass --data PATH, or fetch a local copy with `cargo xtask download --from PATH`"
            ),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
