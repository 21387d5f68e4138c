//! Every plot command writes a picture that decodes as an image of the expected size with more
//! than one colour (PNG), or a well-formed SVG with text.

use std::path::Path;

mod common;

use common::{makemore, workdir};

/// Decodes a PNG: (width, height, number of distinct colours).
fn png_facts(path: &Path) -> (u32, u32, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    (info.width, info.height, colours.len())
}

fn run(args: &[&str], paths: &[&Path]) {
    let mut c = makemore();
    c.args(args);
    for p in paths {
        c.arg(p);
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn train_writes_a_loss_plot_and_every_plot_command_draws() {
    let d = workdir();
    let data = d.join("names.txt");
    let run_dir = d.join("run");
    run(&["train", "--steps", "200", "--eval-every", "50", "--data"], &[&data, Path::new("--out"), &run_dir]);
    assert_eq!(png_facts(&run_dir.join("loss.png")).0, 900);

    run(&["plot", "loss", "--run"], &[&run_dir, Path::new("--out"), &d.join("loss.png")]);
    let (w, h, colours) = png_facts(&d.join("loss.png"));
    assert_eq!((w, h), (900, 560));
    assert!(colours > 2, "{colours} colours");

    run(&["plot", "bigram", "--data"], &[&data, Path::new("--out"), &d.join("bigram.png")]);
    let (w, h, colours) = png_facts(&d.join("bigram.png"));
    // The small dataset's vocabulary: '.' and 16 letters (abcehilmnoprstvy); 44 px a cell plus
    // a 20 px border.
    assert_eq!((w, h), (17 * 44 + 20, 17 * 44 + 20));
    assert!(colours > 2);

    run(
        &["plot", "embeddings", "--checkpoint"],
        &[&run_dir.join("model.safetensors"), Path::new("--out"), &d.join("emb.png")],
    );
    let (w, h, colours) = png_facts(&d.join("emb.png"));
    assert_eq!((w, h), (700, 700));
    assert!(colours > 2);

    run(
        &["plot", "embeddings", "--checkpoint"],
        &[&run_dir.join("model.safetensors"), Path::new("--out"), &d.join("emb.svg")],
    );
    let svg = std::fs::read_to_string(d.join("emb.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("width=\"700\"") && svg.contains("<text"),
        "{}",
        &svg[..200.min(svg.len())]
    );
}

#[test]
fn plot_lr_sweep_draws_a_sweep_csv_and_prints_the_suggestion() {
    let d = workdir();
    // A sweep as `cargo xtask lr-sweep` writes it: a noisy valley with its floor at 10^-0.8.
    let exps = mm_models::SweepConfig::default().exponents();
    let runs = (0..2u64)
        .map(|r| {
            let loss = exps
                .iter()
                .enumerate()
                .map(|(i, e)| 2.5 + 3.0 * (e + 0.8).powi(2) + 0.3 * ((i as u64 * 7 + r) % 5) as f32)
                .collect();
            (r, loss)
        })
        .collect();
    let sweep = mm_models::LrSweep::from_losses(exps, runs, 0.98).unwrap();
    let mut csv = Vec::new();
    sweep.write_csv(&mut csv).unwrap();
    std::fs::write(d.join("sweep.csv"), csv).unwrap();

    let out = makemore().args(["plot", "lr-sweep"]).arg(d.join("sweep.csv")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let s = sweep.suggest().unwrap();
    assert!((s.exp - -1.3).abs() < 0.05, "{s:?}");
    assert!(stdout.contains(&format!("suggested learning rate: {:.4}", s.lr)), "{stdout}");
    let (w, h, colours) = png_facts(&d.join("sweep.png"));
    assert_eq!((w, h), (900, 560));
    assert!(colours > 2);

    run(&["plot", "lr-sweep"], &[&d.join("sweep.csv"), Path::new("--out"), &d.join("s.svg")]);
    let svg = std::fs::read_to_string(d.join("s.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("suggested: lr"));
}

#[test]
fn plot_errors_are_one_line() {
    let d = workdir();
    let fail = |args: &[&str], paths: &[&Path], contains: &str| {
        let mut c = makemore();
        c.args(args);
        for p in paths {
            c.arg(p);
        }
        let out = c.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.starts_with("error: ") && err.contains(contains), "{err}");
    };
    fail(&["plot", "loss", "--run"], &[&d], "metrics.csv");
    // A CSV that is not a sweep's; no picture is left behind.
    fail(&["plot", "lr-sweep"], &[&d.join("names.txt")], "expected a sweep.csv");
    assert!(!d.join("names.png").exists());
    fail(&["plot", "lr-sweep"], &[&d.join("nothing.csv")], "cannot read");
    // Another extension is a usage error (exit 2), found before any work.
    let out = makemore()
        .args(["plot", "bigram", "--out", "x.jpg", "--data"])
        .arg(d.join("names.txt"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: ") && err.contains("must end in .png or .svg"), "{err}");
    makemore()
        .args(["train", "--model", "bigram", "--data"])
        .arg(d.join("names.txt"))
        .arg("--out")
        .arg(d.join("b"))
        .output()
        .unwrap();
    fail(
        &["plot", "embeddings", "--checkpoint"],
        &[&d.join("b/model.safetensors")],
        "need an mlp checkpoint",
    );
}
