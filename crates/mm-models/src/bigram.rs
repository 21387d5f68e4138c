//! The bigram counting model of makemore part 1: the `V x V` matrix `N` of how often each
//! character follows each other in `.` + word + `.`, smoothed by `alpha` and row-normalised into
//! probabilities.

use mm_data::Vocab;
use ndarray::Array2;

use crate::{ModelError, Result};

/// Checks a smoothing `alpha`: a finite number at least 0, else a [`ModelError::Config`].
pub(crate) fn check_alpha(alpha: f64) -> Result<()> {
    if alpha.is_finite() && alpha >= 0.0 {
        return Ok(());
    }
    Err(ModelError::Config(format!("alpha must be a finite number at least 0, got {alpha}")))
}

/// Bigram counts over a vocabulary: `N[a, b]` is how often `b` follows `a` in `.` + word + `.`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BigramCounts {
    vocab: Vocab,
    counts: Array2<u32>,
}

impl BigramCounts {
    /// Counts the bigrams of `words`.
    ///
    /// ```
    /// use mm_models::BigramCounts;
    /// let v = mm_data::Vocab::from_words(&["ab"]);
    /// let m = BigramCounts::fit(&["ab", "a"], &v).unwrap();
    /// assert_eq!(m.counts()[[0, 1]], 2); // ".a" twice
    /// assert_eq!(m.counts()[[1, 0]], 1); // "a." once
    /// ```
    pub fn fit<S: AsRef<str>>(words: &[S], vocab: &Vocab) -> Result<BigramCounts> {
        let v = vocab.len();
        let mut counts = Array2::zeros((v, v));
        let (xs, ys) = mm_data::Examples::bigrams(words, vocab)?;
        for (&a, &b) in xs.iter().zip(&ys) {
            counts[[a as usize, b as usize]] += 1;
        }
        Ok(BigramCounts { vocab: vocab.clone(), counts })
    }

    /// The model from a count matrix (e.g. a checkpoint's `N`).
    pub fn from_counts(vocab: Vocab, counts: Array2<u32>) -> Result<BigramCounts> {
        let v = vocab.len();
        if counts.dim() != (v, v) {
            let msg = format!("counts of shape {:?} for a vocabulary of {v}", counts.dim());
            return Err(crate::ModelError::Config(msg));
        }
        Ok(BigramCounts { vocab, counts })
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// `N`: the count matrix, `[V, V]`.
    pub fn counts(&self) -> &Array2<u32> {
        &self.counts
    }

    /// `P = (N + alpha) / (N + alpha).sum(1, keepdim=True)`: row `a` is the distribution of the
    /// character after `a`. `alpha` is the smoothing (the lecture's "+1"); with `alpha = 0` an
    /// unseen pair has probability 0. A row with no counts and `alpha = 0` is uniform. An `alpha`
    /// that is negative or not finite is a [`ModelError::Config`].
    pub fn probs(&self, alpha: f64) -> Result<Array2<f64>> {
        check_alpha(alpha)?;
        let mut p = self.counts.mapv(|c| f64::from(c) + alpha);
        for mut row in p.rows_mut() {
            let sum: f64 = row.sum();
            if sum > 0.0 {
                row /= sum;
            } else {
                let uniform = 1.0 / row.len() as f64;
                row.fill(uniform);
            }
        }
        Ok(p)
    }

    /// The average negative log-likelihood of the bigrams of `words` under `probs(alpha)`, the
    /// lecture's quality measure. Infinite when a pair has probability 0 (`alpha = 0` and a pair
    /// never seen), which is the honest answer rather than an error.
    pub fn nll<S: AsRef<str>>(&self, words: &[S], alpha: f64) -> Result<f64> {
        let p = self.probs(alpha)?;
        let (xs, ys) = mm_data::Examples::bigrams(words, &self.vocab)?;
        let total: f64 = xs.iter().zip(&ys).map(|(&a, &b)| -p[[a as usize, b as usize]].ln()).sum();
        Ok(total / xs.len().max(1) as f64)
    }

    /// The `k` most frequent bigrams as `(first, second, count)`, most frequent first.
    pub fn top(&self, k: usize) -> Vec<(char, char, u32)> {
        let itos = self.vocab.itos();
        let mut all: Vec<_> = self.counts.indexed_iter().map(|((a, b), &c)| (itos[a], itos[b], c)).collect();
        all.sort_by(|x, y| y.2.cmp(&x.2).then(x.0.cmp(&y.0)).then(x.1.cmp(&y.1)));
        all.truncate(k);
        all
    }
}
