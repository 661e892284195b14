//! A GGUF v3 file written by shrink's `GgufWriter`, read back by candle-core
//! 0.11's reader (`candle_core::quantized::gguf_file`): every tensor's
//! type, shape and candle's dequantization, bit for bit against shrink's
//! dequantization of the same bytes, and a few metadata values.

use std::io::Cursor;

use candle_core::Device;
use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use shrink_pack::gguf::{GgmlType, GgufFile, GgufType, GgufWriter, MetaValue};

/// Every storage type that both shrink and candle's GGUF reader handle,
/// with candle's name for it.
fn types() -> Vec<(GgmlType, GgmlDType)> {
    vec![
        (GgmlType::F32, GgmlDType::F32),
        (GgufType::F16.into(), GgmlDType::F16),
        (GgufType::BF16.into(), GgmlDType::BF16),
        (GgufType::Q4_0.into(), GgmlDType::Q4_0),
        (GgufType::Q4_1.into(), GgmlDType::Q4_1),
        (GgufType::Q5_0.into(), GgmlDType::Q5_0),
        (GgufType::Q5_1.into(), GgmlDType::Q5_1),
        (GgufType::Q8_0.into(), GgmlDType::Q8_0),
        (GgufType::Q2_K.into(), GgmlDType::Q2K),
        (GgufType::Q3_K.into(), GgmlDType::Q3K),
        (GgufType::Q4_K.into(), GgmlDType::Q4K),
        (GgufType::Q5_K.into(), GgmlDType::Q5K),
        (GgufType::Q6_K.into(), GgmlDType::Q6K),
        // Q8_K is left out: candle 0.11's GGUF reader refuses it ("quantized
        // type Q8K is not supported yet").
    ]
}

/// Seeded values with a spread of scales per row (and an all-zero row),
/// so scales, mins and the zero-scale paths all occur.
fn values(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut x = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let scale = if r == 1 {
            0.0
        } else {
            0.01 * 4f32.powi(r as i32)
        };
        let shift = if r % 3 == 2 { 0.5 * scale } else { 0.0 };
        for _ in 0..cols {
            let v: f32 = rng.sample(StandardNormal);
            x.push(v * scale + shift);
        }
    }
    x
}

#[test]
fn candle_reads_shrink_gguf_with_identical_values() {
    let (rows, cols) = (6usize, 512usize);
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetaValue::String("llama".into()))
        .unwrap();
    w.add_metadata("general.name", MetaValue::String("shrink readback".into()))
        .unwrap();
    w.add_metadata("shrink.test.u32", MetaValue::U32(4096))
        .unwrap();
    w.add_metadata("shrink.test.f32", MetaValue::F32(0.125))
        .unwrap();
    let types = types();
    for (i, (ty, _)) in types.iter().enumerate() {
        let x = values(rows, cols, 100 + i as u64);
        w.add_tensor_f32(format!("t.{}", ty.name()), &[rows, cols], *ty, &x)
            .unwrap();
    }
    // A 1-D tensor and a 3-D one, to check the dims order.
    let x1 = values(1, 256, 7);
    w.add_tensor_f32("vec.q4_k", &[256], GgufType::Q4_K.into(), &x1)
        .unwrap();
    let x3 = values(2 * 3, 64, 8);
    w.add_tensor_f32("cube.q8_0", &[2, 3, 64], GgufType::Q8_0.into(), &x3)
        .unwrap();
    let bytes = w.to_bytes().unwrap();

    let ours = GgufFile::from_bytes(bytes.clone()).unwrap();
    let mut reader = Cursor::new(&bytes);
    let content = Content::read(&mut reader).expect("candle parses the file");
    assert_eq!(content.tensor_infos.len(), types.len() + 2);

    match content.metadata.get("general.architecture") {
        Some(Value::String(s)) => assert_eq!(s, "llama"),
        other => panic!("general.architecture: {other:?}"),
    }
    match content.metadata.get("shrink.test.u32") {
        Some(Value::U32(v)) => assert_eq!(*v, 4096),
        other => panic!("shrink.test.u32: {other:?}"),
    }
    match content.metadata.get("shrink.test.f32") {
        Some(Value::F32(v)) => assert_eq!(*v, 0.125),
        other => panic!("shrink.test.f32: {other:?}"),
    }

    let mut checked = Vec::new();
    let mut expected: Vec<(String, Option<GgmlDType>, Vec<usize>)> = types
        .iter()
        .map(|(ty, dt)| (format!("t.{}", ty.name()), Some(*dt), vec![rows, cols]))
        .collect();
    expected.push(("vec.q4_k".into(), Some(GgmlDType::Q4K), vec![256]));
    expected.push(("cube.q8_0".into(), Some(GgmlDType::Q8_0), vec![2, 3, 64]));
    for (name, dtype, shape) in expected {
        let info = &content.tensor_infos[&name];
        assert_eq!(Some(info.ggml_dtype), dtype, "{name}: type");
        assert_eq!(info.shape.dims(), &shape[..], "{name}: shape");
        let qt = content
            .tensor(&mut reader, &name, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: candle reads the tensor: {e}"));
        let theirs: Vec<f32> = qt
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .unwrap_or_else(|e| panic!("{name}: candle dequantizes: {e}"));
        let mine = ours.tensor_f32(&name).unwrap();
        assert_eq!(theirs.len(), mine.len(), "{name}: length");
        for (k, (a, b)) in theirs.iter().zip(&mine).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{name}: value {k}: candle {a}, shrink {b}"
            );
        }
        checked.push(name);
    }
    println!("candle read back identically: {}", checked.join(", "));
}
