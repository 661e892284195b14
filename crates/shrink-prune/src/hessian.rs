//! The damped inverse Hessian factor that SparseGPT (and GPTQ) sweep with.
//!
//! With `H = X^T X` (any positive scale):
//!
//! 1. dead inputs `diag(H)_j == 0` get `H_jj = 1` (their weights are zeroed
//!    by the caller);
//! 2. damping `H += damp * mean(diag(H)) * I` (`damp = 0.01` by default);
//! 3. `U` = the upper Cholesky factor of `H^{-1}`: `H^{-1} = U^T U`, `U`
//!    upper triangular with a positive diagonal.
//!
//! The reference computes `U = cholesky(cholesky_inverse(cholesky(H)), upper)`.
//! We get the same `U` without forming `H^{-1}`: with `J` the reversal
//! permutation and `L' = cholesky(J H J)` (lower), `R = J L' J` is upper
//! triangular with `H = R R^T`, so `H^{-1} = (R^{-1})^T R^{-1}` and by
//! uniqueness of the Cholesky factor `U = R^{-1} = J L'^{-1} J`: one
//! factorization and one triangular inverse, in f64.
//!
//! Both are blocked in tiles of 128 and spread over the rayon pool with a
//! partition fixed in advance (faer kernels run sequentially inside a tile):
//! the Cholesky factor is right-looking (factor the diagonal tile, solve the
//! panel below it by row tiles, update the trailing matrix by column tiles
//! with one GEMM each); the inverse solves `L X = I` by column tiles. Every
//! entry is computed by one task in a fixed order, so the result never
//! depends on the thread count.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{
    LltRegularization, cholesky_in_place, cholesky_in_place_scratch,
};
use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::{Accum, Par};
use ndarray::{Array2, ArrayView2, Axis, s};
use rayon::prelude::*;
use shrink_core::interop::{as_faer, as_faer_mut};
use shrink_core::{Error, Result};

/// Tile size of the blocked factorization and inverse.
const TILE: usize = 128;

/// In-place lower Cholesky factor of a symmetric positive definite matrix
/// (the strict upper triangle is left stale); `Err(())` when a pivot is not
/// positive.
fn cholesky_blocked(a: &mut Array2<f64>) -> std::result::Result<(), ()> {
    let n = a.nrows();
    let mut buf = MemBuffer::new(cholesky_in_place_scratch::<f64>(
        TILE,
        Par::Seq,
        Default::default(),
    ));
    let mut k0 = 0;
    while k0 < n {
        let k1 = (k0 + TILE).min(n);
        cholesky_in_place(
            as_faer_mut(a.slice_mut(s![k0..k1, k0..k1])),
            LltRegularization::default(),
            Par::Seq,
            MemStack::new(&mut buf),
            Default::default(),
        )
        .map_err(|_| ())?;
        if k1 == n {
            break;
        }
        let (top, mut bottom) = a.view_mut().split_at(Axis(0), k1);
        let l11 = top.slice(s![k0..k1, k0..k1]);
        let l11 = as_faer(l11.view());
        // Panel: L21 = A21 L11^{-T}, i.e. L11 L21^T = A21^T, by row tiles.
        bottom
            .slice_mut(s![.., k0..k1])
            .axis_chunks_iter_mut(Axis(0), TILE)
            .into_par_iter()
            .for_each(|chunk| {
                solve_lower_triangular_in_place(l11, as_faer_mut(chunk).transpose_mut(), Par::Seq);
            });
        // Trailing update A22 -= L21 L21^T on and below the diagonal, by
        // column tiles (tile c covers rows from its own diagonal down).
        let (left, mut right) = bottom.view_mut().split_at(Axis(1), k1);
        let l21 = left.slice(s![.., k0..k1]);
        right
            .axis_chunks_iter_mut(Axis(1), TILE)
            .into_par_iter()
            .enumerate()
            .for_each(|(c, mut chunk)| {
                let r0 = c * TILE;
                let w = chunk.ncols();
                faer::linalg::matmul::matmul(
                    as_faer_mut(chunk.slice_mut(s![r0.., ..])),
                    Accum::Add,
                    as_faer(l21.slice(s![r0.., ..])),
                    as_faer(l21.slice(s![r0..r0 + w, ..])).transpose(),
                    -1.0,
                    Par::Seq,
                );
            });
        k0 = k1;
    }
    Ok(())
}

/// The inverse of the lower triangle of `l` (lower triangular), by column
/// tiles: `L[j0:, j0:] X[j0:, j0:j1] = I[j0:, j0:j1]`.
fn invert_lower(l: &Array2<f64>) -> Array2<f64> {
    let n = l.nrows();
    let mut lt = l.clone();
    for i in 0..n {
        for j in i + 1..n {
            lt[(i, j)] = 0.0;
        }
    }
    let mut x = Array2::<f64>::zeros((n, n));
    x.axis_chunks_iter_mut(Axis(1), TILE)
        .into_par_iter()
        .enumerate()
        .for_each(|(c, mut chunk)| {
            let j0 = c * TILE;
            let w = chunk.ncols();
            for t in 0..w {
                chunk[(j0 + t, t)] = 1.0;
            }
            solve_lower_triangular_in_place(
                as_faer(lt.slice(s![j0.., j0..])),
                as_faer_mut(chunk.slice_mut(s![j0.., ..])),
                Par::Seq,
            );
        });
    x
}

/// `U` (upper, `H^{-1} = U^T U`) and which inputs were dead.
#[derive(Clone, Debug, PartialEq)]
pub struct HessianFactor {
    /// The upper Cholesky factor of the damped inverse Hessian (n x n, f64;
    /// the strict lower triangle is zero).
    pub u: Array2<f64>,
    /// `dead[j]`: input `j` never fired (`H_jj == 0`); its weights are zeroed.
    pub dead: Vec<bool>,
}

/// Computes [`HessianFactor`] from a Gram matrix with relative damping `damp`
/// (fraction of the mean diagonal).
///
/// # Errors
///
/// [`Error::Shape`] when `gram` is not square; [`Error::NonFinite`] for a
/// non-finite entry; [`Error::InvalidArgument`] for a negative or non-finite
/// `damp`; [`Error::Stats`] when the damped matrix is not positive definite.
pub fn inverse_hessian_factor(gram: ArrayView2<'_, f64>, damp: f64) -> Result<HessianFactor> {
    let n = gram.nrows();
    if n == 0 || gram.ncols() != n {
        return Err(Error::shape(
            "Gram matrix",
            "square and non-empty",
            format!("{}x{}", gram.nrows(), gram.ncols()),
        ));
    }
    if !(damp.is_finite() && damp >= 0.0) {
        return Err(Error::invalid(
            "damping",
            format!("{damp} must be finite and non-negative"),
        ));
    }
    if let Some(((i, j), v)) = gram.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "Gram matrix".into(),
            position: format!("row {i}, column {j}"),
            value: v.to_string(),
        });
    }
    let dead: Vec<bool> = (0..n).map(|j| gram[(j, j)] == 0.0).collect();
    let diag: Vec<f64> = (0..n)
        .map(|j| if dead[j] { 1.0 } else { gram[(j, j)] })
        .collect();
    let mean = diag.iter().sum::<f64>() / n as f64;
    let add = damp * mean;
    // J H J with the dead fix and the damping, symmetric, taken from the
    // lower triangle of H (the upper one may differ in the last bit).
    let mut hr = Array2::<f64>::zeros((n, n));
    for a in 0..n {
        let i = n - 1 - a;
        for b in 0..=a {
            let j = n - 1 - b;
            let v = if a == b {
                diag[i] + add
            } else if dead[i] || dead[j] {
                0.0
            } else {
                gram[(i.max(j), i.min(j))]
            };
            hr[(a, b)] = v;
            hr[(b, a)] = v;
        }
    }
    cholesky_blocked(&mut hr).map_err(|_| {
        Error::stats(format!(
            "the damped Hessian (damping {damp} of the mean diagonal) is not positive definite; \
             increase the damping or check the calibration statistics"
        ))
    })?;
    let linv = invert_lower(&hr);
    let mut u = Array2::<f64>::zeros((n, n));
    for a in 0..n {
        for b in 0..=a {
            u[(n - 1 - a, n - 1 - b)] = linv[(a, b)];
        }
    }
    if let Some(((i, j), v)) = u.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::stats(format!(
            "the inverse Hessian factor has a non-finite entry {v} at ({i}, {j}); \
             increase the damping"
        )));
    }
    Ok(HessianFactor { u, dead })
}
