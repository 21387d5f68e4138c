//! Shared by the CLI tests: the binary, and a fresh directory with a small dataset.

use std::path::PathBuf;

use assert_cmd::Command;

/// The `makemore` binary.
pub fn makemore() -> Command {
    Command::cargo_bin("makemore").unwrap()
}

/// A fresh directory holding a small dataset `names.txt`.
pub fn workdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("mm-cli-{}-{}", std::process::id(), rand::random::<u64>()));
    std::fs::create_dir_all(&d).unwrap();
    let names =
        ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia", "harper", "evelyn"];
    std::fs::write(d.join("names.txt"), names.join("\n")).unwrap();
    d
}
