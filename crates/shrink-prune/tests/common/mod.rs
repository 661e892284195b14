//! Seeded test data.
#![allow(dead_code)]

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use shrink_core::LayerStats;

/// A seeded Gaussian matrix.
pub fn gaussian(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = Normal::new(0.0f32, 1.0).unwrap();
    Array2::from_shape_fn((rows, cols), |_| n.sample(&mut rng))
}

/// Statistics of correlated inputs (`x = z (I + 0.3 A)` with channel scales).
pub fn correlated_stats(cols: usize, tokens: usize, seed: u64) -> LayerStats {
    let z = gaussian(tokens, cols, seed);
    let a = gaussian(cols, cols, seed + 1);
    let mut mix = Array2::<f32>::eye(cols) + &(a * 0.3);
    for j in 0..cols {
        let s = 0.5 + (j % 7) as f32 * 0.4;
        mix.column_mut(j).mapv_inplace(|v| v * s);
    }
    let x = z.dot(&mix);
    let mut st = LayerStats::new(cols).unwrap();
    st.observe(x.view()).unwrap();
    st
}

/// The real fixture (MiniLM-L6 layer 0 attention.self.key).
pub const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/minilm_l6_layer0_key.safetensors"
);
