//! makemore.py's `Bigram`: "a lookup table of logits for the next character given a previous
//! character", one `[vocab_size, vocab_size]` parameter `logits` starting at zero (729
//! parameters on `names.txt`). The lectures' counting model and bigram net are
//! [`crate::BigramCounts`] and [`crate::BigramNet`].

use mm_tensor::{Float, Graph, ParamId, ParamStore, Var};
use ndarray::ArrayView2;

use super::{Builder, Init, ModelConfig, ZooModel};
use crate::Result;

/// makemore.py's `Bigram` language model.
#[derive(Clone, Debug)]
pub struct BigramMakemore<T = f32> {
    config: ModelConfig,
    params: ParamStore<T>,
    /// `[vocab_size, vocab_size]`: row `i` holds the logits of the character after `i`.
    logits: ParamId,
}

impl<T: Float> ZooModel<T> for BigramMakemore<T> {
    fn kind(&self) -> &'static str {
        "bigram"
    }

    /// `logits`, zeros.
    fn build(config: ModelConfig, mut b: Builder<'_, T>) -> Result<Self> {
        config.check("bigram")?;
        let v = config.vocab_size;
        let logits = b.param("logits", &[v, v], Init::Zeros)?;
        Ok(BigramMakemore { config, params: b.finish()?, logits })
    }

    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn params(&self) -> &ParamStore<T> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamStore<T> {
        &mut self.params
    }

    /// `self.logits[idx]`: `[B, T, vocab_size]`.
    fn forward<'g>(&self, g: &'g Graph<'_, T>, idx: ArrayView2<'_, u32>) -> Var<'g, T> {
        g.param(self.logits).embedding(&idx)
    }
}
