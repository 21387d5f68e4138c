//! The passes of the normalisations over a `[rows, c]` input, compiled for the CPU's widest
//! vectors (a scalar loop with an index per element was a quarter of WaveNet's step).
//! - LayerNorm normalises each row: 8-lane sums along the row.
//! - BatchNorm normalises each column (a channel): the statistics, the normalised output and
//!   the backward's column sums and input gradient, each pass walking whole rows against
//!   per-channel vectors.

use super::axis::{dot, lanes};
use super::{Acc, sized};
use crate::Float;

/// LayerNorm's forward: each row of `x` (`c` wide) normalised by its mean and
/// `rstd = 1 / sqrt(var + eps)` (saved in `means` and `rstds`), then `· w + b`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn layer_norm<T: Float>(
    x: &[T],
    (w, b): (&[T], &[T]),
    eps: T,
    out: &mut [T],
    (means, rstds): (&mut [T], &mut [T]),
) {
    let c = w.len();
    if c == 0 {
        return;
    }
    let inv_c = T::one() / T::of(c as f64);
    for (r, (xr, yr)) in x.chunks_exact(c).zip(out.chunks_exact_mut(c)).enumerate() {
        let mean = lanes(xr, T::zero(), |s, x| s + x) * inv_c;
        yr.iter_mut().zip(xr).for_each(|(y, &x)| *y = x - mean);
        let var = dot(yr, yr) * inv_c;
        let rstd = T::one() / (var + eps).sqrt();
        (means[r], rstds[r]) = (mean, rstd);
        yr.iter_mut().zip(w).zip(b).for_each(|((y, &w), &b)| *y = *y * rstd * w + b);
    }
}

/// LayerNorm's input gradient, row by row with `x̂ = (x - mean) · rstd` and `ĝ = g · w`:
/// `dx (+)= rstd · (ĝ - mean(ĝ) - x̂ · mean(ĝ · x̂))`. `tmp` holds `2 c` values.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn layer_norm_dx<T: Float>(
    (g, x, w): (&[T], &[T], &[T]),
    (means, rstds): (&[T], &[T]),
    tmp: &mut [T],
    dst: &mut [T],
    acc: Acc,
) {
    let c = w.len();
    if c == 0 {
        return;
    }
    let (xhat, gw) = tmp.split_at_mut(c);
    let inv_c = T::one() / T::of(c as f64);
    let rows = g.chunks_exact(c).zip(x.chunks_exact(c)).zip(dst.chunks_exact_mut(c));
    for (((gr, xr), d), (&mean, &rstd)) in rows.zip(means.iter().zip(rstds)) {
        xhat.iter_mut().zip(xr).for_each(|(h, &x)| *h = (x - mean) * rstd);
        gw.iter_mut().zip(gr).zip(w).for_each(|((o, &g), &w)| *o = g * w);
        let s1 = lanes(gw, T::zero(), |s, v| s + v) * inv_c;
        let s2 = dot(gw, xhat) * inv_c;
        let dx = gw.iter().zip(xhat.iter()).map(|(&gw, &h)| rstd * (gw - s1 - h * s2));
        match acc {
            Acc::Write => d.iter_mut().zip(dx).for_each(|(d, v)| *d = v),
            Acc::Add => d.iter_mut().zip(dx).for_each(|(d, v)| *d += v),
        }
    }
}

/// LayerNorm's weight gradient: `dw += Σ_rows g · x̂`, row by row.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn layer_norm_dw<T: Float>((g, x): (&[T], &[T]), (means, rstds): (&[T], &[T]), dst: &mut [T]) {
    let c = dst.len();
    if c == 0 {
        return;
    }
    for ((gr, xr), (&mean, &rstd)) in g.chunks_exact(c).zip(x.chunks_exact(c)).zip(means.iter().zip(rstds)) {
        dst.iter_mut().zip(gr).zip(xr).for_each(|((d, &g), &x)| *d += g * ((x - mean) * rstd));
    }
}

/// `mean[j]` and `var[j]` of column `j` over the rows of `x`, the variance dividing by
/// `rows - correction` (the caller checks that it is positive).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn moments<T: Float>(x: &[T], correction: usize, mean: &mut [T], var: &mut [T]) {
    let c = mean.len();
    if c == 0 {
        return;
    }
    let rows = x.len() / c;
    mean.fill(T::zero());
    var.fill(T::zero());
    for r in x.chunks_exact(c) {
        mean.iter_mut().zip(r).for_each(|(m, &x)| *m += x);
    }
    let inv_n = T::one() / T::of(rows as f64);
    mean.iter_mut().for_each(|m| *m *= inv_n);
    for r in x.chunks_exact(c) {
        var.iter_mut().zip(mean.iter()).zip(r).for_each(|((s, &m), &x)| *s += (x - m) * (x - m));
    }
    let inv = T::one() / T::of((rows - correction) as f64);
    var.iter_mut().for_each(|s| *s *= inv);
}

/// `out = (x - mean) · rstd · w + b`, row by row.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn normalize<T: Float>(x: &[T], [mean, rstd, w, b]: [&[T]; 4], out: &mut Vec<T>) {
    let c = mean.len();
    sized(out, x.len());
    if c == 0 {
        return;
    }
    for (yr, xr) in out.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        let cols = mean.iter().zip(rstd).zip(w).zip(b);
        for ((y, &x), (((&m, &r), &w), &b)) in yr.iter_mut().zip(xr).zip(cols) {
            *y = (x - m) * r * w + b;
        }
    }
}

/// The column sums of the backward: `sum_g[j] = Σ g` (the bias gradient) and
/// `sum_gx[j] = Σ g · x̂` (the weight gradient), `x̂ = (x - mean) · rstd`.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn grad_sums<T: Float>(
    (g, x): (&[T], &[T]),
    (mean, rstd): (&[T], &[T]),
    sum_g: &mut [T],
    sum_gx: &mut [T],
) {
    let c = mean.len();
    sum_g.fill(T::zero());
    sum_gx.fill(T::zero());
    if c == 0 {
        return;
    }
    for (gr, xr) in g.chunks_exact(c).zip(x.chunks_exact(c)) {
        let sums = sum_g.iter_mut().zip(sum_gx.iter_mut());
        for ((sg, sgx), ((&g, &x), (&m, &r))) in sums.zip(gr.iter().zip(xr).zip(mean.iter().zip(rstd))) {
            *sg += g;
            *sgx += g * ((x - m) * r);
        }
    }
}

/// `dx (+)= rstd · (g · w - s1 - x̂ · s2)` row by row, `x̂ = (x - mean) · rstd`, with the
/// per-channel `s1` and `s2` of the batch statistics' gradient (zeros for running statistics).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn grad_x<T: Float>(
    (g, x): (&[T], &[T]),
    [mean, rstd, w, s1, s2]: [&[T]; 5],
    dst: &mut Vec<T>,
    acc: Acc,
) {
    let c = mean.len();
    sized(dst, x.len());
    if c == 0 {
        return;
    }
    for ((dr, gr), xr) in dst.chunks_exact_mut(c).zip(g.chunks_exact(c)).zip(x.chunks_exact(c)) {
        let cols = mean.iter().zip(rstd).zip(w).zip(s1).zip(s2);
        let dx = gr.iter().zip(xr).zip(cols).map(|((&g, &x), ((((&m, &r), &w), &s1), &s2))| {
            let xhat = (x - m) * r;
            r * (g * w - s1 - xhat * s2)
        });
        match acc {
            Acc::Write => dr.iter_mut().zip(dx).for_each(|(d, v)| *d = v),
            Acc::Add => dr.iter_mut().zip(dx).for_each(|(d, v)| *d += v),
        }
    }
}
