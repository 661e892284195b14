//! Packing, unpacking and dequantization throughput, each beside a plain
//! memcpy of the same number of output bytes.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shrink::pack::bits;

const CODES: usize = 4 << 20;

fn random_codes(rng: &mut StdRng, n: usize, width: u8) -> Vec<u8> {
    let max = ((1u16 << width) - 1) as u8;
    (0..n).map(|_| rng.random_range(0..=max)).collect()
}

fn pack_unpack(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    for width in [2u8, 3, 4, 8] {
        let codes = random_codes(&mut rng, CODES, width);
        let len = bits::packed_len(CODES, width).unwrap();
        let packed = bits::pack(&codes, width).unwrap();

        let mut group = c.benchmark_group(format!("pack/w{width}"));
        group.throughput(Throughput::Bytes(len as u64));
        let mut out = vec![0u8; len];
        group.bench_function("ours", |b| {
            b.iter(|| bits::pack_into(black_box(&codes), width, black_box(&mut out)).unwrap())
        });
        let src = vec![1u8; len];
        group.bench_function("memcpy", |b| {
            b.iter(|| black_box(&mut out).copy_from_slice(black_box(&src)))
        });
        group.finish();

        let mut group = c.benchmark_group(format!("unpack/w{width}"));
        group.throughput(Throughput::Bytes(CODES as u64));
        let mut out = vec![0u8; CODES];
        group.bench_function("ours", |b| {
            b.iter(|| bits::unpack_into(black_box(&packed), width, black_box(&mut out)).unwrap())
        });
        group.bench_function("memcpy", |b| {
            b.iter(|| black_box(&mut out).copy_from_slice(black_box(&codes)))
        });
        group.finish();
    }
}

fn dequantize(c: &mut Criterion) {
    const N: usize = 4096 * 4096;
    const GROUP: usize = 128;
    let mut rng = StdRng::seed_from_u64(2);
    let codes = random_codes(&mut rng, N, 4);
    let packed = bits::pack(&codes, 4).unwrap();
    drop(codes);
    let scales: Vec<f32> = (0..N / GROUP)
        .map(|_| rng.random_range(0.01..0.1))
        .collect();
    let zeros: Vec<f32> = (0..N / GROUP)
        .map(|_| rng.random_range(0.0..15.0))
        .collect();
    let mut out = vec![0f32; N];
    let src = vec![1f32; N];

    let mut group = c.benchmark_group("dequantize/w4/g128");
    group.throughput(Throughput::Bytes((N * 4) as u64));
    group.sample_size(20);
    group.bench_function("serial", |b| {
        b.iter(|| {
            bits::dequantize_into(black_box(&packed), 4, GROUP, &scales, &zeros, &mut out).unwrap()
        })
    });
    group.bench_function("parallel", |b| {
        b.iter(|| {
            bits::dequantize_par_into(black_box(&packed), 4, GROUP, &scales, &zeros, &mut out)
                .unwrap()
        })
    });
    group.bench_function("memcpy", |b| {
        b.iter(|| black_box(&mut out).copy_from_slice(black_box(&src)))
    });
    group.finish();
}

criterion_group!(benches, pack_unpack, dequantize);
criterion_main!(benches);
