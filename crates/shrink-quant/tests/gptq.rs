//! GPTQ: equality with RTN at `H = I`, with a naive column-at-a-time
//! implementation (explicit inverse-Hessian updates), real-layer quality,
//! thread-count independence, bad Hessians, masks, act-order storage and
//! recipe arguments.

mod common;

use common::*;
use ndarray::Array2;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use shrink_core::{
    Compressor, Context, Error, LayerFile, LayerStats, Mask, Objective, Reconstruct, Restricted,
    StageSpec,
};
use shrink_quant::{
    ActOrderMatrix, Gptq, GptqOutput, Granularity, GroupParams, Prepared, QuantizedMatrix,
    quantize_gptq, quantize_rtn,
};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/minilm_l6_layer0_key.safetensors"
);

/// The project's shared MiniLM layers (not part of the repository).
const SHARED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/minilm-l6"
);

fn gptq(recipe: &str) -> Gptq {
    let st: StageSpec = recipe.parse().unwrap();
    Gptq::from_stage(&st).unwrap_or_else(|e| panic!("{recipe}: {e}"))
}

/// A correlated Gram matrix `X^T X` of `tokens` random inputs, with
/// per-channel magnitudes spread over two decades and channel `dead` (if any)
/// always zero.
fn gram(n: usize, tokens: usize, dead: Option<usize>, seed: u64) -> Array2<f64> {
    let mut r = rng(seed);
    let nd = Normal::new(0.0f64, 1.0).unwrap();
    let k = 6.min(n);
    let mix = Array2::from_shape_fn((k, n), |_| nd.sample(&mut r));
    let z = Array2::from_shape_fn((tokens, k), |_| nd.sample(&mut r));
    let mut x = z.dot(&mix) + Array2::from_shape_fn((tokens, n), |_| 0.5 * nd.sample(&mut r));
    for j in 0..n {
        let s = 10f64.powf(r.random_range(-1.0..1.0));
        x.column_mut(j).mapv_inplace(|v| v * s);
    }
    if let Some(d) = dead {
        x.column_mut(d).fill(0.0);
    }
    x.t().dot(&x)
}

fn stats_of(h: &Array2<f64>) -> LayerStats {
    LayerStats::from_parts(h.clone(), 1000, None, None).unwrap()
}

/// Gauss-Jordan inverse with partial pivoting (small SPD matrices).
fn invert(a: &Array2<f64>) -> Array2<f64> {
    let n = a.nrows();
    let mut m = a.clone();
    let mut inv = Array2::<f64>::eye(n);
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| m[[i, c]].abs().total_cmp(&m[[j, c]].abs()))
            .unwrap();
        for k in 0..n {
            m.swap([c, k], [p, k]);
            inv.swap([c, k], [p, k]);
        }
        let d = m[[c, c]];
        for k in 0..n {
            m[[c, k]] /= d;
            inv[[c, k]] /= d;
        }
        for i in 0..n {
            if i != c {
                let f = m[[i, c]];
                if f != 0.0 {
                    for k in 0..n {
                        m[[i, k]] -= f * m[[c, k]];
                        inv[[i, k]] -= f * inv[[c, k]];
                    }
                }
            }
        }
    }
    inv
}

/// Naive GPTQ/OBQ in f64: one column at a time, no lazy blocks, the inverse
/// Hessian of the remaining columns kept explicitly and shrunk by a Schur
/// complement after each column. Returns codes (original column order) and
/// the reconstruction.
fn naive_gptq(
    w: &Array2<f32>,
    h: &Array2<f64>,
    cfg: &Gptq,
    mask: Option<&Mask>,
) -> (Vec<u8>, Array2<f32>) {
    let (m, n) = w.dim();
    let mut hd = h.clone();
    let mut wd = w.mapv(f64::from);
    for j in 0..n {
        if hd[[j, j]] == 0.0 {
            hd[[j, j]] = 1.0;
            wd.column_mut(j).fill(0.0);
        }
    }
    let kept = |i: usize, j: usize| mask.is_none_or(|mm| mm.get(i, j));
    let target: Vec<f32> = (0..m * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            if kept(i, j) { wd[[i, j]] as f32 } else { 0.0 }
        })
        .collect();
    let quant = Prepared::new(cfg.spec, &target, n).unwrap();
    let g = match cfg.spec.granularity {
        Granularity::Group(g) => g,
        _ => n,
    };
    // Up-front parameters (tensor / channel / static groups).
    let upfront = |i: usize, j: usize| -> GroupParams {
        match cfg.spec.granularity {
            Granularity::Tensor => quant.params(&target).unwrap(),
            Granularity::Channel => quant.params(&target[i * n..(i + 1) * n]).unwrap(),
            _ => {
                let g0 = i * n + (j / g) * g;
                quant.params(&target[g0..g0 + g]).unwrap()
            }
        }
    };
    let mut perm: Vec<usize> = (0..n).collect();
    if cfg.act_order {
        perm.sort_by(|&a, &b| hd[[b, b]].total_cmp(&hd[[a, a]]));
    }
    let mut hp = Array2::from_shape_fn((n, n), |(a, b)| hd[[perm[a], perm[b]]]);
    let mean = (0..n).map(|i| hp[[i, i]]).sum::<f64>() / n as f64;
    for i in 0..n {
        hp[[i, i]] += cfg.damp * mean;
    }
    let mut hinv = invert(&hp);
    let mut wp = Array2::from_shape_fn((m, n), |(i, c)| wd[[i, perm[c]]]);
    let mut codes = vec![0u8; m * n];
    let mut dense = Array2::<f32>::zeros((m, n));
    let dynamic = matches!(cfg.spec.granularity, Granularity::Group(_)) && !cfg.static_groups;
    let mut dyn_params = vec![GroupParams::default(); m * n.div_ceil(g)];
    for c in 0..n {
        for i in 0..m {
            let p = if dynamic {
                if c % g == 0 {
                    let vals: Vec<f32> = (c..c + g)
                        .map(|k| {
                            if kept(i, perm[k]) {
                                wp[[i, k]] as f32
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    dyn_params[i * (n / g) + c / g] = quant.params(&vals).unwrap();
                }
                dyn_params[i * (n / g) + c / g]
            } else {
                upfront(i, perm[c])
            };
            let x = wp[[i, c]];
            let (code, q) = if kept(i, perm[c]) {
                let code = quant.encode(x as f32, &p);
                (code, f64::from(quant.decode(code, &p)))
            } else {
                (quant.encode(0.0, &p), 0.0)
            };
            codes[i * n + perm[c]] = code;
            dense[[i, perm[c]]] = quant.decode(code, &p);
            let err = (x - q) / hinv[[c, c]];
            for k in c + 1..n {
                wp[[i, k]] -= err * hinv[[c, k]];
            }
        }
        let d = hinv[[c, c]];
        let col: Vec<f64> = (0..n).map(|a| hinv[[a, c]]).collect();
        for a in c + 1..n {
            for b in c + 1..n {
                hinv[[a, b]] -= col[a] * hinv[[c, b]] / d;
            }
        }
    }
    (codes, dense)
}

fn dense_of(out: &GptqOutput) -> Array2<f32> {
    out.as_reconstruct().to_dense()
}

#[test]
fn identity_hessian_gives_exactly_rtn() {
    let w = heavy_matrix(24, 256, 5);
    let stats = LayerStats::identity(256, 100).unwrap();
    let ctx = Context::with_stats(&stats);
    for r in [
        "int4:g128:asym",
        "int4:g32:sym",
        "int3:g64:asym",
        "int2:g64:asym",
        "int8:channel:sym",
        "int4:tensor:asym",
        "int4:g32:asym:mse",
        "nf4:g64",
        "nf3:channel:mse",
        "fp4:g32",
        "fp8-e4m3:channel",
        "lloyd4:g128",
        "mxfp4",
        "nvfp4",
        "int1:g64:sym",
    ] {
        let spec = spec(&format!("rtn:{r}"));
        let rtn = quantize_rtn(w.view(), &spec).unwrap();
        for opts in ["", ":actorder", ":block16", ":actorder:block48"] {
            let recipe = format!("gptq:{r}{opts}");
            let c = gptq(&recipe).compress(w.view(), &ctx).unwrap();
            let q = c
                .downcast_ref::<QuantizedMatrix>()
                .unwrap_or_else(|| panic!("{recipe}: not a plain quantized matrix"));
            assert_eq!(q.codes(), rtn.codes(), "{recipe}: codes");
            assert_eq!(q.params(), rtn.params(), "{recipe}: params");
        }
    }
}

#[test]
fn equals_the_naive_column_at_a_time_algorithm() {
    let (m, n) = (10, 64);
    let h = gram(n, 3 * n, Some(5), 11);
    let specs = [
        "int4:g16:asym",
        "int3:g32:sym",
        "int2:g8:asym",
        "int4:channel:asym",
        "int4:tensor:sym",
        "nf4:g16",
        "fp4:g16:mse",
        "lloyd3:g16",
        "mxfp4",
        "nvfp4",
    ];
    let options = [
        "",
        ":block12",
        ":block1",
        ":actorder",
        ":actorder:block12",
        ":actorder:static:block12",
        ":static:block16",
        ":damp0.1:block40",
    ];
    let mut checked = 0;
    for (k, s) in specs.iter().enumerate() {
        let w = normal_matrix(m, n, 0.5, 100 + k as u64);
        for o in options {
            if o.contains("static") && (s.contains("channel") || s.contains("tensor")) {
                continue;
            }
            let recipe = format!("gptq:{s}{o}");
            let cfg = gptq(&recipe);
            let out = quantize_gptq(w.view(), h.view(), &cfg, None).unwrap();
            let (codes, dense) = naive_gptq(&w, &h, &cfg, None);
            assert_eq!(out.codes(), codes, "{recipe}: codes");
            let got = dense_of(&out);
            let tol = 1e-6 * w.iter().fold(0f32, |a, v| a.max(v.abs()));
            for (a, b) in got.iter().zip(dense.iter()) {
                assert!((a - b).abs() <= tol, "{recipe}: {a} vs {b}");
            }
            checked += 1;
        }
    }
    assert!(checked > 60);
}

#[test]
fn equals_the_naive_algorithm_beyond_one_factorization_block() {
    // 288 inputs: the blocked Cholesky and inverse use 128-wide blocks.
    let (m, n) = (6, 288);
    let h = gram(n, 2 * n, Some(200), 15);
    let w = normal_matrix(m, n, 0.5, 16);
    for recipe in [
        "gptq:int4:g32:asym",
        "gptq:int3:g96:sym:actorder",
        "gptq:nf4:g32:actorder:block48",
    ] {
        let cfg = gptq(recipe);
        let out = quantize_gptq(w.view(), h.view(), &cfg, None).unwrap();
        let (codes, _) = naive_gptq(&w, &h, &cfg, None);
        assert_eq!(out.codes(), codes, "{recipe}: codes");
    }
}

#[test]
fn masked_weights_are_zero_and_their_error_is_propagated() {
    let (m, n) = (12, 64);
    let h = gram(n, 200, None, 21);
    let w = normal_matrix(m, n, 1.0, 22);
    let mut r = rng(23);
    let mask = Mask::from_fn(m, n, |_, _| r.random_bool(0.6));
    for recipe in [
        "gptq:int4:g16:asym",
        "gptq:int4:g16:asym:actorder",
        "gptq:int3:channel:sym:block8",
        "gptq:nf4:g32:actorder:static",
    ] {
        let cfg = gptq(recipe);
        let out = quantize_gptq(w.view(), h.view(), &cfg, Some(&mask)).unwrap();
        let (codes, _) = naive_gptq(&w, &h, &cfg, Some(&mask));
        assert_eq!(out.codes(), codes, "{recipe}: codes");
        let d = dense_of(&out);
        for ((i, j), v) in d.indexed_iter() {
            if !mask.get(i, j) {
                assert_eq!(*v, 0.0, "{recipe}: pruned ({i}, {j})");
            }
        }
        // Compensating the pruned weights' error beats plain masked RTN.
        let rtn_spec = cfg.spec;
        let mut rtn = quantize_rtn(w.view(), &rtn_spec).unwrap().to_dense();
        mask.apply(&mut rtn).unwrap();
        let stats = stats_of(&h);
        let e_gptq = Objective::Output
            .error(w.view(), d.view(), Some(&stats))
            .unwrap();
        let e_rtn = Objective::Output
            .error(w.view(), rtn.view(), Some(&stats))
            .unwrap();
        assert!(e_gptq < e_rtn, "{recipe}: {e_gptq} vs {e_rtn}");
    }
}

#[test]
fn grids_without_zero_are_zeroed_by_the_restricted_wrapper() {
    let (m, n) = (8, 64);
    let h = gram(n, 200, None, 31);
    let w = normal_matrix(m, n, 1.0, 32);
    let mask = Mask::from_fn(m, n, |i, j| (i + j) % 3 != 0);
    let stats = stats_of(&h);
    let ctx = Context {
        mask: Some(&mask),
        ..Context::with_stats(&stats)
    };
    for recipe in ["gptq:int1:g32:sym", "gptq:lloyd2:g32", "gptq:int4:g32:asym"] {
        let inner = gptq(recipe).compress(w.view(), &ctx).unwrap();
        assert!(inner.to_dense().iter().all(|v| v.is_finite()));
        let r = Restricted::new(mask.clone(), inner).unwrap();
        let d = r.to_dense();
        for ((i, j), v) in d.indexed_iter() {
            if !mask.get(i, j) {
                assert_eq!(*v, 0.0, "{recipe}: ({i}, {j})");
            }
        }
    }
}

#[test]
fn beats_rtn_on_correlated_inputs_over_every_grid() {
    let (m, n) = (48, 128);
    let h = gram(n, 400, Some(3), 41);
    let stats = stats_of(&h);
    let ctx = Context::with_stats(&stats);
    let w = heavy_matrix(m, n, 42);
    for s in [
        "int4:g32:asym",
        "int3:g64:sym",
        "int2:g32:asym",
        "nf4:g64",
        "nf3:g32:mse",
        "fp4:g32",
        "fp6-e3m2:g32",
        "fp8-e4m3:channel",
        "lloyd3:g64",
        "mxfp4",
        "mxfp6",
        "nvfp4",
        "int4:g32:asym:f32",
        "int4:g32:sym:bf16",
    ] {
        let rtn = quantize_rtn(w.view(), &spec(&format!("rtn:{s}")))
            .unwrap()
            .to_dense();
        for o in ["", ":actorder", ":actorder:static"] {
            if o.contains("static") && s.contains("channel") {
                continue;
            }
            let recipe = format!("gptq:{s}{o}");
            let d = gptq(&recipe).compress(w.view(), &ctx).unwrap().to_dense();
            let e = Objective::Output
                .relative(w.view(), d.view(), Some(&stats))
                .unwrap();
            let e_rtn = Objective::Output
                .relative(w.view(), rtn.view(), Some(&stats))
                .unwrap();
            assert!(e < e_rtn, "{recipe}: {e} vs rtn {e_rtn}");
        }
    }
}

/// Relative output errors on the fixture: RTN and GPTQ at the same grid.
#[test]
fn real_layer_gptq_is_below_rtn_and_matches_the_reference() {
    let file = LayerFile::open(FIXTURE).unwrap();
    let w = file.weight("attention.self.key").unwrap();
    let stats = file.stats("attention.self.key").unwrap();
    let ctx = Context::with_stats(&stats);
    let err = |c: &dyn Compressor| {
        let d = c.compress(w.view(), &ctx).unwrap().to_dense();
        Objective::Output
            .relative(w.view(), d.view(), Some(&stats))
            .unwrap()
    };
    for (args, extra) in [
        ("int4:g128:asym", ""),
        ("int4:g128:sym", ""),
        ("int3:g128:asym", ""),
        ("int2:g64:asym", ""),
        ("int4:g128:asym", ":actorder"),
        ("int4:g128:asym", ":actorder:static"),
        ("nf4:g64", ""),
        ("mxfp4", ""),
        ("fp4:g32", ""),
        ("int8:channel:sym", ""),
    ] {
        let rtn = shrink_quant::Rtn::new(spec(&format!("rtn:{args}")));
        let g = gptq(&format!("gptq:{args}{extra}"));
        let (e_rtn, e_gptq) = (err(&rtn), err(&g));
        assert!(
            e_gptq < e_rtn,
            "{args}{extra}: gptq {e_gptq} vs rtn {e_rtn}"
        );
    }
    // The PyTorch reference (gptq_ref.py) gives 0.00303 here.
    let e = err(&gptq("gptq:int4:g128:asym"));
    assert!((e / 0.00303 - 1.0).abs() < 0.005, "{e}");
}

/// Every linear of the shared MiniLM layers (when present): below RTN and
/// within 2 % of the PyTorch reference (numbers of the issue).
#[test]
fn shared_layers_match_the_reference() {
    const REFERENCE: [[f64; 6]; 3] = [
        [0.00431, 0.00303, 0.00445, 0.00364, 0.00182, 0.00010],
        [0.00261, 0.00269, 0.00420, 0.00489, 0.00184, 0.00065],
        [0.00283, 0.00291, 0.00583, 0.00452, 0.00188, 0.00023],
    ];
    const LINEARS: [&str; 6] = [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
    ];
    if !std::path::Path::new(SHARED)
        .join("layer0.safetensors")
        .exists()
    {
        eprintln!("skipped: {SHARED} not present");
        return;
    }
    let g = gptq("gptq:int4:g128:asym");
    let rtn = shrink_quant::Rtn::new(g.spec);
    for (l, refs) in REFERENCE.iter().enumerate() {
        let file = LayerFile::open(format!("{SHARED}/layer{l}.safetensors")).unwrap();
        for (lin, &want) in LINEARS.iter().zip(refs) {
            let w = file.weight(lin).unwrap();
            let stats = file.stats(lin).unwrap();
            let ctx = Context::with_stats(&stats);
            let rel = |c: &dyn Compressor| {
                let d = c.compress(w.view(), &ctx).unwrap().to_dense();
                Objective::Output
                    .relative(w.view(), d.view(), Some(&stats))
                    .unwrap()
            };
            let (e, e_rtn) = (rel(&g), rel(&rtn));
            assert!(e < e_rtn, "layer{l} {lin}: {e} vs rtn {e_rtn}");
            // The reference is printed to 3 significant digits.
            assert!(
                (e - want).abs() <= 0.02 * want + 5e-6,
                "layer{l} {lin}: {e} vs reference {want}"
            );
        }
    }
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let (m, n) = (150, 256);
    let h = gram(n, 600, Some(7), 51);
    let w = heavy_matrix(m, n, 52);
    let mask = Mask::from_fn(m, n, |i, j| (i * 7 + j * 3) % 5 != 0);
    for recipe in [
        "gptq:int4:g128:asym",
        "gptq:int3:g32:sym:block48",
        "gptq:int4:g64:asym:actorder",
        "gptq:int4:g64:asym:actorder:static",
        "gptq:lloyd3:g64:mse",
        "gptq:nvfp4",
        "gptq:int8:channel:sym",
    ] {
        let cfg = gptq(recipe);
        for mk in [None, Some(&mask)] {
            let run = || quantize_gptq(w.view(), h.view(), &cfg, mk).unwrap();
            let a = in_pool(1, run);
            let b = in_pool(2, run);
            let c = in_pool(3, run);
            assert_eq!(a, b, "{recipe}");
            assert_eq!(a, c, "{recipe}");
        }
    }
}

fn assert_finite(out: &GptqOutput, what: &str) {
    assert!(
        dense_of(out).iter().all(|v| v.is_finite()),
        "{what}: non-finite weights"
    );
}

#[test]
fn singular_and_rank_deficient_hessians_are_damped() {
    let (m, n) = (16, 64);
    let w = normal_matrix(m, n, 1.0, 61);
    let cfg = gptq("gptq:int4:g32:asym");
    // All zero: every input is dead; the weights become exact zeros.
    let zero = Array2::<f64>::zeros((n, n));
    let out = quantize_gptq(w.view(), zero.view(), &cfg, None).unwrap();
    assert!(dense_of(&out).iter().all(|&v| v == 0.0));
    // Rank deficient (fewer tokens than inputs), with and without damping.
    let h = gram(n, 10, None, 62);
    for c in [cfg, cfg.with_damp(0.0), cfg.with_act_order(true)] {
        let out = quantize_gptq(w.view(), h.view(), &c, None).unwrap();
        assert_finite(&out, "rank deficient");
    }
    // Rank one.
    let v: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin() + 1.5).collect();
    let h1 = Array2::from_shape_fn((n, n), |(i, j)| v[i] * v[j]);
    let out = quantize_gptq(w.view(), h1.view(), &cfg.with_damp(0.0), None).unwrap();
    assert_finite(&out, "rank one");
    // Indefinite but fixable by more damping.
    let mut ind = Array2::<f64>::eye(n);
    ind[[0, 1]] = 3.0;
    ind[[1, 0]] = 3.0;
    let out = quantize_gptq(w.view(), ind.view(), &cfg, None).unwrap();
    assert_finite(&out, "indefinite");
    // Hopelessly indefinite: a typed error.
    let mut bad = Array2::<f64>::eye(n);
    bad[[0, 1]] = 1e9;
    bad[[1, 0]] = 1e9;
    assert!(matches!(
        quantize_gptq(w.view(), bad.view(), &cfg, None),
        Err(Error::Stats { .. })
    ));
    // Tiny and huge scales of H change nothing (relative damping).
    let hs = gram(n, 200, None, 63);
    let base = quantize_gptq(w.view(), hs.view(), &cfg, None).unwrap();
    for s in [1e-30, 1e30] {
        let scaled = &hs * s;
        let out = quantize_gptq(w.view(), scaled.view(), &cfg, None).unwrap();
        assert_eq!(out.codes(), base.codes(), "scale {s}");
    }
}

#[test]
fn bad_hessians_and_inputs_are_typed_errors() {
    let (m, n) = (4, 32);
    let w = normal_matrix(m, n, 1.0, 71);
    let cfg = gptq("gptq:int4:g32:asym");
    let h = gram(n, 100, None, 72);
    for bad in [f64::NAN, f64::INFINITY] {
        let mut hb = h.clone();
        hb[[3, 5]] = bad;
        assert!(matches!(
            quantize_gptq(w.view(), hb.view(), &cfg, None),
            Err(Error::NonFinite { .. })
        ));
    }
    let mut neg = h.clone();
    neg[[2, 2]] = -1.0;
    assert!(matches!(
        quantize_gptq(w.view(), neg.view(), &cfg, None),
        Err(Error::Stats { .. })
    ));
    let small = gram(16, 100, None, 73);
    assert!(matches!(
        quantize_gptq(w.view(), small.view(), &cfg, None),
        Err(Error::Shape { .. })
    ));
    let mut wn = w.clone();
    wn[[1, 1]] = f32::NAN;
    assert!(matches!(
        quantize_gptq(wn.view(), h.view(), &cfg, None),
        Err(Error::NonFinite { .. })
    ));
    let mask = Mask::full(m, n + 1, true);
    assert!(matches!(
        quantize_gptq(w.view(), h.view(), &cfg, Some(&mask)),
        Err(Error::Shape { .. })
    ));
    // A group size that does not divide the row.
    let g48 = gptq("gptq:int4:g48:asym");
    assert!(matches!(
        quantize_gptq(w.view(), h.view(), &g48, None),
        Err(Error::InvalidArgument { .. })
    ));
    // No statistics.
    assert!(matches!(
        cfg.compress(w.view(), &Context::default()),
        Err(Error::Stats { .. })
    ));
    // Options built in code are validated too.
    let channel_static = Gptq {
        spec: cfg.spec.with_granularity(Granularity::Channel),
        static_groups: true,
        ..cfg
    };
    for c in [
        cfg.with_block(0),
        cfg.with_damp(-1.0),
        cfg.with_damp(f64::NAN),
        channel_static,
    ] {
        assert!(matches!(
            quantize_gptq(w.view(), h.view(), &c, None),
            Err(Error::InvalidArgument { .. })
        ));
    }
}

#[test]
fn act_order_with_dynamic_groups_keeps_the_permutation() {
    let (m, n) = (20, 128);
    let h = gram(n, 400, Some(9), 81);
    let w = normal_matrix(m, n, 1.0, 82);
    let out = quantize_gptq(
        w.view(),
        h.view(),
        &gptq("gptq:int4:g32:asym:actorder"),
        None,
    )
    .unwrap();
    let a = match &out {
        GptqOutput::ActOrder(a) => a,
        other => panic!("expected an act-order matrix, got {other:?}"),
    };
    // The permutation sorts diag(H) in decreasing order, dead input last.
    let d: Vec<f64> = a
        .perm()
        .iter()
        .map(|&p| h[[p as usize, p as usize]])
        .collect();
    assert!(d[..n - 1].windows(2).all(|x| x[0] >= x[1]));
    assert_eq!(a.perm()[n - 1], 9);
    // Reconstruction, codes, forward and storage agree with the inner matrix.
    let dense = a.to_dense();
    let inner = a.inner().to_dense();
    for (k, &p) in a.perm().iter().enumerate() {
        assert_eq!(dense.column(p as usize), inner.column(k));
    }
    let codes = a.original_codes();
    for (k, &p) in a.perm().iter().enumerate() {
        for i in 0..m {
            assert_eq!(codes[i * n + p as usize], a.inner().codes()[i * n + k]);
        }
    }
    let x = normal_matrix(7, n, 1.0, 83);
    let y = a.forward(x.view()).unwrap();
    let want = naive_forward(&x, &dense);
    for (g, w) in y.iter().zip(want.iter()) {
        assert!((f64::from(*g) - w).abs() <= 1e-4 * (1.0 + w.abs()));
    }
    assert!(a.forward(normal_matrix(2, n + 1, 1.0, 84).view()).is_err());
    let st = a.storage();
    assert_eq!(st.bytes(), a.inner().storage().bytes() + 2 * n as u64);
    assert_eq!(
        st.bits_per_weight(),
        4.0 + (16.0 + 4.0) / 32.0 + 16.0 / m as f64
    );
    // Through the compressor the concrete type is reachable by downcasting.
    let stats = stats_of(&h);
    let c = gptq("gptq:int4:g32:asym:actorder")
        .compress(w.view(), &Context::with_stats(&stats))
        .unwrap();
    assert!(c.downcast_ref::<ActOrderMatrix>().is_some());
    // Static groups give a plain matrix in the original order.
    let s = quantize_gptq(
        w.view(),
        h.view(),
        &gptq("gptq:int4:g32:asym:actorder:static"),
        None,
    )
    .unwrap();
    assert!(s.as_matrix().is_some());
    // Bad permutations are rejected.
    let q = a.inner().clone();
    let mut p: Vec<u32> = (0..n as u32).collect();
    p[3] = 4;
    assert!(matches!(
        ActOrderMatrix::new(q.clone(), p),
        Err(Error::Corrupt { .. })
    ));
    assert!(ActOrderMatrix::new(q, vec![0; 3]).is_err());
}

#[test]
fn recipes_round_trip() {
    for r in [
        "gptq:int4:g128:asym",
        "gptq:int4:g128:sym",
        "gptq:int3:g128:asym",
        "gptq:int2:g64:asym",
        "gptq:int4:g128:asym:actorder",
        "gptq:int4:g128:asym:actorder:static",
        "gptq:nf4:g64",
        "gptq:mxfp4",
        "gptq:fp4:g32",
        "gptq:int8:channel:sym",
        "gptq:int4:g128:asym:mse:static:block64:damp0.1",
        "gptq:lloyd4:g128:damp0.001",
        "gptq:nvfp4:actorder",
    ] {
        assert_eq!(gptq(r).recipe(), r);
    }
    for (given, canonical) in [
        ("gptq:int4", "gptq:int4:g128:asym"),
        (
            "gptq:int4:static:actorder",
            "gptq:int4:g128:asym:actorder:static",
        ),
        ("gptq:int4:block128:damp0.01", "gptq:int4:g128:asym"),
        ("gptq:int4:damp0.050", "gptq:int4:g128:asym:damp0.05"),
    ] {
        assert_eq!(gptq(given).recipe(), canonical);
    }
    let g = gptq("gptq:int4:g64:sym:actorder:block32:damp0.5");
    assert!(g.act_order && !g.static_groups);
    assert_eq!((g.block, g.damp), (32, 0.5));
    assert_eq!(g.spec.granularity, Granularity::Group(64));
}

#[test]
fn bad_recipe_arguments_name_the_part() {
    let part = |r: &str| -> String {
        let st: StageSpec = r.parse().unwrap();
        match Gptq::from_stage(&st) {
            Err(Error::Recipe { part, .. }) => part,
            other => panic!("{r}: expected a recipe error, got {other:?}"),
        }
    };
    assert_eq!(part("gptq:int4:actorder:actorder"), "actorder");
    assert_eq!(part("gptq:int4:static:static"), "static");
    assert_eq!(part("gptq:int4:block0"), "block0");
    assert_eq!(part("gptq:int4:blockx"), "blockx");
    assert_eq!(part("gptq:int4:block8:block16"), "block16");
    assert_eq!(part("gptq:int4:dampx"), "dampx");
    assert_eq!(part("gptq:int4:damp-1"), "damp-1");
    assert_eq!(part("gptq:int4:dampinf"), "dampinf");
    assert_eq!(part("gptq:int4:bogus"), "bogus");
    assert_eq!(part("gptq:int9"), "int9");
    assert_eq!(part("gptq"), "gptq");
    assert_eq!(part("rtn:int4"), "rtn");
    // static needs groups: the error names the stage.
    assert!(part("gptq:int4:channel:static").contains("static"));
}

#[test]
fn gptq_and_hqq_compose_in_pipelines() {
    let (m, n) = (32, 128);
    let h = gram(n, 400, None, 91);
    let stats = stats_of(&h);
    let ctx = Context::with_stats(&stats);
    let w = heavy_matrix(m, n, 92);
    let first = gptq("gptq:int4:g64:asym");
    let p = shrink_core::Pipeline::new(first)
        .then(shrink_quant::Hqq::from_stage(&"hqq:int2:g16".parse().unwrap()).unwrap());
    assert_eq!(p.recipe(), "gptq:int4:g64:asym+hqq:int2:g16");
    let c = p.compress(w.view(), &ctx).unwrap();
    let one = first.compress(w.view(), &ctx).unwrap();
    let rel = |d: &Array2<f32>| {
        Objective::Frobenius
            .relative(w.view(), d.view(), None)
            .unwrap()
    };
    assert!(rel(&c.to_dense()) < rel(&one.to_dense()));
    assert_eq!(
        c.storage().bytes(),
        one.storage().bytes()
            + shrink_quant::quantize_hqq(
                (&w - &one.to_dense()).view(),
                &shrink_quant::Hqq::int(2, Granularity::Group(16))
            )
            .unwrap()
            .storage()
            .bytes()
    );
}
