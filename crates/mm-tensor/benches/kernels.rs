//! Criterion benches of the engine at makemore's shapes: each op (forward, and forward plus
//! backward from an upstream gradient of ones) on a warm tape, the lecture MLP's and the zoo's
//! (the Transformer's, BatchNorm's), and one whole MLP training step of the lecture (block 3,
//! n_embd 10, n_hidden 200, batch 32: forward, backward, SGD update). The zoo's whole training
//! steps: `cargo bench -p mm-models --bench zoo`.
//!
//! `cargo bench -p mm-tensor --bench kernels` (one group: `-- layer_norm`)

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mm_tensor::{Grads, Optimizer, ParamId, ParamStore, Sgd, Tape, init};
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn rng() -> StdRng {
    StdRng::seed_from_u64(2147483647)
}

/// Ids `[rows, cols]` spread over a vocabulary of 27.
fn ids(rows: usize, cols: usize) -> Array2<u32> {
    Array2::from_shape_fn((rows, cols), |(r, c)| ((r * 7 + c * 13) % 27) as u32)
}

/// Benches `op` on parameters of the given shapes: forward only, then forward + backward.
fn bench_op(
    c: &mut Criterion,
    name: &str,
    shapes: &[&[usize]],
    op: impl for<'g> Fn(&[mm_tensor::Var<'g, f32>]) -> mm_tensor::Var<'g, f32>,
) {
    let mut rng = rng();
    let mut params = ParamStore::<f32>::new();
    let pids: Vec<ParamId> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| params.add(&format!("x{i}"), init::randn(s, &mut rng)).unwrap())
        .collect();
    let mut tape = Tape::new();
    let mut grads = Grads::new(&params);
    c.bench_function(&format!("{name}/forward"), |b| {
        b.iter(|| {
            let g = tape.no_grad(&params);
            let x: Vec<_> = pids.iter().map(|&p| g.param(p)).collect();
            black_box(op(&x).with_data(|d| d[0]));
        })
    });
    let upstream = {
        let g = tape.no_grad(&params);
        let x: Vec<_> = pids.iter().map(|&p| g.param(p)).collect();
        ndarray::ArrayD::ones(op(&x).shape().dims())
    };
    c.bench_function(&format!("{name}/forward+backward"), |b| {
        b.iter(|| {
            let g = tape.graph(&params);
            let x: Vec<_> = pids.iter().map(|&p| g.param(p)).collect();
            g.backward_from(op(&x), upstream.view(), &mut grads).unwrap();
            black_box(grads.data(pids[0])[0]);
        })
    });
}

/// The six products of one MLP step, kernel only (no graph): forward `emb @ W1`, `h @ W2`;
/// backward `hᵀ @ dlogits`, `dlogits @ W2ᵀ`, `embᵀ @ dpre`, `dpre @ W1ᵀ`.
fn gemm_shapes(c: &mut Criterion) {
    let shapes = [
        ("emb@W1 32x30x200", (32, 30, 200), false, false),
        ("h@W2 32x200x27", (32, 200, 27), false, false),
        ("hT@dlogits 200x32x27", (200, 32, 27), true, false),
        ("dlogits@W2T 32x27x200", (32, 27, 200), false, true),
        ("embT@dpre 30x32x200", (30, 32, 200), true, false),
        ("dpre@W1T 32x200x30", (32, 200, 30), false, true),
    ];
    for (name, (m, k, n), at, bt) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let (mut out, mut pack) = (vec![0f32; m * n], Vec::new());
        c.bench_function(&format!("gemm {name}"), |bench| {
            bench.iter(|| {
                mm_tensor::gemm_f32((m, k, n), (&a, at), (&b, bt), &mut out, &mut pack);
                black_box(out[0]);
            })
        });
    }
}

fn kernels(c: &mut Criterion) {
    bench_op(c, "matmul 32x30@30x200", &[&[32, 30], &[30, 200]], |x| x[0].matmul(x[1]));
    bench_op(c, "matmul 32x200@200x27", &[&[32, 200], &[200, 27]], |x| x[0].matmul(x[1]));
    bench_op(c, "tanh 32x200", &[&[32, 200]], |x| x[0].tanh());
    bench_op(c, "add 32x200+200", &[&[32, 200], &[200]], |x| x[0] + x[1]);
    let yb: Vec<u32> = (0..32).map(|i| (i * 5 % 27) as u32).collect();
    bench_op(c, "cross_entropy 32x27", &[&[32, 27]], |x| x[0].cross_entropy(&yb[..]));
    let xb = ids(32, 3);
    bench_op(c, "embedding 27x10[32x3]", &[&[27, 10]], |x| x[0].embedding(&xb));
}

/// The ops of makemore's default Transformer (batch 32, block 16, n_embd 64, 4 heads, vocab 27),
/// the lectures' BatchNorm MLP and WaveNet, at their sizes, and `concat` (makemore's RNN and GRU
/// cells, `cat([xt, hprev])`; the fused scans the models train with do without it).
fn zoo_ops(c: &mut Criterion) {
    let (b, t, e, v) = (32, 16, 64, 27);
    bench_op(c, "layer_norm 32x16x64", &[&[b, t, e], &[e], &[e]], |x| x[0].layer_norm(x[1], x[2], 1e-5));
    bench_op(c, "linear_t 32x16x64 (c_attn 192x64)", &[&[b, t, e], &[3 * e, e], &[3 * e]], |x| {
        x[0].linear_t(x[1], Some(x[2]))
    });
    bench_op(c, "causal_self_attention 32x16x192 (4 heads)", &[&[b, t, 3 * e]], |x| {
        x[0].causal_self_attention(4)
    });
    bench_op(c, "gelu 32x16x256", &[&[b, t, 4 * e]], |x| x[0].gelu());
    bench_op(c, "softmax 32x4x16x16", &[&[b, 4, t, t]], |x| x[0].softmax(3));
    bench_op(c, "permute 32x16x4x16 (0213)", &[&[b, t, 4, e / 4]], |x| x[0].permute(&[0, 2, 1, 3]));
    bench_op(c, "narrow 32x16x192 (one of q, k, v)", &[&[b, t, 3 * e]], |x| x[0].narrow(2, e, e));
    bench_op(c, "concat 32x64 and 32x64 (an RNN cell's [xt, hprev])", &[&[b, e], &[b, e]], |x| {
        x[0].graph().concat(&[x[0], x[1]], 1)
    });
    let targets =
        Array2::from_shape_fn((b, t), |(i, j)| if j > 7 + i % 8 { -1 } else { ((i + j) % v) as i64 });
    bench_op(c, "cross_entropy_ignore 32x16x27", &[&[b, t, v]], |x| x[0].cross_entropy_ignore(&targets, -1));
    bench_op(c, "batch_norm [0] 32x200", &[&[32, 200], &[200], &[200]], |x| {
        x[0].batch_norm(x[1], x[2], &[0], 1, 1e-5)
    });
    bench_op(c, "batch_norm [0, 1] 32x4x68", &[&[32, 4, 68], &[68], &[68]], |x| {
        x[0].batch_norm(x[1], x[2], &[0, 1], 0, 1e-5)
    });
}

/// The lecture's MLP: parameters and one minibatch.
pub struct Mlp {
    params: ParamStore<f32>,
    ids: [ParamId; 5],
    xb: Array2<u32>,
    yb: Vec<u32>,
}

fn mlp() -> Mlp {
    let mut rng = rng();
    let mut params = ParamStore::new();
    let mut add = |name: &str, shape: &[usize]| params.add(name, init::randn(shape, &mut rng)).unwrap();
    let ids = [
        add("C", &[27, 10]),
        add("W1", &[30, 200]),
        add("b1", &[200]),
        add("W2", &[200, 27]),
        add("b2", &[27]),
    ];
    Mlp { params, ids, xb: ids_batch(), yb: (0..32).map(|i| (i * 5 % 27) as u32).collect() }
}

fn ids_batch() -> Array2<u32> {
    ids(32, 3)
}

fn mlp_step(c: &mut Criterion) {
    let Mlp { mut params, ids: [cid, w1, b1, w2, b2], xb, yb } = mlp();
    let mut tape = Tape::new();
    let mut grads = Grads::new(&params);
    let mut opt = Sgd::new(0.01f32);
    c.bench_function("mlp step (block 3, n_embd 10, n_hidden 200, batch 32)", |b| {
        b.iter(|| {
            let g = tape.graph(&params);
            let emb = g.param(cid).embedding(&xb);
            let h = emb.reshape(&[32, 30]).linear(g.param(w1), g.param(b1)).tanh();
            let logits = h.linear(g.param(w2), g.param(b2));
            let loss = g.backward_params(logits.cross_entropy(&yb[..]), &mut grads).unwrap();
            opt.step(&mut params, &grads).unwrap();
            black_box(loss)
        })
    });
}

criterion_group!(benches, gemm_shapes, kernels, zoo_ops, mlp_step);
criterion_main!(benches);
