//! Quantizing the stored factors of low-rank and dictionary forms in a
//! pipeline (`svd-llm:r64+rtn:int8:channel:sym`,
//! `cospadi:ratio0.5+rtn:int8:channel:sym`).

mod common;

use common::*;
use shrink_core::{Compressor, Context, Error, Objective, Pipeline, Reconstruct, StageSpec, Sum};
use shrink_lowrank::{CompressedLowRank, CompressedSparseDict, Cospadi, LowRank};
use shrink_quant::Rtn;

fn rtn(text: &str) -> Rtn {
    Rtn::from_stage(&text.parse::<StageSpec>().unwrap()).unwrap()
}

fn lowrank(text: &str) -> LowRank {
    LowRank::from_stage(&text.parse::<StageSpec>().unwrap()).unwrap()
}

fn check_forward(c: &dyn Reconstruct) {
    let x = correlated_inputs(17, c.shape().1, 0, 5);
    let y = c.forward(x.view()).unwrap();
    let yd = x.dot(&c.to_dense().t());
    let scale = yd.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = (&y - &yd).iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(diff <= 1e-4 * scale, "{diff} vs {scale}");
}

#[test]
fn low_rank_factors_are_quantized_in_place() {
    let (w, stats) = fixture();
    let ctx = Context::with_stats(&stats);
    let plain = lowrank("svd-llm:r64:f32").compress(w.view(), &ctx).unwrap();
    let p = Pipeline::new(lowrank("svd-llm:r64:f32")).then(rtn("rtn:int8:channel:sym"));
    assert_eq!(p.recipe(), "svd-llm:r64:f32+rtn:int8:channel:sym");
    let q = p.compress(w.view(), &ctx).unwrap();
    let form = q
        .downcast_ref::<CompressedLowRank>()
        .expect("factors were quantized");
    assert_eq!(form.a_t().shape(), (64, 384));
    assert_eq!(form.b_t().shape(), (384, 64));
    // int8 codes plus one f16 scale per row of each factor.
    assert_eq!(
        q.storage().bytes(),
        (64 * 384 + 64 * 2) + (384 * 64 + 384 * 2)
    );
    let e0 = Objective::Output
        .relative(w.view(), plain.to_dense().view(), Some(&stats))
        .unwrap();
    let e1 = Objective::Output
        .relative(w.view(), q.to_dense().view(), Some(&stats))
        .unwrap();
    assert!(
        e1 >= e0 * 0.999 && e1 <= e0 * 1.02,
        "int8 factors: {e1} vs {e0}"
    );
    check_forward(q.as_reconstruct());
}

#[test]
fn dictionary_and_coefficients_are_quantized_in_place() {
    let (w, stats) = fixture();
    let ctx = Context::with_stats(&stats);
    let co = || Cospadi::from_stage(&"cospadi:k40:s12:it4".parse().unwrap()).unwrap();
    let plain = co().compress(w.view(), &ctx).unwrap();
    let q = Pipeline::new(co())
        .then(rtn("rtn:int8:channel:sym"))
        .compress(w.view(), &ctx)
        .unwrap();
    let form = q
        .downcast_ref::<CompressedSparseDict>()
        .expect("values were quantized");
    assert_eq!(form.dictionary().shape(), (40, 384));
    assert_eq!(form.coefficients().shape(), (384, 12));
    let bitmap = (40 * 384) / 8;
    assert_eq!(
        q.storage().bytes(),
        (40 * 384 + 40 * 2) + (384 * 12 + 384 * 2) + bitmap
    );
    let e0 = Objective::Output
        .relative(w.view(), plain.to_dense().view(), Some(&stats))
        .unwrap();
    let e1 = Objective::Output
        .relative(w.view(), q.to_dense().view(), Some(&stats))
        .unwrap();
    assert!(e1 <= e0 * 1.05, "int8 values: {e1} vs {e0}");
    check_forward(q.as_reconstruct());
}

#[test]
fn low_rank_corrections_still_fit_the_residual() {
    let (w, stats) = fixture();
    let ctx = Context::with_stats(&stats);
    let q = Pipeline::new(rtn("rtn:int3:g128:asym"))
        .then(lowrank("qera:r8"))
        .compress(w.view(), &ctx)
        .unwrap();
    assert!(q.downcast_ref::<Sum>().is_some());
    let q = Pipeline::new(lowrank("svd:r8"))
        .then(lowrank("lorc:r4"))
        .compress(w.view(), &ctx)
        .unwrap();
    assert!(q.downcast_ref::<Sum>().is_some());
    // Asking for factor compression of a form without factors is an error.
    let bad = Pipeline::new(rtn("rtn:int4:g128:asym")).then_factors(rtn("rtn:int8:channel:sym"));
    assert!(matches!(
        bad.compress(w.view(), &ctx),
        Err(Error::InvalidArgument { .. })
    ));
}
