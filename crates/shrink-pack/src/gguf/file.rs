//! GGUF v3 files: a writer and a validating, memory-mapped reader.
//!
//! # Layout (`docs/algorithms.md` 9.4; ggml's `docs/gguf.md`)
//!
//! ```text
//! "GGUF"                         magic, 4 bytes (0x46554747 as a LE u32)
//! u32 version = 3
//! u64 tensor_count, u64 metadata_kv_count
//! metadata_kv_count x { string key, u32 value_type, value }
//! tensor_count x { string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type, u64 offset }
//! zero padding to ALIGNMENT
//! tensor data: each tensor at data_start + offset, offset a multiple of ALIGNMENT
//! ```
//!
//! All integers are little-endian. A string is a `u64` byte length followed
//! by UTF-8 bytes (no NUL). Value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32,
//! 5 i32, 6 f32, 7 bool, 8 string, 9 array (`u32` element type, `u64` count,
//! elements), 10 u64, 11 i64, 12 f64. `dims[0]` is the fastest-varying
//! dimension, so a PyTorch weight of shape `(out, in)` is stored with dims
//! `[in, out]`. The alignment is the `u32` value of `general.alignment`, 32
//! when the key is absent.
//!
//! # Reading untrusted bytes
//!
//! [`GgufFile::from_bytes`] and [`GgufFile::open`] check every field before
//! using it: the magic and version, every length against the bytes that
//! remain (no allocation is sized from an unchecked count), UTF-8 of keys and
//! strings, booleans, array nesting depth ([`MAX_ARRAY_DEPTH`]), duplicate
//! keys and tensor names, the alignment (a non-zero power of two), tensor
//! ranks (at most 4), dimensions (each below `2^63`, product without
//! overflow, the row a whole number of blocks), type ids, offsets (aligned)
//! and that every tensor's bytes lie inside the file. Any violation is an
//! [`Error::Corrupt`]; nothing panics.
//!
//! # Example
//!
//! ```
//! # fn main() -> shrink_core::Result<()> {
//! use shrink_pack::gguf::{GgmlType, GgufFile, GgufType, GgufWriter, MetaValue};
//! let mut w = GgufWriter::new();
//! w.add_metadata("general.architecture", MetaValue::String("demo".into()))?;
//! let x: Vec<f32> = (0..2 * 64).map(|i| (i as f32 - 64.0) / 16.0).collect();
//! // PyTorch shape (out, in) = (2, 64); stored as dims [64, 2].
//! w.add_tensor_f32("blk.0.w", &[2, 64], GgmlType::Quant(GgufType::Q8_0), &x)?;
//! let file = GgufFile::from_bytes(w.to_bytes()?)?;
//! let t = file.tensor("blk.0.w").unwrap();
//! assert_eq!(t.dims(), &[64, 2]);
//! let y = file.tensor_f32("blk.0.w")?;
//! assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 0.02));
//! # Ok(())
//! # }
//! ```

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use shrink_core::{Error, Result};

use super::iquants::{self, DecodeOnlyType};
use super::{GgufType, dequantize, quantize};

/// The four magic bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The version this writer emits (the reader also accepts version 2, whose
/// layout is the same).
pub const VERSION: u32 = 3;
/// Alignment used when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u32 = 32;
/// The metadata key that sets the alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// The metadata key that must be present when any tensor is quantized.
pub const QUANTIZATION_VERSION_KEY: &str = "general.quantization_version";
/// The quantization version the writer stores when the caller gives none
/// (ggml's `GGML_QNT_VERSION`).
pub const QUANTIZATION_VERSION: u32 = 2;
/// Longest tensor name ggml accepts, in bytes, exclusive (`GGML_MAX_NAME`).
pub const MAX_NAME_LEN: usize = 64;
/// Highest tensor rank (`GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// Deepest nesting of arrays the reader accepts (an array of arrays has
/// depth 2). Bounds recursion on hostile input.
pub const MAX_ARRAY_DEPTH: usize = 8;

const WHAT: &str = "GGUF file";

fn corrupt(reason: impl Into<String>) -> Error {
    Error::corrupt(WHAT, reason)
}

// ---------------------------------------------------------------------------
// Metadata values
// ---------------------------------------------------------------------------

/// The type tag of a metadata value (`gguf_type` in ggml).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetaType {
    /// 0: unsigned 8-bit integer.
    U8,
    /// 1: signed 8-bit integer.
    I8,
    /// 2: unsigned 16-bit integer.
    U16,
    /// 3: signed 16-bit integer.
    I16,
    /// 4: unsigned 32-bit integer.
    U32,
    /// 5: signed 32-bit integer.
    I32,
    /// 6: 32-bit float.
    F32,
    /// 7: boolean, one byte 0 or 1.
    Bool,
    /// 8: length-prefixed UTF-8 string.
    String,
    /// 9: homogeneous array.
    Array,
    /// 10: unsigned 64-bit integer.
    U64,
    /// 11: signed 64-bit integer.
    I64,
    /// 12: 64-bit float.
    F64,
}

impl MetaType {
    /// The tag stored in the file.
    pub fn id(self) -> u32 {
        match self {
            MetaType::U8 => 0,
            MetaType::I8 => 1,
            MetaType::U16 => 2,
            MetaType::I16 => 3,
            MetaType::U32 => 4,
            MetaType::I32 => 5,
            MetaType::F32 => 6,
            MetaType::Bool => 7,
            MetaType::String => 8,
            MetaType::Array => 9,
            MetaType::U64 => 10,
            MetaType::I64 => 11,
            MetaType::F64 => 12,
        }
    }

    /// The type with tag `id`, if it is one of the thirteen GGUF types.
    pub fn from_id(id: u32) -> Option<MetaType> {
        Some(match id {
            0 => MetaType::U8,
            1 => MetaType::I8,
            2 => MetaType::U16,
            3 => MetaType::I16,
            4 => MetaType::U32,
            5 => MetaType::I32,
            6 => MetaType::F32,
            7 => MetaType::Bool,
            8 => MetaType::String,
            9 => MetaType::Array,
            10 => MetaType::U64,
            11 => MetaType::I64,
            12 => MetaType::F64,
            _ => return None,
        })
    }

    /// The fewest bytes one value of this type takes (a string or an array
    /// takes at least its header).
    fn min_size(self) -> usize {
        match self {
            MetaType::U8 | MetaType::I8 | MetaType::Bool => 1,
            MetaType::U16 | MetaType::I16 => 2,
            MetaType::U32 | MetaType::I32 | MetaType::F32 => 4,
            MetaType::U64 | MetaType::I64 | MetaType::F64 | MetaType::String => 8,
            MetaType::Array => 12,
        }
    }
}

/// One metadata value.
///
/// Arrays are homogeneous: every element of [`MetaValue::Array`] must have
/// the array's element type (the writer checks this); arrays may nest.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum MetaValue {
    /// Type 0.
    U8(u8),
    /// Type 1.
    I8(i8),
    /// Type 2.
    U16(u16),
    /// Type 3.
    I16(i16),
    /// Type 4.
    U32(u32),
    /// Type 5.
    I32(i32),
    /// Type 6.
    F32(f32),
    /// Type 7.
    Bool(bool),
    /// Type 8.
    String(String),
    /// Type 9: the element type and the elements.
    Array(MetaType, Vec<MetaValue>),
    /// Type 10.
    U64(u64),
    /// Type 11.
    I64(i64),
    /// Type 12.
    F64(f64),
}

impl MetaValue {
    /// This value's type tag.
    pub fn meta_type(&self) -> MetaType {
        match self {
            MetaValue::U8(_) => MetaType::U8,
            MetaValue::I8(_) => MetaType::I8,
            MetaValue::U16(_) => MetaType::U16,
            MetaValue::I16(_) => MetaType::I16,
            MetaValue::U32(_) => MetaType::U32,
            MetaValue::I32(_) => MetaType::I32,
            MetaValue::F32(_) => MetaType::F32,
            MetaValue::Bool(_) => MetaType::Bool,
            MetaValue::String(_) => MetaType::String,
            MetaValue::Array(..) => MetaType::Array,
            MetaValue::U64(_) => MetaType::U64,
            MetaValue::I64(_) => MetaType::I64,
            MetaValue::F64(_) => MetaType::F64,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer of
    /// any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is a float.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(_, v) => Some(v),
            _ => None,
        }
    }

    /// Checks that arrays are homogeneous, all the way down.
    fn validate(&self, key: &str) -> Result<()> {
        if let MetaValue::Array(t, items) = self {
            for (i, v) in items.iter().enumerate() {
                if v.meta_type() != *t {
                    return Err(Error::invalid(
                        "gguf metadata",
                        format!(
                            "`{key}`: array of {t:?} holds a {:?} at index {i}",
                            v.meta_type()
                        ),
                    ));
                }
                v.validate(key)?;
            }
        }
        Ok(())
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            MetaValue::U8(v) => out.push(*v),
            MetaValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::Bool(v) => out.push(u8::from(*v)),
            MetaValue::String(s) => write_string(out, s),
            MetaValue::Array(t, items) => {
                out.extend_from_slice(&t.id().to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for v in items {
                    v.write(out);
                }
            }
            MetaValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            MetaValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

// ---------------------------------------------------------------------------
// Tensor types
// ---------------------------------------------------------------------------

/// The storage type of a GGUF tensor: a plain element type, one of the
/// block types of [`GgufType`], or a block type this crate only decodes
/// ([`DecodeOnlyType`]: the i-quants IQ1_S..IQ3_S and NVFP4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GgmlType {
    /// ggml type 0: IEEE binary32.
    F32,
    /// A block type (including F16 and BF16) with its own quantizer.
    Quant(GgufType),
    /// A block type that is decoded but not encoded (no reference quantizer
    /// without an importance matrix): IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S,
    /// IQ3_S, IQ2_S, IQ1_M, NVFP4. Such tensors are read, and written from
    /// bytes ([`GgufWriter::add_tensor_bytes`]).
    DecodeOnly(DecodeOnlyType),
    /// ggml type 24: signed 8-bit integers.
    I8,
    /// ggml type 25: signed 16-bit integers.
    I16,
    /// ggml type 26: signed 32-bit integers.
    I32,
    /// ggml type 27: signed 64-bit integers.
    I64,
    /// ggml type 28: IEEE binary64.
    F64,
}

impl From<GgufType> for GgmlType {
    fn from(t: GgufType) -> Self {
        GgmlType::Quant(t)
    }
}

impl From<DecodeOnlyType> for GgmlType {
    fn from(t: DecodeOnlyType) -> Self {
        GgmlType::DecodeOnly(t)
    }
}

impl GgmlType {
    /// The ggml type id stored in a tensor info.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::Quant(t) => t.id(),
            GgmlType::DecodeOnly(t) => t.id(),
            GgmlType::I8 => 24,
            GgmlType::I16 => 25,
            GgmlType::I32 => 26,
            GgmlType::I64 => 27,
            GgmlType::F64 => 28,
        }
    }

    /// The type with ggml id `id`, if this crate can store and decode it.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        Some(match id {
            0 => GgmlType::F32,
            24 => GgmlType::I8,
            25 => GgmlType::I16,
            26 => GgmlType::I32,
            27 => GgmlType::I64,
            28 => GgmlType::F64,
            _ => match GgufType::from_id(id) {
                Some(t) => GgmlType::Quant(t),
                None => GgmlType::DecodeOnly(DecodeOnlyType::from_id(id)?),
            },
        })
    }

    /// Values per block (1 for plain types).
    pub fn block_size(self) -> usize {
        match self {
            GgmlType::Quant(t) => t.block_size(),
            GgmlType::DecodeOnly(t) => t.block_size(),
            _ => 1,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::I32 => 4,
            GgmlType::Quant(t) => t.type_size(),
            GgmlType::DecodeOnly(t) => t.type_size(),
            GgmlType::I8 => 1,
            GgmlType::I16 => 2,
            GgmlType::I64 | GgmlType::F64 => 8,
        }
    }

    /// ggml's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::Quant(t) => t.name(),
            GgmlType::DecodeOnly(t) => t.name(),
            GgmlType::I8 => "I8",
            GgmlType::I16 => "I16",
            GgmlType::I32 => "I32",
            GgmlType::I64 => "I64",
            GgmlType::F64 => "F64",
        }
    }

    /// Bytes taken by `n` values (checked: `n` a whole number of blocks, no
    /// overflow).
    pub fn byte_len(self, n: usize) -> Result<usize> {
        match self {
            GgmlType::Quant(t) => t.byte_len(n),
            GgmlType::DecodeOnly(t) => t.byte_len(n),
            _ => n
                .checked_mul(self.type_size())
                .ok_or_else(|| Error::invalid("n", format!("{n} values overflow the byte count"))),
        }
    }

    /// Encodes `x` in this type: block types through [`quantize`], F32/F64
    /// exactly, integer types by rounding half away from zero (errors for
    /// values outside the type's range). Decode-only types are an
    /// [`Error::InvalidArgument`].
    pub fn encode(self, x: &[f32]) -> Result<Vec<u8>> {
        match self {
            GgmlType::Quant(t) => return quantize(t, x),
            GgmlType::DecodeOnly(t) => {
                return Err(Error::invalid(
                    "ggml type",
                    format!(
                        "{} is decode-only here (ggml quantizes it only with an importance matrix); \
                         add its bytes with add_tensor_bytes",
                        t.name()
                    ),
                ));
            }
            _ => {}
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: format!("{} tensor", self.name()),
                position: format!("index {i}"),
                value: x[i].to_string(),
            });
        }
        let mut out = Vec::with_capacity(self.byte_len(x.len())?);
        let int = |v: f32, lo: f64, hi: f64| -> Result<f64> {
            let r = f64::from(v).round();
            if r < lo || r > hi {
                return Err(Error::invalid(
                    "tensor values",
                    format!("{v} does not fit in {}", self.name()),
                ));
            }
            Ok(r)
        };
        for &v in x {
            match self {
                GgmlType::F32 => out.extend_from_slice(&v.to_le_bytes()),
                GgmlType::F64 => out.extend_from_slice(&f64::from(v).to_le_bytes()),
                GgmlType::I8 => {
                    out.extend_from_slice(&(int(v, -128.0, 127.0)? as i8).to_le_bytes())
                }
                GgmlType::I16 => {
                    out.extend_from_slice(&(int(v, -32768.0, 32767.0)? as i16).to_le_bytes())
                }
                GgmlType::I32 => out.extend_from_slice(
                    &(int(v, f64::from(i32::MIN), f64::from(i32::MAX))? as i32).to_le_bytes(),
                ),
                GgmlType::I64 => {
                    out.extend_from_slice(&(int(v, -9.2e18, 9.2e18)? as i64).to_le_bytes())
                }
                GgmlType::Quant(_) | GgmlType::DecodeOnly(_) => unreachable!("handled above"),
            }
        }
        Ok(out)
    }

    /// Decodes `n` values of this type from `bytes` to f32 (block types
    /// through [`dequantize`] or [`iquants::dequantize`]; F64 and 64-bit
    /// integers are rounded to the nearest f32).
    ///
    /// Errors: [`Error::Corrupt`] when `bytes` is not exactly `n` values
    /// long; [`Error::InvalidArgument`] when `n` is not a whole number of
    /// blocks.
    pub fn decode(self, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
        match self {
            GgmlType::Quant(t) => return dequantize(t, bytes, n),
            GgmlType::DecodeOnly(t) => return iquants::dequantize(t, bytes, n),
            _ => {}
        }
        let len = self.byte_len(n)?;
        if bytes.len() != len {
            return Err(Error::corrupt(
                format!("{} tensor", self.name()),
                format!("{n} values need {len} bytes, got {} bytes", bytes.len()),
            ));
        }
        let ts = self.type_size();
        let out = bytes
            .chunks_exact(ts)
            .map(|c| match self {
                GgmlType::F32 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                GgmlType::I8 => f32::from(c[0] as i8),
                GgmlType::I16 => f32::from(i16::from_le_bytes([c[0], c[1]])),
                GgmlType::I32 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32,
                GgmlType::I64 => i64::from_le_bytes(arr8(c)) as f32,
                GgmlType::F64 => f64::from_le_bytes(arr8(c)) as f32,
                GgmlType::Quant(_) | GgmlType::DecodeOnly(_) => f32::NAN,
            })
            .collect();
        Ok(out)
    }
}

fn arr8(c: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&c[..8]);
    a
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    data: Vec<u8>,
}

/// Builds a GGUF v3 file in memory: metadata first, then tensors, then
/// [`GgufWriter::to_bytes`] or [`GgufWriter::write_file`].
///
/// Keys and tensors are written in insertion order. When any tensor has a
/// block type (anything but F32, F64 and the integer types) and the caller
/// set no `general.quantization_version`, the writer adds it (value
/// [`QUANTIZATION_VERSION`], as a `u32`) after the caller's keys, as ggml
/// requires.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, MetaValue)>,
    keys: HashSet<String>,
    tensors: Vec<PendingTensor>,
    names: HashSet<String>,
    alignment: Option<u32>,
}

impl fmt::Debug for GgufWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufWriter")
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment())
            .finish()
    }
}

impl GgufWriter {
    /// An empty file (alignment [`DEFAULT_ALIGNMENT`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// The alignment the file will use.
    pub fn alignment(&self) -> u32 {
        self.alignment.unwrap_or(DEFAULT_ALIGNMENT)
    }

    /// Adds a metadata key/value.
    ///
    /// Errors ([`Error::InvalidArgument`]): a key set twice, an empty key, a
    /// heterogeneous array, or `general.alignment` that is not a `u32`
    /// power of two and multiple of 8.
    pub fn add_metadata(&mut self, key: impl Into<String>, value: MetaValue) -> Result<()> {
        let key = key.into();
        if key.is_empty() {
            return Err(Error::invalid("gguf metadata", "empty key"));
        }
        if self.keys.contains(&key) {
            return Err(Error::invalid(
                "gguf metadata",
                format!("key `{key}` set twice"),
            ));
        }
        value.validate(&key)?;
        if key == ALIGNMENT_KEY {
            match value {
                MetaValue::U32(a) if a >= 8 && a.is_power_of_two() => self.alignment = Some(a),
                _ => {
                    return Err(Error::invalid(
                        ALIGNMENT_KEY,
                        format!("must be a u32 power of two >= 8, got {value:?}"),
                    ));
                }
            }
        }
        self.keys.insert(key.clone());
        self.metadata.push((key, value));
        Ok(())
    }

    /// Adds a tensor from bytes already in `ty`'s layout. `dims` are in
    /// ggml order (`dims[0]` fastest-varying, i.e. the row length).
    ///
    /// Errors ([`Error::InvalidArgument`], or [`Error::Shape`] for a
    /// mismatched byte length): a duplicate or too long name (ggml allows at
    /// most 63 bytes), a rank above 4, a zero-sized or overflowing shape,
    /// `dims[0]` not a multiple of the block size.
    pub fn add_tensor_bytes(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ty: GgmlType,
        data: Vec<u8>,
    ) -> Result<()> {
        let name = name.into();
        if name.is_empty() || name.len() >= MAX_NAME_LEN {
            return Err(Error::invalid(
                "tensor name",
                format!(
                    "`{name}` must be 1..{} bytes long, is {}",
                    MAX_NAME_LEN - 1,
                    name.len()
                ),
            ));
        }
        if self.names.contains(&name) {
            return Err(Error::invalid(
                "tensor name",
                format!("`{name}` added twice"),
            ));
        }
        if dims.is_empty() || dims.len() > MAX_DIMS {
            return Err(Error::invalid(
                "tensor dims",
                format!("`{name}`: rank must be 1..=4, got {}", dims.len()),
            ));
        }
        let n = element_count(dims).ok_or_else(|| {
            Error::invalid("tensor dims", format!("`{name}`: {dims:?} overflows"))
        })?;
        if n == 0 {
            return Err(Error::invalid(
                "tensor dims",
                format!("`{name}`: {dims:?} has no elements"),
            ));
        }
        if !dims[0].is_multiple_of(ty.block_size() as u64) {
            return Err(Error::invalid(
                "tensor dims",
                format!(
                    "`{name}`: row length {} is not a multiple of {}'s block size {}",
                    dims[0],
                    ty.name(),
                    ty.block_size()
                ),
            ));
        }
        let n = usize::try_from(n)
            .map_err(|_| Error::invalid("tensor dims", format!("`{name}`: too large")))?;
        let len = ty.byte_len(n)?;
        if data.len() != len {
            return Err(Error::shape(
                format!("bytes of tensor `{name}` ({} x {dims:?})", ty.name()),
                len,
                data.len(),
            ));
        }
        self.names.insert(name.clone());
        self.tensors.push(PendingTensor {
            name,
            dims: dims.to_vec(),
            ty,
            data,
        });
        Ok(())
    }

    /// Encodes `values` (row-major, `shape` outermost first, PyTorch order)
    /// as `ty` and adds the tensor; it is stored with dims `shape` reversed.
    ///
    /// Errors: those of [`GgufWriter::add_tensor_bytes`], a `values` length
    /// that is not the product of `shape` ([`Error::Shape`]), and those of
    /// [`GgmlType::encode`].
    pub fn add_tensor_f32(
        &mut self,
        name: impl Into<String>,
        shape: &[usize],
        ty: GgmlType,
        values: &[f32],
    ) -> Result<()> {
        let name = name.into();
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| Error::invalid("tensor shape", format!("{shape:?} overflows")))?;
        if values.len() != n {
            return Err(Error::shape(
                format!("values of tensor `{name}` {shape:?}"),
                n,
                values.len(),
            ));
        }
        let dims: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        if let Some(&d0) = dims.first()
            && !d0.is_multiple_of(ty.block_size() as u64)
        {
            return Err(Error::invalid(
                "tensor shape",
                format!(
                    "`{name}`: row length {d0} is not a multiple of {}'s block size {}",
                    ty.name(),
                    ty.block_size()
                ),
            ));
        }
        let data = ty.encode(values)?;
        self.add_tensor_bytes(name, &dims, ty, data)
    }

    /// The whole file.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let align = self.alignment() as usize;
        let needs_qv = !self.keys.contains(QUANTIZATION_VERSION_KEY)
            && self
                .tensors
                .iter()
                .any(|t| matches!(t.ty, GgmlType::Quant(_) | GgmlType::DecodeOnly(_)));
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        let kv = self.metadata.len() + usize::from(needs_qv);
        out.extend_from_slice(&(kv as u64).to_le_bytes());
        let qv = (
            QUANTIZATION_VERSION_KEY.to_string(),
            MetaValue::U32(QUANTIZATION_VERSION),
        );
        let extra = needs_qv.then_some(&qv);
        for (k, v) in self.metadata.iter().chain(extra) {
            write_string(&mut out, k);
            out.extend_from_slice(&v.meta_type().id().to_le_bytes());
            v.write(&mut out);
        }
        let mut offset = 0usize;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            write_string(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offsets.push(offset);
            offset = offset
                .checked_add(t.data.len())
                .map(|e| e.next_multiple_of(align))
                .ok_or_else(|| Error::invalid("gguf tensors", "total size overflows"))?;
        }
        out.resize(out.len().next_multiple_of(align), 0);
        let data_start = out.len();
        out.reserve(offset);
        for (t, off) in self.tensors.iter().zip(offsets) {
            out.resize(data_start + off, 0);
            out.extend_from_slice(&t.data);
        }
        out.resize(data_start + offset, 0);
        Ok(out)
    }

    /// Writes the file to `path`.
    ///
    /// Errors: [`Error::Io`] when the file cannot be written.
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut f = fs::File::create(path).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.flush().map_err(io)
    }
}

/// The product of `dims`, when every dim and the product fit ggml's
/// `int64_t` (a zero dim must not hide a huge one).
fn element_count(dims: &[u64]) -> Option<u64> {
    if dims.iter().any(|&d| d > i64::MAX as u64) {
        return None;
    }
    dims.iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
}

// ---------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------

/// One tensor of a GGUF file, as described by its tensor info (all fields
/// already validated against the file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    offset: u64,
    start: usize,
    len: usize,
    n_elements: usize,
}

impl TensorInfo {
    /// The tensor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Dimensions in ggml order (`dims[0]` fastest-varying).
    pub fn dims(&self) -> &[u64] {
        &self.dims
    }

    /// Dimensions in row-major order (outermost first, like PyTorch).
    pub fn shape(&self) -> Vec<usize> {
        // Every dim fits in usize: their product does (checked on read).
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// The storage type.
    pub fn ggml_type(&self) -> GgmlType {
        self.ty
    }

    /// The offset stored in the tensor info (relative to the data section).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Absolute byte range of the tensor's data in the file.
    pub fn byte_range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.len
    }

    /// Number of values.
    pub fn n_elements(&self) -> usize {
        self.n_elements
    }
}

/// The parsed header of a GGUF file: version, metadata, tensor infos and
/// the start of the data section. Borrow-free; [`GgufFile`] pairs it with
/// the bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufHeader {
    version: u32,
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<TensorInfo>,
    alignment: u32,
    data_offset: usize,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(corrupt(format!(
                "truncated: {what} needs {n} bytes at offset {}, only {} remain",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn arr<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr(what)?))
    }

    /// A count of items each at least `min_size` bytes long, checked against
    /// the remaining bytes so that it can size an allocation.
    fn count(&mut self, min_size: usize, what: &str) -> Result<usize> {
        let n = self.u64(what)?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min_size))
            .is_some_and(|need| need <= self.remaining());
        if !fits {
            return Err(corrupt(format!(
                "{what} = {n} cannot fit in the {} bytes that remain",
                self.remaining()
            )));
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.count(1, what)?;
        let s = self.take(n, what)?;
        String::from_utf8(s.to_vec()).map_err(|e| corrupt(format!("{what} is not UTF-8: {e}")))
    }

    fn value(&mut self, t: MetaType, depth: usize, key: &str) -> Result<MetaValue> {
        Ok(match t {
            MetaType::U8 => MetaValue::U8(self.arr::<1>(key)?[0]),
            MetaType::I8 => MetaValue::I8(i8::from_le_bytes(self.arr(key)?)),
            MetaType::U16 => MetaValue::U16(u16::from_le_bytes(self.arr(key)?)),
            MetaType::I16 => MetaValue::I16(i16::from_le_bytes(self.arr(key)?)),
            MetaType::U32 => MetaValue::U32(u32::from_le_bytes(self.arr(key)?)),
            MetaType::I32 => MetaValue::I32(i32::from_le_bytes(self.arr(key)?)),
            MetaType::F32 => MetaValue::F32(f32::from_le_bytes(self.arr(key)?)),
            MetaType::U64 => MetaValue::U64(u64::from_le_bytes(self.arr(key)?)),
            MetaType::I64 => MetaValue::I64(i64::from_le_bytes(self.arr(key)?)),
            MetaType::F64 => MetaValue::F64(f64::from_le_bytes(self.arr(key)?)),
            MetaType::Bool => match self.arr::<1>(key)?[0] {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => return Err(corrupt(format!("`{key}`: bool byte {b} is not 0 or 1"))),
            },
            MetaType::String => MetaValue::String(self.string(key)?),
            MetaType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(corrupt(format!(
                        "`{key}`: arrays nested deeper than {MAX_ARRAY_DEPTH}"
                    )));
                }
                let id = self.u32(key)?;
                let et = MetaType::from_id(id)
                    .ok_or_else(|| corrupt(format!("`{key}`: unknown array element type {id}")))?;
                let n = self.count(et.min_size(), key)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(et, depth + 1, key)?);
                }
                MetaValue::Array(et, items)
            }
        })
    }
}

impl GgufHeader {
    /// Parses and validates the header of the GGUF file `bytes` (the whole
    /// file: tensor ranges are checked against its length).
    ///
    /// Errors: [`Error::Corrupt`] for anything that is not a valid GGUF v2/v3
    /// file this crate can decode (see the module docs for the checks).
    pub fn parse(bytes: &[u8]) -> Result<GgufHeader> {
        let mut c = Cursor { b: bytes, pos: 0 };
        let magic = c.arr::<4>("magic")?;
        if magic != MAGIC {
            return Err(corrupt(format!(
                "bad magic {magic:02x?}, expected \"GGUF\""
            )));
        }
        let version = c.u32("version")?;
        if version != 2 && version != 3 {
            return Err(corrupt(format!(
                "unsupported version {version} (expected 3, or 2)"
            )));
        }
        // Each tensor info takes at least 8 (name) + 4 + 4 + 8 = 24 bytes;
        // each KV at least 8 + 4 + 1.
        let n_tensors = c.u64("tensor_count")?;
        let n_kv = c.count(13, "metadata_kv_count")?;
        let mut metadata = Vec::with_capacity(n_kv);
        let mut keys = HashSet::with_capacity(n_kv);
        let mut alignment = DEFAULT_ALIGNMENT;
        for i in 0..n_kv {
            let key = c.string(&format!("key of metadata entry {i}"))?;
            if !keys.insert(key.clone()) {
                return Err(corrupt(format!("metadata key `{key}` appears twice")));
            }
            let id = c.u32(&key)?;
            let t = MetaType::from_id(id)
                .ok_or_else(|| corrupt(format!("`{key}`: unknown value type {id}")))?;
            let v = c.value(t, 0, &key)?;
            if key == ALIGNMENT_KEY {
                match v {
                    MetaValue::U32(a) if a.is_power_of_two() => alignment = a,
                    _ => {
                        return Err(corrupt(format!(
                            "{ALIGNMENT_KEY} must be a u32 power of two, got {v:?}"
                        )));
                    }
                }
            }
            metadata.push((key, v));
        }
        let fits = usize::try_from(n_tensors)
            .ok()
            .and_then(|n| n.checked_mul(24))
            .is_some_and(|need| need <= c.remaining());
        if !fits {
            return Err(corrupt(format!(
                "tensor_count = {n_tensors} cannot fit in the {} bytes that remain",
                c.remaining()
            )));
        }
        let n_tensors = n_tensors as usize;
        let mut raw = Vec::with_capacity(n_tensors);
        let mut names = HashSet::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = c.string(&format!("name of tensor {i}"))?;
            if name.len() >= MAX_NAME_LEN {
                return Err(corrupt(format!(
                    "tensor name `{name}` is {} bytes, at most {} allowed",
                    name.len(),
                    MAX_NAME_LEN - 1
                )));
            }
            if !names.insert(name.clone()) {
                return Err(corrupt(format!("tensor `{name}` appears twice")));
            }
            let nd = c.u32(&name)? as usize;
            if nd > MAX_DIMS {
                return Err(corrupt(format!(
                    "tensor `{name}` has {nd} dims, at most {MAX_DIMS} allowed"
                )));
            }
            let mut dims = Vec::with_capacity(nd);
            for _ in 0..nd {
                dims.push(c.u64(&name)?);
            }
            let id = c.u32(&name)?;
            let ty = GgmlType::from_id(id).ok_or_else(|| {
                corrupt(format!(
                    "tensor `{name}`: unknown or unsupported ggml type {id}"
                ))
            })?;
            let offset = c.u64(&name)?;
            raw.push((name, dims, ty, offset));
        }
        let data_offset = c
            .pos
            .checked_next_multiple_of(alignment as usize)
            .ok_or_else(|| corrupt("data offset overflows"))?;
        let mut tensors = Vec::with_capacity(raw.len());
        for (name, dims, ty, offset) in raw {
            let n = element_count(&dims)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    corrupt(format!(
                        "tensor `{name}`: element count of {dims:?} overflows"
                    ))
                })?;
            let row = dims.first().copied().unwrap_or(1);
            if !row.is_multiple_of(ty.block_size() as u64) {
                return Err(corrupt(format!(
                    "tensor `{name}`: row length {row} is not a multiple of {}'s block size {}",
                    ty.name(),
                    ty.block_size()
                )));
            }
            let len = ty.byte_len(n).map_err(|_| {
                corrupt(format!("tensor `{name}`: byte size of {dims:?} overflows"))
            })?;
            if !offset.is_multiple_of(u64::from(alignment)) {
                return Err(corrupt(format!(
                    "tensor `{name}`: offset {offset} is not a multiple of the alignment {alignment}"
                )));
            }
            let start = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(data_offset));
            let end = start.and_then(|s| s.checked_add(len));
            let (Some(start), Some(end)) = (start, end) else {
                return Err(corrupt(format!(
                    "tensor `{name}`: offset {offset} overflows"
                )));
            };
            if end > bytes.len() {
                return Err(corrupt(format!(
                    "tensor `{name}`: bytes {start}..{end} lie outside the file ({} bytes)",
                    bytes.len()
                )));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                offset,
                start,
                len,
                n_elements: n,
            });
        }
        Ok(GgufHeader {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
        })
    }

    /// The file's version (3, or 2).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Every metadata key/value, in file order.
    pub fn metadata(&self) -> &[(String, MetaValue)] {
        &self.metadata
    }

    /// The value of metadata key `key`.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Every tensor info, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The alignment of the data section.
    pub fn alignment(&self) -> u32 {
        self.alignment
    }

    /// Absolute offset of the data section.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }
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

/// A GGUF file, validated on opening: its header plus the bytes (memory
/// mapped, or owned).
pub struct GgufFile {
    header: GgufHeader,
    backing: Backing,
    path: Option<PathBuf>,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("len", &self.bytes().len())
            .field("header", &self.header)
            .finish()
    }
}

/// Memory-maps `file` read-only.
#[allow(unsafe_code)]
pub(crate) fn map_file(file: &fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and only ever read through `&[u8]`. Its
    // contents may change if another process modifies the file while it is
    // mapped (memmap2's documented caveat); every value read from it is
    // validated before use, so a concurrent change can give wrong numbers
    // or an error, and the file must not be truncated while mapped (that
    // would fault, as with every mmap-based reader, e.g. safetensors and
    // llama.cpp).
    unsafe { memmap2::Mmap::map(file) }
}

impl GgufFile {
    /// Opens and validates the GGUF file at `path`, memory-mapped.
    ///
    /// Errors: [`Error::Io`] when the file cannot be opened or mapped;
    /// [`Error::Corrupt`] when its contents are not a valid GGUF file.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = fs::File::open(path).map_err(io)?;
        let map = map_file(&file).map_err(io)?;
        let header = GgufHeader::parse(&map).map_err(|e| match e {
            Error::Corrupt { reason, .. } => {
                Error::corrupt(format!("GGUF file {}", path.display()), reason)
            }
            e => e,
        })?;
        Ok(GgufFile {
            header,
            backing: Backing::Mapped(map),
            path: Some(path.to_path_buf()),
        })
    }

    /// Validates the GGUF file held in `bytes`.
    ///
    /// Errors: [`Error::Corrupt`] when `bytes` is not a valid GGUF file.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile> {
        let header = GgufHeader::parse(&bytes)?;
        Ok(GgufFile {
            header,
            backing: Backing::Owned(bytes),
            path: None,
        })
    }

    /// The parsed header.
    pub fn header(&self) -> &GgufHeader {
        &self.header
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    /// The file's path, when it was opened from one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Every metadata key/value, in file order.
    pub fn metadata(&self) -> &[(String, MetaValue)] {
        self.header.metadata()
    }

    /// The value of metadata key `key`.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.header.get(key)
    }

    /// Every tensor info, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        self.header.tensors()
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.header.tensor(name)
    }

    fn find(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name).ok_or_else(|| Error::File {
            path: self
                .path
                .clone()
                .unwrap_or_else(|| PathBuf::from("<memory>")),
            reason: format!("no tensor named `{name}`"),
        })
    }

    /// The raw bytes of tensor `name`, in its ggml layout.
    ///
    /// Errors: [`Error::File`] when there is no such tensor.
    pub fn tensor_bytes(&self, name: &str) -> Result<&[u8]> {
        let t = self.find(name)?;
        Ok(&self.bytes()[t.byte_range()])
    }

    /// Tensor `name` decoded to f32 (row-major, [`TensorInfo::shape`]).
    ///
    /// Errors: [`Error::File`] when there is no such tensor.
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.find(name)?;
        t.ty.decode(&self.bytes()[t.byte_range()], t.n_elements)
    }
}
