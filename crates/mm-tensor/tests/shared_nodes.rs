//! Every op of the engine read by shared nodes: as an intermediate node that other ops also read
//! (a full-shaped add or a reshape, which hand their gradient buffer on where they can), with one
//! node in several of its input slots, and in random graphs of all of them. Each case is checked
//! against central finite differences in `f64`, and `backward` against `backward_params` (the
//! training step's pass, whose buffers are recycled) to the bit, step after step on one tape.
//!
//! `tests/gradcheck.rs` checks each op on its own and random graphs of the elementwise and shape
//! ops; this file widens that to every op kind (batched products, attention, the norms, the
//! recurrent scans, the fused embeddings and losses). It was written by a fresh-eyes review in
//! session 21 after `concat` had lost gradients when its inputs were also read elsewhere (session
//! 20); that review found one more defect, `pow(0)`'s NaN gradient at 0, now fixed and checked at
//! the end of this file.

mod common;

use common::Dist;
use mm_tensor::{Float, Grads, Graph, ParamStore, Tape, Var, init};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// [`common::check_seeded`] with inputs drawn from the standard normal.
fn check_seeded(
    name: &str,
    seed: u64,
    shapes: &[&[usize]],
    f: impl for<'g> Fn(&'g Graph<'g, f64>, &[Var<'g, f64>]) -> Var<'g, f64>,
) {
    let shapes: Vec<(&[usize], Dist)> = shapes.iter().map(|&s| (s, Dist::Normal)).collect();
    common::check_seeded(name, seed, &shapes, f)
}

/// A constant of shape `dims` (deterministic values).
fn konst<'g, T: Float>(g: &'g Graph<'g, T>, dims: &[usize], salt: usize) -> Var<'g, T> {
    let n: usize = dims.iter().product();
    let data: Vec<T> = (0..n).map(|i| T::of(((i * 7 + salt * 3) % 11) as f64 / 11.0 - 0.4)).collect();
    g.input(dims, &data)
}

/// One node of a random graph: reads `a` and `b` (both `[2, 3, 4]`), returns `[2, 3, 4]`.
fn node<'g, T: Float>(g: &'g Graph<'g, T>, kind: usize, a: Var<'g, T>, b: Var<'g, T>) -> Var<'g, T> {
    let half = T::of(0.5);
    let w44 = |v: Var<'g, T>| v.reshape(&[6, 4]).narrow(0, 1, 4) * half; // [4, 4]
    let vec4 = |v: Var<'g, T>| v.select(0, 1).select(0, 2); // [4]
    let ids23 = ndarray::arr2(&[[0u32, 5, 2], [5, 5, 1]]);
    match kind {
        0 => a.tanh(),
        1 => a + b,
        2 => a * b,
        3 => a - b,
        4 => a + a,
        5 => a * a,
        6 => a.matmul(b.transpose(1, 2)).matmul(a) * T::of(0.3),
        7 => a.matmul(a.transpose(1, 2)).matmul(b) * T::of(0.3),
        8 => a.matmul(w44(b)),
        9 => a.matmul(w44(b).reshape(&[1, 4, 4])),
        10 => {
            a.reshape(&[2, 1, 3, 4])
                .matmul(b.reshape(&[1, 2, 4, 3]))
                .matmul(a.reshape(&[2, 1, 3, 4]))
                .sum_axis(1, false)
                * T::of(0.2)
        }
        11 => a.linear(w44(b), vec4(b)),
        12 => a.linear_t(w44(b), Some(vec4(a))),
        13 => a.linear_t(w44(a), None),
        14 => a.permute(&[2, 0, 1]).reshape(&[2, 3, 4]),
        15 => a.transpose(0, 1).tanh().transpose(0, 1),
        16 => g.concat(&[a.narrow(2, 0, 1), b.narrow(2, 1, 3)], 2),
        17 => g.concat(&[a, a], 1).narrow(1, 2, 3),
        18 => g.stack(&[a.select(1, 2), b.select(1, 0), a.select(1, 1)], 1),
        19 => a.softmax(2) + b.softmax(1),
        20 => a.log_softmax(0) * half,
        21 => a.layer_norm(vec4(b), vec4(a), 1e-5),
        22 => a.batch_norm(vec4(b), vec4(a), &[0, 1], 1, 1e-5),
        23 => a.batch_norm(b.select(0, 0).select(1, 0), b.select(0, 1).select(1, 3), &[0, 2], 0, 1e-5),
        24 => {
            let stats = (konst(g, &[4], 1), konst(g, &[4], 2) * T::of(0.1) + T::of(1.0));
            a.batch_norm_eval(vec4(b), vec4(a), &[0, 1], stats, 1e-5)
        }
        25 => a.causal_attention(a, a),
        26 => a.causal_attention(b, a),
        27 => g.concat(&[a, b, a], 2).causal_self_attention(2),
        28 => g.concat(&[a, a, b], 2).rotary_qk(2, 1).causal_self_attention(1),
        29 => g.concat(&[a, b, a], 2).rotary_qk(1, 0).narrow(2, 2, 4),
        30 => a.masked_fill(&mm_tensor::causal_mask(4).slice(ndarray::s![1.., ..]).to_owned(), -1.0),
        31 => a.dropout(0.3, &mut StdRng::seed_from_u64(9)),
        32 => a - a.mean_axes(&[0, 2], true) + a * b.var_axes(&[1], 1, true),
        33 => a * b.sum_axis(1, true) * T::of(0.3) + a.mean_axis(2, true),
        34 => a.causal_mean(1) + b.causal_mean(2),
        35 => a.reshape(&[6, 4]).embedding(&ids23),
        36 => {
            let ids = ndarray::arr3(&[[[0u32, 5], [2, 2], [4, 1]], [[3, 3], [5, 0], [1, 1]]]);
            let w = g.concat(&[b.reshape(&[6, 4]), a.reshape(&[6, 4])], 0).narrow(0, 2, 8) * half;
            a.reshape(&[6, 4]).embedding_linear(&ids, w, Some(vec4(b)))
        }
        37 => {
            let ids = ndarray::arr3(&[[[0u32, 5], [2, 2], [4, 1]], [[3, 3], [5, 0], [1, 1]]]);
            let w = g.concat(&[b.reshape(&[4, 6]), a.reshape(&[4, 6])], 1).narrow(1, 1, 8) * half;
            a.reshape(&[6, 4]).embedding_linear_t(&ids, w, None)
        }
        38 => {
            let w = g.concat(&[w44(b), w44(a)], 1); // [4, 8]
            a.rnn_scan(b.select(1, 0), w, vec4(b))
        }
        39 => {
            let w = g.concat(&[w44(b), w44(a)], 1);
            let w2 = g.concat(&[w44(a), w44(a)], 1);
            a.gru_scan(b.select(1, 2), [(w, vec4(b)), (w2, vec4(a)), (w, vec4(a))])
        }
        40 => a * a.cross_entropy(&ndarray::arr2(&[[0u32, 3, 2], [1, 1, 3]])),
        41 => a * b.cross_entropy_ignore(&ndarray::arr2(&[[0i64, -1, 2], [-1, 1, 3]]), -1),
        42 => b * a.reshape(&[6, 4]).lookup_cross_entropy(&[0u32, 5, 5, 2][..], &[1u32, 3, 0, 0][..]),
        43 => a / (b * b + T::of(1.0)),
        44 => (a * a + T::of(1.0)).sqrt() + (b * b + T::of(0.5)).pow(-0.5),
        45 => a.gelu() + b.sigmoid(),
        46 => a.reshape(&[6, 4]).t().reshape(&[2, 3, 4]),
        47 => g.stack(&[a, b, a], 0).mean_axis(0, false),
        _ => (a * half).exp(),
    }
}

const KINDS: usize = 49;

fn graph<'g, T: Float>(g: &'g Graph<'g, T>, x: &[Var<'g, T>], ops: &[(usize, usize, usize)]) -> Var<'g, T> {
    let mut nodes = vec![x[0], x[1]];
    for &(kind, i, j) in ops {
        let (a, b) = (nodes[i % nodes.len()], nodes[j % nodes.len()]);
        // Keep values bounded so that finite differences stay accurate.
        nodes.push(node(g, kind, a, b).tanh());
    }
    let n = nodes.len();
    nodes[n - 1] + nodes[n / 2] * T::of(0.5)
}

/// Every kind once on inputs that are intermediate nodes, each both alone and with its inputs
/// shared with another consumer.
#[test]
fn each_kind_on_intermediate_nodes() {
    for kind in 0..KINDS {
        check_seeded(&format!("kind {kind}"), kind as u64, &[&[2, 3, 4], &[2, 3, 4]], |g, x| {
            let (a, b) = (x[0].tanh(), x[1] * 1.0);
            node(g, kind, a, b)
        });
        check_seeded(&format!("kind {kind} shared"), 100 + kind as u64, &[&[2, 3, 4], &[2, 3, 4]], |g, x| {
            let (a, b) = (x[0].tanh(), x[1] * 1.0);
            // `a` read by the op and by a full-shaped add (which passes its buffer where it can),
            // and by a reshape.
            node(g, kind, a, b) + (a + b) + a.reshape(&[24]).reshape(&[2, 3, 4]) * 0.5
        });
        check_seeded(&format!("kind {kind} same"), 200 + kind as u64, &[&[2, 3, 4]], |g, x| {
            let a = x[0].tanh();
            node(g, kind, a, a)
        });
    }
}

/// `backward` and `backward_params` in f32, step after step on a tape (alternating), give the
/// same bits.
fn f32_passes_agree(ops: &[(usize, usize, usize)], seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut params = ParamStore::<f32>::new();
    for i in 0..2 {
        params.add(&format!("x{i}"), init::randn::<f32, _>(&[2, 3, 4], &mut rng)).unwrap();
    }
    let ids: Vec<_> = params.ids().collect();
    let mut want = Grads::new(&params);
    {
        let mut tape = Tape::new();
        let g = tape.graph(&params);
        let x: Vec<_> = ids.iter().map(|&id| g.param(id)).collect();
        let loss = graph(&g, &x, ops).sum();
        g.backward(loss, &mut want).unwrap();
    }
    let mut tape = Tape::new();
    let mut got = Grads::new(&params);
    for step in 0..4 {
        let g = tape.graph(&params);
        let x: Vec<_> = ids.iter().map(|&id| g.param(id)).collect();
        let loss = graph(&g, &x, ops).sum();
        if step % 3 == 2 {
            g.backward(loss, &mut got).unwrap();
        } else {
            g.backward_params(loss, &mut got).unwrap();
        }
        for &id in &ids {
            let (a, b) = (want.data(id), got.data(id));
            let same = a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "f32 step {step} d/d{}: {a:?} vs {b:?}", params.name(id));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_graphs_of_every_op(ops in prop::collection::vec((0usize..KINDS, 0usize..64, 0usize..64), 1..16), seed in 0u64..1000) {
        check_seeded("graph", seed, &[&[2, 3, 4], &[2, 3, 4]], |g, x| graph(g, x, &ops));
        f32_passes_agree(&ops, seed);
    }
}

/// One node in several input slots of one op, as a parameter and as an intermediate node.
#[test]
fn one_node_in_several_slots() {
    type F = for<'g> fn(&'g Graph<'g, f64>, Var<'g, f64>) -> Var<'g, f64>;
    let cases: &[(&str, &[usize], F)] = &[
        ("x@x", &[4, 4], |_, x| x.matmul(x)),
        ("x@x bmm", &[2, 3, 3], |_, x| x.matmul(x)),
        ("linear(x, x, row)", &[4, 4], |_, x| x.linear(x, x.select(0, 1))),
        ("linear_t(x, x, row)", &[4, 4], |_, x| x.linear_t(x, Some(x.select(1, 2)))),
        ("layer_norm(x, w, w)", &[3, 4], |_, x| {
            let w = x.select(0, 1);
            x.layer_norm(w, w, 1e-5)
        }),
        ("batch_norm(x, w, w)", &[3, 4], |_, x| {
            let w = x.select(0, 2);
            x.batch_norm(w, w, &[0], 1, 1e-5)
        }),
        ("embedding_linear(x, ids, x)", &[4, 2], |_, x| {
            x.embedding_linear(&ndarray::arr2(&[[0u32, 3], [1, 1], [2, 0]]), x, Some(x.select(0, 3)))
        }),
        ("attention(x, x, x)", &[2, 4, 3], |_, x| x.causal_attention(x, x)),
        ("concat(x, x, x)", &[2, 3], |g, x| g.concat(&[x, x, x], 1)),
        ("stack(x, x)", &[2, 3], |g, x| g.stack(&[x, x], 1)),
        ("x - x", &[2, 3], |_, x| (x - x) + x * 0.5),
        ("x / x", &[2, 3], |_, x| x / (x * x + 1.0)),
        ("rnn(x, ...)", &[2, 2, 2], |g, x| {
            let w = g.concat(&[x.reshape(&[4, 2]).narrow(0, 0, 2), x.reshape(&[4, 2]).narrow(0, 2, 2)], 1);
            x.rnn_scan(x.select(1, 1), w, x.select(0, 0).select(0, 1))
        }),
    ];
    for (i, (name, shape, f)) in cases.iter().enumerate() {
        check_seeded(&format!("{name} param"), 300 + i as u64, &[shape], |g, x| f(g, x[0]));
        check_seeded(&format!("{name} node"), 400 + i as u64, &[shape], |g, x| f(g, x[0].tanh()));
        check_seeded(&format!("{name} node+"), 500 + i as u64, &[shape], |g, x| {
            let h = x[0].tanh();
            let y = f(g, h);
            // h also read by a pass-through after the op.
            y.sum() + (h + h.reshape(&[h.shape().numel()]).reshape(h.shape().dims())).sum()
        });
    }
}

/// A GPT-like step at sizes that take the f32 fast paths (AVX-512/AVX2 gemm, attention kernels
/// for heads of 16 and T <= 16), with nodes shared across op families: f32 gradients against
/// f64's, and `backward` against `backward_params` in f32 step after step (bits).
fn big_graph<'g, T: Float>(_g: &'g Graph<'g, T>, p: &[Var<'g, T>]) -> Var<'g, T> {
    let (b, t, c, v) = (3usize, 16usize, 32usize, 27usize);
    let ids = ndarray::Array2::from_shape_fn((b, t), |(i, j)| ((i * 7 + j * 5) % v) as u32);
    let targets = ndarray::Array2::from_shape_fn((b, t), |(i, j)| {
        if (i + j) % 5 == 4 { -1i64 } else { ((i * 3 + j * 11) % v) as i64 }
    });
    let [wte, ln_w, ln_b, w_qkv, b_qkv, w_o, w1, b1, w2, b2, w_head, w_ctx] = p[..] else { panic!() };
    let x = wte.embedding(&ids); // [B, T, C]
    let h = x.layer_norm(ln_w, ln_b, 1e-5);
    let qkv = h.linear_t(w_qkv, Some(b_qkv)); // [B, T, 3C]
    let att = qkv.rotary_qk(2, 0).causal_self_attention(2); // [B, T, C]
    // The same heads composed with the general attention, reading qkv again.
    let head = |i: usize| qkv.narrow(2, i * c, c).reshape(&[b, t, 2, 16]).permute(&[0, 2, 1, 3]);
    let att2 = head(0).causal_attention(head(1), head(1)).permute(&[0, 2, 1, 3]).reshape(&[b, t, c]);
    let x2 = x + att.linear_t(w_o, None) + att2 * T::of(0.5);
    let h2 = x2.layer_norm(ln_w, ln_b, 1e-5); // the same LayerNorm weights twice
    let m = h2.linear(w1, b1).gelu().linear(w2, b2);
    let x3 = x2 + m + h2.batch_norm(ln_w, ln_b, &[0, 1], 0, 1e-5) * T::of(0.1);
    // The embedding table read again, fused with a linear layer over 2 slots.
    let ctx_ids = ndarray::Array3::from_shape_fn((b, t, 2), |(i, j, k)| ((i + j * 3 + k * 13) % v) as u32);
    let ctx = wte.embedding_linear(&ctx_ids, w_ctx, None); // [B, T, C]
    let logits = (x3 + ctx).matmul(w_head); // [B, T, V]
    logits.cross_entropy_ignore(&targets, -1) + (x3 * x3).mean() * T::of(0.01)
}

fn big_params<T: Float>() -> ParamStore<T> {
    let (c, v) = (32usize, 27usize);
    let mut rng = StdRng::seed_from_u64(77);
    let mut params = ParamStore::<T>::new();
    for (name, shape, scale) in [
        ("wte", &[v, c][..], 1.0),
        ("ln_w", &[c], 1.0),
        ("ln_b", &[c], 0.3),
        ("w_qkv", &[3 * c, c], 0.3),
        ("b_qkv", &[3 * c], 0.1),
        ("w_o", &[c, c], 0.2),
        ("w1", &[c, 4 * c], 0.2),
        ("b1", &[4 * c], 0.1),
        ("w2", &[4 * c, c], 0.1),
        ("b2", &[c], 0.1),
        ("w_head", &[c, v], 0.2),
        ("w_ctx", &[2 * c, c], 0.2),
    ] {
        let x: ArrayD<f64> = init::randn(shape, &mut rng) * scale;
        params.add(name, x.mapv(T::of)).unwrap();
    }
    params
}

fn big_grads<T: Float>(params: &ParamStore<T>, tape: &mut Tape<T>, grads: &mut Grads<T>, recycle: bool) -> T {
    let g = tape.graph(params);
    let p: Vec<_> = params.ids().map(|id| g.param(id)).collect();
    let loss = big_graph(&g, &p);
    if recycle { g.backward_params(loss, grads).unwrap() } else { g.backward(loss, grads).unwrap() }
}

#[test]
fn big_graph_f32_against_f64_and_passes() {
    println!("gemm path: {:?}", mm_tensor::gemm_path());
    let (p32, p64) = (big_params::<f32>(), big_params::<f64>());
    let mut g64 = Grads::new(&p64);
    big_grads(&p64, &mut Tape::new(), &mut g64, false);
    let mut want = Grads::new(&p32);
    big_grads(&p32, &mut Tape::new(), &mut want, false);
    for id in p64.ids() {
        let (a, b) = (want.data(id), g64.data(id));
        let scale = b.iter().fold(1e-4f64, |m, v| m.max(v.abs()));
        let worst = a.iter().zip(b).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
        assert!(worst <= 2e-3 * scale, "{}: f32 vs f64 {worst} (scale {scale})", p64.name(id));
    }
    let mut tape = Tape::new();
    let mut got = Grads::new(&p32);
    for step in 0..5 {
        big_grads(&p32, &mut tape, &mut got, step % 3 != 1);
        for id in p32.ids() {
            let same = want.data(id).iter().zip(got.data(id)).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "step {step}: {} differs between passes", p32.name(id));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The fused families at random (small, edge) sizes, on intermediate inputs that other
    /// nodes also read.
    #[test]
    fn fused_ops_at_random_sizes(b in 1usize..3, t in 1usize..4, e in 0usize..3, h in 1usize..3, s in 1usize..3, v in 1usize..4, seed in 0u64..1000, which in 0usize..6) {
        match which {
            0 => check_seeded("rnn", seed, &[&[b, t, e], &[b, h], &[h, e + h], &[h]], |_, x| {
                let xs = x[0].tanh();
                let h0 = x[1] * 1.0;
                xs.rnn_scan(h0, x[2], x[3]) * h0.reshape(&[b, 1, h]) + (xs * xs).sum()
            }),
            1 => check_seeded("gru", seed, &[&[b, t, e], &[b, h], &[h, e + h], &[h], &[h, e + h]], |_, x| {
                let xs = x[0].tanh();
                let (w, bias) = (x[2] * 1.0, x[3].tanh());
                xs.gru_scan(x[1], [(w, bias), (x[4], bias), (w, x[3])]) + bias
            }),
            2 => {
                let ids = ndarray::Array3::from_shape_fn((b, t, s), |(i, j, k)| ((i * 5 + j * 3 + k * 7 + seed as usize) % v) as u32);
                let e1 = e + 1;
                check_seeded("embedding_linear", seed, &[&[v, e1], &[s * e1, h], &[h]], |_, x| {
                    let table = x[0].tanh();
                    table.embedding_linear(&ids, x[1], Some(x[2])) + table.embedding(&ids).sum_axis(3, false).sum_axis(2, true)
                });
            }
            3 => {
                let ids = ndarray::Array3::from_shape_fn((b, t, s), |(i, j, k)| ((i * 5 + j * 3 + k * 7 + seed as usize) % v) as u32);
                let e1 = e + 1;
                check_seeded("embedding_linear_t", seed, &[&[v, e1], &[h, s * e1]], |_, x| {
                    let w = x[1].tanh();
                    x[0].embedding_linear_t(&ids, w, None) + w.sum()
                });
            }
            4 => {
                let hs = e + 1;
                check_seeded("attention", seed, &[&[b, h, t, hs]], |_, x| {
                    let q = x[0].tanh();
                    let k = q * 0.5;
                    q.causal_attention(k, q) + k
                });
            }
            _ => {
                let c = 2 * (e + 1) * h;
                check_seeded("self_attention+rotary", seed, &[&[b, t, 3 * c]], |_, x| {
                    let qkv = x[0].tanh();
                    qkv.rotary_qk(h, seed as usize % 4).causal_self_attention(h) + qkv.narrow(2, c, c)
                });
            }
        }
    }
}

/// Gradients of `graph(ops)` on a fresh tape with `backward`.
fn fresh_grads(params: &ParamStore<f64>, ops: &[(usize, usize, usize)]) -> Grads<f64> {
    let mut grads = Grads::new(params);
    let mut tape = Tape::new();
    let g = tape.graph(params);
    let x: Vec<_> = params.ids().map(|id| g.param(id)).collect();
    let loss = graph(&g, &x, ops).sum();
    g.backward(loss, &mut grads).unwrap();
    grads
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Different graphs one after another on one tape (node `i`'s buffers serve nodes of other
    /// shapes), each back-propagated by `backward` or `backward_params`, with a no-grad graph
    /// in between sometimes: the same gradients as on a fresh tape, to the bit.
    #[test]
    fn one_tape_many_graphs(graphs in prop::collection::vec((prop::collection::vec((0usize..KINDS, 0usize..64, 0usize..64), 1..8), 0usize..3), 2..6), seed in 0u64..1000) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = ParamStore::<f64>::new();
        for i in 0..2 {
            params.add(&format!("x{i}"), init::randn::<f64, _>(&[2, 3, 4], &mut rng)).unwrap();
        }
        let mut tape = Tape::new();
        let mut got = Grads::new(&params);
        for (step, (ops, how)) in graphs.iter().enumerate() {
            if *how == 2 {
                let g = tape.no_grad(&params);
                let x: Vec<_> = params.ids().map(|id| g.param(id)).collect();
                graph(&g, &x, ops).sum().item().unwrap();
            }
            let g = tape.graph(&params);
            let x: Vec<_> = params.ids().map(|id| g.param(id)).collect();
            let loss = graph(&g, &x, ops).sum();
            if *how == 0 { g.backward(loss, &mut got).unwrap(); } else { g.backward_params(loss, &mut got).unwrap(); }
            let want = fresh_grads(&params, ops);
            for id in params.ids() {
                prop_assert_eq!(want.data(id), got.data(id), "step {} d/d{}", step, params.name(id));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Binary ops at random broadcast shapes (rank 0 to 5, axes of 1 anywhere, missing leading
    /// axes), their inputs intermediate nodes also read by a pass-through.
    #[test]
    fn broadcasting_binary_ops(out in prop::collection::vec(1usize..4, 0..6), ma in 0u32..64, mb in 0u32..64, da in 0usize..6, db in 0usize..6, op in 0usize..4, seed in 0u64..1000) {
        let r = out.len();
        let shape = |mask: u32, drop: usize| -> Vec<usize> {
            out.iter().enumerate().skip(drop.min(r)).map(|(i, &d)| if mask & (1 << i) != 0 { 1 } else { d }).collect()
        };
        let (sa, sb) = (shape(ma, da), shape(mb, db));
        check_seeded("broadcast", seed, &[&sa, &sb], |_, x| {
            let (a, b) = (x[0].tanh(), x[1].tanh() + 1.5);
            let y = match op {
                0 => a + b,
                1 => a - b,
                2 => a * b,
                _ => a / b,
            };
            y.tanh() + (a + a.reshape(&[a.shape().numel()]).reshape(a.shape().dims())).sum() + (b - b * 0.5).sum()
        });
    }
}

/// `graph`, with node `j` (of the list that `graph` keeps) replaced by `leaf` once computed.
fn graph_cut<'g, T: Float>(
    g: &'g Graph<'g, T>,
    x: &[Var<'g, T>],
    ops: &[(usize, usize, usize)],
    cut: Option<(usize, Var<'g, T>)>,
) -> (Var<'g, T>, Vec<Var<'g, T>>) {
    let mut nodes = vec![x[0], x[1]];
    for &(kind, i, j) in ops {
        let (a, b) = (nodes[i % nodes.len()], nodes[j % nodes.len()]);
        nodes.push(node(g, kind, a, b).tanh());
        if let Some((at, leaf)) = cut
            && at == nodes.len() - 1
        {
            nodes[at] = leaf;
        }
    }
    let n = nodes.len();
    (nodes[n - 1] + nodes[n / 2] * T::of(0.5), nodes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// `Var::grad` of every node after `backward` (some share a buffer passed through) equals
    /// the parameter gradient of the same graph with that node cut off as a leaf.
    #[test]
    fn node_gradients_read_through_shared_buffers(ops in prop::collection::vec((0usize..KINDS, 0usize..64, 0usize..64), 1..8), seed in 0u64..1000) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut params = ParamStore::<f64>::new();
        for i in 0..2 {
            params.add(&format!("x{i}"), init::randn::<f64, _>(&[2, 3, 4], &mut rng)).unwrap();
        }
        let leaf = params.add("leaf", ArrayD::zeros(IxDyn(&[2, 3, 4]))).unwrap();
        let mut tape = Tape::new();
        let mut grads = Grads::new(&params);
        let (values, node_grads): (Vec<_>, Vec<_>) = {
            let g = tape.graph(&params);
            let x = [g.param(params.ids().next().unwrap()), g.param(params.ids().nth(1).unwrap())];
            let (out, nodes) = graph_cut(&g, &x, &ops, None);
            g.backward(out.sum(), &mut grads).unwrap();
            nodes[2..].iter().map(|v| (v.to_array(), v.grad())).unzip()
        };
        for (j, (value, grad)) in values.into_iter().zip(node_grads).enumerate() {
            params.get_mut(leaf).assign(&value);
            let mut cut = Grads::new(&params);
            let g = tape.graph(&params);
            let x = [g.param(params.ids().next().unwrap()), g.param(params.ids().nth(1).unwrap())];
            let (out, _) = graph_cut(&g, &x, &ops, Some((j + 2, g.param(leaf))));
            g.backward(out.sum(), &mut cut).unwrap();
            let want = cut.get(leaf).to_owned();
            match grad {
                Some(got) => {
                    let worst = got.iter().zip(want.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                    prop_assert!(worst < 1e-12, "node {}: Var::grad {:?} vs {:?}", j + 2, got, want);
                }
                None => prop_assert!(want.iter().all(|&v| v == 0.0), "node {}: no gradient, want {:?}", j + 2, want),
            }
        }
    }
}

/// Fused causal attention against its composition at sequence lengths past one group of 16
/// rows of the causal softmax, q and k one node, in f64 and f32 (values and gradients).
#[test]
fn long_attention_against_composition() {
    fn run<T: Float>(t: usize, hs: usize, fused: bool) -> (Vec<f64>, Vec<f64>) {
        let mut params = ParamStore::<T>::new();
        let x: ArrayD<f64> = init::randn(&[2, t, hs], &mut StdRng::seed_from_u64(t as u64));
        let id = params.add("x", x.mapv(T::of)).unwrap();
        let mut tape = Tape::new();
        let mut grads = Grads::new(&params);
        let g = tape.graph(&params);
        let q = g.param(id).tanh() * T::of(2.0);
        let v = g.param(id).sigmoid();
        let y = if fused {
            q.causal_attention(q, v)
        } else {
            let att = q.matmul(q.transpose(1, 2)) * T::of(1.0 / (hs as f64).sqrt());
            att.masked_fill(&mm_tensor::causal_mask(t), f64::NEG_INFINITY).softmax(2).matmul(v)
        };
        let u = konst(&g, &[2, t, hs], 3);
        g.backward((y * u).sum(), &mut grads).unwrap();
        let f = |a: ndarray::ArrayViewD<'_, T>| a.iter().map(|v| v.as_f64()).collect::<Vec<_>>();
        (f(y.to_array().view()), f(grads.get(id)))
    }
    for t in [15, 16, 17, 31, 33, 40] {
        for hs in [1, 3, 16] {
            let (y0, g0) = run::<f64>(t, hs, false);
            for (name, (y, gr), tol) in
                [("f64", run::<f64>(t, hs, true), 1e-12), ("f32", run::<f32>(t, hs, true), 1e-4)]
            {
                let dy = y.iter().zip(&y0).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                let dg = gr.iter().zip(&g0).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(dy < tol && dg < tol * 10.0, "{name} t {t} hs {hs}: value {dy}, grad {dg}");
            }
        }
    }
}

/// Odd but legal uses of the backward passes: a loss that is a reshape (the seed's buffer
/// passed on), a single-input concat, several passes over one graph (both kinds, in turn),
/// a non-contiguous upstream.
#[test]
fn odd_but_legal_backward_uses() {
    check_seeded("loss reshape", 1, &[&[2, 3]], |_, x| x[0].tanh().sum().reshape(&[1, 1]).reshape(&[1]));
    check_seeded("concat of one", 2, &[&[2, 3]], |g, x| {
        let h = x[0].tanh();
        g.concat(&[h], 1) + g.stack(&[h], 0).reshape(&[2, 3])
    });
    check_seeded("p=1 dropout", 3, &[&[2, 3]], |_, x| {
        x[0].dropout(1.0, &mut StdRng::seed_from_u64(1)) + x[0]
    });

    // One graph, three passes: backward, backward_params, backward: the same gradients, and
    // the node gradients of the last pass as those of the first.
    let mut params = ParamStore::<f64>::new();
    let p = params.add("p", init::randn(&[3, 4], &mut StdRng::seed_from_u64(4))).unwrap();
    let mut tape = Tape::new();
    let g = tape.graph(&params);
    let x = g.param(p).tanh();
    let r = (x + x.sigmoid()).reshape(&[12]);
    let loss = (r * r).sum() + x.reshape(&[12]).sum();
    let mut grads = Grads::new(&params);
    g.backward(loss, &mut grads).unwrap();
    let (want, want_x, want_r) = (grads.data(p).to_vec(), x.grad().unwrap(), r.grad().unwrap());
    g.backward_params(loss, &mut grads).unwrap();
    assert_eq!(grads.data(p), &want[..], "backward_params after backward on one graph");
    assert!(x.grad().is_none() && r.grad().is_none());
    g.backward(loss, &mut grads).unwrap();
    assert_eq!(grads.data(p), &want[..], "backward after backward_params on one graph");
    assert_eq!(x.grad().unwrap(), want_x);
    assert_eq!(r.grad().unwrap(), want_r);

    // A non-contiguous upstream.
    let u = ndarray::Array2::from_shape_fn((4, 3), |(i, j)| (i * 3 + j) as f64 - 5.0);
    let ut = u.t();
    let y = g.param(p).tanh();
    g.backward_from(y, ut.into_dyn(), &mut grads).unwrap();
    let th = params.get(p).mapv(f64::tanh);
    let want: Vec<f64> = (0..12)
        .map(|k| {
            let (i, j) = (k / 4, k % 4);
            ut[[i, j]] * (1.0 - th[[i, j]] * th[[i, j]])
        })
        .collect();
    let got = grads.data(p);
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "non-contiguous upstream: {got:?} vs {want:?}");
    }
}

/// `x ** 0` is the constant 1: its gradient is 0 everywhere (PyTorch's `pow_backward` returns
/// zeros for exponent 0), also at x = 0.
#[test]
fn pow_zero_has_zero_gradient_at_zero() {
    let mut params = ParamStore::<f64>::new();
    let p = params.add("p", ndarray::arr1(&[0.0, 2.0, -1.5]).into_dyn()).unwrap();
    let mut tape = Tape::new();
    let mut grads = Grads::new(&params);
    let g = tape.graph(&params);
    let y = g.param(p).pow(0.0);
    assert_eq!(y.to_array().as_slice().unwrap(), &[1.0, 1.0, 1.0]);
    g.backward(y.sum(), &mut grads).unwrap();
    assert_eq!(grads.data(p), &[0.0, 0.0, 0.0], "d/dx x^0");
}
