//! Sampling new items from a trained model: batched across names (one forward pass per character
//! position for all unfinished names), with temperature, top-k, a prefix to continue and a length
//! guard; and telling each sample apart as in the training set, in dev/test, or new.

use std::collections::HashSet;

use mm_data::{Layout, Split, Vocab};
use mm_tensor::Tape;
use ndarray::{Array2, ArrayView2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{BigramCounts, Model, ModelError, Result};

/// How to sample.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleConfig {
    /// How many samples.
    pub n: usize,
    /// The seed: the same seed gives the same samples.
    pub seed: u64,
    /// Divides the logits: below 1 is more conservative, above 1 more adventurous.
    pub temperature: f32,
    /// Sample only among the `k` likeliest characters (`None` for all), as makemore's `top_k`:
    /// characters tied with the `k`-th likeliest are kept too.
    pub top_k: Option<usize>,
    /// Characters every sample starts with (each must be in the vocabulary).
    pub prefix: String,
    /// The most characters a sample may have (a guard against a model that never ends).
    pub max_len: usize,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig { n: 20, seed: 42, temperature: 1.0, top_k: None, prefix: String::new(), max_len: 64 }
    }
}

/// Samples `cfg.n` items from a neural model.
///
/// ```no_run
/// # fn demo(model: &mm_models::Mlp) -> mm_models::Result<()> {
/// let cfg = mm_models::SampleConfig { n: 5, prefix: "an".into(), ..Default::default() };
/// for name in mm_models::sample(model, &cfg)? {
///     println!("{name}"); // anaya, andrin, ...
/// }
/// # Ok(()) }
/// ```
pub fn sample<M: Model + ?Sized>(model: &M, cfg: &SampleConfig) -> Result<Vec<String>> {
    let mut next = NextLogits::new(model, cfg.n);
    sample_with(model.vocab(), cfg, |first_step, active, out| next.logits(first_step, active, out))
}

/// One model's logits of the next character at each step of [`sample_with`]: from the model's
/// [`crate::Decoder`] when it has one (one new position at a time, while the sequence fits the
/// block), else from the whole forward pass over the prefix, as makemore's `generate`. What
/// [`sample`] draws from, and each member of [`crate::sample_ensemble`].
pub(crate) struct NextLogits<'m, M: Model + ?Sized> {
    model: &'m M,
    tape: Tape<f32>,
    decoder: Option<Box<dyn crate::Decoder + 'm>>,
    /// Positions of the current rows fed to the decoder so far.
    fed: usize,
}

impl<'m, M: Model + ?Sized> NextLogits<'m, M> {
    /// For drawing `n` samples from `model`.
    pub(crate) fn new(model: &'m M, n: usize) -> Self {
        let decoder = if model.layout() == Layout::Words { model.decoder(CHUNK.min(n)) } else { None };
        NextLogits { model, tape: Tape::new(), decoder, fed: 0 }
    }

    /// The logits of the next character `[active.len(), V]` of the unfinished samples `active`
    /// (indices into the chunk's ids so far, `out`); `first_step` at each chunk's first step
    /// (the arguments of [`sample_with`]'s `next`).
    pub(crate) fn logits(
        &mut self,
        first_step: bool,
        active: &[usize],
        out: &[Vec<u32>],
    ) -> Result<Array2<f32>> {
        let block_size = self.model.block_size();
        match self.model.layout() {
            Layout::Windows => self.full(windows(active, out, block_size).view()),
            Layout::Words => {
                // The start token and the ids so far (every active sample has as many: they
                // grow together).
                let len = out[active[0]].len() + 1;
                let token = |row: usize, pos: usize| if pos == 0 { 0 } else { out[row][pos - 1] };
                match self.decoder.as_mut() {
                    // One new position at a time, while the sequence fits the block.
                    Some(dec) if len <= block_size => {
                        if first_step {
                            self.fed = 0;
                        }
                        let mut logits = None;
                        for pos in self.fed..len {
                            let ids: Vec<u32> = active.iter().map(|&r| token(r, pos)).collect();
                            logits = Some(dec.step(active, &ids, pos)?);
                        }
                        self.fed = len;
                        Ok(logits.expect("at least the newest position is fed"))
                    }
                    // makemore's `generate`: the whole sequence, cropped to the last block_size.
                    _ => {
                        let t = len.min(block_size);
                        let x =
                            Array2::from_shape_fn((active.len(), t), |(i, k)| token(active[i], len - t + k));
                        self.full(x.view())
                    }
                }
            }
        }
    }

    /// The whole forward pass over `x`, and the logits after its last position.
    fn full(&mut self, x: ArrayView2<'_, u32>) -> Result<Array2<f32>> {
        let g = self.tape.no_grad(self.model.params());
        let logits = self.model.forward(&g, x);
        g.check()?;
        let logits = logits.to_array();
        let last = match self.model.layout() {
            Layout::Windows => logits.view(),
            // makemore's `logits[:, -1, :]`: the prediction after the last position.
            Layout::Words => logits.index_axis(Axis(1), x.ncols() - 1),
        };
        Ok(last.into_dimensionality().map_err(mm_tensor::TensorError::from)?.to_owned())
    }
}

/// Samples are drawn in chunks of this many: the decoder's cache stays small (a Transformer's is
/// `2 · n_layer · block_size · n_embd` floats per sample, 8 MB for a chunk at makemore's sizes,
/// zeroed once and reused). Measured on 10,000 Transformer samples (`makemore sample -n 10000`,
/// Intel Xeon with AVX-512, the AVX-512 gemm): 1,024 took 0.76 s, 256 and 128 0.50 s (the cache
/// stays in the processor's caches).
const CHUNK: usize = 256;

/// The inputs of the active samples as windows `[B, block_size]`: the last `block_size` ids of
/// each, with dots before the start.
fn windows(active: &[usize], out: &[Vec<u32>], block_size: usize) -> Array2<u32> {
    Array2::from_shape_fn((active.len(), block_size), |(r, k)| {
        let ids = &out[active[r]];
        let pos = ids.len() as isize - block_size as isize + k as isize;
        if pos < 0 { 0 } else { ids[pos as usize] }
    })
}

/// Samples `cfg.n` items from the counting model, its probabilities smoothed by `alpha`.
pub fn sample_counts(model: &BigramCounts, alpha: f64, cfg: &SampleConfig) -> Result<Vec<String>> {
    let logp = model.probs(alpha)?.mapv(|p| p.ln() as f32);
    sample_with(model.vocab(), cfg, |_, active, out| {
        let prev = |r: usize| out[active[r]].last().copied().unwrap_or(0) as usize;
        Ok(Array2::from_shape_fn((active.len(), logp.ncols()), |(r, c)| logp[[prev(r), c]]))
    })
}

/// The sampling loop, in chunks of [`CHUNK`] samples: at each step, `next(first_step, active,
/// out)` gives the logits of the next character `[active.len(), V]` for the unfinished samples
/// `active` (indices into the chunk's ids so far, `out`); `first_step` is true at each chunk's
/// first step.
pub(crate) fn sample_with(
    vocab: &Vocab,
    cfg: &SampleConfig,
    mut next: impl FnMut(bool, &[usize], &[Vec<u32>]) -> Result<Array2<f32>>,
) -> Result<Vec<String>> {
    if !(cfg.temperature.is_finite() && cfg.temperature > 0.0) {
        return Err(ModelError::Config(format!(
            "temperature must be a positive number, got {}",
            cfg.temperature
        )));
    }
    if cfg.top_k == Some(0) {
        return Err(ModelError::Config("top_k must be at least 1".into()));
    }
    if cfg.prefix.contains(mm_data::DOT) {
        return Err(ModelError::Config(format!("the prefix {:?} contains '.', the end token", cfg.prefix)));
    }
    let prefix = vocab.encode(&cfg.prefix)?;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut names = Vec::with_capacity(cfg.n);
    let mut probs = Vec::with_capacity(vocab.len());
    for start in (0..cfg.n).step_by(CHUNK) {
        let n = CHUNK.min(cfg.n - start);
        // Each sample's ids so far, and whether it has ended.
        let mut out: Vec<Vec<u32>> = vec![prefix.clone(); n];
        let mut done = vec![prefix.len() >= cfg.max_len; n];
        let mut first_step = true;
        loop {
            let active: Vec<usize> = (0..n).filter(|&i| !done[i]).collect();
            if active.is_empty() {
                break;
            }
            let l = next(first_step, &active, &out)?;
            first_step = false;
            for (r, &i) in active.iter().enumerate() {
                next_probs(l.row(r).as_slice().expect("logits are contiguous"), cfg, &mut probs);
                let id = draw(&probs, &mut rng);
                if id == 0 {
                    done[i] = true;
                } else {
                    out[i].push(id);
                    done[i] = out[i].len() >= cfg.max_len;
                }
            }
        }
        for ids in &out {
            names.push(vocab.decode(ids)?);
        }
    }
    Ok(names)
}

/// Softmax of `logits / temperature`, restricted to the top `k`, into `probs`.
fn next_probs(logits: &[f32], cfg: &SampleConfig, probs: &mut Vec<f64>) {
    let t = f64::from(cfg.temperature);
    probs.clear();
    probs.extend(logits.iter().map(|&l| f64::from(l) / t));
    if let Some(k) = cfg.top_k.filter(|&k| k < probs.len()) {
        let mut sorted = probs.clone();
        sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        // As makemore's `generate`: `logits[logits < v[:, [-1]]] = -inf`, so every character
        // tied with the k-th is kept too (more than k may be), and none above it is ever dropped.
        let kth = sorted[k - 1];
        probs.iter_mut().filter(|p| **p < kth).for_each(|p| *p = f64::NEG_INFINITY);
    }
    let max = probs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    probs.iter_mut().for_each(|p| *p = (*p - max).exp());
    let sum: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= sum);
}

/// Draws an index from a distribution (`torch.multinomial(p, 1)`).
fn draw(probs: &[f64], rng: &mut StdRng) -> u32 {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (i, &p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            return i as u32;
        }
    }
    // Rounding left `u` above the total: the last character with any probability.
    probs.iter().rposition(|&p| p > 0.0).unwrap_or(0) as u32
}

/// Where a sample stands relative to the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// It is in the training split: the model reproduced it.
    Train,
    /// It is in the dev or test split: the model generalised to it.
    Held,
    /// It is in no split: new.
    New,
}

/// Tells samples apart as in the training set, in dev/test, or new, as makemore does, in
/// constant time per sample (hash sets, not a scan of the dataset).
#[derive(Clone, Debug)]
pub struct Novelty {
    train: HashSet<String>,
    held: HashSet<String>,
}

impl Novelty {
    /// The sets of a split.
    pub fn new(split: &Split) -> Novelty {
        Novelty {
            train: split.train.iter().cloned().collect(),
            held: split.dev.iter().chain(&split.test).cloned().collect(),
        }
    }

    /// Where `sample` stands.
    pub fn origin(&self, sample: &str) -> Origin {
        if self.train.contains(sample) {
            Origin::Train
        } else if self.held.contains(sample) {
            Origin::Held
        } else {
            Origin::New
        }
    }
}
