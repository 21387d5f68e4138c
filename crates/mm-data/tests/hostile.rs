//! Issue #15: byte-order marks, control and invisible characters; datasets read once and
//! bounded when they are not regular files.

use std::path::Path;

use mm_data::{DataError, Dataset, LoadOptions, Vocab};

#[test]
fn a_leading_byte_order_mark_is_dropped() {
    let d =
        Dataset::from_bytes("\u{feff}emma\r\nava\n".as_bytes(), Path::new("bom.txt"), LoadOptions::default())
            .unwrap();
    assert_eq!(d.words(), ["emma", "ava"]);
    assert_eq!(d.vocab().to_string(), ".aemv");
    // Only at the start of the file: elsewhere it is an (invisible) character of its item.
    let d = Dataset::from_text("emma\n\u{feff}ava").unwrap();
    assert_eq!(d.words()[1], "\u{feff}ava");
}

#[test]
fn control_characters_line_separators_and_bidi_controls_are_errors_naming_the_line() {
    for (ch, shown) in [
        ('\u{1b}', "U+001B"),
        ('\u{7f}', "U+007F"),
        ('\u{85}', "U+0085"),
        ('\u{2028}', "U+2028"),
        ('\u{2029}', "U+2029"),
        ('\u{202e}', "U+202E"),
        ('\u{2067}', "U+2067"),
        ('\u{200f}', "U+200F"),
    ] {
        let text = format!("emma\nava\nmi{ch}a\n");
        let err = Dataset::from_text(&text).unwrap_err();
        assert!(matches!(err, DataError::ControlChar { line: 3, ch: c, .. } if c == ch), "{ch:?}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains("line 3") && msg.contains(shown), "{msg}");
        assert!(!msg.contains(ch), "the message holds the raw character: {msg:?}");
    }
}

#[test]
fn invisible_characters_are_tokens_and_messages_show_them_escaped() {
    let d = Dataset::from_text("e\u{200d}mma\nava\n").unwrap();
    assert!(d.vocab().itos().contains(&'\u{200d}'));
    let err = d.vocab().encode("zoe").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("\\u{200d}") && !msg.contains('\u{200d}'), "{msg}");
    let v = Vocab::parse(".a\u{1b}").unwrap();
    let msg = v.encode("b").unwrap_err().to_string();
    assert!(msg.contains("\\u{1b}") && !msg.contains('\u{1b}'), "{msg}");
}

#[test]
fn a_dataset_is_read_once_and_hashed() {
    let dir =
        std::env::temp_dir().join(format!("mm-data-h-{}-{}", std::process::id(), rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("names.txt");
    std::fs::write(&path, "emma\nava\n").unwrap();
    let (d, sha) = Dataset::load_hashed(&path, LoadOptions::default()).unwrap();
    assert_eq!(d.words(), ["emma", "ava"]);
    assert_eq!(sha, mm_data::download::sha256_file(&path).unwrap());
    assert_eq!(Dataset::read_bytes(&path).unwrap(), b"emma\nava\n");
    assert!(matches!(Dataset::read_bytes(&dir), Err(DataError::Io { .. })), "a directory");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_device_is_read_up_to_the_limit() {
    if !Path::new("/dev/zero").exists() {
        return;
    }
    let err = Dataset::load("/dev/zero").unwrap_err();
    assert!(matches!(err, DataError::TooLarge { limit: Dataset::MAX_STREAM_BYTES, .. }), "{err:?}");
    assert!(err.to_string().contains("256 MiB"), "{err}");
}
