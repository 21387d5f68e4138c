//! Elementwise ops: arithmetic with NumPy broadcasting, and the pointwise functions (`exp`,
//! `tanh`, `sigmoid`, GELU, ...), `masked_fill` and dropout, with their gradient rules.

use std::ops;

use ndarray::{ArrayBase, Data, Dimension};
use rand::Rng;

use super::or_poisoned;
use crate::backward::{Ctx, Sinks};
use crate::kernels::broadcast::{Broadcast, Side};
use crate::kernels::{self, Acc, sized, store};
use crate::op::{NodeId, Op};
use crate::tape::Var;
use crate::{Float, Result, Shape, TensorError};

impl<'g, T: Float> Var<'g, T> {
    fn binary(
        self,
        rhs: Self,
        name: &'static str,
        op: fn(NodeId, NodeId) -> Op,
        f: impl Fn(T, T) -> T,
    ) -> Result<Self> {
        self.g.live(&[self.id, rhs.id])?;
        let bc = Broadcast::new(name, self.shape(), rhs.shape())?;
        let (a, b) = (self.id, rhs.id);
        Ok(self.g.push(op(a, b), bc.out, false, &[a, b], |v, out, _| bc.map(v.get(a), v.get(b), out, f)))
    }

    fn unary(self, op: Op, f: impl Fn(T) -> T) -> Self {
        or_poisoned!(self);
        let x = self.id;
        self.g.push(op, self.shape(), false, &[x], |v, out, _| {
            kernels::store(out, Acc::Write, v.get(x).iter().map(|&x| f(x)))
        })
    }

    /// `self + rhs` with broadcasting, or the error.
    pub fn try_add(self, rhs: Self) -> Result<Self> {
        self.binary(rhs, "add", Op::Add, |a, b| a + b)
    }

    /// `self - rhs` with broadcasting, or the error.
    pub fn try_sub(self, rhs: Self) -> Result<Self> {
        self.binary(rhs, "sub", Op::Sub, |a, b| a - b)
    }

    /// `self * rhs` elementwise with broadcasting, or the error.
    pub fn try_mul(self, rhs: Self) -> Result<Self> {
        self.binary(rhs, "mul", Op::Mul, |a, b| a * b)
    }

    /// `self / rhs` elementwise with broadcasting, or the error.
    pub fn try_div(self, rhs: Self) -> Result<Self> {
        self.binary(rhs, "div", Op::Div, |a, b| a / b)
    }

    /// `self ^ exponent` elementwise (a float exponent, as PyTorch's `x ** p`).
    pub fn pow(self, exponent: f64) -> Self {
        let e = T::of(exponent);
        if exponent == 2.0 {
            return self.unary(Op::Pow(self.id, exponent), |x| x * x);
        }
        self.unary(Op::Pow(self.id, exponent), move |x| x.powf(e))
    }

    /// `exp(self)` elementwise.
    pub fn exp(self) -> Self {
        or_poisoned!(self);
        let x = self.id;
        self.g.push(Op::Exp(x), self.shape(), false, &[x], |v, out, _| {
            out.clear();
            out.extend_from_slice(v.get(x));
            T::exp_slice(out);
        })
    }

    /// `ln(self)` elementwise.
    pub fn log(self) -> Self {
        self.unary(Op::Log(self.id), T::ln)
    }

    /// `sqrt(self)` elementwise (`torch.sqrt`).
    pub fn sqrt(self) -> Self {
        self.unary(Op::Sqrt(self.id), T::sqrt)
    }

    /// `tanh(self)` elementwise (in `f32` a fast rational approximation, max abs error 3.1e-7).
    pub fn tanh(self) -> Self {
        or_poisoned!(self);
        let x = self.id;
        self.g.push(Op::Tanh(x), self.shape(), false, &[x], |v, out, _| {
            let x = v.get(x);
            sized(out, x.len());
            T::tanh_slice(x, out);
        })
    }

    /// `max(self, 0)` elementwise.
    pub fn relu(self) -> Self {
        self.unary(Op::Relu(self.id), |x| if x > T::zero() { x } else { T::zero() })
    }

    /// The logistic sigmoid `1 / (1 + exp(-self))` elementwise.
    pub fn sigmoid(self) -> Self {
        or_poisoned!(self);
        let x = self.id;
        self.g.push(Op::Sigmoid(x), self.shape(), false, &[x], |v, out, _| {
            let x = v.get(x);
            sized(out, x.len());
            T::sigmoid_slice(x, out);
        })
    }

    /// GELU with the tanh approximation, `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))`: makemore's
    /// `NewGELU`, `F.gelu(x, approximate="tanh")`.
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let params = ParamStore::<f64>::new();
    /// let mut tape = Tape::new();
    /// let g = tape.no_grad(&params);
    /// let y = g.input(&[2], &[1.0, -0.5]).gelu().to_array();
    /// // Python: 0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    /// assert!((y[0] - 0.8411919906082768).abs() < 1e-15 && (y[1] + 0.15428599017485606).abs() < 1e-15);
    /// ```
    pub fn gelu(self) -> Self {
        or_poisoned!(self);
        let x = self.id;
        self.g.push(Op::Gelu(x), self.shape(), false, &[x], |v, out, d| {
            let x = v.get(x);
            sized(out, x.len());
            sized(d, x.len());
            kernels::gelu::forward(x, out, d);
        })
    }

    /// `self` with the positions where `mask` is true replaced by `value`
    /// (`x.masked_fill(mask, value)`), or the error. `mask` broadcasts to `self`'s shape, as in
    /// PyTorch's `masked_fill_`: a `[T, T]` causal mask over `[B, H, T, T]` scores, makemore's
    /// `bias[:, :, :T, :T]` of `[1, 1, T, T]`, a `[B, 1, 1, T]` padding mask. The result has
    /// `self`'s shape: a mask that would broadcast `self` to a larger one (which PyTorch's
    /// out-of-place `masked_fill` allows) is an error. A mask that is `self`'s trailing axes
    /// once its leading axes of 1 are dropped (the first two) is kept as it is and applied to
    /// each block of `self` in turn; any other is broadcast to `self`'s shape when recorded.
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let params = ParamStore::<f64>::new();
    /// let mut tape = Tape::new();
    /// let g = tape.graph(&params);
    /// let x = g.input(&[2, 1, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    /// // One mask row per batch element: [2, 1, 1] broadcasts over the last axis.
    /// let mask = ndarray::arr3(&[[[true]], [[false]]]);
    /// assert_eq!(x.masked_fill(&mask, 0.0).to_array().into_raw_vec_and_offset().0, [0.0, 0.0, 0.0, 4.0, 5.0, 6.0]);
    /// // A [1, 1, 3] mask is the trailing axis with its leading axes of 1.
    /// let last = ndarray::arr3(&[[[false, false, true]]]);
    /// assert_eq!(x.masked_fill(&last, -1.0).to_array().into_raw_vec_and_offset().0, [1.0, 2.0, -1.0, 4.0, 5.0, -1.0]);
    /// // A mask that does not broadcast to x's shape is an error that names both.
    /// let wrong = ndarray::arr2(&[[true, false]]);
    /// assert_eq!(
    ///     x.try_masked_fill(&wrong, 0.0).unwrap_err().to_string(),
    ///     "masked_fill: shape [1, 2] does not broadcast to [2, 1, 3]"
    /// );
    /// ```
    pub fn try_masked_fill<S: Data<Elem = bool>, D: Dimension>(
        self,
        mask: &ArrayBase<S, D>,
        value: f64,
    ) -> Result<Self> {
        self.g.live(&[self.id])?;
        let shape = self.shape();
        let ms = Shape::new(mask.shape())?;
        let err = TensorError::BroadcastTo { op: "masked_fill", from: ms, to: shape };
        if ms.rank() > shape.rank() {
            return Err(err);
        }
        let ones = ms.dims().iter().take_while(|&&d| d == 1).count();
        let rest = &ms.dims()[ones..];
        let view = mask.view().into_dyn();
        let span = if shape.dims().ends_with(rest) {
            self.g.push_view_as_ids("masked_fill", &view, u32::from, 2)?
        } else {
            let whole = view.broadcast(shape.dims()).ok_or(err)?;
            self.g.push_view_as_ids("masked_fill", &whole, u32::from, 2)?
        };
        let (x, fill) = (self.id, T::of(value));
        Ok(self.g.push(Op::MaskedFill { x, mask: span, value }, shape, false, &[x], |v, out, _| {
            let (xs, m) = (v.get(x), v.ids(span));
            sized(out, xs.len());
            for (o, x) in out.chunks_exact_mut(m.len().max(1)).zip(xs.chunks_exact(m.len().max(1))) {
                o.iter_mut().zip(x).zip(m).for_each(|((o, &x), &m)| *o = if m == 1 { fill } else { x });
            }
        }))
    }

    /// `self` with the positions where `mask` is true replaced by `value` (see
    /// [`Var::try_masked_fill`]).
    pub fn masked_fill<S: Data<Elem = bool>, D: Dimension>(self, mask: &ArrayBase<S, D>, value: f64) -> Self {
        self.g.sticky(self.try_masked_fill(mask, value))
    }

    /// Dropout (`F.dropout(x, p, training)`): in a training graph ([`crate::Tape::graph`]) each
    /// element is zeroed with probability `p` and the others scaled by `1 / (1 - p)`; the mask is
    /// drawn from one 64-bit key taken from `rng` (each element's draw a hash of the key and its
    /// index, in `kernels/dropout.rs`), so the same `rng` state gives the same mask; in an
    /// evaluation graph ([`crate::Tape::no_grad`]), or with `p = 0`, it is
    /// the identity and draws nothing. Or the error, for `p` outside `[0, 1]`.
    pub fn try_dropout<R: Rng + ?Sized>(self, p: f64, rng: &mut R) -> Result<Self> {
        self.g.live(&[self.id])?;
        if !(0.0..=1.0).contains(&p) {
            return Err(TensorError::Probability { op: "dropout", p });
        }
        if p == 0.0 || !self.g.is_grad() {
            return Ok(self);
        }
        let x = self.id;
        let keep = if p < 1.0 { T::of(1.0 / (1.0 - p)) } else { T::zero() };
        // One key per call; each element's draw is a hash of the key and its index
        // (`kernels::dropout`), so the mask is drawn in SIMD lanes.
        let (key, threshold) = (rng.random::<u64>(), kernels::dropout::threshold(p));
        Ok(self.g.push(Op::Dropout(x), self.shape(), false, &[x], |v, out, mask| {
            let xs = v.get(x);
            sized(mask, xs.len());
            sized(out, xs.len());
            kernels::dropout::forward(key, threshold, keep, xs, mask, out);
        }))
    }

    /// Dropout with probability `p` (see [`Var::try_dropout`]).
    pub fn dropout<R: Rng + ?Sized>(self, p: f64, rng: &mut R) -> Self {
        self.g.sticky(self.try_dropout(p, rng))
    }
}

/// The `[t, t]` causal mask of attention: true above the diagonal, where position `i` would see
/// a later position `j > i` (`torch.tril(torch.ones(t, t)) == 0`), for [`Var::masked_fill`].
pub fn causal_mask(t: usize) -> ndarray::Array2<bool> {
    ndarray::Array2::from_shape_fn((t, t), |(i, j)| j > i)
}

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $try:ident) => {
        impl<'g, T: Float> ops::$trait for Var<'g, T> {
            type Output = Var<'g, T>;
            fn $method(self, rhs: Self) -> Self {
                self.g.sticky(self.$try(rhs))
            }
        }

        impl<'g, T: Float> ops::$trait<T> for Var<'g, T> {
            type Output = Var<'g, T>;
            fn $method(self, rhs: T) -> Self {
                let rhs = self.g.scalar(rhs);
                self.g.sticky(self.$try(rhs))
            }
        }
    };
}

binary_operator!(Add, add, try_add);
binary_operator!(Sub, sub, try_sub);
binary_operator!(Mul, mul, try_mul);
binary_operator!(Div, div, try_div);

impl<'g, T: Float> ops::Neg for Var<'g, T> {
    type Output = Var<'g, T>;
    fn neg(self) -> Self {
        self.unary(Op::Neg(self.id), |x| -x)
    }
}

// Gradient rules.
impl<T: Float> Ctx<'_, T> {
    /// `dx (+)= f(g, x, y)` elementwise, for unary ops.
    pub(crate) fn unary(&self, x: NodeId, g: &[T], sinks: &mut Sinks<'_, T>, f: impl Fn(T, T, T) -> T) {
        if let Some((dst, acc)) = sinks.get(x) {
            let it = g.iter().zip(self.x(x)).zip(self.y).map(|((&g, &x), &y)| f(g, x, y));
            store(dst, acc, it);
        }
    }

    /// `a ± b`: the gradient summed back over each operand's broadcast axes.
    pub(crate) fn add_grad(&self, (a, b): (NodeId, NodeId), sub: bool, g: &[T], sinks: &mut Sinks<'_, T>) {
        let bc = Broadcast::new("add", self.shape(a), self.shape(b)).expect("checked when recorded");
        let sign = if sub { -T::one() } else { T::one() };
        // A full-shaped side gets `g` itself: shared rather than copied where it can be (an
        // input used twice, as in `x + x`, never is).
        if !(bc.is_full(Side::Lhs) && sinks.pass(a, self.id))
            && let Some((dst, acc)) = sinks.get(a)
        {
            bc.reduce(Side::Lhs, g, T::one(), dst, acc);
        }
        if !(bc.is_full(Side::Rhs) && !sub && sinks.pass(b, self.id))
            && let Some((dst, acc)) = sinks.get(b)
        {
            bc.reduce(Side::Rhs, g, sign, dst, acc);
        }
    }

    /// `a * b` or `a / b`.
    pub(crate) fn mul_grad(&self, (a, b): (NodeId, NodeId), div: bool, g: &[T], sinks: &mut Sinks<'_, T>) {
        let bc = Broadcast::new("mul", self.shape(a), self.shape(b)).expect("checked when recorded");
        let xs = (g, self.x(a), self.x(b));
        if let Some((dst, acc)) = sinks.get(a) {
            if div {
                bc.grad(Side::Lhs, xs, dst, acc, |g, _, b| g / b);
            } else {
                bc.grad(Side::Lhs, xs, dst, acc, |g, _, b| g * b);
            }
        }
        if let Some((dst, acc)) = sinks.get(b) {
            if div {
                bc.grad(Side::Rhs, xs, dst, acc, |g, a, b| -g * a / (b * b));
            } else {
                bc.grad(Side::Rhs, xs, dst, acc, |g, a, _| g * a);
            }
        }
    }

    /// `x ^ e`: `e x^(e-1)`; zero for `e = 0` (`x^0` is the constant 1), where the formula gives
    /// `0 * inf = NaN` at `x = 0` (PyTorch's `pow_backward` masks that case to 0 as well).
    pub(crate) fn pow_grad(&self, x: NodeId, e: f64, g: &[T], sinks: &mut Sinks<'_, T>) {
        if e == 0.0 {
            return self.unary(x, g, sinks, |_, _, _| T::zero());
        }
        let (e, e1) = (T::of(e), T::of(e - 1.0));
        self.unary(x, g, sinks, |g, x, _| g * e * x.powf(e1));
    }

    /// GELU: `g` times the derivative kept in `aux` by the forward pass (`kernels::gelu`).
    pub(crate) fn gelu_grad(&self, x: NodeId, g: &[T], sinks: &mut Sinks<'_, T>) {
        if let Some((dst, acc)) = sinks.get(x) {
            sized(dst, g.len());
            kernels::gelu::backward(g, self.aux, dst, acc);
        }
    }

    /// `masked_fill`: no gradient where the mask is set.
    pub(crate) fn masked_fill_grad(&self, x: NodeId, mask: &[u32], g: &[T], sinks: &mut Sinks<'_, T>) {
        if let Some((dst, acc)) = sinks.get(x) {
            let it = g.iter().zip(mask.iter().cycle()).map(|(&g, &m)| if m == 1 { T::zero() } else { g });
            store(dst, acc, it);
        }
    }

    /// Dropout: the gradient through the same mask.
    pub(crate) fn dropout_grad(&self, x: NodeId, g: &[T], sinks: &mut Sinks<'_, T>) {
        if let Some((dst, acc)) = sinks.get(x) {
            store(dst, acc, g.iter().zip(self.aux).map(|(&g, &m)| g * m));
        }
    }
}
