//! SparseGPT against a naive implementation (explicit inverse-Hessian
//! updates, no lazy blocks, f64), the joint mode, and determinism.

mod common;

use common::{correlated_stats, gaussian};
use ndarray::Array2;
use shrink_core::{Context, Mask, Reconstruct, StageSpec};
use shrink_prune::{Pattern, Ratio, SparseGptConfig, SparseQuantized, from_stage, sparsegpt};
use shrink_quant::QuantSpec;

/// Inverse of an SPD matrix by Gauss-Jordan elimination (f64).
fn inverse(a: &Array2<f64>) -> Array2<f64> {
    let n = a.nrows();
    let mut m = a.clone();
    let mut inv = Array2::<f64>::eye(n);
    for c in 0..n {
        let p = m[(c, c)];
        for j in 0..n {
            m[(c, j)] /= p;
            inv[(c, j)] /= p;
        }
        for r in 0..n {
            if r != c {
                let f = m[(r, c)];
                for j in 0..n {
                    m[(r, j)] -= f * m[(c, j)];
                    inv[(r, j)] -= f * inv[(c, j)];
                }
            }
        }
    }
    inv
}

/// Textbook OBS pruning, column by column: the inverse Hessian of the
/// remaining columns is updated explicitly after each column, and every
/// update reaches all later columns at once (no lazy blocks). The mask is
/// chosen at each block start (pooled, exactly floor(s * rows * B)) or every
/// M columns (N:M), from the current weights and the current diagonal.
fn naive(w: &Array2<f32>, h: &Array2<f64>, pattern: Pattern, block: usize) -> (Array2<f64>, Mask) {
    let (rows, cols) = w.dim();
    let mut h = h.clone();
    let mut w: Array2<f64> = w.mapv(f64::from);
    for j in 0..cols {
        if h[(j, j)] == 0.0 {
            h[(j, j)] = 1.0;
            w.column_mut(j).fill(0.0);
        }
    }
    let mean = (0..cols).map(|j| h[(j, j)]).sum::<f64>() / cols as f64;
    for j in 0..cols {
        h[(j, j)] += 0.01 * mean;
    }
    let mut hinv = inverse(&h);
    // The pivots each column will see (independent of W).
    let mut diag = vec![0.0; cols];
    {
        let mut t = hinv.clone();
        for c in 0..cols {
            diag[c] = t[(c, c)];
            let col: Vec<f64> = (0..cols).map(|i| t[(i, c)]).collect();
            for i in 0..cols {
                for j in 0..cols {
                    t[(i, j)] -= col[i] * col[j] / diag[c];
                }
            }
        }
    }
    let mut keep = Mask::full(rows, cols, true);
    for c in 0..cols {
        match pattern {
            Pattern::Unstructured(r) if c % block == 0 => {
                let b1 = (c + block).min(cols);
                let mut sc: Vec<(f64, usize)> = Vec::new();
                for i in 0..rows {
                    for j in c..b1 {
                        sc.push((w[(i, j)].powi(2) / diag[j], i * (b1 - c) + (j - c)));
                    }
                }
                sc.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                for &(_, k) in &sc[..r.count_of(sc.len())] {
                    keep.set(k / (b1 - c), c + k % (b1 - c), false);
                }
            }
            Pattern::NM { n, m } if c % m == 0 => {
                for i in 0..rows {
                    let mut sc: Vec<(f64, usize)> = (c..c + m)
                        .map(|j| (w[(i, j)].powi(2) / diag[j], j))
                        .collect();
                    sc.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                    for &(_, j) in &sc[..m - n] {
                        keep.set(i, j, false);
                    }
                }
            }
            _ => {}
        }
        let d = hinv[(c, c)];
        for i in 0..rows {
            if !keep.get(i, c) {
                let delta = w[(i, c)] / d;
                for j in c..cols {
                    w[(i, j)] -= delta * hinv[(c, j)];
                }
                w[(i, c)] = 0.0;
            }
        }
        let col: Vec<f64> = (0..cols).map(|i| hinv[(i, c)]).collect();
        for i in 0..cols {
            for j in 0..cols {
                hinv[(i, j)] -= col[i] * col[j] / d;
            }
        }
    }
    (w, keep)
}

#[test]
fn matches_the_naive_implementation() {
    for (rows, cols, block, pattern, seed) in [
        (
            12,
            48,
            16,
            Pattern::Unstructured(Ratio::percent(50.0).unwrap()),
            1,
        ),
        (
            9,
            40,
            16,
            Pattern::Unstructured(Ratio::percent(30.0).unwrap()),
            2,
        ),
        (10, 48, 16, Pattern::n_of_m(2, 4).unwrap(), 3),
        (7, 64, 16, Pattern::n_of_m(4, 8).unwrap(), 4),
    ] {
        let w = gaussian(rows, cols, seed);
        let mut st = correlated_stats(cols, 4 * cols, seed + 10);
        // A dead input.
        let mut g = st.gram().clone();
        for k in 0..cols {
            g[(3, k)] = 0.0;
            g[(k, 3)] = 0.0;
        }
        st = shrink_core::LayerStats::from_parts(g, st.count(), None, None).unwrap();
        let cfg = SparseGptConfig {
            block,
            ..SparseGptConfig::new(pattern)
        };
        let out = sparsegpt(w.view(), st.gram().view(), &cfg).unwrap();
        let (expect, mask) = naive(&w, st.gram(), pattern, block);
        assert_eq!(out.mask, mask, "{pattern:?}");
        let scale = w.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
        for ((i, j), &v) in out.weights.indexed_iter() {
            let d = (f64::from(v) - expect[(i, j)]).abs();
            assert!(
                d <= 2e-5 * scale,
                "{pattern:?} ({i},{j}): {v} vs {}",
                expect[(i, j)]
            );
            if !mask.get(i, j) {
                assert_eq!(v, 0.0);
            }
        }
    }
}

#[test]
fn joint_mode_quantizes_kept_weights_and_zeroes_pruned_ones() {
    let w = gaussian(32, 256, 11);
    let st = correlated_stats(256, 1000, 12);
    let ctx = Context::with_stats(&st);
    for recipe in [
        "sparsegpt:50%:int4:g128",
        "sparsegpt:2:4:int4:g64:sym",
        "sparsegpt:50%:int8:channel:sym",
        "sparsegpt:50%:nf4:g64",
    ] {
        let st_: StageSpec = recipe.parse().unwrap();
        let c = from_stage(&st_).unwrap();
        let out = c.compress(w.view(), &ctx).unwrap();
        let sq = out.downcast_ref::<SparseQuantized>().unwrap();
        let mask = sq.mask().clone();
        assert_eq!(mask.kept(), 32 * 128, "{recipe}");
        let d = out.to_dense();
        let q = sq.quantized();
        for ((i, j), &v) in d.indexed_iter() {
            if mask.get(i, j) {
                // On the grid of its group.
                let g = q.group_of(i, j);
                let p = q.params()[g];
                assert_eq!(q.quantizer().round(v, &p), v, "{recipe}");
            } else {
                assert_eq!(v.to_bits(), 0, "{recipe}");
            }
        }
        // Better than pruning then rounding: joint error compensation.
        let plain = from_stage(&"sparsegpt:50%".parse().unwrap())
            .unwrap()
            .compress(w.view(), &ctx)
            .unwrap();
        let e_joint = shrink_core::Objective::Output
            .relative(w.view(), d.view(), Some(&st))
            .unwrap();
        let e_plain = shrink_core::Objective::Output
            .relative(w.view(), plain.to_dense().view(), Some(&st))
            .unwrap();
        assert!(
            e_joint < 3.0 * e_plain + 0.05,
            "{recipe}: {e_joint} vs {e_plain}"
        );
        // Storage: bitmap + codes of kept weights + scales.
        let s = out.storage();
        assert_eq!(s.parts[0].bytes, (32 * 256) / 8);
        let bits = u64::from(
            QuantSpec::parse_args(&"x:int4".parse().unwrap(), |_| false)
                .map(|_| q.spec().grid.code_bits())
                .unwrap(),
        );
        assert_eq!(s.parts[1].bytes, (mask.kept() as u64 * bits).div_ceil(8));
    }
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let w = gaussian(70, 384, 21);
    let st = correlated_stats(384, 1200, 22);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            [
                "sparsegpt:50%",
                "sparsegpt:2:4",
                "sparsegpt:50%:int4:g128",
                "wanda:50%",
                "magnitude:50%",
                "wanda:rows:25%",
                "lift:r16:5%",
            ]
            .iter()
            .map(|r| {
                let c = from_stage(&r.parse().unwrap()).unwrap();
                let out = c.compress(w.view(), &Context::with_stats(&st)).unwrap();
                let x = gaussian(9, 384, 5);
                let y = out.forward(x.view()).unwrap();
                (
                    out.to_dense()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect::<Vec<_>>(),
                    out.support().cloned(),
                    y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
        })
    };
    assert_eq!(run(1), run(2));
}
