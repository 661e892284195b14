//! GGUF / ggml block types, byte for byte with ggml's reference code.
//!
//! A ggml tensor row (for a Linear weight `W` of shape `(out_features,
//! in_features)`, one row of `in_features` values) is cut into blocks of
//! [`GgufType::block_size`] values; each block becomes
//! [`GgufType::type_size`] bytes, and rows follow each other. [`quantize`]
//! and [`dequantize`] work on any number of whole blocks, so a row-major
//! matrix whose row length is a multiple of the block size can be passed
//! whole.
//!
//! # Sources
//!
//! Layouts follow the structs of ggml's `ggml-common.h`; quantization follows
//! ggml's `quantize_row_*_ref` functions in `ggml-quants.c` (the path
//! `ggml_quantize_chunk` takes without an importance matrix), and
//! dequantization ggml's `dequantize_row_*` (ggml-org/ggml, MIT licence; also
//! llama.cpp's `gguf-py/gguf/quants.py`). The workspace's
//! `docs/algorithms.md` section 9 restates every layout and algorithm. All
//! multi-byte fields are little-endian; `half` is IEEE binary16, converted
//! with round-to-nearest-even.
//!
//! # Exactness
//!
//! The K-quant search loops are evaluated in C's operation order in plain
//! `f32` arithmetic: every `a*b + c` is a separate multiply and add (never a
//! fused multiply-add), products are grouped left to right like C's, and
//! ggml's helper `nearest_int(f) = (bits(f + 12582912f) & 0x7fffff) -
//! 0x400000` (round half to even) is reproduced bit for bit. Integer-to-float
//! conversions happen where C's usual arithmetic conversions put them. The
//! crate's tests check the bytes against golden vectors made with ggml's C
//! code built without FMA contraction.
//!
//! # Formats (block sizes in values / bytes)
//!
//! | type | id | block | bytes | fields |
//! |---|---|---|---|---|
//! | F16 | 1 | 1 | 2 | half |
//! | BF16 | 30 | 1 | 2 | bfloat16 (upper half of the f32, rounded to nearest even) |
//! | Q4_0 | 2 | 32 | 18 | `d`, `qs[16]`; `x = (q - 8) d` |
//! | Q4_1 | 3 | 32 | 20 | `d`, `m`, `qs[16]`; `x = q d + m` |
//! | Q5_0 | 6 | 32 | 22 | `d`, `qh[4]`, `qs[16]`; `x = (q - 16) d` |
//! | Q5_1 | 7 | 32 | 24 | `d`, `m`, `qh[4]`, `qs[16]`; `x = q d + m` |
//! | Q8_0 | 8 | 32 | 34 | `d`, `qs[32]` i8; `x = q d` |
//! | Q2_K | 10 | 256 | 84 | `scales[16]`, `qs[64]`, `d`, `dmin` |
//! | Q3_K | 11 | 256 | 110 | `hmask[32]`, `qs[64]`, `scales[12]`, `d` |
//! | Q4_K | 12 | 256 | 144 | `d`, `dmin`, `scales[12]`, `qs[128]` |
//! | Q5_K | 13 | 256 | 176 | `d`, `dmin`, `scales[12]`, `qh[32]`, `qs[128]` |
//! | Q6_K | 14 | 256 | 210 | `ql[128]`, `qh[64]`, `scales[16]` i8, `d` |
//! | Q8_K | 15 | 256 | 292 | `d` f32, `qs[256]` i8, `bsums[16]` i16 |
//! | IQ4_NL | 20 | 32 | 18 | `d`, `qs[16]`; `x = d * kvalues_iq4nl[q]` |
//! | IQ4_XS | 23 | 256 | 136 | `d`, `scales_h` u16, `scales_l[4]`, `qs[128]` |
//! | TQ1_0 | 34 | 256 | 54 | `qs[48]` (5 trits/byte), `qh[4]` (4 trits/byte), `d` |
//! | TQ2_0 | 35 | 256 | 66 | `qs[64]` (4 x 2-bit trits/byte), `d` |
//! | MXFP4 | 39 | 32 | 17 | `e` (E8M0), `qs[16]` E2M1 codes; `x = kvalues_fp4[q] * 2^(e-128)` |
//!
//! In the 32-value legacy blocks element `j` sits in the low nibble of
//! `qs[j]` and element `j + 16` in the high nibble; Q5's fifth bits sit in
//! the little-endian `u32` `qh` (bit `j` for element `j`). The K-quant
//! packings are described in the submodule [`kquants`].
//!
//! As compressors (`gguf:<type>` recipes, a [`GgufMatrix`] holding the
//! block bytes of every row) they live in the submodule [`compress`].
//!
//! Whole GGUF v3 files (metadata, tensor infos, alignment) are written by
//! [`GgufWriter`] and read, memory-mapped and validated, by [`GgufFile`]
//! (submodule [`file`]).
//!
//! # Example
//!
//! ```
//! # fn main() -> shrink_core::Result<()> {
//! use shrink_pack::gguf::{GgufType, dequantize, quantize};
//! let x: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) / 8.0).collect();
//! let bytes = quantize(GgufType::Q8_0, &x)?;
//! assert_eq!(bytes.len(), 2 * 34);
//! let y = dequantize(GgufType::Q8_0, &bytes, x.len())?;
//! assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 0.02));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::str::FromStr;

use shrink_core::{Error, Result};

pub mod compress;
pub mod file;
pub mod gptq;
pub mod iquants;
pub mod kquants;
pub mod legacy;
#[cfg(target_arch = "x86_64")]
mod simd;
pub mod weighted;

pub use compress::{GgufMatrix, GgufMethod, GgufQuant};
pub use file::{GgmlType, GgufFile, GgufHeader, GgufWriter, MetaType, MetaValue, TensorInfo};
pub use gptq::{GgufGptqRule, GgufRow};
pub use iquants::DecodeOnlyType;
pub use weighted::quantize_weighted;

/// A ggml tensor type this module can quantize and dequantize.
///
/// Every variant's [`quantize`] output is checked byte for byte against
/// golden vectors from ggml's C reference (and llama.cpp's gguf-py).
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgufType {
    /// IEEE binary16, one value per "block".
    F16,
    /// bfloat16, one value per "block".
    BF16,
    /// 32 values: half scale, 4-bit codes, symmetric (`(q - 8) d`).
    Q4_0,
    /// 32 values: half scale and min, 4-bit codes (`q d + m`).
    Q4_1,
    /// 32 values: half scale, 5-bit codes, symmetric (`(q - 16) d`).
    Q5_0,
    /// 32 values: half scale and min, 5-bit codes (`q d + m`).
    Q5_1,
    /// 32 values: half scale, int8 codes (`q d`).
    Q8_0,
    /// 256-value super-block: 16 sub-blocks with 4-bit scales and mins, 2-bit codes.
    Q2_K,
    /// 256-value super-block: 16 sub-blocks with 6-bit scales, 3-bit codes.
    Q3_K,
    /// 256-value super-block: 8 sub-blocks with 6-bit scales and mins, 4-bit codes.
    Q4_K,
    /// 256-value super-block: 8 sub-blocks with 6-bit scales and mins, 5-bit codes.
    Q5_K,
    /// 256-value super-block: 16 sub-blocks with int8 scales, 6-bit codes.
    Q6_K,
    /// 256-value block: f32 scale, int8 codes and 16 partial sums (ggml's
    /// dot-product activation type).
    Q8_K,
    /// 32 values: half scale, 4-bit indices into the non-linear `kvalues_iq4nl` grid.
    IQ4_NL,
    /// 256-value super-block: 8 sub-blocks with 6-bit scales, `kvalues_iq4nl` grid.
    IQ4_XS,
    /// 256 ternary values, base-3 packed, half scale (1.6875 bits/weight).
    TQ1_0,
    /// 256 ternary values, 2 bits each, half scale (2.0625 bits/weight).
    TQ2_0,
    /// 32 values: E8M0 shared exponent, E2M1 (FP4) codes (OCP MX).
    MXFP4,
}

impl GgufType {
    /// Every supported type, in ggml type-id order.
    pub const ALL: [GgufType; 18] = [
        GgufType::F16,
        GgufType::Q4_0,
        GgufType::Q4_1,
        GgufType::Q5_0,
        GgufType::Q5_1,
        GgufType::Q8_0,
        GgufType::Q2_K,
        GgufType::Q3_K,
        GgufType::Q4_K,
        GgufType::Q5_K,
        GgufType::Q6_K,
        GgufType::Q8_K,
        GgufType::IQ4_NL,
        GgufType::IQ4_XS,
        GgufType::BF16,
        GgufType::TQ1_0,
        GgufType::TQ2_0,
        GgufType::MXFP4,
    ];

    /// The ggml type id (`enum ggml_type`), as stored in GGUF tensor infos.
    pub fn id(self) -> u32 {
        match self {
            GgufType::F16 => 1,
            GgufType::Q4_0 => 2,
            GgufType::Q4_1 => 3,
            GgufType::Q5_0 => 6,
            GgufType::Q5_1 => 7,
            GgufType::Q8_0 => 8,
            GgufType::Q2_K => 10,
            GgufType::Q3_K => 11,
            GgufType::Q4_K => 12,
            GgufType::Q5_K => 13,
            GgufType::Q6_K => 14,
            GgufType::Q8_K => 15,
            GgufType::IQ4_NL => 20,
            GgufType::IQ4_XS => 23,
            GgufType::BF16 => 30,
            GgufType::TQ1_0 => 34,
            GgufType::TQ2_0 => 35,
            GgufType::MXFP4 => 39,
        }
    }

    /// The type with ggml type id `id`, if it is supported here.
    pub fn from_id(id: u32) -> Option<GgufType> {
        GgufType::ALL.into_iter().find(|t| t.id() == id)
    }

    /// Values per block (1 for F16/BF16, 32 or 256 otherwise).
    pub fn block_size(self) -> usize {
        match self {
            GgufType::F16 | GgufType::BF16 => 1,
            GgufType::Q4_0
            | GgufType::Q4_1
            | GgufType::Q5_0
            | GgufType::Q5_1
            | GgufType::Q8_0
            | GgufType::IQ4_NL
            | GgufType::MXFP4 => 32,
            GgufType::Q2_K
            | GgufType::Q3_K
            | GgufType::Q4_K
            | GgufType::Q5_K
            | GgufType::Q6_K
            | GgufType::Q8_K
            | GgufType::IQ4_XS
            | GgufType::TQ1_0
            | GgufType::TQ2_0 => 256,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        match self {
            GgufType::F16 | GgufType::BF16 => 2,
            GgufType::Q4_0 => 18,
            GgufType::Q4_1 => 20,
            GgufType::Q5_0 => 22,
            GgufType::Q5_1 => 24,
            GgufType::Q8_0 => 34,
            GgufType::Q2_K => 84,
            GgufType::Q3_K => 110,
            GgufType::Q4_K => 144,
            GgufType::Q5_K => 176,
            GgufType::Q6_K => 210,
            GgufType::Q8_K => 292,
            GgufType::IQ4_NL => 18,
            GgufType::IQ4_XS => 136,
            GgufType::TQ1_0 => 54,
            GgufType::TQ2_0 => 66,
            GgufType::MXFP4 => 17,
        }
    }

    /// Bits per weight: `8 * type_size / block_size`.
    pub fn bits_per_weight(self) -> f64 {
        8.0 * self.type_size() as f64 / self.block_size() as f64
    }

    /// ggml's name of the type (`"Q4_K"`, `"BF16"`...).
    pub fn name(self) -> &'static str {
        match self {
            GgufType::F16 => "F16",
            GgufType::BF16 => "BF16",
            GgufType::Q4_0 => "Q4_0",
            GgufType::Q4_1 => "Q4_1",
            GgufType::Q5_0 => "Q5_0",
            GgufType::Q5_1 => "Q5_1",
            GgufType::Q8_0 => "Q8_0",
            GgufType::Q2_K => "Q2_K",
            GgufType::Q3_K => "Q3_K",
            GgufType::Q4_K => "Q4_K",
            GgufType::Q5_K => "Q5_K",
            GgufType::Q6_K => "Q6_K",
            GgufType::Q8_K => "Q8_K",
            GgufType::IQ4_NL => "IQ4_NL",
            GgufType::IQ4_XS => "IQ4_XS",
            GgufType::TQ1_0 => "TQ1_0",
            GgufType::TQ2_0 => "TQ2_0",
            GgufType::MXFP4 => "MXFP4",
        }
    }

    /// Bytes taken by `n` values, or a typed error when `n` is not a whole
    /// number of blocks (or the size overflows).
    pub fn byte_len(self, n: usize) -> Result<usize> {
        let bs = self.block_size();
        if !n.is_multiple_of(bs) {
            return Err(Error::invalid(
                "n",
                format!(
                    "{} holds blocks of {bs} values; {n} is not a multiple of {bs}",
                    self.name()
                ),
            ));
        }
        (n / bs)
            .checked_mul(self.type_size())
            .ok_or_else(|| Error::invalid("n", format!("{n} values overflow the byte count")))
    }

    fn quantize_block_fn(self) -> fn(&[f32], &mut [u8]) {
        match self {
            GgufType::F16 => legacy::quantize_f16,
            GgufType::BF16 => legacy::quantize_bf16,
            GgufType::Q4_0 => legacy::quantize_q4_0,
            GgufType::Q4_1 => legacy::quantize_q4_1,
            GgufType::Q5_0 => legacy::quantize_q5_0,
            GgufType::Q5_1 => legacy::quantize_q5_1,
            GgufType::Q8_0 => legacy::quantize_q8_0,
            GgufType::MXFP4 => legacy::quantize_mxfp4,
            GgufType::TQ1_0 => legacy::quantize_tq1_0,
            GgufType::TQ2_0 => legacy::quantize_tq2_0,
            GgufType::Q2_K => kquants::quantize_q2_k,
            GgufType::Q3_K => kquants::quantize_q3_k,
            GgufType::Q4_K => kquants::quantize_q4_k,
            GgufType::Q5_K => kquants::quantize_q5_k,
            GgufType::Q6_K => kquants::quantize_q6_k,
            GgufType::Q8_K => kquants::quantize_q8_k,
            GgufType::IQ4_NL => kquants::quantize_iq4_nl,
            GgufType::IQ4_XS => kquants::quantize_iq4_xs,
        }
    }

    fn dequantize_block_fn(self) -> fn(&[u8], &mut [f32]) {
        match self {
            GgufType::F16 => legacy::dequantize_f16,
            GgufType::BF16 => legacy::dequantize_bf16,
            GgufType::Q4_0 => legacy::dequantize_q4_0,
            GgufType::Q4_1 => legacy::dequantize_q4_1,
            GgufType::Q5_0 => legacy::dequantize_q5_0,
            GgufType::Q5_1 => legacy::dequantize_q5_1,
            GgufType::Q8_0 => legacy::dequantize_q8_0,
            GgufType::MXFP4 => legacy::dequantize_mxfp4,
            GgufType::TQ1_0 => legacy::dequantize_tq1_0,
            GgufType::TQ2_0 => legacy::dequantize_tq2_0,
            GgufType::Q2_K => kquants::dequantize_q2_k,
            GgufType::Q3_K => kquants::dequantize_q3_k,
            GgufType::Q4_K => kquants::dequantize_q4_k,
            GgufType::Q5_K => kquants::dequantize_q5_k,
            GgufType::Q6_K => kquants::dequantize_q6_k,
            GgufType::Q8_K => kquants::dequantize_q8_k,
            GgufType::IQ4_NL => kquants::dequantize_iq4_nl,
            GgufType::IQ4_XS => kquants::dequantize_iq4_xs,
        }
    }
}

impl fmt::Display for GgufType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GgufType {
    type Err = Error;

    /// Parses ggml's type name, case-insensitively (`"q4_k"`, `"Q8_0"`).
    fn from_str(s: &str) -> Result<Self> {
        GgufType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::invalid(
                    "gguf type",
                    format!("unknown or unsupported ggml type name `{s}`"),
                )
            })
    }
}

/// Quantizes `x` (a whole number of blocks, rows back to back) to `t`'s
/// bytes, exactly as ggml's reference quantizer does.
///
/// Errors: [`Error::InvalidArgument`] when `x.len()` is not a multiple of
/// [`GgufType::block_size`]; [`Error::NonFinite`] when `x` holds a NaN or an
/// infinity (ggml's output for those is not meaningful).
pub fn quantize(t: GgufType, x: &[f32]) -> Result<Vec<u8>> {
    let mut out = vec![0u8; t.byte_len(x.len())?];
    quantize_into(t, x, &mut out)?;
    Ok(out)
}

/// [`quantize`] into a caller's buffer of exactly `t.byte_len(x.len())`
/// bytes (every byte is overwritten), on the calling thread.
///
/// Errors: those of [`quantize`], and [`Error::Shape`] when `out` has
/// another length. After a [`Error::NonFinite`] error `out` may hold the
/// blocks before the offending value.
pub fn quantize_into(t: GgufType, x: &[f32], out: &mut [u8]) -> Result<()> {
    let len = t.byte_len(x.len())?;
    if out.len() != len {
        return Err(Error::shape(
            format!("{} output bytes for {} values", t.name(), x.len()),
            len,
            out.len(),
        ));
    }
    // One arm per type: its row kernel, compiled (with the block kernel
    // inlined) for the baseline CPU and for AVX2.
    match t {
        GgufType::F16 => quantize_blocks(t, x, out, rows::quantize_f16),
        GgufType::BF16 => quantize_blocks(t, x, out, rows::quantize_bf16),
        GgufType::Q4_0 => quantize_blocks(t, x, out, rows::quantize_q4_0),
        GgufType::Q4_1 => quantize_blocks(t, x, out, rows::quantize_q4_1),
        GgufType::Q5_0 => quantize_blocks(t, x, out, rows::quantize_q5_0),
        GgufType::Q5_1 => quantize_blocks(t, x, out, rows::quantize_q5_1),
        GgufType::Q8_0 => quantize_blocks(t, x, out, rows::quantize_q8_0),
        GgufType::MXFP4 => quantize_blocks(t, x, out, rows::quantize_mxfp4),
        GgufType::TQ1_0 => quantize_blocks(t, x, out, rows::quantize_tq1_0),
        GgufType::TQ2_0 => quantize_blocks(t, x, out, rows::quantize_tq2_0),
        GgufType::Q2_K => quantize_blocks(t, x, out, rows::quantize_q2_k),
        GgufType::Q3_K => quantize_blocks(t, x, out, rows::quantize_q3_k),
        GgufType::Q4_K => quantize_blocks(t, x, out, rows::quantize_q4_k),
        GgufType::Q5_K => quantize_blocks(t, x, out, rows::quantize_q5_k),
        GgufType::Q6_K => quantize_blocks(t, x, out, rows::quantize_q6_k),
        GgufType::Q8_K => quantize_blocks(t, x, out, rows::quantize_q8_k),
        GgufType::IQ4_NL => quantize_blocks(t, x, out, rows::quantize_iq4_nl),
        GgufType::IQ4_XS => quantize_blocks(t, x, out, rows::quantize_iq4_xs),
    }
}

/// Values checked for finiteness and then quantized at a time: a multiple
/// of every block size, small enough to stay in cache between the two.
const QUANTIZE_CHUNK: usize = 4096;

/// [`quantize_into`]'s loop: checks a chunk for non-finite values, then
/// quantizes it with the row kernel `f`; lengths are checked by the caller.
#[inline(always)]
fn quantize_blocks(
    t: GgufType,
    x: &[f32],
    out: &mut [u8],
    f: impl Fn(&[f32], &mut [u8]),
) -> Result<()> {
    let per_chunk = QUANTIZE_CHUNK / t.block_size() * t.type_size();
    for (c, (xc, oc)) in x
        .chunks(QUANTIZE_CHUNK)
        .zip(out.chunks_mut(per_chunk))
        .enumerate()
    {
        if !all_finite(xc) {
            let i = xc.iter().position(|v| !v.is_finite()).unwrap_or(0);
            let i = c * QUANTIZE_CHUNK + i;
            return Err(Error::NonFinite {
                what: format!("{} quantization input", t.name()),
                position: format!("index {i}"),
                value: x[i].to_string(),
            });
        }
        f(xc, oc);
    }
    Ok(())
}

/// Whether no value is a NaN or an infinity: an all-ones exponent carries
/// into bit 31 when one is added to it, so a branch-free OR over eight
/// lanes (which vectorizes) finds one.
#[inline]
fn all_finite(x: &[f32]) -> bool {
    let carry = |v: &f32| (v.to_bits() & 0x7f80_0000).wrapping_add(0x0080_0000);
    let mut acc = [0u32; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] |= carry(&c[k]);
        }
    }
    let any = acc.iter().fold(0, |a, &b| a | b) | rest.iter().fold(0, |a, v| a | carry(v));
    any & 0x8000_0000 == 0
}

/// Quantizes one block (`t.block_size()` values into `t.type_size()` bytes)
/// with ggml's reference quantizer; lengths are the caller's to check.
pub(crate) fn quantize_block(t: GgufType, x: &[f32], out: &mut [u8]) {
    (t.quantize_block_fn())(x, out);
}

/// Dequantizes `n` values of type `t` from `bytes`, exactly as ggml's
/// `dequantize_row_*` does.
///
/// Errors: [`Error::InvalidArgument`] when `n` is not a multiple of the block
/// size; [`Error::Corrupt`] when `bytes.len()` is not exactly the length `n`
/// values take. Every bit pattern of the right length decodes (possibly to
/// non-finite values where a scale field holds one).
pub fn dequantize(t: GgufType, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    let mut out = vec![0f32; n];
    dequantize_into(t, bytes, &mut out)?;
    Ok(out)
}

/// [`dequantize`] into a caller's buffer: decodes `out.len()` values from
/// `bytes` (every value of `out` is overwritten), on the calling thread.
///
/// Errors: those of [`dequantize`] with `n = out.len()`.
pub fn dequantize_into(t: GgufType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let n = out.len();
    let len = t.byte_len(n)?;
    if bytes.len() != len {
        return Err(Error::corrupt(
            format!("{} blocks", t.name()),
            format!("{n} values need {len} bytes, got {} bytes", bytes.len()),
        ));
    }
    match t {
        GgufType::F16 => rows::dequantize_f16(bytes, out),
        GgufType::BF16 => rows::dequantize_bf16(bytes, out),
        GgufType::Q4_0 => rows::dequantize_q4_0(bytes, out),
        GgufType::Q4_1 => rows::dequantize_q4_1(bytes, out),
        GgufType::Q5_0 => rows::dequantize_q5_0(bytes, out),
        GgufType::Q5_1 => rows::dequantize_q5_1(bytes, out),
        GgufType::Q8_0 => rows::dequantize_q8_0(bytes, out),
        GgufType::MXFP4 => rows::dequantize_mxfp4(bytes, out),
        GgufType::TQ1_0 => rows::dequantize_tq1_0(bytes, out),
        GgufType::TQ2_0 => rows::dequantize_tq2_0(bytes, out),
        GgufType::Q2_K => rows::dequantize_q2_k(bytes, out),
        GgufType::Q3_K => rows::dequantize_q3_k(bytes, out),
        GgufType::Q4_K => rows::dequantize_q4_k(bytes, out),
        GgufType::Q5_K => rows::dequantize_q5_k(bytes, out),
        GgufType::Q6_K => rows::dequantize_q6_k(bytes, out),
        GgufType::Q8_K => rows::dequantize_q8_k(bytes, out),
        GgufType::IQ4_NL => rows::dequantize_iq4_nl(bytes, out),
        GgufType::IQ4_XS => rows::dequantize_iq4_xs(bytes, out),
    }
    Ok(())
}

/// Row kernels: for every type, the loop over whole blocks (quantize and
/// dequantize), compiled by `multiversion` for the baseline CPU and for
/// AVX2 and picked at run time, with the block kernels inlined into both.
/// Rust never contracts `a * b + c` into a fused multiply-add, so both
/// paths compute the same bits.
mod rows {
    use super::{kquants, legacy};
    use multiversion::multiversion;

    macro_rules! row_kernels {
        ($($q:ident, $d:ident: $m:ident, $bs:literal, $ts:literal;)*) => {$(
            #[multiversion(targets("x86_64+avx2"))]
            pub(super) fn $q(x: &[f32], out: &mut [u8]) {
                for (xb, ob) in x.chunks_exact($bs).zip(out.chunks_exact_mut($ts)) {
                    $m::$q(xb, ob);
                }
            }

            #[multiversion(targets("x86_64+avx2"))]
            pub(super) fn $d(b: &[u8], y: &mut [f32]) {
                for (bb, yb) in b.chunks_exact($ts).zip(y.chunks_exact_mut($bs)) {
                    $m::$d(bb, yb);
                }
            }
        )*};
    }

    // Q4_0 / Q8_0 / Q4_K quantize and Q2_K dequantize: hand-vectorized
    // kernels on the AVX2 + F16C clone (`super::simd`), the block loop
    // elsewhere.
    #[multiversion(targets("x86_64+avx2+f16c"))]
    pub(super) fn quantize_q4_0(x: &[f32], out: &mut [u8]) {
        multiversion::target::match_target! {
            "x86_64+avx2+f16c" => super::simd::quantize_q4_0_rows(x, out),
            _ => {
                for (xb, ob) in x.chunks_exact(32).zip(out.chunks_exact_mut(18)) {
                    legacy::quantize_q4_0(xb, ob);
                }
            }
        }
    }

    #[multiversion(targets("x86_64+avx2+f16c"))]
    pub(super) fn quantize_q8_0(x: &[f32], out: &mut [u8]) {
        multiversion::target::match_target! {
            "x86_64+avx2+f16c" => super::simd::quantize_q8_0_rows(x, out),
            _ => {
                for (xb, ob) in x.chunks_exact(32).zip(out.chunks_exact_mut(34)) {
                    legacy::quantize_q8_0(xb, ob);
                }
            }
        }
    }

    #[multiversion(targets("x86_64+avx2"))]
    pub(super) fn dequantize_q8_0(b: &[u8], y: &mut [f32]) {
        for (bb, yb) in b.chunks_exact(34).zip(y.chunks_exact_mut(32)) {
            legacy::dequantize_q8_0(bb, yb);
        }
    }

    #[multiversion(targets("x86_64+avx2"))]
    pub(super) fn dequantize_q4_0(b: &[u8], y: &mut [f32]) {
        for (bb, yb) in b.chunks_exact(18).zip(y.chunks_exact_mut(32)) {
            legacy::dequantize_q4_0(bb, yb);
        }
    }

    #[multiversion(targets("x86_64+avx2+f16c"))]
    pub(super) fn quantize_q4_k(x: &[f32], out: &mut [u8]) {
        multiversion::target::match_target! {
            "x86_64+avx2+f16c" => super::simd::quantize_q4_k_rows(x, out),
            _ => {
                for (xb, ob) in x.chunks_exact(256).zip(out.chunks_exact_mut(144)) {
                    kquants::quantize_q4_k(xb, ob);
                }
            }
        }
    }

    #[multiversion(targets("x86_64+avx2"))]
    pub(super) fn dequantize_q4_k(b: &[u8], y: &mut [f32]) {
        for (bb, yb) in b.chunks_exact(144).zip(y.chunks_exact_mut(256)) {
            kquants::dequantize_q4_k(bb, yb);
        }
    }

    #[multiversion(targets("x86_64+avx2"))]
    pub(super) fn quantize_q2_k(x: &[f32], out: &mut [u8]) {
        for (xb, ob) in x.chunks_exact(256).zip(out.chunks_exact_mut(84)) {
            kquants::quantize_q2_k(xb, ob);
        }
    }

    #[multiversion(targets("x86_64+avx2+f16c"))]
    pub(super) fn dequantize_q2_k(b: &[u8], y: &mut [f32]) {
        multiversion::target::match_target! {
            "x86_64+avx2+f16c" => super::simd::dequantize_q2_k_rows(b, y),
            _ => {
                for (bb, yb) in b.chunks_exact(84).zip(y.chunks_exact_mut(256)) {
                    kquants::dequantize_q2_k(bb, yb);
                }
            }
        }
    }

    row_kernels! {
        quantize_f16, dequantize_f16: legacy, 1, 2;
        quantize_bf16, dequantize_bf16: legacy, 1, 2;
        quantize_q4_1, dequantize_q4_1: legacy, 32, 20;
        quantize_q5_0, dequantize_q5_0: legacy, 32, 22;
        quantize_q5_1, dequantize_q5_1: legacy, 32, 24;
        quantize_mxfp4, dequantize_mxfp4: legacy, 32, 17;
        quantize_tq1_0, dequantize_tq1_0: legacy, 256, 54;
        quantize_tq2_0, dequantize_tq2_0: legacy, 256, 66;
        quantize_q3_k, dequantize_q3_k: kquants, 256, 110;
        quantize_q5_k, dequantize_q5_k: kquants, 256, 176;
        quantize_q6_k, dequantize_q6_k: kquants, 256, 210;
        quantize_q8_k, dequantize_q8_k: kquants, 256, 292;
        quantize_iq4_nl, dequantize_iq4_nl: kquants, 32, 18;
        quantize_iq4_xs, dequantize_iq4_xs: kquants, 256, 136;
    }
}

/// ggml's `nearest_int`: round to nearest, ties to even, through the f32
/// magic-number trick (exact for `|f| <= 4194303`, and bit-identical to C
/// outside that range too).
#[inline]
pub(crate) fn nearest_int(f: f32) -> i32 {
    let v = f + 12_582_912.0f32;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// f32 to IEEE half bits, round to nearest even (ggml's `GGML_FP32_TO_FP16`).
#[inline]
pub(crate) fn f32_to_f16(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_bits().to_le_bytes()
}

/// IEEE half bits (little-endian) to f32, exact.
#[inline]
pub(crate) fn f16_to_f32(b: &[u8]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}
