//! Agreement with the NumPy/SciPy reference `shared/peers/lowrank_ref.py`
//! on the repository's real-layer fixture (all-MiniLM-L6-v2 layer 0
//! attention.self.key, tests/data/README.md), through the recipe stages with
//! f32 factors and with the default f16 factors.

mod common;

use common::*;
use shrink_core::{Compressor, Context, Objective, Pipeline, Reconstruct, StageSpec};
use shrink_lowrank::LowRank;
use shrink_quant::Rtn;

/// (recipe, rank, relative output error, relative Fisher error) from
/// `python lowrank_ref.py minilm_l6_layer0_key.safetensors --rank {32,64} --json`.
const ALONE: &[(&str, f64, Option<f64>)] = &[
    ("svd:r32", 0.2930813594818479, Some(0.5313519618269388)),
    ("svd-llm:r32", 0.17888883863916297, None),
    ("qera:r32", 0.17888883863916294, None),
    ("asvd:r32", 0.2678702428379436, None),
    ("fwsvd:r32", 0.4481228326388407, Some(0.4219914406889387)),
    (
        "fwsvd:r32:col",
        0.29045708555060823,
        Some(0.4972012028141803),
    ),
    ("svd:r64", 0.16623324501222816, Some(0.3197540370132793)),
    ("svd-llm:r64", 0.09231115432515402, None),
    ("qera:r64", 0.09231115432515401, None),
    ("asvd:r64", 0.15511564095779237, None),
    ("fwsvd:r64", 0.2231084283852563, Some(0.23090399403144493)),
    ("fwsvd:r64:col", 0.1719746511982781, Some(0.28517848113889)),
];

/// (compensation stage after rtn:int3:g128:asym, output error), rank 32 and 64.
const COMPENSATED: &[(&str, f64)] = &[
    ("lorc:r32", 0.019240089390810584),
    ("lqer:r32", 0.018029964392161764),
    ("qera-approx:r32", 0.017750434792992913),
    ("qera:r32", 0.012925671779047512),
    ("lorc:r64", 0.013601833681258673),
    ("lqer:r64", 0.012538384040826281),
    ("qera-approx:r64", 0.012352053542876206),
    ("qera:r64", 0.0073901735001305445),
];

fn stage(text: &str) -> LowRank {
    let s: StageSpec = text.parse().unwrap();
    LowRank::from_stage(&s).unwrap()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b
}

#[test]
fn closed_forms_match_the_reference() {
    let (w, stats) = fixture();
    let ctx = Context::with_stats(&stats);
    for &(recipe, out_ref, fisher_ref) in ALONE {
        for (suffix, tol) in [(":f32", 1e-6), ("", 2e-3)] {
            let c = stage(&format!("{recipe}{suffix}"))
                .compress(w.view(), &ctx)
                .unwrap();
            let d = c.to_dense();
            let out = Objective::Output
                .relative(w.view(), d.view(), Some(&stats))
                .unwrap();
            assert!(
                rel(out, out_ref) < tol,
                "{recipe}{suffix}: output error {out} vs {out_ref}"
            );
            if let Some(f) = fisher_ref {
                let fe = Objective::Fisher
                    .relative(w.view(), d.view(), Some(&stats))
                    .unwrap();
                assert!(
                    rel(fe, f) < tol,
                    "{recipe}{suffix}: Fisher error {fe} vs {f}"
                );
            }
        }
    }
}

#[test]
fn compensation_matches_the_reference() {
    let (w, stats) = fixture();
    let ctx = Context::with_stats(&stats);
    for &(recipe, out_ref) in COMPENSATED {
        for (suffix, tol) in [(":f32", 1e-5), ("", 2e-3)] {
            let p = Pipeline::new(Rtn::from_stage(&"rtn:int3:g128:asym".parse().unwrap()).unwrap())
                .then(stage(&format!("{recipe}{suffix}")));
            let c = p.compress(w.view(), &ctx).unwrap();
            let out = Objective::Output
                .relative(w.view(), c.to_dense().view(), Some(&stats))
                .unwrap();
            assert!(
                rel(out, out_ref) < tol,
                "rtn+{recipe}{suffix}: {out} vs {out_ref}"
            );
        }
    }
}

#[test]
fn storage_is_counted_exactly() {
    let (w, stats) = fixture();
    let ctx = Context::with_stats(&stats);
    for (recipe, bytes_per_value) in [("svd:r64", 2u64), ("svd:r64:f32", 4), ("svd:r64:bf16", 2)] {
        let c = stage(recipe).compress(w.view(), &ctx).unwrap();
        let s = c.storage();
        assert_eq!(
            s.bytes(),
            (384 * 64 + 64 * 384) * bytes_per_value,
            "{recipe}"
        );
        assert_eq!(s.weights, 384 * 384);
        assert_eq!(s.parts.len(), 2);
    }
    // ratio0.5 keeps floor(384*384*0.5/768) = 96 ranks: half the parameters.
    let c = stage("svd-llm:ratio0.5:f32")
        .compress(w.view(), &ctx)
        .unwrap();
    assert_eq!(c.storage().bytes(), 96 * 768 * 4);
}
