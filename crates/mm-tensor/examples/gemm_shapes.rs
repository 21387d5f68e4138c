//! Times the engine's matrix multiply on the six products of one MLP training step, on every
//! gemm path this CPU supports, side by side: the paths take turns, trial by trial (the best of
//! 50 trials of 2,000 calls each), so that a noisy minute slows them alike.
//!
//! `cargo run --release -p mm-tensor --example gemm_shapes [path...]` (the paths: avx512, avx2,
//! portable, portable-avx2; all that this CPU runs by default)

use mm_tensor::GemmPath;

fn main() -> Result<(), mm_tensor::GemmPathError> {
    let shapes = [
        ("emb@W1", (32, 30, 200), false, false),
        ("h@W2", (32, 200, 27), false, false),
        ("hT@dlogits", (200, 32, 27), true, false),
        ("dlogits@W2T", (32, 27, 200), false, true),
        ("embT@dpre", (30, 32, 200), true, false),
        ("dpre@W1T", (32, 200, 30), false, true),
    ];
    let asked: Vec<String> = std::env::args().skip(1).collect();
    let paths: Vec<GemmPath> = if asked.is_empty() {
        GemmPath::ALL.into_iter().filter(|p| p.unsupported().is_none()).collect()
    } else {
        asked
            .iter()
            .map(|name| {
                GemmPath::from_name(name).ok_or_else(|| mm_tensor::GemmPathError::Unknown(name.clone()))
            })
            .collect::<Result<_, _>>()?
    };
    for p in GemmPath::ALL.iter().filter(|p| !paths.contains(p)) {
        println!("{p}: not run ({})", p.unsupported().unwrap_or("not asked for"));
    }
    print!("{:12} {:>11}", "product", "m x k x n");
    for p in &paths {
        print!(" {:>22}", p.name());
    }
    println!();
    let mut totals = vec![0.0; paths.len()];
    let mut macs = 0usize;
    for (name, (m, k, n), at, bt) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let (mut c, mut pack) = (vec![0f32; m * n], Vec::new());
        let mut best = vec![f64::INFINITY; paths.len()];
        for _ in 0..50 {
            for (i, &path) in paths.iter().enumerate() {
                let t = std::time::Instant::now();
                for _ in 0..2000 {
                    mm_tensor::gemm_f32_on(path, (m, k, n), (&a, at), (&b, bt), &mut c, &mut pack)?;
                }
                best[i] = best[i].min(t.elapsed().as_secs_f64() / 2000.0 * 1e6);
            }
        }
        print!("{name:12} {m:>3}x{k:>3}x{n:>3}");
        for (i, &us) in best.iter().enumerate() {
            print!(" {us:6.2} us {:5.1} GMAC/s", (m * k * n) as f64 / us / 1e3);
            totals[i] += us;
        }
        println!();
        macs += m * k * n;
    }
    print!("{:12} {:>11}", "total", macs);
    for us in &totals {
        print!(" {us:6.2} us {:5.1} GMAC/s", macs as f64 / us / 1e3);
    }
    println!();
    Ok(())
}
