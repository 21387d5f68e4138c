//! Fetching a dataset: from an `http(s)://` URL or a local path, streamed through sha256 into a
//! temporary file beside the target, which is renamed into place only once the checksum matches.
//! An interrupted or corrupt download never leaves a target file behind.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The `names.txt` of the makemore repository.
pub const NAMES_URL: &str = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt";

/// The sha256 of `names.txt`.
pub const NAMES_SHA256: &str = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d";

/// Why a download failed. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The server could not be reached.
    #[error("cannot reach {url}: {reason} (offline? pass a local copy with --from PATH)")]
    Network {
        /// The URL.
        url: String,
        /// What the HTTP client said.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}: check the URL")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body ended before its announced length, or the connection broke.
    #[error("the download from {url} broke off after {bytes} bytes: {reason}; try again")]
    Interrupted {
        /// The URL.
        url: String,
        /// Bytes received.
        bytes: u64,
        /// What went wrong.
        reason: String,
    },
    /// The data does not have the expected checksum.
    #[error(
        "checksum mismatch for {source_name}: expected sha256 {expected}, got {actual}; the file was not saved (another file than names.txt? give its sha256)"
    )]
    Checksum {
        /// The source.
        source_name: String,
        /// The expected sha256.
        expected: String,
        /// The sha256 of what arrived.
        actual: String,
    },
    /// The source file cannot be read.
    #[error("cannot read {path}")]
    Source {
        /// The source path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The target cannot be written.
    #[error("cannot write {path}")]
    Target {
        /// The target (or its temporary file).
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The expected checksum is not 64 hex digits.
    #[error("{0:?} is not a sha256 (64 hex digits)")]
    BadSha256(String),
}

/// Progress of a download, reported to the caller's callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes received so far.
    pub bytes: u64,
    /// The total, when the source announces it.
    pub total: Option<u64>,
}

/// What [`fetch`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The target was already there with the right checksum: nothing was fetched.
    AlreadyPresent,
    /// The target was written.
    Downloaded {
        /// Its size in bytes.
        bytes: u64,
    },
}

/// A request: where from, where to, which checksum.
#[derive(Clone, Debug)]
pub struct Request {
    /// An `http://` or `https://` URL, or a local path.
    pub source: String,
    /// The file to write.
    pub target: PathBuf,
    /// The expected sha256, as hex.
    pub sha256: String,
    /// Fetch even when the target is already there with the right checksum.
    pub force: bool,
}

impl Request {
    /// The default request: `names.txt` from the makemore repository to `target`.
    pub fn names(target: impl Into<PathBuf>) -> Request {
        Request { source: NAMES_URL.into(), target: target.into(), sha256: NAMES_SHA256.into(), force: false }
    }

    /// Whether the source is a URL (rather than a local path).
    pub fn is_url(&self) -> bool {
        self.source.starts_with("http://") || self.source.starts_with("https://")
    }
}

/// Fetches `req.source` to `req.target`, checking its sha256; reports progress to `progress`.
/// On any error nothing is left at the target (a file already there is untouched) and the
/// temporary file is removed.
pub fn fetch(req: &Request, mut progress: impl FnMut(Progress)) -> Result<Fetched, DownloadError> {
    let expected = req.sha256.trim().to_ascii_lowercase();
    if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DownloadError::BadSha256(req.sha256.clone()));
    }
    if !req.force && req.target.is_file() && sha256_file(&req.target).is_ok_and(|h| h == expected) {
        return Ok(Fetched::AlreadyPresent);
    }
    let (mut reader, total): (Box<dyn Read>, Option<u64>) = open_source(req)?;
    let tmp = temp_path(&req.target);
    let result = copy_checked(&mut reader, total, &tmp, req, &expected, &mut progress);
    match result {
        Ok(bytes) => {
            std::fs::rename(&tmp, &req.target).map_err(|source| {
                let _ = std::fs::remove_file(&tmp);
                DownloadError::Target { path: req.target.clone(), source }
            })?;
            Ok(Fetched::Downloaded { bytes })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Opens the source for reading, with its length when known.
fn open_source(req: &Request) -> Result<(Box<dyn Read>, Option<u64>), DownloadError> {
    if req.is_url() {
        let url = req.source.clone();
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        let response = agent
            .get(&url)
            .call()
            .map_err(|e| DownloadError::Network { url: url.clone(), reason: e.to_string() })?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(DownloadError::Status { url, status });
        }
        let total = response.body().content_length();
        Ok((Box::new(response.into_body().into_reader()), total))
    } else {
        let path = PathBuf::from(&req.source);
        let file =
            File::open(&path).map_err(|source| DownloadError::Source { path: path.clone(), source })?;
        // A pipe's or a device's length reads as 0: only a regular file announces its length.
        let total = file.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
        Ok((Box::new(file), total))
    }
}

/// Streams `reader` into `tmp` through sha256; returns the byte count once the hash matches.
fn copy_checked(
    reader: &mut dyn Read,
    total: Option<u64>,
    tmp: &Path,
    req: &Request,
    expected: &str,
    progress: &mut impl FnMut(Progress),
) -> Result<u64, DownloadError> {
    let target_err = |source| DownloadError::Target { path: tmp.to_path_buf(), source };
    // The temporary file sits beside the target: a missing folder is named as the target's.
    let create = File::create(tmp).map_err(|source| match tmp.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => {
            DownloadError::Target { path: req.target.clone(), source }
        }
        _ => target_err(source),
    });
    let mut out = BufWriter::new(create?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if req.is_url() => {
                return Err(DownloadError::Interrupted {
                    url: req.source.clone(),
                    bytes,
                    reason: e.to_string(),
                });
            }
            Err(source) => return Err(DownloadError::Source { path: req.source.clone().into(), source }),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(target_err)?;
        bytes += n as u64;
        progress(Progress { bytes, total });
    }
    if let Some(total) = total.filter(|&t| t != bytes) {
        let reason = format!("expected {total} bytes");
        return Err(DownloadError::Interrupted { url: req.source.clone(), bytes, reason });
    }
    out.into_inner().map_err(|e| target_err(e.into_error()))?.sync_all().map_err(target_err)?;
    let actual = hex(&hasher.finalize());
    if actual != expected {
        return Err(DownloadError::Checksum {
            source_name: req.source.clone(),
            expected: expected.into(),
            actual,
        });
    }
    Ok(bytes)
}

/// The sha256 of a file, as hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(hex(&hasher.finalize())),
            n => hasher.update(&buf[..n]),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The temporary file beside `target` that a download is written to before the rename.
fn temp_path(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}
