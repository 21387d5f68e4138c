//! The building blocks of makemore.py's models, as PyTorch's modules: [`Linear`]
//! (`nn.Linear`), [`Embedding`] (`nn.Embedding`) and [`LayerNorm`] (`nn.LayerNorm`). Each
//! declares its parameters under `{name}.weight` / `{name}.bias` in PyTorch's layouts and
//! applies them with the engine's fused op.

use mm_tensor::{AsIds, Float, Graph, ParamId, Var};

use super::{Builder, Init};
use crate::Result;

/// `nn.Linear(in, out, bias)`: `{name}.weight` `[out, in]`, `{name}.bias` `[out]`.
#[derive(Clone, Copy, Debug)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: ParamId,
    /// `[out]`, if the layer has one.
    pub bias: Option<ParamId>,
}

impl Linear {
    /// Declares `{name}.weight` and, with `bias`, `{name}.bias`.
    pub fn new<T: Float>(
        b: &mut Builder<'_, T>,
        name: &str,
        inp: usize,
        out: usize,
        bias: bool,
    ) -> Result<Self> {
        let init = Init::Uniform { fan_in: inp };
        let weight = b.param(&format!("{name}.weight"), &[out, inp], init)?;
        let bias = if bias { Some(b.param(&format!("{name}.bias"), &[out], init)?) } else { None };
        Ok(Linear { weight, bias })
    }

    /// The weight and the bias on graph `g`, for a fused op that takes them apart (the
    /// recurrent cells' scans, makemore's MLP), whose layers are all declared with a bias.
    pub(crate) fn weight_and_bias<'g, T: Float>(&self, g: &'g Graph<'_, T>) -> (Var<'g, T>, Var<'g, T>) {
        let bias = self.bias.expect("the fused ops' layers are declared with a bias");
        (g.param(self.weight), g.param(bias))
    }

    /// `F.linear(x, weight, bias)`: `x @ weightᵀ + bias` over the last axis of `x`.
    pub fn forward<'g, T: Float>(&self, x: Var<'g, T>) -> Var<'g, T> {
        let g = x.graph();
        x.linear_t(g.param(self.weight), self.bias.map(|b| g.param(b)))
    }
}

/// `nn.Embedding(num, dim)`: `{name}.weight` `[num, dim]`.
#[derive(Clone, Copy, Debug)]
pub struct Embedding {
    /// `[num, dim]`.
    pub weight: ParamId,
}

impl Embedding {
    /// Declares `{name}.weight`.
    pub fn new<T: Float>(b: &mut Builder<'_, T>, name: &str, num: usize, dim: usize) -> Result<Self> {
        Ok(Embedding { weight: b.param(&format!("{name}.weight"), &[num, dim], Init::Normal)? })
    }

    /// `weight[ids]`: `[..ids' shape, dim]`.
    pub fn forward<'g, T: Float>(&self, g: &'g Graph<'_, T>, ids: &(impl AsIds + ?Sized)) -> Var<'g, T> {
        g.param(self.weight).embedding(ids)
    }

    /// `weight[arange(t)]`: rows `0..t`, `[t, dim]` (a position embedding, makemore's
    /// `wpe(pos)`), as a narrow of the table: no ids needed.
    pub fn first<'g, T: Float>(&self, g: &'g Graph<'_, T>, t: usize) -> Var<'g, T> {
        g.param(self.weight).narrow(0, 0, t)
    }
}

/// `nn.LayerNorm(dim)` (eps 1e-5): `{name}.weight` (ones) and `{name}.bias` (zeros), `[dim]`.
#[derive(Clone, Copy, Debug)]
pub struct LayerNorm {
    /// `[dim]`.
    pub weight: ParamId,
    /// `[dim]`.
    pub bias: ParamId,
}

impl LayerNorm {
    /// `nn.LayerNorm`'s default eps.
    pub const EPS: f64 = 1e-5;

    /// Declares `{name}.weight` and `{name}.bias`.
    pub fn new<T: Float>(b: &mut Builder<'_, T>, name: &str, dim: usize) -> Result<Self> {
        let weight = b.param(&format!("{name}.weight"), &[dim], Init::Ones)?;
        Ok(LayerNorm { weight, bias: b.param(&format!("{name}.bias"), &[dim], Init::Zeros)? })
    }

    /// `F.layer_norm(x, [dim], weight, bias, 1e-5)` over the last axis of `x`.
    pub fn forward<'g, T: Float>(&self, x: Var<'g, T>) -> Var<'g, T> {
        let g = x.graph();
        x.layer_norm(g.param(self.weight), g.param(self.bias), Self::EPS)
    }
}
