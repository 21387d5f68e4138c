//! Optimizers: plain SGD (optionally with weight decay) and AdamW, each updating a
//! [`ParamStore`] from [`Grads`], with a settable learning rate for schedules; and gradient
//! clipping by global norm ([`Grads::clip_norm`], PyTorch's `clip_grad_norm_`), applied between
//! the backward pass and the optimizer's step.

use crate::kernels::update::{self, AdamWStep};
use crate::parallel::{self, Workers};
use crate::param::{Buf, check_like};
use crate::shards;
use crate::{Float, Grads, ParamId, ParamStore, Result, Shards, TensorError};

/// Updates parameters from their gradients.
pub trait Optimizer<T: Float> {
    /// Applies one update to every parameter.
    fn step(&mut self, params: &mut ParamStore<T>, grads: &Grads<T>) -> Result<()>;
    /// The current learning rate.
    fn lr(&self) -> T;
    /// Sets the learning rate (for a schedule such as the lecture's 0.1 then 0.01).
    fn set_lr(&mut self, lr: T);
}

/// Stochastic gradient descent: `p -= lr * (grad + weight_decay * p)`, as the lectures' loop
/// `p.data += -lr * p.grad`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd<T> {
    /// The learning rate.
    pub lr: T,
    /// L2 weight decay added to the gradient (0 for none).
    pub weight_decay: T,
}

impl<T: Float> Sgd<T> {
    /// SGD with learning rate `lr` and no weight decay.
    pub fn new(lr: T) -> Self {
        Sgd { lr, weight_decay: T::zero() }
    }

    /// The same optimizer with L2 weight decay.
    pub fn with_weight_decay(self, weight_decay: T) -> Self {
        Sgd { weight_decay, ..self }
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn step(&mut self, params: &mut ParamStore<T>, grads: &Grads<T>) -> Result<()> {
        grads.check(params)?;
        let (lr, wd) = (self.lr, self.weight_decay);
        for id in params.ids() {
            update::sgd(params.data_mut(id), grads.data(id), lr, wd);
        }
        Ok(())
    }

    fn lr(&self) -> T {
        self.lr
    }

    fn set_lr(&mut self, lr: T) {
        self.lr = lr;
    }
}

/// Adam with decoupled weight decay (Loshchilov & Hutter), as PyTorch's `AdamW` and makemore's
/// transformer training use it. Defaults are PyTorch's: betas (0.9, 0.999), eps 1e-8, weight
/// decay 0.01.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW<T> {
    /// The learning rate.
    pub lr: T,
    /// Decay of the first-moment (mean) estimate.
    pub beta1: T,
    /// Decay of the second-moment (uncentred variance) estimate.
    pub beta2: T,
    /// Added to the root of the second moment, for stability.
    pub eps: T,
    /// Decoupled weight decay: `p -= lr * weight_decay * p` before the Adam update.
    pub weight_decay: T,
    /// `no_decay[i]`: parameter `i` is exempt from weight decay (see [`AdamW::exempt_from_decay`]).
    no_decay: Vec<bool>,
    t: u64,
    m: Vec<Buf<T>>,
    v: Vec<Buf<T>>,
    /// The threads a step may use (see [`AdamW::set_workers`]).
    workers: Workers,
}

impl<T: Float> AdamW<T> {
    /// AdamW with learning rate `lr` and PyTorch's other defaults.
    pub fn new(lr: T) -> Self {
        AdamW {
            lr,
            beta1: T::of(0.9),
            beta2: T::of(0.999),
            eps: T::of(1e-8),
            weight_decay: T::of(0.01),
            no_decay: Vec::new(),
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
            workers: Workers::default(),
        }
    }

    /// Lets a step cut the parameters across these threads (by default the calling thread
    /// alone), such as a data-parallel step's ([`crate::Shards::workers`]). Every element gets
    /// the same update on any number of threads, so the results do not change; stores under
    /// 65,536 elements stay on the calling thread. The Transformer's 204,544 parameters take
    /// about 0.1 ms on one core. A step cut across threads allocates (the cuts and the jobs
    /// handed over): the allocation-free warm step holds with the default workers.
    pub fn set_workers(&mut self, workers: Workers) {
        self.workers = workers;
    }

    /// Exempts these parameters from weight decay, as PyTorch's parameter groups with
    /// `weight_decay=0.0` do (GPT-style training decays matrices only, not biases, norms or
    /// embeddings). The builder form of [`AdamW::set_decay`].
    ///
    /// ```
    /// use mm_tensor::{AdamW, Grads, Optimizer, ParamStore};
    /// let mut params = ParamStore::new();
    /// let w = params.add("w", ndarray::arr1(&[1.0f64]).into_dyn())?;
    /// let b = params.add("b", ndarray::arr1(&[1.0f64]).into_dyn())?;
    /// let grads = Grads::new(&params); // zero gradients: only the decay moves a parameter
    /// let mut opt = AdamW::new(0.1).exempt_from_decay([b]);
    /// opt.step(&mut params, &grads)?;
    /// assert_eq!((params.data(w)[0], params.data(b)[0]), (1.0 - 0.1 * 0.01, 1.0));
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn exempt_from_decay(mut self, ids: impl IntoIterator<Item = ParamId>) -> Self {
        ids.into_iter().for_each(|id| self.set_decay(id, false));
        self
    }

    /// Whether parameter `id` is decayed (all are, until exempted).
    pub fn set_decay(&mut self, id: ParamId, decay: bool) {
        if self.no_decay.len() <= id.index() {
            self.no_decay.resize(id.index() + 1, false);
        }
        self.no_decay[id.index()] = !decay;
    }

    /// Whether parameter `id` is decayed.
    pub fn decays(&self, id: ParamId) -> bool {
        !exempt(&self.no_decay, id.index())
    }

    /// The number of updates applied so far.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// The moment estimates and the update count, to save with a checkpoint; `None` before the
    /// first update.
    pub fn state(&self) -> Option<AdamWState<T>> {
        (self.t > 0).then(|| AdamWState {
            t: self.t,
            m: self.m.iter().map(|b| b.data.clone()).collect(),
            v: self.v.iter().map(|b| b.data.clone()).collect(),
        })
    }

    /// Restores a saved [`AdamWState`] for `params`, so that training continues exactly where it
    /// stopped. Fails, changing nothing, unless it holds one moment of the right size per
    /// parameter.
    ///
    /// ```
    /// use mm_tensor::{AdamW, Grads, Optimizer, ParamStore, Tape};
    /// let mut params = ParamStore::new();
    /// let w = params.add("w", ndarray::arr1(&[1.0f64, -2.0]).into_dyn())?;
    /// let mut grads = Grads::new(&params);
    /// let mut tape = Tape::new();
    /// let g = tape.graph(&params);
    /// let loss = (g.param(w) * g.param(w)).sum();
    /// g.backward(loss, &mut grads)?;
    /// let mut a = AdamW::new(0.1);
    /// a.step(&mut params, &grads)?;
    /// let mut b = AdamW::new(0.1);
    /// b.set_state(&params, a.state().unwrap())?;
    /// let mut copy = params.clone();
    /// a.step(&mut params, &grads)?;
    /// b.step(&mut copy, &grads)?;
    /// assert_eq!(params.data(w), copy.data(w));
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn set_state(&mut self, params: &ParamStore<T>, state: AdamWState<T>) -> Result<()> {
        let n = params.len();
        if state.m.len() != n || state.v.len() != n {
            let got = if state.m.len() != n { state.m.len() } else { state.v.len() };
            return Err(TensorError::ParamCount { op: "adamw state", expected: n, got });
        }
        for (id, (m, v)) in params.ids().zip(state.m.iter().zip(&state.v)) {
            let shape = params.shape(id);
            if let Some(len) = [m.len(), v.len()].into_iter().find(|&l| l != shape.numel()) {
                return Err(TensorError::DataLength { op: "adamw state", len, shape });
            }
        }
        let bufs = |data: Vec<Vec<T>>| {
            params.ids().zip(data).map(|(id, data)| Buf { shape: params.shape(id), data }).collect()
        };
        self.t = state.t;
        self.m = bufs(state.m);
        self.v = bufs(state.v);
        Ok(())
    }

    /// One update from the gradient of a sharded step, summed as it is applied: after
    /// [`Shards::backward`], the same parameters, moments and bits as [`Shards::sum_into`]
    /// followed by [`Optimizer::step`], without writing the summed gradient out and reading it
    /// back. Each thread sums its parameters' shard gradients a chunk at a time, in shard order,
    /// into a buffer that stays in L1, and updates them from it. Fails, changing nothing, if the
    /// shards hold no gradient ([`TensorError::NoShardGradients`]) or theirs are of other
    /// parameters.
    ///
    /// Like [`Optimizer::step`] given the same gradient twice, a second call without a
    /// backward in between applies the same gradient again.
    ///
    /// Why: in a sharded Transformer step on 2 cores (the 2-vCPU AMD EPYC, Zen 4, AVX-512 gemm
    /// path; `examples/transformer_step --shards 2 --threads 2` with a timer around the update)
    /// the sum and the update took 214-227 µs: each read the whole gradient, and the sum wrote
    /// it. Fused, 201-203 µs; the update still reads `p`, `m`, `v` and the shards' gradients from
    /// memory.
    ///
    /// ```
    /// use mm_tensor::{AdamW, Grads, Graph, Optimizer, ParamId, ParamStore, Shards, TensorError, Var};
    /// // A shard's loss: the mean of (w x)^2 over its two examples, weighted by 2.
    /// fn loss<'g>(g: &'g Graph<'g, f64>, w: ParamId, x: &[f64]) -> Result<(Var<'g, f64>, f64), TensorError> {
    ///     Ok(((g.param(w) * g.input(&[2], x)).pow(2.0).mean(), 2.0))
    /// }
    /// let mut params = ParamStore::<f64>::new();
    /// let w = params.add("w", ndarray::arr1(&[2.0, -1.0]).into_dyn())?;
    /// let xs = [1.0, 2.0, 3.0, 4.0];
    /// let mut shards = Shards::new(&params, 2, 2);
    /// // Summed and updated at once ...
    /// let mut fused = params.clone();
    /// let mut a = AdamW::new(0.1);
    /// shards.backward(&fused, |g, i| loss(g, w, &xs[2 * i..2 * i + 2]))?;
    /// a.step_shards(&mut fused, &shards)?;
    /// // ... or the sum written out, then the update: the same bits.
    /// let mut grads = Grads::new(&params);
    /// let mut b = AdamW::new(0.1);
    /// shards.step(&params, &mut grads, |g, i| loss(g, w, &xs[2 * i..2 * i + 2]))?;
    /// b.step(&mut params, &grads)?;
    /// assert_eq!(fused.data(w), params.data(w));
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn step_shards(&mut self, params: &mut ParamStore<T>, shards: &Shards<T>) -> Result<()> {
        let (parts, shares) = shards.gradients(params)?;
        self.update(params, Gradient::Shards(parts, shares))
    }

    /// One update of every parameter from `gradient` (checked against `params` by the callers).
    fn update(&mut self, params: &mut ParamStore<T>, gradient: Gradient<'_, T>) -> Result<()> {
        if self.m.is_empty() {
            self.m = params.ids().map(|id| Buf::zeros(params.shape(id))).collect();
            self.v = self.m.clone();
        }
        check_like(&self.m, params, "adamw")?;
        // Saturating, and the bias corrections' exponent clamped: `t as i32` would wrap at 2^31
        // (and `t` itself at 2^64 - 1) into a correction of 0, and every update into NaN. Past
        // 2^31 steps beta^t is 0 in any float, as it is at the clamp.
        self.t = self.t.saturating_add(1);
        let t = i32::try_from(self.t).unwrap_or(i32::MAX);
        let one = T::one();
        let s = AdamWStep {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            decay: one - self.lr * self.weight_decay,
            c1: one - self.beta1.powi(t),
            c2: one - self.beta2.powi(t),
        };
        let decay = s.decay;
        let no_decay = &self.no_decay;
        // Parameters `first..` of the store: their values and moments.
        let update = |p: &mut [Buf<T>], m: &mut [Buf<T>], v: &mut [Buf<T>], first: usize| {
            // The shards' sum, a chunk at a time, in a buffer that stays in L1.
            let mut sum = [T::zero(); CHUNK];
            for (j, ((p, m), v)) in p.iter_mut().zip(m).zip(v).enumerate() {
                let s = AdamWStep { decay: if exempt(no_decay, first + j) { one } else { decay }, ..s };
                let (p, m, v) = (&mut p.data[..], &mut m.data[..], &mut v.data[..]);
                match gradient {
                    Gradient::Summed(g) => update::adamw(p, &g[first + j].data, m, v, s),
                    Gradient::Shards(parts, shares) => {
                        for at in (0..p.len()).step_by(CHUNK) {
                            let end = (at + CHUNK).min(p.len());
                            let g = &mut sum[..end - at];
                            let chunks = parts.iter().map(|part| &part.bufs[first + j].data[at..end]);
                            shards::sum_of_shards(g, chunks.zip(shares.iter().copied()));
                            update::adamw(&mut p[at..end], g, &mut m[at..end], &mut v[at..end], s);
                        }
                    }
                }
            }
        };
        let p = params.bufs_mut();
        let lens = p.iter().map(|b| b.data.len());
        let threads = self.workers.threads();
        if threads > 1 && lens.clone().sum::<usize>() >= parallel::MIN_ELEMENTS {
            // The parameters cut across the threads: the same update of each element.
            let ends = parallel::cuts(lens, threads);
            let firsts = std::iter::once(0).chain(ends.iter().copied());
            let runs = parallel::split_mut(p, &ends)
                .into_iter()
                .zip(parallel::split_mut(&mut self.m, &ends))
                .zip(parallel::split_mut(&mut self.v, &ends))
                .zip(firsts);
            self.workers.run_all(runs.map(|(((p, m), v), first)| move || update(p, m, v, first)));
        } else {
            update(p, &mut self.m, &mut self.v, 0);
        }
        Ok(())
    }
}

/// Where an AdamW update takes its gradient from.
#[derive(Clone, Copy)]
enum Gradient<'a, T> {
    /// One gradient per parameter, summed already.
    Summed(&'a [Buf<T>]),
    /// The shards' gradients and their shares, to be summed (`Shards::sum_into`'s arithmetic).
    Shards(&'a [Grads<T>], &'a [T]),
}

/// Elements of a parameter summed from its shards at a time: 4 KB of `f32`, in L1.
const CHUNK: usize = 1024;

/// Whether parameter `i` is exempt from weight decay, by [`AdamW`]'s `no_decay` (parameters past
/// its end are not).
fn exempt(no_decay: &[bool], i: usize) -> bool {
    no_decay.get(i).copied().unwrap_or(false)
}

/// AdamW's state between steps: the update count `t` and, for each parameter of a store (in id
/// order, each flat and row-major), the first and second moment estimates `m` and `v`.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamWState<T> {
    /// Updates applied.
    pub t: u64,
    /// First-moment estimates, one per parameter.
    pub m: Vec<Vec<T>>,
    /// Second-moment estimates, one per parameter.
    pub v: Vec<Vec<T>>,
}

impl<T: Float> Optimizer<T> for AdamW<T> {
    fn step(&mut self, params: &mut ParamStore<T>, grads: &Grads<T>) -> Result<()> {
        grads.check(params)?;
        self.update(params, Gradient::Summed(&grads.bufs))
    }

    fn lr(&self) -> T {
        self.lr
    }

    fn set_lr(&mut self, lr: T) {
        self.lr = lr;
    }
}

impl<T: Float> Grads<T> {
    /// The global L2 norm of every gradient taken together, `sqrt(sum of g²)` over all
    /// parameters (accumulated in `f64`), as `torch.nn.utils.clip_grad_norm_` measures it.
    pub fn global_norm(&self) -> f64 {
        self.bufs.iter().flat_map(|b| &b.data).map(|g| g.as_f64() * g.as_f64()).sum::<f64>().sqrt()
    }

    /// Clips the gradients by their global norm, as `torch.nn.utils.clip_grad_norm_(params,
    /// max_norm)`: every gradient is scaled by `max_norm / (norm + 1e-6)` when that is below 1
    /// (so the clipped norm is `max_norm`, to 1e-6), and left alone otherwise. Returns the norm
    /// before clipping (what PyTorch returns, and what a log of gradient norms wants). A
    /// non-finite norm leaves the gradients as they are (a diverged step stays visible in the
    /// loss instead of turning every weight into NaN); so does a `max_norm` that is not a
    /// finite positive number. Allocates nothing.
    ///
    /// ```
    /// use mm_tensor::{Grads, ParamStore, Tape};
    /// let mut params = ParamStore::new();
    /// let w = params.add("w", ndarray::arr1(&[3.0f64, 4.0]).into_dyn())?;
    /// let mut grads = Grads::new(&params);
    /// let mut tape = Tape::new();
    /// let g = tape.graph(&params);
    /// let loss = (g.param(w) * g.param(w)).sum(); // gradient 2w = [6, 8], norm 10
    /// g.backward(loss, &mut grads)?;
    /// assert_eq!(grads.clip_norm(1.0), 10.0);
    /// assert!((grads.global_norm() - 1.0).abs() < 1e-6);
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn clip_norm(&mut self, max_norm: f64) -> f64 {
        let norm = self.global_norm();
        let coef = max_norm / (norm + 1e-6);
        if norm.is_finite() && max_norm.is_finite() && max_norm > 0.0 && coef < 1.0 {
            let c = T::of(coef);
            self.bufs.iter_mut().flat_map(|b| b.data.iter_mut()).for_each(|g| *g *= c);
        }
        norm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step count near the ends of `i32` and `u64` (a restored state) gives a finite update:
    /// the counter neither wraps nor truncates into a bias correction of 0.
    #[test]
    fn adamw_updates_stay_finite_at_any_step_count() {
        for t in [(1u64 << 31) - 1, 1 << 32, u64::MAX - 1, u64::MAX] {
            let mut params = ParamStore::new();
            let w = params.add("w", ndarray::arr1(&[1.0f32, -2.0]).into_dyn()).unwrap();
            let mut grads = Grads::new(&params);
            grads.bufs[w.index()].data.copy_from_slice(&[0.5, -0.25]);
            let mut opt = AdamW::new(0.1f32);
            let state = AdamWState { t, m: vec![vec![0.1, 0.2]], v: vec![vec![0.01, 0.02]] };
            opt.set_state(&params, state).unwrap();
            for _ in 0..3 {
                opt.step(&mut params, &grads).unwrap();
            }
            assert!(params.data(w).iter().all(|x| x.is_finite()), "t = {t}: {:?}", params.data(w));
            assert!(opt.steps() >= t, "t = {t}: the counter wrapped to {}", opt.steps());
        }
    }
}
