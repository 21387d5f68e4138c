//! The text files of a run directory, typed: `summary.json` ([`Summary`], serde) and
//! `metrics.csv` ([`MetricsRow`], the `csv` crate), read and written here only.
//!
//! Reading a file that was edited, cut short or replaced gives a [`RunFileError`] naming the
//! file, the line (and the field) and what to do, never a panic; and nothing is sized from a file
//! before it is checked: `summary.json` is refused past [`SUMMARY_LIMIT`] bytes before it is read,
//! a line of `metrics.csv` past [`METRICS_LINE_LIMIT`] bytes as it is read, and neither may be a
//! device or a pipe (`/dev/zero` would never end).
//!
//! The formats are those `makemore train` has written since run directories have had a `config`:
//! a run saved by an earlier version of this module reads the same.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The largest `summary.json` read: a run writes a few kilobytes (20 samples, a vocabulary).
pub const SUMMARY_LIMIT: u64 = 16 << 20;

/// The longest line of `metrics.csv` read: a run writes lines of at most about 80 bytes.
pub const METRICS_LINE_LIMIT: usize = 1024;

/// The columns of `metrics.csv`, its first line.
pub const METRICS_HEADER: [&str; 5] = ["step", "lr", "train_loss", "dev_loss", "elapsed_s"];

/// What to do about a run file that is not as `makemore train` writes it.
const FIX: &str = "restore it, or train the run again with --force";

/// A run file that cannot be read, or is not as `makemore train` writes it.
#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    /// The file cannot be opened or read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The path names a device, a pipe or a directory.
    #[error("{0} is not a regular file: a run's files are written by makemore train; {FIX}")]
    NotAFile(PathBuf),
    /// The file is larger than any run writes.
    #[error("{path} has {size} bytes, more than the {limit} a run writes: {FIX}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The most read.
        limit: u64,
    },
    /// `summary.json` is not JSON, or a field is missing, of the wrong type or out of range.
    #[error("{path}: line {line}, column {column}{}: {msg}: {FIX}", field_text(field))]
    Summary {
        /// The file.
        path: PathBuf,
        /// The line, from 1 (0: the end of the file).
        line: usize,
        /// The column, from 1.
        column: usize,
        /// The field, as a path (`config.batch_size`), where known.
        field: Option<String>,
        /// What is wrong.
        msg: String,
    },
    /// A line of `metrics.csv` is not `step,lr,train_loss,dev_loss,elapsed_s`.
    #[error("{path}: line {line}{}: {msg}: {FIX}", field_text(field))]
    Metrics {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: u64,
        /// The column, where known.
        field: Option<String>,
        /// What is wrong.
        msg: String,
    },
}

fn field_text(field: &Option<String>) -> String {
    field.as_ref().map_or(String::new(), |f| format!(", field {f}"))
}

/// `summary.json`: what a run did and how it was set up. `C` is the run's settings (`config`),
/// which `makemore train --resume` reads back; any JSON by default. Written with its keys in
/// this (alphabetical) order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary<C = serde_json::Value> {
    /// The parameters with the lowest dev loss seen, over the whole run (`null`: no evaluation,
    /// or no dev split).
    #[serde(default)]
    pub best: Option<Best>,
    /// The run's checkpoint, `model.safetensors`.
    pub checkpoint: PathBuf,
    /// The run's resolved settings, from which `--resume` continues it.
    pub config: C,
    /// The dataset the run was trained on.
    #[serde(default)]
    pub dataset: Option<Dataset>,
    /// The run's time so far, in seconds, over all its sessions.
    pub elapsed_s: f64,
    /// The losses at the end of the run (`null` in a periodic save, before it ends).
    #[serde(default)]
    pub loss: Option<Losses>,
    /// The model's kind (`mlp`, `transformer`, ...).
    pub model: String,
    /// The model's parameter count.
    pub parameters: u64,
    /// Names sampled at the end of the run, with their origin (empty before it ends).
    #[serde(default)]
    pub samples: Vec<SampleName>,
    /// The run's seed.
    pub seed: u64,
    /// The steps done: the step of `model.safetensors`.
    pub steps: u64,
    /// Whether the run is unfinished (stopped, or a periodic save).
    pub stopped: bool,
}

/// `summary.json`'s `best`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// `best.safetensors`.
    pub checkpoint: PathBuf,
    /// Its dev loss: an `f32`, as the training loop measures it, so that it reads back to the
    /// same value and compares with a resumed run's evaluations exactly.
    pub dev_loss: f32,
    /// Its step, from 1.
    pub step: u64,
}

/// `summary.json`'s `dataset`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Its number of items (lines).
    pub items: u64,
    /// Where it was read from: absolute, so that `--resume` finds it from any working directory
    /// (runs of earlier versions may hold the path as it was given).
    pub path: PathBuf,
    /// The sha256 of its bytes, as read.
    pub sha256: String,
    /// Its vocabulary, in id order.
    pub vocab: String,
}

/// `summary.json`'s `loss`: the mean loss on each split (`null`: the split has no words).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Losses {
    /// On the dev split.
    pub dev: Option<f64>,
    /// On the test split.
    pub test: Option<f64>,
    /// On the training split.
    pub train: Option<f64>,
}

/// A sampled name of `summary.json`'s `samples`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleName {
    /// The name.
    pub name: String,
    /// `new`, `in train` or `in dev/test`.
    pub origin: String,
}

impl<C: Serialize> Summary<C> {
    /// The file's text.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

impl<C: DeserializeOwned> Summary<C> {
    /// Reads `summary.json` (at most [`SUMMARY_LIMIT`] bytes, a regular file).
    pub fn read(path: &Path) -> Result<Summary<C>, RunFileError> {
        let bytes = read_bounded(path, SUMMARY_LIMIT)?;
        Self::parse(path, &bytes)
    }

    /// Parses the text of `summary.json` (`path` names it in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Summary<C>, RunFileError> {
        let error = |e: &serde_json::Error, field: Option<String>| {
            let (line, column) = (e.line(), e.column());
            let msg = e.to_string();
            let msg =
                msg.strip_suffix(&format!(" at line {line} column {column}")).unwrap_or(&msg).to_string();
            RunFileError::Summary { path: path.to_path_buf(), line, column, field, msg }
        };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let summary: Summary<C> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            // serde_path_to_error writes `?` for a key it could not read (a cut file).
            let field = e.path().to_string();
            let field = field.trim_end_matches("?").trim_end_matches('.');
            error(e.inner(), (!field.is_empty()).then(|| field.to_string()))
        })?;
        de.end().map_err(|e| error(&e, None))?;
        Ok(summary)
    }
}

/// A line of `metrics.csv`: one training step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    /// The step, from 1.
    pub step: usize,
    /// Its learning rate.
    pub lr: f32,
    /// The loss of its batch.
    pub train_loss: f32,
    /// The loss on the dev split, on evaluation steps (an empty field otherwise).
    pub dev_loss: Option<f32>,
    /// The run's time at its end, in seconds (written to the millisecond).
    pub elapsed_s: f64,
}

impl MetricsRow {
    /// The row's fields as written: shortest round-trip decimals, the time to the millisecond.
    fn record(&self) -> [String; 5] {
        [
            self.step.to_string(),
            self.lr.to_string(),
            self.train_loss.to_string(),
            self.dev_loss.map_or(String::new(), |d| d.to_string()),
            format!("{:.3}", self.elapsed_s),
        ]
    }
}

/// Appends `rows` to the text of a `metrics.csv` (its header first, when `out` is empty).
pub fn write_metrics(out: &mut Vec<u8>, rows: &[MetricsRow]) -> Result<(), csv::Error> {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(out);
    if w.get_ref().is_empty() {
        w.write_record(METRICS_HEADER)?;
    }
    for row in rows {
        w.write_record(row.record())?;
    }
    w.flush()?;
    Ok(())
}

/// Reads `metrics.csv` (a regular file, of lines of at most [`METRICS_LINE_LIMIT`] bytes, under
/// the header [`METRICS_HEADER`]).
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>, RunFileError> {
    let file = open_regular(path)?;
    parse_metrics(path, BufReader::new(file))
}

/// Parses the text of `metrics.csv` (`path` names it in errors).
pub fn parse_metrics(path: &Path, text: impl Read) -> Result<Vec<MetricsRow>, RunFileError> {
    let bad = |line: u64, field: Option<String>, msg: String| RunFileError::Metrics {
        path: path.to_path_buf(),
        line,
        field,
        msg,
    };
    let convert = |e: csv::Error| -> RunFileError {
        let line = |pos: Option<&csv::Position>| pos.map_or(0, |p| p.line());
        match e.into_kind() {
            csv::ErrorKind::Io(e) => match e.get_ref().and_then(|i| i.downcast_ref::<LongLine>()) {
                Some(long) => bad(long.0, None, format!("a line longer than {METRICS_LINE_LIMIT} bytes")),
                None => RunFileError::Read { path: path.to_path_buf(), source: e },
            },
            csv::ErrorKind::Utf8 { pos, err } => {
                let field = METRICS_HEADER.get(err.field()).map(|f| f.to_string());
                bad(line(pos.as_ref()), field, "not UTF-8".into())
            }
            csv::ErrorKind::UnequalLengths { pos, len, expected_len } => bad(
                line(pos.as_ref()),
                None,
                format!("{len} fields, not the header's {expected_len} ({})", METRICS_HEADER.join(",")),
            ),
            csv::ErrorKind::Deserialize { pos, err } => {
                let field = err.field().and_then(|i| METRICS_HEADER.get(i as usize)).map(|f| f.to_string());
                bad(line(pos.as_ref()), field, err.kind().to_string())
            }
            other => bad(0, None, format!("{other:?}")),
        }
    };
    let mut reader =
        csv::ReaderBuilder::new().has_headers(true).from_reader(LineBounded { inner: text, line: 1, run: 0 });
    let header = reader.headers().map_err(convert)?;
    if header.iter().ne(METRICS_HEADER) {
        let msg = format!("the header is not {}", METRICS_HEADER.join(","));
        return Err(bad(1, None, msg));
    }
    reader.deserialize().map(|row| row.map_err(convert)).collect()
}

/// A line of a run file longer than any run writes (the line, from 1).
#[derive(Debug)]
struct LongLine(u64);

impl std::fmt::Display for LongLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} is longer than {METRICS_LINE_LIMIT} bytes", self.0)
    }
}

impl std::error::Error for LongLine {}

/// A reader that fails at a line longer than [`METRICS_LINE_LIMIT`] bytes, so that a file
/// without line ends (a sparse file, zeros) is not buffered whole as one field.
struct LineBounded<R> {
    inner: R,
    /// The line being read, from 1.
    line: u64,
    /// Bytes since the last line end.
    run: usize,
}

impl<R: Read> Read for LineBounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                self.line += 1;
                self.run = 0;
            } else {
                self.run += 1;
                if self.run > METRICS_LINE_LIMIT {
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, LongLine(self.line)));
                }
            }
        }
        Ok(n)
    }
}

/// Opens `path` for reading, refused unless it is a regular file (a symbolic link is followed).
fn open_regular(path: &Path) -> Result<std::fs::File, RunFileError> {
    let read = |source| RunFileError::Read { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(read)?;
    if !meta.is_file() {
        return Err(RunFileError::NotAFile(path.to_path_buf()));
    }
    std::fs::File::open(path).map_err(read)
}

/// The bytes of the regular file `path`, refused past `limit` bytes before any is read.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, RunFileError> {
    let file = open_regular(path)?;
    let read = |source| RunFileError::Read { path: path.to_path_buf(), source };
    let too_large = |size| RunFileError::TooLarge { path: path.to_path_buf(), size, limit };
    let size = file.metadata().map_err(read)?.len();
    if size > limit {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(read)?;
    if bytes.len() as u64 > limit {
        // It grew while being read.
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "step,lr,train_loss,dev_loss,elapsed_s\n1,0.1,3.3,,0.001\n2,0.1,NaN,2.5,0.002\n";

    #[test]
    fn metrics_read_and_write_the_same_text() {
        let rows = parse_metrics(Path::new("m.csv"), CSV.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].dev_loss, None);
        assert_eq!(rows[1].dev_loss, Some(2.5));
        assert!(rows[1].train_loss.is_nan());
        let mut out = Vec::new();
        write_metrics(&mut out, &rows[..1]).unwrap();
        write_metrics(&mut out, &rows[1..]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), CSV);
    }

    #[test]
    fn a_bad_metrics_line_names_the_line_and_the_field() {
        let err = |text: &str| parse_metrics(Path::new("m.csv"), text.as_bytes()).unwrap_err().to_string();
        let e = err("step,lr,train_loss,dev_loss,elapsed_s\n1,0.1,3.3,,0.001\n2,x,3.3,,0.002\n");
        assert!(e.starts_with("m.csv: line 3, field lr: ") && e.ends_with(FIX), "{e}");
        let e = err("step,lr,train_loss,dev_loss,elapsed_s\n1,0.1,3.3,,0.001,9\n");
        assert!(e.starts_with("m.csv: line 2: 6 fields"), "{e}");
        let e = err("step,lr\n");
        assert!(e.starts_with("m.csv: line 1: the header"), "{e}");
        let e = err(&format!("step,lr,train_loss,dev_loss,elapsed_s\n{}", "0".repeat(5000)));
        assert!(e.starts_with("m.csv: line 2: a line longer than 1024 bytes"), "{e}");
    }

    #[test]
    fn a_bad_summary_names_the_field() {
        let text = r#"{"best": null, "checkpoint": "m", "config": {"batch_size": "x"}, "elapsed_s": 1,
            "model": "mlp", "parameters": 1, "seed": 1, "steps": "ten", "stopped": false}"#;
        let e = Summary::<serde_json::Value>::parse(Path::new("s.json"), text.as_bytes()).unwrap_err();
        let e = e.to_string();
        assert!(e.starts_with("s.json: line 2, column ") && e.contains("field steps: invalid type"), "{e}");
        let e = Summary::<serde_json::Value>::parse(Path::new("s.json"), b"{} x").unwrap_err().to_string();
        assert!(e.contains("missing field `checkpoint`"), "{e}");
    }

    #[test]
    fn best_reads_back_to_the_same_f32() {
        // Written as an f32 now; earlier versions wrote the f32 widened to an f64. Both read back
        // to the f32 the training loop measured, so a resumed run compares its evaluations with
        // exactly the best it continues from.
        let best = Best { checkpoint: "b".into(), dev_loss: 14.714841, step: 3 };
        let text = serde_json::to_string(&best).unwrap();
        assert!(text.contains(r#""dev_loss":14.714841,"#), "{text}");
        for text in [text.clone(), text.replace("14.714841", "14.71484088897705")] {
            let back: Best = serde_json::from_str(&text).unwrap();
            assert_eq!(back.dev_loss.to_bits(), 14.714841f32.to_bits(), "{text}");
        }
    }
}
