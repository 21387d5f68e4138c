//! makemore.py's `RNN`: a learned starting hidden state (`start`), token embeddings (`wte`), a
//! recurrent cell applied position by position, and `lm_head` on every hidden state. The cell
//! is makemore's `RNNCell` ([`RnnCell`], `--type rnn`) or `GRUCell` ([`GruCell`], `--type
//! gru`). makemore's defaults (n_embd 64, n_embd2 64, vocab 27) have 11,803 and 28,315
//! parameters.

use std::fmt::Debug;

use mm_tensor::{Float, Graph, ParamId, ParamStore, Var};
use ndarray::ArrayView2;

use super::{Builder, Embedding, Init, Linear, ModelConfig, ZooModel};
use crate::Result;

/// A recurrent cell: from the input at one position `xt` `[B, n_embd]` and the previous hidden
/// state `hprev` `[B, n_embd2]` to the next hidden state `[B, n_embd2]`.
pub trait Cell: Clone + Debug + Send + Sync {
    /// makemore's `--type`: `rnn` or `gru`.
    const KIND: &'static str;

    /// Declares the cell's parameters under `{name}.*`.
    fn new<T: Float>(b: &mut Builder<'_, T>, name: &str, c: &ModelConfig) -> Result<Self>;

    /// `h_t = cell(x_t, h_{t-1})`.
    fn forward<'g, T: Float>(&self, xt: Var<'g, T>, hprev: Var<'g, T>) -> Var<'g, T>;

    /// The cell over every position of `x` `[B, T, n_embd]` from `h0` `[B, n_embd2]`: every
    /// hidden state, `[B, T, n_embd2]`. This default is makemore's loop written out
    /// ([`Cell::forward`] position by position, then `stack`); makemore's cells override it
    /// with their fused scans (`rnn_scan`, `gru_scan`), which compute the same values and
    /// gradients as one op.
    fn scan<'g, T: Float>(&self, x: Var<'g, T>, h0: Var<'g, T>) -> Var<'g, T> {
        // x is [B, T, n_embd] (or an earlier error's placeholder, which has no positions).
        let t = x.shape().dims().get(1).copied().unwrap_or(0);
        let mut hprev = h0;
        // The hidden states, on the stack for makemore's lengths.
        let mut few = [hprev; 64];
        let mut many = Vec::new();
        for i in 0..t {
            hprev = self.forward(x.select(1, i), hprev);
            match few.get_mut(i) {
                Some(h) => *h = hprev,
                None => many.push(hprev),
            }
        }
        let g = x.graph();
        if t <= few.len() { g.stack(&few[..t], 1) } else { g.stack(&[&few[..], &many[..]].concat(), 1) }
    }
}

/// makemore's `RNNCell`: `tanh(xh_to_h(cat([xt, hprev])))`.
#[derive(Clone, Debug)]
pub struct RnnCell {
    xh_to_h: Linear,
}

impl Cell for RnnCell {
    const KIND: &'static str = "rnn";

    fn new<T: Float>(b: &mut Builder<'_, T>, name: &str, c: &ModelConfig) -> Result<Self> {
        let (xh, h) = (c.n_embd + c.n_embd2, c.n_embd2);
        Ok(RnnCell { xh_to_h: Linear::new(b, &format!("{name}.xh_to_h"), xh, h, true)? })
    }

    fn forward<'g, T: Float>(&self, xt: Var<'g, T>, hprev: Var<'g, T>) -> Var<'g, T> {
        let xh = xt.graph().concat(&[xt, hprev], 1);
        self.xh_to_h.forward(xh).tanh()
    }

    fn scan<'g, T: Float>(&self, x: Var<'g, T>, h0: Var<'g, T>) -> Var<'g, T> {
        let (w, b) = self.xh_to_h.weight_and_bias(x.graph());
        x.rnn_scan(h0, w, b)
    }
}

/// makemore's `GRUCell`: a reset gate `r` wipes channels of the previous state before the
/// candidate `hbar` is computed, and an update gate `z` blends the previous state and `hbar`.
#[derive(Clone, Debug)]
pub struct GruCell {
    xh_to_z: Linear,
    xh_to_r: Linear,
    xh_to_hbar: Linear,
}

impl Cell for GruCell {
    const KIND: &'static str = "gru";

    fn new<T: Float>(b: &mut Builder<'_, T>, name: &str, c: &ModelConfig) -> Result<Self> {
        let (xh, h) = (c.n_embd + c.n_embd2, c.n_embd2);
        Ok(GruCell {
            xh_to_z: Linear::new(b, &format!("{name}.xh_to_z"), xh, h, true)?,
            xh_to_r: Linear::new(b, &format!("{name}.xh_to_r"), xh, h, true)?,
            xh_to_hbar: Linear::new(b, &format!("{name}.xh_to_hbar"), xh, h, true)?,
        })
    }

    fn forward<'g, T: Float>(&self, xt: Var<'g, T>, hprev: Var<'g, T>) -> Var<'g, T> {
        let g = xt.graph();
        let xh = g.concat(&[xt, hprev], 1);
        let r = self.xh_to_r.forward(xh).sigmoid();
        let hprev_reset = r * hprev;
        let xhr = g.concat(&[xt, hprev_reset], 1);
        let hbar = self.xh_to_hbar.forward(xhr).tanh();
        let z = self.xh_to_z.forward(xh).sigmoid();
        (-z + T::one()) * hprev + z * hbar // (1 - z) * hprev + z * hbar
    }

    fn scan<'g, T: Float>(&self, x: Var<'g, T>, h0: Var<'g, T>) -> Var<'g, T> {
        let g = x.graph();
        let gates = [&self.xh_to_z, &self.xh_to_r, &self.xh_to_hbar].map(|l| l.weight_and_bias(g));
        x.gru_scan(h0, gates)
    }
}

/// Row ids of `start` for up to 4,096 sequences (training batches, evaluation and sampling
/// chunks), so that expanding it allocates nothing.
static ZEROS: [u32; 4096] = [0; 4096];

/// makemore.py's `RNN` language model over the cell `C`: [`Rnn`] (`--type rnn`) and [`Gru`]
/// (`--type gru`).
#[derive(Clone, Debug)]
pub struct Recurrent<T, C> {
    config: ModelConfig,
    params: ParamStore<T>,
    /// `[1, n_embd2]`: the hidden state before the first position.
    start: ParamId,
    wte: Embedding,
    cell: C,
    lm_head: Linear,
}

/// makemore.py's `RNN(config, cell_type="rnn")`.
pub type Rnn<T = f32> = Recurrent<T, RnnCell>;

/// makemore.py's `RNN(config, cell_type="gru")`.
pub type Gru<T = f32> = Recurrent<T, GruCell>;

impl<T: Float, C: Cell> ZooModel<T> for Recurrent<T, C> {
    fn kind(&self) -> &'static str {
        C::KIND
    }

    /// `start`, `wte`, `cell.*`, `lm_head`.
    fn build(config: ModelConfig, mut b: Builder<'_, T>) -> Result<Self> {
        config.check(C::KIND)?;
        let c = &config;
        let start = b.param("start", &[1, c.n_embd2], Init::Zeros)?;
        let wte = Embedding::new(&mut b, "wte", c.vocab_size, c.n_embd)?;
        let cell = C::new(&mut b, "cell", c)?;
        let lm_head = Linear::new(&mut b, "lm_head", c.n_embd2, c.vocab_size, true)?;
        Ok(Recurrent { config, params: b.finish()?, start, wte, cell, lm_head })
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

    /// `emb = wte(idx)`; from `hprev = start` (one row per sequence) the cell runs over the
    /// positions, `h_t = cell(emb[:, t, :], h_{t-1})` ([`Cell::scan`]); `lm_head(stack(h, 1))`.
    fn forward<'g>(&self, g: &'g Graph<'_, T>, idx: ArrayView2<'_, u32>) -> Var<'g, T> {
        let b = idx.dim().0;
        let emb = self.wte.forward(g, &idx); // [B, T, n_embd]
        // start.expand((b, -1)): row 0 of `start` gathered b times (its gradient is their sum).
        let start = g.param(self.start);
        let hprev = match ZEROS.get(..b) {
            Some(zeros) => start.embedding(zeros),
            None => start.embedding(&vec![0u32; b]),
        }; // [B, n_embd2]
        let hidden = self.cell.scan(emb, hprev); // [B, T, n_embd2]
        self.lm_head.forward(hidden)
    }
}
