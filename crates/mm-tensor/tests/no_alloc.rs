//! In steady state a training step allocates nothing: resetting the tape keeps its buffers, so
//! recording the same step again reuses every one. Checked with a global allocator that counts
//! each thread's allocations (the test harness allocates on its own thread meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mm_tensor::{AdamW, Grads, Optimizer, ParamStore, Sgd, Tape, init};
use rand::SeedableRng;

struct Counting;

thread_local! {
    /// This thread's allocations (a const-initialised `Cell`: reading it never allocates).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn count() {
    // `try_with`: a thread being torn down has no counter left, and that is not ours to count.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is passed to the system allocator unchanged, which upholds
// `GlobalAlloc`'s contract; counting touches no allocation.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's `layout`, as `GlobalAlloc::alloc` asks.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is the system's, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as `dealloc`, and `new_size` as `GlobalAlloc::realloc` asks.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn an_mlp_training_step_allocates_nothing_once_warm() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut params = ParamStore::<f32>::new();
    let c = params.add("C", init::randn(&[27, 10], &mut rng)).unwrap();
    let w1 = params.add("W1", init::randn(&[30, 200], &mut rng)).unwrap();
    let b1 = params.add("b1", init::randn(&[200], &mut rng)).unwrap();
    let w2 = params.add("W2", init::randn(&[200, 27], &mut rng)).unwrap();
    let b2 = params.add("b2", init::randn(&[27], &mut rng)).unwrap();
    let xb: Vec<u32> = (0..96).map(|i| (i * 7 % 27) as u32).collect();
    let yb: Vec<u32> = (0..32).map(|i| (i * 5 % 27) as u32).collect();
    let xb = ndarray::Array2::from_shape_vec((32, 3), xb).unwrap();
    let mut tape = Tape::new();
    let mut grads = Grads::new(&params);
    let mut sgd = Sgd::new(0.1f32);
    let mut adam = AdamW::new(1e-3f32);

    let mut step = |params: &mut ParamStore<f32>, use_adam: bool| {
        let g = tape.graph(params);
        let emb = g.param(c).embedding(&xb);
        // The AdamW steps use the fused linear op, the SGD steps matmul then add: both allocate
        // nothing once warm.
        let (flat, (w1, b1, w2, b2)) =
            (emb.reshape(&[32, 30]), (g.param(w1), g.param(b1), g.param(w2), g.param(b2)));
        let h = if use_adam { flat.linear(w1, b1) } else { flat.matmul(w1) + b1 }.tanh();
        let logits = if use_adam { h.linear(w2, b2) } else { h.matmul(w2) + b2 };
        // The AdamW steps take the training loop's backward pass (node gradients recycled), the
        // SGD steps the one that keeps them: the same tape alternates between the two.
        let loss = logits.cross_entropy(&yb[..]);
        let loss = if use_adam { g.backward_params(loss, &mut grads) } else { g.backward(loss, &mut grads) };
        let loss = loss.unwrap();
        if use_adam {
            adam.step(params, &grads).unwrap()
        } else {
            sgd.step(params, &grads).unwrap()
        }
        loss
    };
    for _ in 0..2 {
        step(&mut params, false);
        step(&mut params, true);
    }
    let before = allocations();
    let first = step(&mut params, false);
    step(&mut params, true);
    let last = step(&mut params, false);
    let allocated = allocations() - before;
    assert_eq!(allocated, 0, "warm training steps allocated {allocated} times");
    assert!(last < first, "training lowers the loss ({first} -> {last})");
}

/// A step through every op of the model zoo: a GPT block (LayerNorm, q/k/v split by `narrow`,
/// heads by `reshape` and `permute`, fused causal attention, GELU MLP, dropout), a WaveNet-style
/// BatchNorm over `[B, T, C]` with its running statistics, a masked softmax, `concat`/`stack`,
/// and the loss with ignored targets; AdamW with decay exemptions.
#[test]
fn a_zoo_training_step_allocates_nothing_once_warm() {
    let (b, t, c, h, v) = (4, 8, 16, 2, 27);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut params = ParamStore::<f32>::new();
    let mut add = |name: &str, shape: &[usize], params: &mut ParamStore<f32>| {
        params.add(name, init::randn::<f32, _>(shape, &mut rng) * 0.2).unwrap()
    };
    let wte = add("wte", &[v, c], &mut params);
    let wpe = add("wpe", &[t, c], &mut params);
    let ln_w = add("ln.weight", &[c], &mut params);
    let ln_b = add("ln.bias", &[c], &mut params);
    let attn_w = add("attn.weight", &[3 * c, c], &mut params);
    let attn_b = add("attn.bias", &[3 * c], &mut params);
    let fc_w = add("fc.weight", &[4 * c, c], &mut params);
    let proj_w = add("proj.weight", &[c, 4 * c], &mut params);
    let bn_w = add("bn.weight", &[c], &mut params);
    let bn_b = add("bn.bias", &[c], &mut params);
    let bn2_w = add("bn2.weight", &[t], &mut params);
    let bn2_b = add("bn2.bias", &[t], &mut params);
    let head = add("lm_head.weight", &[v, 2 * c], &mut params);
    let rm = params.add_buffer("bn.running_mean", ndarray::ArrayD::zeros(ndarray::IxDyn(&[c]))).unwrap();
    let rv = params.add_buffer("bn.running_var", ndarray::ArrayD::ones(ndarray::IxDyn(&[c]))).unwrap();
    let idx = ndarray::Array2::from_shape_fn((b, t), |(i, j)| ((i * 5 + j * 3) % v) as u32);
    let pos: Vec<u32> = (0..t as u32).collect();
    let targets =
        ndarray::Array2::from_shape_fn(
            (b, t),
            |(i, j)| if j > 4 + i % 3 { -1 } else { ((i + j * 7) % v) as i64 },
        );
    let mask = mm_tensor::causal_mask(t);
    // A mask that broadcasts inside (one row per batch element), stored whole when recorded.
    let pad = ndarray::Array3::from_shape_fn((b, 1, c), |(i, _, k)| (i + k) % 5 == 0);
    let (mut tape, mut grads) = (Tape::new(), Grads::new(&params));
    let mut opt = AdamW::new(3e-3f32).exempt_from_decay([wte, wpe, ln_w, ln_b, attn_b, bn_w, bn_b]);
    let (mut mean, mut var) = (Vec::with_capacity(c), Vec::with_capacity(c));

    let mut step = |params: &mut ParamStore<f32>, rng: &mut rand::rngs::StdRng| {
        let g = tape.graph(params);
        let x = g.param(wte).embedding(&idx) + g.param(wpe).embedding(&pos[..]);
        let a =
            x.layer_norm(g.param(ln_w), g.param(ln_b), 1e-5).linear_t(g.param(attn_w), Some(g.param(attn_b)));
        let heads = |i: usize| a.narrow(2, i * c, c).reshape(&[b, t, h, c / h]).permute(&[0, 2, 1, 3]);
        let y = heads(0).causal_attention(heads(1), heads(2)).transpose(1, 2).reshape(&[b, t, c]);
        let y = y + a.causal_self_attention(h);
        let x = x + y.dropout(0.1, rng);
        let m = x.linear_t(g.param(fc_w), None).gelu().linear_t(g.param(proj_w), None);
        let x = x + m;
        let bn = x.batch_norm(g.param(bn_w), g.param(bn_b), &[0, 1], 1, 1e-5);
        let n = bn.tanh();
        let scores = n.matmul(n.transpose(1, 2)).masked_fill(&mask, f64::NEG_INFINITY).softmax(2);
        let mixed = g.concat(
            &[scores.matmul(n), g.stack(&[n, (x.pow(2.0) + 1.0).sqrt() * 0.1], 2).sum_axis(2, false)],
            2,
        );
        // BatchNorm over axes that do not lead ([0, 2], the channels in the middle), permuted.
        let bn2 = x.batch_norm(g.param(bn2_w), g.param(bn2_b), &[0, 2], 0, 1e-5).masked_fill(&pad, 0.0);
        let loss = mixed.var_axes(&[0, 1], 1, false).mean() * 1e-3
            + bn2.pow(2.0).mean() * 1e-3
            + mixed.linear_t(g.param(head), None).cross_entropy_ignore(&targets, -1);
        bn.with_batch_stats(|m, v| {
            mean.clear();
            var.clear();
            mean.extend_from_slice(m);
            var.extend_from_slice(v);
        });
        let loss = g.backward_params(loss, &mut grads).unwrap();
        opt.step(params, &grads).unwrap();
        params.blend_buffer(rm, &mean, 0.1).unwrap();
        params.blend_buffer(rv, &var, 0.1).unwrap();
        loss
    };
    for _ in 0..3 {
        step(&mut params, &mut rng);
    }
    let before = allocations();
    let first = step(&mut params, &mut rng);
    for _ in 0..20 {
        step(&mut params, &mut rng);
    }
    let last = step(&mut params, &mut rng);
    let allocated = allocations() - before;
    assert_eq!(allocated, 0, "warm zoo training steps allocated {allocated} times");
    assert!(last < first, "training lowers the loss ({first} -> {last})");
}
