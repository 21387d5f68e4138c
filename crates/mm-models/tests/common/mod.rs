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

/// Every kind of model that trains by gradient (all but the bigram counts), at its default
/// sizes; those that read whole words with a block of 10, which the test words fit.
pub fn neural_specs() -> impl Iterator<Item = mm_models::Spec> {
    mm_models::Spec::all().into_iter().filter(|s| s.kind() != "bigram").map(|spec| {
        let block = if spec.layout() == mm_data::Layout::Words { 10 } else { spec.block_size() };
        spec.with_block_size(block)
    })
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

/// Feeds the rows of `idx` (`[b, t]` ids) to `m`'s decoder one position at a time, the rows in
/// the order `rows` (not the cache's, as sampling feeds the unfinished ones), and checks every
/// step's logits against row `pos` of the forward pass over the whole prefix, within `tol`
/// relative.
pub fn decoder_matches_prefix(m: &dyn Model, idx: &ndarray::Array2<u32>, rows: &[usize], tol: f32) {
    let mut tape = mm_tensor::Tape::new();
    let full = {
        let g = tape.no_grad(m.params());
        m.forward(&g, idx.view()).to_array()
    };
    let mut dec = m.decoder(idx.nrows()).expect("the model has a decoder");
    for pos in 0..idx.ncols() {
        let ids: Vec<u32> = rows.iter().map(|&r| idx[[r, pos]]).collect();
        let logits = dec.step(rows, &ids, pos).unwrap();
        for (i, &r) in rows.iter().enumerate() {
            for c in 0..full.shape()[2] {
                let (a, want) = (logits[[i, c]], full[[r, pos, c]]);
                assert!((a - want).abs() < tol * (1.0 + want.abs()), "row {r} position {pos}: {a} vs {want}");
            }
        }
    }
}
