//! The bigram neural net of makemore part 1: one `V x V` weight matrix `W`; the logits for a
//! character are the row of `W` it picks (the same as `one_hot(x) @ W` without the matmul).

use mm_data::Vocab;
use mm_tensor::{Graph, ParamId, ParamStore, Var, init};
use ndarray::ArrayView2;
use rand::Rng;

use crate::{Model, Result};

/// The bigram neural net, with L2 regularisation `reg * mean(W²)` (the lecture's 0.01), which
/// plays the role of the counting model's smoothing.
#[derive(Clone, Debug)]
pub struct BigramNet {
    vocab: Vocab,
    params: ParamStore<f32>,
    w: ParamId,
    /// The strength of the regularisation.
    pub reg: f32,
}

impl BigramNet {
    /// A net over `vocab` with `W` from a standard normal drawn from `rng`.
    pub fn new<R: Rng + ?Sized>(vocab: &Vocab, reg: f32, rng: &mut R) -> Result<BigramNet> {
        let v = vocab.len();
        let mut params = ParamStore::new();
        let w = params.add("W", init::randn::<f32, _>(&[v, v], rng))?;
        Ok(BigramNet { vocab: vocab.clone(), params, w, reg })
    }

    /// The id of `W`.
    pub fn w(&self) -> ParamId {
        self.w
    }
}

impl Model for BigramNet {
    fn kind(&self) -> &'static str {
        "bigram-nn"
    }

    fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    fn block_size(&self) -> usize {
        1
    }

    fn config(&self) -> Vec<(&'static str, String)> {
        vec![("reg", self.reg.to_string())]
    }

    fn params(&self) -> &ParamStore<f32> {
        &self.params
    }

    fn params_mut(&mut self) -> &mut ParamStore<f32> {
        &mut self.params
    }

    /// `logits = W[x]`: the row of `W` picked by the previous character.
    fn forward<'g>(&self, g: &'g Graph<'g, f32>, x: ArrayView2<'_, u32>) -> Var<'g, f32> {
        let v = self.vocab.len();
        g.param(self.w).embedding(&x).reshape(&[x.nrows(), v])
    }

    /// `cross_entropy(W[x], y) + reg * mean(W²)`. The cross-entropy is fused with the row lookup
    /// (`lookup_cross_entropy`): examples with the same previous character share their logits, so
    /// a full-batch step costs 27 log-softmaxes and a count of the examples, not 228,146 rows.
    fn loss<'g>(&self, g: &'g Graph<'g, f32>, x: ArrayView2<'_, u32>, y: &[u32]) -> Var<'g, f32> {
        let w = g.param(self.w);
        w.lookup_cross_entropy(&x, y) + w.pow(2.0).mean() * self.reg
    }
}
