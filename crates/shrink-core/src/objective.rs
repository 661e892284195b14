//! How an approximation `W'` of a weight matrix `W` (out x in) is judged.
//!
//! * [`Objective::Frobenius`]: `||W - W'||_F^2`.
//! * [`Objective::Output`]: the layer's output error on the calibration data,
//!   `||X (W - W')^T||_F^2 = tr((W - W') H (W - W')^T)` with `H = X^T X`.
//! * [`Objective::Fisher`]: `sum_ij F_ij (W - W')_ij^2` with `F` the Fisher
//!   information of the weights.
//!
//! The relative form divides by the same quantity with `W' = 0`
//! (`||W||_F^2`, `tr(W H W^T)`, `sum F W^2`). All sums run in f64.

use crate::linalg::quadratic_trace;
use crate::{Error, LayerStats, Result};
use ndarray::{Array2, ArrayView2, Zip};
use std::fmt;
use std::str::FromStr;

/// A way to measure the error of an approximation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Objective {
    /// Plain squared Frobenius norm of the weight error.
    Frobenius,
    /// Output error `tr(E H E^T)`; needs [`LayerStats`].
    Output,
    /// Fisher-weighted squared error; needs Fisher information in [`LayerStats`].
    Fisher,
}

impl Objective {
    /// The error of `w_hat` as an approximation of `w`.
    pub fn error(
        self,
        w: ArrayView2<'_, f32>,
        w_hat: ArrayView2<'_, f32>,
        stats: Option<&LayerStats>,
    ) -> Result<f64> {
        if w.dim() != w_hat.dim() {
            return Err(Error::shape(
                "approximation",
                format!("{:?}", w.dim()),
                format!("{:?}", w_hat.dim()),
            ));
        }
        let mut e = Array2::<f64>::zeros(w.dim());
        Zip::from(&mut e)
            .and(&w)
            .and(&w_hat)
            .for_each(|e, &a, &b| *e = f64::from(a) - f64::from(b));
        self.of_difference(e.view(), stats)
    }

    /// The objective's value at `W' = 0`, the denominator of the relative form.
    pub fn norm(self, w: ArrayView2<'_, f32>, stats: Option<&LayerStats>) -> Result<f64> {
        let e = w.mapv(f64::from);
        self.of_difference(e.view(), stats)
    }

    /// `error / norm`; 0 when both are 0.
    pub fn relative(
        self,
        w: ArrayView2<'_, f32>,
        w_hat: ArrayView2<'_, f32>,
        stats: Option<&LayerStats>,
    ) -> Result<f64> {
        let err = self.error(w, w_hat, stats)?;
        let norm = self.norm(w, stats)?;
        Ok(if norm > 0.0 {
            err / norm
        } else if err == 0.0 {
            0.0
        } else {
            f64::INFINITY
        })
    }

    /// The objective of a difference matrix `E = W - W'` given in f64.
    pub fn of_difference(self, e: ArrayView2<'_, f64>, stats: Option<&LayerStats>) -> Result<f64> {
        match self {
            Objective::Frobenius => Ok(e.iter().map(|v| v * v).sum()),
            Objective::Output => {
                let s = stats.ok_or_else(|| {
                    Error::stats(
                        "the output objective needs calibration statistics (a Gram matrix)",
                    )
                })?;
                if s.in_features() != e.ncols() {
                    return Err(Error::shape(
                        "Gram matrix for the output objective",
                        e.ncols(),
                        s.in_features(),
                    ));
                }
                Ok(quadratic_trace(e, s.gram().view()))
            }
            Objective::Fisher => {
                let f = stats.and_then(|s| s.fisher()).ok_or_else(|| {
                    Error::stats("the Fisher objective needs Fisher information in the statistics")
                })?;
                if f.dim() != e.dim() {
                    return Err(Error::shape(
                        "Fisher information",
                        format!("{:?}", e.dim()),
                        format!("{:?}", f.dim()),
                    ));
                }
                Ok(e.iter()
                    .zip(f.iter())
                    .map(|(d, &fi)| f64::from(fi) * d * d)
                    .sum())
            }
        }
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Objective::Frobenius => "frobenius",
            Objective::Output => "output",
            Objective::Fisher => "fisher",
        })
    }
}

impl FromStr for Objective {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "frobenius" | "weight" => Ok(Objective::Frobenius),
            "output" => Ok(Objective::Output),
            "fisher" => Ok(Objective::Fisher),
            other => Err(Error::invalid(
                "objective",
                format!("unknown objective `{other}` (expected frobenius, output or fisher)"),
            )),
        }
    }
}
