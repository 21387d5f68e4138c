//! `makemore`: the command line of makemore-rs.
//!
//! The commands (`train`, `sample`, `eval`, `info`, `plot`) arrive with the mm-cli issue; until
//! then this binary says so and exits with a failure code, so that nothing pretends to work.

fn main() {
    eprintln!("error: makemore's commands are not implemented yet; the engine lives in crates/mm-tensor");
    std::process::exit(1);
}
