//! # mm-data
//!
//! Datasets for makemore: any UTF-8 text file with one item per line (names, words, cities,
//! Pokémon). Loading validates it; the [`Vocab`] maps characters to ids as the lectures do
//! (`stoi`, `itos`, `.` = 0); [`Examples`] builds bigram pairs and context windows as compact
//! `u32` arrays; [`Split`] reproduces the lectures' train/dev/test split word for word (CPython's
//! `random.shuffle`, reimplemented in [`PyRandom`]).
//!
//! ```
//! use mm_data::{Dataset, Examples, Split, SplitSpec};
//! let data = Dataset::from_text("emma\nolivia\nava\nisabella\nsophia\n")?;
//! let vocab = data.vocab();
//! let split = Split::new(data.words(), SplitSpec::default())?;
//! let train = Examples::windows(&split.train, &vocab, 3)?;
//! assert_eq!(train.x.ncols(), 3);
//! assert_eq!(train.len(), split.train.iter().map(|w| w.chars().count() + 1).sum::<usize>());
//! # Ok::<(), mm_data::DataError>(())
//! ```
//!
//! With the `download` feature, [`download`] fetches a dataset from a URL or a path and checks
//! its sha256 before it is put in place.

mod dataset;
#[cfg(feature = "download")]
pub mod download;
mod error;
mod examples;
mod pyrandom;
mod split;
mod vocab;

pub use dataset::{DEFAULT_DATASET, Dataset, LoadOptions, Stats, default_dataset_path};
pub use error::{DataError, Result};
pub use examples::{Batch, Examples, Layout};
pub use pyrandom::PyRandom;
pub use split::{Split, SplitSpec};
pub use vocab::{DOT, Vocab};
