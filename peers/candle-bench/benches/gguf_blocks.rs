//! GGUF block quantize / dequantize throughput, shrink-pack beside
//! candle-core 0.11, single-threaded, on a 4096 x 4096 f32 matrix of
//! seeded standard-normal values.
//!
//! ```text
//! cargo bench --manifest-path peers/candle-bench/Cargo.toml --bench gguf_blocks
//! cargo bench --manifest-path peers/candle-bench/Cargo.toml --bench gguf_blocks -- Q4_K
//! ```
//!
//! Every throughput is in bytes of f32 values (the quantizer's input, the
//! dequantizer's output): 64 MiB per iteration. Functions per type:
//!
//! - `ours_quantize`: `shrink_pack::gguf::quantize_into` into a reused
//!   buffer (serial: it runs on the calling thread).
//! - `candle_quantize`: `QTensor::quantize(&tensor, dtype)` (candle's CPU
//!   `from_float` is serial; the source tensor is built once outside).
//! - `ours_dequantize`: `shrink_pack::gguf::dequantize_into` into a reused
//!   f32 buffer.
//! - `candle_dequantize`: `QTensor::dequantize(&Device::Cpu)` (allocates
//!   its output tensor, as its API does).
//!
//! plus `memcpy/f32`: `copy_from_slice` of the 64 MiB f32 matrix into a
//! reused buffer, the bandwidth bound for a dequantizer's output.
//!
//! `SHRINK_BENCH_N` (default 4096) changes the matrix side, e.g. for a
//! quick run.

use std::hint::black_box;
use std::time::Duration;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use shrink_pack::gguf::{GgufType, dequantize_into, quantize_into};

const TYPES: [(GgufType, GgmlDType); 5] = [
    (GgufType::Q8_0, GgmlDType::Q8_0),
    (GgufType::Q4_0, GgmlDType::Q4_0),
    (GgufType::Q4_K, GgmlDType::Q4K),
    (GgufType::Q6_K, GgmlDType::Q6K),
    (GgufType::Q2_K, GgmlDType::Q2K),
];

fn side() -> usize {
    std::env::var("SHRINK_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4096)
}

fn matrix(n: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(0x5eed_6767);
    (0..n * n).map(|_| rng.sample(StandardNormal)).collect()
}

fn bench(c: &mut Criterion) {
    let n = side();
    let x = matrix(n);
    let bytes = (x.len() * std::mem::size_of::<f32>()) as u64;
    let tensor = Tensor::from_slice(&x, (n, n), &Device::Cpu).expect("candle tensor");
    let mut y = vec![0f32; x.len()];
    y.copy_from_slice(&x);

    {
        let mut g = c.benchmark_group("memcpy");
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function("f32", |b| {
            b.iter(|| y.copy_from_slice(black_box(&x)));
        });
        g.finish();
    }
    for (ours, theirs) in TYPES {
        let mut q = vec![0u8; ours.byte_len(x.len()).expect("whole blocks")];
        quantize_into(ours, &x, &mut q).expect("quantize");
        let qt = QTensor::quantize(&tensor, theirs).expect("candle quantize");
        let mut g = c.benchmark_group(ours.name());
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function("ours_quantize", |b| {
            b.iter(|| quantize_into(ours, black_box(&x), &mut q).expect("quantize"));
        });
        g.bench_function("candle_quantize", |b| {
            b.iter(|| QTensor::quantize(black_box(&tensor), theirs).expect("candle quantize"));
        });
        g.bench_function("ours_dequantize", |b| {
            b.iter(|| dequantize_into(ours, black_box(&q), &mut y).expect("dequantize"));
        });
        g.bench_function("candle_dequantize", |b| {
            b.iter(|| qt.dequantize(&Device::Cpu).expect("candle dequantize"));
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
