//! LAPACK counterparts of [`crate::dense`] (feature `lapack`: ndarray-linalg
//! over the system's OpenBLAS), for cross-checking faer's decompositions in
//! tests and timing them side by side in the benches.

use crate::dense::Svd;
use ndarray::{Array2, ArrayView2};
use ndarray_linalg::{Eigh, JobSvd, SVDDC, UPLO};
use shrink_core::{Error, Result};

fn lapack_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid(what, format!("LAPACK failed: {e}"))
}

/// The thin SVD by LAPACK's divide and conquer (`gesdd`).
///
/// # Errors
///
/// [`Error::Empty`] for an empty matrix, [`Error::InvalidArgument`] when
/// LAPACK reports a failure.
pub fn thin_svd(a: ArrayView2<'_, f64>) -> Result<Svd> {
    if a.is_empty() {
        return Err(Error::Empty {
            what: "matrix to decompose".into(),
        });
    }
    let (u, s, vt) = a
        .to_owned()
        .svddc(JobSvd::Some)
        .map_err(|e| lapack_error("SVD", e))?;
    let (u, vt) = match (u, vt) {
        (Some(u), Some(vt)) => (u, vt),
        _ => return Err(lapack_error("SVD", "no singular vectors returned")),
    };
    Ok(Svd {
        u,
        s: s.to_vec(),
        v: vt.t().to_owned(),
    })
}

/// The symmetric eigendecomposition by LAPACK (`syevd`), eigenvalues
/// non-decreasing, from the lower triangle.
///
/// # Errors
///
/// [`Error::InvalidArgument`] when LAPACK reports a failure.
pub fn sym_eigen(r: ArrayView2<'_, f64>) -> Result<(Vec<f64>, Array2<f64>)> {
    let (values, vectors) = r
        .to_owned()
        .eigh(UPLO::Lower)
        .map_err(|e| lapack_error("eigendecomposition", e))?;
    Ok((values.to_vec(), vectors))
}
