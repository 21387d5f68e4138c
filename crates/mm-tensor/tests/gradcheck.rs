//! Every op's gradient against central finite differences in `f64`, on random values: the
//! analytic gradient of `L = sum(f(x) * u)` for a random upstream `u` must match
//! `(L(x + h) - L(x - h)) / 2h` element by element.

mod common;

use common::{Dist, check_seeded};
use mm_tensor::{Grads, Graph, ParamStore, Tape, Var, init};
use ndarray::IxDyn;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Checks the gradient of `f` with respect to inputs of the given shapes.
fn check(
    name: &str,
    shapes: &[(&[usize], Dist)],
    f: impl for<'g> Fn(&'g Graph<'g, f64>, &[Var<'g, f64>]) -> Var<'g, f64>,
) {
    check_seeded(name, name.len() as u64 * 7919 + shapes.len() as u64, shapes, f)
}

const N: Dist = Dist::Normal;
const P: Dist = Dist::Positive;

#[test]
fn add_sub_mul_div_in_every_broadcast_form() {
    let forms: &[(&[usize], &[usize])] = &[
        (&[4, 5], &[4, 5]), // same shape
        (&[4, 5], &[5]),    // a row over rows
        (&[5], &[4, 5]),    // on the left
        (&[4, 5], &[1, 5]), // a row with its leading 1
        (&[4, 5], &[4, 1]), // a column over columns
        (&[4, 1], &[1, 5]), // outer broadcast of both
        (&[4, 5], &[]),     // a scalar
        (&[], &[4, 5]),
        (&[2, 3, 4], &[3, 1]), // 3-D
    ];
    for (a, b) in forms {
        let tag = format!("{a:?}{b:?}");
        check(&format!("add{tag}"), &[(a, N), (b, N)], |_, x| x[0] + x[1]);
        check(&format!("sub{tag}"), &[(a, N), (b, N)], |_, x| x[0] - x[1]);
        check(&format!("mul{tag}"), &[(a, N), (b, N)], |_, x| x[0] * x[1]);
        check(&format!("div{tag}"), &[(a, N), (b, P)], |_, x| x[0] / x[1]);
    }
}

#[test]
fn node_reuse_accumulates() {
    check("a*a+a", &[(&[3, 4], N)], |_, x| x[0] * x[0] + x[0]);
    check("(a*b)/(a+b*b)", &[(&[3, 4], P), (&[4], P)], |_, x| (x[0] * x[1]) / (x[0] + x[1] * x[1]));
    check("tanh(a)@a^T", &[(&[3, 4], N)], |_, x| x[0].tanh().matmul(x[0].t()));
}

#[test]
fn scalar_operators() {
    check("x*2+1", &[(&[3, 4], N)], |_, x| x[0] * 2.0 + 1.0);
    check("x/3-1", &[(&[3, 4], N)], |_, x| x[0] / 3.0 - 1.0);
}

#[test]
fn unary_ops() {
    let s: &[usize] = &[3, 5];
    check("neg", &[(s, N)], |_, x| -x[0]);
    check("exp", &[(s, N)], |_, x| x[0].exp());
    check("log", &[(s, P)], |_, x| x[0].log());
    check("tanh", &[(s, N)], |_, x| x[0].tanh());
    check("relu", &[(s, N)], |_, x| x[0].relu());
    check("sigmoid", &[(s, N)], |_, x| x[0].sigmoid());
    check("pow2", &[(s, N)], |_, x| x[0].pow(2.0));
    check("pow3", &[(s, N)], |_, x| x[0].pow(3.0));
    check("pow-0.5", &[(s, P)], |_, x| x[0].pow(-0.5));
    check("pow1.7", &[(s, P)], |_, x| x[0].pow(1.7));
}

#[test]
fn reductions() {
    for shape in [&[4, 5][..], &[2, 3, 4]] {
        check("sum", &[(shape, N)], |_, x| x[0].sum());
        check("mean", &[(shape, N)], |_, x| x[0].mean());
        for axis in 0..shape.len() {
            for keepdim in [false, true] {
                check("sum_axis", &[(shape, N)], |_, x| x[0].sum_axis(axis, keepdim));
                check("mean_axis", &[(shape, N)], |_, x| x[0].mean_axis(axis, keepdim));
            }
        }
    }
    // The lecture's normalisation P = N / N.sum(1, keepdim=True).
    check("normalise", &[(&[4, 5], P)], |_, x| x[0] / x[0].sum_axis(1, true));
}

#[test]
fn softmax_and_log_softmax_along_each_axis() {
    for shape in [&[4, 5][..], &[2, 3, 4]] {
        for axis in 0..shape.len() {
            check("softmax", &[(shape, N)], |_, x| x[0].softmax(axis));
            check("log_softmax", &[(shape, N)], |_, x| x[0].log_softmax(axis));
        }
    }
}

#[test]
fn shape_ops() {
    check("reshape", &[(&[4, 3, 5], N)], |_, x| x[0].reshape(&[4, 15]).tanh());
    check("reshape-3d", &[(&[6, 10], N)], |_, x| x[0].reshape(&[2, 3, 10]) * x[0].reshape(&[2, 3, 10]));
    check("transpose", &[(&[4, 5], N)], |_, x| x[0].t());
    check("concat-0", &[(&[2, 5], N), (&[3, 5], N)], |g, x| g.concat(&[x[0], x[1]], 0));
    check("concat-1", &[(&[4, 2], N), (&[4, 3], N), (&[4, 1], N)], |g, x| g.concat(&[x[0], x[1], x[2]], 1));
    check("concat-3d", &[(&[2, 3, 4], N), (&[2, 1, 4], N)], |g, x| g.concat(&[x[0], x[1]], 1));
    check("concat-reuse", &[(&[2, 3], N)], |g, x| g.concat(&[x[0], x[0].exp()], 1));
    // A node read by a `concat` and, later, by an op that passes its gradient through unchanged
    // (a full-shaped `add`, a `reshape`): the pass is for a node with no other consumer, so the
    // backward pass must count the `concat` as one (it once did not, and the concat's part of
    // the gradient was lost).
    check("concat-then-add", &[(&[2, 3], N), (&[2, 3], N)], |g, x| {
        let h = x[0].tanh();
        g.concat(&[h, h], 1).sum() + (h + x[1]).sum()
    });
    check("concat-then-reshape", &[(&[2, 3], N)], |g, x| {
        let h = x[0].tanh();
        g.concat(&[h, x[0]], 0).tanh().sum() + h.reshape(&[6]).exp().sum()
    });
    check("stack-then-add", &[(&[2, 3], N), (&[2, 3], N)], |g, x| {
        let h = x[0].tanh();
        g.stack(&[h, x[1]], 0).exp().sum() + (h + x[1]).sum()
    });
}

#[test]
fn matmul_at_several_shapes() {
    for (m, k, n) in [(1, 1, 1), (4, 3, 5), (7, 17, 33), (5, 40, 3), (32, 30, 20)] {
        check(&format!("matmul{m}x{k}x{n}"), &[(&[m, k], N), (&[k, n], N)], |_, x| x[0].matmul(x[1]));
    }
}

#[test]
fn embedding_scatters_repeated_ids() {
    // Ids repeat (0 and 3 several times): their row gradients accumulate.
    let ids = ndarray::array![[0u32, 3, 0], [3, 3, 1]];
    check("embedding", &[(&[5, 4], N)], |_, x| x[0].embedding(&ids));
    check("embedding-1d", &[(&[5, 4], N)], |_, x| x[0].embedding(&[4u32, 0, 4][..]));
}

#[test]
fn cross_entropy_and_one_hot() {
    let targets = [2u32, 0, 4, 4];
    check("cross_entropy", &[(&[4, 5], N)], |_, x| x[0].cross_entropy(&targets[..]));
    // The same loss written out with one_hot and log_softmax.
    check("one_hot-nll", &[(&[4, 5], N)], |g, x| {
        -(x[0].log_softmax(1) * g.one_hot(&targets[..], 5)).sum() / 4.0
    });
    // The whole bigram-NN loss: W[xs], cross-entropy, plus L2 regularisation.
    let xs = [0u32, 1, 1, 2, 0];
    let ys = [1u32, 2, 0, 0, 2];
    check("bigram_nn", &[(&[3, 3], N)], |_, x| {
        x[0].embedding(&xs[..]).cross_entropy(&ys[..]) + x[0].pow(2.0).mean() * 0.01
    });
    // The same, fused; row 3 of the table is never picked (its gradient is zero).
    check("lookup_cross_entropy", &[(&[4, 3], N)], |_, x| x[0].lookup_cross_entropy(&xs[..], &ys[..]));
}

#[test]
fn lookup_cross_entropy_equals_gather_then_cross_entropy() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut params = ParamStore::<f64>::new();
    let w = params.add("W", init::randn::<f64, _>(&[6, 5], &mut rng) * 3.0).unwrap();
    let xs: Vec<u32> = (0..500).map(|i| (i * 7 % 11 % 6) as u32).collect();
    let ys: Vec<u32> = (0..500).map(|i| (i * 13 % 17 % 5) as u32).collect();
    let mut tape = Tape::new();
    let (mut fused, mut plain) = (Grads::new(&params), Grads::new(&params));
    let a = {
        let g = tape.graph(&params);
        let loss = g.param(w).lookup_cross_entropy(&xs[..], &ys[..]);
        g.backward(loss, &mut fused).unwrap()
    };
    let b = {
        let g = tape.graph(&params);
        let loss = g.param(w).embedding(&xs[..]).cross_entropy(&ys[..]);
        g.backward(loss, &mut plain).unwrap()
    };
    assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    for (p, q) in fused.data(w).iter().zip(plain.data(w)) {
        assert!((p - q).abs() < 1e-12, "{p} vs {q}");
    }
    // Bad ids and targets are errors, not panics.
    let g = tape.no_grad(&params);
    assert!(g.param(w).try_lookup_cross_entropy(&[6u32][..], &[0u32][..]).is_err());
    assert!(g.param(w).try_lookup_cross_entropy(&[0u32][..], &[5u32][..]).is_err());
    assert!(g.param(w).try_lookup_cross_entropy(&[0u32, 1][..], &[0u32][..]).is_err());
}

#[test]
fn linear_is_matmul_plus_bias() {
    check("linear", &[(&[4, 3], N), (&[3, 5], N), (&[5], N)], |_, x| x[0].linear(x[1], x[2]));
    // The same as matmul then add, value and gradients.
    let mut rng = StdRng::seed_from_u64(5);
    let mut params = ParamStore::<f64>::new();
    let ids: Vec<_> = [&[7usize, 6][..], &[6, 9], &[9]]
        .iter()
        .enumerate()
        .map(|(i, s)| params.add(&format!("p{i}"), init::randn::<f64, _>(s, &mut rng)).unwrap())
        .collect();
    let mut tape = Tape::new();
    let (mut fused, mut plain) = (Grads::new(&params), Grads::new(&params));
    let grads = |fuse: bool, grads: &mut Grads<f64>, tape: &mut Tape<f64>| {
        let g = tape.graph(&params);
        let (x, w, b) = (g.param(ids[0]), g.param(ids[1]), g.param(ids[2]));
        let y = if fuse { x.linear(w, b) } else { x.matmul(w) + b };
        let loss = (y.tanh() * y).sum();
        g.backward(loss, grads).unwrap()
    };
    let (a, b) = (grads(true, &mut fused, &mut tape), grads(false, &mut plain, &mut tape));
    assert!((a - b).abs() < 1e-12);
    for &id in &ids {
        for (p, q) in fused.data(id).iter().zip(plain.data(id)) {
            assert!((p - q).abs() < 1e-12, "{p} vs {q}");
        }
    }
    let g = tape.no_grad(&params);
    let (x, w, b) = (g.param(ids[0]), g.param(ids[1]), g.param(ids[2]));
    assert!(x.try_linear(w, x).is_err(), "a bias of the wrong shape");
    assert!(w.try_linear(w, b).is_err(), "inner sizes that differ");
}

#[test]
fn the_whole_mlp_loss() {
    let xb = ndarray::array![[0u32, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 0]];
    let yb = [1u32, 2, 3, 0];
    check("mlp", &[(&[4, 2], N), (&[6, 8], N), (&[8], N), (&[8, 4], N), (&[4], N)], |_, x| {
        let (c, w1, b1, w2, b2) = (x[0], x[1], x[2], x[3], x[4]);
        let h = (c.embedding(&xb).reshape(&[4, 6]).matmul(w1) + b1).tanh();
        (h.matmul(w2) + b2).cross_entropy(&yb[..])
    });
}

// The ops of makemore's model zoo.

#[test]
fn zoo_elementwise_ops() {
    check("sqrt", &[(&[3, 5], P)], |_, x| x[0].sqrt());
    check("gelu", &[(&[3, 5], N)], |_, x| x[0].gelu());
    check("gelu-3d", &[(&[2, 3, 4], N)], |_, x| x[0].gelu() * x[0]);
    check("sigmoid-3d", &[(&[2, 3, 4], N)], |_, x| x[0].sigmoid());
    let mask = mm_tensor::causal_mask(4);
    check("masked_fill", &[(&[2, 4, 4], N)], |_, x| x[0].masked_fill(&mask, -3.0).tanh());
    check("masked_fill-softmax", &[(&[2, 4, 4], N)], |_, x| {
        x[0].masked_fill(&mask, f64::NEG_INFINITY).softmax(2)
    });
    // Masks that broadcast as PyTorch's do: with leading axes of 1 (makemore's
    // `bias[:, :, :T, :T]`), and with an axis of 1 inside (one mask row per batch element).
    let lead = mask.clone().insert_axis(ndarray::Axis(0));
    check("masked_fill-lead", &[(&[2, 4, 4], N)], |_, x| x[0].masked_fill(&lead, -3.0).tanh());
    let rows = ndarray::Array3::from_shape_fn((2, 1, 4), |(b, _, j)| (b + j) % 3 == 0);
    check("masked_fill-inner", &[(&[2, 4, 4], N)], |_, x| x[0].masked_fill(&rows, -3.0).tanh());
}

#[test]
fn dropout_gradient_goes_through_its_mask() {
    use rand::SeedableRng;
    // The same seed draws the same mask for each evaluation: the loss is a smooth function of x.
    let mut params = ParamStore::<f64>::new();
    let id = params.add("x", init::randn(&[4, 6], &mut StdRng::seed_from_u64(1))).unwrap();
    let mut tape = Tape::new();
    let mut grads = Grads::new(&params);
    let g = tape.graph(&params);
    let y = g.param(id).dropout(0.5, &mut StdRng::seed_from_u64(7));
    let kept = y.with_data(|d| d.iter().filter(|&&v| v != 0.0).count());
    g.backward(y.sum(), &mut grads).unwrap();
    // Each kept element's gradient is 1 / (1 - p) = 2, each dropped one's 0.
    let grad: Vec<_> = grads.data(id).to_vec();
    assert!(grad.iter().all(|&d| d == 0.0 || d == 2.0));
    assert_eq!(grad.iter().filter(|&&d| d == 2.0).count(), kept);
    assert!(kept > 4 && kept < 20, "about half of 24 kept, got {kept}");
}

#[test]
fn zoo_reductions() {
    for (shape, axes) in
        [(&[4, 5][..], &[0][..]), (&[3, 4, 5], &[0, 1]), (&[3, 4, 5], &[0, 2]), (&[2, 3, 4], &[1])]
    {
        for keepdim in [false, true] {
            check("mean_axes", &[(shape, N)], |_, x| x[0].mean_axes(axes, keepdim));
            for c in [0, 1] {
                check("var_axes", &[(shape, N)], |_, x| x[0].var_axes(axes, c, keepdim));
            }
        }
    }
    check("softmax-4d", &[(&[2, 2, 3, 3], N)], |_, x| x[0].softmax(3));
    check("log_softmax-4d", &[(&[2, 2, 3, 3], N)], |_, x| x[0].log_softmax(3));
    // The running mean along each axis, columns past one register block (64) included.
    for axis in 0..3 {
        check("causal_mean", &[(&[3, 4, 5], N)], |_, x| x[0].causal_mean(axis));
    }
    check("causal_mean-wide", &[(&[2, 3, 70], N)], |_, x| x[0].causal_mean(1));
    // Its input used twice: the second gradient is added.
    check("causal_mean-reused", &[(&[2, 3, 4], N)], |_, x| x[0].causal_mean(1) * x[0] + x[0].causal_mean(1));
}

#[test]
fn zoo_shape_ops() {
    check("permute-021", &[(&[2, 3, 4], N)], |_, x| x[0].permute(&[0, 2, 1]));
    check("permute-0213", &[(&[2, 3, 2, 4], N)], |_, x| x[0].permute(&[0, 2, 1, 3]));
    check("permute-5d", &[(&[2, 1, 3, 2, 2], N)], |_, x| x[0].permute(&[4, 2, 0, 3, 1]));
    check("transpose-12", &[(&[2, 3, 4], N)], |_, x| x[0].transpose(1, 2));
    check("permute-reuse", &[(&[3, 3], N)], |_, x| x[0].permute(&[1, 0]) * x[0]);
    check("narrow", &[(&[3, 5, 6], N)], |_, x| x[0].narrow(2, 2, 3));
    check("narrow-0", &[(&[4, 3], N)], |_, x| x[0].narrow(0, 1, 2).exp());
    check("select", &[(&[3, 5, 2], N)], |_, x| x[0].select(1, 4));
    // q, k, v split from one tensor, as makemore's c_attn output.
    check("narrow-split", &[(&[2, 3, 6], N)], |_, x| x[0].narrow(2, 0, 2) * x[0].narrow(2, 4, 2));
    for axis in 0..=2 {
        check("stack", &[(&[2, 3], N), (&[2, 3], N)], |g, x| g.stack(&[x[0], x[1].tanh()], axis));
    }
    check("concat-4d", &[(&[1, 2, 3, 2], N), (&[1, 2, 1, 2], N)], |g, x| g.concat(&[x[0], x[1]], 2));
    // An input with nothing along the axis: its gradient is empty, its neighbours' in place.
    check("concat-empty", &[(&[2, 3], N), (&[2, 0], N), (&[2, 1], N)], |g, x| {
        g.concat(&[x[0], x[1], x[2]], 1).tanh()
    });
}

#[test]
fn batched_matmul_and_linear() {
    check("bmm-3d@2d", &[(&[2, 3, 4], N), (&[4, 5], N)], |_, x| x[0].matmul(x[1]));
    check("bmm-3d@3d", &[(&[2, 3, 4], N), (&[2, 4, 5], N)], |_, x| x[0].matmul(x[1]));
    check("bmm-4d", &[(&[2, 2, 3, 4], N), (&[2, 2, 4, 3], N)], |_, x| x[0].matmul(x[1]));
    // Broadcast batches: the broadcast operand's gradient sums over them.
    check("bmm-bcast-rhs", &[(&[2, 3, 3, 4], N), (&[3, 4, 2], N)], |_, x| x[0].matmul(x[1]));
    check("bmm-bcast-lhs", &[(&[1, 3, 4], N), (&[2, 4, 5], N)], |_, x| x[0].matmul(x[1]));
    check("bmm-bcast-both", &[(&[2, 1, 3, 4], N), (&[1, 3, 4, 2], N)], |_, x| x[0].matmul(x[1]));
    check("linear-3d", &[(&[2, 3, 4], N), (&[4, 5], N), (&[5], N)], |_, x| x[0].linear(x[1], x[2]));
    check("linear_t", &[(&[2, 3, 4], N), (&[5, 4], N), (&[5], N)], |_, x| x[0].linear_t(x[1], Some(x[2])));
    check("linear_t-nobias", &[(&[6, 4], N), (&[5, 4], N)], |_, x| x[0].linear_t(x[1], None));
}

#[test]
fn shared_weights_add_their_gradients() {
    // No transpose node in between: the products themselves must add, not overwrite.
    check("a@a", &[(&[4, 4], N)], |_, x| x[0].matmul(x[0]));
    check("x@W twice", &[(&[3, 4], N), (&[4, 4], N)], |_, x| x[0].matmul(x[1]).matmul(x[1]));
    check("linear+matmul", &[(&[3, 4], N), (&[4, 4], N), (&[4], N)], |_, x| {
        x[0].linear(x[1], x[2]).tanh() + x[0].matmul(x[1])
    });
    check("linear_t twice", &[(&[3, 4], N), (&[4, 4], N)], |_, x| {
        x[0].linear_t(x[1], None).linear_t(x[1], None)
    });
    check("bmm shared", &[(&[2, 3, 3], N)], |_, x| x[0].matmul(x[0]));
}

#[test]
fn layer_norm_and_batch_norm() {
    check("layer_norm", &[(&[2, 3, 5], N), (&[5], N), (&[5], N)], |_, x| x[0].layer_norm(x[1], x[2], 1e-5));
    check("layer_norm-2d", &[(&[4, 6], N), (&[6], N), (&[6], N)], |_, x| {
        x[0].layer_norm(x[1], x[2], 1e-5).tanh()
    });
    for c in [0, 1] {
        check("batch_norm-0", &[(&[6, 4], N), (&[4], N), (&[4], N)], |_, x| {
            x[0].batch_norm(x[1], x[2], &[0], c, 1e-5)
        });
        check("batch_norm-01", &[(&[3, 4, 5], N), (&[5], N), (&[5], N)], |_, x| {
            x[0].batch_norm(x[1], x[2], &[0, 1], c, 1e-5).tanh()
        });
    }
    // Over axes that do not lead: nn.BatchNorm1d's [N, C, L] over [0, 2], BatchNorm2d's
    // [N, C, H, W] over [0, 2, 3].
    for c in [0, 1] {
        check("batch_norm-02", &[(&[3, 4, 2], N), (&[4], N), (&[4], N)], |_, x| {
            x[0].batch_norm(x[1], x[2], &[0, 2], c, 1e-5).tanh()
        });
        check("batch_norm-023", &[(&[2, 3, 2, 2], N), (&[3], N), (&[3], N)], |_, x| {
            x[0].batch_norm(x[1], x[2], &[0, 2, 3], c, 1e-5)
        });
    }
    // Evaluation with running statistics: constants, which get no gradient.
    check("batch_norm-eval", &[(&[6, 4], N), (&[4], N), (&[4], N)], |g, x| {
        let (mean, var) = (g.input(&[4], &[0.5, -1.0, 0.0, 2.0]), g.input(&[4], &[1.0, 0.5, 2.0, 0.1]));
        x[0].batch_norm_eval(x[1], x[2], &[0], (mean, var), 1e-5)
    });
}

#[test]
fn causal_attention_fused_and_composed() {
    check("attention", &[(&[2, 2, 4, 3], N), (&[2, 2, 4, 3], N), (&[2, 2, 4, 3], N)], |_, x| {
        x[0].causal_attention(x[1], x[2])
    });
    check("attention-shared", &[(&[3, 5, 2], N)], |_, x| x[0].causal_attention(x[0], x[0].tanh()));
    // makemore's self-attention read in place from c_attn's [B, T, 3C] output.
    check("self_attention", &[(&[2, 5, 12], N)], |_, x| x[0].causal_self_attention(2));
    check("self_attention-reuse", &[(&[2, 4, 6], N)], |_, x| {
        x[0].causal_self_attention(1) * x[0].narrow(2, 0, 2)
    });
    // Rotary positions on q and k (v passes through), from position 0 and from 5, and feeding
    // the attention as a Transformer with rotary positions does.
    check("rotary", &[(&[2, 3, 12], N)], |_, x| x[0].rotary_qk(2, 0));
    check("rotary-start", &[(&[1, 4, 24], N)], |_, x| x[0].rotary_qk(2, 5));
    check("rotary-attention", &[(&[2, 5, 12], N)], |_, x| x[0].rotary_qk(1, 0).causal_self_attention(1));
    check("rotary-reuse", &[(&[2, 3, 6], N)], |_, x| x[0].rotary_qk(1, 2) * x[0]);
    // The same, composed as makemore writes it.
    let mask = mm_tensor::causal_mask(4);
    check("attention-composed", &[(&[2, 4, 3], N), (&[2, 4, 3], N), (&[2, 4, 3], N)], |_, x| {
        let att = x[0].matmul(x[1].transpose(1, 2)) * (1.0 / 3f64.sqrt());
        att.masked_fill(&mask, f64::NEG_INFINITY).softmax(2).matmul(x[2])
    });
}

#[test]
fn cross_entropy_over_sequences_with_ignored_targets() {
    let y = ndarray::array![[2i64, 0, -1], [4, -1, -1]];
    check("cross_entropy_ignore", &[(&[2, 3, 5], N)], |_, x| x[0].cross_entropy_ignore(&y, -1));
    let yu = ndarray::array![[2u32, 0, 1], [4, 3, 3]];
    check("cross_entropy-3d", &[(&[2, 3, 5], N)], |_, x| x[0].cross_entropy(&yu));
}

#[test]
fn recurrent_scans_backpropagate_through_time() {
    // x [B, T, E], h0 [B, H], and per gate a weight [H, E + H] and a bias [H]: B = 2, T = 4,
    // E = 3, H = 2, so every position's gradient reaches h0 through three earlier states.
    let (x, h0, w, b) = (&[2, 4, 3][..], &[2, 2][..], &[2, 5][..], &[2][..]);
    check("rnn_scan", &[(x, N), (h0, N), (w, N), (b, N)], |_, v| v[0].rnn_scan(v[1], v[2], v[3]));
    let gru = [(x, N), (h0, N), (w, N), (b, N), (w, N), (b, N), (w, N), (b, N)];
    check("gru_scan", &gru, |_, v| v[0].gru_scan(v[1], [(v[2], v[3]), (v[4], v[5]), (v[6], v[7])]));
    // One weight for every gate, and the input reused after the scan: the gradients add.
    check("gru_scan-shared", &[(x, N), (h0, N), (w, N), (b, N)], |_, v| {
        let gate = (v[2], v[3]);
        v[0].gru_scan(v[1], [gate, gate, gate]) * v[0].narrow(2, 0, 2).tanh()
    });
    check("rnn_scan-shared", &[(&[3, 2, 2], N), (&[3, 2], N), (&[2, 4], N)], |_, v| {
        // h0 doubles as the bias's source and the input as the start state's.
        let b = v[1].narrow(0, 0, 1).reshape(&[2]);
        v[0].rnn_scan(v[0].narrow(1, 0, 1).reshape(&[3, 2]), v[2], b)
    });
}

#[test]
fn embedding_linear_gradients() {
    // A table of 4 rows read through 3 slots, with repeated ids in a row and across rows.
    let ids = ndarray::arr3(&[[[1u32, 1, 3], [0, 2, 1]], [[3, 3, 3], [2, 0, 0]]]);
    check("embedding_linear", &[(&[4, 2], N), (&[6, 5], N), (&[5], N)], |_, x| {
        x[0].embedding_linear(&ids, x[1], Some(x[2]))
    });
    check("embedding_linear_t", &[(&[4, 2], N), (&[5, 6], N), (&[5], N)], |_, x| {
        x[0].embedding_linear_t(&ids, x[1], Some(x[2]))
    });
    check("embedding_linear_t-nobias", &[(&[4, 2], N), (&[3, 6], N)], |_, x| {
        x[0].embedding_linear_t(&ids, x[1], None).tanh()
    });
    // The table also feeds the weight: both paths' gradients add.
    check("embedding_linear-shared", &[(&[4, 3], N)], |_, x| {
        let w = x[0].reshape(&[6, 2]);
        x[0].embedding_linear(&ndarray::arr2(&[[0u32, 3], [1, 1]]), w, None)
    });
    check("embedding_linear_t-shared", &[(&[4, 3], N)], |_, x| {
        let w = x[0].reshape(&[2, 6]);
        x[0].embedding_linear_t(&ndarray::arr2(&[[0u32, 3], [1, 1]]), w, None)
    });
}

/// Gradients passed through unchanged (a residual `add`, a `reshape`) to an input with no other
/// consumer share the op's buffer instead of a copy: the chains below mix inputs that can
/// share with ones used twice (which must not), and sides that cannot (a broadcast operand,
/// `sub`'s right side).
#[test]
fn gradients_passed_through_unchanged() {
    check("pass-chain", &[(&[3, 4], N)], |_, x| {
        let h = (x[0] * 2.0).reshape(&[4, 3]).reshape(&[3, 4]); // each used once
        let r = h + x[0].tanh(); // both sides used once
        (r.reshape(&[12]) * r.reshape(&[12])).reshape(&[2, 6])
    });
    check("pass-shared-input", &[(&[3, 4], N)], |_, x| {
        let h = x[0] * 3.0; // used twice below: never shared
        let r = h + h.tanh();
        r - (h * h).reshape(&[3, 4])
    });
    check("pass-broadcast-and-sub", &[(&[3, 4], N), (&[4], N)], |_, x| {
        let (h, b) = (x[0].tanh(), x[1] * 2.0);
        (h + b) - (x[0] * x[0]).exp() + (b - h.sigmoid()).reshape(&[3, 4])
    });
    check("pass-x-plus-x", &[(&[2, 3], N)], |_, x| {
        let h = x[0].tanh();
        (h + h).reshape(&[6])
    });
}

// The zoo's ops at random shapes, ranks 1 to 5. The inputs of the elementwise ops, the softmaxes,
// the norms, the moments, the products, attention and the loss are permuted first: a permuted
// tensor is what PyTorch calls non-contiguous, and its gradient must come back through the
// permute to the right elements. The shape ops take theirs as drawn (permute is one of them).

/// A shape of rank `min` to 5, each axis 1 to 3 long.
fn dims(min: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..4, min..6)
}

/// A permutation of `rank` axes drawn from `seed`: a rotation, then the first and last axes
/// swapped or not (at rank 2 half of them swap the two axes, a matrix's transpose).
fn permutation(rank: usize, seed: u64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..rank).collect();
    p.rotate_left(seed as usize % rank);
    if (seed as usize / rank) % 2 == 1 {
        p.swap(0, rank - 1);
    }
    p
}

/// `d` read through `perm`: the shape of `x.permute(perm)` for an `x` of shape `d`.
fn permuted(d: &[usize], perm: &[usize]) -> Vec<usize> {
    perm.iter().map(|&p| d[p]).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Elementwise ops, softmax and log-softmax over any axis, LayerNorm, and `masked_fill` with
    /// a mask that broadcasts (axes of 1 where `seed`'s bits say, leading ones or not), on a
    /// permuted input of rank 1 to 5.
    #[test]
    fn pointwise_and_row_ops_at_any_rank(d in dims(1), seed in 0u64..1000, op in 0usize..7) {
        let perm = permutation(d.len(), seed);
        let seen = permuted(&d, &perm);
        let c = seen[d.len() - 1];
        let mask_dims: Vec<usize> = seen
            .iter()
            .enumerate()
            .map(|(a, &n)| if seed & (1 << a) != 0 { 1 } else { n })
            .skip(if seed & 64 != 0 { 0 } else { (seed as usize / 3) % d.len() })
            .collect();
        let mask = ndarray::ArrayD::from_shape_fn(IxDyn(&mask_dims), |i| {
            (ndarray::Dimension::slice(&i).iter().sum::<usize>() + seed as usize).is_multiple_of(3)
        });
        let axis = (seed as usize / 7) % d.len();
        let dist = if op == 2 { P } else { N };
        check_seeded("pointwise", seed, &[(&d, dist), (&[c], N), (&[c], N)], |_, x| {
            let y = x[0].permute(&perm);
            match op {
                0 => y.sigmoid(),
                1 => y.gelu(),
                2 => y.sqrt(),
                3 => y.softmax(axis),
                4 => y.log_softmax(axis),
                5 => y.layer_norm(x[1], x[2], 1e-5),
                _ => y.masked_fill(&mask, -1.5).tanh(),
            }
        });
    }

    /// Mean and variance (corrections 0 and 1) over any set of axes, with and without keepdim.
    #[test]
    fn moments_over_any_axes(d in dims(1), seed in 0u64..1000, set in 1u32..32, correction in 0usize..2, keepdim: bool) {
        let axes: Vec<usize> = (0..d.len()).filter(|&a| set & (1 << a) != 0).collect();
        // The axes are those of the permuted input, whose shape is what the moments see.
        let perm = permutation(d.len(), seed);
        let seen = permuted(&d, &perm);
        let count: usize = axes.iter().map(|&a| seen[a]).product();
        prop_assume!(!axes.is_empty() && count > correction);
        check_seeded("moments", seed, &[(&d, N)], |_, x| {
            let y = x[0].permute(&perm);
            y.mean_axes(&axes, keepdim) + y.var_axes(&axes, correction, keepdim)
        });
    }

    /// Random graphs over two `[2, 3]` inputs: each node reads one or two earlier nodes through
    /// an elementwise op, a pass-through (`reshape` there and back, a residual `add`), a
    /// `concat` narrowed back, or a `stack` summed back, and the loss reads the last nodes. The
    /// backward pass hands a gradient buffer to a node with one consumer (`Sinks::pass`) and,
    /// in `backward_params`, recycles buffers; a node read by several ops of different kinds is
    /// what that bookkeeping must get right (a `concat` once went uncounted as a consumer).
    #[test]
    fn random_graphs_of_shared_nodes(ops in prop::collection::vec((0usize..9, 0usize..64, 0usize..64), 1..12), seed in 0u64..1000) {
        check_seeded("graph", seed, &[(&[2, 3], N), (&[2, 3], N)], |g, x| {
            let mut nodes = vec![x[0], x[1]];
            for &(kind, i, j) in &ops {
                let (a, b) = (nodes[i % nodes.len()], nodes[j % nodes.len()]);
                nodes.push(match kind {
                    0 => a.tanh(),
                    1 => a + b,
                    2 => a * b,
                    3 => a.reshape(&[3, 2]).reshape(&[2, 3]),
                    4 => g.concat(&[a, b], 0).narrow(0, 1, 2),
                    5 => g.concat(&[a, b, a], 1).narrow(1, 2, 3),
                    6 => g.stack(&[a, b], 0).sum_axis(0, false),
                    7 => a.transpose(0, 1).transpose(0, 1) - b,
                    _ => (a * 0.5).exp(),
                });
            }
            let n = nodes.len();
            nodes[n - 1] + nodes[n / 2] * 0.5
        });
    }

    /// The shape ops at rank 1 to 5: permute, transpose of two axes, narrow, select, concat,
    /// reshape of a permuted (non-contiguous in PyTorch) input, and stack of permuted inputs
    /// (of rank 4 at most: the result has one axis more).
    #[test]
    fn shape_ops_at_any_rank(d in dims(1), seed in 0u64..1000, at in 0usize..8, op in 0usize..6) {
        let (rank, axis) = (d.len(), (seed as usize / 7) % d.len());
        let perm = permutation(rank, seed);
        let (start, len) = (at % d[axis], 1 + at / 3 % (d[axis] - at % d[axis]));
        let mut other = d.clone();
        other[axis] = 1 + at % 2;
        check_seeded("shape", seed, &[(&d, N), (&other, N)], |g, x| match op {
            0 => x[0].permute(&perm),
            1 => x[0].transpose(axis, rank - 1 - at % rank),
            2 => x[0].narrow(axis, start, len).exp(),
            3 => x[0].select(axis, start),
            4 => {
                let joined = g.concat(&[x[0], x[1].tanh(), x[0]], axis);
                joined.permute(&perm).reshape(&[joined.shape().numel()])
            }
            _ => {
                let y = if rank == 5 { x[0].select(0, start.min(d[0] - 1)) } else { x[0].permute(&perm) };
                g.stack(&[y, y.tanh(), y], at % (y.shape().rank() + 1)).exp()
            }
        });
    }

    /// Batched products of permuted operands with broadcast batches (`[B, H, T, hs] @ [B, H,
    /// hs, T]`, `[B, T, C] @ [C, N]`), and `linear` and `linear_t` on `[B, T, C]` and on rank 4.
    #[test]
    fn batched_products_of_permuted_operands(b in 1usize..3, h in 1usize..3, m in 1usize..4, k in 1usize..4, n in 1usize..4, form in 0usize..5, seed in 0u64..1000) {
        // Each operand is drawn with its last two axes swapped and permuted back in the graph.
        let (sa, sb): (Vec<usize>, Vec<usize>) = match form {
            0 => (vec![b, h, k, m], vec![b, h, n, k]),
            1 => (vec![b, 1, k, m], vec![1, h, n, k]),
            // 2 multiplies, 3 runs `linear` on the same operands.
            2 | 3 => (vec![b, k, m], vec![n, k]),
            _ => (vec![b, h, k, m], vec![n, k]),
        };
        let back = |r: usize| -> Vec<usize> { (0..r - 2).chain([r - 1, r - 2]).collect() };
        let (pa, pb) = (back(sa.len()), back(sb.len()));
        check_seeded("bmm", seed, &[(&sa, N), (&sb, N), (&[n], N)], |_, x| {
            let (a, w) = (x[0].permute(&pa), x[1].permute(&pb));
            if form >= 3 { a.linear(w, x[2]) + a.linear_t(x[1], Some(x[2])) } else { a.matmul(w) }
        });
    }

    /// BatchNorm over any set of axes but none or all (leading or not) of a permuted input of
    /// rank 2 to 5 (its weight, bias and running statistics shaped like the other axes), in
    /// training mode with corrections 0 and 1 and in evaluation mode with running statistics
    /// (constants here).
    #[test]
    fn batch_norm_at_any_rank(d in dims(2), seed in 0u64..1000, set in 1u32..31, correction in 0usize..2) {
        let perm = permutation(d.len(), seed);
        let seen = permuted(&d, &perm);
        let axes: Vec<usize> = (0..d.len()).filter(|&a| set & (1 << a) != 0).collect();
        let features: Vec<usize> = (0..d.len()).filter(|a| !axes.contains(a)).map(|a| seen[a]).collect();
        prop_assume!(!axes.is_empty() && !features.is_empty());
        prop_assume!(axes.iter().map(|&a| seen[a]).product::<usize>() > correction);
        let n: usize = features.iter().product();
        check_seeded("batch_norm-rank", seed, &[(&d, N), (&features, N), (&features, N)], |g, x| {
            let y = x[0].permute(&perm);
            let mean: Vec<f64> = (0..n).map(|i| (i as f64 - 1.0) * 0.3).collect();
            let var: Vec<f64> = (0..n).map(|i| 0.5 + i as f64 * 0.25).collect();
            let stats = (g.input(&features, &mean), g.input(&features, &var));
            y.batch_norm(x[1], x[2], &axes, correction, 1e-5).tanh()
                + y.batch_norm_eval(x[1], x[2], &axes, stats, 1e-5)
        });
    }

    /// BatchNorm over `[0]` of `[B, C]` and `[0, 1]` of `[B, T, C]`, corrections 0 and 1; causal
    /// attention at any batch, heads, length and head size; the cross-entropy with ignored
    /// targets over `[B, T, V]`.
    #[test]
    fn normalisation_attention_and_loss(b in 2usize..4, h in 1usize..4, t in 1usize..5, c in 1usize..4, correction in 0usize..2, seed in 0u64..1000, ignored in 0u32..256) {
        let (x3, x2) = ([b, t, c], [b * t, c]);
        check_seeded("batch_norm", seed, &[(&x3, N), (&[c], N), (&[c], N), (&x2, N)], |_, x| {
            let y = x[0].permute(&[1, 0, 2]).batch_norm(x[1], x[2], &[0, 1], correction, 1e-5);
            y.reshape(&[b * t, c]) + x[3].batch_norm(x[1], x[2], &[0], correction, 1e-5)
        });
        // q as it is, k drawn transposed (`[B, H, hs, T]`), v as `[B, T, H, hs]` (makemore's
        // `view(B, T, H, hs).transpose(1, 2)`).
        let (q, k, v) = ([b, h, t, c], [b, h, c, t], [b, t, h, c]);
        check_seeded("attention", seed, &[(&q, N), (&k, N), (&v, N)], |_, x| {
            x[0].causal_attention(x[1].permute(&[0, 1, 3, 2]), x[2].permute(&[0, 2, 1, 3]))
        });
        // At least one target counts: the first is never ignored.
        let targets = ndarray::Array2::from_shape_fn((b, t), |(i, j)| {
            let k = i * t + j;
            if k > 0 && ignored & (1 << (k % 8)) != 0 { -1 } else { ((seed as usize + k) % (c + 1)) as i64 }
        });
        check_seeded("cross_entropy_ignore", seed, &[(&[t, b, c + 1], N)], |_, x| {
            x[0].permute(&[1, 0, 2]).cross_entropy_ignore(&targets, -1)
        });
    }
}
