//! Scalar (1-D) quantizer design with Lloyd's algorithm.
//!
//! * [`gaussian_lloyd_max`]: the Lloyd-Max (minimum mean-squared error)
//!   quantizer of the standard normal distribution, computed with exact
//!   Gaussian integrals.
//! * [`gaussian_uniform_mse`] and [`best_uniform_gaussian`]: the exact MSE of
//!   a symmetric uniform quantizer on N(0, 1), and its best step size.
//! * [`fit_lloyd`] / [`fit_lloyd_trace`]: 1-D k-means (Lloyd's algorithm) on
//!   data, returning a [`Codebook1d`].
//!
//! Reference values for the Gaussian quantizers are in J. Max, "Quantizing
//! for minimum distortion", IRE Trans. Inf. Theory 6(1), 1960 (tables I and
//! II). Nothing here panics on user input.

use super::normal::{norm_cdf, norm_pdf, norm_ppf};

/// Largest number of levels accepted by [`gaussian_lloyd_max`].
const MAX_GAUSSIAN_LEVELS: usize = 256;

/// `x * pdf(x)`, defined as 0 at `x = +-inf`.
fn x_pdf(x: f64) -> f64 {
    if x.is_infinite() {
        0.0
    } else {
        x * norm_pdf(x)
    }
}

/// N(0, 1) probability of the interval `[a, b]` (`a <= b`, endpoints may be
/// infinite), computed on the side where both CDF values are tail values,
/// so narrow cells far out in either tail keep relative accuracy.
fn gaussian_mass(a: f64, b: f64) -> f64 {
    if a >= 0.0 {
        norm_cdf(-a) - norm_cdf(-b)
    } else if b <= 0.0 {
        norm_cdf(b) - norm_cdf(a)
    } else {
        1.0 - norm_cdf(a) - norm_cdf(-b)
    }
}

/// Zeroth, first and second moments of N(0, 1) restricted to `[a, b]`:
/// `(P, E[X; cell], E[X^2; cell])`, using
/// `int x pdf = pdf(a) - pdf(b)` and
/// `int x^2 pdf = P + a pdf(a) - b pdf(b)`.
fn gaussian_cell_moments(a: f64, b: f64) -> (f64, f64, f64) {
    let mass = gaussian_mass(a, b);
    let first = norm_pdf(a) - norm_pdf(b);
    let second = mass + x_pdf(a) - x_pdf(b);
    (mass, first, second)
}

/// `int_a^b (x - y)^2 pdf(x) dx` for N(0, 1), clamped at 0 against rounding.
fn gaussian_cell_sse(a: f64, b: f64, y: f64) -> f64 {
    let (mass, first, second) = gaussian_cell_moments(a, b);
    (second - 2.0 * y * first + y * y * mass).max(0.0)
}

/// Exact MSE on N(0, 1) of the nearest-neighbour quantizer with the given
/// sorted levels (cells bounded by midpoints, outer cells unbounded).
fn gaussian_quantizer_mse(levels: &[f64]) -> f64 {
    let mut total = 0.0;
    let mut lower = f64::NEG_INFINITY;
    for (i, &y) in levels.iter().enumerate() {
        let upper = match levels.get(i + 1) {
            Some(&next) => 0.5 * (y + next),
            None => f64::INFINITY,
        };
        total += gaussian_cell_sse(lower, upper, y);
        lower = upper;
    }
    total
}

/// Cell boundaries for sorted levels: `levels.len() + 1` values, midpoints
/// between consecutive levels with `-inf` and `+inf` at the ends.
fn midpoint_boundaries(y: &[f64]) -> Vec<f64> {
    let mut b = Vec::with_capacity(y.len() + 1);
    b.push(f64::NEG_INFINITY);
    b.extend(y.windows(2).map(|w| 0.5 * (w[0] + w[1])));
    b.push(f64::INFINITY);
    b
}

/// The Lloyd map on N(0, 1): for sorted levels `y`, returns the centroid of
/// each midpoint cell `[a_i, b_i]` together with the partial derivatives of
/// that centroid with respect to `a_i` and `b_i`:
/// `dc/da = pdf(a) (c - a) / P` and `dc/db = pdf(b) (b - c) / P`
/// (0 at infinite boundaries). A cell of zero mass keeps its level.
fn gaussian_lloyd_map(y: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let b = midpoint_boundaries(y);
    let n = y.len();
    let (mut c, mut dc_da, mut dc_db) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        let (lo, hi) = (b[i], b[i + 1]);
        let (mass, first, _) = gaussian_cell_moments(lo, hi);
        if mass.is_nan() || mass <= 0.0 {
            c[i] = y[i];
            continue;
        }
        let ci = first / mass;
        c[i] = ci;
        if lo.is_finite() {
            dc_da[i] = norm_pdf(lo) * (ci - lo) / mass;
        }
        if hi.is_finite() {
            dc_db[i] = norm_pdf(hi) * (hi - ci) / mass;
        }
    }
    (c, dc_da, dc_db)
}

/// Solves the tridiagonal system `sub[i] x[i-1] + diag[i] x[i] +
/// sup[i] x[i+1] = rhs[i]` (Thomas algorithm). `None` on a zero or
/// non-finite pivot.
fn solve_tridiagonal(sub: &[f64], diag: &[f64], sup: &[f64], rhs: &[f64]) -> Option<Vec<f64>> {
    let n = diag.len();
    let mut cp = vec![0.0; n];
    let mut dp = vec![0.0; n];
    for i in 0..n {
        let (s, prev_c, prev_d) = if i == 0 {
            (0.0, 0.0, 0.0)
        } else {
            (sub[i], cp[i - 1], dp[i - 1])
        };
        let m = diag[i] - s * prev_c;
        if m == 0.0 || !m.is_finite() {
            return None;
        }
        cp[i] = sup[i] / m;
        dp[i] = (rhs[i] - s * prev_d) / m;
    }
    let mut x = dp;
    for i in (0..n.saturating_sub(1)).rev() {
        x[i] -= cp[i] * x[i + 1];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// Largest `|c[i] - y[i]|`.
fn max_abs_diff(c: &[f64], y: &[f64]) -> f64 {
    c.iter()
        .zip(y)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

/// The Lloyd-Max quantizer of the standard normal distribution: the
/// `levels` reconstruction points minimizing the mean squared error
/// `E[(X - Q(X))^2]` for `X ~ N(0, 1)`. Returns `(mse, levels)` with the
/// levels sorted ascending and exactly symmetric about 0.
///
/// The optimum is the unique fixed point of Lloyd's map (the Gaussian
/// density is log-concave): cell boundaries at midpoints between levels and
/// each level at the centroid of its cell,
/// `(pdf(a) - pdf(b)) / (cdf(b) - cdf(a))`, with exact Gaussian integrals.
/// Starting from the high-resolution (Panter-Dite) approximation
/// `sqrt(3) * ppf((i + 0.5) / levels)`, the fixed point is found with
/// Newton steps on `centroid(y) - y` (the Jacobian is tridiagonal), each
/// accepted only if it reduces the largest residual `|centroid - level|`;
/// otherwise a plain Lloyd step is taken. Plain Lloyd iteration converges
/// too, but very slowly for many levels. Iteration stops when the residual
/// is at rounding level (about 1e-14). The MSE is the sum over cells of the
/// exact second moments about each level.
///
/// Values: 2 levels give `1 - 2/pi = 0.36338`, 4 levels 0.11748 (positive
/// levels 0.4528, 1.5104), 8 levels 0.034548 (0.2451, 0.7560, 1.3439,
/// 2.1519), 16 levels 0.0095010. Max (1960) tabulates 0.009497 for 16
/// levels; an independent 30-digit computation gives 0.00950100800819, so
/// that table entry is slightly low.
///
/// `levels` must be in `1..=256`; otherwise `(f64::NAN, Vec::new())` is
/// returned. One level gives `(1.0, vec![0.0])`.
pub fn gaussian_lloyd_max(levels: usize) -> (f64, Vec<f64>) {
    if levels == 0 || levels > MAX_GAUSSIAN_LEVELS {
        return (f64::NAN, Vec::new());
    }
    let n = levels as f64;
    let mut y: Vec<f64> = (0..levels)
        .map(|i| 3.0_f64.sqrt() * norm_ppf((i as f64 + 0.5) / n))
        .collect();
    symmetrize(&mut y);

    const MAX_ITERS: usize = 10_000;
    const TOLERANCE: f64 = 1e-14;
    let (mut c, mut dc_da, mut dc_db) = gaussian_lloyd_map(&y);
    let mut residual = max_abs_diff(&c, &y);
    for _ in 0..MAX_ITERS {
        if residual <= TOLERANCE {
            break;
        }
        // Newton: J d = -(c - y) with J = dc/dy - I, where
        // dc_i/dy_{i-1} = dc_da_i / 2, dc_i/dy_{i+1} = dc_db_i / 2 and
        // dc_i/dy_i = (dc_da_i + dc_db_i) / 2.
        let sub: Vec<f64> = dc_da.iter().map(|v| 0.5 * v).collect();
        let sup: Vec<f64> = dc_db.iter().map(|v| 0.5 * v).collect();
        let diag: Vec<f64> = dc_da
            .iter()
            .zip(&dc_db)
            .map(|(a, b)| 0.5 * (a + b) - 1.0)
            .collect();
        let rhs: Vec<f64> = y.iter().zip(&c).map(|(yi, ci)| yi - ci).collect();
        let newton = solve_tridiagonal(&sub, &diag, &sup, &rhs).and_then(|d| {
            let mut candidate: Vec<f64> = y.iter().zip(&d).map(|(a, b)| a + b).collect();
            symmetrize(&mut candidate);
            let ordered = candidate.windows(2).all(|w| w[0] < w[1]);
            if !ordered {
                return None;
            }
            let map = gaussian_lloyd_map(&candidate);
            let r = max_abs_diff(&map.0, &candidate);
            (r < residual).then_some((candidate, map, r))
        });
        match newton {
            Some((candidate, map, r)) => {
                y = candidate;
                (c, dc_da, dc_db) = map;
                residual = r;
            }
            None => {
                // Plain Lloyd step.
                let mut next = c;
                symmetrize(&mut next);
                let map = gaussian_lloyd_map(&next);
                let r = max_abs_diff(&map.0, &next);
                y = next;
                (c, dc_da, dc_db) = map;
                if (r.is_nan() || r >= residual) && residual <= 1e3 * TOLERANCE {
                    // Stalled at the rounding floor.
                    break;
                }
                residual = r;
            }
        }
    }
    (gaussian_quantizer_mse(&y), y)
}

/// Makes sorted levels exactly antisymmetric (`y[n-1-i] == -y[i]`, middle
/// level 0 for odd counts) by averaging mirrored pairs.
fn symmetrize(y: &mut [f64]) {
    let n = y.len();
    for i in 0..n / 2 {
        let v = 0.5 * (y[n - 1 - i] - y[i]);
        y[i] = -v;
        y[n - 1 - i] = v;
    }
    if n % 2 == 1 {
        y[n / 2] = 0.0;
    }
}

/// Exact mean squared error on N(0, 1) of the symmetric uniform quantizer
/// with `levels` reconstruction points `(i - (levels - 1) / 2) * step`,
/// `i = 0..levels` (mid-rise for even `levels`, mid-tread, i.e. with a level
/// at 0, for odd `levels`). Inputs beyond the outer levels saturate to
/// them; decision thresholds are the midpoints between levels.
///
/// Returns NaN if `levels == 0` or `step` is negative, infinite or NaN.
/// `step == 0` is allowed (every level at 0, MSE 1).
pub fn gaussian_uniform_mse(levels: usize, step: f64) -> f64 {
    if levels == 0 || !(step >= 0.0 && step.is_finite()) {
        return f64::NAN;
    }
    let center = (levels as f64 - 1.0) / 2.0;
    let y: Vec<f64> = (0..levels).map(|i| (i as f64 - center) * step).collect();
    gaussian_quantizer_mse(&y)
}

/// The step size minimizing [`gaussian_uniform_mse`] for `levels` levels,
/// found by golden-section search (the MSE is unimodal in the step).
/// Returns `(mse, step)`.
///
/// Known values (Max 1960, table II): 4 levels step 0.9957, MSE 0.1188;
/// 8 levels 0.5860, 0.03744; 16 levels 0.3352, 0.01154.
///
/// `levels == 0` gives `(NaN, NaN)`; `levels == 1` gives `(1.0, 0.0)`
/// (every step is equally good).
pub fn best_uniform_gaussian(levels: usize) -> (f64, f64) {
    if levels == 0 {
        return (f64::NAN, f64::NAN);
    }
    if levels == 1 {
        return (1.0, 0.0);
    }
    let f = |s: f64| gaussian_uniform_mse(levels, s);
    // The outermost level at 6 standard deviations is past any optimum.
    let mut lo = 0.0_f64;
    let mut hi = 12.0 / (levels as f64 - 1.0);
    let inv_phi = (5.0_f64.sqrt() - 1.0) / 2.0;
    let mut x1 = hi - inv_phi * (hi - lo);
    let mut x2 = lo + inv_phi * (hi - lo);
    let (mut f1, mut f2) = (f(x1), f(x2));
    for _ in 0..200 {
        if hi - lo <= 1e-13 * hi {
            break;
        }
        if f1 <= f2 {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - inv_phi * (hi - lo);
            f1 = f(x1);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + inv_phi * (hi - lo);
            f2 = f(x2);
        }
    }
    let step = 0.5 * (lo + hi);
    (f(step), step)
}

/// A scalar codebook: reconstruction levels for 1-D quantization.
///
/// Functions of this module return codebooks with `levels` sorted ascending;
/// the methods below assume that order.
#[derive(Debug, Clone, PartialEq)]
pub struct Codebook1d {
    /// Reconstruction levels, sorted ascending (duplicates allowed).
    pub levels: Vec<f32>,
}

impl Codebook1d {
    /// Index of the level nearest to `x`; when two distinct levels are
    /// equally near, and among equal (duplicate) levels, the lowest index
    /// wins.
    ///
    /// Binary search over the midpoints between consecutive levels
    /// (computed in `f64`, where they are exact), `O(log levels)`.
    /// Preconditions: `levels` sorted ascending and free of NaN; otherwise
    /// the result is some valid index but unspecified. Returns 0 for an
    /// empty codebook (which is then not a valid index). `-inf` maps to 0,
    /// `+inf` and NaN to the last level.
    pub fn nearest(&self, x: f32) -> usize {
        let levels = &self.levels;
        if levels.len() <= 1 {
            return 0;
        }
        let x = f64::from(x);
        // Smallest i in 0..len-1 with x <= mid(i), or len - 1 if none.
        let (mut lo, mut hi) = (0usize, levels.len() - 1);
        while lo < hi {
            let m = lo + (hi - lo) / 2;
            let mid = 0.5 * (f64::from(levels[m]) + f64::from(levels[m + 1]));
            if x <= mid {
                hi = m;
            } else {
                lo = m + 1;
            }
        }
        // Among duplicates of the chosen level, prefer the lowest index.
        let value = levels[lo];
        levels[..lo].partition_point(|&v| v < value)
    }

    /// Mean squared error `mean((x - levels[nearest(x)])^2)` over `samples`,
    /// accumulated in `f64`.
    ///
    /// Returns NaN if `samples` or the codebook is empty; non-finite samples
    /// make the result non-finite.
    pub fn mse(&self, samples: &[f32]) -> f64 {
        if samples.is_empty() || self.levels.is_empty() {
            return f64::NAN;
        }
        let total: f64 = samples
            .iter()
            .map(|&x| {
                let d = f64::from(x) - f64::from(self.levels[self.nearest(x)]);
                d * d
            })
            .sum();
        total / samples.len() as f64
    }
}

/// Prefix sums with Neumaier compensation: `out[k]` is the sum of the first
/// `k` values, rounded once (instead of carrying accumulated error).
fn compensated_prefix_sums(values: impl Iterator<Item = f64>, len: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(len + 1);
    out.push(0.0);
    let (mut sum, mut comp) = (0.0_f64, 0.0_f64);
    for v in values {
        let t = sum + v;
        if sum.abs() >= v.abs() {
            comp += (sum - t) + v;
        } else {
            comp += (v - t) + sum;
        }
        sum = t;
        out.push(sum + comp);
    }
    out
}

/// Sorted, shifted data with prefix sums, ready for Lloyd iterations.
struct SortedData {
    /// Sorted samples minus `shift` (the median), in `f64`.
    u: Vec<f64>,
    /// `s1[k]`: sum of `u[..k]`.
    s1: Vec<f64>,
    /// `s2[k]`: sum of squares of `u[..k]`.
    s2: Vec<f64>,
}

impl SortedData {
    /// One Lloyd iteration for the sorted levels `y` (shifted coordinates):
    /// returns the MSE of `y` (cells bounded by midpoints, a sample on a
    /// midpoint going to the lower cell) and the updated levels (cell
    /// means; a level with an empty cell is kept). `O(levels log n)`.
    fn step(&self, y: &[f64]) -> (f64, Vec<f64>) {
        let n = self.u.len();
        let mut start = 0usize;
        let mut sse = 0.0;
        let mut next = Vec::with_capacity(y.len());
        for (i, &yi) in y.iter().enumerate() {
            let end = match y.get(i + 1) {
                Some(&yn) => {
                    let mid = 0.5 * (yi + yn);
                    start + self.u[start..].partition_point(|&v| v <= mid)
                }
                None => n,
            };
            if end == start {
                next.push(yi);
                continue;
            }
            let count = (end - start) as f64;
            let s = self.s1[end] - self.s1[start];
            let q = self.s2[end] - self.s2[start];
            sse += (q - 2.0 * yi * s + count * yi * yi).max(0.0);
            // The clamp keeps a constant cell's mean exact.
            next.push((s / count).clamp(self.u[start], self.u[end - 1]));
            start = end;
        }
        (sse / n as f64, next)
    }
}

/// Fits a codebook of `levels` levels to `samples` with Lloyd's algorithm
/// (1-D k-means); see [`fit_lloyd_trace`] for the details. Returns `None`
/// if `samples` is empty, contains a non-finite value, or `levels == 0`.
pub fn fit_lloyd(
    samples: &[f32],
    levels: usize,
    max_iters: usize,
    rel_tol: f64,
) -> Option<Codebook1d> {
    fit_lloyd_trace(samples, levels, max_iters, rel_tol).map(|(codebook, _)| codebook)
}

/// Like [`fit_lloyd`], also returning the MSE after each iteration.
///
/// Algorithm: a sorted `f64` copy of the data is shifted by its median and
/// prefix sums of values and squares are built (compensated summation).
/// Levels start at the sample quantiles `(i + 0.5) / levels` (deterministic).
/// Each iteration places cell boundaries at the midpoints between levels
/// (a sample exactly on a midpoint belongs to the lower cell) and moves each
/// level to the mean of its cell, in `O(levels log n)` via binary search
/// and the prefix sums; a level whose cell is empty is kept. Iteration stops
/// after `max_iters` iterations, when the levels no longer change, when the
/// MSE reaches 0, or when the relative improvement
/// `(mse_prev - mse) / mse_prev` falls below `rel_tol` (the iteration that
/// produced the small improvement is kept). Lloyd iterations never increase
/// the MSE; should rounding make the computed MSE increase, that iteration
/// is discarded and the fit stops. The result is a local optimum.
///
/// If the data have at most `levels` distinct values, the distinct values
/// themselves are returned, each repeated about `levels / distinct` times
/// (so the codebook still has `levels` sorted entries), with zero MSE and
/// no iterations.
///
/// Returns `None` if `samples` is empty, contains a non-finite value, or
/// `levels == 0`. Otherwise the codebook has exactly `levels` levels,
/// sorted ascending (rounded from `f64` to `f32`), and the trace holds the
/// MSE of the initial levels followed by the MSE after each kept iteration,
/// all computed in `f64` before the final rounding to `f32` (so the last
/// entry can differ from `codebook.mse(samples)` by that rounding). The
/// trace is non-increasing.
///
/// `levels` sets the size of the output allocation; memory use is
/// `O(samples.len() + levels)`.
pub fn fit_lloyd_trace(
    samples: &[f32],
    levels: usize,
    max_iters: usize,
    rel_tol: f64,
) -> Option<(Codebook1d, Vec<f64>)> {
    if levels == 0 || samples.is_empty() || samples.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let mut sorted: Vec<f64> = samples.iter().map(|&x| f64::from(x)).collect();
    sorted.sort_unstable_by(f64::total_cmp);
    let n = sorted.len();

    let distinct_count = 1 + sorted.windows(2).filter(|w| w[0] != w[1]).count();
    if distinct_count <= levels {
        let mut distinct = sorted;
        distinct.dedup_by(|a, b| a == b);
        let d = distinct.len() as u128;
        let lv: Vec<f32> = (0..levels)
            .map(|i| {
                // i * d / levels < d; u128 avoids overflow.
                let j = (i as u128 * d / levels as u128) as usize;
                distinct[j] as f32
            })
            .collect();
        return Some((Codebook1d { levels: lv }, vec![0.0]));
    }

    let shift = sorted[n / 2];
    let u: Vec<f64> = sorted.iter().map(|&v| v - shift).collect();
    drop(sorted);
    let s1 = compensated_prefix_sums(u.iter().copied(), n);
    let s2 = compensated_prefix_sums(u.iter().map(|&v| v * v), n);
    let data = SortedData { u, s1, s2 };

    let mut y: Vec<f64> = (0..levels)
        .map(|i| {
            let k = ((2 * i as u128 + 1) * n as u128 / (2 * levels as u128)) as usize;
            data.u[k.min(n - 1)]
        })
        .collect();

    let (mut mse, mut next) = data.step(&y);
    let mut trace = vec![mse];
    for _ in 0..max_iters {
        if mse <= 0.0 || next == y {
            break;
        }
        let (next_mse, next_next) = data.step(&next);
        if next_mse.is_nan() || next_mse > mse {
            break;
        }
        let improvement = mse - next_mse;
        let previous = mse;
        y = next;
        next = next_next;
        mse = next_mse;
        trace.push(mse);
        if improvement < rel_tol * previous {
            break;
        }
    }

    let mut out: Vec<f32> = y.iter().map(|&v| (v + shift) as f32).collect();
    out.sort_by(f32::total_cmp);
    Some((Codebook1d { levels: out }, trace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    /// SplitMix64 (Steele, Lea, Flood 2014) for reproducible test data.
    struct SplitMix64(u64);

    impl SplitMix64 {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in (0, 1].
        fn next_open01(&mut self) -> f64 {
            ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
        }

        /// `count` standard normal samples by the Box-Muller transform.
        fn normals(&mut self, count: usize) -> Vec<f32> {
            let mut out = Vec::with_capacity(count + 1);
            while out.len() < count {
                let r = (-2.0 * self.next_open01().ln()).sqrt();
                let theta = 2.0 * PI * self.next_open01();
                out.push((r * theta.cos()) as f32);
                out.push((r * theta.sin()) as f32);
            }
            out.truncate(count);
            out
        }
    }

    fn close(got: f64, want: f64, tol: f64) -> bool {
        (got - want).abs() <= tol
    }

    #[test]
    fn lloyd_max_two_levels_is_exact() {
        let (mse, y) = gaussian_lloyd_max(2);
        let c = (2.0 / PI).sqrt();
        assert!(close(mse, 1.0 - 2.0 / PI, 1e-14), "{mse}");
        assert!(close(y[0], -c, 1e-14) && close(y[1], c, 1e-14), "{y:?}");
    }

    #[test]
    fn lloyd_max_matches_max_1960() {
        let (mse1, y1) = gaussian_lloyd_max(1);
        assert_eq!((mse1, y1), (1.0, vec![0.0]));

        let (mse4, y4) = gaussian_lloyd_max(4);
        assert!(close(mse4, 0.1175, 5e-5), "{mse4}");
        assert!(
            close(y4[2], 0.4528, 5e-5) && close(y4[3], 1.5104, 5e-5),
            "{y4:?}"
        );

        let (mse8, y8) = gaussian_lloyd_max(8);
        assert!(close(mse8, 0.03455, 5e-6), "{mse8}");
        for (got, want) in y8[4..].iter().zip([0.2451, 0.7560, 1.3439, 2.1519]) {
            assert!(close(*got, want, 5e-5), "{y8:?}");
        }

        // Max's table gives 0.009497; the exact optimum is 0.0095010080...
        // (30-digit mpmath Lloyd iteration), 0.04% higher.
        let (mse16, y16) = gaussian_lloyd_max(16);
        assert!(close(mse16, 0.009_501_008_008_191_886, 1e-14), "{mse16}");
        assert!(((mse16 - 0.009497) / 0.009497).abs() < 5e-4);
        let reference16 = [
            0.128395029851147,
            0.3880482994902902,
            0.6567591185324634,
            0.9423404564869614,
            1.2562311973471771,
            1.6180463860218826,
            2.0690172265313866,
            2.732589570995163,
        ];
        for (got, want) in y16[8..].iter().zip(reference16) {
            assert!(close(*got, want, 1e-13), "{got} vs {want}");
        }
        // 30-digit reference for 8 levels as well.
        assert!(close(mse8, 0.034_547_760_788_503_73, 1e-14), "{mse8}");
    }

    #[test]
    fn lloyd_max_satisfies_optimality_conditions() {
        for levels in [3, 5, 16, 33, 64, 255, 256] {
            let (mse, y) = gaussian_lloyd_max(levels);
            assert_eq!(y.len(), levels);
            assert!(y.windows(2).all(|w| w[0] < w[1]));
            for i in 0..levels {
                assert_eq!(y[i], -y[levels - 1 - i]);
                let a = if i == 0 {
                    f64::NEG_INFINITY
                } else {
                    0.5 * (y[i - 1] + y[i])
                };
                let b = if i + 1 == levels {
                    f64::INFINITY
                } else {
                    0.5 * (y[i] + y[i + 1])
                };
                let (mass, first, _) = gaussian_cell_moments(a, b);
                assert!(close(first / mass, y[i], 1e-12), "L = {levels}, i = {i}");
            }
            // Any perturbation of a level increases the MSE.
            let mut z = y.clone();
            z[levels / 3] += 1e-4;
            assert!(gaussian_quantizer_mse(&z) > mse);
        }
    }

    #[test]
    fn lloyd_max_mse_decreases_and_approaches_panter_dite() {
        let mut prev = f64::INFINITY;
        for levels in 1..=40 {
            let (mse, _) = gaussian_lloyd_max(levels);
            assert!(mse < prev, "L = {levels}");
            prev = mse;
        }
        // High-resolution limit: L^2 * mse -> sqrt(3) * pi / 2.
        let (mse, y) = gaussian_lloyd_max(256);
        assert_eq!(y.len(), 256);
        let scaled = mse * 256.0 * 256.0;
        assert!(close(scaled, 3.0_f64.sqrt() * PI / 2.0, 0.03), "{scaled}");
    }

    #[test]
    fn lloyd_max_rejects_bad_counts() {
        for levels in [0, 257, usize::MAX] {
            let (mse, y) = gaussian_lloyd_max(levels);
            assert!(mse.is_nan() && y.is_empty());
        }
    }

    #[test]
    fn uniform_mse_closed_forms() {
        // Two levels at +-step/2: mse = 1 - step * sqrt(2/pi) + step^2 / 4.
        for step in [0.1, 1.0, 1.5957691216057308, 3.0] {
            let want = 1.0 - step * (2.0 / PI).sqrt() + step * step / 4.0;
            assert!(close(gaussian_uniform_mse(2, step), want, 1e-14));
        }
        assert_eq!(gaussian_uniform_mse(1, 0.7), 1.0);
        assert!(close(gaussian_uniform_mse(16, 0.0), 1.0, 1e-15));
        assert!(gaussian_uniform_mse(0, 1.0).is_nan());
        assert!(gaussian_uniform_mse(4, -1.0).is_nan());
        assert!(gaussian_uniform_mse(4, f64::NAN).is_nan());
        assert!(gaussian_uniform_mse(4, f64::INFINITY).is_nan());
    }

    #[test]
    fn uniform_mse_matches_numerical_integration() {
        // Brute-force midpoint rule on [-12, 12].
        for (levels, step) in [(3usize, 1.1), (8, 0.586), (16, 0.3)] {
            let center = (levels as f64 - 1.0) / 2.0;
            let n = 400_000;
            let h = 24.0 / n as f64;
            let mut sum = 0.0;
            for k in 0..n {
                let x = -12.0 + (k as f64 + 0.5) * h;
                let idx = ((x / step + center).round()).clamp(0.0, levels as f64 - 1.0);
                let q = (idx - center) * step;
                sum += (x - q) * (x - q) * norm_pdf(x);
            }
            let brute = sum * h;
            let exact = gaussian_uniform_mse(levels, step);
            assert!(
                close(exact, brute, 1e-7),
                "L = {levels}: {exact} vs {brute}"
            );
        }
    }

    #[test]
    fn best_uniform_matches_max_1960() {
        let (mse2, step2) = best_uniform_gaussian(2);
        assert!(close(step2, 2.0 * (2.0 / PI).sqrt(), 1e-6), "{step2}");
        assert!(close(mse2, 1.0 - 2.0 / PI, 1e-12), "{mse2}");

        let (mse4, step4) = best_uniform_gaussian(4);
        assert!(close(mse4, 0.1188, 5e-5), "{mse4}");
        assert!(close(step4, 0.9957, 3e-4), "{step4}");

        let (mse8, step8) = best_uniform_gaussian(8);
        assert!(close(mse8, 0.03744, 5e-6), "{mse8}");
        assert!(close(step8, 0.586, 5e-4), "{step8}");

        let (mse16, step16) = best_uniform_gaussian(16);
        assert!(close(mse16, 0.01154, 5e-6), "{mse16}");
        assert!(close(step16, 0.3352, 3e-4), "{step16}");

        assert_eq!(best_uniform_gaussian(1), (1.0, 0.0));
        let (m0, s0) = best_uniform_gaussian(0);
        assert!(m0.is_nan() && s0.is_nan());
    }

    #[test]
    fn best_uniform_is_a_minimum_and_worse_than_lloyd_max() {
        for levels in [3usize, 4, 7, 16, 64] {
            let (mse, step) = best_uniform_gaussian(levels);
            assert!(gaussian_uniform_mse(levels, step * 1.001) >= mse);
            assert!(gaussian_uniform_mse(levels, step * 0.999) >= mse);
            let (lm, _) = gaussian_lloyd_max(levels);
            assert!(lm <= mse, "L = {levels}");
        }
    }

    #[test]
    fn fit_lloyd_on_gaussian_samples_approaches_lloyd_max() {
        let samples = SplitMix64(0x5EED_0001).normals(1_000_000);
        let (codebook, trace) = fit_lloyd_trace(&samples, 16, 10_000, 1e-12).unwrap();
        let (ideal_mse, ideal) = gaussian_lloyd_max(16);
        let mse = codebook.mse(&samples);
        eprintln!(
            "k-means 16 levels on 1M N(0,1): mse {mse:.6} ({} iterations), Lloyd-Max {ideal_mse:.6}",
            trace.len() - 1
        );
        assert!(((mse - ideal_mse) / ideal_mse).abs() < 0.01, "{mse}");
        assert_eq!(codebook.levels.len(), 16);
        for (got, want) in codebook.levels.iter().zip(&ideal) {
            assert!(close(f64::from(*got), *want, 0.02), "{got} vs {want}");
        }
        // The f64 trace and the f32 codebook agree up to level rounding.
        let last = *trace.last().unwrap();
        assert!(((last - mse) / mse).abs() < 1e-5, "{last} vs {mse}");
    }

    #[test]
    fn lloyd_trace_is_non_increasing_and_matches_direct_mse() {
        let samples = SplitMix64(42).normals(50_000);
        let (_, trace) = fit_lloyd_trace(&samples, 8, 40, 0.0).unwrap();
        assert!(trace.len() > 10);
        assert!(trace.windows(2).all(|w| w[1] <= w[0]), "{trace:?}");
        // Independently: rerun with t iterations and measure the MSE of the
        // returned codebook directly (O(n) brute force).
        let mut prev = f64::INFINITY;
        for (t, &traced) in trace.iter().enumerate().take(25) {
            let cb = fit_lloyd(&samples, 8, t, 0.0).unwrap();
            let direct = cb.mse(&samples);
            assert!(((direct - traced) / traced).abs() < 1e-6, "t = {t}");
            // f32 rounding of the levels is the only slack.
            assert!(direct <= prev * (1.0 + 1e-6), "t = {t}: {direct} > {prev}");
            prev = direct;
        }
    }

    #[test]
    fn lloyd_reaches_a_fixed_point() {
        let samples = SplitMix64(7).normals(2_000);
        let (a, trace) = fit_lloyd_trace(&samples, 5, 100_000, f64::NEG_INFINITY).unwrap();
        assert!(trace.len() < 100_000);
        // At a fixed point every level is the mean of its cell.
        let mut sums = [0.0f64; 5];
        let mut counts = [0usize; 5];
        for &x in &samples {
            let i = a.nearest(x);
            sums[i] += f64::from(x);
            counts[i] += 1;
        }
        for i in 0..5 {
            assert!(counts[i] > 0);
            let mean = sums[i] / counts[i] as f64;
            assert!(close(mean, f64::from(a.levels[i]), 1e-6), "level {i}");
        }
    }

    #[test]
    fn fit_lloyd_basic_cases() {
        // One level: the mean.
        let data = [1.0f32, 2.0, 3.0, 10.0];
        let cb = fit_lloyd(&data, 1, 10, 0.0).unwrap();
        assert_eq!(cb.levels, vec![4.0]);
        // Two well separated clusters.
        let data = [-5.0f32, -5.5, -4.5, 5.0, 5.5, 4.5, 5.0];
        let cb = fit_lloyd(&data, 2, 100, 0.0).unwrap();
        assert_eq!(cb.levels, vec![-5.0, 5.0]);
        // Unsorted input with duplicates, far from zero.
        let data = [1000.5f32, 999.5, 1000.0, 1000.5, 999.5, 1003.0];
        let cb = fit_lloyd(&data, 2, 100, 0.0).unwrap();
        assert_eq!(cb.levels, vec![1000.0, 1003.0]);
    }

    #[test]
    fn fit_lloyd_degenerate_inputs() {
        assert_eq!(fit_lloyd(&[], 4, 10, 1e-6), None);
        assert_eq!(fit_lloyd(&[1.0, f32::NAN], 4, 10, 1e-6), None);
        assert_eq!(fit_lloyd(&[1.0, f32::INFINITY], 4, 10, 1e-6), None);
        assert_eq!(fit_lloyd(&[1.0, f32::NEG_INFINITY], 4, 10, 1e-6), None);
        assert_eq!(fit_lloyd(&[1.0, 2.0], 0, 10, 1e-6), None);
        assert!(fit_lloyd_trace(&[], 4, 10, 1e-6).is_none());

        // All equal.
        let data = [0.75f32; 100];
        let (cb, trace) = fit_lloyd_trace(&data, 4, 10, 1e-6).unwrap();
        assert_eq!(cb.levels, vec![0.75; 4]);
        assert_eq!(cb.mse(&data), 0.0);
        assert_eq!(trace, vec![0.0]);

        // Three distinct values, sixteen levels.
        let data: Vec<f32> = (0..300).map(|i| [-1.5f32, 0.25, 7.0][i % 3]).collect();
        let cb = fit_lloyd(&data, 16, 100, 1e-9).unwrap();
        assert_eq!(cb.levels.len(), 16);
        assert!(cb.levels.windows(2).all(|w| w[0] <= w[1]));
        for v in [-1.5f32, 0.25, 7.0] {
            assert!(cb.levels.contains(&v));
        }
        assert_eq!(cb.mse(&data), 0.0);

        // Exactly as many distinct values as levels.
        let data = [3.0f32, 1.0, 2.0, 3.0, 1.0];
        let cb = fit_lloyd(&data, 3, 0, 0.0).unwrap();
        assert_eq!(cb.levels, vec![1.0, 2.0, 3.0]);

        // Zero iterations: the quantile initialization.
        let data: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let cb = fit_lloyd(&data, 4, 0, 0.0).unwrap();
        assert_eq!(cb.levels, vec![12.0, 37.0, 62.0, 87.0]);

        // NaN tolerance never stops early and does not panic.
        let cb = fit_lloyd(&data, 4, 50, f64::NAN).unwrap();
        assert_eq!(cb.levels.len(), 4);
    }

    /// Brute-force nearest level: ties to the lowest index.
    fn nearest_brute(levels: &[f32], x: f32) -> usize {
        let mut best = 0;
        let mut best_d = f64::INFINITY;
        for (i, &l) in levels.iter().enumerate() {
            let d = (f64::from(x) - f64::from(l)).abs();
            if d < best_d {
                best = i;
                best_d = d;
            }
        }
        best
    }

    #[test]
    fn nearest_agrees_with_brute_force() {
        let mut rng = SplitMix64(99);
        for trial in 0..200 {
            let len = 1 + trial % 20;
            let mut levels: Vec<f32> = rng.normals(len);
            if trial % 3 == 0 && len > 2 {
                // Inject duplicates.
                levels[1] = levels[0];
                levels[len - 1] = levels[len - 2];
            }
            levels.sort_by(f32::total_cmp);
            let cb = Codebook1d {
                levels: levels.clone(),
            };
            let mut probes: Vec<f32> = rng.normals(50).iter().map(|x| 1.5 * x).collect();
            probes.extend(levels.iter().copied());
            for w in levels.windows(2) {
                // Exact midpoints (when representable) and their neighbours.
                let mid = ((f64::from(w[0]) + f64::from(w[1])) / 2.0) as f32;
                probes.extend([mid, mid.next_down(), mid.next_up()]);
            }
            probes.extend([-100.0, 100.0]);
            for &x in &probes {
                assert_eq!(
                    cb.nearest(x),
                    nearest_brute(&levels, x),
                    "x = {x}, {levels:?}"
                );
            }
        }
    }

    #[test]
    fn nearest_edge_cases() {
        let empty = Codebook1d { levels: vec![] };
        assert_eq!(empty.nearest(1.0), 0);
        assert!(empty.mse(&[1.0]).is_nan());
        let cb = Codebook1d {
            levels: vec![-1.0, 0.0, 0.0, 1.0],
        };
        assert!(cb.mse(&[]).is_nan());
        assert_eq!(cb.nearest(-0.5), 0); // tie between -1 and 0: lower index
        assert_eq!(cb.nearest(0.5), 1); // tie between 0 and 1; lowest duplicate
        assert_eq!(cb.nearest(0.2), 1);
        assert_eq!(cb.nearest(f32::NEG_INFINITY), 0);
        assert_eq!(cb.nearest(f32::INFINITY), 3);
        assert_eq!(cb.nearest(f32::NAN), 3);
        // (The f64 brute force cannot resolve these: both distances round
        // to the same value.)
        assert_eq!(cb.nearest(f32::MAX), 3);
        assert_eq!(cb.nearest(f32::MIN), 0);
        assert_eq!(cb.mse(&[-1.0, 0.0, 1.0, 0.5]), 0.0625);
        assert!(cb.mse(&[f32::NAN]).is_nan());
    }
}
