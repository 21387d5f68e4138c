//! makemore's self-attention on each gemm path, in a process of its own: the test forces each
//! path in turn ([`mm_tensor::set_gemm_path`] is process-wide), which must not change the path
//! under other tests.

use mm_tensor::{GemmPath, Grads, ParamStore, Tape};
use ndarray::ArrayD;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn randn(shape: &[usize], seed: u64) -> ArrayD<f64> {
    mm_tensor::init::randn(shape, &mut StdRng::seed_from_u64(seed))
}

/// makemore's self-attention at heads of 16 and sequences up to 16 in `f32`, on every gemm path
/// this CPU runs (each forced in turn; the AVX-512 and AVX2 paths have their own attention
/// kernels, `kernels/attention_avx512.rs` and `kernels/attention_avx2.rs`), against the same in
/// `f64` (the general path: a gemm per slice): values and gradients for every length 1 to 16,
/// the gradient written first and added to another use's. Heads of 8 (the general path in `f32`
/// too) are the control. Says which paths ran and which were skipped.
#[test]
fn self_attention_fast_paths_in_f32_match_f64_at_every_length() {
    fn run<T: mm_tensor::Float>(
        x: &ArrayD<f64>,
        u: &ArrayD<f64>,
        h: usize,
        first: bool,
    ) -> (Vec<f64>, Vec<f64>) {
        let c = x.shape()[2] / 3;
        let mut params = ParamStore::<T>::new();
        let id = params.add("qkv", x.mapv(T::of)).unwrap();
        let mut tape = Tape::new();
        let mut grads = Grads::new(&params);
        let g = tape.graph(&params);
        let qkv = g.param(id);
        // The other use of qkv comes before or after the attention on the tape, so that the
        // attention's gradient is the second (added) or the first (written) into qkv's.
        let (y, o) = if first {
            let o = qkv.narrow(2, c, c).tanh();
            (qkv.causal_self_attention(h), o)
        } else {
            let y = qkv.causal_self_attention(h);
            (y, qkv.narrow(2, c, c).tanh())
        };
        let loss = (y * g.array(u.mapv(T::of).view()) + o).sum();
        g.backward(loss, &mut grads).unwrap();
        let f = |a: ndarray::ArrayViewD<'_, T>| a.iter().map(|v| v.to_f64().unwrap()).collect::<Vec<_>>();
        (f(y.to_array().view()), f(grads.get(id)))
    }
    let close = |a: &[f64], b: &[f64], what: &str| {
        let scale = b.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        let worst = a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst <= 2e-5 * scale, "{what}: {worst} apart (largest value {scale})");
    };
    for path in GemmPath::ALL {
        if let Some(why) = path.unsupported() {
            println!("skipped the {path} path: {why}");
            continue;
        }
        mm_tensor::set_gemm_path(path).unwrap();
        for hs in [16, 8] {
            for t in 1..=16 {
                let (b, h) = (3, 2);
                let x = randn(&[b, t, 3 * h * hs], 40 + t as u64);
                let u = randn(&[b, t, h * hs], 80 + t as u64);
                for first in [false, true] {
                    let (y32, g32) = run::<f32>(&x, &u, h, first);
                    let (y64, g64) = run::<f64>(&x, &u, h, first);
                    let case = format!("{path} path, hs {hs} t {t}");
                    close(&y32, &y64, &format!("{case}: output"));
                    close(&g32, &g64, &format!("{case} (attention's gradient added: {}): gradient", !first));
                }
            }
        }
        let kernels = match path {
            GemmPath::Avx512 | GemmPath::Avx2 => {
                "its attention kernels (heads of 16) and the general path (heads of 8)"
            }
            GemmPath::Portable | GemmPath::PortableAvx2 => "the general path only",
        };
        println!("ran the {path} path: {kernels}");
    }
}
