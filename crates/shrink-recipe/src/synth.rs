//! Seeded synthetic transformer-like layers for demos and tests, so that
//! methods can be compared without any model file.
//!
//! Weights are heavy-tailed (Student-t with 4 degrees of freedom, scaled to
//! a typical init of `0.02`) with a few outlier input channels (x8);
//! activations are correlated (a shared low-rank mixing on top of white
//! noise) with a few outlier features (x20), as seen in real LLM layers.
//! The calibration Gram matrix is accumulated from those activations, and an
//! empirical Fisher information is attached: the sum over 8 batches of the
//! squared gradients `(delta_b^T X_b)^2` of a squared loss whose output
//! residuals `delta` are Gaussian with heavy-tailed per-output scales (so some
//! outputs matter much more than others, as in real layers).

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal, StudentT};
use shrink_core::{LayerStats, Result};

/// One synthetic linear layer with its calibration statistics.
#[derive(Clone, Debug)]
pub struct SynthLayer {
    /// A name like `mlp.up (1024x512)`.
    pub name: String,
    /// Weights, `(out, in)`.
    pub weight: Array2<f32>,
    /// Calibration statistics of its inputs.
    pub stats: LayerStats,
}

/// Sizes and counts of a synthetic layer.
#[derive(Clone, Copy, Debug)]
pub struct SynthShape {
    /// Output features.
    pub out_features: usize,
    /// Input features.
    pub in_features: usize,
    /// Calibration tokens.
    pub tokens: usize,
    /// Input channels with outlier weights and activations.
    pub outliers: usize,
}

/// Inputs `X` (tokens x in): white noise plus a rank-16 shared component,
/// with `outliers` features scaled by 20.
pub fn activations(shape: SynthShape, rng: &mut StdRng) -> Array2<f32> {
    let n = shape.in_features;
    let k = 16.min(n);
    let normal = Normal::new(0.0f32, 1.0).unwrap_or_else(|_| unreachable!());
    let mix = Array2::from_shape_fn((k, n), |_| normal.sample(rng) / (k as f32).sqrt());
    let z = Array2::from_shape_fn((shape.tokens, k), |_| normal.sample(rng));
    let mut x =
        z.dot(&mix) * 1.5 + Array2::from_shape_fn((shape.tokens, n), |_| normal.sample(rng) * 0.5);
    for c in outlier_channels(shape) {
        x.column_mut(c).mapv_inplace(|v| v * 20.0);
    }
    x
}

fn outlier_channels(shape: SynthShape) -> Vec<usize> {
    // Spread deterministically over the input dimension.
    (0..shape.outliers)
        .map(|i| (i * 7919 + 13) % shape.in_features)
        .collect()
}

/// A heavy-tailed weight matrix with outlier input channels.
pub fn weights(shape: SynthShape, rng: &mut StdRng) -> Array2<f32> {
    let t = StudentT::new(4.0f32).unwrap_or_else(|_| unreachable!());
    let mut w = Array2::from_shape_fn((shape.out_features, shape.in_features), |_| {
        0.02 * t.sample(rng)
    });
    for c in outlier_channels(shape) {
        w.column_mut(c).mapv_inplace(|v| v * 8.0);
    }
    w
}

/// An empirical Fisher information `(out x in)` for inputs `x`: the sum over
/// 8 token batches of `(delta_b^T X_b)^2`, `delta` Gaussian with a
/// Student-t scale per output feature.
pub fn fisher(x: &Array2<f32>, out_features: usize, rng: &mut StdRng) -> Array2<f32> {
    let t = StudentT::new(3.0f32).unwrap_or_else(|_| unreachable!());
    let normal = Normal::new(0.0f32, 1.0).unwrap_or_else(|_| unreachable!());
    let scale: Vec<f32> = (0..out_features)
        .map(|_| t.sample(rng).abs() + 0.05)
        .collect();
    let tokens = x.nrows();
    let batch = tokens.div_ceil(8).max(1);
    let mut f = Array2::<f32>::zeros((out_features, x.ncols()));
    for xb in x.axis_chunks_iter(ndarray::Axis(0), batch) {
        let delta = Array2::from_shape_fn((xb.nrows(), out_features), |(_, i)| {
            normal.sample(rng) * scale[i]
        });
        let g = delta.t().dot(&xb) / tokens as f32;
        f += &g.mapv(|v| v * v);
    }
    f
}

/// A synthetic layer: weights and the statistics of seeded activations,
/// with a synthetic Fisher information ([`fisher`]).
pub fn layer(name: &str, shape: SynthShape, seed: u64) -> Result<SynthLayer> {
    let mut rng = StdRng::seed_from_u64(seed);
    let weight = weights(shape, &mut rng);
    let x = activations(shape, &mut rng);
    let mut stats = LayerStats::new(shape.in_features)?;
    stats.observe(x.view())?;
    let stats = stats.with_fisher(fisher(&x, shape.out_features, &mut rng))?;
    Ok(SynthLayer {
        name: format!("{name} ({}x{})", shape.out_features, shape.in_features),
        weight,
        stats,
    })
}

/// The demo's three layers: an attention projection, an MLP up and an MLP
/// down projection of a small transformer (hidden 512).
pub fn demo_layers(seed: u64) -> Result<Vec<SynthLayer>> {
    let s = |o, i| SynthShape {
        out_features: o,
        in_features: i,
        tokens: 2048,
        outliers: 4,
    };
    Ok(vec![
        layer("attn.proj", s(512, 512), seed)?,
        layer("mlp.up", s(1024, 512), seed.wrapping_add(1))?,
        layer("mlp.down", s(512, 1024), seed.wrapping_add(2))?,
    ])
}
