//! RTN invariants over random shapes, bit widths, groups and grids.

mod common;

use common::*;
use ndarray::Array2;
use proptest::prelude::*;
use rand::Rng;
use rand_distr::{Distribution, Normal, StudentT};
use shrink_core::Reconstruct;
use shrink_quant::{Grid, QuantizedMatrix, quantize_rtn};

/// Random data of one of several kinds, with magnitudes kept in a range where
/// f16 scales are normal numbers (subnormal scales lose the invariants).
fn data(rows: usize, cols: usize, kind: u8, seed: u64) -> Array2<f32> {
    let mut r = rng(seed);
    let n = Normal::new(0.0f32, 1.0).unwrap();
    let t = StudentT::new(2.5f32).unwrap();
    let mut w = Array2::from_shape_fn((rows, cols), |_| match kind {
        0 => n.sample(&mut r),
        1 => 0.05 * t.sample(&mut r).clamp(-1e4, 1e4),
        2 => r.random_range(-3.0f32..3.0),
        _ => r.random_range(0.0f32..1.0) + 0.5,
    });
    for mut row in w.rows_mut() {
        let scale = 10f32.powf(r.random_range(-1.5f32..1.5));
        row.mapv_inplace(|x| x * scale);
        if r.random_bool(0.15) {
            row.fill(0.0);
        } else if r.random_bool(0.2) {
            let j = r.random_range(0..cols);
            row[j] *= 50.0;
        }
    }
    w
}

const GRIDS: &[&str] = &[
    "int1",
    "int2",
    "int3",
    "int4",
    "int5",
    "int6",
    "int7",
    "int8",
    "nf4",
    "nf3",
    "fp4",
    "fp6-e2m3",
    "fp6-e3m2",
    "fp8-e4m3",
    "fp8-e5m2",
    "lloyd2",
    "lloyd3",
    "lloyd4",
    "mxfp4",
    "mxfp6",
    "mxfp6-e3m2",
    "mxfp8",
    "mxfp8-e5m2",
    "nvfp4",
];

/// A valid recipe for `grid` with the given options, or None if the options
/// do not apply (block formats fix their granularity, etc.).
fn recipe(grid: &str, gran: &str, sym: bool, mse: bool, fmt: &str) -> Option<String> {
    if grid.starts_with("mx") || grid == "nvfp4" {
        return Some(format!("rtn:{grid}"));
    }
    let mut r = format!("rtn:{grid}:{gran}");
    if grid.starts_with("int") {
        r += if sym { ":sym" } else { ":asym" };
        if mse && !(grid == "int1" && sym) {
            r += ":mse";
        }
    } else if mse {
        r += ":mse";
    }
    if !fmt.is_empty() {
        r += ":";
        r += fmt;
    }
    Some(r)
}

fn int_levels(g: Grid) -> Option<(i32, i32)> {
    match g {
        Grid::Int { bits, sym: true } if bits >= 2 => {
            let h = 1i32 << (bits - 1);
            Some((-h, h - 1))
        }
        Grid::Int { bits, sym: false } => Some((0, (1i32 << bits) - 1)),
        _ => None,
    }
}

fn has_duplicate_levels(q: &QuantizedMatrix) -> bool {
    q.quantizer()
        .codebook()
        .is_some_and(|cb| cb.windows(2).any(|w| w[0] == w[1]))
}

fn case() -> impl Strategy<Value = (String, usize, usize, u8, u64)> {
    (
        0..GRIDS.len(),
        prop::sample::select(vec!["g16", "g32", "g64", "channel", "tensor"]),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec!["", "f32", "bf16"]),
        1usize..6,
        1usize..5,
        0u8..4,
        any::<u64>(),
    )
        .prop_filter_map(
            "options do not apply",
            |(gi, gran, sym, mse, fmt, rows, k, kind, seed)| {
                let grid = GRIDS[gi];
                let cols = 32 * k;
                if gran == "g64" && !cols.is_multiple_of(64) {
                    return None;
                }
                // Lloyd needs enough samples to fit distinct levels.
                let rows = if grid.starts_with("lloyd") {
                    rows + 8
                } else {
                    rows
                };
                let r = recipe(grid, gran, sym, mse, fmt)?;
                try_spec(&r).ok()?;
                Some((r, rows, cols, kind, seed))
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Integer grids: inside the clipping range the error is at most half a step.
    #[test]
    fn int_error_within_half_step((r, rows, cols, kind, seed) in case()) {
        let spec = spec(&r);
        prop_assume!(int_levels(spec.grid).is_some());
        let (lo, hi) = int_levels(spec.grid).unwrap();
        let w = data(rows, cols, kind, seed);
        let q = quantize_rtn(w.view(), &spec).unwrap();
        let d = q.to_dense();
        for ((i, j), &x) in w.indexed_iter() {
            let p = q.params()[q.group_of(i, j)];
            let s = f64::from(q.quantizer().scale_value(p.raw_scale));
            let z = f64::from(p.zero);
            let (a, b) = ((f64::from(lo) - z) * s, (f64::from(hi) - z) * s);
            let x = f64::from(x);
            if x >= a && x <= b {
                let err = (x - f64::from(d[[i, j]])).abs();
                let tol = s / 2.0 * (1.0 + 1e-9) + f64::from(d[[i, j]]).abs() * 2f64.powi(-23);
                prop_assert!(err <= tol, "{r}: ({i},{j}) x={x:e} w'={:e} s={s:e} err={err:e}", d[[i, j]]);
            }
            // Codes are in range.
            let c = i32::from(q.codes()[i * cols + j]);
            prop_assert!(c <= hi - lo);
        }
    }

    /// Re-quantizing the dequantized matrix with the same group parameters
    /// gives the same codes (or, for a Lloyd codebook with repeated levels,
    /// a code of the same value).
    #[test]
    fn requantize_is_identity((r, rows, cols, kind, seed) in case()) {
        let spec = spec(&r);
        let w = data(rows, cols, kind, seed);
        let q = quantize_rtn(w.view(), &spec).unwrap();
        let d = q.to_dense();
        let pq = q.quantizer();
        let dup = has_duplicate_levels(&q);
        for ((i, j), &v) in d.indexed_iter() {
            let p = q.params()[q.group_of(i, j)];
            let c = q.codes()[i * cols + j];
            prop_assert_eq!(pq.decode(c, &p).to_bits(), v.to_bits());
            prop_assert_eq!(pq.round(v, &p).to_bits(), v.to_bits(), "{}: ({}, {})", r, i, j);
            if !dup {
                prop_assert_eq!(pq.encode(v, &p), c, "{}: ({}, {}) v={:e}", r, i, j, v);
            }
        }
    }

    /// Symmetric grids are odd-symmetric: quantize(-W) == -quantize(W).
    /// (Not int sym with MSE clipping: a clipped range makes the extra
    /// negative level -2^(B-1) reachable on one side only.)
    #[test]
    fn symmetric_grids_are_odd((r, rows, cols, kind, seed) in case()) {
        let spec = spec(&r);
        let odd = match spec.grid {
            Grid::Int { bits, sym } => sym && bits >= 2 && !spec.mse_clip,
            Grid::Float(_) | Grid::Mx(_) | Grid::Nvfp4 => true,
            _ => false,
        };
        prop_assume!(odd);
        let w = data(rows, cols, kind, seed);
        let a = quantize_rtn(w.view(), &spec).unwrap().to_dense();
        let neg = w.mapv(|x| -x);
        let b = quantize_rtn(neg.view(), &spec).unwrap().to_dense();
        for ((i, j), &v) in a.indexed_iter() {
            prop_assert_eq!(-v, b[[i, j]], "{}: ({}, {}) w={:e}", r, i, j, w[[i, j]]);
        }
    }

    /// MSE clipping never gives a larger squared error than plain min/max,
    /// group by group and in total.
    #[test]
    fn mse_clip_never_worse((r, rows, cols, _kind, seed) in case()) {
        let plain_spec = spec(&r);
        prop_assume!(plain_spec.with_mse_clip(true).validate().is_ok());
        let plain_spec = plain_spec.with_mse_clip(false);
        let mse_spec = plain_spec.with_mse_clip(true);
        let w = data(rows, cols, 1, seed); // heavy-tailed
        let a = quantize_rtn(w.view(), &plain_spec).unwrap();
        let b = quantize_rtn(w.view(), &mse_spec).unwrap();
        let flat: Vec<f32> = w.iter().copied().collect();
        let glen = group_len(plain_spec.granularity, rows, cols);
        for (k, xs) in flat.chunks(glen).enumerate() {
            let ea = a.quantizer().group_error(xs, &a.params()[k]);
            let eb = b.quantizer().group_error(xs, &b.params()[k]);
            prop_assert!(eb <= ea, "{}: group {}: mse {:e} > plain {:e}", r, k, eb, ea);
        }
        let sse = |d: &Array2<f32>| -> f64 {
            d.iter().zip(w.iter()).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum()
        };
        let (ta, tb) = (sse(&a.to_dense()), sse(&b.to_dense()));
        prop_assert!(tb <= ta, "{}: total mse {:e} > plain {:e}", r, tb, ta);
    }
}

/// On heavy-tailed data MSE clipping actually helps low-bit integer grids.
#[test]
fn mse_clip_helps_on_heavy_tails() {
    let w = heavy_matrix(64, 256, 11);
    for r in [
        "rtn:int3:g128:asym",
        "rtn:int4:g128:sym",
        "rtn:int2:channel:asym",
        "rtn:nf4:g64",
    ] {
        let plain = quantize_rtn(w.view(), &spec(r)).unwrap().to_dense();
        let clipped = quantize_rtn(w.view(), &spec(&format!("{r}:mse")))
            .unwrap()
            .to_dense();
        let err = |d: &Array2<f32>| (d - &w).mapv(|x| f64::from(x).powi(2)).sum();
        assert!(
            err(&clipped) < err(&plain),
            "{r}: {} !< {}",
            err(&clipped),
            err(&plain)
        );
    }
}
