//! Losses: the fused, numerically stable cross-entropy of logits of any rank against class
//! ids (optionally ignoring one id, as makemore's `ignore_index=-1`), and its fused form for the
//! bigram net (`lookup_cross_entropy`), with their gradient rules.

use super::{AsIds, AsTargets};
use crate::backward::{Ctx, Sinks};
use crate::kernels::axis;
use crate::op::{IGNORED, NodeId, Op, Span};
use crate::tape::Var;
use crate::{Float, Result, Shape, TensorError};

impl<'g, T: Float> Var<'g, T> {
    /// The mean cross-entropy of these logits `[.., V]` (rows along the last axis: `[B, V]`, or
    /// `[B, T, V]`) against one class id per row (`[B]`, or `[B, T]`): `F.cross_entropy(logits,
    /// Y)`, fused and numerically stable. A row whose id is [`crate::IGNORE`] has no target: the
    /// mean is over the others (as `ignore_index`). Or the error, also when every target is
    /// ignored.
    ///
    /// ```
    /// use mm_tensor::{IGNORE, ParamStore, Tape};
    /// let params = ParamStore::<f64>::new();
    /// let mut tape = Tape::new();
    /// let g = tape.no_grad(&params);
    /// let logits = g.input(&[1, 3, 2], &[0.0, 0.0, 5.0, -5.0, 1.0, 2.0]);
    /// let loss = logits.cross_entropy(&[1u32, IGNORE, IGNORE]).item()?;
    /// assert!((loss - 2f64.ln()).abs() < 1e-15); // only the first position counts
    /// assert!(logits.try_cross_entropy(&[IGNORE; 3]).is_err());
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn try_cross_entropy(self, targets: &(impl AsIds + ?Sized)) -> Result<Self> {
        let (rows, classes) = self.logit_rows()?;
        let targets = targets.as_ids();
        if targets.len() != rows {
            return Err(TensorError::Targets { logits: self.shape(), targets: targets.len() });
        }
        if targets.iter().any(|&t| t == IGNORED) {
            if targets.iter().all(|&t| t == IGNORED) {
                return Err(TensorError::AllIgnored {
                    targets: targets.len(),
                    ignore_index: i64::from(IGNORED),
                });
            }
            if let Some(&bad) = targets.iter().find(|&&t| t != IGNORED && t as usize >= classes) {
                return Err(TensorError::Index { op: "cross_entropy", index: bad as usize, len: classes });
            }
            let span = self.g.push_id_view("cross_entropy", &targets, usize::MAX)?;
            return Ok(self.record_cross_entropy(span, classes));
        }
        let span = self.g.push_id_view("cross_entropy", &targets, classes)?;
        Ok(self.record_cross_entropy(span, classes))
    }

    /// The mean cross-entropy of these logits against class ids.
    pub fn cross_entropy(self, targets: &(impl AsIds + ?Sized)) -> Self {
        self.g.sticky(self.try_cross_entropy(targets))
    }

    /// The mean cross-entropy of these logits `[.., V]` against signed targets, over the targets
    /// that are not `ignore_index`: `F.cross_entropy(logits.view(-1, V), Y.view(-1),
    /// ignore_index=-1)`, as makemore's models compute their loss (a word's positions after its
    /// end have target -1). Or the error, also when every target is ignored (the mean over no
    /// targets is undefined; PyTorch returns NaN).
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let params = ParamStore::<f64>::new();
    /// let mut tape = Tape::new();
    /// let g = tape.no_grad(&params);
    /// let logits = g.input(&[1, 3, 2], &[0.0, 0.0, 5.0, -5.0, 1.0, 2.0]);
    /// let loss = logits.cross_entropy_ignore(&[1i64, -1, -1], -1).item()?;
    /// assert!((loss - 2f64.ln()).abs() < 1e-15); // only the first position counts
    /// assert!(logits.try_cross_entropy_ignore(&[-1i64, -1, -1], -1).is_err());
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn try_cross_entropy_ignore(
        self,
        targets: &(impl AsTargets + ?Sized),
        ignore_index: i64,
    ) -> Result<Self> {
        let (rows, classes) = self.logit_rows()?;
        let targets = targets.as_targets();
        if targets.len() != rows {
            return Err(TensorError::Targets { logits: self.shape(), targets: targets.len() });
        }
        if targets.iter().all(|&t| t == ignore_index) {
            return Err(TensorError::AllIgnored { targets: targets.len(), ignore_index });
        }
        if let Some(&bad) = targets.iter().find(|&&t| t != ignore_index && !(0..classes as i64).contains(&t))
        {
            let index = usize::try_from(bad).unwrap_or(usize::MAX);
            return Err(TensorError::Index { op: "cross_entropy", index, len: classes });
        }
        let id = |t: i64| if t == ignore_index { IGNORED } else { t as u32 };
        let span = self.g.push_view_as_ids("cross_entropy", &targets, id, usize::MAX)?;
        Ok(self.record_cross_entropy(span, classes))
    }

    /// The mean cross-entropy over the targets that are not `ignore_index` (see
    /// [`Var::try_cross_entropy_ignore`]).
    pub fn cross_entropy_ignore(self, targets: &(impl AsTargets + ?Sized), ignore_index: i64) -> Self {
        self.g.sticky(self.try_cross_entropy_ignore(targets, ignore_index))
    }

    /// `(rows, classes)` of these logits, or the error.
    fn logit_rows(self) -> Result<(usize, usize)> {
        self.g.live(&[self.id])?;
        let logits = self.shape();
        if logits.rank() < 2 {
            return Err(TensorError::RankBelow { op: "cross_entropy", min: 2, got: logits });
        }
        let classes = logits.dim(logits.rank() - 1);
        if classes == 0 {
            // No class for any target to be.
            return Err(TensorError::NoClasses { logits });
        }
        Ok((logits.numel() / classes, classes))
    }

    fn record_cross_entropy(self, span: Span, classes: usize) -> Self {
        let x = self.id;
        self.g.push(
            Op::CrossEntropy { logits: x, targets: span },
            Shape::SCALAR,
            false,
            &[x],
            |v, out, probs| {
                out.clear();
                out.push(T::of(axis::cross_entropy(v.get(x), classes, v.ids(span), probs)));
            },
        )
    }

    /// `F.cross_entropy(table[ids], targets)` for this table `[R, V]`, fused, or the error.
    ///
    /// Every example that picks the same row has the same logits, so this does not gather the
    /// rows: it counts the examples per (row, target) pair and takes each row's log-softmax
    /// once. The loss and gradient are those of `table.embedding(ids).cross_entropy(targets)`
    /// (up to rounding), in `O(examples + R·V)` rather than `O(examples·V)`: the bigram net's
    /// full-batch step over 228,146 examples costs 27 log-softmaxes.
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let mut params = ParamStore::new();
    /// let w = params.add("W", ndarray::arr2(&[[0.5f64, -1.0], [2.0, 0.0]]).into_dyn())?;
    /// let mut tape = Tape::new();
    /// let g = tape.no_grad(&params);
    /// let (x, y) = ([0u32, 1, 1], [1u32, 0, 1]);
    /// let fused = g.param(w).lookup_cross_entropy(&x, &y).item()?;
    /// let plain = g.param(w).embedding(&x).cross_entropy(&y).item()?;
    /// assert!((fused - plain).abs() < 1e-12);
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn try_lookup_cross_entropy(
        self,
        ids: &(impl AsIds + ?Sized),
        targets: &(impl AsIds + ?Sized),
    ) -> Result<Self> {
        self.g.live(&[self.id])?;
        let table = self.shape();
        let &[rows, classes] = table.dims() else {
            return Err(TensorError::Rank { op: "lookup_cross_entropy", expected: 2, got: table });
        };
        let (ids, targets) = (ids.as_ids(), targets.as_ids());
        if targets.len() != ids.len() {
            return Err(TensorError::IdsTargets { ids: ids.len(), targets: targets.len() });
        }
        let id_span = self.g.push_id_view("lookup_cross_entropy", &ids, rows)?;
        let target_span = self.g.push_id_view("lookup_cross_entropy", &targets, classes)?;
        let x = self.id;
        Ok(self.g.push(
            Op::LookupCrossEntropy { table: x, ids: id_span, targets: target_span },
            Shape::SCALAR,
            false,
            &[x],
            |v, out, aux| {
                let loss =
                    axis::lookup_cross_entropy(v.get(x), classes, v.ids(id_span), v.ids(target_span), aux);
                out.clear();
                out.push(T::of(loss));
            },
        ))
    }

    /// `F.cross_entropy(table[ids], targets)` for this table, fused (see
    /// [`Var::try_lookup_cross_entropy`]).
    pub fn lookup_cross_entropy(self, ids: &(impl AsIds + ?Sized), targets: &(impl AsIds + ?Sized)) -> Self {
        self.g.sticky(self.try_lookup_cross_entropy(ids, targets))
    }
}

// Gradient rules.
impl<T: Float> Ctx<'_, T> {
    /// `cross_entropy`: `(softmax - onehot(target)) · g / count` on each row that has a target.
    pub(crate) fn cross_entropy_grad(
        &self,
        logits: NodeId,
        targets: Span,
        g: &[T],
        sinks: &mut Sinks<'_, T>,
    ) {
        if let Some((dst, acc)) = sinks.get(logits) {
            let classes = *self.shape(logits).dims().last().expect("logits have rank >= 2");
            axis::cross_entropy_backward(self.aux, classes, self.values.ids(targets), g[0], dst, acc);
        }
    }

    /// `lookup_cross_entropy`: each table row gets its examples' `softmax - onehot`.
    pub(crate) fn lookup_cross_entropy_grad(
        &self,
        table: NodeId,
        ids: Span,
        g: &[T],
        sinks: &mut Sinks<'_, T>,
    ) {
        if let Some((dst, acc)) = sinks.get(table) {
            let classes = *self.shape(table).dims().last().expect("the table is 2-D");
            axis::lookup_cross_entropy_backward(self.aux, classes, ids.len as usize, g[0], dst, acc);
        }
    }
}
