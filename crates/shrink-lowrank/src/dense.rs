//! Dense f64 factorizations the low-rank methods are built from: thin and
//! randomized SVD, the symmetric eigendecomposition, Cholesky factors and
//! triangular solves, all through faer with ndarray at the boundary.
//!
//! # Randomized SVD
//!
//! Halko, Martinsson and Tropp, "Finding structure with randomness"
//! (SIAM Review 2011), algorithms 4.4 and 5.1: for a rank-`k` approximation of
//! `M` (`m x n`) draw a Gaussian test matrix `Omega` (`n x l`, `l = k + p`
//! with oversampling `p`, by default `max(10, k/2)`), take an orthonormal basis `Q` of `M Omega`, refine
//! it with `q` power iterations (`Q <- orth(M orth(M^T Q))`, re-orthonormalized
//! at every half step), then the thin SVD of the small `Q^T M` (`l x n`) gives
//! `M ~ (Q U_B) Sigma V^T`; the top `k` triplets are kept. The products of
//! the range finder run in f32 (twice the speed of f64; the sketch is far
//! less accurate than f32 rounding anyway); orthonormalization, the final
//! projection and the small SVD are f64. The test matrix
//! comes from a seeded generator, so the same seed gives the same bytes.
//!
//! # Determinism
//!
//! Every kernel runs on the current rayon pool through faer's parallel
//! routines or `shrink_core::linalg`'s fixed-block products; the integration
//! tests check that 1 and 2 threads give identical bytes.

use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{
    LltRegularization, cholesky_in_place, cholesky_in_place_scratch,
};
use faer::linalg::evd::{ComputeEigenvectors, self_adjoint_evd, self_adjoint_evd_scratch};
use faer::linalg::householder::{
    apply_block_householder_sequence_on_the_left_in_place_scratch,
    apply_block_householder_sequence_on_the_left_in_place_with_conj,
};
use faer::linalg::qr::no_pivoting::factor::{
    qr_in_place, qr_in_place_scratch, recommended_block_size,
};
use faer::linalg::svd::{ComputeSvdVectors, svd, svd_scratch};
use faer::linalg::triangular_solve::solve_upper_triangular_in_place;
use faer::{Conj, Par};
use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use shrink_core::interop::{as_faer, as_faer_mut};
use shrink_core::linalg::{matmul, matmul_f32_bt};
use shrink_core::{Error, Result};

fn par() -> Par {
    Par::rayon(rayon::current_num_threads())
}

/// A (possibly truncated) singular value decomposition `M ~ U diag(s) V^T`.
#[derive(Clone, Debug, PartialEq)]
pub struct Svd {
    /// Left singular vectors, `m x r`, orthonormal columns.
    pub u: Array2<f64>,
    /// Singular values, non-increasing, length `r`.
    pub s: Vec<f64>,
    /// Right singular vectors, `n x r`, orthonormal columns.
    pub v: Array2<f64>,
}

impl Svd {
    /// Keeps the first `k` triplets (no-op when `k >= r`).
    pub fn truncate(mut self, k: usize) -> Self {
        let k = k.min(self.s.len());
        self.s.truncate(k);
        self.u = self.u.slice_move(ndarray::s![.., ..k]);
        self.v = self.v.slice_move(ndarray::s![.., ..k]);
        self
    }

    /// `U diag(s) V^T` as a dense matrix.
    pub fn to_dense(&self) -> Array2<f64> {
        let mut us = self.u.clone();
        for (mut col, &s) in us.axis_iter_mut(Axis(1)).zip(&self.s) {
            col.mapv_inplace(|x| x * s);
        }
        matmul(us.view(), self.v.t())
    }
}

fn check_finite(what: &str, a: ArrayView2<'_, f64>) -> Result<()> {
    if let Some(((i, j), v)) = a.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: what.into(),
            position: format!("row {i}, column {j}"),
            value: v.to_string(),
        });
    }
    Ok(())
}

/// The thin SVD of `a` (`r = min(m, n)` triplets, singular values
/// non-increasing).
///
/// # Errors
///
/// [`Error::Empty`] for an empty matrix, [`Error::NonFinite`] for NaN or
/// infinite entries, [`Error::InvalidArgument`] if the iteration does not
/// converge.
pub fn thin_svd(a: ArrayView2<'_, f64>) -> Result<Svd> {
    svd_vectors(a, true)
}

/// The singular values of `a` (non-increasing) and its right singular
/// vectors (`n x min(m, n)`, as the columns `v` of [`thin_svd`]), without
/// computing the left ones (about a third less work for a square matrix).
///
/// # Errors
///
/// As [`thin_svd`].
pub fn right_singular_vectors(a: ArrayView2<'_, f64>) -> Result<(Vec<f64>, Array2<f64>)> {
    let Svd { s, v, .. } = svd_vectors(a, false)?;
    Ok((s, v))
}

/// The thin SVD, with `u` empty (`0 x 0`) unless `want_u`.
fn svd_vectors(a: ArrayView2<'_, f64>, want_u: bool) -> Result<Svd> {
    let (m, n) = a.dim();
    if m == 0 || n == 0 {
        return Err(Error::Empty {
            what: "matrix to decompose".into(),
        });
    }
    check_finite("matrix to decompose", a)?;
    let r = m.min(n);
    let mut u = want_u.then(|| Array2::<f64>::zeros((m, r)));
    let mut v = Array2::<f64>::zeros((n, r));
    let mut s = Diag::<f64>::zeros(r);
    let par = par();
    let left = if want_u {
        ComputeSvdVectors::Thin
    } else {
        ComputeSvdVectors::No
    };
    let mut mem = MemBuffer::new(svd_scratch::<f64>(
        m,
        n,
        left,
        ComputeSvdVectors::Thin,
        par,
        Default::default(),
    ));
    svd(
        as_faer(a),
        s.as_mut(),
        u.as_mut().map(|u| as_faer_mut(u.view_mut())),
        Some(as_faer_mut(v.view_mut())),
        par,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .map_err(|e| Error::invalid("SVD", format!("did not converge ({e:?})")))?;
    let s: Vec<f64> = s.column_vector().iter().copied().collect();
    Ok(Svd {
        u: u.unwrap_or_default(),
        s,
        v,
    })
}

/// The singular values of `a`, non-increasing.
///
/// # Errors
///
/// As [`thin_svd`].
pub fn singular_values(a: ArrayView2<'_, f64>) -> Result<Vec<f64>> {
    let (m, n) = a.dim();
    if m == 0 || n == 0 {
        return Err(Error::Empty {
            what: "matrix to decompose".into(),
        });
    }
    check_finite("matrix to decompose", a)?;
    let r = m.min(n);
    let mut s = Diag::<f64>::zeros(r);
    let par = par();
    let mut mem = MemBuffer::new(svd_scratch::<f64>(
        m,
        n,
        ComputeSvdVectors::No,
        ComputeSvdVectors::No,
        par,
        Default::default(),
    ));
    svd(
        as_faer(a),
        s.as_mut(),
        None,
        None,
        par,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .map_err(|e| Error::invalid("SVD", format!("did not converge ({e:?})")))?;
    Ok(s.column_vector().iter().copied().collect())
}

/// Rank-`k` truncated SVD of `a` through the full thin SVD.
///
/// # Errors
///
/// As [`thin_svd`].
pub fn truncated_svd(a: ArrayView2<'_, f64>, k: usize) -> Result<Svd> {
    Ok(thin_svd(a)?.truncate(k))
}

/// Settings of the randomized SVD (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Randomized {
    /// Oversampling `p` (extra test vectors beyond the rank); `None` picks
    /// `max(10, k / 2)`, which keeps the excess error under 1% for `k <= n/8`
    /// with 2 power iterations on slowly decaying spectra (`sigma_i ~ i^-0.5`,
    /// tested), where a fixed `p = 10` gave 1.2% at `k = 32`.
    pub oversample: Option<usize>,
    /// Power iterations `q`.
    pub power_iters: usize,
}

impl Default for Randomized {
    /// `p = max(10, k / 2)`, `q = 2`.
    fn default() -> Self {
        Self {
            oversample: None,
            power_iters: 2,
        }
    }
}

/// An orthonormal basis `Q` (`m x l`, `l = min(m, cols)`) whose span
/// contains the columns of `y`: the thin `Q` of a Householder QR
/// factorization (orthonormal to working precision even when the columns of
/// `y` are nearly dependent, as power iterations make them).
fn orthonormal_basis(y: ArrayView2<'_, f64>) -> Result<Array2<f64>> {
    let (m, n) = y.dim();
    if m == 0 || n == 0 {
        return Err(Error::Empty {
            what: "sketch".into(),
        });
    }
    check_finite("sketch", y)?;
    let size = m.min(n);
    let par = par();
    let bs = recommended_block_size::<f64>(m, n);
    let mut qr = y.to_owned();
    let mut coeff = Array2::<f64>::zeros((bs, size));
    {
        let mut mem = MemBuffer::new(qr_in_place_scratch::<f64>(
            m,
            n,
            bs,
            par,
            Default::default(),
        ));
        qr_in_place(
            as_faer_mut(qr.view_mut()),
            as_faer_mut(coeff.view_mut()),
            par,
            MemStack::new(&mut mem),
            Default::default(),
        );
    }
    // The Householder vectors: the part of the factored matrix below the
    // diagonal, with a unit diagonal and zeros above it.
    let mut basis = qr.slice(ndarray::s![.., ..size]).to_owned();
    for j in 0..size {
        for i in 0..j {
            basis[(i, j)] = 0.0;
        }
        basis[(j, j)] = 1.0;
    }
    let mut q = Array2::<f64>::zeros((m, size));
    for i in 0..size {
        q[(i, i)] = 1.0;
    }
    let mut mem = MemBuffer::new(
        apply_block_householder_sequence_on_the_left_in_place_scratch::<f64>(m, bs, size),
    );
    apply_block_householder_sequence_on_the_left_in_place_with_conj(
        as_faer(basis.view()),
        as_faer(coeff.view()),
        Conj::No,
        as_faer_mut(q.view_mut()),
        par,
        MemStack::new(&mut mem),
    );
    Ok(q)
}

/// Validates a sketch's input and returns the rank `k` (clamped to
/// `min(m, n)`) and the sketch width `l = min(k + p, min(m, n))`.
fn sketch_sizes(a: ArrayView2<'_, f64>, k: usize, cfg: Randomized) -> Result<(usize, usize)> {
    let (m, n) = a.dim();
    if m == 0 || n == 0 {
        return Err(Error::Empty {
            what: "matrix to decompose".into(),
        });
    }
    if k == 0 {
        return Err(Error::invalid("rank", "must be at least 1"));
    }
    check_finite("matrix to decompose", a)?;
    let r = m.min(n);
    let k = k.min(r);
    let p = cfg.oversample.unwrap_or((k / 2).max(10));
    Ok((k, (k + p).min(r)))
}

/// Rank-`k` randomized SVD of `a` (Halko et al.), seeded.
///
/// `k` is clamped to `min(m, n)`; the sketch width `k + p` too.
///
/// # Errors
///
/// As [`thin_svd`]; [`Error::InvalidArgument`] for `k == 0`.
pub fn randomized_svd(a: ArrayView2<'_, f64>, k: usize, cfg: Randomized, seed: u64) -> Result<Svd> {
    let (k, l) = sketch_sizes(a, k, cfg)?;
    let n = a.ncols();
    // The range finder runs in f32 (products with `A` are the cost; a basis
    // accurate to f32 rounding loses nothing at the accuracy a sketch has),
    // the bases are orthonormalized and the final projection made in f64.
    let mut rng = StdRng::seed_from_u64(seed);
    let a32 = a.mapv(|x| x as f32);
    let omega_t = Array2::from_shape_simple_fn((l, n), || {
        let x: f64 = StandardNormal.sample(&mut rng);
        x as f32
    });
    let to32t = |q: &Array2<f64>| q.t().mapv(|x| x as f32);
    let mut q = orthonormal_basis(
        matmul_f32_bt(a32.view(), omega_t.view())
            .mapv(f64::from)
            .view(),
    )?;
    for _ in 0..cfg.power_iters {
        // Z = A^T Q, as Z^T = Q^T A.
        let zt = matmul_f32_bt(to32t(&q).view(), a32.t());
        let z = orthonormal_basis(zt.t().mapv(f64::from).view())?;
        q = orthonormal_basis(
            matmul_f32_bt(a32.view(), to32t(&z).view())
                .mapv(f64::from)
                .view(),
        )?;
    }
    let b = matmul(q.t(), a);
    let small = thin_svd(b.view())?;
    let u = matmul(q.view(), small.u.view());
    Ok(Svd {
        u,
        s: small.s,
        v: small.v,
    }
    .truncate(k))
}

/// Rank-`k` SVD by the randomized block Krylov method (Musco and Musco,
/// NeurIPS 2015): the Rayleigh-Ritz projection onto the whole Krylov space
/// `[M Omega, (M M^T) M Omega, ..., (M M^T)^q M Omega]` (each block
/// re-orthonormalized), which for the same number of products converges much
/// faster than subspace iteration on flat spectra. Seeded.
///
/// # Errors
///
/// As [`randomized_svd`].
pub fn block_krylov_svd(
    a: ArrayView2<'_, f64>,
    k: usize,
    cfg: Randomized,
    seed: u64,
) -> Result<Svd> {
    let (k, l) = sketch_sizes(a, k, cfg)?;
    let n = a.ncols();
    let mut rng = StdRng::seed_from_u64(seed);
    let omega = Array2::from_shape_simple_fn((n, l), || StandardNormal.sample(&mut rng));
    let mut y = orthonormal_basis(matmul(a, omega.view()).view())?;
    let mut blocks = vec![y.clone()];
    for _ in 0..cfg.power_iters {
        if blocks.len() * l >= a.nrows().min(n) {
            break;
        }
        let z = orthonormal_basis(matmul(a.t(), y.view()).view())?;
        y = orthonormal_basis(matmul(a, z.view()).view())?;
        blocks.push(y.clone());
    }
    let views: Vec<_> = blocks.iter().map(|b| b.view()).collect();
    let krylov = ndarray::concatenate(Axis(1), &views)
        .map_err(|e| Error::invalid("Krylov space", e.to_string()))?;
    let q = orthonormal_basis(krylov.view())?;
    let b = matmul(q.t(), a);
    let small = thin_svd(b.view())?;
    let u = matmul(q.view(), small.u.view());
    Ok(Svd {
        u,
        s: small.s,
        v: small.v,
    }
    .truncate(k))
}

/// Symmetric eigendecomposition `R = V diag(lambda) V^T` (eigenvalues
/// non-decreasing) of the symmetric part of `r`.
///
/// # Errors
///
/// [`Error::Shape`] for a non-square matrix, [`Error::NonFinite`],
/// [`Error::InvalidArgument`] if the iteration does not converge.
pub fn sym_eigen(r: ArrayView2<'_, f64>) -> Result<(Vec<f64>, Array2<f64>)> {
    let n = square("symmetric matrix", r)?;
    check_finite("symmetric matrix", r)?;
    let sym = symmetrize(r);
    let mut v = Array2::<f64>::zeros((n, n));
    let mut s = Diag::<f64>::zeros(n);
    let par = par();
    let mut mem = MemBuffer::new(self_adjoint_evd_scratch::<f64>(
        n,
        ComputeEigenvectors::Yes,
        par,
        Default::default(),
    ));
    self_adjoint_evd(
        as_faer(sym.view()),
        s.as_mut(),
        Some(as_faer_mut(v.view_mut())),
        par,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .map_err(|e| Error::invalid("eigendecomposition", format!("did not converge ({e:?})")))?;
    Ok((s.column_vector().iter().copied().collect(), v))
}

fn square(what: &str, r: ArrayView2<'_, f64>) -> Result<usize> {
    let n = r.nrows();
    if n == 0 || r.ncols() != n {
        return Err(Error::shape(
            what,
            "square and non-empty",
            format!("{}x{}", r.nrows(), r.ncols()),
        ));
    }
    Ok(n)
}

/// `(R + R^T) / 2`.
pub fn symmetrize(r: ArrayView2<'_, f64>) -> Array2<f64> {
    let mut s = r.to_owned();
    let n = s.nrows();
    for i in 0..n {
        for j in 0..i {
            let v = 0.5 * (r[(i, j)] + r[(j, i)]);
            s[(i, j)] = v;
            s[(j, i)] = v;
        }
    }
    s
}

/// The lower Cholesky factor `L` of a symmetric matrix (`R = L L^T`, read
/// from the symmetric part), or `None` when a pivot is not positive.
///
/// # Errors
///
/// [`Error::Shape`] and [`Error::NonFinite`] for bad input.
pub fn cholesky_lower(r: ArrayView2<'_, f64>) -> Result<Option<Array2<f64>>> {
    let n = square("symmetric matrix", r)?;
    check_finite("symmetric matrix", r)?;
    let mut l = symmetrize(r);
    let par = par();
    let mut mem = MemBuffer::new(cholesky_in_place_scratch::<f64>(n, par, Default::default()));
    let ok = cholesky_in_place(
        as_faer_mut(l.view_mut()),
        LltRegularization::default(),
        par,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .is_ok();
    if !ok {
        return Ok(None);
    }
    for i in 0..n {
        for j in i + 1..n {
            l[(i, j)] = 0.0;
        }
    }
    if l.iter().any(|v| !v.is_finite()) {
        return Ok(None);
    }
    Ok(Some(l))
}

/// Solves `L^T X = B` in place for a lower triangular `L` (so `X = L^{-T} B`).
pub fn solve_lower_transpose_in_place(l: ArrayView2<'_, f64>, b: &mut Array2<f64>) {
    solve_upper_triangular_in_place(as_faer(l).transpose(), as_faer_mut(b.view_mut()), par());
}
