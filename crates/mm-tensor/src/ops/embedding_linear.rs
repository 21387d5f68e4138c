//! `embedding_linear`: a linear layer over concatenated embeddings, `C[ids].flatten(-2) @ W + b`
//! (or, with the weight stored as `nn.Linear` stores it, `F.linear(C[ids].flatten(-2), W, b)`:
//! `embedding_linear_t`), fused. makemore's MLP reads the embeddings of the 16 previous tokens
//! (`ids` `[B, T, 16]`) and applies one `Linear(16 · 64, 64)` at every position; the first level
//! of lecture 5's WaveNet reads pairs of embeddings through `Linear(48, 128)`.
//!
//! Why fused: every row of the layer's input is made of table rows, so the product can be taken
//! with the table instead of with each gathered row. Cut the layer's matrix `M` `[S · E, H]`
//! into the `S` blocks `M_j` `[E, H]` that read slot `j`; then
//!
//! ```text
//! out[n] = b + Σ_j C[ids[n, j]] · M_j = b + Σ_j P_j[ids[n, j]],   P_j = C · M_j  [V, H]
//! ```
//!
//! which costs `S · V · E · H` multiply-adds (the table has `V` rows) where the gathered product
//! costs `N · S · E · H` (`N` rows). For makemore's MLP (`N` = 32 · 16 = 512, `V` = 28) that is
//! 18 times fewer, and no `[512, 1024]` input is written and read again; for the WaveNet
//! (`N` = 128, `V` = 27) 4.7 times. The backward pass runs the same way in reverse: the rows of
//! the gradient are first summed per table row and slot (`dP`), and the products are taken with
//! `dP`. The sums group terms differently from the gathered product, so the results agree with
//! it to rounding, not bit for bit.

use super::AsIds;
use crate::backward::{Ctx, Sinks};
use crate::kernels::matmul::{self, Start, Strided};
use crate::kernels::{Acc, add_rows, sized, zeros};
use crate::op::{NodeId, Op, Span};
use crate::tape::{Scratch, Var};
use crate::{Float, Result, Shape, TensorError};

/// How the weight of an `embedding_linear` is cut: `S` slots of `E` inputs, `H` outputs, the
/// weight stored `[S · E, H]` (`x @ W`) or, with `w_t`, `[H, S · E]` (`nn.Linear`'s layout).
#[derive(Clone, Copy)]
struct Dims {
    e: usize,
    s: usize,
    h: usize,
    w_t: bool,
}

impl Dims {
    /// `M_j` `[E, H]`: the rows of the layer's `[S · E, H]` matrix that read slot `j`.
    fn m<T: Copy>(self, w: &[T], j: usize) -> Strided<'_, T> {
        // An empty weight (no outputs) stays empty: the products of zero columns read nothing.
        if self.w_t {
            Strided::transposed(w.get(j * self.e..).unwrap_or(&[]), self.s * self.e)
        } else {
            Strided::rows(w.get(j * self.e * self.h..).unwrap_or(&[]), self.h)
        }
    }

    /// `M_jᵀ` `[H, E]`.
    fn m_t<T: Copy>(self, w: &[T], j: usize) -> Strided<'_, T> {
        if self.w_t {
            Strided::rows(w.get(j * self.e..).unwrap_or(&[]), self.s * self.e)
        } else {
            Strided::transposed(w.get(j * self.e * self.h..).unwrap_or(&[]), self.h)
        }
    }
}

impl<'g, T: Float> Var<'g, T> {
    /// `C[ids].flatten(-2) @ weight (+ bias)` for this table `C` `[V, E]`, `ids` `[.., S]` and
    /// `weight` `[S · E, H]` (as [`Var::linear`] takes it), bias `[H]` if any: `[.., H]`. The
    /// same as `self.embedding(ids).reshape([.., S · E]).linear(weight, bias)`, with `V` rows in
    /// the products instead of one per row of `ids` (see the module's docs). Or the error.
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let mut params = ParamStore::new();
    /// let c = params.add("C", ndarray::arr2(&[[1.0f64, 0.0], [0.0, 2.0]]).into_dyn())?;
    /// let w = params.add("W", ndarray::arr2(&[[1.0], [2.0], [3.0], [4.0]]).into_dyn())?;
    /// let mut tape = Tape::new();
    /// let g = tape.no_grad(&params);
    /// // ids [1, 0] read C[1] = [0, 2] and C[0] = [1, 0]: [0, 2, 1, 0] · [1, 2, 3, 4] = 7.
    /// let y = g.param(c).embedding_linear(&ndarray::arr2(&[[1u32, 0]]), g.param(w), None);
    /// assert_eq!(y.to_array().into_raw_vec_and_offset().0, vec![7.0]);
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn try_embedding_linear(
        self,
        ids: &(impl AsIds + ?Sized),
        weight: Self,
        bias: Option<Self>,
    ) -> Result<Self> {
        self.embedding_linear_op(ids, weight, bias, false)
    }

    /// `C[ids].flatten(-2) @ weight (+ bias)` (see [`Var::try_embedding_linear`]).
    pub fn embedding_linear(self, ids: &(impl AsIds + ?Sized), weight: Self, bias: Option<Self>) -> Self {
        self.g.sticky(self.try_embedding_linear(ids, weight, bias))
    }

    /// `F.linear(C[ids].flatten(-2), weight, bias)`: [`Var::try_embedding_linear`] with `weight`
    /// stored `[H, S · E]`, as `nn.Linear(S · E, H)` stores it. Or the error.
    pub fn try_embedding_linear_t(
        self,
        ids: &(impl AsIds + ?Sized),
        weight: Self,
        bias: Option<Self>,
    ) -> Result<Self> {
        self.embedding_linear_op(ids, weight, bias, true)
    }

    /// `F.linear(C[ids].flatten(-2), weight, bias)` (see [`Var::try_embedding_linear_t`]).
    pub fn embedding_linear_t(self, ids: &(impl AsIds + ?Sized), weight: Self, bias: Option<Self>) -> Self {
        self.g.sticky(self.try_embedding_linear_t(ids, weight, bias))
    }

    fn embedding_linear_op(
        self,
        ids: &(impl AsIds + ?Sized),
        weight: Self,
        bias: Option<Self>,
        w_t: bool,
    ) -> Result<Self> {
        let op = "embedding_linear";
        self.g.live(&[self.id, weight.id])?;
        if let Some(b) = bias {
            self.g.live(&[b.id])?;
        }
        let (table, sw) = (self.shape(), weight.shape());
        let &[v, e] = table.dims() else { return Err(TensorError::Rank { op, expected: 2, got: table }) };
        let &[rows_w, cols_w] = sw.dims() else { return Err(TensorError::Rank { op, expected: 2, got: sw }) };
        let ids = ids.as_ids();
        let Some((&s, lead)) = ids.shape().split_last() else {
            return Err(TensorError::RankBelow { op, min: 1, got: Shape::SCALAR });
        };
        let h = if w_t { rows_w } else { cols_w };
        let want = if w_t { [h, s * e] } else { [s * e, h] };
        if sw.dims() != want {
            return Err(TensorError::ShapeMismatch { op, expected: Shape::new(&want)?, got: sw });
        }
        if let Some(b) = bias
            && b.shape().dims() != [h]
        {
            return Err(TensorError::Bias { weight: sw, bias: b.shape(), outputs: h });
        }
        let out = Shape::new(lead)?.push(h).ok_or(TensorError::RankTooLarge { rank: ids.ndim() })?;
        let span = self.g.push_id_view(op, &ids, v)?;
        let (d, rows) = (Dims { e, s, h, w_t }, lead.iter().product::<usize>());
        let (t, w, b) = (self.id, weight.id, bias.map(|b| b.id));
        let inputs = [t, w, b.unwrap_or(t)];
        let node = Op::EmbeddingLinear { table: t, ids: span, w, b, w_t };
        Ok(self.g.push_with(node, out, false, &inputs[..2 + usize::from(b.is_some())], |vals, out, p, sc| {
            // P_j = C · M_j for every slot, `[S, V, H]`, kept in `aux`.
            let (table, wv) = (vals.get(t), vals.get(w));
            sized(p, s * v * h);
            for j in 0..s {
                let pj = &mut p[j * v * h..][..v * h];
                matmul::gemm((v, e, h), Strided::rows(table, e), d.m(wv, j), pj, Start::Zero, &mut sc.pack);
            }
            // out[n] = b + Σ_j P_j[ids[n, j]].
            let ids = vals.ids(span);
            sized(out, rows * h);
            for n in 0..rows {
                let row = &mut out[n * h..][..h];
                match b {
                    Some(b) => row.copy_from_slice(vals.get(b)),
                    None => row.fill(T::zero()),
                }
                for (j, &id) in ids[n * s..][..s].iter().enumerate() {
                    let prow = &p[(j * v + id as usize) * h..][..h];
                    row.iter_mut().zip(prow).for_each(|(o, &x)| *o += x);
                }
            }
        }))
    }
}

// Gradient rules.
impl<T: Float> Ctx<'_, T> {
    /// `embedding_linear`: `dP_j[i] = Σ_{n: ids[n, j] = i} g[n]` (the gradient's rows summed per
    /// table row and slot); then `dC (+)= Σ_j dP_j · M_jᵀ`, `dM_j (+)= Cᵀ · dP_j` (as `dM_jᵀ =
    /// dP_jᵀ · C` into the columns of a weight stored `[H, S · E]`), and `db (+)=` the column
    /// sums of `g`.
    pub(crate) fn embedding_linear_grad(
        &self,
        (table, ids, w, b, w_t): (NodeId, Span, NodeId, Option<NodeId>, bool),
        g: &[T],
        sinks: &mut Sinks<'_, T>,
        s: &mut Scratch<T>,
    ) {
        let (&[v, e], &[rows_w, cols_w]) = (self.shape(table).dims(), self.shape(w).dims()) else {
            unreachable!("checked when recorded")
        };
        let (h, in_w) = if w_t { (rows_w, cols_w) } else { (cols_w, rows_w) };
        let d = Dims { e, s: in_w.checked_div(e).unwrap_or(0), h, w_t };
        let (tv, wv, ids) = (self.x(table), self.x(w), self.values.ids(ids));
        sized(&mut s.tmp, d.s * v * h + h * e);
        let (dp, dwj) = s.tmp.split_at_mut(d.s * v * h);
        dp.fill(T::zero());
        let rows = ids.len().checked_div(d.s).unwrap_or(0);
        for n in 0..rows {
            let grow = &g[n * h..][..h];
            for (j, &id) in ids[n * d.s..][..d.s].iter().enumerate() {
                let row = &mut dp[(j * v + id as usize) * h..][..h];
                row.iter_mut().zip(grow).for_each(|(r, &g)| *r += g);
            }
        }
        let dp_j = |j: usize| &dp[j * v * h..][..v * h];
        if let Some((dst, acc)) = sinks.get(table) {
            if acc == Acc::Write {
                zeros(dst, v * e);
            }
            for j in 0..d.s {
                let dpj = Strided::rows(dp_j(j), h);
                matmul::gemm((v, h, e), dpj, d.m_t(wv, j), dst, Start::C, &mut s.pack);
            }
        }
        if let Some((dst, acc)) = sinks.get(w) {
            sized(dst, h * d.s * e);
            for j in 0..d.s {
                if w_t {
                    let (dpt, c) = (Strided::transposed(dp_j(j), h), Strided::rows(tv, e));
                    matmul::gemm((h, v, e), dpt, c, dwj, Start::Zero, &mut s.pack);
                    for o in 0..h {
                        let (dst, src) = (&mut dst[o * d.s * e + j * e..][..e], &dwj[o * e..][..e]);
                        match acc {
                            Acc::Write => dst.copy_from_slice(src),
                            Acc::Add => dst.iter_mut().zip(src).for_each(|(d, &x)| *d += x),
                        }
                    }
                } else {
                    let (ct, dpj) = (Strided::transposed(tv, e), Strided::rows(dp_j(j), h));
                    let dst = &mut dst[j * e * h..][..e * h];
                    matmul::gemm((e, v, h), ct, dpj, dst, acc.into(), &mut s.pack);
                }
            }
        }
        if let Some((dst, acc)) = b.and_then(|b| sinks.get(b)) {
            if acc == Acc::Write {
                zeros(dst, h);
            }
            add_rows(g, dst);
        }
    }
}
