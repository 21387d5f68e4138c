//! Where a zoo model's parameters come from: a [`Builder`] either initialises each one as
//! PyTorch's module would, or takes it by name from a state dict (`load_state_dict`). A model
//! declares every parameter once, through the builder, so its names, shapes, order and
//! initialisation cannot drift apart between a fresh model and a loaded one.

use mm_tensor::{Float, ParamId, ParamStore, init};
use ndarray::ArrayD;
use rand::RngCore;

use crate::Result;

/// A parameter that cannot be loaded: each names the parameter and, for a shape, both shapes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// The state dict lacks a parameter the model has.
    #[error("missing parameter {name:?} (shape {shape:?})")]
    Missing {
        /// The parameter's `state_dict()` name.
        name: String,
        /// The shape the model needs.
        shape: Vec<usize>,
    },
    /// The state dict's parameter has another shape than the model's.
    #[error("parameter {name:?} has shape {got:?}, the model needs {want:?}")]
    Shape {
        /// The parameter's `state_dict()` name.
        name: String,
        /// The state dict's shape.
        got: Vec<usize>,
        /// The model's shape.
        want: Vec<usize>,
    },
    /// The state dict has a parameter the model does not.
    #[error("unexpected parameter {name:?}: the model has none of that name")]
    Unexpected {
        /// The state dict's name.
        name: String,
    },
}

/// How PyTorch's modules initialise a parameter (makemore.py keeps the defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`: `nn.Linear`'s weight (`kaiming_uniform_` with
    /// `a = sqrt(5)`) and bias.
    Uniform {
        /// The layer's input width.
        fan_in: usize,
    },
    /// `N(0, 1)`: `nn.Embedding`'s weight.
    Normal,
    /// Ones: `nn.LayerNorm`'s weight.
    Ones,
    /// Zeros: `nn.LayerNorm`'s bias, the RNN's `start`.
    Zeros,
}

/// Where the parameters come from.
enum Source<'a, T> {
    /// Fresh, drawn from this generator.
    Init(&'a mut dyn RngCore),
    /// Copied by name from this state dict; `used[i]` says whether its parameter `i` was taken.
    Load { state: &'a ParamStore<T>, used: Vec<bool> },
}

/// Registers a model's parameters, in the order they are declared, into a new [`ParamStore`].
pub struct Builder<'a, T> {
    source: Source<'a, T>,
    store: ParamStore<T>,
}

impl<'a, T: Float> Builder<'a, T> {
    /// A builder that initialises each parameter as PyTorch does, from `rng`.
    pub fn init(rng: &'a mut dyn RngCore) -> Self {
        Builder { source: Source::Init(rng), store: ParamStore::new() }
    }

    /// A builder that copies each parameter from `state` by name.
    pub fn load(state: &'a ParamStore<T>) -> Self {
        Builder { source: Source::Load { state, used: vec![false; state.len()] }, store: ParamStore::new() }
    }

    /// Declares the parameter `name` of `shape`, initialised by `init` (or loaded).
    pub fn param(&mut self, name: &str, shape: &[usize], init: Init) -> Result<ParamId> {
        let value = match &mut self.source {
            Source::Init(rng) => fresh(shape, init, &mut **rng),
            Source::Load { state, used } => {
                let missing = || ParamError::Missing { name: name.to_string(), shape: shape.to_vec() };
                let id = state.id(name).ok_or_else(missing)?;
                let got = state.get(id);
                if got.shape() != shape {
                    let (got, want) = (got.shape().to_vec(), shape.to_vec());
                    return Err(ParamError::Shape { name: name.to_string(), got, want }.into());
                }
                used[id.index()] = true;
                got.to_owned()
            }
        };
        Ok(self.store.add(name, value)?)
    }

    /// The parameters, once every one is declared; loading, an error if the state dict has one
    /// the model did not declare.
    pub fn finish(self) -> Result<ParamStore<T>> {
        if let Source::Load { state, used } = &self.source
            && let Some(id) = state.ids().find(|id| !used[id.index()])
        {
            return Err(ParamError::Unexpected { name: state.name(id).to_string() }.into());
        }
        Ok(self.store)
    }
}

/// A fresh parameter (drawn in `f64`, so that both precisions draw the same numbers).
fn fresh<T: Float>(shape: &[usize], how: Init, rng: &mut dyn RngCore) -> ArrayD<T> {
    let a: ArrayD<f64> = match how {
        Init::Uniform { fan_in } => {
            let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
            init::uniform(shape, -bound, bound, rng)
        }
        Init::Normal => init::randn(shape, rng),
        Init::Ones => ArrayD::ones(shape),
        Init::Zeros => ArrayD::zeros(shape),
    };
    a.mapv(T::of)
}
