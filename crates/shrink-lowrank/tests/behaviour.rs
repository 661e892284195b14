//! Randomized SVD accuracy and seeding, determinism across thread counts,
//! the forward pass, recipes and typed errors.

mod common;

use common::*;
use ndarray::{Array2, s};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use shrink_core::{Compressor, Context, Error, LayerStats, Mask, Reconstruct, StageSpec};
use shrink_lowrank::dense::{randomized_svd, right_singular_vectors, singular_values, thin_svd};
use shrink_lowrank::scaled::{Scaling, Solver, approximate};
use shrink_lowrank::{LowRank, LowRankMatrix, Method, Precision, Randomized, Rank, Whitening};

fn stage(text: &str) -> LowRank {
    LowRank::from_stage(&text.parse::<StageSpec>().unwrap()).unwrap()
}

/// `U diag(sigma) V^T` with random orthonormal `U`, `V` and the given spectrum.
fn with_spectrum(m: usize, n: usize, sigma: &[f64], seed: u64) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let r = sigma.len();
    let u = thin_svd(gaussian(m, r, &mut rng).view()).unwrap().u;
    let v = thin_svd(gaussian(n, r, &mut rng).view()).unwrap().u;
    let mut us = u.clone();
    for (j, mut c) in us.columns_mut().into_iter().enumerate() {
        c.mapv_inplace(|x| x * sigma[j]);
    }
    us.dot(&v.t())
}

#[test]
fn randomized_svd_is_within_one_percent_on_decaying_spectra() {
    let (m, n) = (300, 256);
    let spectra: Vec<(&str, Vec<f64>)> = vec![
        ("power 1", (0..n).map(|i| 1.0 / (i as f64 + 1.0)).collect()),
        (
            "power 0.5",
            (0..n).map(|i| 1.0 / (i as f64 + 1.0).sqrt()).collect(),
        ),
        (
            "power 2",
            (0..n).map(|i| 1.0 / (i as f64 + 1.0).powi(2)).collect(),
        ),
        (
            "exponential",
            (0..n).map(|i| 0.97f64.powi(i as i32)).collect(),
        ),
    ];
    for (name, sigma) in &spectra {
        let a = with_spectrum(m, n, sigma, 11);
        for k in [4, 16, 32] {
            assert!(k <= n / 8);
            let opt: f64 = sigma[k..].iter().map(|x| x * x).sum();
            let f = approximate(
                a.view(),
                &Scaling::Identity,
                k,
                Solver::Randomized(Randomized::default()),
                5,
            )
            .unwrap();
            let e = &a - &f.to_dense();
            let err: f64 = e.iter().map(|x| x * x).sum();
            assert!(
                err <= 1.01 * opt,
                "{name} k={k}: {err} vs optimum {opt} ({:.4})",
                err / opt
            );
            assert!(
                err >= opt * (1.0 - 1e-9),
                "{name} k={k}: below the optimum?"
            );
        }
    }
}

#[test]
fn randomized_svd_is_seeded() {
    let a = with_spectrum(
        120,
        90,
        &(0..90).map(|i| 0.9f64.powi(i)).collect::<Vec<_>>(),
        2,
    );
    let cfg = Randomized {
        oversample: Some(5),
        power_iters: 1,
    };
    let x = randomized_svd(a.view(), 8, cfg, 42).unwrap();
    let y = randomized_svd(a.view(), 8, cfg, 42).unwrap();
    assert_eq!(x, y);
    let z = randomized_svd(a.view(), 8, cfg, 43).unwrap();
    assert_ne!(x.u, z.u, "a different seed draws a different sketch");
    // The stage uses the context's seed: same seed, same bytes.
    let w = a.mapv(|v| v as f32);
    let st = stage("rsvd:r8");
    let c1 = st
        .compress(
            w.view(),
            &Context {
                seed: 9,
                ..Context::default()
            },
        )
        .unwrap();
    let c2 = st
        .compress(
            w.view(),
            &Context {
                seed: 9,
                ..Context::default()
            },
        )
        .unwrap();
    assert_eq!(c1.to_dense(), c2.to_dense());
}

#[test]
fn svd_factors_are_a_decomposition() {
    let mut rng = StdRng::seed_from_u64(1);
    let a = gaussian(23, 17, &mut rng);
    let svd = thin_svd(a.view()).unwrap();
    let back = svd.to_dense();
    let d = (&a - &back).iter().fold(0.0f64, |m, x| m.max(x.abs()));
    assert!(d < 1e-12);
    let utu = svd.u.t().dot(&svd.u);
    let vtv = svd.v.t().dot(&svd.v);
    for (i, j) in (0..17).flat_map(|i| (0..17).map(move |j| (i, j))) {
        let id = if i == j { 1.0 } else { 0.0 };
        assert!((utu[(i, j)] - id).abs() < 1e-12 && (vtv[(i, j)] - id).abs() < 1e-12);
    }
    assert!(svd.s.windows(2).all(|p| p[0] >= p[1]));
    assert_eq!(singular_values(a.view()).unwrap().len(), 17);
}

/// Right singular vectors alone: `A^T A v_i = s_i^2 v_i`, orthonormal, the
/// singular values of the full SVD, on a wide and a tall matrix.
#[test]
fn right_singular_vectors_alone() {
    let mut rng = StdRng::seed_from_u64(2);
    for (m, n) in [(23, 17), (12, 30)] {
        let a = gaussian(m, n, &mut rng);
        let (s, v) = right_singular_vectors(a.view()).unwrap();
        let full = thin_svd(a.view()).unwrap();
        assert_eq!(v.dim(), (n, m.min(n)));
        for (x, y) in s.iter().zip(&full.s) {
            assert!((x - y).abs() <= 1e-12 * full.s[0]);
        }
        let ata = a.t().dot(&a);
        for (i, &si) in s.iter().enumerate() {
            let vi = v.column(i);
            let r = ata.dot(&vi) - &vi * (si * si);
            assert!(
                r.iter().all(|x| x.abs() < 1e-10 * s[0] * s[0]),
                "vector {i}"
            );
        }
        let vtv = v.t().dot(&v);
        for ((i, j), x) in vtv.indexed_iter() {
            let id = if i == j { 1.0 } else { 0.0 };
            assert!((x - id).abs() < 1e-12);
        }
    }
    assert!(right_singular_vectors(Array2::<f64>::zeros((0, 3)).view()).is_err());
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (w, stats) = fixture();
    let w = w.slice(s![.., ..]).to_owned();
    let recipes = [
        "svd:r32",
        "rsvd:r32",
        "fwsvd:r32",
        "fwsvd:r32:col",
        "svd-llm:r32",
        "asvd:r32",
        "qera:r32",
        "qera:r32:chol",
        "qera:r32:chol:rand",
        "qera-approx:r16",
        "lqer:r16",
        "lorc:r16",
    ];
    let run = |threads: usize| -> Vec<Array2<f32>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            recipes
                .iter()
                .map(|r| {
                    stage(r)
                        .compress(
                            w.view(),
                            &Context {
                                stats: Some(&stats),
                                seed: 3,
                                mask: None,
                            },
                        )
                        .unwrap()
                        .to_dense()
                })
                .collect()
        })
    };
    let one = run(1);
    let two = run(2);
    for ((r, a), b) in recipes.iter().zip(&one).zip(&two) {
        assert!(a == b, "{r}: 1 and 2 threads differ");
    }
}

#[test]
fn forward_equals_the_dense_product() {
    let (w, stats) = fixture();
    let c = stage("qera:r16")
        .compress(w.view(), &Context::with_stats(&stats))
        .unwrap();
    let x = correlated_inputs(37, 384, 0, 1);
    let y = c.forward(x.view()).unwrap();
    let d = c.to_dense();
    let yd = x.dot(&d.t());
    let scale = yd.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = (&y - &yd).iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        diff <= 1e-4 * scale,
        "forward differs by {diff} (scale {scale})"
    );
    let lr = c.downcast_ref::<LowRankMatrix>().unwrap();
    assert_eq!(lr.rank(), 16);
    assert_eq!(lr.a().dim(), (384, 16));
    assert_eq!(lr.b().dim(), (16, 384));
    assert!(matches!(
        c.forward(x.slice(s![.., ..100]).view()),
        Err(Error::Shape { .. })
    ));
}

#[test]
fn stored_factors_round_trip_through_from_parts() {
    let (w, _) = fixture();
    for p in ["f16", "bf16", "f32"] {
        let c = stage(&format!("svd:r8:{p}"))
            .compress(w.view(), &Context::default())
            .unwrap();
        let lr = c.downcast_ref::<LowRankMatrix>().unwrap();
        let back = LowRankMatrix::from_parts(lr.a(), lr.b(), lr.precision()).unwrap();
        assert_eq!(&back, lr);
    }
    let a = Array2::from_elem((4, 2), 0.1f32);
    let b = Array2::from_elem((2, 3), 0.5f32);
    assert!(matches!(
        LowRankMatrix::from_parts(a.view(), b.view(), Precision::F16),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(LowRankMatrix::from_parts(a.view(), b.view(), Precision::F32).is_ok());
    assert!(matches!(
        LowRankMatrix::from_parts(a.view(), b.t(), Precision::F32),
        Err(Error::Shape { .. })
    ));
}

#[test]
fn recipes_round_trip_in_canonical_form() {
    for (text, canon) in [
        ("svd:r64", "svd:r64"),
        ("rsvd:r64", "rsvd:r64"),
        ("svd:r64:rand", "rsvd:r64"),
        ("rsvd:r64:q3:p12", "rsvd:r64:p12:q3"),
        ("fwsvd:r64:row", "fwsvd:r64"),
        ("fwsvd:r64:col", "fwsvd:r64:col"),
        ("asvd:r64:a0.5", "asvd:r64"),
        ("asvd:r64:a1", "asvd:r64:a1"),
        ("qera:r32:sqrt:f16", "qera:r32"),
        ("qera:r32:f32:chol:rand", "qera:r32:chol:rand:f32"),
        ("svd-llm:ratio0.5", "svd-llm:ratio0.5"),
        ("lorc:r8:bf16", "lorc:r8:bf16"),
    ] {
        assert_eq!(stage(text).recipe(), canon, "{text}");
        assert_eq!(stage(canon).recipe(), canon);
    }
}

#[test]
fn bad_recipes_are_typed_errors() {
    for bad in [
        "svd",
        "svd:64",
        "svd:r0",
        "svd:r-3",
        "svd:ratio1",
        "svd:ratio-0.1",
        "svd:r8:p5",
        "fwsvd:r8:chol",
        "qera:r8:col",
        "asvd:r8:a0",
        "svd:r8:f8",
        "svd:r8:f16:f32",
        "svd:r8:rand:rand",
        "lqer:r8:zz",
    ] {
        let s: StageSpec = bad.parse().unwrap();
        assert!(
            matches!(LowRank::from_stage(&s), Err(Error::Recipe { .. })),
            "{bad}"
        );
    }
}

#[test]
fn missing_or_bad_data_are_typed_errors() {
    let mut rng = StdRng::seed_from_u64(0);
    let w = gaussian(12, 10, &mut rng).mapv(|x| x as f32);
    let none = Context::default();
    for r in [
        "svd-llm:r2",
        "asvd:r2",
        "qera:r2",
        "qera-approx:r2",
        "lqer:r2",
        "fwsvd:r2",
    ] {
        assert!(
            matches!(stage(r).compress(w.view(), &none), Err(Error::Stats { .. })),
            "{r}"
        );
    }
    // Statistics without Fisher information.
    let stats = correlated_stats(50, 10, 0, 1);
    let ctx = Context::with_stats(&stats);
    assert!(matches!(
        stage("fwsvd:r2").compress(w.view(), &ctx),
        Err(Error::Stats { .. })
    ));
    // Statistics of the wrong width.
    let other = correlated_stats(50, 11, 0, 1);
    assert!(matches!(
        stage("qera:r2").compress(w.view(), &Context::with_stats(&other)),
        Err(Error::Shape { .. })
    ));
    // A Fisher matrix of the wrong shape, and one that is all zero.
    let f = stats
        .clone()
        .with_fisher(Array2::from_elem((5, 10), 1.0))
        .unwrap();
    assert!(matches!(
        stage("fwsvd:r2").compress(w.view(), &Context::with_stats(&f)),
        Err(Error::Shape { .. })
    ));
    let z = stats.clone().with_fisher(Array2::zeros((12, 10))).unwrap();
    assert!(matches!(
        stage("fwsvd:r2").compress(w.view(), &Context::with_stats(&z)),
        Err(Error::Stats { .. })
    ));
    // Bad weights.
    let mut nan = w.clone();
    nan[(3, 4)] = f32::NAN;
    assert!(matches!(
        stage("svd:r2").compress(nan.view(), &none),
        Err(Error::NonFinite { .. })
    ));
    let empty = Array2::<f32>::zeros((0, 10));
    assert!(matches!(
        stage("svd:r2").compress(empty.view(), &none),
        Err(Error::Empty { .. })
    ));
    // A budget that leaves no rank.
    let tiny = Array2::<f32>::ones((2, 2));
    assert!(matches!(
        stage("svd:ratio0.9").compress(tiny.view(), &none),
        Err(Error::InvalidArgument { .. })
    ));
    // Restricting a dense low-rank stage to a mask.
    let mask = Mask::full(12, 10, true);
    let masked = Context {
        mask: Some(&mask),
        ..Context::default()
    };
    assert!(matches!(
        stage("svd:r2").compress(w.view(), &masked),
        Err(Error::InvalidArgument { .. })
    ));
    // f16 overflow is reported, f32 stores it.
    let huge = Array2::from_elem((4, 4), 1e10f32);
    assert!(matches!(
        stage("svd:r1").compress(huge.view(), &none),
        Err(Error::NonFinite { .. })
    ));
    assert!(stage("svd:r1:f32").compress(huge.view(), &none).is_ok());
}

#[test]
fn indefinite_or_singular_statistics_never_give_nan() {
    let mut rng = StdRng::seed_from_u64(5);
    let w = gaussian(20, 16, &mut rng).mapv(|x| x as f32);
    // Dead channels and exactly dependent columns: singular R.
    let mut x = correlated_inputs(200, 16, 3, 2);
    let col = x.column(5).to_owned();
    x.column_mut(7).assign(&(&col * 2.0));
    let mut singular = LayerStats::new(16).unwrap();
    singular.observe(x.view()).unwrap();
    // Slightly indefinite: R = V diag(lambda) V^T with lambda_min < 0.
    let q = thin_svd(gaussian(16, 16, &mut rng).view()).unwrap().u;
    let mut vl = q.clone();
    for (j, mut c) in vl.columns_mut().into_iter().enumerate() {
        let l = if j == 0 { -1e-9 } else { 1.0 + j as f64 };
        c.mapv_inplace(|v| v * l);
    }
    let gram = vl.dot(&q.t());
    let gram = (&gram + &gram.t()) * 0.5;
    let indefinite = LayerStats::from_parts(gram, 1, None, None).unwrap();
    for stats in [&singular, &indefinite] {
        for r in [
            "svd-llm:r4:f32",
            "qera:r4:f32",
            "qera:r4:chol:f32",
            "qera-approx:r4:f32",
            "lqer:r4:f32",
            "asvd:r4:f32",
        ] {
            let c = stage(r)
                .compress(w.view(), &Context::with_stats(stats))
                .unwrap();
            assert!(c.to_dense().iter().all(|v| v.is_finite()), "{r}");
        }
    }
}

#[test]
fn rank_is_clamped_and_budgets_follow_svd_llm() {
    assert_eq!(Rank::Fixed(500).resolve(40, 30).unwrap(), 30);
    assert_eq!(Rank::Ratio(0.5).resolve(384, 1536).unwrap(), 153);
    assert_eq!(Rank::Ratio(0.3).resolve(384, 384).unwrap(), 134);
    let w = Array2::<f32>::from_shape_fn((6, 4), |(i, j)| (i + 2 * j) as f32);
    let c = LowRank::new(Method::Svd, Rank::Fixed(99))
        .compress(w.view(), &Context::default())
        .unwrap();
    assert_eq!(c.downcast_ref::<LowRankMatrix>().unwrap().rank(), 4);
    let _ = Whitening::default();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// QERA-exact is never worse than the diagonal heuristics or LoRC on the
    /// output objective, for random correlated inputs and errors.
    #[test]
    fn qera_exact_is_best_on_random_correlated_inputs(
        m in 4usize..24, n in 4usize..24, k in 1usize..6, dead in 0usize..3, seed in 0u64..1000,
    ) {
        let stats = correlated_stats(3 * n + 10, n, dead.min(n - 1), seed);
        let mut rng = StdRng::seed_from_u64(seed ^ 0x55);
        let e = gaussian(m, n, &mut rng).mapv(|x| (x * 0.01) as f32);
        let ctx = Context::with_stats(&stats);
        let r = stats.gram() / stats.count() as f64;
        let err = |meth: Method| {
            let f = LowRank::new(meth, Rank::Fixed(k)).fit(e.view(), &ctx).unwrap();
            output_error(f64m(&e).view(), f.to_dense().view(), &r)
        };
        let exact = err(Method::Qera(Whitening::SymSqrt));
        for h in [Method::QeraApprox, Method::Lqer, Method::Lorc, Method::Asvd { alpha: 0.5 }] {
            let v = err(h);
            prop_assert!(exact <= v * (1.0 + 1e-9) + 1e-18, "{:?}: {} > {}", h, exact, v);
        }
    }

    /// FWSVD on either side never loses to plain SVD on its own objective.
    #[test]
    fn fwsvd_beats_svd_on_its_objective(m in 3usize..20, n in 3usize..20, k in 1usize..4, seed in 0u64..1000) {
        let mut rng = StdRng::seed_from_u64(seed);
        let w = gaussian(m, n, &mut rng).mapv(|x| x as f32);
        let fisher = gaussian(m, n, &mut rng).mapv(|x| (x * x) as f32);
        let stats = LayerStats::identity(n, 1).unwrap().with_fisher(fisher.clone()).unwrap();
        let ctx = Context::with_stats(&stats);
        let f64f = fisher.mapv(f64::from);
        let svd = LowRank::new(Method::Svd, Rank::Fixed(k)).fit(w.view(), &ctx).unwrap().to_dense();
        for (side, rows) in [(shrink_lowrank::Side::Output, true), (shrink_lowrank::Side::Input, false)] {
            let d = if rows { f64f.sum_axis(ndarray::Axis(1)) } else { f64f.sum_axis(ndarray::Axis(0)) }.mapv(f64::sqrt);
            let fw = LowRank::new(Method::Fwsvd(side), Rank::Fixed(k)).fit(w.view(), &ctx).unwrap().to_dense();
            let a = side_error(f64m(&w).view(), fw.view(), &d, rows);
            let b = side_error(f64m(&w).view(), svd.view(), &d, rows);
            prop_assert!(a <= b * (1.0 + 1e-9) + 1e-15, "{:?}: {} > {}", side, a, b);
        }
    }

    /// The error never grows with the rank.
    #[test]
    fn error_is_monotone_in_the_rank(m in 3usize..16, n in 3usize..16, seed in 0u64..1000) {
        let stats = correlated_stats(2 * n + 5, n, 0, seed);
        let mut rng = StdRng::seed_from_u64(seed);
        let w = gaussian(m, n, &mut rng).mapv(|x| x as f32);
        let ctx = Context::with_stats(&stats);
        let r = stats.gram() / stats.count() as f64;
        let mut last = f64::INFINITY;
        for k in 1..=m.min(n) {
            let f = LowRank::new(Method::SvdLlm, Rank::Fixed(k)).fit(w.view(), &ctx).unwrap();
            let e = output_error(f64m(&w).view(), f.to_dense().view(), &r);
            prop_assert!(e <= last * (1.0 + 1e-9) + 1e-12);
            last = e;
        }
    }
}

#[test]
fn sketch_bases_are_orthonormal() {
    // A nearly rank-deficient sketch: the randomized SVD still returns
    // orthonormal singular vectors and reconstructs a low-rank matrix.
    let sigma: Vec<f64> = (0..60).map(|i| 1e-3f64.powi(i / 10)).collect();
    let a = with_spectrum(80, 60, &sigma, 4);
    for svd in [
        randomized_svd(a.view(), 12, Randomized::default(), 1).unwrap(),
        shrink_lowrank::dense::block_krylov_svd(a.view(), 12, Randomized::default(), 1).unwrap(),
    ] {
        let utu = svd.u.t().dot(&svd.u);
        let vtv = svd.v.t().dot(&svd.v);
        for i in 0..12 {
            for j in 0..12 {
                let id = if i == j { 1.0 } else { 0.0 };
                assert!(
                    (utu[(i, j)] - id).abs() < 1e-10,
                    "U^T U ({i}, {j}) = {}",
                    utu[(i, j)]
                );
                assert!(
                    (vtv[(i, j)] - id).abs() < 1e-10,
                    "V^T V ({i}, {j}) = {}",
                    vtv[(i, j)]
                );
            }
        }
        for (x, y) in svd.s.iter().zip(&sigma) {
            assert!((x - y).abs() <= 1e-9 * sigma[0], "{x} vs {y}");
        }
    }
}

#[test]
fn block_krylov_reaches_the_exact_optimum_on_a_quantization_error() {
    // A quantization error has a flat spectrum, the hard case for sketches.
    let (w, stats) = fixture();
    let q = shrink_quant::Rtn::from_stage(&"rtn:int3:g128:asym".parse().unwrap()).unwrap();
    let e = &w
        - &q.compress(w.view(), &Context::default())
            .unwrap()
            .to_dense();
    let r = stats.gram() / stats.count() as f64;
    let ctx = Context::with_stats(&stats);
    let obj = |text: &str| {
        let f = stage(text).fit(e.view(), &ctx).unwrap();
        output_error(f64m(&e).view(), f.to_dense().view(), &r)
    };
    let exact = obj("qera:r32");
    let krylov = obj("qera:r32:chol:krylov");
    let rand = obj("qera:r32:chol:rand");
    assert!(krylov >= exact * (1.0 - 1e-9));
    assert!(
        krylov <= exact * (1.0 + 1e-4),
        "krylov {krylov} vs exact {exact}"
    );
    assert!(
        krylov <= rand,
        "krylov {krylov} should beat subspace iteration {rand}"
    );
    assert_eq!(
        stage("qera:r32:krylov:q4:p8").recipe(),
        "qera:r32:krylov:p8:q4"
    );
    assert_eq!(stage("svd:r32:krylov").recipe(), "svd:r32:krylov");
    for bad in [
        "svd:r8:rand:krylov",
        "svd:r8:krylov:krylov",
        "rsvd:r8:krylov",
    ] {
        let s: StageSpec = bad.parse().unwrap();
        assert!(
            matches!(LowRank::from_stage(&s), Err(Error::Recipe { .. })),
            "{bad}"
        );
    }
}
