//! Property tests of shrink-core over random shapes, splits and strides.

use ndarray::{Array2, ArrayView2, Slice, s};
use proptest::prelude::*;
use shrink_core::interop::{as_faer, as_ndarray};
use shrink_core::{Dense, LayerStats, Mask, Objective, Recipe, Reconstruct, StageSpec};

fn naive_gram(x: &Array2<f32>) -> Array2<f64> {
    let (t, n) = x.dim();
    Array2::from_shape_fn((n, n), |(i, j)| {
        (0..t)
            .map(|k| f64::from(x[(k, i)]) * f64::from(x[(k, j)]))
            .sum()
    })
}

fn close(a: &Array2<f64>, b: &Array2<f64>, rel: f64) -> bool {
    let scale = b
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    a.dim() == b.dim()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| (x - y).abs() <= rel * scale)
}

fn vclose(a: &ndarray::Array1<f64>, b: &ndarray::Array1<f64>, rel: f64) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| (x - y).abs() <= rel * x.abs().max(y.abs()).max(f64::MIN_POSITIVE))
}

/// A matrix (rows x cols) and sorted cut points splitting its rows.
fn matrix_and_cuts() -> impl Strategy<Value = (Array2<f32>, Vec<usize>)> {
    (0usize..40, 1usize..12).prop_flat_map(|(t, n)| {
        (
            proptest::collection::vec(-8.0f32..8.0, t * n),
            proptest::collection::vec(0..=t, 0..5),
        )
            .prop_map(move |(v, mut cuts)| {
                cuts.sort_unstable();
                (Array2::from_shape_vec((t, n), v).unwrap(), cuts)
            })
    })
}

fn batches(x: &Array2<f32>, cuts: &[usize]) -> Vec<Array2<f32>> {
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(x.nrows());
    bounds
        .windows(2)
        .map(|w| x.slice(s![w[0]..w[1], ..]).to_owned())
        .collect()
}

fn stage() -> impl Strategy<Value = StageSpec> {
    (
        "[a-z0-9_-]{1,8}",
        proptest::collection::vec("[A-Za-z0-9._%-]{1,8}", 0..4),
    )
        .prop_map(|(m, a)| StageSpec::new(m, a))
}

fn slice_elem(len: usize) -> impl Strategy<Value = Slice> {
    (
        0..=len,
        0..=len,
        prop_oneof![Just(1isize), Just(2), Just(3), Just(-1), Just(-2)],
    )
        .prop_map(|(a, b, step)| Slice::new(a.min(b) as isize, Some(a.max(b) as isize), step))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn stats_any_split_equals_one_pass((x, cuts) in matrix_and_cuts()) {
        let n = x.ncols();
        let bs = batches(&x, &cuts);
        let mut one = LayerStats::new(n).unwrap();
        one.observe(x.view()).unwrap();
        let mut many = LayerStats::new(n).unwrap();
        for b in &bs {
            many.observe(b.view()).unwrap();
        }
        // Merge the per-batch statistics, in reverse order.
        let mut merged = LayerStats::new(n).unwrap();
        for b in bs.iter().rev() {
            let mut s = LayerStats::new(n).unwrap();
            s.observe(b.view()).unwrap();
            merged.merge(&s).unwrap();
        }
        let g = naive_gram(&x);
        prop_assert_eq!(one.count(), x.nrows() as u64);
        prop_assert_eq!(many.count(), x.nrows() as u64);
        prop_assert_eq!(merged.count(), x.nrows() as u64);
        prop_assert!(close(one.gram(), &g, 1e-12));
        prop_assert!(close(many.gram(), &g, 1e-12));
        prop_assert!(close(merged.gram(), &g, 1e-12));
        prop_assert!(vclose(&many.mean_abs(), &one.mean_abs(), 1e-12));
        prop_assert!(vclose(&merged.mean_abs(), &one.mean_abs(), 1e-12));
        prop_assert!(vclose(&many.rms(), &one.rms(), 1e-12));
        prop_assert!(vclose(&merged.rms(), &one.rms(), 1e-12));
        if x.nrows() > 0 {
            let t = x.nrows() as f64;
            let ma = ndarray::Array1::from_iter(
                x.columns().into_iter().map(|c| c.iter().map(|v| f64::from(v.abs())).sum::<f64>() / t),
            );
            prop_assert!(vclose(&one.mean_abs(), &ma, 1e-12));
            let rms = ndarray::Array1::from_iter((0..n).map(|i| (g[(i, i)] / t).sqrt()));
            prop_assert!(vclose(&one.rms(), &rms, 1e-12));
        }
    }

    #[test]
    fn output_objective_equals_naive(
        (x, w, d) in (1usize..12, 1usize..6, 1usize..10).prop_flat_map(|(t, o, n)| (
            proptest::collection::vec(-4.0f32..4.0, t * n).prop_map(move |v| Array2::from_shape_vec((t, n), v).unwrap()),
            proptest::collection::vec(-4.0f32..4.0, o * n).prop_map(move |v| Array2::from_shape_vec((o, n), v).unwrap()),
            proptest::collection::vec(-1.0f32..1.0, o * n).prop_map(move |v| Array2::from_shape_vec((o, n), v).unwrap()),
        ))
    ) {
        let w_hat = &w + &d;
        let mut s = LayerStats::new(x.ncols()).unwrap();
        s.observe(x.view()).unwrap();
        let mut want = 0.0f64;
        for k in 0..x.nrows() {
            for o in 0..w.nrows() {
                let mut acc = 0.0f64;
                for i in 0..x.ncols() {
                    acc += f64::from(x[(k, i)]) * (f64::from(w[(o, i)]) - f64::from(w_hat[(o, i)]));
                }
                want += acc * acc;
            }
        }
        let got = Objective::Output.error(w.view(), w_hat.view(), Some(&s)).unwrap();
        prop_assert!((got - want).abs() <= 1e-9 * want.max(1e-300) + 1e-12, "{} vs {}", got, want);
    }

    #[test]
    fn recipes_round_trip(stages in proptest::collection::vec(stage(), 1..5)) {
        let r = Recipe { stages };
        let text = r.to_string();
        let back: Recipe = text.parse().unwrap();
        prop_assert_eq!(&back, &r);
        prop_assert_eq!(back.to_string(), text);
    }

    #[test]
    fn recipe_with_a_bad_char_fails(stages in proptest::collection::vec(stage(), 1..4),
                                    k in 0usize..64, bad in prop_oneof![Just(' '), Just('/'), Just('#'), Just(',')]) {
        let r = Recipe { stages };
        let mut text = r.to_string();
        let len = text.len();
        // A space at either end would be trimmed away: keep it inside.
        let bad = if bad == ' ' && len < 2 { '/' } else { bad };
        let p = if bad == ' ' { (k % (len + 1)).clamp(1, len - 1) } else { k % (len + 1) };
        text.insert(p, bad);
        prop_assert!(text.parse::<Recipe>().is_err(), "{:?} parsed", text);
    }

    #[test]
    fn mask_from_fn_matches_predicate(rows in 0usize..9, cols in 0usize..20, seed in any::<u64>()) {
        let keep = |i: usize, j: usize| (seed.rotate_left((i * 31 + j) as u32 % 64) ^ (i * cols + j) as u64) & 1 == 1;
        let m = Mask::from_fn(rows, cols, keep);
        let mut count = 0;
        for i in 0..rows {
            for j in 0..cols {
                prop_assert_eq!(m.get(i, j), keep(i, j));
                count += usize::from(keep(i, j));
            }
        }
        prop_assert_eq!(m.kept(), count);
        prop_assert_eq!(m.bitmap_bytes(), ((rows * cols) as u64).div_ceil(8));
        let mut w = Array2::from_shape_fn((rows, cols), |(i, j)| 1.0 + (i * cols + j) as f32);
        m.apply(&mut w).unwrap();
        prop_assert_eq!(Mask::nonzero(w.view()), m.clone());
        prop_assert_eq!(Mask::full(rows, cols, true).kept(), rows * cols);
    }

    #[test]
    fn faer_views_alias_ndarray_views(rows in 1usize..9, cols in 1usize..9,
                                      transpose in any::<bool>(),
                                      (r, c) in (slice_elem(8), slice_elem(8))) {
        let a = Array2::from_shape_fn((rows, cols), |(i, j)| (i * 100 + j) as f32);
        let base = if transpose { a.t() } else { a.view() };
        let clamp = |e: Slice, len: usize| {
            Slice::new(e.start.min(len as isize), e.end.map(|x| x.min(len as isize)), e.step)
        };
        let (nr, nc) = base.dim();
        let v: ArrayView2<'_, f32> = base.slice(s![clamp(r, nr), clamp(c, nc)]);
        let m = as_faer(v);
        prop_assert_eq!((m.nrows(), m.ncols()), v.dim());
        for i in 0..v.nrows() {
            for j in 0..v.ncols() {
                prop_assert_eq!(m[(i, j)], v[(i, j)]);
                prop_assert_eq!(m.ptr_at(i, j), &v[(i, j)] as *const f32);
            }
        }
        let back = as_ndarray(m);
        prop_assert_eq!(back, v);
    }

    #[test]
    fn dense_forward_matches_naive(t in 1usize..6, o in 1usize..80, n in 1usize..9, seed in any::<u32>()) {
        let f = |k: usize| ((k as u64 * 2654435761 + seed as u64) % 17) as f32 - 8.0;
        let w = Array2::from_shape_fn((o, n), |(i, j)| f(i * n + j));
        let x = Array2::from_shape_fn((t, n), |(i, j)| f(1000 + i * n + j));
        // Small integers: the f32 product is exact.
        let y = Dense(w.clone()).forward(x.view()).unwrap();
        let want = Array2::from_shape_fn((t, o), |(a, b)| (0..n).map(|k| x[(a, k)] * w[(b, k)]).sum::<f32>());
        prop_assert_eq!(y, want);
    }
}
