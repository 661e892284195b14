//! Importance-weighted GGUF quantization (ggml's `quant_weights` path):
//! golden vectors from ggml's C code (`tests/data/gguf_imatrix`, see its
//! README), the all-ones case, the `gguf:<type>:imatrix` compressor and its
//! errors.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use shrink_core::{Compressor, Context, Error, LayerStats, Objective, Reconstruct, StageSpec};
use shrink_pack::gguf::compress::importance;
use shrink_pack::gguf::{GgufMatrix, GgufQuant, GgufType, quantize, quantize_weighted};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gguf_imatrix")
}

fn read_f32(p: &Path) -> Vec<f32> {
    std::fs::read(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `(type, case, cols)` of every manifest entry.
fn entries() -> Vec<(String, String, usize)> {
    let text = std::fs::read_to_string(dir().join("manifest.json")).unwrap();
    let field = |line: &str, key: &str| -> String {
        let pat = format!("\"{key}\": ");
        let rest = &line[line.find(&pat).unwrap() + pat.len()..];
        let rest = rest.trim_start_matches('"');
        let end = rest.find(['"', ',', '}']).unwrap();
        rest[..end].to_string()
    };
    text.lines()
        .filter(|l| l.contains("\"type\""))
        .map(|l| {
            (
                field(l, "type"),
                field(l, "case"),
                field(l, "cols").parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn golden_vectors_from_ggml_match_byte_for_byte() {
    let mut per_type = std::collections::BTreeMap::<String, usize>::new();
    let mut failures = Vec::new();
    for (ty, case, cols) in entries() {
        let t: GgufType = ty.parse().unwrap();
        let base = dir().join(&ty);
        let x = read_f32(&base.join(format!("{case}.input.f32")));
        let qw = read_f32(&base.join(format!("{case}.imatrix.f32")));
        let want = std::fs::read(base.join(format!("{case}.bin"))).unwrap();
        let got = quantize_weighted(t, &x, cols, &qw).unwrap();
        assert_eq!(got.len(), want.len(), "{ty}/{case}: length");
        let diff = got.iter().zip(&want).position(|(a, b)| a != b);
        if let Some(d) = diff {
            failures.push(format!(
                "{ty}/{case}: first differing byte {d} (block {}, offset {})",
                d / t.type_size(),
                d % t.type_size()
            ));
        }
        *per_type.entry(ty).or_default() += 1;
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // Every type that takes importance is covered by three cases.
    for t in GgufType::ALL.into_iter().filter(|t| t.takes_importance()) {
        assert_eq!(per_type.get(t.name()), Some(&3), "{t}");
    }
    assert_eq!(per_type.len(), 11);
}

/// What holds with uniform importance: our weighted quantizer equals ggml's
/// weighted path with all-ones `quant_weights` (the `ones` vectors above),
/// and that path is a different quantizer from ggml's reference path for
/// every type (different weights and searches), so the bytes differ.
#[test]
fn all_ones_importance_is_ggmls_weighted_path_not_the_reference() {
    for t in GgufType::ALL.into_iter().filter(|t| t.takes_importance()) {
        let base = dir().join(t.name());
        let x = read_f32(&base.join("ones.input.f32"));
        let qw = read_f32(&base.join("ones.imatrix.f32"));
        assert!(qw.iter().all(|&v| v == 1.0));
        let want = std::fs::read(base.join("ones.bin")).unwrap();
        let weighted = quantize_weighted(t, &x, qw.len(), &qw).unwrap();
        assert_eq!(weighted, want, "{t}");
        let reference = quantize(t, &x).unwrap();
        assert_ne!(weighted, reference, "{t}: weighted(ones) == reference");
    }
}

#[test]
fn types_without_importance_and_bad_inputs_are_typed_errors() {
    let x = vec![0.5f32; 256];
    let ones = vec![1.0f32; 256];
    for t in [
        GgufType::Q8_0,
        GgufType::MXFP4,
        GgufType::TQ1_0,
        GgufType::F16,
    ] {
        assert!(!t.takes_importance());
        assert!(matches!(
            quantize_weighted(t, &x, 256, &ones),
            Err(Error::InvalidArgument { .. })
        ));
    }
    let t = GgufType::Q4_K;
    assert!(matches!(
        quantize_weighted(t, &x, 256, &ones[..255]),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        quantize_weighted(t, &x[..128], 128, &ones[..128]),
        Err(Error::Shape { .. })
    ));
    let mut bad = ones.clone();
    bad[3] = -1.0;
    assert!(matches!(
        quantize_weighted(t, &x, 256, &bad),
        Err(Error::InvalidArgument { .. })
    ));
    bad[3] = f32::NAN;
    assert!(matches!(
        quantize_weighted(t, &x, 256, &bad),
        Err(Error::InvalidArgument { .. })
    ));
    let mut xn = x.clone();
    xn[9] = f32::INFINITY;
    assert!(matches!(
        quantize_weighted(t, &xn, 256, &ones),
        Err(Error::NonFinite { .. })
    ));
}

/// A layer whose inputs have very unequal scales (a few loud channels), as
/// real activations do.
fn layer(rows: usize, cols: usize, tokens: usize, seed: u64) -> (Array2<f32>, LayerStats) {
    let mut rng = StdRng::seed_from_u64(seed);
    let w = Array2::from_shape_fn((rows, cols), |_| {
        let v: f32 = rng.sample(StandardNormal);
        0.05 * v
    });
    let gain: Vec<f32> = (0..cols)
        .map(|_| {
            let g: f32 = rng.sample(StandardNormal);
            (1.5 * g).exp()
        })
        .collect();
    let x = Array2::from_shape_fn((tokens, cols), |(_, j)| {
        let v: f32 = rng.sample(StandardNormal);
        v * gain[j]
    });
    let mut s = LayerStats::new(cols).unwrap();
    s.observe(x.view()).unwrap();
    (w, s)
}

#[test]
fn imatrix_recipe_uses_diag_h_over_count_and_lowers_output_error() {
    let (w, stats) = layer(64, 512, 2048, 11);
    let imp = importance(&stats).unwrap();
    let count = stats.count() as f64;
    for (j, v) in imp.iter().enumerate() {
        assert_eq!(*v, (stats.gram()[(j, j)] / count) as f32);
    }
    let ctx = Context::with_stats(&stats);
    for t in GgufType::ALL.into_iter().filter(|t| t.takes_importance()) {
        let q = GgufQuant::from_stage(
            &format!("gguf:{}:imatrix", t.name())
                .parse::<StageSpec>()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            q.recipe(),
            format!("gguf:{}:imatrix", t.name().to_lowercase())
        );
        let c = q.compress(w.view(), &ctx).unwrap();
        let m = c.downcast_ref::<GgufMatrix>().unwrap();
        let flat: Vec<f32> = w.iter().copied().collect();
        assert_eq!(
            m.bytes(),
            &quantize_weighted(t, &flat, 512, &imp).unwrap()[..],
            "{t}"
        );
        assert_eq!(c.storage().bits_per_weight(), t.bits_per_weight());
        let plain = GgufQuant::new(t).compress(w.view(), &ctx).unwrap();
        let e_plain = Objective::Output
            .relative(w.view(), plain.to_dense().view(), Some(&stats))
            .unwrap();
        let e_imx = Objective::Output
            .relative(w.view(), c.to_dense().view(), Some(&stats))
            .unwrap();
        assert!(
            e_imx < e_plain,
            "{t}: imatrix {e_imx} not below reference {e_plain}"
        );
    }
}

#[test]
fn imatrix_recipe_errors() {
    let part = |text: &str| match GgufQuant::from_stage(&text.parse::<StageSpec>().unwrap()) {
        Err(Error::Recipe { part, .. }) => part,
        other => panic!("{text}: expected a recipe error, got {other:?}"),
    };
    assert_eq!(part("gguf:q8_0:imatrix"), "imatrix");
    assert_eq!(part("gguf:mxfp4:imatrix"), "imatrix");
    assert_eq!(part("gguf:q4_k:imatrix:imatrix"), "imatrix");
    let (w, stats) = layer(4, 256, 16, 12);
    let q = GgufQuant::from_stage(&"gguf:q4_k:imatrix".parse::<StageSpec>().unwrap()).unwrap();
    // Data-aware: no statistics is a statistics error.
    assert!(matches!(
        q.compress(w.view(), &Context::default()),
        Err(Error::Stats { .. })
    ));
    // Statistics of another width.
    let other = LayerStats::identity(512, 4).unwrap();
    assert!(matches!(
        q.compress(w.view(), &Context::with_stats(&other)),
        Err(Error::Shape { .. })
    ));
    assert!(q.compress(w.view(), &Context::with_stats(&stats)).is_ok());
}
