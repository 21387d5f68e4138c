//! The library half of mm-cli: the lectures' pictures ([`plot`]), shared by the `makemore`
//! binary and `cargo xtask lr-sweep`, the run directory ([`run_dir`]) and its typed files
//! ([`run_files`]). Everything else of the
//! command line is in the binary.

pub mod plot;
pub mod run_dir;
pub mod run_files;
