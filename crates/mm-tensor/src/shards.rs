//! Data parallelism for one training step: the batch cut into a fixed number of shards, each
//! recorded and differentiated on its own tape (on its own core where there is one), then the
//! gradients summed in shard order, each weighted by its shard's share of the loss.
//!
//! The shards, not the threads, fix the arithmetic: every shard runs the same ops on the same
//! rows whichever thread runs it, and each element's sum is taken in shard order whichever
//! thread takes its parameter, so a step gives the same bits on 1 core and on 2 (PyTorch's
//! `DistributedDataParallel` averages shard gradients the same way, with an all-reduce whose
//! order is not fixed).
//!
//! A step is [`Shards::backward`] (the shards) and [`Shards::sum_into`] (the sum of their
//! gradients, cut across the threads by parameter), which [`Shards::step`] runs in turn; or
//! the backward and [`crate::AdamW::step_shards`], an update that sums as it goes and never
//! writes the summed gradient out (the same bits).
//!
//! The threads are [`Workers`] that wait between steps: each phase of a step (the shards, then
//! the sum of their gradients, cut across the threads by parameter) is handed to them, which
//! costs up to tens of microseconds when a worker has to be woken: it pays for steps of
//! milliseconds (a Transformer's) and not for the lecture MLP's 22 µs. [`Shards::workers`]
//! lends them to AdamW ([`crate::AdamW::set_workers`]) for the update that follows. Unlike a
//! single tape's warm step, a sharded step allocates: the jobs handed to the workers, the cut
//! lists, and small lists of the shards' results.

use crate::parallel::{self, Workers};
use crate::param::Buf;
use crate::{Float, Grads, Graph, ParamStore, Result, Tape, TensorError, Var};

/// The per-shard tapes and gradients of a data-parallel step, reused step after step.
///
/// ```
/// use mm_tensor::{Grads, ParamStore, Shards};
/// let mut params = ParamStore::<f64>::new();
/// let w = params.add("w", ndarray::arr1(&[2.0]).into_dyn())?;
/// let xs = [1.0, 2.0, 3.0, 4.0];
/// let mut grads = Grads::new(&params);
/// // Two shards of two examples each, on up to 2 threads; each shard's loss is its mean of
/// // (w x)^2, weighted by its 2 examples: the whole batch's mean.
/// let mut shards = Shards::new(&params, 2, 2);
/// let loss = shards.step(&params, &mut grads, |g, i| {
///     let x = g.input(&[2], &xs[2 * i..2 * i + 2]);
///     Ok(((g.param(w) * x).pow(2.0).mean(), 2.0))
/// })?;
/// assert_eq!(loss, 4.0 * (1.0 + 4.0 + 9.0 + 16.0) / 4.0);
/// assert_eq!(grads.data(w), &[2.0 * 2.0 * 30.0 / 4.0]); // d/dw mean((w x)^2) = 2 w mean(x^2)
/// # Ok::<(), mm_tensor::TensorError>(())
/// ```
pub struct Shards<T> {
    tapes: Vec<Tape<T>>,
    grads: Vec<Grads<T>>,
    /// Each shard's loss and weight, from the last step.
    losses: Vec<(T, f64)>,
    /// Each shard's share of the summed gradient, `w_i / Σ w`, from the last [`Shards::backward`]
    /// that succeeded (empty before one, and after one that failed).
    shares: Vec<T>,
    workers: Workers,
}

impl<T: Float> Shards<T> {
    /// `shards` shards (at least 1) of a batch over `params`, run on up to `threads` threads (at
    /// least 1; more than the shards is no use).
    pub fn new(params: &ParamStore<T>, shards: usize, threads: usize) -> Self {
        let n = shards.max(1);
        Shards {
            tapes: (0..n).map(|_| Tape::new()).collect(),
            grads: (0..n).map(|_| Grads::new(params)).collect(),
            losses: vec![(T::zero(), 0.0); n],
            shares: Vec::new(),
            workers: Workers::new(threads.clamp(1, n)),
        }
    }

    /// The number of shards.
    pub fn len(&self) -> usize {
        self.tapes.len()
    }

    /// Whether there are no shards (never: there is at least one).
    pub fn is_empty(&self) -> bool {
        self.tapes.is_empty()
    }

    /// The number of threads a step uses.
    pub fn threads(&self) -> usize {
        self.workers.threads()
    }

    /// The threads of a step, to lend to the optimizer's update that follows it
    /// ([`crate::AdamW::set_workers`]).
    pub fn workers(&self) -> &Workers {
        &self.workers
    }

    /// Uses up to `threads` threads from the next step on (the results do not change). These are
    /// new [`Workers`]: an optimizer lent the old ones keeps them until it is lent these.
    pub fn set_threads(&mut self, threads: usize) {
        self.workers = Workers::new(threads.clamp(1, self.len()));
    }

    /// One data-parallel step: `f(graph, i)` records shard `i`'s loss on its own graph and
    /// returns it with the shard's weight (its share of the batch: its number of examples, or of
    /// targets that count); each is differentiated, and `grads` receives `Σ_i w_i · grad_i / Σ_i
    /// w_i`, summed in shard order. Returns the loss weighted the same way, or the first error
    /// in shard order (also for weights that are not positive). [`Shards::backward`] then
    /// [`Shards::sum_into`].
    pub fn step<F>(&mut self, params: &ParamStore<T>, grads: &mut Grads<T>, f: F) -> Result<T>
    where
        F: for<'g> Fn(&'g Graph<'g, T>, usize) -> Result<(Var<'g, T>, f64)> + Sync,
    {
        grads.check(params)?;
        let loss = self.backward(params, f)?;
        self.sum_into(params, grads)?;
        Ok(loss)
    }

    /// The shards of a step without the sum: `f` as in [`Shards::step`], each shard's gradient
    /// left in the shard for [`Shards::sum_into`] or for an optimizer that sums as it updates
    /// ([`crate::AdamW::step_shards`]). Returns the weighted loss, or the first error in shard
    /// order (after which neither has a gradient to take).
    pub fn backward<F>(&mut self, params: &ParamStore<T>, f: F) -> Result<T>
    where
        F: for<'g> Fn(&'g Graph<'g, T>, usize) -> Result<(Var<'g, T>, f64)> + Sync,
    {
        self.shares.clear();
        let run = |i: usize, tape: &mut Tape<T>, grads: &mut Grads<T>| -> Result<(T, f64)> {
            let g = tape.graph(params);
            let (loss, weight) = f(&g, i)?;
            if !(weight > 0.0 && weight.is_finite()) {
                return Err(TensorError::ShardWeight { shard: i, weight });
            }
            Ok((g.backward_params(loss, grads)?, weight))
        };
        let per = self.len().div_ceil(self.threads());
        let mut results: Vec<Result<(T, f64)>> = Vec::new();
        results.resize_with(self.len(), || Ok((T::zero(), 0.0)));
        let groups = self.tapes.chunks_mut(per).zip(self.grads.chunks_mut(per)).zip(results.chunks_mut(per));
        // Group k of `per` shards on one thread each (the calling thread takes the first).
        self.workers.run_all(groups.enumerate().map(|(k, ((tapes, grads), out))| {
            move || {
                for (j, ((tape, grads), out)) in tapes.iter_mut().zip(grads).zip(out).enumerate() {
                    *out = run(k * per + j, tape, grads);
                }
            }
        }));
        for (slot, r) in self.losses.iter_mut().zip(results) {
            *slot = r?;
        }
        let total: f64 = self.losses.iter().map(|&(_, w)| w).sum();
        let loss = self.losses.iter().map(|&(l, w)| l.as_f64() * w).sum::<f64>() / total;
        self.shares.extend(self.losses.iter().map(|&(_, w)| T::of(w / total)));
        Ok(T::of(loss))
    }

    /// `grads = Σ_i (w_i / W) grad_i` over the gradients of the last [`Shards::backward`], in
    /// shard order; the parameters cut across the threads (each element's sum is the same
    /// whichever thread takes it). An error, changing nothing, if that backward failed or
    /// there was none, or for `grads` of other parameters.
    pub fn sum_into(&self, params: &ParamStore<T>, grads: &mut Grads<T>) -> Result<()> {
        grads.check(params)?;
        let (shards, shares) = self.gradients(params)?;
        let sum = |dst: &mut [Buf<T>], first: usize| {
            for (j, dst) in dst.iter_mut().enumerate() {
                let parts = shards.iter().map(|g| &g.bufs[first + j].data[..]);
                sum_of_shards(&mut dst.data, parts.zip(shares.iter().copied()));
            }
        };
        let lens = grads.bufs.iter().map(|b| b.data.len());
        if self.threads() > 1 && lens.clone().sum::<usize>() >= parallel::MIN_ELEMENTS {
            let ends = parallel::cuts(lens, self.threads());
            let firsts = std::iter::once(0).chain(ends.iter().copied());
            let runs = parallel::split_mut(&mut grads.bufs, &ends).into_iter().zip(firsts);
            self.workers.run_all(runs.map(|(dst, first)| move || sum(dst, first)));
        } else {
            sum(&mut grads.bufs, 0);
        }
        Ok(())
    }

    /// The shards' gradients from the last [`Shards::backward`] and each one's share, checked
    /// against `params`.
    pub(crate) fn gradients(&self, params: &ParamStore<T>) -> Result<(&[Grads<T>], &[T])> {
        if self.shares.len() != self.len() {
            return Err(TensorError::NoShardGradients);
        }
        for g in &self.grads {
            g.check(params)?;
        }
        Ok((&self.grads, &self.shares))
    }
}

/// `dst = Σ_i k_i · part_i`, element by element in part order (the first written, the others
/// added): the sum of a sharded step's gradients, the same bits wherever it is taken.
pub(crate) fn sum_of_shards<'a, T: Float + 'a>(dst: &mut [T], parts: impl Iterator<Item = (&'a [T], T)>) {
    for (i, (src, k)) in parts.enumerate() {
        if i == 0 {
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = k * s);
        } else {
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d += k * s);
        }
    }
}
