//! Structure-aware property tests of the files a run reads (issue #15): `summary.json`,
//! `metrics.csv`, `--spec FILE`, checkpoints and datasets, mutated in their structure (fields
//! removed, values of the wrong type, huge numbers, NaN as text, duplicated keys, rows cut short,
//! extra columns, unicode, truncation), give a typed error or a valid result: never a panic, and
//! at the command line a one-line error with exit 1 or 2, never 101 (panic) or 134 (abort), under
//! a 2 GiB cap on memory, so that an allocation sized from a file before it is checked fails the
//! test.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;

mod common;

use common::{makemore, workdir};
use mm_cli::run_files::{Summary, parse_metrics};

/// Values of the wrong type or out of every range, as JSON text.
const HOSTILE: [&str; 22] = [
    "\"NaN\"",
    "\"inf\"",
    "NaN",
    "1e400",
    "-1e400",
    "18446744073709551616",
    "18446744073709551615",
    "1000000000000",
    "-1",
    "-0.0",
    "0",
    "1.5",
    "true",
    "null",
    "[]",
    "{}",
    "\"\u{202e}\u{200d}\u{2028}é\u{1F600}\"",
    "\"\\u0000\\u001b\"",
    "\"\\ud800\"",
    "DEEP",
    "\"mlp\"",
    "3",
];

/// Text inserted into files: characters a file may hold by accident or by malice.
const INSERTED: [&str; 9] = ["\u{feff}", "\u{202e}", "\u{200d}", "é", "\u{1F600}", "\0", "\"", ",", "\r\n"];

/// One mutation of a file, from numbers proptest draws.
#[derive(Clone, Debug)]
struct Mutation {
    kind: u8,
    at: usize,
    pick: usize,
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec((0u8..6, any::<usize>(), any::<usize>()), 1..4)
        .prop_map(|v| v.into_iter().map(|(kind, at, pick)| Mutation { kind, at, pick }).collect())
}

/// Every node of a JSON document, as paths of keys and indices.
fn nodes(v: &Value, path: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(path.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                path.push(Value::String(k.clone()));
                nodes(child, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                path.push(Value::from(i));
                nodes(child, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(mut v: &'a mut Value, path: &[Value]) -> &'a mut Value {
    for seg in path {
        v = match seg {
            Value::String(k) => &mut v[k.as_str()],
            _ => &mut v[seg.as_u64().unwrap() as usize],
        };
    }
    v
}

/// `json` mutated: a node removed or replaced by a hostile value (in the tree), or, in the text,
/// a key duplicated, a character inserted, or the text cut short.
fn mutate_json(json: &Value, muts: &[Mutation]) -> Vec<u8> {
    let mut v = json.clone();
    let mut raw = Vec::new();
    let mut text_muts = Vec::new();
    for m in muts {
        let mut all = Vec::new();
        nodes(&v, &mut Vec::new(), &mut all);
        let path = &all[m.at % all.len()];
        match m.kind {
            0 if !path.is_empty() => {
                let (last, parent) = path.split_last().unwrap();
                match (node_mut(&mut v, parent), last) {
                    (Value::Object(o), Value::String(k)) => {
                        o.remove(k);
                    }
                    (Value::Array(a), i) => {
                        a.remove(i.as_u64().unwrap() as usize);
                    }
                    _ => {}
                }
            }
            1 | 2 => {
                // A placeholder, replaced in the text by the raw value (which may not be JSON).
                *node_mut(&mut v, path) = Value::String(format!("@raw{}@", raw.len()));
                raw.push(HOSTILE[m.pick % HOSTILE.len()]);
            }
            _ => text_muts.push(m.clone()),
        }
    }
    let mut text = serde_json::to_string(&v).unwrap();
    for (i, r) in raw.iter().enumerate() {
        // DEEP: arrays nested past serde_json's recursion limit.
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let r = if *r == "DEEP" { deep.as_str() } else { r };
        text = text.replace(&format!("\"@raw{i}@\""), r);
    }
    let mut bytes = text.into_bytes();
    for m in text_muts {
        let at = m.at % (bytes.len() + 1);
        match m.kind {
            3 => {
                // A key of the document, again, with a hostile value, after an object's '{'.
                let mut all = Vec::new();
                nodes(json, &mut Vec::new(), &mut all);
                let key = all.iter().filter_map(|p| p.last()?.as_str()).nth(m.pick % 40).unwrap_or("steps");
                let opens: Vec<usize> =
                    bytes.iter().enumerate().filter(|(_, b)| **b == b'{').map(|(i, _)| i).collect();
                if let Some(&open) = opens.get(m.at % opens.len().max(1)) {
                    let dup = format!("\"{key}\":{},", HOSTILE[m.pick % HOSTILE.len()]);
                    bytes.splice(open + 1..open + 1, dup.into_bytes());
                }
            }
            4 => {
                let ins = INSERTED[m.pick % INSERTED.len()].as_bytes().to_vec();
                bytes.splice(at..at, ins);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// `csv` mutated by rows and fields: a field replaced by hostile text, a row cut short or given
/// an extra column, a row duplicated (the header too), a blank or overlong line, a character
/// inserted, or the text cut short.
fn mutate_csv(csv: &str, muts: &[Mutation]) -> Vec<u8> {
    const FIELDS: [&str; 17] = [
        "NaN",
        "inf",
        "-inf",
        "1e999",
        "",
        "x",
        "１",
        "18446744073709551616",
        "-1",
        "0x10",
        "\"1\"",
        "1,2",
        "\u{202e}",
        "\0",
        "3.0e-45",
        "\"",
        "\u{1F600}",
    ];
    let mut rows: Vec<Vec<String>> = csv.lines().map(|l| l.split(',').map(String::from).collect()).collect();
    let mut tail = Vec::new();
    for m in muts {
        let r = m.at % rows.len();
        match m.kind {
            0 | 1 => {
                let c = m.pick % rows[r].len().max(1);
                if let Some(f) = rows[r].get_mut(c) {
                    *f = FIELDS[(m.pick / 7) % FIELDS.len()].to_string();
                }
            }
            2 => {
                if m.pick % 2 == 0 {
                    rows[r].pop();
                } else {
                    rows[r].push("9".into());
                }
            }
            3 => {
                let row = match m.pick % 3 {
                    0 => rows[r].clone(),
                    1 => vec![String::new()],
                    _ => vec!["7".repeat(2000)],
                };
                rows.insert(r, row);
            }
            _ => tail.push(m.clone()),
        }
    }
    let mut bytes = rows.iter().map(|r| r.join(",")).collect::<Vec<_>>().join("\n").into_bytes();
    bytes.push(b'\n');
    for m in tail {
        let at = m.at % (bytes.len() + 1);
        if m.kind == 4 {
            let ins = match m.pick % 3 {
                0 => vec![0xff],
                _ => INSERTED[m.pick % INSERTED.len()].as_bytes().to_vec(),
            };
            bytes.splice(at..at, ins);
        } else {
            bytes.truncate(at);
        }
    }
    bytes
}

/// A run's error: one line, naming the file.
fn one_line_naming(e: &impl std::fmt::Display, file: &str) -> Result<(), TestCaseError> {
    let text = e.to_string();
    prop_assert!(text.starts_with(file), "{text}");
    prop_assert!(!text.contains('\n'), "{text}");
    Ok(())
}

/// A run of 20 steps of a small MLP (evaluated every 10), trained once for all the tests.
fn base_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let d = workdir();
        let o = makemore()
            .args([
                "train",
                "--n-embd",
                "2",
                "--n-hidden",
                "8",
                "--steps",
                "20",
                "--eval-every",
                "10",
                "--data",
            ])
            .arg(d.join("names.txt"))
            .arg("--out")
            .arg(d.join("base"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        d.join("base")
    })
}

/// `makemore ARGS`, under a 2 GiB cap on memory: its exit code and stderr. An allocation sized
/// from a file before it is checked ends in an abort (a signal: no code).
fn capped(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2097152 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_makemore"))
        .args(args)
        .output()
        .unwrap();
    (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// The CLI's answer to a file: success, or a one-line error with exit 1 or 2, after any notes
/// the command printed as it read its inputs (`note: ...`, one line each: a dataset whose
/// vocabulary holds invisible characters says so when it is loaded, before a later check can
/// refuse it, e.g. a split left without words).
fn clean(code: Option<i32>, err: &str) -> Result<(), TestCaseError> {
    prop_assert!(matches!(code, Some(0..=2)), "exit {code:?}: {err}");
    if code != Some(0) {
        let after_notes: Vec<&str> = err.lines().skip_while(|l| l.starts_with("note: ")).collect();
        prop_assert!(after_notes.first().is_some_and(|l| l.starts_with("error: ")), "{err}");
        if code == Some(1) {
            prop_assert_eq!(after_notes.len(), 1, "{}", err);
        }
    }
    Ok(())
}

/// A copy of the base run with `name` replaced by `bytes`, resumed to 30 steps.
fn resume_with(name: &str, bytes: &[u8]) -> (Option<i32>, String) {
    let base = base_run();
    let run = base.with_file_name(format!("case-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&run).unwrap();
    for f in ["summary.json", "metrics.csv", "model.safetensors", "best.safetensors"] {
        std::fs::copy(base.join(f), run.join(f)).unwrap();
    }
    std::fs::write(run.join(name), bytes).unwrap();
    let data = base.with_file_name("names.txt");
    let args = ["train", "--resume", "--steps", "30", "--data"].map(std::ffi::OsStr::new);
    let out = capped(&[&args[..], &[data.as_os_str(), "--out".as_ref(), run.as_os_str()]].concat());
    std::fs::remove_dir_all(&run).unwrap();
    out
}

fn base_summary() -> Value {
    serde_json::from_slice(&std::fs::read(base_run().join("summary.json")).unwrap()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_mutated_summary_parses_or_is_a_one_line_error(muts in mutations()) {
        let bytes = mutate_json(&base_summary(), &muts);
        if let Err(e) = Summary::<Value>::parse(Path::new("summary.json"), &bytes) {
            one_line_naming(&e, "summary.json: line ")?;
        }
    }

    #[test]
    fn a_mutated_metrics_csv_parses_or_is_a_one_line_error(muts in mutations()) {
        let csv = std::fs::read_to_string(base_run().join("metrics.csv")).unwrap();
        let bytes = mutate_csv(&csv, &muts);
        if let Err(e) = parse_metrics(Path::new("metrics.csv"), &bytes[..]) {
            one_line_naming(&e, "metrics.csv: line ")?;
        }
    }
}

proptest! {
    // Each case runs the binary: few cases, a few seconds each.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn resume_with_a_mutated_summary_resumes_or_refuses_in_one_line(muts in mutations()) {
        let (code, err) = resume_with("summary.json", &mutate_json(&base_summary(), &muts));
        clean(code, &err)?;
    }

    #[test]
    fn resume_with_a_mutated_metrics_csv_resumes_or_refuses_in_one_line(muts in mutations()) {
        let csv = std::fs::read_to_string(base_run().join("metrics.csv")).unwrap();
        let (code, err) = resume_with("metrics.csv", &mutate_csv(&csv, &muts));
        clean(code, &err)?;
    }

    #[test]
    fn a_mutated_spec_file_trains_or_refuses_in_one_line(
        kind in prop::sample::select(vec!["mlp", "bigram-nn", "transformer", "wavenet", "gru", "bigram"]),
        muts in mutations(),
    ) {
        // The kind's spec at small sizes (a mutation leaves them, or puts one out of range).
        let small = |v: &mut Value| {
            for (k, x) in v.as_object_mut().unwrap().iter_mut() {
                if x.is_u64() && k != "kind" {
                    *x = Value::from(x.as_u64().unwrap().min(4));
                }
            }
        };
        let mut spec: Value = serde_json::to_value(mm_models::Spec::default_of(kind).unwrap()).unwrap();
        small(&mut spec);
        let d = base_run().parent().unwrap();
        let file = d.join(format!("spec-{}.json", rand::random::<u64>()));
        std::fs::write(&file, mutate_json(&spec, &muts)).unwrap();
        let out = d.join(format!("spec-run-{}", rand::random::<u64>()));
        let args = ["train", "--steps", "2", "--save-every", "0", "--spec"].map(std::ffi::OsStr::new);
        let data = d.join("names.txt");
        let rest = [file.as_os_str(), "--data".as_ref(), data.as_os_str(), "--out".as_ref(), out.as_os_str()];
        let (code, err) = capped(&[&args[..], &rest].concat());
        // The counting model takes no --steps: a usage error, also a clean answer.
        clean(code, &err)?;
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// A device or a pipe in place of a run file or a spec file is refused before it is read
/// (/dev/zero would be read until memory ends), and an oversized summary.json before it is read.
#[cfg(unix)]
#[test]
fn devices_and_oversized_files_are_refused_before_they_are_read() {
    let zero = Path::new("/dev/zero");
    for name in ["summary.json", "metrics.csv"] {
        let base = base_run();
        let run = base.with_file_name(format!("device-{name}"));
        std::fs::create_dir_all(&run).unwrap();
        for f in ["summary.json", "metrics.csv", "model.safetensors", "best.safetensors"] {
            std::fs::copy(base.join(f), run.join(f)).unwrap();
        }
        std::fs::remove_file(run.join(name)).unwrap();
        std::os::unix::fs::symlink(zero, run.join(name)).unwrap();
        let data = base.with_file_name("names.txt");
        let args = ["train", "--resume", "--steps", "30", "--data"].map(std::ffi::OsStr::new);
        let (code, err) =
            capped(&[&args[..], &[data.as_os_str(), "--out".as_ref(), run.as_os_str()]].concat());
        assert_eq!(code, Some(1), "{name}: {err}");
        assert!(err.contains(&format!("{name} is not a regular file")), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let (code, err) = capped(&["train", "--spec", "/dev/zero"].map(std::ffi::OsStr::new));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("/dev/zero is not a regular file"), "{err}");
    // A summary.json larger than any run writes (sparse: no disk used).
    let big = base_run().with_file_name("big-summary.json");
    std::fs::File::create(&big).unwrap().set_len(mm_cli::run_files::SUMMARY_LIMIT + 1).unwrap();
    let e = Summary::<Value>::read(&big).unwrap_err().to_string();
    assert!(e.contains("more than the 16777216 a run writes"), "{e}");
}

/// A checkpoint mutated in its structure: the safetensors header (a JSON document: each
/// tensor's dtype, shape and offsets, and the metadata: kind, sizes, vocabulary, step) mutated
/// as summary.json is, its recorded length kept or corrected, and weights made NaN or infinite.
fn mutate_checkpoint(
    bytes: &[u8],
    muts: &[Mutation],
    fix_length: bool,
    poison: Option<(usize, u32)>,
) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut data = bytes[8 + n..].to_vec();
    if let Some((at, bits)) = poison {
        let at = (at % (data.len() / 4)) * 4;
        data[at..at + 4].copy_from_slice(&bits.to_le_bytes());
    }
    let new_header = mutate_json(&header, muts);
    let len = if fix_length { new_header.len() as u64 } else { n as u64 };
    let mut out = len.to_le_bytes().to_vec();
    out.extend(new_header);
    out.extend(data);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn a_mutated_checkpoint_samples_or_refuses_in_one_line(
        muts in mutations(),
        fix_length in any::<bool>(),
        poison in prop::option::of((any::<usize>(), prop::sample::select(vec![0x7fc0_0000u32, 0x7f80_0000, 0xff80_0000]))),
    ) {
        let base = std::fs::read(base_run().join("model.safetensors")).unwrap();
        let file = base_run().with_file_name(format!("ckpt-{}.safetensors", rand::random::<u64>()));
        std::fs::write(&file, mutate_checkpoint(&base, &muts, fix_length, poison)).unwrap();
        let args = ["sample", "-n", "2", "--checkpoint"].map(std::ffi::OsStr::new);
        let (code, err) = capped(&[&args[..], &[file.as_os_str()]].concat());
        std::fs::remove_file(&file).unwrap();
        clean(code, &err)?;
    }
}

/// A dataset mutated line by line: lines removed, duplicated, emptied or made very long, and
/// characters inserted (a BOM, RLO, ZWJ, NUL, CR, a quote, invalid UTF-8), or cut short.
fn mutate_dataset(names: &str, muts: &[Mutation]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = names.lines().map(|l| l.as_bytes().to_vec()).collect();
    for m in muts {
        let r = m.at % lines.len().max(1);
        match (m.kind, lines.is_empty()) {
            (_, true) => lines.push(b"x".to_vec()),
            (0, _) => {
                lines.remove(r);
            }
            (1, _) => lines.insert(r, lines[r].clone()),
            (2, _) => lines[r] = if m.pick % 2 == 0 { Vec::new() } else { vec![b'a'; 1 + m.pick % 5000] },
            (3 | 4, _) => {
                let ins = match m.pick % 4 {
                    0 => vec![0xff],
                    _ => INSERTED[m.pick % INSERTED.len()].as_bytes().to_vec(),
                };
                let at = m.pick % (lines[r].len() + 1);
                lines[r].splice(at..at, ins);
            }
            _ => lines.truncate(r),
        }
    }
    lines.join(&b'\n')
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_mutated_dataset_is_read_or_refused_in_one_line(muts in mutations()) {
        let d = base_run().parent().unwrap();
        let names = std::fs::read_to_string(d.join("names.txt")).unwrap();
        let file = d.join(format!("data-{}.txt", rand::random::<u64>()));
        std::fs::write(&file, mutate_dataset(&names, &muts)).unwrap();
        let out = d.join(format!("data-run-{}", rand::random::<u64>()));
        for args in [&["info", "--data"][..], &["train", "--model", "bigram", "--out"]] {
            let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
            if args[0] == "train" {
                all.extend([out.as_os_str(), "--data".as_ref()]);
            }
            all.push(file.as_os_str());
            let (code, err) = capped(&all);
            clean(code, &err)?;
        }
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_dir_all(&out);
    }
}
