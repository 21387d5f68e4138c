//! Reductions: sums and means over one axis or all, means and variances over a set of axes
//! (`x.mean((0, 1))`, `x.var(0, correction=1)`), the stable softmax and log-softmax along
//! an axis, and the running (causal) mean along an axis, with their gradient rules.

use crate::backward::{Ctx, Sinks};
use crate::kernels::{Acc, axis, sized, zeros};
use crate::op::{NodeId, Op};
use crate::tape::Var;
use crate::{Float, MAX_RANK, Result, Shape, TensorError};

impl<'g, T: Float> Var<'g, T> {
    fn reduce(self, axis: Option<usize>, keepdim: bool, mean: bool) -> Result<Self> {
        self.g.live(&[self.id])?;
        let shape = self.shape();
        let (out_shape, around) = match axis {
            None => (Shape::SCALAR, (1, shape.numel(), 1)),
            Some(ax) if ax < shape.rank() => {
                let out = if keepdim { shape.with_dim(ax, 1) } else { shape.without(ax) };
                (out, shape.around(ax))
            }
            Some(ax) => {
                let op = if mean { "mean" } else { "sum" };
                return Err(TensorError::Axis { op, axis: ax, shape });
            }
        };
        let scale = if mean { 1.0 / around.1 as f64 } else { 1.0 };
        let (x, ax) = (self.id, axis.map(|a| a as u8));
        let op = if mean { Op::Mean { x, axis: ax } } else { Op::Sum { x, axis: ax } };
        Ok(self.g.push(op, out_shape, false, &[x], |v, out, _| axis::sum(v.get(x), around, scale, out)))
    }

    /// The sum of all elements (a scalar).
    pub fn sum(self) -> Self {
        self.g.sticky(self.reduce(None, false, false))
    }

    /// The sum over `axis` (kept as length 1 when `keepdim`), or the error.
    pub fn try_sum_axis(self, axis: usize, keepdim: bool) -> Result<Self> {
        self.reduce(Some(axis), keepdim, false)
    }

    /// The sum over `axis`, kept as length 1 when `keepdim` (`N.sum(1, keepdim=True)`).
    pub fn sum_axis(self, axis: usize, keepdim: bool) -> Self {
        self.g.sticky(self.try_sum_axis(axis, keepdim))
    }

    /// The mean of all elements (a scalar).
    pub fn mean(self) -> Self {
        self.g.sticky(self.reduce(None, false, true))
    }

    /// The mean over `axis` (kept as length 1 when `keepdim`), or the error.
    pub fn try_mean_axis(self, axis: usize, keepdim: bool) -> Result<Self> {
        self.reduce(Some(axis), keepdim, true)
    }

    /// The mean over `axis`, kept as length 1 when `keepdim`.
    pub fn mean_axis(self, axis: usize, keepdim: bool) -> Self {
        self.g.sticky(self.try_mean_axis(axis, keepdim))
    }

    /// The mean over several axes (`x.mean((0, 1), keepdim=True)`), or the error.
    pub fn try_mean_axes(self, axes: &[usize], keepdim: bool) -> Result<Self> {
        self.moments("mean", axes, None, keepdim)
    }

    /// The mean over several axes, kept as length 1 when `keepdim`.
    pub fn mean_axes(self, axes: &[usize], keepdim: bool) -> Self {
        self.g.sticky(self.try_mean_axes(axes, keepdim))
    }

    /// The variance over several axes, dividing by `n - correction` (`x.var((0, 1),
    /// correction=1, keepdim=True)`: 1 is Bessel's correction, the lectures' `x.var()`; 0 the
    /// biased variance that `BatchNorm1d` normalises with), or the error.
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let params = ParamStore::<f64>::new();
    /// let mut tape = Tape::new();
    /// let g = tape.no_grad(&params);
    /// let x = g.input(&[2, 2], &[1.0, 2.0, 3.0, 6.0]);
    /// assert_eq!(x.var_axes(&[0], 1, false).to_array().as_slice().unwrap(), &[2.0, 8.0]);
    /// assert_eq!(x.var_axes(&[0, 1], 0, false).item()?, 3.5);
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn try_var_axes(self, axes: &[usize], correction: usize, keepdim: bool) -> Result<Self> {
        self.moments("var", axes, Some(correction), keepdim)
    }

    /// The variance over several axes with `correction` (see [`Var::try_var_axes`]).
    pub fn var_axes(self, axes: &[usize], correction: usize, keepdim: bool) -> Self {
        self.g.sticky(self.try_var_axes(axes, correction, keepdim))
    }

    fn moments(
        self,
        op: &'static str,
        axes: &[usize],
        correction: Option<usize>,
        keepdim: bool,
    ) -> Result<Self> {
        self.g.live(&[self.id])?;
        let shape = self.shape();
        let bits = axis_bits(op, axes, shape)?;
        let (out, count) = reduced_shape(shape, bits, keepdim);
        let x = self.id;
        let Some(c) = correction else {
            return Ok(self.g.push(Op::MeanAxes { x, axes: bits }, out, false, &[x], |v, out, _| {
                mean_over(v.get(x), shape, bits, out);
            }));
        };
        let correction = correction_u8(op, c)?;
        if count <= c {
            return Err(TensorError::TooFewValues { op, count, correction: c, shape });
        }
        let op = Op::VarAxes { x, axes: bits, correction };
        Ok(self.g.push(op, out, false, &[x], |v, out, mean| {
            let xs = v.get(x);
            mean_over(xs, shape, bits, mean);
            zeros(out, mean.len());
            for_each_reduced(shape, bits, |i, o| {
                let d = xs[i] - mean[o];
                out[o] += d * d;
            });
            let inv = T::one() / T::of((count - c) as f64);
            out.iter_mut().for_each(|s| *s *= inv);
        }))
    }

    fn softmax_op(self, axis: usize, log: bool) -> Result<Self> {
        self.g.live(&[self.id])?;
        let shape = self.shape();
        if axis >= shape.rank() {
            let op = if log { "log_softmax" } else { "softmax" };
            return Err(TensorError::Axis { op, axis, shape });
        }
        let (x, ax) = (self.id, axis as u8);
        let op = if log { Op::LogSoftmax { x, axis: ax } } else { Op::Softmax { x, axis: ax } };
        Ok(self
            .g
            .push(op, shape, false, &[x], |v, out, _| axis::softmax(v.get(x), shape.around(axis), log, out)))
    }

    /// Softmax along `axis`, or the error.
    pub fn try_softmax(self, axis: usize) -> Result<Self> {
        self.softmax_op(axis, false)
    }

    /// Softmax along `axis` (numerically stable).
    pub fn softmax(self, axis: usize) -> Self {
        self.g.sticky(self.try_softmax(axis))
    }

    /// Log-softmax along `axis`, or the error.
    pub fn try_log_softmax(self, axis: usize) -> Result<Self> {
        self.softmax_op(axis, true)
    }

    /// Log-softmax along `axis` (numerically stable).
    pub fn log_softmax(self, axis: usize) -> Self {
        self.g.sticky(self.try_log_softmax(axis))
    }

    /// The running mean along `axis`, or the error: element `k` is the mean of elements
    /// `0..=k` (`x.cumsum(axis) / torch.arange(1, n + 1)` along that axis).
    ///
    /// This is makemore's `CausalBoW`, whose attention weights are the softmax of zeros under a
    /// causal mask, `1 / (t + 1)` on and below the diagonal: `att @ x` takes `T` multiply-adds
    /// per element, the running sum one. Its backward is the running sum taken from the other
    /// end, of the gradient scaled by `1 / (t + 1)`.
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let params = ParamStore::<f64>::new();
    /// let mut tape = Tape::new();
    /// let g = tape.graph(&params);
    /// let x = g.input(&[1, 3, 2], &[1.0, 10.0, 2.0, 20.0, 6.0, 0.0]);
    /// let y = x.try_causal_mean(1)?;
    /// assert_eq!(y.to_array().into_raw_vec_and_offset().0, [1.0, 10.0, 1.5, 15.0, 3.0, 10.0]);
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn try_causal_mean(self, axis: usize) -> Result<Self> {
        self.g.live(&[self.id])?;
        let shape = self.shape();
        if axis >= shape.rank() {
            return Err(TensorError::Axis { op: "causal_mean", axis, shape });
        }
        let (x, around) = (self.id, shape.around(axis));
        let op = Op::CausalMean { x, axis: axis as u8 };
        Ok(self.g.push(op, shape, false, &[x], |v, out, _| axis::causal_mean(v.get(x), around, out)))
    }

    /// The running mean along `axis` (see [`Var::try_causal_mean`]).
    pub fn causal_mean(self, axis: usize) -> Self {
        self.g.sticky(self.try_causal_mean(axis))
    }
}

/// `axes` as a bit set, or the error for an axis out of range or repeated.
pub(crate) fn axis_bits(op: &'static str, axes: &[usize], shape: Shape) -> Result<u8> {
    let mut bits = 0u8;
    for &a in axes {
        if a >= shape.rank() || bits & (1 << a) != 0 {
            let hint = "each axis once, below the rank";
            return Err(TensorError::Axes { op, axes: axes.to_vec(), shape, hint });
        }
        bits |= 1 << a;
    }
    Ok(bits)
}

/// A variance's correction as the tape stores it (a byte: PyTorch's are 0 and 1), or the error.
pub(crate) fn correction_u8(op: &'static str, correction: usize) -> Result<u8> {
    u8::try_from(correction).map_err(|_| TensorError::Correction { op, correction })
}

/// The shape left after reducing over `bits` (length-1 axes when `keepdim`), and how many
/// elements each output value reduces.
fn reduced_shape(shape: Shape, bits: u8, keepdim: bool) -> (Shape, usize) {
    let (mut dims, mut rank, mut count) = ([0; MAX_RANK], 0, 1);
    for (a, &d) in shape.dims().iter().enumerate() {
        if bits & (1 << a) != 0 {
            count *= d;
            if !keepdim {
                continue;
            }
        }
        dims[rank] = if bits & (1 << a) != 0 { 1 } else { d };
        rank += 1;
    }
    (Shape::new(&dims[..rank]).expect("no larger than the input"), count)
}

/// Calls `f(i, o)` for every element `i` of a tensor of `shape`, with `o` the index of the
/// value it reduces into when the axes of `bits` are reduced (row-major over the kept axes).
fn for_each_reduced(shape: Shape, bits: u8, mut f: impl FnMut(usize, usize)) {
    let dims = shape.dims();
    let rank = dims.len();
    // The output stride of each input axis: 0 along the reduced axes.
    let mut ostride = [0; MAX_RANK];
    let mut step = 1;
    for a in (0..rank).rev() {
        if bits & (1 << a) == 0 {
            ostride[a] = step;
            step *= dims[a];
        }
    }
    let (mut idx, mut o) = ([0usize; MAX_RANK], 0);
    for i in 0..shape.numel() {
        f(i, o);
        for a in (0..rank).rev() {
            idx[a] += 1;
            o += ostride[a];
            if idx[a] < dims[a] {
                break;
            }
            o -= ostride[a] * dims[a];
            idx[a] = 0;
        }
    }
}

/// `out` = the mean of `x` over the axes of `bits`.
fn mean_over<T: Float>(x: &[T], shape: Shape, bits: u8, out: &mut Vec<T>) {
    let (reduced, count) = reduced_shape(shape, bits, true);
    zeros(out, reduced.numel());
    for_each_reduced(shape, bits, |i, o| out[o] += x[i]);
    let inv = T::one() / T::of(count as f64);
    out.iter_mut().for_each(|s| *s *= inv);
}

// Gradient rules.
impl<T: Float> Ctx<'_, T> {
    /// `sum` and `mean`: the gradient spread back over the reduced axis.
    pub(crate) fn sum_grad(
        &self,
        x: NodeId,
        axis: Option<u8>,
        mean: bool,
        g: &[T],
        sinks: &mut Sinks<'_, T>,
    ) {
        let xs = self.shape(x);
        let around = match axis {
            None => (1, xs.numel(), 1),
            Some(ax) => xs.around(ax as usize),
        };
        let scale = if mean { T::one() / T::of(around.1 as f64) } else { T::one() };
        if let Some((dst, acc)) = sinks.get(x) {
            axis::spread(g, around, scale, dst, acc);
        }
    }

    /// `causal_mean`: `dx[j] = Σ_{k ≥ j} g[k] / (k + 1)` along the axis.
    pub(crate) fn causal_mean_grad(&self, x: NodeId, ax: u8, g: &[T], sinks: &mut Sinks<'_, T>) {
        if let Some((dst, acc)) = sinks.get(x) {
            axis::causal_mean_grad(g, self.shape(x).around(ax as usize), dst, acc);
        }
    }

    /// `mean` over axes: `dx = g / n`; `var` over axes: `dx = g · 2 (x - mean) / (n - c)`.
    pub(crate) fn moments_grad(
        &self,
        x: NodeId,
        bits: u8,
        correction: Option<u8>,
        g: &[T],
        sinks: &mut Sinks<'_, T>,
    ) {
        let shape = self.shape(x);
        let (_, count) = reduced_shape(shape, bits, true);
        let Some((dst, acc)) = sinks.get(x) else { return };
        sized(dst, shape.numel());
        let write = acc == Acc::Write;
        match correction {
            None => {
                let inv = T::one() / T::of(count as f64);
                for_each_reduced(shape, bits, |i, o| {
                    let d = g[o] * inv;
                    dst[i] = if write { d } else { dst[i] + d };
                });
            }
            Some(c) => {
                let (xs, mean) = (self.x(x), self.aux);
                let k = T::of(2.0 / (count - c as usize) as f64);
                for_each_reduced(shape, bits, |i, o| {
                    let d = g[o] * k * (xs[i] - mean[o]);
                    dst[i] = if write { d } else { dst[i] + d };
                });
            }
        }
    }

    /// Softmax and log-softmax, from the output.
    pub(crate) fn softmax_grad(
        &self,
        x: NodeId,
        axis: u8,
        log: bool,
        shape: Shape,
        g: &[T],
        sinks: &mut Sinks<'_, T>,
    ) {
        if let Some((dst, acc)) = sinks.get(x) {
            axis::softmax_backward(g, self.y, shape.around(axis as usize), log, dst, acc);
        }
    }
}
