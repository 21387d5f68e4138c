//! Checkpoints: a model saved and loaded gives bit-identical logits; a bad file gives a typed error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mm_data::Vocab;
use mm_models::checkpoint::{AnyModel, CheckpointError, CheckpointMeta, load, save};
use mm_models::{BigramCounts, BigramNet, Init, Mlp, MlpConfig, Model, ModelError};
use mm_tensor::Tape;
use ndarray::Array2;
use rand::SeedableRng;
use safetensors::Dtype;
use safetensors::tensor::TensorView;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("mm-ckpt-{}-{}", std::process::id(), rand::random::<u64>()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn vocab() -> Vocab {
    Vocab::from_words(&["abcdefghijklmnopqrstuvwxyz"])
}

fn meta() -> CheckpointMeta {
    CheckpointMeta { step: 1234, seed: 42, dataset_sha256: "0a30b555".into(), ..CheckpointMeta::default() }
}

/// The logits of `model` for a fixed batch, as raw bits.
fn logits_bits(model: &dyn Model) -> Vec<u32> {
    let x = Array2::from_shape_fn((8, model.block_size()), |(r, k)| ((r * 3 + k * 5) % 27) as u32);
    let mut tape = Tape::new();
    let g = tape.no_grad(model.params());
    model.forward(&g, x.view()).to_array().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn an_mlp_round_trips_bit_for_bit() {
    let d = dir();
    let path = d.join("model.safetensors");
    let cfg = MlpConfig { block_size: 4, n_embd: 6, n_hidden: 50, init: Init::Kaiming };
    let m = Mlp::new(cfg, &vocab(), &mut rand::rngs::StdRng::seed_from_u64(3)).unwrap();
    save(&path, &AnyModel::Mlp(m.clone()), &meta()).unwrap();
    let (loaded, got_meta) = load(&path).unwrap();
    assert_eq!(got_meta, meta());
    let AnyModel::Mlp(l) = loaded else { panic!("an mlp") };
    assert_eq!(l.config(), cfg);
    assert_eq!(l.vocab(), m.vocab());
    assert_eq!(logits_bits(&l), logits_bits(&m));
    let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["model.safetensors"], "no temporary file left");
}

#[test]
fn a_bigram_net_and_counts_round_trip() {
    let d = dir();
    let net = BigramNet::new(&vocab(), 0.01, &mut rand::rngs::StdRng::seed_from_u64(4)).unwrap();
    save(&d.join("nn.safetensors"), &AnyModel::BigramNet(net.clone()), &meta()).unwrap();
    let AnyModel::BigramNet(l) = load(&d.join("nn.safetensors")).unwrap().0 else { panic!("a bigram net") };
    assert_eq!((logits_bits(&l), l.reg), (logits_bits(&net), 0.01));

    let counts =
        BigramCounts::fit(&["emma", "olivia", "ava"], &Vocab::from_words(&["emma", "olivia", "ava"]))
            .unwrap();
    save(&d.join("n.safetensors"), &AnyModel::Counts(counts.clone()), &meta()).unwrap();
    let (AnyModel::Counts(l), m) = load(&d.join("n.safetensors")).unwrap() else { panic!("counts") };
    assert_eq!((l, m.alpha), (counts.clone(), None), "a checkpoint that records no alpha");
}

/// The counting model's smoothing travels with it, so that `eval` and `sample` use the one the
/// run trained with; counts that are not counts, and an alpha that is not one, are refused.
#[test]
fn counts_keep_their_alpha_and_refuse_what_is_not_a_count() {
    let d = dir();
    let v = Vocab::from_words(&["ab"]);
    let counts = BigramCounts::fit(&["ab", "ba", "a"], &v).unwrap();
    for alpha in [0.0, 0.1, 10.0, 1.0 / 3.0] {
        let with = CheckpointMeta { alpha: Some(alpha), ..meta() };
        save(&d.join("n.safetensors"), &AnyModel::Counts(counts.clone()), &with).unwrap();
        let (AnyModel::Counts(_), m) = load(&d.join("n.safetensors")).unwrap() else { panic!("counts") };
        assert_eq!(m.alpha, Some(alpha), "to the bit");
    }
    // A neural model has no alpha: none is written.
    let net = BigramNet::new(&vocab(), 0.01, &mut rand::rngs::StdRng::seed_from_u64(4)).unwrap();
    let with = CheckpointMeta { alpha: Some(2.0), ..meta() };
    save(&d.join("nn.safetensors"), &AnyModel::BigramNet(net), &with).unwrap();
    assert_eq!(load(&d.join("nn.safetensors")).unwrap().1.alpha, None);

    // A count above 2^24 would not survive float32: refused when saved, nothing written.
    let mut big = Array2::<u32>::zeros((3, 3));
    big[[0, 1]] = (1 << 24) + 1;
    let big = BigramCounts::from_counts(v.clone(), big).unwrap();
    let err = save(&d.join("big.safetensors"), &AnyModel::Counts(big), &meta()).unwrap_err();
    assert!(matches!(err, ModelError::Checkpoint(CheckpointError::CountTooLarge { count: 16_777_217, .. })));
    assert!(!d.join("big.safetensors").exists());
    // An alpha that is not a smoothing is not saved either.
    for alpha in [f64::NAN, -1.0] {
        let with = CheckpointMeta { alpha: Some(alpha), ..meta() };
        let err = save(&d.join("bad.safetensors"), &AnyModel::Counts(counts.clone()), &with).unwrap_err();
        assert!(matches!(err, ModelError::Config(_)), "{alpha}: {err}");
    }

    // Negative, fractional and huge counts in a file: refused when loaded (NaN: as NonFinite).
    save(&d.join("n.safetensors"), &AnyModel::Counts(counts), &meta()).unwrap();
    let file = std::fs::read(d.join("n.safetensors")).unwrap();
    for bad in [-1.0f32, 0.5, f32::MAX] {
        let mut edited = file.clone();
        let at = edited.len() - 9 * 4; // N, [3, 3], is the file's only tensor, at its end
        edited[at..at + 4].copy_from_slice(&bad.to_le_bytes());
        std::fs::write(d.join("edited.safetensors"), &edited).unwrap();
        let err = checkpoint_err(&d.join("edited.safetensors"));
        assert!(
            matches!(err, CheckpointError::Count { count, .. } if count == f64::from(bad)),
            "{bad}: {err}"
        );
    }
    // A count an earlier version saved above 2^24, rounded to a float32 (a whole number): read.
    let mut edited = file.clone();
    let at = edited.len() - 9 * 4;
    edited[at..at + 4].copy_from_slice(&(3.0e7f32).to_le_bytes());
    std::fs::write(d.join("edited.safetensors"), &edited).unwrap();
    let (AnyModel::Counts(c), _) = load(&d.join("edited.safetensors")).unwrap() else { panic!("counts") };
    assert_eq!(c.counts()[[0, 0]], 30_000_000);
    // An alpha that is not a smoothing.
    let info = |alpha| {
        [
            ("format", "makemore-rs/1"),
            ("kind", "bigram"),
            ("vocab", ".ab"),
            ("step", "0"),
            ("seed", "1"),
            ("dataset_sha256", ""),
            ("alpha", alpha),
        ]
    };
    write(&d.join("a.safetensors"), &[("N", vec![3, 3])], &info("0.5"));
    assert_eq!(load(&d.join("a.safetensors")).unwrap().1.alpha, Some(0.5));
    for bad in ["-1", "NaN", "inf", "one"] {
        write(&d.join("a.safetensors"), &[("N", vec![3, 3])], &info(bad));
        let err = checkpoint_err(&d.join("a.safetensors"));
        assert!(matches!(&err, CheckpointError::Meta { key, .. } if key == "alpha"), "{bad}: {err}");
    }
}

/// Writes a safetensors file with the given f32 tensors and metadata.
fn write(path: &Path, tensors: &[(&str, Vec<usize>)], info: &[(&str, &str)]) {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, s)| vec![0u8; s.iter().product::<usize>() * 4]).collect();
    let views: Vec<_> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s), b)| (*n, TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    let info: HashMap<String, String> = info.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    std::fs::write(path, safetensors::serialize(views, Some(info)).unwrap()).unwrap();
}

const MLP_META: &[(&str, &str)] = &[
    ("format", "makemore-rs/1"),
    ("kind", "mlp"),
    ("vocab", ".abcdefghijklmnopqrstuvwxyz"),
    ("step", "1"),
    ("seed", "1"),
    ("dataset_sha256", ""),
    ("block_size", "3"),
    ("n_embd", "10"),
    ("n_hidden", "200"),
    ("init", "lecture"),
];

fn mlp_tensors() -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("C", vec![27, 10]),
        ("W1", vec![30, 200]),
        ("b1", vec![200]),
        ("W2", vec![200, 27]),
        ("b2", vec![27]),
    ]
}

fn checkpoint_err(path: &Path) -> CheckpointError {
    match load(path) {
        Err(ModelError::Checkpoint(e)) => e,
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

#[test]
fn a_handwritten_lecture_checkpoint_loads() {
    let path = dir().join("ok.safetensors");
    write(&path, &mlp_tensors(), MLP_META);
    let (m, _) = load(&path).unwrap();
    assert_eq!((m.kind(), m.vocab().len()), ("mlp", 27));
}

#[test]
fn a_missing_tensor_is_named() {
    let path = dir().join("m.safetensors");
    let mut t = mlp_tensors();
    t.retain(|(n, _)| *n != "W2");
    write(&path, &t, MLP_META);
    assert!(matches!(checkpoint_err(&path), CheckpointError::MissingTensor { name, .. } if name == "W2"));
}

#[test]
fn a_wrong_shape_is_named() {
    let path = dir().join("s.safetensors");
    let mut t = mlp_tensors();
    t[1] = ("W1", vec![20, 200]);
    write(&path, &t, MLP_META);
    let e = checkpoint_err(&path);
    assert!(
        matches!(&e, CheckpointError::BadTensor { name, expected, .. } if name == "W1" && expected == &[30, 200])
    );
    assert!(e.to_string().contains("tensor \"W1\" is F32 [20, 200], expected float32 [30, 200]"), "{e}");
}

#[test]
fn an_unknown_kind_and_bad_metadata_are_errors() {
    let d = dir();
    let mut meta: Vec<_> = MLP_META.to_vec();
    meta[1] = ("kind", "gpt");
    write(&d.join("k.safetensors"), &mlp_tensors(), &meta);
    assert!(
        matches!(checkpoint_err(&d.join("k.safetensors")), CheckpointError::UnknownKind { kind, .. } if kind == "gpt")
    );
    // A kind of makemore.py's over an MLP's file: its sizes are missing.
    meta[1] = ("kind", "transformer");
    write(&d.join("t.safetensors"), &mlp_tensors(), &meta);
    let e = checkpoint_err(&d.join("t.safetensors"));
    assert!(matches!(&e, CheckpointError::Meta { key, .. } if key == "n_head"), "{e}");
    let mut meta: Vec<_> = MLP_META.to_vec();
    meta[6] = ("block_size", "three");
    write(&d.join("b.safetensors"), &mlp_tensors(), &meta);
    assert!(
        matches!(checkpoint_err(&d.join("b.safetensors")), CheckpointError::Meta { key, .. } if key == "block_size")
    );
    // Metadata that does not fit the tensors is refused before anything is allocated for it.
    let mut meta: Vec<_> = MLP_META.to_vec();
    meta[8] = ("n_hidden", "100000000000");
    write(&d.join("h.safetensors"), &mlp_tensors(), &meta);
    let e = checkpoint_err(&d.join("h.safetensors"));
    assert!(matches!(e, CheckpointError::Sizes { held: 11_897, .. }), "{e}");
    assert!(
        e.to_string().contains("a model of 5800000000297") && e.to_string().contains("holds 11897 values"),
        "{e}"
    );
    let mut meta: Vec<_> = MLP_META.to_vec();
    meta[6] = ("block_size", "18446744073709551615");
    write(&d.join("o.safetensors"), &mlp_tensors(), &meta);
    assert!(matches!(checkpoint_err(&d.join("o.safetensors")), CheckpointError::Sizes { .. }));
    write(&d.join("f.safetensors"), &mlp_tensors(), &MLP_META[1..]);
    assert!(
        matches!(checkpoint_err(&d.join("f.safetensors")), CheckpointError::Meta { key, .. } if key == "format")
    );
}

#[test]
fn a_corrupt_or_truncated_file_is_an_error() {
    let d = dir();
    std::fs::write(d.join("junk.safetensors"), b"definitely not safetensors").unwrap();
    assert!(matches!(checkpoint_err(&d.join("junk.safetensors")), CheckpointError::Corrupt { .. }));
    let path = d.join("t.safetensors");
    write(&path, &mlp_tensors(), MLP_META);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    assert!(matches!(checkpoint_err(&path), CheckpointError::Corrupt { .. }));
    assert!(matches!(checkpoint_err(&d.join("none.safetensors")), CheckpointError::Io { .. }));
}

#[test]
fn a_failed_save_keeps_the_previous_checkpoint() {
    let d = dir();
    let m = Mlp::new(MlpConfig::default(), &vocab(), &mut rand::rngs::StdRng::seed_from_u64(5)).unwrap();
    // The target is a directory holding a file: the rename fails, and nothing is lost or left.
    let target = d.join("busy");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), b"x").unwrap();
    assert!(save(&target, &AnyModel::Mlp(m), &meta()).is_err());
    assert!(target.join("keep").is_file());
    let names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["busy"], "no temporary file left");
}

#[test]
fn adamw_state_is_saved_as_named_tensors_and_checked_on_load() {
    let d = dir();
    let mut info: Vec<_> = MLP_META.to_vec();
    info.push(("adamw_t", "7"));
    let mut t = mlp_tensors();
    for (name, shape) in mlp_tensors() {
        t.push((Box::leak(format!("adamw.m.{name}").into_boxed_str()), shape.clone()));
        t.push((Box::leak(format!("adamw.v.{name}").into_boxed_str()), shape));
    }
    write(&d.join("a.safetensors"), &t, &info);
    let state = load(&d.join("a.safetensors")).unwrap().1.adamw.expect("a state");
    assert_eq!((state.t, state.m.len(), state.v[1].len()), (7, 5, 30 * 200));

    t.retain(|(n, _)| *n != "adamw.v.b2");
    write(&d.join("b.safetensors"), &t, &info);
    assert!(
        matches!(checkpoint_err(&d.join("b.safetensors")), CheckpointError::MissingTensor { name, .. } if name == "adamw.v.b2")
    );
    // A state that does not fit the model is not saved.
    let m = Mlp::new(MlpConfig::default(), &vocab(), &mut rand::rngs::StdRng::seed_from_u64(5)).unwrap();
    let bad = CheckpointMeta {
        adamw: Some(mm_tensor::AdamWState { t: 1, m: vec![vec![0.0]], v: vec![vec![0.0]] }),
        ..meta()
    };
    assert!(matches!(save(&d.join("c.safetensors"), &AnyModel::Mlp(m), &bad), Err(ModelError::Tensor(_))));
    assert!(!d.join("c.safetensors").exists());
}

#[test]
fn the_same_state_gives_the_same_bytes() {
    let m = Mlp::new(MlpConfig::default(), &vocab(), &mut rand::rngs::StdRng::seed_from_u64(5)).unwrap();
    let path = dir().join("m.safetensors");
    let meta = CheckpointMeta { step: 7, seed: 3, dataset_sha256: "ab".into(), ..CheckpointMeta::default() };
    let model = AnyModel::Mlp(m);
    // The metadata comes from a fresh HashMap each time, in another order each time.
    let first = mm_models::checkpoint::to_bytes(&path, &model, &meta).unwrap();
    for _ in 0..5 {
        assert!(mm_models::checkpoint::to_bytes(&path, &model, &meta).unwrap() == first);
    }
    // And a checkpoint saved, loaded and saved again is byte for byte the same file.
    save(&path, &model, &meta).unwrap();
    let (back, back_meta) = load(&path).unwrap();
    assert!(mm_models::checkpoint::to_bytes(&path, &back, &back_meta).unwrap() == first);
    // The header stays a safetensors header: its length a multiple of 8.
    assert_eq!(u64::from_le_bytes(first[..8].try_into().unwrap()) % 8, 0);
}

/// A checkpoint's safetensors header is checked against the file before the rest is read
/// (issue #15, item 8): a header that claims huge tensors, a huge (sparse) file of zeros, a valid
/// checkpoint with a huge tail, and a pipe are errors at once, and nothing past the header is
/// read. A 1 TiB file could not be read in a test's time nor held in memory.
#[test]
fn the_header_is_checked_against_the_file_before_the_rest_is_read() {
    let d = dir();
    let corrupt = |path: &Path, says: &str| match checkpoint_err(path) {
        CheckpointError::Corrupt { reason, .. } => assert!(reason.contains(says), "{reason:?}: {says:?}"),
        other => panic!("{}: expected a corrupt checkpoint, got {other}", path.display()),
    };
    // A header claiming a 4 TB tensor, over 16 bytes of data.
    let header = br#"{"W":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0; 16]);
    std::fs::write(d.join("claims.safetensors"), &bytes).unwrap();
    corrupt(&d.join("claims.safetensors"), "tensor \"W\" of shape [1000000, 1000000] claims bytes");
    // Shapes that overflow any integer.
    let header = br#"{"W":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0; 16]);
    std::fs::write(d.join("overflow.safetensors"), &bytes).unwrap();
    corrupt(&d.join("overflow.safetensors"), "tensor \"W\"");

    // 1 TiB of zeros (a sparse file, as /dev/zero would give): a header of length 0.
    let zeros = d.join("zeros.safetensors");
    std::fs::File::create(&zeros).unwrap().set_len(1 << 40).unwrap();
    corrupt(&zeros, "its header");
    // A valid checkpoint with a 1 TiB tail: the header is fine, the file is not its tensors.
    let tail = d.join("tail.safetensors");
    write(&tail, &mlp_tensors(), MLP_META);
    let len = std::fs::metadata(&tail).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&tail).unwrap().set_len(len + (1 << 40)).unwrap();
    corrupt(&tail, "bytes of data");
    for f in ["zeros.safetensors", "tail.safetensors"] {
        std::fs::remove_file(d.join(f)).unwrap();
    }

    // A pipe with no writer: opening it would wait for ever; it is refused, unread.
    #[cfg(unix)]
    {
        let fifo = d.join("pipe.safetensors");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let (tx, rx) = std::sync::mpsc::channel();
            let path = fifo.clone();
            std::thread::spawn(move || tx.send(load(&path).map(|_| ()).map_err(|e| e.to_string())));
            let got = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("load blocked on a pipe");
            let err = got.unwrap_err();
            assert!(err.contains("not a regular file"), "{err}");
        }
    }
}

/// Sizes within what the file holds are still checked against the flags' ranges: an embedding
/// width of 5,000 (`--n-embd` stops at 4,096) is an error naming the setting, not a model built
/// to be filled.
#[test]
fn metadata_sizes_get_the_flags_ranges() {
    let path = dir().join("wide.safetensors");
    let mut meta: Vec<_> = MLP_META.to_vec();
    meta[7] = ("n_embd", "5000");
    write(&path, &mlp_tensors(), &meta);
    let e = checkpoint_err(&path);
    assert!(matches!(&e, CheckpointError::Meta { key, .. } if key == "n_embd"), "{e}");
    assert!(e.to_string().contains("5000, not in 1..=4096"), "{e}");
}
