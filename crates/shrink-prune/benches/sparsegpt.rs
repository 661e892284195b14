//! SparseGPT on a 4096 x 4096 weight with a given SPD Hessian, unstructured
//! 50 % and 2:4 (issue 6's performance check; compare with
//! `python prune_ref.py --random 4096` run on the same machine).
//!
//! `SHRINK_BENCH_N` overrides the size (e.g. 1024 for a quick run).

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use shrink_core::linalg::matmul;
use shrink_prune::{Pattern, Ratio, SparseGptConfig, sparsegpt};
use std::hint::black_box;

fn setup(n: usize) -> (Array2<f32>, Array2<f64>) {
    let mut rng = StdRng::seed_from_u64(0);
    let g = Normal::new(0.0f64, 1.0).unwrap();
    let w = Array2::from_shape_fn((n, n), |_| g.sample(&mut rng) as f32);
    // Correlated inputs: X = Z (I + 0.1 A), with n/2 tokens (the damping
    // makes the rank-deficient Gram matrix positive definite).
    let z = Array2::from_shape_fn((n / 2, n), |_| g.sample(&mut rng));
    let mut mix = Array2::from_shape_fn((n, n), |_| 0.1 * g.sample(&mut rng));
    for i in 0..n {
        mix[(i, i)] += 1.0;
    }
    let x = matmul(z.view(), mix.view());
    let h = matmul(x.t(), x.view());
    (w, h)
}

fn bench(c: &mut Criterion) {
    let n: usize = std::env::var("SHRINK_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096);
    let (w, h) = setup(n);
    let mut group = c.benchmark_group(format!("sparsegpt_{n}x{n}"));
    group.sample_size(10);
    for (name, pattern) in [
        ("50%", Pattern::Unstructured(Ratio::percent(50.0).unwrap())),
        ("2:4", Pattern::n_of_m(2, 4).unwrap()),
    ] {
        let cfg = SparseGptConfig::new(pattern);
        group.bench_function(name, |b| {
            b.iter(|| black_box(sparsegpt(w.view(), h.view(), &cfg).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
