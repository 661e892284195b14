//! Runs one GGUF kernel (shrink's or candle's) a fixed number of times, for
//! comparisons by CPU time on a loaded machine: `perf stat -e task-clock`
//! counts only the time the thread runs, so the difference between a run
//! with `reps` repetitions and one with 0 is the kernels' CPU time.
//!
//! ```text
//! perf stat -e task-clock target/release/examples/ours_cycles Q4_K quantize 8
//! perf stat -e task-clock target/release/examples/ours_cycles Q4_K candle_quantize 8
//! ```
//!
//! Arguments: type name (Q8_0, Q4_0, Q4_K, Q6_K, Q2_K for candle), one of
//! `quantize`, `dequantize`, `candle_quantize`, `candle_dequantize`, and the
//! repetitions, on a 1024 x 1024 seeded standard-normal matrix
//! (`SHRINK_BENCH_N` changes the side).

use std::hint::black_box;
use std::str::FromStr;
use std::time::Instant;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use shrink_pack::gguf::{GgufType, dequantize_into, quantize_into};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let t = GgufType::from_str(args.get(1).map_or("Q4_K", String::as_str)).expect("type");
    let op = args.get(2).map_or("quantize", String::as_str);
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let n: usize = std::env::var("SHRINK_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let mut rng = StdRng::seed_from_u64(0x5eed_6767);
    let x: Vec<f32> = (0..n * n).map(|_| rng.sample(StandardNormal)).collect();
    let mut q = vec![0u8; t.byte_len(x.len()).expect("whole blocks")];
    let mut y = vec![0f32; x.len()];
    quantize_into(t, &x, &mut q).expect("quantize");
    let theirs = match t {
        GgufType::Q8_0 => GgmlDType::Q8_0,
        GgufType::Q4_0 => GgmlDType::Q4_0,
        GgufType::Q4_K => GgmlDType::Q4K,
        GgufType::Q6_K => GgmlDType::Q6K,
        GgufType::Q2_K => GgmlDType::Q2K,
        _ => GgmlDType::F32,
    };
    let tensor = Tensor::from_slice(&x, (n, n), &Device::Cpu).expect("candle tensor");
    let qt = if op.starts_with("candle") {
        Some(QTensor::quantize(&tensor, theirs).expect("candle quantize"))
    } else {
        None
    };
    let start = Instant::now();
    for _ in 0..reps {
        match (op, &qt) {
            ("quantize", _) => quantize_into(t, black_box(&x), &mut q).expect("quantize"),
            ("candle_quantize", _) => {
                black_box(QTensor::quantize(black_box(&tensor), theirs).expect("candle"));
            }
            ("candle_dequantize", Some(qt)) => {
                black_box(qt.dequantize(&Device::Cpu).expect("candle"));
            }
            _ => dequantize_into(t, black_box(&q), &mut y).expect("dequantize"),
        }
    }
    let s = start.elapsed().as_secs_f64();
    let mb = (reps * x.len() * 4) as f64 / 1e6;
    println!("{t} {op}: {:.1} MB/s wall", mb / s);
}
