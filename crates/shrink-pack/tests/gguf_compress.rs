//! `gguf:<type>` compressors: bytes equal the golden-tested block functions,
//! reconstruction equals ggml's dequantization, exact storage, recipe text,
//! shape errors and pipeline composition.

use ndarray::{Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use shrink_core::{Compressor, Context, Error, Objective, Pipeline, Reconstruct, StageSpec};
use shrink_pack::gguf::{GgufMatrix, GgufQuant, GgufType, dequantize, quantize};

fn gaussian(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| {
        let v: f32 = rng.sample(StandardNormal);
        0.05 * v
    })
}

fn flat(w: ArrayView2<'_, f32>) -> Vec<f32> {
    w.iter().copied().collect()
}

fn stage(text: &str) -> StageSpec {
    text.parse().unwrap()
}

#[test]
fn every_type_is_a_compressor_with_ggml_bytes() {
    let w = gaussian(5, 512, 1);
    let x = gaussian(7, 512, 2);
    for t in GgufType::ALL {
        let q = GgufQuant::new(t);
        let c = q.compress(w.view(), &Context::default()).unwrap();
        let m = c.downcast_ref::<GgufMatrix>().expect("a GgufMatrix");
        assert_eq!(m.gguf_type(), t);
        let want = quantize(t, &flat(w.view())).unwrap();
        assert_eq!(m.bytes(), &want[..], "{t}: bytes");
        // Reconstruction is ggml's dequantization, bit for bit.
        let deq = dequantize(t, &want, w.len()).unwrap();
        let dense = c.to_dense();
        assert_eq!(dense.shape(), &[5, 512]);
        assert!(
            dense
                .iter()
                .zip(&deq)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{t}: to_dense"
        );
        // Each row's bytes are the row quantized on its own.
        let r1 = quantize(t, &flat(w.row(1).insert_axis(ndarray::Axis(0)))).unwrap();
        assert_eq!(m.row_bytes(1), &r1[..], "{t}: row bytes");
        // Storage is exactly the block bytes.
        let s = c.storage();
        assert_eq!(s.bytes(), want.len() as u64, "{t}: storage bytes");
        assert_eq!(s.bits_per_weight(), t.bits_per_weight(), "{t}: bits/weight");
        // The fused forward equals x W'^T.
        let y = c.forward(x.view()).unwrap();
        let y_ref = x.dot(&dense.t());
        let scale = y_ref.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let err = y
            .iter()
            .zip(y_ref.iter())
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err <= 1e-5 * scale, "{t}: forward differs by {err}");
        // The compressor prints its recipe back.
        let r = q.recipe();
        assert_eq!(r, format!("gguf:{}", t.name().to_lowercase()));
        assert_eq!(GgufQuant::from_stage(&stage(&r)).unwrap(), q);
    }
}

#[test]
fn bits_per_weight_are_ggmls() {
    let w = gaussian(2, 256, 3);
    for (t, bpw) in [
        (GgufType::Q4_0, 4.5),
        (GgufType::Q4_1, 5.0),
        (GgufType::Q5_0, 5.5),
        (GgufType::Q5_1, 6.0),
        (GgufType::Q8_0, 8.5),
        (GgufType::Q2_K, 2.625),
        (GgufType::Q3_K, 3.4375),
        (GgufType::Q4_K, 4.5),
        (GgufType::Q5_K, 5.5),
        (GgufType::Q6_K, 6.5625),
        (GgufType::IQ4_NL, 4.5),
        (GgufType::IQ4_XS, 4.25),
        (GgufType::TQ1_0, 1.6875),
        (GgufType::TQ2_0, 2.0625),
        (GgufType::MXFP4, 4.25),
        (GgufType::F16, 16.0),
        (GgufType::BF16, 16.0),
    ] {
        let c = GgufQuant::new(t)
            .compress(w.view(), &Context::default())
            .unwrap();
        assert_eq!(c.storage().bits_per_weight(), bpw, "{t}");
    }
}

#[test]
fn rows_that_are_not_whole_blocks_are_a_typed_error() {
    let w = gaussian(4, 384, 4);
    // 384 = 12 * 32: legacy types work, 256-value super-blocks do not.
    assert!(
        GgufQuant::new(GgufType::Q4_0)
            .compress(w.view(), &Context::default())
            .is_ok()
    );
    for t in [
        GgufType::Q4_K,
        GgufType::Q6_K,
        GgufType::IQ4_XS,
        GgufType::TQ2_0,
    ] {
        match GgufQuant::new(t).compress(w.view(), &Context::default()) {
            Err(e @ Error::Shape { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(t.name()), "{msg}");
                assert!(msg.contains("256"), "{msg}");
                assert!(msg.contains("384"), "{msg}");
            }
            other => panic!("{t}: expected a shape error, got {other:?}"),
        }
    }
    let w = gaussian(4, 48, 5);
    match GgufQuant::new(GgufType::Q8_0).compress(w.view(), &Context::default()) {
        Err(e @ Error::Shape { .. }) => assert!(e.to_string().contains("32")),
        other => panic!("expected a shape error, got {other:?}"),
    }
    let empty = Array2::<f32>::zeros((0, 64));
    assert!(matches!(
        GgufQuant::new(GgufType::Q8_0).compress(empty.view(), &Context::default()),
        Err(Error::Empty { .. })
    ));
}

#[test]
fn non_finite_weights_are_a_typed_error() {
    let mut w = gaussian(2, 64, 6);
    w[(1, 7)] = f32::NAN;
    assert!(matches!(
        GgufQuant::new(GgufType::Q4_0).compress(w.view(), &Context::default()),
        Err(Error::NonFinite { .. })
    ));
}

#[test]
fn from_bytes_checks_lengths() {
    let w = gaussian(3, 64, 7);
    let m = GgufMatrix::quantize(GgufType::Q4_0, w.view()).unwrap();
    let b = m.bytes().to_vec();
    let again = GgufMatrix::from_bytes(GgufType::Q4_0, 3, 64, b.clone()).unwrap();
    assert_eq!(again, m);
    assert!(matches!(
        GgufMatrix::from_bytes(GgufType::Q4_0, 3, 64, b[..b.len() - 1].to_vec()),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        GgufMatrix::from_bytes(GgufType::Q4_0, 3, 48, b),
        Err(Error::Shape { .. })
    ));
    let x = gaussian(2, 63, 8);
    assert!(matches!(m.forward(x.view()), Err(Error::Shape { .. })));
}

#[test]
fn recipe_errors_name_the_bad_part() {
    let part = |text: &str| match GgufQuant::from_stage(&stage(text)) {
        Err(Error::Recipe { part, .. }) => part,
        other => panic!("{text}: expected a recipe error, got {other:?}"),
    };
    assert_eq!(part("gguf"), "gguf");
    assert_eq!(part("gguf:q9_9"), "q9_9");
    assert_eq!(part("gguf:q4_0:bogus"), "bogus");
    assert_eq!(part("rtn:q4_0"), "rtn");
    // Type names are case-insensitive and printed in lower case.
    let q = GgufQuant::from_stage(&stage("gguf:Q4_K")).unwrap();
    assert_eq!(q.recipe(), "gguf:q4_k");
}

#[test]
fn composes_in_pipelines() {
    let w = gaussian(8, 256, 9);
    let alone = GgufQuant::new(GgufType::Q4_0)
        .compress(w.view(), &Context::default())
        .unwrap();
    // Residual: Q4_0, then Q8_0 of what Q4_0 missed.
    let p =
        Pipeline::new(GgufQuant::new(GgufType::Q4_0)).then_residual(GgufQuant::new(GgufType::Q8_0));
    assert_eq!(p.recipe(), "gguf:q4_0+gguf:q8_0");
    let c = p.compress(w.view(), &Context::default()).unwrap();
    let e1 = Objective::Frobenius
        .relative(w.view(), alone.to_dense().view(), None)
        .unwrap();
    let e2 = Objective::Frobenius
        .relative(w.view(), c.to_dense().view(), None)
        .unwrap();
    assert!(e2 < e1 / 100.0, "residual stage: {e2} vs {e1}");
    assert_eq!(c.storage().bytes(), 8 * 8 * (18 + 34));
    // After another quantizer the stage fits its residual just the same.
    let rtn = shrink_quant::Rtn::from_stage(&stage("rtn:int2:g64:asym")).unwrap();
    let p = Pipeline::new(rtn).then_residual(GgufQuant::new(GgufType::Q4_K));
    let c = p.compress(w.view(), &Context::default()).unwrap();
    let e3 = Objective::Frobenius
        .relative(w.view(), c.to_dense().view(), None)
        .unwrap();
    assert!(e3 < e1, "int2 + Q4_K residual {e3} vs Q4_0 {e1}");
}
