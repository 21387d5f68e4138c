//! The optimizers' elementwise updates, compiled for the CPU's widest vectors: one step touches
//! every parameter (12k in the lecture's MLP), which in baseline SSE2 costs a visible share of a
//! training step.

use multiversion::multiversion;

use crate::Float;

/// SGD: `p -= lr * (g + weight_decay * p)`, the decay term only when it is non-zero.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn sgd<T: Float>(p: &mut [T], g: &[T], lr: T, weight_decay: T) {
    if weight_decay == T::zero() {
        p.iter_mut().zip(g).for_each(|(p, &g)| *p -= lr * g);
    } else {
        p.iter_mut().zip(g).for_each(|(p, &g)| *p -= lr * (g + weight_decay * *p));
    }
}

/// The constants of one AdamW update.
#[derive(Clone, Copy)]
pub(crate) struct AdamWStep<T> {
    pub(crate) lr: T,
    pub(crate) beta1: T,
    pub(crate) beta2: T,
    pub(crate) eps: T,
    /// `1 - lr * weight_decay`.
    pub(crate) decay: T,
    /// The bias corrections `1 - beta1^t` and `1 - beta2^t`.
    pub(crate) c1: T,
    pub(crate) c2: T,
}

/// AdamW: decay `p`, update the moments `m` and `v` from `g`, and step `p`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma", "aarch64+neon"))]
pub(crate) fn adamw<T: Float>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], s: AdamWStep<T>) {
    let one = T::one();
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
        *p *= s.decay;
        *m = s.beta1 * *m + (one - s.beta1) * g;
        *v = s.beta2 * *v + (one - s.beta2) * g * g;
        *p -= s.lr * (*m / s.c1) / ((*v / s.c2).sqrt() + s.eps);
    }
}
