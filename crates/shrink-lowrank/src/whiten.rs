//! From calibration statistics to the scalings of [`crate::scaled`].
//!
//! `R = H / T` is the input correlation (`H = X^T X` from
//! [`shrink_core::LayerStats`], `T` tokens). Each method's scaling:
//!
//! | method | scaling | source |
//! |---|---|---|
//! | SVD-LLM | `L = cholesky(R)`; if that fails, `R + (1e-6 - lambda_min(R)) I` | Wang et al., ICLR 2025 |
//! | QERA-exact | `S = R^{1/2}` (eigenvalues clipped to `1e-12 lambda_max`), or any Cholesky factor | Zhang et al., ICLR 2025 |
//! | QERA-approx | `diag(rms_j)` (zero RMS replaced by machine epsilon) | same |
//! | LQER | `s = max(mean|x_j|, 1e-4)`, `s / sqrt(min(s) max(s))` | Zhang et al., ICML 2024 |
//! | ASVD | `mean|x_j|^alpha + 1e-6` (alpha 0.5) | Yuan et al., 2023 |
//! | FWSVD | `d = sqrt` of the Fisher row (output side) or column (input side) sums, clipped at `1e-12 max(d)` | Hsu et al., ICLR 2022 |

use crate::dense::{cholesky_lower, sym_eigen};
use crate::scaled::Scaling;
use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use shrink_core::{Error, Result};

/// SVD-LLM's whitening shift constant.
pub const SVD_LLM_EPS: f64 = 1e-6;

/// QERA's eigenvalue floor, relative to the largest eigenvalue.
pub const SQRT_EIG_FLOOR: f64 = 1e-12;

/// SVD-LLM's whitening: the lower Cholesky factor `L` of `r` and the shift
/// that was added to its diagonal (0 when `r` factored as it is).
///
/// When the factorization fails (indefinite or singular `r`: float error,
/// dead channels), `r + (eps - lambda_min) I` is factored, as SVD-LLM does;
/// if rounding still defeats it, the extra `eps` doubles (at most 60 times)
/// until it succeeds.
///
/// # Errors
///
/// [`Error::Shape`] or [`Error::NonFinite`] for bad input, [`Error::Stats`]
/// if no shift makes `r` factorable.
pub fn svd_llm_whitening(r: ArrayView2<'_, f64>) -> Result<(Array2<f64>, f64)> {
    if let Some(l) = cholesky_lower(r)? {
        return Ok((l, 0.0));
    }
    let (values, _) = sym_eigen(r)?;
    let lambda_min = values.first().copied().unwrap_or(0.0);
    let mut eps = SVD_LLM_EPS;
    for _ in 0..60 {
        let shift = eps - lambda_min;
        let mut shifted = r.to_owned();
        shifted.diag_mut().mapv_inplace(|x| x + shift);
        if let Some(l) = cholesky_lower(shifted.view())? {
            return Ok((l, shift));
        }
        eps *= 2.0;
    }
    Err(Error::stats(
        "the input correlation cannot be made positive definite for SVD-LLM's whitening",
    ))
}

/// The symmetric square root of `r` as a [`Scaling`], eigenvalues clipped to
/// at least [`SQRT_EIG_FLOOR`] times the largest (QERA's treatment of a
/// singular `R`).
///
/// # Errors
///
/// As [`sym_eigen`]; [`Error::Stats`] when `r` has no positive eigenvalue.
pub fn sym_sqrt(r: ArrayView2<'_, f64>) -> Result<Scaling> {
    let (values, vectors) = sym_eigen(r)?;
    let max = values.last().copied().unwrap_or(0.0);
    if max.is_nan() || max <= 0.0 {
        return Err(Error::stats(
            "the input correlation has no positive eigenvalue (all inputs zero?)",
        ));
    }
    let floor = SQRT_EIG_FLOOR * max;
    let sqrt_values = values.iter().map(|&l| l.max(floor).sqrt()).collect();
    Ok(Scaling::InputSymSqrt {
        vectors,
        sqrt_values,
    })
}

/// ASVD's scaling `mean|x_j|^alpha + 1e-6`.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for a non-finite or non-positive `alpha`.
pub fn asvd_scale(mean_abs: ArrayView1<'_, f64>, alpha: f64) -> Result<Vec<f64>> {
    if !(alpha.is_finite() && alpha > 0.0) {
        return Err(Error::invalid(
            "ASVD alpha",
            format!("{alpha} must be finite and positive"),
        ));
    }
    Ok(mean_abs.iter().map(|&s| s.powf(alpha) + 1e-6).collect())
}

/// LQER's normalized scaling: `s = max(mean|x_j|, 1e-4)`, then
/// `s / sqrt(min(s) max(s))`.
pub fn lqer_scale(mean_abs: ArrayView1<'_, f64>) -> Vec<f64> {
    let s: Vec<f64> = mean_abs.iter().map(|&x| x.max(1e-4)).collect();
    let lo = s.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = s.iter().copied().fold(0.0, f64::max);
    let norm = (lo * hi).sqrt();
    s.into_iter().map(|x| x / norm).collect()
}

/// QERA-approx's scaling: the RMS of each input channel, zero replaced by
/// machine epsilon.
pub fn qera_approx_scale(rms: ArrayView1<'_, f64>) -> Vec<f64> {
    rms.iter()
        .map(|&s| if s > 0.0 { s } else { f64::EPSILON })
        .collect()
}

/// Which side a Fisher weighting acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Side {
    /// One weight per output feature (row of `W`), multiplying on the left:
    /// the FWSVD paper's row reduction.
    #[default]
    Output,
    /// One weight per input feature (column of `W`), multiplying on the
    /// right, as the ASVD4LLM re-implementation does.
    Input,
}

/// FWSVD's weights: `d = sqrt` of the Fisher sums over each row (output
/// side) or column (input side), clipped below at `1e-12 max(d)`.
///
/// # Errors
///
/// [`Error::NonFinite`] or [`Error::Stats`] for negative entries or an
/// all-zero Fisher matrix.
pub fn fisher_weights(fisher: ArrayView2<'_, f32>, side: Side) -> Result<Vec<f64>> {
    if let Some(((i, j), v)) = fisher
        .indexed_iter()
        .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
    {
        return Err(Error::stats(format!(
            "Fisher information must be finite and non-negative; entry ({i}, {j}) is {v}"
        )));
    }
    // Output side: one sum per row; input side: one sum per column.
    let lanes = match side {
        Side::Output => fisher.axis_iter(Axis(0)),
        Side::Input => fisher.axis_iter(Axis(1)),
    };
    let d: Vec<f64> = lanes
        .map(|lane| lane.iter().map(|&x| f64::from(x)).sum::<f64>().sqrt())
        .collect();
    let max = d.iter().copied().fold(0.0, f64::max);
    if max.is_nan() || max <= 0.0 {
        return Err(Error::stats("the Fisher information is all zero"));
    }
    let floor = 1e-12 * max;
    Ok(d.into_iter().map(|x| x.max(floor)).collect())
}
