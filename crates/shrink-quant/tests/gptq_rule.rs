//! The [`GptqRule`] hook: a rule built from the public [`Prepared`] API
//! reproduces `quantize_gptq` bit for bit, an identity Hessian reduces the
//! sweep to round-to-nearest, and bad arguments are typed errors.

use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use shrink_core::{Error, LayerStats, Reconstruct, StageSpec};
use shrink_quant::{Gptq, GptqRule, GroupParams, Prepared, gptq_sweep, quantize_gptq};

fn normal(rng: &mut StdRng) -> f32 {
    rng.sample(StandardNormal)
}

fn data(rows: usize, cols: usize, seed: u64) -> (Array2<f32>, Array2<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let w = Array2::from_shape_fn((rows, cols), |_| normal(&mut rng));
    let x = Array2::from_shape_fn((3 * cols, cols), |(t, j)| {
        normal(&mut rng) * (1.0 + (j % 5) as f32) + 0.3 * (t % 7) as f32
    });
    let mut s = LayerStats::new(cols).unwrap();
    s.observe(x.view()).unwrap();
    (w, s.gram().clone())
}

/// Dynamic groups of `g` columns of a [`Prepared`] grid, fitted when reached.
struct GroupRule {
    quant: Prepared,
    g: usize,
}

struct Row {
    params: Vec<GroupParams>,
    values: Vec<f32>,
}

impl GptqRule for GroupRule {
    type Row = Row;
    fn group_at(&self, c: usize) -> Option<usize> {
        c.is_multiple_of(self.g).then_some(self.g)
    }
    fn fit(&self, row: &mut Row, _r: usize, c: usize, values: &[f32]) -> shrink_core::Result<()> {
        row.params[c / self.g] = self.quant.params(values)?;
        Ok(())
    }
    fn quantize(&self, row: &mut Row, _r: usize, c: usize, x: f32) -> f32 {
        let q = self.quant.round(x, &row.params[c / self.g]);
        row.values[c] = q;
        q
    }
}

fn rule(spec: &str, w: &Array2<f32>) -> GroupRule {
    let g = Gptq::from_stage(&spec.parse::<StageSpec>().unwrap()).unwrap();
    let gs = match g.spec.granularity {
        shrink_quant::Granularity::Group(gs) => gs,
        _ => unreachable!("group specs only"),
    };
    let flat: Vec<f32> = w.iter().copied().collect();
    GroupRule {
        quant: Prepared::new(g.spec, &flat, w.ncols()).unwrap(),
        g: gs,
    }
}

fn rows_for(rule: &GroupRule, rows: usize, cols: usize) -> Vec<Row> {
    (0..rows)
        .map(|_| Row {
            params: vec![GroupParams::default(); cols / rule.g],
            values: vec![0.0; cols],
        })
        .collect()
}

#[test]
fn a_rule_from_the_public_api_reproduces_quantize_gptq() {
    let (w, h) = data(70, 256, 1);
    for spec in [
        "gptq:int4:g32:asym",
        "gptq:int3:g64:sym",
        "gptq:nf4:g64:block32",
        "gptq:int4:g128:asym:block64",
        "gptq:int4:g32:asym:block48",
    ] {
        let g = Gptq::from_stage(&spec.parse::<StageSpec>().unwrap()).unwrap();
        let want = quantize_gptq(w.view(), h.view(), &g, None)
            .unwrap()
            .into_compressed()
            .to_dense();
        let r = rule(spec, &w);
        let mut rows = rows_for(&r, 70, 256);
        gptq_sweep(w.view(), h.view(), g.damp, g.block, &r, &mut rows).unwrap();
        for (i, row) in rows.iter().enumerate() {
            for (j, v) in row.values.iter().enumerate() {
                assert_eq!(v.to_bits(), want[(i, j)].to_bits(), "{spec}: ({i}, {j})");
            }
        }
    }
}

#[test]
fn identity_hessian_is_round_to_nearest() {
    let (w, _) = data(9, 128, 2);
    let h = Array2::<f64>::eye(128) * 50.0;
    let r = rule("gptq:int4:g32:asym", &w);
    let mut rows = rows_for(&r, 9, 128);
    gptq_sweep(w.view(), h.view(), 0.01, 128, &r, &mut rows).unwrap();
    for (i, row) in rows.iter().enumerate() {
        for g in 0..4 {
            let xs: Vec<f32> = (0..32).map(|k| w[(i, 32 * g + k)]).collect();
            let p = r.quant.params(&xs).unwrap();
            for (k, &x) in xs.iter().enumerate() {
                assert_eq!(row.values[32 * g + k], r.quant.round(x, &p));
            }
        }
    }
}

#[test]
fn bad_arguments_are_typed_errors() {
    let (w, h) = data(4, 64, 3);
    let r = rule("gptq:int4:g32:asym", &w);
    let mut rows = rows_for(&r, 3, 64);
    assert!(matches!(
        gptq_sweep(w.view(), h.view(), 0.01, 128, &r, &mut rows),
        Err(Error::Shape { .. })
    ));
    let mut rows = rows_for(&r, 4, 64);
    assert!(matches!(
        gptq_sweep(w.view(), h.view(), 0.01, 0, &r, &mut rows),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        gptq_sweep(w.view(), h.view(), -1.0, 128, &r, &mut rows),
        Err(Error::InvalidArgument { .. })
    ));
    let h_small = Array2::<f64>::eye(32);
    assert!(matches!(
        gptq_sweep(w.view(), h_small.view(), 0.01, 128, &r, &mut rows),
        Err(Error::Shape { .. })
    ));
    let mut w_nan = w.clone();
    w_nan[(1, 1)] = f32::NAN;
    assert!(matches!(
        gptq_sweep(w_nan.view(), h.view(), 0.01, 128, &r, &mut rows),
        Err(Error::NonFinite { .. })
    ));
}
