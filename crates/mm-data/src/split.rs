//! Train/dev/test splits identical to the lectures: `random.seed(42); random.shuffle(words)`,
//! then the first 80% of words train, the next 10% dev, the last 10% test.

use crate::{DataError, PyRandom, Result};

/// How to split: the seed of CPython's `random.seed` and the two cut points as fractions of the
/// shuffled words, as the lecture writes them (`n1 = int(0.8*len(words))`,
/// `n2 = int(0.9*len(words))`): train is `[0, n1)`, dev `[n1, n2)`, test the rest. The default is
/// the lectures': seed 42, cuts 0.8 and 0.9.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitSpec {
    /// The seed of the shuffle.
    pub seed: u64,
    /// Where train ends, as a fraction of the words.
    pub train_end: f64,
    /// Where dev ends, as a fraction of the words.
    pub dev_end: f64,
}

impl Default for SplitSpec {
    fn default() -> Self {
        SplitSpec { seed: 42, train_end: 0.8, dev_end: 0.9 }
    }
}

/// The words of each split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Training words.
    pub train: Vec<String>,
    /// Dev (validation) words, for choosing hyperparameters.
    pub dev: Vec<String>,
    /// Test words, looked at once at the end.
    pub test: Vec<String>,
}

impl Split {
    /// Shuffles a copy of `words` exactly as CPython's `random.shuffle` after `random.seed(seed)`
    /// and cuts it at `n1 = int(train_end * len)` and `n2 = int(dev_end * len)`.
    ///
    /// ```
    /// let words: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    /// let s = mm_data::Split::new(&words, mm_data::SplitSpec::default()).unwrap();
    /// // python3 -c "import random; l=list(range(10)); random.seed(42); random.shuffle(l); print(l)"
    /// assert_eq!(s.train, ["7", "3", "2", "8", "5", "6", "9", "4"]);
    /// assert_eq!((s.dev.as_slice(), s.test.as_slice()), (&["0".to_string()][..], &["1".to_string()][..]));
    /// ```
    pub fn new<S: AsRef<str>>(words: &[S], spec: SplitSpec) -> Result<Split> {
        if !(0.0 <= spec.train_end && spec.train_end <= spec.dev_end && spec.dev_end <= 1.0) {
            return Err(DataError::BadSplit { train_end: spec.train_end, dev_end: spec.dev_end });
        }
        let mut words: Vec<String> = words.iter().map(|w| w.as_ref().to_string()).collect();
        PyRandom::seed(spec.seed).shuffle(&mut words);
        // The same f64 arithmetic as Python's int(0.8 * len(words)).
        let len = words.len() as f64;
        let n1 = (spec.train_end * len) as usize;
        let n2 = (spec.dev_end * len) as usize;
        let test = words.split_off(n2);
        let dev = words.split_off(n1);
        Ok(Split { train: words, dev, test })
    }
}
