//! Agreement with the NumPy reference quantizers on a real layer
//! (all-MiniLM-L6-v2, layer 0 attention.self.key; see tests/data/README.md).
//! The reference values come from shared/peers/quant_ref.py on the same file.

use shrink::prelude::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/minilm_l6_layer0_key.safetensors"
);

/// (recipe, relative output error, relative weight error) from quant_ref.py.
const REFERENCE: &[(&str, f64, f64)] = &[
    (
        "rtn:int4:g128:sym",
        0.008313555719582283,
        0.014227143961802604,
    ),
    (
        "rtn:int4:g128:asym",
        0.00619456803859799,
        0.010389252998662089,
    ),
    (
        "rtn:int3:g128:asym",
        0.028610690662066236,
        0.047727746769255404,
    ),
    ("rtn:nf4:g64", 0.0051724902178139145, 0.008558599277214045),
];

#[test]
fn rtn_matches_the_numpy_reference_on_a_real_layer() {
    let file = LayerFile::open(FIXTURE).unwrap();
    assert_eq!(file.linears(), ["attention.self.key"]);
    let w = file.weight("attention.self.key").unwrap();
    let stats = file.stats("attention.self.key").unwrap();
    assert_eq!(stats.count(), 10_328);
    for &(recipe, out_ref, w_ref) in REFERENCE {
        let p = shrink::recipe::build(recipe).unwrap();
        let q = p.compress(w.view(), &Context::with_stats(&stats)).unwrap();
        let d = q.to_dense();
        let out = Objective::Output
            .relative(w.view(), d.view(), Some(&stats))
            .unwrap();
        let fro = Objective::Frobenius
            .relative(w.view(), d.view(), None)
            .unwrap();
        // The same dequantized weights give the same errors up to summation order.
        assert!(
            (out / out_ref - 1.0).abs() < 1e-9,
            "{recipe}: output error {out} vs {out_ref}"
        );
        assert!(
            (fro / w_ref - 1.0).abs() < 1e-9,
            "{recipe}: weight error {fro} vs {w_ref}"
        );
    }
}

#[test]
fn forward_without_densifying_matches_dense_on_real_inputs() {
    let file = LayerFile::open(FIXTURE).unwrap();
    let w = file.weight("attention.self.key").unwrap();
    let q = shrink::recipe::build("rtn:int4:g128:asym")
        .unwrap()
        .compress(w.view(), &Context::default())
        .unwrap();
    let x = ndarray::Array2::from_shape_fn((33, 384), |(t, j)| {
        ((t * 13 + j * 7) % 29) as f32 / 29.0 - 0.5
    });
    let y = q.forward(x.view()).unwrap();
    let yd = x.dot(&q.to_dense().t());
    let err = (&y - &yd).iter().map(|v| v.abs()).fold(0f32, f32::max);
    assert!(err < 1e-4, "max deviation {err}");
}
