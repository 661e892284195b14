//! Every grid: the reconstructed values lie on the grid, and scales follow
//! the documented rule and format.

mod common;

use common::*;
use ndarray::Array2;
use shrink_core::Reconstruct;
use shrink_quant::float::{FloatFormat, e8m0, round_to_bf16, round_to_f16};
use shrink_quant::normal::normal_float_code;
use shrink_quant::{QuantizedMatrix, ScaleFormat, quantize_rtn};

fn matrices() -> Vec<Array2<f32>> {
    vec![
        awkward_matrix(8, 256, 1),
        heavy_matrix(16, 128, 2),
        normal_matrix(4, 512, 0.02, 3),
        normal_matrix(3, 64, 30.0, 4),
    ]
}

fn quantize(w: &Array2<f32>, recipe: &str) -> (QuantizedMatrix, Array2<f32>) {
    let q = quantize_rtn(w.view(), &spec(recipe)).unwrap_or_else(|e| panic!("{recipe}: {e}"));
    let d = q.to_dense();
    assert_eq!(d.dim(), w.dim());
    (q, d)
}

/// Each weight's group values, for scale checks.
fn group_values(w: &Array2<f32>, q: &QuantizedMatrix) -> Vec<Vec<f32>> {
    let mut g = vec![Vec::new(); q.groups()];
    for ((i, j), &x) in w.indexed_iter() {
        g[q.group_of(i, j)].push(x);
    }
    g
}

fn absmax(xs: &[f32]) -> f32 {
    xs.iter().fold(0f32, |m, x| m.max(x.abs()))
}

fn stored(fmt: ScaleFormat, s: f64) -> f32 {
    match fmt {
        ScaleFormat::F32 => s as f32,
        ScaleFormat::F16 => f64_to_f16(s) as f32,
        ScaleFormat::Bf16 => round_to_bf16(s as f32),
        _ => unreachable!(),
    }
}

#[test]
fn int_sym_values_are_integer_multiples_of_the_scale() {
    for w in matrices() {
        for bits in 2..=8u32 {
            for fmt in ["", ":f32", ":bf16"] {
                let r = format!("rtn:int{bits}:g64:sym{fmt}");
                let (q, d) = quantize(&w, &r);
                let groups = group_values(&w, &q);
                let qmax = (1i32 << (bits - 1)) - 1;
                for ((i, j), &v) in d.indexed_iter() {
                    let k = q.group_of(i, j);
                    let s = q.quantizer().scale_value(q.params()[k].raw_scale);
                    let a = absmax(&groups[k]);
                    let want_s = if a == 0.0 {
                        1.0
                    } else {
                        stored(q.spec().scale_format, f64::from(a) / f64::from(qmax))
                    };
                    assert_eq!(s, want_s, "{r}: scale of group {k}");
                    assert_eq!(q.params()[k].zero, 0);
                    let n = f64::from(v) / f64::from(s);
                    if q.spec().scale_format != ScaleFormat::F32 {
                        assert_eq!(n, n.round(), "{r}: w'/s = {n} at ({i},{j})");
                    }
                    let n = n.round() as i32;
                    assert!((-qmax - 1..=qmax).contains(&n), "{r}: level {n}");
                    assert_eq!(n as f32 * s, v, "{r}: ({i},{j})");
                }
            }
        }
    }
}

#[test]
fn int_asym_values_are_shifted_integer_multiples() {
    for w in matrices() {
        for bits in 1..=8u32 {
            let r = format!("rtn:int{bits}:g32:asym");
            let (q, d) = quantize(&w, &r);
            let groups = group_values(&w, &q);
            let maxq = (1i32 << bits) - 1;
            for ((i, j), &v) in d.indexed_iter() {
                let k = q.group_of(i, j);
                let p = q.params()[k];
                let s = q.quantizer().scale_value(p.raw_scale);
                let (s_ref, z_ref) = ref_asym_params(&groups[k], bits);
                assert_eq!(f64::from(s), f64_to_f16(s_ref), "{r}: scale of group {k}");
                assert_eq!(f64::from(p.zero), z_ref, "{r}: zero point of group {k}");
                let n = f64::from(v) / f64::from(s) + f64::from(p.zero);
                assert_eq!(n, n.round(), "{r}: ({i},{j})");
                assert!((0..=maxq).contains(&(n as i32)));
                assert_eq!(i32::from(q.codes()[i * w.ncols() + j]), n as i32);
            }
        }
    }
}

#[test]
fn sign_grid_is_plus_minus_mean_abs() {
    for w in matrices() {
        let (q, d) = quantize(&w, "rtn:int1:g32:sym");
        let groups = group_values(&w, &q);
        for ((i, j), &v) in d.indexed_iter() {
            let k = q.group_of(i, j);
            let xs = &groups[k];
            let mean = xs.iter().map(|x| f64::from(x.abs())).sum::<f64>() / xs.len() as f64;
            let s = if mean > 0.0 {
                f64_to_f16(mean) as f32
            } else {
                1.0
            };
            assert!(v == s || v == -s, "({i},{j}): {v} not +-{s}");
            assert_eq!(
                v > 0.0,
                w[[i, j]] > 0.0,
                "sign of ({i},{j}) = {}",
                w[[i, j]]
            );
        }
    }
}

/// Table grids: every value is `fl(level * s)` for a level of the table, and
/// the nearest level to `w' / s` is that level (`w' / s` itself can be one
/// f32 rounding away from it).
fn check_table(w: &Array2<f32>, r: &str, table: &[f32]) {
    let (q, d) = quantize(w, r);
    let groups = group_values(w, &q);
    for ((i, j), &v) in d.indexed_iter() {
        let k = q.group_of(i, j);
        let s = q.quantizer().scale_value(q.params()[k].raw_scale);
        let a = absmax(&groups[k]);
        if q.spec().scale_format == ScaleFormat::F32 {
            assert_eq!(
                s,
                if a == 0.0 { 1.0 } else { a },
                "{r}: f32 absmax of group {k}"
            );
        } else {
            assert_eq!(
                s,
                if a == 0.0 {
                    1.0
                } else {
                    f64_to_f16(f64::from(a)) as f32
                },
                "{r}: scale of group {k}"
            );
        }
        let c = usize::from(q.codes()[i * w.ncols() + j]);
        assert!(c < table.len());
        assert_eq!(table[c] * s, v, "{r}: ({i},{j})");
        let u = f64::from(v) / f64::from(s);
        let (k, d) = nearest(table, u);
        assert!(
            d <= f64::from(table[k].abs()) * 2f64.powi(-23),
            "{r}: w'/s = {u:e} at ({i},{j}) is not a level"
        );
        assert_eq!(table[k], table[c], "{r}: ({i},{j})");
    }
}

/// Index of the level nearest to `u`, and the distance.
fn nearest(table: &[f32], u: f64) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (k, &t) in table.iter().enumerate() {
        let d = (u - f64::from(t)).abs();
        if d < best.1 {
            best = (k, d);
        }
    }
    best
}

#[test]
fn nf4_values_are_nf4_levels_times_f32_absmax() {
    for w in matrices() {
        for g in ["g64", "g32", "channel", "tensor"] {
            check_table(&w, &format!("rtn:nf4:{g}"), &NF4_PUBLISHED);
        }
    }
}

#[test]
fn nf3_values_are_nf3_levels() {
    let nf3 = normal_float_code(3);
    assert_eq!(nf3.len(), 8);
    assert_eq!((nf3[0], nf3[7]), (-1.0, 1.0));
    assert!(nf3.contains(&0.0));
    for w in matrices() {
        check_table(&w, "rtn:nf3:g64", &nf3);
    }
}

#[test]
fn lloyd_values_are_codebook_levels() {
    for w in matrices() {
        for bits in 2..=4 {
            let r = format!("rtn:lloyd{bits}:g64");
            let (q, _) = quantize(&w, &r);
            let cb = q
                .quantizer()
                .codebook()
                .expect("Lloyd keeps its codebook")
                .to_vec();
            assert_eq!(cb.len(), 1 << bits);
            assert!(cb.windows(2).all(|p| p[0] <= p[1]), "sorted");
            assert!(
                cb.iter().all(|v| v.abs() <= 1.0),
                "levels of absmax-normalized data lie in [-1, 1]"
            );
            check_table(&w, &r, &cb);
        }
    }
}

/// Small-float grids with a free scale: `w' = fl(v * s)` for a finite value
/// `v` of the format, and `w' / s` is `v` up to one f32 rounding.
fn check_float(w: &Array2<f32>, r: &str, f: FloatFormat) {
    let (q, d) = quantize(w, r);
    let groups = group_values(w, &q);
    for ((i, j), &x) in d.indexed_iter() {
        let k = q.group_of(i, j);
        let s = q.quantizer().scale_value(q.params()[k].raw_scale);
        let a = absmax(&groups[k]);
        let want_s = if a == 0.0 {
            1.0
        } else {
            stored(
                q.spec().scale_format,
                f64::from(a) / f64::from(f.max_finite()),
            )
        };
        assert_eq!(s, want_s, "{r}: scale of group {k}");
        let c = q.codes()[i * w.ncols() + j];
        assert!(
            !f.is_nan_code(c) && !f.is_inf_code(c),
            "{r}: special code {c:#x}"
        );
        let v = f.decode(c);
        assert!(v.abs() <= f.max_finite());
        assert_eq!(v * s, x, "{r}: ({i},{j})");
        let u = f64::from(x) / f64::from(s);
        let nearest = f.decode(f.encode(u as f32));
        assert_eq!(nearest, v, "{r}: w'/s = {u:e} at ({i},{j})");
        assert!(
            (u - f64::from(v)).abs() <= f64::from(v.abs()) * 2f64.powi(-23),
            "{r}: w'/s = {u:e} at ({i},{j}) is not a {f:?} value"
        );
        // With an f16/bf16 scale the product v * s is exact in f32, so the
        // division recovers v exactly.
        if q.spec().scale_format != ScaleFormat::F32 {
            assert_eq!(u, f64::from(v), "{r}: ({i},{j})");
        }
    }
}

#[test]
fn float_grid_values_are_format_values() {
    for w in matrices() {
        check_float(&w, "rtn:fp8-e4m3:channel", FloatFormat::E4M3);
        check_float(&w, "rtn:fp8-e5m2:channel", FloatFormat::E5M2);
        check_float(&w, "rtn:fp8-e4m3:tensor", FloatFormat::E4M3);
        check_float(&w, "rtn:fp4:g32", FloatFormat::E2M1);
        check_float(&w, "rtn:fp6-e2m3:g32", FloatFormat::E2M3);
        check_float(&w, "rtn:fp6-e3m2:g64:f32", FloatFormat::E3M2);
        check_float(&w, "rtn:fp4:channel:bf16", FloatFormat::E2M1);
    }
}

#[test]
fn mx_scales_are_powers_of_two_and_elements_in_format() {
    for (tok, f) in [
        ("mxfp4", FloatFormat::E2M1),
        ("mxfp6", FloatFormat::E2M3),
        ("mxfp6-e3m2", FloatFormat::E3M2),
        ("mxfp8", FloatFormat::E4M3),
        ("mxfp8-e5m2", FloatFormat::E5M2),
    ] {
        for w in matrices() {
            let r = format!("rtn:{tok}");
            let (q, d) = quantize(&w, &r);
            assert_eq!(q.groups(), w.len() / 32);
            let groups = group_values(&w, &q);
            for (k, p) in q.params().iter().enumerate() {
                assert!(p.raw_scale <= 0xFE, "{r}: E8M0 code {:#x}", p.raw_scale);
                let s = q.quantizer().scale_value(p.raw_scale);
                assert_eq!(s, e8m0::decode(p.raw_scale as u8));
                let pow2 = if s.is_normal() {
                    s.to_bits() & 0x007F_FFFF == 0
                } else {
                    s.to_bits().count_ones() == 1
                };
                assert!(s > 0.0 && pow2, "{r}: scale {s:e} is not a power of two");
                let a = absmax(&groups[k]);
                if a > 0.0 {
                    let e = ((a.to_bits() >> 23) & 0xFF) as i32 - 127; // a is normal here
                    assert_eq!(
                        e8m0::exponent(p.raw_scale as u8),
                        e - f.emax(),
                        "{r}: group {k} amax {a:e}"
                    );
                }
            }
            for ((i, j), &x) in d.indexed_iter() {
                let s = q
                    .quantizer()
                    .scale_value(q.params()[q.group_of(i, j)].raw_scale);
                let u = x / s; // exact: s is a power of two
                assert_eq!(u * s, x);
                assert!(u.abs() <= f.max_finite(), "{r}: element {u:e}");
                assert_eq!(f.decode(f.encode(u)), u, "{r}: element {u:e} not in {f:?}");
                assert_eq!(f.decode(q.codes()[i * w.ncols() + j]), u);
            }
        }
    }
}

#[test]
fn nvfp4_block_scales_are_e4m3_values() {
    let e4m3 = FloatFormat::E4M3;
    let e2m1 = FloatFormat::E2M1;
    for w in matrices() {
        let (q, d) = quantize(&w, "rtn:nvfp4");
        assert_eq!(q.groups(), w.len() / 16);
        let amax = absmax(w.as_slice().unwrap());
        let g = q
            .quantizer()
            .tensor_scale()
            .expect("NVFP4 stores a tensor scale");
        assert_eq!(g, 448.0 * 6.0 / amax);
        let groups = group_values(&w, &q);
        for (k, p) in q.params().iter().enumerate() {
            assert!(p.raw_scale <= 0xFF);
            let code = p.raw_scale as u8;
            assert!(!e4m3.is_nan_code(code));
            let block = e4m3.decode(code);
            assert!(block > 0.0 && block <= 448.0, "block scale {block:e}");
            assert_eq!(e4m3.decode(e4m3.encode(block)), block);
            assert_eq!(q.quantizer().scale_value(p.raw_scale), block / g);
            let a = absmax(&groups[k]);
            if a > 0.0 && e4m3.decode(e4m3.encode(g * a / 6.0)) > 0.0 {
                assert_eq!(block, e4m3.decode(e4m3.encode(g * a / 6.0)), "block {k}");
            }
        }
        for ((i, j), &x) in d.indexed_iter() {
            let s = q
                .quantizer()
                .scale_value(q.params()[q.group_of(i, j)].raw_scale);
            let v = e2m1.decode(q.codes()[i * w.ncols() + j]);
            assert_eq!(v * s, x, "({i},{j})");
        }
    }
}

#[test]
fn f16_round_helper_agrees_with_crate_on_f32_inputs() {
    // Sanity check of the test's own f64 -> f16 rounding.
    for x in [1.0f32, 0.1, 65504.0, 6.1e-5, 3.0e-7, 1234.567, 0.333_333_34] {
        assert_eq!(f64_to_f16(f64::from(x)) as f32, round_to_f16(x), "{x}");
    }
    assert_eq!(f64_to_f16(65520.0), f64::INFINITY);
}
