//! Causal scaled dot-product attention, fused: `softmax(q kᵀ / sqrt(hs))` with position `t`
//! seeing positions `0..=t`, then `@ v` (`F.scaled_dot_product_attention(q, k, v,
//! is_causal=True)`, makemore's `CausalSelfAttention` from `att = q @ k.transpose(-2, -1)` to
//! `y = att @ v`). One node instead of five (product, scale, mask, softmax, product), and the
//! masked half of the scores is never exponentiated.

use crate::backward::{Ctx, Sinks};
use crate::kernels::matmul::{self, Start, Strided};
use crate::kernels::sized;
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
            for i in 0..slices {
                let (x, p) = (i * t * hs, &mut att[i * t * t..][..t * t]);
                let (qi, ki, vi) = (&qs[x..x + t * hs], &ks[x..x + t * hs], &vs[x..x + t * hs]);
                // Scores q kᵀ, then each row's softmax over its first r + 1 entries.
                let kt = Strided::transposed(ki, hs);
                matmul::gemm((t, hs, t), Strided::rows(qi, hs), kt, p, Start::Zero, &mut s.pack);
                for (r, row) in p.chunks_exact_mut(t).enumerate() {
                    let (seen, masked) = row.split_at_mut(r + 1);
                    let max = seen.iter().fold(T::neg_infinity(), |m, &x| m.max(x));
                    seen.iter_mut().for_each(|x| *x = (*x - max) * scale);
                    T::exp_slice(seen);
                    let inv = T::one() / seen.iter().fold(T::zero(), |a, &e| a + e);
                    seen.iter_mut().for_each(|e| *e *= inv);
                    masked.fill(T::zero());
                }
                let o = &mut out[x..x + t * hs];
                matmul::gemm(
                    (t, t, hs),
                    Strided::rows(p, t),
                    Strided::rows(vi, hs),
                    o,
                    Start::Zero,
                    &mut s.pack,
                );
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
                    let dot = dr.iter().zip(pr).fold(T::zero(), |a, (&d, &p)| a + d * p);
                    dr.iter_mut().zip(pr).for_each(|(d, &p)| *d = p * (*d - dot) * scale);
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
