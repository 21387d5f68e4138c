//! Lookups by id: `embedding` (`C[X]`, an `nn.Embedding`) and `one_hot`, with the embedding's
//! gradient rule (a scatter-add).

use super::AsIds;
use crate::backward::{Ctx, Sinks};
use crate::kernels::{Acc, sized, zeros};
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
        let span = self.g.push_id_view("embedding", &ids, rows)?;
        let t = self.id;
        Ok(self.g.push(Op::Embedding { table: t, ids: span }, out, false, &[t], |v, out, _| {
            let ids = v.ids(span);
            sized(out, ids.len() * d);
            gather_rows(v.get(t), d, ids, out);
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

/// Row `ids[r]` of `table` (rows of `d`) into row `r` of `out`. Rows of up to 16 elements are
/// copied as arrays of their length: a copy of a length known only at run time is a call to
/// `memcpy` per row, which for the lecture MLP's rows of 10 cost more than the copy.
fn gather_rows<T: Copy>(table: &[T], d: usize, ids: &[u32], out: &mut [T]) {
    fn rows<T: Copy, const D: usize>(table: &[T], ids: &[u32], out: &mut [T]) {
        for (o, &i) in out.as_chunks_mut::<D>().0.iter_mut().zip(ids) {
            *o = table[i as usize * D..][..D].try_into().expect("D elements");
        }
    }
    macro_rules! by_length {
        ($($d:literal)*) => {
            match d {
                $($d => rows::<T, $d>(table, ids, out),)*
                _ => {
                    for (o, &i) in out.chunks_exact_mut(d.max(1)).zip(ids) {
                        o.copy_from_slice(&table[i as usize * d..][..d]);
                    }
                }
            }
        };
    }
    by_length!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
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

#[cfg(test)]
mod tests {
    use super::gather_rows;

    /// Every row length, those copied as arrays (1 to 16) and the others, against the copy
    /// written out element by element; ids repeat and come in any order.
    #[test]
    fn gather_rows_copies_the_rows_of_every_length() {
        let ids = [3u32, 0, 3, 1, 4, 2, 0];
        for d in 0..=20 {
            let table: Vec<f32> = (0..5 * d).map(|x| x as f32 * 0.5 - 7.0).collect();
            let mut out = vec![f32::NAN; ids.len() * d];
            gather_rows(&table, d, &ids, &mut out);
            let want: Vec<f32> =
                ids.iter().flat_map(|&i| (0..d).map(move |j| (i as usize * d + j) as f32)).collect();
            let want: Vec<f32> = want.iter().map(|&x| x * 0.5 - 7.0).collect();
            assert_eq!(out, want, "rows of {d}");
        }
    }
}
