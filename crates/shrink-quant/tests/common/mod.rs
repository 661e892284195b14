//! Shared helpers for the shrink-quant integration tests: random matrices,
//! recipe parsing, and a direct f64 re-implementation of
//! `/work/shared/peers/quant_ref.py` (rtn_sym, rtn_asym, nf4).
#![allow(dead_code)]

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal, StudentT};
use shrink_core::StageSpec;
use shrink_quant::QuantSpec;

/// bitsandbytes' published NF4 table (`NF4_PUBLISHED` in quant_ref.py).
#[allow(clippy::excessive_precision)]
pub const NF4_PUBLISHED: [f32; 16] = [
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
];

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `N(0, sigma^2)` entries.
pub fn normal_matrix(rows: usize, cols: usize, sigma: f32, seed: u64) -> Array2<f32> {
    let mut r = rng(seed);
    let d = Normal::new(0.0f32, sigma).unwrap();
    Array2::from_shape_fn((rows, cols), |_| d.sample(&mut r))
}

/// Heavy-tailed entries (Student t with 3 degrees of freedom).
pub fn heavy_matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut r = rng(seed);
    let d = StudentT::new(3.0f32).unwrap();
    Array2::from_shape_fn((rows, cols), |_| 0.02 * d.sample(&mut r))
}

/// A normal matrix where row 0 is all zeros, row 1 holds one huge outlier
/// and (if there are at least 3 rows) row 2 is all positive.
pub fn awkward_matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut w = normal_matrix(rows, cols, 1.0, seed);
    let mut r = rng(seed ^ 0x5eed);
    if rows > 0 {
        w.row_mut(0).fill(0.0);
    }
    if rows > 1 {
        let j = r.random_range(0..cols);
        w[[1, j]] = if r.random_bool(0.5) { 900.0 } else { -750.5 };
    }
    if rows > 2 {
        w.row_mut(2).mapv_inplace(f32::abs);
    }
    if rows > 3 {
        w.row_mut(3).mapv_inplace(|x| -x.abs());
    }
    w
}

/// Parses `rtn:...` into a spec (panics on error: use only for valid recipes).
pub fn spec(recipe: &str) -> QuantSpec {
    try_spec(recipe).unwrap_or_else(|e| panic!("{recipe}: {e}"))
}

/// Parses `rtn:...` into a spec.
pub fn try_spec(recipe: &str) -> shrink_core::Result<QuantSpec> {
    let stage: StageSpec = recipe.parse()?;
    QuantSpec::parse_args(&stage, |_| false)
}

// ------------------------------------------------------------------ reference

/// Round a positive finite f64 to the nearest binary16 value (ties to even),
/// directly from f64 as numpy's `astype(np.float16)` does; `inf` on overflow.
pub fn f64_to_f16(s: f64) -> f64 {
    assert!(s.is_finite() && s >= 0.0);
    if s == 0.0 {
        return 0.0;
    }
    // floor(log2 s), exact from the bits (s is a normal f64 here).
    let e = ((s.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let e = e.max(-14); // binary16 subnormals share the quantum 2^-24
    let quantum = 2f64.powi(e - 10);
    let v = (s / quantum).round_ties_even() * quantum; // exact scaling by a power of two
    if v > 65504.0 { f64::INFINITY } else { v }
}

/// Group length of a granularity for a `(rows, cols)` matrix.
pub fn group_len(g: shrink_quant::Granularity, rows: usize, cols: usize) -> usize {
    match g {
        shrink_quant::Granularity::Tensor => rows * cols,
        shrink_quant::Granularity::Channel => cols,
        shrink_quant::Granularity::Group(g) => g,
        _ => unreachable!(),
    }
}

fn map_groups(w: &Array2<f32>, g: usize, mut f: impl FnMut(&[f32], &mut [f32])) -> Array2<f32> {
    let (rows, cols) = w.dim();
    assert_eq!((rows * cols) % g, 0);
    let flat: Vec<f32> = w.iter().copied().collect();
    let mut out = vec![0f32; flat.len()];
    for (x, o) in flat.chunks(g).zip(out.chunks_mut(g)) {
        f(x, o);
    }
    Array2::from_shape_vec((rows, cols), out).unwrap()
}

/// quant_ref.py `rtn_sym(w, bits, g)`.
pub fn ref_rtn_sym(w: &Array2<f32>, bits: u32, g: usize) -> Array2<f32> {
    map_groups(w, g, |x, o| {
        let qmax = f64::from((1u32 << (bits - 1)) - 1);
        let absmax = x.iter().map(|&v| f64::from(v).abs()).fold(0.0, f64::max);
        let mut s = absmax / qmax;
        if s == 0.0 {
            s = 1.0;
        }
        let s = f64_to_f16(s);
        for (v, o) in x.iter().zip(o) {
            let q = (f64::from(*v) / s)
                .round_ties_even()
                .clamp(-(qmax + 1.0), qmax);
            *o = (q * s) as f32;
        }
    })
}

/// quant_ref.py `asym_params` on one group: (unrounded scale, zero point).
pub fn ref_asym_params(x: &[f32], bits: u32) -> (f64, f64) {
    let maxq = f64::from((1u32 << bits) - 1);
    let mut xmin = x
        .iter()
        .map(|&v| f64::from(v))
        .fold(f64::INFINITY, f64::min)
        .min(0.0);
    let mut xmax = x
        .iter()
        .map(|&v| f64::from(v))
        .fold(f64::NEG_INFINITY, f64::max)
        .max(0.0);
    if xmin == 0.0 && xmax == 0.0 {
        xmin = -1.0;
        xmax = 1.0;
    }
    let s = (xmax - xmin) / maxq;
    let z = (-xmin / s).round_ties_even();
    (s, z)
}

/// quant_ref.py `rtn_asym(w, bits, g)`.
pub fn ref_rtn_asym(w: &Array2<f32>, bits: u32, g: usize) -> Array2<f32> {
    map_groups(w, g, |x, o| {
        let maxq = f64::from((1u32 << bits) - 1);
        let (s, z) = ref_asym_params(x, bits);
        let s = f64_to_f16(s);
        for (v, o) in x.iter().zip(o) {
            let q = ((f64::from(*v) / s).round_ties_even() + z).clamp(0.0, maxq);
            *o = ((q - z) * s) as f32;
        }
    })
}

/// quant_ref.py `nf4(w, g)`: f32 arithmetic, argmin with the first index on ties.
pub fn ref_nf4(w: &Array2<f32>, g: usize) -> Array2<f32> {
    map_groups(w, g, |x, o| {
        let absmax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let safe = if absmax == 0.0 { 1.0 } else { absmax };
        for (v, o) in x.iter().zip(o) {
            *o = NF4_PUBLISHED[ref_nf4_index(v / safe)] * absmax;
        }
    })
}

/// `argmin_k |xn - code[k]|` in f32, first index on ties (numpy argmin).
pub fn ref_nf4_index(xn: f32) -> usize {
    let mut best = 0;
    let mut best_d = f32::INFINITY;
    for (k, c) in NF4_PUBLISHED.iter().enumerate() {
        let d = (xn - c).abs();
        if d < best_d {
            best_d = d;
            best = k;
        }
    }
    best
}

/// Naive f64 `x w^T`.
pub fn naive_forward(x: &Array2<f32>, w: &Array2<f32>) -> Array2<f64> {
    let (t, k) = x.dim();
    let (n, k2) = w.dim();
    assert_eq!(k, k2);
    Array2::from_shape_fn((t, n), |(i, j)| {
        (0..k)
            .map(|l| f64::from(x[[i, l]]) * f64::from(w[[j, l]]))
            .sum()
    })
}

/// Compares two matrices bit for bit, treating -0.0 and +0.0 as equal
/// (the sign of a zero weight carries no information).
pub fn assert_bits_eq(got: &Array2<f32>, want: &Array2<f32>, what: &str) {
    assert_eq!(got.dim(), want.dim(), "{what}: shape");
    let mut bad = 0;
    let mut first = None;
    for ((i, j), g) in got.indexed_iter() {
        let w = want[[i, j]];
        if (g + 0.0).to_bits() != (w + 0.0).to_bits() {
            bad += 1;
            first.get_or_insert((i, j, *g, w));
        }
    }
    if let Some((i, j, g, w)) = first {
        panic!("{what}: {bad} mismatches; first at ({i}, {j}): got {g:e}, want {w:e}");
    }
}
