//! A GGUF file written by shrink, read back by llama.cpp's gguf-py
//! (`pip install gguf`) through `scripts/gguf_readback.py`: metadata values,
//! tensor types, dims and bytes, and gguf-py's dequantization bit for bit
//! against ours.
//!
//! Skipped, with a message, when `python3` or its `gguf` module is missing
//! (CI may lack them); it never fails for that reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde_json::{Value, json};
use shrink_pack::gguf::{GgmlType, GgufFile, GgufType, GgufWriter, MetaType, MetaValue};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/gguf_readback.py")
}

/// `Some(reason)` when the readback cannot run here.
fn python_unavailable() -> Option<String> {
    match Command::new("python3")
        .args(["-c", "import gguf, numpy"])
        .output()
    {
        Err(e) => Some(format!("python3 not runnable: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "python3 lacks gguf/numpy: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    }
}

fn type_name(t: MetaType) -> &'static str {
    match t {
        MetaType::U8 => "UINT8",
        MetaType::I8 => "INT8",
        MetaType::U16 => "UINT16",
        MetaType::I16 => "INT16",
        MetaType::U32 => "UINT32",
        MetaType::I32 => "INT32",
        MetaType::F32 => "FLOAT32",
        MetaType::Bool => "BOOL",
        MetaType::String => "STRING",
        MetaType::Array => "ARRAY",
        MetaType::U64 => "UINT64",
        MetaType::I64 => "INT64",
        MetaType::F64 => "FLOAT64",
        _ => "UNKNOWN",
    }
}

/// (spec, value) of a metadata value in the script's JSON form.
fn to_json(v: &MetaValue) -> (Value, Value) {
    let spec = |t| json!({ "type": type_name(t) });
    match v {
        MetaValue::U8(x) => (spec(MetaType::U8), json!(x)),
        MetaValue::I8(x) => (spec(MetaType::I8), json!(x)),
        MetaValue::U16(x) => (spec(MetaType::U16), json!(x)),
        MetaValue::I16(x) => (spec(MetaType::I16), json!(x)),
        MetaValue::U32(x) => (spec(MetaType::U32), json!(x)),
        MetaValue::I32(x) => (spec(MetaType::I32), json!(x)),
        MetaValue::F32(x) => (spec(MetaType::F32), json!(f64::from(*x))),
        MetaValue::Bool(x) => (spec(MetaType::Bool), json!(x)),
        MetaValue::String(x) => (spec(MetaType::String), json!(x)),
        MetaValue::U64(x) => (spec(MetaType::U64), json!(x)),
        MetaValue::I64(x) => (spec(MetaType::I64), json!(x)),
        MetaValue::F64(x) => (spec(MetaType::F64), json!(x)),
        MetaValue::Array(t, items) => {
            let elem = match items.first() {
                Some(first) => to_json(first).0,
                None => spec(*t),
            };
            let values: Vec<Value> = items.iter().map(|x| to_json(x).1).collect();
            (json!({"type": "ARRAY", "elem": elem}), Value::Array(values))
        }
        _ => (json!({"type": "UNKNOWN"}), Value::Null),
    }
}

#[test]
fn gguf_py_reads_our_files() {
    if let Some(why) = python_unavailable() {
        println!("SKIPPED gguf_py_reads_our_files: {why} (pip install gguf to run it)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("shrink-gguf-readback-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let mut w = GgufWriter::new();
    let meta = vec![
        ("general.architecture", MetaValue::String("llama".into())),
        (
            "general.name",
            MetaValue::String("shrink readback ✓".into()),
        ),
        ("t.u8", MetaValue::U8(250)),
        ("t.i8", MetaValue::I8(-7)),
        ("t.u16", MetaValue::U16(65000)),
        ("t.i16", MetaValue::I16(-32000)),
        ("t.u32", MetaValue::U32(4_000_000_000)),
        ("t.i32", MetaValue::I32(-123_456_789)),
        ("t.f32", MetaValue::F32(0.1)),
        ("t.bool", MetaValue::Bool(true)),
        ("t.u64", MetaValue::U64(u64::MAX)),
        ("t.i64", MetaValue::I64(i64::MIN)),
        ("t.f64", MetaValue::F64(-2.5e-300)),
        (
            "t.tokens",
            MetaValue::Array(
                MetaType::String,
                ["<s>", "</s>", "hé", ""]
                    .iter()
                    .map(|s| MetaValue::String((*s).into()))
                    .collect(),
            ),
        ),
        (
            "t.scores",
            MetaValue::Array(
                MetaType::F32,
                vec![MetaValue::F32(-1.25), MetaValue::F32(3.0e-9)],
            ),
        ),
        ("t.empty", MetaValue::Array(MetaType::I32, vec![])),
        (
            "t.nested",
            MetaValue::Array(
                MetaType::Array,
                vec![
                    MetaValue::Array(MetaType::U16, vec![MetaValue::U16(1), MetaValue::U16(2)]),
                    MetaValue::Array(MetaType::U16, vec![MetaValue::U16(3)]),
                ],
            ),
        ),
        ("general.alignment", MetaValue::U32(64)),
    ];
    for (k, v) in &meta {
        w.add_metadata(*k, v.clone()).unwrap();
    }
    let mut types = vec![GgmlType::F32, GgmlType::I8, GgmlType::I32];
    types.extend(GgufType::ALL.into_iter().map(GgmlType::Quant));
    let mut rng = StdRng::seed_from_u64(42);
    let mut names = Vec::new();
    for (i, ty) in types.iter().enumerate() {
        let (rows, cols) = (3, 512);
        let x: Vec<f32> = (0..rows * cols)
            .map(|_| {
                let v: f32 = rng.sample(StandardNormal);
                match ty {
                    GgmlType::I8 | GgmlType::I32 => (v * 20.0).round(),
                    _ => v,
                }
            })
            .collect();
        let name = format!("blk.{i}.{}", ty.name().to_lowercase());
        w.add_tensor_f32(&name, &[rows, cols], *ty, &x).unwrap();
        names.push((name, *ty));
    }
    let gguf_path = dir.join("model.gguf");
    w.write_file(&gguf_path).unwrap();

    // Expected values come from our own reader of the written file.
    let file = GgufFile::open(&gguf_path).unwrap();
    let mut tensors = Vec::new();
    for (i, (name, ty)) in names.iter().enumerate() {
        let info = file.tensor(name).unwrap();
        let bytes_file = format!("t{i}.bin");
        let values_file = format!("t{i}.f32");
        std::fs::write(dir.join(&bytes_file), file.tensor_bytes(name).unwrap()).unwrap();
        let vals: Vec<u8> = file
            .tensor_f32(name)
            .unwrap()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(dir.join(&values_file), vals).unwrap();
        tensors.push(json!({
            "name": name, "type": ty.name(), "dims": info.dims(),
            "bytes": bytes_file, "values": values_file,
        }));
    }
    let metadata: Vec<Value> = file
        .metadata()
        .iter()
        .map(|(k, v)| {
            let (spec, value) = to_json(v);
            json!({"key": k, "spec": spec, "value": value})
        })
        .collect();
    let expected = dir.join("expected.json");
    std::fs::write(
        &expected,
        serde_json::to_string_pretty(&json!({"metadata": metadata, "tensors": tensors})).unwrap(),
    )
    .unwrap();

    let out = Command::new("python3")
        .arg(script())
        .arg(&gguf_path)
        .arg(&expected)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "gguf-py readback failed:\n{stdout}");
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["failures"], 0);
    assert_eq!(summary["tensors_checked"], names.len());
    assert_eq!(summary["metadata_checked"], meta.len() + 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
