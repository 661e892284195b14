//! `forward(x)` equals `x * to_dense()^T`, and results do not depend on the
//! number of threads.

mod common;

use common::*;
use ndarray::Array2;
use shrink_core::{Error, Reconstruct};
use shrink_quant::quantize_rtn;

const RECIPES: &[&str] = &[
    "rtn:int4:g128:sym",
    "rtn:int4:g64:asym",
    "rtn:int2:channel:asym:mse",
    "rtn:int8:tensor:sym",
    "rtn:int1:g32:sym",
    "rtn:nf4:g64",
    "rtn:nf3:g64:mse",
    "rtn:fp4:g32",
    "rtn:fp8-e4m3:channel",
    "rtn:fp8-e5m2:channel",
    "rtn:lloyd4:g128",
    "rtn:mxfp4",
    "rtn:mxfp6",
    "rtn:mxfp8",
    "rtn:nvfp4",
];

/// Shapes with row counts below, at and above the 64-row forward block.
const SHAPES: [(usize, usize); 4] = [(1, 128), (64, 256), (130, 128), (77, 384)];

#[test]
fn forward_equals_x_times_dense_transpose() {
    for (k, &(rows, cols)) in SHAPES.iter().enumerate() {
        let w = awkward_matrix(rows, cols, 40 + k as u64);
        for tokens in [1, 5, 33] {
            let x = normal_matrix(tokens, cols, 1.0, 50 + k as u64);
            for &r in RECIPES {
                let q = quantize_rtn(w.view(), &spec(r)).unwrap();
                let d = q.to_dense();
                let want = naive_forward(&x, &d);
                let got = q.forward(x.view()).unwrap();
                assert_eq!(got.dim(), (tokens, rows));
                // Relative to the size of the terms (sum of |x_l w_jl|).
                let mag = naive_forward(&x.mapv(f32::abs), &d.mapv(f32::abs));
                for ((i, j), &g) in got.indexed_iter() {
                    let tol = 1e-4 * mag[[i, j]].max(1e-30);
                    let err = (f64::from(g) - want[[i, j]]).abs();
                    assert!(
                        err <= tol,
                        "{r} {rows}x{cols} t{tokens}: ({i},{j}) got {g} want {} (tol {tol:e})",
                        want[[i, j]]
                    );
                }
                // And relative to the output norm.
                let num: f64 = got
                    .iter()
                    .zip(want.iter())
                    .map(|(&g, &w)| (f64::from(g) - w).powi(2))
                    .sum();
                let den: f64 = want.iter().map(|w| w * w).sum();
                assert!(
                    num <= 1e-8 * den.max(1e-30),
                    "{r}: relative error {}",
                    (num / den).sqrt()
                );
            }
        }
    }
}

#[test]
fn forward_rejects_wrong_input_width() {
    let w = normal_matrix(8, 128, 1.0, 1);
    let q = quantize_rtn(w.view(), &spec("rtn:int4:g64:sym")).unwrap();
    let x = Array2::<f32>::zeros((3, 127));
    assert!(matches!(q.forward(x.view()), Err(Error::Shape { .. })));
    let x = Array2::<f32>::zeros((0, 128));
    assert_eq!(q.forward(x.view()).unwrap().dim(), (0, 8));
}

#[test]
fn forward_accepts_non_contiguous_input() {
    let w = normal_matrix(70, 64, 1.0, 2);
    let q = quantize_rtn(w.view(), &spec("rtn:int4:g32:asym")).unwrap();
    let big = normal_matrix(64, 9, 1.0, 3);
    let x = big.t(); // (9, 64), column-major view
    let got = q.forward(x).unwrap();
    let want = naive_forward(&x.to_owned(), &q.to_dense());
    for (g, w) in got.iter().zip(want.iter()) {
        assert!((f64::from(*g) - w).abs() <= 1e-4 * (1.0 + w.abs()));
    }
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let w = heavy_matrix(130, 256, 9);
    let x = normal_matrix(17, 256, 1.0, 10);
    for &r in RECIPES
        .iter()
        .chain(&["rtn:int4:g128:asym:mse", "rtn:lloyd3:channel:mse"])
    {
        let s = spec(r);
        let run = || {
            let q = quantize_rtn(w.view(), &s).unwrap();
            let d = q.to_dense();
            let y = q.forward(x.view()).unwrap();
            (q, d, y)
        };
        let (q1, d1, y1) = in_pool(1, run);
        let (q2, d2, y2) = in_pool(2, run);
        let (q3, d3, y3) = in_pool(3, run);
        assert_eq!(q1.codes(), q2.codes(), "{r}: codes");
        assert_eq!(q1.codes(), q3.codes(), "{r}: codes");
        assert_eq!(q1.params(), q2.params(), "{r}: params");
        assert_eq!(q1, q3, "{r}");
        let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&d1), bits(&d2), "{r}: to_dense");
        assert_eq!(bits(&d1), bits(&d3), "{r}: to_dense");
        assert_eq!(bits(&y1), bits(&y2), "{r}: forward");
        assert_eq!(bits(&y1), bits(&y3), "{r}: forward");
    }
}
