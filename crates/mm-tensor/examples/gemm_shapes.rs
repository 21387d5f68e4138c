//! Times the engine's matrix multiply on the six products of one MLP training step (best of 50
//! trials of 2,000 calls each), to compare with other GEMMs at the same shapes.
//!
//! `cargo run --release -p mm-tensor --example gemm_shapes`

fn main() {
    let shapes = [
        ("emb@W1", (32, 30, 200), false, false),
        ("h@W2", (32, 200, 27), false, false),
        ("hT@dlogits", (200, 32, 27), true, false),
        ("dlogits@W2T", (32, 27, 200), false, true),
        ("embT@dpre", (30, 32, 200), true, false),
        ("dpre@W1T", (32, 200, 30), false, true),
    ];
    let mut total = 0.0;
    for (name, (m, k, n), at, bt) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let (mut c, mut pack) = (vec![0f32; m * n], Vec::new());
        let mut best = f64::INFINITY;
        for _ in 0..50 {
            let t = std::time::Instant::now();
            for _ in 0..2000 {
                mm_tensor::gemm_f32((m, k, n), (&a, at), (&b, bt), &mut c, &mut pack);
            }
            best = best.min(t.elapsed().as_secs_f64() / 2000.0 * 1e6);
        }
        println!(
            "{name:12} {m:>3}x{k:>3}x{n:>3}: {best:5.2} us ({:.1} GMAC/s)",
            (m * k * n) as f64 / best / 1e3
        );
        total += best;
    }
    println!("total {total:.2} us");
}
