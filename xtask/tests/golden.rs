//! `cargo xtask golden`: a run that checks nothing fails, and a real file passes.

use std::path::Path;
use std::process::Command;

fn golden(files: &[&Path]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask")).arg("golden").args(files).output().unwrap()
}

#[test]
fn a_file_with_no_cases_is_an_error_and_a_real_one_passes() {
    let dir = std::env::temp_dir().join(format!("xtask-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.json");
    std::fs::write(&empty, r#"{"format": "mm-golden/1", "cases": []}"#).unwrap();
    let out = golden(&[&empty]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "0 cases must not pass");
    assert!(err.contains("no case of") && err.contains("ran"), "{err}");
    // The repository's copy of the zoo's golden file: every case runs (the model cases through
    // mm-models, none skipped) and passes.
    let zoo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/mm-tensor/tests/fixtures/zoo.json");
    let out = golden(&[&zoo]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(" 0 failed, 0 skipped"), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}
