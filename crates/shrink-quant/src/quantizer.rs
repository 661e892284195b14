//! A [`QuantSpec`] made concrete for one tensor: the levels, the learned
//! codebook (Lloyd) or tensor scale (NVFP4), and the per-group scale rules.
//! Every rounding method (RTN here, GPTQ and HQQ elsewhere) quantizes through
//! a [`Prepared`] quantizer, so they all work over every grid and scaling.

use crate::float::{FloatFormat, bf16_bits, bf16_from_bits, e8m0, f16_bits, f16_from_bits};
use crate::lloyd::fit_lloyd;
use crate::normal::{NF4, normal_float_code};
use crate::spec::{Grid, QuantSpec, ScaleFormat};
use shrink_core::{Error, Result};

/// The scale (and zero point) of one group, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct GroupParams {
    /// The stored scale's bits: f32 bits, f16/bf16 bits, an E8M0 code or an E4M3 code.
    pub raw_scale: u32,
    /// The zero point (asymmetric integer grids; 0 otherwise).
    pub zero: u8,
}

/// How codes map to levels.
#[derive(Clone, Debug, PartialEq)]
enum Levels {
    /// Integers `lo..=hi`; code = level - lo.
    Int { lo: i32, hi: i32 },
    /// An OCP float format; code = its bit pattern.
    Float(FloatFormat),
    /// A sorted table; code = index. `mids[k]` is the midpoint of levels k, k+1.
    Table { values: Vec<f32>, mids: Vec<f32> },
}

fn table(values: Vec<f32>) -> Levels {
    let mids = values.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    Levels::Table { values, mids }
}

/// A quantizer ready for one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    spec: QuantSpec,
    levels: Levels,
    tensor_scale: Option<f32>,
}

/// Largest f16 scale; a larger one is an error rather than infinity.
const F16_MAX: f64 = 65504.0;

impl Prepared {
    /// Prepares `spec` for a tensor given as its row-major `values` with rows
    /// of `cols` weights: fits the Lloyd codebook or computes the NVFP4 tensor
    /// scale when needed.
    pub fn new(spec: QuantSpec, values: &[f32], cols: usize) -> Result<Self> {
        spec.validate()?;
        let (levels, tensor_scale) = match spec.grid {
            Grid::Int { bits, sym } => {
                if !(1..=8).contains(&bits) {
                    return Err(Error::invalid(
                        "bit width",
                        format!("{bits} is outside 1..=8"),
                    ));
                }
                if sym && bits == 1 {
                    (table(vec![-1.0, 1.0]), None)
                } else if sym {
                    let h = 1i32 << (bits - 1);
                    (Levels::Int { lo: -h, hi: h - 1 }, None)
                } else {
                    (
                        Levels::Int {
                            lo: 0,
                            hi: (1i32 << bits) - 1,
                        },
                        None,
                    )
                }
            }
            Grid::Normal { bits } => match bits {
                4 => (table(NF4.to_vec()), None),
                3 => (table(normal_float_code(3)), None),
                b => {
                    return Err(Error::invalid(
                        "NormalFloat width",
                        format!("nf{b} is not provided (nf3 and nf4 are)"),
                    ));
                }
            },
            Grid::Float(f) | Grid::Mx(f) => (Levels::Float(f), None),
            Grid::Nvfp4 => {
                let amax = values.iter().fold(0f32, |m, x| m.max(x.abs()));
                let g = if amax > 0.0 { 448.0 * 6.0 / amax } else { 1.0 };
                if !g.is_finite() {
                    return Err(Error::invalid(
                        "NVFP4 tensor scale",
                        format!("absmax {amax} is too small for an f32 global scale"),
                    ));
                }
                (Levels::Float(FloatFormat::E2M1), Some(g))
            }
            Grid::Lloyd { bits } => {
                // Normalize every group by its own (stored) absmax scale, then
                // fit 2^bits levels to all normalized values of the tensor.
                let normalized = normalized_for_lloyd(&spec, values, cols)?;
                let cb = fit_lloyd(&normalized, 1usize << bits, 500, 1e-9).ok_or_else(|| {
                    Error::invalid("Lloyd codebook", "cannot fit a codebook to these values")
                })?;
                (table(cb.levels), None)
            }
        };
        Ok(Self {
            spec,
            levels,
            tensor_scale,
        })
    }

    /// Rebuilds a prepared quantizer from stored parts (for unpacking).
    pub fn from_parts(
        spec: QuantSpec,
        codebook: Option<Vec<f32>>,
        tensor_scale: Option<f32>,
    ) -> Result<Self> {
        spec.validate()?;
        let mut p = match spec.grid {
            Grid::Lloyd { bits } => {
                let cb = codebook
                    .ok_or_else(|| Error::corrupt("Lloyd quantizer", "codebook missing"))?;
                if cb.len() != 1usize << bits
                    || cb.iter().any(|v| !v.is_finite())
                    || cb.windows(2).any(|w| w[0] > w[1])
                {
                    return Err(Error::corrupt(
                        "Lloyd codebook",
                        format!("expected {} sorted finite levels", 1usize << bits),
                    ));
                }
                return Ok(Self {
                    spec,
                    levels: table(cb),
                    tensor_scale: None,
                });
            }
            _ => Self::new(spec, &[1.0], 1)?,
        };
        if spec.grid == Grid::Nvfp4 {
            match tensor_scale {
                Some(g) if g.is_finite() && g > 0.0 => p.tensor_scale = Some(g),
                _ => {
                    return Err(Error::corrupt(
                        "NVFP4 tensor scale",
                        "missing or not a positive finite f32",
                    ));
                }
            }
        }
        Ok(p)
    }

    /// The spec.
    pub fn spec(&self) -> &QuantSpec {
        &self.spec
    }

    /// The learned codebook (Lloyd grids).
    pub fn codebook(&self) -> Option<&[f32]> {
        match (&self.levels, self.spec.grid) {
            (Levels::Table { values, .. }, Grid::Lloyd { .. }) => Some(values),
            _ => None,
        }
    }

    /// The NVFP4 tensor (global) scale.
    pub fn tensor_scale(&self) -> Option<f32> {
        self.tensor_scale
    }

    /// The effective scale of stored scale bits.
    pub fn scale_value(&self, raw: u32) -> f32 {
        match self.spec.scale_format {
            ScaleFormat::F32 => f32::from_bits(raw),
            ScaleFormat::F16 => f16_from_bits(raw as u16),
            ScaleFormat::Bf16 => bf16_from_bits(raw as u16),
            ScaleFormat::E8m0 => e8m0::decode(raw as u8),
            ScaleFormat::E4m3 => {
                FloatFormat::E4M3.decode(raw as u8) / self.tensor_scale.unwrap_or(1.0)
            }
        }
    }

    /// Stores a positive scale in the spec's format (f32/f16/bf16 only).
    fn store(&self, s: f64) -> Result<u32> {
        match self.spec.scale_format {
            ScaleFormat::F32 => {
                let v = s as f32;
                if !v.is_finite() {
                    return Err(Error::invalid("scale", format!("{s} overflows f32")));
                }
                Ok(v.max(f32::MIN_POSITIVE).to_bits())
            }
            ScaleFormat::F16 => {
                if s > F16_MAX {
                    return Err(Error::invalid(
                        "scale",
                        format!("{s} overflows f16 (max 65504); use f32 scales (`:f32`)"),
                    ));
                }
                // A scale that would round to zero is stored as the smallest
                // positive f16 so that division stays finite.
                let b = f16_bits(f32_round_to_odd(s));
                Ok(u32::from(if b == 0 { 1 } else { b }))
            }
            ScaleFormat::Bf16 => {
                let b = bf16_bits(f32_round_to_odd(s));
                if !bf16_from_bits(b).is_finite() {
                    return Err(Error::invalid("scale", format!("{s} overflows bf16")));
                }
                Ok(u32::from(if b == 0 { 1 } else { b }))
            }
            ScaleFormat::E8m0 | ScaleFormat::E4m3 => Err(Error::invalid(
                "scale format",
                "block formats compute their own scales",
            )),
        }
    }

    /// Group parameters for the values `xs` of one group, with the range
    /// shrunk by `p` (1 = plain min/max).
    fn params_shrunk(&self, xs: &[f32], p: f64) -> Result<GroupParams> {
        let absmax = xs.iter().fold(0f32, |m, x| m.max(x.abs()));
        match self.spec.grid {
            Grid::Int { bits: 1, sym: true } => {
                let mean =
                    xs.iter().map(|x| f64::from(x.abs())).sum::<f64>() / xs.len().max(1) as f64;
                let s = if mean > 0.0 { mean } else { 1.0 };
                Ok(GroupParams {
                    raw_scale: self.store(s)?,
                    zero: 0,
                })
            }
            Grid::Int { bits, sym: true } => {
                let qmax = f64::from((1u32 << (bits - 1)) - 1);
                let s = f64::from(absmax) * p / qmax;
                let s = if s > 0.0 { s } else { 1.0 };
                Ok(GroupParams {
                    raw_scale: self.store(s)?,
                    zero: 0,
                })
            }
            Grid::Int { bits, sym: false } => {
                let maxq = f64::from((1u32 << bits) - 1);
                let lo = xs.iter().fold(0f32, |m, &x| m.min(x));
                let hi = xs.iter().fold(0f32, |m, &x| m.max(x));
                let (mut lo, mut hi) = (f64::from(lo) * p, f64::from(hi) * p);
                if lo == 0.0 && hi == 0.0 {
                    lo = -1.0;
                    hi = 1.0;
                }
                let s = (hi - lo) / maxq;
                let z = (-lo / s).round_ties_even().clamp(0.0, maxq);
                Ok(GroupParams {
                    raw_scale: self.store(s)?,
                    zero: z as u8,
                })
            }
            Grid::Normal { .. } | Grid::Lloyd { .. } => {
                let s = f64::from(absmax) * p;
                let s = if s > 0.0 { s } else { 1.0 };
                Ok(GroupParams {
                    raw_scale: self.store(s)?,
                    zero: 0,
                })
            }
            Grid::Float(f) => {
                let s = f64::from(absmax) * p / f64::from(f.max_finite());
                let s = if s > 0.0 { s } else { 1.0 };
                Ok(GroupParams {
                    raw_scale: self.store(s)?,
                    zero: 0,
                })
            }
            Grid::Mx(f) => {
                let e = if absmax > 0.0 {
                    floor_log2(absmax) - f.emax()
                } else {
                    -127
                };
                Ok(GroupParams {
                    raw_scale: u32::from(e8m0::from_exponent(e)),
                    zero: 0,
                })
            }
            Grid::Nvfp4 => {
                let g = self.tensor_scale.unwrap_or(1.0);
                let bs = (g * absmax / 6.0).clamp(-448.0, 448.0);
                let mut code = FloatFormat::E4M3.encode(bs);
                if FloatFormat::E4M3.decode(code) == 0.0 {
                    code = FloatFormat::E4M3.encode(0.125);
                }
                Ok(GroupParams {
                    raw_scale: u32::from(code),
                    zero: 0,
                })
            }
        }
    }

    /// Plain (min/max or absmax) parameters for one group's values.
    pub fn params_minmax(&self, xs: &[f32]) -> Result<GroupParams> {
        self.params_shrunk(xs, 1.0)
    }

    /// Parameters for one group: min/max, or with [`QuantSpec::mse_clip`] the
    /// clipping factor `p = 1 - i/100`, `i = 0..80`, whose reconstruction has
    /// the least squared error (ties keep the larger range, so the result is
    /// never worse than plain min/max).
    pub fn params(&self, xs: &[f32]) -> Result<GroupParams> {
        let base = self.params_shrunk(xs, 1.0)?;
        if !self.spec.mse_clip {
            return Ok(base);
        }
        let mut best = (self.group_error(xs, &base), base);
        for i in 1..80 {
            let p = 1.0 - f64::from(i) / 100.0;
            let cand = self.params_shrunk(xs, p)?;
            let err = self.group_error(xs, &cand);
            if err < best.0 {
                best = (err, cand);
            }
        }
        Ok(best.1)
    }

    /// Squared error of quantizing `xs` with `p`.
    pub fn group_error(&self, xs: &[f32], p: &GroupParams) -> f64 {
        let s = self.scale_value(p.raw_scale);
        xs.iter()
            .map(|&x| {
                let d = f64::from(x)
                    - f64::from(self.decode_with(self.encode_with(x, s, p.zero), s, p.zero));
                d * d
            })
            .sum()
    }

    /// The code of `x` under group parameters `p`.
    pub fn encode(&self, x: f32, p: &GroupParams) -> u8 {
        self.encode_with(x, self.scale_value(p.raw_scale), p.zero)
    }

    /// The value of `code` under group parameters `p`.
    pub fn decode(&self, code: u8, p: &GroupParams) -> f32 {
        self.decode_with(code, self.scale_value(p.raw_scale), p.zero)
    }

    /// `quantize(x)` then `dequantize`: the value `x` is rounded to.
    pub fn round(&self, x: f32, p: &GroupParams) -> f32 {
        let s = self.scale_value(p.raw_scale);
        self.decode_with(self.encode_with(x, s, p.zero), s, p.zero)
    }

    /// Encodes with an already decoded scale `s` (hot loops).
    #[inline]
    pub fn encode_with(&self, x: f32, s: f32, zero: u8) -> u8 {
        match &self.levels {
            Levels::Int { lo, hi } => {
                let q = round_ties_even(f64::from(x) / f64::from(s)) + f64::from(zero);
                (q.clamp(f64::from(*lo), f64::from(*hi)) as i32 - lo) as u8
            }
            Levels::Float(f) => f.encode(x / s),
            Levels::Table { values, mids } => {
                let u = x / s;
                let k = mids.partition_point(|&m| m < u);
                if !u.is_finite() {
                    return k as u8;
                }
                // `mids` are rounded to f32: settle the neighbours by exact
                // distance so the nearest level wins (ties to the lower one).
                let d = |i: usize| (f64::from(u) - f64::from(values[i])).abs();
                if k > 0 && d(k - 1) <= d(k) {
                    (k - 1) as u8
                } else if k + 1 < values.len() && d(k + 1) < d(k) {
                    (k + 1) as u8
                } else {
                    k as u8
                }
            }
        }
    }

    /// Decodes with an already decoded scale `s` (hot loops).
    #[inline]
    pub fn decode_with(&self, code: u8, s: f32, zero: u8) -> f32 {
        match &self.levels {
            Levels::Int { lo, .. } => (i32::from(code) + lo - i32::from(zero)) as f32 * s,
            Levels::Float(f) => f.decode(code) * s,
            Levels::Table { values, .. } => {
                values.get(usize::from(code)).copied().unwrap_or(0.0) * s
            }
        }
    }

    /// The level range `(lo, hi)` of an integer grid (code = level - lo),
    /// `None` for float and table grids.
    pub(crate) fn int_range(&self) -> Option<(i32, i32)> {
        match self.levels {
            Levels::Int { lo, hi } => Some((lo, hi)),
            _ => None,
        }
    }

    /// The largest valid code plus one (codes are `0..code_count`), for validation.
    pub fn code_count(&self) -> u32 {
        1u32 << self.spec.grid.code_bits()
    }

    /// Whether every code is valid ([`Prepared::valid_code`]); integer grids
    /// only need the largest code below the code count.
    pub fn all_codes_valid(&self, codes: &[u8]) -> bool {
        match &self.levels {
            Levels::Int { .. } => {
                u32::from(codes.iter().fold(0u8, |m, &c| m.max(c))) < self.code_count()
            }
            _ => codes.iter().all(|&c| self.valid_code(c)),
        }
    }

    /// Whether `code` is a valid code of this grid (not NaN/Inf for floats).
    pub fn valid_code(&self, code: u8) -> bool {
        if u32::from(code) >= self.code_count() {
            return false;
        }
        match &self.levels {
            Levels::Int { .. } => true,
            Levels::Float(f) => !f.is_nan_code(code) && !f.is_inf_code(code),
            Levels::Table { values, .. } => usize::from(code) < values.len(),
        }
    }
}

/// `v.round_ties_even()`, bit for bit, without a libm call on CPUs whose
/// baseline has no rounding instruction: for `|v| < 2^52`, `|v| + 2^52` lies
/// where the f64 spacing is 1, so the addition rounds `|v|` to an integer,
/// ties to even (the default rounding mode), and the subtraction is exact;
/// the sign is restored so `-0.3` gives `-0.0`. Larger, infinite and NaN
/// inputs are returned unchanged (they are already integers or NaN).
#[inline]
pub(crate) fn round_ties_even(v: f64) -> f64 {
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    let a = v.abs();
    if a < TWO_52 {
        ((a + TWO_52) - TWO_52).copysign(v)
    } else {
        v
    }
}

/// `s` rounded to f32 with round-to-odd (truncate, then set the last bit if
/// inexact), so that rounding the result once more to a narrower format
/// (f16, bf16) equals rounding `s` directly: plain `s as f32` rounds twice
/// and can land one f16 step away from the correctly rounded scale.
fn f32_round_to_odd(s: f64) -> f32 {
    let v = s as f32;
    if !v.is_finite() || f64::from(v) == s {
        return v;
    }
    let truncated = if f64::from(v).abs() > s.abs() {
        f32::from_bits(v.to_bits() - 1)
    } else {
        v
    };
    f32::from_bits(truncated.to_bits() | 1)
}

/// `floor(log2(x))` for a positive finite f32, exactly (no floating log).
fn floor_log2(x: f32) -> i32 {
    let b = x.to_bits() & 0x7FFF_FFFF;
    let e = (b >> 23) as i32;
    if e > 0 {
        e - 127
    } else {
        // Subnormal: value = frac * 2^-149.
        let frac = b & 0x007F_FFFF;
        31 - frac.leading_zeros() as i32 - 149
    }
}

/// Normalized values for fitting a Lloyd codebook: each group divided by its
/// stored absmax scale.
fn normalized_for_lloyd(spec: &QuantSpec, values: &[f32], cols: usize) -> Result<Vec<f32>> {
    let probe = Prepared {
        spec: QuantSpec {
            grid: Grid::Normal { bits: 4 },
            ..*spec
        },
        levels: table(NF4.to_vec()),
        tensor_scale: None,
    };
    let g = match spec.granularity {
        crate::spec::Granularity::Group(g) => g,
        crate::spec::Granularity::Channel => cols,
        _ => values.len(),
    };
    let mut out = Vec::with_capacity(values.len());
    for chunk in values.chunks(g.max(1)) {
        let p = probe.params_shrunk(chunk, 1.0)?;
        let s = probe.scale_value(p.raw_scale);
        out.extend(chunk.iter().map(|x| x / s));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_log2_is_exact() {
        for e in -149..128 {
            // Built from the bits: `powi` is not exact for subnormal results.
            let x = if e >= -126 {
                f32::from_bits(((e + 127) as u32) << 23)
            } else {
                f32::from_bits(1u32 << (e + 149))
            };
            assert_eq!(floor_log2(x), e, "2^{e}");
            if e > -149 {
                let below = f32::from_bits(x.to_bits() - 1);
                assert_eq!(floor_log2(below), e - 1, "just below 2^{e}");
            }
        }
    }
}

#[cfg(test)]
mod round_tests {
    use super::round_ties_even;
    use proptest::prelude::*;

    #[test]
    fn edge_cases_match_the_standard_library() {
        for v in [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            2.5,
            -2.5,
            0.49999999999999994,
            4503599627370495.5,
            4503599627370496.0,
            9007199254740993.0,
            1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            7.5,
            -7.5,
            8.5,
        ] {
            assert_eq!(
                round_ties_even(v).to_bits(),
                v.round_ties_even().to_bits(),
                "{v}"
            );
        }
        assert!(round_ties_even(f64::NAN).is_nan());
    }

    proptest! {
        #[test]
        fn matches_the_standard_library(bits in any::<u64>(), small in -64.0f64..64.0) {
            let v = f64::from_bits(bits);
            prop_assume!(!v.is_nan());
            prop_assert_eq!(round_ties_even(v).to_bits(), v.round_ties_even().to_bits());
            prop_assert_eq!(round_ties_even(small).to_bits(), small.round_ties_even().to_bits());
            let half = (small * 2.0).round() / 2.0;
            prop_assert_eq!(round_ties_even(half).to_bits(), half.round_ties_even().to_bits());
        }
    }
}
