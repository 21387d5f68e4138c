//! Reverse-mode differentiation: one reverse loop over the tape and one exhaustive `match` over
//! [`Op`], a gradient rule per op. The first contribution to a gradient buffer is written, later
//! ones are added in place; broadcast operands get the gradient summed back to their shape.

use ndarray::ArrayViewD;

use crate::kernels::axis;
use crate::kernels::broadcast::{Broadcast, Side};
use crate::kernels::matmul::{self, Strided};
use crate::kernels::{Acc, sized, store};
use crate::op::{NodeId, Op};
use crate::tape::{Graph, Values, Var};
use crate::{Float, Grads, Result, Shape, TensorError};

/// Where the gradients of nodes go: node buffers on the tape, parameter buffers in [`Grads`].
struct Sinks<'s, T> {
    ops: &'s [Op],
    needs_grad: &'s [bool],
    grads: &'s mut [Vec<T>],
    live: &'s mut [bool],
    params: &'s mut Grads<T>,
}

impl<T: Float> Sinks<'_, T> {
    /// The gradient buffer of node `id` and whether to write or add, or `None` if the node needs
    /// no gradient.
    fn get(&mut self, id: NodeId) -> Option<(&mut Vec<T>, Acc)> {
        let id = id as usize;
        if !self.needs_grad[id] {
            return None;
        }
        let (buf, live) = match self.ops[id] {
            Op::Param(p) => (&mut self.params.bufs[p.index()].data, &mut self.params.live[p.index()]),
            _ => (&mut self.grads[id], &mut self.live[id]),
        };
        let acc = if *live { Acc::Add } else { Acc::Write };
        *live = true;
        Some((buf, acc))
    }

    /// Zeroes the gradients of the parameters the backward pass did not reach, so that no stale
    /// gradient from an earlier step reaches the optimizer.
    fn zero_unreached_params(self) {
        for (buf, live) in self.params.bufs.iter_mut().zip(&self.params.live) {
            if !live {
                buf.data.iter_mut().for_each(|x| *x = T::zero());
            }
        }
    }
}

impl<'a, T: Float> Graph<'a, T> {
    /// Back-propagates from a one-element `loss`, writes the gradient of every parameter into
    /// `grads` (zeros for parameters the loss does not depend on) and returns the loss value.
    /// Errors if the graph recorded an error, was built with [`crate::Tape::no_grad`], or `loss`
    /// has more than one element.
    pub fn backward(&self, loss: Var<'_, T>, grads: &mut Grads<T>) -> Result<T> {
        let value = loss.item()?;
        self.backward_from(loss, ArrayViewD::from_shape(loss.shape().dims(), &[T::one()])?, grads)?;
        Ok(value)
    }

    /// Back-propagates the gradient `upstream` (shaped like `output`) from any node: the
    /// vector-Jacobian product, i.e. the gradients of `sum(output * upstream)`.
    pub fn backward_from(
        &self,
        output: Var<'_, T>,
        upstream: ArrayViewD<'_, T>,
        grads: &mut Grads<T>,
    ) -> Result<()> {
        self.check()?;
        if !self.grad {
            return Err(TensorError::NoGrad);
        }
        grads.check(self.params)?;
        let shape = output.shape();
        if upstream.shape() != shape.dims() {
            let got = Shape::new(upstream.shape())?;
            return Err(TensorError::ShapeMismatch { op: "backward", expected: shape, got });
        }
        grads.live.iter_mut().for_each(|l| *l = false);
        let mut nodes = self.nodes.borrow_mut();
        let n = &mut *nodes;
        let count = n.ops.len();
        n.grad_live.clear();
        n.grad_live.resize(count, false);
        let values = Values { ops: &n.ops, values: &n.values, params: self.params, ids: &n.ids };
        let mut sinks = Sinks {
            ops: &n.ops,
            needs_grad: &n.needs_grad,
            grads: &mut n.grads,
            live: &mut n.grad_live,
            params: grads,
        };
        if let Some((seed, acc)) = sinks.get(output.id) {
            match upstream.as_slice() {
                Some(u) => store(seed, acc, u.iter().copied()),
                None => store(seed, acc, upstream.iter().copied()),
            }
        }
        for i in (0..=output.id as usize).rev() {
            if !n.needs_grad[i] || !sinks.live[i] || matches!(n.ops[i], Op::Param(_)) {
                continue;
            }
            let g = std::mem::take(&mut sinks.grads[i]);
            let ctx = Ctx {
                values: &values,
                shapes: &n.shapes,
                links: &n.links,
                y: values.get(i as NodeId),
                aux: &n.aux[i],
            };
            ctx.rule(n.ops[i], n.shapes[i], &g, &mut sinks, &mut n.scratch);
            sinks.grads[i] = g;
        }
        sinks.zero_unreached_params();
        Ok(())
    }
}

/// What a gradient rule reads: input values and shapes, the node's own value `y` and its
/// auxiliary buffer.
struct Ctx<'c, T> {
    values: &'c Values<'c, T>,
    shapes: &'c [Shape],
    links: &'c [NodeId],
    y: &'c [T],
    aux: &'c [T],
}

impl<T: Float> Ctx<'_, T> {
    fn x(&self, id: NodeId) -> &[T] {
        self.values.get(id)
    }

    fn shape(&self, id: NodeId) -> Shape {
        self.shapes[id as usize]
    }

    /// `dx (+)= f(g, x, y)` elementwise, for unary ops.
    fn unary(&self, x: NodeId, g: &[T], sinks: &mut Sinks<'_, T>, f: impl Fn(T, T, T) -> T) {
        if let Some((dst, acc)) = sinks.get(x) {
            let it = g.iter().zip(self.x(x)).zip(self.y).map(|((&g, &x), &y)| f(g, x, y));
            store(dst, acc, it);
        }
    }

    /// The gradient rule of one op: adds `g`'s contribution to each input's gradient.
    /// The gradients of `a @ b` (`[m, k] · [k, n]`) from `g`: `dA = G · Bᵀ`, `dB = Aᵀ · G`.
    fn matmul_grads(
        &self,
        (a, b): (NodeId, NodeId),
        g: &[T],
        sinks: &mut Sinks<'_, T>,
        scratch: &mut Vec<T>,
    ) {
        let (&[m, k], &[_, n]) = (self.shape(a).dims(), self.shape(b).dims()) else {
            unreachable!("matmul operands are 2-D")
        };
        let (av, bv) = (self.x(a), self.x(b));
        // dA = G · Bᵀ  ([m, n] · [n, k])
        if let Some((dst, acc)) = sinks.get(a) {
            sized(dst, m * k);
            matmul::gemm(
                (m, n, k),
                Strided::rows(g, n),
                Strided::transposed(bv, n),
                dst,
                acc.into(),
                scratch,
            );
        }
        // dB = Aᵀ · G  ([k, m] · [m, n])
        if let Some((dst, acc)) = sinks.get(b) {
            sized(dst, k * n);
            matmul::gemm(
                (k, m, n),
                Strided::transposed(av, k),
                Strided::rows(g, n),
                dst,
                acc.into(),
                scratch,
            );
        }
    }

    fn rule(&self, op: Op, shape: Shape, g: &[T], sinks: &mut Sinks<'_, T>, scratch: &mut Vec<T>) {
        match op {
            Op::Input | Op::Param(_) | Op::Poison => {}
            Op::Add(a, b) | Op::Sub(a, b) => {
                let bc = Broadcast::new("add", self.shape(a), self.shape(b)).expect("checked when recorded");
                let sign = if matches!(op, Op::Sub(..)) { -T::one() } else { T::one() };
                if let Some((dst, acc)) = sinks.get(a) {
                    bc.reduce(Side::Lhs, g, T::one(), dst, acc);
                }
                if let Some((dst, acc)) = sinks.get(b) {
                    bc.reduce(Side::Rhs, g, sign, dst, acc);
                }
            }
            Op::Mul(a, b) | Op::Div(a, b) => {
                let bc = Broadcast::new("mul", self.shape(a), self.shape(b)).expect("checked when recorded");
                let div = matches!(op, Op::Div(..));
                let xs = (g, self.x(a), self.x(b));
                if let Some((dst, acc)) = sinks.get(a) {
                    if div {
                        bc.grad(Side::Lhs, xs, dst, acc, |g, _, b| g / b);
                    } else {
                        bc.grad(Side::Lhs, xs, dst, acc, |g, _, b| g * b);
                    }
                }
                if let Some((dst, acc)) = sinks.get(b) {
                    if div {
                        bc.grad(Side::Rhs, xs, dst, acc, |g, a, b| -g * a / (b * b));
                    } else {
                        bc.grad(Side::Rhs, xs, dst, acc, |g, a, _| g * a);
                    }
                }
            }
            Op::Neg(x) => self.unary(x, g, sinks, |g, _, _| -g),
            Op::Pow(x, e) => {
                let (e, e1) = (T::of(e), T::of(e - 1.0));
                self.unary(x, g, sinks, |g, x, _| g * e * x.powf(e1));
            }
            Op::Exp(x) => self.unary(x, g, sinks, |g, _, y| g * y),
            Op::Log(x) => self.unary(x, g, sinks, |g, x, _| g / x),
            Op::Tanh(x) => self.unary(x, g, sinks, |g, _, y| g * (T::one() - y * y)),
            Op::Relu(x) => self.unary(x, g, sinks, |g, x, _| if x > T::zero() { g } else { T::zero() }),
            Op::Sigmoid(x) => self.unary(x, g, sinks, |g, _, y| g * y * (T::one() - y)),
            Op::Sum { x, axis } | Op::Mean { x, axis } => {
                let xs = self.shape(x);
                let around = match axis {
                    None => (1, xs.numel(), 1),
                    Some(ax) => xs.around(ax as usize),
                };
                let mean = matches!(op, Op::Mean { .. });
                let scale = if mean { T::one() / T::of(around.1 as f64) } else { T::one() };
                if let Some((dst, acc)) = sinks.get(x) {
                    axis::spread(g, around, scale, dst, acc);
                }
            }
            Op::Softmax { x, axis } | Op::LogSoftmax { x, axis } => {
                let log = matches!(op, Op::LogSoftmax { .. });
                if let Some((dst, acc)) = sinks.get(x) {
                    axis::softmax_backward(g, self.y, shape.around(axis as usize), log, dst, acc);
                }
            }
            Op::Reshape(x) => {
                if let Some((dst, acc)) = sinks.get(x) {
                    store(dst, acc, g.iter().copied());
                }
            }
            Op::Transpose(x) => {
                if let Some((dst, acc)) = sinks.get(x) {
                    // `g` is [cols, rows]: transposing it back gives the input's layout.
                    let &[cols, rows] = shape.dims() else { unreachable!("transpose is 2-D") };
                    axis::transpose(g, cols, rows, dst, acc);
                }
            }
            Op::Concat { inputs, axis } => {
                let (outer, _, _) = shape.around(axis as usize);
                let mut offset = 0;
                for &x in &self.links[inputs.range()] {
                    let chunk = self.shape(x).numel() / outer.max(1);
                    if let Some((dst, acc)) = sinks.get(x) {
                        let stride = shape.numel() / outer.max(1);
                        let it = (0..outer).flat_map(|o| &g[o * stride + offset..][..chunk]).copied();
                        store(dst, acc, it);
                    }
                    offset += chunk;
                }
            }
            Op::MatMul(a, b) => self.matmul_grads((a, b), g, sinks, scratch),
            Op::Linear { x, w, b } => {
                // dX and dW as for matmul; db = the column sums of G.
                self.matmul_grads((x, w), g, sinks, scratch);
                let n = self.shape(b).numel();
                if let Some((dst, acc)) = sinks.get(b) {
                    if acc == Acc::Write {
                        crate::kernels::zeros(dst, n);
                    }
                    crate::kernels::add_rows(g, dst);
                }
            }
            Op::Embedding { table, ids } => {
                if let Some((dst, acc)) = sinks.get(table) {
                    let d = *self.shape(table).dims().last().expect("the table is 2-D");
                    if acc == Acc::Write {
                        crate::kernels::zeros(dst, self.shape(table).numel());
                    }
                    // Scatter-add: a repeated id accumulates the gradients of all its rows.
                    for (&i, grow) in self.values.ids(ids).iter().zip(g.chunks_exact(d)) {
                        let row = &mut dst[i as usize * d..][..d];
                        row.iter_mut().zip(grow).for_each(|(r, &g)| *r += g);
                    }
                }
            }
            Op::CrossEntropy { logits, targets } => {
                if let Some((dst, acc)) = sinks.get(logits) {
                    let classes = *self.shape(logits).dims().last().expect("logits are 2-D");
                    axis::cross_entropy_backward(self.aux, classes, self.values.ids(targets), g[0], dst, acc);
                }
            }
            Op::LookupCrossEntropy { table, ids, .. } => {
                if let Some((dst, acc)) = sinks.get(table) {
                    let classes = *self.shape(table).dims().last().expect("the table is 2-D");
                    axis::lookup_cross_entropy_backward(self.aux, classes, ids.len as usize, g[0], dst, acc);
                }
            }
        }
    }
}
