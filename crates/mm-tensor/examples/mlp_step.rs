//! Runs the lecture's MLP training step in a loop and prints the time per step (the best of 40
//! trials, the figure least disturbed by other work on the machine): a quick stand-alone target
//! for profilers (`perf record`), beside the criterion benches.
//!
//! `cargo run --release -p mm-tensor --example mlp_step [steps per trial] [path...]`
//!
//! With gemm paths named (`avx512`, `avx2`, `portable`, `portable-avx2`, or `all` for every one
//! this CPU runs), the paths take turns trial by trial and each gets its best; without, the step
//! runs on the path in use ([`mm_tensor::gemm_path`]).

use mm_tensor::{Grads, Optimizer, ParamStore, Sgd, Tape, init};
use rand::SeedableRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let mut rng = rand::rngs::StdRng::seed_from_u64(2147483647);
    let mut params = ParamStore::<f32>::new();
    let c = params.add("C", init::randn(&[27, 10], &mut rng))?;
    let w1 = params.add("W1", init::randn(&[30, 200], &mut rng))?;
    let b1 = params.add("b1", init::randn(&[200], &mut rng))?;
    let w2 = params.add("W2", init::randn(&[200, 27], &mut rng))?;
    let b2 = params.add("b2", init::randn(&[27], &mut rng))?;
    let xb = ndarray::Array2::from_shape_fn((32, 3), |(r, k)| ((r * 7 + k * 13) % 27) as u32);
    let yb: Vec<u32> = (0..32).map(|i| (i * 5 % 27) as u32).collect();
    let mut asked: Vec<mm_tensor::GemmPath> = Vec::new();
    for name in std::env::args().skip(2) {
        if name == "all" {
            asked.extend(mm_tensor::GemmPath::ALL.into_iter().filter(|p| p.unsupported().is_none()));
        } else {
            asked.push(mm_tensor::GemmPath::from_name(&name).ok_or(mm_tensor::GemmPathError::Unknown(name))?);
        }
    }
    let paths = if asked.is_empty() { vec![mm_tensor::gemm_path()] } else { asked };
    let (mut tape, mut grads, mut opt) = (Tape::new(), Grads::new(&params), Sgd::new(0.01f32));
    let mut loss = 0.0;
    let mut best = vec![f64::INFINITY; paths.len()];
    for _ in 0..40 {
        for (i, &path) in paths.iter().enumerate() {
            mm_tensor::set_gemm_path(path)?;
            let start = std::time::Instant::now();
            for _ in 0..steps {
                let g = tape.graph(&params);
                let emb = g.param(c).embedding(&xb);
                let h = emb.reshape(&[32, 30]).linear(g.param(w1), g.param(b1)).tanh();
                let logits = h.linear(g.param(w2), g.param(b2));
                loss = g.backward_params(logits.cross_entropy(&yb[..]), &mut grads)?;
                opt.step(&mut params, &grads)?;
            }
            best[i] = best[i].min(start.elapsed().as_secs_f64() * 1e6 / steps as f64);
        }
    }
    for (path, best) in paths.iter().zip(&best) {
        println!("gemm {path}: best of 40 trials of {steps} steps: {best:.2} us/step, final loss {loss:.4}");
    }
    Ok(())
}
