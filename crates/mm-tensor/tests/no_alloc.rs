//! In steady state a training step allocates nothing: resetting the tape keeps its buffers, so
//! recording the same step again reuses every one. Checked with a counting global allocator (this
//! test binary holds only this test, so nothing else allocates meanwhile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use mm_tensor::{AdamW, Grads, Optimizer, ParamStore, Sgd, Tape, init};
use rand::SeedableRng;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
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
        let loss = g.backward(logits.cross_entropy(&yb[..]), &mut grads).unwrap();
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
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let first = step(&mut params, false);
    step(&mut params, true);
    let last = step(&mut params, false);
    let allocated = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(allocated, 0, "warm training steps allocated {allocated} times");
    assert!(last < first, "training lowers the loss ({first} -> {last})");
}
