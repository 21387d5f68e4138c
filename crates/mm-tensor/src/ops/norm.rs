//! Normalisation: `layer_norm` over the last axis (`nn.LayerNorm`) and `batch_norm` over a set
//! of axes (`nn.BatchNorm1d` and `2d`, and the lectures' hand-written BatchNorm with Bessel's
//! correction), each fused: one pass forward, one backward, the statistics kept in `aux`. The
//! BatchNorm kernels reduce the leading axes; a set that does not lead is permuted to the front.

use super::reduce::axis_bits;
use crate::backward::{Ctx, Sinks};
use crate::kernels::{Acc, add_rows, norm, sized, store, zeros};
use crate::op::{BatchStats, NodeId, Op};
use crate::tape::{Graph, Var};
use crate::{Float, MAX_RANK, Result, Shape, TensorError};

/// The batch statistics of a training step's BatchNorm nodes, copied out of its graph
/// ([`Graph::batch_stats`]) so that the running averages can be updated once the graph is gone
/// and the parameters are writable again. Reused step after step: no allocation once warm.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchStatsLog<T> {
    /// Every node's mean, then its variance, back to back.
    values: Vec<T>,
    /// Per node, in recording order: where its mean starts in `values`, and its channels.
    nodes: Vec<(usize, usize)>,
}

impl<T: Float> BatchStatsLog<T> {
    /// An empty log.
    pub fn new() -> Self {
        BatchStatsLog { values: Vec::new(), nodes: Vec::new() }
    }

    /// The number of training-mode BatchNorm nodes logged.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was logged.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The `i`-th node's `(mean, var)` (the variance with the node's correction), in the order
    /// the forward pass recorded them.
    pub fn get(&self, i: usize) -> Option<(&[T], &[T])> {
        let &(start, c) = self.nodes.get(i)?;
        Some((&self.values[start..start + c], &self.values[start + c..start + 2 * c]))
    }
}

impl<T: Float> Graph<'_, T> {
    /// Copies the statistics of every training-mode BatchNorm node of this graph into `log`
    /// (cleared first), in recording order: what a model's running averages are updated with
    /// after the step (see [`Var::with_batch_stats`] for one node).
    ///
    /// ```
    /// use mm_tensor::{BatchStatsLog, ParamStore, Tape};
    /// let mut params = ParamStore::<f64>::new();
    /// let w = params.add("w", ndarray::arr1(&[1.0]).into_dyn())?;
    /// let b = params.add("b", ndarray::arr1(&[0.0]).into_dyn())?;
    /// let mut tape = Tape::new();
    /// let mut log = BatchStatsLog::new();
    /// {
    ///     let g = tape.graph(&params);
    ///     let x = g.input(&[3, 1], &[1.0, 2.0, 6.0]);
    ///     let y = x.batch_norm(g.param(w), g.param(b), &[0], 1, 0.0).tanh();
    ///     y.batch_norm(g.param(w), g.param(b), &[0], 0, 0.0);
    ///     g.batch_stats(&mut log);
    /// }
    /// assert_eq!(log.len(), 2);
    /// assert_eq!(log.get(0), Some((&[3.0][..], &[7.0][..])));
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn batch_stats(&self, log: &mut BatchStatsLog<T>) {
        log.values.clear();
        log.nodes.clear();
        let n = self.nodes.borrow();
        for (id, op) in n.ops.iter().enumerate() {
            if let Op::BatchNorm { w, stats: BatchStats::Batch { .. }, .. } = *op {
                let c = n.shapes[w as usize].numel();
                log.nodes.push((log.values.len(), c));
                log.values.extend_from_slice(&n.aux[id][..2 * c]);
            }
        }
    }
}

impl<'g, T: Float> Var<'g, T> {
    /// LayerNorm over the last axis, `(x - mean) / sqrt(var + eps) * weight + bias` with the
    /// biased variance, as `F.layer_norm(x, (C,), weight, bias, eps)` (`nn.LayerNorm`'s eps is
    /// 1e-5); `weight` and `bias` are `[C]`. Or the error.
    pub fn try_layer_norm(self, weight: Self, bias: Self, eps: f64) -> Result<Self> {
        self.g.live(&[self.id, weight.id, bias.id])?;
        let shape = self.shape();
        let Some(&c) = shape.dims().last() else {
            return Err(TensorError::RankBelow { op: "layer_norm", min: 1, got: shape });
        };
        for p in [weight, bias] {
            if p.shape().dims() != [c] {
                return Err(TensorError::ShapeMismatch {
                    op: "layer_norm",
                    expected: Shape::new(&[c])?,
                    got: p.shape(),
                });
            }
        }
        let (x, w, b) = (self.id, weight.id, bias.id);
        Ok(self.g.push(Op::LayerNorm { x, w, b, eps }, shape, false, &[x, w, b], |v, out, aux| {
            let (xs, wv, bv) = (v.get(x), v.get(w), v.get(b));
            let rows = xs.len() / c.max(1);
            sized(out, xs.len());
            sized(aux, 2 * rows);
            if c == 0 {
                return;
            }
            let (means, rstds) = aux.split_at_mut(rows);
            norm::layer_norm(xs, (wv, bv), T::of(eps), out, (means, rstds));
        }))
    }

    /// LayerNorm over the last axis (see [`Var::try_layer_norm`]).
    pub fn layer_norm(self, weight: Self, bias: Self, eps: f64) -> Self {
        self.g.sticky(self.try_layer_norm(weight, bias, eps))
    }

    /// BatchNorm in training mode: `(x - mean) / sqrt(var + eps) * weight + bias` with the
    /// batch's statistics over `axes`, some of the axes but not all: `[0]` for `[B, C]`, `[0, 1]`
    /// for WaveNet's `[B, T, C]`, `[0, 2]` for `nn.BatchNorm1d`'s `[N, C, L]`, `[0, 2, 3]` for
    /// `nn.BatchNorm2d`'s `[N, C, H, W]`. `weight` and `bias` are shaped like the other axes, in
    /// their order. The variance divides by `n - correction`: 0 as `nn.BatchNorm1d` normalises,
    /// 1 as the lectures' `x.var(0)` (and `x.std(0)` with `eps` 0). [`Var::with_batch_stats`]
    /// reads the statistics used, to update running averages. Or the error.
    ///
    /// The kernels take the leading axes; other axes are brought to the front by a `permute` (a
    /// copy) and the result is permuted back.
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let params = ParamStore::<f64>::new();
    /// let mut tape = Tape::new();
    /// let g = tape.graph(&params);
    /// // [N, C, L] = [2, 2, 2]: channel 0 holds 1, 2, 5, 6 and channel 1 holds 3, 4, 7, 8.
    /// let x = g.input(&[2, 2, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    /// let (w, b) = (g.input(&[2], &[1.0, 1.0]), g.input(&[2], &[0.0, 10.0]));
    /// let y = x.batch_norm(w, b, &[0, 2], 0, 0.0);
    /// assert_eq!(y.with_batch_stats(|mean, var| (mean.to_vec(), var.to_vec())), Some((vec![3.5, 5.5], vec![4.25, 4.25])));
    /// let z = 4.25f64.sqrt();
    /// assert_eq!(y.to_array().as_slice().unwrap()[..2], [-2.5 / z, -1.5 / z]);
    /// assert_eq!(y.to_array().as_slice().unwrap()[2..4], [10.0 - 2.5 / z, 10.0 - 1.5 / z]);
    /// ```
    pub fn try_batch_norm(
        self,
        weight: Self,
        bias: Self,
        axes: &[usize],
        correction: usize,
        eps: f64,
    ) -> Result<Self> {
        let (bits, n) = self.batch_norm_check(weight, bias, axes)?;
        let c = super::reduce::correction_u8("batch_norm", correction)?;
        if n <= correction {
            let shape = self.shape();
            return Err(TensorError::TooFewValues { op: "batch_norm", count: n, correction, shape });
        }
        let stats = BatchStats::Batch { correction: c };
        self.with_leading_axes(bits, |x, lead| x.record_batch_norm(weight, bias, lead, eps, stats))
    }

    /// BatchNorm in training mode with the batch's statistics (see [`Var::try_batch_norm`]).
    pub fn batch_norm(self, weight: Self, bias: Self, axes: &[usize], correction: usize, eps: f64) -> Self {
        self.g.sticky(self.try_batch_norm(weight, bias, axes, correction, eps))
    }

    /// BatchNorm in evaluation mode: normalised with fixed `running_mean` and `running_var`
    /// (usually [`crate::Graph::buffer`]s, shaped like `weight`), which get no gradient: one that
    /// depends on parameters is [`TensorError::RunningStatGrad`]. Or the error.
    pub fn try_batch_norm_eval(
        self,
        weight: Self,
        bias: Self,
        axes: &[usize],
        (running_mean, running_var): (Self, Self),
        eps: f64,
    ) -> Result<Self> {
        let (bits, _) = self.batch_norm_check(weight, bias, axes)?;
        for (s, what) in [(running_mean, "mean"), (running_var, "variance")] {
            self.g.live(&[s.id])?;
            if s.shape() != weight.shape() {
                let op = "batch_norm";
                return Err(TensorError::ShapeMismatch { op, expected: weight.shape(), got: s.shape() });
            }
            // Not an input of the node (it gets no gradient): one that needs a gradient is refused.
            if self.g.nodes.borrow().needs_grad[s.id as usize] {
                return Err(TensorError::RunningStatGrad { op: "batch_norm", what });
            }
        }
        let stats = BatchStats::Running { mean: running_mean.id, var: running_var.id };
        self.with_leading_axes(bits, |x, lead| x.record_batch_norm(weight, bias, lead, eps, stats))
    }

    /// BatchNorm in evaluation mode (see [`Var::try_batch_norm_eval`]).
    pub fn batch_norm_eval(
        self,
        weight: Self,
        bias: Self,
        axes: &[usize],
        running: (Self, Self),
        eps: f64,
    ) -> Self {
        self.g.sticky(self.try_batch_norm_eval(weight, bias, axes, running, eps))
    }

    /// Calls `f(mean, var)` with the statistics a training-mode [`Var::batch_norm`] node
    /// normalised with (the variance with its correction), e.g. to update running averages with
    /// [`crate::ParamStore::blend_buffer`] once the step is done. Over axes that do not lead,
    /// `batch_norm` returns a `permute` of that node, which this looks through (so does any
    /// `permute` of a BatchNorm's output). `None` for any other node.
    ///
    /// The lectures' BatchNorm normalises and updates with the same (Bessel-corrected) variance.
    /// `nn.BatchNorm1d` normalises with the biased variance (correction 0) but updates
    /// `running_var` with the unbiased one: scale `var` by `n / (n - 1)` for that.
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let mut params = ParamStore::<f64>::new();
    /// let w = params.add("w", ndarray::arr1(&[1.0]).into_dyn())?;
    /// let b = params.add("b", ndarray::arr1(&[0.0]).into_dyn())?;
    /// let mut tape = Tape::new();
    /// let g = tape.graph(&params);
    /// let x = g.input(&[3, 1], &[1.0, 2.0, 6.0]);
    /// let y = x.batch_norm(g.param(w), g.param(b), &[0], 1, 0.0);
    /// let stats = y.with_batch_stats(|mean, var| (mean[0], var[0]));
    /// assert_eq!(stats, Some((3.0, 7.0)));
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn with_batch_stats<R>(&self, f: impl FnOnce(&[T], &[T]) -> R) -> Option<R> {
        let n = self.g.nodes.borrow();
        // Over axes that do not lead, the BatchNorm node is the input of the permute back.
        let id = match n.ops[self.id as usize] {
            Op::Permute { x, .. } if matches!(n.ops[x as usize], Op::BatchNorm { .. }) => x,
            _ => self.id,
        };
        let Op::BatchNorm { w, stats: BatchStats::Batch { .. }, .. } = n.ops[id as usize] else {
            return None;
        };
        let c = n.shapes[w as usize].numel();
        let aux = &n.aux[id as usize];
        Some(f(&aux[..c], &aux[c..2 * c]))
    }

    /// `f(self, lead)`, `lead` the number of reduced axes (`bits`, checked by
    /// [`Var::batch_norm_check`]: some but not all), where they lead; otherwise `f` on `self`
    /// with them permuted to the front (in increasing order, the other axes after them in
    /// theirs), and its result permuted back.
    fn with_leading_axes(self, bits: u8, f: impl FnOnce(Self, usize) -> Self) -> Result<Self> {
        let (rank, lead) = (self.shape().rank(), bits.count_ones() as usize);
        if bits == ((1u16 << lead) - 1) as u8 {
            return Ok(f(self, lead));
        }
        // Arrays, not vectors: a training step over such axes allocates nothing once warm.
        let (mut perm, mut inverse) = ([0; MAX_RANK], [0; MAX_RANK]);
        let reduced = (0..rank).filter(|&a| bits & (1 << a) != 0);
        for (i, a) in reduced.chain((0..rank).filter(|&a| bits & (1 << a) == 0)).enumerate() {
            (perm[i], inverse[a]) = (a, i);
        }
        f(self.try_permute(&perm[..rank])?, lead).try_permute(&inverse[..rank])
    }

    /// `axes` as bits, and how many values each statistic has, once `axes` (some of `self`'s, not
    /// all) and the weight's and bias's shapes (the other axes, in order) are checked. Errors
    /// name `self`'s shape, whichever axes are reduced.
    fn batch_norm_check(self, weight: Self, bias: Self, axes: &[usize]) -> Result<(u8, usize)> {
        self.g.live(&[self.id, weight.id, bias.id])?;
        let shape = self.shape();
        let bits = axis_bits("batch_norm", axes, shape)?;
        if axes.is_empty() || axes.len() == shape.rank() {
            let hint = "reduce over some of the axes, not none or all; the others are the channels";
            return Err(TensorError::Axes { op: "batch_norm", axes: axes.to_vec(), shape, hint });
        }
        let (mut dims, mut len) = ([0; MAX_RANK], 0);
        for a in (0..shape.rank()).filter(|&a| bits & (1 << a) == 0) {
            (dims[len], len) = (shape.dim(a), len + 1);
        }
        let channels = Shape::new(&dims[..len])?;
        for p in [weight, bias] {
            if p.shape() != channels {
                let op = "batch_norm";
                return Err(TensorError::ShapeMismatch { op, expected: channels, got: p.shape() });
            }
        }
        Ok((bits, shape.numel() / channels.numel().max(1)))
    }

    fn record_batch_norm(self, weight: Self, bias: Self, lead: usize, eps: f64, stats: BatchStats) -> Self {
        let shape = self.shape();
        let (x, w, b) = (self.id, weight.id, bias.id);
        let op = Op::BatchNorm { x, w, b, lead: lead as u8, eps, stats };
        // The running statistics are not inputs that need gradients: they get none.
        self.g.push(op, shape, false, &[x, w, b], |v, out, aux| {
            let (xs, wv, bv) = (v.get(x), v.get(w), v.get(b));
            let c = wv.len();
            sized(aux, 3 * c);
            if c == 0 {
                return sized(out, 0);
            }
            let (mean, rest) = aux.split_at_mut(c);
            let (var, rstd) = rest.split_at_mut(c);
            match stats {
                BatchStats::Batch { correction } => norm::moments(xs, correction as usize, mean, var),
                BatchStats::Running { mean: rm, var: rv } => {
                    mean.copy_from_slice(v.get(rm));
                    var.copy_from_slice(v.get(rv));
                }
            }
            rstd.iter_mut().zip(var.iter()).for_each(|(r, &s)| *r = T::one() / (s + T::of(eps)).sqrt());
            norm::normalize(xs, [mean, rstd, wv, bv], out);
        })
    }
}

// Gradient rules.
impl<T: Float> Ctx<'_, T> {
    /// `layer_norm`, per row with `x̂ = (x - mean) · rstd` and `ĝ = g · w`:
    /// `dx = rstd · (ĝ - mean(ĝ) - x̂ · mean(ĝ · x̂))`, `dw = Σ g · x̂`, `db = Σ g`.
    pub(crate) fn layer_norm_grad(
        &self,
        (x, w, b): (NodeId, NodeId, NodeId),
        g: &[T],
        sinks: &mut Sinks<'_, T>,
        tmp: &mut Vec<T>,
    ) {
        let (xs, wv) = (self.x(x), self.x(w));
        let c = wv.len();
        let rows = xs.len() / c.max(1);
        let (means, rstds) = self.aux.split_at(rows);
        sized(tmp, 2 * c);
        if let Some((dst, acc)) = sinks.get(x) {
            sized(dst, xs.len());
            norm::layer_norm_dx((g, xs, wv), (means, rstds), tmp, dst, acc);
        }
        if let Some((dst, acc)) = sinks.get(w) {
            if acc == Acc::Write {
                zeros(dst, c);
            }
            norm::layer_norm_dw((g, xs), (means, rstds), dst);
        }
        if let Some((dst, acc)) = sinks.get(b) {
            if acc == Acc::Write {
                zeros(dst, c);
            }
            add_rows(g, dst);
        }
    }

    /// `batch_norm`, per channel with `x̂ = (x - mean) · rstd`, `ĝ = g · w` and `n` values: with
    /// batch statistics `dx = rstd · (ĝ - Σĝ / n - x̂ · Σ(ĝ · x̂) / (n - correction))`; with running
    /// statistics (constants) `dx = ĝ · rstd`. `dw = Σ g · x̂`, `db = Σ g`.
    pub(crate) fn batch_norm_grad(
        &self,
        (x, w, b): (NodeId, NodeId, NodeId),
        stats: BatchStats,
        g: &[T],
        sinks: &mut Sinks<'_, T>,
        tmp: &mut Vec<T>,
    ) {
        let (xs, wv) = (self.x(x), self.x(w));
        let c = wv.len();
        let n = xs.len() / c.max(1);
        let (mean, rest) = self.aux.split_at(c);
        let rstd = &rest[c..];
        // tmp = [Σ g, Σ g x̂, s1, s2] per channel.
        sized(tmp, 4 * c);
        let (sums, s) = tmp.split_at_mut(2 * c);
        let (sum_g, sum_gx) = sums.split_at_mut(c);
        norm::grad_sums((g, xs), (mean, rstd), sum_g, sum_gx);
        if let Some((dst, acc)) = sinks.get(x) {
            let (s1, s2) = s.split_at_mut(c);
            match stats {
                // The batch statistics' share: s1 = mean(g w), s2 = Σ (g w x̂) / (n - correction).
                BatchStats::Batch { correction } => {
                    let (inv_n, inv_m) =
                        (T::one() / T::of(n as f64), T::one() / T::of((n - correction as usize) as f64));
                    for j in 0..c {
                        s1[j] = wv[j] * sum_g[j] * inv_n;
                        s2[j] = wv[j] * sum_gx[j] * inv_m;
                    }
                }
                // Running statistics are constants: dx = g w rstd.
                BatchStats::Running { .. } => s.fill(T::zero()),
            }
            let (s1, s2) = s.split_at(c);
            norm::grad_x((g, xs), [mean, rstd, wv, s1, s2], dst, acc);
        }
        if let Some((dst, acc)) = sinks.get(w) {
            store(dst, acc, sum_gx.iter().copied());
        }
        if let Some((dst, acc)) = sinks.get(b) {
            store(dst, acc, sum_g.iter().copied());
        }
    }
}
