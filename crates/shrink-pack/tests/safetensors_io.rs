//! safetensors reading (file, bytes, sharded folder) and writing: round
//! trips, exact header bytes, typed errors for missing tensors, bad dtypes
//! and corrupt headers (including every truncation of a small file).

use std::path::PathBuf;

use proptest::prelude::*;
use safetensors::SafeTensors;
use shrink_core::Error;
use shrink_pack::safetensors_io::{Dtype, SafetensorsFile, SafetensorsModel, SafetensorsWriter};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shrink-st-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sample_writer() -> SafetensorsWriter {
    let mut w = SafetensorsWriter::new();
    w.add_f32("a.weight", &[2, 3], &[1.0, -2.0, 3.5, 0.0, -0.0, 1e-30])
        .unwrap();
    w.add_f16("b.weight", &[4], &[0.5, -1.0, 65504.0, 1e-8])
        .unwrap();
    w.add_bf16("c.weight", &[2, 2], &[1.0, 3.0, -7.5, 1e30])
        .unwrap();
    w.add_i32("d", &[3], &[-1, 0, i32::MAX]).unwrap();
    w.add_i64("e", &[2], &[i64::MIN, 7]).unwrap();
    w.add_u8("f", &[3], &[0, 1, 255]).unwrap();
    w.add_i8("g", &[2], &[-128, 127]).unwrap();
    w.add_raw("h", Dtype::F8_E4M3, &[2, 2], vec![0x38, 0xb8, 0x7e, 0x80])
        .unwrap();
    w.set_metadata("format", "pt");
    w.set_metadata("b_key", "x\"y");
    w
}

#[test]
fn round_trip_every_dtype() {
    let bytes = sample_writer().to_bytes().unwrap();
    // The safetensors crate itself accepts it.
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.len(), 8);
    let f = SafetensorsFile::from_bytes(bytes).unwrap();
    assert_eq!(f.metadata().get("format").map(String::as_str), Some("pt"));
    assert_eq!(f.metadata().get("b_key").map(String::as_str), Some("x\"y"));
    let (shape, a) = f.tensor_f32("a.weight").unwrap();
    assert_eq!(shape, vec![2, 3]);
    assert_eq!(
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        [1.0f32, -2.0, 3.5, 0.0, -0.0, 1e-30]
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    );
    let b = f.tensor_f32("b.weight").unwrap().1;
    assert_eq!(b[..3], [0.5, -1.0, 65504.0]);
    assert_eq!(b[3], half::f16::from_f32(1e-8).to_f32());
    let c = f.tensor_f32("c.weight").unwrap().1;
    assert_eq!(c[..3], [1.0, 3.0, -7.5]);
    assert_eq!(c[3], half::bf16::from_f32(1e30).to_f32());
    let d = f.tensor("d").unwrap();
    assert_eq!((d.dtype, d.shape), (Dtype::I32, &[3usize][..]));
    assert_eq!(
        d.data,
        &[255, 255, 255, 255, 0, 0, 0, 0, 255, 255, 255, 127]
    );
    assert_eq!(f.tensor("h").unwrap().data, &[0x38, 0xb8, 0x7e, 0x80]);
    assert_eq!(f.tensor("g").unwrap().data, &[0x80, 0x7f]);
    // Data order: dtype alignment descending, then name.
    let names: Vec<&str> = f.names().collect();
    assert_eq!(
        names,
        ["e", "a.weight", "d", "c.weight", "b.weight", "h", "g", "f"]
    );
}

#[test]
fn header_bytes_are_exact() {
    let mut w = SafetensorsWriter::new();
    w.add_f32("w", &[1, 2], &[1.0, 2.0]).unwrap();
    w.add_i64("s", &[1], &[5]).unwrap();
    w.set_metadata("format", "pt");
    let b = w.to_bytes().unwrap();
    let header = r#"{"__metadata__":{"format":"pt"},"s":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[1,2],"data_offsets":[8,16]}}"#;
    let padded = header.len().next_multiple_of(8);
    assert_eq!(&b[..8], &(padded as u64).to_le_bytes());
    assert_eq!(&b[8..8 + header.len()], header.as_bytes());
    assert!(b[8 + header.len()..8 + padded].iter().all(|&c| c == b' '));
    assert_eq!(b.len(), 8 + padded + 16);
}

#[test]
fn typed_errors() {
    let bytes = sample_writer().to_bytes().unwrap();
    let f = SafetensorsFile::from_bytes(bytes.clone()).unwrap();
    assert!(matches!(f.tensor("nope"), Err(Error::File { .. })));
    assert!(matches!(f.tensor_f32("nope"), Err(Error::File { .. })));
    assert!(matches!(f.tensor_f32("d"), Err(Error::File { .. })));
    assert!(matches!(f.tensor_f32("h"), Err(Error::File { .. })));
    // Every truncation is a typed error.
    for n in 0..bytes.len() {
        assert!(
            matches!(
                SafetensorsFile::from_bytes(bytes[..n].to_vec()),
                Err(Error::Corrupt { .. })
            ),
            "prefix {n}"
        );
    }
    // Corrupt headers.
    let mut bad = bytes.clone();
    bad[8] = b'[';
    assert!(matches!(
        SafetensorsFile::from_bytes(bad),
        Err(Error::Corrupt { .. })
    ));
    let mut bad = bytes.clone();
    bad[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        SafetensorsFile::from_bytes(bad),
        Err(Error::Corrupt { .. })
    ));
    let mut bad = bytes.clone();
    bad.push(0);
    assert!(matches!(
        SafetensorsFile::from_bytes(bad),
        Err(Error::Corrupt { .. })
    ));
    let hostile = br#"{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}"#;
    let mut h = (hostile.len() as u64).to_le_bytes().to_vec();
    h.extend_from_slice(hostile);
    assert!(matches!(
        SafetensorsFile::from_bytes(h),
        Err(Error::Corrupt { .. })
    ));
    let unknown = br#"{"x":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#;
    let mut h = (unknown.len() as u64).to_le_bytes().to_vec();
    h.extend_from_slice(unknown);
    h.push(0);
    assert!(matches!(
        SafetensorsFile::from_bytes(h),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        SafetensorsFile::open("/nonexistent/model.safetensors"),
        Err(Error::Io { .. })
    ));

    // Writer input.
    let mut w = SafetensorsWriter::new();
    assert!(matches!(
        w.add_f32("a", &[2, 2], &[0.0; 3]),
        Err(Error::Shape { .. })
    ));
    assert!(w.add_raw("__metadata__", Dtype::U8, &[1], vec![0]).is_err());
    assert!(w.add_raw("f4", Dtype::F4, &[2], vec![0]).is_err());
    assert!(
        w.add_raw("big", Dtype::F32, &[usize::MAX, 2], vec![])
            .is_err()
    );
    w.add_u8("a", &[1], &[1]).unwrap();
    assert!(w.add_u8("a", &[1], &[1]).is_err());
}

#[test]
fn mmap_file_and_sharded_folder() {
    let dir = tmp("shards");
    let mut s1 = SafetensorsWriter::new();
    s1.add_f32("layers.0.w", &[2, 2], &[1.0, 2.0, 3.0, 4.0])
        .unwrap();
    s1.add_bf16("layers.0.b", &[2], &[0.5, 0.25]).unwrap();
    s1.write_file(dir.join("model-00001-of-00002.safetensors"))
        .unwrap();
    let mut s2 = SafetensorsWriter::new();
    s2.add_f16("layers.1.w", &[1, 2], &[-1.0, 8.0]).unwrap();
    s2.add_i32("layers.1.idx", &[2], &[3, 4]).unwrap();
    s2.write_file(dir.join("model-00002-of-00002.safetensors"))
        .unwrap();
    let index = r#"{"metadata": {"total_size": 36}, "weight_map": {
        "layers.0.w": "model-00001-of-00002.safetensors",
        "layers.0.b": "model-00001-of-00002.safetensors",
        "layers.1.w": "model-00002-of-00002.safetensors",
        "layers.1.idx": "model-00002-of-00002.safetensors"}}"#;
    std::fs::write(dir.join("model.safetensors.index.json"), index).unwrap();

    let m = SafetensorsModel::open(&dir).unwrap();
    assert_eq!(m.shards().len(), 2);
    assert_eq!(
        m.names().collect::<Vec<_>>(),
        ["layers.0.b", "layers.0.w", "layers.1.idx", "layers.1.w"]
    );
    let list = m.list();
    assert_eq!(list[0], ("layers.0.b", Dtype::BF16, &[2usize][..]));
    assert_eq!(list[3], ("layers.1.w", Dtype::F16, &[1usize, 2][..]));
    assert_eq!(
        m.tensor_f32("layers.1.w").unwrap(),
        (vec![1, 2], vec![-1.0, 8.0])
    );
    assert_eq!(m.tensor_f32("layers.0.b").unwrap().1, vec![0.5, 0.25]);
    assert!(matches!(
        m.tensor_f32("layers.1.idx"),
        Err(Error::File { .. })
    ));
    assert!(matches!(m.tensor("missing"), Err(Error::File { .. })));
    assert_eq!(m.index_metadata().unwrap()["total_size"], 36);

    // The index file itself, and a single file.
    assert_eq!(
        SafetensorsModel::open(dir.join("model.safetensors.index.json"))
            .unwrap()
            .names()
            .count(),
        4
    );
    let single = SafetensorsModel::open(dir.join("model-00002-of-00002.safetensors")).unwrap();
    assert_eq!(single.names().count(), 2);

    // An index that names a tensor its shard lacks, a missing shard, a
    // path-like shard name, bad JSON.
    let bad = |text: &str| {
        std::fs::write(dir.join("model.safetensors.index.json"), text).unwrap();
        SafetensorsModel::open(&dir)
    };
    assert!(matches!(
        bad(r#"{"weight_map": {"zzz": "model-00001-of-00002.safetensors"}}"#),
        Err(Error::File { .. })
    ));
    assert!(matches!(
        bad(r#"{"weight_map": {"a": "absent.safetensors"}}"#),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        bad(r#"{"weight_map": {"a": "../x.safetensors"}}"#),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(bad("{"), Err(Error::Corrupt { .. })));
    assert!(matches!(bad("{}"), Err(Error::Corrupt { .. })));
    std::fs::remove_file(dir.join("model.safetensors.index.json")).unwrap();
    assert!(matches!(
        SafetensorsModel::open(&dir),
        Err(Error::File { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn tensors_round_trip(
        t in proptest::collection::vec(
            (0u8..3, proptest::collection::vec(-1e6f32..1e6, 1..40)), 1..6)
    ) {
        let mut w = SafetensorsWriter::new();
        for (i, (kind, v)) in t.iter().enumerate() {
            let name = format!("t{i}");
            match kind {
                0 => w.add_f32(&name, &[v.len()], v).unwrap(),
                1 => w.add_f16(&name, &[v.len()], v).unwrap(),
                _ => w.add_bf16(&name, &[1, v.len()], v).unwrap(),
            }
        }
        let f = SafetensorsFile::from_bytes(w.to_bytes().unwrap()).unwrap();
        for (i, (kind, v)) in t.iter().enumerate() {
            let got = f.tensor_f32(&format!("t{i}")).unwrap().1;
            let want: Vec<f32> = match kind {
                0 => v.clone(),
                1 => v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect(),
                _ => v.iter().map(|&x| half::bf16::from_f32(x).to_f32()).collect(),
            };
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn mutated_headers_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)
    ) {
        let mut b = sample_writer().to_bytes().unwrap();
        let n = b.len();
        for (i, v) in edits {
            b[i.index(n)] = v;
        }
        if let Ok(f) = SafetensorsFile::from_bytes(b) {
            let names: Vec<String> = f.names().map(str::to_string).collect();
            for name in names {
                let _ = f.tensor_f32(&name);
            }
        }
    }
}
