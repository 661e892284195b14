//! OCP small floating-point element formats (FP8, FP6, FP4), the E8M0 shared
//! scale, and bit-exact `f16` / `bf16` rounding helpers.
//!
//! # Specifications
//!
//! * FP8 (E4M3, E5M2): "OCP 8-bit Floating Point Specification (OFP8) rev 1.0".
//! * FP6 (E2M3, E3M2), FP4 (E2M1) and the E8M0 scale:
//!   "OCP Microscaling Formats (MX) v1.0".
//!
//! # Element formats
//!
//! Every element code is stored in the low [`FloatFormat::bits`] bits of a
//! `u8`: one sign bit `s` (the top bit of the format: bit 7 for FP8, bit 5
//! for FP6, bit 3 for FP4), then `E` exponent bits holding the biased
//! exponent `e`, then `M` mantissa bits holding the fraction `f`.
//!
//! | format | E | M | bias | max finite        | min normal | min subnormal | Inf          | NaN                      |
//! |--------|---|---|------|-------------------|------------|---------------|--------------|--------------------------|
//! | E4M3   | 4 | 3 | 7    | 448 (`0 1111 110`) | 2^-6       | 2^-9          | none         | `S 1111 111` only        |
//! | E5M2   | 5 | 2 | 15   | 57344 (`0 11110 11`) | 2^-14    | 2^-16         | `S 11111 00` | `S 11111 {01,10,11}`     |
//! | E2M3   | 2 | 3 | 1    | 7.5               | 1          | 0.125         | none         | none (all codes finite)  |
//! | E3M2   | 3 | 2 | 3    | 28                | 0.25       | 0.0625        | none         | none (all codes finite)  |
//! | E2M1   | 2 | 1 | 1    | 6                 | 1          | 0.5           | none         | none (all codes finite)  |
//!
//! Value of a code (apart from the Inf/NaN codes listed above):
//!
//! * normal, `e > 0`: `(-1)^s * 2^(e - bias) * (1 + f / 2^M)`
//! * subnormal, `e = 0`: `(-1)^s * 2^(1 - bias) * (f / 2^M)`
//!
//! E4M3 (often called "e4m3fn") uses the all-ones exponent for finite values
//! except for the single NaN mantissa `111`; E5M2 follows the IEEE 754
//! convention for its all-ones exponent. Every format has both `+0` and `-0`.
//! All element values, and all E8M0 values, are exactly representable as
//! `f32`, so [`FloatFormat::decode`] and [`e8m0::decode`] are exact.
//!
//! # Conversion from `f32` ([`FloatFormat::encode`])
//!
//! * **Rounding**: round to nearest; a value exactly halfway between two
//!   adjacent representable values goes to the one whose code has a zero
//!   mantissa least significant bit ("ties to even").
//! * **Saturation**: a finite value whose magnitude exceeds the largest
//!   finite value, and also `+-inf`, becomes `+-max finite` (the saturating
//!   conversion mode of OFP8; for FP6/FP4, which have no Inf or NaN, clamping
//!   is the only option). Encoding never produces an Inf code.
//! * **NaN**: E4M3 and E5M2 encode every NaN (either sign, any payload) as the
//!   canonical code `0x7F` (`0 1111 111` and `0 11111 11` respectively). FP6
//!   and FP4 have no NaN encoding; for them NaN encodes to `+0` (code 0), so
//!   **callers must reject NaN before encoding to FP6/FP4** if that matters.
//! * **Signed zero**: `-0.0` encodes to the negative-zero code (only the sign
//!   bit set), and a nonzero value that rounds to zero keeps its sign.
//!
//! Decoding any of the Inf/NaN codes gives `+-inf` / `f32::NAN`; bits above
//! the format width are ignored by every function taking a code.
//!
//! # E8M0 scale ([`e8m0`])
//!
//! The MX shared scale is an 8-bit unsigned biased exponent `e` with value
//! `2^(e - 127)`; `e = 0xFF` is NaN. It has no sign, no zero and no mantissa.
//!
//! # `f16` / `bf16` helpers
//!
//! [`round_to_f16`], [`round_to_bf16`] and the `*_bits` / `*_from_bits`
//! functions convert between `f32` and IEEE 754 binary16 / bfloat16 with
//! round to nearest, ties to even, gradual underflow (binary16 subnormals),
//! overflow to `+-inf`, and NaN kept NaN (quieted, sign kept). They exist to
//! account for scales that are stored in 16 bits.
//!
//! No function in this module panics.

/// One of the OCP small floating-point element formats.
///
/// See the module documentation for the value formulas and special codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FloatFormat {
    /// FP8 E4M3 (OFP8 "E4M3", a.k.a. "e4m3fn"): bias 7, max 448, no Inf,
    /// NaN only at `S 1111 111`.
    E4M3,
    /// FP8 E5M2 (OFP8): bias 15, max 57344, IEEE-style Inf and NaN.
    E5M2,
    /// FP6 E2M3 (MX): bias 1, max 7.5, every code finite.
    E2M3,
    /// FP6 E3M2 (MX): bias 3, max 28, every code finite.
    E3M2,
    /// FP4 E2M1 (MX): bias 1, max 6, every code finite.
    E2M1,
}

/// Exact `2^n` as `f32` for `n` in `[-149, 127]` (including subnormal
/// results); `0.0` below that range and `+inf` above it.
const fn pow2(n: i32) -> f32 {
    if n > 127 {
        f32::INFINITY
    } else if n >= -126 {
        f32::from_bits(((n + 127) as u32) << 23)
    } else if n >= -149 {
        f32::from_bits(1u32 << ((n + 149) as u32))
    } else {
        0.0
    }
}

/// `v / 2^shift` rounded to nearest, ties to even. Exact for any `v` and
/// any `shift` (large shifts give 0 because `v < 2^64`).
const fn round_shift_right(v: u64, shift: u32) -> u64 {
    if shift == 0 {
        return v;
    }
    if shift > 64 {
        return 0;
    }
    if shift == 64 {
        // v / 2^64 < 1, and it is > 1/2 only if v > 2^63.
        return if v > (1u64 << 63) { 1 } else { 0 };
    }
    let q = v >> shift;
    let rem = v & ((1u64 << shift) - 1);
    let half = 1u64 << (shift - 1);
    if rem > half || (rem == half && (q & 1) == 1) {
        q + 1
    } else {
        q
    }
}

impl FloatFormat {
    /// All formats, in declaration order.
    pub const ALL: [FloatFormat; 5] = [
        FloatFormat::E4M3,
        FloatFormat::E5M2,
        FloatFormat::E2M3,
        FloatFormat::E3M2,
        FloatFormat::E2M1,
    ];

    /// Total width of a code in bits (sign + exponent + mantissa):
    /// 8, 8, 6, 6, 4.
    pub const fn bits(self) -> u8 {
        1 + self.exponent_bits() + self.mantissa_bits()
    }

    /// Number of exponent bits `E`.
    pub const fn exponent_bits(self) -> u8 {
        match self {
            FloatFormat::E4M3 => 4,
            FloatFormat::E5M2 => 5,
            FloatFormat::E2M3 => 2,
            FloatFormat::E3M2 => 3,
            FloatFormat::E2M1 => 2,
        }
    }

    /// Number of explicit mantissa (fraction) bits `M`.
    pub const fn mantissa_bits(self) -> u8 {
        match self {
            FloatFormat::E4M3 => 3,
            FloatFormat::E5M2 => 2,
            FloatFormat::E2M3 => 3,
            FloatFormat::E3M2 => 2,
            FloatFormat::E2M1 => 1,
        }
    }

    /// Exponent bias, `2^(E-1) - 1`: 7, 15, 1, 3, 1.
    pub const fn bias(self) -> i32 {
        (1i32 << (self.exponent_bits() - 1)) - 1
    }

    /// Unbiased exponent of the smallest normal value, `1 - bias`
    /// (subnormals share this exponent).
    pub const fn emin(self) -> i32 {
        1 - self.bias()
    }

    /// Unbiased exponent of the largest normal value:
    /// E4M3 8, E5M2 15, E2M3 2, E3M2 4, E2M1 2.
    pub const fn emax(self) -> i32 {
        let all_ones = (1i32 << self.exponent_bits()) - 1;
        match self {
            // The all-ones exponent is reserved for Inf/NaN.
            FloatFormat::E5M2 => all_ones - 1 - self.bias(),
            _ => all_ones - self.bias(),
        }
    }

    /// Mask of the sign bit within a code (`1 << (bits - 1)`).
    pub const fn sign_mask(self) -> u8 {
        1u8 << (self.bits() - 1)
    }

    /// Mask of all valid code bits (`2^bits - 1`).
    pub const fn code_mask(self) -> u8 {
        ((1u16 << self.bits()) - 1) as u8
    }

    /// Code of the largest positive finite value
    /// (E4M3 `0x7E`, E5M2 `0x7B`, E2M3 `0x1F`, E3M2 `0x1F`, E2M1 `0x7`).
    pub const fn max_finite_code(self) -> u8 {
        match self {
            FloatFormat::E4M3 => 0x7E,
            FloatFormat::E5M2 => 0x7B,
            _ => self.sign_mask() - 1,
        }
    }

    /// The NaN code produced by [`encode`](Self::encode): `Some(0x7F)` for
    /// E4M3 and E5M2, `None` for the formats without NaN.
    pub const fn canonical_nan_code(self) -> Option<u8> {
        match self {
            FloatFormat::E4M3 | FloatFormat::E5M2 => Some(0x7F),
            _ => None,
        }
    }

    /// Largest finite value: 448, 57344, 7.5, 28, 6.
    pub fn max_finite(self) -> f32 {
        self.decode(self.max_finite_code())
    }

    /// Smallest positive normal value, `2^(1 - bias)`:
    /// 2^-6, 2^-14, 1, 0.25, 1.
    pub fn min_normal(self) -> f32 {
        pow2(self.emin())
    }

    /// Smallest positive subnormal value, `2^(1 - bias - M)`:
    /// 2^-9, 2^-16, 0.125, 0.0625, 0.5.
    pub fn min_subnormal(self) -> f32 {
        pow2(self.emin() - self.mantissa_bits() as i32)
    }

    /// Short lowercase name: "e4m3", "e5m2", "e2m3", "e3m2", "e2m1".
    pub fn name(self) -> &'static str {
        match self {
            FloatFormat::E4M3 => "e4m3",
            FloatFormat::E5M2 => "e5m2",
            FloatFormat::E2M3 => "e2m3",
            FloatFormat::E3M2 => "e3m2",
            FloatFormat::E2M1 => "e2m1",
        }
    }

    /// Splits a code (bits above the width ignored) into
    /// `(negative, exponent field, fraction field)`.
    const fn fields(self, code: u8) -> (bool, u32, u32) {
        let code = code & self.code_mask();
        let negative = code & self.sign_mask() != 0;
        let magnitude = (code & (self.sign_mask() - 1)) as u32;
        let m = self.mantissa_bits() as u32;
        (negative, magnitude >> m, magnitude & ((1u32 << m) - 1))
    }

    /// True if `code` (bits above the width ignored) is a NaN code:
    /// E4M3 `S 1111 111`, E5M2 `S 11111 {01,10,11}`; never for FP6/FP4.
    pub fn is_nan_code(self, code: u8) -> bool {
        let (_, e, f) = self.fields(code);
        let e_all_ones = (1u32 << self.exponent_bits()) - 1;
        let f_all_ones = (1u32 << self.mantissa_bits()) - 1;
        match self {
            FloatFormat::E4M3 => e == e_all_ones && f == f_all_ones,
            FloatFormat::E5M2 => e == e_all_ones && f != 0,
            _ => false,
        }
    }

    /// True if `code` (bits above the width ignored) is an infinity code;
    /// only E5M2 has them (`S 11111 00`).
    pub fn is_inf_code(self, code: u8) -> bool {
        let (_, e, f) = self.fields(code);
        matches!(self, FloatFormat::E5M2) && e == (1u32 << self.exponent_bits()) - 1 && f == 0
    }

    /// Exact value of `code`. Bits above the format width are ignored.
    /// NaN codes give `f32::NAN`; E5M2 infinity codes give `+-inf`;
    /// the negative-zero code gives `-0.0`.
    pub fn decode(self, code: u8) -> f32 {
        if self.is_nan_code(code) {
            return f32::NAN;
        }
        let (negative, e, f) = self.fields(code);
        let magnitude = if self.is_inf_code(code) {
            f32::INFINITY
        } else {
            let m = self.mantissa_bits() as i32;
            if e == 0 {
                // Subnormal: 2^(1-bias) * f/2^M.
                f as f32 * pow2(self.emin() - m)
            } else {
                // Normal: 2^(e-bias) * (2^M + f)/2^M.
                ((1u32 << m) + f) as f32 * pow2(e as i32 - self.bias() - m)
            }
        };
        if negative { -magnitude } else { magnitude }
    }

    /// Converts `x` to the nearest code of this format.
    ///
    /// Round to nearest, ties to the code with an even mantissa LSB;
    /// saturating (`|x|` above max finite, including `+-inf`, gives
    /// `+-max finite`); NaN gives `0x7F` for E4M3/E5M2 and code 0 (`+0`)
    /// for FP6/FP4, so callers must reject NaN first for those formats;
    /// `-0.0` and negative values that round to zero give the
    /// negative-zero code. The result never has bits above the width set.
    pub fn encode(self, x: f32) -> u8 {
        if x.is_nan() {
            // Formats without NaN: +0 (documented; callers must reject NaN).
            return self.canonical_nan_code().unwrap_or(0);
        }
        let sign = if x.is_sign_negative() {
            self.sign_mask()
        } else {
            0
        };
        let abs_bits = x.to_bits() & 0x7FFF_FFFF;
        let max_code = self.max_finite_code();
        if f32::from_bits(abs_bits) > self.max_finite() {
            return sign | max_code;
        }

        // |x| = sig * 2^lsb_exp exactly, with exp_x = floor(log2 |x|) for
        // normal f32 inputs. f32 subnormals are far below every format's
        // smallest normal, so treating their exponent as -126 is harmless.
        let exp_field = (abs_bits >> 23) as i32;
        let frac = abs_bits & 0x007F_FFFF;
        let (sig, lsb_exp, exp_x) = if exp_field == 0 {
            (frac, -149, -126)
        } else {
            (frac | 0x0080_0000, exp_field - 150, exp_field - 127)
        };
        if sig == 0 {
            return sign;
        }

        // Quantum (value of one mantissa LSB) at the binade of x, clamped
        // to the subnormal quantum below the normal range.
        let m = self.mantissa_bits() as i32;
        let emin = self.emin();
        let exp_t = if exp_x > emin { exp_x } else { emin };
        let quantum_exp = exp_t - m;
        // Always >= 20 here because |x| <= max finite; clamp defensively.
        let shift = quantum_exp - lsb_exp;
        let shift = if shift > 0 { shift as u32 } else { 0 };
        let k = round_shift_right(sig as u64, shift);

        // With exp_t > emin, k is in [2^M, 2^(M+1)] and the code is
        // ((exp_t + bias) << M) + (k - 2^M) = ((exp_t - emin) << M) + k;
        // with exp_t == emin the same formula covers subnormals (k < 2^M).
        // A carry k == 2^(M+1) correctly moves to the next binade, and the
        // code's LSB equals k's LSB, so ties-to-even on k is ties-to-even on
        // the code's mantissa.
        let magnitude = (((exp_t - emin) as u64) << m) + k;
        let magnitude = if magnitude > max_code as u64 {
            max_code
        } else {
            magnitude as u8
        };
        sign | magnitude
    }

    /// Every finite value with one code each, sorted ascending by value.
    /// `-0` is dropped (only `+0`, code 0, is kept); NaN and Inf codes are
    /// dropped. Each entry is `(value, code)`.
    pub fn finite_values(self) -> Vec<(f32, u8)> {
        let mut values: Vec<(f32, u8)> = (0..=self.code_mask())
            .filter_map(|code| {
                let value = self.decode(code);
                let negative_zero = value == 0.0 && code != 0;
                if value.is_finite() && !negative_zero {
                    Some((value, code))
                } else {
                    None
                }
            })
            .collect();
        values.sort_by(|a, b| a.0.total_cmp(&b.0));
        values
    }
}

/// The MX E8M0 shared scale: 8-bit unsigned biased exponent, value
/// `2^(code - 127)`, code `0xFF` is NaN; no sign, no zero, no mantissa.
pub mod e8m0 {
    use super::pow2;

    /// Exponent bias of E8M0.
    pub const BIAS: i32 = 127;

    /// The single NaN code.
    pub const NAN_CODE: u8 = 0xFF;

    /// Smallest unbiased exponent (code 0).
    pub const MIN_EXPONENT: i32 = -127;

    /// Largest unbiased exponent (code 0xFE).
    pub const MAX_EXPONENT: i32 = 127;

    /// Exact value `2^(code - 127)`; code 0 gives `2^-127` (an `f32`
    /// subnormal, still exact); code `0xFF` gives `f32::NAN`.
    pub fn decode(code: u8) -> f32 {
        if is_nan(code) {
            f32::NAN
        } else {
            pow2(exponent(code))
        }
    }

    /// Code for the scale `2^e`, with `e` clamped to `[-127, 127]`
    /// (so the result is never the NaN code).
    pub fn from_exponent(e: i32) -> u8 {
        (e.clamp(MIN_EXPONENT, MAX_EXPONENT) + BIAS) as u8
    }

    /// Unbiased exponent `code - 127` (the NaN code gives 128).
    pub fn exponent(code: u8) -> i32 {
        code as i32 - BIAS
    }

    /// True for the NaN code `0xFF`.
    pub fn is_nan(code: u8) -> bool {
        code == NAN_CODE
    }
}

/// IEEE 754 binary16 bits of `x`, rounded to nearest, ties to even.
/// Overflow (|x| >= 65520) gives `+-inf`; results below the normal range are
/// binary16 subnormals or signed zero; NaN gives a quiet NaN with the sign
/// and the top payload bits kept.
pub fn f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp_field = ((b >> 23) & 0xFF) as i32;
    let frac = b & 0x007F_FFFF;
    if exp_field == 0xFF {
        return if frac == 0 {
            sign | 0x7C00
        } else {
            sign | 0x7E00 | (frac >> 13) as u16
        };
    }
    if exp_field == 0 {
        // Zero or f32 subnormal (< 2^-126): far below half the smallest
        // binary16 subnormal (2^-25), so rounds to signed zero.
        return sign;
    }
    let e = exp_field - 127;
    if e > 15 {
        return sign | 0x7C00;
    }
    if e >= -14 {
        // Normal range: keep 10 fraction bits; a rounding carry moves into
        // the exponent field, and from exponent 30 to 31 (= inf) correctly.
        let r = round_shift_right(frac as u64, 13) as u32;
        let h = (((e + 15) as u32) << 10) + r;
        return sign | h as u16;
    }
    // Subnormal range: count units of 2^-24. |x| = sig * 2^(e-23), so the
    // unit count is sig * 2^(e+1) with e + 1 <= -14.
    let sig = (frac | 0x0080_0000) as u64;
    let k = round_shift_right(sig, (-(e + 1)) as u32);
    sign | k as u16
}

/// Exact `f32` value of IEEE 754 binary16 bits `b` (NaN stays NaN, with its
/// sign and payload kept).
pub fn f16_from_bits(b: u16) -> f32 {
    let negative = b & 0x8000 != 0;
    let exp_field = ((b >> 10) & 0x1F) as i32;
    let frac = (b & 0x03FF) as u32;
    if exp_field == 0x1F && frac != 0 {
        let sign = ((b & 0x8000) as u32) << 16;
        return f32::from_bits(sign | 0x7FC0_0000 | (frac << 13));
    }
    let magnitude = match exp_field {
        0 => frac as f32 * pow2(-24),
        0x1F => f32::INFINITY,
        _ => (1024 + frac) as f32 * pow2(exp_field - 25),
    };
    if negative { -magnitude } else { magnitude }
}

/// bfloat16 bits of `x` (the top 16 bits of the `f32`), rounded to nearest,
/// ties to even; overflow gives `+-inf`; NaN gives a quiet NaN.
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) as u16) | 0x0040;
    }
    let lsb = (b >> 16) & 1;
    // No overflow: the largest non-NaN pattern is 0xFF80_0000.
    (b.wrapping_add(0x7FFF + lsb) >> 16) as u16
}

/// Exact `f32` value of bfloat16 bits `b`.
pub fn bf16_from_bits(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// `x` rounded to the nearest binary16 value (ties to even, overflow to
/// `+-inf`, subnormals kept) and returned as `f32`.
pub fn round_to_f16(x: f32) -> f32 {
    f16_from_bits(f16_bits(x))
}

/// `x` rounded to the nearest bfloat16 value (ties to even, overflow to
/// `+-inf`) and returned as `f32`.
pub fn round_to_bf16(x: f32) -> f32 {
    bf16_from_bits(bf16_bits(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent description of each format, straight from the spec tables.
    struct Spec {
        fmt: FloatFormat,
        bits: u32,
        ebits: u32,
        mbits: u32,
        bias: i32,
        /// E5M2-style all-ones exponent (Inf + NaNs).
        ieee_specials: bool,
        /// E4M3-style single NaN mantissa at the all-ones exponent.
        single_nan: bool,
    }

    const SPECS: [Spec; 5] = [
        Spec {
            fmt: FloatFormat::E4M3,
            bits: 8,
            ebits: 4,
            mbits: 3,
            bias: 7,
            ieee_specials: false,
            single_nan: true,
        },
        Spec {
            fmt: FloatFormat::E5M2,
            bits: 8,
            ebits: 5,
            mbits: 2,
            bias: 15,
            ieee_specials: true,
            single_nan: false,
        },
        Spec {
            fmt: FloatFormat::E2M3,
            bits: 6,
            ebits: 2,
            mbits: 3,
            bias: 1,
            ieee_specials: false,
            single_nan: false,
        },
        Spec {
            fmt: FloatFormat::E3M2,
            bits: 6,
            ebits: 3,
            mbits: 2,
            bias: 3,
            ieee_specials: false,
            single_nan: false,
        },
        Spec {
            fmt: FloatFormat::E2M1,
            bits: 4,
            ebits: 2,
            mbits: 1,
            bias: 1,
            ieee_specials: false,
            single_nan: false,
        },
    ];

    #[derive(Debug, PartialEq)]
    enum Expected {
        Finite(f64),
        Inf(bool),
        NaN,
    }

    /// Spec formula, computed with f64 `powi`, for a code in `0..2^bits`.
    fn spec_value(s: &Spec, code: u32) -> Expected {
        let sign = (code >> (s.bits - 1)) & 1;
        let e = (code >> s.mbits) & ((1 << s.ebits) - 1);
        let f = code & ((1 << s.mbits) - 1);
        let e_all_ones = (1 << s.ebits) - 1;
        let f_all_ones = (1 << s.mbits) - 1;
        if e == e_all_ones && s.ieee_specials {
            return if f == 0 {
                Expected::Inf(sign == 1)
            } else {
                Expected::NaN
            };
        }
        if e == e_all_ones && s.single_nan && f == f_all_ones {
            return Expected::NaN;
        }
        let frac = f as f64 / 2f64.powi(s.mbits as i32);
        let magnitude = if e == 0 {
            2f64.powi(1 - s.bias) * frac
        } else {
            2f64.powi(e as i32 - s.bias) * (1.0 + frac)
        };
        Expected::Finite(if sign == 1 { -magnitude } else { magnitude })
    }

    /// Positive finite values (value, code) from the spec formula, ascending.
    fn spec_positive_values(s: &Spec) -> Vec<(f64, u8)> {
        let mut v: Vec<(f64, u8)> = (0..(1u32 << (s.bits - 1)))
            .filter_map(|c| match spec_value(s, c) {
                Expected::Finite(x) => Some((x, c as u8)),
                _ => None,
            })
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    }

    /// Brute-force reference for `encode`: linear scan over the spec values
    /// for the neighbours of |x|, compare against their exact midpoint.
    fn reference_encode(s: &Spec, positives: &[(f64, u8)], x: f32) -> u8 {
        if x.is_nan() {
            return s.fmt.canonical_nan_code().unwrap_or(0);
        }
        let sign = if x.is_sign_negative() {
            1u8 << (s.bits - 1)
        } else {
            0
        };
        let a = (x as f64).abs();
        let (max_value, max_code) = positives[positives.len() - 1];
        if a >= max_value {
            return sign | max_code;
        }
        let mut lo = positives[0];
        let mut hi = positives[positives.len() - 1];
        for &(v, c) in positives {
            if v <= a && v >= lo.0 {
                lo = (v, c);
            }
            if v >= a && v <= hi.0 {
                hi = (v, c);
            }
        }
        if lo.0 == a {
            return sign | lo.1;
        }
        // lo, hi have at most a few significant bits: midpoint is exact.
        let mid = (lo.0 + hi.0) / 2.0;
        let code = if a < mid {
            lo.1
        } else if a > mid {
            hi.1
        } else if lo.1 & 1 == 0 {
            lo.1
        } else {
            hi.1
        };
        sign | code
    }

    fn same_f32(a: f32, b: f32) -> bool {
        (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
    }

    /// Simple deterministic generator for pseudo-random bit patterns.
    struct Lcg(u64);
    impl Lcg {
        fn next_u32(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 32) as u32
        }
    }

    #[test]
    fn parameters_match_table() {
        let table: [(FloatFormat, u8, u8, u8, i32, i32, &str); 5] = [
            (FloatFormat::E4M3, 8, 4, 3, 7, 8, "e4m3"),
            (FloatFormat::E5M2, 8, 5, 2, 15, 15, "e5m2"),
            (FloatFormat::E2M3, 6, 2, 3, 1, 2, "e2m3"),
            (FloatFormat::E3M2, 6, 3, 2, 3, 4, "e3m2"),
            (FloatFormat::E2M1, 4, 2, 1, 1, 2, "e2m1"),
        ];
        assert_eq!(FloatFormat::ALL.len(), table.len());
        for (i, &(fmt, bits, eb, mb, bias, emax, name)) in table.iter().enumerate() {
            assert_eq!(FloatFormat::ALL[i], fmt);
            assert_eq!(fmt.bits(), bits, "{fmt:?}");
            assert_eq!(fmt.exponent_bits(), eb, "{fmt:?}");
            assert_eq!(fmt.mantissa_bits(), mb, "{fmt:?}");
            assert_eq!(fmt.bias(), bias, "{fmt:?}");
            assert_eq!(fmt.emax(), emax, "{fmt:?}");
            assert_eq!(fmt.name(), name);
            assert_eq!(fmt.sign_mask() as u32, 1u32 << (bits - 1));
            assert_eq!(fmt.code_mask() as u32, (1u32 << bits) - 1);
            // emax is the exponent of the largest finite value.
            let m = fmt.max_finite();
            assert!(m >= 2f32.powi(emax) && m < 2f32.powi(emax + 1), "{fmt:?}");
        }
    }

    #[test]
    fn extreme_values_match_table() {
        let table: [(FloatFormat, f64, f64, f64); 5] = [
            (FloatFormat::E4M3, 448.0, 2f64.powi(-6), 2f64.powi(-9)),
            (FloatFormat::E5M2, 57344.0, 2f64.powi(-14), 2f64.powi(-16)),
            (FloatFormat::E2M3, 7.5, 1.0, 0.125),
            (FloatFormat::E3M2, 28.0, 0.25, 0.0625),
            (FloatFormat::E2M1, 6.0, 1.0, 0.5),
        ];
        for (fmt, max, min_normal, min_sub) in table {
            assert_eq!(fmt.max_finite() as f64, max, "{fmt:?}");
            assert_eq!(fmt.min_normal() as f64, min_normal, "{fmt:?}");
            assert_eq!(fmt.min_subnormal() as f64, min_sub, "{fmt:?}");
            assert_eq!(fmt.decode(fmt.max_finite_code()) as f64, max, "{fmt:?}");
            let values = fmt.finite_values();
            assert_eq!(values.last().map(|v| v.0 as f64), Some(max));
            assert_eq!(values.first().map(|v| v.0 as f64), Some(-max));
        }
    }

    #[test]
    fn decode_matches_spec_formula_for_every_code() {
        for s in &SPECS {
            for code in 0..(1u32 << s.bits) {
                let got = s.fmt.decode(code as u8);
                match spec_value(s, code) {
                    Expected::NaN => {
                        assert!(got.is_nan(), "{:?} {code:#x}", s.fmt);
                        assert!(s.fmt.is_nan_code(code as u8));
                    }
                    Expected::Inf(neg) => {
                        let want = if neg {
                            f32::NEG_INFINITY
                        } else {
                            f32::INFINITY
                        };
                        assert_eq!(got, want, "{:?} {code:#x}", s.fmt);
                        assert!(s.fmt.is_inf_code(code as u8));
                        assert!(!s.fmt.is_nan_code(code as u8));
                    }
                    Expected::Finite(v) => {
                        // Exactly representable in f32.
                        assert_eq!((v as f32) as f64, v);
                        assert_eq!(got as f64, v, "{:?} {code:#x}", s.fmt);
                        assert!(!s.fmt.is_nan_code(code as u8));
                        assert!(!s.fmt.is_inf_code(code as u8));
                        // Signed zero: the sign bit alone gives -0.0.
                        let sign_set = code >> (s.bits - 1) == 1;
                        assert_eq!(got.is_sign_negative(), sign_set, "{code:#x}");
                    }
                }
            }
        }
    }

    #[test]
    fn decode_ignores_bits_above_width() {
        for fmt in FloatFormat::ALL {
            for code in 0..=255u8 {
                let masked = code & fmt.code_mask();
                assert!(same_f32(fmt.decode(code), fmt.decode(masked)));
                assert_eq!(fmt.is_nan_code(code), fmt.is_nan_code(masked));
                assert_eq!(fmt.is_inf_code(code), fmt.is_inf_code(masked));
            }
        }
    }

    #[test]
    fn value_tables() {
        let e2m1: Vec<f32> = (0..8).map(|c| FloatFormat::E2M1.decode(c)).collect();
        assert_eq!(e2m1, [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]);

        let e2m3: Vec<f32> = (0..32).map(|c| FloatFormat::E2M3.decode(c)).collect();
        let want_e2m3 = [
            0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, //
            1.0, 1.125, 1.25, 1.375, 1.5, 1.625, 1.75, 1.875, //
            2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 3.75, //
            4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5,
        ];
        assert_eq!(e2m3, want_e2m3);

        let e3m2: Vec<f32> = (0..32).map(|c| FloatFormat::E3M2.decode(c)).collect();
        let want_e3m2 = [
            0.0, 0.0625, 0.125, 0.1875, //
            0.25, 0.3125, 0.375, 0.4375, //
            0.5, 0.625, 0.75, 0.875, //
            1.0, 1.25, 1.5, 1.75, //
            2.0, 2.5, 3.0, 3.5, //
            4.0, 5.0, 6.0, 7.0, //
            8.0, 10.0, 12.0, 14.0, //
            16.0, 20.0, 24.0, 28.0,
        ];
        assert_eq!(e3m2, want_e3m2);

        let e4m3 = FloatFormat::E4M3;
        assert_eq!(e4m3.decode(0x7E), 448.0);
        assert_eq!(e4m3.decode(0xFE), -448.0);
        assert!(e4m3.decode(0x7F).is_nan());
        assert!(e4m3.decode(0xFF).is_nan());
        let top: Vec<f32> = (0x78..0x7E).map(|c| e4m3.decode(c)).collect();
        assert_eq!(top, [256.0, 288.0, 320.0, 352.0, 384.0, 416.0]);
        assert_eq!(e4m3.decode(0x01), 2f32.powi(-9));
        assert_eq!(e4m3.decode(0x08), 2f32.powi(-6));
        assert_eq!(e4m3.decode(0x38), 1.0);
        // Exactly two NaN codes.
        assert_eq!((0..=255u8).filter(|&c| e4m3.is_nan_code(c)).count(), 2);

        let e5m2 = FloatFormat::E5M2;
        assert_eq!(e5m2.decode(0x7B), 57344.0);
        assert_eq!(e5m2.decode(0x7C), f32::INFINITY);
        assert_eq!(e5m2.decode(0xFC), f32::NEG_INFINITY);
        for c in [0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF] {
            assert!(e5m2.decode(c).is_nan(), "{c:#x}");
        }
        assert_eq!(e5m2.decode(0x3C), 1.0);
        assert_eq!(e5m2.decode(0x01), 2f32.powi(-16));
        assert_eq!((0..=255u8).filter(|&c| e5m2.is_nan_code(c)).count(), 6);

        for fmt in [FloatFormat::E2M3, FloatFormat::E3M2, FloatFormat::E2M1] {
            for c in 0..=fmt.code_mask() {
                assert!(fmt.decode(c).is_finite(), "{fmt:?} {c:#x}");
            }
        }
    }

    #[test]
    fn odd_symmetry() {
        for fmt in FloatFormat::ALL {
            for c in 0..fmt.sign_mask() {
                let pos = fmt.decode(c);
                let neg = fmt.decode(c | fmt.sign_mask());
                assert!(same_f32(neg, -pos), "{fmt:?} {c:#x}");
            }
        }
    }

    #[test]
    fn finite_values_list() {
        for s in &SPECS {
            let got = s.fmt.finite_values();
            let positives = spec_positive_values(s);
            // 2 * positives - 1 (the single zero).
            assert_eq!(got.len(), 2 * positives.len() - 1, "{:?}", s.fmt);
            for w in got.windows(2) {
                assert!(w[0].0 < w[1].0, "{:?} not strictly ascending", s.fmt);
            }
            for &(v, c) in &got {
                assert_eq!(s.fmt.decode(c), v);
                assert!(v.is_finite());
                if v == 0.0 {
                    assert_eq!(c, 0);
                }
            }
            for &(v, c) in &positives {
                assert!(got.contains(&(v as f32, c)));
            }
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        for fmt in FloatFormat::ALL {
            for c in 0..=fmt.code_mask() {
                if fmt.is_nan_code(c) || fmt.is_inf_code(c) {
                    continue;
                }
                assert_eq!(fmt.encode(fmt.decode(c)), c, "{fmt:?} {c:#x}");
            }
        }
        // +0 and -0 stay distinct.
        for fmt in FloatFormat::ALL {
            assert_eq!(fmt.encode(0.0), 0);
            assert_eq!(fmt.encode(-0.0), fmt.sign_mask());
        }
    }

    #[test]
    fn nan_and_infinity_encoding() {
        for fmt in FloatFormat::ALL {
            let max = fmt.max_finite_code();
            let neg_max = max | fmt.sign_mask();
            assert_eq!(fmt.encode(f32::INFINITY), max, "{fmt:?}");
            assert_eq!(fmt.encode(f32::NEG_INFINITY), neg_max, "{fmt:?}");
            let nans = [
                f32::NAN,
                -f32::NAN,
                f32::from_bits(0x7F80_0001),
                f32::from_bits(0xFFBF_FFFF),
            ];
            for n in nans {
                let code = fmt.encode(n);
                match fmt {
                    FloatFormat::E4M3 | FloatFormat::E5M2 => {
                        assert_eq!(code, 0x7F, "{fmt:?}");
                        assert!(fmt.is_nan_code(code));
                    }
                    _ => assert_eq!(code, 0, "{fmt:?}"),
                }
            }
        }
        assert_eq!(FloatFormat::E4M3.canonical_nan_code(), Some(0x7F));
        assert_eq!(FloatFormat::E5M2.canonical_nan_code(), Some(0x7F));
        assert_eq!(FloatFormat::E2M1.canonical_nan_code(), None);
    }

    /// Compares an encoded result with an expected value and sign.
    fn assert_encodes_to(fmt: FloatFormat, x: f32, want_value: f32, want_negative: bool) {
        let code = fmt.encode(x);
        let got = fmt.decode(code);
        assert_eq!(got, want_value, "{fmt:?} encode({x:e}) = {code:#x}");
        assert_eq!(
            code & fmt.sign_mask() != 0,
            want_negative,
            "{fmt:?} sign of encode({x:e}) = {code:#x}"
        );
    }

    #[test]
    fn midpoints_round_to_even() {
        for fmt in FloatFormat::ALL {
            let values = fmt.finite_values();
            for w in values.windows(2) {
                let (a, ca) = w[0];
                let (b, cb) = w[1];
                let mid64 = (a as f64 + b as f64) / 2.0;
                let mid = mid64 as f32;
                assert_eq!(mid as f64, mid64, "midpoint not exact");
                // Adjacent codes differ in mantissa LSB parity.
                assert_ne!(ca & 1, cb & 1, "{fmt:?} {ca:#x} {cb:#x}");
                let even = if ca & 1 == 0 { a } else { b };
                let neg = mid < 0.0;
                assert_encodes_to(fmt, mid, even, neg);
                assert_encodes_to(fmt, mid.next_down(), a, neg);
                assert_encodes_to(fmt, mid.next_up(), b, neg);
                // Points just off the representable values stay there.
                if a != 0.0 {
                    assert_encodes_to(fmt, a.next_up(), a, a < 0.0);
                }
                if b != 0.0 {
                    assert_encodes_to(fmt, b.next_down(), b, b < 0.0);
                }
            }
        }
    }

    #[test]
    fn saturation_and_underflow() {
        for fmt in FloatFormat::ALL {
            let max = fmt.max_finite();
            let max_code = fmt.max_finite_code();
            let s = fmt.sign_mask();
            for x in [max.next_up(), max * 1.0625, max * 2.0, 1e30, f32::MAX] {
                assert_eq!(fmt.encode(x), max_code, "{fmt:?} {x}");
                assert_eq!(fmt.encode(-x), max_code | s, "{fmt:?} {x}");
            }
            assert_eq!(fmt.encode(max.next_down()), max_code);

            let tiny = fmt.min_subnormal();
            let half = tiny / 2.0;
            assert_eq!(fmt.encode(half), 0, "{fmt:?} tie goes to even zero");
            assert_eq!(fmt.encode(-half), s, "{fmt:?}");
            assert_eq!(fmt.encode(half.next_down()), 0);
            assert_eq!(fmt.encode(-half.next_down()), s);
            assert_eq!(fmt.encode(half.next_up()), 1);
            assert_eq!(fmt.encode(-half.next_up()), 1 | s);
            for x in [tiny / 4.0, 1e-30, f32::MIN_POSITIVE, f32::from_bits(1)] {
                assert_eq!(fmt.encode(x), 0, "{fmt:?} {x:e}");
                assert_eq!(fmt.encode(-x), s, "{fmt:?} {x:e}");
            }
        }
        // E4M3: everything between 448 and the would-be 480 saturates too.
        for x in [449.0, 463.9, 464.0, 464.1, 479.0, 480.0, 500.0] {
            assert_eq!(FloatFormat::E4M3.encode(x), 0x7E, "{x}");
        }
        // E5M2: 61440 is the midpoint to the would-be 65536; still saturates.
        for x in [57345.0, 61440.0, 65536.0, 70000.0] {
            assert_eq!(FloatFormat::E5M2.encode(x), 0x7B, "{x}");
        }
    }

    /// Inputs for the sweep: uniform in f32 bit space over the whole range,
    /// dense over the format's range, ulp-neighbourhoods of every value and
    /// midpoint, and pseudo-random patterns.
    fn sweep_inputs(fmt: FloatFormat) -> Vec<f32> {
        let mut xs = Vec::new();
        let n = 100_000u32;
        let top = f32::INFINITY.to_bits();
        for i in 0..n {
            let x = f32::from_bits((top / n) * i);
            xs.push(x);
            xs.push(-x);
        }
        let lo = (fmt.min_subnormal() / 8.0).to_bits();
        let hi = (fmt.max_finite() * 4.0).to_bits();
        let step = ((hi - lo) / n).max(1);
        let mut b = lo;
        while b <= hi {
            xs.push(f32::from_bits(b));
            xs.push(-f32::from_bits(b));
            b += step;
        }
        let values = fmt.finite_values();
        let mut anchors: Vec<f32> = values.iter().map(|v| v.0).collect();
        for w in values.windows(2) {
            anchors.push(((w[0].0 as f64 + w[1].0 as f64) / 2.0) as f32);
        }
        anchors.push(fmt.min_subnormal() / 2.0);
        anchors.push(-fmt.min_subnormal() / 2.0);
        for a in anchors {
            let (mut up, mut down) = (a, a);
            xs.push(a);
            for _ in 0..6 {
                up = up.next_up();
                down = down.next_down();
                xs.push(up);
                xs.push(down);
            }
        }
        let mut rng = Lcg(0x5EED ^ fmt.bits() as u64);
        for _ in 0..50_000 {
            xs.push(f32::from_bits(rng.next_u32()));
        }
        xs.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            f32::MIN,
        ]);
        xs
    }

    #[test]
    fn encode_matches_brute_force_nearest() {
        for s in &SPECS {
            let positives = spec_positive_values(s);
            let xs = sweep_inputs(s.fmt);
            assert!(xs.len() > 200_000);
            for x in xs {
                let got = s.fmt.encode(x);
                let want = reference_encode(s, &positives, x);
                assert_eq!(
                    got,
                    want,
                    "{:?} encode({x:e}) bits {:#x}",
                    s.fmt,
                    x.to_bits()
                );
                assert_eq!(got & !s.fmt.code_mask(), 0);
            }
        }
    }

    #[test]
    fn encode_never_escapes_width_or_makes_specials() {
        let mut rng = Lcg(42);
        for fmt in FloatFormat::ALL {
            for i in 0..300_000u32 {
                let x = if i % 2 == 0 {
                    f32::from_bits(i.wrapping_mul(14_317))
                } else {
                    f32::from_bits(rng.next_u32())
                };
                let c = fmt.encode(x);
                assert_eq!(c & !fmt.code_mask(), 0);
                assert!(!fmt.is_inf_code(c));
                assert_eq!(
                    fmt.is_nan_code(c),
                    x.is_nan() && fmt.canonical_nan_code().is_some()
                );
            }
        }
    }

    #[test]
    fn e8m0_scale() {
        assert_eq!(e8m0::decode(127), 1.0);
        assert_eq!(e8m0::decode(128), 2.0);
        assert_eq!(e8m0::decode(126), 0.5);
        assert_eq!(e8m0::decode(0), f32::from_bits(0x0040_0000));
        assert_eq!(e8m0::decode(0) as f64, 2f64.powi(-127));
        assert_eq!(e8m0::decode(0xFE) as f64, 2f64.powi(127));
        assert!(e8m0::decode(0xFF).is_nan());
        assert!(e8m0::is_nan(0xFF));
        for code in 0..=0xFEu8 {
            let want = 2f64.powi(code as i32 - 127);
            assert_eq!(e8m0::decode(code) as f64, want, "{code}");
            assert!(!e8m0::is_nan(code));
            assert_eq!(e8m0::from_exponent(e8m0::exponent(code)), code);
        }
        for e in -127..=127 {
            assert_eq!(e8m0::exponent(e8m0::from_exponent(e)), e);
        }
        assert_eq!(e8m0::from_exponent(0), 127);
        assert_eq!(e8m0::from_exponent(-128), 0);
        assert_eq!(e8m0::from_exponent(128), 0xFE);
        assert_eq!(e8m0::from_exponent(i32::MIN), 0);
        assert_eq!(e8m0::from_exponent(i32::MAX), 0xFE);
        assert_eq!(e8m0::exponent(0xFF), 128);
    }

    #[test]
    fn f16_bf16_known_values() {
        assert_eq!(round_to_f16(1.0 / 3.0) as f64, 0.333_251_953_125);
        assert_eq!(f16_bits(1.0 / 3.0), 0x3555);
        assert_eq!(round_to_f16(65520.0), f32::INFINITY);
        assert_eq!(round_to_f16(-65520.0), f32::NEG_INFINITY);
        assert_eq!(round_to_f16(65519.996), 65504.0);
        assert_eq!(round_to_f16(65504.0), 65504.0);
        assert_eq!(f16_bits(65504.0), 0x7BFF);
        assert_eq!(f16_bits(1.0), 0x3C00);
        assert_eq!(f16_bits(-2.0), 0xC000);
        let min_sub = 2f32.powi(-24);
        assert_eq!(round_to_f16(min_sub), min_sub);
        assert_eq!(f16_bits(min_sub), 0x0001);
        assert_eq!(round_to_f16(min_sub / 2.0), 0.0); // tie to even zero
        assert_eq!(round_to_f16((min_sub / 2.0).next_up()), min_sub);
        assert_eq!(round_to_f16(1.5 * min_sub), 2.0 * min_sub); // tie to even
        assert_eq!(f16_bits(-min_sub / 4.0), 0x8000);
        assert_eq!(f16_bits(2f32.powi(-14)), 0x0400);
        assert_eq!(f16_bits(2f32.powi(-14).next_down()), 0x0400);
        assert_eq!(round_to_f16(1.0 + 2f32.powi(-11)), 1.0); // tie to even
        assert_eq!(
            round_to_f16(1.0 + 3.0 * 2f32.powi(-11)),
            1.0 + 2f32.powi(-9)
        );
        assert_eq!(round_to_f16(f32::INFINITY), f32::INFINITY);
        assert!(round_to_f16(f32::NAN).is_nan());
        assert_eq!(f16_bits(f32::NAN) & 0x7E00, 0x7E00);
        assert_eq!(f16_from_bits(0x7C00), f32::INFINITY);
        assert!(f16_from_bits(0x7C01).is_nan());
        assert!(f16_from_bits(0xFE00).is_nan());
        assert_eq!(f16_from_bits(0x8000).to_bits(), (-0.0f32).to_bits());

        assert_eq!(round_to_bf16(1.0 / 3.0) as f64, 0.333_984_375);
        assert_eq!(bf16_bits(1.0 / 3.0), 0x3EAB);
        assert_eq!(bf16_bits(1.0), 0x3F80);
        assert_eq!(round_to_bf16(1.0 + 2f32.powi(-8)), 1.0); // tie to even
        assert_eq!(
            round_to_bf16(1.0 + 3.0 * 2f32.powi(-8)),
            1.0 + 2f32.powi(-6)
        );
        assert_eq!(round_to_bf16(f32::MAX), f32::INFINITY);
        assert_eq!(round_to_bf16(f32::NEG_INFINITY), f32::NEG_INFINITY);
        assert!(round_to_bf16(f32::NAN).is_nan());
        assert!(round_to_bf16(f32::from_bits(0x7F80_0001)).is_nan());
        assert_eq!(bf16_from_bits(0x3F80), 1.0);
    }

    /// Positive finite values of a 16-bit IEEE-style format, decoded from all
    /// bit patterns with the powi formula, ascending (bit order is value
    /// order for positive patterns).
    fn all_positive_16bit(ebits: i32, mbits: i32) -> Vec<(f64, u16)> {
        let bias = (1 << (ebits - 1)) - 1;
        let e_all_ones = (1 << ebits) - 1;
        let mut v = Vec::new();
        for b in 0..0x8000u32 {
            let e = (b >> mbits) as i32;
            let f = (b & ((1 << mbits) - 1)) as f64 / 2f64.powi(mbits);
            if e == e_all_ones {
                continue;
            }
            let x = if e == 0 {
                2f64.powi(1 - bias) * f
            } else {
                2f64.powi(e - bias) * (1.0 + f)
            };
            v.push((x, b as u16));
        }
        v
    }

    /// Reference rounding of x onto the sorted positive table; `overflow`
    /// is the smallest magnitude that rounds to infinity.
    fn reference_round(table: &[(f64, u16)], overflow: f64, x: f32) -> f32 {
        let a = (x as f64).abs();
        let magnitude = if a >= overflow {
            f64::INFINITY
        } else {
            let idx = table.partition_point(|v| v.0 <= a);
            let lo = table[idx - 1];
            if lo.0 == a || idx == table.len() {
                lo.0
            } else {
                let hi = table[idx];
                let mid = (lo.0 + hi.0) / 2.0;
                if a < mid {
                    lo.0
                } else if a > mid {
                    hi.0
                } else if lo.1 & 1 == 0 {
                    lo.0
                } else {
                    hi.0
                }
            }
        };
        let r = magnitude as f32;
        if x.is_sign_negative() { -r } else { r }
    }

    fn sixteen_bit_inputs(table: &[(f64, u16)], lo: f32, hi: f32) -> Vec<f32> {
        let mut xs = Vec::new();
        let n = 100_000u32;
        let top = f32::INFINITY.to_bits();
        for i in 0..n {
            xs.push(f32::from_bits((top / n) * i));
        }
        let (lo, hi) = (lo.to_bits(), hi.to_bits());
        let step = ((hi - lo) / n).max(1);
        let mut b = lo;
        while b <= hi {
            xs.push(f32::from_bits(b));
            b += step;
        }
        for (i, w) in table.windows(2).enumerate() {
            // Every value and midpoint would be ~400k inputs per sign;
            // take every value and every midpoint, with 2 ulps either side.
            let v = w[0].0 as f32;
            let mid = ((w[0].0 + w[1].0) / 2.0) as f32;
            for a in [v, mid] {
                xs.extend([a, a.next_up(), a.next_down()]);
                if i % 7 == 0 {
                    xs.extend([a.next_up().next_up(), a.next_down().next_down()]);
                }
            }
        }
        let mut rng = Lcg(7);
        for _ in 0..50_000 {
            xs.push(f32::from_bits(rng.next_u32()));
        }
        let negs: Vec<f32> = xs.iter().map(|x| -x).collect();
        xs.extend(negs);
        xs
    }

    #[test]
    fn f16_matches_brute_force_nearest() {
        let table = all_positive_16bit(5, 10);
        assert_eq!(table.last().map(|v| v.0), Some(65504.0));
        let overflow = 65520.0;
        let xs = sixteen_bit_inputs(&table, 2f32.powi(-27), 131072.0);
        assert!(xs.len() > 400_000);
        for x in xs.into_iter().filter(|x| !x.is_nan()) {
            let want = reference_round(&table, overflow, x);
            let got = round_to_f16(x);
            assert_eq!(got.to_bits(), want.to_bits(), "f16 of {x:e}");
            // Bits agree with the decoded table too.
            assert_eq!(f16_from_bits(f16_bits(x)).to_bits(), want.to_bits());
        }
    }

    #[test]
    fn bf16_matches_brute_force_nearest() {
        let table = all_positive_16bit(8, 7);
        // Halfway between the max (2 - 2^-7) 2^127 and the would-be 2^128.
        let overflow = (2.0 - 2f64.powi(-8)) * 2f64.powi(127);
        let xs = sixteen_bit_inputs(&table, 1e-40, f32::MAX);
        for x in xs.into_iter().filter(|x| !x.is_nan()) {
            let want = reference_round(&table, overflow, x);
            let got = round_to_bf16(x);
            assert_eq!(got.to_bits(), want.to_bits(), "bf16 of {x:e}");
        }
    }

    #[test]
    fn sixteen_bit_decode_all_patterns() {
        for b in 0..=u16::MAX {
            // f16: exact value, and f16_bits inverts f16_from_bits.
            let x = f16_from_bits(b);
            let e = ((b >> 10) & 0x1F) as i32;
            let f = (b & 0x3FF) as f64;
            let mag = match e {
                0 => f * 2f64.powi(-24),
                31 => {
                    if f == 0.0 {
                        f64::INFINITY
                    } else {
                        f64::NAN
                    }
                }
                _ => (1.0 + f / 1024.0) * 2f64.powi(e - 15),
            };
            let want = if b & 0x8000 != 0 { -mag } else { mag };
            if want.is_nan() {
                assert!(x.is_nan());
                assert!(f16_bits(x) & 0x7C00 == 0x7C00 && f16_bits(x) & 0x3FF != 0);
                assert_eq!(f16_bits(x) & 0x8000, b & 0x8000);
            } else {
                assert_eq!(x as f64, want, "{b:#x}");
                assert_eq!(f16_bits(x), b, "{b:#x}");
            }
            // bf16: bits are the top half of the f32.
            let y = bf16_from_bits(b);
            assert_eq!(y.to_bits() >> 16, b as u32);
            if !y.is_nan() {
                assert_eq!(bf16_bits(y), b);
            } else {
                assert!(bf16_from_bits(bf16_bits(y)).is_nan());
            }
        }
    }
}
