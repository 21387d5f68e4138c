//! Data-parallel steps: the same bits on 1 thread and on 2, and the gradient of the whole batch.

use mm_tensor::{AdamW, Grads, Optimizer, ParamStore, Shards, Tape, TensorError, init};
use ndarray::{Array2, s};
use rand::SeedableRng;
use rand::rngs::StdRng;

const B: usize = 6;
const T: usize = 5;
const C: usize = 8;
const V: usize = 7;

/// A small causal-attention language model over `idx` rows, its loss over the targets that are
/// not -1, and the number of those targets (the shard's weight).
struct Tiny {
    params: ParamStore<f64>,
    ids: Vec<mm_tensor::ParamId>,
    idx: Array2<u32>,
    targets: Array2<i64>,
}

impl Tiny {
    fn new() -> Tiny {
        let mut rng = StdRng::seed_from_u64(3);
        let mut params = ParamStore::new();
        for (name, shape) in
            [("wte", &[V, C][..]), ("qkv", &[3 * C, C]), ("ln.w", &[C]), ("ln.b", &[C]), ("head", &[V, C])]
        {
            params.add(name, init::randn::<f64, _>(shape, &mut rng) * 0.3).unwrap();
        }
        let idx = Array2::from_shape_fn((B, T), |(i, j)| ((i * 3 + j * 5) % V) as u32);
        let targets =
            Array2::from_shape_fn((B, T), |(i, j)| if j > 1 + i % 3 { -1 } else { ((i + 2 * j) % V) as i64 });
        Tiny { ids: params.ids().collect(), params, idx, targets }
    }

    /// The loss of rows `rows` of the batch, recorded on `g`, and its number of targets.
    fn loss<'g>(
        &self,
        g: &'g mm_tensor::Graph<'g, f64>,
        rows: std::ops::Range<usize>,
    ) -> (mm_tensor::Var<'g, f64>, f64) {
        // wte, qkv, ln.w, ln.b, head, by id (the store itself may be elsewhere meanwhile).
        let p = |n: &str| {
            let i = ["wte", "qkv", "ln.w", "ln.b", "head"].iter().position(|&k| k == n).unwrap();
            g.param(self.ids[i])
        };
        let (idx, y) = (self.idx.slice(s![rows.clone(), ..]), self.targets.slice(s![rows, ..]));
        let x = p("wte").embedding(&idx).layer_norm(p("ln.w"), p("ln.b"), 1e-5);
        let qkv = x.linear_t(p("qkv"), None);
        let att = qkv.narrow(2, 0, C).causal_attention(qkv.narrow(2, C, C), qkv.narrow(2, 2 * C, C));
        let logits = (x + att).gelu().linear_t(p("head"), None);
        (logits.cross_entropy_ignore(&y, -1), y.iter().filter(|&&t| t != -1).count() as f64)
    }
}

#[test]
fn sharded_gradient_is_the_whole_batch_gradient() {
    let m = Tiny::new();
    let mut whole = Grads::new(&m.params);
    let mut tape = Tape::new();
    let g = tape.graph(&m.params);
    let want = g.backward(m.loss(&g, 0..B).0, &mut whole).unwrap();
    for (shards, threads) in [(2, 1), (2, 2), (3, 2)] {
        let mut grads = Grads::new(&m.params);
        let rows = B / shards;
        let mut sh = Shards::new(&m.params, shards, threads);
        let got = sh.step(&m.params, &mut grads, |g, i| Ok(m.loss(g, i * rows..(i + 1) * rows))).unwrap();
        assert!((got - want).abs() < 1e-12, "{shards} shards: loss {got} vs {want}");
        for id in m.params.ids() {
            for (a, b) in grads.data(id).iter().zip(whole.data(id)) {
                assert!((a - b).abs() < 1e-12, "{shards} shards, {}: {a} vs {b}", m.params.name(id));
            }
        }
    }
}

#[test]
fn one_thread_and_two_give_the_same_bits() {
    let train = |threads: usize| {
        let mut m = Tiny::new();
        let mut grads = Grads::new(&m.params);
        let mut opt = AdamW::new(1e-2);
        let mut sh = Shards::new(&m.params, 2, threads);
        let mut losses = vec![];
        for _ in 0..5 {
            let params = std::mem::take(&mut m.params);
            let loss = sh.step(&params, &mut grads, |g, i| Ok(m.loss(g, i * 3..i * 3 + 3))).unwrap();
            m.params = params;
            opt.step(&mut m.params, &grads).unwrap();
            losses.push(loss);
        }
        (losses, m.params)
    };
    let (l1, p1) = train(1);
    let (l2, p2) = train(2);
    assert_eq!(l1, l2);
    assert_eq!(p1, p2);
    assert!(l1[4] < l1[0], "the loss falls: {l1:?}");
}

#[test]
fn a_shard_without_weight_or_with_an_error_fails_the_step() {
    let m = Tiny::new();
    let mut grads = Grads::new(&m.params);
    let mut sh = Shards::new(&m.params, 2, 2);
    let err = sh.step(&m.params, &mut grads, |g, i| Ok((m.loss(g, 0..3).0, i as f64))).unwrap_err();
    assert_eq!(err, TensorError::ShardWeight { shard: 0, weight: 0.0 });
    let err = sh
        .step(&m.params, &mut grads, |g, i| {
            let (loss, w) = m.loss(g, 0..3);
            if i == 1 { Ok((loss.try_reshape(&[2])?, w)) } else { Ok((loss, w)) }
        })
        .unwrap_err();
    assert!(matches!(err, TensorError::Reshape { .. }), "{err}");
}

/// Above 65,536 elements the sum of the shards' gradients and AdamW's update are cut across the
/// threads (`Shards::step`, `AdamW::set_workers`): each element is still updated the same way,
/// with its own parameter's decay, whichever thread takes it. Four parameters of 66,946 elements
/// in all, exempt from decay and decayed in turn, so that a thread applying the decay of the
/// wrong parameter (the cut falls after `b`) changes the bits.
#[test]
fn cut_across_threads_the_gradient_sum_and_adamw_keep_the_bits() {
    const D: usize = 256;
    // 130: `a` and `c` are not a whole number of AdamW's chunks of 1,024 (the fused sum).
    const H: usize = 130;
    // `fused`: the sum taken inside AdamW's update (`Shards::backward`, `AdamW::step_shards`).
    let train_shards = |shards: usize, threads: usize, exempt: bool, fused: bool| {
        let mut rng = StdRng::seed_from_u64(5);
        let mut params = ParamStore::new();
        let a = params.add("a", init::randn::<f64, _>(&[D, H], &mut rng) * 0.1).unwrap();
        let b = params.add("b", init::randn::<f64, _>(&[H], &mut rng) * 0.1).unwrap();
        let c = params.add("c", init::randn::<f64, _>(&[H, D], &mut rng) * 0.1).unwrap();
        let d = params.add("d", init::randn::<f64, _>(&[D], &mut rng)).unwrap();
        let elements: usize = params.ids().map(|id| params.data(id).len()).sum();
        assert!(elements >= 1 << 16, "{elements} elements: too few to be cut across threads");
        let x = init::randn::<f64, _>(&[B, D], &mut rng);
        let mut opt = AdamW::new(1e-2).exempt_from_decay(if exempt { vec![a, d] } else { vec![] });
        opt.weight_decay = 0.5;
        let mut sh = Shards::new(&params, shards, threads);
        opt.set_workers(sh.workers().clone());
        let r = B / shards;
        let mut grads = Grads::new(&params);
        for _ in 0..3 {
            // Shard i's loss (a closure's lifetimes cannot be named, a macro's body can).
            macro_rules! loss {
                () => {
                    |g: &mm_tensor::Graph<'_, f64>, i: usize| {
                        let rows = x.slice(s![i * r..(i + 1) * r, ..]);
                        let h =
                            g.input(&[r, D], rows.as_slice().unwrap()).matmul(g.param(a)).tanh() + g.param(b);
                        let y = h.matmul(g.param(c)) * g.param(d);
                        Ok(((y * y).mean(), r as f64))
                    }
                };
            }
            if fused {
                sh.backward(&params, loss!()).unwrap();
                opt.step_shards(&mut params, &sh).unwrap();
            } else {
                sh.step(&params, &mut grads, loss!()).unwrap();
                opt.step(&mut params, &grads).unwrap();
            }
        }
        params
    };
    let train = |threads, exempt| train_shards(2, threads, exempt, false);
    let one = train(1, true);
    assert_eq!(one, train(2, true));
    // The sum taken inside the update: the same bits, on 1 thread and on 2.
    assert_eq!(one, train_shards(2, 1, true, true));
    assert_eq!(one, train_shards(2, 2, true, true));
    // 3 shards on 3 threads (cuts after the 1st, 2nd and 4th parameter: offsets 1 and 2 too).
    let three = |threads, fused| train_shards(3, threads, true, fused);
    assert_eq!(three(1, false), three(3, false));
    assert_eq!(three(1, false), three(3, true));
    // The control: the exemptions show in the bits (a thread that took another parameter's
    // decay would too).
    assert_ne!(one, train(1, false));
}

/// `AdamW::step_shards` and `Shards::sum_into` take the gradients of the last backward that
/// succeeded: before one, or after one that failed, they are an error and change nothing.
#[test]
fn no_gradients_to_sum_before_a_backward_or_after_a_failed_one() {
    let m = Tiny::new();
    let mut params = m.params.clone();
    let mut grads = Grads::new(&params);
    let mut sh = Shards::new(&params, 2, 2);
    let mut opt = AdamW::new(0.1);
    assert_eq!(opt.step_shards(&mut params, &sh), Err(TensorError::NoShardGradients));
    assert_eq!(sh.sum_into(&params, &mut grads), Err(TensorError::NoShardGradients));
    assert_eq!((params == m.params, opt.steps()), (true, 0));
    // A backward that succeeds, then one that fails: nothing to sum.
    sh.backward(&params, |g, i| Ok(m.loss(g, 3 * i..3 * i + 3))).unwrap();
    let err = sh.backward(&params, |g, i| Ok((m.loss(g, 0..3).0, i as f64))).unwrap_err();
    assert_eq!(err, TensorError::ShardWeight { shard: 0, weight: 0.0 });
    assert_eq!(opt.step_shards(&mut params, &sh), Err(TensorError::NoShardGradients));
    assert_eq!(sh.sum_into(&params, &mut grads), Err(TensorError::NoShardGradients));
    assert_eq!((params == m.params, opt.steps()), (true, 0));
    // Gradients of another store's parameters: an error too.
    sh.backward(&params, |g, i| Ok(m.loss(g, 3 * i..3 * i + 3))).unwrap();
    let mut other = ParamStore::<f64>::new();
    other.add("w", ndarray::arr1(&[1.0]).into_dyn()).unwrap();
    assert!(opt.step_shards(&mut other, &sh).is_err());
    opt.step_shards(&mut params, &sh).unwrap();
    assert_eq!(opt.steps(), 1);
}
