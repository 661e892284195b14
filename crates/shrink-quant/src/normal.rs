//! Standard normal distribution helpers and the NormalFloat (NF) codes.
//!
//! * [`norm_cdf`], [`norm_pdf`] and [`norm_ppf`] evaluate the cumulative
//!   distribution function, the density and the quantile function (inverse
//!   CDF) of N(0, 1) in `f64`, with care taken to keep relative accuracy far
//!   out in the tails.
//! * [`NF4`] is the 4-bit NormalFloat code of QLoRA / bitsandbytes, and
//!   [`normal_float_code`] rebuilds it (bit for bit) and its analogues for
//!   other bit widths.
//!
//! Nothing in this module panics; out-of-domain inputs map to IEEE special
//! values (or an empty vector) as documented on each function.

use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};

/// 1/sqrt(2*pi), rounded to the nearest `f64`.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// The low-order part of 1/sqrt(2): `FRAC_1_SQRT_2 + INV_SQRT2_LO` equals
/// 1/sqrt(2) to about 32 significant digits.
const INV_SQRT2_LO: f64 = -4.833_646_656_726_457e-17;

/// Beyond this |x| the density is below the smallest subnormal `f64`.
const PDF_ZERO_BEYOND: f64 = 39.0;

/// Returns `(hi, lo)` with `hi + lo` equal to `x / sqrt(2)` to roughly twice
/// `f64` precision. `x` must be finite.
fn div_sqrt2_split(x: f64) -> (f64, f64) {
    let hi = x * FRAC_1_SQRT_2;
    // Exact rounding error of the product, plus the contribution of the low
    // part of the constant.
    let lo = x.mul_add(FRAC_1_SQRT_2, -hi) + x * INV_SQRT2_LO;
    (hi, lo)
}

/// `erfc(x / sqrt(2))` for finite `x`, correcting for the rounding of the
/// scaled argument with a first-order term (this matters far in the lower
/// tail, where erfc is very sensitive to its argument).
fn erfc_scaled(x: f64) -> f64 {
    let (z, dz) = div_sqrt2_split(x);
    let base = libm::erfc(z);
    if dz == 0.0 {
        return base;
    }
    base - FRAC_2_SQRT_PI * libm::exp(-z * z) * dz
}

/// `erf(x / sqrt(2))` for finite `x`, with the same argument correction as
/// [`erfc_scaled`].
fn erf_scaled(x: f64) -> f64 {
    let (z, dz) = div_sqrt2_split(x);
    let base = libm::erf(z);
    if dz == 0.0 {
        return base;
    }
    base + FRAC_2_SQRT_PI * libm::exp(-z * z) * dz
}

/// Cumulative distribution function of the standard normal distribution,
/// `P(X <= x)` for `X ~ N(0, 1)`.
///
/// Computed as `erfc(-x / sqrt(2)) / 2` through `libm::erfc`, so the lower
/// tail keeps full relative accuracy down to the subnormal range (for
/// example `norm_cdf(-37.5)` is about `4.6e-308`), and the upper tail is
/// accurate to an absolute `f64` rounding error (values there are close to
/// 1). `-inf` maps to 0, `+inf` to 1 and NaN to NaN.
pub fn norm_cdf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x.is_infinite() {
        return if x > 0.0 { 1.0 } else { 0.0 };
    }
    0.5 * erfc_scaled(-x)
}

/// Probability density function of the standard normal distribution,
/// `exp(-x^2 / 2) / sqrt(2 pi)`.
///
/// The square `x^2` is formed without rounding error (by splitting `x` into
/// a short high part and a remainder), so the result keeps relative accuracy
/// for large `|x|` until it underflows (it is exactly 0 for `|x| >= 39`).
/// Infinite inputs give 0 and NaN gives NaN.
pub fn norm_pdf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let a = x.abs();
    if a >= PDF_ZERO_BEYOND {
        return 0.0;
    }
    // `hi` keeps at most 16 fractional bits and |hi| < 39, so `hi * hi` is
    // exact; a^2 = hi^2 + lo * (a + hi) with `lo` exact.
    let hi = (a * 65536.0).trunc() / 65536.0;
    let lo = a - hi;
    INV_SQRT_2PI * libm::exp(-0.5 * hi * hi) * libm::exp(-0.5 * lo * (a + hi))
}

/// Evaluates a polynomial with coefficients in increasing degree order.
fn horner(coeffs: &[f64], x: f64) -> f64 {
    coeffs.iter().rev().fold(0.0, |acc, &c| acc * x + c)
}

// Coefficients of Wichura's algorithm AS 241 (PPND16), Applied Statistics
// 37(3), 1988, pp. 477-484; increasing degree order.
#[allow(clippy::excessive_precision)]
const AS241_A: [f64; 8] = [
    3.387_132_872_796_366_608,
    1.331_416_678_917_843_774_5e2,
    1.971_590_950_306_551_442_7e3,
    1.373_169_376_550_946_112_5e4,
    4.592_195_393_154_987_145_7e4,
    6.726_577_092_700_870_085_3e4,
    3.343_057_558_358_812_810_5e4,
    2.509_080_928_730_122_672_7e3,
];
#[allow(clippy::excessive_precision)]
const AS241_B: [f64; 8] = [
    1.0,
    4.231_333_070_160_091_125_2e1,
    6.871_870_074_920_579_083_0e2,
    5.394_196_021_424_751_107_7e3,
    2.121_379_430_158_659_586_7e4,
    3.930_789_580_009_271_061_0e4,
    2.872_908_573_572_194_267_4e4,
    5.226_495_278_852_854_561_0e3,
];
#[allow(clippy::excessive_precision)]
const AS241_C: [f64; 8] = [
    1.423_437_110_749_683_577_34,
    4.630_337_846_156_545_295_90,
    5.769_497_221_460_691_405_50,
    3.647_848_324_763_204_605_04,
    1.270_458_252_452_368_382_58,
    2.417_807_251_774_506_117_70e-1,
    2.272_384_498_926_918_458_33e-2,
    7.745_450_142_783_414_076_40e-4,
];
#[allow(clippy::excessive_precision)]
const AS241_D: [f64; 8] = [
    1.0,
    2.053_191_626_637_758_821_87,
    1.676_384_830_183_803_849_40,
    6.897_673_349_851_000_045_50e-1,
    1.481_039_764_274_800_745_90e-1,
    1.519_866_656_361_645_719_66e-2,
    5.475_938_084_995_344_946_00e-4,
    1.050_750_071_644_416_843_24e-9,
];
#[allow(clippy::excessive_precision)]
const AS241_E: [f64; 8] = [
    6.657_904_643_501_103_777_20,
    5.463_784_911_164_114_369_90,
    1.784_826_539_917_291_335_80,
    2.965_605_718_285_048_912_30e-1,
    2.653_218_952_657_612_309_30e-2,
    1.242_660_947_388_078_438_60e-3,
    2.711_555_568_743_487_578_15e-5,
    2.010_334_399_292_288_132_65e-7,
];
#[allow(clippy::excessive_precision)]
const AS241_F: [f64; 8] = [
    1.0,
    5.998_322_065_558_879_376_90e-1,
    1.369_298_809_227_358_053_10e-1,
    1.487_536_129_085_061_485_25e-2,
    7.868_691_311_456_132_591_00e-4,
    1.846_318_317_510_054_681_80e-5,
    1.421_511_758_316_445_888_70e-7,
    2.044_263_103_389_939_785_64e-15,
];

/// AS 241 in the central region: the quantile for probability `0.5 + q`,
/// `|q| <= 0.425`.
fn as241_central(q: f64) -> f64 {
    let r = 0.180_625 - q * q;
    q * horner(&AS241_A, r) / horner(&AS241_B, r)
}

/// AS 241 in the tails: the (non-negative) magnitude of the quantile for a
/// tail probability `0 < t < 0.075`.
fn as241_tail_magnitude(t: f64) -> f64 {
    let r = (-t.ln()).sqrt();
    if r <= 5.0 {
        let s = r - 1.6;
        horner(&AS241_C, s) / horner(&AS241_D, s)
    } else {
        let s = r - 5.0;
        horner(&AS241_E, s) / horner(&AS241_F, s)
    }
}

/// One Halley step for `Phi(x) = target`, given the residual
/// `Phi(x) - target`. Returns `x` unchanged if the step is not finite.
fn halley_step(x: f64, residual: f64) -> f64 {
    let t = residual / norm_pdf(x);
    let next = x - t / (1.0 + 0.5 * x * t);
    if next.is_finite() { next } else { x }
}

/// Quantile function (inverse CDF) of the standard normal distribution:
/// the `x` with `norm_cdf(x) == p`.
///
/// Starts from Wichura's rational approximation AS 241 (Applied Statistics
/// 37, 1988; relative error about 1e-16) and applies one Halley step on a
/// residual that is itself computed without cancellation: in the central
/// region `|p - 1/2| <= 0.425` the residual is formed from `erf` and the
/// exact value `p - 1/2`; in the tails it is formed from the CDF of the
/// tail probability `min(p, 1 - p)` (where `1 - p` is exact for
/// `p >= 1/2`). The result is within a few ulp of the true quantile for all
/// `p` in (0, 1), including subnormal `p`. The function is antisymmetric:
/// `norm_ppf(1 - p) == -norm_ppf(p)` whenever `1 - p` is exact.
///
/// Edge cases: `p <= 0` gives `-inf`, `p >= 1` gives `+inf`, NaN gives NaN.
pub fn norm_ppf(p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    // Exact for p in [0.25, 1] (Sterbenz), which covers the central region.
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let x = as241_central(q);
        if x == 0.0 {
            return x;
        }
        let residual = 0.5 * erf_scaled(x) - q;
        return halley_step(x, residual);
    }
    // Tail probability; `1 - p` is exact because p > 1/2 here.
    let (tail, upper) = if q < 0.0 { (p, false) } else { (1.0 - p, true) };
    let mut x = -as241_tail_magnitude(tail);
    // Below ~1e-300 the CDF and density approach the subnormal range and the
    // residual loses relative precision; AS 241 alone is already accurate.
    if tail >= 1e-300 {
        let residual = norm_cdf(x) - tail;
        x = halley_step(x, residual);
    }
    if upper { -x } else { x }
}

/// The 4-bit NormalFloat (NF4) code of QLoRA (Dettmers et al., 2023,
/// appendix E) as used by bitsandbytes: 16 values in [-1, 1], sorted
/// ascending, with exactly one zero.
///
/// These are the published `f32` values of bitsandbytes'
/// `create_normal_map()`; [`normal_float_code`]`(4)` reproduces them bit for
/// bit.
#[allow(clippy::excessive_precision)] // the published decimal digits, kept verbatim
pub const NF4: [f32; 16] = [
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
];

/// `torch.linspace(start, end, steps)` in `f32` as evaluated by PyTorch's
/// CPU kernel for short outputs: `step = (end - start) / (steps - 1)` in
/// `f32`; the first `steps / 2` entries are `start + step * i` and the rest
/// are `end - step * (steps - 1 - i)`, so both end points are exact.
fn torch_linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    match steps {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (end - start) / (steps - 1) as f32;
            let halfway = steps / 2;
            (0..steps)
                .map(|i| {
                    if i < halfway {
                        start + step * i as f32
                    } else {
                        end - step * (steps - 1 - i) as f32
                    }
                })
                .collect()
        }
    }
}

/// The NormalFloat code with `2^bits` values for `bits` in `2..=8`, built the
/// way bitsandbytes builds NF4 (`create_normal_map`), generalized to other
/// widths. Returns an empty vector for any other `bits`.
///
/// With `k = 2^bits`, the probability `offset` is
/// `((1 - 1/(2k)) + (1 - 1/(2(k - 1)))) / 2`, except for `bits == 4`, where
/// the literal `0.9677083` used by bitsandbytes is taken (the formula gives
/// 0.96770833..., which need not round to the same `f32`). Then:
///
/// * positive values: `ppf` of the first `k/2` points of an `f32` linspace
///   with `k/2 + 1` points from `offset` down to 0.5;
/// * negative values: `-ppf` of the first `k/2 - 1` points of an `f32`
///   linspace with `k/2` points from `offset` down to 0.5;
/// * one zero.
///
/// Following bitsandbytes precisely, the linspace is evaluated in `f32` with
/// PyTorch's symmetric formula (see the private `torch_linspace_f32`), the
/// quantile in `f64` ([`norm_ppf`]), each quantile is rounded to `f32`, and
/// the sorted values are divided by the largest one in `f32`. The result is
/// strictly increasing, starts at -1, ends at 1 and contains exactly one 0.
///
/// For `bits >= 5` the linspace has 17 or more points, and PyTorch may
/// evaluate such lengths with vectorized code whose rounding can differ in
/// the last bit of a few probabilities; this function always uses the
/// scalar formula.
pub fn normal_float_code(bits: u32) -> Vec<f32> {
    if !(2..=8).contains(&bits) {
        return Vec::new();
    }
    let k = 1usize << bits;
    let half = k / 2;
    let offset_f64 = if bits == 4 {
        0.9677083
    } else {
        let kf = k as f64;
        ((1.0 - 1.0 / (2.0 * kf)) + (1.0 - 1.0 / (2.0 * (kf - 1.0)))) / 2.0
    };
    // PyTorch converts the Python float to the tensor dtype.
    let offset = offset_f64 as f32;

    let mut values: Vec<f32> = Vec::with_capacity(k);
    let positive = torch_linspace_f32(offset, 0.5, half + 1);
    values.extend(
        positive[..half]
            .iter()
            .map(|&p| norm_ppf(f64::from(p)) as f32),
    );
    let negative = torch_linspace_f32(offset, 0.5, half);
    values.extend(
        negative[..half - 1]
            .iter()
            .map(|&p| (-norm_ppf(f64::from(p))) as f32),
    );
    values.push(0.0);
    values.sort_by(f32::total_cmp);
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in &mut values {
        *v /= max;
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance between two finite `f64` values in units in the last place.
    fn ulp_distance(a: f64, b: f64) -> u64 {
        fn key(x: f64) -> i64 {
            let bits = x.to_bits() as i64;
            if bits < 0 { i64::MIN - bits } else { bits }
        }
        key(a).abs_diff(key(b))
    }

    /// Reference quantiles computed with mpmath at 60 significant digits
    /// (root of `log(ncdf(x)) = log(p)` for the exact `f64` value of `p`),
    /// rounded to the nearest `f64`.
    const PPF_REFERENCE: &[(f64, f64)] = &[
        (5e-324, -38.467405617144344),
        (2.2250738585072014e-308, -37.5193793471445),
        (1e-300, -37.0470962993612),
        (1e-100, -21.273453560965326),
        (1e-20, -9.262340089798407),
        (1e-10, -6.361340902404057),
        (1e-05, -4.264890793922825),
        (0.001, -3.0902323061678136),
        (0.01, -2.326347874040841),
        (0.025, -1.9599639845400543),
        (0.05, -1.6448536269514726),
        (0.075, -1.439531470938456),
        (0.0750001, -1.4395307645017297),
        (0.1, -1.2815515655446004),
        (0.2, -0.8416212335729142),
        (0.3, -0.5244005127080408),
        (0.4, -0.2533471031357997),
        (0.45, -0.12566134685507402),
        (0.49, -0.025068908258711057),
        (0.4999, -0.00025066283008800747),
        (0.49999999, -2.5066282733116222e-08),
        (0.5000001, 2.506628273311648e-07),
        (0.6, 0.2533471031357997),
        (0.8, 0.8416212335729144),
        (0.9, 1.2815515655446006),
        (0.975, 1.9599639845400538),
        (0.999, 3.090232306167813),
        (0.9999999999, 6.361340889697422),
        (0.9999999999999999, 8.209536151601387),
    ];

    #[test]
    fn ppf_matches_high_precision_reference() {
        for &(p, want) in PPF_REFERENCE {
            let got = norm_ppf(p);
            let d = ulp_distance(got, want);
            assert!(d <= 4, "ppf({p:e}) = {got:e}, want {want:e} ({d} ulp)");
        }
    }

    #[test]
    fn as241_alone_is_close_to_reference() {
        // Guards against a mistyped coefficient: the unrefined
        // approximation must already be accurate to ~1e-15.
        for &(p, want) in PPF_REFERENCE {
            let q = p - 0.5;
            let x0 = if q.abs() <= 0.425 {
                as241_central(q)
            } else if q < 0.0 {
                -as241_tail_magnitude(p)
            } else {
                as241_tail_magnitude(1.0 - p)
            };
            let rel = ((x0 - want) / want).abs();
            assert!(rel < 2e-15, "AS241({p:e}) = {x0:e}, want {want:e}");
        }
    }

    #[test]
    fn ppf_special_values() {
        assert_eq!(norm_ppf(0.5), 0.0);
        assert_eq!(norm_ppf(0.0), f64::NEG_INFINITY);
        assert_eq!(norm_ppf(-0.1), f64::NEG_INFINITY);
        assert_eq!(norm_ppf(f64::NEG_INFINITY), f64::NEG_INFINITY);
        assert_eq!(norm_ppf(1.0), f64::INFINITY);
        assert_eq!(norm_ppf(1.5), f64::INFINITY);
        assert_eq!(norm_ppf(f64::INFINITY), f64::INFINITY);
        assert!(norm_ppf(f64::NAN).is_nan());
    }

    #[test]
    fn ppf_is_antisymmetric_and_monotone() {
        let mut prev = f64::NEG_INFINITY;
        for i in 1..4000 {
            let p = i as f64 / 4000.0;
            let x = norm_ppf(p);
            assert!(x > prev, "not increasing at p = {p}");
            prev = x;
            if p >= 0.5 {
                // 1 - p is exact here.
                assert_eq!(norm_ppf(1.0 - p), -x, "p = {p}");
            }
        }
    }

    #[test]
    fn ppf_inverts_cdf() {
        // Relative round-trip error in probability; cdf has relative
        // accuracy in the lower tail, so compare tail probabilities.
        let mut p = 1e-300_f64;
        while p < 0.5 {
            let x = norm_ppf(p);
            let back = norm_cdf(x);
            let rel = ((back - p) / p).abs();
            // Condition number of cdf at x is |x| pdf(x) / cdf(x) ~ x^2.
            let allowed = 8.0 * f64::EPSILON * (1.0 + x * x);
            assert!(rel <= allowed, "p = {p:e}: cdf(ppf(p)) = {back:e}");
            p *= 1.37;
        }
    }

    /// Reference CDF values from mpmath `ncdf` (60 digits).
    const CDF_REFERENCE: &[(f64, f64)] = &[
        (-37.5, 4.605353009581955e-308),
        (-20.0, 2.7536241186062337e-89),
        (-10.0, 7.619853024160525e-24),
        (-5.0, 2.866515718791939e-07),
        (-2.0, 0.02275013194817921),
        (-1.0, 0.15865525393145705),
        (-0.5, 0.3085375387259869),
        (-1e-10, 0.49999999996010575),
        (0.0, 0.5),
        (1e-10, 0.5000000000398942),
        (0.5, 0.6914624612740131),
        (1.0, 0.8413447460685429),
        (2.0, 0.9772498680518208),
        (5.0, 0.9999997133484281),
        (8.0, 0.9999999999999993),
        (9.0, 1.0),
    ];

    #[test]
    fn cdf_matches_reference() {
        for &(x, want) in CDF_REFERENCE {
            let got = norm_cdf(x);
            let d = ulp_distance(got, want);
            assert!(d <= 4, "cdf({x}) = {got:e}, want {want:e} ({d} ulp)");
        }
        // Deep lower tail in the subnormal range: still the right magnitude.
        let got = norm_cdf(-38.0);
        assert!((got / 2.88542835e-316 - 1.0).abs() < 1e-6, "{got:e}");
        assert_eq!(norm_cdf(-40.0), 0.0);
        assert_eq!(norm_cdf(f64::NEG_INFINITY), 0.0);
        assert_eq!(norm_cdf(f64::INFINITY), 1.0);
        assert_eq!(norm_cdf(40.0), 1.0);
        assert!(norm_cdf(f64::NAN).is_nan());
    }

    #[test]
    fn cdf_symmetry() {
        for i in 0..=200 {
            let x = i as f64 * 0.05;
            let s = norm_cdf(x) + norm_cdf(-x);
            assert!((s - 1.0).abs() <= 2.0 * f64::EPSILON, "x = {x}");
        }
    }

    /// Reference densities from mpmath `npdf` (60 digits).
    const PDF_REFERENCE: &[(f64, f64)] = &[
        (0.0, 0.3989422804014327),
        (0.5, 0.35206532676429947),
        (1.0, 0.24197072451914334),
        (3.0, 0.0044318484119380075),
        (10.0, 7.694598626706419e-23),
        (20.0, 5.520948362159764e-88),
        (37.0, 2.1200065515246056e-298),
        (-25.5, 2.5171937051934048e-142),
    ];

    #[test]
    fn pdf_matches_reference() {
        for &(x, want) in PDF_REFERENCE {
            let got = norm_pdf(x);
            let d = ulp_distance(got, want);
            assert!(d <= 4, "pdf({x}) = {got:e}, want {want:e} ({d} ulp)");
        }
        assert_eq!(norm_pdf(39.0), 0.0);
        assert_eq!(norm_pdf(f64::INFINITY), 0.0);
        assert_eq!(norm_pdf(f64::NEG_INFINITY), 0.0);
        assert!(norm_pdf(f64::NAN).is_nan());
        assert_eq!(norm_pdf(1.7), norm_pdf(-1.7));
    }

    #[test]
    fn pdf_integrates_to_cdf_differences() {
        // Simpson's rule on [a, b] against cdf(b) - cdf(a).
        let (a, b) = (-1.3_f64, 2.1_f64);
        let n = 2000;
        let h = (b - a) / n as f64;
        let mut s = norm_pdf(a) + norm_pdf(b);
        for i in 1..n {
            let w = if i % 2 == 1 { 4.0 } else { 2.0 };
            s += w * norm_pdf(a + i as f64 * h);
        }
        let integral = s * h / 3.0;
        assert!((integral - (norm_cdf(b) - norm_cdf(a))).abs() < 1e-13);
    }

    #[test]
    fn nf4_constant_is_sorted_with_one_zero() {
        assert!(NF4.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(NF4.iter().filter(|&&v| v == 0.0).count(), 1);
        assert_eq!(NF4[0], -1.0);
        assert_eq!(NF4[15], 1.0);
    }

    #[test]
    fn nf4_constant_holds_published_decimals() {
        // The decimal strings published by bitsandbytes, parsed as f32.
        let published = [
            "-1.0",
            "-0.6961928009986877",
            "-0.5250730514526367",
            "-0.39491748809814453",
            "-0.28444138169288635",
            "-0.18477343022823334",
            "-0.09105003625154495",
            "0.0",
            "0.07958029955625534",
            "0.16093020141124725",
            "0.24611230194568634",
            "0.33791524171829224",
            "0.44070982933044434",
            "0.5626170039176941",
            "0.7229568362236023",
            "1.0",
        ];
        for (s, &v) in published.iter().zip(NF4.iter()) {
            let parsed: f32 = s.parse().unwrap();
            assert_eq!(parsed.to_bits(), v.to_bits(), "{s}");
            // The published decimals are f32 values printed as f64: exact.
            let parsed64: f64 = s.parse().unwrap();
            assert_eq!(parsed64, f64::from(v), "{s}");
        }
    }

    #[test]
    fn normal_float_code_4_is_nf4_bit_for_bit() {
        let code = normal_float_code(4);
        assert_eq!(code.len(), 16);
        for (i, (&got, &want)) in code.iter().zip(NF4.iter()).enumerate() {
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "entry {i}: got {got:e}, want {want:e}"
            );
        }
    }

    #[test]
    fn normal_float_codes_are_well_formed() {
        for bits in 2..=8u32 {
            let code = normal_float_code(bits);
            assert_eq!(code.len(), 1 << bits, "bits = {bits}");
            assert!(code.windows(2).all(|w| w[0] < w[1]), "bits = {bits}");
            assert_eq!(code.iter().filter(|&&v| v == 0.0).count(), 1);
            assert_eq!(code[0], -1.0);
            assert_eq!(*code.last().unwrap(), 1.0);
            // One more positive than negative value.
            let pos = code.iter().filter(|&&v| v > 0.0).count();
            let neg = code.iter().filter(|&&v| v < 0.0).count();
            assert_eq!(pos, neg + 1, "bits = {bits}");
        }
    }

    #[test]
    fn nf3_has_expected_shape() {
        let nf3 = normal_float_code(3);
        assert_eq!(nf3.len(), 8);
        assert!(nf3.contains(&0.0) && nf3.contains(&-1.0) && nf3.contains(&1.0));
        assert_eq!(nf3.iter().filter(|&&v| v < 0.0).count(), 3);
        assert_eq!(nf3.iter().filter(|&&v| v > 0.0).count(), 4);
    }

    #[test]
    fn normal_float_code_rejects_other_widths() {
        for bits in [0, 1, 9, 32, u32::MAX] {
            assert!(normal_float_code(bits).is_empty(), "bits = {bits}");
        }
    }

    #[test]
    fn torch_linspace_endpoints_and_halves() {
        let v = torch_linspace_f32(0.9677083, 0.5, 9);
        assert_eq!(v.len(), 9);
        assert_eq!(v[0], 0.9677083_f64 as f32);
        assert_eq!(v[8], 0.5);
        assert!(v.windows(2).all(|w| w[0] > w[1]));
        assert!(torch_linspace_f32(1.0, 2.0, 0).is_empty());
        assert_eq!(torch_linspace_f32(1.0, 2.0, 1), vec![1.0]);
        assert_eq!(torch_linspace_f32(1.0, 2.0, 2), vec![1.0, 2.0]);
    }

    #[test]
    fn nf4_needs_the_literal_offset() {
        // The general formula gives 0.96770833..., which rounds to a
        // different f32 than bitsandbytes' literal 0.9677083.
        let k = 16.0_f64;
        let formula = ((1.0 - 1.0 / (2.0 * k)) + (1.0 - 1.0 / (2.0 * (k - 1.0)))) / 2.0;
        assert!((formula - 0.967_708_333_333_333_3).abs() < 1e-15);
        assert_ne!((formula as f32).to_bits(), (0.9677083_f64 as f32).to_bits());
    }

    #[test]
    fn torch_linspace_differs_from_naive_form() {
        // The symmetric evaluation matters: the naive `start + i * step`
        // rounds some of the NF4 probabilities differently.
        let start = 0.9677083_f64 as f32;
        let sym = torch_linspace_f32(start, 0.5, 8);
        let step = (0.5 - start) / 7.0;
        let naive: Vec<f32> = (0..8).map(|i| start + step * i as f32).collect();
        assert_ne!(sym, naive);
    }
}
