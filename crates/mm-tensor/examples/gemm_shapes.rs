//! Times the engine's matrix multiply on the six products of one MLP training step (best of 50
//! trials of 2,000 calls each), to compare with other GEMMs at the same shapes; with
//! `--transformer`, on the twelve products of one layer of makemore's Transformer (batch 32 of
//! 16 positions, n_embd 64: each linear's forward `x Wᵀ`, input gradient `G W` and weight
//! gradient `Gᵀ x`).
//!
//! `cargo run --release -p mm-tensor --example gemm_shapes [-- --transformer]`

fn main() {
    let transformer = [
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
    let shapes = if std::env::args().any(|a| a == "--transformer") { &transformer[..] } else { &mlp[..] };
    let calls = if shapes.len() > 6 { 200 } else { 2000 };
    let mut total = 0.0;
    for &(name, (m, k, n), at, bt) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let (mut c, mut pack) = (vec![0f32; m * n], Vec::new());
        let mut best = f64::INFINITY;
        for _ in 0..50 {
            let t = std::time::Instant::now();
            for _ in 0..calls {
                mm_tensor::gemm_f32((m, k, n), (&a, at), (&b, bt), &mut c, &mut pack);
            }
            best = best.min(t.elapsed().as_secs_f64() / calls as f64 * 1e6);
        }
        println!(
            "{name:14} {m:>3}x{k:>3}x{n:>3}: {best:5.2} us ({:.1} GMAC/s)",
            (m * k * n) as f64 / best / 1e3
        );
        total += best;
    }
    println!("total {total:.2} us");
}
