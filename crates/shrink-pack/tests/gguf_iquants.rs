//! Decode-only GGUF types (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS,
//! IQ3_S, NVFP4): bit-exact against gguf-py 0.19.0 on the golden vectors in
//! `tests/data/gguf_dequant` (see its README), read through whole GGUF files,
//! and typed errors on bad lengths.

use std::path::{Path, PathBuf};

use shrink_core::Error;
use shrink_pack::gguf::iquants::{self, DecodeOnlyType};
use shrink_pack::gguf::{GgmlType, GgufFile, GgufWriter, MetaValue};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gguf_dequant")
}

fn read_f32(p: &Path) -> Vec<f32> {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `(bytes, want)` of the golden vector of `t`.
fn golden(t: DecodeOnlyType) -> (Vec<u8>, Vec<f32>) {
    let base = dir().join(t.name());
    let bin = std::fs::read(base.join("random.bin")).unwrap();
    let want = read_f32(&base.join("random.dequant.f32"));
    (bin, want)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn manifest_lists_every_decode_only_type_with_its_sizes() {
    let text = std::fs::read_to_string(dir().join("manifest.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let entries = v["entries"].as_array().unwrap();
    for t in DecodeOnlyType::ALL {
        let e = entries
            .iter()
            .find(|e| e["type"] == t.name())
            .unwrap_or_else(|| panic!("{t} missing from the manifest"));
        assert_eq!(e["type_id"].as_u64(), Some(u64::from(t.id())), "{t} id");
        assert_eq!(e["block_size"].as_u64(), Some(t.block_size() as u64));
        assert_eq!(e["type_size"].as_u64(), Some(t.type_size() as u64));
    }
}

#[test]
fn golden_vectors_bit_exact() {
    let mut checked = 0;
    for t in DecodeOnlyType::ALL {
        let (bin, want) = golden(t);
        assert_eq!(want.len(), 16 * t.block_size(), "{t}: vector length");
        assert_eq!(bin.len(), 16 * t.type_size(), "{t}: byte length");
        let got = iquants::dequantize(t, &bin, want.len()).unwrap();
        let first = bits(&got)
            .iter()
            .zip(bits(&want))
            .position(|(a, b)| *a != b);
        assert!(
            first.is_none(),
            "{t}: first differing value {:?} (got {}, want {})",
            first,
            got[first.unwrap_or(0)],
            want[first.unwrap_or(0)]
        );
        // The vectors exercise the sign and scale fields: values of both
        // signs and more than a handful of distinct magnitudes.
        assert!(got.iter().any(|v| *v > 0.0) && got.iter().any(|v| *v < 0.0));
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[test]
fn block_by_block_equals_whole_row() {
    for t in DecodeOnlyType::ALL {
        let (bin, want) = golden(t);
        for (b, w) in bin
            .chunks_exact(t.type_size())
            .zip(want.chunks_exact(t.block_size()))
        {
            let mut out = vec![f32::NAN; t.block_size()];
            iquants::dequantize_into(t, b, &mut out).unwrap();
            assert_eq!(bits(&out), bits(w), "{t}");
        }
    }
}

#[test]
fn gguf_file_reads_decode_only_tensors() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetaValue::String("test".into()))
        .unwrap();
    let mut expected = Vec::new();
    for t in DecodeOnlyType::ALL {
        let (bin, want) = golden(t);
        // 16 blocks as a 2 x (8 blocks) matrix: dims [8 * block, 2].
        let dims = [8 * t.block_size() as u64, 2];
        let name = format!("blk.{}.weight", t.name().to_lowercase());
        w.add_tensor_bytes(&name, &dims, GgmlType::DecodeOnly(t), bin.clone())
            .unwrap();
        expected.push((name, t, bin, want));
    }
    let tmp = std::env::temp_dir().join(format!("shrink-iquants-{}.gguf", std::process::id()));
    w.write_file(&tmp).unwrap();
    let file = GgufFile::open(&tmp).unwrap();
    assert_eq!(
        file.get("general.quantization_version")
            .and_then(|v| v.as_u64()),
        Some(2),
        "the writer adds the quantization version for block types"
    );
    for (name, t, bin, want) in expected {
        let info = file.tensor(&name).unwrap();
        assert_eq!(info.ggml_type(), GgmlType::DecodeOnly(t));
        assert_eq!(info.ggml_type().name(), t.name());
        assert_eq!(GgmlType::from_id(t.id()), Some(GgmlType::DecodeOnly(t)));
        assert_eq!(info.shape(), vec![2, 8 * t.block_size()]);
        assert_eq!(file.tensor_bytes(&name).unwrap(), &bin[..]);
        let got = file.tensor_f32(&name).unwrap();
        assert_eq!(bits(&got), bits(&want), "{name}");
    }
    std::fs::remove_file(&tmp).ok();
}

#[test]
fn gguf_file_type_table_ids() {
    // Every ggml id from 0 to 41 is either readable or refused; the ones
    // this crate reads now include all i-quants and NVFP4.
    let readable: Vec<u32> = (0..64)
        .filter(|&id| GgmlType::from_id(id).is_some())
        .collect();
    for id in [16, 17, 18, 19, 21, 22, 29, 40] {
        assert!(readable.contains(&id), "type id {id}");
    }
    // Q8_1 (9), the removed Q4_2/Q4_3 (4, 5), and ids past NVFP4 stay refused.
    for id in [4, 5, 9, 31, 41, 42] {
        assert!(GgmlType::from_id(id).is_none(), "type id {id}");
    }
}

#[test]
fn encoding_a_decode_only_type_is_a_typed_error() {
    for t in DecodeOnlyType::ALL {
        let x = vec![0.5f32; t.block_size()];
        let e = GgmlType::DecodeOnly(t).encode(&x).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{t}: {e}");
        let mut w = GgufWriter::new();
        let e = w
            .add_tensor_f32("w", &[1, t.block_size()], GgmlType::DecodeOnly(t), &x)
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{t}: {e}");
    }
}

#[test]
fn truncated_and_odd_lengths_are_typed_errors() {
    for t in DecodeOnlyType::ALL {
        let (bin, want) = golden(t);
        let n = want.len();
        // One byte short, one byte long, one block short.
        for len in [bin.len() - 1, bin.len() + 1, bin.len() - t.type_size()] {
            let mut b = bin.clone();
            b.resize(len, 0);
            let e = iquants::dequantize(t, &b, n).unwrap_err();
            assert!(matches!(e, Error::Corrupt { .. }), "{t} len {len}: {e}");
        }
        // A value count that is not a whole number of blocks.
        for odd in [n - 1, n + 1, t.block_size() / 2] {
            let e = iquants::dequantize(t, &bin, odd).unwrap_err();
            assert!(
                matches!(e, Error::InvalidArgument { .. }),
                "{t} n {odd}: {e}"
            );
        }
        // The same through GgmlType::decode.
        let e = GgmlType::DecodeOnly(t)
            .decode(&bin[..bin.len() - 1], n)
            .unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{t}: {e}");
        // Empty input decodes to nothing.
        assert!(iquants::dequantize(t, &[], 0).unwrap().is_empty());
    }
}

#[test]
fn truncated_gguf_file_with_iquant_tensor_is_corrupt() {
    let t = DecodeOnlyType::IQ2_XXS;
    let (bin, _) = golden(t);
    let mut w = GgufWriter::new();
    w.add_tensor_bytes("w", &[4096, 1], GgmlType::DecodeOnly(t), bin)
        .unwrap();
    let bytes = w.to_bytes().unwrap();
    let cut = bytes[..bytes.len() - 100].to_vec();
    let e = GgufFile::from_bytes(cut).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    // A row length that is not a whole number of IQ blocks.
    let mut w = GgufWriter::new();
    let e = w
        .add_tensor_bytes("w", &[128, 1], GgmlType::DecodeOnly(t), vec![0; 33])
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
}

#[test]
fn every_bit_pattern_decodes_without_panic() {
    // Deterministic pseudo-random blocks (xorshift), including all-0xFF.
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    for t in DecodeOnlyType::ALL {
        let mut b = vec![0u8; 64 * t.type_size()];
        for v in b.iter_mut() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *v = s as u8;
        }
        b[..t.type_size()].fill(0xff);
        let y = iquants::dequantize(t, &b, 64 * t.block_size()).unwrap();
        assert_eq!(y.len(), 64 * t.block_size());
    }
}

#[test]
fn gguf_py_written_file_decodes() {
    // Written by gguf-py's GGUFWriter (scripts/make_iq_gguf.py).
    let file = GgufFile::open(dir().join("iq_types.gguf")).unwrap();
    assert_eq!(file.tensors().len(), 8);
    for t in DecodeOnlyType::ALL {
        let name = format!("{}.weight", t.name().to_lowercase());
        let info = file.tensor(&name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(info.ggml_type(), GgmlType::DecodeOnly(t));
        assert_eq!(info.dims(), &[8 * t.block_size() as u64, 2]);
        let (_, want) = golden(t);
        assert_eq!(
            bits(&file.tensor_f32(&name).unwrap()),
            bits(&want),
            "{name}"
        );
    }
}
