//! The lectures' pictures, as PNG or SVG (by the output's extension), with an embedded font so
//! that text renders on a machine without system fonts. Used by `makemore plot` and by
//! `cargo xtask lr-sweep`.

use std::path::{Path, PathBuf};

use mm_models::LrSweep;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// DejaVu Sans (Bitstream Vera license, see assets/DejaVuSans-LICENSE.txt).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Why a picture could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The output's extension is neither `.png` nor `.svg`.
    #[error("{0}: the output must end in .png or .svg")]
    Extension(PathBuf),
    /// There is nothing to draw.
    #[error("nothing to plot: {0}")]
    Empty(&'static str),
    /// The drawing backend failed (e.g. the directory does not exist).
    #[error("cannot write {path}: {msg}")]
    Draw {
        /// The picture.
        path: PathBuf,
        /// The backend's message.
        msg: String,
    },
    /// An input file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The embedded font is invalid (a build defect).
    #[error("the embedded font is invalid")]
    Font,
}

fn register_font() -> Result<(), PlotError> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).map_err(|_| PlotError::Font)
}

/// Drawing functions fail with the backend's message; [`render!`] adds the path.
type Drawn = Result<(), String>;

fn err(e: impl std::fmt::Display) -> String {
    format!("drawing failed: {}", tidy(&e.to_string()))
}

/// A backend's message without Rust's debug text: the bitmap backend shows its errors with
/// `{:?}` (`ImageError(IoError(Os { code: 28, kind: StorageFull, message: "No space left on
/// device" }))`); the system's message is what says what went wrong.
fn tidy(msg: &str) -> String {
    let msg = msg.trim_start_matches("backend error: ").trim_start_matches("Drawing backend error: ");
    if let Some(start) = msg.find("message: \"") {
        let rest = &msg[start + 10..];
        let text = rest.split('"').next().unwrap_or_default();
        let code = msg.split("code: ").nth(1).and_then(|c| c.split(|ch: char| !ch.is_ascii_digit()).next());
        return match code {
            Some(code) if !code.is_empty() => format!("{text} (os error {code})"),
            _ => text.to_string(),
        };
    }
    if msg.contains("Error(") || msg.contains(" { ") {
        return "the image could not be encoded or written".into();
    }
    msg.to_string()
}

/// The format of a picture, by its path's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.png`.
    Png,
    /// `.svg`.
    Svg,
}

/// The format of the picture at `path` (`.png` or `.svg`, in any case), or
/// [`PlotError::Extension`].
pub fn format_of(path: &Path) -> Result<Format, PlotError> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => Err(PlotError::Extension(path.to_path_buf())),
    }
}

/// Where a picture is drawn before it is renamed over `path`: `.<name>.<pid>.tmp.<ext>` beside
/// it (the backend goes by the extension), so that a failed or interrupted drawing never leaves
/// a partial picture under the name asked for. A run directory throws away stale ones when it is
/// opened.
fn temp_path(path: &Path, format: Format) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let ext = if format == Format::Png { "png" } else { "svg" };
    path.with_file_name(format!(".{name}.{}.tmp.{ext}", std::process::id()))
}

/// Renames the drawn picture `tmp` over `path`, or removes it if the drawing failed.
fn finish(path: &Path, tmp: &Path, drawn: Drawn) -> Result<(), PlotError> {
    let result = drawn.and_then(|()| {
        std::fs::File::open(tmp).and_then(|f| f.sync_all()).map_err(|e| e.to_string())?;
        std::fs::rename(tmp, path).map_err(|e| e.to_string())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result.map_err(|msg| PlotError::Draw { path: path.to_path_buf(), msg })
}

/// Draws with `draw` on a PNG or SVG of `size` at `path`: into a temporary file beside it,
/// renamed over `path` once the picture is whole.
macro_rules! render {
    ($path:expr, $size:expr, $draw:ident ( $($arg:expr),* )) => {{
        let path: &Path = $path;
        let format = format_of(path)?;
        register_font()?;
        let tmp = temp_path(path, format);
        // Created first, so that a missing or read-only directory gets the system's message.
        std::fs::File::create(&tmp)
            .map_err(|e| PlotError::Draw { path: path.to_path_buf(), msg: e.to_string() })?;
        let drawn: Drawn = match format {
            Format::Svg => {
                let mut svg = String::new();
                let drawn = {
                    let root = SVGBackend::with_string(&mut svg, $size).into_drawing_area();
                    $draw(&root, $($arg),*).and_then(|()| root.present().map_err(err))
                };
                drawn.and_then(|()| std::fs::write(&tmp, svg.as_bytes()).map_err(|e| e.to_string()))
            }
            Format::Png => {
                // The backend writes the file when presented, and when dropped unpresented (after
                // a failed drawing): the block ends before `finish` removes or renames it.
                let root = BitMapBackend::new(&tmp, $size).into_drawing_area();
                $draw(&root, $($arg),*).and_then(|()| root.present().map_err(err))
            }
        };
        finish(path, &tmp, drawn)
    }};
}

/// One line of metrics.csv: (step, train loss, dev loss where evaluated).
pub type Metric = (usize, f32, Option<f32>);

/// The training loss (averaged over windows, so the curve is readable) and the dev loss over
/// steps, log scale.
pub fn loss(metrics: &[Metric], path: &Path) -> Result<(), PlotError> {
    if metrics.is_empty() {
        return Err(PlotError::Empty("no metrics"));
    }
    render!(path, (900, 560), draw_loss(metrics))
}

fn draw_loss<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, metrics: &[Metric]) -> Drawn {
    root.fill(&WHITE).map_err(err)?;
    let window = (metrics.len() / 400).max(1);
    let train: Vec<(f64, f64)> = metrics
        .chunks(window)
        .map(|c| (c[c.len() - 1].0 as f64, c.iter().map(|m| f64::from(m.1)).sum::<f64>() / c.len() as f64))
        .filter(|(_, l)| l.is_finite() && *l > 0.0)
        .map(|(s, l)| (s, l.log10()))
        .collect();
    let dev: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|m| m.2.filter(|d| d.is_finite() && *d > 0.0).map(|d| (m.0 as f64, f64::from(d).log10())))
        .collect();
    // NaN, infinite, zero and negative losses have no place on a log scale: they are left out,
    // and the caption says how many (a diverged run, an edited file).
    let skipped = metrics.iter().filter(|m| !(m.1.is_finite() && m.1 > 0.0)).count()
        + metrics.iter().filter(|m| m.2.is_some_and(|d| !(d.is_finite() && d > 0.0))).count();
    let (lo, hi) = range(train.iter().chain(&dev).map(|p| p.1));
    let pad = ((hi - lo) * 0.04).max(0.01);
    let last = metrics.iter().map(|m| m.0).max().unwrap_or(0) as f64;
    let caption = match skipped {
        0 => "loss".to_string(),
        n => format!("loss ({n} NaN, infinite or non-positive values not drawn)"),
    };
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 24))
        .margin(12)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(60)
        // log10 of the loss on a linear axis, labelled with the loss itself: a log scale.
        .build_cartesian_2d(0.0..last.max(1.0), (lo - pad)..(hi + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss (log scale)")
        .x_labels(6)
        .y_labels(12)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{:.2}", 10f64.powf(*y)))
        .draw()
        .map_err(err)?;
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(255, 127, 14);
    chart
        .draw_series(LineSeries::new(train, blue.stroke_width(2)))
        .map_err(err)?
        .label(format!("train (mean of {window} steps)"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2)));
    chart
        .draw_series(dev.iter().map(|&p| Circle::new(p, 4, orange.filled())))
        .map_err(err)?
        .label("dev")
        .legend(move |(x, y)| Circle::new((x + 10, y), 4, orange.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// The smallest and largest of `values` (all finite), or `(0, 1)` when there are none, so that a
/// chart always has a finite, non-empty range (plotters does not end on a NaN or infinite one).
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo.is_finite() && hi.is_finite() { (lo, hi) } else { (0.0, 1.0) }
}

/// The lecture's 27x27 grid of bigram counts: each cell labelled with its pair and count, shaded
/// by count.
pub fn bigram(itos: &[char], counts: &ndarray::Array2<u32>, path: &Path) -> Result<(), PlotError> {
    let v = itos.len() as u32;
    let cell = 44;
    render!(path, (v * cell + 20, v * cell + 20), draw_bigram(itos, counts, cell))
}

fn draw_bigram<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    itos: &[char],
    counts: &ndarray::Array2<u32>,
    cell: u32,
) -> Drawn {
    root.fill(&WHITE).map_err(err)?;
    let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let (c, label) = (cell as i32, ("sans-serif", 11).into_font().color(&RGBColor(60, 60, 60)));
    for ((a, b), &n) in counts.indexed_iter() {
        let (x, y) = (10 + b as i32 * c, 10 + a as i32 * c);
        // White to the lecture's dark blue, by count.
        let t = (n as f64 / max).sqrt();
        let shade = |lo: f64, hi: f64| (lo + (hi - lo) * t) as u8;
        let color = RGBColor(shade(247.0, 8.0), shade(251.0, 48.0), shade(255.0, 107.0));
        root.draw(&Rectangle::new([(x, y), (x + c, y + c)], color.filled())).map_err(err)?;
        let ink = if t > 0.5 { label.clone().color(&WHITE) } else { label.clone() };
        root.draw(&Text::new(format!("{}{}", itos[a], itos[b]), (x + 4, y + 6), ink.clone())).map_err(err)?;
        root.draw(&Text::new(n.to_string(), (x + 4, y + 24), ink)).map_err(err)?;
    }
    Ok(())
}

/// The rows of `C` as points labelled by character: the lecture's picture of learnt embeddings.
/// With more than two dimensions, the first two principal components.
/// Rows with a NaN or an infinity (the weights of a diverged run) are left out, and the caption
/// says how many.
pub fn embeddings(itos: &[char], c: &ndarray::Array2<f32>, path: &Path) -> Result<(), PlotError> {
    let finite: Vec<usize> = (0..c.nrows()).filter(|&i| c.row(i).iter().all(|x| x.is_finite())).collect();
    let rows = c.select(ndarray::Axis(0), &finite);
    let labels: Vec<char> = finite.iter().filter_map(|&i| itos.get(i).copied()).collect();
    let mut points = project_2d(&rows);
    // Finite rows can still project outside f64 (values near f32::MAX): left out too.
    let keep: Vec<bool> = points.iter().map(|p| p.0.is_finite() && p.1.is_finite()).collect();
    let labels: Vec<char> = labels.into_iter().zip(&keep).filter(|(_, k)| **k).map(|(l, _)| l).collect();
    points.retain(|p| p.0.is_finite() && p.1.is_finite());
    let skipped = c.nrows() - points.len();
    render!(path, (700, 700), draw_embeddings(&labels, &points, c.ncols(), skipped))
}

fn draw_embeddings<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    itos: &[char],
    points: &[(f64, f64)],
    dims: usize,
    skipped: usize,
) -> Drawn {
    root.fill(&WHITE).map_err(err)?;
    let range = |f: fn(&(f64, f64)) -> f64| {
        let (lo, hi) = range(points.iter().map(f));
        let pad = ((hi - lo) * 0.08).max(1e-3);
        (lo - pad)..(hi + pad)
    };
    let mut caption = if dims > 2 {
        format!("embeddings C ({dims}-D, first two principal components)")
    } else {
        "embeddings C".into()
    };
    if skipped > 0 {
        caption += &format!(", {skipped} non-finite rows not drawn");
    }
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(range(|p| p.0), range(|p| p.1))
        .map_err(err)?;
    chart.configure_mesh().draw().map_err(err)?;
    let purple = RGBColor(120, 60, 160);
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 11, purple.filled()))).map_err(err)?;
    let white = ("sans-serif", 14).into_font().color(&WHITE);
    chart
        .draw_series(
            points
                .iter()
                .zip(itos)
                .map(|(&p, ch)| EmptyElement::at(p) + Text::new(ch.to_string(), (-4, -7), white.clone())),
        )
        .map_err(err)?;
    Ok(())
}

/// Each row of `c` projected on the first two principal components (or its two columns).
fn project_2d(c: &ndarray::Array2<f32>) -> Vec<(f64, f64)> {
    let x = c.mapv(f64::from);
    if x.nrows() == 0 {
        return Vec::new();
    }
    if x.ncols() <= 2 {
        return x.rows().into_iter().map(|r| (r[0], if r.len() > 1 { r[1] } else { 0.0 })).collect();
    }
    let mean = x.mean_axis(ndarray::Axis(0)).expect("rows");
    let centred = &x - &mean;
    let cov = centred.t().dot(&centred);
    // Power iteration for the top two eigenvectors of the covariance (deflating the first).
    let top = |m: &ndarray::Array2<f64>| {
        let mut v = ndarray::Array1::from_elem(m.nrows(), 1.0);
        for _ in 0..200 {
            let w = m.dot(&v);
            let norm = w.dot(&w).sqrt().max(1e-12);
            v = w / norm;
        }
        v
    };
    let v1 = top(&cov);
    let lambda = v1.dot(&cov.dot(&v1));
    let deflated = &cov - &(lambda * outer(&v1));
    let v2 = top(&deflated);
    centred.rows().into_iter().map(|r| (r.dot(&v1), r.dot(&v2))).collect()
}

fn outer(v: &ndarray::Array1<f64>) -> ndarray::Array2<f64> {
    ndarray::Array2::from_shape_fn((v.len(), v.len()), |(i, j)| v[i] * v[j])
}

/// The size of [`lr_sweep`]'s picture.
pub const LR_SWEEP_SIZE: (u32, u32) = (900, 560);

/// A learning-rate sweep: the raw loss of each repeat (faint) and their mean smoothed curve
/// against the rate's exponent, log scale, with the curve's minimum and the suggested rate marked.
pub fn lr_sweep(sweep: &LrSweep, path: &Path) -> Result<(), PlotError> {
    if sweep.exps.len() < 2 || sweep.runs.is_empty() {
        return Err(PlotError::Empty("a sweep needs two rates and one repeat"));
    }
    let (x0, x1) = (sweep.exps[0], sweep.exps[sweep.exps.len() - 1]);
    if !(x0.is_finite() && x1.is_finite() && x0 < x1) {
        return Err(PlotError::Empty("the sweep's rates are not finite and increasing"));
    }
    render!(path, LR_SWEEP_SIZE, draw_lr_sweep(sweep))
}

fn draw_lr_sweep<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, sweep: &LrSweep) -> Drawn {
    root.fill(&WHITE).map_err(err)?;
    let log = |l: f32| (l.is_finite() && l > 0.0).then(|| f64::from(l).log10());
    let curve = |ys: &[f32]| -> Vec<(f64, f64)> {
        sweep
            .exps
            .iter()
            .zip(ys)
            .filter(|(e, _)| e.is_finite())
            .filter_map(|(&e, &l)| log(l).map(|y| (f64::from(e), y)))
            .collect()
    };
    let raw: Vec<Vec<(f64, f64)>> = sweep.runs.iter().map(|r| curve(&r.loss)).collect();
    let mean = curve(&sweep.mean);
    let (lo, hi) = raw
        .iter()
        .flatten()
        .chain(&mean)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    if !lo.is_finite() {
        return Err("every loss is infinite or NaN".into());
    }
    let pad = ((hi - lo) * 0.04).max(0.01);
    let (x0, x1) = (f64::from(sweep.exps[0]), f64::from(sweep.exps[sweep.exps.len() - 1]));
    let mut chart = ChartBuilder::on(root)
        .caption("learning-rate sweep", ("sans-serif", 24))
        .margin(12)
        .margin_right(40)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, (lo - pad)..(hi + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("log10(learning rate)")
        .y_desc("loss (log scale)")
        .y_labels(12)
        .x_label_formatter(&|x| format!("{x:.1}"))
        .y_label_formatter(&|y| format!("{:.2}", 10f64.powf(*y)))
        .draw()
        .map_err(err)?;
    let faint = RGBColor(150, 170, 200);
    for (k, r) in raw.into_iter().enumerate() {
        let series = chart.draw_series(LineSeries::new(r, faint.stroke_width(1))).map_err(err)?;
        if k == 0 {
            series
                .label(format!("loss at each step ({} repeats)", sweep.runs.len()))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], faint.stroke_width(1)));
        }
    }
    let blue = RGBColor(31, 119, 180);
    chart
        .draw_series(LineSeries::new(mean, blue.stroke_width(3)))
        .map_err(err)?
        .label("mean smoothed loss")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(3)));
    let vline = |e: f32| vec![(f64::from(e), lo - pad), (f64::from(e), hi + pad)];
    if let Some(i) = sweep.argmin() {
        let grey = RGBColor(120, 120, 120);
        let e = sweep.exps[i];
        chart
            .draw_series(DashedLineSeries::new(vline(e), 6, 4, grey.stroke_width(2)))
            .map_err(err)?
            .label(format!("minimum: lr {:.3} (10^{e:.2})", sweep.lr(i)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(2)));
    }
    if let Some(s) = sweep.suggest() {
        let red = RGBColor(214, 39, 40);
        chart
            .draw_series(LineSeries::new(vline(s.exp), red.stroke_width(2)))
            .map_err(err)?
            .label(format!("suggested: lr {:.3} (10^{:.2})", s.lr, s.exp))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}
