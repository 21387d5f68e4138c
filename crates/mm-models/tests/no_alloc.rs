//! Every model kind's warm training step (batch drawn, forward, backward, optimizer, running
//! statistics) allocates nothing: the tape, the gradients, the batch and the optimizer reuse
//! their buffers. Checked with a global allocator that counts each thread's allocations.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mm_data::{Batch, Examples, Vocab};
use mm_models::Spec;
use mm_tensor::{AdamW, BatchStatsLog, Grads, Optimizer, Tape};
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
fn every_kinds_warm_training_step_allocates_nothing() {
    let words = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia"];
    let vocab = Vocab::from_words(&words);
    let mut report = Vec::new();
    for spec in common::neural_specs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut model = spec.build(&vocab, &mut rng).unwrap();
        let m = model.neural_mut().unwrap();
        let ex = Examples::new(&words, &vocab, m.layout(), m.block_size()).unwrap();
        let mut batch = Batch::new(8, m.block_size());
        let mut tape = Tape::new();
        let mut grads = Grads::new(m.params());
        let mut adam = AdamW::new(1e-3f32);
        let mut stats = BatchStatsLog::new();
        let mut step = |m: &mut dyn mm_models::Model| {
            ex.sample_into(&mut rng, &mut batch).unwrap();
            {
                let g = tape.graph(m.params());
                let loss = m.loss(&g, batch.x.view(), batch.y.as_slice().unwrap());
                g.backward_params(loss, &mut grads).unwrap();
                g.batch_stats(&mut stats);
            }
            adam.step(m.params_mut(), &grads).unwrap();
            if !stats.is_empty() {
                m.update_running(&stats).unwrap();
            }
        };
        for _ in 0..3 {
            step(m);
        }
        let before = allocations();
        step(m);
        report.push((spec.kind(), allocations() - before));
    }
    let allocating: Vec<_> = report.iter().filter(|(_, n)| *n > 0).collect();
    assert!(allocating.is_empty(), "allocations in a warm step: {allocating:?}");
}

/// The Transformer with every lever of issue #14 on (dropout, tied weights, clipping, decay on
/// the matrices only) takes the training loop's warm step without allocating either: dropout's
/// generator is reseeded in place, clipping scales the gradients in place.
#[test]
fn the_transformers_levers_allocate_nothing_in_a_warm_step() {
    let words = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia"];
    let vocab = Vocab::from_words(&words);
    let spec: Spec = serde_json::from_str(
        r#"{"kind": "transformer", "block_size": 10, "n_layer": 2, "n_head": 2, "n_embd": 16,
            "dropout": 0.2, "tie_weights": true, "grad_clip": 0.5, "decay_matrices_only": true}"#,
    )
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut model = spec.build(&vocab, &mut rng).unwrap();
    let m = model.neural_mut().unwrap();
    let ex = Examples::new(&words, &vocab, m.layout(), m.block_size()).unwrap();
    let mut batch = Batch::new(8, m.block_size());
    let mut tape = Tape::new();
    let mut grads = Grads::new(m.params());
    let mut adam = AdamW::new(1e-3f32);
    for id in m.params().ids() {
        adam.set_decay(id, m.params().shape(id).rank() >= 2);
    }
    let mut step = |m: &mut dyn mm_models::Model, t: usize| {
        ex.sample_into(&mut rng, &mut batch).unwrap();
        m.begin_step(7, t);
        {
            let g = tape.graph(m.params());
            let loss = m.loss(&g, batch.x.view(), batch.y.as_slice().unwrap());
            g.backward_params(loss, &mut grads).unwrap();
        }
        grads.clip_norm(0.5);
        adam.step(m.params_mut(), &grads).unwrap();
    };
    for t in 0..3 {
        step(m, t);
    }
    let before = allocations();
    step(m, 3);
    assert_eq!(allocations() - before, 0, "allocations in a warm step with the levers");
}
