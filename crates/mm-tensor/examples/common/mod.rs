//! The lecture MLP's step as the examples that time it take it: its five parameters (`randn`,
//! drawn in the order C, W1, b1, W2, b2), a fixed batch of 32 contexts of 3 ids and their
//! targets, and the forward pass to the loss.

use mm_tensor::{Graph, ParamId, ParamStore, Result, Var, init};

/// The lecture's MLP (n_embd 10, block 3, n_hidden 200, vocab 27) and a fixed batch.
pub struct LectureMlp {
    pub params: ParamStore<f32>,
    /// C, W1, b1, W2, b2.
    pub ids: [ParamId; 5],
    pub xb: ndarray::Array2<u32>,
    pub yb: Vec<u32>,
}

impl LectureMlp {
    pub fn new(rng: &mut impl rand::Rng) -> Result<Self> {
        let mut params = ParamStore::<f32>::new();
        let mut add = |name: &str, shape: &[usize]| params.add(name, init::randn(shape, &mut *rng));
        let ids = [
            add("C", &[27, 10])?,
            add("W1", &[30, 200])?,
            add("b1", &[200])?,
            add("W2", &[200, 27])?,
            add("b2", &[27])?,
        ];
        let xb = ndarray::Array2::from_shape_fn((32, 3), |(r, k)| ((r * 7 + k * 13) % 27) as u32);
        let yb = (0..32).map(|i| (i * 5 % 27) as u32).collect();
        Ok(LectureMlp { params, ids, xb, yb })
    }

    /// The batch's mean cross-entropy, recorded on `g` (a graph over `self.params`).
    pub fn loss<'g>(&self, g: &'g Graph<'g, f32>) -> Var<'g, f32> {
        let [c, w1, b1, w2, b2] = self.ids;
        let emb = g.param(c).embedding(&self.xb);
        let h = emb.reshape(&[32, 30]).linear(g.param(w1), g.param(b1)).tanh();
        h.linear(g.param(w2), g.param(b2)).cross_entropy(&self.yb[..])
    }
}
