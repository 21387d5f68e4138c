//! Causal scaled dot-product attention, fused: `softmax(q kᵀ / sqrt(hs))` with position `t`
//! seeing positions `0..=t`, then `@ v` (`F.scaled_dot_product_attention(q, k, v,
//! is_causal=True)`, makemore's `CausalSelfAttention` from `att = q @ k.transpose(-2, -1)` to
//! `y = att @ v`). One node instead of five (product, scale, mask, softmax, product): the
//! scores of every `(batch, head)` slice, one causal softmax over all of them (a call per row
//! cost six times the products at `T` = 16), then the products with `v`.

use crate::backward::{Ctx, Sinks};
use crate::kernels::attention::Dims;
use crate::kernels::matmul::{self, Start, Strided};
use crate::kernels::{Acc, axis, sized};
use crate::op::{NodeId, Op};
use crate::tape::{Scratch, Var};
use crate::{Float, Result, Shape, TensorError};

impl<'g, T: Float> Var<'g, T> {
    /// Causal attention of this query `[.., T, hs]` over keys `k` and values `v` of the same
    /// shape (`[B, n_head, T, head_size]` in a Transformer): `softmax(q kᵀ / sqrt(hs) masked
    /// causally) @ v`, shaped like `q`. Or the error.
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let params = ParamStore::<f64>::new();
    /// let mut tape = Tape::new();
    /// let g = tape.no_grad(&params);
    /// let q = g.input(&[2, 1], &[1.0, 1.0]);
    /// let k = g.input(&[2, 1], &[0.0, 0.0]);
    /// let v = g.input(&[2, 1], &[2.0, 4.0]);
    /// // Position 0 sees only itself; position 1 averages both (equal scores).
    /// assert_eq!(q.causal_attention(k, v).to_array().as_slice().unwrap(), &[2.0, 3.0]);
    /// ```
    pub fn try_causal_attention(self, k: Self, v: Self) -> Result<Self> {
        self.g.live(&[self.id, k.id, v.id])?;
        let shape = self.shape();
        if shape.rank() < 2 {
            return Err(TensorError::RankBelow { op: "attention", min: 2, got: shape });
        }
        for other in [k, v] {
            if other.shape() != shape {
                let op = "attention";
                return Err(TensorError::ShapeMismatch { op, expected: shape, got: other.shape() });
            }
        }
        let (t, hs) = (shape.dim(shape.rank() - 2), shape.dim(shape.rank() - 1));
        let scale = T::one() / T::of(hs as f64).sqrt();
        let (q, k, v) = (self.id, k.id, v.id);
        Ok(self.g.push_with(Op::Attention { q, k, v }, shape, false, &[q, k, v], |vals, out, att, s| {
            let (qs, ks, vs) = (vals.get(q), vals.get(k), vals.get(v));
            let slices = qs.len() / (t * hs).max(1);
            sized(out, qs.len());
            sized(att, slices * t * t);
            if qs.is_empty() {
                return;
            }
            let (tt, th) = (t * t, t * hs);
            // The scores q kᵀ of every slice, their causal softmax at once, then `@ v`.
            for i in 0..slices {
                let (qi, kt) =
                    (Strided::rows(&qs[i * th..][..th], hs), Strided::transposed(&ks[i * th..][..th], hs));
                matmul::gemm((t, hs, t), qi, kt, &mut att[i * tt..][..tt], Start::Zero, &mut s.pack);
            }
            axis::causal_softmax(att, t, scale);
            for i in 0..slices {
                let (p, vi) =
                    (Strided::rows(&att[i * tt..][..tt], t), Strided::rows(&vs[i * th..][..th], hs));
                matmul::gemm((t, t, hs), p, vi, &mut out[i * th..][..th], Start::Zero, &mut s.pack);
            }
        }))
    }

    /// Causal scaled dot-product attention (see [`Var::try_causal_attention`]).
    pub fn causal_attention(self, k: Self, v: Self) -> Self {
        self.g.sticky(self.try_causal_attention(k, v))
    }
}

impl<'g, T: Float> Var<'g, T> {
    /// makemore's `CausalSelfAttention` between its two linear layers, in one op: this `qkv`
    /// `[B, T, 3C]` (c_attn's output, q, k and v side by side) split into `n_head` heads of
    /// `C / n_head`, causal attention per head, and the heads joined back as `[B, T, C]`. The
    /// same value and gradients as
    ///
    /// ```text
    /// head(i) = qkv.narrow(2, i·C, C).reshape([B, T, n_head, hs]).permute([0, 2, 1, 3])
    /// head(0).causal_attention(head(1), head(2)).permute([0, 2, 1, 3]).reshape([B, T, C])
    /// ```
    ///
    /// but each head's q, k and v are read in place (the products take a row stride) and its
    /// output written in place: none of those five copies, forward or backward. Or the error.
    pub fn try_causal_self_attention(self, n_head: usize) -> Result<Self> {
        self.g.live(&[self.id])?;
        let shape = self.shape();
        let err = TensorError::Heads { shape, heads: n_head };
        let &[b, t, c3] = shape.dims() else { return Err(err) };
        if n_head == 0 || c3 % (3 * n_head) != 0 || n_head > u32::MAX as usize {
            return Err(err);
        }
        let (c, hs) = (c3 / 3, c3 / 3 / n_head);
        let scale = T::one() / T::of(hs as f64).sqrt();
        let out_shape = Shape::new(&[b, t, c])?;
        let x = self.id;
        let op = Op::SelfAttention { qkv: x, heads: n_head as u32 };
        Ok(self.g.push_with(op, out_shape, false, &[x], |vals, out, att, s| {
            let qkv = vals.get(x);
            let (slices, tt) = (b * n_head, t * t);
            sized(out, b * t * c);
            sized(att, slices * tt);
            if out.is_empty() || t == 0 {
                return;
            }
            if T::self_attention(qkv, Dims { b, t, c, n_head }, scale, att, out) {
                return;
            }
            sized(&mut s.tmp, t * hs);
            let heads = Heads { t, c, hs, n_head };
            for i in 0..slices {
                let (q, k) = (heads.rows(qkv, i, 0), heads.rows(qkv, i, 1));
                let kt = Strided { data: k.data, rs: 1, cs: k.rs };
                matmul::gemm((t, hs, t), q, kt, &mut att[i * tt..][..tt], Start::Zero, &mut s.pack);
            }
            axis::causal_softmax(att, t, scale);
            for i in 0..slices {
                let (p, v) = (Strided::rows(&att[i * tt..][..tt], t), heads.rows(qkv, i, 2));
                matmul::gemm((t, t, hs), p, v, &mut s.tmp, Start::Zero, &mut s.pack);
                heads.place(&s.tmp, out, i, c, None, Acc::Write);
            }
        }))
    }

    /// makemore's causal self-attention on c_attn's output (see
    /// [`Var::try_causal_self_attention`]).
    pub fn causal_self_attention(self, n_head: usize) -> Self {
        self.g.sticky(self.try_causal_self_attention(n_head))
    }
}

/// Where each head's rows are: slice `i` is (batch `i / n_head`, head `i % n_head`); its rows of
/// q, k or v (`part` 0, 1, 2) are `hs` wide, `3C` apart in `qkv`, and its output rows `C` apart.
struct Heads {
    t: usize,
    c: usize,
    hs: usize,
    n_head: usize,
}

impl Heads {
    /// The offset of slice `i`'s first row in a tensor of rows `width` wide, `part` blocks of C in.
    fn offset(&self, i: usize, part: usize, width: usize) -> usize {
        let (batch, head) = (i / self.n_head, i % self.n_head);
        batch * self.t * width + part * self.c + head * self.hs
    }

    /// Slice `i`'s `[t, hs]` rows of part `part` (q, k, v) of `qkv`, as a strided operand.
    fn rows<'a, T: Float>(&self, qkv: &'a [T], i: usize, part: usize) -> Strided<'a, T> {
        let at = self.offset(i, part, 3 * self.c);
        Strided { data: &qkv[at..at + (self.t - 1) * 3 * self.c + self.hs], rs: 3 * self.c, cs: 1 }
    }

    /// Writes or adds the `[t, hs]` block `src` into slice `i`'s rows of a tensor whose rows are
    /// `width` wide (`C` for the output, `3C` for `qkv`'s gradient, at `part`).
    fn place<T: Float>(
        &self,
        src: &[T],
        dst: &mut [T],
        i: usize,
        width: usize,
        part: Option<usize>,
        acc: Acc,
    ) {
        let at = self.offset(i, part.unwrap_or(0), width);
        for (r, row) in src.chunks_exact(self.hs).enumerate() {
            let d = &mut dst[at + r * width..][..self.hs];
            match acc {
                Acc::Write => d.copy_from_slice(row),
                Acc::Add => d.iter_mut().zip(row).for_each(|(d, &s)| *d += s),
            }
        }
    }
}

// Gradient rules.
impl<T: Float> Ctx<'_, T> {
    /// Attention, per slice with weights `P` (from `aux`): `dP = G vᵀ`, the scores' gradient
    /// `dS = P ⊙ (dP - rowsum(dP ⊙ P)) / sqrt(hs)`, then `dq (+)= dS k`, `dk (+)= dSᵀ q`,
    /// `dv (+)= Pᵀ G`.
    pub(crate) fn attention_grad(
        &self,
        (q, k, v): (NodeId, NodeId, NodeId),
        g: &[T],
        sinks: &mut Sinks<'_, T>,
        s: &mut Scratch<T>,
    ) {
        let shape = self.shape(q);
        let (t, hs) = (shape.dim(shape.rank() - 2), shape.dim(shape.rank() - 1));
        let scale = T::one() / T::of(hs as f64).sqrt();
        let (qs, ks, vs, att) = (self.x(q), self.x(k), self.x(v), self.aux);
        let slices = qs.len() / (t * hs).max(1);
        let (tt, th) = (t * t, t * hs);
        if sinks.needs(q) || sinks.needs(k) {
            // dS for every slice, into `tmp`.
            sized(&mut s.tmp, slices * tt);
            for i in 0..slices {
                let ds = &mut s.tmp[i * tt..][..tt];
                let (gi, vi) = (&g[i * th..][..th], &vs[i * th..][..th]);
                let vt = Strided::transposed(vi, hs);
                matmul::gemm((t, hs, t), Strided::rows(gi, hs), vt, ds, Start::Zero, &mut s.pack);
                let p = &att[i * tt..][..tt];
                for (dr, pr) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
                    let dp = axis::dot(dr, pr);
                    dr.iter_mut().zip(pr).for_each(|(d, &p)| *d = p * (*d - dp) * scale);
                }
            }
        }
        let tmp = &s.tmp;
        // dq = dS k and dk = dSᵀ q.
        for (dst_id, other, transposed) in [(q, ks, false), (k, qs, true)] {
            if let Some((dst, acc)) = sinks.get(dst_id) {
                sized(dst, qs.len());
                for i in 0..slices {
                    let ds = &tmp[i * tt..][..tt];
                    let a = if transposed { Strided::transposed(ds, t) } else { Strided::rows(ds, t) };
                    let b = Strided::rows(&other[i * th..][..th], hs);
                    matmul::gemm((t, t, hs), a, b, &mut dst[i * th..][..th], acc.into(), &mut s.pack);
                }
            }
        }
        if let Some((dst, acc)) = sinks.get(v) {
            sized(dst, vs.len());
            for i in 0..slices {
                let pt = Strided::transposed(&att[i * tt..][..tt], t);
                let gi = Strided::rows(&g[i * th..][..th], hs);
                matmul::gemm((t, t, hs), pt, gi, &mut dst[i * th..][..th], acc.into(), &mut s.pack);
            }
        }
    }

    /// Self-attention on `qkv`, per slice: `dP = G_h vᵀ`, `dS = P ⊙ (dP - rowsum(dP ⊙ P)) /
    /// sqrt(hs)`, then `dq = dS k`, `dk = dSᵀ q`, `dv = Pᵀ G_h`, each placed in its block of
    /// `qkv`'s gradient. Every element of that gradient belongs to exactly one block, so a first
    /// contribution writes them all without zero-filling.
    pub(crate) fn self_attention_grad(
        &self,
        x: NodeId,
        n_head: usize,
        g: &[T],
        sinks: &mut Sinks<'_, T>,
        s: &mut Scratch<T>,
    ) {
        let shape = self.shape(x);
        let (t, c) = (shape.dim(1), shape.dim(2) / 3);
        let hs = c / n_head.max(1);
        let scale = T::one() / T::of(hs as f64).sqrt();
        let (qkv, att) = (self.x(x), self.aux);
        let Some((dst, acc)) = sinks.get(x) else { return };
        sized(dst, qkv.len());
        if qkv.is_empty() || t == 0 || hs == 0 {
            return;
        }
        let dims = Dims { b: shape.dim(0), t, c, n_head };
        if T::self_attention_grad((qkv, att, g), dims, scale, dst, acc) {
            return;
        }
        let heads = Heads { t, c, hs, n_head };
        let (tt, slices) = (t * t, shape.dim(0) * n_head);
        sized(&mut s.tmp, tt + t * hs);
        let (ds, block) = s.tmp.split_at_mut(tt);
        for i in 0..slices {
            // This slice's rows of G: [t, hs], C apart.
            let at = heads.offset(i, 0, c);
            let gi = Strided { data: &g[at..at + (t - 1) * c + hs], rs: c, cs: 1 };
            let (q, k, v) = (heads.rows(qkv, i, 0), heads.rows(qkv, i, 1), heads.rows(qkv, i, 2));
            let vt = Strided { data: v.data, rs: 1, cs: v.rs };
            matmul::gemm((t, hs, t), gi, vt, ds, Start::Zero, &mut s.pack);
            let p = &att[i * tt..][..tt];
            for (dr, pr) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
                let dp = axis::dot(dr, pr);
                dr.iter_mut().zip(pr).for_each(|(d, &p)| *d = p * (*d - dp) * scale);
            }
            let dst = &mut dst[..];
            matmul::gemm((t, t, hs), Strided::rows(ds, t), k, block, Start::Zero, &mut s.pack);
            heads.place(block, dst, i, 3 * c, Some(0), acc);
            matmul::gemm((t, t, hs), Strided::transposed(ds, t), q, block, Start::Zero, &mut s.pack);
            heads.place(block, dst, i, 3 * c, Some(1), acc);
            matmul::gemm((t, t, hs), Strided::transposed(p, t), gi, block, Start::Zero, &mut s.pack);
            heads.place(block, dst, i, 3 * c, Some(2), acc);
        }
    }
}
