//! Decoders for the ggml block types this crate reads but does not write:
//! the codebook ("i-quant") types IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S,
//! IQ3_XXS, IQ3_S, and NVFP4.
//!
//! ggml quantizes the i-quants only with an importance matrix (its
//! `quantize_row_iq*_ref` functions are stubs or need one), and gguf-py has
//! no quantizer for any of them, so there is no reference to match bytes
//! against; these types are decode-only ([`DecodeOnlyType`],
//! [`dequantize`]). A GGUF file holding them is read by
//! [`super::GgufFile`] through [`super::GgmlType::DecodeOnly`].
//!
//! # Sources
//!
//! Layouts are ggml's `block_iq*` / `block_nvfp4` structs (`ggml-common.h`)
//! and the arithmetic is ggml's `dequantize_row_iq*` / `dequantize_row_nvfp4`
//! (`ggml-quants.c`), as ported by gguf-py 0.19.0 (`gguf/quants.py`; both
//! MIT licence). Every product is evaluated in `f32` in the same order as
//! those (`db * grid[j] * sign`, `dl * (grid[j] + delta)`), so the output is
//! bit-identical to gguf-py; the tests check every golden vector bit for
//! bit.
//!
//! The codebooks (`iq2xxs_grid`, `iq2xs_grid`, `iq2s_grid`, `iq3xxs_grid`,
//! `iq3s_grid`, `iq1s_grid`) and the sign table `ksigns_iq2xs` are **format
//! constants of the GGUF spec** (without them the types cannot be decoded
//! at all). They live as raw bytes in `iq_grids/`, generated from gguf-py
//! 0.19.0 by `crates/shrink-pack/scripts/gen_iq_grids.py` (see
//! `iq_grids/README.md`), and are included with `include_bytes!`.
//!
//! # Formats (256 values per block unless noted; `d` is an IEEE half)
//!
//! | type | id | bytes | fields | value |
//! |---|---|---|---|---|
//! | IQ2_XXS | 16 | 66 | `d`, `qs` u32[16] | per 32: 4 grid bytes, then `u32` of 4 x 7-bit sign indices + 4-bit scale `s`; `d (0.5 + s) / 4 * grid * sign` |
//! | IQ2_XS | 17 | 74 | `d`, `qs` u16[32], `scales[8]` | per 8: 9-bit `iq2xs_grid` index + 7-bit sign index; scale nibble per 16 |
//! | IQ3_XXS | 18 | 98 | `d`, `qs[64]`, `scales_and_signs` u32[8] | `iq3xxs_grid` rows of 4; `d (0.5 + s) / 2` |
//! | IQ1_S | 19 | 50 | `d`, `qs[32]`, `qh` u16[8] | 11-bit `iq1s_grid` index; `d (2 s + 1) (g ± 1/8)` |
//! | IQ3_S | 21 | 110 | `d`, `qs[64]`, `qh[8]`, `signs[32]`, `scales[4]` | 9-bit `iq3s_grid` index; `d (1 + 2 s)` |
//! | IQ2_S | 22 | 82 | `d`, `qs[32]`, `signs[32]`, `qh[8]`, `scales[8]` | 10-bit `iq2s_grid` index, explicit sign bytes |
//! | IQ1_M | 29 | 56 | `qs[32]`, `qh[16]`, `scales` u16[4] | the half `d` is spread over the top nibbles of `scales`; 3-bit scale per 16 |
//! | NVFP4 | 40 | 36 (64 values) | `d[4]` UE4M3, `qs[32]` | per 16: `d/2 * kvalues_mxfp4[q]`; low nibbles values 0..8, high 8..16 |

// Index loops mirror ggml's block layouts.
#![allow(clippy::needless_range_loop)]

use std::fmt;
use std::str::FromStr;

use shrink_core::{Error, Result};

use super::f16_to_f32;

// ---------------------------------------------------------------------------
// Format constants of the GGUF spec (ggml's IQ codebooks and sign table),
// generated from gguf-py 0.19.0 (MIT licence) by scripts/gen_iq_grids.py.
// The array lengths make a wrong-sized table a compile error.
// ---------------------------------------------------------------------------

/// `iq2xxs_grid`: 256 rows of 8 values in {8, 25, 43}.
static IQ2XXS_GRID: &[u8; 256 * 8] = include_bytes!("iq_grids/iq2xxs_grid.bin");
/// `iq2xs_grid`: 512 rows of 8 values in {8, 25, 43}.
static IQ2XS_GRID: &[u8; 512 * 8] = include_bytes!("iq_grids/iq2xs_grid.bin");
/// `iq2s_grid`: 1024 rows of 8 values in {8, 25, 43}.
static IQ2S_GRID: &[u8; 1024 * 8] = include_bytes!("iq_grids/iq2s_grid.bin");
/// `iq3xxs_grid`: 256 rows of 4 values in {4, 12, ..., 52, 62}.
static IQ3XXS_GRID: &[u8; 256 * 4] = include_bytes!("iq_grids/iq3xxs_grid.bin");
/// `iq3s_grid`: 512 rows of 4 values in {1, 3, ..., 15}.
static IQ3S_GRID: &[u8; 512 * 4] = include_bytes!("iq_grids/iq3s_grid.bin");
/// `iq1s_grid`: 2048 rows of 8 values in {-1, 0, 1} (two's-complement bytes).
static IQ1S_GRID: &[u8; 2048 * 8] = include_bytes!("iq_grids/iq1s_grid.bin");
/// `ksigns_iq2xs`: 7 sign bits plus a parity bit (bit 7).
static KSIGNS: &[u8; 128] = include_bytes!("iq_grids/ksigns.bin");

/// ggml's `kvalues_mxfp4`: E2M1 values doubled.
const KVALUES_FP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// ggml's `IQ1S_DELTA`.
const IQ1S_DELTA: f32 = 0.125;

/// A ggml block type that this crate decodes but cannot quantize.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeOnlyType {
    /// 2.0625 bits/weight: `iq2xxs_grid` (256 rows of 8), 7-bit sign indices.
    IQ2_XXS,
    /// 2.3125 bits/weight: `iq2xs_grid` (512 rows of 8), 4-bit scales per 16.
    IQ2_XS,
    /// 3.0625 bits/weight: `iq3xxs_grid` (256 rows of 4).
    IQ3_XXS,
    /// 1.5625 bits/weight: ternary `iq1s_grid` (2048 rows of 8) with a ±1/8 shift.
    IQ1_S,
    /// 3.4375 bits/weight: `iq3s_grid` (512 rows of 4), explicit sign bits.
    IQ3_S,
    /// 2.5625 bits/weight: `iq2s_grid` (1024 rows of 8), explicit sign bits.
    IQ2_S,
    /// 1.75 bits/weight: `iq1s_grid` with 3-bit scales per 16 values.
    IQ1_M,
    /// 4.5 bits/weight: 64 values, four UE4M3 scales (one per 16) and E2M1 codes.
    NVFP4,
}

impl DecodeOnlyType {
    /// Every decode-only type, in ggml type-id order.
    pub const ALL: [DecodeOnlyType; 8] = [
        DecodeOnlyType::IQ2_XXS,
        DecodeOnlyType::IQ2_XS,
        DecodeOnlyType::IQ3_XXS,
        DecodeOnlyType::IQ1_S,
        DecodeOnlyType::IQ3_S,
        DecodeOnlyType::IQ2_S,
        DecodeOnlyType::IQ1_M,
        DecodeOnlyType::NVFP4,
    ];

    /// The ggml type id (`enum ggml_type`).
    pub fn id(self) -> u32 {
        match self {
            DecodeOnlyType::IQ2_XXS => 16,
            DecodeOnlyType::IQ2_XS => 17,
            DecodeOnlyType::IQ3_XXS => 18,
            DecodeOnlyType::IQ1_S => 19,
            DecodeOnlyType::IQ3_S => 21,
            DecodeOnlyType::IQ2_S => 22,
            DecodeOnlyType::IQ1_M => 29,
            DecodeOnlyType::NVFP4 => 40,
        }
    }

    /// The type with ggml type id `id`, if it is one of these.
    pub fn from_id(id: u32) -> Option<DecodeOnlyType> {
        DecodeOnlyType::ALL.into_iter().find(|t| t.id() == id)
    }

    /// Values per block (64 for NVFP4, 256 otherwise).
    pub fn block_size(self) -> usize {
        match self {
            DecodeOnlyType::NVFP4 => 64,
            _ => 256,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        match self {
            DecodeOnlyType::IQ2_XXS => 66,
            DecodeOnlyType::IQ2_XS => 74,
            DecodeOnlyType::IQ3_XXS => 98,
            DecodeOnlyType::IQ1_S => 50,
            DecodeOnlyType::IQ3_S => 110,
            DecodeOnlyType::IQ2_S => 82,
            DecodeOnlyType::IQ1_M => 56,
            DecodeOnlyType::NVFP4 => 36,
        }
    }

    /// Bits per weight: `8 * type_size / block_size`.
    pub fn bits_per_weight(self) -> f64 {
        8.0 * self.type_size() as f64 / self.block_size() as f64
    }

    /// ggml's name of the type (`"IQ2_XXS"`, `"NVFP4"`...).
    pub fn name(self) -> &'static str {
        match self {
            DecodeOnlyType::IQ2_XXS => "IQ2_XXS",
            DecodeOnlyType::IQ2_XS => "IQ2_XS",
            DecodeOnlyType::IQ3_XXS => "IQ3_XXS",
            DecodeOnlyType::IQ1_S => "IQ1_S",
            DecodeOnlyType::IQ3_S => "IQ3_S",
            DecodeOnlyType::IQ2_S => "IQ2_S",
            DecodeOnlyType::IQ1_M => "IQ1_M",
            DecodeOnlyType::NVFP4 => "NVFP4",
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

    fn block_fn(self) -> fn(&[u8], &mut [f32]) {
        match self {
            DecodeOnlyType::IQ2_XXS => dequantize_iq2_xxs,
            DecodeOnlyType::IQ2_XS => dequantize_iq2_xs,
            DecodeOnlyType::IQ3_XXS => dequantize_iq3_xxs,
            DecodeOnlyType::IQ1_S => dequantize_iq1_s,
            DecodeOnlyType::IQ3_S => dequantize_iq3_s,
            DecodeOnlyType::IQ2_S => dequantize_iq2_s,
            DecodeOnlyType::IQ1_M => dequantize_iq1_m,
            DecodeOnlyType::NVFP4 => dequantize_nvfp4,
        }
    }
}

impl fmt::Display for DecodeOnlyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DecodeOnlyType {
    type Err = Error;

    /// Parses ggml's type name, case-insensitively (`"iq2_xxs"`, `"NVFP4"`).
    fn from_str(s: &str) -> Result<Self> {
        DecodeOnlyType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::invalid(
                    "gguf type",
                    format!("unknown or not decode-only ggml type name `{s}`"),
                )
            })
    }
}

/// Dequantizes `n` values of type `t` from `bytes`, bit-identical to ggml's
/// `dequantize_row_*` (and gguf-py).
///
/// Errors: [`Error::InvalidArgument`] when `n` is not a multiple of the block
/// size; [`Error::Corrupt`] when `bytes.len()` is not exactly the length `n`
/// values take. Every bit pattern of the right length decodes (to
/// non-finite values where a half scale holds one).
pub fn dequantize(t: DecodeOnlyType, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    let mut out = vec![0f32; n];
    dequantize_into(t, bytes, &mut out)?;
    Ok(out)
}

/// [`dequantize`] into a caller's buffer of `out.len()` values.
pub fn dequantize_into(t: DecodeOnlyType, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    let n = out.len();
    let len = t.byte_len(n)?;
    if bytes.len() != len {
        return Err(Error::corrupt(
            format!("{} blocks", t.name()),
            format!("{n} values need {len} bytes, got {} bytes", bytes.len()),
        ));
    }
    let f = t.block_fn();
    for (bb, ob) in bytes
        .chunks_exact(t.type_size())
        .zip(out.chunks_exact_mut(t.block_size()))
    {
        f(bb, ob);
    }
    Ok(())
}

#[inline]
fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

#[inline]
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// `-1.0` when bit `j` of `signs` is set, `1.0` otherwise (ggml multiplies
/// by this factor rather than negating).
#[inline]
fn sign(signs: u8, j: usize) -> f32 {
    if signs & (1 << j) != 0 { -1.0 } else { 1.0 }
}

/// IQ2_XXS: `d`, then per 32 values two `u32`: four `iq2xxs_grid` indices
/// (bytes) and four 7-bit `ksigns` indices with the 4-bit scale on top.
fn dequantize_iq2_xxs(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(&b[0..2]);
    for ib in 0..8 {
        let q = &b[2 + 8 * ib..2 + 8 * ib + 4];
        let aux = u32_at(b, 2 + 8 * ib + 4);
        let db = d * (0.5f32 + (aux >> 28) as f32) * 0.25f32;
        for l in 0..4 {
            let g = &IQ2XXS_GRID[usize::from(q[l]) * 8..][..8];
            let s = KSIGNS[((aux >> (7 * l)) & 127) as usize];
            for j in 0..8 {
                y[32 * ib + 8 * l + j] = db * f32::from(g[j]) * sign(s, j);
            }
        }
    }
}

/// IQ2_XS: `d`, `qs` u16[32] (9-bit `iq2xs_grid` index, 7-bit `ksigns`
/// index), `scales[8]` (a nibble per 16 values, low nibble first).
fn dequantize_iq2_xs(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(&b[0..2]);
    let scales = &b[66..74];
    for ib in 0..8 {
        let db = [
            d * (0.5f32 + f32::from(scales[ib] & 0x0f)) * 0.25f32,
            d * (0.5f32 + f32::from(scales[ib] >> 4)) * 0.25f32,
        ];
        for l in 0..4 {
            let q = u16_at(b, 2 + 2 * (4 * ib + l));
            let g = &IQ2XS_GRID[usize::from(q & 511) * 8..][..8];
            let s = KSIGNS[usize::from(q >> 9)];
            for j in 0..8 {
                y[32 * ib + 8 * l + j] = db[l / 2] * f32::from(g[j]) * sign(s, j);
            }
        }
    }
}

/// IQ2_S: `d`, `qs[32]` (low 8 bits of `iq2s_grid` indices), `signs[32]`,
/// `qh[8]` (2 high index bits each), `scales[8]`.
fn dequantize_iq2_s(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(&b[0..2]);
    let qs = &b[2..34];
    let signs = &b[34..66];
    let qh = &b[66..74];
    let scales = &b[74..82];
    for ib in 0..8 {
        let db = [
            d * (0.5f32 + f32::from(scales[ib] & 0x0f)) * 0.25f32,
            d * (0.5f32 + f32::from(scales[ib] >> 4)) * 0.25f32,
        ];
        for l in 0..4 {
            let k = 4 * ib + l;
            let idx = usize::from(qs[k]) | ((usize::from(qh[ib]) >> (2 * l)) & 3) << 8;
            let g = &IQ2S_GRID[idx * 8..][..8];
            for j in 0..8 {
                y[8 * k + j] = db[l / 2] * f32::from(g[j]) * sign(signs[k], j);
            }
        }
    }
}

/// IQ3_XXS: `d`, `qs[64]` (`iq3xxs_grid` indices, rows of 4), then per 32
/// values a `u32` of four 7-bit `ksigns` indices and the 4-bit scale.
fn dequantize_iq3_xxs(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(&b[0..2]);
    let qs = &b[2..66];
    for ib in 0..8 {
        let aux = u32_at(b, 66 + 4 * ib);
        let db = d * (0.5f32 + (aux >> 28) as f32) * 0.5f32;
        for l in 0..4 {
            let s = KSIGNS[((aux >> (7 * l)) & 127) as usize];
            let g1 = &IQ3XXS_GRID[usize::from(qs[8 * ib + 2 * l]) * 4..][..4];
            let g2 = &IQ3XXS_GRID[usize::from(qs[8 * ib + 2 * l + 1]) * 4..][..4];
            let o = 32 * ib + 8 * l;
            for j in 0..4 {
                y[o + j] = db * f32::from(g1[j]) * sign(s, j);
                y[o + 4 + j] = db * f32::from(g2[j]) * sign(s, j + 4);
            }
        }
    }
}

/// IQ3_S: `d`, `qs[64]` (low 8 bits of `iq3s_grid` indices), `qh[8]` (the
/// ninth bit of index `k` is bit `k % 8` of `qh[k / 8]`), `signs[32]` (one
/// bit per value), `scales[4]` (a nibble per 32 values).
fn dequantize_iq3_s(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(&b[0..2]);
    let qs = &b[2..66];
    let qh = &b[66..74];
    let signs = &b[74..106];
    let scales = &b[106..110];
    for ib in 0..8 {
        let s = (scales[ib / 2] >> (4 * (ib % 2))) & 0x0f;
        let db = d * f32::from(1 + 2 * s);
        for k in 8 * ib..8 * ib + 8 {
            let idx = usize::from(qs[k]) | ((usize::from(qh[k / 8]) >> (k % 8)) & 1) << 8;
            let g = &IQ3S_GRID[idx * 4..][..4];
            for j in 0..4 {
                let v = 4 * k + j;
                y[v] = db * f32::from(g[j]) * sign(signs[v / 8], v % 8);
            }
        }
    }
}

/// IQ1_S: `d`, `qs[32]` (low 8 bits of `iq1s_grid` indices), `qh` u16[8]:
/// per 32 values three high index bits for each of the four rows, a 3-bit
/// scale (bits 12..15) and the sign of the ±1/8 shift (bit 15).
fn dequantize_iq1_s(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(&b[0..2]);
    let qs = &b[2..34];
    for ib in 0..8 {
        let qh = u16_at(b, 34 + 2 * ib);
        let dl = d * f32::from(2 * ((qh >> 12) & 7) + 1);
        let delta = if qh & 0x8000 != 0 {
            -IQ1S_DELTA
        } else {
            IQ1S_DELTA
        };
        for l in 0..4 {
            let idx = usize::from(qs[4 * ib + l]) | usize::from((qh >> (3 * l)) & 7) << 8;
            let g = &IQ1S_GRID[idx * 8..][..8];
            for j in 0..8 {
                y[32 * ib + 8 * l + j] = dl * (f32::from(g[j] as i8) + delta);
            }
        }
    }
}

/// IQ1_M: `qs[32]`, `qh[16]` (a nibble per row of 8: three high index bits
/// and the shift sign), `scales` u16[4] (four 3-bit scales each; the top
/// nibbles together are the half `d`).
fn dequantize_iq1_m(b: &[u8], y: &mut [f32]) {
    let qs = &b[0..32];
    let qh = &b[32..48];
    let sc = [u16_at(b, 48), u16_at(b, 50), u16_at(b, 52), u16_at(b, 54)];
    let dbits =
        (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
    let d = half::f16::from_bits(dbits).to_f32();
    for ib in 0..8 {
        let s = sc[ib / 2] >> (6 * (ib % 2));
        let dl = [
            d * f32::from(2 * (s & 7) + 1),
            d * f32::from(2 * ((s >> 3) & 7) + 1),
        ];
        for l in 0..4 {
            let nib = (qh[2 * ib + l / 2] >> (4 * (l % 2))) & 0x0f;
            let idx = usize::from(qs[4 * ib + l]) | usize::from(nib & 7) << 8;
            let delta = if nib & 8 != 0 {
                -IQ1S_DELTA
            } else {
                IQ1S_DELTA
            };
            let g = &IQ1S_GRID[idx * 8..][..8];
            for j in 0..8 {
                y[32 * ib + 8 * l + j] = dl[l / 2] * (f32::from(g[j] as i8) + delta);
            }
        }
    }
}

/// ggml's `ggml_ue4m3_to_fp32` (unsigned E4M3, bias 7, bit 7 ignored; 0 and
/// 0x7F decode to 0), including its factor 1/2 for the doubled code table.
#[inline]
fn ue4m3_half(x: u8) -> f32 {
    if x == 0 || x == 0x7f {
        return 0.0;
    }
    let exp = i32::from((x >> 3) & 0x0f);
    let man = f32::from(x & 7);
    let raw = if exp == 0 {
        man * (2.0f32).powi(-9)
    } else {
        (1.0 + man / 8.0) * (2.0f32).powi(exp - 7)
    };
    raw * 0.5
}

/// NVFP4: four UE4M3 scales (one per 16 values), then 8 code bytes per 16
/// values: low nibbles values 0..8, high nibbles 8..16.
fn dequantize_nvfp4(b: &[u8], y: &mut [f32]) {
    for s in 0..4 {
        let d = ue4m3_half(b[s]);
        let q = &b[4 + 8 * s..4 + 8 * s + 8];
        for j in 0..8 {
            y[16 * s + j] = d * f32::from(KVALUES_FP4[usize::from(q[j] & 0x0f)]);
            y[16 * s + 8 + j] = d * f32::from(KVALUES_FP4[usize::from(q[j] >> 4)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ids() {
        for t in DecodeOnlyType::ALL {
            assert_eq!(DecodeOnlyType::from_id(t.id()), Some(t));
            assert_eq!(t.name().parse::<DecodeOnlyType>().unwrap(), t);
            assert_eq!(t.byte_len(t.block_size()).unwrap(), t.type_size());
        }
        assert_eq!(DecodeOnlyType::IQ2_XXS.bits_per_weight(), 2.0625);
        assert_eq!(DecodeOnlyType::IQ1_S.bits_per_weight(), 1.5625);
        assert_eq!(DecodeOnlyType::NVFP4.bits_per_weight(), 4.5);
        assert!(DecodeOnlyType::from_id(2).is_none());
    }

    #[test]
    fn ksigns_is_parity_table() {
        for (i, &k) in KSIGNS.iter().enumerate() {
            let parity = (i.count_ones() & 1) as u8;
            assert_eq!(k, i as u8 | parity << 7);
        }
    }

    #[test]
    fn grid_values_are_the_codebooks() {
        assert!(IQ2XXS_GRID.iter().all(|v| [8, 25, 43].contains(v)));
        assert!(IQ2XS_GRID.iter().all(|v| [8, 25, 43].contains(v)));
        assert!(IQ2S_GRID.iter().all(|v| [8, 25, 43].contains(v)));
        assert!(
            IQ3XXS_GRID
                .iter()
                .all(|v| [4, 12, 20, 28, 36, 44, 52, 62].contains(v))
        );
        assert!(IQ3S_GRID.iter().all(|v| v % 2 == 1 && *v <= 15));
        assert!(IQ1S_GRID.iter().all(|&v| [0xff, 0, 1].contains(&v)));
    }

    #[test]
    fn ue4m3_values() {
        assert_eq!(ue4m3_half(0), 0.0);
        assert_eq!(ue4m3_half(0x7f), 0.0);
        assert_eq!(ue4m3_half(0x38), 0.5); // exponent 7, mantissa 0: 1.0
        assert_eq!(ue4m3_half(0x7e), 224.0); // 448 / 2
        assert_eq!(ue4m3_half(0x01), 2.0f32.powi(-10)); // smallest subnormal / 2
    }
}
