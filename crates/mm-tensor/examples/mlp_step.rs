//! Runs the lecture's MLP training step in a loop and prints the time per step (the best of 40
//! trials, the figure least disturbed by other work on the machine): a quick stand-alone target
//! for profilers (`perf record`), beside the criterion benches.
//!
//! `cargo run --release -p mm-tensor --example mlp_step [steps per trial] [path...]`
//!
//! With gemm paths named (`avx512`, `avx2`, `portable`, `portable-avx2`, or `all` for every one
//! this CPU runs), the paths take turns trial by trial and each gets its best; without, the step
//! runs on the path in use ([`mm_tensor::gemm_path`]).

mod common;

use mm_tensor::{Grads, Optimizer, Sgd, Tape};
use rand::SeedableRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let steps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let mut rng = rand::rngs::StdRng::seed_from_u64(2147483647);
    let mut mlp = common::LectureMlp::new(&mut rng)?;
    let mut asked: Vec<mm_tensor::GemmPath> = Vec::new();
    for name in std::env::args().skip(2) {
        if name == "all" {
            asked.extend(mm_tensor::GemmPath::ALL.into_iter().filter(|p| p.unsupported().is_none()));
        } else {
            asked.push(mm_tensor::GemmPath::from_name(&name).ok_or(mm_tensor::GemmPathError::Unknown(name))?);
        }
    }
    let paths = if asked.is_empty() { vec![mm_tensor::gemm_path()] } else { asked };
    let (mut tape, mut grads, mut opt) = (Tape::new(), Grads::new(&mlp.params), Sgd::new(0.01f32));
    let mut loss = 0.0;
    let mut best = vec![f64::INFINITY; paths.len()];
    for _ in 0..40 {
        for (i, &path) in paths.iter().enumerate() {
            mm_tensor::set_gemm_path(path)?;
            let start = std::time::Instant::now();
            for _ in 0..steps {
                let g = tape.graph(&mlp.params);
                loss = g.backward_params(mlp.loss(&g), &mut grads)?;
                opt.step(&mut mlp.params, &grads)?;
            }
            best[i] = best[i].min(start.elapsed().as_secs_f64() * 1e6 / steps as f64);
        }
    }
    for (path, best) in paths.iter().zip(&best) {
        println!("gemm {path}: best of 40 trials of {steps} steps: {best:.2} us/step, final loss {loss:.4}");
    }
    Ok(())
}
