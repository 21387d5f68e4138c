//! Shape ops: `reshape` (shares its input's value), the matrix transpose, `permute` and
//! `transpose` over any axes, `narrow` and `select` along an axis, and `concat`; with their
//! gradient rules. Every value on the tape is contiguous and row-major, so the ops that reorder
//! elements copy them, and `reshape` never needs to.

use crate::backward::{Ctx, Sinks};
use crate::kernels::{Acc, axis, sized, store};
use crate::op::{NodeId, Op};
use crate::tape::{Graph, Var};
use crate::{Float, MAX_RANK, Result, Shape, TensorError};

impl<'g, T: Float> Var<'g, T> {
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

    /// The axes reordered: output axis `i` is input axis `perm[i]` (`x.permute(0, 2, 1, 3)`),
    /// copied into row-major order. Or the error, for a list that is not a permutation.
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let params = ParamStore::<f32>::new();
    /// let mut tape = Tape::new();
    /// let g = tape.no_grad(&params);
    /// let x = g.input(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).reshape(&[1, 2, 3]);
    /// let y = x.permute(&[2, 0, 1]);
    /// assert_eq!(y.shape().dims(), &[3, 1, 2]);
    /// assert_eq!(y.to_array().as_slice().unwrap(), &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    /// assert!(x.try_permute(&[0, 0, 1]).is_err());
    /// ```
    pub fn try_permute(self, perm: &[usize]) -> Result<Self> {
        self.g.live(&[self.id])?;
        let shape = self.shape();
        let mut seen = 0u32;
        for &a in perm {
            if a >= shape.rank() || seen & (1 << a) != 0 {
                seen = u32::MAX;
                break;
            }
            seen |= 1 << a;
        }
        if perm.len() != shape.rank() || seen == u32::MAX {
            return Err(TensorError::Permutation { perm: perm.to_vec(), shape });
        }
        let mut p = [0u8; MAX_RANK];
        let mut dims = [0; MAX_RANK];
        for (i, &a) in perm.iter().enumerate() {
            p[i] = a as u8;
            dims[i] = shape.dim(a);
        }
        let out = Shape::new(&dims[..perm.len()])?;
        let x = self.id;
        Ok(self.g.push(Op::Permute { x, perm: p }, out, false, &[x], |v, out, _| {
            sized(out, shape.numel());
            permute(v.get(x), shape, &p, out, Acc::Write);
        }))
    }

    /// The axes reordered (see [`Var::try_permute`]).
    pub fn permute(self, perm: &[usize]) -> Self {
        self.g.sticky(self.try_permute(perm))
    }

    /// Axes `a` and `b` swapped (`x.transpose(a, b)`), or the error.
    pub fn try_transpose(self, a: usize, b: usize) -> Result<Self> {
        self.g.live(&[self.id])?;
        let rank = self.shape().rank();
        let mut perm = [0; MAX_RANK];
        perm.iter_mut().enumerate().for_each(|(i, p)| *p = i);
        if a < rank && b < rank {
            perm.swap(a, b);
        } else {
            let axis = a.max(b);
            return Err(TensorError::Axis { op: "transpose", axis, shape: self.shape() });
        }
        self.try_permute(&perm[..rank])
    }

    /// Axes `a` and `b` swapped (`x.transpose(a, b)`).
    pub fn transpose(self, a: usize, b: usize) -> Self {
        self.g.sticky(self.try_transpose(a, b))
    }

    /// Elements `start..start + len` along `axis` (`x.narrow(axis, start, len)`, the slice
    /// `x[:, start:start + len]`), copied. Or the error, past the end of the axis.
    pub fn try_narrow(self, axis: usize, start: usize, len: usize) -> Result<Self> {
        self.g.live(&[self.id])?;
        let shape = self.shape();
        if axis >= shape.rank() {
            return Err(TensorError::Axis { op: "narrow", axis, shape });
        }
        if start.checked_add(len).is_none_or(|end| end > shape.dim(axis) || end > u32::MAX as usize) {
            return Err(TensorError::Narrow { axis, start, len, shape });
        }
        let (outer, n, inner) = shape.around(axis);
        let x = self.id;
        let op = Op::Narrow { x, axis: axis as u8, start: start as u32, len: len as u32 };
        Ok(self.g.push(op, shape.with_dim(axis, len), false, &[x], |v, out, _| {
            // One copy per contiguous run (a row of q out of [B, T, 3C] is 64 elements).
            let (xs, run) = (v.get(x), len * inner);
            sized(out, outer * run);
            for (o, dst) in out.chunks_exact_mut(run.max(1)).take(outer).enumerate() {
                dst.copy_from_slice(&xs[(o * n + start) * inner..][..run]);
            }
        }))
    }

    /// Elements `start..start + len` along `axis` (see [`Var::try_narrow`]).
    pub fn narrow(self, axis: usize, start: usize, len: usize) -> Self {
        self.g.sticky(self.try_narrow(axis, start, len))
    }

    /// Element `index` along `axis`, with that axis removed (`x[:, t, :]` for axis 1), or the
    /// error.
    pub fn try_select(self, axis: usize, index: usize) -> Result<Self> {
        let narrow = self.try_narrow(axis, index, 1)?;
        let shape = narrow.shape().without(axis);
        narrow.try_reshape(shape.dims())
    }

    /// Element `index` along `axis`, with that axis removed (`x[:, t, :]` for axis 1).
    pub fn select(self, axis: usize, index: usize) -> Self {
        self.g.sticky(self.try_select(axis, index))
    }
}

impl<'a, T: Float> Graph<'a, T> {
    /// `vars` joined along `axis` (`torch.cat`), or the error.
    pub fn try_concat<'g>(&'g self, vars: &[Var<'g, T>], axis: usize) -> Result<Var<'g, T>> {
        for v in vars {
            self.live(&[v.id])?;
        }
        let Some(first) = vars.first().map(|v| v.shape()) else {
            return Err(TensorError::NothingToJoin { op: "concat" });
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
        Ok(self.record_concat(vars, axis, first.with_dim(axis, len)))
    }

    /// Records `vars` joined along `axis` of `out` (checked by the caller): in row-major order,
    /// for each index of the axes before `axis`, each input's block in turn. `concat`, and
    /// `stack` (whose `out` has the new axis), are this.
    fn record_concat<'g>(&'g self, vars: &[Var<'g, T>], axis: usize, out: Shape) -> Var<'g, T> {
        // The inputs are the node's input list, as every op's are: the backward pass counts a
        // node's uses there, and a node it undercounts could be handed another op's gradient
        // buffer (`Sinks::pass`) and lose this one's contribution.
        let (outer, _, _) = out.around(axis);
        let inputs = vars.iter().map(|v| v.id);
        self.push_node(Op::Concat { axis: axis as u8 }, out, false, inputs, |v, buf, _, _| {
            buf.clear();
            for o in 0..outer {
                for x in vars {
                    let chunk = v.get(x.id).len() / outer.max(1);
                    buf.extend_from_slice(&v.get(x.id)[o * chunk..][..chunk]);
                }
            }
            debug_assert_eq!(buf.len(), out.numel());
        })
    }

    /// `vars` joined along `axis` (`torch.cat`).
    pub fn concat<'g>(&'g self, vars: &[Var<'g, T>], axis: usize) -> Var<'g, T> {
        self.sticky(self.try_concat(vars, axis))
    }

    /// `vars` (all of one shape) stacked along a new axis `axis` (`torch.stack`), or the error:
    /// the elements of a `concat` along `axis`, in the stacked shape (one node, no copies of
    /// the inputs' shapes).
    pub fn try_stack<'g>(&'g self, vars: &[Var<'g, T>], axis: usize) -> Result<Var<'g, T>> {
        for v in vars {
            self.live(&[v.id])?;
        }
        let Some(first) = vars.first().map(|v| v.shape()) else {
            return Err(TensorError::NothingToJoin { op: "stack" });
        };
        if axis > first.rank() {
            return Err(TensorError::Axis { op: "stack", axis, shape: first });
        }
        if let Some(v) = vars.iter().find(|v| v.shape() != first) {
            return Err(TensorError::Concat { lhs: first, rhs: v.shape(), axis });
        }
        let mut dims = [0; MAX_RANK + 1];
        dims[..axis].copy_from_slice(&first.dims()[..axis]);
        dims[axis] = vars.len();
        dims[axis + 1..=first.rank()].copy_from_slice(&first.dims()[axis..]);
        let out = Shape::new(&dims[..=first.rank()])?;
        Ok(self.record_concat(vars, axis, out))
    }

    /// `vars` stacked along a new axis `axis` (`torch.stack`).
    pub fn stack<'g>(&'g self, vars: &[Var<'g, T>], axis: usize) -> Var<'g, T> {
        self.sticky(self.try_stack(vars, axis))
    }
}

/// `out (+)= x` with its axes reordered by `perm` (output axis `i` is input axis `perm[i]`),
/// for `x` of `shape`, row-major. Runs along the last output axis; a run whose input stride is
/// 1 is one contiguous copy.
pub(crate) fn permute<T: Float>(x: &[T], shape: Shape, perm: &[u8; MAX_RANK], out: &mut [T], acc: Acc) {
    let rank = shape.rank();
    if rank == 0 {
        out[0] = if acc == Acc::Write { x[0] } else { out[0] + x[0] };
        return;
    }
    let istride = shape.strides();
    let (mut dims, mut strides) = ([1; MAX_RANK], [0; MAX_RANK]);
    for i in 0..rank {
        dims[i] = shape.dim(perm[i] as usize);
        strides[i] = istride[perm[i] as usize];
    }
    let last = rank - 1;
    let (len, s) = (dims[last], strides[last]);
    let rows: usize = dims[..last].iter().product();
    let (mut idx, mut base) = ([0usize; MAX_RANK], 0);
    for row in 0..rows {
        let o = &mut out[row * len..][..len];
        match (acc, s) {
            (Acc::Write, 1) => o.copy_from_slice(&x[base..base + len]),
            (Acc::Add, 1) => o.iter_mut().zip(&x[base..base + len]).for_each(|(o, &x)| *o += x),
            (Acc::Write, _) => o.iter_mut().enumerate().for_each(|(j, o)| *o = x[base + j * s]),
            (Acc::Add, _) => o.iter_mut().enumerate().for_each(|(j, o)| *o += x[base + j * s]),
        }
        for a in (0..last).rev() {
            idx[a] += 1;
            base += strides[a];
            if idx[a] < dims[a] {
                break;
            }
            base -= strides[a] * dims[a];
            idx[a] = 0;
        }
    }
}

// Gradient rules.
impl<T: Float> Ctx<'_, T> {
    /// `reshape`: the gradient as it is.
    pub(crate) fn reshape_grad(&self, x: NodeId, g: &[T], sinks: &mut Sinks<'_, T>) {
        if sinks.pass(x, self.id) {
            return; // the same elements in the same order: the input shares the buffer
        }
        if let Some((dst, acc)) = sinks.get(x) {
            store(dst, acc, g.iter().copied());
        }
    }

    /// The matrix transpose: `g` (`[cols, rows]`) transposed back.
    pub(crate) fn transpose_grad(&self, x: NodeId, shape: Shape, g: &[T], sinks: &mut Sinks<'_, T>) {
        if let Some((dst, acc)) = sinks.get(x) {
            let &[cols, rows] = shape.dims() else { unreachable!("transpose is 2-D") };
            axis::transpose(g, cols, rows, dst, acc);
        }
    }

    /// `permute`: `g` permuted by the inverse permutation.
    pub(crate) fn permute_grad(
        &self,
        x: NodeId,
        perm: [u8; MAX_RANK],
        shape: Shape,
        g: &[T],
        sinks: &mut Sinks<'_, T>,
    ) {
        if let Some((dst, acc)) = sinks.get(x) {
            let mut inv = [0u8; MAX_RANK];
            for i in 0..shape.rank() {
                inv[perm[i] as usize] = i as u8;
            }
            sized(dst, shape.numel());
            permute(g, shape, &inv, dst, acc);
        }
    }

    /// `narrow`: `g` into its place along the axis, zeros elsewhere.
    pub(crate) fn narrow_grad(
        &self,
        x: NodeId,
        (axis, start, len): (u8, u32, u32),
        g: &[T],
        sinks: &mut Sinks<'_, T>,
    ) {
        let xs = self.shape(x);
        if let Some((dst, acc)) = sinks.get(x) {
            let (outer, n, inner) = xs.around(axis as usize);
            let (start, run) = (start as usize, len as usize * inner);
            sized(dst, xs.numel());
            for o in 0..outer {
                // Each block of the input along the axis: `g`'s run in its place; on a write,
                // zeros before and after it (one pass, no zero-fill first).
                let block = &mut dst[o * n * inner..][..n * inner];
                let (before, rest) = block.split_at_mut(start * inner);
                let (mid, after) = rest.split_at_mut(run);
                let g = &g[o * run..][..run];
                if acc == Acc::Write {
                    before.fill(T::zero());
                    mid.copy_from_slice(g);
                    after.fill(T::zero());
                } else {
                    mid.iter_mut().zip(g).for_each(|(d, &g)| *d += g);
                }
            }
        }
    }

    /// `concat`: each input's slice of `g`.
    pub(crate) fn concat_grad(&self, axis: u8, shape: Shape, g: &[T], sinks: &mut Sinks<'_, T>) {
        let (outer, _, _) = shape.around(axis as usize);
        let mut offset = 0;
        for &x in self.inputs {
            let chunk = self.shape(x).numel() / outer.max(1);
            if let Some((dst, acc)) = sinks.get(x) {
                // The input's run of each block along the axis, copied or added whole (an
                // iterator over the runs has no exact length, and `store` then pushed element
                // by element).
                let stride = shape.numel() / outer.max(1);
                sized(dst, outer * chunk);
                for (o, d) in dst.chunks_exact_mut(chunk.max(1)).enumerate().take(outer) {
                    let g = &g[o * stride + offset..][..chunk];
                    if acc == Acc::Write {
                        d.copy_from_slice(g);
                    } else {
                        d.iter_mut().zip(g).for_each(|(d, &g)| *d += g);
                    }
                }
            }
            offset += chunk;
        }
    }
}
