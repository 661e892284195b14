//! faer's SVD and symmetric eigensolver against LAPACK (feature `lapack`).
#![cfg(feature = "lapack")]

mod common;

use common::*;
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use shrink_lowrank::{dense, lapack};

fn max_abs(a: &Array2<f64>) -> f64 {
    a.iter().fold(0.0, |m, x| m.max(x.abs()))
}

#[test]
fn faer_svd_agrees_with_lapack() {
    let mut rng = StdRng::seed_from_u64(1);
    for (m, n) in [(40, 25), (25, 40), (200, 200), (384, 96)] {
        let a = gaussian(m, n, &mut rng);
        let f = dense::thin_svd(a.view()).unwrap();
        let l = lapack::thin_svd(a.view()).unwrap();
        assert_eq!(f.s.len(), l.s.len());
        for (x, y) in f.s.iter().zip(&l.s) {
            assert!((x - y).abs() <= 1e-12 * l.s[0], "{m}x{n}: {x} vs {y}");
        }
        // Same singular subspaces: |U_f^T U_l| is the identity (distinct
        // singular values of a Gaussian matrix), and both reconstruct A.
        let c = f.u.t().dot(&l.u).mapv(f64::abs);
        for i in 0..f.s.len() {
            assert!((c[(i, i)] - 1.0).abs() < 1e-8, "{m}x{n}: vector {i}");
        }
        assert!(max_abs(&(&f.to_dense() - &a)) < 1e-12 * max_abs(&a) * 100.0);
        assert!(max_abs(&(&l.to_dense() - &a)) < 1e-12 * max_abs(&a) * 100.0);
    }
}

#[test]
fn faer_eigensolver_agrees_with_lapack_on_a_real_gram_matrix() {
    let (_, stats) = fixture();
    let r = stats.gram() / stats.count() as f64;
    let (fv, fvec) = dense::sym_eigen(r.view()).unwrap();
    let (lv, _) = lapack::sym_eigen(r.view()).unwrap();
    let top = *lv.last().unwrap();
    for (x, y) in fv.iter().zip(&lv) {
        assert!((x - y).abs() <= 1e-11 * top, "{x} vs {y}");
    }
    // V diag(lambda) V^T reconstructs R.
    let mut vl = fvec.clone();
    for (j, mut c) in vl.columns_mut().into_iter().enumerate() {
        c.mapv_inplace(|x| x * fv[j]);
    }
    let back = vl.dot(&fvec.t());
    assert!(max_abs(&(&back - &r)) <= 1e-11 * top);
}

#[test]
fn whitened_tail_is_the_same_through_lapack() {
    let (w, stats) = fixture();
    let r = stats.gram() / stats.count() as f64;
    let l = dense::cholesky_lower(r.view()).unwrap().unwrap();
    let m = f64m(&w).dot(&l);
    let a = dense::singular_values(m.view()).unwrap();
    let b = lapack::thin_svd(m.view()).unwrap().s;
    let ta: f64 = a[64..].iter().map(|x| x * x).sum();
    let tb: f64 = b[64..].iter().map(|x| x * x).sum();
    assert!((ta - tb).abs() <= 1e-10 * tb, "{ta} vs {tb}");
}
