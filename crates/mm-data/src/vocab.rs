//! The vocabulary: `stoi` and `itos` as in the lectures. Index 0 is `.`, the start and end token;
//! then the distinct characters of the data, sorted, from 1.

use std::collections::{BTreeSet, HashMap};

use crate::{DataError, Result};

/// The start and end token.
pub const DOT: char = '.';

/// A character vocabulary: `itos[0] = '.'`, then the sorted distinct characters (Unicode scalar
/// values, not bytes: `é` and `Å` are one token each).
///
/// ```
/// let v = mm_data::Vocab::from_words(&["emma", "ava"]);
/// assert_eq!(v.itos(), &['.', 'a', 'e', 'm', 'v']);
/// assert_eq!(v.stoi('m'), Some(3));
/// assert_eq!(v.encode("ave").unwrap(), [1, 4, 2]);
/// assert_eq!(v.decode(&[4, 1]).unwrap(), "va");
/// assert_eq!(v.to_string(), ".aemv"); // serialised as its itos
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    itos: Vec<char>,
    stoi: HashMap<char, u32>,
}

impl Vocab {
    /// The vocabulary of the characters in `words`.
    pub fn from_words<S: AsRef<str>>(words: &[S]) -> Vocab {
        let chars: BTreeSet<char> =
            words.iter().flat_map(|w| w.as_ref().chars()).filter(|&c| c != DOT).collect();
        Self::from_itos(std::iter::once(DOT).chain(chars).collect())
    }

    fn from_itos(itos: Vec<char>) -> Vocab {
        let stoi = itos.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
        Vocab { itos, stoi }
    }

    /// Parses a vocabulary serialised with `to_string()` (its `itos` as a string): it must start
    /// with `.` and repeat no character.
    pub fn parse(itos: &str) -> Result<Vocab> {
        let chars: Vec<char> = itos.chars().collect();
        if chars.first() != Some(&DOT) {
            return Err(DataError::BadVocab(format!("{itos:?} does not start with '.'")));
        }
        if chars.iter().collect::<BTreeSet<_>>().len() != chars.len() {
            return Err(DataError::BadVocab(format!("{itos:?} repeats a character")));
        }
        Ok(Self::from_itos(chars))
    }

    /// The number of tokens, `.` included (27 for `names.txt`).
    pub fn len(&self) -> usize {
        self.itos.len()
    }

    /// Always false: a vocabulary holds `.` at least (the companion of [`Vocab::len`]).
    pub fn is_empty(&self) -> bool {
        self.itos.is_empty()
    }

    /// `itos`: the character of each id.
    pub fn itos(&self) -> &[char] {
        &self.itos
    }

    /// `stoi[c]`: the id of a character, if it is in the vocabulary.
    pub fn stoi(&self, c: char) -> Option<u32> {
        self.stoi.get(&c).copied()
    }

    /// The id of a character, or a typed error.
    pub fn id(&self, c: char) -> Result<u32> {
        self.stoi(c).ok_or_else(|| DataError::UnknownChar { ch: c, vocab: self.to_string() })
    }

    /// The ids of a word's characters.
    pub fn encode(&self, word: &str) -> Result<Vec<u32>> {
        word.chars().map(|c| self.id(c)).collect()
    }

    /// The word of a sequence of ids.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        ids.iter()
            .map(|&i| {
                self.itos.get(i as usize).copied().ok_or(DataError::UnknownId { id: i, size: self.len() })
            })
            .collect()
    }
}

impl std::fmt::Display for Vocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.itos.iter().try_for_each(|c| write!(f, "{c}"))
    }
}
