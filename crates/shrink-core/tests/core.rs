//! Integration tests of shrink-core: statistics, objectives, storage,
//! pipelines, masks, recipes, interop and the dense kernels. Every expected
//! value is computed independently (naive loops in f64), never by calling the
//! code under test a second time.

use ndarray::{Array1, Array2, ArrayView2, ShapeBuilder, s};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shrink_core::interop::{as_faer, as_faer_mut, as_ndarray};
use shrink_core::{
    Compose, Compressed, Compressor, Context, Dense, Error, LayerStats, Mask, Objective, Pipeline,
    Recipe, Reconstruct, Restricted, StageSpec, Storage, StoragePart, Sum,
};
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------- helpers

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn rand_mat(rng: &mut StdRng, rows: usize, cols: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-2.0f32..2.0))
}

fn max_abs(a: &Array2<f64>) -> f64 {
    a.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// `|a - b| <= rel * max|b|` entry by entry (norm-wise relative error).
#[track_caller]
fn assert_mat_close(a: &Array2<f64>, b: &Array2<f64>, rel: f64, what: &str) {
    assert_eq!(a.dim(), b.dim(), "{what}: shapes differ");
    let tol = rel * max_abs(b).max(f64::MIN_POSITIVE);
    for (((i, j), x), y) in a.indexed_iter().zip(b.iter()) {
        assert!(
            (x - y).abs() <= tol,
            "{what} at ({i}, {j}): {x} vs {y} (tolerance {tol})"
        );
    }
}

/// Entry-wise relative closeness (for vectors of positive sums).
#[track_caller]
fn assert_vec_close(a: &Array1<f64>, b: &Array1<f64>, rel: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (k, (x, y)) in a.iter().zip(b.iter()).enumerate() {
        let tol = rel * x.abs().max(y.abs()).max(f64::MIN_POSITIVE);
        assert!((x - y).abs() <= tol, "{what}[{k}]: {x} vs {y}");
    }
}

#[track_caller]
fn assert_scalar_close(a: f64, b: f64, rel: f64, what: &str) {
    let tol = rel * a.abs().max(b.abs()).max(f64::MIN_POSITIVE);
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b}");
}

fn naive_gram(x: &Array2<f32>) -> Array2<f64> {
    let (t, n) = x.dim();
    let mut g = Array2::zeros((n, n));
    for i in 0..n {
        for j in 0..n {
            let mut acc = 0.0f64;
            for k in 0..t {
                acc += f64::from(x[(k, i)]) * f64::from(x[(k, j)]);
            }
            g[(i, j)] = acc;
        }
    }
    g
}

fn naive_mean_abs(x: &Array2<f32>) -> Array1<f64> {
    let t = x.nrows() as f64;
    Array1::from_iter(
        x.columns()
            .into_iter()
            .map(|c| c.iter().map(|v| f64::from(v.abs())).sum::<f64>() / t),
    )
}

fn naive_rms(x: &Array2<f32>) -> Array1<f64> {
    let t = x.nrows() as f64;
    Array1::from_iter(
        x.columns()
            .into_iter()
            .map(|c| (c.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / t).sqrt()),
    )
}

/// `x w^T` in f64 by a triple loop.
fn naive_forward(x: ArrayView2<'_, f32>, w: ArrayView2<'_, f32>) -> Array2<f64> {
    let mut y = Array2::zeros((x.nrows(), w.nrows()));
    for t in 0..x.nrows() {
        for o in 0..w.nrows() {
            let mut acc = 0.0f64;
            for i in 0..x.ncols() {
                acc += f64::from(x[(t, i)]) * f64::from(w[(o, i)]);
            }
            y[(t, o)] = acc;
        }
    }
    y
}

fn to_f64(a: &Array2<f32>) -> Array2<f64> {
    a.mapv(f64::from)
}

fn observe_all(n: usize, batches: &[Array2<f32>]) -> LayerStats {
    let mut s = LayerStats::new(n).unwrap();
    for b in batches {
        s.observe(b.view()).unwrap();
    }
    s
}

// ---------------------------------------------------------------- LayerStats

#[test]
fn stats_batches_equal_one_pass_and_naive() {
    // n = 70 crosses the 64-column block of the parallel product.
    for &n in &[1usize, 5, 9, 70] {
        let mut r = rng(n as u64);
        let x = rand_mat(&mut r, 41, n);
        let cuts = [0usize, 7, 7, 20, 41]; // includes an empty batch
        let batches: Vec<Array2<f32>> = cuts
            .windows(2)
            .map(|w| x.slice(s![w[0]..w[1], ..]).to_owned())
            .collect();
        let one = observe_all(n, std::slice::from_ref(&x));
        let many = observe_all(n, &batches);

        assert_eq!(one.count(), 41);
        assert_eq!(many.count(), 41);
        assert_eq!(one.in_features(), n);
        let g = naive_gram(&x);
        assert_mat_close(one.gram(), &g, 1e-12, "one-pass gram vs naive");
        assert_mat_close(many.gram(), &g, 1e-12, "batched gram vs naive");
        assert_mat_close(many.gram(), one.gram(), 1e-12, "batched vs one pass");
        assert_vec_close(&one.mean_abs(), &naive_mean_abs(&x), 1e-12, "mean_abs");
        assert_vec_close(&many.mean_abs(), &one.mean_abs(), 1e-12, "mean_abs batches");
        assert_vec_close(&one.rms(), &naive_rms(&x), 1e-12, "rms");
        assert_vec_close(&many.rms(), &one.rms(), 1e-12, "rms batches");
        let norms = naive_rms(&x).mapv(|r| r * (41f64).sqrt());
        assert_vec_close(&one.column_norms(), &norms, 1e-12, "column norms");
    }
}

#[test]
fn stats_gram_is_symmetric_and_exact_on_small_integers() {
    // Small integers: every product and partial sum is exact in f64.
    let x = Array2::from_shape_fn((6, 3), |(t, i)| (t as f32 - 2.0) * (i as f32 + 1.0) + 0.5);
    let s = observe_all(3, std::slice::from_ref(&x));
    assert_eq!(s.gram(), &naive_gram(&x));
    for i in 0..3 {
        for j in 0..3 {
            assert_eq!(s.gram()[(i, j)], s.gram()[(j, i)]);
        }
    }
}

#[test]
fn stats_observe_accepts_strided_inputs() {
    let mut r = rng(11);
    let big = rand_mat(&mut r, 12, 20);
    // Non-contiguous views: a transposed one and one with steps.
    let xt = big.t(); // 20 x 12
    let xs = big.slice(s![..;2, 1..;3]); // 6 x 7
    for x in [xt, xs] {
        let owned = x.to_owned();
        let mut a = LayerStats::new(x.ncols()).unwrap();
        a.observe(x).unwrap();
        assert_mat_close(a.gram(), &naive_gram(&owned), 1e-12, "strided gram");
        assert_vec_close(
            &a.mean_abs(),
            &naive_mean_abs(&owned),
            1e-12,
            "strided mean_abs",
        );
        assert_vec_close(&a.rms(), &naive_rms(&owned), 1e-12, "strided rms");
    }
}

#[test]
fn stats_merge_is_order_independent_and_equals_observing_all() {
    let mut r = rng(3);
    let n = 7;
    let xs: Vec<Array2<f32>> = [4usize, 9, 13]
        .iter()
        .map(|&t| rand_mat(&mut r, t, n))
        .collect();
    let parts: Vec<LayerStats> = xs
        .iter()
        .map(|x| observe_all(n, std::slice::from_ref(x)))
        .collect();
    let all = observe_all(n, &xs);
    let orders = [[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]];
    let mut results = Vec::new();
    for o in orders {
        let mut acc = parts[o[0]].clone();
        acc.merge(&parts[o[1]]).unwrap();
        acc.merge(&parts[o[2]]).unwrap();
        results.push(acc);
    }
    // Also a nested merge: a + (b + c).
    let mut bc = parts[1].clone();
    bc.merge(&parts[2]).unwrap();
    let mut nested = parts[0].clone();
    nested.merge(&bc).unwrap();
    results.push(nested);
    for m in &results {
        assert_eq!(m.count(), 26);
        assert_mat_close(m.gram(), all.gram(), 1e-12, "merged gram");
        assert_vec_close(&m.mean_abs(), &all.mean_abs(), 1e-12, "merged mean_abs");
        assert_vec_close(&m.rms(), &all.rms(), 1e-12, "merged rms");
    }
    // Merging empty statistics changes nothing.
    let mut e = all.clone();
    e.merge(&LayerStats::new(n).unwrap()).unwrap();
    assert_eq!(e, all);
}

#[test]
fn stats_merge_rejects_other_width_and_handles_fisher() {
    let mut a = LayerStats::identity(3, 2).unwrap();
    let b = LayerStats::identity(4, 2).unwrap();
    assert!(matches!(a.merge(&b), Err(Error::Shape { .. })));
    assert_eq!(
        a,
        LayerStats::identity(3, 2).unwrap(),
        "failed merge changed self"
    );

    let f1 = Array2::from_shape_fn((2, 3), |(i, j)| (i * 3 + j) as f32);
    let f2 = Array2::from_elem((2, 3), 0.5f32);
    // Only one side has Fisher information: it is kept.
    let mut one = LayerStats::identity(3, 1).unwrap();
    one.merge(
        &LayerStats::identity(3, 1)
            .unwrap()
            .with_fisher(f1.clone())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(one.fisher(), Some(&f1));
    // Both have it: summed.
    let mut both = LayerStats::identity(3, 1)
        .unwrap()
        .with_fisher(f1.clone())
        .unwrap();
    both.merge(
        &LayerStats::identity(3, 1)
            .unwrap()
            .with_fisher(f2.clone())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(both.fisher(), Some(&(&f1 + &f2)));
    assert_eq!(both.count(), 2);

    // Fisher of different shapes: an error, and self is left as it was.
    let before = LayerStats::identity(3, 1)
        .unwrap()
        .with_fisher(f1.clone())
        .unwrap();
    let mut m = before.clone();
    let other = LayerStats::identity(3, 1)
        .unwrap()
        .with_fisher(Array2::zeros((5, 3)))
        .unwrap();
    assert!(matches!(m.merge(&other), Err(Error::Shape { .. })));
    assert_eq!(m, before, "a failed merge must not modify the statistics");
}

#[test]
fn stats_from_parts_round_trip_and_defaults() {
    let mut r = rng(5);
    let x = rand_mat(&mut r, 10, 4);
    let g = naive_gram(&x);
    let ma = naive_mean_abs(&x);
    let rms = naive_rms(&x);
    let s = LayerStats::from_parts(g.clone(), 10, Some(ma.clone()), Some(rms.clone())).unwrap();
    assert_eq!(s.gram(), &g);
    assert_eq!(s.count(), 10);
    assert_vec_close(&s.mean_abs(), &ma, 1e-14, "mean_abs round trip");
    assert_vec_close(&s.rms(), &rms, 1e-14, "rms round trip");

    // RMS derived from diag(H) / count, mean |x| defaults to the RMS.
    let d = LayerStats::from_parts(g.clone(), 10, None, None).unwrap();
    let want = Array1::from_iter((0..4).map(|i| (g[(i, i)] / 10.0).sqrt()));
    assert_vec_close(&d.rms(), &want, 1e-14, "derived rms");
    assert_vec_close(&d.mean_abs(), &want, 1e-14, "mean_abs defaults to rms");
    assert_vec_close(&d.rms(), &rms, 1e-12, "derived rms equals observed rms");
}

#[test]
fn stats_from_parts_errors() {
    let ok = || Array2::<f64>::eye(3);
    let e = LayerStats::from_parts(Array2::zeros((3, 4)), 1, None, None).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    assert!(e.to_string().contains("3x4"), "{e}");
    let e = LayerStats::from_parts(Array2::zeros((0, 0)), 1, None, None).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    let e = LayerStats::from_parts(ok(), 0, None, None).unwrap_err();
    assert!(matches!(e, Error::Stats { .. }), "{e}");
    assert!(e.to_string().contains("count"), "{e}");

    let mut nan = ok();
    nan[(1, 2)] = f64::NAN;
    let e = LayerStats::from_parts(nan, 1, None, None).unwrap_err();
    assert!(
        matches!(&e, Error::NonFinite { position, .. } if position == "row 1, column 2"),
        "{e}"
    );
    let mut inf = ok();
    inf[(0, 0)] = f64::INFINITY;
    let e = LayerStats::from_parts(inf, 1, None, None).unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }), "{e}");

    let mut neg = ok();
    neg[(2, 2)] = -1.0;
    let e = LayerStats::from_parts(neg, 1, None, None).unwrap_err();
    assert!(matches!(e, Error::Stats { .. }), "{e}");
    assert!(e.to_string().contains("negative diagonal"), "{e}");

    let short = Some(Array1::<f64>::ones(2));
    let e = LayerStats::from_parts(ok(), 1, short.clone(), None).unwrap_err();
    assert!(
        matches!(&e, Error::Shape { what, .. } if what == "mean |x|"),
        "{e}"
    );
    let e = LayerStats::from_parts(ok(), 1, None, short.clone()).unwrap_err();
    assert!(
        matches!(&e, Error::Shape { what, .. } if what == "RMS"),
        "{e}"
    );
    let e = LayerStats::from_parts(ok(), 1, Some(Array1::ones(3)), short).unwrap_err();
    assert!(
        matches!(&e, Error::Shape { what, .. } if what == "RMS"),
        "{e}"
    );
    let e = LayerStats::from_parts(ok(), 1, Some(Array1::from(vec![1.0, -1.0, 1.0])), None)
        .unwrap_err();
    assert!(matches!(e, Error::Stats { .. }), "{e}");
    let e = LayerStats::from_parts(ok(), 1, None, Some(Array1::from(vec![1.0, f64::NAN, 1.0])))
        .unwrap_err();
    assert!(matches!(e, Error::Stats { .. }), "{e}");
}

#[test]
fn stats_observe_errors_leave_stats_unchanged() {
    let mut s = LayerStats::new(4).unwrap();
    let e = s.observe(Array2::<f32>::zeros((2, 5)).view()).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    let mut x = Array2::<f32>::ones((3, 4));
    x[(2, 1)] = f32::NAN;
    let e = s.observe(x.view()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }), "{e}");
    x[(2, 1)] = f32::NEG_INFINITY;
    assert!(matches!(s.observe(x.view()), Err(Error::NonFinite { .. })));
    // A bad value in a non-contiguous view is caught too.
    let xt = Array2::from_shape_fn(
        (4, 3),
        |(i, j)| if i == 3 && j == 0 { f32::NAN } else { 1.0 },
    );
    assert!(matches!(s.observe(xt.t()), Err(Error::NonFinite { .. })));
    assert_eq!(
        s,
        LayerStats::new(4).unwrap(),
        "failed observe changed the stats"
    );
    // An empty batch is fine and changes nothing.
    s.observe(Array2::<f32>::zeros((0, 4)).view()).unwrap();
    assert_eq!(s.count(), 0);
    assert!(matches!(s.require_data("gptq"), Err(Error::Stats { .. })));
    s.observe(Array2::<f32>::ones((1, 4)).view()).unwrap();
    s.require_data("gptq").unwrap();
}

#[test]
fn stats_identity_new_and_fisher() {
    let s = LayerStats::identity(5, 7).unwrap();
    assert_eq!(s.count(), 7);
    assert_eq!(s.gram(), &(Array2::<f64>::eye(5) * 7.0));
    assert_eq!(s.mean_abs(), Array1::<f64>::ones(5));
    assert_eq!(s.rms(), Array1::<f64>::ones(5));
    assert!(s.fisher().is_none());
    assert!(matches!(LayerStats::new(0), Err(Error::Empty { .. })));
    assert!(matches!(
        LayerStats::identity(0, 3),
        Err(Error::Empty { .. })
    ));
    let z = LayerStats::new(3).unwrap();
    assert_eq!(z.count(), 0);
    assert_eq!(z.gram(), &Array2::<f64>::zeros((3, 3)));
    assert_eq!(z.mean_abs(), Array1::<f64>::zeros(3));

    let s = LayerStats::identity(3, 1).unwrap();
    let bad_cols = s.clone().with_fisher(Array2::zeros((2, 4))).unwrap_err();
    assert!(matches!(bad_cols, Error::Shape { .. }));
    assert!(matches!(
        s.clone().with_fisher(Array2::zeros((0, 3))),
        Err(Error::Shape { .. })
    ));
    let mut neg = Array2::<f32>::zeros((2, 3));
    neg[(1, 1)] = -0.5;
    assert!(matches!(
        s.clone().with_fisher(neg),
        Err(Error::Stats { .. })
    ));
    let mut nan = Array2::<f32>::zeros((2, 3));
    nan[(0, 2)] = f32::NAN;
    assert!(matches!(
        s.clone().with_fisher(nan),
        Err(Error::Stats { .. })
    ));
    let f = Array2::from_elem((2, 3), 2.0f32);
    assert_eq!(s.with_fisher(f.clone()).unwrap().fisher(), Some(&f));
}

// ---------------------------------------------------------------- Objective

#[test]
fn objective_output_equals_naive_output_error() {
    for &(t, out, n) in &[(25usize, 4usize, 6usize), (9, 3, 70), (1, 1, 1)] {
        let mut r = rng((t * 1000 + n) as u64);
        let x = rand_mat(&mut r, t, n);
        let w = rand_mat(&mut r, out, n);
        let w_hat = &w + &rand_mat(&mut r, out, n).mapv(|v| 0.1 * v);
        let stats = observe_all(n, std::slice::from_ref(&x));
        // ||X (W - W')^T||_F^2 straight from X.
        let e = &to_f64(&w) - &to_f64(&w_hat);
        let mut want = 0.0f64;
        let mut norm = 0.0f64;
        for k in 0..t {
            for o in 0..out {
                let mut d = 0.0f64;
                let mut y = 0.0f64;
                for i in 0..n {
                    d += f64::from(x[(k, i)]) * e[(o, i)];
                    y += f64::from(x[(k, i)]) * f64::from(w[(o, i)]);
                }
                want += d * d;
                norm += y * y;
            }
        }
        let got = Objective::Output
            .error(w.view(), w_hat.view(), Some(&stats))
            .unwrap();
        assert_scalar_close(got, want, 1e-10, "output error");
        let got_norm = Objective::Output.norm(w.view(), Some(&stats)).unwrap();
        assert_scalar_close(got_norm, norm, 1e-10, "output norm");
        let rel = Objective::Output
            .relative(w.view(), w_hat.view(), Some(&stats))
            .unwrap();
        assert_scalar_close(rel, want / norm, 1e-10, "relative output error");
        let od = Objective::Output
            .of_difference(e.view(), Some(&stats))
            .unwrap();
        assert_scalar_close(od, want, 1e-10, "of_difference");
    }
}

#[test]
fn objective_output_with_identity_stats_is_scaled_frobenius() {
    let mut r = rng(8);
    let w = rand_mat(&mut r, 3, 5);
    let w_hat = rand_mat(&mut r, 3, 5);
    let s = LayerStats::identity(5, 4).unwrap();
    let fro = Objective::Frobenius
        .error(w.view(), w_hat.view(), None)
        .unwrap();
    let out = Objective::Output
        .error(w.view(), w_hat.view(), Some(&s))
        .unwrap();
    assert_scalar_close(out, 4.0 * fro, 1e-12, "identity gram");
}

#[test]
fn objective_frobenius_and_fisher_against_naive_sums() {
    let mut r = rng(21);
    let w = rand_mat(&mut r, 4, 7);
    let w_hat = rand_mat(&mut r, 4, 7);
    let f = Array2::from_shape_fn((4, 7), |(i, j)| (i * 7 + j) as f32 * 0.25 + 0.1);
    let stats = LayerStats::identity(7, 1)
        .unwrap()
        .with_fisher(f.clone())
        .unwrap();
    let (mut fro, mut fro_n, mut fis, mut fis_n) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for i in 0..4 {
        for j in 0..7 {
            let a = f64::from(w[(i, j)]);
            let d = a - f64::from(w_hat[(i, j)]);
            fro += d * d;
            fro_n += a * a;
            fis += f64::from(f[(i, j)]) * d * d;
            fis_n += f64::from(f[(i, j)]) * a * a;
        }
    }
    let o = Objective::Frobenius;
    assert_scalar_close(
        o.error(w.view(), w_hat.view(), None).unwrap(),
        fro,
        1e-12,
        "fro",
    );
    assert_scalar_close(o.norm(w.view(), None).unwrap(), fro_n, 1e-12, "fro norm");
    assert_scalar_close(
        o.relative(w.view(), w_hat.view(), None).unwrap(),
        fro / fro_n,
        1e-12,
        "fro rel",
    );
    let o = Objective::Fisher;
    let st = Some(&stats);
    assert_scalar_close(
        o.error(w.view(), w_hat.view(), st).unwrap(),
        fis,
        1e-12,
        "fisher",
    );
    assert_scalar_close(o.norm(w.view(), st).unwrap(), fis_n, 1e-12, "fisher norm");
    assert_scalar_close(
        o.relative(w.view(), w_hat.view(), st).unwrap(),
        fis / fis_n,
        1e-12,
        "fisher rel",
    );
}

#[test]
fn objective_relative_edge_cases() {
    let mut r = rng(4);
    let w = rand_mat(&mut r, 3, 4);
    let zero = Array2::<f32>::zeros((3, 4));
    let s = observe_all(4, &[rand_mat(&mut r, 6, 4)]);
    for o in [Objective::Frobenius, Objective::Output] {
        let st = Some(&s);
        assert_eq!(o.relative(w.view(), w.view(), st).unwrap(), 0.0);
        assert_scalar_close(
            o.relative(w.view(), zero.view(), st).unwrap(),
            1.0,
            1e-14,
            "w'=0",
        );
        assert_eq!(o.relative(zero.view(), zero.view(), st).unwrap(), 0.0);
        assert_eq!(
            o.relative(zero.view(), w.view(), st).unwrap(),
            f64::INFINITY
        );
        assert_scalar_close(
            o.norm(w.view(), st).unwrap(),
            o.error(w.view(), zero.view(), st).unwrap(),
            1e-14,
            "norm is error against zero",
        );
    }
}

#[test]
fn objective_errors() {
    let w = Array2::<f32>::ones((2, 3));
    let s3 = LayerStats::identity(3, 1).unwrap();
    let s4 = LayerStats::identity(4, 1).unwrap();
    let e = Objective::Frobenius
        .error(w.view(), Array2::<f32>::ones((3, 2)).view(), None)
        .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    let e = Objective::Output
        .error(w.view(), w.view(), None)
        .unwrap_err();
    assert!(matches!(e, Error::Stats { .. }), "{e}");
    let e = Objective::Output
        .error(w.view(), w.view(), Some(&s4))
        .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    let e = Objective::Fisher
        .error(w.view(), w.view(), None)
        .unwrap_err();
    assert!(matches!(e, Error::Stats { .. }), "{e}");
    let e = Objective::Fisher
        .error(w.view(), w.view(), Some(&s3))
        .unwrap_err();
    assert!(matches!(e, Error::Stats { .. }), "{e}");
    assert!(e.to_string().contains("Fisher"), "{e}");
    let sf = s3.with_fisher(Array2::ones((5, 3))).unwrap();
    let e = Objective::Fisher
        .error(w.view(), w.view(), Some(&sf))
        .unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    let e = Objective::Output
        .relative(w.view(), w.view(), None)
        .unwrap_err();
    assert!(matches!(e, Error::Stats { .. }), "{e}");
}

#[test]
fn objective_display_from_str_round_trip() {
    for o in [Objective::Frobenius, Objective::Output, Objective::Fisher] {
        let text = o.to_string();
        assert_eq!(text.parse::<Objective>().unwrap(), o);
    }
    assert_eq!(Objective::Frobenius.to_string(), "frobenius");
    assert_eq!(Objective::Output.to_string(), "output");
    assert_eq!(Objective::Fisher.to_string(), "fisher");
    assert_eq!("weight".parse::<Objective>().unwrap(), Objective::Frobenius);
    for bad in ["", "Output", "l2", "fisher "] {
        let e = bad.parse::<Objective>().unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{bad}: {e}");
    }
}

// ---------------------------------------------------------------- Storage, Dense

#[test]
fn storage_bits_per_weight_and_merge() {
    let s = Storage::new(64).with("codes", 32).with("scales", 8);
    assert_eq!(s.bytes(), 40);
    assert_eq!(s.bits_per_weight(), 8.0 * 40.0 / 64.0);
    assert_eq!(Storage::new(0).with("x", 3).bits_per_weight(), 0.0);
    let m = s.clone().merge(Storage::new(64).with("mask", 8));
    assert_eq!(m.weights, 64);
    assert_eq!(m.bytes(), 48);
    assert_eq!(
        m.parts.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["codes", "scales", "mask"]
    );
    assert_eq!(Storage::default().bytes(), 0);
}

#[test]
fn dense_storage_forward_and_errors() {
    let mut r = rng(9);
    for &(out, n, t) in &[(3usize, 5usize, 4usize), (70, 9, 3), (2, 130, 65)] {
        let w = rand_mat(&mut r, out, n);
        let d = Dense(w.clone());
        assert_eq!(d.shape(), (out, n));
        assert_eq!(d.to_dense(), w);
        let st = d.storage();
        assert_eq!(st.weights, (out * n) as u64);
        assert_eq!(st.bytes(), 4 * (out * n) as u64);
        assert_eq!(st.bits_per_weight(), 32.0);
        let x = rand_mat(&mut r, t, n);
        let y = d.forward(x.view()).unwrap();
        assert_eq!(y.dim(), (t, out));
        assert_mat_close(
            &to_f64(&y),
            &naive_forward(x.view(), w.view()),
            1e-5,
            "dense forward",
        );
        // A strided input gives the same result.
        let xt = x.t().to_owned();
        let y2 = d.forward(xt.t()).unwrap();
        assert_mat_close(&to_f64(&y2), &to_f64(&y), 1e-6, "strided input");
        let e = d
            .forward(Array2::<f32>::zeros((t, n + 1)).view())
            .unwrap_err();
        assert!(matches!(e, Error::Shape { .. }), "{e}");
    }
}

// ---------------------------------------------------------------- test compressors

/// What a stage was given.
#[derive(Clone, Debug)]
struct Seen {
    w: Array2<f32>,
    mask: Option<Mask>,
    seed: u64,
    stats_addr: Option<usize>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

#[derive(Clone, Copy, Debug)]
enum Op {
    /// Round to multiples of `step`.
    Round(f32),
    /// Add 1 everywhere (ignoring any mask).
    AddOne,
    /// Keep the largest-magnitude half of each row.
    PruneHalf,
    /// Always fail.
    Fail,
}

#[derive(Debug)]
struct Probe {
    name: &'static str,
    op: Op,
    log: Log,
    prefer: Compose,
}

impl Probe {
    fn new(name: &'static str, op: Op, log: &Log) -> Self {
        Self {
            name,
            op,
            log: Arc::clone(log),
            prefer: Compose::Auto,
        }
    }
    fn prefer(mut self, c: Compose) -> Self {
        self.prefer = c;
        self
    }
}

/// A dense-like form: 1 byte per weight plus a 4-byte scale.
#[derive(Debug)]
struct Coded {
    values: Array2<f32>,
}

impl Reconstruct for Coded {
    fn shape(&self) -> (usize, usize) {
        self.values.dim()
    }
    fn to_dense(&self) -> Array2<f32> {
        self.values.clone()
    }
    fn storage(&self) -> Storage {
        Storage::new(self.values.len() as u64)
            .with("codes", self.values.len() as u64)
            .with("scale", 4)
    }
}

/// A sparse form whose support is its mask.
#[derive(Debug)]
struct Pruned {
    values: Array2<f32>,
    mask: Mask,
}

impl Reconstruct for Pruned {
    fn shape(&self) -> (usize, usize) {
        self.values.dim()
    }
    fn to_dense(&self) -> Array2<f32> {
        self.values.clone()
    }
    fn storage(&self) -> Storage {
        Storage::new(self.values.len() as u64).with("kept values", 4 * self.mask.kept() as u64)
    }
    fn support(&self) -> Option<&Mask> {
        Some(&self.mask)
    }
}

fn prune_half(w: ArrayView2<'_, f32>) -> Pruned {
    let (rows, cols) = w.dim();
    let k = cols / 2;
    let mut mask = Mask::full(rows, cols, false);
    for i in 0..rows {
        let mut idx: Vec<usize> = (0..cols).collect();
        idx.sort_by(|&a, &b| w[(i, b)].abs().total_cmp(&w[(i, a)].abs()).then(a.cmp(&b)));
        for &j in &idx[..k] {
            mask.set(i, j, true);
        }
    }
    let mut values = w.to_owned();
    mask.apply(&mut values).unwrap();
    Pruned { values, mask }
}

impl Compressor for Probe {
    fn recipe(&self) -> String {
        self.name.to_string()
    }
    fn compress(
        &self,
        w: ArrayView2<'_, f32>,
        ctx: &Context<'_>,
    ) -> shrink_core::Result<Compressed> {
        self.log.lock().unwrap().push(Seen {
            w: w.to_owned(),
            mask: ctx.mask.cloned(),
            seed: ctx.seed,
            stats_addr: ctx.stats.map(|s| s as *const LayerStats as usize),
        });
        Ok(match self.op {
            Op::Round(step) => Compressed::new(Coded {
                values: w.mapv(|v| (v / step).round() * step),
            }),
            Op::AddOne => Compressed::new(Coded {
                values: w.mapv(|v| v + 1.0),
            }),
            Op::PruneHalf => Compressed::new(prune_half(w)),
            Op::Fail => return Err(Error::invalid("probe", "asked to fail")),
        })
    }
    fn compose(&self) -> Compose {
        self.prefer
    }
}

/// The mask of the largest-magnitude half of each row, by counting (an
/// independent formulation of `prune_half`).
fn expected_half_mask(w: &Array2<f32>) -> Mask {
    let cols = w.ncols();
    Mask::from_fn(w.nrows(), cols, |i, j| {
        let a = w[(i, j)].abs();
        let above = (0..cols)
            .filter(|&l| {
                let b = w[(i, l)].abs();
                b > a || (b == a && l < j)
            })
            .count();
        above < cols / 2
    })
}

fn new_log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

// ---------------------------------------------------------------- Pipeline

#[test]
fn pipeline_residual_stages_see_the_residual_and_sum() {
    let log = new_log();
    let mut r = rng(31);
    let w = rand_mat(&mut r, 5, 9);
    let stats = LayerStats::identity(9, 1).unwrap();
    let ctx = Context {
        stats: Some(&stats),
        seed: 77,
        mask: None,
    };
    let p = Pipeline::new(Probe::new("round:q0.25", Op::Round(0.25), &log))
        .then(Probe::new("round:q1/64", Op::Round(1.0 / 64.0), &log))
        .then_residual(Probe::new("round:q1/1024", Op::Round(1.0 / 1024.0), &log));
    assert_eq!(p.len(), 3);
    assert!(!p.is_empty());
    assert_eq!(p.recipe(), "round:q0.25+round:q1/64+round:q1/1024");
    let c = p.compress(w.view(), &ctx).unwrap();

    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    let q1 = w.mapv(|v| (v / 0.25).round() * 0.25);
    let r1 = &w - &q1;
    let q2 = r1.mapv(|v| (v * 64.0).round() / 64.0);
    let r2 = &w - &(&q1 + &q2);
    let q3 = r2.mapv(|v| (v * 1024.0).round() / 1024.0);
    assert_eq!(seen[0].w, w, "first stage sees W");
    assert_eq!(seen[1].w, r1, "second stage sees W - first");
    assert_eq!(seen[2].w, r2, "third stage sees W - (first + second)");
    for s in &seen {
        assert!(s.mask.is_none());
        assert_eq!(s.seed, 77);
        assert_eq!(s.stats_addr, Some(&stats as *const LayerStats as usize));
    }
    // The approximation is the sum of the parts, and it is better than any prefix.
    let want = &(&q1 + &q2) + &q3;
    assert_eq!(c.to_dense(), want);
    assert_eq!(c.shape(), (5, 9));
    let fro = |a: &Array2<f32>| {
        Objective::Frobenius
            .error(w.view(), a.view(), None)
            .unwrap()
    };
    assert!(fro(&want) < fro(&(&q1 + &q2)) && fro(&(&q1 + &q2)) < fro(&q1));
    // Storage: every part's bytes.
    let st = c.storage();
    assert_eq!(st.weights, 45);
    assert_eq!(st.bytes(), 3 * (45 + 4));
    assert_eq!(st.parts.len(), 6);
    assert!(
        st.parts
            .iter()
            .all(|p| p.name == "codes" || p.name == "scale")
    );
    // Structure: Sum(Sum(q1, q2), q3).
    let outer = c.downcast_ref::<Sum>().expect("a Sum");
    assert_eq!(outer.parts().len(), 2);
    assert_eq!(outer.parts()[1].downcast_ref::<Coded>().unwrap().values, q3);
    let inner = outer.parts()[0].downcast_ref::<Sum>().expect("nested Sum");
    assert_eq!(inner.parts()[0].downcast_ref::<Coded>().unwrap().values, q1);
    assert!(c.support().is_none());
    // forward = x W'^T.
    let x = rand_mat(&mut r, 4, 9);
    let y = c.forward(x.view()).unwrap();
    assert_mat_close(
        &to_f64(&y),
        &naive_forward(x.view(), want.view()),
        1e-5,
        "sum forward",
    );
    assert!(matches!(
        c.forward(Array2::<f32>::zeros((2, 8)).view()),
        Err(Error::Shape { .. })
    ));
}

fn check_restricted(c: &Compressed, w: &Array2<f32>, mask: &Mask, inner_values: &Array2<f32>) {
    let (rows, cols) = w.dim();
    let d = c.to_dense();
    for i in 0..rows {
        for j in 0..cols {
            if mask.get(i, j) {
                assert_eq!(d[(i, j)], inner_values[(i, j)], "kept ({i}, {j})");
            } else {
                assert_eq!(
                    d[(i, j)].to_bits(),
                    0.0f32.to_bits(),
                    "pruned ({i}, {j}) not +0"
                );
            }
        }
    }
    assert_eq!(c.support(), Some(mask));
    let st = c.storage();
    assert_eq!(st.weights, (rows * cols) as u64);
    let bitmap: Vec<&StoragePart> = st
        .parts
        .iter()
        .filter(|p| p.name == "mask bitmap")
        .collect();
    assert_eq!(bitmap.len(), 1, "one mask bitmap part: {st:?}");
    assert_eq!(bitmap[0].bytes, (rows * cols).div_ceil(8) as u64);
    assert_eq!(
        st.bytes(),
        (rows * cols) as u64 + 4 + (rows * cols).div_ceil(8) as u64
    );
    let mut rr = rng(99);
    let x = rand_mat(&mut rr, 6, cols);
    let y = c.forward(x.view()).unwrap();
    assert_mat_close(
        &to_f64(&y),
        &naive_forward(x.view(), d.view()),
        1e-5,
        "restricted forward",
    );
}

#[test]
fn pipeline_auto_and_explicit_restricted_after_a_mask() {
    // 3 x 7 = 21 weights: the bitmap takes 3 bytes.
    let mut r = rng(41);
    let w = rand_mat(&mut r, 3, 7);
    let mask = expected_half_mask(&w);
    assert_eq!(mask.kept(), 3 * 3);
    let mut pruned = w.clone();
    for i in 0..3 {
        for j in 0..7 {
            if !mask.get(i, j) {
                pruned[(i, j)] = 0.0;
            }
        }
    }
    let stats = LayerStats::identity(7, 1).unwrap();
    let ctx = Context {
        stats: Some(&stats),
        seed: 5,
        mask: None,
    };
    for explicit in [false, true] {
        let log = new_log();
        let p = Pipeline::new(Probe::new("prune:half", Op::PruneHalf, &log));
        let p = if explicit {
            p.then_restricted(Probe::new("addone", Op::AddOne, &log))
        } else {
            p.then(Probe::new("addone", Op::AddOne, &log))
        };
        assert_eq!(p.recipe(), "prune:half+addone");
        let c = p.compress(w.view(), &ctx).unwrap();
        let seen = log.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].w, w);
        assert!(seen[0].mask.is_none());
        assert_eq!(
            seen[1].mask.as_ref(),
            Some(&mask),
            "stage gets the pruner's mask"
        );
        assert_eq!(seen[1].w, pruned, "stage gets the pruned matrix");
        assert_eq!(seen[1].seed, 5);
        assert_eq!(
            seen[1].stats_addr,
            Some(&stats as *const LayerStats as usize)
        );
        // AddOne wrote 1.0 at every pruned weight; the pipeline zeroed them.
        let added = pruned.mapv(|v| v + 1.0);
        check_restricted(&c, &w, &mask, &added);
        let rs = c.downcast_ref::<Restricted>().expect("a Restricted form");
        assert_eq!(
            rs.inner().to_dense(),
            added,
            "inner keeps the unmasked values"
        );
    }
}

#[test]
fn pipeline_restricted_chains_and_residual_preference() {
    let mut r = rng(43);
    let w = rand_mat(&mut r, 4, 6);
    let mask = expected_half_mask(&w);
    let mut pruned = w.clone();
    mask.apply(&mut pruned).unwrap();

    // Two restricted stages in a row: the third sees the masked output of the second.
    let log = new_log();
    let p = Pipeline::new(Probe::new("prune", Op::PruneHalf, &log))
        .then(Probe::new("addone", Op::AddOne, &log))
        .then(Probe::new("round", Op::Round(0.5), &log));
    let c = p.compress(w.view(), &Context::default()).unwrap();
    let seen = log.lock().unwrap().clone();
    let mut after_add = pruned.mapv(|v| v + 1.0);
    mask.apply(&mut after_add).unwrap();
    assert_eq!(seen[2].w, after_add);
    assert_eq!(seen[2].mask.as_ref(), Some(&mask));
    let rounded = after_add.mapv(|v| (v / 0.5).round() * 0.5);
    check_restricted(&c, &w, &mask, &rounded);

    // A stage preferring residual composition fits W - pruned, with no mask.
    for forced in [false, true] {
        let log = new_log();
        let p = Pipeline::new(Probe::new("prune", Op::PruneHalf, &log));
        let p = if forced {
            p.then_residual(Probe::new("round", Op::Round(0.25), &log))
        } else {
            p.then(Probe::new("round", Op::Round(0.25), &log).prefer(Compose::Residual))
        };
        let c = p.compress(w.view(), &Context::default()).unwrap();
        let seen = log.lock().unwrap().clone();
        let resid = &w - &pruned;
        assert_eq!(seen[1].w, resid);
        assert!(seen[1].mask.is_none());
        let q = resid.mapv(|v| (v / 0.25).round() * 0.25);
        assert_eq!(c.to_dense(), &pruned + &q);
        assert!(c.support().is_none());
        assert_eq!(c.storage().bytes(), 4 * mask.kept() as u64 + 24 + 4);
    }
}

#[test]
fn pipeline_errors() {
    let log = new_log();
    let w = Array2::<f32>::ones((2, 4));
    // Restricted without an earlier mask.
    let p = Pipeline::new(Probe::new("round", Op::Round(0.5), &log)).then_restricted(Probe::new(
        "needs-mask",
        Op::AddOne,
        &log,
    ));
    let e = p.compress(w.view(), &Context::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    assert!(e.to_string().contains("needs-mask"), "{e}");
    // Preference Restrict through `then` fails the same way.
    let p = Pipeline::new(Probe::new("round", Op::Round(0.5), &log))
        .then(Probe::new("pref", Op::AddOne, &log).prefer(Compose::Restrict));
    assert!(matches!(
        p.compress(w.view(), &Context::default()),
        Err(Error::InvalidArgument { .. })
    ));
    // A failing stage's error comes through.
    let p = Pipeline::new(Probe::new("round", Op::Round(0.5), &log)).then(Probe::new(
        "fail",
        Op::Fail,
        &log,
    ));
    let e = p.compress(w.view(), &Context::default()).unwrap_err();
    assert!(e.to_string().contains("asked to fail"), "{e}");
    // Nested pipelines join recipes with '+'.
    let inner = Pipeline::new(Probe::new("a:1", Op::Round(0.5), &log)).then(Probe::new(
        "b",
        Op::Round(0.5),
        &log,
    ));
    let outer = Pipeline::from_boxed(Box::new(inner)).then(Probe::new("c:x:y", Op::AddOne, &log));
    assert_eq!(outer.recipe(), "a:1+b+c:x:y");
    assert!(outer.recipe().parse::<Recipe>().is_ok());
}

#[test]
fn sum_and_restricted_constructors() {
    assert!(matches!(Sum::new(vec![]), Err(Error::Empty { .. })));
    let a = Compressed::new(Dense(Array2::ones((2, 3))));
    let b = Compressed::new(Dense(Array2::ones((3, 2))));
    assert!(matches!(Sum::new(vec![a, b]), Err(Error::Shape { .. })));
    let inner = Compressed::new(Dense(Array2::ones((2, 3))));
    assert!(matches!(
        Restricted::new(Mask::full(3, 2, true), inner),
        Err(Error::Shape { .. })
    ));
    // A Restricted over a Dense: masked values, dense bytes plus the bitmap.
    let vals = Array2::from_shape_fn((3, 3), |(i, j)| (i * 3 + j + 1) as f32);
    let m = Mask::from_fn(3, 3, |i, j| i == j);
    let rs = Restricted::new(m.clone(), Compressed::new(Dense(vals.clone()))).unwrap();
    assert_eq!(rs.to_dense(), Array2::from_diag(&vals.diag().to_owned()));
    assert_eq!(rs.storage().bytes(), 36 + 2);
    assert!(rs.inner().downcast_ref::<Dense>().is_some());
    assert!(rs.inner().downcast_ref::<Coded>().is_none());
    let x = Array2::from_shape_fn((2, 3), |(t, i)| (t + 2 * i) as f32);
    let y = rs.forward(x.view()).unwrap();
    assert_mat_close(
        &to_f64(&y),
        &naive_forward(x.view(), rs.to_dense().view()),
        1e-6,
        "fw",
    );
}

// ---------------------------------------------------------------- Mask

#[test]
fn mask_basics() {
    // 5 x 13 = 65 bits: crosses a 64-bit word.
    let full = Mask::full(5, 13, true);
    assert_eq!(full.shape(), (5, 13));
    assert_eq!(full.kept(), 65);
    assert_eq!(full.density(), 1.0);
    assert!((0..5).all(|i| (0..13).all(|j| full.get(i, j))));
    let none = Mask::full(5, 13, false);
    assert_eq!(none.kept(), 0);
    assert_eq!(none.density(), 0.0);
    assert_eq!(Mask::full(2, 32, true).kept(), 64);
    assert_eq!(Mask::full(0, 4, true).density(), 1.0);
    assert_eq!(Mask::from_fn(5, 13, |_, _| true), full);

    let m = Mask::from_fn(5, 13, |i, j| (i * 13 + j) % 3 == 0);
    let want = (0..65).filter(|k| k % 3 == 0).count();
    assert_eq!(m.kept(), want);
    assert_eq!(m.density(), want as f64 / 65.0);
    for i in 0..5 {
        for j in 0..13 {
            assert_eq!(m.get(i, j), (i * 13 + j) % 3 == 0, "({i}, {j})");
        }
    }
    // Out of range: not kept, set ignored.
    assert!(!full.get(5, 0) && !full.get(0, 13));
    let mut s = Mask::full(2, 3, false);
    s.set(2, 0, true);
    s.set(0, 3, true);
    assert_eq!(s, Mask::full(2, 3, false));
    s.set(1, 2, true);
    assert!(s.get(1, 2) && s.kept() == 1);
    s.set(1, 2, false);
    assert_eq!(s, Mask::full(2, 3, false));
    // Bitmap size.
    assert_eq!(Mask::full(3, 7, true).bitmap_bytes(), 3);
    assert_eq!(Mask::full(4, 4, true).bitmap_bytes(), 2);
    assert_eq!(Mask::full(1, 1, false).bitmap_bytes(), 1);
    // nonzero.
    let w = Array2::from_shape_vec((2, 3), vec![0.0, 1.0, -0.0, 2.0, 0.0, -3.0]).unwrap();
    assert_eq!(
        Mask::nonzero(w.view()),
        Mask::from_fn(2, 3, |i, j| (i, j) == (0, 1) || i == 1 && j != 1)
    );
}

#[test]
fn mask_n_of_m() {
    // 2 rows of 8: every group of 4 keeps exactly 2.
    let pat = [[1, 0, 1, 0, 0, 1, 1, 0], [0, 0, 1, 1, 1, 1, 0, 0]];
    let mut m = Mask::from_fn(2, 8, |i, j| pat[i][j] == 1);
    assert!(m.is_n_of_m(2, 4));
    assert!(!m.is_n_of_m(1, 4));
    assert!(!m.is_n_of_m(2, 3), "3 does not divide 8");
    assert!(!m.is_n_of_m(0, 0));
    assert!(!m.is_n_of_m(5, 4));
    assert!(m.is_n_of_m(4, 8));
    // One group keeps 3.
    m.set(1, 7, true);
    assert!(!m.is_n_of_m(2, 4));
    m.set(1, 7, false);
    m.set(1, 5, false);
    assert!(!m.is_n_of_m(2, 4), "one group keeps 1");
    assert!(Mask::full(3, 4, true).is_n_of_m(4, 4));
    assert!(Mask::full(3, 4, false).is_n_of_m(0, 2));
}

#[test]
fn mask_apply() {
    let mut r = rng(51);
    let w = rand_mat(&mut r, 4, 9);
    let m = Mask::from_fn(4, 9, |i, j| (i + 2 * j) % 5 < 2);
    let mut a = w.clone();
    m.apply(&mut a).unwrap();
    for ((i, j), v) in a.indexed_iter() {
        if m.get(i, j) {
            assert_eq!(*v, w[(i, j)]);
        } else {
            assert_eq!(*v, 0.0);
        }
    }
    let mut wrong = Array2::<f32>::ones((9, 4));
    assert!(matches!(m.apply(&mut wrong), Err(Error::Shape { .. })));
    assert_eq!(
        wrong,
        Array2::<f32>::ones((9, 4)),
        "failed apply must not write"
    );
}

// ---------------------------------------------------------------- Recipe syntax

#[test]
fn recipe_round_trips() {
    for text in [
        "rtn:int4:g128:asym",
        "rtn:int3:g128:asym+lorc:r32",
        "wanda:50%+gptq:int4:g128:asym",
        "svd-llm:ratio0.5",
        "a_b-1",
        "x:Y.z_%-",
    ] {
        let r: Recipe = text.parse().unwrap();
        assert_eq!(r.to_string(), text);
        assert_eq!(r.to_string().parse::<Recipe>().unwrap(), r);
    }
    let r: Recipe = "wanda:50%+gptq:int4:g128:asym".parse().unwrap();
    assert_eq!(
        r.stages,
        vec![
            StageSpec::new("wanda", ["50%"]),
            StageSpec::new("gptq", ["int4", "g128", "asym"]),
        ]
    );
    let r: Recipe = "svd-llm:ratio0.5".parse().unwrap();
    assert_eq!(r.stages[0].method, "svd-llm");
    assert_eq!(r.stages[0].args, ["ratio0.5"]);
    assert_eq!(
        " rtn:int4 ".parse::<Recipe>().unwrap().to_string(),
        "rtn:int4"
    );
    let st: StageSpec = "rtn:int4:g128".parse().unwrap();
    assert_eq!(st.to_string(), "rtn:int4:g128");
    assert_eq!(StageSpec::new("m", Vec::<String>::new()).to_string(), "m");
    let e = st.error("g128", "bad group");
    assert!(
        matches!(&e, Error::Recipe { recipe, part, .. } if recipe == "rtn:int4:g128" && part == "g128")
    );
}

#[test]
fn recipe_errors_name_the_bad_part() {
    let part_of = |text: &str| match text.parse::<Recipe>() {
        Err(Error::Recipe {
            part,
            recipe,
            reason,
        }) => (part, recipe, reason),
        other => panic!("{text:?}: expected a recipe error, got {other:?}"),
    };
    let (_, _, reason) = part_of("");
    assert!(reason.contains("empty"), "{reason}");
    let (_, _, reason) = part_of("   ");
    assert!(reason.contains("empty"), "{reason}");
    let (part, recipe, _) = part_of("rtn:int4+");
    assert_eq!(part, "stage 2");
    assert_eq!(recipe, "rtn:int4+");
    assert_eq!(part_of("+rtn").0, "stage 1");
    assert_eq!(part_of("a++b").0, "stage 2");
    let (part, recipe, _) = part_of("rtn::g128");
    assert_eq!(part, ":");
    assert_eq!(recipe, "rtn::g128");
    assert_eq!(part_of("rtn:int4:").0, ":");
    let (part, recipe, _) = part_of("RTN:int4");
    assert_eq!(part, "RTN");
    assert_eq!(recipe, "RTN:int4");
    let (part, recipe, _) = part_of("rtn:int4+lorc:r 32");
    assert_eq!(part, "r 32");
    assert_eq!(recipe, "rtn:int4+lorc:r 32", "the whole recipe is reported");
    assert_eq!(part_of("rtn:int 4").0, "int 4");
    assert_eq!(part_of(":int4").0, "");
    assert_eq!(part_of("rtn:int4/8").0, "int4/8");
    let msg = "rtn:int 4".parse::<Recipe>().unwrap_err().to_string();
    assert!(
        msg.contains("`int 4`") && msg.contains("rtn:int 4"),
        "{msg}"
    );
}

// ---------------------------------------------------------------- interop

/// as_faer reads the same elements at the same addresses, and as_ndarray
/// brings back a view equal to the original, also at the same addresses.
#[track_caller]
fn check_view(v: ArrayView2<'_, f32>) {
    let m = as_faer(v);
    assert_eq!((m.nrows(), m.ncols()), v.dim());
    if !v.is_empty() {
        assert_eq!(m.as_ptr(), &v[(0, 0)] as *const f32, "first element");
    }
    for i in 0..v.nrows() {
        for j in 0..v.ncols() {
            assert_eq!(m[(i, j)].to_bits(), v[(i, j)].to_bits(), "value ({i}, {j})");
            let p = m
                .as_ptr()
                .wrapping_offset(i as isize * m.row_stride() + j as isize * m.col_stride());
            assert_eq!(p, &v[(i, j)] as *const f32, "address ({i}, {j})");
            assert_eq!(
                m.ptr_at(i, j),
                &v[(i, j)] as *const f32,
                "ptr_at ({i}, {j})"
            );
        }
    }
    let back = as_ndarray(m);
    assert_eq!(back, v);
    assert_eq!(back.dim(), v.dim());
    for i in 0..v.nrows() {
        for j in 0..v.ncols() {
            assert_eq!(&back[(i, j)] as *const f32, &v[(i, j)] as *const f32);
        }
    }
}

#[test]
fn interop_views_share_memory() {
    let a = Array2::from_shape_fn((7, 10), |(i, j)| (i * 10 + j) as f32 + 0.5);
    check_view(a.view());
    check_view(a.t());
    check_view(a.slice(s![..;2, 1..;3]));
    check_view(a.slice(s![..;-1, ..]));
    check_view(a.slice(s![..;-2, ..;-3]));
    check_view(a.slice(s![1..5, ..;-1]).t());
    check_view(a.slice(s![3..4, ..;-1]));
    check_view(a.slice(s![.., 4..5]));
    check_view(a.slice(s![2..2, ..]));
    let f = Array2::from_shape_fn((4, 5).f(), |(i, j)| (i * 5 + j) as f32);
    check_view(f.view());
    check_view(f.slice(s![.., ..;-1]));
}

#[test]
fn interop_mutable_view_writes_through() {
    let mut a = Array2::<f32>::zeros((6, 8));
    let mut want = a.clone();
    {
        let v = a.slice_mut(s![1..;2, ..;-3]);
        let (rows, cols) = v.dim();
        let mut m = as_faer_mut(v);
        for i in 0..rows {
            for j in 0..cols {
                m[(i, j)] = (100 * i + j) as f32 + 1.0;
            }
        }
    }
    {
        let mut w = want.slice_mut(s![1..;2, ..;-3]);
        for ((i, j), v) in w.indexed_iter_mut() {
            *v = (100 * i + j) as f32 + 1.0;
        }
    }
    assert_eq!(a, want);
    // Rows 0, 2, 4 untouched; columns not hit by ..;-3 untouched.
    assert_eq!(a.row(0).iter().filter(|v| **v != 0.0).count(), 0);
    assert_eq!(a.row(1).iter().filter(|v| **v != 0.0).count(), 3);
    assert_eq!(a[(1, 7)], 1.0);
    assert_eq!(a[(1, 4)], 2.0);
    // A transposed mutable view.
    let mut b = Array2::<f32>::zeros((3, 4));
    {
        let mut m = as_faer_mut(b.view_mut().reversed_axes());
        m[(3, 1)] = 9.0;
    }
    assert_eq!(b[(1, 3)], 9.0);
    assert_eq!(b.iter().filter(|v| **v != 0.0).count(), 1);
}

// ---------------------------------------------------------------- linalg

#[test]
fn linalg_kernels_against_naive() {
    use shrink_core::linalg::{
        frobenius_inner, gemm_f32_bt_seq, matmul, matmul_f32_bt, quadratic_trace,
    };
    let mut r = rng(61);
    for &(m, k, n) in &[(3usize, 4usize, 5usize), (2, 7, 130), (66, 3, 65)] {
        let a = to_f64(&rand_mat(&mut r, m, k));
        let b = to_f64(&rand_mat(&mut r, k, n));
        let c = matmul(a.view(), b.view());
        let want = Array2::from_shape_fn((m, n), |(i, j)| {
            (0..k).map(|l| a[(i, l)] * b[(l, j)]).sum::<f64>()
        });
        assert_mat_close(&c, &want, 1e-13, "matmul");
        // Strided operands.
        let bt = b.t().to_owned();
        assert_mat_close(&matmul(a.view(), bt.t()), &want, 1e-13, "matmul strided");

        let x = rand_mat(&mut r, m, k);
        let w = rand_mat(&mut r, n, k);
        let y = matmul_f32_bt(x.view(), w.view());
        assert_eq!(y.dim(), (m, n));
        assert_mat_close(
            &to_f64(&y),
            &naive_forward(x.view(), w.view()),
            1e-5,
            "matmul_f32_bt",
        );
        let mut y2 = Array2::<f32>::from_elem((m, n), 7.0);
        gemm_f32_bt_seq(y2.view_mut(), x.view(), w.view());
        assert_mat_close(
            &to_f64(&y2),
            &naive_forward(x.view(), w.view()),
            1e-5,
            "gemm seq",
        );

        let e = to_f64(&rand_mat(&mut r, m, k));
        let f = to_f64(&rand_mat(&mut r, m, k));
        let inner: f64 = e.iter().zip(f.iter()).map(|(p, q)| p * q).sum();
        assert_scalar_close(
            frobenius_inner(e.view(), f.view()),
            inner,
            1e-12,
            "frobenius_inner",
        );
        let h0 = to_f64(&rand_mat(&mut r, k, k));
        let h = h0.t().dot(&h0);
        let mut qt = 0.0;
        for i in 0..m {
            for p in 0..k {
                for q in 0..k {
                    qt += e[(i, p)] * h[(p, q)] * e[(i, q)];
                }
            }
        }
        assert_scalar_close(
            quadratic_trace(e.view(), h.view()),
            qt,
            1e-11,
            "quadratic_trace",
        );
    }
}
