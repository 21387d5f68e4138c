//! The ops, as methods on [`Var`]: each checks shapes, computes its value eagerly and records
//! itself on the tape. Every op has a `try_` form that returns the error at once; the plain form
//! records it on the graph (sticky) so that maths reads without `?` after every operator.

use std::ops;

use ndarray::{ArrayBase, ArrayViewD, Data, Dimension};

use crate::kernels::axis;
use crate::kernels::broadcast::Broadcast;
use crate::kernels::matmul::{self, Start, Strided};
use crate::kernels::{self, Acc, sized};
use crate::op::{NodeId, Op, Span};
use crate::tape::{Graph, Var};
use crate::{Float, Result, Shape, TensorError};

/// Token ids for [`Var::embedding`], [`Var::cross_entropy`] and [`Graph::one_hot`]: a slice or
/// any ndarray array of `u32` (e.g. a batch of contexts `[B, block_size]`, or targets `[B]`).
pub trait AsIds {
    /// The ids as an n-dimensional view.
    fn as_ids(&self) -> ArrayViewD<'_, u32>;
}

impl AsIds for [u32] {
    fn as_ids(&self) -> ArrayViewD<'_, u32> {
        ndarray::ArrayView1::from(self).into_dyn()
    }
}

impl AsIds for Vec<u32> {
    fn as_ids(&self) -> ArrayViewD<'_, u32> {
        self.as_slice().as_ids()
    }
}

impl<const N: usize> AsIds for [u32; N] {
    fn as_ids(&self) -> ArrayViewD<'_, u32> {
        self.as_slice().as_ids()
    }
}

impl<S: Data<Elem = u32>, D: Dimension> AsIds for ArrayBase<S, D> {
    fn as_ids(&self) -> ArrayViewD<'_, u32> {
        self.view().into_dyn()
    }
}

/// `Ok(v)` unless `v` stands for a failed op: unary ops pass a poisoned input through.
macro_rules! or_poisoned {
    ($v:expr) => {
        if $v.g.live(&[$v.id]).is_err() {
            return $v;
        }
    };
}

impl<'g, T: Float> Var<'g, T> {
    fn binary(
        self,
        rhs: Self,
        name: &'static str,
        op: fn(NodeId, NodeId) -> Op,
        f: impl Fn(T, T) -> T,
    ) -> Result<Self> {
        self.g.live(&[self.id, rhs.id])?;
        let bc = Broadcast::new(name, self.shape(), rhs.shape())?;
        let (a, b) = (self.id, rhs.id);
        Ok(self.g.push(op(a, b), bc.out, false, &[a, b], |v, out, _| bc.map(v.get(a), v.get(b), out, f)))
    }

    fn unary(self, op: Op, f: impl Fn(T) -> T) -> Self {
        or_poisoned!(self);
        let x = self.id;
        self.g.push(op, self.shape(), false, &[x], |v, out, _| {
            kernels::store(out, Acc::Write, v.get(x).iter().map(|&x| f(x)))
        })
    }

    /// `self + rhs` with broadcasting, or the error.
    pub fn try_add(self, rhs: Self) -> Result<Self> {
        self.binary(rhs, "add", Op::Add, |a, b| a + b)
    }

    /// `self - rhs` with broadcasting, or the error.
    pub fn try_sub(self, rhs: Self) -> Result<Self> {
        self.binary(rhs, "sub", Op::Sub, |a, b| a - b)
    }

    /// `self * rhs` elementwise with broadcasting, or the error.
    pub fn try_mul(self, rhs: Self) -> Result<Self> {
        self.binary(rhs, "mul", Op::Mul, |a, b| a * b)
    }

    /// `self / rhs` elementwise with broadcasting, or the error.
    pub fn try_div(self, rhs: Self) -> Result<Self> {
        self.binary(rhs, "div", Op::Div, |a, b| a / b)
    }

    /// `self ^ exponent` elementwise (a float exponent, as PyTorch's `x ** p`).
    pub fn pow(self, exponent: f64) -> Self {
        let e = T::of(exponent);
        if exponent == 2.0 {
            return self.unary(Op::Pow(self.id, exponent), |x| x * x);
        }
        self.unary(Op::Pow(self.id, exponent), move |x| x.powf(e))
    }

    /// `exp(self)` elementwise.
    pub fn exp(self) -> Self {
        or_poisoned!(self);
        let x = self.id;
        self.g.push(Op::Exp(x), self.shape(), false, &[x], |v, out, _| {
            out.clear();
            out.extend_from_slice(v.get(x));
            T::exp_slice(out);
        })
    }

    /// `ln(self)` elementwise.
    pub fn log(self) -> Self {
        self.unary(Op::Log(self.id), T::ln)
    }

    /// `tanh(self)` elementwise (in `f32` a fast rational approximation, max abs error 3.1e-7).
    pub fn tanh(self) -> Self {
        or_poisoned!(self);
        let x = self.id;
        self.g.push(Op::Tanh(x), self.shape(), false, &[x], |v, out, _| {
            let x = v.get(x);
            sized(out, x.len());
            T::tanh_slice(x, out);
        })
    }

    /// `max(self, 0)` elementwise.
    pub fn relu(self) -> Self {
        self.unary(Op::Relu(self.id), |x| if x > T::zero() { x } else { T::zero() })
    }

    /// The logistic sigmoid `1 / (1 + exp(-self))` elementwise.
    pub fn sigmoid(self) -> Self {
        self.unary(Op::Sigmoid(self.id), |x| T::one() / (T::one() + (-x).exp()))
    }

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

    /// The same elements in another shape, or the error. Shares the value: no copy.
    pub fn try_reshape(self, dims: &[usize]) -> Result<Self> {
        self.g.live(&[self.id])?;
        let (from, to) = (self.shape(), Shape::new(dims)?);
        if from.numel() != to.numel() {
            return Err(TensorError::Reshape { from, to });
        }
        Ok(self.g.push(Op::Reshape(self.id), to, false, &[self.id], |_, _, _| {}))
    }

    /// The same elements in another shape (`emb.view(-1, 30)` of the lecture, with the size
    /// spelt out). Shares the value: no copy.
    pub fn reshape(self, dims: &[usize]) -> Self {
        self.g.sticky(self.try_reshape(dims))
    }

    /// The transpose of a matrix, or the error.
    pub fn try_t(self) -> Result<Self> {
        self.g.live(&[self.id])?;
        let shape = self.shape();
        let &[rows, cols] = shape.dims() else {
            return Err(TensorError::Rank { op: "transpose", expected: 2, got: shape });
        };
        let x = self.id;
        let out = Shape::new(&[cols, rows])?;
        Ok(self.g.push(Op::Transpose(x), out, false, &[x], |v, out, _| {
            axis::transpose(v.get(x), rows, cols, out, Acc::Write)
        }))
    }

    /// The transpose of a matrix.
    pub fn t(self) -> Self {
        self.g.sticky(self.try_t())
    }

    /// The matrix product `self @ rhs` of `[m, k]` and `[k, n]`, or the error.
    pub fn try_matmul(self, rhs: Self) -> Result<Self> {
        self.g.live(&[self.id, rhs.id])?;
        let (m, k, n) = matmul_dims(self.shape(), rhs.shape())?;
        let (a, b) = (self.id, rhs.id);
        Ok(self.g.push(Op::MatMul(a, b), Shape::new(&[m, n])?, false, &[a, b], |v, out, pack| {
            sized(out, m * n);
            matmul::gemm(
                (m, k, n),
                Strided::rows(v.get(a), k),
                Strided::rows(v.get(b), n),
                out,
                Start::Zero,
                pack,
            );
        }))
    }

    /// The matrix product `self @ rhs` of `[m, k]` and `[k, n]`.
    pub fn matmul(self, rhs: Self) -> Self {
        self.g.sticky(self.try_matmul(rhs))
    }

    /// `self @ w + b` for `self` `[m, k]`, `w` `[k, n]` and a bias `b` `[n]` added to every row:
    /// a linear layer, `torch.addmm(b, x, w)`. The same value and gradients as
    /// `self.matmul(w) + b`, in one pass (the bias is the product's starting value), or the
    /// error.
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let mut params = ParamStore::new();
    /// let x = params.add("x", ndarray::arr2(&[[1.0f64, 2.0]]).into_dyn())?;
    /// let w = params.add("w", ndarray::arr2(&[[1.0, 0.0, 2.0], [0.0, 1.0, 3.0]]).into_dyn())?;
    /// let b = params.add("b", ndarray::arr1(&[0.5, 0.5, 0.5]).into_dyn())?;
    /// let mut tape = Tape::new();
    /// let g = tape.no_grad(&params);
    /// let y = g.param(x).linear(g.param(w), g.param(b));
    /// assert_eq!(y.to_array().into_raw_vec_and_offset().0, vec![1.5, 2.5, 8.5]);
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn try_linear(self, w: Self, b: Self) -> Result<Self> {
        self.g.live(&[self.id, w.id, b.id])?;
        let (m, k, n) = matmul_dims(self.shape(), w.shape())?;
        let sb = b.shape();
        if sb.dims() != [n] {
            return Err(TensorError::Broadcast { op: "linear", lhs: Shape::new(&[m, n])?, rhs: sb });
        }
        let (x, wid, bid) = (self.id, w.id, b.id);
        Ok(self.g.push(
            Op::Linear { x, w: wid, b: bid },
            Shape::new(&[m, n])?,
            false,
            &[x, wid, bid],
            |v, out, pack| {
                sized(out, m * n);
                matmul::gemm(
                    (m, k, n),
                    Strided::rows(v.get(x), k),
                    Strided::rows(v.get(wid), n),
                    out,
                    Start::Bias(v.get(bid)),
                    pack,
                );
            },
        ))
    }

    /// `self @ w + b`: a linear layer (see [`Var::try_linear`]).
    pub fn linear(self, w: Self, b: Self) -> Self {
        self.g.sticky(self.try_linear(w, b))
    }

    /// The rows of this table `[V, D]` picked by `ids` (any shape): `C[X]` of the lecture, shaped
    /// `ids.shape + [D]`. Equivalent to `one_hot(ids) @ C` without the one-hot matmul. Or the
    /// error (also for an id that is not below `V`).
    pub fn try_embedding(self, ids: &(impl AsIds + ?Sized)) -> Result<Self> {
        self.g.live(&[self.id])?;
        let table = self.shape();
        let &[rows, d] = table.dims() else {
            return Err(TensorError::Rank { op: "embedding", expected: 2, got: table });
        };
        let ids = ids.as_ids();
        let out =
            Shape::new(ids.shape())?.push(d).ok_or(TensorError::RankTooLarge { rank: ids.ndim() + 1 })?;
        let span = self.g.push_ids("embedding", ids.iter().copied(), rows)?;
        let t = self.id;
        Ok(self.g.push(Op::Embedding { table: t, ids: span }, out, false, &[t], |v, out, _| {
            let table = v.get(t);
            out.clear();
            for &i in v.ids(span) {
                out.extend_from_slice(&table[i as usize * d..][..d]);
            }
        }))
    }

    /// The rows of this table `[V, D]` picked by `ids` (any shape), shaped `ids.shape + [D]`.
    pub fn embedding(self, ids: &(impl AsIds + ?Sized)) -> Self {
        self.g.sticky(self.try_embedding(ids))
    }

    /// The mean cross-entropy of these logits `[B, V]` against class ids `targets` (`B` of them):
    /// `F.cross_entropy(logits, Y)`, fused and numerically stable. Or the error.
    pub fn try_cross_entropy(self, targets: &(impl AsIds + ?Sized)) -> Result<Self> {
        self.g.live(&[self.id])?;
        let logits = self.shape();
        let &[rows, classes] = logits.dims() else {
            return Err(TensorError::Rank { op: "cross_entropy", expected: 2, got: logits });
        };
        let targets = targets.as_ids();
        if targets.len() != rows {
            return Err(TensorError::Targets { logits, targets: targets.len() });
        }
        let span = self.g.push_ids("cross_entropy", targets.iter().copied(), classes)?;
        let x = self.id;
        Ok(self.g.push(
            Op::CrossEntropy { logits: x, targets: span },
            Shape::SCALAR,
            false,
            &[x],
            |v, out, probs| {
                out.clear();
                out.push(T::of(axis::cross_entropy(v.get(x), classes, v.ids(span), probs)));
            },
        ))
    }

    /// The mean cross-entropy of these logits `[B, V]` against class ids `targets`.
    pub fn cross_entropy(self, targets: &(impl AsIds + ?Sized)) -> Self {
        self.g.sticky(self.try_cross_entropy(targets))
    }

    /// `F.cross_entropy(table[ids], targets)` for this table `[R, V]`, fused, or the error.
    ///
    /// Every example that picks the same row has the same logits, so this does not gather the
    /// rows: it counts the examples per (row, target) pair and takes each row's log-softmax
    /// once. The loss and gradient are those of `table.embedding(ids).cross_entropy(targets)`
    /// (up to rounding), in `O(examples + R·V)` rather than `O(examples·V)`: the bigram net's
    /// full-batch step over 228,146 examples costs 27 log-softmaxes.
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let mut params = ParamStore::new();
    /// let w = params.add("W", ndarray::arr2(&[[0.5f64, -1.0], [2.0, 0.0]]).into_dyn())?;
    /// let mut tape = Tape::new();
    /// let g = tape.no_grad(&params);
    /// let (x, y) = ([0u32, 1, 1], [1u32, 0, 1]);
    /// let fused = g.param(w).lookup_cross_entropy(&x, &y).item()?;
    /// let plain = g.param(w).embedding(&x).cross_entropy(&y).item()?;
    /// assert!((fused - plain).abs() < 1e-12);
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn try_lookup_cross_entropy(
        self,
        ids: &(impl AsIds + ?Sized),
        targets: &(impl AsIds + ?Sized),
    ) -> Result<Self> {
        self.g.live(&[self.id])?;
        let table = self.shape();
        let &[rows, classes] = table.dims() else {
            return Err(TensorError::Rank { op: "lookup_cross_entropy", expected: 2, got: table });
        };
        let (ids, targets) = (ids.as_ids(), targets.as_ids());
        if targets.len() != ids.len() {
            return Err(TensorError::Targets {
                logits: Shape::new(&[ids.len(), classes])?,
                targets: targets.len(),
            });
        }
        let id_span = self.g.push_ids("lookup_cross_entropy", ids.iter().copied(), rows)?;
        let target_span = self.g.push_ids("lookup_cross_entropy", targets.iter().copied(), classes)?;
        let x = self.id;
        Ok(self.g.push(
            Op::LookupCrossEntropy { table: x, ids: id_span, targets: target_span },
            Shape::SCALAR,
            false,
            &[x],
            |v, out, aux| {
                let loss =
                    axis::lookup_cross_entropy(v.get(x), classes, v.ids(id_span), v.ids(target_span), aux);
                out.clear();
                out.push(T::of(loss));
            },
        ))
    }

    /// `F.cross_entropy(table[ids], targets)` for this table, fused (see
    /// [`Var::try_lookup_cross_entropy`]).
    pub fn lookup_cross_entropy(self, ids: &(impl AsIds + ?Sized), targets: &(impl AsIds + ?Sized)) -> Self {
        self.g.sticky(self.try_lookup_cross_entropy(ids, targets))
    }
}

impl<'a, T: Float> Graph<'a, T> {
    /// The one-hot encoding of `ids` as floats, shaped `ids.shape + [classes]`
    /// (`F.one_hot(xs, num_classes=27).float()`), or the error.
    pub fn try_one_hot(&self, ids: &(impl AsIds + ?Sized), classes: usize) -> Result<Var<'_, T>> {
        let ids = ids.as_ids();
        let out = Shape::new(ids.shape())?
            .push(classes)
            .ok_or(TensorError::RankTooLarge { rank: ids.ndim() + 1 })?;
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= classes) {
            return Err(TensorError::Index { op: "one_hot", index: bad as usize, len: classes });
        }
        Ok(self.push(Op::Input, out, false, &[], |_, out, _| {
            crate::kernels::zeros(out, ids.len() * classes);
            for (r, &i) in ids.iter().enumerate() {
                out[r * classes + i as usize] = T::one();
            }
        }))
    }

    /// The one-hot encoding of `ids` as floats, shaped `ids.shape + [classes]`.
    pub fn one_hot(&self, ids: &(impl AsIds + ?Sized), classes: usize) -> Var<'_, T> {
        self.sticky(self.try_one_hot(ids, classes))
    }

    /// `vars` joined along `axis` (`torch.cat`), or the error.
    pub fn try_concat<'g>(&'g self, vars: &[Var<'g, T>], axis: usize) -> Result<Var<'g, T>> {
        let ids: Vec<NodeId> = vars.iter().map(|v| v.id).collect();
        self.live(&ids)?;
        let Some(first) = vars.first().map(|v| v.shape()) else {
            return Err(TensorError::Concat { lhs: Shape::SCALAR, rhs: Shape::SCALAR, axis });
        };
        if axis >= first.rank() {
            return Err(TensorError::Axis { op: "concat", axis, shape: first });
        }
        let mut len = 0;
        for v in vars {
            let s = v.shape();
            if s.rank() != first.rank() || s.with_dim(axis, 0) != first.with_dim(axis, 0) {
                return Err(TensorError::Concat { lhs: first, rhs: s, axis });
            }
            len += s.dim(axis);
        }
        let out = first.with_dim(axis, len);
        let inputs = {
            let mut n = self.nodes.borrow_mut();
            let start = n.links.len() as u32;
            n.links.extend_from_slice(&ids);
            Span { start, len: ids.len() as u32 }
        };
        let (outer, _, inner) = out.around(axis);
        Ok(self.push(Op::Concat { inputs, axis: axis as u8 }, out, false, &ids, |v, out, _| {
            out.clear();
            for o in 0..outer {
                for &x in &ids {
                    let chunk = v.get(x).len() / outer.max(1);
                    out.extend_from_slice(&v.get(x)[o * chunk..][..chunk]);
                }
            }
            debug_assert_eq!(out.len(), outer * len * inner);
        }))
    }

    /// `vars` joined along `axis` (`torch.cat`).
    pub fn concat<'g>(&'g self, vars: &[Var<'g, T>], axis: usize) -> Var<'g, T> {
        self.sticky(self.try_concat(vars, axis))
    }
}

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $try:ident) => {
        impl<'g, T: Float> ops::$trait for Var<'g, T> {
            type Output = Var<'g, T>;
            fn $method(self, rhs: Self) -> Self {
                self.g.sticky(self.$try(rhs))
            }
        }

        impl<'g, T: Float> ops::$trait<T> for Var<'g, T> {
            type Output = Var<'g, T>;
            fn $method(self, rhs: T) -> Self {
                let rhs = self.g.scalar(rhs);
                self.g.sticky(self.$try(rhs))
            }
        }
    };
}

binary_operator!(Add, add, try_add);
binary_operator!(Sub, sub, try_sub);
binary_operator!(Mul, mul, try_mul);
binary_operator!(Div, div, try_div);

impl<'g, T: Float> ops::Neg for Var<'g, T> {
    type Output = Var<'g, T>;
    fn neg(self) -> Self {
        self.unary(Op::Neg(self.id), |x| -x)
    }
}

/// `(m, k, n)` of a product `[m, k] @ [k, n]`, or the error naming both shapes.
fn matmul_dims(lhs: Shape, rhs: Shape) -> Result<(usize, usize, usize)> {
    match (lhs.dims(), rhs.dims()) {
        (&[m, k], &[k2, n]) if k == k2 => Ok((m, k, n)),
        _ => Err(TensorError::MatMul { lhs, rhs }),
    }
}
