//! GPTQ into GGUF blocks: data-aware rounding whose output is valid ggml
//! block bytes.
//!
//! # Objective
//!
//! As GPTQ (Frantar et al., ICLR 2023, arXiv 2210.17323; `shrink_quant::gptq`),
//! for every row `w` of `W` independently,
//!
//! ```text
//! min over w' representable in the ggml type of  (w - w') H (w - w')^T
//! ```
//!
//! with `H = X^T X` of the calibration inputs, solved greedily column by
//! column with the inverse-Hessian error update `w_j -= e U_cj`, `e = (w_c -
//! q_c) / U_cc` (`U` the upper Cholesky factor of the damped `H^{-1}`).
//!
//! # Block parameters
//!
//! ggml's row is a sequence of blocks (32 values for Q4_0 .. Q8_0, IQ4_NL and
//! MXFP4; the 256-value super-block for the K-quants and IQ4_XS). When the
//! sweep reaches the first column of a block, the block's parameters (scale,
//! min, sub-block scales and mins, `d`, `dmin`) are computed by **ggml's own
//! reference rule** (`quantize_row_*_ref`, [`super::quantize`]) from the
//! current, error-updated weights of that block of the row, and written to the
//! block's bytes. Each column of the block is then rounded with those fixed
//! parameters by ggml's own per-value rule, the code written into the bytes,
//! and the error propagated:
//!
//! | type | per-value rule (`id` = inverse scale before rounding to half) | value |
//! |---|---|---|
//! | Q4_0 / Q5_0 | `clamp(trunc(x id + 8.5), 0, 15)` / `(.. + 16.5), 0, 31` | `(q - 8) d`, `(q - 16) d` |
//! | Q4_1 / Q5_1 | `clamp(trunc((x - min) id + 0.5), 0, 15 / 31)` | `q d + m` |
//! | Q8_0 | `clamp(round(x id), -128, 127)` (ties away from zero) | `q d` |
//! | Q2_K, Q4_K, Q5_K | `clamp(nearest_int((x + dmin m_j) / (d sc_j)), 0, nmax)` | `d sc_j q - dmin m_j` |
//! | Q3_K, Q6_K | `clamp(nearest_int(x / (d sc_j)), -4, 3)` / `(-32, 31)` | `d sc_j q` |
//! | IQ4_NL, IQ4_XS | nearest level of `kvalues_iq4nl` to `x id` | `d_j kvalues[q]` |
//! | MXFP4 | nearest E2M1 level to `x / 2^(e-128)` | `kvalues_fp4[q] 2^(e-128)` |
//!
//! A sub-block whose stored scale is 0 keeps the codes of ggml's search, as
//! ggml does. The value returned to the sweep is computed exactly as
//! [`super::dequantize`] computes it, so dequantizing the bytes gives
//! exactly the GPTQ reconstruction. With `H = I` no error moves between
//! columns and the parameters are fitted on the original weights, so the
//! bytes equal ggml's reference quantizer's (tested).
//!
//! Supported: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
//! IQ4_NL, IQ4_XS, MXFP4 ([`GgufType::takes_gptq`]). Not supported: F16 /
//! BF16 (nothing to fit), Q8_K (ggml's activation type), TQ1_0 / TQ2_0.
//!
//! The sweep itself is `shrink_quant::gptq_sweep` (damping, dead inputs,
//! lazy blocks); this module is its [`GptqRule`] for ggml blocks. No
//! act-order: ggml blocks are contiguous columns.

use shrink_core::{Error, Result};
use shrink_quant::GptqRule;

use super::kquants::{KVALUES_IQ4NL, best_index_iq4, get_scale_min_k4, q3_k_scales};
use super::legacy::{KVALUES_FP4, best_index_fp4, e8m0_half, min_max, signed_absmax};
use super::{GgufType, f16_to_f32, nearest_int};

impl GgufType {
    /// Whether GPTQ can round into this type ([`GgufGptqRule`]).
    pub fn takes_gptq(self) -> bool {
        !matches!(
            self,
            GgufType::F16 | GgufType::BF16 | GgufType::Q8_K | GgufType::TQ1_0 | GgufType::TQ2_0
        )
    }
}

/// The [`GptqRule`] that rounds into ggml blocks of one type, for rows of
/// `cols` values.
#[derive(Clone, Copy, Debug)]
pub struct GgufGptqRule {
    ty: GgufType,
    cols: usize,
}

/// One row's state: its block bytes and the current block's unrounded
/// inverse scales (ggml chooses codes with them).
#[derive(Clone, Debug)]
pub struct GgufRow {
    /// The row's ggml block bytes.
    pub bytes: Vec<u8>,
    aux: [f32; 8],
}

impl GgufGptqRule {
    /// A rule for type `ty` and rows of `cols` values.
    ///
    /// Errors: [`Error::InvalidArgument`] when GPTQ cannot round into `ty`;
    /// [`Error::Shape`] when `cols` is not a positive multiple of its block
    /// size.
    pub fn new(ty: GgufType, cols: usize) -> Result<Self> {
        if !ty.takes_gptq() {
            return Err(Error::invalid(
                "GGUF type",
                format!("GPTQ does not round into {}", ty.name()),
            ));
        }
        super::compress::check_row_length(ty, cols)?;
        Ok(Self { ty, cols })
    }

    /// A fresh row state (all-zero bytes).
    pub fn new_row(&self) -> GgufRow {
        GgufRow {
            bytes: vec![0u8; self.cols / self.ty.block_size() * self.ty.type_size()],
            aux: [0.0; 8],
        }
    }
}

/// `id = 1/d` or 0.
#[inline]
fn inv(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// Sets 4 bits of element `j` (0..32) of a legacy 32-value block's `qs`.
#[inline]
fn set_nibble(qs: &mut [u8], j: usize, v: u8) {
    if j < 16 {
        qs[j] = (qs[j] & 0xf0) | (v & 0x0f);
    } else {
        qs[j - 16] = (qs[j - 16] & 0x0f) | ((v & 0x0f) << 4);
    }
}

/// Sets bit `j` of the little-endian u32 `qh` to bit 4 of `v`.
#[inline]
fn set_qh(qh: &mut [u8], j: usize, v: u8) {
    let mask = 1u8 << (j % 8);
    if v & 0x10 != 0 {
        qh[j / 8] |= mask;
    } else {
        qh[j / 8] &= !mask;
    }
}

/// Reads / writes the 2-bit code of element `k` of Q2_K / Q3_K `qs[64]`.
#[inline]
fn two_bit_pos(k: usize) -> (usize, u32) {
    let (h, kk) = (k / 128, k % 128);
    (32 * h + kk % 32, 2 * (kk / 32) as u32)
}

/// Reads / writes the 4-bit code of element `k` of Q4_K / Q5_K `qs[128]`.
#[inline]
fn k4_pos(k: usize) -> (usize, bool) {
    let (c, kk) = (k / 64, k % 64);
    (32 * c + kk % 32, kk >= 32)
}

impl GgufGptqRule {
    /// Rounds element `k` of block `b` (bytes already hold the parameters)
    /// and returns its decoded value.
    fn round(&self, b: &mut [u8], aux: &[f32; 8], k: usize, x: f32) -> f32 {
        match self.ty {
            GgufType::Q4_0 => {
                let d = f16_to_f32(&b[0..2]);
                let q = ((x * aux[0] + 8.5) as i32).clamp(0, 15);
                set_nibble(&mut b[2..18], k, q as u8);
                (q - 8) as f32 * d
            }
            GgufType::Q5_0 => {
                let d = f16_to_f32(&b[0..2]);
                let q = ((x * aux[0] + 16.5) as i32).clamp(0, 31);
                set_qh(&mut b[2..6], k, q as u8);
                set_nibble(&mut b[6..22], k, q as u8);
                (q - 16) as f32 * d
            }
            GgufType::Q4_1 => {
                let (d, m) = (f16_to_f32(&b[0..2]), f16_to_f32(&b[2..4]));
                let q = (((x - aux[1]) * aux[0] + 0.5) as i32).clamp(0, 15);
                set_nibble(&mut b[4..20], k, q as u8);
                q as f32 * d + m
            }
            GgufType::Q5_1 => {
                let (d, m) = (f16_to_f32(&b[0..2]), f16_to_f32(&b[2..4]));
                let q = (((x - aux[1]) * aux[0] + 0.5) as i32).clamp(0, 31);
                set_qh(&mut b[4..8], k, q as u8);
                set_nibble(&mut b[8..24], k, q as u8);
                q as f32 * d + m
            }
            GgufType::Q8_0 => {
                let d = f16_to_f32(&b[0..2]);
                let q = ((x * aux[0]).round() as i32).clamp(-128, 127) as i8;
                b[2 + k] = q as u8;
                f32::from(q) * d
            }
            GgufType::Q2_K => {
                let sc = b[k / 16];
                let dl = f16_to_f32(&b[80..82]) * f32::from(sc & 0x0f);
                let ml = f16_to_f32(&b[82..84]) * f32::from(sc >> 4);
                let (pos, shift) = two_bit_pos(k);
                let byte = &mut b[16 + pos];
                let q = if dl == 0.0 {
                    (*byte >> shift) & 3
                } else {
                    let q = nearest_int((x + ml) / dl).clamp(0, 3) as u8;
                    *byte = (*byte & !(3 << shift)) | (q << shift);
                    q
                };
                dl * f32::from(q) - ml
            }
            GgufType::Q3_K => {
                let s = q3_k_scales(&b[96..108])[k / 16];
                let dl = f16_to_f32(&b[108..110]) * s as f32;
                let (pos, shift) = two_bit_pos(k);
                let (hbyte, hbit) = (k % 32, 1u8 << (k / 32));
                let l = if dl == 0.0 {
                    let lo = i32::from((b[32 + pos] >> shift) & 3);
                    lo - if b[hbyte] & hbit != 0 { 0 } else { 4 }
                } else {
                    let l = nearest_int(x / dl).clamp(-4, 3);
                    let code = (l + 4) as u8;
                    let (lo, high) = if code > 3 {
                        (code - 4, true)
                    } else {
                        (code, false)
                    };
                    if high {
                        b[hbyte] |= hbit;
                    } else {
                        b[hbyte] &= !hbit;
                    }
                    let byte = &mut b[32 + pos];
                    *byte = (*byte & !(3 << shift)) | (lo << shift);
                    l
                };
                dl * l as f32
            }
            GgufType::Q4_K | GgufType::Q5_K => {
                let nmax = if self.ty == GgufType::Q4_K { 15 } else { 31 };
                let (sc, m) = get_scale_min_k4(k / 32, &b[4..16]);
                let dl = f16_to_f32(&b[0..2]) * f32::from(sc);
                let ml = f16_to_f32(&b[2..4]) * f32::from(m);
                let (pos, high) = k4_pos(k);
                let qs0 = if nmax == 15 { 16 } else { 48 };
                let hbit = 1u8 << (2 * (k / 64) + usize::from(high));
                let read = |b: &[u8]| {
                    let byte = b[qs0 + pos];
                    let lo = if high { byte >> 4 } else { byte & 0x0f };
                    let hi = if nmax == 31 && b[16 + pos % 32] & hbit != 0 {
                        16
                    } else {
                        0
                    };
                    lo + hi
                };
                let q = if dl == 0.0 {
                    read(b)
                } else {
                    let q = nearest_int((x + ml) / dl).clamp(0, nmax) as u8;
                    let byte = &mut b[qs0 + pos];
                    *byte = if high {
                        (*byte & 0x0f) | ((q & 0x0f) << 4)
                    } else {
                        (*byte & 0xf0) | (q & 0x0f)
                    };
                    if nmax == 31 {
                        if q & 0x10 != 0 {
                            b[16 + pos % 32] |= hbit;
                        } else {
                            b[16 + pos % 32] &= !hbit;
                        }
                    }
                    q
                };
                dl * f32::from(q) - ml
            }
            GgufType::Q6_K => {
                let s = f32::from(b[192 + k / 16] as i8);
                let dl = f16_to_f32(&b[208..210]) * s;
                let (h, kk) = (k / 128, k % 128);
                let (l, quarter) = (kk % 32, kk / 32);
                let ql_i = 64 * h + l + if quarter % 2 == 1 { 32 } else { 0 };
                let ql_high = quarter >= 2;
                let (qh_i, qh_shift) = (128 + 32 * h + l, 2 * quarter as u32);
                let code = if dl == 0.0 {
                    let lo = if ql_high {
                        b[ql_i] >> 4
                    } else {
                        b[ql_i] & 0x0f
                    };
                    lo | (((b[qh_i] >> qh_shift) & 3) << 4)
                } else {
                    let code = (nearest_int(x / dl).clamp(-32, 31) + 32) as u8;
                    b[ql_i] = if ql_high {
                        (b[ql_i] & 0x0f) | ((code & 0x0f) << 4)
                    } else {
                        (b[ql_i] & 0xf0) | (code & 0x0f)
                    };
                    b[qh_i] = (b[qh_i] & !(3 << qh_shift)) | ((code >> 4) << qh_shift);
                    code
                };
                dl * (i32::from(code) - 32) as f32
            }
            GgufType::IQ4_NL => {
                let d = f16_to_f32(&b[0..2]);
                let q = best_index_iq4(aux[0] * x);
                set_nibble(&mut b[2..18], k, q);
                d * f32::from(KVALUES_IQ4NL[usize::from(q)])
            }
            GgufType::IQ4_XS => {
                let ib = k / 32;
                let d = f16_to_f32(&b[0..2]);
                let scales_h = u16::from_le_bytes([b[2], b[3]]);
                let lo = (b[4 + ib / 2] >> (4 * (ib % 2))) & 0x0f;
                let hi = ((scales_h >> (2 * ib)) & 3) as u8;
                let dl = d * (i32::from(lo | (hi << 4)) - 32) as f32;
                let q = best_index_iq4(aux[ib] * x);
                set_nibble(&mut b[8 + 16 * ib..8 + 16 * ib + 16], k % 32, q);
                dl * f32::from(KVALUES_IQ4NL[usize::from(q)])
            }
            GgufType::MXFP4 => {
                let d = e8m0_half(b[0]);
                let q = best_index_fp4(x, d);
                set_nibble(&mut b[1..17], k, q);
                f32::from(KVALUES_FP4[usize::from(q)]) * d
            }
            // Rejected by `new` (`takes_gptq`); the value stays as stored.
            GgufType::F16 | GgufType::BF16 | GgufType::Q8_K | GgufType::TQ1_0 | GgufType::TQ2_0 => {
                x
            }
        }
    }
}

impl GptqRule for GgufGptqRule {
    type Row = GgufRow;

    fn group_at(&self, c: usize) -> Option<usize> {
        let bs = self.ty.block_size();
        c.is_multiple_of(bs).then_some(bs)
    }

    fn fit(&self, row: &mut GgufRow, _r: usize, c: usize, values: &[f32]) -> Result<()> {
        let (bs, ts) = (self.ty.block_size(), self.ty.type_size());
        if values.len() != bs {
            return Err(Error::shape("GGUF GPTQ block", bs, values.len()));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "GPTQ-updated weights".into(),
                position: format!("column {}", c + i),
                value: values[i].to_string(),
            });
        }
        let b = &mut row.bytes[c / bs * ts..(c / bs + 1) * ts];
        let aux = &mut row.aux;
        match self.ty {
            GgufType::Q4_0 | GgufType::Q5_0 => {
                super::quantize_block(self.ty, values, b);
                let div = if self.ty == GgufType::Q4_0 {
                    -8.0
                } else {
                    -16.0
                };
                aux[0] = inv(signed_absmax(values) / div);
            }
            GgufType::Q4_1 | GgufType::Q5_1 => {
                super::quantize_block(self.ty, values, b);
                let (min, max) = min_max(values);
                let div = if self.ty == GgufType::Q4_1 {
                    15.0
                } else {
                    31.0
                };
                aux[0] = inv((max - min) / div);
                aux[1] = min;
            }
            GgufType::Q8_0 => {
                super::quantize_block(self.ty, values, b);
                let amax = values.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                aux[0] = inv(amax / 127.0);
            }
            GgufType::IQ4_NL => {
                aux[0] = super::kquants::quantize_iq4_nl_with(values, None, b);
            }
            GgufType::IQ4_XS => {
                *aux = super::kquants::quantize_iq4_xs_with(values, None, b);
            }
            _ => super::quantize_block(self.ty, values, b),
        }
        Ok(())
    }

    fn quantize(&self, row: &mut GgufRow, _r: usize, c: usize, x: f32) -> f32 {
        let (bs, ts) = (self.ty.block_size(), self.ty.type_size());
        let b = &mut row.bytes[c / bs * ts..(c / bs + 1) * ts];
        self.round(b, &row.aux, c % bs, x)
    }
}
