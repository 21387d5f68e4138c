//! The model zoo's ops: typed errors on bad input, and invariants checked against plain
//! definitions (batched products against per-batch loops, permutes against their inverse, the
//! fused attention against its composition, normalisation against its statistics).

use mm_tensor::{AdamW, Grads, Optimizer, ParamStore, Tape, TensorError, init};
use ndarray::{ArrayD, Axis, IxDyn};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn randn(shape: &[usize], seed: u64) -> ArrayD<f64> {
    init::randn(shape, &mut StdRng::seed_from_u64(seed))
}

#[test]
fn bad_input_gives_errors_that_name_the_shapes() {
    let params = ParamStore::<f32>::new();
    let mut tape = Tape::new();
    let g = tape.graph(&params);
    let x = g.input(&[2, 3, 4], &[0.0; 24]);
    let msg = |e: TensorError| e.to_string();
    assert_eq!(
        msg(x.try_permute(&[0, 0, 1]).unwrap_err()),
        "permute: [0, 0, 1] is not a permutation of the 3 axes of shape [2, 3, 4]"
    );
    assert!(matches!(x.try_permute(&[0, 1]), Err(TensorError::Permutation { .. })));
    assert!(matches!(x.try_permute(&[0, 1, 3]), Err(TensorError::Permutation { .. })));
    assert_eq!(
        msg(x.try_transpose(1, 3).unwrap_err()),
        "transpose: axis 3 is out of range for shape [2, 3, 4]"
    );
    assert_eq!(
        msg(x.try_narrow(2, 3, 2).unwrap_err()),
        "narrow: elements 3..5 of axis 2 are past the end of shape [2, 3, 4]"
    );
    assert_eq!(msg(x.try_narrow(3, 0, 1).unwrap_err()), "narrow: axis 3 is out of range for shape [2, 3, 4]");
    let y = g.input(&[2, 2, 4], &[0.0; 16]);
    assert_eq!(
        msg(g.try_concat(&[x, y], 2).unwrap_err()),
        "concat: cannot join [2, 3, 4] and [2, 2, 4] along axis 2"
    );
    assert!(g.try_concat(&[x, y], 1).is_ok());
    assert!(matches!(g.try_stack(&[x, y], 0), Err(TensorError::Concat { .. })));
    assert_eq!(msg(g.try_concat(&[], 0).unwrap_err()), "concat: no tensors to join");
    assert_eq!(msg(g.try_stack(&[], 0).unwrap_err()), "stack: no tensors to join");
    let (w, bias) = (g.input(&[4, 3], &[0.0; 12]), g.input(&[4], &[0.0; 4]));
    assert_eq!(
        msg(x.try_linear(w, bias).unwrap_err()),
        "linear: a bias of shape [4] for a weight of shape [4, 3] (3 outputs)"
    );
    let table = g.input(&[3, 3], &[0.0; 9]);
    assert_eq!(
        msg(table.try_lookup_cross_entropy(&[0u32, 1][..], &[1u32][..]).unwrap_err()),
        "lookup_cross_entropy: 2 ids but 1 targets"
    );
    // Batched products: inner sizes and batch axes.
    let b = g.input(&[3, 4, 5], &[0.0; 60]);
    assert_eq!(msg(x.try_matmul(b).unwrap_err()), "matmul: cannot multiply [2, 3, 4] by [3, 4, 5]");
    // The linear layers name themselves; `linear_t`'s weight is given as stored, [out, in].
    let w53 = g.input(&[5, 3], &[0.0; 15]);
    assert_eq!(
        msg(x.try_linear(w53, g.input(&[3], &[0.0; 3])).unwrap_err()),
        "linear: cannot multiply [2, 3, 4] by [5, 3]"
    );
    assert_eq!(msg(x.try_linear_t(w53, None).unwrap_err()), "linear_t: cannot multiply [2, 3, 4] by [5, 3]");
    assert!(x.try_matmul(g.input(&[1, 4, 5], &[0.0; 20])).is_ok());
    // Normalisation.
    let w = g.input(&[4], &[1.0; 4]);
    let one = g.input(&[1, 4], &[0.0; 4]);
    assert_eq!(
        msg(one.try_batch_norm(w, w, &[0], 1, 1e-5).unwrap_err()),
        "batch_norm: 1 value(s) per statistic with correction 1 divides by zero (shape [1, 4]); \
         use a larger batch or correction 0"
    );
    assert!(one.try_batch_norm(w, w, &[0], 0, 1e-5).is_ok());
    // Axes that do not lead are taken (BatchNorm1d's [N, C, L] is [0, 2]); the weight is shaped
    // like the other axes, and the errors name the input's shape, not a permuted one.
    assert_eq!(
        msg(x.try_batch_norm(w, w, &[1], 0, 1e-5).unwrap_err()),
        "batch_norm: expected shape [2, 4], got [4]"
    );
    let ncl = g.input(&[1, 4, 1], &[0.0; 4]);
    assert_eq!(
        msg(ncl.try_batch_norm(w, w, &[0, 2], 1, 1e-5).unwrap_err()),
        "batch_norm: 1 value(s) per statistic with correction 1 divides by zero (shape [1, 4, 1]); \
         use a larger batch or correction 0"
    );
    for axes in [&[][..], &[0, 1, 2]] {
        assert!(matches!(x.try_batch_norm(w, w, axes, 0, 1e-5), Err(TensorError::Axes { .. })));
    }
    assert!(matches!(x.try_batch_norm(w, w, &[0, 0], 0, 1e-5), Err(TensorError::Axes { .. })));
    assert!(matches!(x.try_batch_norm(w, w, &[0], 0, 1e-5), Err(TensorError::ShapeMismatch { .. })));
    assert!(x.try_batch_norm(w, w, &[0, 1], 1, 1e-5).is_ok());
    assert_eq!(
        msg(x.try_layer_norm(w, g.input(&[3], &[0.0; 3]), 1e-5).unwrap_err()),
        "layer_norm: expected shape [4], got [3]"
    );
    // A weight that would broadcast is still not `[C]`, as F.layer_norm's must be.
    assert_eq!(
        msg(x.try_layer_norm(g.input(&[1, 4], &[1.0; 4]), w, 1e-5).unwrap_err()),
        "layer_norm: expected shape [4], got [1, 4]"
    );
    assert!(matches!(x.try_var_axes(&[0, 5], 1, false), Err(TensorError::Axes { .. })));
    assert_eq!(
        msg(x.try_var_axes(&[0], 300, false).unwrap_err()),
        "var: correction 300 is not supported (0 to 255: 0 as BatchNorm1d, 1 as x.var())"
    );
    assert!(matches!(x.try_batch_norm(w, w, &[0, 1], 256, 1e-5), Err(TensorError::Correction { .. })));
    let scalar = g.input(&[], &[1.0]);
    assert_eq!(
        msg(scalar.try_layer_norm(w, w, 1e-5).unwrap_err()),
        "layer_norm: expected a tensor of rank 1 or more, got shape []"
    );
    // Losses and dropout.
    let logits = g.input(&[2, 3, 4], &[0.0; 24]);
    assert_eq!(
        msg(logits.try_cross_entropy_ignore(&[-1i64; 6], -1).unwrap_err()),
        "cross_entropy: all 6 targets equal ignore_index -1; the mean over none is undefined"
    );
    assert!(matches!(
        logits.try_cross_entropy_ignore(&[0i64, 1, 2, 3, 4, -1], -1),
        Err(TensorError::Index { .. })
    ));
    assert!(matches!(logits.try_cross_entropy_ignore(&[0i64; 5], -1), Err(TensorError::Targets { .. })));
    let mut rng = StdRng::seed_from_u64(0);
    assert_eq!(
        msg(x.try_dropout(1.5, &mut rng).unwrap_err()),
        "dropout: p = 1.5 is not a probability in [0, 1]"
    );
    let mask = ndarray::Array2::from_elem((3, 3), false);
    assert!(matches!(x.try_masked_fill(&mask, 0.0), Err(TensorError::BroadcastTo { .. })));
    assert!(matches!(
        x.try_causal_attention(x, g.input(&[2, 3, 3], &[0.0; 18])),
        Err(TensorError::ShapeMismatch { .. })
    ));
    let row = g.input(&[4], &[0.0; 4]);
    assert_eq!(
        msg(row.try_causal_attention(row, row).unwrap_err()),
        "attention: expected a tensor of rank 2 or more, got shape [4]"
    );
    // Rank 5 works; rank 6 is a typed error.
    assert!(g.input(&[1, 2, 1, 2, 1], &[0.0; 4]).try_permute(&[4, 3, 2, 1, 0]).is_ok());
    assert!(matches!(x.try_reshape(&[1, 1, 1, 2, 3, 4]), Err(TensorError::RankTooLarge { rank: 6 })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A batched product equals the 2-D product of each batch, broadcast batches included.
    #[test]
    fn batched_matmul_is_one_product_per_batch(b in 1usize..4, h in 1usize..3, m in 1usize..6, k in 1usize..7, n in 1usize..6, bcast in 0usize..3, seed in 0u64..1000) {
        let (sa, sb): (Vec<usize>, Vec<usize>) = match bcast {
            0 => (vec![b, h, m, k], vec![b, h, k, n]),
            1 => (vec![b, h, m, k], vec![h, k, n]),
            _ => (vec![b, 1, m, k], vec![1, h, k, n]),
        };
        let (a0, b0) = (randn(&sa, seed), randn(&sb, seed + 1));
        let params = ParamStore::<f64>::new();
        let mut tape = Tape::new();
        let g = tape.no_grad(&params);
        let y = g.array(a0.view()).matmul(g.array(b0.view())).to_array();
        prop_assert_eq!(y.shape(), &[b, h, m, n][..]);
        for i in 0..b {
            for j in 0..h {
                let ai = a0.index_axis(ndarray::Axis(0), i.min(sa[0] - 1));
                let ai = ai.index_axis(ndarray::Axis(0), j.min(sa[1] - 1)).into_dimensionality::<ndarray::Ix2>().unwrap().to_owned();
                let bb = if sb.len() == 3 { b0.view() } else { b0.index_axis(ndarray::Axis(0), i.min(sb[0] - 1)) };
                let bj = bb.index_axis(ndarray::Axis(0), j.min(bb.shape()[0] - 1)).into_dimensionality::<ndarray::Ix2>().unwrap().to_owned();
                let want = ai.dot(&bj);
                let got = y.index_axis(ndarray::Axis(0), i);
                let got = got.index_axis(ndarray::Axis(0), j);
                for (g, w) in got.iter().zip(want.iter()) {
                    prop_assert!((g - w).abs() < 1e-12);
                }
            }
        }
    }

    /// Permuting and permuting back is the identity, and a permuted tensor read in another shape
    /// (the copy `reshape` of a non-contiguous PyTorch tensor needs) matches ndarray's.
    #[test]
    fn permute_matches_ndarray_and_inverts(d in prop::collection::vec(1usize..4, 2..6), seed in 0u64..1000) {
        let x0 = randn(&d, seed);
        let mut perm: Vec<usize> = (0..d.len()).collect();
        perm.rotate_left(seed as usize % d.len());
        perm.swap(0, d.len() - 1);
        let mut inv = vec![0; d.len()];
        perm.iter().enumerate().for_each(|(i, &p)| inv[p] = i);
        let params = ParamStore::<f64>::new();
        let mut tape = Tape::new();
        let g = tape.no_grad(&params);
        let x = g.array(x0.view());
        let y = x.permute(&perm);
        let want = x0.view().permuted_axes(IxDyn(&perm)).as_standard_layout().to_owned();
        prop_assert_eq!(y.to_array(), want.clone());
        prop_assert_eq!(y.permute(&inv).to_array(), x0.clone());
        let flat = y.reshape(&[want.len()]).to_array();
        prop_assert_eq!(flat.as_slice().unwrap(), want.as_slice().unwrap());
    }

    /// `narrow`s that tile an axis, joined by `concat`, give the input back.
    #[test]
    fn narrow_pieces_concat_back(d in prop::collection::vec(1usize..5, 1..6), axis_seed in 0usize..8, cut_seed in 0usize..8, seed in 0u64..1000) {
        let axis = axis_seed % d.len();
        let cut = cut_seed % (d[axis] + 1);
        let x0 = randn(&d, seed);
        let params = ParamStore::<f64>::new();
        let mut tape = Tape::new();
        let g = tape.no_grad(&params);
        let x = g.array(x0.view());
        let pieces: Vec<_> = [(0, cut), (cut, d[axis] - cut)].iter().filter(|(_, l)| *l > 0).map(|&(s, l)| x.narrow(axis, s, l)).collect();
        prop_assert_eq!(g.concat(&pieces, axis).to_array(), x0);
    }

    /// LayerNorm rows (weight 1, bias 0) have mean 0 and biased variance 1 / (1 + eps / var).
    #[test]
    fn layer_norm_rows_are_standardised(rows in 1usize..6, c in 2usize..40, seed in 0u64..1000) {
        let x0 = randn(&[rows, c], seed) * 3.0 + 1.0;
        let params = ParamStore::<f64>::new();
        let mut tape = Tape::new();
        let g = tape.no_grad(&params);
        let (w, b) = (g.input(&[c], &vec![1.0; c]), g.input(&[c], &vec![0.0; c]));
        let y = g.array(x0.view()).layer_norm(w, b, 0.0).to_array();
        for row in y.rows() {
            let mean = row.sum() / c as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / c as f64;
            prop_assert!(mean.abs() < 1e-10 && (var - 1.0).abs() < 1e-9);
        }
    }
}

/// `x` summed over `axes`, keeping them as axes of length 1.
fn sum_keep(x: &ArrayD<f64>, axes: &[usize]) -> ArrayD<f64> {
    axes.iter().fold(x.clone(), |s, &a| s.sum_axis(Axis(a)).insert_axis(Axis(a)))
}

/// Whether `got` matches `want` in shape and, element by element, to 1e-12 of its magnitude.
fn close(got: &ArrayD<f64>, want: &ArrayD<f64>) -> bool {
    got.shape() == want.shape() && got.iter().zip(want).all(|(g, w)| (g - w).abs() <= 1e-12 * (1.0 + w.abs()))
}

// The zoo's ops against their definitions, written out with ndarray, at random shapes up to
// rank 5 (their gradients: tests/gradcheck.rs).
proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Sigmoid, GELU (tanh form), sqrt, and softmax and log-softmax over any axis.
    #[test]
    fn pointwise_and_softmax_values(d in prop::collection::vec(1usize..4, 1..6), seed in 0u64..1000) {
        let x0 = randn(&d, seed);
        let axis = seed as usize % d.len();
        let params = ParamStore::<f64>::new();
        let mut tape = Tape::new();
        let g = tape.no_grad(&params);
        let x = g.array(x0.view());
        let k = (2.0 / std::f64::consts::PI).sqrt();
        prop_assert!(close(&x.sigmoid().to_array(), &x0.mapv(|v| 1.0 / (1.0 + (-v).exp()))));
        prop_assert!(close(&x.gelu().to_array(), &x0.mapv(|v| 0.5 * v * (1.0 + (k * (v + 0.044715 * v.powi(3))).tanh()))));
        let pos = x0.mapv(|v| v.abs() + 0.5);
        prop_assert!(close(&g.array(pos.view()).sqrt().to_array(), &pos.mapv(f64::sqrt)));
        let max = x0.map_axis(Axis(axis), |l| l.fold(f64::MIN, |m, &v| m.max(v))).insert_axis(Axis(axis));
        let e = (&x0 - &max).mapv(f64::exp);
        let sum = e.sum_axis(Axis(axis)).insert_axis(Axis(axis));
        prop_assert!(close(&x.softmax(axis).to_array(), &(&e / &sum)));
        prop_assert!(close(&x.log_softmax(axis).to_array(), &(&x0 - &max - sum.mapv(f64::ln))));
    }

    /// Mean and variance over any set of axes (corrections 0 and 1, keepdim or not), and
    /// BatchNorm in training mode over the same set when it is not all the axes (leading or not,
    /// with one channel axis or several).
    #[test]
    fn moments_and_batch_norm_values(d in prop::collection::vec(1usize..4, 1..6), set in 1u32..32, correction in 0usize..2, seed in 0u64..1000) {
        let axes: Vec<usize> = (0..d.len()).filter(|&a| set & (1 << a) != 0).collect();
        let count: usize = axes.iter().map(|&a| d[a]).product();
        prop_assume!(!axes.is_empty() && count > correction);
        let x0 = randn(&d, seed);
        let params = ParamStore::<f64>::new();
        let mut tape = Tape::new();
        let g = tape.no_grad(&params);
        let x = g.array(x0.view());
        let mean = sum_keep(&x0, &axes) / count as f64;
        let var = sum_keep(&(&x0 - &mean).mapv(|v| v * v), &axes) / (count - correction) as f64;
        prop_assert!(close(&x.mean_axes(&axes, true).to_array(), &mean));
        prop_assert!(close(&x.var_axes(&axes, correction, true).to_array(), &var));
        let flat = |a: ArrayD<f64>| a.iter().copied().collect::<Vec<_>>();
        prop_assert_eq!(flat(x.var_axes(&axes, correction, false).to_array()), flat(x.var_axes(&axes, correction, true).to_array()));
        // BatchNorm over the same axes normalises with those statistics; its weight and bias are
        // shaped like the other axes (the channels, in order), and broadcast here as the
        // keepdim statistics are: with length-1 axes where the reduced ones were.
        if axes.len() < d.len() {
            let channels: Vec<usize> = (0..d.len()).filter(|a| !axes.contains(a)).map(|a| d[a]).collect();
            let kept: Vec<usize> = (0..d.len()).map(|a| if axes.contains(&a) { 1 } else { d[a] }).collect();
            let (w0, b0) = (randn(&channels, seed + 1), randn(&channels, seed + 2));
            let (wk, bk) = (w0.to_shape(kept.clone()).unwrap(), b0.to_shape(kept).unwrap());
            let want = (&x0 - &mean) / var.mapv(|v| (v + 1e-5).sqrt()) * &wk + &bk;
            let (w, b) = (g.array(w0.view()), g.array(b0.view()));
            prop_assert!(close(&x.batch_norm(w, b, &axes, correction, 1e-5).to_array(), &want));
        }
    }

    /// Causal attention against its loops, and the cross-entropy with ignored targets against
    /// the mean of `logsumexp(row) - row[target]` over the targets that count.
    #[test]
    fn attention_and_ignored_targets_values(b in 1usize..3, h in 1usize..3, t in 1usize..7, hs in 1usize..5, ignored in 0u32..64, seed in 0u64..1000) {
        let (q0, k0, v0) = (randn(&[b, h, t, hs], seed), randn(&[b, h, t, hs], seed + 1), randn(&[b, h, t, hs], seed + 2));
        let params = ParamStore::<f64>::new();
        let mut tape = Tape::new();
        let g = tape.no_grad(&params);
        let y = g.array(q0.view()).causal_attention(g.array(k0.view()), g.array(v0.view())).to_array();
        let mut want = ArrayD::zeros(IxDyn(&[b, h, t, hs]));
        for (i, j, r) in (0..b).flat_map(|i| (0..h).flat_map(move |j| (0..t).map(move |r| (i, j, r)))) {
            let score = |c: usize| (0..hs).map(|e| q0[[i, j, r, e]] * k0[[i, j, c, e]]).sum::<f64>() / (hs as f64).sqrt();
            let max = (0..=r).map(score).fold(f64::MIN, f64::max);
            let p: Vec<f64> = (0..=r).map(|c| (score(c) - max).exp()).collect();
            let total: f64 = p.iter().sum();
            for e in 0..hs {
                want[[i, j, r, e]] = (0..=r).map(|c| p[c] / total * v0[[i, j, c, e]]).sum::<f64>();
            }
        }
        prop_assert!(close(&y, &want));
        let v = hs + 1;
        let logits0 = randn(&[b, t, v], seed + 3);
        let targets = ndarray::Array2::from_shape_fn((b, t), |(i, r)| {
            let at = i * t + r;
            if at > 0 && ignored & (1 << (at % 6)) != 0 { -1 } else { ((seed as usize + at) % v) as i64 }
        });
        let loss = g.array(logits0.view()).cross_entropy_ignore(&targets, -1).to_array();
        let counted: Vec<(usize, usize)> = (0..b).flat_map(|i| (0..t).map(move |r| (i, r))).filter(|&(i, r)| targets[[i, r]] != -1).collect();
        let nll: f64 = counted.iter().map(|&(i, r)| {
            let row = logits0.index_axis(Axis(0), i);
            let row = row.index_axis(Axis(0), r);
            let max = row.fold(f64::MIN, |m, &x| m.max(x));
            max + row.mapv(|x| (x - max).exp()).sum().ln() - row[targets[[i, r]] as usize]
        }).sum();
        prop_assert!((loss.sum() - nll / counted.len() as f64).abs() < 1e-12);
    }
}

#[test]
fn fused_attention_equals_its_composition_in_value_and_gradient() {
    let shape = [2, 3, 6, 4];
    let mut params = ParamStore::<f64>::new();
    let ids: Vec<_> = (0..3).map(|i| params.add(&format!("x{i}"), randn(&shape, 10 + i)).unwrap()).collect();
    let mask = mm_tensor::causal_mask(6);
    let run = |fused: bool, params: &ParamStore<f64>| {
        let mut tape = Tape::new();
        let mut grads = Grads::new(params);
        let g = tape.graph(params);
        let (q, k, v) = (g.param(ids[0]), g.param(ids[1]), g.param(ids[2]));
        let y = if fused {
            q.causal_attention(k, v)
        } else {
            let att = q.matmul(k.transpose(2, 3)) * 0.5;
            att.masked_fill(&mask, f64::NEG_INFINITY).softmax(3).matmul(v)
        };
        let u = randn(&shape, 99);
        g.backward_from(y, u.view(), &mut grads).unwrap();
        (y.to_array(), ids.iter().map(|&i| grads.get(i).to_owned()).collect::<Vec<_>>())
    };
    let (yf, gf) = run(true, &params);
    let (yc, gc) = run(false, &params);
    assert!(yf.iter().zip(&yc).all(|(a, b)| (a - b).abs() < 1e-12));
    for (a, b) in gf.iter().zip(&gc) {
        assert!(a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-12));
    }
}

#[test]
fn self_attention_in_place_equals_split_heads_attention_and_merge() {
    let (b, t, h, hs) = (3, 7, 4, 5);
    let c = h * hs;
    let mut params = ParamStore::<f64>::new();
    let id = params.add("qkv", randn(&[b, t, 3 * c], 21)).unwrap();
    let run = |fused: bool| {
        let mut tape = Tape::new();
        let mut grads = Grads::new(&params);
        let g = tape.graph(&params);
        let qkv = g.param(id);
        let y = if fused {
            qkv.causal_self_attention(h)
        } else {
            let head = |i: usize| qkv.narrow(2, i * c, c).reshape(&[b, t, h, hs]).permute(&[0, 2, 1, 3]);
            head(0).causal_attention(head(1), head(2)).permute(&[0, 2, 1, 3]).reshape(&[b, t, c])
        };
        g.backward_from(y, randn(&[b, t, c], 5).view(), &mut grads).unwrap();
        (y.to_array(), grads.get(id).to_owned())
    };
    let ((yf, gf), (yc, gc)) = (run(true), run(false));
    assert_eq!(yf.shape(), &[b, t, c]);
    assert!(yf.iter().zip(&yc).all(|(a, b)| (a - b).abs() < 1e-12));
    assert!(gf.iter().zip(&gc).all(|(a, b)| (a - b).abs() < 1e-12));
    // A last axis that is not 3 · n_head · head_size is a typed error.
    let mut tape = Tape::new();
    let g = tape.graph(&params);
    for (shape, heads) in [(&[2, 3, 10][..], 2), (&[2, 3, 12], 0), (&[6, 12], 2)] {
        let x = g.input(shape, &vec![0.0; shape.iter().product()]);
        assert!(matches!(x.try_causal_self_attention(heads), Err(TensorError::Heads { .. })), "{shape:?}");
    }
}

#[test]
fn batch_norm_stats_feed_running_buffers_that_are_never_trained() {
    let mut params = ParamStore::<f64>::new();
    let w = params.add("bn.weight", ArrayD::ones(IxDyn(&[3]))).unwrap();
    let b = params.add("bn.bias", ArrayD::zeros(IxDyn(&[3]))).unwrap();
    let rm = params.add_buffer("bn.running_mean", ArrayD::zeros(IxDyn(&[3]))).unwrap();
    let rv = params.add_buffer("bn.running_var", ArrayD::ones(IxDyn(&[3]))).unwrap();
    assert_eq!((params.len(), params.buffer_len()), (2, 2));
    assert!(params.add("bn.running_mean", ArrayD::zeros(IxDyn(&[1]))).is_err());
    let x0 = randn(&[8, 3], 5) + 2.0;
    let (mut tape, mut grads, mut opt) = (Tape::new(), Grads::new(&params), AdamW::new(0.1));
    let (mut mean, mut var) = (vec![], vec![]);
    {
        let g = tape.graph(&params);
        let y = g.array(x0.view()).batch_norm(g.param(w), g.param(b), &[0], 1, 1e-5);
        y.with_batch_stats(|m, v| (mean.extend_from_slice(m), var.extend_from_slice(v)));
        g.backward(y.pow(2.0).sum(), &mut grads).unwrap();
    }
    // The statistics are the batch's, with Bessel's correction.
    for j in 0..3 {
        let col = x0.index_axis(ndarray::Axis(1), j);
        let m = col.sum() / 8.0;
        assert!((mean[j] - m).abs() < 1e-12);
        assert!((var[j] - col.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 7.0).abs() < 1e-12);
    }
    params.blend_buffer(rm, &mean, 0.1).unwrap();
    params.blend_buffer(rv, &var, 0.1).unwrap();
    let before = params.buffer_data(rm).to_vec();
    opt.step(&mut params, &grads).unwrap();
    assert_eq!(params.buffer_data(rm), &before[..], "the optimizer never touches a buffer");
    // Evaluation reads the buffers.
    let g = tape.no_grad(&params);
    let y =
        g.array(x0.view()).batch_norm_eval(g.param(w), g.param(b), &[0], (g.buffer(rm), g.buffer(rv)), 1e-5);
    let want = (x0[[0, 0]] - params.buffer_data(rm)[0]) / (params.buffer_data(rv)[0] + 1e-5).sqrt()
        * params.data(w)[0]
        + params.data(b)[0];
    assert!((y.to_array()[[0, 0]] - want).abs() < 1e-12);
    // A running statistic that depends on parameters would get no gradient: refused, by name.
    let g = tape.graph(&params);
    let x = g.array(x0.view());
    let (wv, bv) = (g.param(w), g.param(b));
    let err = x.try_batch_norm_eval(wv, bv, &[0], (wv * 0.5, g.buffer(rv)), 1e-5).unwrap_err();
    assert!(matches!(err, TensorError::RunningStatGrad { what: "mean", .. }), "{err}");
    let err = x.try_batch_norm_eval(wv, bv, &[0], (g.buffer(rm), bv.exp()), 1e-5).unwrap_err();
    assert!(matches!(err, TensorError::RunningStatGrad { what: "variance", .. }), "{err}");
    // Constants and buffers are what it takes, in a graph with gradients too.
    let var = g.input(&[params.buffer_data(rv).len()], params.buffer_data(rv));
    assert!(x.try_batch_norm_eval(wv, bv, &[0], (g.buffer(rm), var), 1e-5).is_ok());
}

/// `masked_fill` with masks that broadcast as PyTorch's do, in value and gradient, against the
/// mask expanded to the input's shape by ndarray: trailing axes, leading axes of 1, axes of 1
/// inside, a scalar mask (true: every element filled), and a mask as large as the input. Each
/// mask but the scalar holds both values.
#[test]
fn masked_fill_broadcasts_its_mask_as_pytorch_does() {
    let shape = [2, 3, 4, 4];
    let x0 = randn(&shape, 7);
    let up = randn(&shape, 8);
    let masks: [&[usize]; 7] =
        [&[4, 4], &[1, 1, 4, 4], &[2, 1, 1, 4], &[3, 1, 4], &[1, 4], &[], &[2, 3, 4, 4]];
    for dims in masks {
        let n: usize = dims.iter().product();
        let mask = ArrayD::from_shape_fn(IxDyn(dims), |i: IxDyn| {
            (ndarray::Dimension::slice(&i).iter().sum::<usize>() * 7 + n + 2).is_multiple_of(3)
        });
        if dims.is_empty() {
            assert!(mask[IxDyn(&[])], "the scalar mask fills every element");
        } else {
            assert!(mask.iter().any(|&m| m) && mask.iter().any(|&m| !m), "{dims:?} holds both values");
        }
        let full = mask.broadcast(IxDyn(&shape)).unwrap();
        let want = ndarray::Zip::from(&x0).and(&full).map_collect(|&x, &m| if m { -2.5 } else { x });
        let want_grad = ndarray::Zip::from(&up).and(&full).map_collect(|&u, &m| if m { 0.0 } else { u });
        let mut params = ParamStore::<f64>::new();
        let id = params.add("x", x0.clone()).unwrap();
        let mut tape = Tape::new();
        let g = tape.graph(&params);
        let y = g.param(id).masked_fill(&mask, -2.5);
        assert_eq!(y.to_array(), want, "value with a mask of {dims:?}");
        let mut grads = Grads::new(&params);
        g.backward_from(y, up.view(), &mut grads).unwrap();
        assert_eq!(grads.get(id).to_owned(), want_grad, "gradient with a mask of {dims:?}");
    }
}

/// BatchNorm over axes that do not lead (`nn.BatchNorm1d`'s `[N, C, L]` over `[0, 2]`, and
/// `[N, H, C, W]` over `[0, 1, 3]`, given in any order) against its statistics computed by
/// ndarray, in training mode (the values and `with_batch_stats`) and in evaluation mode.
#[test]
fn batch_norm_over_axes_that_do_not_lead() {
    for (shape, axes, channel) in [([4, 3, 5, 1], &[0, 2, 3][..], 1), ([2, 3, 2, 4], &[3, 0, 1], 2)] {
        let x0 = randn(&shape, 11);
        let c = shape[channel];
        let w0: Vec<f64> = (0..c).map(|i| 0.5 + i as f64).collect();
        let b0: Vec<f64> = (0..c).map(|i| i as f64 - 1.0).collect();
        let (mut mean, mut var) = (vec![0.0; c], vec![0.0; c]);
        let n = (x0.len() / c) as f64;
        for (i, &v) in x0.indexed_iter() {
            mean[i[channel]] += v / n;
        }
        for (i, &v) in x0.indexed_iter() {
            var[i[channel]] += (v - mean[i[channel]]).powi(2) / (n - 1.0);
        }
        let params = ParamStore::<f64>::new();
        let mut tape = Tape::new();
        let g = tape.graph(&params);
        let x = g.array(x0.view());
        let wshape: Vec<usize> = (0..4).filter(|a| !axes.contains(a)).map(|a| shape[a]).collect();
        assert_eq!(wshape, [c], "one channel axis left");
        let (w, b) = (g.input(&[c], &w0), g.input(&[c], &b0));
        let y = x.batch_norm(w, b, axes, 1, 1e-5);
        let (running_mean, running_var) = (g.input(&[c], &mean), g.input(&[c], &var));
        let z = x.batch_norm_eval(w, b, axes, (running_mean, running_var), 1e-5);
        let want = ArrayD::from_shape_fn(IxDyn(&shape), |i| {
            let k = i[channel];
            (x0[&i] - mean[k]) / (var[k] + 1e-5).sqrt() * w0[k] + b0[k]
        });
        assert!(close(&y.to_array(), &want), "training mode over {axes:?} of {shape:?}");
        assert!(close(&z.to_array(), &want), "evaluation mode with the batch's statistics as running ones");
        let (m, v) = y.with_batch_stats(|m, v| (m.to_vec(), v.to_vec())).expect("the statistics");
        assert!(m.iter().zip(&mean).chain(v.iter().zip(&var)).all(|(a, b)| (a - b).abs() < 1e-12));
    }
}

#[test]
fn dropout_is_seeded_and_the_identity_when_evaluating() {
    let x0 = randn(&[50, 20], 1);
    let params = ParamStore::<f32>::new();
    let mut tape = Tape::new();
    let draw = |tape: &mut Tape<f32>, seed| {
        let g = tape.graph(&params);
        g.array(x0.mapv(|v| v as f32).view()).dropout(0.2, &mut StdRng::seed_from_u64(seed)).to_array()
    };
    let (a, b, c) = (draw(&mut tape, 1), draw(&mut tape, 1), draw(&mut tape, 2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let zeros = a.iter().filter(|&&v| v == 0.0).count();
    assert!((150..250).contains(&zeros), "about 20% of 1,000 dropped, got {zeros}");
    let kept = a.iter().zip(x0.iter()).find(|(v, _)| **v != 0.0).unwrap();
    assert!((kept.0 - *kept.1 as f32 / 0.8).abs() < 1e-6);
    let g = tape.no_grad(&params);
    let x = g.array(x0.mapv(|v| v as f32).view());
    assert_eq!(x.dropout(0.2, &mut StdRng::seed_from_u64(1)).to_array(), x.to_array());
}

/// Found on review: empty dimensions give empty (or zero) results and typed errors, never a
/// panic or a stale value from a reused buffer.
#[test]
fn zero_sized_dimensions_and_huge_offsets_are_handled() {
    let params = ParamStore::<f32>::new();
    let mut tape = Tape::new();
    // Fill node slots with 7s so that a kernel that writes nothing would show stale values.
    {
        let g = tape.graph(&params);
        for _ in 0..4 {
            g.input(&[3, 4], &[7.0; 12]);
        }
    }
    let g = tape.graph(&params);
    let a = g.input(&[3, 0], &[]);
    let b = g.input(&[0, 4], &[]);
    let y = a.matmul(b);
    assert_eq!((y.shape().dims(), y.to_array().iter().all(|&v| v == 0.0)), (&[3, 4][..], true));
    let y = a.linear(b, g.input(&[4], &[1.0; 4]));
    assert!(y.to_array().iter().all(|&v| v == 1.0), "an empty product plus its bias");
    let x = g.input(&[2, 3], &[1.0; 6]);
    assert!(matches!(x.try_narrow(1, usize::MAX, 2), Err(TensorError::Narrow { .. })));
    assert!(x.try_select(1, usize::MAX).is_err());
    let empty = x.narrow(1, 0, 0);
    assert_eq!(empty.sum_axis(1, false).to_array().as_slice().unwrap(), &[0.0, 0.0]);
    assert_eq!(empty.sum().item().unwrap(), 0.0);
    let none = g.input(&[2, 0], &[]);
    assert_eq!(none.layer_norm(g.input(&[0], &[]), g.input(&[0], &[]), 1e-5).shape().numel(), 0);
    let qkv = g.input(&[2, 0, 4], &[]);
    assert_eq!(qkv.causal_attention(qkv, qkv).shape().dims(), &[2, 0, 4]);
    assert_eq!(
        none.try_cross_entropy(&[0u32, 0][..]).unwrap_err().to_string(),
        "cross_entropy: logits of shape [2, 0] have no classes"
    );
    let w = g.input(&[0, 3], &[]);
    assert_eq!(x.linear_t(w, Some(g.input(&[0], &[]))).shape().dims(), &[2, 0]);
    g.check().unwrap();
}

#[test]
fn cross_entropy_ignores_the_ignore_id_as_cross_entropy_ignore_does_minus_one() {
    use mm_tensor::IGNORE;
    let mut params = ParamStore::<f64>::new();
    let w = params.add("logits", randn(&[2, 3, 5], 11)).unwrap();
    let ids = [0u32, 4, IGNORE, 2, IGNORE, IGNORE];
    let signed: Vec<i64> = ids.iter().map(|&t| if t == IGNORE { -1 } else { i64::from(t) }).collect();
    let mut tape = Tape::new();
    let (mut ga, mut gb) = (Grads::new(&params), Grads::new(&params));
    let a = {
        let g = tape.graph(&params);
        let loss = g.param(w).cross_entropy(&ids);
        g.backward(loss, &mut ga).unwrap()
    };
    let b = {
        let g = tape.graph(&params);
        let loss = g.param(w).cross_entropy_ignore(&signed, -1);
        g.backward(loss, &mut gb).unwrap()
    };
    assert_eq!(a, b);
    assert_eq!(ga.get(w), gb.get(w));
    // The ignored rows get no gradient; the mean is over the three others.
    let grad = ga.get(w).as_slice().unwrap().to_vec();
    assert!(grad[5 * 2..5 * 3].iter().all(|&d| d == 0.0));
    let g = tape.no_grad(&params);
    let err = g.param(w).try_cross_entropy(&[IGNORE; 6]).unwrap_err();
    assert!(matches!(err, TensorError::AllIgnored { targets: 6, .. }), "{err}");
    let bad = g.param(w).try_cross_entropy(&[0u32, 5, IGNORE, 0, 0, 0]).unwrap_err();
    assert!(matches!(bad, TensorError::Index { index: 5, len: 5, .. }), "{bad}");
}

/// makemore's `RNNCell` and `GRUCell` written out as `RNN.forward` runs them (a `select`, a
/// `concat` and the gate products per position), against the fused scans: same values and
/// gradients. Weights `[H, E + H]` as `nn.Linear` stores them.
#[test]
fn recurrent_scans_equal_the_cells_written_out_position_by_position() {
    let (b, t, e, h) = (3, 5, 4, 6);
    for gru in [false, true] {
        let mut params = ParamStore::<f64>::new();
        let mut shapes = vec![("x", vec![b, t, e]), ("h0", vec![b, h])];
        for gate in if gru { &["z", "r", "hbar"][..] } else { &["h"][..] } {
            shapes.push((gate, vec![h, e + h]));
            shapes.push((gate, vec![h]));
        }
        let ids: Vec<_> = shapes
            .iter()
            .enumerate()
            .map(|(i, (name, shape))| params.add(&format!("{name}{i}"), randn(shape, 40 + i as u64)).unwrap())
            .collect();
        let run = |fused: bool| {
            let mut tape = Tape::new();
            let mut grads = Grads::new(&params);
            let g = tape.graph(&params);
            let p: Vec<_> = ids.iter().map(|&id| g.param(id)).collect();
            let (x, h0) = (p[0], p[1]);
            let lin = |xh, i: usize| mm_tensor::Var::linear_t(xh, p[2 + 2 * i], Some(p[3 + 2 * i]));
            let y = match (fused, gru) {
                (true, false) => x.rnn_scan(h0, p[2], p[3]),
                (true, true) => x.gru_scan(h0, [(p[2], p[3]), (p[4], p[5]), (p[6], p[7])]),
                (false, _) => {
                    let mut hprev = h0;
                    let mut hs = Vec::new();
                    for i in 0..t {
                        let xt = x.select(1, i);
                        let xh = g.concat(&[xt, hprev], 1);
                        hprev = if gru {
                            let r = lin(xh, 1).sigmoid();
                            let hbar = lin(g.concat(&[xt, r * hprev], 1), 2).tanh();
                            let z = lin(xh, 0).sigmoid();
                            (-z + 1.0) * hprev + z * hbar
                        } else {
                            lin(xh, 0).tanh()
                        };
                        hs.push(hprev);
                    }
                    g.stack(&hs, 1)
                }
            };
            g.backward_from(y, randn(&[b, t, h], 7).view(), &mut grads).unwrap();
            (y.to_array(), ids.iter().map(|&i| grads.get(i).to_owned()).collect::<Vec<_>>())
        };
        let ((yf, gf), (yc, gc)) = (run(true), run(false));
        assert_eq!(yf.shape(), &[b, t, h]);
        assert!(yf.iter().zip(&yc).all(|(a, b)| (a - b).abs() < 1e-12), "gru {gru}: values");
        for ((a, b), name) in gf.iter().zip(&gc).zip(&shapes) {
            assert!(a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-12), "gru {gru}: d{}", name.0);
        }
    }
    // Shapes that do not fit are typed errors that name them.
    let params = ParamStore::<f32>::new();
    let mut tape = Tape::new();
    let g = tape.graph(&params);
    let zeros = |shape: &[usize]| g.input(shape, &vec![0.0; shape.iter().product()]);
    let (x, h0, w, bias) = (zeros(&[2, 3, 4]), zeros(&[2, 5]), zeros(&[5, 9]), zeros(&[5]));
    assert!(x.try_rnn_scan(h0, w, bias).is_ok());
    assert_eq!(
        x.try_rnn_scan(h0, zeros(&[5, 8]), bias).unwrap_err().to_string(),
        "rnn_scan: expected shape [5, 9], got [5, 8]"
    );
    assert_eq!(
        x.try_rnn_scan(zeros(&[3, 5]), w, bias).unwrap_err().to_string(),
        "rnn_scan: expected shape [2, 5], got [3, 5]"
    );
    assert!(matches!(zeros(&[2, 4]).try_rnn_scan(h0, w, bias), Err(TensorError::Rank { .. })));
    assert_eq!(
        x.try_gru_scan(h0, [(w, bias), (w, zeros(&[4])), (w, bias)]).unwrap_err().to_string(),
        "gru_scan: expected shape [5], got [4]"
    );
}

/// The fused linear layer over concatenated embeddings against the gather, reshape and linear
/// it replaces, for both weight layouts: the same values and gradients (to rounding: the sums
/// are grouped differently).
#[test]
fn embedding_linear_equals_embedding_then_linear() {
    let (v, e, s, h) = (7, 3, 4, 5);
    let ids = ndarray::Array3::from_shape_fn((2, 3, s), |(i, j, k)| ((i * 5 + j * 3 + k * k) % v) as u32);
    for w_t in [false, true] {
        let mut params = ParamStore::<f64>::new();
        let table = params.add("C", randn(&[v, e], 1)).unwrap();
        let wshape = if w_t { [h, s * e] } else { [s * e, h] };
        let weight = params.add("W", randn(&wshape, 2)).unwrap();
        let bias = params.add("b", randn(&[h], 3)).unwrap();
        let run = |fused: bool| {
            let mut tape = Tape::new();
            let mut grads = Grads::new(&params);
            let g = tape.graph(&params);
            let (c, w, b) = (g.param(table), g.param(weight), g.param(bias));
            let y = match (fused, w_t) {
                (true, true) => c.embedding_linear_t(&ids, w, Some(b)),
                (true, false) => c.embedding_linear(&ids, w, Some(b)),
                (false, true) => c.embedding(&ids).reshape(&[2, 3, s * e]).linear_t(w, Some(b)),
                (false, false) => c.embedding(&ids).reshape(&[2, 3, s * e]).linear(w, b),
            };
            g.backward_from(y, randn(&[2, 3, h], 4).view(), &mut grads).unwrap();
            (y.to_array(), [table, weight, bias].map(|i| grads.get(i).to_owned()))
        };
        let ((yf, gf), (yc, gc)) = (run(true), run(false));
        assert_eq!(yf.shape(), &[2, 3, h]);
        assert!(yf.iter().zip(&yc).all(|(a, b)| (a - b).abs() < 1e-12), "w_t {w_t}");
        for (a, b) in gf.iter().zip(&gc) {
            assert!(a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-12), "w_t {w_t}");
        }
        // Shapes that do not fit, and ids past the table, are typed errors.
        let mut tape = Tape::new();
        let g = tape.graph(&params);
        let (c, w) = (g.param(table), g.param(weight));
        let three = ndarray::arr2(&[[0u32, 1, 2]]);
        let err = if w_t {
            c.try_embedding_linear_t(&three, w, None)
        } else {
            c.try_embedding_linear(&three, w, None)
        };
        let want =
            if w_t { "expected shape [5, 9], got [5, 12]" } else { "expected shape [9, 5], got [12, 5]" };
        assert_eq!(err.unwrap_err().to_string(), format!("embedding_linear: {want}"));
        let (past, four) = (ndarray::arr2(&[[0u32, 1, 2, 7]]), ndarray::arr2(&[[0u32, 1, 2, 3]]));
        let (past, bad_bias) = if w_t {
            (c.try_embedding_linear_t(&past, w, None), c.try_embedding_linear_t(&four, w, Some(c)))
        } else {
            (c.try_embedding_linear(&past, w, None), c.try_embedding_linear(&four, w, Some(c)))
        };
        assert!(matches!(past, Err(TensorError::Index { index: 7, len: 7, .. })), "w_t {w_t}");
        assert!(matches!(bad_bias, Err(TensorError::Bias { .. })), "w_t {w_t}");
    }
}

/// Empty sizes (no sequences, no positions, no hidden channels, no outputs) give empty results
/// and zero gradients, never a panic.
#[test]
fn fused_ops_take_empty_sizes() {
    for (b, t, e, h) in [(0, 4, 3, 2), (2, 0, 3, 2), (2, 4, 3, 0), (2, 4, 0, 2), (0, 0, 0, 0)] {
        let mut params = ParamStore::<f64>::new();
        let mut add = |name: &str, shape: &[usize]| params.add(name, randn(shape, 3)).unwrap();
        let (x, h0, w, bias) =
            (add("x", &[b, t, e]), add("h0", &[b, h]), add("w", &[h, e + h]), add("b", &[h]));
        for gru in [false, true] {
            let mut tape = Tape::new();
            let mut grads = Grads::new(&params);
            let g = tape.graph(&params);
            let (xv, h0v, wv, bv) = (g.param(x), g.param(h0), g.param(w), g.param(bias));
            let y = if gru { xv.gru_scan(h0v, [(wv, bv); 3]) } else { xv.rnn_scan(h0v, wv, bv) };
            assert_eq!(y.shape().dims(), &[b, t, h]);
            g.backward_from(y, ndarray::ArrayD::zeros(vec![b, t, h]).view(), &mut grads).unwrap();
            for id in [x, h0, w, bias] {
                assert!(grads.get(id).iter().all(|&v| v == 0.0), "{b} {t} {e} {h} gru {gru}");
            }
        }
    }
    // A linear layer of no outputs over embeddings.
    let mut params = ParamStore::<f64>::new();
    let (c, w) = (params.add("C", randn(&[5, 3], 1)).unwrap(), params.add("W", randn(&[0, 6], 2)).unwrap());
    let mut tape = Tape::new();
    let mut grads = Grads::new(&params);
    let g = tape.graph(&params);
    let y = g.param(c).embedding_linear_t(&ndarray::arr2(&[[0u32, 4], [1, 1]]), g.param(w), None);
    assert_eq!(y.shape().dims(), &[2, 0]);
    g.backward_from(y, ndarray::ArrayD::zeros(vec![2, 0]).view(), &mut grads).unwrap();
    assert!(grads.get(c).iter().all(|&v| v == 0.0));
}

/// The running mean against makemore's `CausalBoW` written out (the softmax of zeros under the
/// causal mask, times `x`): the same values and gradients, at every sequence length up to the
/// mask's, and empty sizes give empty results and zero gradients.
#[test]
fn causal_mean_equals_makemores_causal_bow() {
    for (b, t, c) in [(3, 5, 4), (2, 1, 3), (2, 16, 70)] {
        let mut params = ParamStore::<f64>::new();
        let id = params.add("x", randn(&[b, t, c], 11)).unwrap();
        let upstream = randn(&[b, t, c], 12);
        let run = |fused: bool| {
            let mut tape = Tape::new();
            let mut grads = Grads::new(&params);
            let g = tape.graph(&params);
            let x = g.param(id);
            let y = if fused {
                x.causal_mean(1)
            } else {
                let mask = mm_tensor::causal_mask(t);
                let att = g.input(&[t, t], &vec![0.0; t * t]).masked_fill(&mask.view(), f64::NEG_INFINITY);
                att.softmax(1).matmul(x)
            };
            g.backward_from(y, upstream.view(), &mut grads).unwrap();
            (y.to_array(), grads.get(id).to_owned())
        };
        let ((yf, gf), (yc, gc)) = (run(true), run(false));
        assert_eq!(yf.shape(), &[b, t, c]);
        assert!(yf.iter().zip(&yc).all(|(a, b)| (a - b).abs() < 1e-12), "[{b}, {t}, {c}]: values");
        assert!(gf.iter().zip(&gc).all(|(a, b)| (a - b).abs() < 1e-12), "[{b}, {t}, {c}]: gradients");
    }
    let params = ParamStore::<f32>::new();
    let mut tape = Tape::new();
    let g = tape.graph(&params);
    for shape in [[0, 3, 2], [2, 0, 2], [2, 3, 0]] {
        let y = g.input(&shape, &[]).causal_mean(1);
        assert_eq!(y.shape().dims(), shape);
    }
    let bad = g.input(&[2, 3], &[0.0; 6]).try_causal_mean(2).unwrap_err();
    assert_eq!(bad.to_string(), "causal_mean: axis 2 is out of range for shape [2, 3]");
}

/// `Var::grad` of nodes whose gradient was passed through without a copy (they share a buffer
/// with the node they feed) reads the right values: each node of `y = reshape(2 x) + tanh(x)`
/// against its gradient written out.
#[test]
fn node_gradients_read_through_shared_buffers() {
    let mut params = ParamStore::<f64>::new();
    let id = params.add("x", randn(&[2, 3], 5)).unwrap();
    let mut tape = Tape::new();
    let mut grads = Grads::new(&params);
    let g = tape.graph(&params);
    let x = g.param(id);
    let (h, t) = (x * 2.0, x.tanh());
    let hr = h.reshape(&[2, 3]);
    let y = hr + t;
    let upstream = randn(&[2, 3], 6);
    g.backward_from(y, upstream.view(), &mut grads).unwrap();
    for node in [y, hr, h, t] {
        assert_eq!(node.grad().unwrap(), upstream, "every node between x and y gets the upstream gradient");
    }
    let expected = &upstream * 2.0 + &upstream * x.to_array().mapv(|v| 1.0 - v.tanh() * v.tanh());
    assert!(grads.get(id).iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-12));
}

/// Rotary positions against the rotation written out from its definition in `f64` (each head's
/// pair `i` and `i + hs/2` of q and k turned by `pos · 10000^(-2i/hs)`, v untouched); a run
/// that starts at position `s` equals rows `s..` of one that starts at 0 (what the key/value
/// cache relies on); the scores of two positions depend only on how far apart they are; and
/// shapes that are not `[B, T, 3C]` with heads of an even size are typed errors.
#[test]
fn rotary_turns_q_and_k_by_the_position_and_leaves_v() {
    let (b, t, h, hs) = (2, 6, 3, 4);
    let c = h * hs;
    let params = ParamStore::<f64>::new();
    let x = randn(&[b, t, 3 * c], 33);
    let mut tape = Tape::new();
    let g = tape.no_grad(&params);
    let y = g.input(&[b, t, 3 * c], x.as_slice().unwrap()).rotary_qk(h, 0).to_array();
    for bi in 0..b {
        for p in 0..t {
            for part in 0..3 {
                for head in 0..h {
                    for i in 0..hs {
                        let at = |j: usize| [bi, p, part * c + head * hs + j];
                        let want = if part == 2 {
                            x[at(i)]
                        } else {
                            let pair = i % (hs / 2);
                            let angle = p as f64 * 10_000f64.powf(-2.0 * pair as f64 / hs as f64);
                            let (x1, x2) = (x[at(pair)], x[at(pair + hs / 2)]);
                            if i < hs / 2 {
                                x1 * angle.cos() - x2 * angle.sin()
                            } else {
                                x1 * angle.sin() + x2 * angle.cos()
                            }
                        };
                        assert!((y[at(i)] - want).abs() < 1e-14, "{:?}: {} against {want}", at(i), y[at(i)]);
                    }
                }
            }
        }
    }
    // Starting at position 2 gives rows 2.. of the run from 0.
    let tail = x.slice(ndarray::s![.., 2.., ..]).to_owned();
    let y2 =
        g.input(&[b, t - 2, 3 * c], tail.as_standard_layout().as_slice().unwrap()).rotary_qk(h, 2).to_array();
    assert!(y2.iter().zip(y.slice(ndarray::s![.., 2.., ..]).iter()).all(|(a, b)| (a - b).abs() < 1e-14));
    // The same q and k at every position: q_p · k_r depends on p - r alone.
    let row: Vec<f64> = randn(&[3 * c], 7).into_iter().collect();
    let same: Vec<f64> = (0..t).flat_map(|_| row.clone()).collect();
    let r = g.input(&[1, t, 3 * c], &same).rotary_qk(h, 0).to_array();
    let score = |p: usize, q: usize| (0..hs).map(|i| r[[0, p, i]] * r[[0, q, c + i]]).sum::<f64>();
    assert!((score(3, 1) - score(5, 3)).abs() < 1e-12 && (score(2, 2) - score(0, 0)).abs() < 1e-12);
    assert!((score(3, 1) - score(3, 0)).abs() > 1e-6, "the distance matters");
    for (shape, heads) in [(&[2, 3, 10][..], 2), (&[2, 3, 12], 0), (&[2, 3, 9], 1), (&[6, 12], 2)] {
        let x = g.input(shape, &vec![0.0; shape.iter().product()]);
        assert!(matches!(x.try_rotary_qk(heads, 0), Err(TensorError::RotaryHeads { .. })), "{shape:?}");
    }
    // No positions: an empty result.
    let empty = g.input(&[2, 0, 12], &[]).rotary_qk(2, 0).to_array();
    assert_eq!(empty.shape(), &[2, 0, 12]);
}
