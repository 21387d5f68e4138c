//! Issue #15: the loader refuses a checkpoint with NaN or infinite weights unless asked
//! (`LoadOptions::allow_non_finite`, `--allow-non-finite` on sample, eval and plot embeddings),
//! and `plot embeddings` ends on a NaN in `C`.

use std::path::Path;
use std::time::Duration;

use mm_models::ModelError;
use mm_models::checkpoint::{CheckpointError, LoadOptions, load, load_with, save};

mod common;

use common::{makemore, workdir};

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = makemore().current_dir(dir).args(args).timeout(Duration::from_secs(120)).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn non_finite_weights_are_refused_unless_asked() {
    let d = workdir();
    let (code, _, err) =
        run(&d, &["train", "--data", "names.txt", "--out", "run", "--steps", "30", "--eval-every", "10"]);
    assert_eq!(code, 0, "{err}");
    // The run's weights, with a NaN and an infinity in C.
    let (mut model, meta) = load(&d.join("run/model.safetensors")).unwrap();
    {
        let params = model.neural_mut().unwrap().params_mut();
        let c = params.id("C").unwrap();
        params.data_mut(c)[0] = f32::NAN;
        params.data_mut(c)[3] = f32::INFINITY;
    }
    let bad = d.join("nan.safetensors");
    save(&bad, &model, &meta).unwrap();

    // The library: a typed error naming the tensor and the count, unless allowed.
    match load(&bad) {
        Err(ModelError::Checkpoint(CheckpointError::NonFinite { name, count, .. })) => {
            assert_eq!((name.as_str(), count), ("C", 2));
        }
        other => panic!("expected NonFinite, got {:?}", other.map(|(_, m)| m)),
    }
    assert!(load_with(&bad, LoadOptions { allow_non_finite: true }).is_ok());

    // The command line: one line that says what to do, exit 1; the flag lets it through.
    let cases: [&[&str]; 3] = [
        &["sample", "--checkpoint", "nan.safetensors", "-n", "3"],
        &["eval", "--checkpoint", "nan.safetensors", "--data", "names.txt"],
        &["plot", "embeddings", "--checkpoint", "nan.safetensors", "--out", "emb.png"],
    ];
    for args in cases {
        let (code, _, err) = run(&d, args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("NaN or infinite") && err.contains("--allow-non-finite"), "{err}");
        let (code, _, err) = run(&d, &[args, &["--allow-non-finite"]].concat());
        assert_eq!(code, 0, "{args:?} --allow-non-finite: {err}");
    }
    // The picture left out the NaN row and said so; an SVG too.
    assert!(std::fs::metadata(d.join("emb.png")).unwrap().len() > 0);
    let svg =
        ["plot", "embeddings", "--checkpoint", "nan.safetensors", "--out", "emb.svg", "--allow-non-finite"];
    let (code, _, err) = run(&d, &svg);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_to_string(d.join("emb.svg")).unwrap().contains("non-finite rows not drawn"));
    std::fs::remove_dir_all(d).unwrap();
}

/// The plotting library itself ends on any `C`: all NaN, infinite, huge.
#[test]
fn the_embeddings_plot_ends_on_any_values() {
    let d = workdir();
    let itos: Vec<char> = ".abc".chars().collect();
    for (name, v) in [("nan", f32::NAN), ("inf", f32::INFINITY), ("huge", f32::MAX)] {
        for dims in [2, 5] {
            let c =
                ndarray::Array2::from_shape_fn((4, dims), |(i, j)| if i == 1 || j == 0 { v } else { 0.5 });
            let out = d.join(format!("{name}{dims}.png"));
            mm_cli::plot::embeddings(&itos, &c, &out).unwrap();
            assert!(out.exists());
        }
    }
    std::fs::remove_dir_all(d).unwrap();
}
