//! Parameters live outside the tape: a [`ParamStore`] of named tensors with dense ids, and the
//! reusable [`Grads`] that a backward pass writes their gradients into. The store also holds
//! buffers: state that is saved with the model but never trained (BatchNorm's running mean and
//! variance, PyTorch's `register_buffer`).

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn};

use crate::{Float, Result, Shape, TensorError};

/// The dense id of a parameter in its [`ParamStore`]: `Copy`, cheap to keep in a model struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub(crate) u32);

impl ParamId {
    /// The position of the parameter in its store (0, 1, 2, ... in order of registration).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The dense id of a buffer in its [`ParamStore`] (state that is not trained).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufferId(pub(crate) u32);

impl BufferId {
    /// The position of the buffer among the store's buffers (in order of registration).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A row-major buffer with its shape: how the engine keeps parameters, gradients and state.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Buf<T> {
    pub(crate) shape: Shape,
    pub(crate) data: Vec<T>,
}

impl<T: Float> Buf<T> {
    pub(crate) fn zeros(shape: Shape) -> Buf<T> {
        Buf { shape, data: vec![T::zero(); shape.numel()] }
    }

    pub(crate) fn view(&self) -> ArrayViewD<'_, T> {
        ArrayViewD::from_shape(IxDyn(self.shape.dims()), &self.data)
            .expect("a Buf's data always fills its shape")
    }

    pub(crate) fn view_mut(&mut self) -> ArrayViewMutD<'_, T> {
        ArrayViewMutD::from_shape(IxDyn(self.shape.dims()), &mut self.data)
            .expect("a Buf's data always fills its shape")
    }
}

/// Named parameters, e.g. the MLP's `C`, `W1`, `b1`, `W2`, `b2`, in order of registration.
///
/// ```
/// use mm_tensor::ParamStore;
/// use ndarray::ArrayD;
/// let mut params = ParamStore::<f32>::new();
/// let w = params.add("W", ArrayD::zeros(vec![27, 27])).unwrap();
/// assert_eq!((params.name(w), params.numel()), ("W", 729));
/// assert!(params.add("W", ArrayD::zeros(vec![1])).is_err()); // names are unique
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamStore<T> {
    names: Vec<String>,
    bufs: Vec<Buf<T>>,
    buffer_names: Vec<String>,
    buffers: Vec<Buf<T>>,
}

impl<T: Float> ParamStore<T> {
    /// An empty store.
    pub fn new() -> Self {
        ParamStore { names: Vec::new(), bufs: Vec::new(), buffer_names: Vec::new(), buffers: Vec::new() }
    }

    /// Registers a parameter under a unique `name` with an initial value (any memory layout; it
    /// is stored row-major). Errors on a duplicate name or a rank above [`crate::MAX_RANK`].
    pub fn add(&mut self, name: &str, value: ArrayD<T>) -> Result<ParamId> {
        let buf = self.new_entry(name, value)?;
        self.names.push(name.to_string());
        self.bufs.push(buf);
        Ok(ParamId(self.bufs.len() as u32 - 1))
    }

    /// `value` stored row-major, once `name` is known to be new among parameters and buffers.
    fn new_entry(&self, name: &str, value: ArrayD<T>) -> Result<Buf<T>> {
        if self.id(name).is_some() || self.buffer_id(name).is_some() {
            return Err(TensorError::DuplicateParam { name: name.to_string() });
        }
        let shape = Shape::new(value.shape())?;
        Ok(Buf { shape, data: value.as_standard_layout().iter().copied().collect() })
    }

    /// The id of the parameter called `name`, if there is one.
    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.names.iter().position(|n| n == name).map(|i| ParamId(i as u32))
    }

    /// The parameter's name.
    pub fn name(&self, id: ParamId) -> &str {
        &self.names[id.index()]
    }

    /// The parameter's shape.
    pub fn shape(&self, id: ParamId) -> Shape {
        self.bufs[id.index()].shape
    }

    /// The parameter's value.
    pub fn get(&self, id: ParamId) -> ArrayViewD<'_, T> {
        self.bufs[id.index()].view()
    }

    /// The parameter's value, writable (e.g. to load a checkpoint or apply an update).
    pub fn get_mut(&mut self, id: ParamId) -> ArrayViewMutD<'_, T> {
        self.bufs[id.index()].view_mut()
    }

    /// The parameter's elements in row-major order.
    pub fn data(&self, id: ParamId) -> &[T] {
        &self.bufs[id.index()].data
    }

    /// The parameter's elements in row-major order, writable.
    pub fn data_mut(&mut self, id: ParamId) -> &mut [T] {
        &mut self.bufs[id.index()].data
    }

    /// Every parameter's buffer, in id order, writable.
    pub(crate) fn bufs_mut(&mut self) -> &mut [Buf<T>] {
        &mut self.bufs
    }

    /// The number of parameters (tensors).
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// Whether the store holds no parameters.
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// The total number of scalar parameters (the MLP of the lecture has 11,897).
    pub fn numel(&self) -> usize {
        self.bufs.iter().map(|b| b.data.len()).sum()
    }

    /// The ids of all parameters, in order of registration.
    pub fn ids(&self) -> impl Iterator<Item = ParamId> + use<T> {
        (0..self.bufs.len() as u32).map(ParamId)
    }

    /// Registers a buffer: state saved with the model but never trained nor stepped by an
    /// optimizer (BatchNorm's running statistics; `register_buffer` in PyTorch). Names are
    /// unique across parameters and buffers.
    ///
    /// ```
    /// use mm_tensor::{ParamStore, Tape};
    /// let mut params = ParamStore::<f64>::new();
    /// let mean = params.add_buffer("bn.running_mean", ndarray::arr1(&[0.0, 0.0]).into_dyn())?;
    /// params.blend_buffer(mean, &[1.0, -2.0], 0.1)?; // (1 - 0.1) * running + 0.1 * batch
    /// assert_eq!(params.buffer_data(mean), &[0.1, -0.2]);
    /// assert_eq!((params.len(), params.buffer_len()), (0, 1)); // not a parameter
    /// # Ok::<(), mm_tensor::TensorError>(())
    /// ```
    pub fn add_buffer(&mut self, name: &str, value: ArrayD<T>) -> Result<BufferId> {
        let buf = self.new_entry(name, value)?;
        self.buffer_names.push(name.to_string());
        self.buffers.push(buf);
        Ok(BufferId(self.buffers.len() as u32 - 1))
    }

    /// The id of the buffer called `name`, if there is one.
    pub fn buffer_id(&self, name: &str) -> Option<BufferId> {
        self.buffer_names.iter().position(|n| n == name).map(|i| BufferId(i as u32))
    }

    /// The buffer's name.
    pub fn buffer_name(&self, id: BufferId) -> &str {
        &self.buffer_names[id.index()]
    }

    /// The buffer's shape.
    pub fn buffer_shape(&self, id: BufferId) -> Shape {
        self.buffers[id.index()].shape
    }

    /// The buffer's value.
    pub fn buffer(&self, id: BufferId) -> ArrayViewD<'_, T> {
        self.buffers[id.index()].view()
    }

    /// The buffer's elements in row-major order.
    pub fn buffer_data(&self, id: BufferId) -> &[T] {
        &self.buffers[id.index()].data
    }

    /// The buffer's elements in row-major order, writable (e.g. to load a checkpoint).
    pub fn buffer_data_mut(&mut self, id: BufferId) -> &mut [T] {
        &mut self.buffers[id.index()].data
    }

    /// `buffer = (1 - momentum) * buffer + momentum * value`, elementwise: the running-average
    /// update of BatchNorm's statistics (PyTorch's `momentum`). Errors if `value` has another
    /// length.
    pub fn blend_buffer(&mut self, id: BufferId, value: &[T], momentum: T) -> Result<()> {
        let buf = &mut self.buffers[id.index()];
        if value.len() != buf.data.len() {
            return Err(TensorError::DataLength { op: "blend_buffer", len: value.len(), shape: buf.shape });
        }
        let keep = T::one() - momentum;
        buf.data.iter_mut().zip(value).for_each(|(b, &v)| *b = keep * *b + momentum * v);
        Ok(())
    }

    /// The number of buffers.
    pub fn buffer_len(&self) -> usize {
        self.buffers.len()
    }

    /// The ids of all buffers, in order of registration.
    pub fn buffer_ids(&self) -> impl Iterator<Item = BufferId> + use<T> {
        (0..self.buffers.len() as u32).map(BufferId)
    }
}

/// The gradients of a [`ParamStore`]'s parameters, one buffer each, reused across steps.
///
/// A backward pass overwrites every gradient: a parameter that the loss does not depend on gets
/// zeros, so stale values never reach the optimizer.
#[derive(Clone, Debug, PartialEq)]
pub struct Grads<T> {
    pub(crate) bufs: Vec<Buf<T>>,
    /// Whether `bufs[i]` holds a contribution from the current backward pass.
    pub(crate) live: Vec<bool>,
}

impl<T: Float> Grads<T> {
    /// Zero gradients shaped like the parameters of `params`.
    pub fn new(params: &ParamStore<T>) -> Self {
        let bufs: Vec<_> = params.bufs.iter().map(|b| Buf::zeros(b.shape)).collect();
        Grads { live: vec![false; bufs.len()], bufs }
    }

    /// The gradient of parameter `id`.
    pub fn get(&self, id: ParamId) -> ArrayViewD<'_, T> {
        self.bufs[id.index()].view()
    }

    /// The gradient of parameter `id`, row-major.
    pub fn data(&self, id: ParamId) -> &[T] {
        &self.bufs[id.index()].data
    }

    /// The number of gradient tensors.
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// Whether there are no gradient tensors.
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Checks that these gradients were made for `params` (same count and shapes).
    pub fn check(&self, params: &ParamStore<T>) -> Result<()> {
        check_like(&self.bufs, params, "grads")
    }
}

/// Checks that `bufs` are shaped like the parameters of `params`.
pub(crate) fn check_like<T: Float>(bufs: &[Buf<T>], params: &ParamStore<T>, op: &'static str) -> Result<()> {
    if bufs.len() != params.len() {
        return Err(TensorError::ParamCount { op, expected: bufs.len(), got: params.len() });
    }
    for (b, p) in bufs.iter().zip(&params.bufs) {
        if b.shape != p.shape {
            return Err(TensorError::ShapeMismatch { op, expected: b.shape, got: p.shape });
        }
    }
    Ok(())
}
