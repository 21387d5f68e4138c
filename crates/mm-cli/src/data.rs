//! Finding the dataset: the given path, or the default one, downloaded on first use.

use std::path::Path;

use anyhow::{Context, bail};
use mm_data::Dataset;
use mm_data::download::{DownloadError, Fetched, Request, fetch};

/// Loads the dataset at `path`. When `path` is the default (`data/names.txt`) and missing, it is
/// downloaded and checked first, with a message on stderr.
pub fn load(path: &Path) -> anyhow::Result<Dataset> {
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
    Ok(Dataset::load(path)?)
}
