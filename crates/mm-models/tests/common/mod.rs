//! Shared by the tests: the real `names.txt`, found where the CLI looks for it
//! (`data/names.txt` under the workspace root), with a clear failure when it is absent; and a
//! dozen names with their vocabulary and examples, for small models trained for a few steps.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use mm_data::{Dataset, Examples, Vocab, default_dataset_path};
use mm_models::Model;
use mm_tensor::ParamStore;

/// A dozen names: enough words for batches of a few sequences.
pub const WORDS: [&str; 12] = [
    "emma",
    "olivia",
    "ava",
    "isabella",
    "sophia",
    "charlotte",
    "mia",
    "amelia",
    "harper",
    "evelyn",
    "abigail",
    "emily",
];

/// The vocabulary of [`WORDS`].
pub fn vocab() -> Vocab {
    Vocab::from_words(&WORDS)
}

/// [`WORDS`] as `m` reads them.
pub fn examples(m: &dyn Model) -> Examples {
    Examples::new(&WORDS, m.vocab(), m.layout(), m.block_size()).unwrap()
}

/// The bits of every parameter, to compare runs bit for bit.
pub fn bits(p: &ParamStore<f32>) -> Vec<u32> {
    p.ids().flat_map(|id| p.data(id).iter().map(|x| x.to_bits()).collect::<Vec<_>>()).collect()
}

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
