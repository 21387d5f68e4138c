//! Lookups by id: `embedding` (`C[X]`, an `nn.Embedding`) and `one_hot`, with the embedding's
//! gradient rule (a scatter-add).

use super::AsIds;
use crate::backward::{Ctx, Sinks};
use crate::kernels::{Acc, zeros};
use crate::op::{NodeId, Op, Span};
use crate::tape::{Graph, Var};
use crate::{Float, Result, Shape, TensorError};

impl<'g, T: Float> Var<'g, T> {
    /// The rows of this table `[V, D]` picked by `ids` (any shape): `C[X]` of the lecture, shaped
    /// `ids.shape + [D]`. Equivalent to `one_hot(ids) @ C` without the one-hot matmul. Or the
    /// error (also for an id that is not below `V`).
    pub fn try_embedding(self, ids: &(impl AsIds + ?Sized)) -> Result<Self> {
        self.g.live(&[self.id])?;
        let table = self.shape();
        let &[rows, d] = table.dims() else {
            return Err(TensorError::Rank { op: "embedding", expected: 2, got: table });
        };
        let ids = ids.as_ids();
        let out =
            Shape::new(ids.shape())?.push(d).ok_or(TensorError::RankTooLarge { rank: ids.ndim() + 1 })?;
        let span = self.g.push_ids("embedding", ids.iter().copied(), rows)?;
        let t = self.id;
        Ok(self.g.push(Op::Embedding { table: t, ids: span }, out, false, &[t], |v, out, _| {
            let table = v.get(t);
            out.clear();
            for &i in v.ids(span) {
                out.extend_from_slice(&table[i as usize * d..][..d]);
            }
        }))
    }

    /// The rows of this table `[V, D]` picked by `ids` (any shape), shaped `ids.shape + [D]`.
    pub fn embedding(self, ids: &(impl AsIds + ?Sized)) -> Self {
        self.g.sticky(self.try_embedding(ids))
    }
}

impl<'a, T: Float> Graph<'a, T> {
    /// The one-hot encoding of `ids` as floats, shaped `ids.shape + [classes]`
    /// (`F.one_hot(xs, num_classes=27).float()`), or the error.
    pub fn try_one_hot(&self, ids: &(impl AsIds + ?Sized), classes: usize) -> Result<Var<'_, T>> {
        let ids = ids.as_ids();
        let out = Shape::new(ids.shape())?
            .push(classes)
            .ok_or(TensorError::RankTooLarge { rank: ids.ndim() + 1 })?;
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= classes) {
            return Err(TensorError::Index { op: "one_hot", index: bad as usize, len: classes });
        }
        Ok(self.push(Op::Input, out, false, &[], |_, out, _| {
            crate::kernels::zeros(out, ids.len() * classes);
            for (r, &i) in ids.iter().enumerate() {
                out[r * classes + i as usize] = T::one();
            }
        }))
    }

    /// The one-hot encoding of `ids` as floats, shaped `ids.shape + [classes]`.
    pub fn one_hot(&self, ids: &(impl AsIds + ?Sized), classes: usize) -> Var<'_, T> {
        self.sticky(self.try_one_hot(ids, classes))
    }
}

// Gradient rules.
impl<T: Float> Ctx<'_, T> {
    /// `embedding`: each row of `g` added to the row of the table it was read from (a repeated
    /// id accumulates the gradients of all its rows).
    pub(crate) fn embedding_grad(&self, table: NodeId, ids: Span, g: &[T], sinks: &mut Sinks<'_, T>) {
        if let Some((dst, acc)) = sinks.get(table) {
            let d = *self.shape(table).dims().last().expect("the table is 2-D");
            if acc == Acc::Write {
                zeros(dst, self.shape(table).numel());
            }
            for (&i, grow) in self.values.ids(ids).iter().zip(g.chunks_exact(d)) {
                let row = &mut dst[i as usize * d..][..d];
                row.iter_mut().zip(grow).for_each(|(r, &g)| *r += g);
            }
        }
    }
}
