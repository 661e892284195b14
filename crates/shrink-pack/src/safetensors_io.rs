//! safetensors files: memory-mapped reading of one file or a folder of
//! shards, and writing with `__metadata__`.
//!
//! # Format
//!
//! A `u64` little-endian header length `N`, `N` bytes of JSON (`{"name":
//! {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//! "__metadata__": {"key": "value"}}`, padded with spaces to a multiple of
//! 8), then the tensors' bytes, row-major, little-endian, back to back.
//! Header parsing and validation (offsets contiguous and covering the data,
//! sizes without overflow, header at most 100 MB) is the `safetensors`
//! crate's; its errors become [`Error::Corrupt`].
//!
//! # Reading
//!
//! [`SafetensorsFile::open`] maps one file; [`SafetensorsModel::open`] takes
//! a file, or a folder holding `model.safetensors.index.json` (whose
//! `weight_map` names the shard of every tensor) or a single
//! `model.safetensors`. [`SafetensorsFile::tensor_f32`] converts F32, F16 and
//! BF16 exactly to f32 (every f16/bf16 value is an f32 value); other dtypes
//! are an [`Error::File`] there, and available raw through
//! [`SafetensorsFile::tensor`].
//!
//! # Writing
//!
//! [`SafetensorsWriter`] collects tensors (f32, f16, bf16, i32, i64, u8, i8,
//! or raw bytes with any dtype such as `F8_E4M3`) and string metadata and
//! writes them in the `safetensors` crate's layout: data ordered by dtype
//! alignment (largest first) and then by name, as the Python package does, so
//! files are byte-identical to `safetensors.torch.save_file`'s for the same
//! tensors and (single-key) metadata; metadata keys are sorted.
//!
//! ```
//! # fn main() -> shrink_core::Result<()> {
//! use shrink_pack::safetensors_io::{SafetensorsFile, SafetensorsWriter};
//! let mut w = SafetensorsWriter::new();
//! w.add_f32("a.weight", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
//! w.add_bf16("b.weight", &[2], &[0.5, -1.0])?;
//! w.set_metadata("format", "pt");
//! let f = SafetensorsFile::from_bytes(w.to_bytes()?)?;
//! assert_eq!(f.tensor_f32("a.weight")?.1, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
//! assert_eq!(f.metadata().get("format").map(String::as_str), Some("pt"));
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Metadata, SafeTensors};
use shrink_core::{Error, Result};

pub use safetensors::Dtype;

/// Name of the shard index file in a model folder.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// Name of the single-file model in a model folder.
pub const MODEL_FILE: &str = "model.safetensors";

/// Bytes per element of `dtype`, or `None` for sub-byte dtypes (F4, F6).
pub fn dtype_bytes(dtype: Dtype) -> Option<usize> {
    let bits = dtype.bitsize();
    bits.is_multiple_of(8).then_some(bits / 8)
}

/// One tensor entry of a safetensors header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    /// The tensor's name.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    range: std::ops::Range<usize>,
}

impl TensorEntry {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Absolute byte range of the data in the file.
    pub fn byte_range(&self) -> std::ops::Range<usize> {
        self.range.clone()
    }
}

/// A borrowed view of one tensor: dtype, shape and raw little-endian bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawTensor<'a> {
    /// Element type.
    pub dtype: Dtype,
    /// Shape, outermost first.
    pub shape: &'a [usize],
    /// The bytes.
    pub data: &'a [u8],
}

impl RawTensor<'_> {
    /// The tensor as f32: exact for F32, F16 and BF16.
    ///
    /// Errors: [`Error::InvalidArgument`] for any other dtype.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        bytes_to_f32(self.dtype, self.data)
    }
}

/// Decodes little-endian `data` of `dtype` (F32, F16 or BF16) to f32.
///
/// Errors: [`Error::InvalidArgument`] for other dtypes; [`Error::Corrupt`]
/// when the length is not a whole number of elements.
pub fn bytes_to_f32(dtype: Dtype, data: &[u8]) -> Result<Vec<f32>> {
    let size = match dtype {
        Dtype::F32 => 4,
        Dtype::F16 | Dtype::BF16 => 2,
        other => {
            return Err(Error::invalid(
                "dtype",
                format!("{other} cannot be read as f32 (F32, F16 and BF16 can)"),
            ));
        }
    };
    if !data.len().is_multiple_of(size) {
        return Err(Error::corrupt(
            format!("{dtype} tensor"),
            format!("{} bytes is not a whole number of elements", data.len()),
        ));
    }
    Ok(match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect(),
        _ => data
            .chunks_exact(2)
            .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
            .collect(),
    })
}

enum Backing {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Owned(v) => v,
            Backing::Mapped(m) => m,
        }
    }
}

/// One safetensors file, header validated on opening, data memory-mapped
/// (or owned).
pub struct SafetensorsFile {
    backing: Backing,
    path: PathBuf,
    entries: Vec<TensorEntry>,
    index: HashMap<String, usize>,
    metadata: BTreeMap<String, String>,
}

impl fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("path", &self.path)
            .field("tensors", &self.entries.len())
            .finish()
    }
}

fn corrupt_st(path: &Path, e: impl fmt::Display) -> Error {
    Error::corrupt(
        format!("safetensors file {}", path.display()),
        e.to_string(),
    )
}

impl SafetensorsFile {
    /// Opens and validates the safetensors file at `path`, memory-mapped.
    ///
    /// Errors: [`Error::Io`] when it cannot be opened or mapped;
    /// [`Error::Corrupt`] when the header is invalid.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = fs::File::open(path).map_err(io)?;
        let map = crate::gguf::file::map_file(&file).map_err(io)?;
        Self::build(Backing::Mapped(map), path.to_path_buf())
    }

    /// Validates the safetensors file held in `bytes`.
    ///
    /// Errors: [`Error::Corrupt`] when the header is invalid.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::build(Backing::Owned(bytes), PathBuf::from("<memory>"))
    }

    fn build(backing: Backing, path: PathBuf) -> Result<Self> {
        let bytes = backing.bytes();
        let (n, meta): (usize, Metadata) =
            SafeTensors::read_metadata(bytes).map_err(|e| corrupt_st(&path, e))?;
        // read_metadata checked that 8 + n + data length == file length.
        let data_start = 8 + n;
        let mut entries: Vec<TensorEntry> = meta
            .tensors()
            .into_iter()
            .map(|(name, info)| TensorEntry {
                name,
                dtype: info.dtype,
                shape: info.shape.clone(),
                range: data_start + info.data_offsets.0..data_start + info.data_offsets.1,
            })
            .collect();
        entries.sort_by_key(|e| e.range.start);
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        let metadata = meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(Self {
            backing,
            path,
            entries,
            index,
            metadata,
        })
    }

    /// The file's path (`<memory>` for [`SafetensorsFile::from_bytes`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    /// Every tensor, in data order.
    pub fn entries(&self) -> &[TensorEntry] {
        &self.entries
    }

    /// Tensor names, in data order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// The `__metadata__` map (empty when absent).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The header entry of tensor `name`.
    pub fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.index.get(name).map(|&i| &self.entries[i])
    }

    /// Tensor `name`, raw.
    ///
    /// Errors: [`Error::File`] when the file has no such tensor.
    pub fn tensor(&self, name: &str) -> Result<RawTensor<'_>> {
        let e = self.entry(name).ok_or_else(|| Error::File {
            path: self.path.clone(),
            reason: format!("no tensor named `{name}`"),
        })?;
        Ok(RawTensor {
            dtype: e.dtype,
            shape: &e.shape,
            data: &self.bytes()[e.byte_range()],
        })
    }

    /// Tensor `name` as f32 with its shape (F32, F16, BF16).
    ///
    /// Errors: [`Error::File`] when it is missing or of another dtype.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let t = self.tensor(name)?;
        let v = t.to_f32().map_err(|_| Error::File {
            path: self.path.clone(),
            reason: format!(
                "tensor `{name}` has dtype {}; only F32, F16 and BF16 convert to f32",
                t.dtype
            ),
        })?;
        Ok((t.shape.to_vec(), v))
    }
}

/// A model: one safetensors file, or a folder of shards listed in
/// `model.safetensors.index.json`.
#[derive(Debug)]
pub struct SafetensorsModel {
    root: PathBuf,
    shards: Vec<SafetensorsFile>,
    /// tensor name -> shard index, in the order tensors are listed.
    map: BTreeMap<String, usize>,
    index_metadata: Option<serde_json::Value>,
}

impl SafetensorsModel {
    /// Opens `path`: a `.safetensors` file, an index JSON file, or a folder
    /// holding `model.safetensors.index.json` or `model.safetensors`.
    ///
    /// Errors: [`Error::Io`] for unreadable files; [`Error::Corrupt`] for an
    /// invalid index or shard; [`Error::File`] when the folder has no model,
    /// a shard lacks a tensor the index assigns to it, or two shards hold the
    /// same tensor.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            let index = path.join(INDEX_FILE);
            if index.is_file() {
                return Self::open_index(&index);
            }
            let single = path.join(MODEL_FILE);
            if single.is_file() {
                return Self::open_single(&single);
            }
            return Err(Error::File {
                path: path.to_path_buf(),
                reason: format!("folder holds neither {INDEX_FILE} nor {MODEL_FILE}"),
            });
        }
        if path.extension().is_some_and(|e| e == "json") {
            return Self::open_index(path);
        }
        Self::open_single(path)
    }

    /// A model of one safetensors file already in memory (for example from
    /// [`SafetensorsFile::from_bytes`]); its folder is the current directory.
    pub fn from_file(f: SafetensorsFile) -> Self {
        let map = f.names().map(|n| (n.to_string(), 0)).collect();
        Self {
            root: PathBuf::from("."),
            shards: vec![f],
            map,
            index_metadata: None,
        }
    }

    fn open_single(path: &Path) -> Result<Self> {
        let f = SafetensorsFile::open(path)?;
        let map = f.names().map(|n| (n.to_string(), 0)).collect();
        Ok(Self {
            root: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            shards: vec![f],
            map,
            index_metadata: None,
        })
    }

    fn open_index(index: &Path) -> Result<Self> {
        let text = fs::read(index).map_err(|source| Error::Io {
            path: index.to_path_buf(),
            source,
        })?;
        let bad =
            |reason: String| Error::corrupt(format!("shard index {}", index.display()), reason);
        let json: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        let wm = json
            .get("weight_map")
            .and_then(|v| v.as_object())
            .ok_or_else(|| bad("no `weight_map` object".into()))?;
        let root = index.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut shard_names: Vec<String> = Vec::new();
        let mut wanted: BTreeMap<String, usize> = BTreeMap::new();
        for (tensor, file) in wm {
            let file = file
                .as_str()
                .ok_or_else(|| bad(format!("shard of `{tensor}` is not a string")))?;
            // Shards must sit in the model folder: no paths.
            if file.is_empty() || file.contains(['/', '\\']) || file == ".." {
                return Err(bad(format!("shard name `{file}` is not a plain file name")));
            }
            let k = match shard_names.iter().position(|s| s == file) {
                Some(k) => k,
                None => {
                    shard_names.push(file.to_string());
                    shard_names.len() - 1
                }
            };
            wanted.insert(tensor.clone(), k);
        }
        let shards = shard_names
            .iter()
            .map(|s| SafetensorsFile::open(root.join(s)))
            .collect::<Result<Vec<_>>>()?;
        for (tensor, &k) in &wanted {
            if shards[k].entry(tensor).is_none() {
                return Err(Error::File {
                    path: shards[k].path().to_path_buf(),
                    reason: format!("the index assigns `{tensor}` to this shard, which lacks it"),
                });
            }
        }
        // Tensors a shard holds but the index does not list are still
        // reachable, unless two shards hold them.
        let mut map = wanted;
        for (k, s) in shards.iter().enumerate() {
            for n in s.names() {
                match map.get(n) {
                    Some(&j) if j != k && !wm.contains_key(n) => {
                        return Err(Error::File {
                            path: s.path().to_path_buf(),
                            reason: format!(
                                "tensor `{n}` is also in {}",
                                shards[j].path().display()
                            ),
                        });
                    }
                    Some(_) => {}
                    None => {
                        map.insert(n.to_string(), k);
                    }
                }
            }
        }
        Ok(Self {
            root,
            shards,
            map,
            index_metadata: json.get("metadata").cloned(),
        })
    }

    /// The folder the model lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The shard files.
    pub fn shards(&self) -> &[SafetensorsFile] {
        &self.shards
    }

    /// The index's `metadata` object, when opened from an index.
    pub fn index_metadata(&self) -> Option<&serde_json::Value> {
        self.index_metadata.as_ref()
    }

    /// Every tensor name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// `(name, dtype, shape)` of every tensor, sorted by name.
    pub fn list(&self) -> Vec<(&str, Dtype, &[usize])> {
        self.map
            .iter()
            .filter_map(|(n, &k)| {
                self.shards[k]
                    .entry(n)
                    .map(|e| (n.as_str(), e.dtype, e.shape.as_slice()))
            })
            .collect()
    }

    fn shard_of(&self, name: &str) -> Result<&SafetensorsFile> {
        self.map
            .get(name)
            .map(|&k| &self.shards[k])
            .ok_or_else(|| Error::File {
                path: self.root.clone(),
                reason: format!("model has no tensor named `{name}`"),
            })
    }

    /// Tensor `name`, raw.
    ///
    /// Errors: [`Error::File`] when missing.
    pub fn tensor(&self, name: &str) -> Result<RawTensor<'_>> {
        self.shard_of(name)?.tensor(name)
    }

    /// Tensor `name` as f32 with its shape (F32, F16, BF16).
    ///
    /// Errors: [`Error::File`] when missing or of another dtype.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        self.shard_of(name)?.tensor_f32(name)
    }
}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

struct Owned {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// Collects tensors and metadata, then writes a safetensors file.
#[derive(Default)]
pub struct SafetensorsWriter {
    tensors: BTreeMap<String, Owned>,
    metadata: BTreeMap<String, String>,
}

impl fmt::Debug for SafetensorsWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafetensorsWriter")
            .field("tensors", &self.tensors.keys().collect::<Vec<_>>())
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl SafetensorsWriter {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a `__metadata__` entry (replacing an earlier value).
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.metadata.insert(key.into(), value.into());
    }

    /// Whether a tensor of that name was added.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Number of tensors added.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether no tensor was added.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Adds raw little-endian bytes of `dtype` (any byte-sized dtype, e.g.
    /// `F8_E4M3` codes or `U8` packed nibbles).
    ///
    /// Errors ([`Error::InvalidArgument`], [`Error::Shape`]): a name used
    /// twice or named `__metadata__`, a sub-byte dtype, a shape that
    /// overflows, or `data` not `numel * size` bytes long.
    pub fn add_raw(
        &mut self,
        name: impl Into<String>,
        dtype: Dtype,
        shape: &[usize],
        data: Vec<u8>,
    ) -> Result<()> {
        let name = name.into();
        if name == "__metadata__" || name.is_empty() {
            return Err(Error::invalid(
                "tensor name",
                format!("`{name}` is reserved or empty"),
            ));
        }
        if self.tensors.contains_key(&name) {
            return Err(Error::invalid(
                "tensor name",
                format!("`{name}` added twice"),
            ));
        }
        let size = dtype_bytes(dtype).ok_or_else(|| {
            Error::invalid("dtype", format!("{dtype} is not byte-sized; not supported"))
        })?;
        let len = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(size))
            .ok_or_else(|| Error::invalid("shape", format!("{shape:?} overflows")))?;
        if data.len() != len {
            return Err(Error::shape(
                format!("bytes of tensor `{name}` ({dtype} {shape:?})"),
                len,
                data.len(),
            ));
        }
        self.tensors.insert(
            name,
            Owned {
                dtype,
                shape: shape.to_vec(),
                data,
            },
        );
        Ok(())
    }

    /// Adds an f32 tensor.
    pub fn add_f32(&mut self, name: impl Into<String>, shape: &[usize], v: &[f32]) -> Result<()> {
        let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.add_raw(name, Dtype::F32, shape, data)
    }

    /// Adds an f16 tensor (values rounded to nearest even).
    pub fn add_f16(&mut self, name: impl Into<String>, shape: &[usize], v: &[f32]) -> Result<()> {
        let data = v
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_bits().to_le_bytes())
            .collect();
        self.add_raw(name, Dtype::F16, shape, data)
    }

    /// Adds a bf16 tensor (values rounded to nearest even, as PyTorch does).
    pub fn add_bf16(&mut self, name: impl Into<String>, shape: &[usize], v: &[f32]) -> Result<()> {
        let data = v
            .iter()
            .flat_map(|&x| half::bf16::from_f32(x).to_bits().to_le_bytes())
            .collect();
        self.add_raw(name, Dtype::BF16, shape, data)
    }

    /// Adds an i32 tensor.
    pub fn add_i32(&mut self, name: impl Into<String>, shape: &[usize], v: &[i32]) -> Result<()> {
        let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.add_raw(name, Dtype::I32, shape, data)
    }

    /// Adds an i64 tensor.
    pub fn add_i64(&mut self, name: impl Into<String>, shape: &[usize], v: &[i64]) -> Result<()> {
        let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.add_raw(name, Dtype::I64, shape, data)
    }

    /// Adds a u8 tensor.
    pub fn add_u8(&mut self, name: impl Into<String>, shape: &[usize], v: &[u8]) -> Result<()> {
        self.add_raw(name, Dtype::U8, shape, v.to_vec())
    }

    /// Adds an i8 tensor.
    pub fn add_i8(&mut self, name: impl Into<String>, shape: &[usize], v: &[i8]) -> Result<()> {
        let data = v.iter().map(|&x| x as u8).collect();
        self.add_raw(name, Dtype::I8, shape, data)
    }

    /// The whole file.
    ///
    /// The header is compact JSON: `__metadata__` first (keys sorted, so the
    /// bytes do not depend on hash order), then the tensors in data order:
    /// by dtype alignment, largest first, then by name (the `safetensors`
    /// crate's and the Python package's order); padded with spaces to a
    /// multiple of 8 bytes.
    ///
    /// Errors: [`Error::InvalidArgument`] if the header cannot be encoded.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let json = |v: &str| {
            serde_json::to_string(v)
                .map_err(|e| Error::invalid("safetensors header", e.to_string()))
        };
        let mut order: Vec<(&String, &Owned)> = self.tensors.iter().collect();
        order.sort_by(|(an, a), (bn, b)| b.dtype.cmp(&a.dtype).then(an.cmp(bn)));
        let mut h = String::from("{");
        let mut first = true;
        if !self.metadata.is_empty() {
            h.push_str("\"__metadata__\":{");
            for (i, (k, v)) in self.metadata.iter().enumerate() {
                if i > 0 {
                    h.push(',');
                }
                h.push_str(&json(k)?);
                h.push(':');
                h.push_str(&json(v)?);
            }
            h.push('}');
            first = false;
        }
        let mut offset = 0usize;
        for (name, t) in &order {
            if !first {
                h.push(',');
            }
            first = false;
            let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
            h.push_str(&format!(
                "{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
                json(name)?,
                t.dtype,
                shape.join(","),
                offset,
                offset + t.data.len()
            ));
            offset += t.data.len();
        }
        h.push('}');
        let mut header = h.into_bytes();
        header.resize(header.len().next_multiple_of(8), b' ');
        let mut out = Vec::with_capacity(8 + header.len() + offset);
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        for (_, t) in &order {
            out.extend_from_slice(&t.data);
        }
        Ok(out)
    }

    /// Writes the file to `path`.
    ///
    /// Errors: [`Error::Io`] when it cannot be written.
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        fs::write(path, bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
