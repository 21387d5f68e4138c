//! `DataError`: what is wrong with a dataset or a request, and where.

use std::path::PathBuf;

/// An error of mm-data. Messages say what is wrong and where (file, line, text).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file cannot be read (missing, a directory, no permission).
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line is not valid UTF-8.
    #[error("{path}: line {line} is not valid UTF-8")]
    InvalidUtf8 {
        /// The file (or `<text>` for text given directly).
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
    },
    /// No items: the file is empty or holds only blank lines.
    #[error("{path}: the dataset has no items (the file is empty or all its lines are blank)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A line contains `.`, the reserved start/end token.
    #[error("{path}: line {line} ({text:?}) contains '.', which is reserved as the start and end token")]
    ReservedChar {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// The line's text.
        text: String,
    },
    /// A line contains a control character (a tab, a NUL, an ESC, ...), a line separator
    /// (U+2028) or a bidirectional control (U+202E, ...).
    #[error(
        "{path}: line {line} ({text:?}) contains the control character U+{:04X}: {}",
        u32::from(*ch),
        if *ch == '\r' {
            "lines that end in CR alone (an old Mac's) are one line here: convert them to LF line endings"
        } else {
            "remove it from the file"
        }
    )]
    ControlChar {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
        /// The line's text.
        text: String,
        /// The control character.
        ch: char,
    },
    /// A character that is not in the vocabulary.
    #[error("the character {ch:?} is not in the vocabulary ({})", shown(vocab))]
    UnknownChar {
        /// The character.
        ch: char,
        /// The vocabulary, as its characters.
        vocab: String,
    },
    /// An id that is not in the vocabulary.
    #[error("id {id} is not in the vocabulary of {size} tokens")]
    UnknownId {
        /// The id.
        id: u32,
        /// The vocabulary's size.
        size: usize,
    },
    /// A vocabulary string that is not one (no leading `.`, or a repeated character).
    #[error("not a vocabulary: {0}")]
    BadVocab(String),
    /// Split cut points that are not `0 <= train_end <= dev_end <= 1`.
    #[error("split cut points must satisfy 0 <= train_end <= dev_end <= 1, got {train_end} and {dev_end}")]
    BadSplit {
        /// Where train ends, as a fraction.
        train_end: f64,
        /// Where dev ends, as a fraction.
        dev_end: f64,
    },
    /// A context length of 0.
    #[error("block_size must be at least 1")]
    ZeroBlockSize,
    /// Examples that memory cannot hold: `rows` rows of `block_size` ids (an allocation that
    /// fails would abort the process).
    #[error(
        "{rows} examples of block_size {block_size} are more ids than memory holds: choose a smaller block_size"
    )]
    ExamplesTooLarge {
        /// The examples.
        rows: usize,
        /// The context length asked for.
        block_size: usize,
    },
    /// A word too long for the sequences of [`crate::Examples::words`]: `[0, w...]` must fit in
    /// `block_size` positions. It names the longest word, so that the block_size it asks for
    /// holds them all.
    #[error("the word {word:?} has {len} characters: sequences of block_size {block_size} hold at most {max} (a block_size of at least {need} holds every word)", max = block_size - 1, need = len + 1)]
    WordTooLong {
        /// The word.
        word: String,
        /// Its length in characters.
        len: usize,
        /// The sequence length asked for.
        block_size: usize,
    },
    /// A dataset that is not a regular file (a pipe, a device) holds more than the limit read
    /// from one ([`crate::Dataset::MAX_STREAM_BYTES`]).
    #[error(
        "{path}: more than {} MiB read and not a regular file (a pipe or a device): save the dataset to a file and pass that",
        limit >> 20
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },
    /// Sampling a batch from a set with no examples.
    #[error("cannot sample a batch from an empty set of examples")]
    NoExamples,
    /// A download failed (see [`crate::download`]).
    #[cfg(feature = "download")]
    #[error(transparent)]
    Download(#[from] crate::download::DownloadError),
}

/// `text` with its invisible and control characters written as `\u{...}`, so that a message
/// shows them (a zero-width joiner, a byte-order mark) and a terminal does not act on them (ESC).
fn shown(text: &str) -> String {
    text.chars()
        .map(|c| {
            let invisible = c.is_control()
                || (c.is_whitespace() && c != ' ')
                || matches!(c, '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}' | '\u{1160}' | '\u{3164}')
                || matches!(c, '\u{ffa0}' | '\u{feff}' | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{fe00}'..='\u{fe0f}');
            if invisible { c.escape_unicode().to_string() } else { c.to_string() }
        })
        .collect()
}

/// mm-data's `Result`.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
