//! GPTQ into GGUF blocks: identity Hessian gives ggml's reference bytes,
//! the bytes decode to exactly GPTQ's reconstruction, real Hessians lower the
//! output error, recipe text and errors, and the MiniLM layers.

use std::path::Path;

use ndarray::{Array2, ArrayView2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use shrink_core::{
    Compressor, Context, Error, LayerFile, LayerStats, Objective, Reconstruct, StageSpec,
};
use shrink_pack::gguf::{
    GgufGptqRule, GgufMatrix, GgufQuant, GgufRow, GgufType, dequantize, quantize,
};
use shrink_quant::{GptqRule, gptq_sweep};

fn normal(rng: &mut StdRng) -> f32 {
    rng.sample(StandardNormal)
}

/// Weights and correlated inputs with channel scales over two decades.
fn layer(rows: usize, cols: usize, tokens: usize, seed: u64) -> (Array2<f32>, LayerStats) {
    let mut rng = StdRng::seed_from_u64(seed);
    let w = Array2::from_shape_fn((rows, cols), |_| 0.05 * normal(&mut rng));
    let k = 8;
    let mix = Array2::from_shape_fn((k, cols), |_| normal(&mut rng));
    let z = Array2::from_shape_fn((tokens, k), |_| normal(&mut rng));
    let mut x = z.dot(&mix) + Array2::from_shape_fn((tokens, cols), |_| 0.5 * normal(&mut rng));
    for j in 0..cols {
        let s = 10f32.powf(rng.random_range(-1.0..1.0));
        x.column_mut(j).mapv_inplace(|v| v * s);
    }
    let mut s = LayerStats::new(cols).unwrap();
    s.observe(x.view()).unwrap();
    (w, s)
}

fn recipe(text: &str) -> GgufQuant {
    GgufQuant::from_stage(&text.parse::<StageSpec>().unwrap())
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn flat(w: ArrayView2<'_, f32>) -> Vec<f32> {
    w.iter().copied().collect()
}

fn gptq_types() -> Vec<GgufType> {
    GgufType::ALL
        .into_iter()
        .filter(|t| t.takes_gptq())
        .collect()
}

#[test]
fn identity_hessian_gives_ggmls_reference_bytes() {
    let (w, _) = layer(9, 512, 8, 1);
    let id = LayerStats::identity(512, 100).unwrap();
    let ctx = Context::with_stats(&id);
    let types = gptq_types();
    assert_eq!(types.len(), 13);
    for t in types {
        let q = recipe(&format!("gguf:{}:gptq", t.name()));
        let c = q.compress(w.view(), &ctx).unwrap();
        let m = c.downcast_ref::<GgufMatrix>().unwrap();
        let want = quantize(t, &flat(w.view())).unwrap();
        assert_eq!(m.bytes(), &want[..], "{t}: GPTQ with H = I is not RTN");
    }
}

/// Records the value the rule returns for every weight.
struct Recording<'a>(&'a GgufGptqRule);

impl GptqRule for Recording<'_> {
    type Row = (GgufRow, Vec<f32>);
    fn group_at(&self, c: usize) -> Option<usize> {
        self.0.group_at(c)
    }
    fn fit(
        &self,
        row: &mut Self::Row,
        r: usize,
        c: usize,
        values: &[f32],
    ) -> shrink_core::Result<()> {
        self.0.fit(&mut row.0, r, c, values)
    }
    fn quantize(&self, row: &mut Self::Row, r: usize, c: usize, x: f32) -> f32 {
        let q = self.0.quantize(&mut row.0, r, c, x);
        row.1[c] = q;
        q
    }
}

#[test]
fn bytes_decode_to_exactly_the_gptq_reconstruction() {
    let (w, stats) = layer(70, 512, 600, 2);
    for t in gptq_types() {
        let rule = GgufGptqRule::new(t, 512).unwrap();
        let rec = Recording(&rule);
        let mut rows: Vec<(GgufRow, Vec<f32>)> =
            (0..70).map(|_| (rule.new_row(), vec![0f32; 512])).collect();
        gptq_sweep(w.view(), stats.gram().view(), 0.01, 128, &rec, &mut rows).unwrap();
        for (r, (row, values)) in rows.iter().enumerate() {
            let deq = dequantize(t, &row.bytes, 512).unwrap();
            let same = deq
                .iter()
                .zip(values)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{t}: row {r} decodes to other values than GPTQ used");
        }
        // And the compressor stores exactly these bytes.
        let m = GgufMatrix::quantize_gptq(t, w.view(), stats.gram().view(), 0.01, 128).unwrap();
        for (r, (row, _)) in rows.iter().enumerate() {
            assert_eq!(m.row_bytes(r), &row.bytes[..], "{t}: row {r}");
        }
    }
}

#[test]
fn gptq_lowers_the_output_error_of_every_type() {
    let (w, stats) = layer(64, 512, 2000, 3);
    let ctx = Context::with_stats(&stats);
    let err = |c: &shrink_core::Compressed| {
        Objective::Output
            .relative(w.view(), c.to_dense().view(), Some(&stats))
            .unwrap()
    };
    for t in gptq_types() {
        let rtn = GgufQuant::new(t).compress(w.view(), &ctx).unwrap();
        let g = recipe(&format!("gguf:{}:gptq", t.name()))
            .compress(w.view(), &ctx)
            .unwrap();
        let (e_rtn, e_g) = (err(&rtn), err(&g));
        assert!(e_g < e_rtn, "{t}: gptq {e_g} not below rtn {e_rtn}");
        assert_eq!(g.storage().bits_per_weight(), t.bits_per_weight());
    }
}

#[test]
fn lazy_block_width_does_not_change_the_result_much() {
    // Different lazy-block widths reorder float additions only.
    let (w, stats) = layer(16, 512, 500, 4);
    let h = stats.gram().view();
    let a = GgufMatrix::quantize_gptq(GgufType::Q4_K, w.view(), h, 0.01, 128).unwrap();
    let b = GgufMatrix::quantize_gptq(GgufType::Q4_K, w.view(), h, 0.01, 32).unwrap();
    let ea = Objective::Output
        .relative(w.view(), a.to_dense().view(), Some(&stats))
        .unwrap();
    let eb = Objective::Output
        .relative(w.view(), b.to_dense().view(), Some(&stats))
        .unwrap();
    assert!((ea - eb).abs() < 0.05 * ea, "{ea} vs {eb}");
}

#[test]
fn recipe_text_and_errors() {
    assert_eq!(recipe("gguf:Q4_K:gptq").recipe(), "gguf:q4_k:gptq");
    assert_eq!(
        recipe("gguf:q4_0:gptq:damp0.1:block64").recipe(),
        "gguf:q4_0:gptq:damp0.1:block64"
    );
    assert_eq!(recipe("gguf:q4_0:gptq:damp0.01").recipe(), "gguf:q4_0:gptq");
    let part = |text: &str| match GgufQuant::from_stage(&text.parse::<StageSpec>().unwrap()) {
        Err(Error::Recipe { part, .. }) => part,
        other => panic!("{text}: expected a recipe error, got {other:?}"),
    };
    assert_eq!(part("gguf:q8_k:gptq"), "gptq");
    assert_eq!(part("gguf:tq1_0:gptq"), "gptq");
    assert_eq!(part("gguf:f16:gptq"), "gptq");
    assert_eq!(part("gguf:q4_0:gptq:damp-1"), "damp-1");
    assert_eq!(part("gguf:q4_0:gptq:block0"), "block0");
    assert_eq!(part("gguf:q4_0:gptq:block8:block8"), "block8");
    assert_eq!(part("gguf:q4_0:gptq:bogus"), "bogus");
    let (w, stats) = layer(4, 256, 32, 5);
    let q = recipe("gguf:q4_k:gptq");
    assert!(matches!(
        q.compress(w.view(), &Context::default()),
        Err(Error::Stats { .. })
    ));
    let wrong = LayerStats::identity(512, 4).unwrap();
    assert!(matches!(
        q.compress(w.view(), &Context::with_stats(&wrong)),
        Err(Error::Shape { .. })
    ));
    let narrow = Array2::<f32>::zeros((4, 384));
    let s384 = LayerStats::identity(384, 4).unwrap();
    assert!(matches!(
        q.compress(narrow.view(), &Context::with_stats(&s384)),
        Err(Error::Shape { .. })
    ));
    assert!(q.compress(w.view(), &Context::with_stats(&stats)).is_ok());
}

#[test]
fn dead_inputs_are_zero_and_the_result_is_valid() {
    // A column no calibration token excites: GPTQ zeroes it before rounding.
    let (w, _) = layer(8, 256, 4, 6);
    let mut rng = StdRng::seed_from_u64(7);
    let mut x = Array2::from_shape_fn((300, 256), |_| normal(&mut rng));
    x.column_mut(17).fill(0.0);
    let mut s = LayerStats::new(256).unwrap();
    s.observe(x.view()).unwrap();
    let c = recipe("gguf:q6_k:gptq")
        .compress(w.view(), &Context::with_stats(&s))
        .unwrap();
    let d = c.to_dense();
    assert!(d.iter().all(|v| v.is_finite()));
    let e = Objective::Output
        .relative(w.view(), d.view(), Some(&s))
        .unwrap();
    assert!(e < 1e-2, "{e}");
}

/// The shared MiniLM layers (outside the repository; skipped when absent):
/// on every linear whose width holds whole blocks, GPTQ into Q4_K beats both
/// ggml's reference Q4_K and its imatrix Q4_K, and GPTQ into Q4_0 beats
/// Q4_0 and its imatrix variant.
#[test]
fn minilm_gptq_beats_reference_and_imatrix() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/minilm-l6");
    if !dir.join("layer0.safetensors").exists() {
        eprintln!("{} not found: skipping the MiniLM check", dir.display());
        return;
    }
    let mut checked = 0;
    for l in 0..3 {
        let file = LayerFile::open(dir.join(format!("layer{l}.safetensors"))).unwrap();
        for lin in file.linears() {
            let w = file.weight(lin).unwrap();
            let stats = file.stats(lin).unwrap();
            let ctx = Context::with_stats(&stats);
            let err = |r: &str| {
                let c = recipe(r).compress(w.view(), &ctx).unwrap();
                Objective::Output
                    .relative(w.view(), c.to_dense().view(), Some(&stats))
                    .unwrap()
            };
            let mut fams = vec!["q4_0"];
            if w.ncols().is_multiple_of(256) {
                fams.push("q4_k");
            }
            for f in fams {
                let (e_ref, e_imx, e_g) = (
                    err(&format!("gguf:{f}")),
                    err(&format!("gguf:{f}:imatrix")),
                    err(&format!("gguf:{f}:gptq")),
                );
                assert!(
                    e_g < e_ref && e_g < e_imx,
                    "layer{l} {lin} {f}: gptq {e_g}, reference {e_ref}, imatrix {e_imx}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 18 + 3);
}
