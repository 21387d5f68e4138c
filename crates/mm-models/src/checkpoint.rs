//! Checkpoints as safetensors files, readable by PyTorch (`safetensors.torch.load_file`) and other
//! tools: float32 tensors named as in the lectures (`N` for the counts, `W` for the bigram net,
//! `C`, `W1`, `b1`, `W2`, `b2` for the MLP), row-major in the lectures' shapes, and string
//! metadata for the model's kind, configuration and vocabulary, the training step, the seed and
//! the dataset's sha256. See `docs/checkpoints.md`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mm_data::Vocab;
use ndarray::Array2;
use rand::SeedableRng;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::{BigramCounts, Model, ModelError, Result, Spec, SpecError};

/// The format tag in every checkpoint's metadata.
pub const FORMAT: &str = "makemore-rs/1";

pub use crate::registry::{AnyModel, ModelRef};

/// The largest bigram count a checkpoint holds: float32 (the tensor's type, which PyTorch reads)
/// holds every whole number up to 2^24 exactly, and not every one above it.
const MAX_COUNT: u32 = 1 << 24;

/// What a checkpoint records besides the model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointMeta {
    /// Training steps done.
    pub step: u64,
    /// The seed of the run.
    pub seed: u64,
    /// The sha256 of the dataset trained on (hex), or empty if unknown.
    pub dataset_sha256: String,
    /// AdamW's moments at `step`, so that training can continue exactly (saved as the tensors
    /// `adamw.m.<name>` and `adamw.v.<name>` and the metadata `adamw_t`); `None` for SGD.
    pub adamw: Option<mm_tensor::AdamWState<f32>>,
    /// Bigram counts: the smoothing `alpha` the run evaluated and sampled with (the metadata
    /// `alpha`), so that `eval` and `sample` of the checkpoint use it too. Written for a counting
    /// model only; `None` for neural models and for counts saved before it was recorded (the
    /// lecture's smoothing, 1, is then the one to use).
    pub alpha: Option<f64>,
}

/// What is wrong with a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file cannot be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Not a safetensors file, or a truncated one.
    #[error("{path}: not a valid checkpoint ({reason})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A bigram count that a float32 tensor cannot hold exactly, refused when saved.
    #[error(
        "{path}: the bigram count {count} is above 16777216 (2^24), past which a float32 tensor does not hold every count: count a smaller dataset"
    )]
    CountTooLarge {
        /// The file.
        path: PathBuf,
        /// The count.
        count: u32,
    },
    /// A value of a bigram counts tensor that is not a count (negative, fractional, not finite
    /// or above `u32::MAX`), refused when loaded.
    #[error("{path}: tensor \"N\" holds {count}, which is not a bigram count (a whole number from 0)")]
    Count {
        /// The file.
        path: PathBuf,
        /// The value.
        count: f64,
    },
    /// A metadata entry is missing or malformed.
    #[error("{path}: metadata {key:?} is {problem}")]
    Meta {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Missing, or what is wrong with its value.
        problem: String,
    },
    /// Not a regular file: a directory, a device (`/dev/zero`) or a pipe, which could be read
    /// without end.
    #[error(
        "{path} is not a regular file (a directory, a device or a pipe): pass a checkpoint file, e.g. a run's model.safetensors"
    )]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A kind of model this version does not know.
    #[error(
        "{path}: unknown model kind {kind:?} (expected bigram, bigram-nn, mlp, bn-mlp, wavenet, transformer, bow, rnn, gru, mlp-makemore or bigram-makemore)"
    )]
    UnknownKind {
        /// The file.
        path: PathBuf,
        /// The kind.
        kind: String,
    },
    /// The metadata's sizes make a model larger than the file's tensors.
    #[error(
        "{path}: the metadata describes a model of {params} parameters, but the file holds {held} values"
    )]
    Sizes {
        /// The file.
        path: PathBuf,
        /// The parameters the metadata's sizes make (at most `u64::MAX`).
        params: u64,
        /// The values of the file's tensors.
        held: u64,
    },
    /// A tensor holds NaN or infinite values (the run that saved it diverged), and the loader
    /// was not asked to allow them ([`LoadOptions::allow_non_finite`]).
    #[error(
        "{path}: tensor {name:?} holds {count} NaN or infinite values (the run diverged): retrain it with a smaller learning rate, or load it with allow_non_finite to inspect it"
    )]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// How many of its values are not finite.
        count: usize,
    },
    /// A tensor the model needs is missing.
    #[error("{path}: tensor {name:?} is missing")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
    },
    /// A tensor has the wrong shape or type.
    #[error("{path}: tensor {name:?} is {got}, expected float32 {expected:?}")]
    BadTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The expected shape.
        expected: Vec<usize>,
        /// What it is.
        got: String,
    },
}

/// Saves `model` to `path` atomically: the file is written beside it under a temporary name and
/// renamed over it, so an interrupted save never destroys the previous checkpoint.
pub fn save(path: &Path, model: &AnyModel, meta: &CheckpointMeta) -> Result<()> {
    write_atomically(path, &to_bytes(path, model, meta)?)
}

/// The checkpoint [`save`] writes, as bytes (`path` only names the file in errors): for a writer
/// that makes several files atomic together, as the run directory does.
pub fn to_bytes(path: &Path, model: &AnyModel, meta: &CheckpointMeta) -> Result<Vec<u8>> {
    let mut info: HashMap<String, String> = HashMap::new();
    info.insert("format".into(), FORMAT.into());
    info.insert("kind".into(), model.kind().into());
    info.insert("vocab".into(), model.vocab().to_string());
    info.insert("step".into(), meta.step.to_string());
    info.insert("seed".into(), meta.seed.to_string());
    info.insert("dataset_sha256".into(), meta.dataset_sha256.clone());
    let tensors: Vec<Named> = match model.as_model() {
        ModelRef::Counts(m) => {
            if let Some(alpha) = meta.alpha {
                crate::bigram::check_alpha(alpha)?;
                // Rust prints the shortest text that parses back to the same f64.
                info.insert("alpha".into(), alpha.to_string());
            }
            let n = m.counts();
            if let Some(&count) = n.iter().find(|&&c| c > MAX_COUNT) {
                let path = path.to_path_buf();
                return Err(ModelError::Checkpoint(CheckpointError::CountTooLarge { path, count }));
            }
            vec![("N".into(), n.shape().to_vec(), n.iter().flat_map(|&c| (c as f32).to_le_bytes()).collect())]
        }
        ModelRef::Neural(m) => neural(m, meta, &mut info)?,
    };
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| Ok((name.as_str(), TensorView::new(Dtype::F32, shape.clone(), bytes)?)))
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| corrupt(path, e))?;
    let bytes = safetensors::serialize(views, Some(info)).map_err(|e| corrupt(path, e))?;
    canonical(&bytes).map_err(|e| corrupt(path, e))
}

/// `bytes` (a safetensors file) with its JSON header's keys sorted, at every level: safetensors
/// writes the metadata from a `HashMap`, whose order changes from one map to the next, so the
/// same state would not always give the same bytes. The tensors' offsets are relative to the data,
/// which does not move; the header stays padded with spaces to a multiple of 8 bytes.
fn canonical(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    use std::collections::BTreeMap;
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(map) => {
                let map: BTreeMap<String, serde_json::Value> =
                    map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                serde_json::to_value(map).unwrap_or(serde_json::Value::Null)
            }
            other => other,
        }
    }
    let len = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
    let Some(end) = len.and_then(|n| n.checked_add(8)).filter(|&e| e <= bytes.len()) else {
        return Err("the serialised header is cut".into());
    };
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..end]).map_err(|e| e.to_string())?;
    // A BTreeMap serialises in key order whatever serde_json's own map does.
    let header = match sorted(header) {
        serde_json::Value::Object(map) => map.into_iter().collect::<BTreeMap<_, _>>(),
        _ => return Err("the header is not a JSON object".into()),
    };
    let mut text = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - end);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[end..]);
    Ok(out)
}

/// A tensor to save: name, shape, little-endian f32 bytes.
type Named = (String, Vec<usize>, Vec<u8>);

/// A neural model's configuration into the metadata, and its parameters (and AdamW's moments,
/// if any) as (name, shape, little-endian f32 bytes).
fn neural(m: &dyn Model, meta: &CheckpointMeta, info: &mut HashMap<String, String>) -> Result<Vec<Named>> {
    info.extend(m.config().into_iter().map(|(k, v)| (k.to_string(), v)));
    let p = m.params();
    let bytes = |xs: &[f32]| xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut out: Vec<_> =
        p.ids().map(|id| (p.name(id).to_string(), p.shape(id).dims().to_vec(), bytes(p.data(id)))).collect();
    // Buffers (BatchNorm's running statistics) beside the parameters, under their own names, as
    // PyTorch's state_dict() holds them.
    out.extend(p.buffer_ids().map(|id| {
        (p.buffer_name(id).to_string(), p.buffer_shape(id).dims().to_vec(), bytes(p.buffer_data(id)))
    }));
    if let Some(state) = &meta.adamw {
        // Checked as a restore would check it, so that only loadable states are saved.
        mm_tensor::AdamW::new(0.0).set_state(p, state.clone())?;
        info.insert("adamw_t".into(), state.t.to_string());
        for (id, (mo, v)) in p.ids().zip(state.m.iter().zip(&state.v)) {
            let shape = p.shape(id).dims().to_vec();
            out.push((format!("adamw.m.{}", p.name(id)), shape.clone(), bytes(mo)));
            out.push((format!("adamw.v.{}", p.name(id)), shape, bytes(v)));
        }
    }
    Ok(out)
}

/// Writes `bytes` to `path` atomically: to a temporary file beside it (`.<name>.<pid>.tmp`),
/// fsync'd, then renamed over `path`, and the directory fsync'd, so that a crash at any instant
/// leaves the old file or the new one, never a torn one. The run directory and the checkpoints
/// share it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| ModelError::Checkpoint(CheckpointError::Io { path: path.to_path_buf(), source });
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)?;
    sync_dir(path.parent().unwrap_or(Path::new("."))).map_err(io)
}

/// Makes a directory's entries (renames, creations, removals) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    std::fs::File::open(dir)?.sync_all()
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Checkpoint(CheckpointError::Corrupt { path: path.to_path_buf(), reason: e.to_string() })
}

/// How to load a checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Accept tensors with NaN or infinite values (the weights of a run that diverged), e.g. to
    /// inspect them; by default they are [`CheckpointError::NonFinite`].
    pub allow_non_finite: bool,
}

/// Loads a checkpoint, checking its header against the file before reading the rest (see
/// `read_checked`), its format, kind, metadata (sizes within [`crate::limits`]) and every
/// tensor's name, type and shape, and that every value is finite ([`load_with`] can allow NaN and infinities). A model
/// saved and loaded gives bit-identical logits.
pub fn load(path: &Path) -> Result<(AnyModel, CheckpointMeta)> {
    load_with(path, LoadOptions::default())
}

/// The largest safetensors header (its JSON) a checkpoint may have: safetensors' own limit.
pub const MAX_HEADER: u64 = 100_000_000;

/// The bytes of the checkpoint at `path`, read only after its safetensors header was checked
/// against the file: a regular file (not `/dev/zero` or a pipe), a header length within
/// [`MAX_HEADER`] and the file, and tensors whose shapes and offsets fit the data and end exactly
/// at the end of the file. So a file that claims huge tensors, or a huge (sparse) file, is an
/// error at once, and what is read is what the header describes.
fn read_checked(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |source| ModelError::Checkpoint(CheckpointError::Io { path: path.to_path_buf(), source });
    let bad = |reason: String| corrupt(path, reason);
    // Looked at before it is opened: opening a pipe would wait for a writer.
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(ModelError::Checkpoint(CheckpointError::NotAFile { path: path.to_path_buf() }));
    }
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len < 8 {
        return Err(bad(format!("{len} bytes, too short for a safetensors header")));
    }
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix).map_err(io)?;
    let n = u64::from_le_bytes(prefix);
    if n > MAX_HEADER || n + 8 > len {
        return Err(bad(format!("its header claims {n} bytes, the file has {len}")));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(io)?;
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "__metadata__")]
        _metadata: Option<HashMap<String, String>>,
        #[serde(flatten)]
        tensors: HashMap<String, safetensors::tensor::TensorInfo>,
    }
    let parsed: Header = serde_json::from_slice(&header).map_err(|e| bad(format!("its header: {e}")))?;
    let data = len - 8 - n;
    let mut end = 0u64;
    for (name, t) in &parsed.tensors {
        let (from, to) = (t.data_offsets.0 as u64, t.data_offsets.1 as u64);
        let bytes = t
            .shape
            .iter()
            .try_fold(1u128, |a, &d| a.checked_mul(d as u128))
            .and_then(|e| e.checked_mul(t.dtype.bitsize() as u128))
            .map(|bits| bits.div_ceil(8));
        if from > to || to > data || bytes != Some(u128::from(to - from)) {
            return Err(bad(format!(
                "tensor {name:?} of shape {:?} claims bytes {from}..{to} of the {data} bytes of data",
                t.shape
            )));
        }
        end = end.max(to);
    }
    if end != data {
        return Err(bad(format!("its tensors hold {end} bytes, the file has {data} bytes of data")));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    bytes.extend_from_slice(&prefix);
    bytes.extend_from_slice(&header);
    file.take(data).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 != len {
        return Err(bad(format!("{} bytes could be read of its {len}", bytes.len())));
    }
    Ok(bytes)
}

/// [`load`] with options.
pub fn load_with(path: &Path, options: LoadOptions) -> Result<(AnyModel, CheckpointMeta)> {
    let bytes = read_checked(path)?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(path, e))?;
    let info = header.metadata().clone().unwrap_or_default();
    let ck = Reader { path, info: &info, st: &st, allow_non_finite: options.allow_non_finite };
    let format = ck.meta("format")?;
    if format != FORMAT {
        return Err(ck.bad("format", &format!("{format:?}, expected {FORMAT:?}")));
    }
    let vocab = Vocab::parse(&ck.meta("vocab")?).map_err(|e| ck.bad("vocab", &e.to_string()))?;
    let mut meta = CheckpointMeta {
        step: ck.number("step")?,
        seed: ck.number("seed")?,
        dataset_sha256: ck.meta("dataset_sha256")?,
        adamw: None,
        alpha: None,
    };
    let v = vocab.len();
    let kind = ck.meta("kind")?;
    let model = if kind == "bigram" {
        let n = ck.tensor("N", &[v, v])?;
        // Counts are whole numbers (an earlier version saved counts above 2^24 rounded: still
        // whole numbers, read as they are); anything else was not written by `save`.
        if let Some(&c) =
            n.iter().find(|&&c| !(c >= 0.0 && c.fract() == 0.0 && f64::from(c) <= f64::from(u32::MAX)))
        {
            let path = path.to_path_buf();
            return Err(ModelError::Checkpoint(CheckpointError::Count { path, count: f64::from(c) }));
        }
        let counts =
            Array2::from_shape_vec((v, v), n.iter().map(|&c| c as u32).collect()).expect("checked shape");
        if let Some(text) = info.get("alpha") {
            let alpha = text.parse::<f64>().ok().filter(|&a| crate::bigram::check_alpha(a).is_ok());
            meta.alpha =
                Some(alpha.ok_or_else(|| ck.bad("alpha", &format!("{text:?}, not a number at least 0")))?);
        }
        AnyModel::Counts(BigramCounts::from_counts(vocab, counts)?)
    } else {
        // The kind and its settings, through the registry: one loader for every neural kind.
        let spec = Spec::parse(&kind, |key| info.get(key).cloned(), true).map_err(|e| match e {
            SpecError::UnknownKind(kind) => {
                ModelError::Checkpoint(CheckpointError::UnknownKind { path: path.to_path_buf(), kind })
            }
            SpecError::Setting { key, problem } => ck.bad(&key, &problem),
        })?;
        // Sizes the file cannot hold are refused before anything is allocated for them (up to
        // 16 M parameters a model is built anyway, so that a missing or misshapen tensor gets
        // its own error, by name).
        let held: u128 = st
            .tensors()
            .iter()
            .filter(|(n, _)| !n.starts_with("adamw."))
            .map(|(_, t)| t.data().len() as u128 / 4)
            .sum();
        let params = spec.num_params(v);
        if params > held.max(1 << 24) {
            let params = u64::try_from(params).unwrap_or(u64::MAX);
            let held = held as u64;
            return Err(ModelError::Checkpoint(CheckpointError::Sizes {
                path: path.to_path_buf(),
                params,
                held,
            }));
        }
        // Then the ranges of the command line's flags (`--n-embd` at most 4,096, ...).
        spec.check_limits().map_err(|e| ck.bad(&e.key, &format!("{}, not {}", e.value, e.allowed)))?;
        let mut model = spec.build(&vocab, &mut rand::rngs::StdRng::seed_from_u64(0))?;
        let m = model.neural_mut().expect("only the counting model is not neural");
        ck.fill(m.params_mut())?;
        meta.adamw = ck.adamw(m.params())?;
        model
    };
    Ok((model, meta))
}

/// Reads a checkpoint's metadata and tensors with errors that name the file.
struct Reader<'a> {
    path: &'a Path,
    info: &'a HashMap<String, String>,
    st: &'a SafeTensors<'a>,
    /// Whether NaN and infinite values are accepted.
    allow_non_finite: bool,
}

impl Reader<'_> {
    fn bad(&self, key: &str, problem: &str) -> ModelError {
        ModelError::Checkpoint(CheckpointError::Meta {
            path: self.path.into(),
            key: key.into(),
            problem: problem.into(),
        })
    }

    fn meta(&self, key: &str) -> Result<String> {
        self.info.get(key).cloned().ok_or_else(|| self.bad(key, "missing"))
    }

    fn number(&self, key: &str) -> Result<u64> {
        let v = self.meta(key)?;
        v.parse().map_err(|_| self.bad(key, &format!("{v:?}, not a whole number")))
    }

    /// Tensor `name` as f32 values, checked to be float32 of `shape`, and finite unless allowed.
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self.view(name, shape)?;
        let values: Vec<f32> =
            t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let count = values.iter().filter(|x| !x.is_finite()).count();
        if count > 0 && !self.allow_non_finite {
            return Err(ModelError::Checkpoint(CheckpointError::NonFinite {
                path: self.path.into(),
                name: name.into(),
                count,
            }));
        }
        Ok(values)
    }

    /// Tensor `name`, checked to be present and float32 of `shape`.
    fn view(&self, name: &str, shape: &[usize]) -> Result<TensorView<'_>> {
        let t = self.st.tensor(name).map_err(|_| {
            ModelError::Checkpoint(CheckpointError::MissingTensor {
                path: self.path.into(),
                name: name.into(),
            })
        })?;
        if t.dtype() != Dtype::F32 || t.shape() != shape {
            return Err(ModelError::Checkpoint(CheckpointError::BadTensor {
                path: self.path.into(),
                name: name.into(),
                expected: shape.to_vec(),
                got: format!("{:?} {:?}", t.dtype(), t.shape()),
            }));
        }
        Ok(t)
    }

    /// AdamW's moments for `params`, when the checkpoint has them (metadata `adamw_t`).
    fn adamw(&self, params: &mm_tensor::ParamStore<f32>) -> Result<Option<mm_tensor::AdamWState<f32>>> {
        if !self.info.contains_key("adamw_t") {
            return Ok(None);
        }
        let t = self.number("adamw_t")?;
        let (mut m, mut v) = (Vec::new(), Vec::new());
        for id in params.ids() {
            let (name, shape) = (params.name(id), params.shape(id));
            m.push(self.tensor(&format!("adamw.m.{name}"), shape.dims())?);
            v.push(self.tensor(&format!("adamw.v.{name}"), shape.dims())?);
        }
        Ok(Some(mm_tensor::AdamWState { t, m, v }))
    }

    /// Overwrites every parameter and buffer of `params` with the tensor of its name.
    fn fill(&self, params: &mut mm_tensor::ParamStore<f32>) -> Result<()> {
        for id in params.ids().collect::<Vec<_>>() {
            let values = self.tensor(params.name(id), params.shape(id).dims())?;
            params.data_mut(id).copy_from_slice(&values);
        }
        for id in params.buffer_ids().collect::<Vec<_>>() {
            let values = self.tensor(params.buffer_name(id), params.buffer_shape(id).dims())?;
            params.buffer_data_mut(id).copy_from_slice(&values);
        }
        Ok(())
    }
}
