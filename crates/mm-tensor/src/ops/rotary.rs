//! Rotary position embeddings (RoPE, Su et al. 2021, "RoFormer"), on c_attn's output: the
//! queries and keys of every head turned by an angle that grows with the position, so that the
//! score `q · k` of two positions depends on how far apart they are, not on where they are. A
//! Transformer with rotary positions has no `wpe` table. PyTorch has no op for it; this is the
//! "rotate half" form of GPT-NeoX and Hugging Face's LLaMA (`apply_rotary_pos_emb`):
//!
//! ```text
//! inv_freq = 1 / 10000 ** (torch.arange(0, hs, 2) / hs)      # hs / 2 frequencies
//! angle = torch.outer(torch.arange(start, start + T), inv_freq)  # [T, hs / 2]
//! x1, x2 = x[..., :hs // 2], x[..., hs // 2:]
//! rotated = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
//! ```
//!
//! Pair `i` of a head (elements `i` and `i + hs/2`) turns by `pos · 10000^(-2i/hs)`. The op takes
//! `qkv` `[B, T, 3C]` as [`Var::causal_self_attention`] does and turns q and k in it (v passes
//! through), so the two compose without a split; `start` is the position of the first row (the
//! key/value cache of sampling feeds one position at a time). The angles are computed in `f64`
//! and kept in `aux`, `[T, hs/2]` cosines then sines, for the backward pass, which turns the
//! gradient back (the transpose of a rotation is the rotation by minus the angle).

use crate::backward::{Ctx, Sinks};
use crate::kernels::{Acc, sized};
use crate::op::{NodeId, Op};
use crate::tape::Var;
use crate::{Float, Result, TensorError};

/// The base of the angles: pair `i` of a head of `hs` turns by `pos · ROTARY_BASE^(-2i/hs)` (the
/// RoFormer paper's and LLaMA's).
pub const ROTARY_BASE: f64 = 10_000.0;

impl<'g, T: Float> Var<'g, T> {
    /// This `qkv` `[B, T, 3C]` (q, k and v side by side, `C` split into `n_head` heads of an even
    /// size `hs`) with each head's q and k turned by rotary position embeddings, positions
    /// `start..start + T`; v unchanged. Or the error.
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let params = ParamStore::<f64>::new();
    /// let mut tape = Tape::new();
    /// let g = tape.no_grad(&params);
    /// // One head of 2: q = k = v = (1, 0), at positions 0 and 1.
    /// let qkv = g.input(&[1, 2, 6], &[1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
    /// let y = qkv.rotary_qk(1, 0).to_array();
    /// // Python: math.cos(1), math.sin(1): position 1 turns its single pair by 1 radian.
    /// let (c, s) = (0.5403023058681398, 0.8414709848078965);
    /// assert_eq!(y.as_slice().unwrap(), &[1.0, 0.0, 1.0, 0.0, 1.0, 0.0, c, s, c, s, 1.0, 0.0]);
    /// ```
    pub fn try_rotary_qk(self, n_head: usize, start: usize) -> Result<Self> {
        self.g.live(&[self.id])?;
        let shape = self.shape();
        let err = TensorError::RotaryHeads { shape, heads: n_head };
        let &[_, t, c3] = shape.dims() else { return Err(err) };
        if n_head == 0
            || c3 % (3 * n_head) != 0
            || !(c3 / 3 / n_head).is_multiple_of(2)
            || n_head > u32::MAX as usize
        {
            return Err(err);
        }
        let (c, x) = (c3 / 3, self.id);
        let (hs, half) = (c / n_head, c / n_head / 2);
        let op = Op::Rotary { qkv: x, heads: n_head as u32 };
        Ok(self.g.push(op, shape, false, &[x], |v, out, aux| {
            let x = v.get(x);
            sized(out, x.len());
            sized(aux, 2 * t * half);
            let (cos, sin) = aux.split_at_mut(t * half);
            for p in 0..t {
                for i in 0..half {
                    let angle = (start + p) as f64 * ROTARY_BASE.powf(-2.0 * i as f64 / hs as f64);
                    (cos[p * half + i], sin[p * half + i]) = (T::of(angle.cos()), T::of(angle.sin()));
                }
            }
            turn(x, out, (cos, sin), (t, c, n_head), 1.0, Acc::Write);
        }))
    }

    /// Rotary position embeddings on q and k of `qkv` (see [`Var::try_rotary_qk`]).
    pub fn rotary_qk(self, n_head: usize, start: usize) -> Self {
        self.g.sticky(self.try_rotary_qk(n_head, start))
    }
}

/// `dst (+)=` each row of `src` (`[B, T, 3C]`) with the q and k of every head turned by the
/// angles whose cosines and sines are `cs` (`[T, hs/2]` each), times `sign` (1 forward, -1 to
/// turn back), and v copied.
fn turn<T: Float>(
    src: &[T],
    dst: &mut [T],
    (cos, sin): (&[T], &[T]),
    (t, c, n_head): (usize, usize, usize),
    sign: f64,
    acc: Acc,
) {
    if src.is_empty() {
        return;
    }
    let half = cos.len() / t;
    let sign = T::of(sign);
    let put = |d: &mut T, v: T| match acc {
        Acc::Write => *d = v,
        Acc::Add => *d += v,
    };
    for (r, (x, y)) in src.chunks_exact(3 * c).zip(dst.chunks_exact_mut(3 * c)).enumerate() {
        let p = r % t;
        let (cos, sin) = (&cos[p * half..][..half], &sin[p * half..][..half]);
        for head in 0..2 * n_head {
            let at = head * 2 * half;
            let (x1, x2) = x[at..at + 2 * half].split_at(half);
            let (y1, y2) = y[at..at + 2 * half].split_at_mut(half);
            for i in 0..half {
                let (s, co) = (sign * sin[i], cos[i]);
                put(&mut y1[i], x1[i] * co - x2[i] * s);
                put(&mut y2[i], x1[i] * s + x2[i] * co);
            }
        }
        y[2 * c..].iter_mut().zip(&x[2 * c..]).for_each(|(d, &v)| put(d, v));
    }
}

// Gradient rule.
impl<T: Float> Ctx<'_, T> {
    /// Rotary: the gradient of q and k turned back by the angles in `aux`; v's passes through.
    pub(crate) fn rotary_grad(&self, x: NodeId, n_head: usize, g: &[T], sinks: &mut Sinks<'_, T>) {
        let shape = self.shape(x);
        let (t, c) = (shape.dim(1), shape.dim(2) / 3);
        if let Some((dst, acc)) = sinks.get(x) {
            sized(dst, g.len());
            let (cos, sin) = self.aux.split_at(self.aux.len() / 2);
            turn(g, dst, (cos, sin), (t, c, n_head), -1.0, acc);
        }
    }
}
