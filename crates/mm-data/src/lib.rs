//! Dataset loading and validation, vocabulary (`stoi`/`itos`), context windows and splits.
//!
//! Not implemented yet: this crate is filled by the mm-data issue. It exports nothing so far.
