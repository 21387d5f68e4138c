//! Recurrent cells run over a whole sequence as one op: makemore's `RNNCell` ([`Var::rnn_scan`])
//! and `GRUCell` ([`Var::gru_scan`]) applied position by position, as makemore's `RNN.forward`
//! loops over `t`, with their gradient rules (backpropagation through time).
//!
//! Why fused: written out, a makemore RNN records about 70 small ops per step (a `select`, a
//! `concat`, a `linear` and a `tanh` per position) and a GRU about 250, and at makemore's sizes
//! (32 sequences of 16 positions, 64 channels) recording and differentiating them one by one
//! costs more than their products. Here the sequential part is one product per gate and
//! position, and everything that does not depend on the previous position (the weight
//! gradients, the input gradients, the biases) is one large product over all `B·T` positions
//! after the loop, as cuDNN's RNNs do it. The written-out cells stay the definition: tests check
//! that both give the same values and gradients.
//!
//! The cells are makemore's, which is not quite `torch.nn.RNN`/`nn.GRU`: one `Linear` over
//! `cat([x_t, h_{t-1}])` (weight `[H, E + H]`, one bias) per gate, and the GRU's reset gate
//! applied to `h_{t-1}` before its candidate's product.

use crate::backward::{Ctx, Sinks};
use crate::kernels::matmul::{self, Start, Strided};
use crate::kernels::{Acc, sized, store, zeros};
use crate::op::{NodeId, Op};
use crate::tape::Var;
use crate::{Float, Result, Shape, TensorError};

/// The sizes of a scan: `b` sequences of `t` positions, `e` input and `h` hidden channels.
#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    e: usize,
    h: usize,
}

impl Dims {
    /// Checks `x` `[B, T, E]`, `h0` `[B, H]` and each gate's weight `[H, E + H]` and bias `[H]`.
    fn check(op: &'static str, x: Shape, h0: Shape, gates: &[(Shape, Shape)]) -> Result<Dims> {
        let &[b, t, e] = x.dims() else { return Err(TensorError::Rank { op, expected: 3, got: x }) };
        let &[_, h] = h0.dims() else { return Err(TensorError::Rank { op, expected: 2, got: h0 }) };
        let want = |dims: &[usize], got: Shape| {
            if got.dims() == dims {
                Ok(())
            } else {
                Err(TensorError::ShapeMismatch { op, expected: Shape::new(dims)?, got })
            }
        };
        want(&[b, h], h0)?;
        for &(w, bias) in gates {
            want(&[h, e + h], w)?;
            want(&[h], bias)?;
        }
        Ok(Dims { b, t, e, h })
    }

    /// `[B, T, H]`: the output, and each gate's pre-activation gradient.
    fn bth(self) -> usize {
        self.b * self.t * self.h
    }

    /// `[B, T, E + H]`: the inputs of the gates' products, `cat([x_t, h_{t-1}])` at each position.
    fn bt_eh(self) -> usize {
        self.b * self.t * (self.e + self.h)
    }
}

/// `[x_t, h_{t-1}]` at position `t` of `xh` `[B, T, E + H]`: a `[B, E + H]` operand whose rows are
/// `T · (E + H)` apart.
fn at_t<T: Copy>(xh: &[T], d: Dims, t: usize) -> Strided<'_, T> {
    let eh = d.e + d.h;
    Strided { data: &xh[t * eh..], rs: d.t * eh, cs: 1 }
}

/// Position `t` of every sequence of a `[B, T, width]` buffer: `[B, width]`, rows `T · width`
/// apart.
fn rows_at<T: Copy>(buf: &[T], d: Dims, width: usize, t: usize) -> Strided<'_, T> {
    Strided { data: &buf[t * width..], rs: d.t * width, cs: 1 }
}

/// Fills the `x_t` half of `xh` `[B, T, E + H]` from `x` `[B, T, E]`, and the `h_{-1}` half of
/// position 0 from `h0`.
fn start_xh<T: Float>(xh: &mut [T], x: &[T], h0: &[T], d: Dims) {
    let eh = d.e + d.h;
    for bt in 0..d.b * d.t {
        let dst = &mut xh[bt * eh..][..eh];
        dst[..d.e].copy_from_slice(&x[bt * d.e..][..d.e]);
        if bt % d.t == 0 {
            dst[d.e..].copy_from_slice(&h0[bt / d.t * d.h..][..d.h]);
        }
    }
}

/// `Wᵀ` of a gate's weight `[H, E + H]` into columns `col..col + H` of `wt` `[E + H, ld]`: the
/// products of the loop read it in place, where reading `W` transposed would repack it at every
/// position. The GRU puts its `r` and `z` gates side by side (`ld = 2H`): one product for both.
fn transpose_into<T: Float>(w: &[T], d: Dims, wt: &mut [T], (ld, col): (usize, usize)) {
    let eh = d.e + d.h;
    for (j, row) in w.chunks_exact(eh).enumerate() {
        for (p, &v) in row.iter().enumerate() {
            wt[p * ld + col + j] = v;
        }
    }
}

impl<'g, T: Float> Var<'g, T> {
    /// makemore's `RNNCell` over every position of this input `x` `[B, T, E]`:
    /// `h_t = tanh(cat([x_t, h_{t-1}]) @ weightᵀ + bias)` from `h_{-1} = h0` `[B, H]`, with
    /// `weight` `[H, E + H]` and `bias` `[H]` as `nn.Linear(E + H, H)` stores them. Returns every
    /// hidden state, `[B, T, H]` (makemore's `torch.stack(hiddens, 1)`). Or the error.
    pub fn try_rnn_scan(self, h0: Self, weight: Self, bias: Self) -> Result<Self> {
        let h0_shape = h0.shape();
        let (x, h0, w, b) = (self.id, h0.id, weight.id, bias.id);
        self.g.live(&[x, h0, w, b])?;
        let d = Dims::check("rnn_scan", self.shape(), h0_shape, &[(weight.shape(), bias.shape())])?;
        let out = Shape::new(&[d.b, d.t, d.h])?;
        let op = Op::RnnScan { x, h0, w, b };
        Ok(self.g.push_with(op, out, false, &[x, h0, w, b], |v, out, xh, s| {
            sized(out, d.bth());
            sized(xh, d.bt_eh());
            if d.bth() == 0 {
                return; // no sequences, positions or channels: nothing to compute
            }
            start_xh(xh, v.get(x), v.get(h0), d);
            let eh = d.e + d.h;
            sized(&mut s.tmp, d.b * d.h + eh * d.h);
            let (pre, wt) = s.tmp.split_at_mut(d.b * d.h);
            transpose_into(v.get(w), d, wt, (d.h, 0));
            let (wt, bias) = (Strided::rows(&*wt, d.h), v.get(b));
            for t in 0..d.t {
                // The pre-activation of position t, then its tanh into the output and into the
                // next position's `h_{t-1}`.
                matmul::gemm((d.b, eh, d.h), at_t(xh, d, t), wt, pre, Start::Bias(bias), &mut s.pack);
                for (bi, pre) in pre.chunks_exact(d.h).enumerate() {
                    let row = &mut out[(bi * d.t + t) * d.h..][..d.h];
                    T::tanh_slice(pre, row);
                    if t + 1 < d.t {
                        xh[(bi * d.t + t + 1) * eh + d.e..][..d.h].copy_from_slice(row);
                    }
                }
            }
        }))
    }

    /// makemore's `RNNCell` over every position (see [`Var::try_rnn_scan`]).
    pub fn rnn_scan(self, h0: Self, weight: Self, bias: Self) -> Self {
        self.g.sticky(self.try_rnn_scan(h0, weight, bias))
    }

    /// makemore's `GRUCell` over every position of this input `x` `[B, T, E]`, from
    /// `h_{-1} = h0` `[B, H]`, with `xh = cat([x_t, h_{t-1}])`:
    ///
    /// ```text
    /// r    = sigmoid(xh @ W_rᵀ + b_r)                  reset gate
    /// hbar = tanh(cat([x_t, r * h_{t-1}]) @ W_hbarᵀ + b_hbar)
    /// z    = sigmoid(xh @ W_zᵀ + b_z)                  update gate
    /// h_t  = (1 - z) * h_{t-1} + z * hbar
    /// ```
    ///
    /// `gates` are `(weight, bias)` of `xh_to_z`, `xh_to_r` and `xh_to_hbar` (makemore's
    /// order), each `[H, E + H]` and `[H]`. Returns every hidden state, `[B, T, H]`. Or the error.
    pub fn try_gru_scan(self, h0: Self, gates: [(Self, Self); 3]) -> Result<Self> {
        let (x, w, b) = (self.id, gates.map(|(w, _)| w.id), gates.map(|(_, b)| b.id));
        self.g.live(&[x, h0.id, w[0], w[1], w[2], b[0], b[1], b[2]])?;
        let shapes = gates.map(|(w, b)| (w.shape(), b.shape()));
        let d = Dims::check("gru_scan", self.shape(), h0.shape(), &shapes)?;
        let h0 = h0.id;
        let out = Shape::new(&[d.b, d.t, d.h])?;
        let op = Op::GruScan { x, h0, w, b };
        let inputs = [x, h0, w[0], b[0], w[1], b[1], w[2], b[2]];
        Ok(self.g.push_with(op, out, false, &inputs, |v, out, aux, s| {
            sized(out, d.bth());
            sized(aux, 2 * d.bt_eh() + 3 * d.bth());
            if d.bth() == 0 {
                return; // no sequences, positions or channels: nothing to compute
            }
            let (xh, rest) = aux.split_at_mut(d.bt_eh());
            let (xhr, rest) = rest.split_at_mut(d.bt_eh());
            let (r_all, rest) = rest.split_at_mut(d.bth());
            let (z_all, hbar_all) = rest.split_at_mut(d.bth());
            start_xh(xh, v.get(x), v.get(h0), d);
            start_xh(xhr, v.get(x), v.get(h0), d);
            let (eh, h2) = (d.e + d.h, 2 * d.h);
            // Scratch: the gates' pre-activations (r and z side by side, then hbar's), their
            // transposed weights (`[E + H, 2H]` for r and z, `[E + H, H]` for hbar) and r and
            // z's biases side by side.
            sized(&mut s.tmp, d.b * (h2 + d.h) + eh * (h2 + d.h) + h2);
            let (arz, rest) = s.tmp.split_at_mut(d.b * h2);
            let (ah, rest) = rest.split_at_mut(d.b * d.h);
            let (wrz, rest) = rest.split_at_mut(eh * h2);
            let (wh, brz) = rest.split_at_mut(eh * d.h);
            transpose_into(v.get(w[1]), d, wrz, (h2, 0));
            transpose_into(v.get(w[0]), d, wrz, (h2, d.h));
            transpose_into(v.get(w[2]), d, wh, (d.h, 0));
            brz[..d.h].copy_from_slice(v.get(b[1]));
            brz[d.h..].copy_from_slice(v.get(b[0]));
            let (wrz, wh, bh) = (Strided::rows(&*wrz, h2), Strided::rows(&*wh, d.h), v.get(b[2]));
            for t in 0..d.t {
                matmul::gemm((d.b, eh, h2), at_t(xh, d, t), wrz, arz, Start::Bias(brz), &mut s.pack);
                // r, z, and the reset state `r * h_{t-1}` into the candidate's input.
                for bi in 0..d.b {
                    let row = (bi * d.t + t) * d.h;
                    let r = &mut r_all[row..][..d.h];
                    T::sigmoid_slice(&arz[bi * h2..][..d.h], r);
                    T::sigmoid_slice(&arz[bi * h2 + d.h..][..d.h], &mut z_all[row..][..d.h]);
                    let hprev = &xh[(bi * d.t + t) * eh + d.e..][..d.h];
                    let hr = &mut xhr[(bi * d.t + t) * eh + d.e..][..d.h];
                    for i in 0..d.h {
                        hr[i] = r[i] * hprev[i];
                    }
                }
                matmul::gemm((d.b, eh, d.h), at_t(xhr, d, t), wh, ah, Start::Bias(bh), &mut s.pack);
                for bi in 0..d.b {
                    let row = (bi * d.t + t) * d.h;
                    let hbar = &mut hbar_all[row..][..d.h];
                    T::tanh_slice(&ah[bi * d.h..][..d.h], hbar);
                    let at = (bi * d.t + t) * eh + d.e;
                    let (z, hprev, h) = (&z_all[row..][..d.h], &xh[at..][..d.h], &mut out[row..][..d.h]);
                    for i in 0..d.h {
                        h[i] = (-z[i] + T::one()) * hprev[i] + z[i] * hbar[i];
                    }
                    if t + 1 < d.t {
                        let next = at + eh;
                        xh[next..][..d.h].copy_from_slice(&out[row..][..d.h]);
                    }
                }
            }
        }))
    }

    /// makemore's `GRUCell` over every position (see [`Var::try_gru_scan`]).
    pub fn gru_scan(self, h0: Self, gates: [(Self, Self); 3]) -> Self {
        self.g.sticky(self.try_gru_scan(h0, gates))
    }
}

// Gradient rules.
impl<T: Float> Ctx<'_, T> {
    /// The sizes of a scan, from its input's and weight's shapes.
    fn scan_dims(&self, x: NodeId, w: NodeId) -> Dims {
        let (&[b, t, e], h) = (self.shape(x).dims(), self.shape(w).dim(0)) else {
            unreachable!("checked when recorded")
        };
        Dims { b, t, e, h }
    }

    /// The gradients of a scan with no output elements (no sequences, positions or hidden
    /// channels): zeros for every input.
    fn empty_scan_grads(&self, inputs: &[NodeId], sinks: &mut Sinks<'_, T>) {
        for &id in inputs {
            if let Some((dst, Acc::Write)) = sinks.get(id) {
                zeros(dst, self.shape(id).numel());
            }
        }
    }

    /// After the loop over positions, a gate's weight and bias gradients, given its
    /// pre-activation gradient `da` (position `p`'s row at `da[p * ld..][..H]`) and its
    /// product's input `xh` `[B, T, E + H]`: `dW (+)= daᵀ · xh` and `db (+)=` the column sums of
    /// `da`.
    fn gate_weight_grads(
        &self,
        (w, b): (NodeId, NodeId),
        (da, ld, xh): (&[T], usize, &[T]),
        d: Dims,
        sinks: &mut Sinks<'_, T>,
        pack: &mut Vec<T>,
    ) {
        let (eh, bt) = (d.e + d.h, d.b * d.t);
        if let Some((dst, acc)) = sinks.get(w) {
            sized(dst, d.h * eh);
            let da_t = Strided::transposed(da, ld);
            matmul::gemm((d.h, bt, eh), da_t, Strided::rows(xh, eh), dst, acc.into(), pack);
        }
        if let Some((dst, acc)) = sinks.get(b) {
            if acc == Acc::Write {
                zeros(dst, d.h);
            }
            for p in 0..bt {
                dst.iter_mut().zip(&da[p * ld..][..d.h]).for_each(|(db, &x)| *db += x);
            }
        }
    }

    /// `rnn_scan`, backwards through time: at each position from the last, the hidden state's
    /// gradient (from the output and from the next position) through the tanh,
    /// `da_t = (g_t + dh_t) * (1 - h_t²)`, and on to the previous state, `dh_{t-1} = da_t ·
    /// W[:, E:]`; then the products over all positions: `dW (+)= daᵀ · xh`, `db`, and
    /// `dx (+)= da · W[:, :E]`.
    pub(crate) fn rnn_scan_grad(
        &self,
        (x, h0, w, b): (NodeId, NodeId, NodeId, NodeId),
        g: &[T],
        sinks: &mut Sinks<'_, T>,
        s: &mut crate::tape::Scratch<T>,
    ) {
        let d = self.scan_dims(x, w);
        if d.bth() == 0 {
            return self.empty_scan_grads(&[h0, w, b, x], sinks);
        }
        let (eh, bh_n) = (d.e + d.h, d.b * d.h);
        let wh = Strided::rows(&self.x(w)[d.e..], eh);
        sized(&mut s.tmp, d.bth() + 2 * bh_n);
        let (da, rest) = s.tmp.split_at_mut(d.bth());
        let (dh, dh_prev) = rest.split_at_mut(bh_n);
        dh.fill(T::zero());
        for t in (0..d.t).rev() {
            for (bi, dh) in dh.chunks_exact(d.h).enumerate() {
                let row = (bi * d.t + t) * d.h;
                let (da, g, y) = (&mut da[row..][..d.h], &g[row..][..d.h], &self.y[row..][..d.h]);
                for (((da, &g), &dh), &y) in da.iter_mut().zip(g).zip(dh).zip(y) {
                    *da = (g + dh) * (T::one() - y * y);
                }
            }
            matmul::gemm((d.b, d.h, d.h), rows_at(da, d, d.h, t), wh, dh_prev, Start::Zero, &mut s.pack);
            dh.copy_from_slice(dh_prev);
        }
        if let Some((dst, acc)) = sinks.get(h0) {
            store(dst, acc, dh.iter().copied());
        }
        self.gate_weight_grads((w, b), (da, d.h, self.aux), d, sinks, &mut s.pack);
        if let Some((dst, acc)) = sinks.get(x) {
            sized(dst, d.b * d.t * d.e);
            let wx = Strided::rows(self.x(w), eh);
            matmul::gemm((d.b * d.t, d.h, d.e), Strided::rows(da, d.h), wx, dst, acc.into(), &mut s.pack);
        }
    }

    /// `gru_scan`, backwards through time. At each position from the last, with `dh` the hidden
    /// state's gradient (from the output and from the next position):
    /// `dz = dh * (hbar - h_{t-1})`, `dhbar = dh * z`, and `h_{t-1}` gets `dh * (1 - z)`
    /// directly; through the candidate's tanh and product, `d(r * h_{t-1}) = da_hbar ·
    /// W_hbar[:, E:]`, which gives `dr` and another term of `h_{t-1}`'s; and the r and z gates'
    /// product (one, side by side) gives the last. Then the products over all positions.
    pub(crate) fn gru_scan_grad(
        &self,
        (x, h0, w, b): (NodeId, NodeId, [NodeId; 3], [NodeId; 3]),
        g: &[T],
        sinks: &mut Sinks<'_, T>,
        s: &mut crate::tape::Scratch<T>,
    ) {
        let d = self.scan_dims(x, w[0]);
        if d.bth() == 0 {
            return self.empty_scan_grads(&[h0, w[0], w[1], w[2], b[0], b[1], b[2], x], sinks);
        }
        let (eh, h2, bh_n, bth) = (d.e + d.h, 2 * d.h, d.b * d.h, d.bth());
        let aux = self.aux;
        let (xh, rest) = aux.split_at(d.bt_eh());
        let (xhr, rest) = rest.split_at(d.bt_eh());
        let (r_all, rest) = rest.split_at(bth);
        let (z_all, hbar_all) = rest.split_at(bth);
        let (wz, wr, wh) = (self.x(w[0]), self.x(w[1]), self.x(w[2]));
        let wh_h = Strided::rows(&wh[d.e..], eh);
        // Scratch: the pre-activation gradients (r and z side by side `[B, T, 2H]`, hbar's `[B,
        // T, H]`), three `[B, H]` states, and r and z's weights stacked, `[2H, E + H]`.
        sized(&mut s.tmp, 3 * bth + 3 * bh_n + h2 * eh);
        let (darz, rest) = s.tmp.split_at_mut(2 * bth);
        let (dah, rest) = rest.split_at_mut(bth);
        let (dh, rest) = rest.split_at_mut(bh_n);
        let (dh_prev, rest) = rest.split_at_mut(bh_n);
        let (dhr, wrz) = rest.split_at_mut(bh_n);
        wrz[..d.h * eh].copy_from_slice(wr);
        wrz[d.h * eh..].copy_from_slice(wz);
        let wrz_h = Strided::rows(&wrz[d.e..], eh);
        dh.fill(T::zero());
        for t in (0..d.t).rev() {
            for bi in 0..d.b {
                let (row, at, row2) = ((bi * d.t + t) * d.h, (bi * d.t + t) * eh + d.e, (bi * d.t + t) * h2);
                let (g, dh) = (&g[row..][..d.h], &dh[bi * d.h..][..d.h]);
                let (z, hbar, hprev) = (&z_all[row..][..d.h], &hbar_all[row..][..d.h], &xh[at..][..d.h]);
                let (daz, dah) = (&mut darz[row2 + d.h..][..d.h], &mut dah[row..][..d.h]);
                let dh_prev = &mut dh_prev[bi * d.h..][..d.h];
                for i in 0..d.h {
                    let dht = g[i] + dh[i];
                    let (z, hbar, hprev) = (z[i], hbar[i], hprev[i]);
                    daz[i] = dht * (hbar - hprev) * z * (T::one() - z);
                    dah[i] = dht * z * (T::one() - hbar * hbar);
                    dh_prev[i] = dht * (T::one() - z);
                }
            }
            // d(r * h_{t-1}), then r's gradient and h_{t-1}'s through the reset.
            let dah_t = rows_at(dah, d, d.h, t);
            matmul::gemm((d.b, d.h, d.h), dah_t, wh_h, dhr, Start::Zero, &mut s.pack);
            for bi in 0..d.b {
                let (row, at, row2) = ((bi * d.t + t) * d.h, (bi * d.t + t) * eh + d.e, (bi * d.t + t) * h2);
                let (r, hprev, dhr) = (&r_all[row..][..d.h], &xh[at..][..d.h], &dhr[bi * d.h..][..d.h]);
                let (dar, dh_prev) = (&mut darz[row2..][..d.h], &mut dh_prev[bi * d.h..][..d.h]);
                for i in 0..d.h {
                    dar[i] = dhr[i] * hprev[i] * r[i] * (T::one() - r[i]);
                    dh_prev[i] += dhr[i] * r[i];
                }
            }
            let darz_t = rows_at(darz, d, h2, t);
            matmul::gemm((d.b, h2, d.h), darz_t, wrz_h, dh_prev, Start::C, &mut s.pack);
            dh.copy_from_slice(dh_prev);
        }
        if let Some((dst, acc)) = sinks.get(h0) {
            store(dst, acc, dh.iter().copied());
        }
        let (darz, dah) = (&*darz, &*dah);
        let gates = [
            ((w[0], b[0]), (&darz[d.h..], h2, xh)),
            ((w[1], b[1]), (darz, h2, xh)),
            ((w[2], b[2]), (dah, d.h, xhr)),
        ];
        for (wb, da) in gates {
            self.gate_weight_grads(wb, da, d, sinks, &mut s.pack);
        }
        if let Some((dst, acc)) = sinks.get(x) {
            // dx = [dr, dz] · [W_r; W_z][:, :E] + dhbar · W_hbar[:, :E].
            sized(dst, d.b * d.t * d.e);
            let bt = d.b * d.t;
            let wrz_x = Strided::rows(&*wrz, eh);
            matmul::gemm((bt, h2, d.e), Strided::rows(darz, h2), wrz_x, dst, acc.into(), &mut s.pack);
            let wh_x = Strided::rows(wh, eh);
            matmul::gemm((bt, d.h, d.e), Strided::rows(dah, d.h), wh_x, dst, Start::C, &mut s.pack);
        }
    }
}
