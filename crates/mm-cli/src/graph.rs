//! `makemore graph`: one training step of a model, drawn as micrograd's `draw_dot` draws an
//! expression: every node of the tape with its op, shape and (for small tensors) value and
//! gradient. The engine writes Graphviz DOT (`Graph::to_dot`); for SVG the layout-rs crate lays
//! it out here, so no system Graphviz is needed.

use std::path::Path;

use anyhow::{Context, bail};
use mm_data::{Batch, Examples, Layout, Split, SplitSpec};
use mm_models::Spec;
use mm_tensor::{Grads, Tape};
use rand::SeedableRng;

use crate::cli::GraphArgs;

/// The output's format, by its extension: `svg` or `dot`.
pub fn format_of(out: &Path) -> Result<&'static str, String> {
    match out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("svg") => Ok("svg"),
        Some("dot") | Some("gv") => Ok("dot"),
        _ => Err(format!("{}: the graph is written as .svg or .dot", out.display())),
    }
}

/// Runs `makemore graph`.
pub fn run(args: &GraphArgs) -> anyhow::Result<()> {
    let format = format_of(&args.out).map_err(anyhow::Error::msg)?;
    let data = crate::data::load(&args.data.data)?;
    let vocab = data.vocab();
    let mut spec = Spec::default_of(&args.model).context("a kind of the registry")?;
    if spec.kind() == "bigram" {
        bail!("the bigram counting model is counted, not trained: it has no training step to draw");
    }
    if spec.layout() == Layout::Words {
        spec = spec.with_block_size(data.stats().max_len + 1);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let model = spec.build(&vocab, &mut rng)?;
    let m = model.neural().context("a neural model")?;
    let split = Split::new(data.words(), SplitSpec::default())?;
    let ex = Examples::new(&split.train, &vocab, m.layout(), m.block_size())?;
    let mut batch = Batch::new(args.batch_size as usize, m.block_size());
    ex.sample_into(&mut rng, &mut batch)?;
    let mut tape = Tape::new();
    let mut grads = Grads::new(m.params());
    let g = tape.graph(m.params());
    let loss = m.loss(&g, batch.x.view(), batch.y.as_slice().context("a contiguous batch")?);
    g.backward(loss, &mut grads)?;
    let dot = g.to_dot(Some(&grads));
    let bytes = if format == "dot" { dot.into_bytes() } else { svg(&dot)?.into_bytes() };
    mm_models::checkpoint::write_atomically(&args.out, &bytes)?;
    println!(
        "wrote {} ({} nodes, one training step of {} on {} examples)",
        args.out.display(),
        g.len(),
        spec.kind(),
        args.batch_size
    );
    Ok(())
}

/// `dot` laid out and drawn as SVG.
fn svg(dot: &str) -> anyhow::Result<String> {
    use layout::backends::svg::SVGWriter;
    use layout::gv;
    let mut parser = gv::DotParser::new(dot);
    let ast = parser.process().map_err(|e| anyhow::anyhow!("cannot read the graph's DOT: {e}"))?;
    // The layout crate asserts on graphs it cannot lay out: that is its error, not a crash.
    std::panic::catch_unwind(move || {
        let mut builder = gv::GraphBuilder::new();
        builder.visit_graph(&ast);
        let mut graph = builder.get();
        let mut svg = SVGWriter::new();
        graph.do_it(false, false, false, &mut svg);
        portable_colors(&svg.finalize())
    })
    .map_err(|_| {
        anyhow::anyhow!("cannot lay out this graph as SVG: write it as .dot and draw it with Graphviz")
    })
}

/// The layout crate writes colours with an alpha byte (`#ffffffff`, `#00000000`), which
/// browsers read but other SVG renderers (librsvg, cairosvg) draw as black: an opaque colour
/// becomes `#rrggbb`, a transparent one `none`.
pub fn portable_colors(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len());
    let mut rest = svg;
    while let Some(at) = rest.find("\"#") {
        out.push_str(&rest[..at]);
        let color = rest[at + 2..].split('"').next().unwrap_or_default();
        let hex = color.len() == 8 && color.chars().all(|c| c.is_ascii_hexdigit());
        match color.get(6..).filter(|_| hex) {
            Some("ff" | "FF") => out.push_str(&format!("\"#{}", &color[..6])),
            Some("00") => out.push_str("\"none"),
            _ => out.push_str(&format!("\"#{color}")),
        }
        rest = &rest[at + 2 + color.len()..];
    }
    out.push_str(rest);
    out
}
