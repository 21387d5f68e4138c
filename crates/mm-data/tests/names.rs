//! Facts of the lectures, asserted on the real `names.txt`. The file is found where the CLI looks
//! for it (`data/names.txt` under the workspace root); when it is absent these tests fail and say
//! how to fetch it.

use mm_data::{Dataset, Examples, LoadOptions, Split, SplitSpec, default_dataset_path};

fn names() -> Dataset {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = default_dataset_path(&root);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask download` (offline: `cargo xtask download --from ../shared/data/names.txt`)",
        path.display()
    );
    Dataset::load(&path).expect("names.txt loads")
}

#[test]
fn the_dataset_and_its_statistics() {
    let data = names();
    let s = data.stats();
    assert_eq!((s.items, s.distinct, s.duplicates), (32_033, 29_494, 2_539));
    assert_eq!((s.vocab_size, s.min_len, s.max_len), (27, 2, 15));
    assert!((s.mean_len - 6.122).abs() < 1e-3, "mean length {}", s.mean_len);
    assert_eq!(&data.words()[..3], ["emma", "olivia", "ava"]);
}

#[test]
fn dedup_reports_what_it_removed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let _ = names(); // the clear message when absent
    let data = Dataset::load_with(default_dataset_path(root), LoadOptions { dedup: true }).unwrap();
    let s = data.stats();
    assert_eq!((s.items, s.distinct, s.duplicates, s.removed_duplicates), (29_494, 29_494, 0, 2_539));
}

#[test]
fn the_vocabulary_is_dot_then_a_to_z() {
    let v = names().vocab();
    assert_eq!(v.len(), 27);
    assert_eq!((v.itos()[0], v.itos()[1], v.itos()[26]), ('.', 'a', 'z'));
    assert_eq!(v.to_string(), ".abcdefghijklmnopqrstuvwxyz");
}

#[test]
fn there_are_228146_bigrams() {
    let data = names();
    let (xs, ys) = Examples::bigrams(data.words(), &data.vocab()).unwrap();
    assert_eq!((xs.len(), ys.len()), (228_146, 228_146));
    // emma: .e em mm ma a.
    assert_eq!(xs.iter().take(5).copied().collect::<Vec<_>>(), [0, 5, 13, 13, 1]);
    assert_eq!(ys.iter().take(5).copied().collect::<Vec<_>>(), [5, 13, 13, 1, 0]);
}

#[test]
fn the_split_matches_the_lectures_word_for_word() {
    let data = names();
    let split = Split::new(data.words(), SplitSpec::default()).unwrap();
    assert_eq!(&split.train[..5], ["yuheng", "diondre", "xavien", "jori", "juanluis"]);
    assert_eq!((split.train.len(), split.dev.len(), split.test.len()), (25_626, 3_203, 3_204));
    let vocab = data.vocab();
    for block_size in [3, 8] {
        let sizes = [&split.train, &split.dev, &split.test]
            .map(|words| Examples::windows(words, &vocab, block_size).unwrap().len());
        assert_eq!(sizes, [182_625, 22_655, 22_866], "block_size {block_size}");
    }
}
