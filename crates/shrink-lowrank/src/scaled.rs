//! The one closed form behind every method of this crate: a scaled truncated
//! SVD.
//!
//! For a matrix `M` (`m x n`: the weight `W` or a quantization error
//! `E = W - W_q`) and an invertible scaling, the best rank-`k` approximation
//! in the scaled norm is
//!
//! * input side (`T` acts on the `n` input features): minimize
//!   `||(M - M') T||_F`; the optimum is `M' = [M T]_k T^{-1}` (Eckart-Young in
//!   the variable `M T`), with optimal error `sum_{i>k} sigma_i(M T)^2`;
//! * output side (diagonal `D` on the `m` outputs): minimize
//!   `||D (M - M')||_F`; `M' = D^{-1} [D M]_k`.
//!
//! With `T = S`, `S S^T = R_xx`, the input-side objective is the expected
//! output error `E ||x (M - M')^T||^2` (algorithms.md section 0), and it does
//! not depend on which `S` is used: a Cholesky factor and the symmetric square
//! root give the same `M'`.
//!
//! The result is returned as factors `A` (`n x k`) and `B` (`k x m`) with
//! `M'^T = A B`, so a layer computes `y = (x A) B`. With `[M T]_k =
//! U_k Sigma_k V_k^T`: `B = Sigma_k^{1/2} U_k^T` (times `D^{-1}` on the
//! output side) and `A = T^{-T} V_k Sigma_k^{1/2}`, applied by triangular
//! solves or through the eigendecomposition, never by an explicit inverse.

use crate::dense::{
    Randomized, Svd, block_krylov_svd, randomized_svd, solve_lower_transpose_in_place,
    truncated_svd,
};
use ndarray::{Array2, ArrayView2, Axis};
use shrink_core::linalg::matmul;
use shrink_core::{Error, Result};

/// How the truncated SVD is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Solver {
    /// Full thin SVD through faer, then truncation (exact).
    #[default]
    Exact,
    /// Randomized SVD (Halko et al.: subspace iteration), seeded from the
    /// compression context.
    Randomized(Randomized),
    /// Randomized block Krylov SVD (Musco and Musco 2015) with `power_iters`
    /// Krylov blocks after the first ([`KRYLOV_DEPTH`] by default): the
    /// accurate fast solver for flat spectra such as quantization errors.
    Krylov(Randomized),
}

/// Default number of Krylov blocks after the first for [`Solver::Krylov`].
pub const KRYLOV_DEPTH: usize = 6;

impl Solver {
    /// The block Krylov solver with its defaults.
    pub fn krylov() -> Self {
        Solver::Krylov(Randomized {
            oversample: None,
            power_iters: KRYLOV_DEPTH,
        })
    }
}

/// A scaling of the approximation problem (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub enum Scaling {
    /// No scaling: plain truncated SVD.
    Identity,
    /// Input side `T = diag(s)` (all `s_j > 0`).
    InputDiag(Vec<f64>),
    /// Output side `D = diag(d)` (all `d_i > 0`).
    OutputDiag(Vec<f64>),
    /// Input side `T = L`, a lower triangular Cholesky factor with a positive
    /// diagonal.
    InputCholesky(Array2<f64>),
    /// Input side `T = S = V diag(sqrt(lambda)) V^T`, the symmetric square
    /// root, given by its eigenvectors `V` and `sqrt(lambda)` (all > 0).
    InputSymSqrt {
        /// Orthonormal eigenvectors (`n x n`, columns).
        vectors: Array2<f64>,
        /// Square roots of the eigenvalues, all positive.
        sqrt_values: Vec<f64>,
    },
}

/// Rank-`k` factors `A` (`n x k`) and `B` (`k x m`) in f64, with the
/// singular values of the scaled matrix they came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Factors {
    /// `n x k`: the input-side factor, `x A`.
    pub a: Array2<f64>,
    /// `k x m`: the output-side factor, `(x A) B`.
    pub b: Array2<f64>,
    /// The kept singular values of the scaled matrix (non-increasing).
    pub kept: Vec<f64>,
}

impl Factors {
    /// The rank `k`.
    pub fn rank(&self) -> usize {
        self.kept.len()
    }

    /// `M' = (A B)^T` (`m x n`).
    pub fn to_dense(&self) -> Array2<f64> {
        matmul(self.b.t(), self.a.t())
    }
}

fn scale_columns(m: &mut Array2<f64>, s: &[f64]) {
    for mut row in m.axis_iter_mut(Axis(0)) {
        for (x, &sj) in row.iter_mut().zip(s) {
            *x *= sj;
        }
    }
}

fn scale_rows(m: &mut Array2<f64>, d: &[f64]) {
    for (mut row, &di) in m.axis_iter_mut(Axis(0)).zip(d) {
        row.mapv_inplace(|x| x * di);
    }
}

impl Scaling {
    fn check(&self, m: usize, n: usize) -> Result<()> {
        let positive = |what: &str, v: &[f64], len: usize| -> Result<()> {
            if v.len() != len {
                return Err(Error::shape(
                    what,
                    format!("{len} entries"),
                    v.len().to_string(),
                ));
            }
            if let Some((j, x)) = v
                .iter()
                .enumerate()
                .find(|(_, x)| !(x.is_finite() && **x > 0.0))
            {
                return Err(Error::invalid(
                    what,
                    format!("entry {j} is {x}; every scale must be finite and positive"),
                ));
            }
            Ok(())
        };
        match self {
            Scaling::Identity => Ok(()),
            Scaling::InputDiag(s) => positive("input scaling", s, n),
            Scaling::OutputDiag(d) => positive("output scaling", d, m),
            Scaling::InputCholesky(l) => {
                if l.dim() != (n, n) {
                    return Err(Error::shape(
                        "Cholesky factor",
                        format!("{n}x{n}"),
                        format!("{}x{}", l.nrows(), l.ncols()),
                    ));
                }
                positive("Cholesky factor diagonal", &l.diag().to_vec(), n)
            }
            Scaling::InputSymSqrt {
                vectors,
                sqrt_values,
            } => {
                if vectors.dim() != (n, n) {
                    return Err(Error::shape(
                        "eigenvectors",
                        format!("{n}x{n}"),
                        format!("{}x{}", vectors.nrows(), vectors.ncols()),
                    ));
                }
                positive("square roots of the eigenvalues", sqrt_values, n)
            }
        }
    }

    /// `M T` (input side) or `D M` (output side).
    pub fn apply(&self, m: ArrayView2<'_, f64>) -> Array2<f64> {
        match self {
            Scaling::Identity => m.to_owned(),
            Scaling::InputDiag(s) => {
                let mut x = m.to_owned();
                scale_columns(&mut x, s);
                x
            }
            Scaling::OutputDiag(d) => {
                let mut x = m.to_owned();
                scale_rows(&mut x, d);
                x
            }
            Scaling::InputCholesky(l) => matmul(m, l.view()),
            Scaling::InputSymSqrt {
                vectors,
                sqrt_values,
            } => {
                let mut mv = matmul(m, vectors.view());
                scale_columns(&mut mv, sqrt_values);
                matmul(mv.view(), vectors.t())
            }
        }
    }

    /// Turns the truncated SVD of the scaled matrix into factors of `M'`.
    fn unscale(&self, svd: Svd) -> Factors {
        let Svd { u, s, v } = svd;
        let root: Vec<f64> = s.iter().map(|x| x.sqrt()).collect();
        // B = Sigma^{1/2} U^T, A = V Sigma^{1/2} before the unscaling.
        let mut b = u.t().to_owned();
        scale_rows(&mut b, &root);
        let mut a = v;
        scale_columns(&mut a, &root);
        match self {
            Scaling::Identity => {}
            Scaling::InputDiag(sc) => {
                let inv: Vec<f64> = sc.iter().map(|x| 1.0 / x).collect();
                scale_rows(&mut a, &inv);
            }
            Scaling::OutputDiag(d) => {
                let inv: Vec<f64> = d.iter().map(|x| 1.0 / x).collect();
                scale_columns(&mut b, &inv);
            }
            Scaling::InputCholesky(l) => solve_lower_transpose_in_place(l.view(), &mut a),
            Scaling::InputSymSqrt {
                vectors,
                sqrt_values,
            } => {
                // S^{-1} a = V diag(1/sqrt(lambda)) V^T a.
                let mut c = matmul(vectors.t(), a.view());
                let inv: Vec<f64> = sqrt_values.iter().map(|x| 1.0 / x).collect();
                scale_rows(&mut c, &inv);
                a = matmul(vectors.view(), c.view());
            }
        }
        Factors { a, b, kept: s }
    }
}

/// Best rank-`k` approximation of `m` under `scaling` (module documentation),
/// computed with `solver` (`seed` feeds the randomized solver). `k` is clamped
/// to `min(m, n)`.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for `k == 0` or a bad scaling,
/// [`Error::Shape`] when the scaling does not fit `m`, and the errors of the
/// decompositions (non-finite input).
pub fn approximate(
    m: ArrayView2<'_, f64>,
    scaling: &Scaling,
    k: usize,
    solver: Solver,
    seed: u64,
) -> Result<Factors> {
    let (rows, cols) = m.dim();
    if rows == 0 || cols == 0 {
        return Err(Error::Empty {
            what: "matrix to approximate".into(),
        });
    }
    if k == 0 {
        return Err(Error::invalid("rank", "must be at least 1"));
    }
    scaling.check(rows, cols)?;
    let scaled = scaling.apply(m);
    let svd = match solver {
        Solver::Exact => truncated_svd(scaled.view(), k)?,
        Solver::Randomized(cfg) => randomized_svd(scaled.view(), k, cfg, seed)?,
        Solver::Krylov(cfg) => block_krylov_svd(scaled.view(), k, cfg, seed)?,
    };
    Ok(scaling.unscale(svd))
}
