//! The closed forms are optima: their objective equals the tail of the
//! scaled singular values, and no perturbation of the factors improves it.

mod common;

use common::*;
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use shrink_core::{Compressor, Context, LayerStats, Reconstruct};
use shrink_lowrank::dense::{cholesky_lower, singular_values, sym_eigen};
use shrink_lowrank::{Factors, LowRank, Method, Rank, Side, Whitening};
use shrink_quant::Rtn;

fn fit(method: Method, k: usize, w: &Array2<f32>, stats: &LayerStats) -> Factors {
    LowRank::new(method, Rank::Fixed(k))
        .fit(w.view(), &Context::with_stats(stats))
        .unwrap()
}

/// `sum_{i>k} sigma_i(M S)^2` with `S` the symmetric square root of `R`,
/// computed here from the eigendecomposition independently of the library's
/// whitening code.
fn whitened_tail(m: &Array2<f64>, stats: &LayerStats, k: usize) -> f64 {
    let r = stats.gram() / stats.count() as f64;
    let (lam, v) = sym_eigen(r.view()).unwrap();
    let max = *lam.last().unwrap();
    let mut vs = v.clone();
    for (j, mut c) in vs.columns_mut().into_iter().enumerate() {
        let l = lam[j].max(1e-12 * max).sqrt();
        c.mapv_inplace(|x| x * l);
    }
    let s = vs.dot(&v.t());
    let sv = singular_values(m.dot(&s).view()).unwrap();
    sv[k..].iter().map(|x| x * x).sum()
}

fn quantization_error(w: &Array2<f32>) -> Array2<f32> {
    let q = Rtn::from_stage(&"rtn:int3:g128:asym".parse().unwrap()).unwrap();
    let wq = q
        .compress(w.view(), &Context::default())
        .unwrap()
        .to_dense();
    w - &wq
}

/// `tol`: relative agreement of the objective with the tail (the clipped
/// eigenvalues of a singular `R` move the optimum by about 1e-12 relative
/// per clipped direction).
fn check_optimum(m: &Array2<f32>, f: &Factors, stats: &LayerStats, k: usize, seed: u64, tol: f64) {
    let m64 = f64m(m);
    let r = stats.gram() / stats.count() as f64;
    let obj = output_error(m64.view(), f.to_dense().view(), &r);
    let tail = whitened_tail(&m64, stats, k);
    assert!(
        (obj - tail).abs() <= tol * tail.max(1e-300),
        "objective {obj:e} != tail {tail:e}"
    );
    // No random rank-k perturbation of the factors lowers the objective.
    let mut rng = StdRng::seed_from_u64(seed);
    for t in 0..12 {
        let eps = 10f64.powi(-2 - (t % 4));
        let sa = eps * f.a.iter().map(|x| x.abs()).fold(0.0, f64::max);
        let sb = eps * f.b.iter().map(|x| x.abs()).fold(0.0, f64::max);
        let a = &f.a + &(gaussian(f.a.nrows(), f.a.ncols(), &mut rng) * sa);
        let b = &f.b + &(gaussian(f.b.nrows(), f.b.ncols(), &mut rng) * sb);
        let p = Factors {
            a,
            b,
            kept: f.kept.clone(),
        };
        let o = output_error(m64.view(), p.to_dense().view(), &r);
        assert!(
            o >= obj * (1.0 - 1e-12),
            "perturbation {t} lowered the objective: {o:e} < {obj:e}"
        );
    }
}

#[test]
fn qera_exact_is_the_whitened_optimum_on_a_real_layer() {
    let (w, stats) = fixture();
    let e = quantization_error(&w);
    for k in [8, 32] {
        for wh in [Whitening::SymSqrt, Whitening::Cholesky] {
            let f = fit(Method::Qera(wh), k, &e, &stats);
            check_optimum(&e, &f, &stats, k, k as u64, 1e-9);
        }
    }
}

#[test]
fn svd_llm_is_the_whitened_optimum_and_equals_qera_on_w() {
    let (w, stats) = fixture();
    let k = 32;
    let llm = fit(Method::SvdLlm, k, &w, &stats);
    check_optimum(&w, &llm, &stats, k, 7, 1e-9);
    let qera = fit(Method::Qera(Whitening::SymSqrt), k, &w, &stats).to_dense();
    let qchol = fit(Method::Qera(Whitening::Cholesky), k, &w, &stats).to_dense();
    let scale = w.iter().fold(0.0f32, |a, x| a.max(x.abs())) as f64;
    for (name, other) in [("qera sqrt", &qera), ("qera chol", &qchol)] {
        let d = (&llm.to_dense() - other)
            .iter()
            .fold(0.0f64, |a, x| a.max(x.abs()));
        assert!(d <= 1e-7 * scale, "svd-llm vs {name}: max diff {d:e}");
    }
}

#[test]
fn optima_on_random_correlated_inputs_with_dead_channels() {
    for seed in 0..4u64 {
        let stats = correlated_stats(400, 48, (seed % 3) as usize, seed);
        let mut rng = StdRng::seed_from_u64(100 + seed);
        let w = gaussian(40, 48, &mut rng).mapv(|x| x as f32);
        for k in [1, 5, 20] {
            let f = fit(Method::Qera(Whitening::SymSqrt), k, &w, &stats);
            let tol = if seed % 3 == 0 { 1e-9 } else { 1e-7 };
            check_optimum(&w, &f, &stats, k, seed, tol);
        }
    }
}

#[test]
fn cholesky_and_symmetric_square_root_whitening_agree() {
    for seed in 0..3u64 {
        let stats = correlated_stats(500, 40, 0, seed);
        let r = stats.gram() / stats.count() as f64;
        assert!(cholesky_lower(r.view()).unwrap().is_some());
        let mut rng = StdRng::seed_from_u64(seed);
        let w = gaussian(30, 40, &mut rng).mapv(|x| x as f32);
        let a = fit(Method::Qera(Whitening::SymSqrt), 6, &w, &stats).to_dense();
        let b = fit(Method::Qera(Whitening::Cholesky), 6, &w, &stats).to_dense();
        let c = fit(Method::SvdLlm, 6, &w, &stats).to_dense();
        let scale = a.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for other in [&b, &c] {
            let d = (&a - other).iter().fold(0.0f64, |m, x| m.max(x.abs()));
            assert!(d <= 1e-9 * scale, "max diff {d:e}");
        }
    }
}

#[test]
fn qera_exact_beats_every_heuristic_on_the_real_layer() {
    let (w, stats) = fixture();
    let e = quantization_error(&w);
    let w64 = f64m(&w);
    let wq = &w64 - &f64m(&e);
    let err = |m: Method| {
        let c = fit(m, 32, &e, &stats).to_dense();
        rel_output_error(w64.view(), (&wq + &c).view(), &stats)
    };
    let exact = err(Method::Qera(Whitening::SymSqrt));
    for m in [Method::QeraApprox, Method::Lqer, Method::Lorc] {
        let h = err(m);
        assert!(exact <= h, "qera {exact} > {m:?} {h}");
    }
}

#[test]
fn qera_exact_beats_every_heuristic_on_the_shared_layers() {
    let layers = shared_layers();
    for (name, w, stats) in &layers {
        let e = quantization_error(w);
        let w64 = f64m(w);
        let wq = &w64 - &f64m(&e);
        let err = |m: Method| {
            let c = fit(m, 32, &e, stats).to_dense();
            rel_output_error(w64.view(), (&wq + &c).view(), stats)
        };
        let exact = err(Method::Qera(Whitening::SymSqrt));
        for m in [Method::QeraApprox, Method::Lqer, Method::Lorc] {
            let h = err(m);
            assert!(exact <= h, "{name}: qera {exact} > {m:?} {h}");
        }
    }
}

#[test]
fn fwsvd_lowers_its_own_objective_and_equals_svd_for_uniform_fisher() {
    let (w, stats) = fixture();
    let f = stats.fisher().unwrap().mapv(f64::from);
    let w64 = f64m(&w);
    let svd = fit(Method::Svd, 32, &w, &stats).to_dense();
    for (side, rows) in [(Side::Output, true), (Side::Input, false)] {
        let d = if rows {
            f.sum_axis(ndarray::Axis(1))
        } else {
            f.sum_axis(ndarray::Axis(0))
        }
        .mapv(f64::sqrt);
        let fw = fit(Method::Fwsvd(side), 32, &w, &stats).to_dense();
        let a = side_error(w64.view(), fw.view(), &d, rows);
        let b = side_error(w64.view(), svd.view(), &d, rows);
        assert!(a <= b, "{side:?}: fwsvd {a} > svd {b}");
    }
    // Uniform Fisher: both sides reduce to plain SVD.
    let uniform = LayerStats::from_parts(stats.gram().clone(), stats.count(), None, None)
        .unwrap()
        .with_fisher(Array2::from_elem(w.dim(), 0.25))
        .unwrap();
    for side in [Side::Output, Side::Input] {
        let fw = fit(Method::Fwsvd(side), 32, &w, &uniform).to_dense();
        let d = (&fw - &svd).iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(
            d < 1e-10,
            "{side:?}: uniform Fisher differs from svd by {d:e}"
        );
    }
}

#[test]
fn plain_svd_is_the_frobenius_optimum() {
    let mut rng = StdRng::seed_from_u64(3);
    let w = gaussian(30, 20, &mut rng).mapv(|x| x as f32);
    let stats = LayerStats::identity(20, 1).unwrap();
    let f = fit(Method::Svd, 5, &w, &stats);
    check_optimum(&w, &f, &stats, 5, 3, 1e-9);
    // The same through a naive formula: ||W - W'||^2 = sum of the tail.
    let sv = singular_values(f64m(&w).view()).unwrap();
    let tail: f64 = sv[5..].iter().map(|x| x * x).sum();
    let e = &f64m(&w) - &f.to_dense();
    let direct: f64 = e.iter().map(|x| x * x).sum();
    assert!((direct - tail).abs() <= 1e-10 * tail);
}
