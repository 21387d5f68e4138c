//! Training examples: bigram pairs and context windows, as compact `u32` arrays the engine takes
//! directly, and minibatches drawn from them.

use ndarray::{Array1, Array2};
use rand::Rng;

use crate::{DataError, Result, Vocab};

/// Examples: `x` holds the context of each example (`[N, block_size]` ids), `y` the id that
/// follows it (`[N]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Examples {
    /// The contexts, `[N, block_size]`.
    pub x: Array2<u32>,
    /// The next ids, `[N]`.
    pub y: Array1<u32>,
}

impl Examples {
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
    /// assert_eq!(ex.y[4], 0);
    /// ```
    pub fn windows<S: AsRef<str>>(words: &[S], vocab: &Vocab, block_size: usize) -> Result<Examples> {
        if block_size == 0 {
            return Err(DataError::ZeroBlockSize);
        }
        let n: usize = words.iter().map(|w| w.as_ref().chars().count() + 1).sum();
        let mut x = Vec::with_capacity(n * block_size);
        let mut y = Vec::with_capacity(n);
        let mut context = vec![0u32; block_size];
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
        Ok(Examples { x, y: Array1::from(y) })
    }

    /// The bigram pairs over `.` + word + `.`: `xs` (the previous character) and `ys` (the
    /// next). 228,146 pairs for `names.txt`.
    pub fn bigrams<S: AsRef<str>>(words: &[S], vocab: &Vocab) -> Result<(Array1<u32>, Array1<u32>)> {
        let ex = Self::windows(words, vocab, 1)?;
        Ok((ex.x.into_shape_with_order(ex.y.len()).expect("[N, 1] is N elements"), ex.y))
    }

    /// The number of examples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// The context length.
    pub fn block_size(&self) -> usize {
        self.x.ncols()
    }

    /// Fills `batch` with examples drawn uniformly with replacement (the lecture's
    /// `torch.randint(0, X.shape[0], (32,))`), reusing its arrays: no allocation once sized.
    pub fn sample_into<R: Rng + ?Sized>(&self, rng: &mut R, batch: &mut Batch) -> Result<()> {
        if self.is_empty() {
            return Err(DataError::NoExamples);
        }
        let (b, bs) = (batch.y.len(), self.block_size());
        if batch.x.dim() != (b, bs) || !batch.x.is_standard_layout() {
            batch.x = Array2::zeros((b, bs));
        }
        // Rows are copied as slices: ndarray's row assignment costs more than the copy itself
        // at a block size of 3.
        let fits = u32::try_from(self.len()).is_ok();
        let slices =
            (batch.x.as_slice_mut(), batch.y.as_slice_mut(), self.x.as_slice(), self.y.as_slice(), fits);
        let (Some(dst), Some(y), Some(src), Some(targets), true) = slices else {
            for (i, mut row) in batch.x.rows_mut().into_iter().enumerate() {
                let k = rng.random_range(0..self.len());
                row.assign(&self.x.row(k));
                batch.y[i] = self.y[k];
            }
            return Ok(());
        };
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

/// A minibatch: contexts `x` `[B, block_size]` and targets `y` `[B]`, reused step after step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The contexts.
    pub x: Array2<u32>,
    /// The targets.
    pub y: Array1<u32>,
}

impl Batch {
    /// An empty batch of `batch_size` examples of `block_size` ids.
    pub fn new(batch_size: usize, block_size: usize) -> Batch {
        Batch { x: Array2::zeros((batch_size, block_size)), y: Array1::zeros(batch_size) }
    }
}
