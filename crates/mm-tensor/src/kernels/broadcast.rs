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

/// An odometer over the outer axes of a [`Broadcast`]: each step is one innermost run.
struct Runs<'b> {
    bc: &'b Broadcast,
    row: usize,
    rows: usize,
    len: usize,
    s: [usize; 2],
    idx: [usize; MAX_RANK - 1],
    i: [usize; 2],
}

impl Iterator for Runs<'_> {
    type Item = Run;

    #[inline(always)]
    fn next(&mut self) -> Option<Run> {
        if self.row >= self.rows {
            return None;
        }
        let run = Run { o: self.row * self.len, i: self.i, len: self.len, s: self.s };
        self.row += 1;
        let (dims, [sa, sb]) = (&self.bc.dims, &self.bc.strides);
        for ax in (0..MAX_RANK - 1).rev() {
            self.idx[ax] += 1;
            self.i[0] += sa[ax];
            self.i[1] += sb[ax];
            if self.idx[ax] < dims[ax] {
                break;
            }
            self.i[0] -= sa[ax] * dims[ax];
            self.i[1] -= sb[ax] * dims[ax];
            self.idx[ax] = 0;
        }
        Some(run)
    }
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
    pub(crate) fn is_full(&self, side: Side) -> bool {
        self.numel[side as usize] == self.out.numel()
    }

    /// The innermost runs of the output, in order: an iterator (not a callback), so that the
    /// loop over a run inlines into the multiversioned kernels below and is compiled for their
    /// CPU.
    #[inline(always)]
    fn runs(&self) -> Runs<'_> {
        const LAST: usize = MAX_RANK - 1;
        let n = self.out.numel();
        if self.is_full(Side::Lhs) && self.is_full(Side::Rhs) {
            // One run over everything.
            return Runs {
                bc: self,
                row: 0,
                rows: (n > 0) as usize,
                len: n,
                s: [1, 1],
                idx: [0; LAST],
                i: [0, 0],
            };
        }
        let [sa, sb] = self.strides;
        let rows = self.dims[..LAST].iter().product();
        Runs {
            bc: self,
            row: 0,
            rows,
            len: self.dims[LAST],
            s: [sa[LAST], sb[LAST]],
            idx: [0; LAST],
            i: [0, 0],
        }
    }

    /// `out = f(a, b)` elementwise with broadcasting; `out` is resized to the output's size.
    #[inline]
    pub(crate) fn map<T: Float>(&self, a: &[T], b: &[T], out: &mut Vec<T>, f: impl Fn(T, T) -> T) {
        super::sized(out, self.out.numel());
        map_runs(self, a, b, out, f);
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
        reduce_runs(self, side, g, sign, dst);
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
        grad_runs(self, side, (g, a, b), dst, f);
    }
}

// The loops over the runs, compiled for the CPU's widest vectors (the closures inline into them):
// the residual adds, biases and position embeddings of every model go through them.

#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn map_runs<T: Float, F: Fn(T, T) -> T>(bc: &Broadcast, a: &[T], b: &[T], out: &mut [T], f: F) {
    // Each run writes its own slice of `out` from slices of `a` and `b` of the same length:
    // plain loops without bounds checks or capacity checks, which vectorize.
    for r in bc.runs() {
        let (a, b, o) = (&a[r.i[0]..], &b[r.i[1]..], &mut out[r.o..r.o + r.len]);
        match r.s {
            [1, 1] => o.iter_mut().zip(&a[..r.len]).zip(&b[..r.len]).for_each(|((o, &x), &y)| *o = f(x, y)),
            [1, _] => o.iter_mut().zip(&a[..r.len]).for_each(|(o, &x)| *o = f(x, b[0])),
            [_, 1] => o.iter_mut().zip(&b[..r.len]).for_each(|(o, &y)| *o = f(a[0], y)),
            _ => o.fill(f(a[0], b[0])),
        }
    }
}

#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn reduce_runs<T: Float>(bc: &Broadcast, side: Side, g: &[T], sign: T, dst: &mut [T]) {
    let k = side as usize;
    for r in bc.runs() {
        let g = &g[r.o..r.o + r.len];
        if r.s[k] == 1 {
            let d = &mut dst[r.i[k]..r.i[k] + r.len];
            d.iter_mut().zip(g).for_each(|(d, &x)| *d += sign * x);
        } else {
            dst[r.i[k]] += sign * g.iter().fold(T::zero(), |s, &x| s + x);
        }
    }
}

#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
fn grad_runs<T: Float, F: Fn(T, T, T) -> T>(
    bc: &Broadcast,
    side: Side,
    (g, a, b): (&[T], &[T], &[T]),
    dst: &mut [T],
    f: F,
) {
    let k = side as usize;
    for r in bc.runs() {
        for j in 0..r.len {
            let (ia, ib) = (r.i[0] + j * r.s[0], r.i[1] + j * r.s[1]);
            let d = if k == 0 { ia } else { ib };
            dst[d] += f(g[r.o + j], a[ia], b[ib]);
        }
    }
}
