//! Bad input gets a typed error that says what and where; good input of any alphabet works.

use mm_data::{Batch, DataError, Dataset, Examples, LoadOptions, PyRandom, Split, SplitSpec, Vocab};
use rand::SeedableRng;

fn load_bytes(bytes: &[u8]) -> Result<Dataset, DataError> {
    let dir = std::env::temp_dir().join(format!("mm-data-{}-{}", std::process::id(), rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("words.txt");
    std::fs::write(&path, bytes).unwrap();
    let r = Dataset::load(&path);
    std::fs::remove_dir_all(&dir).unwrap();
    r
}

#[test]
fn lines_are_stripped_blank_lines_dropped_duplicates_kept() {
    let d = load_bytes(b"emma\r\nolivia  \n\n\t\n  ava\nemma\n").unwrap();
    assert_eq!(d.words(), ["emma", "olivia", "ava", "emma"]);
    assert_eq!(d.stats().duplicates, 1);
    let d = Dataset::from_words(&["b", "a", "b"], LoadOptions { dedup: true }).unwrap();
    assert_eq!((d.words(), d.stats().removed_duplicates), (&["b".to_string(), "a".to_string()][..], 1));
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let err = Dataset::load("/no/such/names.txt").unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert_eq!(err.to_string(), "cannot read /no/such/names.txt");
    // The cause is the error's source (not repeated in its message, so a chain prints it once).
    let source = std::error::Error::source(&err).expect("the io error");
    assert_eq!(source.downcast_ref::<std::io::Error>().unwrap().kind(), std::io::ErrorKind::NotFound);
    assert!(matches!(Dataset::load(std::env::temp_dir()), Err(DataError::Io { .. })), "a directory");
}

#[test]
fn invalid_utf8_names_the_line() {
    let err = load_bytes(b"emma\nol\xffivia\n").unwrap_err();
    assert!(matches!(err, DataError::InvalidUtf8 { line: 2, .. }), "{err:?}");
    assert!(err.to_string().ends_with("line 2 is not valid UTF-8"), "{err}");
}

#[test]
fn an_empty_dataset_is_an_error() {
    assert!(matches!(load_bytes(b""), Err(DataError::Empty { .. })));
    assert!(matches!(load_bytes(b"\n  \r\n\n"), Err(DataError::Empty { .. })));
}

#[test]
fn the_reserved_dot_names_line_and_text() {
    let err = load_bytes(b"emma\nj.r. tolkien\n").unwrap_err();
    assert!(
        matches!(&err, DataError::ReservedChar { line: 2, text, .. } if text == "j.r. tolkien"),
        "{err:?}"
    );
    assert!(err.to_string().contains("line 2 (\"j.r. tolkien\") contains '.'"), "{err}");
}

#[test]
fn a_control_character_is_an_error() {
    let err = load_bytes(b"emma\nol\tivia\n").unwrap_err();
    assert!(matches!(err, DataError::ControlChar { line: 2, ch: '\t', .. }), "{err:?}");
    assert!(matches!(load_bytes(b"a\x00b"), Err(DataError::ControlChar { line: 1, ch: '\0', .. })));
}

#[test]
fn unicode_characters_are_tokens_not_bytes() {
    let d = Dataset::from_text("zoë\nÅsa\nrené\n").unwrap();
    let v = d.vocab();
    // Sorted by code point, as Python's sorted(set(...)): ASCII first, then Å, é, ë.
    assert_eq!(v.to_string(), ".aenorsz\u{c5}\u{e9}\u{eb}");
    assert_eq!(v.len(), 11);
    let ids = v.encode("Åsa").unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(v.decode(&ids).unwrap(), "Åsa");
    let ex = Examples::windows(d.words(), &v, 3).unwrap();
    assert_eq!(ex.len(), 4 + 4 + 5);
}

#[test]
fn the_vocabulary_serialises_and_compares() {
    let v = Vocab::from_words(&["hello", "world"]);
    let back = Vocab::parse(&v.to_string()).unwrap();
    assert_eq!(back, v);
    assert_ne!(Vocab::from_words(&["hello"]), v);
    assert!(matches!(Vocab::parse("abc"), Err(DataError::BadVocab(_))));
    assert!(matches!(Vocab::parse(".aba"), Err(DataError::BadVocab(_))));
}

#[test]
fn unknown_characters_and_ids_are_typed_errors() {
    let v = Vocab::from_words(&["abc"]);
    let err = v.encode("abz").unwrap_err();
    assert!(matches!(err, DataError::UnknownChar { ch: 'z', .. }));
    assert_eq!(err.to_string(), "the character 'z' is not in the vocabulary (.abc)");
    assert!(matches!(v.decode(&[1, 9]), Err(DataError::UnknownId { id: 9, size: 4 })));
    assert!(matches!(Examples::windows(&["abz"], &v, 3), Err(DataError::UnknownChar { ch: 'z', .. })));
}

#[test]
fn block_size_and_split_fractions_are_checked() {
    let v = Vocab::from_words(&["abc"]);
    assert!(matches!(Examples::windows(&["abc"], &v, 0), Err(DataError::ZeroBlockSize)));
    let bad = SplitSpec { seed: 1, train_end: 0.9, dev_end: 0.8 };
    assert!(matches!(Split::new(&["a"], bad), Err(DataError::BadSplit { .. })));
    let bad = SplitSpec { seed: 1, train_end: f64::NAN, dev_end: 0.8 };
    assert!(matches!(Split::new(&["a"], bad), Err(DataError::BadSplit { .. })));
}

#[test]
fn splits_are_configurable_and_cover_every_word_once() {
    let words: Vec<String> = (0..1000).map(|i| format!("w{i}")).collect();
    let spec = SplitSpec { seed: 7, train_end: 0.5, dev_end: 0.75 };
    let s = Split::new(&words, spec).unwrap();
    assert_eq!((s.train.len(), s.dev.len(), s.test.len()), (500, 250, 250));
    let mut all: Vec<_> = s.train.iter().chain(&s.dev).chain(&s.test).cloned().collect();
    all.sort();
    let mut sorted = words.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    assert_ne!(s, Split::new(&words, SplitSpec { seed: 8, ..spec }).unwrap());
}

#[test]
fn python_random_matches_cpython() {
    // python3 -c "import random; random.seed(42); print([random.getrandbits(32) for _ in range(3)])"
    let mut r = PyRandom::seed(42);
    assert_eq!([r.next_u32(), r.next_u32(), r.next_u32()], [2746317213, 478163327, 107420369]);
    // python3 -c "import random; random.seed(2**40 + 5); print(random.random())"
    assert_eq!(PyRandom::seed((1 << 40) + 5).random(), 0.5043802970418443);
    assert_eq!(PyRandom::seed(0).random(), 0.8444218515250481);
}

#[test]
fn batches_are_seeded_and_reuse_their_arrays() {
    let v = Vocab::from_words(&["emma", "olivia", "ava"]);
    let ex = Examples::windows(&["emma", "olivia", "ava"], &v, 3).unwrap();
    let mut a = Batch::new(32, 3);
    let mut b = Batch::new(32, 3);
    ex.sample_into(&mut rand::rngs::StdRng::seed_from_u64(1), &mut a).unwrap();
    ex.sample_into(&mut rand::rngs::StdRng::seed_from_u64(1), &mut b).unwrap();
    assert_eq!(a, b);
    let ptr = a.x.as_ptr();
    ex.sample_into(&mut rand::rngs::StdRng::seed_from_u64(2), &mut a).unwrap();
    assert_eq!(a.x.as_ptr(), ptr, "the batch's array is reused");
    assert_ne!(a, b);
    // Every sampled row is an example.
    for (row, y) in a.x.rows().into_iter().zip(a.y.rows()) {
        assert!((0..ex.len()).any(|k| ex.x.row(k) == row && ex.y.row(k) == y));
    }
    let empty = Examples::windows::<&str>(&[], &v, 3).unwrap();
    assert!(matches!(empty.sample_into(&mut rand::rng(), &mut a), Err(DataError::NoExamples)));
}

#[test]
fn a_batch_is_the_rows_at_the_generators_indices_for_every_block_size() {
    use rand::Rng;
    let words = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte"];
    let v = Vocab::from_words(&words);
    for bs in [1, 2, 3, 5, 8, 9, 12] {
        let ex = Examples::windows(&words, &v, bs).unwrap();
        let mut batch = Batch::new(32, bs);
        ex.sample_into(&mut rand::rngs::StdRng::seed_from_u64(7), &mut batch).unwrap();
        // The definition: draw an index per row, in order, and take that example.
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for (i, row) in batch.x.rows().into_iter().enumerate() {
            let k = rng.random_range(0..ex.len());
            assert_eq!((row, batch.y.row(i)), (ex.x.row(k), ex.y.row(k)), "block size {bs}, row {i}");
        }
    }
}

#[test]
fn word_batches_are_the_rows_at_the_generators_indices_with_their_targets() {
    use rand::Rng;
    let words = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte"];
    let v = Vocab::from_words(&words);
    let ex = Examples::words(&words, &v, 10).unwrap();
    assert_eq!((ex.len(), ex.targets_per_row(), ex.targets()), (6, 10, 4 + 6 + 3 + 8 + 6 + 9 + 6));
    // A batch made for windows takes the words' widths once, then keeps its arrays.
    let mut batch = Batch::new(16, 3);
    ex.sample_into(&mut rand::rngs::StdRng::seed_from_u64(7), &mut batch).unwrap();
    assert_eq!((batch.x.dim(), batch.y.dim()), ((16, 10), (16, 10)));
    let ptrs = (batch.x.as_ptr(), batch.y.as_ptr());
    ex.sample_into(&mut rand::rngs::StdRng::seed_from_u64(7), &mut batch).unwrap();
    assert_eq!((batch.x.as_ptr(), batch.y.as_ptr()), ptrs, "the batch's arrays are reused");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..16 {
        let k = rng.random_range(0..ex.len());
        assert_eq!((batch.x.row(i), batch.y.row(i)), (ex.x.row(k), ex.y.row(k)), "row {i}");
    }
}

#[test]
fn words_are_makemores_char_dataset() {
    // makemore.py: CharDataset(["emma", "bo"], chars, max_word_length=4)[0] and [1]:
    // x = [0, e, m, m, a], y = [e, m, m, a, 0]; x = [0, b, o, 0, 0], y = [b, o, 0, -1, -1].
    let v = Vocab::from_words(&["emma", "bo"]);
    let ex = Examples::words(&["emma", "bo"], &v, 5).unwrap();
    let ids = |s: &str| s.chars().map(|c| if c == '.' { 0 } else { v.id(c).unwrap() }).collect::<Vec<u32>>();
    let n = Examples::NO_TARGET;
    assert_eq!(ex.x.row(0).to_vec(), ids(".emma"));
    assert_eq!(ex.y.row(0).to_vec(), ids("emma."));
    assert_eq!(ex.x.row(1).to_vec(), ids(".bo.."));
    assert_eq!(ex.y.row(1).to_vec(), [ids("bo.").as_slice(), &[n, n]].concat());
    // Every character and each end token is a target, as with windows.
    let windows = Examples::windows(&["emma", "bo"], &v, 3).unwrap();
    assert_eq!(ex.targets(), windows.len());
    let err = Examples::words(&["emma"], &v, 4).unwrap_err();
    assert!(matches!(err, DataError::WordTooLong { len: 4, block_size: 4, .. }), "{err}");
    assert!(err.to_string().contains("block_size of at least 5"), "{err}");
    // The longest word is named, not the first that does not fit: the block_size asked for then
    // holds every word, where one word at a time would lead up a staircase of errors.
    let words = ["emma", "olivia", "isabella", "charlotte", "sophia", "charlotta"];
    let v = Vocab::from_words(&words);
    let err = Examples::words(&words, &v, 5).unwrap_err();
    assert!(matches!(&err, DataError::WordTooLong { word, len: 9, .. } if word == "charlotte"), "{err}");
    assert!(Examples::words(&words, &v, 10).is_ok());
    assert!(matches!(Examples::words(&["emma"], &v, 0), Err(DataError::ZeroBlockSize)));
}

/// Sizes memory cannot hold are typed errors, not a capacity overflow or an aborted allocation;
/// an item with a line break is refused, not split in two; CR-only line endings are named.
#[test]
fn sizes_line_breaks_and_old_mac_endings_are_errors_that_say_so() {
    let v = Vocab::from_words(&["emma"]);
    for bs in [usize::MAX, 1 << 62, 1 << 40] {
        let e = Examples::windows(&["emma"], &v, bs).unwrap_err();
        assert!(matches!(e, DataError::ExamplesTooLarge { .. }), "{e}");
        let e = Examples::words(&["emma"], &v, bs).unwrap_err();
        assert!(matches!(e, DataError::ExamplesTooLarge { .. }), "{e}");
    }
    assert!(matches!(
        Examples::windows::<&str>(&[], &v, usize::MAX),
        Err(DataError::ExamplesTooLarge { .. })
    ));
    let e = mm_data::Dataset::from_words(&["emma", "a\nb"], mm_data::LoadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::ControlChar { line: 2, ch: '\n', .. }), "{e}");
    let e = mm_data::Dataset::from_text("emma\rava\rzoe\r").unwrap_err();
    assert!(e.to_string().contains("convert them to LF line endings"), "{e}");
}
