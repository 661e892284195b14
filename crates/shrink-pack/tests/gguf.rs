//! Golden-vector, round-trip and error tests for `shrink_pack::gguf`.
//!
//! The vectors in `tests/data/gguf` were made with ggml's C reference
//! quantizers and llama.cpp's gguf-py (see `tests/data/gguf/README.md`);
//! every manifest entry of every exported type must match byte for byte
//! (quantize) and bit for bit (dequantize). `tests/data/gguf_dequant` holds
//! decode-only vectors of pseudo-random blocks.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use shrink_core::Error;
use shrink_pack::gguf::{GgufType, dequantize, quantize};

fn data_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
        .join(name)
}

/// The values of every `"key": "value"` string field named `key`, in order.
fn string_fields(text: &str, key: &str) -> Vec<String> {
    let pat = format!("\"{key}\": \"");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(p) = rest.find(&pat) {
        rest = &rest[p + pat.len()..];
        let end = rest.find('"').expect("unterminated string in manifest");
        out.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    out
}

/// `(type, case)` of every entry of a manifest.
fn manifest_entries(dir: &Path, case_key: Option<&str>) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
    let types = string_fields(&text, "type");
    match case_key {
        Some(k) => {
            let cases = string_fields(&text, k);
            assert_eq!(types.len(), cases.len(), "manifest parse");
            types.into_iter().zip(cases).collect()
        }
        None => types.into_iter().map(|t| (t, "random".into())).collect(),
    }
}

fn read_f32(p: &Path) -> Vec<f32> {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Checks every golden entry of type `name`; returns the number of entries.
fn check_golden(name: &str) -> usize {
    check_golden_in(&data_dir("gguf"), name)
}

/// Checks every entry of type `name` in the vector directory `dir` (same
/// layout as `tests/data/gguf`: `manifest.json` with `type` and `case`,
/// `<TYPE>/<case>.{input.f32,bin,dequant.f32}`).
fn check_golden_in(dir: &Path, name: &str) -> usize {
    let t = GgufType::from_str(name).unwrap();
    let mut count = 0;
    for (ty, case) in manifest_entries(dir, Some("case")) {
        if ty != name {
            continue;
        }
        let base = dir.join(&ty);
        let input = read_f32(&base.join(format!("{case}.input.f32")));
        let want_bin = std::fs::read(base.join(format!("{case}.bin"))).unwrap();
        let want_deq = read_f32(&base.join(format!("{case}.dequant.f32")));
        let got_bin = quantize(t, &input).unwrap();
        assert_eq!(got_bin.len(), want_bin.len(), "{ty}/{case}: length");
        let diff = got_bin.iter().zip(&want_bin).position(|(a, b)| a != b);
        assert!(
            diff.is_none(),
            "{ty}/{case}: first differing byte {} (block {})",
            diff.unwrap_or(0),
            diff.unwrap_or(0) / t.type_size()
        );
        let got_deq = dequantize(t, &want_bin, input.len()).unwrap();
        assert_eq!(bits(&got_deq), bits(&want_deq), "{ty}/{case}: dequant bits");
        count += 1;
    }
    count
}

/// Checks the decode-only vector of type `name`, if there is one.
fn check_decode_only(name: &str) -> usize {
    let t = GgufType::from_str(name).unwrap();
    let dir = data_dir("gguf_dequant");
    let mut count = 0;
    for (ty, _) in manifest_entries(&dir, None) {
        if ty != name {
            continue;
        }
        let bin = std::fs::read(dir.join(&ty).join("random.bin")).unwrap();
        let want = read_f32(&dir.join(&ty).join("random.dequant.f32"));
        let got = dequantize(t, &bin, want.len()).unwrap();
        assert_eq!(bits(&got), bits(&want), "{ty}/random: dequant bits");
        count += 1;
    }
    count
}

macro_rules! golden {
    ($($test:ident => $name:literal, $n:expr, $nd:expr;)*) => {$(
        #[test]
        fn $test() {
            assert_eq!(check_golden($name), $n, "{} golden entries", $name);
            assert_eq!(check_decode_only($name), $nd, "{} decode-only entries", $name);
        }
    )*};
}

golden! {
    golden_f16 => "F16", 3, 0;
    golden_bf16 => "BF16", 3, 0;
    golden_q4_0 => "Q4_0", 3, 1;
    golden_q4_1 => "Q4_1", 3, 1;
    golden_q5_0 => "Q5_0", 3, 1;
    golden_q5_1 => "Q5_1", 3, 1;
    golden_q8_0 => "Q8_0", 3, 1;
    golden_q2_k => "Q2_K", 3, 1;
    golden_q3_k => "Q3_K", 3, 1;
    golden_q4_k => "Q4_K", 3, 1;
    golden_q5_k => "Q5_K", 3, 1;
    golden_q6_k => "Q6_K", 3, 1;
    golden_q8_k => "Q8_K", 3, 0;
    golden_iq4_nl => "IQ4_NL", 3, 1;
    golden_iq4_xs => "IQ4_XS", 3, 1;
    golden_tq1_0 => "TQ1_0", 3, 1;
    golden_tq2_0 => "TQ2_0", 3, 1;
    golden_mxfp4 => "MXFP4", 3, 1;
}

/// Runs the golden check on an extra vector directory named by the
/// environment variable `SHRINK_GGUF_VECTORS` (for example vectors made from
/// fresh inputs with a local build of ggml's C reference); skipped when unset.
#[test]
fn extra_vectors_from_env() {
    let Some(dir) = std::env::var_os("SHRINK_GGUF_VECTORS") else {
        eprintln!("SHRINK_GGUF_VECTORS not set: skipping extra GGUF vectors");
        return;
    };
    let dir = PathBuf::from(dir);
    let mut total = 0;
    for t in GgufType::ALL {
        let n = check_golden_in(&dir, t.name());
        eprintln!("{}: {n} extra entries equal", t.name());
        total += n;
    }
    assert!(
        total > 0,
        "no entries of exported types in {}",
        dir.display()
    );
}

#[test]
fn every_manifest_type_is_covered() {
    // Every type in the golden manifest is either exported (and checked
    // above) or listed here as not implemented.
    let not_implemented: [&str; 0] = [];
    for (ty, _) in manifest_entries(&data_dir("gguf"), Some("case")) {
        assert!(
            GgufType::from_str(&ty).is_ok() || not_implemented.contains(&ty.as_str()),
            "{ty} neither exported nor listed"
        );
    }
}

#[test]
fn type_table() {
    for t in GgufType::ALL {
        assert_eq!(GgufType::from_id(t.id()), Some(t));
        assert_eq!(t.name().parse::<GgufType>().unwrap(), t);
        assert_eq!(t.name().to_lowercase().parse::<GgufType>().unwrap(), t);
        assert_eq!(t.to_string(), t.name());
        assert!(t.type_size() > 0 && t.block_size() > 0);
    }
    assert_eq!(GgufType::Q4_K.bits_per_weight(), 4.5);
    assert_eq!(GgufType::TQ1_0.bits_per_weight(), 1.6875);
    assert!(matches!(
        "Q9_9".parse::<GgufType>(),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(GgufType::from_id(9), None);
}

fn gaussian(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| rng.sample::<f32, _>(StandardNormal) * scale)
        .collect()
}

/// Relative RMS error bound per type for Gaussian input.
fn rel_rmse_bound(t: GgufType) -> f64 {
    match t {
        GgufType::F16 | GgufType::BF16 => 0.01,
        GgufType::Q8_0 | GgufType::Q8_K => 0.02,
        GgufType::Q6_K => 0.03,
        GgufType::Q5_0 | GgufType::Q5_1 | GgufType::Q5_K => 0.08,
        GgufType::Q4_0
        | GgufType::Q4_1
        | GgufType::Q4_K
        | GgufType::IQ4_NL
        | GgufType::IQ4_XS
        | GgufType::MXFP4 => 0.16,
        GgufType::Q3_K => 0.3,
        GgufType::Q2_K => 0.5,
        GgufType::TQ1_0 | GgufType::TQ2_0 => 1.0,
    }
}

#[test]
fn round_trips_are_close_and_stable() {
    for t in GgufType::ALL {
        for (seed, scale) in [(7u64, 1.0f32), (8, 1e-3), (9, 300.0)] {
            let x = gaussian(2 * 256, seed, scale);
            let bytes = quantize(t, &x).unwrap();
            assert_eq!(bytes.len(), 2 * 256 / t.block_size() * t.type_size());
            let y = dequantize(t, &bytes, x.len()).unwrap();
            let err: f64 = x
                .iter()
                .zip(&y)
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum::<f64>();
            let norm: f64 = x.iter().map(|a| f64::from(*a).powi(2)).sum();
            let rel = (err / norm).sqrt();
            assert!(rel < rel_rmse_bound(t), "{t} scale {scale}: rel rmse {rel}");
            // Deterministic.
            assert_eq!(quantize(t, &x).unwrap(), bytes, "{t}");
        }
        // All zeros stay zeros.
        let z = vec![0.0f32; 256];
        let y = dequantize(t, &quantize(t, &z).unwrap(), 256).unwrap();
        assert!(y.iter().all(|v| *v == 0.0), "{t}: zeros");
    }
}

#[test]
fn exact_grid_values_survive() {
    // Values already on a Q8_0 grid come back exactly.
    let x: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) * 0.25).collect();
    let y = dequantize(GgufType::Q8_0, &quantize(GgufType::Q8_0, &x).unwrap(), 32).unwrap();
    let d = half::f16::from_f32(4.0 / 127.0).to_f32();
    for (a, b) in x.iter().zip(&y) {
        assert!((a - b).abs() <= d / 2.0 + 1e-6);
    }
    // BF16 and F16 keep representable values exactly.
    let x = [1.0f32, -2.5, 0.0, 65504.0, 6.103_515_6e-5];
    for t in [GgufType::F16, GgufType::BF16] {
        let y = dequantize(t, &quantize(t, &x).unwrap(), x.len()).unwrap();
        assert_eq!(&y[..3], &x[..3], "{t}");
    }
}

#[test]
fn errors_are_typed() {
    for t in GgufType::ALL {
        let bs = t.block_size();
        if bs > 1 {
            assert!(
                matches!(
                    quantize(t, &vec![0.0; bs + 1]),
                    Err(Error::InvalidArgument { .. })
                ),
                "{t}"
            );
            assert!(
                matches!(
                    dequantize(t, &[], bs - 1),
                    Err(Error::InvalidArgument { .. })
                ),
                "{t}"
            );
        }
        let mut x = vec![1.0f32; bs];
        x[bs - 1] = f32::NAN;
        assert!(
            matches!(quantize(t, &x), Err(Error::NonFinite { .. })),
            "{t}"
        );
        x[bs - 1] = f32::INFINITY;
        assert!(
            matches!(quantize(t, &x), Err(Error::NonFinite { .. })),
            "{t}"
        );
        let good = quantize(t, &vec![0.5f32; bs]).unwrap();
        assert!(matches!(
            dequantize(t, &good[..good.len() - 1], bs),
            Err(Error::Corrupt { .. })
        ));
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            dequantize(t, &long, bs),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            dequantize(t, &good, 2 * bs),
            Err(Error::Corrupt { .. })
        ));
        // Empty input is zero blocks.
        assert!(quantize(t, &[]).unwrap().is_empty());
        assert!(dequantize(t, &[], 0).unwrap().is_empty());
    }
}

#[test]
fn random_bytes_decode_without_panicking() {
    let mut rng = StdRng::seed_from_u64(42);
    for t in GgufType::ALL {
        for _ in 0..64 {
            let bytes: Vec<u8> = (0..3 * t.type_size()).map(|_| rng.random()).collect();
            let y = dequantize(t, &bytes, 3 * t.block_size()).unwrap();
            assert_eq!(y.len(), 3 * t.block_size());
        }
    }
}
