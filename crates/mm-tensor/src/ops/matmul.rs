//! Products: `matmul` as `torch.matmul` (2-D, or batched over broadcast leading axes) and the
//! fused `linear` layer (`x @ W + b` on inputs of any rank ≥ 2, with the weight stored `[in,
//! out]` or, as `nn.Linear` stores it, `[out, in]`), with their gradient rules. Every product
//! runs on the engine's one gemm kernel (`kernels::matmul`), with no transpose copies: the
//! backward products read their operands transposed in place.

use crate::backward::{Ctx, Sinks};
use crate::kernels::matmul::{self, Start, Strided};
use crate::kernels::{Acc, add_rows, sized, zeros};
use crate::op::{NodeId, Op};
use crate::tape::{Scratch, Var};
use crate::{Float, MAX_RANK, Result, Shape, TensorError};

/// How a product `[.., m, k] @ [.., k, n]` runs: `batches` products of `[m, k] · [k, n]`, the
/// operands' batch strides 0 along the axes they are broadcast over. A 2-D right operand folds
/// the left operand's leading axes into `m` (one product).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) m: usize,
    pub(crate) k: usize,
    pub(crate) n: usize,
    /// The output's shape.
    pub(crate) out: Shape,
    /// The output's leading (batch) dimensions, `rank` of them.
    lead: [usize; MAX_RANK],
    rank: usize,
    /// Each operand's element offset per step along each batch axis (0 where broadcast).
    strides: [[usize; MAX_RANK]; 2],
    /// How many distinct batches each operand has.
    distinct: [usize; 2],
}

impl Plan {
    /// The plan of `lhs @ rhs`, or the error naming both shapes.
    pub(crate) fn new(lhs: Shape, rhs: Shape) -> Result<Plan> {
        let err = TensorError::MatMul { op: "matmul", lhs, rhs };
        let (ra, rb) = (lhs.rank(), rhs.rank());
        if ra < 2 || rb < 2 {
            return Err(err);
        }
        let (m, k) = (lhs.dim(ra - 2), lhs.dim(ra - 1));
        let (k2, n) = (rhs.dim(rb - 2), rhs.dim(rb - 1));
        if k != k2 {
            return Err(err);
        }
        let one = |out: Shape, m| Plan {
            m,
            k,
            n,
            out,
            lead: [1; MAX_RANK],
            rank: 0,
            strides: [[0; MAX_RANK]; 2],
            distinct: [1, 1],
        };
        if rb == 2 {
            // `[.., m, k] @ [k, n]`: the leading axes are more rows.
            let rows = lhs.dims()[..ra - 1].iter().product();
            return Ok(one(lhs.with_dim(ra - 1, n), rows));
        }
        let rank = ra.max(rb) - 2;
        let pad = |s: Shape| {
            let mut d = [1; MAX_RANK];
            d[rank - (s.rank() - 2)..rank].copy_from_slice(&s.dims()[..s.rank() - 2]);
            d
        };
        let (da, db) = (pad(lhs), pad(rhs));
        let mut lead = [1; MAX_RANK];
        for ax in 0..rank {
            lead[ax] = match (da[ax], db[ax]) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => return Err(err),
            };
        }
        let strides_of = |d: [usize; MAX_RANK], size: usize| {
            let mut s = [0; MAX_RANK];
            let mut step = size;
            for ax in (0..rank).rev() {
                s[ax] = if d[ax] == 1 { 0 } else { step };
                step *= d[ax];
            }
            s
        };
        let mut dims = [0; MAX_RANK];
        dims[..rank].copy_from_slice(&lead[..rank]);
        dims[rank] = m;
        dims[rank + 1] = n;
        Ok(Plan {
            m,
            k,
            n,
            out: Shape::new(&dims[..rank + 2])?,
            lead,
            rank,
            strides: [strides_of(da, m * k), strides_of(db, k * n)],
            distinct: [lhs.numel() / (m * k).max(1), rhs.numel() / (k * n).max(1)],
        })
    }

    /// The number of products.
    pub(crate) fn batches(&self) -> usize {
        self.lead[..self.rank].iter().product()
    }

    /// Calls `f(c, a, b)` for each product with the element offsets of its output and operands.
    pub(crate) fn each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (mut idx, mut off) = ([0usize; MAX_RANK], [0usize; 2]);
        for c in 0..self.batches() {
            f(c * self.m * self.n, off[0], off[1]);
            for ax in (0..self.rank).rev() {
                idx[ax] += 1;
                off[0] += self.strides[0][ax];
                off[1] += self.strides[1][ax];
                if idx[ax] < self.lead[ax] {
                    break;
                }
                off[0] -= self.strides[0][ax] * self.lead[ax];
                off[1] -= self.strides[1][ax] * self.lead[ax];
                idx[ax] = 0;
            }
        }
    }
}

impl<'g, T: Float> Var<'g, T> {
    /// The matrix product `self @ rhs`, or the error: `[m, k] @ [k, n]`, and as `torch.matmul`
    /// for higher ranks, `[.., m, k] @ [.., k, n]` batched over the leading axes, which
    /// broadcast (`[B, T, C] @ [C, N]`, `[B, H, T, hs] @ [B, H, hs, T]`).
    pub fn try_matmul(self, rhs: Self) -> Result<Self> {
        self.g.live(&[self.id, rhs.id])?;
        let plan = Plan::new(self.shape(), rhs.shape())?;
        let (a, b) = (self.id, rhs.id);
        Ok(self.g.push_with(Op::MatMul(a, b), plan.out, false, &[a, b], |v, out, _, s| {
            let (av, bv) = (v.get(a), v.get(b));
            let (m, k, n) = (plan.m, plan.k, plan.n);
            sized(out, plan.out.numel());
            plan.each(|c, ia, ib| {
                matmul::gemm(
                    (m, k, n),
                    Strided::rows(&av[ia..ia + m * k], k),
                    Strided::rows(&bv[ib..ib + k * n], n),
                    &mut out[c..c + m * n],
                    Start::Zero,
                    &mut s.pack,
                );
            });
        }))
    }

    /// The matrix product `self @ rhs` (see [`Var::try_matmul`]).
    pub fn matmul(self, rhs: Self) -> Self {
        self.g.sticky(self.try_matmul(rhs))
    }

    /// `self @ w + b` for `self` `[.., k]` (any rank ≥ 2), `w` `[k, n]` and a bias `b` `[n]`
    /// added to every row: a linear layer, `torch.addmm(b, x, w)`. The same value and gradients
    /// as `self.matmul(w) + b`, in one pass (the bias is the product's starting value), or the
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
        self.linear_op(w, Some(b), false)
    }

    /// `self @ w + b`: a linear layer (see [`Var::try_linear`]).
    pub fn linear(self, w: Self, b: Self) -> Self {
        self.g.sticky(self.try_linear(w, b))
    }

    /// `F.linear(self, weight, bias)`: `self @ weightᵀ (+ bias)` with `weight` stored `[out,
    /// in]` as `nn.Linear` stores it (so checkpoints keep PyTorch's layout), `self` `[.., in]`
    /// of any rank ≥ 2, and an optional bias `[out]`. Or the error.
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let mut params = ParamStore::new();
    /// let x = params.add("x", ndarray::arr2(&[[1.0f64, 2.0]]).into_dyn())?;
    /// let w = params.add("w", ndarray::arr2(&[[1.0, 0.0], [0.0, 1.0], [2.0, 3.0]]).into_dyn())?;
    /// let mut tape = Tape::new();
    /// let g = tape.no_grad(&params);
    /// let y = g.param(x).linear_t(g.param(w), None);
    /// assert_eq!(y.to_array().into_raw_vec_and_offset().0, vec![1.0, 2.0, 8.0]);
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn try_linear_t(self, weight: Self, bias: Option<Self>) -> Result<Self> {
        self.linear_op(weight, bias, true)
    }

    /// `F.linear(self, weight, bias)` with `weight` `[out, in]` (see [`Var::try_linear_t`]).
    pub fn linear_t(self, weight: Self, bias: Option<Self>) -> Self {
        self.g.sticky(self.try_linear_t(weight, bias))
    }

    fn linear_op(self, w: Self, b: Option<Self>, w_t: bool) -> Result<Self> {
        self.g.live(&[self.id, w.id])?;
        if let Some(b) = b {
            self.g.live(&[b.id])?;
        }
        let (sx, sw) = (self.shape(), w.shape());
        let op = if w_t { "linear_t" } else { "linear" };
        let err = TensorError::MatMul { op, lhs: sx, rhs: sw };
        let (&[kw, nw], Some(&k)) = (sw.dims(), sx.dims().last()) else { return Err(err) };
        let (k2, n) = if w_t { (nw, kw) } else { (kw, nw) };
        if sx.rank() < 2 || k != k2 {
            return Err(err);
        }
        let m = sx.dims()[..sx.rank() - 1].iter().product();
        let out = sx.with_dim(sx.rank() - 1, n);
        if let Some(b) = b
            && b.shape().dims() != [n]
        {
            return Err(TensorError::Bias { weight: sw, bias: b.shape(), outputs: n });
        }
        let (x, wid, bid) = (self.id, w.id, b.map(|b| b.id));
        let inputs = [x, wid, bid.unwrap_or(x)];
        let inputs = &inputs[..2 + usize::from(bid.is_some())];
        Ok(self.g.push_with(Op::Linear { x, w: wid, b: bid, w_t }, out, false, inputs, |v, out, _, s| {
            sized(out, m * n);
            let wv = v.get(wid);
            let wm = if w_t { Strided::transposed(wv, k) } else { Strided::rows(wv, n) };
            let start = bid.map_or(Start::Zero, |b| Start::Bias(v.get(b)));
            matmul::gemm((m, k, n), Strided::rows(v.get(x), k), wm, out, start, &mut s.pack);
        }))
    }
}

// Gradient rules.
impl<T: Float> Ctx<'_, T> {
    /// `a @ b`: per product `dA (+)= G · Bᵀ`, `dB (+)= Aᵀ · G`. An operand broadcast over a
    /// batch axis gets the sum over that axis.
    pub(crate) fn matmul_grad(
        &self,
        (a, b): (NodeId, NodeId),
        g: &[T],
        sinks: &mut Sinks<'_, T>,
        s: &mut Scratch<T>,
    ) {
        let plan = Plan::new(self.shape(a), self.shape(b)).expect("checked when recorded");
        let (m, k, n) = (plan.m, plan.k, plan.n);
        let (av, bv) = (self.x(a), self.x(b));
        let batches = plan.batches();
        if let Some((dst, acc)) = sinks.get(a) {
            let once = plan.distinct[0] == batches;
            let acc = start_all(dst, acc, once, self.shape(a).numel());
            plan.each(|c, ia, ib| {
                matmul::gemm(
                    (m, n, k),
                    Strided::rows(&g[c..c + m * n], n),
                    Strided::transposed(&bv[ib..ib + k * n], n),
                    &mut dst[ia..ia + m * k],
                    acc.into(),
                    &mut s.pack,
                );
            });
        }
        if let Some((dst, acc)) = sinks.get(b) {
            let once = plan.distinct[1] == batches;
            let acc = start_all(dst, acc, once, self.shape(b).numel());
            plan.each(|c, ia, ib| {
                matmul::gemm(
                    (k, m, n),
                    Strided::transposed(&av[ia..ia + m * k], k),
                    Strided::rows(&g[c..c + m * n], n),
                    &mut dst[ib..ib + k * n],
                    acc.into(),
                    &mut s.pack,
                );
            });
        }
    }

    /// `linear`: `dX (+)= G · Wᵀ`, `dW (+)= Xᵀ · G` (or `Gᵀ · X` for a weight stored `[out,
    /// in]`), `db (+)=` the column sums of `G`.
    pub(crate) fn linear_grad(
        &self,
        (x, w, b, w_t): (NodeId, NodeId, Option<NodeId>, bool),
        g: &[T],
        sinks: &mut Sinks<'_, T>,
        s: &mut Scratch<T>,
    ) {
        let (sx, sw) = (self.shape(x), self.shape(w));
        let k = *sx.dims().last().expect("linear inputs have rank >= 2");
        let m: usize = sx.dims()[..sx.rank() - 1].iter().product();
        let n = if w_t { sw.dim(0) } else { sw.dim(1) };
        let (xv, wv) = (self.x(x), self.x(w));
        if let Some((dst, acc)) = sinks.get(x) {
            sized(dst, m * k);
            let wm = if w_t { Strided::rows(wv, k) } else { Strided::transposed(wv, n) };
            matmul::gemm((m, n, k), Strided::rows(g, n), wm, dst, acc.into(), &mut s.pack);
        }
        if let Some((dst, acc)) = sinks.get(w) {
            sized(dst, k * n);
            if w_t {
                let (gt, xr) = (Strided::transposed(g, n), Strided::rows(xv, k));
                matmul::gemm((n, m, k), gt, xr, dst, acc.into(), &mut s.pack);
            } else {
                let (xt, gr) = (Strided::transposed(xv, k), Strided::rows(g, n));
                matmul::gemm((k, m, n), xt, gr, dst, acc.into(), &mut s.pack);
            }
        }
        if let Some((dst, acc)) = b.and_then(|b| sinks.get(b)) {
            if acc == Acc::Write {
                zeros(dst, n);
            }
            add_rows(g, dst);
        }
    }
}

/// How every product of a batched backward starts: from `acc` when each slice of `dst` is
/// visited `once`; otherwise from a zeroed (on `Write`) `dst`, every product adding.
fn start_all<T: Float>(dst: &mut Vec<T>, acc: Acc, once: bool, numel: usize) -> Acc {
    if once {
        sized(dst, numel);
        acc
    } else {
        if acc == Acc::Write {
            zeros(dst, numel);
        }
        Acc::Add
    }
}
