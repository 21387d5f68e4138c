//! Reverse-mode differentiation: one reverse loop over the tape and one exhaustive `match` over
//! [`Op`] that sends each node to its gradient rule (the rules live beside their forward passes,
//! in `ops/`). The first contribution to a gradient buffer is written, later ones are added in
//! place; broadcast operands get the gradient summed back to their shape. A gradient that goes
//! through an op unchanged (a residual `add`, a `reshape`) to an input used by no other node is
//! neither written nor added: the input shares the op's buffer ([`Sinks::pass`]).

use ndarray::ArrayViewD;

use crate::kernels::{Acc, store};
use crate::op::{NodeId, Op};
use crate::tape::{Graph, NO_ALIAS, Scratch, Values, Var};
use crate::{Float, Grads, Result, Shape, TensorError};

/// Where the gradients of nodes go: node buffers on the tape, parameter buffers in [`Grads`].
pub(crate) struct Sinks<'s, T> {
    ops: &'s [Op],
    needs_grad: &'s [bool],
    grads: &'s mut [Vec<T>],
    live: &'s mut [bool],
    /// Per node: the node whose buffer holds its gradient, or [`NO_ALIAS`].
    alias: &'s mut [NodeId],
    /// Per node: how many nodes take it as an input.
    uses: &'s [u32],
    params: &'s mut Grads<T>,
    /// Gradient buffers free for reuse, most recently freed last ([`Sinks::recycled`]).
    pool: &'s mut Vec<Vec<T>>,
    /// Whether node gradients are dropped once used ([`Graph::backward_params`]).
    recycle: bool,
    shapes: &'s [Shape],
    /// Per buffer: how many nodes not yet done share it besides its own ([`Sinks::pass`]).
    shares: &'s mut [u32],
    /// The nodes the running rule may send gradients to: its node's inputs (the seed's own id
    /// before the first rule). Checked in debug builds: a rule that wrote to a node missing from
    /// its input list would find that node's uses undercounted, and [`Sinks::pass`] could then
    /// hand the node another op's buffer and lose this contribution.
    targets: &'s [NodeId],
}

impl<T: Float> Sinks<'_, T> {
    /// The gradient buffer of node `id` and whether to write or add, or `None` if the node needs
    /// no gradient.
    pub(crate) fn get(&mut self, id: NodeId) -> Option<(&mut Vec<T>, Acc)> {
        let id = id as usize;
        if !self.needs_grad[id] {
            return None;
        }
        debug_assert!(self.targets.contains(&(id as NodeId)), "node {id} is not an input of the rule's node");
        debug_assert!(self.alias[id] == NO_ALIAS, "a node passed its gradient has no other consumer");
        if let Op::Param(p) = self.ops[id] {
            let acc = if self.params.live[p.index()] { Acc::Add } else { Acc::Write };
            self.params.live[p.index()] = true;
            return Some((&mut self.params.bufs[p.index()].data, acc));
        }
        let acc = if self.live[id] { Acc::Add } else { Acc::Write };
        self.live[id] = true;
        if acc == Acc::Write {
            self.recycled(id);
        }
        Some((&mut self.grads[id], acc))
    }

    /// Gives node `id`, whose gradient is about to be written for the first time, a buffer of
    /// its length from the pool, if there is one, in place of its own (which joins the pool).
    ///
    /// With [`Graph::backward_params`] it always takes the most recently freed: that buffer was
    /// written a moment ago and is still in cache, so the first write of a gradient hits L1 or
    /// L2 rather than memory last touched a step ago. Otherwise only when its own buffer is not
    /// of its length (it went to the pool in a step that recycled): a tape that alternates the
    /// two backward passes circulates its buffers rather than allocating new ones.
    fn recycled(&mut self, id: usize) {
        let n = self.shapes[id].numel();
        if !self.recycle && self.grads[id].len() == n {
            return;
        }
        if let Some(at) = self.pool.iter().rposition(|b| b.len() == n) {
            let own = std::mem::replace(&mut self.grads[id], self.pool.remove(at));
            if own.capacity() > 0 {
                // The oldest end: a buffer not written this step is the coldest there is.
                self.pool.insert(0, own);
            }
        }
    }

    /// Passes the gradient of node `from` to its input `id` unchanged, without a copy, if it can:
    /// when `id` is a node (not a parameter) that needs a gradient, has no other consumer (so
    /// this is its whole gradient) and has none yet. `id` then shares `from`'s buffer (which
    /// holds its final value: `from` is done), and the backward pass reads it from there.
    /// Returns false where it cannot, and the caller writes or adds the gradient as usual.
    pub(crate) fn pass(&mut self, id: NodeId, from: NodeId) -> bool {
        debug_assert!(self.targets.contains(&id), "node {id} is not an input of node {from}");
        let i = id as usize;
        let node = !matches!(self.ops[i], Op::Param(_) | Op::Buffer(_));
        if !(self.needs_grad[i] && node && self.uses[i] == 1 && !self.live[i]) {
            return false;
        }
        let root = self.alias[from as usize];
        let root = if root == NO_ALIAS { from } else { root };
        self.alias[i] = root;
        self.shares[root as usize] += 1;
        self.live[i] = true;
        true
    }

    /// Whether node `id` needs a gradient.
    pub(crate) fn needs(&self, id: NodeId) -> bool {
        self.needs_grad[id as usize]
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

    /// [`Graph::backward`] for a training step, which wants the parameters' gradients only: as
    /// PyTorch's `loss.backward()` keeps no `.grad` for a tensor that is not a leaf, the gradient
    /// of a node is dropped once its rule has run, and [`Var::grad`] of every node is then
    /// `None`. The same gradients reach `grads`, to the bit.
    ///
    /// Why: a node's gradient buffer is then handed to the next node whose gradient starts
    /// (one of the same length), while it is still in cache. With a buffer of its own per node,
    /// every first write of a gradient went to memory last touched a step ago: in makemore's
    /// Transformer step on an AMD EPYC (Zen 4, the AVX-512 gemm path), the products that write an input's gradient ran 12-31% slower
    /// in the step than alone, the attention's backward and GELU's likewise.
    ///
    /// ```
    /// use mm_tensor::{Grads, ParamStore, Tape};
    /// let mut params = ParamStore::<f64>::new();
    /// let a = params.add("a", ndarray::arr0(2.0).into_dyn())?;
    /// let mut tape = Tape::new();
    /// let mut grads = Grads::new(&params);
    /// let g = tape.graph(&params);
    /// let e = g.param(a) * -3.0;
    /// let l = e * -2.0;
    /// assert_eq!(g.backward_params(l, &mut grads)?, 12.0);
    /// assert_eq!(grads.get(a).sum(), 6.0); // dL/da, as `backward` gives it
    /// assert!(e.grad().is_none()); // not kept
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn backward_params(&self, loss: Var<'_, T>, grads: &mut Grads<T>) -> Result<T> {
        let value = loss.item()?;
        let one = [T::one()];
        self.back_propagate(loss, ArrayViewD::from_shape(loss.shape().dims(), &one)?, grads, true)?;
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
        self.back_propagate(output, upstream, grads, false)
    }

    /// The reverse loop; with `recycle`, node gradients are dropped once used
    /// ([`Graph::backward_params`]).
    fn back_propagate(
        &self,
        output: Var<'_, T>,
        upstream: ArrayViewD<'_, T>,
        grads: &mut Grads<T>,
        recycle: bool,
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
        n.grad_alias.clear();
        n.grad_alias.resize(count, NO_ALIAS);
        n.uses.clear();
        n.uses.resize(count, 0);
        n.grad_shares.clear();
        n.grad_shares.resize(count, 0);
        for &i in &n.inputs[..n.input_spans.get(output.id as usize).map_or(0, |s| s.range().end)] {
            n.uses[i as usize] += 1;
        }
        let values = Values { ops: &n.ops, values: &n.values, params: self.params, ids: &n.ids };
        let mut sinks = Sinks {
            ops: &n.ops,
            needs_grad: &n.needs_grad,
            grads: &mut n.grads,
            live: &mut n.grad_live,
            alias: &mut n.grad_alias,
            uses: &n.uses,
            params: grads,
            pool: &mut n.pool,
            recycle,
            shapes: &n.shapes,
            shares: &mut n.grad_shares,
            targets: std::slice::from_ref(&output.id),
        };
        if let Some((seed, acc)) = sinks.get(output.id) {
            match upstream.as_slice() {
                Some(u) => store(seed, acc, u.iter().copied()),
                None => store(seed, acc, upstream.iter().copied()),
            }
        }
        for i in (0..=output.id as usize).rev() {
            if !n.needs_grad[i] || !sinks.live[i] || matches!(n.ops[i], Op::Param(_) | Op::Buffer(_)) {
                continue;
            }
            // A node's gradient is in its own buffer, or in the one it shares (whose node is done:
            // it has a higher id, so no rule below writes to it).
            let slot = match sinks.alias[i] {
                NO_ALIAS => i,
                a => a as usize,
            };
            let g = std::mem::take(&mut sinks.grads[slot]);
            let ctx = Ctx {
                id: i as NodeId,
                values: &values,
                shapes: &n.shapes,
                inputs: &n.inputs[n.input_spans[i].range()],
                y: values.get(i as NodeId),
                aux: &n.aux[i],
            };
            sinks.targets = ctx.inputs;
            ctx.rule(n.ops[i], n.shapes[i], &g, &mut sinks, &mut n.scratch);
            if slot != i {
                sinks.shares[slot] -= 1;
            }
            // Done with this buffer, unless a node still to come shares it: an input the rule
            // passed it to, or one that a node before passed it to (an `add` whose two inputs
            // have no other use passes its gradient to both).
            if sinks.recycle && sinks.shares[slot] == 0 {
                sinks.pool.push(g);
                // Its buffer is gone: `Var::grad` of this node (and of any that shared it) sees
                // no gradient.
                sinks.live[slot] = false;
            } else {
                sinks.grads[slot] = g;
            }
        }
        // A tape whose graphs change shape would keep buffers of every length it has seen: the
        // pool keeps at most one buffer per node, the oldest dropped first. A training loop's
        // pool holds fewer (one per node whose buffer circulates) and is never trimmed.
        if sinks.pool.len() > count {
            let excess = sinks.pool.len() - count;
            sinks.pool.drain(..excess);
        }
        sinks.zero_unreached_params();
        Ok(())
    }
}

/// What a gradient rule reads: input values and shapes, the node's own value `y` and its
/// auxiliary buffer.
pub(crate) struct Ctx<'c, T> {
    /// The node whose rule runs.
    pub(crate) id: NodeId,
    pub(crate) values: &'c Values<'c, T>,
    pub(crate) shapes: &'c [Shape],
    /// The node's inputs, in order.
    pub(crate) inputs: &'c [NodeId],
    pub(crate) y: &'c [T],
    pub(crate) aux: &'c [T],
}

impl<T: Float> Ctx<'_, T> {
    /// The value of node `id`.
    pub(crate) fn x(&self, id: NodeId) -> &[T] {
        self.values.get(id)
    }

    /// The shape of node `id`.
    pub(crate) fn shape(&self, id: NodeId) -> Shape {
        self.shapes[id as usize]
    }

    /// The gradient rule of one op: adds `g`'s contribution to each input's gradient. One arm per
    /// op; the rules are in the op's family file under `ops/`.
    fn rule(&self, op: Op, shape: Shape, g: &[T], sinks: &mut Sinks<'_, T>, s: &mut Scratch<T>) {
        match op {
            Op::Input | Op::Param(_) | Op::Buffer(_) | Op::Poison => {}
            // ops/elementwise.rs
            Op::Add(a, b) => self.add_grad((a, b), false, g, sinks),
            Op::Sub(a, b) => self.add_grad((a, b), true, g, sinks),
            Op::Mul(a, b) => self.mul_grad((a, b), false, g, sinks),
            Op::Div(a, b) => self.mul_grad((a, b), true, g, sinks),
            Op::Neg(x) => self.unary(x, g, sinks, |g, _, _| -g),
            Op::Pow(x, e) => self.pow_grad(x, e, g, sinks),
            Op::Exp(x) => self.unary(x, g, sinks, |g, _, y| g * y),
            Op::Log(x) => self.unary(x, g, sinks, |g, x, _| g / x),
            Op::Sqrt(x) => self.unary(x, g, sinks, |g, _, y| g / (y + y)),
            Op::Tanh(x) => self.unary(x, g, sinks, |g, _, y| g * (T::one() - y * y)),
            Op::Relu(x) => self.unary(x, g, sinks, |g, x, _| if x > T::zero() { g } else { T::zero() }),
            Op::Sigmoid(x) => self.unary(x, g, sinks, |g, _, y| g * y * (T::one() - y)),
            Op::Gelu(x) => self.gelu_grad(x, g, sinks),
            Op::MaskedFill { x, mask, .. } => self.masked_fill_grad(x, self.values.ids(mask), g, sinks),
            Op::Dropout(x) => self.dropout_grad(x, g, sinks),
            // ops/reduce.rs
            Op::Sum { x, axis } => self.sum_grad(x, axis, false, g, sinks),
            Op::Mean { x, axis } => self.sum_grad(x, axis, true, g, sinks),
            Op::MeanAxes { x, axes } => self.moments_grad(x, axes, None, g, sinks),
            Op::VarAxes { x, axes, correction } => self.moments_grad(x, axes, Some(correction), g, sinks),
            Op::Softmax { x, axis } => self.softmax_grad(x, axis, false, shape, g, sinks),
            Op::LogSoftmax { x, axis } => self.softmax_grad(x, axis, true, shape, g, sinks),
            Op::CausalMean { x, axis } => self.causal_mean_grad(x, axis, g, sinks),
            // ops/shape.rs
            Op::Reshape(x) => self.reshape_grad(x, g, sinks),
            Op::Transpose(x) => self.transpose_grad(x, shape, g, sinks),
            Op::Permute { x, perm } => self.permute_grad(x, perm, shape, g, sinks),
            Op::Narrow { x, axis, start, len } => self.narrow_grad(x, (axis, start, len), g, sinks),
            Op::Concat { axis } => self.concat_grad(axis, shape, g, sinks),
            // ops/matmul.rs, ops/attention.rs
            Op::MatMul(a, b) => self.matmul_grad((a, b), g, sinks, s),
            Op::Linear { x, w, b, w_t } => self.linear_grad((x, w, b, w_t), g, sinks, s),
            Op::Attention { q, k, v } => self.attention_grad((q, k, v), g, sinks, s),
            Op::SelfAttention { qkv, heads } => self.self_attention_grad(qkv, heads as usize, g, sinks, s),
            // ops/rotary.rs
            Op::Rotary { qkv, heads } => self.rotary_grad(qkv, heads as usize, g, sinks),
            // ops/embedding_linear.rs
            Op::EmbeddingLinear { table, ids, w, b, w_t } => {
                self.embedding_linear_grad((table, ids, w, b, w_t), g, sinks, s)
            }
            // ops/recurrent.rs
            Op::RnnScan { x, h0, w, b } => self.rnn_scan_grad((x, h0, w, b), g, sinks, s),
            Op::GruScan { x, h0, w, b } => self.gru_scan_grad((x, h0, w, b), g, sinks, s),
            // ops/norm.rs
            Op::LayerNorm { x, w, b, .. } => self.layer_norm_grad((x, w, b), g, sinks, &mut s.tmp),
            Op::BatchNorm { x, w, b, stats, .. } => {
                self.batch_norm_grad((x, w, b), stats, g, sinks, &mut s.tmp)
            }
            // ops/index.rs, ops/loss.rs
            Op::Embedding { table, ids } => self.embedding_grad(table, ids, g, sinks),
            Op::CrossEntropy { logits, targets } => self.cross_entropy_grad(logits, targets, g, sinks),
            Op::LookupCrossEntropy { table, ids, .. } => self.lookup_cross_entropy_grad(table, ids, g, sinks),
        }
    }
}
