//! Times the engine's matrix multiply on the six products of one MLP training step, on every
//! gemm path this CPU supports, side by side: the paths take turns, trial by trial (the best of
//! 50 trials of 2,000 calls each), so that a noisy minute slows them alike.
//!
//! With `--transformer`, the twelve products of one layer of makemore's Transformer instead
//! (batch 32 of 16 positions, n_embd 64: each linear's forward `x Wᵀ`, input gradient `G W` and
//! weight gradient `Gᵀ x`), 200 calls a trial.
//!
//! With `--cold`, the Transformer's products that read or write a large value instead, on the
//! first path asked for (by default the one in use): warm (every call on the same operands, in
//! cache) and with one operand cold at a time (each call on the next of 64 copies of it, 3 MB
//! to 32 MB in all: out of L2, from L3 or memory, as a step's values come), the best of 20
//! trials. The difference is what the memory costs that product in a training step.
//!
//! With `--packs`, the MLP's two products with a transposed `B` (`G · Wᵀ`, which pack `Wᵀ` on
//! every call), each beside the same product with `B` already row-major: the difference is what
//! the pack costs (docs/performance.md, sessions 15 and 18).
//!
//! `cargo run --release -p mm-tensor --example gemm_shapes [--transformer | --cold | --packs] [path...]`
//! (the paths: avx512, avx2, portable, portable-avx2; all that this CPU runs by default)

use mm_tensor::GemmPath;

fn main() -> Result<(), mm_tensor::GemmPathError> {
    let transformer: [Product; 12] = [
        ("c_attn x@WT", (512, 64, 192), false, true),
        ("c_attn G@W", (512, 192, 64), false, false),
        ("c_attn GT@x", (192, 512, 64), true, false),
        ("c_proj x@WT", (512, 64, 64), false, true),
        ("c_proj G@W", (512, 64, 64), false, false),
        ("c_proj GT@x", (64, 512, 64), true, false),
        ("c_fc x@WT", (512, 64, 256), false, true),
        ("c_fc G@W", (512, 256, 64), false, false),
        ("c_fc GT@x", (256, 512, 64), true, false),
        ("mlp_proj x@WT", (512, 256, 64), false, true),
        ("mlp_proj G@W", (512, 64, 256), false, false),
        ("mlp_proj GT@x", (64, 512, 256), true, false),
    ];
    let mlp = [
        ("emb@W1", (32, 30, 200), false, false),
        ("h@W2", (32, 200, 27), false, false),
        ("hT@dlogits", (200, 32, 27), true, false),
        ("dlogits@W2T", (32, 27, 200), false, true),
        ("embT@dpre", (30, 32, 200), true, false),
        ("dpre@W1T", (32, 200, 30), false, true),
    ];
    let packs = [
        ("dlogits@W2T", (32, 27, 200), false, true),
        ("dlogits@W2", (32, 27, 200), false, false),
        ("dpre@W1T", (32, 200, 30), false, true),
        ("dpre@W1", (32, 200, 30), false, false),
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let (big, cold, packed) = (flag("--transformer"), flag("--cold"), flag("--packs"));
    let (shapes, calls) = match (big, packed) {
        (true, _) => (&transformer[..], 200),
        (false, true) => (&packs[..], 2000),
        (false, false) => (&mlp[..], 2000),
    };
    if let Some(flag) = args
        .iter()
        .find(|a| a.starts_with("--") && !["--transformer", "--cold", "--packs"].contains(&a.as_str()))
    {
        eprintln!("gemm_shapes: unknown option {flag} (the options: --transformer, --cold, --packs)");
        std::process::exit(2);
    }
    let asked: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let paths: Vec<GemmPath> = if asked.is_empty() {
        GemmPath::ALL.into_iter().filter(|p| p.unsupported().is_none()).collect()
    } else {
        asked
            .iter()
            .map(|name| {
                GemmPath::from_name(name).ok_or_else(|| mm_tensor::GemmPathError::Unknown((*name).clone()))
            })
            .collect::<Result<_, _>>()?
    };
    if cold {
        let path = if asked.is_empty() { mm_tensor::gemm_path() } else { paths[0] };
        return cold_operands(path, &transformer);
    }
    for p in GemmPath::ALL.iter().filter(|p| !paths.contains(p)) {
        println!("{p}: not run ({})", p.unsupported().unwrap_or("not asked for"));
    }
    print!("{:14} {:>11}", "product", "m x k x n");
    for p in &paths {
        print!(" {:>22}", p.name());
    }
    println!();
    let mut totals = vec![0.0; paths.len()];
    let mut macs = 0usize;
    for &(name, (m, k, n), at, bt) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let (mut c, mut pack) = (vec![0f32; m * n], Vec::new());
        let mut best = vec![f64::INFINITY; paths.len()];
        for _ in 0..50 {
            for (i, &path) in paths.iter().enumerate() {
                let t = std::time::Instant::now();
                for _ in 0..calls {
                    mm_tensor::gemm_f32_on(path, (m, k, n), (&a, at), (&b, bt), &mut c, &mut pack)?;
                }
                best[i] = best[i].min(t.elapsed().as_secs_f64() / calls as f64 * 1e6);
            }
        }
        print!("{name:14} {m:>3}x{k:>3}x{n:>3}");
        for (i, &us) in best.iter().enumerate() {
            print!(" {us:6.2} us {:5.1} GMAC/s", (m * k * n) as f64 / us / 1e3);
            totals[i] += us;
        }
        println!();
        macs += m * k * n;
    }
    if packed {
        return Ok(()); // pairs of one product, not a step: no total
    }
    print!("{:14} {:>11}", "total", macs);
    for us in &totals {
        print!(" {us:6.2} us {:5.1} GMAC/s", macs as f64 / us / 1e3);
    }
    println!();
    Ok(())
}

/// A product's name, sizes, and whether `A` and `B` are stored transposed.
type Product = (&'static str, (usize, usize, usize), bool, bool);

/// The products of `--cold`: each with its operands warm, then each operand cold in turn.
fn cold_operands(path: GemmPath, transformer: &[Product]) -> Result<(), mm_tensor::GemmPathError> {
    // The products whose large operand in a step is a value out of cache: the forward's outputs
    // `C` and the weight gradients' saved inputs `B` (`A`, the fresh gradient, is warm there);
    // and one input gradient, `C` of which is a recycled gradient buffer, for comparison.
    let picked = ["c_attn x@WT", "c_fc x@WT", "mlp_proj x@WT", "c_fc GT@x", "mlp_proj GT@x", "c_fc G@W"];
    const COPIES: usize = 64;
    println!("{path}: us per call, best of 20 trials of {COPIES} calls");
    println!(
        "{:14} {:>11} {:>8} {:>8} {:>8} {:>8}",
        "product", "m x k x n", "warm", "A cold", "B cold", "C cold"
    );
    for &(name, (m, k, n), at, bt) in transformer.iter().filter(|p| picked.contains(&p.0)) {
        let copies = |len: usize| -> Vec<Vec<f32>> {
            (0..COPIES).map(|j| (0..len).map(|i| ((i + j) % 7) as f32 * 0.1).collect()).collect()
        };
        let (a, b, mut c) = (copies(m * k), copies(k * n), copies(m * n));
        let mut pack = Vec::new();
        print!("{name:14} {m:>3}x{k:>3}x{n:>3}");
        // Which operand walks through its copies: none, A, B, C.
        for cold in [None, Some(0), Some(1), Some(2)] {
            let mut best = f64::INFINITY;
            for _ in 0..20 {
                let t = std::time::Instant::now();
                for j in 0..COPIES {
                    let pick = |op: usize| if cold == Some(op) { j } else { 0 };
                    mm_tensor::gemm_f32_on(
                        path,
                        (m, k, n),
                        (&a[pick(0)], at),
                        (&b[pick(1)], bt),
                        &mut c[pick(2)],
                        &mut pack,
                    )?;
                }
                best = best.min(t.elapsed().as_secs_f64() / COPIES as f64 * 1e6);
            }
            print!(" {best:8.1}");
        }
        println!();
    }
    Ok(())
}
