//! GPTQ int4 g128 asym (`gptq:int4:g128:asym`) on a synthetic 1536 x 384
//! MLP-up layer with its calibration Gram matrix, beside RTN at the same grid.
//!
//! With `SHRINK_BENCH_LARGE=1` it also times a 4096 x 4096 weight with a
//! random SPD `H`, built like `gptq_ref.py --random 4096` (`W ~ N(0, 1)`,
//! `X = N(0, 1)^(2n x n) (I + 0.1 N(0, 1)^(n x n))`, `H = X^T X`), to compare
//! with the PyTorch reference (see benches/README.md).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use shrink::prelude::*;
use shrink::recipe::synth::{SynthShape, layer};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let shape = SynthShape {
        out_features: 1536,
        in_features: 384,
        tokens: 2048,
        outliers: 4,
    };
    let l = layer("mlp.up", shape, 0).unwrap();
    let ctx = Context::with_stats(&l.stats);
    let gptq = shrink::recipe::build("gptq:int4:g128:asym").unwrap();
    let rtn = shrink::recipe::build("rtn:int4:g128:asym").unwrap();
    let mut g = c.benchmark_group("gptq_int4_g128_asym_1536x384");
    g.sample_size(20);
    g.throughput(Throughput::Elements(l.weight.len() as u64));
    g.bench_function("gptq", |b| {
        b.iter(|| gptq.compress(black_box(l.weight.view()), &ctx).unwrap())
    });
    g.bench_function("rtn", |b| {
        b.iter(|| rtn.compress(black_box(l.weight.view()), &ctx).unwrap())
    });
    g.finish();

    if std::env::var_os("SHRINK_BENCH_LARGE").is_some() {
        let n = 4096;
        let mut rng = StdRng::seed_from_u64(0);
        let mut randn = |r: usize, c: usize| {
            Array2::from_shape_fn((r, c), |_| {
                let v: f64 = StandardNormal.sample(&mut rng);
                v
            })
        };
        let w = randn(n, n).mapv(|v| v as f32);
        let mix = Array2::<f64>::eye(n) + randn(n, n) * 0.1;
        let x = shrink::core::linalg::matmul(randn(2 * n, n).view(), mix.view());
        let h = shrink::core::linalg::matmul(x.t(), x.view());
        let stats = LayerStats::from_parts(h, (2 * n) as u64, None, None).unwrap();
        let ctx = Context::with_stats(&stats);
        let mut g = c.benchmark_group("gptq_int4_g128_asym_4096x4096");
        g.sample_size(10);
        g.throughput(Throughput::Elements(w.len() as u64));
        g.bench_function("gptq", |b| {
            b.iter(|| gptq.compress(black_box(w.view()), &ctx).unwrap())
        });
        g.finish();
        let q = gptq.compress(w.view(), &ctx).unwrap();
        let e = Objective::Output
            .relative(w.view(), q.to_dense().view(), Some(&stats))
            .unwrap();
        eprintln!("gptq 4096x4096 relative output error {e:.6}");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
