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
/// control characters.
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
        let bytes =
            std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
        Self::parse(&bytes, path, options)
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
        let text = words.iter().map(|w| w.as_ref()).collect::<Vec<_>>().join("\n");
        Self::parse(text.as_bytes(), Path::new("<words>"), options)
    }

    fn parse(bytes: &[u8], path: &Path, options: LoadOptions) -> Result<Dataset> {
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
            if let Some(ch) = word.chars().find(|c| c.is_control()) {
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

/// Where the CLI and the tests look for the dataset by default: `data/names.txt` under the
/// workspace root.
pub const DEFAULT_DATASET: &str = "data/names.txt";

/// The default dataset's path under `root` (the workspace root, or the current directory).
pub fn default_dataset_path(root: impl AsRef<Path>) -> PathBuf {
    root.as_ref().join(DEFAULT_DATASET)
}
