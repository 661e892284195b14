//! Boundary checks shared by every crate: shapes, emptiness, finiteness.

use crate::{Error, Result};
use ndarray::ArrayView2;

/// Checks that a weight matrix is non-empty and holds only finite values.
///
/// `what` names the matrix in the error message.
pub fn finite_matrix(what: &str, w: ArrayView2<'_, f32>) -> Result<()> {
    if w.is_empty() {
        return Err(Error::Empty {
            what: format!("{what} (shape {}x{})", w.nrows(), w.ncols()),
        });
    }
    if w.as_slice().is_some_and(all_finite_f32) {
        return Ok(());
    }
    for ((i, j), v) in w.indexed_iter() {
        if !v.is_finite() {
            return Err(Error::NonFinite {
                what: what.to_string(),
                position: format!("row {i}, column {j}"),
                value: v.to_string(),
            });
        }
    }
    Ok(())
}

/// Checks that a slice is non-empty and holds only finite values.
pub fn finite_slice(what: &str, xs: &[f32]) -> Result<()> {
    if xs.is_empty() {
        return Err(Error::Empty {
            what: what.to_string(),
        });
    }
    if let Some((i, v)) = xs.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: what.to_string(),
            position: format!("index {i}"),
            value: v.to_string(),
        });
    }
    Ok(())
}

/// Checks that `x` (tokens x features) has `features` columns.
pub fn input_width(what: &str, x: ArrayView2<'_, f32>, features: usize) -> Result<()> {
    if x.ncols() != features {
        return Err(Error::shape(
            what,
            format!("(_, {features})"),
            format!("({}, {})", x.nrows(), x.ncols()),
        ));
    }
    Ok(())
}

/// Whether every value is finite: a branch-free pass the compiler
/// vectorizes, over fixed chunks spread on the rayon pool (the answer does
/// not depend on the thread count). Callers locate the first bad value
/// with a plain scan only when this is false.
pub fn all_finite_f32(v: &[f32]) -> bool {
    use rayon::prelude::*;
    v.par_chunks(1 << 16)
        .all(|c| c.iter().fold(true, |a, x| a & x.is_finite()))
}

/// [`all_finite_f32`] for f64 values.
pub fn all_finite_f64(v: &[f64]) -> bool {
    use rayon::prelude::*;
    v.par_chunks(1 << 15)
        .all(|c| c.iter().fold(true, |a, x| a & x.is_finite()))
}

/// Checks a Gram matrix `X^T X` (`what` names it in errors): `n x n` with
/// `n > 0` ([`Error::Shape`]), every entry finite ([`Error::NonFinite`],
/// located by a plain scan only after the vectorized pass fails), and no
/// negative diagonal entry ([`Error::Stats`]).
pub fn gram(what: &str, h: ArrayView2<'_, f64>, n: usize) -> Result<()> {
    if n == 0 || h.dim() != (n, n) {
        return Err(Error::shape(
            what,
            format!("{n}x{n}, non-empty"),
            format!("{}x{}", h.nrows(), h.ncols()),
        ));
    }
    if !h.as_slice().is_some_and(all_finite_f64)
        && let Some(((i, j), v)) = h.indexed_iter().find(|(_, v)| !v.is_finite())
    {
        return Err(Error::NonFinite {
            what: what.to_string(),
            position: format!("row {i}, column {j}"),
            value: v.to_string(),
        });
    }
    if let Some(j) = (0..n).find(|&j| h[(j, j)] < 0.0) {
        return Err(Error::stats(format!(
            "{what} has a negative diagonal entry {} at input {j}; it is not X^T X",
            h[(j, j)]
        )));
    }
    Ok(())
}
