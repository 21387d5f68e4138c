//! Causal scaled dot-product attention, fused: `softmax(q kᵀ / sqrt(hs))` with position `t`
//! seeing positions `0..=t`, then `@ v` (`F.scaled_dot_product_attention(q, k, v,
//! is_causal=True)`, makemore's `CausalSelfAttention` from `att = q @ k.transpose(-2, -1)` to
//! `y = att @ v`). One node instead of five (product, scale, mask, softmax, product): the
//! scores of every `(batch, head)` slice, one causal softmax over all of them (a call per row
//! cost six times the products at `T` = 16), then the products with `v`.

use crate::backward::{Ctx, Sinks};
use crate::kernels::matmul::{self, Start, Strided};
use crate::kernels::{axis, sized};
use crate::op::{NodeId, Op};
use crate::tape::{Scratch, Var};
use crate::{Float, Result, TensorError};

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
            return Err(TensorError::Rank { op: "attention", expected: 2, got: shape });
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
}
