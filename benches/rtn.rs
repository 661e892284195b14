//! RTN int4 g128 on a 4096 x 4096 matrix, and dequantization of the result
//! (to a dense f32 matrix) beside a plain copy of the same f32 output.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use shrink::prelude::*;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let w = Array2::from_shape_fn((4096, 4096), |_| {
        let v: f32 = StandardNormal.sample(&mut rng);
        0.02 * v
    });
    let spec = QuantSpec::new(Grid::Int {
        bits: 4,
        sym: false,
    })
    .with_granularity(Granularity::Group(128));
    let mut g = c.benchmark_group("rtn_int4_g128_4096x4096");
    g.sample_size(10);
    g.throughput(Throughput::Elements(w.len() as u64));
    g.bench_function("quantize", |b| {
        b.iter(|| shrink::quant::quantize_rtn(black_box(w.view()), &spec).unwrap())
    });
    let q = shrink::quant::quantize_rtn(w.view(), &spec).unwrap();
    g.throughput(Throughput::Bytes(4 * w.len() as u64));
    g.bench_function("to_dense", |b| b.iter(|| black_box(q.to_dense())));
    let mut out = vec![0f32; w.len()];
    let src = w.as_slice().unwrap();
    g.bench_function("memcpy_f32_output", |b| {
        b.iter(|| out.copy_from_slice(black_box(src)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
