//! Kernels along one axis of a row-major tensor, laid out as `(outer, n, inner)`: element
//! `(o, k, i)` is at `(o * n + k) * inner + i`. Sums, their backward, softmax, log-softmax and the
//! fused cross-entropy.

use super::{Acc, zeros};
use crate::Float;
use crate::op::IGNORED;

/// `(outer, n, inner)`: the layout around one axis.
pub(crate) type Around = (usize, usize, usize);

/// `out[o, i] = scale · Σ_k x[o, k, i]`, accumulated in `f64`.
pub(crate) fn sum<T: Float>(x: &[T], (outer, n, inner): Around, scale: f64, out: &mut Vec<T>) {
    if n == 0 {
        // A sum over no elements is 0 (an axis narrowed to length 0).
        return zeros(out, outer * inner);
    }
    out.clear();
    for block in x.chunks_exact((n * inner).max(1)).take(outer) {
        if inner == 1 {
            out.push(T::of(sum_f64(block) * scale));
        } else {
            for i in 0..inner {
                let s: f64 = (0..n).map(|k| block[k * inner + i].as_f64()).sum();
                out.push(T::of(s * scale));
            }
        }
    }
}

/// The sum of a contiguous run in `f64`, in 8 independent lanes so that it vectorizes.
pub(crate) fn sum_f64<T: Float>(x: &[T]) -> f64 {
    const LANES: usize = 8;
    let (chunks, rest) = x.as_chunks::<LANES>();
    let mut lanes = [0.0f64; LANES];
    for c in chunks {
        for l in 0..LANES {
            lanes[l] += c[l].as_f64();
        }
    }
    lanes.iter().sum::<f64>() + rest.iter().map(|v| v.as_f64()).sum::<f64>()
}

/// `dst[o, k, i] (+)= scale · g[o, i]`: the backward of [`sum`].
pub(crate) fn spread<T: Float>(g: &[T], (outer, n, inner): Around, scale: T, dst: &mut Vec<T>, acc: Acc) {
    if acc == Acc::Write {
        zeros(dst, outer * n * inner);
    }
    for o in 0..outer {
        let grow = &g[o * inner..][..inner];
        for k in 0..n {
            let d = &mut dst[(o * n + k) * inner..][..inner];
            d.iter_mut().zip(grow).for_each(|(d, &g)| *d += scale * g);
        }
    }
}

/// Columns of a line block summed at once in [`causal_mean`] and its backward: the running sums
/// stay in registers while the block walks down the axis.
const COLUMNS: usize = 64;

/// `y[o, k, i] = (1 / (k + 1)) · Σ_{j ≤ k} x[o, j, i]`: the running mean along the axis, the sum
/// kept in order from `j = 0` and scaled by the reciprocal (as makemore's attention weights
/// `1 / (t + 1)` scale each term).
pub(crate) fn causal_mean<T: Float>(x: &[T], (outer, n, inner): Around, y: &mut Vec<T>) {
    super::sized(y, outer * n * inner);
    for (xs, ys) in x.chunks_exact((n * inner).max(1)).zip(y.chunks_exact_mut((n * inner).max(1))).take(outer)
    {
        for i0 in (0..inner).step_by(COLUMNS) {
            let w = COLUMNS.min(inner - i0);
            let mut sum = [T::zero(); COLUMNS];
            for k in 0..n {
                let inv = T::one() / T::of((k + 1) as f64);
                let (row, out) = (&xs[k * inner + i0..][..w], &mut ys[k * inner + i0..][..w]);
                for ((s, &v), o) in sum.iter_mut().zip(row).zip(out) {
                    *s += v;
                    *o = *s * inv;
                }
            }
        }
    }
}

/// `dst[o, j, i] (+)= Σ_{k ≥ j} g[o, k, i] / (k + 1)`: the backward of [`causal_mean`], a running
/// sum from the end of the axis.
pub(crate) fn causal_mean_grad<T: Float>(g: &[T], (outer, n, inner): Around, dst: &mut Vec<T>, acc: Acc) {
    super::sized(dst, outer * n * inner);
    let line = (n * inner).max(1);
    for (gs, ds) in g.chunks_exact(line).zip(dst.chunks_exact_mut(line)).take(outer) {
        for i0 in (0..inner).step_by(COLUMNS) {
            let w = COLUMNS.min(inner - i0);
            let mut sum = [T::zero(); COLUMNS];
            for k in (0..n).rev() {
                let inv = T::one() / T::of((k + 1) as f64);
                let (row, out) = (&gs[k * inner + i0..][..w], &mut ds[k * inner + i0..][..w]);
                for ((s, &v), o) in sum.iter_mut().zip(row).zip(out) {
                    *s += v * inv;
                    *o = if acc == Acc::Write { *s } else { *o + *s };
                }
            }
        }
    }
}

/// Visits every line along the axis: calls `f` with the flat indices of its `n` elements.
fn lines((outer, n, inner): Around, mut f: impl FnMut(&dyn Fn(usize) -> usize, usize)) {
    for o in 0..outer {
        for i in 0..inner {
            let base = o * n * inner + i;
            f(&|k| base + k * inner, n);
        }
    }
}

/// `y = softmax(x)` along the axis (or `log_softmax` when `log`), stable: the maximum of each
/// line is subtracted before `exp`.
pub(crate) fn softmax<T: Float>(x: &[T], around: Around, log: bool, y: &mut Vec<T>) {
    if around.2 == 1 && around.1 > 0 {
        // Along the last axis: contiguous rows, one vectorized `exp` over all of them.
        let n = around.1;
        y.clear();
        y.extend_from_slice(x);
        for row in y.chunks_exact_mut(n) {
            let max = lanes(row, T::neg_infinity(), |m, v| if v > m { v } else { m });
            row.iter_mut().for_each(|v| *v -= max);
        }
        if log {
            for row in y.chunks_exact_mut(n) {
                let ls = row.iter().fold(T::zero(), |s, &d| s + d.exp()).ln();
                row.iter_mut().for_each(|v| *v -= ls);
            }
        } else {
            T::exp_slice(y);
            for row in y.chunks_exact_mut(n) {
                let inv = T::one() / lanes(row, T::zero(), |s, e| s + e);
                row.iter_mut().for_each(|e| *e *= inv);
            }
        }
        return;
    }
    zeros(y, x.len());
    lines(around, |at, n| {
        let max = (0..n).fold(T::neg_infinity(), |m, k| m.max(x[at(k)]));
        let sum = (0..n).fold(T::zero(), |s, k| s + (x[at(k)] - max).exp());
        let lse = max + sum.ln();
        for k in 0..n {
            let j = at(k);
            y[j] = if log { x[j] - lse } else { (x[j] - max).exp() / sum };
        }
    });
}

/// The causal softmax of attention scores, in place: `att` holds `[t, t]` blocks; row `r` of each
/// becomes the softmax of `scale · row[..=r]` (the positions it sees), and 0 past them. Rows are
/// shifted and scaled first, then one `exp` runs over every block (not one call per row), then
/// each row is normalised; compiled for the CPU's widest vectors.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn causal_softmax<T: Float>(att: &mut [T], t: usize, scale: T) {
    if t == 0 {
        return;
    }
    // Whole rows with the mask by index (`j <= r`), not the seen part alone: rows are at most
    // `t` long, and loops over 1 to 16 elements would never reach their vector body. The max
    // and the sum run in 8 interleaved lanes ([`lanes`]): a fold over a row one element at a
    // time is a chain of dependent compares or adds, about 60% of this function's time.
    for block in att.chunks_exact_mut(t * t) {
        for (r, row) in block.chunks_exact_mut(t).enumerate() {
            // The max is exact: any order of the lanes gives the same value.
            let max = seen(row, r, T::neg_infinity(), |m, x| if x > m { x } else { m });
            // Masked entries become exp(0) = 1, zeroed below. (Not a very negative score: an
            // `exp` that underflows goes through denormals, about 100 cycles each.)
            row.iter_mut()
                .enumerate()
                .for_each(|(j, x)| *x = if j <= r { (*x - max) * scale } else { T::zero() });
        }
    }
    T::exp_slice(att);
    // Rows in groups of 16, so that their 16 divisions are one vector division, not 16 in a row
    // (a division's latency, per row, was a tenth of this function's time).
    const GROUP: usize = 16;
    for block in att.chunks_exact_mut(t * t) {
        for (g, group) in block.chunks_mut(GROUP * t).enumerate() {
            let mut sums = [T::one(); GROUP];
            for (i, row) in group.chunks_exact(t).enumerate() {
                sums[i] = seen(row, g * GROUP + i, T::zero(), |s, e| s + e);
            }
            let inv = sums.map(|s| T::one() / s);
            for (i, row) in group.chunks_exact_mut(t).enumerate() {
                let (r, inv) = (g * GROUP + i, inv[i]);
                row.iter_mut().enumerate().for_each(|(j, e)| *e = if j <= r { *e * inv } else { T::zero() });
            }
        }
    }
}

/// `row[..=r]` folded by `f` from `init` in 8 interleaved lanes ([`lanes`]), read as the whole
/// row with the positions past `r` replaced by `init` (so that the loop has a fixed length and
/// vectorizes). Nothing is written: masking by a store would make the loads that follow it
/// wait for the store.
#[inline(always)]
fn seen<T: Float>(row: &[T], r: usize, init: T, f: impl Fn(T, T) -> T) -> T {
    let mut acc = [init; 8];
    let (chunks, rest) = row.as_chunks::<8>();
    for (c, chunk) in chunks.iter().enumerate() {
        for l in 0..8 {
            let x = if c * 8 + l <= r { chunk[l] } else { init };
            acc[l] = f(acc[l], x);
        }
    }
    for (l, &x) in rest.iter().enumerate() {
        if chunks.len() * 8 + l <= r {
            acc[l] = f(acc[l], x);
        }
    }
    lanes(&acc, init, f)
}

/// The backward of [`softmax`] from its output `y`: `dx = y · (g - Σ g·y)` for softmax,
/// `dx = g - exp(y) · Σ g` for log-softmax.
pub(crate) fn softmax_backward<T: Float>(
    g: &[T],
    y: &[T],
    around: Around,
    log: bool,
    dst: &mut Vec<T>,
    acc: Acc,
) {
    if acc == Acc::Write {
        zeros(dst, y.len());
    }
    lines(around, |at, n| {
        if log {
            let gs = (0..n).fold(T::zero(), |s, k| s + g[at(k)]);
            (0..n).map(at).for_each(|j| dst[j] += g[j] - y[j].exp() * gs);
        } else {
            let gy = (0..n).fold(T::zero(), |s, k| s + g[at(k)] * y[at(k)]);
            (0..n).map(at).for_each(|j| dst[j] += y[j] * (g[j] - gy));
        }
    });
}

/// `xs` folded by `f` in 8 interleaved lanes (element `i` into lane `i % 8`), then the lanes
/// pairwise: the same result on every CPU, without one long chain of dependent operations.
/// Always inlined, so that it is compiled for the CPU of its multiversioned caller.
#[inline(always)]
pub(crate) fn lanes<T: Float>(xs: &[T], init: T, f: impl Fn(T, T) -> T) -> T {
    let mut acc = [init; 8];
    let (chunks, rest) = xs.as_chunks::<8>();
    for chunk in chunks {
        for l in 0..8 {
            acc[l] = f(acc[l], chunk[l]);
        }
    }
    for (a, &x) in acc.iter_mut().zip(rest) {
        *a = f(*a, x);
    }
    let [l0, l1, l2, l3, l4, l5, l6, l7] = acc;
    f(f(f(l0, l4), f(l2, l6)), f(f(l1, l5), f(l3, l7)))
}

/// `Σ a·b` in 8 interleaved lanes (see [`lanes`]), so that it vectorizes.
#[inline(always)]
pub(crate) fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let (ca, ra) = a.as_chunks::<8>();
    let (cb, rb) = b[..a.len()].as_chunks::<8>();
    for (x, y) in ca.iter().zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (&x, &y)) in ra.iter().zip(rb).enumerate() {
        acc[l] += x * y;
    }
    let [l0, l1, l2, l3, l4, l5, l6, l7] = acc;
    ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))
}

/// The fused, numerically stable cross-entropy of `logits` `[rows, classes]` against class ids:
/// returns the mean of `logsumexp(row) - row[target]` over the rows whose target is not
/// [`IGNORED`], accumulated in `f64`, and writes the softmax probabilities of every row to
/// `probs` for the backward pass.
pub(crate) fn cross_entropy<T: Float>(
    logits: &[T],
    classes: usize,
    targets: &[u32],
    probs: &mut Vec<T>,
) -> f64 {
    // Loss of a row: ln Σ exp(row - max) - (row[t] - max). Shift every row by its maximum, take
    // one `exp` over the whole batch (one vectorized call, not one per row), then normalise.
    probs.clear();
    let mut total = 0.0;
    for (row, &t) in logits.chunks_exact(classes).zip(targets) {
        // (A NaN logit is skipped here, and makes its row's loss NaN below.)
        let max = lanes(row, T::neg_infinity(), |m, x| if x > m { x } else { m });
        probs.extend(row.iter().map(|&x| x - max));
        if t != IGNORED {
            total -= (row[t as usize] - max).as_f64();
        }
    }
    T::exp_slice(probs);
    for (p, &t) in probs.chunks_exact_mut(classes).zip(targets) {
        let sum = lanes(p, T::zero(), |s, e| s + e);
        let inv = T::one() / sum;
        p.iter_mut().for_each(|e| *e *= inv);
        if t != IGNORED {
            total += sum.ln().as_f64();
        }
    }
    total / counted(targets).max(1) as f64
}

/// How many targets are not [`IGNORED`].
fn counted(targets: &[u32]) -> usize {
    targets.iter().filter(|&&t| t != IGNORED).count()
}

/// The backward of [`cross_entropy`]: `dlogits (+)= (probs - onehot(targets)) · g / count` on
/// the rows with a target, nothing on the others.
pub(crate) fn cross_entropy_backward<T: Float>(
    probs: &[T],
    classes: usize,
    targets: &[u32],
    g: T,
    dst: &mut Vec<T>,
    acc: Acc,
) {
    let count = counted(targets);
    let scale = g / T::of(count.max(1) as f64);
    if count == targets.len() {
        super::store(dst, acc, probs.iter().map(|&p| p * scale));
    } else {
        if acc == Acc::Write {
            zeros(dst, probs.len());
        }
        for ((d, p), &t) in dst.chunks_exact_mut(classes).zip(probs.chunks_exact(classes)).zip(targets) {
            if t != IGNORED {
                d.iter_mut().zip(p).for_each(|(d, &p)| *d += p * scale);
            }
        }
    }
    for (r, &t) in targets.iter().enumerate() {
        if t != IGNORED {
            dst[r * classes + t as usize] -= scale;
        }
    }
}

/// The mean cross-entropy of `table[ids]` (rows of `classes` logits) against `targets`, without
/// gathering the rows: every example with the same id has the same logits, so the examples are
/// only counted, per (id, target) pair, and each row's log-softmax is taken once. `aux` receives
/// the softmax of every row of `table`, then the pair counts (both `[rows, classes]`).
pub(crate) fn lookup_cross_entropy<T: Float>(
    table: &[T],
    classes: usize,
    ids: &[u32],
    targets: &[u32],
    aux: &mut Vec<T>,
) -> f64 {
    let cells = table.len();
    aux.clear();
    aux.resize(2 * cells, T::zero());
    let (probs, counts) = aux.split_at_mut(cells);
    if ids.len() < 1 << 24 {
        // Counted in place: every count is below 2^24, so exact even in f32. No allocation.
        for (&i, &t) in ids.iter().zip(targets) {
            counts[i as usize * classes + t as usize] += T::one();
        }
    } else {
        let mut exact = vec![0u64; cells];
        for (&i, &t) in ids.iter().zip(targets) {
            exact[i as usize * classes + t as usize] += 1;
        }
        counts.iter_mut().zip(&exact).for_each(|(c, &n)| *c = T::of(n as f64));
    }
    let mut total = 0.0;
    for ((row, p), n) in
        table.chunks_exact(classes).zip(probs.chunks_exact_mut(classes)).zip(counts.chunks_exact(classes))
    {
        let max = row.iter().fold(T::neg_infinity(), |m, &x| m.max(x));
        p.iter_mut().zip(row).for_each(|(p, &x)| *p = x - max);
        T::exp_slice(p);
        let sum = p.iter().fold(T::zero(), |s, &e| s + e);
        let inv = T::one() / sum;
        p.iter_mut().for_each(|e| *e *= inv);
        // Σ over this row's examples of lse(row) - row[t], with lse = max + ln(sum).
        let lse = max.as_f64() + sum.ln().as_f64();
        for (c, &n) in n.iter().enumerate() {
            if n > T::zero() {
                total += n.as_f64() * (lse - row[c].as_f64());
            }
        }
    }
    total / ids.len().max(1) as f64
}

/// The backward of [`lookup_cross_entropy`]: row `r` of the table gets
/// `(n_r · softmax(row) - counts[r]) · g / examples`, where `n_r` is how many examples picked it.
pub(crate) fn lookup_cross_entropy_backward<T: Float>(
    aux: &[T],
    classes: usize,
    examples: usize,
    g: T,
    dst: &mut Vec<T>,
    acc: Acc,
) {
    let (probs, counts) = aux.split_at(aux.len() / 2);
    let scale = g / T::of(examples.max(1) as f64);
    let grad = probs.chunks_exact(classes).zip(counts.chunks_exact(classes)).flat_map(|(p, n)| {
        let picked = n.iter().fold(T::zero(), |s, &c| s + c);
        p.iter().zip(n).map(move |(&p, &c)| (picked * p - c) * scale)
    });
    super::store(dst, acc, grad);
}

/// Transposes a row-major `[rows, cols]` matrix `x` into `out` (`[cols, rows]`), or adds it.
pub(crate) fn transpose<T: Float>(x: &[T], rows: usize, cols: usize, out: &mut Vec<T>, acc: Acc) {
    super::sized(out, rows * cols);
    // Tiles of 8 rows: 8 strided reads give 8 contiguous writes.
    const TILE: usize = 8;
    for r0 in (0..rows).step_by(TILE) {
        let tr = TILE.min(rows - r0);
        for c in 0..cols {
            let dst = &mut out[c * rows + r0..][..tr];
            for (t, d) in dst.iter_mut().enumerate() {
                let v = x[(r0 + t) * cols + c];
                match acc {
                    Acc::Write => *d = v,
                    Acc::Add => *d += v,
                }
            }
        }
    }
}
