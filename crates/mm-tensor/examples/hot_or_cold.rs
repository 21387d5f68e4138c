//! Two passes of the lecture MLP's step timed with their data in cache and after other traffic
//! has pushed it out: what fusing either into a neighbouring pass could save (a fused pass finds
//! its data in cache). `tanh` over the hidden layer's `[32, 200]` values (the op on a parameter
//! of that shape, which the graph reads in place), and the SGD update of the MLP's five
//! parameters (11,897 values) after a backward pass. "hot": right after its input was written;
//! "cold": after 256 KB of other writes (about what a step's activations and gradients take).
//! The best of 5,000 trials each, µs.
//!
//! `cargo run --release -p mm-tensor --example hot_or_cold` (pin it: `taskset -c 1`)

use std::hint::black_box;
use std::time::Instant;

mod common;

use mm_tensor::{Grads, Optimizer, ParamStore, Sgd, Tape, init};
use rand::SeedableRng;

const TRIALS: usize = 5000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2147483647);
    let mut mlp = common::LectureMlp::new(&mut rng)?;
    let mut inputs = ParamStore::<f32>::new();
    let pre = inputs.add("pre", init::randn(&[32, 200], &mut rng))?; // tanh's input
    let mut other = vec![1.0f32; 64 * 1024];
    let mut push_out = || {
        other.iter_mut().for_each(|x| *x += 1.0);
        black_box(&other);
    };
    let mut tape = Tape::new();

    // tanh: its input rewritten (hot) or pushed out (cold), then the op alone.
    let (mut hot, mut cold) = (f64::INFINITY, f64::INFINITY);
    for trial in 0..2 * TRIALS {
        let is_hot = trial % 2 == 0;
        if is_hot {
            inputs.data_mut(pre).iter_mut().for_each(|x| *x = black_box(*x));
        } else {
            push_out();
        }
        let g = tape.no_grad(&inputs);
        let x = g.param(pre);
        let t = Instant::now();
        black_box(x.tanh());
        let us = t.elapsed().as_secs_f64() * 1e6;
        if is_hot { hot = hot.min(us) } else { cold = cold.min(us) }
    }
    println!("tanh over [32, 200]: hot {hot:.2} us, cold {cold:.2} us");

    // SGD: right after the backward wrote the gradients (hot), or after other traffic (cold).
    let (mut grads, mut opt) = (Grads::new(&mlp.params), Sgd::new(0.0f32)); // lr 0: the same values each trial
    let (mut hot, mut cold) = (f64::INFINITY, f64::INFINITY);
    for trial in 0..2 * TRIALS {
        {
            let g = tape.graph(&mlp.params);
            g.backward_params(mlp.loss(&g), &mut grads)?;
        }
        let is_hot = trial % 2 == 0;
        if !is_hot {
            push_out();
        }
        let t = Instant::now();
        opt.step(&mut mlp.params, &grads)?;
        let us = t.elapsed().as_secs_f64() * 1e6;
        if is_hot { hot = hot.min(us) } else { cold = cold.min(us) }
    }
    println!("SGD over the MLP's parameters (11,897 values): hot {hot:.2} us, cold {cold:.2} us");
    Ok(())
}
