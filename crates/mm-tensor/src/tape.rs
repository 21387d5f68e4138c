//! The tape (an arena of nodes), the per-step [`Graph`] over it, and [`Var`], the `Copy` handle
//! through which ops are recorded.
//!
//! Nodes are stored as parallel vectors indexed by node id. Their buffers are kept when the tape
//! is reset, so recording the same computation again reuses every allocation: in steady state a
//! training step allocates nothing.

use std::cell::RefCell;

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use crate::op::{NodeId, Op, Span};
use crate::{Float, ParamStore, Result, Shape, TensorError};

/// The nodes of a tape: parallel vectors indexed by node id. `values`, `grads` and `aux` are
/// slots that outlive a reset, so their allocations are reused.
#[derive(Debug, Default)]
pub(crate) struct Nodes<T> {
    pub(crate) ops: Vec<Op>,
    pub(crate) shapes: Vec<Shape>,
    pub(crate) needs_grad: Vec<bool>,
    pub(crate) values: Vec<Vec<T>>,
    pub(crate) aux: Vec<Vec<T>>,
    pub(crate) grads: Vec<Vec<T>>,
    /// Gradient buffers free for reuse by [`Graph::backward_params`], most recently freed last.
    pub(crate) pool: Vec<Vec<T>>,
    pub(crate) grad_live: Vec<bool>,
    /// Per node, from the last backward pass: the node whose gradient buffer holds its gradient
    /// when it was passed through unchanged (see `Sinks::pass`), or [`NO_ALIAS`].
    pub(crate) grad_alias: Vec<NodeId>,
    /// Per node, from the last backward pass: how many nodes take it as an input.
    pub(crate) uses: Vec<u32>,
    /// Per node, during a backward pass: how many nodes not yet done share its gradient buffer.
    pub(crate) grad_shares: Vec<u32>,
    /// The id arena: `embedding` ids, `cross_entropy` targets and `masked_fill` masks, copied in
    /// when recorded.
    pub(crate) ids: Vec<u32>,
    /// Every node's inputs (those a gradient can flow through): `inputs[input_spans[i]]` are
    /// node `i`'s. The backward pass counts each node's uses from them, and `concat` reads its
    /// inputs (any number) from there.
    pub(crate) inputs: Vec<NodeId>,
    pub(crate) input_spans: Vec<Span>,
    /// Scratch space for kernels (a packed operand, attention's weights' gradient), reused.
    pub(crate) scratch: Scratch<T>,
    /// The first error of this graph (sticky).
    pub(crate) error: Option<TensorError>,
}

/// Reused scratch buffers of the kernels: `pack` for a product's packed operand, `tmp` for an
/// intermediate (attention's score gradients).
#[derive(Debug, Default)]
pub(crate) struct Scratch<T> {
    pub(crate) pack: Vec<T>,
    pub(crate) tmp: Vec<T>,
}

impl<T> Nodes<T> {
    fn reset(&mut self) {
        self.ops.clear();
        self.shapes.clear();
        self.needs_grad.clear();
        self.ids.clear();
        self.inputs.clear();
        self.input_spans.clear();
        self.grad_live.clear();
        self.grad_alias.clear();
        self.error = None;
    }
}

/// `grad_alias` of a node whose gradient has a buffer of its own.
pub(crate) const NO_ALIAS: NodeId = NodeId::MAX;

impl<T> Nodes<T> {
    /// Whether the last backward pass left node `id` a gradient: it was reached, and its buffer
    /// (or the one it shares) was not recycled ([`Graph::backward_params`]).
    pub(crate) fn grad_reached(&self, id: usize) -> bool {
        let live = |i: usize| self.grad_live.get(i).copied().unwrap_or(false);
        live(id) && live(self.grad_slot(id))
    }

    /// The index of the buffer that holds node `id`'s gradient after a backward pass.
    pub(crate) fn grad_slot(&self, id: usize) -> usize {
        match self.grad_alias.get(id) {
            Some(&a) if a != NO_ALIAS => a as usize,
            _ => id,
        }
    }
}

/// Read access to node values: resolves parameters (read from the store) and reshapes (which
/// share their input's value).
pub(crate) struct Values<'v, T> {
    pub(crate) ops: &'v [Op],
    pub(crate) values: &'v [Vec<T>],
    pub(crate) params: &'v ParamStore<T>,
    pub(crate) ids: &'v [u32],
}

impl<'v, T: Float> Values<'v, T> {
    pub(crate) fn get(&self, mut id: NodeId) -> &'v [T] {
        loop {
            match self.ops[id as usize] {
                Op::Param(p) => return self.params.data(p),
                Op::Buffer(b) => return self.params.buffer_data(b),
                Op::Reshape(x) => id = x,
                _ => return &self.values[id as usize],
            }
        }
    }

    /// The ids of an `embedding` or `cross_entropy`.
    pub(crate) fn ids(&self, span: Span) -> &'v [u32] {
        &self.ids[span.range()]
    }
}

/// The long-lived owner of node buffers, reused step after step.
///
/// Each step opens a [`Graph`] with [`Tape::graph`] (or [`Tape::no_grad`] for inference), which
/// clears the tape but keeps its buffers.
#[derive(Debug, Default)]
pub struct Tape<T> {
    nodes: RefCell<Nodes<T>>,
}

impl<T: Float> Tape<T> {
    /// An empty tape.
    pub fn new() -> Self {
        Tape { nodes: RefCell::new(Nodes::default()) }
    }

    /// The bytes the tape's buffers hold (node values, gradients, the kernels' auxiliary and
    /// scratch space, the id arena): after a step, what a step of that size keeps allocated.
    /// A caller can run a small step and extrapolate, to refuse a batch that would not fit in
    /// memory before allocating it (Rust aborts when an allocation fails).
    pub fn bytes(&self) -> usize {
        let n = self.nodes.borrow();
        let floats = |bufs: &[Vec<T>]| bufs.iter().map(Vec::capacity).sum::<usize>();
        let all = floats(&n.values)
            + floats(&n.aux)
            + floats(&n.grads)
            + floats(&n.pool)
            + n.scratch.pack.capacity()
            + n.scratch.tmp.capacity();
        all * std::mem::size_of::<T>() + (n.ids.capacity() + n.inputs.capacity()) * 4
    }

    /// Starts recording a graph over `params`, with gradients. Any previous graph is cleared;
    /// its buffers are reused.
    pub fn graph<'a>(&'a mut self, params: &'a ParamStore<T>) -> Graph<'a, T> {
        self.nodes.get_mut().reset();
        Graph { nodes: &self.nodes, params, grad: true }
    }

    /// Starts recording a graph without gradient machinery: values only, for evaluation and
    /// sampling. [`Graph::backward`] on it is an error.
    pub fn no_grad<'a>(&'a mut self, params: &'a ParamStore<T>) -> Graph<'a, T> {
        self.nodes.get_mut().reset();
        Graph { nodes: &self.nodes, params, grad: false }
    }
}

/// One computation being recorded: ops on its [`Var`]s are evaluated eagerly and appended to the
/// tape, ready for [`Graph::backward`].
///
/// Errors are sticky: an op on incompatible shapes records the error, returns a placeholder, and
/// every later op on it is skipped; [`Graph::backward`], [`Var::item`] and [`Graph::check`]
/// return the first error. The `try_` forms of the ops return it at once instead.
pub struct Graph<'a, T> {
    pub(crate) nodes: &'a RefCell<Nodes<T>>,
    pub(crate) params: &'a ParamStore<T>,
    pub(crate) grad: bool,
}

/// A handle to a node of a [`Graph`]: `Copy`, so expressions like `x.matmul(w1) + b1` read as in
/// the lectures.
pub struct Var<'g, T> {
    pub(crate) g: &'g Graph<'g, T>,
    pub(crate) id: NodeId,
}

impl<T> Clone for Var<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Var<'_, T> {}

impl<T> std::fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var({})", self.id)
    }
}

impl<'a, T: Float> Graph<'a, T> {
    /// The parameter store this graph reads.
    pub fn params(&self) -> &'a ParamStore<T> {
        self.params
    }

    /// The first error recorded on this graph, if any.
    pub fn check(&self) -> Result<()> {
        match &self.nodes.borrow().error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The number of nodes recorded so far.
    pub fn len(&self) -> usize {
        self.nodes.borrow().ops.len()
    }

    /// Whether nothing has been recorded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The parameter `id` as a node of this graph (its value is read from the store, not copied).
    pub fn param(&self, id: crate::ParamId) -> Var<'_, T> {
        self.push(Op::Param(id), self.params.shape(id), true, &[], |_, _, _| {})
    }

    /// The buffer `id` (state that is not trained, e.g. a running mean) as a node of this graph:
    /// read from the store, never differentiated.
    pub fn buffer(&self, id: crate::BufferId) -> Var<'_, T> {
        self.push(Op::Buffer(id), self.params.buffer_shape(id), false, &[], |_, _, _| {})
    }

    /// Whether this graph records gradients: a training step ([`Tape::graph`]) rather than
    /// evaluation ([`Tape::no_grad`]). Dropout is the identity when it does not.
    pub fn is_grad(&self) -> bool {
        self.grad
    }

    /// A constant of the given shape, copied from row-major `data`.
    pub fn try_input(&self, shape: &[usize], data: &[T]) -> Result<Var<'_, T>> {
        let shape = Shape::new(shape)?;
        if data.len() != shape.numel() {
            return Err(TensorError::DataLength { op: "input", len: data.len(), shape });
        }
        Ok(self.push(Op::Input, shape, false, &[], |_, out, _| {
            out.clear();
            out.extend_from_slice(data)
        }))
    }

    /// A constant of the given shape (sticky-error form of [`Graph::try_input`]).
    pub fn input(&self, shape: &[usize], data: &[T]) -> Var<'_, T> {
        self.sticky(self.try_input(shape, data))
    }

    /// A constant copied from an ndarray array of any layout.
    pub fn array<D: ndarray::Dimension>(&self, a: ndarray::ArrayView<'_, T, D>) -> Var<'_, T> {
        self.sticky(Shape::new(a.shape()).map(|shape| {
            self.push(Op::Input, shape, false, &[], |_, out, _| {
                out.clear();
                out.extend(a.iter().copied())
            })
        }))
    }

    /// A scalar constant.
    pub fn scalar(&self, v: T) -> Var<'_, T> {
        self.push(Op::Input, Shape::SCALAR, false, &[], |_, out, _| {
            out.clear();
            out.push(v)
        })
    }

    /// Appends a node: `compute` writes its value and, for fused ops, an auxiliary buffer for the
    /// backward pass. Both are the slot's reused buffers *with their old contents*: `compute` must
    /// clear them or overwrite them whole (a kernel that overwrites need not zero them first).
    /// `leaf_grad` says whether a leaf needs a gradient.
    pub(crate) fn push(
        &self,
        op: Op,
        shape: Shape,
        leaf_grad: bool,
        inputs: &[NodeId],
        compute: impl FnOnce(&Values<'_, T>, &mut Vec<T>, &mut Vec<T>),
    ) -> Var<'_, T> {
        self.push_with(op, shape, leaf_grad, inputs, |v, out, aux, _| compute(v, out, aux))
    }

    /// [`Graph::push`] for a kernel that also needs the tape's scratch buffers (a packed
    /// operand).
    pub(crate) fn push_with(
        &self,
        op: Op,
        shape: Shape,
        leaf_grad: bool,
        inputs: &[NodeId],
        compute: impl FnOnce(&Values<'_, T>, &mut Vec<T>, &mut Vec<T>, &mut Scratch<T>),
    ) -> Var<'_, T> {
        self.push_node(op, shape, leaf_grad, inputs.iter().copied(), compute)
    }

    /// [`Graph::push_with`] with the inputs as an iterator: `concat` passes its inputs' ids this
    /// way, however many, without collecting them first (a warm step allocates nothing).
    pub(crate) fn push_node(
        &self,
        op: Op,
        shape: Shape,
        leaf_grad: bool,
        inputs: impl Iterator<Item = NodeId> + Clone,
        compute: impl FnOnce(&Values<'_, T>, &mut Vec<T>, &mut Vec<T>, &mut Scratch<T>),
    ) -> Var<'_, T> {
        let mut n = self.nodes.borrow_mut();
        let n = &mut *n;
        let id = n.ops.len();
        if n.values.len() <= id {
            n.values.push(Vec::new());
            n.aux.push(Vec::new());
            n.grads.push(Vec::new());
        }
        let mut out = std::mem::take(&mut n.values[id]);
        let mut aux = std::mem::take(&mut n.aux[id]);
        let values = Values { ops: &n.ops, values: &n.values, params: self.params, ids: &n.ids };
        compute(&values, &mut out, &mut aux, &mut n.scratch);
        debug_assert!(
            matches!(op, Op::Param(_) | Op::Buffer(_) | Op::Reshape(_)) || out.len() == shape.numel()
        );
        n.values[id] = out;
        n.aux[id] = aux;
        let needs = self.grad && (leaf_grad || inputs.clone().any(|i| n.needs_grad[i as usize]));
        n.ops.push(op);
        let start = n.inputs.len() as u32;
        n.inputs.extend(inputs);
        n.input_spans.push(Span { start, len: n.inputs.len() as u32 - start });
        n.shapes.push(shape);
        n.needs_grad.push(needs);
        Var { g: self, id: id as NodeId }
    }

    /// [`Graph::push_ids`] of the ids of `view` in order, read as one slice where the view is
    /// contiguous (every batch's ids are). ndarray's iterator chooses between its contiguous and
    /// strided forms at every element, and `Vec::extend` takes it as a source of unknown length,
    /// pushing element by element with a capacity check each; a slice's iterator is copied in
    /// one go. For the lecture MLP's 96 context ids the pushes cost more than the copy.
    pub(crate) fn push_id_view(
        &self,
        op: &'static str,
        view: &ArrayViewD<'_, u32>,
        limit: usize,
    ) -> Result<Span> {
        self.push_view_as_ids(op, view, |i| i, limit)
    }

    /// [`Graph::push_id_view`] of values of another type, each made an id by `id` (signed
    /// targets, mask bits).
    pub(crate) fn push_view_as_ids<E: Copy>(
        &self,
        op: &'static str,
        view: &ArrayViewD<'_, E>,
        id: impl Fn(E) -> u32,
        limit: usize,
    ) -> Result<Span> {
        match view.as_slice() {
            Some(values) => self.push_ids(op, values.iter().map(|&v| id(v)), limit),
            None => self.push_ids(op, view.iter().map(|&v| id(v)), limit),
        }
    }

    /// Copies ids into the tape's id arena, checking each is below `limit`.
    pub(crate) fn push_ids(
        &self,
        op: &'static str,
        ids: impl Iterator<Item = u32>,
        limit: usize,
    ) -> Result<Span> {
        let mut n = self.nodes.borrow_mut();
        let start = n.ids.len();
        n.ids.extend(ids);
        if let Some(&bad) = n.ids[start..].iter().find(|&&i| i as usize >= limit) {
            n.ids.truncate(start);
            return Err(TensorError::Index { op, index: bad as usize, len: limit });
        }
        Ok(Span { start: start as u32, len: (n.ids.len() - start) as u32 })
    }

    /// Returns the first recorded error if any of `vars` stands for a failed op.
    pub(crate) fn live(&self, vars: &[NodeId]) -> Result<()> {
        let n = self.nodes.borrow();
        if vars.iter().any(|&v| n.ops[v as usize] == Op::Poison) {
            return Err(n.error.clone().expect("a poisoned graph holds its error"));
        }
        Ok(())
    }

    /// Unwraps an op's result; on error records it (if it is the first) and returns a poisoned
    /// placeholder that later ops pass through.
    pub(crate) fn sticky<'g>(&'g self, r: Result<Var<'g, T>>) -> Var<'g, T> {
        r.unwrap_or_else(|e| {
            let mut n = self.nodes.borrow_mut();
            n.error.get_or_insert(e);
            drop(n);
            self.push(Op::Poison, Shape::SCALAR, false, &[], |_, out, _| {
                out.clear();
                out.push(T::nan())
            })
        })
    }
}

impl<'g, T: Float> Var<'g, T> {
    /// The node's shape.
    pub fn shape(&self) -> Shape {
        self.g.nodes.borrow().shapes[self.id as usize]
    }

    /// Runs `f` on the node's value (row-major), without copying it.
    pub fn with_data<R>(&self, f: impl FnOnce(&[T]) -> R) -> R {
        let n = self.g.nodes.borrow();
        f(Values { ops: &n.ops, values: &n.values, params: self.g.params, ids: &n.ids }.get(self.id))
    }

    /// The gradient that the last backward pass of this graph reached this node with (micrograd's
    /// `.grad` of any `Value`), or `None` if it reached none (no backward yet, a node that
    /// needs no gradient, one off the loss's path, or any node after
    /// [`Graph::backward_params`], which drops node gradients). A parameter's gradient is in the
    /// [`crate::Grads`] the backward pass filled.
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
    /// g.backward(l, &mut grads)?;
    /// assert_eq!(e.grad().unwrap().sum(), -2.0); // dL/de
    /// assert_eq!(grads.get(a).sum(), 6.0); // dL/da
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn grad(&self) -> Option<ArrayD<T>> {
        let n = self.g.nodes.borrow();
        let id = self.id as usize;
        let reached = n.grad_reached(id) && !matches!(n.ops[id], Op::Param(_));
        reached
            .then(|| {
                ArrayD::from_shape_vec(IxDyn(self.shape().dims()), n.grads[n.grad_slot(id)].clone()).ok()
            })
            .flatten()
    }

    /// A copy of the node's value as an array (for inspection: activations, histograms).
    pub fn to_array(&self) -> ArrayD<T> {
        let shape = self.shape();
        self.with_data(|d| ArrayD::from_shape_vec(IxDyn(shape.dims()), d.to_vec()))
            .expect("a node's value fills its shape")
    }

    /// The value of a one-element node, or the graph's first error.
    pub fn item(&self) -> Result<T> {
        self.g.check()?;
        let shape = self.shape();
        if shape.numel() != 1 {
            return Err(TensorError::NonScalar { shape });
        }
        Ok(self.with_data(|d| d[0]))
    }

    /// The graph this node belongs to.
    pub fn graph(&self) -> &'g Graph<'g, T> {
        self.g
    }
}
