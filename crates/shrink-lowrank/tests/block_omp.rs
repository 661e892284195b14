//! Block-OMP against plain OMP: the same supports and coefficients with one
//! atom per step, OMP's support on an orthonormal dictionary with any step
//! count, exact energies, a bounded residual gap with few steps, and
//! CoSpaDi with the block coder (monotone, the same bits on 1 and 2 threads).

mod common;

use common::*;
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use shrink_core::{Compressor, Context, Error, Reconstruct, StageSpec};
use shrink_lowrank::block_omp::block_omp;
use shrink_lowrank::cospadi::omp;
use shrink_lowrank::{Budget, Coder, Cospadi};

/// A random unit-norm dictionary (`n x k`, columns) and signals (`n x N`).
fn dictionary(n: usize, k: usize, signals: usize, seed: u64) -> (Array2<f64>, Array2<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut d = gaussian(n, k, &mut rng);
    for mut c in d.columns_mut() {
        let nrm = c.iter().map(|x| x * x).sum::<f64>().sqrt();
        c.mapv_inplace(|x| x / nrm);
    }
    (d, gaussian(n, signals, &mut rng))
}

/// `||y_j - D c_j||^2` for every signal, computed from the dense code.
fn residuals(d: &Array2<f64>, y: &Array2<f64>, idx: &[u32], val: &[f64], s: usize) -> Vec<f64> {
    let k = d.ncols();
    (0..y.ncols())
        .map(|j| {
            let mut c = ndarray::Array1::<f64>::zeros(k);
            for q in 0..s {
                c[idx[j * s + q] as usize] += val[j * s + q];
            }
            let r = &y.column(j) - &d.dot(&c);
            r.dot(&r)
        })
        .collect()
}

#[test]
fn one_atom_per_step_is_omp() {
    for (n, k, s, signals, seed) in [(48, 64, 8, 40, 1), (64, 96, 20, 30, 2), (40, 40, 12, 25, 3)] {
        let (d, y) = dictionary(n, k, signals, seed);
        let dty = d.t().dot(&y);
        let dtd = d.t().dot(&d);
        let (i0, v0, e0) = omp(dty.view(), dtd.view(), s).unwrap();
        let (i1, v1, e1) = block_omp(dty.view(), dtd.view(), s, s, 100).unwrap();
        assert_eq!(i0, i1, "supports (n {n}, k {k}, s {s})");
        for (a, b) in v0.iter().zip(&v1) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
        }
        for (a, b) in e0.iter().zip(&e1) {
            assert!((a - b).abs() <= 1e-6 * a.abs(), "energy {a} vs {b}");
        }
    }
}

#[test]
fn on_an_orthonormal_dictionary_any_step_count_is_omp() {
    let mut rng = StdRng::seed_from_u64(4);
    let (n, k, s, signals) = (64, 48, 20, 30);
    let q = shrink_lowrank::dense::thin_svd(gaussian(n, k, &mut rng).view())
        .unwrap()
        .u;
    let y = gaussian(n, signals, &mut rng);
    let dty = q.t().dot(&y);
    let dtd = q.t().dot(&q);
    let (i0, v0, _) = omp(dty.view(), dtd.view(), s).unwrap();
    for steps in [1, 3, 7, s] {
        let (i1, v1, _) = block_omp(dty.view(), dtd.view(), s, steps, 2).unwrap();
        for j in 0..signals {
            let mut a: Vec<u32> = i0[j * s..(j + 1) * s].to_vec();
            let mut b: Vec<u32> = i1[j * s..(j + 1) * s].to_vec();
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "steps {steps}, signal {j}");
        }
        // Coefficients are the correlations (G = I), up to f32 rounding.
        let r0 = residuals(&q, &y, &i0, &v0, s);
        let r1 = residuals(&q, &y, &i1, &v1, s);
        for (a, b) in r0.iter().zip(&r1) {
            assert!((a - b).abs() <= 1e-5 * a, "{a} vs {b}");
        }
    }
}

#[test]
fn energies_are_exact_and_few_steps_stay_close_to_omp() {
    // CoSpaDi's regime: an undercomplete dictionary (k < n) and s = k / 2.
    let (n, k, s, signals) = (128, 96, 48, 60);
    let (d, y) = dictionary(n, k, signals, 5);
    let dty = d.t().dot(&y);
    let dtd = d.t().dot(&d);
    let (i0, v0, _) = omp(dty.view(), dtd.view(), s).unwrap();
    let r0: f64 = residuals(&d, &y, &i0, &v0, s).iter().sum();
    let yy: Vec<f64> = y.columns().into_iter().map(|c| c.dot(&c)).collect();
    // Measured residual over OMP's: 1.121 (4 steps), 1.063 (8), 1.020 (16).
    for (steps, bound) in [(4, 1.15), (8, 1.08), (16, 1.03)] {
        let (i1, v1, e1) = block_omp(dty.view(), dtd.view(), s, steps, 2).unwrap();
        let r = residuals(&d, &y, &i1, &v1, s);
        for j in 0..signals {
            let mut sup: Vec<u32> = i1[j * s..(j + 1) * s].to_vec();
            sup.sort_unstable();
            sup.dedup();
            assert_eq!(sup.len(), s, "s distinct atoms");
            assert!(
                (yy[j] - e1[j] - r[j]).abs() <= 1e-9 * yy[j],
                "energy of signal {j}: {} vs {}",
                yy[j] - e1[j],
                r[j]
            );
        }
        let r1: f64 = r.iter().sum();
        assert!(r1 <= bound * r0, "steps {steps}: {r1} vs OMP {r0}");
        assert!(r1 >= 0.95 * r0, "steps {steps}: {r1} vs OMP {r0}");
    }
}

#[test]
fn bad_input_is_an_error() {
    let (d, y) = dictionary(8, 6, 3, 6);
    let dty = d.t().dot(&y);
    let dtd = d.t().dot(&d);
    for (s, steps) in [(0, 1), (7, 1), (3, 0), (3, 4)] {
        assert!(matches!(
            block_omp(dty.view(), dtd.view(), s, steps, 2),
            Err(Error::Shape { .. })
        ));
    }
    let mut bad = dty.clone();
    bad[(0, 0)] = f64::NAN;
    assert!(matches!(
        block_omp(bad.view(), dtd.view(), 2, 2, 2),
        Err(Error::NonFinite { .. })
    ));
}

#[test]
fn cospadi_with_the_block_coder_is_monotone_and_thread_independent() {
    let (w, stats) = fixture();
    let ctx = Context {
        stats: Some(&stats),
        seed: 7,
        mask: None,
    };
    let mut c = Cospadi::new(Budget::Ratio(0.5));
    c.coder = Coder::Block(6);
    c.iters = 8;
    c.tol = 0.0;
    let fit = c.fit(w.view(), &ctx).unwrap();
    for p in fit.history.windows(2) {
        assert!(p[1] <= p[0] * (1.0 + 1e-12), "{} then {}", p[0], p[1]);
    }
    let stage =
        Cospadi::from_stage(&"cospadi:ratio0.5:it4:bomp6".parse::<StageSpec>().unwrap()).unwrap();
    assert_eq!(stage.coder, Coder::Block(6));
    assert_eq!(stage.recipe(), "cospadi:ratio0.5:it4:bomp6");
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| stage.compress(w.view(), &ctx).unwrap().to_dense())
    };
    let a = run(1);
    assert_eq!(a, run(2));
    // Within 2% of Batch-OMP's error on the real layer.
    let mut omp_stage = stage.clone();
    omp_stage.coder = Coder::Omp;
    let w64 = f64m(&w);
    let eb = rel_output_error(w64.view(), a.mapv(f64::from).view(), &stats);
    let eo = rel_output_error(
        w64.view(),
        omp_stage
            .compress(w.view(), &ctx)
            .unwrap()
            .to_dense()
            .mapv(f64::from)
            .view(),
        &stats,
    );
    assert!(eb <= 1.02 * eo, "block {eb} vs omp {eo}");
}
