//! compressed-tensors `mxfp4-pack-quantized`: export and import byte for
//! byte against the folder compressed-tensors 0.20.0 wrote with its
//! `MXFP4A16` preset (`tests/data/compressed_tensors/mxfp4`, made by
//! `scripts/ct_make_mxfp4.py`; see the README there).

use std::path::{Path, PathBuf};

use serde_json::Value;
use shrink_core::{Error, Reconstruct};
use shrink_pack::compressed_tensors::{
    CompressedModel, CtFormat, ModuleKind, QuantArgs, QuantizationConfig, Strategy,
    mxfp4_scale_code, quantize_mxfp4, quantize_nvfp4, write_folder, write_mxfp4,
};
use shrink_pack::safetensors_io::{SafetensorsFile, SafetensorsWriter};

const MODULES: [&str; 2] = ["layers.0.q", "layers.0.rand"];

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compressed_tensors")
}

fn input() -> Vec<(String, usize, usize, Vec<f32>)> {
    let f = SafetensorsFile::open(data().join("input.safetensors")).unwrap();
    MODULES
        .iter()
        .map(|m| {
            let (shape, v) = f.tensor_f32(&format!("{m}.weight")).unwrap();
            (m.to_string(), shape[0], shape[1], v)
        })
        .collect()
}

fn fnv1a64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {i} of {}", got.len());
    }
}

fn export() -> SafetensorsWriter {
    let mut w = SafetensorsWriter::new();
    for (p, r, c, v) in input() {
        let q = quantize_mxfp4(&v, r, c).unwrap();
        write_mxfp4(&p, &q, &mut w).unwrap();
    }
    w.set_metadata("format", "pt");
    w
}

#[test]
fn mxfp4_export_is_byte_exact() {
    let want = std::fs::read(data().join("mxfp4/model.safetensors")).unwrap();
    assert_same_bytes(
        &export().to_bytes().unwrap(),
        &want,
        "mxfp4 model.safetensors",
    );
    let cfg = QuantizationConfig::single(CtFormat::Mxfp4PackQuantized, QuantArgs::mxfp4(), None);
    assert_eq!(
        cfg.to_config_string(),
        std::fs::read_to_string(data().join("mxfp4/config.json")).unwrap(),
        "mxfp4 config.json"
    );
}

#[test]
fn mxfp4_import_matches_the_package_dequant_and_reexports() {
    let m = CompressedModel::open(data().join("mxfp4")).unwrap();
    let g = &m.config().groups[0];
    assert_eq!(g.format, CtFormat::Mxfp4PackQuantized);
    assert_eq!(g.weights.as_ref(), Some(&QuantArgs::mxfp4()));
    assert_eq!(g.weights.as_ref().unwrap().strategy, Strategy::Group);
    let digests: Value = serde_json::from_str(
        &std::fs::read_to_string(data().join("dequant_digests.json")).unwrap(),
    )
    .unwrap();
    let mut w = SafetensorsWriter::new();
    for p in MODULES {
        assert_eq!(m.modules()[p], ModuleKind::Mxfp4, "{p}");
        // The package's decompression is exact in f32 here (powers of two
        // times E2M1 values), so the digests compare without rounding.
        let (r, c, v) = m.decompress(p).unwrap();
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let want = &digests["mxfp4"][format!("{p}.weight")];
        assert_eq!(want["shape"], serde_json::json!([r, c]), "{p}: shape");
        assert_eq!(
            want["fnv1a64"].as_str().unwrap(),
            fnv1a64(&bytes),
            "{p}: dequant"
        );
        let q = m.quantized_matrix(p).unwrap();
        assert_eq!(q.to_dense().into_raw_vec_and_offset().0, v, "{p}: matrix");
        write_mxfp4(p, &q, &mut w).unwrap();
    }
    w.set_metadata("format", "pt");
    let want = std::fs::read(data().join("mxfp4/model.safetensors")).unwrap();
    assert_same_bytes(&w.to_bytes().unwrap(), &want, "mxfp4 re-export");
}

#[test]
fn mxfp4_folder_round_trip() {
    let dir = std::env::temp_dir().join(format!("shrink-ct-mxfp4-{}", std::process::id()));
    let cfg = QuantizationConfig::single(CtFormat::Mxfp4PackQuantized, QuantArgs::mxfp4(), None);
    write_folder(&dir, &mut export(), &cfg).unwrap();
    let m = CompressedModel::open(&dir).unwrap();
    assert_eq!(m.config(), &cfg);
    for (p, r, c, v) in input() {
        let (rr, cc, d) = m.decompress(&p).unwrap();
        assert_eq!((rr, cc), (r, c));
        let q = quantize_mxfp4(&v, r, c).unwrap();
        assert_eq!(q.to_dense().into_raw_vec_and_offset().0, d);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn mxfp4_scale_rule() {
    // Values measured with compressed-tensors 0.20.0's calculate_qparams +
    // compress_mx_scale: amax 0 -> 0, 1e-30 -> 25, 1.75 -> 126 (rounded up
    // to 2), 1.74 -> 125, a subnormal 1e-45 -> 0.
    assert_eq!(mxfp4_scale_code(0.0), 0);
    assert_eq!(mxfp4_scale_code(1e-30), 25);
    assert_eq!(mxfp4_scale_code(1.75), 126);
    assert_eq!(mxfp4_scale_code(1.74), 125);
    assert_eq!(mxfp4_scale_code(1e-45), 0);
    assert_eq!(mxfp4_scale_code(6.0), 127); // 6 = 1.5 * 4 rounds down to 4
    assert_eq!(mxfp4_scale_code(14.0), 129); // 14 = 1.75 * 8 rounds up to 16
    // Codes round to nearest even on the E2M1 grid and saturate at 6.
    let mut w = vec![0f32; 32];
    w[..11].copy_from_slice(&[
        0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.25, -0.1, 6.5, -6.5,
    ]);
    // amax 6.5 -> scale byte 127 (scale 1).
    let q = quantize_mxfp4(&w, 1, 32).unwrap();
    assert_eq!(q.params()[0].raw_scale, 127);
    let d = q.to_dense().into_raw_vec_and_offset().0;
    let want: [f32; 11] = [0.0, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, -0.0, -0.0, 6.0, -6.0];
    for (k, (&g, &e)) in d.iter().zip(&want).enumerate() {
        assert_eq!(g.to_bits(), e.to_bits(), "value {k}: {g}");
    }
}

#[test]
fn mxfp4_bad_inputs_are_typed_errors() {
    let w = vec![0.5f32; 4 * 48];
    assert!(matches!(
        quantize_mxfp4(&w, 4, 48),
        Err(Error::InvalidArgument { .. })
    ));
    let nv = quantize_nvfp4(&w, 4, 48).unwrap();
    let mut st = SafetensorsWriter::new();
    assert!(matches!(
        write_mxfp4("x", &nv, &mut st),
        Err(Error::InvalidArgument { .. })
    ));
    // A folder whose scale tensor has the wrong shape is a File error.
    let q = quantize_mxfp4(&vec![0.5f32; 2 * 64], 2, 64).unwrap();
    let mut st = SafetensorsWriter::new();
    write_mxfp4("m", &q, &mut st).unwrap();
    st.add_raw(
        "m2.weight_packed",
        shrink_pack::safetensors_io::Dtype::U8,
        &[2, 32],
        vec![0; 64],
    )
    .unwrap();
    st.add_raw(
        "m2.weight_scale",
        shrink_pack::safetensors_io::Dtype::U8,
        &[2, 3],
        vec![127; 6],
    )
    .unwrap();
    let dir = std::env::temp_dir().join(format!("shrink-ct-mxfp4-bad-{}", std::process::id()));
    let cfg = QuantizationConfig::single(CtFormat::Mxfp4PackQuantized, QuantArgs::mxfp4(), None);
    write_folder(&dir, &mut st, &cfg).unwrap();
    let m = CompressedModel::open(&dir).unwrap();
    assert!(m.decompress("m").is_ok());
    assert!(matches!(m.decompress("m2"), Err(Error::File { .. })));
    std::fs::remove_dir_all(&dir).ok();
}
