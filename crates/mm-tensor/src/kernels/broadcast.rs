//! NumPy broadcasting for binary elementwise ops, and its backward: reducing a gradient to the
//! shape of an operand that was broadcast (summing over the axes it was repeated along).
//!
//! Shapes are padded on the left to rank `MAX_RANK`; an operand's stride is 0 along an axis it is
//! broadcast over. The innermost axis is walked as a contiguous run whose operand strides are 0
//! or 1, so the common forms (`[B, N] + [N]`, `[B, N] * [B, 1]`, scalar) vectorize.

use super::{Acc, store, zeros};
use crate::{Float, MAX_RANK, Result, Shape, TensorError};

/// Which operand of a binary op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Lhs,
    Rhs,
}

/// How two shapes broadcast to the output shape.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Broadcast {
    pub(crate) out: Shape,
    dims: [usize; MAX_RANK],
    strides: [[usize; MAX_RANK]; 2],
    numel: [usize; 2],
}

/// One innermost run: output offset, operand offsets, length, operand strides within the run.
#[derive(Clone, Copy)]
struct Run {
    o: usize,
    i: [usize; 2],
    len: usize,
    s: [usize; 2],
}

impl Broadcast {
    /// The broadcast of `a` and `b` under NumPy's rules, or an error naming `op`.
    pub(crate) fn new(op: &'static str, a: Shape, b: Shape) -> Result<Broadcast> {
        let rank = a.rank().max(b.rank());
        let pad = |s: Shape| {
            let mut d = [1; MAX_RANK];
            d[MAX_RANK - s.rank()..].copy_from_slice(s.dims());
            d
        };
        let (da, db) = (pad(a), pad(b));
        let mut dims = [1; MAX_RANK];
        for ax in 0..MAX_RANK {
            dims[ax] = match (da[ax], db[ax]) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => return Err(TensorError::Broadcast { op, lhs: a, rhs: b }),
            };
        }
        let strides_of = |d: [usize; MAX_RANK]| {
            let mut s = [0; MAX_RANK];
            let mut step = 1;
            for ax in (0..MAX_RANK).rev() {
                s[ax] = if d[ax] == 1 { 0 } else { step };
                step *= d[ax];
            }
            s
        };
        let out = Shape::new(&dims[MAX_RANK - rank..])?;
        Ok(Broadcast { out, dims, strides: [strides_of(da), strides_of(db)], numel: [a.numel(), b.numel()] })
    }

    /// Whether the operand on `side` has the output's shape (no broadcasting on that side).
    fn is_full(&self, side: Side) -> bool {
        self.numel[side as usize] == self.out.numel()
    }

    /// Calls `f` for every innermost run of the output.
    #[inline]
    fn runs(&self, mut f: impl FnMut(Run)) {
        let n = self.out.numel();
        if self.is_full(Side::Lhs) && self.is_full(Side::Rhs) {
            return f(Run { o: 0, i: [0, 0], len: n, s: [1, 1] });
        }
        // An odometer over the outer axes; the innermost axis is one run.
        const LAST: usize = MAX_RANK - 1;
        let [sa, sb] = self.strides;
        let len = self.dims[LAST];
        let outer: usize = self.dims[..LAST].iter().product();
        let (mut idx, mut ia, mut ib) = ([0usize; LAST], 0, 0);
        for row in 0..outer {
            f(Run { o: row * len, i: [ia, ib], len, s: [sa[LAST], sb[LAST]] });
            for ax in (0..LAST).rev() {
                idx[ax] += 1;
                ia += sa[ax];
                ib += sb[ax];
                if idx[ax] < self.dims[ax] {
                    break;
                }
                ia -= sa[ax] * self.dims[ax];
                ib -= sb[ax] * self.dims[ax];
                idx[ax] = 0;
            }
        }
    }

    /// `out = f(a, b)` elementwise with broadcasting; `out` is resized to the output's size.
    #[inline]
    pub(crate) fn map<T: Float>(&self, a: &[T], b: &[T], out: &mut Vec<T>, f: impl Fn(T, T) -> T) {
        super::sized(out, self.out.numel());
        // Each run writes its own slice of `out` from slices of `a` and `b` of the same length:
        // plain loops without bounds checks or capacity checks, which vectorize.
        self.runs(|r| {
            let (a, b, o) = (&a[r.i[0]..], &b[r.i[1]..], &mut out[r.o..r.o + r.len]);
            match r.s {
                [1, 1] => {
                    o.iter_mut().zip(&a[..r.len]).zip(&b[..r.len]).for_each(|((o, &x), &y)| *o = f(x, y))
                }
                [1, _] => o.iter_mut().zip(&a[..r.len]).for_each(|(o, &x)| *o = f(x, b[0])),
                [_, 1] => o.iter_mut().zip(&b[..r.len]).for_each(|(o, &y)| *o = f(a[0], y)),
                _ => o.fill(f(a[0], b[0])),
            }
        });
    }

    /// Reduces the output gradient `g`, scaled by `sign`, to the shape of the operand on `side`
    /// and writes or adds it to `dst`: the gradient of `add` and `sub`.
    pub(crate) fn reduce<T: Float>(&self, side: Side, g: &[T], sign: T, dst: &mut Vec<T>, acc: Acc) {
        if self.is_full(side) {
            return store(dst, acc, g.iter().map(|&x| sign * x));
        }
        if acc == Acc::Write {
            zeros(dst, self.numel[side as usize]);
        }
        let k = side as usize;
        self.runs(|r| {
            let g = &g[r.o..r.o + r.len];
            if r.s[k] == 1 {
                let d = &mut dst[r.i[k]..r.i[k] + r.len];
                d.iter_mut().zip(g).for_each(|(d, &x)| *d += sign * x);
            } else {
                dst[r.i[k]] += sign * g.iter().fold(T::zero(), |s, &x| s + x);
            }
        });
    }

    /// Writes or adds `Σ f(g, a, b)` over the broadcast to `dst`, shaped like the operand on
    /// `side`: the gradient of `mul` and `div`.
    pub(crate) fn grad<T: Float>(
        &self,
        side: Side,
        (g, a, b): (&[T], &[T], &[T]),
        dst: &mut Vec<T>,
        acc: Acc,
        f: impl Fn(T, T, T) -> T,
    ) {
        if acc == Acc::Write {
            zeros(dst, self.numel[side as usize]);
        }
        let k = side as usize;
        self.runs(|r| {
            for j in 0..r.len {
                let (ia, ib) = (r.i[0] + j * r.s[0], r.i[1] + j * r.s[1]);
                let d = if k == 0 { ia } else { ib };
                dst[d] += f(g[r.o + j], a[ia], b[ib]);
            }
        });
    }
}
