//! `Shape`: the dimensions of a tensor, stored inline (no allocation) up to rank 5.

use std::fmt;

/// The largest rank a tensor may have. makemore's Transformer needs 4 (attention's
/// `[B, n_head, T, head_size]`) and 5 in passing (q, k and v split from one `[B, T, 3, H, hs]`).
/// (Shapes are inline and `Copy`: one more axis would make every error that names two shapes
/// larger than clippy's limit for an `Err` value.)
pub const MAX_RANK: usize = 5;

/// The dimensions of a row-major tensor: `Copy`, compared by value, printed as `[32, 30]`.
///
/// A scalar has rank 0 and one element.
///
/// ```
/// use mm_tensor::Shape;
/// let s = Shape::new(&[32, 30]).unwrap();
/// assert_eq!((s.rank(), s.numel(), s.to_string()), (2, 960, "[32, 30]".to_string()));
/// assert!(Shape::new(&[1, 2, 3, 4, 5, 6]).is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    dims: [usize; MAX_RANK],
    rank: u8,
}

impl Shape {
    /// The shape of a scalar: rank 0, one element.
    pub const SCALAR: Shape = Shape { dims: [0; MAX_RANK], rank: 0 };

    /// A shape from its dimensions; an error if there are more than [`MAX_RANK`].
    pub fn new(dims: &[usize]) -> Result<Shape, crate::TensorError> {
        if dims.len() > MAX_RANK {
            return Err(crate::TensorError::RankTooLarge { rank: dims.len() });
        }
        let mut s = Shape { dims: [0; MAX_RANK], rank: dims.len() as u8 };
        s.dims[..dims.len()].copy_from_slice(dims);
        Ok(s)
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank as usize]
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.rank as usize
    }

    /// The number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.dims().iter().product()
    }

    /// Dimension `axis`.
    pub(crate) fn dim(&self, axis: usize) -> usize {
        self.dims[axis]
    }

    /// This shape with dimension `axis` replaced by `len`.
    pub(crate) fn with_dim(mut self, axis: usize, len: usize) -> Shape {
        self.dims[axis] = len;
        self
    }

    /// This shape without dimension `axis`.
    pub(crate) fn without(self, axis: usize) -> Shape {
        let mut s = Shape { dims: [0; MAX_RANK], rank: self.rank - 1 };
        let (mut j, d) = (0, self.dims());
        for (i, &len) in d.iter().enumerate() {
            if i != axis {
                s.dims[j] = len;
                j += 1;
            }
        }
        s
    }

    /// This shape with `len` appended as a new innermost dimension (`None` past [`MAX_RANK`]).
    pub(crate) fn push(mut self, len: usize) -> Option<Shape> {
        let r = self.rank as usize;
        (r < MAX_RANK).then(|| {
            self.dims[r] = len;
            self.rank += 1;
            self
        })
    }

    /// The row-major strides of this shape (elements between neighbours along each axis).
    pub(crate) fn strides(&self) -> [usize; MAX_RANK] {
        let mut s = [0; MAX_RANK];
        let mut acc = 1;
        for a in (0..self.rank()).rev() {
            s[a] = acc;
            acc *= self.dims[a];
        }
        s
    }

    /// Splits the shape around `axis` into `(outer, len, inner)` element counts: the layout of
    /// every reduction and softmax along one axis of a row-major tensor.
    pub(crate) fn around(&self, axis: usize) -> (usize, usize, usize) {
        let d = self.dims();
        (d[..axis].iter().product(), d[axis], d[axis + 1..].iter().product())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
