//! compressed-tensors export and import, byte for byte against folders the
//! Python package wrote (`tests/data/compressed_tensors`, see its README).

use std::path::{Path, PathBuf};

use ndarray::Array2;
use serde_json::Value;
use shrink_core::{Error, Reconstruct};
use shrink_pack::compressed_tensors::{
    CompressedModel, CtFormat, ModuleKind, QuantArgs, QuantizationConfig, SparseValues,
    SparsityConfig, Strategy, pack_rows_i32, quantize_fp8, quantize_int, quantize_nvfp4,
    unpack_rows_i32, write_float_quantized, write_folder, write_nvfp4, write_pack_quantized,
    write_pack_quantized_act_order, write_sparse24, write_sparse24_fp8,
};
use shrink_pack::safetensors_io::{SafetensorsFile, SafetensorsModel, SafetensorsWriter};
use shrink_pack::sparse::Sparse24;
use shrink_quant::ActOrderMatrix;

const MODULES: [&str; 2] = ["layers.0.q", "layers.0.rand"];

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compressed_tensors")
}

fn input(name: &str) -> Vec<(String, usize, usize, Vec<f32>)> {
    let f = SafetensorsFile::open(data().join(name)).unwrap();
    MODULES
        .iter()
        .map(|m| {
            let (shape, v) = f.tensor_f32(&format!("{m}.weight")).unwrap();
            (m.to_string(), shape[0], shape[1], v)
        })
        .collect()
}

fn golden_bytes(case: &str) -> Vec<u8> {
    std::fs::read(data().join(case).join("model.safetensors")).unwrap()
}

fn golden_config(case: &str) -> String {
    std::fs::read_to_string(data().join(case).join("config.json")).unwrap()
}

/// First differing byte, for readable failures.
fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {i} of {}", got.len());
    }
}

fn finish(mut w: SafetensorsWriter) -> Vec<u8> {
    w.set_metadata("format", "pt");
    w.to_bytes().unwrap()
}

fn fnv1a64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Our decompression of every module of a golden case against the
/// package's (`dequant_digests.json`); NVFP4 is rounded to bf16 first, as
/// the package returns it.
fn check_dequant(case: &str, bf16: bool) {
    let digests: Value = serde_json::from_str(
        &std::fs::read_to_string(data().join("dequant_digests.json")).unwrap(),
    )
    .unwrap();
    let m = CompressedModel::open(data().join(case)).unwrap();
    assert_eq!(m.modules().len(), 2, "{case}: modules");
    for p in MODULES {
        let (r, c, v) = m.decompress(p).unwrap();
        let bytes: Vec<u8> = v
            .iter()
            .map(|&x| {
                if bf16 {
                    half::bf16::from_f32(x).to_f32()
                } else {
                    x
                }
            })
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let want = &digests[case][format!("{p}.weight")];
        assert_eq!(
            want["shape"],
            serde_json::json!([r, c]),
            "{case}/{p}: shape"
        );
        assert_eq!(
            want["fnv1a64"].as_str().unwrap(),
            fnv1a64(&bytes),
            "{case}/{p}: dequant digest"
        );
    }
}

/// Reads every module back as a QuantizedMatrix and writes it again: the
/// same file.
fn check_reexport(case: &str) {
    let m = CompressedModel::open(data().join(case)).unwrap();
    let mut w = SafetensorsWriter::new();
    for p in MODULES {
        let q = m.quantized_matrix(p).unwrap();
        match m.modules()[p] {
            ModuleKind::PackQuantized => write_pack_quantized(p, &q, &mut w).map(|_| ()),
            ModuleKind::FloatQuantized => write_float_quantized(p, &q, &mut w).map(|_| ()),
            ModuleKind::Nvfp4 => write_nvfp4(p, &q, &mut w).map(|_| ()),
            k => panic!("{k:?}"),
        }
        .unwrap();
    }
    assert_same_bytes(
        &finish(w),
        &golden_bytes(case),
        &format!("{case} re-export"),
    );
}

fn int_case(case: &str, args: QuantArgs) {
    let mut w = SafetensorsWriter::new();
    for (p, r, c, v) in input("input.safetensors") {
        let q = quantize_int(&v, r, c, &args).unwrap();
        let got_args = write_pack_quantized(&p, &q, &mut w).unwrap();
        assert_eq!(got_args, args);
    }
    assert_same_bytes(&finish(w), &golden_bytes(case), case);
    let cfg = QuantizationConfig::single(CtFormat::PackQuantized, args, None);
    assert_eq!(
        cfg.to_config_string(),
        golden_config(case),
        "{case}: config.json"
    );
    assert_eq!(
        QuantizationConfig::from_json_str(&golden_config(case)).unwrap(),
        cfg
    );
    check_dequant(case, false);
    check_reexport(case);
}

#[test]
fn w4a16_asym_g128_is_byte_exact() {
    int_case("w4a16-int-asym-g128", QuantArgs::w4a16_asym());
}

#[test]
fn w4a16_sym_g128_is_byte_exact() {
    int_case("w4a16-int-sym-g128", QuantArgs::w4a16());
}

#[test]
fn w8a16_channel_is_byte_exact() {
    int_case("w8a16-int-sym-channel", QuantArgs::w8a16());
}

#[test]
fn fp8_channel_is_byte_exact() {
    let case = "fp8-channel";
    let mut w = SafetensorsWriter::new();
    for (p, r, c, v) in input("input.safetensors") {
        let q = quantize_fp8(&v, r, c, Strategy::Channel).unwrap();
        write_float_quantized(&p, &q, &mut w).unwrap();
    }
    assert_same_bytes(&finish(w), &golden_bytes(case), case);
    let cfg = QuantizationConfig::single(
        CtFormat::FloatQuantized,
        QuantArgs::fp8(Strategy::Channel),
        Some(QuantArgs::fp8_dynamic_token()),
    );
    assert_eq!(
        cfg.to_config_string(),
        golden_config(case),
        "{case}: config.json"
    );
    check_dequant(case, false);
    check_reexport(case);
}

#[test]
fn nvfp4_is_byte_exact() {
    let case = "nvfp4";
    let mut w = SafetensorsWriter::new();
    for (p, r, c, v) in input("input.safetensors") {
        let q = quantize_nvfp4(&v, r, c).unwrap();
        write_nvfp4(&p, &q, &mut w).unwrap();
    }
    assert_same_bytes(&finish(w), &golden_bytes(case), case);
    let cfg = QuantizationConfig::single(CtFormat::Nvfp4PackQuantized, QuantArgs::nvfp4(), None);
    assert_eq!(
        cfg.to_config_string(),
        golden_config(case),
        "{case}: config.json"
    );
    check_dequant(case, true);
    check_reexport(case);
}

#[test]
fn sparse24_is_byte_exact() {
    let case = "sparse-24-bitmask";
    let mut w = SafetensorsWriter::new();
    for (p, r, c, v) in input("input-pruned24.safetensors") {
        let s = Sparse24::compress(&v, r, c).unwrap();
        write_sparse24(&p, &s, SparseValues::F32, &mut w).unwrap();
    }
    assert_same_bytes(&finish(w), &golden_bytes(case), case);
    // Written by 0.14.0: compare what the config says, not its bytes.
    let golden = QuantizationConfig::from_json_str(&golden_config(case)).unwrap();
    assert!(golden.groups.is_empty());
    let s = golden.sparsity.as_ref().unwrap();
    assert_eq!(
        (s.global_sparsity, s.targets.clone()),
        (0.5, vec!["Linear".to_string()])
    );
    check_dequant(case, false);
    // Decompression is exact: the pruned input comes back.
    let m = CompressedModel::open(data().join(case)).unwrap();
    for (p, r, c, v) in input("input-pruned24.safetensors") {
        assert_eq!(m.decompress(&p).unwrap(), (r, c, v));
    }
}

#[test]
fn sparse24_fp8_is_byte_exact() {
    let case = "sparse-24-bitmask-fp8-channel";
    let mut w = SafetensorsWriter::new();
    for (p, r, c, v) in input("input-pruned24.safetensors") {
        let q = quantize_fp8(&v, r, c, Strategy::Channel).unwrap();
        let mask = Sparse24::compress(&v, r, c).unwrap().mask().unwrap();
        write_sparse24_fp8(&p, &q, &mask, &mut w).unwrap();
    }
    assert_same_bytes(&finish(w), &golden_bytes(case), case);
    let golden = QuantizationConfig::from_json_str(&golden_config(case)).unwrap();
    assert_eq!(golden.groups[0].format, CtFormat::FloatQuantized);
    assert_eq!(
        golden.groups[0].weights,
        Some(QuantArgs::fp8(Strategy::Channel))
    );
    assert!(golden.sparsity.is_some());
    check_dequant(case, false);
}

#[test]
fn act_order_g_idx_round_trips() {
    let (rows, cols, g) = (8usize, 64usize, 16usize);
    let w: Vec<f32> = (0..rows * cols)
        .map(|k| ((k * 37 % 101) as f32 - 50.0) / 17.0)
        .collect();
    // A permutation that interleaves columns, as act-order would.
    let perm: Vec<u32> = (0..cols as u32).map(|k| (k * 13) % cols as u32).collect();
    let permuted: Vec<f32> = (0..rows)
        .flat_map(|i| perm.iter().map(move |&p| (i, p)))
        .map(|(i, p)| w[i * cols + p as usize])
        .collect();
    for sym in [true, false] {
        let args = QuantArgs::int(4, sym, Strategy::Group, Some(g));
        let inner = quantize_int(&permuted, rows, cols, &args).unwrap();
        let a = ActOrderMatrix::new(inner, perm.clone()).unwrap();
        let mut st = SafetensorsWriter::new();
        let got = write_pack_quantized_act_order("m", &a, &mut st).unwrap();
        assert_eq!(got.actorder.as_deref(), Some("group"));
        let dir =
            std::env::temp_dir().join(format!("shrink-ct-actorder-{}-{sym}", std::process::id()));
        let cfg = QuantizationConfig::single(CtFormat::PackQuantized, got, None);
        write_folder(&dir, &mut st, &cfg).unwrap();
        let m = CompressedModel::open(&dir).unwrap();
        assert_eq!(m.config(), &cfg);
        let g_idx = m.tensors().tensor("m.weight_g_idx").unwrap();
        assert_eq!(g_idx.shape, &[cols]);
        let (r, c, dense) = m.decompress("m").unwrap();
        let want: Array2<f32> = a.to_dense();
        assert_eq!((r, c), (rows, cols));
        assert_eq!(dense, want.iter().copied().collect::<Vec<_>>());
        assert!(matches!(m.quantized_matrix("m"), Err(Error::File { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn folder_round_trip_and_config() {
    let dir = std::env::temp_dir().join(format!("shrink-ct-folder-{}", std::process::id()));
    let mut st = SafetensorsWriter::new();
    let ins = input("input.safetensors");
    let (p, r, c, v) = &ins[1];
    let q = quantize_int(v, *r, *c, &QuantArgs::w4a16_asym()).unwrap();
    let args = write_pack_quantized(p, &q, &mut st).unwrap();
    let mut cfg = QuantizationConfig::single(CtFormat::PackQuantized, args, None);
    cfg.ignore = vec!["lm_head".into()];
    cfg.sparsity = Some(SparsityConfig {
        global_sparsity: 0.5,
        targets: vec!["Linear".into()],
        ignore: vec![],
    });
    write_folder(&dir, &mut st, &cfg).unwrap();
    let m = CompressedModel::open(&dir).unwrap();
    assert_eq!(m.config(), &cfg);
    assert_eq!(m.quantized_matrix(p).unwrap(), q);
    let (_, _, d) = m.decompress(p).unwrap();
    assert_eq!(d, q.to_dense().iter().copied().collect::<Vec<_>>());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn packing_helpers_round_trip() {
    for b in 1..=8u8 {
        for cols in [1usize, 7, 8, 31, 32, 33, 100] {
            let rows = 3;
            let codes: Vec<u8> = (0..rows * cols).map(|k| (k * 7 % (1 << b)) as u8).collect();
            let words = pack_rows_i32(&codes, rows, cols, b).unwrap();
            assert_eq!(words.len(), rows * (cols * b as usize).div_ceil(32));
            assert_eq!(unpack_rows_i32(&words, rows, cols, b).unwrap(), codes);
        }
    }
    // int4: word j holds elements 8j..8j+7, first element lowest.
    let codes = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
    let w = pack_rows_i32(&codes, 1, 9, 4).unwrap();
    assert_eq!(w, vec![0x8765_4321u32 as i32, 9]);
    assert!(unpack_rows_i32(&w[..1], 1, 9, 4).is_err());
}

#[test]
fn bad_inputs_are_typed_errors() {
    let w = vec![0.5f32; 32];
    assert!(matches!(
        quantize_int(
            &w,
            2,
            16,
            &QuantArgs::int(4, true, Strategy::Group, Some(5))
        ),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        quantize_int(&w, 3, 16, &QuantArgs::w4a16()),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        quantize_int(
            &[f32::NAN; 4],
            1,
            4,
            &QuantArgs::int(4, true, Strategy::Channel, None)
        ),
        Err(Error::NonFinite { .. })
    ));
    assert!(quantize_int(&w, 2, 16, &QuantArgs::nvfp4()).is_err());
    assert!(quantize_fp8(&w, 2, 16, Strategy::Group).is_err());
    assert!(quantize_nvfp4(&w, 4, 8).is_err());
    // A zero matrix gets the package's epsilon scales and decodes to zeros.
    let z = quantize_int(
        &[0.0; 16],
        1,
        16,
        &QuantArgs::int(4, false, Strategy::Channel, None),
    )
    .unwrap();
    assert!(z.to_dense().iter().all(|&v| v == 0.0));
    // Exporting the wrong grid.
    let fp8 = quantize_fp8(&w, 2, 16, Strategy::Tensor).unwrap();
    let mut st = SafetensorsWriter::new();
    assert!(write_pack_quantized("x", &fp8, &mut st).is_err());
    assert!(write_nvfp4("x", &fp8, &mut st).is_err());
    let int = quantize_int(&w, 2, 16, &QuantArgs::w8a16()).unwrap();
    assert!(write_float_quantized("x", &int, &mut st).is_err());
    assert!(QuantizationConfig::from_json_str("{").is_err());
    assert!(QuantizationConfig::from_json_str(r#"{"quant_method": "gptq"}"#).is_err());

    // A golden folder with one tensor removed or altered.
    let dir = std::env::temp_dir().join(format!("shrink-ct-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        data().join("w4a16-int-asym-g128/config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    let src = SafetensorsModel::open(data().join("w4a16-int-asym-g128")).unwrap();
    let rewrite = |skip: &str, reshape: Option<&str>, replace: Option<(&str, Vec<u8>)>| {
        let mut w = SafetensorsWriter::new();
        for (n, d, s) in src.list() {
            if n == skip {
                continue;
            }
            let t = src.tensor(n).unwrap();
            let shape: Vec<usize> = if Some(n) == reshape {
                vec![s.iter().product::<usize>()]
            } else {
                s.to_vec()
            };
            let data = match &replace {
                Some((r, bytes)) if *r == n => bytes.clone(),
                _ => t.data.to_vec(),
            };
            w.add_raw(n, d, &shape, data).unwrap();
        }
        w.write_file(dir.join("model.safetensors")).unwrap();
        CompressedModel::open(&dir).unwrap()
    };
    let m = rewrite("layers.0.q.weight_scale", None, None);
    assert!(matches!(
        m.decompress("layers.0.q"),
        Err(Error::File { .. })
    ));
    let m = rewrite("", Some("layers.0.q.weight_zero_point"), None);
    assert!(matches!(
        m.decompress("layers.0.q"),
        Err(Error::File { .. })
    ));
    let m = rewrite("", Some("layers.0.q.weight_packed"), None);
    assert!(m.decompress("layers.0.q").is_err());
    assert!(matches!(m.decompress("nope"), Err(Error::File { .. })));
    // Hostile weight_shape values: errors, no overflow or huge allocation.
    for (r, c) in [
        (384i64, i64::MAX),
        (-1, 384),
        (384, 1 << 40),
        (384, 385),
        (0, 0),
    ] {
        let bytes: Vec<u8> = [r, c].iter().flat_map(|v| v.to_le_bytes()).collect();
        let m = rewrite("", None, Some(("layers.0.q.weight_shape", bytes)));
        assert!(m.decompress("layers.0.q").is_err(), "{r}x{c}");
        assert!(m.quantized_matrix("layers.0.q").is_err(), "{r}x{c}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]

        /// Golden files with random bytes changed: opening and decompressing
        /// every module gives values or typed errors, never a panic.
        #[test]
        fn mutated_golden_files_never_panic(
            case in proptest::sample::select(vec![
                "w4a16-int-asym-g128", "w8a16-int-sym-channel", "fp8-channel", "nvfp4",
                "sparse-24-bitmask-fp8-channel",
            ]),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            in_header in any::<bool>(),
        ) {
            let mut b = golden_bytes(case);
            let header = 8 + u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
            for (i, v) in edits {
                let k = if in_header { i.index(header) } else { header + i.index(b.len() - header) };
                b[k] = v;
            }
            let dir = std::env::temp_dir().join(format!("shrink-ct-fuzz-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(data().join(case).join("config.json"), dir.join("config.json")).unwrap();
            std::fs::write(dir.join("model.safetensors"), &b).unwrap();
            if let Ok(m) = CompressedModel::open(&dir) {
                let names: Vec<String> = m.modules().keys().cloned().collect();
                for p in names {
                    let _ = m.decompress(&p);
                    let _ = m.quantized_matrix(&p);
                }
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
