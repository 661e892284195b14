//! Shared helpers of the shrink-lowrank integration tests.
#![allow(dead_code)]

use ndarray::{Array1, Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use shrink_core::linalg::{matmul, quadratic_trace};
use shrink_core::{LayerFile, LayerStats};

/// The real layer of the repository's fixture (all-MiniLM-L6-v2 layer 0
/// attention.self.key, with its Fisher file beside it).
pub const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/minilm_l6_layer0_key.safetensors"
);

/// The fixture's weight and statistics (with Fisher information).
pub fn fixture() -> (Array2<f32>, LayerStats) {
    let f = LayerFile::open(FIXTURE).expect("fixture");
    let w = f.weight("attention.self.key").expect("weight");
    let s = f.stats("attention.self.key").expect("stats");
    assert!(s.fisher().is_some(), "the fixture's Fisher file is missing");
    (w, s)
}

/// The shared MiniLM layers when they are present beside the repository
/// (`../shared/data/minilm-l6`), or in `SHRINK_MINILM_DIR`.
pub fn shared_layers() -> Vec<(String, Array2<f32>, LayerStats)> {
    let dir = std::env::var("SHRINK_MINILM_DIR").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/minilm-l6"
        )
        .to_string()
    });
    let mut out = Vec::new();
    for i in 0..3 {
        let p = format!("{dir}/layer{i}.safetensors");
        let Ok(f) = LayerFile::open(&p) else {
            eprintln!("skipping the shared MiniLM layers: {p} is not readable");
            return Vec::new();
        };
        for lin in f.linears() {
            out.push((
                format!("layer{i} {lin}"),
                f.weight(lin).expect("weight"),
                f.stats(lin).expect("stats"),
            ));
        }
    }
    out
}

/// Gaussian matrix.
pub fn gaussian(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<f64> {
    Array2::from_shape_simple_fn((rows, cols), || StandardNormal.sample(rng))
}

/// Correlated inputs: `tokens x n`, a shared low-rank component plus
/// channel scales spread over two orders of magnitude, and `dead` channels
/// that are exactly zero.
pub fn correlated_inputs(tokens: usize, n: usize, dead: usize, seed: u64) -> Array2<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let k = (n / 3).max(1);
    let mix = gaussian(k, n, &mut rng);
    let z = gaussian(tokens, k, &mut rng);
    let noise = gaussian(tokens, n, &mut rng);
    let scales: Vec<f64> = (0..n)
        .map(|_| 10f64.powf(rng.random_range(-1.0..1.0)))
        .collect();
    let mut x = matmul(z.view(), mix.view()) + noise * 0.3;
    for (j, mut c) in x.columns_mut().into_iter().enumerate() {
        let s = if j < dead { 0.0 } else { scales[j] };
        c.mapv_inplace(|v| v * s);
    }
    x.mapv(|v| v as f32)
}

/// Statistics of [`correlated_inputs`].
pub fn correlated_stats(tokens: usize, n: usize, dead: usize, seed: u64) -> LayerStats {
    let x = correlated_inputs(tokens, n, dead, seed);
    let mut s = LayerStats::new(n).unwrap();
    s.observe(x.view()).unwrap();
    s
}

/// `tr(E H E^T)` for `E = W - W'` in f64.
pub fn output_error(w: ArrayView2<'_, f64>, w_hat: ArrayView2<'_, f64>, gram: &Array2<f64>) -> f64 {
    let e = &w - &w_hat;
    quadratic_trace(e.view(), gram.view())
}

/// Relative output error in f64.
pub fn rel_output_error(w: ArrayView2<'_, f64>, w_hat: ArrayView2<'_, f64>, s: &LayerStats) -> f64 {
    output_error(w, w_hat, s.gram()) / quadratic_trace(w, s.gram().view())
}

/// `||D (W - W')||^2 / ||D W||^2` (output side) or `||(W - W') D||^2 /
/// ||W D||^2` (input side) for the Fisher sums `d`.
pub fn side_error(
    w: ArrayView2<'_, f64>,
    w_hat: ArrayView2<'_, f64>,
    d: &Array1<f64>,
    rows: bool,
) -> f64 {
    let mut num = 0.0;
    let mut den = 0.0;
    for ((i, j), &x) in w.indexed_iter() {
        let s = if rows { d[i] } else { d[j] };
        let e = x - w_hat[(i, j)];
        num += s * s * e * e;
        den += s * s * x * x;
    }
    num / den
}

/// `W` in f64.
pub fn f64m(w: &Array2<f32>) -> Array2<f64> {
    w.mapv(f64::from)
}
