//! Bad input gives a typed error, never a panic; `from_parts` rejects
//! inconsistent parts with `Error::Corrupt`.

mod common;

use common::*;
use ndarray::Array2;
use shrink_core::{Error, Reconstruct};
use shrink_quant::float::{FloatFormat, f16_bits};
use shrink_quant::{
    Grid, GroupParams, Prepared, QuantSpec, QuantizedMatrix, ScaleFormat, quantize_rtn,
};
use std::panic::{AssertUnwindSafe, catch_unwind};

const RECIPES: &[&str] = &[
    "rtn:int4:g32:sym",
    "rtn:int4:g32:asym",
    "rtn:int1:g32:sym",
    "rtn:int1:g32:asym",
    "rtn:int8:channel:asym:mse",
    "rtn:int3:tensor:sym:mse",
    "rtn:int4:g32:sym:f32",
    "rtn:int4:g32:asym:bf16",
    "rtn:nf4:g32",
    "rtn:nf3:channel:mse",
    "rtn:fp4:g32",
    "rtn:fp6-e3m2:g32:mse",
    "rtn:fp8-e4m3:channel",
    "rtn:fp8-e5m2:tensor",
    "rtn:lloyd2:g32",
    "rtn:lloyd4:channel:mse",
    "rtn:mxfp4",
    "rtn:mxfp8-e5m2",
    "rtn:nvfp4",
];

#[test]
fn non_finite_weights_name_row_and_column() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut w = normal_matrix(4, 64, 1.0, 1);
        w[[2, 37]] = bad;
        for &r in RECIPES {
            match quantize_rtn(w.view(), &spec(r)) {
                Err(Error::NonFinite {
                    position, value, ..
                }) => {
                    assert_eq!(position, "row 2, column 37", "{r}");
                    assert_eq!(value, bad.to_string());
                }
                other => panic!("{r} with {bad}: {other:?}"),
            }
        }
    }
}

#[test]
fn empty_matrices_are_rejected() {
    for shape in [(0, 5), (5, 0), (0, 0)] {
        let w = Array2::<f32>::zeros(shape);
        for &r in RECIPES {
            let e = quantize_rtn(w.view(), &spec(r)).expect_err(r);
            assert!(matches!(e, Error::Empty { .. }), "{r} {shape:?}: {e:?}");
        }
    }
}

#[test]
fn non_dividing_group_size_names_both_numbers() {
    let w = normal_matrix(3, 100, 1.0, 2);
    for r in [
        "rtn:int4:g128:sym",
        "rtn:int4:g128:asym",
        "rtn:nf4:g64",
        "rtn:fp4:g32",
        "rtn:lloyd4:g128",
        "rtn:mxfp4",
        "rtn:nvfp4",
    ] {
        match quantize_rtn(w.view(), &spec(r)) {
            Err(e @ Error::InvalidArgument { .. }) => {
                let msg = e.to_string();
                let g = match spec(r).granularity {
                    shrink_quant::Granularity::Group(g) => g,
                    _ => unreachable!(),
                };
                assert!(
                    msg.contains(&g.to_string()) && msg.contains("100"),
                    "{r}: {msg}"
                );
            }
            other => panic!("{r}: {other:?}"),
        }
    }
    // A group larger than the row.
    let w = normal_matrix(3, 64, 1.0, 2);
    assert!(matches!(
        quantize_rtn(w.view(), &spec("rtn:int4:g128")),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn f16_scale_overflow_is_an_error() {
    let w = normal_matrix(4, 128, 1e7, 3);
    for r in [
        "rtn:int4:g128:sym",
        "rtn:int4:g128:asym",
        "rtn:int8:channel:asym:mse",
        "rtn:fp4:g32",
        "rtn:lloyd4:g128",
    ] {
        match quantize_rtn(w.view(), &spec(r)) {
            Err(e @ Error::InvalidArgument { .. }) => {
                assert!(e.to_string().contains("f16"), "{r}: {e}")
            }
            other => panic!("{r}: {other:?}"),
        }
    }
    // f32 and bf16 scales (and f32 NF4/FP8 scales) hold them.
    for r in [
        "rtn:int4:g128:sym:f32",
        "rtn:int4:g128:asym:bf16",
        "rtn:nf4:g64",
        "rtn:fp8-e4m3:channel",
        "rtn:mxfp4",
        "rtn:nvfp4",
    ] {
        let q = quantize_rtn(w.view(), &spec(r)).unwrap_or_else(|e| panic!("{r}: {e}"));
        let d = q.to_dense();
        assert!(d.iter().all(|v| v.is_finite()), "{r}");
        let rel =
            (&d - &w).mapv(|x| f64::from(x).powi(2)).sum() / w.mapv(|x| f64::from(x).powi(2)).sum();
        assert!(rel < 0.05, "{r}: relative error {rel}");
    }
    // Just below the f16 limit is fine: absmax 7 * 65504 gives the largest f16 scale.
    let mut w = normal_matrix(1, 32, 1.0, 4);
    w[[0, 0]] = 7.0 * 65504.0;
    let q = quantize_rtn(w.view(), &spec("rtn:int4:g32:sym")).unwrap();
    assert_eq!(q.to_dense()[[0, 0]], 7.0 * 65504.0);
}

/// Extreme but finite inputs: every recipe either succeeds or returns an
/// error; nothing panics. The reconstruction is finite unless the weights
/// come within a rounding step of `f32::MAX` (a level just above the largest
/// weight can then overflow, exactly as in the numpy reference).
#[test]
fn extreme_inputs_never_panic() {
    let tiny = f32::from_bits(1); // smallest subnormal
    let mut inputs: Vec<Array2<f32>> = vec![
        Array2::zeros((2, 64)),
        Array2::from_elem((2, 64), f32::MAX),
        Array2::from_elem((2, 64), -f32::MAX),
        Array2::from_elem((2, 64), tiny),
        Array2::from_elem((2, 64), f32::MIN_POSITIVE),
        Array2::from_elem((2, 64), 1e-30),
        Array2::from_elem((1, 32), 3.0),
    ];
    let mut mixed = normal_matrix(2, 64, 1.0, 5);
    mixed[[0, 0]] = f32::MAX;
    mixed[[0, 1]] = -f32::MAX;
    mixed[[1, 3]] = tiny;
    inputs.push(mixed);
    let mut wide = normal_matrix(2, 64, 1e-6, 6);
    wide[[1, 0]] = 1e30;
    inputs.push(wide);
    inputs.push(Array2::from_shape_fn((2, 64), |(i, j)| {
        if (i + j).is_multiple_of(2) {
            tiny
        } else {
            -f32::MAX
        }
    }));

    let mut extra: Vec<String> = RECIPES.iter().map(|s| s.to_string()).collect();
    for b in 1..=8 {
        extra.push(format!("rtn:int{b}:channel:sym:f32"));
        extra.push(format!("rtn:int{b}:tensor:asym:f32"));
        extra.push(format!("rtn:int{b}:g32:asym:bf16:mse"));
        extra.push(format!("rtn:lloyd{b}:tensor"));
    }
    for w in &inputs {
        for r in &extra {
            let s = spec(r);
            let res = catch_unwind(AssertUnwindSafe(|| {
                quantize_rtn(w.view(), &s).map(|q| {
                    let d = q.to_dense();
                    let y = q.forward(w.view()).map(|y| y.len());
                    (d, y)
                })
            }));
            match res {
                Err(_) => panic!("{r} panicked on {:?}", &w.as_slice().unwrap()[..4]),
                Ok(Ok((d, _))) => {
                    let amax = w.iter().fold(0f32, |m, x| m.max(x.abs()));
                    assert!(
                        amax > 1e37 || d.iter().all(|v| v.is_finite()),
                        "{r}: non-finite reconstruction of {:?}",
                        &w.as_slice().unwrap()[..4]
                    );
                }
                Ok(Err(e)) => assert!(matches!(e, Error::InvalidArgument { .. }), "{r}: {e:?}"),
            }
        }
    }
}

#[test]
fn out_of_range_widths_built_in_code_are_errors() {
    let w = normal_matrix(2, 64, 1.0, 7);
    for grid in [
        Grid::Int { bits: 0, sym: true },
        Grid::Int {
            bits: 9,
            sym: false,
        },
        Grid::Int {
            bits: 255,
            sym: true,
        },
        Grid::Lloyd { bits: 0 },
        Grid::Lloyd { bits: 9 },
        Grid::Lloyd { bits: 64 },
        Grid::Normal { bits: 2 },
        Grid::Normal { bits: 200 },
    ] {
        let s = QuantSpec::new(grid).with_granularity(shrink_quant::Granularity::Group(32));
        let res = catch_unwind(|| quantize_rtn(w.view(), &s).map(|_| ()));
        match res {
            Err(_) => panic!("{grid:?} panicked"),
            Ok(r) => assert!(
                matches!(r, Err(Error::InvalidArgument { .. })),
                "{grid:?}: {r:?}"
            ),
        }
        let res = catch_unwind(|| Prepared::from_parts(s, Some(vec![0.0; 4]), None).map(|_| ()));
        assert!(matches!(res, Ok(Err(_))), "{grid:?}: from_parts {res:?}");
    }
}

// ------------------------------------------------------------------ from_parts

fn parts(r: &str) -> (Prepared, usize, usize, Vec<u8>, Vec<GroupParams>) {
    let w = normal_matrix(4, 64, 1.0, 8);
    let q = quantize_rtn(w.view(), &spec(r)).unwrap();
    (
        q.quantizer().clone(),
        4,
        64,
        q.codes().to_vec(),
        q.params().to_vec(),
    )
}

fn assert_corrupt(res: shrink_core::Result<QuantizedMatrix>, what: &str) {
    match res {
        Err(Error::Corrupt { .. }) => {}
        other => panic!("{what}: expected Error::Corrupt, got {other:?}"),
    }
}

#[test]
fn from_parts_accepts_its_own_parts() {
    for &r in RECIPES {
        let (p, rows, cols, codes, params) = parts(r);
        let w = normal_matrix(4, 64, 1.0, 8);
        let q = QuantizedMatrix::from_parts(p, rows, cols, codes, params).unwrap();
        assert_eq!(q, quantize_rtn(w.view(), &spec(r)).unwrap(), "{r}");
    }
}

#[test]
fn from_parts_rejects_wrong_code_count() {
    for &r in RECIPES {
        let (p, rows, cols, mut codes, params) = parts(r);
        codes.pop();
        assert_corrupt(
            QuantizedMatrix::from_parts(p.clone(), rows, cols, codes.clone(), params.clone()),
            r,
        );
        codes.extend([0, 0]);
        assert_corrupt(QuantizedMatrix::from_parts(p, rows, cols, codes, params), r);
    }
}

#[test]
fn from_parts_rejects_out_of_range_codes() {
    let cases: &[(&str, u8)] = &[
        ("rtn:int4:g32:sym", 16),
        ("rtn:int4:g32:asym", 0xFF),
        ("rtn:int1:g32:sym", 2),
        ("rtn:int3:g32:asym", 8),
        ("rtn:nf4:g32", 16),
        ("rtn:nf3:channel:mse", 8),
        ("rtn:lloyd2:g32", 4),
        ("rtn:fp4:g32", 16),
        ("rtn:mxfp4", 0x10),
        ("rtn:fp8-e4m3:channel", 0x7F), // E4M3 NaN
        ("rtn:fp8-e4m3:channel", 0xFF), // E4M3 -NaN
        ("rtn:fp8-e5m2:tensor", 0x7C),  // E5M2 +inf
        ("rtn:fp8-e5m2:tensor", 0x7E),  // E5M2 NaN
        ("rtn:mxfp8-e5m2", 0xFC),       // E5M2 -inf
        ("rtn:nvfp4", 0x10),
    ];
    for &(r, bad) in cases {
        let (p, rows, cols, mut codes, params) = parts(r);
        codes[77] = bad;
        assert_corrupt(
            QuantizedMatrix::from_parts(p, rows, cols, codes, params),
            &format!("{r} code {bad:#x}"),
        );
    }
}

#[test]
fn from_parts_rejects_wrong_group_count() {
    for &r in RECIPES {
        let (p, rows, cols, codes, mut params) = parts(r);
        let extra = params[0];
        params.push(extra);
        assert_corrupt(
            QuantizedMatrix::from_parts(p.clone(), rows, cols, codes.clone(), params.clone()),
            r,
        );
        params.truncate(params.len() - 2);
        assert_corrupt(QuantizedMatrix::from_parts(p, rows, cols, codes, params), r);
    }
}

#[test]
fn from_parts_rejects_zero_nan_inf_and_negative_scales() {
    let nan_f16 = u32::from(f16_bits(f32::NAN));
    let inf_f16 = u32::from(f16_bits(f32::INFINITY));
    let neg_f16 = u32::from(f16_bits(-1.0));
    let cases: Vec<(&str, Vec<u32>)> = vec![
        (
            "rtn:int4:g32:sym",
            vec![0, nan_f16, inf_f16, neg_f16, 0x8000],
        ),
        ("rtn:int4:g32:asym", vec![0, nan_f16, inf_f16, neg_f16]),
        (
            "rtn:int4:g32:sym:f32",
            vec![
                0,
                f32::NAN.to_bits(),
                f32::INFINITY.to_bits(),
                (-2.0f32).to_bits(),
            ],
        ),
        ("rtn:int4:g32:asym:bf16", vec![0, 0x7FC0, 0x7F80, 0xBF80]),
        (
            "rtn:nf4:g32",
            vec![0, f32::NAN.to_bits(), (-0.0f32).to_bits()],
        ),
        ("rtn:fp8-e4m3:channel", vec![0, f32::NAN.to_bits()]),
        ("rtn:mxfp4", vec![0xFF]), // E8M0 NaN
        (
            "rtn:nvfp4",
            vec![0, 0x80, u32::from(FloatFormat::E4M3.encode(-1.0)), 0x7F],
        ), // zero, -0, negative, NaN
    ];
    for (r, raws) in cases {
        for raw in raws {
            let (p, rows, cols, codes, mut params) = parts(r);
            params[1].raw_scale = raw;
            assert_corrupt(
                QuantizedMatrix::from_parts(p, rows, cols, codes, params),
                &format!("{r} raw scale {raw:#x}"),
            );
        }
    }
}

#[test]
fn from_parts_rejects_scale_bits_wider_than_the_format() {
    let cases: &[(&str, u32)] = &[
        ("rtn:int4:g32:sym", 0x1_3C00), // f16 1.0 with a stray high bit
        ("rtn:int4:g32:asym:bf16", 0x1_3F80),
        ("rtn:mxfp4", 0x17F), // E8M0 1.0
        ("rtn:nvfp4", 0x138), // E4M3 1.0
    ];
    for &(r, raw) in cases {
        let (p, rows, cols, codes, mut params) = parts(r);
        let fits = if raw > 0xFFFF {
            raw & 0xFFFF
        } else {
            raw & 0xFF
        };
        params[0].raw_scale = fits;
        assert!(
            QuantizedMatrix::from_parts(p.clone(), rows, cols, codes.clone(), params.clone())
                .is_ok(),
            "{r}"
        );
        params[0].raw_scale = raw;
        assert_corrupt(
            QuantizedMatrix::from_parts(p, rows, cols, codes, params),
            &format!("{r} raw {raw:#x}"),
        );
    }
}

#[test]
fn from_parts_rejects_out_of_range_zero_points() {
    let cases: &[(&str, u8)] = &[
        ("rtn:int4:g32:asym", 16),
        ("rtn:int1:g32:asym", 2),
        ("rtn:int3:g32:asym", 255),
        ("rtn:int4:g32:sym", 1), // no zero point at all
        ("rtn:nf4:g32", 3),
        ("rtn:mxfp4", 1),
    ];
    for &(r, z) in cases {
        let (p, rows, cols, codes, mut params) = parts(r);
        params[2].zero = z;
        assert_corrupt(
            QuantizedMatrix::from_parts(p, rows, cols, codes, params),
            &format!("{r} zero {z}"),
        );
    }
    // The largest valid zero point is accepted.
    let (p, rows, cols, codes, mut params) = parts("rtn:int4:g32:asym");
    params[2].zero = 15;
    assert!(QuantizedMatrix::from_parts(p, rows, cols, codes, params).is_ok());
}

#[test]
fn prepared_from_parts_checks_codebook_and_tensor_scale() {
    let lloyd = spec("rtn:lloyd2:g32");
    assert!(Prepared::from_parts(lloyd, Some(vec![-1.0, -0.2, 0.3, 1.0]), None).is_ok());
    for cb in [
        None,
        Some(vec![0.0; 3]),
        Some(vec![1.0, 0.0, 0.5, 0.7]),
        Some(vec![0.0, 1.0, f32::NAN, 2.0]),
    ] {
        assert!(
            matches!(
                Prepared::from_parts(lloyd, cb.clone(), None),
                Err(Error::Corrupt { .. })
            ),
            "{cb:?}"
        );
    }
    let nv = spec("rtn:nvfp4");
    assert!(Prepared::from_parts(nv, None, Some(3.5)).is_ok());
    for g in [
        None,
        Some(0.0),
        Some(-1.0),
        Some(f32::NAN),
        Some(f32::INFINITY),
    ] {
        assert!(
            matches!(
                Prepared::from_parts(nv, None, g),
                Err(Error::Corrupt { .. })
            ),
            "{g:?}"
        );
    }
    let _ = ScaleFormat::F16;
}
