//! Loading and validating a dataset: a UTF-8 text file, one item (a name) per line.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::{DataError, Result, Vocab};

/// How to load a dataset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Keep only the first occurrence of each item. makemore keeps duplicates (the default):
    /// `names.txt` has 2,539 repeated lines.
    pub dedup: bool,
}

/// A list of items (names), validated: no empty items, no `.` (the reserved start/end token), no
/// control characters, line separators or bidirectional controls; a leading byte-order mark is
/// dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    words: Vec<String>,
    removed_duplicates: usize,
}

/// Summary statistics of a [`Dataset`].
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// Number of items.
    pub items: usize,
    /// Number of distinct items.
    pub distinct: usize,
    /// Items that repeat an earlier one (`items - distinct`).
    pub duplicates: usize,
    /// Duplicates removed when loading with [`LoadOptions::dedup`].
    pub removed_duplicates: usize,
    /// Vocabulary size, including the `.` token.
    pub vocab_size: usize,
    /// Length of the shortest item, in characters.
    pub min_len: usize,
    /// Length of the longest item, in characters.
    pub max_len: usize,
    /// Mean item length, in characters.
    pub mean_len: f64,
}

impl Dataset {
    /// Loads a dataset file as makemore does: each line stripped of surrounding whitespace
    /// (CRLF too), empty lines dropped, duplicates kept.
    pub fn load(path: impl AsRef<Path>) -> Result<Dataset> {
        Self::load_with(path, LoadOptions::default())
    }

    /// Loads a dataset file with options.
    pub fn load_with(path: impl AsRef<Path>, options: LoadOptions) -> Result<Dataset> {
        let path = path.as_ref();
        Self::parse(&Self::read_bytes(path)?, path, options)
    }

    /// The most that is read from a dataset that is not a regular file (a pipe, `/dev/stdin`, a
    /// device such as `/dev/zero`): 256 MiB, a thousand times `names.txt`. A regular file is read
    /// whole.
    pub const MAX_STREAM_BYTES: u64 = 256 << 20;

    /// The bytes of a dataset file, read once: a regular file whole, anything else (a pipe, a
    /// device) up to [`MAX_STREAM_BYTES`](Self::MAX_STREAM_BYTES), past which it is
    /// [`DataError::TooLarge`] rather than memory exhausted.
    pub fn read_bytes(path: impl AsRef<Path>) -> Result<Vec<u8>> {
        use std::io::Read;
        let path = path.as_ref();
        let io = |source| DataError::Io { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if meta.is_dir() {
            return Err(io(std::io::Error::new(std::io::ErrorKind::IsADirectory, "it is a directory")));
        }
        let mut bytes = Vec::new();
        if meta.is_file() {
            bytes.reserve(usize::try_from(meta.len()).unwrap_or(0));
            (&file).read_to_end(&mut bytes).map_err(io)?;
        } else {
            file.take(Self::MAX_STREAM_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
            if bytes.len() as u64 > Self::MAX_STREAM_BYTES {
                return Err(DataError::TooLarge { path: path.to_path_buf(), limit: Self::MAX_STREAM_BYTES });
            }
        }
        Ok(bytes)
    }

    /// A dataset from a file's bytes (`path` names it in errors), validated as
    /// [`load_with`](Self::load_with) validates a file: for a caller that needs the bytes too
    /// (to hash what it trains on, when the file is a pipe that can be read only once).
    pub fn from_bytes(bytes: &[u8], path: &Path, options: LoadOptions) -> Result<Dataset> {
        Self::parse(bytes, path, options)
    }

    /// Loads a dataset file, reading it once, with the sha256 (hex) of the bytes it was loaded
    /// from: `/dev/stdin` or a pipe gives the hash of what was trained on, not of an empty
    /// second read.
    #[cfg(feature = "download")]
    pub fn load_hashed(path: impl AsRef<Path>, options: LoadOptions) -> Result<(Dataset, String)> {
        use sha2::{Digest, Sha256};
        let path = path.as_ref();
        let bytes = Self::read_bytes(path)?;
        let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        Ok((Self::parse(&bytes, path, options)?, sha))
    }

    /// A dataset from text in memory (one item per line).
    ///
    /// ```
    /// let d = mm_data::Dataset::from_text("emma\r\n\n  olivia \nava\nemma\n").unwrap();
    /// assert_eq!(d.words(), ["emma", "olivia", "ava", "emma"]);
    /// assert!(mm_data::Dataset::from_text("a.b").is_err());
    /// ```
    pub fn from_text(text: &str) -> Result<Dataset> {
        Self::parse(text.as_bytes(), Path::new("<text>"), LoadOptions::default())
    }

    /// A dataset from a list of items, validated like a file's lines (empty items are dropped).
    pub fn from_words<S: AsRef<str>>(words: &[S], options: LoadOptions) -> Result<Dataset> {
        // An item with a line break would become two items: refused as the control character it is.
        if let Some((i, w)) = words.iter().enumerate().find(|(_, w)| w.as_ref().contains('\n')) {
            let (line, text) = (i + 1, w.as_ref().to_string());
            return Err(DataError::ControlChar { path: "<words>".into(), line, text, ch: '\n' });
        }
        let text = words.iter().map(|w| w.as_ref()).collect::<Vec<_>>().join("\n");
        Self::parse(text.as_bytes(), Path::new("<words>"), options)
    }

    fn parse(bytes: &[u8], path: &Path, options: LoadOptions) -> Result<Dataset> {
        // A byte-order mark at the start (Windows editors write one) is not part of the first item.
        let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
        let mut words = Vec::new();
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            let text =
                std::str::from_utf8(raw).map_err(|_| DataError::InvalidUtf8 { path: path.into(), line })?;
            let word = text.trim();
            if word.is_empty() {
                continue;
            }
            if word.contains('.') {
                return Err(DataError::ReservedChar { path: path.into(), line, text: word.to_string() });
            }
            if let Some(ch) = word.chars().find(|&c| is_control(c)) {
                return Err(DataError::ControlChar { path: path.into(), line, text: word.to_string(), ch });
            }
            words.push(word.to_string());
        }
        if words.is_empty() {
            return Err(DataError::Empty { path: path.into() });
        }
        let mut removed_duplicates = 0;
        if options.dedup {
            let mut seen = HashSet::with_capacity(words.len());
            let before = words.len();
            words.retain(|w| seen.insert(w.clone()));
            removed_duplicates = before - words.len();
        }
        Ok(Dataset { words, removed_duplicates })
    }

    /// The items, in file order.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether there are no items (never true of a loaded dataset).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The vocabulary of this dataset's characters.
    pub fn vocab(&self) -> Vocab {
        Vocab::from_words(&self.words)
    }

    /// Summary statistics.
    pub fn stats(&self) -> Stats {
        let distinct = self.words.iter().collect::<HashSet<_>>().len();
        let lens: Vec<usize> = self.words.iter().map(|w| w.chars().count()).collect();
        Stats {
            items: self.words.len(),
            distinct,
            duplicates: self.words.len() - distinct,
            removed_duplicates: self.removed_duplicates,
            vocab_size: self.vocab().len(),
            min_len: lens.iter().copied().min().unwrap_or(0),
            max_len: lens.iter().copied().max().unwrap_or(0),
            mean_len: lens.iter().sum::<usize>() as f64 / lens.len().max(1) as f64,
        }
    }
}

/// Whether `c` is refused in an item: a control character (ESC, NUL, a tab, DEL, U+0085...), a
/// line or paragraph separator (U+2028, U+2029: a line break inside a line), or a bidirectional
/// control (U+200E, U+200F, U+061C, U+202A to U+202E, U+2066 to U+2069), which reorders the text
/// around it when printed. Other invisible characters (a zero-width joiner, a soft hyphen) are
/// kept: some scripts need them.
fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Where the CLI and the tests look for the dataset by default: `data/names.txt` under the
/// workspace root.
pub const DEFAULT_DATASET: &str = "data/names.txt";

/// The default dataset's path under `root` (the workspace root, or the current directory).
pub fn default_dataset_path(root: impl AsRef<Path>) -> PathBuf {
    root.as_ref().join(DEFAULT_DATASET)
}
