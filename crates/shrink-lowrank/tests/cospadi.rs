//! CoSpaDi: optimality at s = k = r, exact OMP recovery, monotone objective,
//! determinism, storage accounting, the forward pass and errors.

mod common;

use common::*;
use ndarray::Array2;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use shrink_core::{Compressor, Context, Error, LayerStats, Reconstruct, StageSpec};
use shrink_lowrank::cospadi::{default_split, omp, storage_words, svd_llm_budget};
use shrink_lowrank::{
    Budget, Cospadi, LowRank, Method, Precision, Rank, SparseDictMatrix, Whitening,
};

fn stage(text: &str) -> Cospadi {
    Cospadi::from_stage(&text.parse::<StageSpec>().unwrap()).unwrap()
}

fn problem(m: usize, n: usize, seed: u64) -> (Array2<f32>, LayerStats) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = gaussian(m, n, &mut rng);
    for (j, mut c) in w.columns_mut().into_iter().enumerate() {
        let s = 2.0 - 1.9 * j as f64 / n as f64;
        c.mapv_inplace(|x| x * s);
    }
    (w.mapv(|x| x as f32), correlated_stats(400, n, 0, seed))
}

#[test]
fn without_sparsity_it_reaches_the_svd_llm_optimum() {
    let (w, stats) = problem(96, 64, 0);
    let ctx = Context::with_stats(&stats);
    let r = 12;
    let mut c = Cospadi::new(Budget::Sizes { k: r, s: r });
    c.iters = 20;
    let fit = c.fit(w.view(), &ctx).unwrap();
    let llm = LowRank::new(Method::SvdLlm, Rank::Fixed(r))
        .fit(w.view(), &ctx)
        .unwrap();
    let w64 = f64m(&w);
    let a = rel_output_error(w64.view(), fit.to_dense().view(), &stats);
    let b = rel_output_error(w64.view(), llm.to_dense().view(), &stats);
    assert!((a - b).abs() <= 1e-6 * b, "cospadi {a} vs svd-llm {b}");
    let q = LowRank::new(Method::Qera(Whitening::SymSqrt), Rank::Fixed(r))
        .fit(w.view(), &ctx)
        .unwrap();
    let c2 = rel_output_error(w64.view(), q.to_dense().view(), &stats);
    assert!((a - c2).abs() <= 1e-6 * b);
}

#[test]
fn the_objective_never_increases() {
    for (m, n, k, s, seed) in [
        (96, 64, 40, 10, 1),
        (200, 48, 64, 8, 2),
        (60, 80, 30, 15, 3),
    ] {
        let (w, stats) = problem(m, n, seed);
        let mut c = Cospadi::new(Budget::Sizes { k, s });
        c.iters = 25;
        c.tol = 0.0;
        for init in [shrink_lowrank::Init::Svd, shrink_lowrank::Init::Signals] {
            c.init = init;
            let fit = c.fit(w.view(), &Context::with_stats(&stats)).unwrap();
            assert_eq!(fit.history.len(), 25);
            for p in fit.history.windows(2) {
                assert!(
                    p[1] <= p[0] * (1.0 + 1e-12),
                    "{init:?}: {} then {}",
                    p[0],
                    p[1]
                );
            }
            assert!(fit.history.last().unwrap() < fit.history.first().unwrap());
        }
    }
}

/// Run to a standstill (tolerance 0, many sweeps), the last entry of the
/// history is the exact objective `tr((W - W') H (W - W')^T)` of the
/// factorization returned, also when the solver ends on a sweep it undid.
#[test]
fn the_history_ends_at_the_objective_of_the_returned_factors() {
    let mut ended_early = 0;
    for (m, n, k, s, seed, exact_codes) in [
        (40, 24, 16, 3, 11, false),
        (64, 32, 20, 5, 12, false),
        (80, 16, 8, 2, 15, true),
        (120, 24, 10, 3, 16, true),
    ] {
        let (mut w, stats) = problem(m, n, seed);
        if exact_codes {
            // W^T = A C with s non-zeros per column of C: exactly
            // representable, so the objective falls until f32 rounding.
            let mut rng = StdRng::seed_from_u64(seed);
            let a = gaussian(n, k, &mut rng);
            let mut ct = Array2::<f64>::zeros((m, k));
            for j in 0..m {
                for q in sample(&mut rng, k, s) {
                    ct[[j, q]] = rng.random_range(0.5..2.0);
                }
            }
            w = ct.dot(&a.t()).mapv(|x| x as f32);
        }
        let mut c = Cospadi::new(Budget::Sizes { k, s });
        c.iters = 400;
        c.tol = 0.0;
        let fit = c.fit(w.view(), &Context::with_stats(&stats)).unwrap();
        assert_eq!(fit.shift, 0.0);
        for p in fit.history.windows(2) {
            assert!(p[1] <= p[0], "{} then {}", p[0], p[1]);
        }
        let e = &w.mapv(f64::from) - &fit.to_dense();
        let exact = shrink_core::linalg::quadratic_trace(e.view(), stats.gram().view());
        let last = *fit.history.last().unwrap();
        assert!(
            (last - exact).abs() <= 1e-9 * exact,
            "({m}, {n}, {k}, {s}): history ends at {last}, the factors give {exact}"
        );
        if fit.history.len() < 400 {
            ended_early += 1;
        }
    }
    // The exactly representable problems stall before 400 sweeps (they end
    // on a sweep that f32 rounding made lose, which the solver undoes).
    assert!(ended_early > 0, "no run stopped before the iteration limit");
}

#[test]
fn same_seed_same_bytes_on_one_and_two_threads() {
    let (w, stats) = fixture();
    let c = stage("cospadi:ratio0.5:it4:signals");
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            c.compress(
                w.view(),
                &Context {
                    stats: Some(&stats),
                    seed: 7,
                    mask: None,
                },
            )
            .unwrap()
            .to_dense()
        })
    };
    let a = run(1);
    assert_eq!(a, run(2));
    assert_eq!(a, run(2));
}

#[test]
fn storage_equals_a_hand_count_and_the_split_matches_the_paper() {
    // layer0 attention.self.query (384 x 384) at CR 0.3: r = 134, budget
    // 134 * 768 = 102912 words; k = 171, s = 86 (the reference's table).
    assert_eq!(svd_llm_budget(384, 384, 0.3), 102_912);
    assert_eq!(default_split(384, 384, 102_912).unwrap(), (171, 86));
    assert_eq!(
        default_split(1536, 384, svd_llm_budget(1536, 384, 0.3)).unwrap(),
        (330, 165)
    );
    assert_eq!(
        default_split(384, 1536, svd_llm_budget(384, 1536, 0.3)).unwrap(),
        (235, 120)
    );
    assert_eq!(
        default_split(384, 384, svd_llm_budget(384, 384, 0.5)).unwrap(),
        (122, 62)
    );
    assert_eq!(
        default_split(1536, 384, svd_llm_budget(1536, 384, 0.5)).unwrap(),
        (235, 117)
    );
    assert_eq!(
        default_split(384, 1536, svd_llm_budget(384, 1536, 0.5)).unwrap(),
        (167, 86)
    );
    assert_eq!(
        storage_words(384, 384, 171, 86),
        384 * 171 + 384 * 86 + 4104
    );
    let (w, stats) = fixture();
    let c = stage("cospadi:k20:s6:it2")
        .compress(w.view(), &Context::with_stats(&stats))
        .unwrap();
    let st = c.storage();
    // bf16 dictionary n k, bf16 coefficients m s, bitmap k m bits.
    assert_eq!(st.bytes(), 2 * 384 * 20 + 2 * 384 * 6 + (20 * 384) / 8);
    assert_eq!(st.weights, 384 * 384);
    // A budget too small for any (k, s) is a typed error.
    assert!(matches!(
        default_split(384, 384, 100),
        Err(Error::InvalidArgument { .. })
    ));
    let tiny = Array2::<f32>::ones((3, 3));
    let ts = LayerStats::identity(3, 10).unwrap();
    assert!(matches!(
        stage("cospadi:ratio0.9").compress(tiny.view(), &Context::with_stats(&ts)),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn forward_is_the_sparse_product_and_parts_round_trip() {
    let (w, stats) = fixture();
    let c = stage("cospadi:k24:s8:it3")
        .compress(w.view(), &Context::with_stats(&stats))
        .unwrap();
    let x = correlated_inputs(29, 384, 0, 3);
    let y = c.forward(x.view()).unwrap();
    let yd = x.dot(&c.to_dense().t());
    let scale = yd.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = (&y - &yd).iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(diff <= 1e-4 * scale, "{diff} vs {scale}");
    let sd = c.downcast_ref::<SparseDictMatrix>().unwrap();
    assert_eq!((sd.atoms(), sd.sparsity()), (24, 8));
    let back = SparseDictMatrix::from_parts(
        sd.dictionary(),
        sd.indices().to_vec(),
        sd.values().to_vec(),
        384,
        8,
        Precision::Bf16,
    )
    .unwrap();
    assert_eq!(&back, sd);
    // Every output neuron holds exactly s distinct ascending atoms.
    for row in sd.indices().chunks(8) {
        assert!(row.windows(2).all(|p| p[0] < p[1]));
    }
    let mut bad = sd.indices().to_vec();
    bad.swap(0, 1);
    assert!(
        SparseDictMatrix::from_parts(
            sd.dictionary(),
            bad,
            sd.values().to_vec(),
            384,
            8,
            Precision::Bf16
        )
        .is_err()
    );
}

#[test]
fn it_beats_svd_llm_at_the_same_budget_on_the_real_layer() {
    let (w, stats) = fixture();
    let ctx = Context::with_stats(&stats);
    let w64 = f64m(&w);
    let co = stage("cospadi:ratio0.5:it10")
        .compress(w.view(), &ctx)
        .unwrap();
    let llm = shrink_lowrank::from_stage(&"svd-llm:ratio0.5".parse().unwrap())
        .unwrap()
        .compress(w.view(), &ctx)
        .unwrap();
    let a = rel_output_error(w64.view(), f64m(&co.to_dense()).view(), &stats);
    let b = rel_output_error(w64.view(), f64m(&llm.to_dense()).view(), &stats);
    // Reference (cospadi_ref.py, 20 iterations): 0.03425 vs SVD-LLM 0.05092.
    assert!(a < b, "cospadi {a} vs svd-llm {b}");
    assert!(a < 0.0375, "cospadi {a}");
    assert!(co.storage().bytes() <= 2 * svd_llm_budget(384, 384, 0.5));
}

#[test]
fn recipes_and_errors() {
    for (text, canon) in [
        ("cospadi:ratio0.3", "cospadi:ratio0.3"),
        ("cospadi:s86:k171", "cospadi:k171:s86"),
        (
            "cospadi:ratio0.5:it20:pw4:signals:f32",
            "cospadi:ratio0.5:it20:pw4:signals:f32",
        ),
        ("cospadi:ratio0.5:bf16:it60", "cospadi:ratio0.5"),
    ] {
        assert_eq!(stage(text).recipe(), canon);
    }
    for bad in [
        "cospadi",
        "cospadi:k10",
        "cospadi:k10:s11",
        "cospadi:ratio1",
        "cospadi:ratio0.3:k10:s5",
        "cospadi:ratio0.3:it0",
        "cospadi:ratio0.3:zz",
        "cospadi:ratio0.3:ratio0.4",
    ] {
        let s: StageSpec = bad.parse().unwrap();
        assert!(
            matches!(Cospadi::from_stage(&s), Err(Error::Recipe { .. })),
            "{bad}"
        );
    }
    let (w, stats) = fixture();
    assert!(matches!(
        stage("cospadi:ratio0.3").compress(w.view(), &Context::default()),
        Err(Error::Stats { .. })
    ));
    let other = LayerStats::identity(10, 5).unwrap();
    assert!(matches!(
        stage("cospadi:ratio0.3").compress(w.view(), &Context::with_stats(&other)),
        Err(Error::Shape { .. })
    ));
    let mut nan = w.clone();
    nan[(0, 0)] = f32::NAN;
    assert!(matches!(
        stage("cospadi:ratio0.3").compress(nan.view(), &Context::with_stats(&stats)),
        Err(Error::NonFinite { .. })
    ));
}

/// Solves the small dense system `g x = b` by Gaussian elimination with
/// partial pivoting (test helper for `s <= 4`).
fn solve_small(mut g: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| g[i][c].abs().total_cmp(&g[j][c].abs()))
            .unwrap();
        g.swap(c, p);
        b.swap(c, p);
        let pivot = g[c].clone();
        for r in c + 1..n {
            let f = g[r][c] / pivot[c];
            for (x, &p) in g[r].iter_mut().zip(&pivot).skip(c) {
                *x -= f * p;
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let t: f64 = (r + 1..n).map(|q| g[r][q] * x[q]).sum();
        x[r] = (b[r] - t) / g[r][r];
    }
    x
}

/// Tropp's exact recovery condition for support `sup` of dictionary `d`
/// (columns): `max_{a not in sup} ||D_I^+ d_a||_1 < 1`. When it holds, OMP
/// recovers every code on that support exactly (Tropp 2004, Theorem 3.1).
fn erc_holds(d: &Array2<f64>, sup: &[usize]) -> bool {
    let g: Vec<Vec<f64>> = sup
        .iter()
        .map(|&i| sup.iter().map(|&j| d.column(i).dot(&d.column(j))).collect())
        .collect();
    (0..d.ncols()).filter(|a| !sup.contains(a)).all(|a| {
        let b: Vec<f64> = sup.iter().map(|&i| d.column(i).dot(&d.column(a))).collect();
        solve_small(g.clone(), b)
            .iter()
            .map(|x| x.abs())
            .sum::<f64>()
            < 1.0 - 1e-9
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// OMP recovers the exact support and coefficients of noise-free s-sparse
    /// codes over a random unit-norm dictionary, whenever the support meets
    /// the exact recovery condition (which most random supports do at these
    /// sizes; the test requires at least one per case).
    #[test]
    fn omp_recovers_sparse_codes(n in 24usize..64, ratio in 1usize..3, s in 1usize..4, signals in 4usize..20, seed in 0u64..10_000) {
        let k = n * ratio;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut d = gaussian(n, k, &mut rng);
        for mut c in d.columns_mut() {
            let nrm = c.iter().map(|x| x * x).sum::<f64>().sqrt();
            c.mapv_inplace(|x| x / nrm);
        }
        let mut codes = Array2::<f64>::zeros((k, signals));
        let mut good = Vec::new();
        for j in 0..signals {
            let sup: Vec<usize> = sample(&mut rng, k, s).into_vec();
            good.push(erc_holds(&d, &sup));
            for &a in &sup {
                let sign = if rng.random::<bool>() { 1.0 } else { -1.0 };
                codes[(a, j)] = sign * rng.random_range(0.5..2.0);
            }
        }
        prop_assume!(good.iter().any(|&g| g));
        let y = d.dot(&codes);
        let (idx, val, _) = omp(d.t().dot(&y).view(), d.t().dot(&d).view(), s).unwrap();
        for j in (0..signals).filter(|&j| good[j]) {
            let mut got = vec![0.0f64; k];
            for q in 0..s {
                got[idx[j * s + q] as usize] = val[j * s + q];
            }
            for a in 0..k {
                prop_assert_eq!(got[a] != 0.0, codes[(a, j)] != 0.0, "support of signal {}", j);
                prop_assert!((got[a] - codes[(a, j)]).abs() < 1e-9);
            }
        }
    }
}

#[test]
fn bytes_round_trip_and_corrupt_input_is_an_error() {
    let (w, stats) = fixture();
    let ctx = Context::with_stats(&stats);
    for p in ["bf16", "f16", "f32"] {
        let c = stage(&format!("cospadi:k16:s5:it2:{p}"))
            .compress(w.view(), &ctx)
            .unwrap();
        let sd = c.downcast_ref::<SparseDictMatrix>().unwrap();
        let bytes = sd.to_bytes().unwrap();
        // Two headers (36 + 21 bytes) plus exactly the counted storage.
        assert_eq!(bytes.len() as u64, 36 + 21 + c.storage().bytes(), "{p}");
        assert_eq!(&SparseDictMatrix::from_bytes(&bytes).unwrap(), sd);
        for cut in (0..bytes.len()).step_by(97) {
            assert!(
                SparseDictMatrix::from_bytes(&bytes[..cut]).is_err(),
                "{p}: prefix {cut}"
            );
        }
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(matches!(
            SparseDictMatrix::from_bytes(&bad),
            Err(Error::Corrupt { .. })
        ));
        let mut bad = bytes.clone();
        bad[28] = 99; // s
        assert!(SparseDictMatrix::from_bytes(&bad).is_err());
    }
}
