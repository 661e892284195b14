//! Exact storage (bits per weight) and recipe arguments: canonical round
//! trip, defaults, and errors that name the bad argument.

mod common;

use common::*;
use shrink_core::{Compressor, Error, Reconstruct, StageSpec};
use shrink_quant::{Granularity, Grid, QuantSpec, Rtn, ScaleFormat, quantize_rtn};

const W: f64 = 64.0 * 256.0;

fn bits_per_weight(recipe: &str) -> f64 {
    let w = normal_matrix(64, 256, 0.05, 99);
    let q = quantize_rtn(w.view(), &spec(recipe)).unwrap_or_else(|e| panic!("{recipe}: {e}"));
    let st = q.storage();
    assert_eq!(st.weights, 64 * 256);
    st.bits_per_weight()
}

#[test]
fn bits_per_weight_hand_counts() {
    let cases: &[(&str, f64)] = &[
        ("rtn:int4:g128:sym", 4.125),
        ("rtn:int4:g128:asym", 4.0 + (16.0 + 4.0) / 128.0),
        ("rtn:int3:g128:asym", 3.0 + (16.0 + 3.0) / 128.0),
        ("rtn:int2:g64:asym", 2.0 + (16.0 + 2.0) / 64.0),
        ("rtn:int8:channel:sym", 8.0 + 16.0 / 256.0),
        ("rtn:nf4:g64", 4.5),
        ("rtn:nf3:g64", 3.5),
        ("rtn:fp4:g32", 4.5),
        ("rtn:mxfp4", 4.25),
        ("rtn:mxfp6", 6.25),
        ("rtn:mxfp8", 8.25),
        ("rtn:nvfp4", 4.5 + 32.0 / W),
        ("rtn:fp8-e4m3:channel", 8.0 + 32.0 / 256.0),
        ("rtn:fp8-e5m2:channel", 8.0 + 32.0 / 256.0),
        ("rtn:lloyd4:g128", 4.0 + 16.0 / 128.0 + 16.0 * 32.0 / W),
        ("rtn:int4:g128:asym:mse", 4.0 + (16.0 + 4.0) / 128.0),
        ("rtn:int4:g128:sym:f32", 4.0 + 32.0 / 128.0),
        ("rtn:int4:g128:sym:bf16", 4.125),
        ("rtn:int4:g128:asym:f32", 4.0 + (32.0 + 4.0) / 128.0),
        ("rtn:int4:g128:asym:bf16", 4.0 + (16.0 + 4.0) / 128.0),
        ("rtn:int4:tensor:sym", 4.0 + 16.0 / W),
        ("rtn:int1:g64:sym", 1.0 + 16.0 / 64.0),
        ("rtn:int3:g64:sym", 3.0 + 16.0 / 64.0),
    ];
    for &(r, want) in cases {
        let got = bits_per_weight(r);
        assert!(
            (got - want).abs() < 1e-12,
            "{r}: {got} bits/weight, expected {want}"
        );
    }
}

#[test]
fn storage_parts_are_named() {
    let w = normal_matrix(64, 256, 0.05, 1);
    let names = |r: &str| -> Vec<(String, u64)> {
        let q = quantize_rtn(w.view(), &spec(r)).unwrap();
        q.storage()
            .parts
            .into_iter()
            .map(|p| (p.name, p.bytes))
            .collect()
    };
    let n = |s: &str, b: u64| (s.to_string(), b);
    assert_eq!(
        names("rtn:int4:g128:asym"),
        vec![n("codes", 8192), n("scales", 256), n("zero points", 64)]
    );
    assert_eq!(
        names("rtn:nvfp4"),
        vec![n("codes", 8192), n("scales", 1024), n("tensor scale", 4)]
    );
    assert_eq!(
        names("rtn:lloyd4:g128"),
        vec![n("codes", 8192), n("scales", 256), n("codebook", 64)]
    );
    // The code stream rounds up to whole bytes.
    let odd = normal_matrix(1, 3, 1.0, 2);
    let q = quantize_rtn(odd.view(), &spec("rtn:int3:channel:asym")).unwrap();
    assert_eq!(q.storage().bytes(), 2 + 2 + 1);
}

const CANONICAL: &[&str] = &[
    "rtn:int4:g128:sym",
    "rtn:int4:g128:asym",
    "rtn:int3:g128:asym",
    "rtn:int2:g64:asym",
    "rtn:int8:channel:sym",
    "rtn:int1:tensor:sym",
    "rtn:nf4:g64",
    "rtn:nf3:g64",
    "rtn:fp4:g32",
    "rtn:fp6-e2m3:g32",
    "rtn:fp6-e3m2:g32",
    "rtn:mxfp4",
    "rtn:mxfp6",
    "rtn:mxfp6-e3m2",
    "rtn:mxfp8",
    "rtn:mxfp8-e5m2",
    "rtn:nvfp4",
    "rtn:fp8-e4m3:channel",
    "rtn:fp8-e5m2:channel",
    "rtn:lloyd4:g128",
    "rtn:int4:g128:asym:mse",
    "rtn:nf4:g64:mse",
];

fn round_trip(r: &str) -> String {
    let s = spec(r);
    let out = StageSpec::new("rtn", s.args()).to_string();
    assert_eq!(format!("rtn:{s}"), out, "Display is the args joined");
    // Parsing the canonical form gives the same spec.
    assert_eq!(spec(&out), s, "{r}");
    out
}

#[test]
fn canonical_recipes_round_trip() {
    for &r in CANONICAL {
        assert_eq!(round_trip(r), r);
    }
}

#[test]
fn scale_format_suffixes_round_trip() {
    for &r in CANONICAL {
        let s = spec(r);
        if matches!(s.grid, Grid::Mx(_) | Grid::Nvfp4) {
            continue;
        }
        for (suffix, fmt) in [
            ("f32", ScaleFormat::F32),
            ("bf16", ScaleFormat::Bf16),
            ("f16", ScaleFormat::F16),
        ] {
            let with = format!("{r}:{suffix}");
            let parsed = spec(&with);
            assert_eq!(parsed.scale_format, fmt, "{with}");
            assert_eq!(parsed, s.with_scale_format(fmt));
            let out = round_trip(&with);
            if fmt == s.scale_format {
                assert_eq!(out, r, "a default suffix is dropped");
            } else {
                assert_eq!(out, with);
            }
        }
    }
}

#[test]
fn defaults_are_filled_in() {
    let cases = [
        ("rtn:int4", "rtn:int4:g128:asym"),
        ("rtn:int4:sym", "rtn:int4:g128:sym"),
        ("rtn:int8:channel", "rtn:int8:channel:asym"),
        ("rtn:nf4", "rtn:nf4:g64"),
        ("rtn:nf3", "rtn:nf3:g64"),
        ("rtn:fp4", "rtn:fp4:g32"),
        ("rtn:fp4-e2m1", "rtn:fp4:g32"),
        ("rtn:fp8-e4m3", "rtn:fp8-e4m3:channel"),
        ("rtn:fp8-e5m2", "rtn:fp8-e5m2:channel"),
        ("rtn:lloyd3", "rtn:lloyd3:g128"),
        ("rtn:mxfp6-e2m3", "rtn:mxfp6"),
        ("rtn:mxfp8-e4m3", "rtn:mxfp8"),
        // argument order does not matter; output is canonical
        ("rtn:int4:mse:sym:g64", "rtn:int4:g64:sym:mse"),
        ("rtn:int4:f32:asym:tensor", "rtn:int4:tensor:asym:f32"),
        ("rtn:nf4:g64:f32", "rtn:nf4:g64"),
    ];
    for (r, want) in cases {
        assert_eq!(round_trip(r), want, "{r}");
    }
    let s = spec("rtn:int4");
    assert_eq!(
        s.grid,
        Grid::Int {
            bits: 4,
            sym: false
        }
    );
    assert_eq!(s.granularity, Granularity::Group(128));
    assert_eq!(s.scale_format, ScaleFormat::F16);
    assert!(!s.mse_clip);
    assert_eq!(
        QuantSpec::new(Grid::Nvfp4).granularity,
        Granularity::Group(16)
    );
    assert_eq!(
        QuantSpec::new(Grid::Normal { bits: 4 }).scale_format,
        ScaleFormat::F32
    );
}

#[test]
fn rtn_compressor_recipe_and_from_stage() {
    for &r in CANONICAL {
        let stage: StageSpec = r.parse().unwrap();
        let rtn = Rtn::from_stage(&stage).unwrap();
        assert_eq!(rtn.recipe(), r);
        let w = normal_matrix(4, 128, 0.1, 5);
        let c = rtn
            .compress(w.view(), &shrink_core::Context::default())
            .unwrap();
        let direct = quantize_rtn(w.view(), &rtn.spec).unwrap();
        assert_eq!(c.to_dense(), direct.to_dense(), "{r}");
    }
    let stage: StageSpec = "gptq:int4".parse().unwrap();
    assert!(matches!(Rtn::from_stage(&stage), Err(Error::Recipe { .. })));
}

#[test]
fn extra_arguments_are_passed_to_the_caller() {
    let stage: StageSpec = "gptq:int4:actorder:g64".parse().unwrap();
    let mut seen = Vec::new();
    let s = QuantSpec::parse_args(&stage, |a| {
        seen.push(a.to_string());
        a == "actorder"
    })
    .unwrap();
    assert_eq!(seen, ["actorder"]);
    assert_eq!(s.granularity, Granularity::Group(64));
}

/// `(recipe, the argument the error must name)`.
const BAD: &[(&str, &str)] = &[
    ("rtn:int9:g128", "int9"),
    ("rtn:int0", "int0"),
    ("rtn:int", "int"),
    ("rtn:lloyd9", "lloyd9"),
    ("rtn:foo4", "foo4"),
    ("rtn:nf2", "nf2"),
    ("rtn:int4:g0", "g0"),
    ("rtn:int4:g12x", "g12x"),
    ("rtn:int4:g", "g"),
    (
        "rtn:int4:g99999999999999999999999",
        "g99999999999999999999999",
    ),
    ("rtn:nf4:sym", "sym"),
    ("rtn:fp4:asym", "asym"),
    ("rtn:mxfp4:g32", "g32"),
    ("rtn:nvfp4:channel", "channel"),
    ("rtn:int4:g128:sym:asym", "asym"),
    ("rtn:int4:g128:g64", "g64"),
    ("rtn:int4:channel:tensor", "tensor"),
    ("rtn:int4:f32:bf16", "bf16"),
    ("rtn:int4:mse:mse", "mse"),
    ("rtn:mxfp4:mse", "mse"),
    ("rtn:nvfp4:mse", "mse"),
    ("rtn:int1:sym:mse", "mse"),
    ("rtn:mxfp4:f32", "f32"),
    ("rtn:nvfp4:f16", "f16"),
    ("rtn", "rtn"),
    ("rtn:int4:e8m0", "e8m0"),
    ("rtn:int4:e4m3", "e4m3"),
    ("rtn:int4:actorder", "actorder"),
];

#[test]
fn errors_name_the_bad_argument() {
    for &(r, part) in BAD {
        match try_spec(r) {
            Err(Error::Recipe {
                part: got,
                recipe,
                reason,
            }) => {
                assert_eq!(got, part, "{r}: error names `{got}` ({reason})");
                assert_eq!(recipe, r);
                assert!(!reason.is_empty());
            }
            Err(e) => panic!("{r}: not a recipe error: {e:?}"),
            Ok(s) => panic!("{r}: accepted as {s}"),
        }
    }
}

#[test]
fn invalid_specs_built_in_code_are_rejected() {
    let w = normal_matrix(2, 64, 1.0, 3);
    let bad = [
        QuantSpec::new(Grid::Int { bits: 4, sym: true }).with_granularity(Granularity::Group(0)),
        QuantSpec::new(Grid::Int { bits: 9, sym: true }),
        QuantSpec::new(Grid::Int {
            bits: 0,
            sym: false,
        }),
        QuantSpec::new(Grid::Normal { bits: 5 }),
        QuantSpec::new(Grid::Int { bits: 4, sym: true }).with_scale_format(ScaleFormat::E8m0),
        QuantSpec::new(Grid::Int { bits: 4, sym: true }).with_scale_format(ScaleFormat::E4m3),
        QuantSpec::new(Grid::Nvfp4).with_granularity(Granularity::Group(32)),
        QuantSpec::new(Grid::Mx(shrink_quant::float::FloatFormat::E2M1)).with_mse_clip(true),
        QuantSpec::new(Grid::Int { bits: 1, sym: true }).with_mse_clip(true),
    ];
    for s in bad {
        let e = quantize_rtn(w.view(), &s).expect_err(&format!("{s:?} accepted"));
        assert!(matches!(e, Error::InvalidArgument { .. }), "{s:?}: {e:?}");
    }
}
