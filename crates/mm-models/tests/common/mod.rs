//! Shared by the tests that need the real `names.txt`: found where the CLI looks for it
//! (`data/names.txt` under the workspace root), with a clear failure when it is absent.

use mm_data::{Dataset, default_dataset_path};

/// The real `names.txt`, loaded.
pub fn names() -> Dataset {
    let path = default_dataset_path(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask download` (offline: --from PATH)",
        path.display()
    );
    Dataset::load(&path).expect("names.txt loads")
}
