//! Mask selection: exact density, N:M validity, reductions under H = I,
//! structure, bad ratios and recipe round trips.

mod common;

use common::{correlated_stats, gaussian};
use ndarray::Array2;
use shrink_core::{Compressor, Context, Error, LayerStats, Mask, Reconstruct, StageSpec};
use shrink_prune::{
    Lift, Magnitude, MaskStructure, Pattern, Pruned, Ratio, SparseGpt, SparseGptConfig, Wanda,
    from_stage, sparsegpt,
};

fn pct(p: f64) -> Ratio {
    Ratio::percent(p).unwrap()
}

fn mask_of(c: &shrink_core::Compressed) -> Mask {
    c.support().expect("pruned forms have a support").clone()
}

#[test]
fn density_is_exact() {
    let w = gaussian(64, 256, 1);
    let st = correlated_stats(256, 600, 2);
    let ctx = Context::with_stats(&st);
    let n = 64 * 256;
    let cases: Vec<(Box<dyn Compressor>, usize)> = vec![
        (
            Box::new(Magnitude::new(Pattern::Unstructured(pct(50.0)))),
            n / 2,
        ),
        (
            Box::new(Magnitude::new(Pattern::Unstructured(pct(30.0)))),
            n - n * 3 / 10,
        ),
        (
            Box::new(Magnitude::new(Pattern::PerRow(pct(37.0)))),
            64 * (256 - 94),
        ),
        (
            Box::new(Wanda::new(Pattern::Unstructured(pct(50.0)))),
            n / 2,
        ),
        (Box::new(Wanda::new(Pattern::Rows(pct(25.0)))), 48 * 256),
        (Box::new(Wanda::new(Pattern::Columns(pct(25.0)))), 64 * 192),
        (
            Box::new(SparseGpt::new(Pattern::Unstructured(pct(50.0)))),
            n / 2,
        ),
        (Box::new(Lift::new(8, pct(5.0))), n * 5 / 100),
    ];
    for (c, kept) in cases {
        let out = c.compress(w.view(), &ctx).unwrap();
        let m = mask_of(&out);
        assert_eq!(m.kept(), kept, "{}", c.recipe());
        assert_eq!(m.density(), kept as f64 / n as f64);
        // Pruned weights are exact zeros.
        let d = out.to_dense();
        for ((i, j), v) in d.indexed_iter() {
            if !m.get(i, j) {
                assert_eq!(v.to_bits(), 0, "{} at ({i},{j})", c.recipe());
            }
        }
    }
    // Per row: every row prunes exactly floor(0.37 * 256) = 94.
    let m = Magnitude::new(Pattern::PerRow(pct(37.0)))
        .mask(w.view())
        .unwrap();
    assert!(m.kept_per_row().iter().all(|&k| k == 256 - 94));
    // Wanda compares within rows.
    let m = Wanda::new(Pattern::Unstructured(pct(50.0)))
        .mask(w.view(), &st)
        .unwrap();
    assert!(m.kept_per_row().iter().all(|&k| k == 128));
    // SparseGPT: exactly floor(s * rows * 128) per block of 128 columns.
    let out = sparsegpt(
        w.view(),
        st.gram().view(),
        &SparseGptConfig::new(Pattern::Unstructured(pct(30.0))),
    )
    .unwrap();
    for b in 0..2 {
        let kept = (0..64)
            .flat_map(|i| (b * 128..(b + 1) * 128).map(move |j| (i, j)))
            .filter(|&(i, j)| out.mask.get(i, j))
            .count();
        assert_eq!(kept, 64 * 128 - 64 * 128 * 3 / 10);
    }
}

#[test]
fn decimal_percentages_count_as_written() {
    assert_eq!(pct(33.3).count_of(1000), 333);
    assert_eq!(pct(29.0).count_of(100), 29);
    assert_eq!(pct(50.0).count_of(7), 3);
    assert_eq!(pct(100.0).count_of(7), 7);
    assert_eq!(pct(0.0).count_of(7), 0);
}

#[test]
fn n_of_m_masks_are_valid() {
    let w = gaussian(40, 64, 3);
    let st = correlated_stats(64, 300, 4);
    let ctx = Context::with_stats(&st);
    for recipe in [
        "magnitude:2:4",
        "wanda:2:4",
        "sparsegpt:2:4",
        "sparsegpt:4:8",
        "magnitude:1:4",
        "wanda:3:8",
    ] {
        let st_: StageSpec = recipe.parse().unwrap();
        let c = from_stage(&st_).unwrap();
        let m = mask_of(&c.compress(w.view(), &ctx).unwrap());
        let (n, mm) = match recipe.rsplit(':').collect::<Vec<_>>()[..] {
            [m, n, ..] => (n.parse().unwrap(), m.parse().unwrap()),
            _ => unreachable!(),
        };
        assert!(m.is_n_of_m(n, mm), "{recipe}");
        m.check_n_of_m(n, mm).unwrap();
        assert_eq!(m.kept(), 40 * 64 * n / mm);
    }
    let bad = Mask::from_fn(2, 8, |_, j| j < 3);
    assert!(matches!(
        bad.check_n_of_m(2, 4),
        Err(Error::InvalidArgument { .. })
    ));
}

/// Magnitude pruning applied independently to each block of `block`
/// columns, one threshold pooled over all rows of the block.
fn block_magnitude(w: &Array2<f32>, ratio: Ratio, block: usize) -> Mask {
    let (rows, cols) = w.dim();
    let mut keep = Mask::full(rows, cols, true);
    for b0 in (0..cols).step_by(block) {
        let b1 = (b0 + block).min(cols);
        let sub = w.slice(ndarray::s![.., b0..b1]).to_owned();
        let m = Magnitude::new(Pattern::Unstructured(ratio))
            .mask(sub.view())
            .unwrap();
        for i in 0..rows {
            for j in b0..b1 {
                keep.set(i, j, m.get(i, j - b0));
            }
        }
    }
    keep
}

#[test]
fn sparsegpt_with_identity_hessian_is_block_magnitude() {
    let w = gaussian(48, 320, 5);
    let st = LayerStats::identity(320, 1000).unwrap();
    for p in [50.0, 20.0, 75.0] {
        let out = sparsegpt(
            w.view(),
            st.gram().view(),
            &SparseGptConfig::new(Pattern::Unstructured(pct(p))),
        )
        .unwrap();
        assert_eq!(out.mask, block_magnitude(&w, pct(p), 128), "{p}%");
        // No update propagates: kept weights are unchanged.
        for ((i, j), &v) in out.weights.indexed_iter() {
            let expect = if out.mask.get(i, j) { w[(i, j)] } else { 0.0 };
            assert_eq!(v, expect);
        }
    }
    // N:M likewise equals magnitude N:M.
    for (n, m) in [(2, 4), (4, 8)] {
        let out = sparsegpt(
            w.view(),
            st.gram().view(),
            &SparseGptConfig::new(Pattern::n_of_m(n, m).unwrap()),
        )
        .unwrap();
        let mag = Magnitude::new(Pattern::n_of_m(n, m).unwrap())
            .mask(w.view())
            .unwrap();
        assert_eq!(out.mask, mag, "{n}:{m}");
    }
}

#[test]
fn wanda_with_identity_hessian_is_row_magnitude() {
    let w = gaussian(30, 96, 6);
    let st = LayerStats::identity(96, 77).unwrap();
    for p in [
        Pattern::Unstructured(pct(50.0)),
        Pattern::n_of_m(2, 4).unwrap(),
    ] {
        let a = Wanda::new(p).mask(w.view(), &st).unwrap();
        let mp = match p {
            Pattern::Unstructured(r) => Pattern::PerRow(r),
            o => o,
        };
        let b = Magnitude::new(mp).mask(w.view()).unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn ties_prune_the_lower_index_first() {
    // All magnitudes equal: the first half (row-major) is pruned.
    let w = Array2::from_elem((4, 8), 0.5f32);
    let m = Magnitude::new(Pattern::Unstructured(pct(50.0)))
        .mask(w.view())
        .unwrap();
    assert_eq!(m, Mask::from_fn(4, 8, |i, _| i >= 2));
    let m = Magnitude::new(Pattern::PerRow(pct(25.0)))
        .mask(w.view())
        .unwrap();
    assert_eq!(m, Mask::from_fn(4, 8, |_, j| j >= 2));
    let m = Magnitude::new(Pattern::n_of_m(2, 4).unwrap())
        .mask(w.view())
        .unwrap();
    assert_eq!(m, Mask::from_fn(4, 8, |_, j| j % 4 >= 2));
    let m = Magnitude::new(Pattern::Rows(pct(50.0)))
        .mask(w.view())
        .unwrap();
    assert_eq!(m.pruned_rows(), vec![0, 1]);
}

#[test]
fn lift_at_full_rank_keeps_the_largest_magnitudes() {
    let w = gaussian(40, 50, 13);
    let lift = Lift::new(64, pct(5.0)).mask(w.view()).unwrap();
    let mag = Magnitude::new(Pattern::Unstructured(pct(95.0)))
        .mask(w.view())
        .unwrap();
    assert_eq!(lift.kept(), 100);
    assert_eq!(lift, mag);
    // At a low rank the mask differs from plain magnitude (the point of LIFT).
    let low = Lift::new(2, pct(5.0)).mask(w.view()).unwrap();
    assert_eq!(low.kept(), 100);
    assert_ne!(low, mag);
}

#[test]
fn structured_pruning_removes_whole_lines() {
    let w = gaussian(32, 64, 7);
    let st = correlated_stats(64, 200, 8);
    let ctx = Context::with_stats(&st);
    let rows = Wanda::new(Pattern::Rows(pct(25.0)))
        .compress(w.view(), &ctx)
        .unwrap();
    let m = mask_of(&rows);
    assert!(m.is_row_structured());
    assert_eq!(m.pruned_rows().len(), 8);
    // The removed rows are those of smallest summed score.
    let s = shrink_prune::wanda_scores(w.view(), &st).unwrap();
    let sums: Vec<f64> = s.outer_iter().map(|r| r.sum()).collect();
    let max_removed = m
        .pruned_rows()
        .iter()
        .map(|&i| sums[i])
        .fold(f64::MIN, f64::max);
    for (i, &sum) in sums.iter().enumerate() {
        if !m.pruned_rows().contains(&i) {
            assert!(sum >= max_removed);
        }
    }
    let p = rows.downcast_ref::<Pruned>().unwrap();
    assert_eq!(p.layout(), shrink_prune::Layout::Rows);
    let cols = Magnitude::new(Pattern::Columns(pct(50.0)))
        .compress(w.view(), &ctx)
        .unwrap();
    let m = mask_of(&cols);
    assert!(m.is_column_structured());
    assert_eq!(m.pruned_columns().len(), 32);
}

#[test]
fn bad_ratios_are_typed_errors() {
    assert!(matches!(
        Ratio::percent(-1.0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Ratio::percent(100.5),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Ratio::fraction(f64::NAN),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Pattern::n_of_m(5, 4),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Pattern::n_of_m(0, 0),
        Err(Error::InvalidArgument { .. })
    ));
    // M must divide the row: an error at compress time.
    let w = gaussian(4, 10, 9);
    let st = LayerStats::identity(10, 10).unwrap();
    for c in [
        Box::new(Magnitude::new(Pattern::n_of_m(2, 4).unwrap())) as Box<dyn Compressor>,
        Box::new(Wanda::new(Pattern::n_of_m(2, 4).unwrap())),
        Box::new(SparseGpt::new(Pattern::n_of_m(2, 4).unwrap())),
    ] {
        let e = c.compress(w.view(), &Context::with_stats(&st)).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    }
    for r in [
        "magnitude:-5%",
        "magnitude:150%",
        "wanda:100.1%",
        "wanda:5:4",
        "sparsegpt:3:0",
        "sparsegpt:abc%",
        "magnitude",
        "magnitude:50%:25%",
        "sparsegpt:rows:25%",
        "lift:5%",
        "lift:r0:5%",
        "lift:r64:row:5%",
        "wanda:rows",
        "sparsegpt:50%:int4:g0",
        "sparsegpt:50%:int9",
    ] {
        let st: StageSpec = r.parse().unwrap();
        let e = from_stage(&st).unwrap_err();
        assert!(matches!(e, Error::Recipe { .. }), "{r}: {e}");
    }
}

#[test]
fn recipes_round_trip() {
    for (text, canonical) in [
        ("magnitude:50%", "magnitude:50%"),
        ("magnitude:row:50%", "magnitude:row:50%"),
        ("magnitude:2:4", "magnitude:2:4"),
        ("magnitude:rows:25%", "magnitude:rows:25%"),
        ("magnitude:cols:12.5%", "magnitude:cols:12.5%"),
        ("wanda:50%", "wanda:50%"),
        ("wanda:row:50%", "wanda:50%"),
        ("wanda:2:4", "wanda:2:4"),
        ("wanda:rows:25%", "wanda:rows:25%"),
        ("wanda:cols:25%", "wanda:cols:25%"),
        ("sparsegpt:50%", "sparsegpt:50%"),
        ("sparsegpt:2:4", "sparsegpt:2:4"),
        ("sparsegpt:4:8", "sparsegpt:4:8"),
        ("sparsegpt:50%:int4:g128", "sparsegpt:50%:int4:g128:asym"),
        ("sparsegpt:2:4:int4:g128:sym", "sparsegpt:2:4:int4:g128:sym"),
        ("lift:r64:5%", "lift:r64:5%"),
        ("lift:5%:r64", "lift:r64:5%"),
        ("magnitude:50%:f32", "magnitude:50%:f32"),
        ("wanda:2:4:bf16", "wanda:2:4:bf16"),
        ("magnitude:50%:f16", "magnitude:50%"),
    ] {
        let st: StageSpec = text.parse().unwrap();
        let c = from_stage(&st).unwrap();
        assert_eq!(c.recipe(), canonical, "{text}");
        let again = from_stage(&c.recipe().parse().unwrap()).unwrap();
        assert_eq!(again.recipe(), canonical);
    }
}
