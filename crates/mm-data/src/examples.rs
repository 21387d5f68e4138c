//! Training examples, as compact `u32` arrays the engine takes directly, and minibatches drawn
//! from them. Two ways to cut words into examples:
//!
//! - [`Examples::windows`]: the lectures' context windows (and bigram pairs): one example per
//!   character, its `block_size` previous characters predicting it;
//! - [`Examples::words`]: makemore.py's `CharDataset`: one example per word, `x = [0, w...]` and
//!   `y = [w..., 0]` padded to `block_size`, a prediction at every position (the models of
//!   makemore.py read whole words).

use ndarray::{Array1, Array2};
use rand::Rng;

use crate::{DataError, Result, Vocab};

/// How a model reads words, and so which examples it trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Context windows, one example per character ([`Examples::windows`]): the lectures'
    /// models.
    Windows,
    /// Whole words, one example per word with a target at every position
    /// ([`Examples::words`]): makemore.py's models.
    Words,
}

/// Examples: `x` holds each example's inputs (`[N, block_size]` ids), `y` its targets (`[N, k]`:
/// one for a context window, one per position for a word, [`Examples::NO_TARGET`] where there
/// is none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Examples {
    /// The inputs, `[N, block_size]`: context windows, or whole words.
    pub x: Array2<u32>,
    /// The targets, `[N, 1]` for windows, `[N, block_size]` for words.
    pub y: Array2<u32>,
}

/// An empty vector with room for `rows × block_size` ids, or [`DataError::ExamplesTooLarge`]
/// where memory cannot hold them (a failed allocation would abort the process, not return an
/// error).
fn reserved(rows: usize, block_size: usize) -> Result<Vec<u32>> {
    let too_large = || DataError::ExamplesTooLarge { rows, block_size };
    let len = rows.checked_mul(block_size).ok_or_else(too_large)?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| too_large())?;
    Ok(v)
}

/// `rows × block_size` copies of `fill` ([`reserved`] first).
fn ids(rows: usize, block_size: usize, fill: u32) -> Result<Vec<u32>> {
    let mut v = reserved(rows, block_size)?;
    v.resize(rows * block_size, fill);
    Ok(v)
}

impl Examples {
    /// The target of a position that has none: a word's positions after its end token
    /// (makemore's -1, which its loss ignores). mm-tensor's `cross_entropy` ignores it too
    /// (`mm_tensor::IGNORE`).
    pub const NO_TARGET: u32 = u32::MAX;

    /// The examples of `words` for a model that reads them as `layout` says.
    pub fn new<S: AsRef<str>>(
        words: &[S],
        vocab: &Vocab,
        layout: Layout,
        block_size: usize,
    ) -> Result<Examples> {
        match layout {
            Layout::Windows => Self::windows(words, vocab, block_size),
            Layout::Words => Self::words(words, vocab, block_size),
        }
    }

    /// Context windows of `block_size` characters, as in makemore part 2: for each word, start
    /// from `block_size` dots (id 0), and slide, one example per character plus the end token.
    /// A block size of 1 gives the bigram pairs (`xs`, `ys`) as an `[N, 1]` array.
    ///
    /// ```
    /// use mm_data::{Examples, Vocab};
    /// let v = Vocab::from_words(&["emma"]);
    /// let ex = Examples::windows(&["emma"], &v, 3).unwrap();
    /// // ... -> e, ..e -> m, .em -> m, emm -> a, mma -> .
    /// assert_eq!(ex.len(), 5);
    /// assert_eq!(ex.x.row(3).to_vec(), [v.id('e').unwrap(), v.id('m').unwrap(), v.id('m').unwrap()]);
    /// assert_eq!(ex.y[[4, 0]], 0);
    /// ```
    pub fn windows<S: AsRef<str>>(words: &[S], vocab: &Vocab, block_size: usize) -> Result<Examples> {
        if block_size == 0 {
            return Err(DataError::ZeroBlockSize);
        }
        let n: usize = words.iter().map(|w| w.as_ref().chars().count() + 1).sum();
        let mut x = reserved(n, block_size)?;
        let mut y = Vec::with_capacity(n);
        let mut context = ids(1, block_size, 0)?;
        for w in words {
            context.iter_mut().for_each(|c| *c = 0);
            for ix in vocab.encode(w.as_ref())?.into_iter().chain([0]) {
                x.extend_from_slice(&context);
                y.push(ix);
                context.rotate_left(1);
                context[block_size - 1] = ix;
            }
        }
        let x = Array2::from_shape_vec((y.len(), block_size), x).expect("one context per target");
        let y = Array2::from_shape_vec((y.len(), 1), y).expect("one target per example");
        Ok(Examples { x, y })
    }

    /// Whole words as makemore.py's `CharDataset` encodes them: for each word `w` of `len`
    /// characters, `x = [0, w..., 0...]` and `y = [w..., 0, NO_TARGET...]`, both `block_size`
    /// long; position `t` of `y` is the character that follows `x[..=t]` (the end token 0 after
    /// the last). Every character of a word and its end token is a target, as for
    /// [`Examples::windows`], so a loss averaged over the targets means the same for both.
    /// makemore's `block_size` is the longest word + 1 (16 for `names.txt`); a longer word is an
    /// error.
    ///
    /// ```
    /// use mm_data::{Examples, Vocab};
    /// let v = Vocab::from_words(&["emma", "ava"]);
    /// let ex = Examples::words(&["emma"], &v, 6).unwrap();
    /// let id = |c| v.id(c).unwrap();
    /// assert_eq!(ex.x.row(0).to_vec(), [0, id('e'), id('m'), id('m'), id('a'), 0]);
    /// assert_eq!(ex.y.row(0).to_vec(), [id('e'), id('m'), id('m'), id('a'), 0, Examples::NO_TARGET]);
    /// assert_eq!((ex.len(), ex.targets()), (1, 5));
    /// assert!(Examples::words(&["emma"], &v, 4).is_err());
    /// ```
    pub fn words<S: AsRef<str>>(words: &[S], vocab: &Vocab, block_size: usize) -> Result<Examples> {
        if block_size == 0 {
            return Err(DataError::ZeroBlockSize);
        }
        let rows = words.len();
        let x = ids(rows, block_size, 0)?;
        let mut x = Array2::from_shape_vec((rows, block_size), x).expect("rows × block_size ids");
        let y = ids(rows, block_size, Self::NO_TARGET)?;
        let mut y = Array2::from_shape_vec((rows, block_size), y).expect("rows × block_size ids");
        for (i, w) in words.iter().enumerate() {
            let ids = vocab.encode(w.as_ref())?;
            if ids.len() >= block_size {
                // The longest word, not this first one, so that the block_size the error asks
                // for holds every word (`.rev()`: the first of equally long ones).
                let len = |w: &S| w.as_ref().chars().count();
                let longest = words[i..].iter().rev().max_by_key(|w| len(w)).unwrap_or(w);
                let word = longest.as_ref().to_string();
                return Err(DataError::WordTooLong { len: len(longest), word, block_size });
            }
            for (t, &id) in ids.iter().enumerate() {
                x[[i, t + 1]] = id;
                y[[i, t]] = id;
            }
            y[[i, ids.len()]] = 0;
        }
        Ok(Examples { x, y })
    }

    /// The bigram pairs over `.` + word + `.`: `xs` (the previous character) and `ys` (the
    /// next). 228,146 pairs for `names.txt`.
    pub fn bigrams<S: AsRef<str>>(words: &[S], vocab: &Vocab) -> Result<(Array1<u32>, Array1<u32>)> {
        let ex = Self::windows(words, vocab, 1)?;
        let n = ex.len();
        let flat = |a: Array2<u32>| a.into_shape_with_order(n).expect("[N, 1] is N elements");
        Ok((flat(ex.x), flat(ex.y)))
    }

    /// The number of examples (rows).
    pub fn len(&self) -> usize {
        self.x.nrows()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of targets (those that are not [`Examples::NO_TARGET`]): the characters a
    /// loss over these examples predicts. For windows, [`Examples::len`].
    pub fn targets(&self) -> usize {
        self.y.iter().filter(|&&t| t != Self::NO_TARGET).count()
    }

    /// Targets per example: 1 for windows, `block_size` for words.
    pub fn targets_per_row(&self) -> usize {
        self.y.ncols()
    }

    /// The context length.
    pub fn block_size(&self) -> usize {
        self.x.ncols()
    }

    /// Fills `batch` with examples drawn uniformly with replacement (the lecture's
    /// `torch.randint(0, X.shape[0], (32,))`), reusing its arrays: no allocation once sized.
    /// `batch` keeps its number of rows; its arrays take these examples' widths.
    pub fn sample_into<R: Rng + ?Sized>(&self, rng: &mut R, batch: &mut Batch) -> Result<()> {
        if self.is_empty() {
            return Err(DataError::NoExamples);
        }
        let (b, bs, k) = (batch.x.nrows(), self.block_size(), self.targets_per_row());
        if batch.x.dim() != (b, bs) || !batch.x.is_standard_layout() {
            batch.x = Array2::zeros((b, bs));
        }
        if batch.y.dim() != (b, k) || !batch.y.is_standard_layout() {
            batch.y = Array2::zeros((b, k));
        }
        // Rows are copied as slices: ndarray's row assignment costs more than the copy itself
        // at a block size of 3.
        let fits = u32::try_from(self.len()).is_ok();
        let slices =
            (batch.x.as_slice_mut(), batch.y.as_slice_mut(), self.x.as_slice(), self.y.as_slice(), fits);
        let (Some(dst), Some(y), Some(src), Some(targets), true) = slices else {
            for i in 0..b {
                let r = rng.random_range(0..self.len());
                batch.x.row_mut(i).assign(&self.x.row(r));
                batch.y.row_mut(i).assign(&self.y.row(r));
            }
            return Ok(());
        };
        if k != 1 {
            // Whole words: each row with its row of targets.
            for (row, out) in dst.chunks_exact_mut(bs).zip(y.chunks_exact_mut(k)) {
                let r = rng.random_range(0..self.len());
                row.copy_from_slice(&src[r * bs..][..bs]);
                out.copy_from_slice(&targets[r * k..][..k]);
            }
            return Ok(());
        }
        // The indices first (parked in `y`), then the rows: the rows' cache misses overlap
        // rather than waiting on the generator in between.
        for y in y.iter_mut() {
            *y = rng.random_range(0..self.len()) as u32;
        }
        /// Row `y[i]` of `src` into row `i` of `dst`, then `y[i]` = its target; `BS` is the
        /// row length (a constant, so the copy is a few moves, not a `memcpy` call).
        fn gather<const BS: usize>(src: &[u32], targets: &[u32], dst: &mut [u32], y: &mut [u32]) {
            for (row, y) in dst.as_chunks_mut::<BS>().0.iter_mut().zip(y) {
                let k = *y as usize;
                *row = src[k * BS..][..BS].try_into().expect("BS elements");
                *y = targets[k];
            }
        }
        match bs {
            1 => gather::<1>(src, targets, dst, y),
            2 => gather::<2>(src, targets, dst, y),
            3 => gather::<3>(src, targets, dst, y),
            4 => gather::<4>(src, targets, dst, y),
            5 => gather::<5>(src, targets, dst, y),
            6 => gather::<6>(src, targets, dst, y),
            7 => gather::<7>(src, targets, dst, y),
            8 => gather::<8>(src, targets, dst, y),
            _ => {
                for (i, y) in y.iter_mut().enumerate() {
                    let k = *y as usize;
                    dst[i * bs..][..bs].copy_from_slice(&src[k * bs..][..bs]);
                    *y = targets[k];
                }
            }
        }
        Ok(())
    }
}

/// A minibatch: inputs `x` `[B, block_size]` and targets `y` `[B, k]` (as [`Examples`]),
/// reused step after step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The inputs.
    pub x: Array2<u32>,
    /// The targets.
    pub y: Array2<u32>,
}

impl Batch {
    /// An empty batch of `batch_size` context windows of `block_size` ids (sampling from words
    /// widens its targets to theirs once).
    pub fn new(batch_size: usize, block_size: usize) -> Batch {
        Batch { x: Array2::zeros((batch_size, block_size)), y: Array2::zeros((batch_size, 1)) }
    }
}
