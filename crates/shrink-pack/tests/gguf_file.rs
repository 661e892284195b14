//! GGUF v3 files: writer/reader round trips (fixed and property-based),
//! exact header layout, and typed errors (never panics) on truncated,
//! corrupt and hostile bytes.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use shrink_core::Error;
use shrink_pack::gguf::file::{ALIGNMENT_KEY, MAX_ARRAY_DEPTH, QUANTIZATION_VERSION_KEY};
use shrink_pack::gguf::{
    GgmlType, GgufFile, GgufHeader, GgufType, GgufWriter, MetaType, MetaValue, dequantize, quantize,
};

fn gaussian(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect()
}

/// One value of every metadata type, including nested and string arrays.
fn every_meta() -> Vec<(String, MetaValue)> {
    vec![
        (
            "general.architecture".into(),
            MetaValue::String("llama".into()),
        ),
        ("t.u8".into(), MetaValue::U8(200)),
        ("t.i8".into(), MetaValue::I8(-100)),
        ("t.u16".into(), MetaValue::U16(60000)),
        ("t.i16".into(), MetaValue::I16(-30000)),
        ("t.u32".into(), MetaValue::U32(4_000_000_000)),
        ("t.i32".into(), MetaValue::I32(-2_000_000_000)),
        ("t.f32".into(), MetaValue::F32(-1.5e-7)),
        ("t.bool".into(), MetaValue::Bool(true)),
        ("t.string".into(), MetaValue::String("héllo ✓".into())),
        ("t.u64".into(), MetaValue::U64(u64::MAX - 1)),
        ("t.i64".into(), MetaValue::I64(i64::MIN + 3)),
        ("t.f64".into(), MetaValue::F64(std::f64::consts::PI)),
        (
            "t.arr_i32".into(),
            MetaValue::Array(MetaType::I32, vec![MetaValue::I32(1), MetaValue::I32(-2)]),
        ),
        (
            "t.arr_str".into(),
            MetaValue::Array(
                MetaType::String,
                vec![
                    MetaValue::String("a".into()),
                    MetaValue::String(String::new()),
                    MetaValue::String("<s>".into()),
                ],
            ),
        ),
        (
            "t.arr_empty".into(),
            MetaValue::Array(MetaType::F32, vec![]),
        ),
        (
            "t.arr_nested".into(),
            MetaValue::Array(
                MetaType::Array,
                vec![
                    MetaValue::Array(MetaType::U8, vec![MetaValue::U8(1), MetaValue::U8(2)]),
                    MetaValue::Array(MetaType::Bool, vec![MetaValue::Bool(false)]),
                ],
            ),
        ),
    ]
}

fn every_type() -> Vec<GgmlType> {
    let mut v = vec![
        GgmlType::F32,
        GgmlType::F64,
        GgmlType::I8,
        GgmlType::I16,
        GgmlType::I32,
        GgmlType::I64,
    ];
    v.extend(GgufType::ALL.into_iter().map(GgmlType::Quant));
    v
}

fn sample_values(ty: GgmlType, n: usize, seed: u64) -> Vec<f32> {
    let x = gaussian(n, seed);
    match ty {
        GgmlType::I8 | GgmlType::I16 | GgmlType::I32 | GgmlType::I64 => {
            x.iter().map(|v| (v * 20.0).round() + 0.0).collect()
        }
        _ => x,
    }
}

#[test]
fn every_type_and_value_round_trips() {
    let mut w = GgufWriter::new();
    for (k, v) in every_meta() {
        w.add_metadata(k, v).unwrap();
    }
    let mut expected = Vec::new();
    for (i, ty) in every_type().into_iter().enumerate() {
        let shape = [3usize, 2 * ty.block_size().max(16)];
        let x = sample_values(ty, shape[0] * shape[1], i as u64);
        let name = format!("t{i}.{}", ty.name().to_lowercase());
        w.add_tensor_f32(&name, &shape, ty, &x).unwrap();
        expected.push((name, shape, ty, x));
    }
    let bytes = w.to_bytes().unwrap();
    let file = GgufFile::from_bytes(bytes.clone()).unwrap();
    assert_eq!(file.header().version(), 3);
    assert_eq!(file.header().alignment(), 32);
    let mut want_meta = every_meta();
    want_meta.push((QUANTIZATION_VERSION_KEY.into(), MetaValue::U32(2)));
    assert_eq!(file.metadata(), &want_meta[..]);
    assert_eq!(file.tensors().len(), expected.len());
    for ((name, shape, ty, x), info) in expected.iter().zip(file.tensors()) {
        assert_eq!(info.name(), name);
        assert_eq!(info.shape(), shape.to_vec());
        assert_eq!(info.dims(), &[shape[1] as u64, shape[0] as u64]);
        assert_eq!(info.ggml_type(), *ty);
        assert_eq!(info.offset() % 32, 0);
        assert_eq!(info.byte_range().start % 32, 0);
        let want_bytes = ty.encode(x).unwrap();
        assert_eq!(file.tensor_bytes(name).unwrap(), &want_bytes[..], "{name}");
        let got = file.tensor_f32(name).unwrap();
        let want: Vec<f32> = match ty {
            GgmlType::Quant(t) => dequantize(*t, &quantize(*t, x).unwrap(), x.len()).unwrap(),
            _ => x.clone(),
        };
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{name}"
        );
    }

    // The same file through the memory-mapped reader.
    let path = std::env::temp_dir().join(format!("shrink-gguf-rt-{}.gguf", std::process::id()));
    w.write_file(&path).unwrap();
    let mapped = GgufFile::open(&path).unwrap();
    assert_eq!(mapped.bytes(), &bytes[..]);
    assert_eq!(mapped.header(), file.header());
    assert_eq!(mapped.path(), Some(path.as_path()));
    for (name, ..) in &expected {
        assert_eq!(
            mapped.tensor_bytes(name).unwrap(),
            file.tensor_bytes(name).unwrap()
        );
    }
    drop(mapped);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn header_layout_is_exact() {
    let mut w = GgufWriter::new();
    w.add_metadata(ALIGNMENT_KEY, MetaValue::U32(64)).unwrap();
    w.add_tensor_f32("a", &[1, 3], GgmlType::F32, &[1.0, 2.0, 3.0])
        .unwrap();
    w.add_tensor_f32("b", &[2], GgmlType::Quant(GgufType::F16), &[0.5, -2.0])
        .unwrap();
    let b = w.to_bytes().unwrap();
    let mut want = Vec::new();
    want.extend_from_slice(b"GGUF");
    want.extend_from_slice(&3u32.to_le_bytes());
    want.extend_from_slice(&2u64.to_le_bytes());
    // F16 counts as a block type: quantization_version is added.
    want.extend_from_slice(&2u64.to_le_bytes());
    want.extend_from_slice(&17u64.to_le_bytes());
    want.extend_from_slice(b"general.alignment");
    want.extend_from_slice(&4u32.to_le_bytes());
    want.extend_from_slice(&64u32.to_le_bytes());
    want.extend_from_slice(&28u64.to_le_bytes());
    want.extend_from_slice(b"general.quantization_version");
    want.extend_from_slice(&4u32.to_le_bytes());
    want.extend_from_slice(&2u32.to_le_bytes());
    // tensor a: dims [3, 1], F32, offset 0
    want.extend_from_slice(&1u64.to_le_bytes());
    want.extend_from_slice(b"a");
    want.extend_from_slice(&2u32.to_le_bytes());
    want.extend_from_slice(&3u64.to_le_bytes());
    want.extend_from_slice(&1u64.to_le_bytes());
    want.extend_from_slice(&0u32.to_le_bytes());
    want.extend_from_slice(&0u64.to_le_bytes());
    // tensor b: dims [2], F16, offset 64 (12 bytes padded to 64)
    want.extend_from_slice(&1u64.to_le_bytes());
    want.extend_from_slice(b"b");
    want.extend_from_slice(&1u32.to_le_bytes());
    want.extend_from_slice(&2u64.to_le_bytes());
    want.extend_from_slice(&1u32.to_le_bytes());
    want.extend_from_slice(&64u64.to_le_bytes());
    want.resize(want.len().next_multiple_of(64), 0);
    let data = want.len();
    for v in [1.0f32, 2.0, 3.0] {
        want.extend_from_slice(&v.to_le_bytes());
    }
    want.resize(data + 64, 0);
    want.extend_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
    want.extend_from_slice(&half::f16::from_f32(-2.0).to_bits().to_le_bytes());
    want.resize(data + 128, 0);
    assert_eq!(b, want);
    let f = GgufFile::from_bytes(b).unwrap();
    assert_eq!(f.header().data_offset(), data);
    assert_eq!(f.header().alignment(), 64);
    assert_eq!(f.tensor_f32("b").unwrap(), vec![0.5, -2.0]);
}

/// A small file whose last tensor ends exactly at the end of the file, so
/// every proper prefix cuts something the reader needs.
fn small_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    for (k, v) in every_meta() {
        w.add_metadata(k, v).unwrap();
    }
    let x = gaussian(64, 7);
    w.add_tensor_f32("q", &[2, 32], GgmlType::Quant(GgufType::Q4_0), &x)
        .unwrap();
    w.add_tensor_f32("f", &[8], GgmlType::F32, &x[..8]).unwrap();
    let b = w.to_bytes().unwrap();
    let f = GgufFile::from_bytes(b.clone()).unwrap();
    assert_eq!(f.tensor("f").unwrap().byte_range().end, b.len());
    b
}

#[test]
fn every_truncation_is_a_typed_error() {
    let b = small_file();
    for n in 0..b.len() {
        match GgufFile::from_bytes(b[..n].to_vec()) {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("prefix of {n} bytes: expected Corrupt, got {other:?}"),
        }
    }
}

/// Offsets into `small_file`-like files, found by parsing.
fn expect_corrupt(bytes: Vec<u8>, needle: &str) {
    match GgufFile::from_bytes(bytes) {
        Err(Error::Corrupt { reason, .. }) => {
            assert!(
                reason.contains(needle),
                "reason `{reason}` lacks `{needle}`"
            )
        }
        other => panic!("expected Corrupt ({needle}), got {other:?}"),
    }
}

/// Builds a file by hand: header, KV bytes and tensor-info bytes as given.
fn raw_file(n_tensors: u64, n_kv: u64, body: &[u8], tail: usize) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&n_tensors.to_le_bytes());
    b.extend_from_slice(&n_kv.to_le_bytes());
    b.extend_from_slice(body);
    b.resize(b.len() + tail, 0);
    b
}

fn kv(key: &str, ty: u32, value: &[u8]) -> Vec<u8> {
    let mut b = (key.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(key.as_bytes());
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(value);
    b
}

fn tensor_info(name: &str, dims: &[u64], ty: u32, offset: u64) -> Vec<u8> {
    let mut b = (name.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        b.extend_from_slice(&d.to_le_bytes());
    }
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(&offset.to_le_bytes());
    b
}

#[test]
fn hostile_headers_are_typed_errors() {
    let good = small_file();
    let mut bad = good.clone();
    bad[0] = b'X';
    expect_corrupt(bad, "magic");
    let mut bad = good.clone();
    bad[4..8].copy_from_slice(&1u32.to_le_bytes());
    expect_corrupt(bad, "version");
    let mut bad = good.clone();
    bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    expect_corrupt(bad, "tensor_count");
    let mut bad = good;
    bad[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes());
    expect_corrupt(bad, "metadata_kv_count");

    // Metadata.
    expect_corrupt(raw_file(0, 1, &kv("k", 13, &[0]), 0), "unknown value type");
    expect_corrupt(raw_file(0, 1, &kv("k", 7, &[2]), 0), "bool");
    expect_corrupt(
        raw_file(0, 1, &kv("k", 8, &u64::MAX.to_le_bytes()), 0),
        "cannot fit",
    );
    let mut s = 2u64.to_le_bytes().to_vec();
    s.extend_from_slice(&[0xff, 0xfe]);
    expect_corrupt(raw_file(0, 1, &kv("k", 8, &s), 0), "UTF-8");
    let mut body = kv("k", 4, &1u32.to_le_bytes());
    body.extend(kv("k", 4, &1u32.to_le_bytes()));
    expect_corrupt(raw_file(0, 2, &body, 0), "twice");
    let mut arr = 4u32.to_le_bytes().to_vec();
    arr.extend_from_slice(&(1u64 << 40).to_le_bytes());
    expect_corrupt(raw_file(0, 1, &kv("k", 9, &arr), 64), "cannot fit");
    let mut arr = 77u32.to_le_bytes().to_vec();
    arr.extend_from_slice(&0u64.to_le_bytes());
    expect_corrupt(raw_file(0, 1, &kv("k", 9, &arr), 0), "element type");
    // Arrays of arrays nested past the limit (bounded recursion).
    let mut nested = Vec::new();
    for _ in 0..(MAX_ARRAY_DEPTH + 5) {
        nested.extend_from_slice(&9u32.to_le_bytes());
        nested.extend_from_slice(&1u64.to_le_bytes());
    }
    expect_corrupt(raw_file(0, 1, &kv("k", 9, &nested), 64), "nested");
    for a in [0u32, 48] {
        expect_corrupt(
            raw_file(0, 1, &kv(ALIGNMENT_KEY, 4, &a.to_le_bytes()), 0),
            "power of two",
        );
    }
    expect_corrupt(
        raw_file(0, 1, &kv(ALIGNMENT_KEY, 5, &32i32.to_le_bytes()), 0),
        "power of two",
    );

    // Tensor infos.
    let t = |dims: &[u64], ty: u32, off: u64, tail: usize| {
        raw_file(1, 0, &tensor_info("w", dims, ty, off), tail)
    };
    // Q8_1 (9) has no decoder here (IQ types 16.. and NVFP4 40 are decode-only types).
    expect_corrupt(t(&[32], 9, 0, 64), "unsupported ggml type 9");
    expect_corrupt(t(&[32], 99, 0, 64), "unknown or unsupported");
    expect_corrupt(t(&[1, 1, 1, 1, 1], 0, 0, 64), "dims");
    expect_corrupt(t(&[u64::MAX, 2], 0, 0, 64), "overflows");
    expect_corrupt(t(&[1 << 32, 1 << 32], 0, 0, 64), "overflows");
    expect_corrupt(t(&[0, u64::MAX], 0, 0, 64), "overflows");
    expect_corrupt(t(&[1 << 63, 0], 0, 0, 64), "overflows");
    expect_corrupt(t(&[1 << 40], 0, 0, 64), "outside the file");
    expect_corrupt(t(&[16], 2, 0, 64), "block size");
    expect_corrupt(t(&[4], 0, 8, 64), "alignment");
    expect_corrupt(t(&[4], 0, 64, 64), "outside the file");
    expect_corrupt(t(&[4], 0, u64::MAX - 31, 64), "overflows");
    let long = "x".repeat(64);
    expect_corrupt(raw_file(1, 0, &tensor_info(&long, &[4], 0, 0), 64), "bytes");
    let mut two = tensor_info("w", &[4], 0, 0);
    two.extend(tensor_info("w", &[4], 0, 32));
    expect_corrupt(raw_file(2, 0, &two, 128), "twice");
    // A valid hand-built file is accepted.
    let f = GgufFile::from_bytes(t(&[4], 0, 0, 64)).unwrap();
    assert_eq!(f.tensor_f32("w").unwrap(), vec![0.0; 4]);
}

#[test]
fn missing_tensor_and_bad_writer_input() {
    let f = GgufFile::from_bytes(small_file()).unwrap();
    assert!(matches!(f.tensor_f32("nope"), Err(Error::File { .. })));
    assert!(matches!(f.tensor_bytes("nope"), Err(Error::File { .. })));
    assert!(matches!(
        GgufFile::open("/nonexistent/x.gguf"),
        Err(Error::Io { .. })
    ));

    let mut w = GgufWriter::new();
    w.add_metadata("a", MetaValue::U8(1)).unwrap();
    assert!(w.add_metadata("a", MetaValue::U8(1)).is_err());
    assert!(w.add_metadata("", MetaValue::U8(1)).is_err());
    assert!(
        w.add_metadata("b", MetaValue::Array(MetaType::U8, vec![MetaValue::I8(1)]))
            .is_err()
    );
    assert!(w.add_metadata(ALIGNMENT_KEY, MetaValue::U32(12)).is_err());
    assert!(w.add_metadata(ALIGNMENT_KEY, MetaValue::U64(64)).is_err());
    let q4 = GgmlType::Quant(GgufType::Q4_0);
    assert!(matches!(
        w.add_tensor_f32("t", &[2, 16], q4, &[0.0; 32]),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        w.add_tensor_f32("t", &[2, 32], q4, &[0.0; 63]),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        w.add_tensor_f32("t", &[1, 32], q4, &[f32::NAN; 32]),
        Err(Error::NonFinite { .. })
    ));
    assert!(
        w.add_tensor_f32("t", &[4], GgmlType::I8, &[1.0, 2.0, 300.0, 0.0])
            .is_err()
    );
    assert!(
        w.add_tensor_f32("n".repeat(64), &[4], GgmlType::F32, &[0.0; 4])
            .is_err()
    );
    assert!(w.add_tensor_f32("t", &[0, 4], GgmlType::F32, &[]).is_err());
    assert!(
        w.add_tensor_f32("t", &[1, 1, 1, 1, 4], GgmlType::F32, &[0.0; 4])
            .is_err()
    );
    assert!(matches!(
        w.add_tensor_bytes("t", &[4], GgmlType::F32, vec![0; 15]),
        Err(Error::Shape { .. })
    ));
    w.add_tensor_f32("t", &[4], GgmlType::F32, &[0.0; 4])
        .unwrap();
    assert!(
        w.add_tensor_f32("t", &[4], GgmlType::F32, &[0.0; 4])
            .is_err()
    );
    // Only F32 tensors: no quantization_version is added.
    let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    assert!(f.get(QUANTIZATION_VERSION_KEY).is_none());
    assert_eq!(f.get("a"), Some(&MetaValue::U8(1)));
}

#[test]
fn header_parse_borrows_nothing() {
    let b = small_file();
    let h = GgufHeader::parse(&b).unwrap();
    drop(b);
    assert_eq!(h.tensors().len(), 2);
    assert_eq!(h.tensor("q").unwrap().n_elements(), 64);
    assert_eq!(h.get("t.u8").and_then(MetaValue::as_u64), Some(200));
    assert_eq!(
        h.get("t.f64").and_then(MetaValue::as_f64),
        Some(std::f64::consts::PI)
    );
    assert_eq!(
        h.get("t.string").and_then(MetaValue::as_str),
        Some("héllo ✓")
    );
    assert_eq!(
        h.get("t.arr_str")
            .and_then(MetaValue::as_array)
            .map(<[_]>::len),
        Some(3)
    );
}

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

fn scalar_of(t: MetaType) -> BoxedStrategy<MetaValue> {
    match t {
        MetaType::U8 => any::<u8>().prop_map(MetaValue::U8).boxed(),
        MetaType::I8 => any::<i8>().prop_map(MetaValue::I8).boxed(),
        MetaType::U16 => any::<u16>().prop_map(MetaValue::U16).boxed(),
        MetaType::I16 => any::<i16>().prop_map(MetaValue::I16).boxed(),
        MetaType::U32 => any::<u32>().prop_map(MetaValue::U32).boxed(),
        MetaType::I32 => any::<i32>().prop_map(MetaValue::I32).boxed(),
        // Finite floats so that `PartialEq` can compare them.
        MetaType::F32 => (-1e30f32..1e30).prop_map(MetaValue::F32).boxed(),
        MetaType::Bool => any::<bool>().prop_map(MetaValue::Bool).boxed(),
        MetaType::String => ".{0,12}".prop_map(MetaValue::String).boxed(),
        MetaType::U64 => any::<u64>().prop_map(MetaValue::U64).boxed(),
        MetaType::I64 => any::<i64>().prop_map(MetaValue::I64).boxed(),
        MetaType::F64 => (-1e300f64..1e300).prop_map(MetaValue::F64).boxed(),
        _ => Just(MetaValue::U8(0)).boxed(),
    }
}

const SCALARS: [MetaType; 12] = [
    MetaType::U8,
    MetaType::I8,
    MetaType::U16,
    MetaType::I16,
    MetaType::U32,
    MetaType::I32,
    MetaType::F32,
    MetaType::Bool,
    MetaType::String,
    MetaType::U64,
    MetaType::I64,
    MetaType::F64,
];

fn meta_value() -> impl Strategy<Value = MetaValue> {
    let scalar_type = proptest::sample::select(SCALARS.to_vec());
    prop_oneof![
        scalar_type.clone().prop_flat_map(scalar_of),
        scalar_type.clone().prop_flat_map(|t| {
            proptest::collection::vec(scalar_of(t), 0..6).prop_map(move |v| MetaValue::Array(t, v))
        }),
        scalar_type.prop_flat_map(|t| {
            proptest::collection::vec(
                proptest::collection::vec(scalar_of(t), 0..4)
                    .prop_map(move |v| MetaValue::Array(t, v)),
                0..4,
            )
            .prop_map(|v| MetaValue::Array(MetaType::Array, v))
        }),
    ]
}

fn tensor_type() -> impl Strategy<Value = GgmlType> {
    proptest::sample::select(every_type())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn metadata_round_trips(values in proptest::collection::vec(meta_value(), 0..10)) {
        let mut w = GgufWriter::new();
        let kvs: Vec<(String, MetaValue)> = values
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("k.{i}"), v))
            .collect();
        for (k, v) in &kvs {
            w.add_metadata(k.clone(), v.clone()).unwrap();
        }
        let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
        prop_assert_eq!(f.metadata(), &kvs[..]);
        prop_assert!(f.tensors().is_empty());
    }

    #[test]
    fn tensors_round_trip(
        specs in proptest::collection::vec((tensor_type(), 1usize..4, 1usize..3), 1..5),
        seed in any::<u64>(),
        align_pow in 3u32..8,
    ) {
        let mut w = GgufWriter::new();
        w.add_metadata(ALIGNMENT_KEY, MetaValue::U32(1 << align_pow)).unwrap();
        let mut want = Vec::new();
        for (i, (ty, rows, blocks)) in specs.into_iter().enumerate() {
            let cols = blocks * ty.block_size();
            let x = sample_values(ty, rows * cols, seed.wrapping_add(i as u64));
            let name = format!("blk.{i}.weight");
            w.add_tensor_f32(&name, &[rows, cols], ty, &x).unwrap();
            want.push((name, ty, ty.encode(&x).unwrap(), ty.decode(&ty.encode(&x).unwrap(), x.len()).unwrap()));
        }
        let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
        prop_assert_eq!(f.header().alignment(), 1 << align_pow);
        for (name, ty, bytes, deq) in want {
            let t = f.tensor(&name).unwrap();
            prop_assert_eq!(t.ggml_type(), ty);
            prop_assert_eq!(t.byte_range().start % (1 << align_pow), 0);
            prop_assert_eq!(f.tensor_bytes(&name).unwrap(), &bytes[..]);
            let got = f.tensor_f32(&name).unwrap();
            prop_assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                deq.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
    }

    /// Random byte changes never panic: either a typed error or a file
    /// whose tensors all decode.
    #[test]
    fn mutated_files_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let mut b = small_file();
        let n = b.len();
        for (i, v) in edits {
            b[i.index(n)] = v;
        }
        if let Ok(f) = GgufFile::from_bytes(b) {
            for t in f.tensors() {
                prop_assert!(f.tensor_f32(t.name()).is_ok());
            }
        }
    }
}
