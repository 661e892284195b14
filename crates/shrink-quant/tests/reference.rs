//! `quantize_rtn(..).to_dense()` equals a direct f64 re-implementation of
//! quant_ref.py (`rtn_sym`, `rtn_asym`, `nf4`) bit for bit.

mod common;

use common::*;
use ndarray::Array2;
use rand::Rng;
use shrink_core::Reconstruct;
use shrink_quant::float::{f16_bits, f16_from_bits};
use shrink_quant::{Granularity, quantize_rtn};

const SHAPES: [(usize, usize); 4] = [(8, 256), (6, 384), (5, 128), (33, 64)];

fn granularities(cols: usize) -> Vec<String> {
    let mut v: Vec<String> = [32, 64, 128]
        .iter()
        .filter(|&&g| cols.is_multiple_of(g))
        .map(|g| format!("g{g}"))
        .collect();
    v.push("channel".into());
    v.push("tensor".into());
    v
}

fn check(w: &Array2<f32>, recipe: &str) {
    let spec = spec(recipe);
    let g = group_len(spec.granularity, w.nrows(), w.ncols());
    let want = match spec.grid {
        shrink_quant::Grid::Int { bits, sym: true } => ref_rtn_sym(w, u32::from(bits), g),
        shrink_quant::Grid::Int { bits, sym: false } => ref_rtn_asym(w, u32::from(bits), g),
        shrink_quant::Grid::Normal { bits: 4 } => ref_nf4(w, g),
        other => panic!("no reference for {other:?}"),
    };
    let got = quantize_rtn(w.view(), &spec).unwrap().to_dense();
    assert_bits_eq(&got, &want, recipe);
}

fn matrices() -> Vec<Array2<f32>> {
    let mut out = Vec::new();
    for (k, &(r, c)) in SHAPES.iter().enumerate() {
        out.push(awkward_matrix(r, c, 100 + k as u64));
        out.push(heavy_matrix(r, c, 200 + k as u64));
    }
    out
}

#[test]
fn nf4_table_is_the_published_one() {
    assert_eq!(shrink_quant::normal::NF4, NF4_PUBLISHED);
    assert_eq!(
        shrink_quant::normal::normal_float_code(4),
        NF4_PUBLISHED.to_vec()
    );
}

#[test]
fn int_sym_matches_reference() {
    for w in matrices() {
        for gran in granularities(w.ncols()) {
            for bits in 2..=8 {
                check(&w, &format!("rtn:int{bits}:{gran}:sym"));
            }
        }
    }
}

#[test]
fn int_asym_matches_reference() {
    for w in matrices() {
        for gran in granularities(w.ncols()) {
            for bits in 1..=8 {
                check(&w, &format!("rtn:int{bits}:{gran}:asym"));
            }
        }
    }
}

#[test]
fn nf4_matches_reference() {
    for w in matrices() {
        for gran in granularities(w.ncols()) {
            check(&w, &format!("rtn:nf4:{gran}"));
        }
    }
}

#[test]
fn all_zero_and_constant_matrices_match_reference() {
    let z = Array2::<f32>::zeros((4, 128));
    let c = Array2::<f32>::from_elem((4, 128), -0.37);
    for w in [&z, &c] {
        for gran in ["g32", "g128", "channel", "tensor"] {
            for bits in 2..=8 {
                check(w, &format!("rtn:int{bits}:{gran}:sym"));
                check(w, &format!("rtn:int{bits}:{gran}:asym"));
            }
            check(w, &format!("rtn:nf4:{gran}"));
        }
    }
    // All-zero input reconstructs to exactly zero.
    for recipe in ["rtn:int4:g32:sym", "rtn:int4:g32:asym", "rtn:nf4:g64"] {
        assert!(
            quantize_rtn(z.view(), &spec(recipe))
                .unwrap()
                .to_dense()
                .iter()
                .all(|&v| v == 0.0)
        );
    }
}

/// Many random groups, one scale each: catches rare rounding differences
/// (double rounding of the f16 scale, half-way cases) that a few matrices miss.
#[test]
fn many_random_groups_match_reference() {
    let mut r = rng(7);
    for bits in 2..=8u32 {
        let mut w = Array2::<f32>::zeros((4096, 32));
        for mut row in w.rows_mut() {
            let scale = 10f32.powf(r.random_range(-2.0f32..2.0));
            row.mapv_inplace(|_| scale * r.random_range(-1.0f32..1.0));
        }
        check(&w, &format!("rtn:int{bits}:g32:sym"));
        check(&w, &format!("rtn:int{bits}:g32:asym"));
        if bits == 4 {
            check(&w, "rtn:nf4:g32");
        }
    }
}

/// The f16 scale is rounded once, from the f64 quotient (numpy's
/// `astype(np.float16)` on float64), not via f32 (double rounding). With
/// `absmax / (2^(B-1)-1)` double rounding cannot occur (the quotient's bits
/// are periodic), but `(max - min) / (2^B - 1)` of the asymmetric grid can.
#[test]
fn f16_scale_is_rounded_once_from_f64() {
    let mut r = rng(3);
    let mut cases = Vec::new();
    for bits in [2u32, 3, 4, 8] {
        let maxq = f64::from((1u32 << bits) - 1);
        let mut n = 0;
        while n < 6 {
            let hi: f32 = r.random_range(0.0f32..2.0);
            let lo: f32 = -r.random_range(0.0f32..2.0) * 10f32.powi(r.random_range(-4..1));
            let s = (f64::from(hi) - f64::from(lo)) / maxq;
            if f64_to_f16(s) != f64::from(f16_from_bits(f16_bits(s as f32))) {
                cases.push((bits, lo, hi));
                n += 1;
            }
        }
    }
    for (bits, lo, hi) in cases {
        let mut w = Array2::from_shape_fn((1, 32), |(_, j)| lo + (hi - lo) * (j as f32 / 31.0));
        w[[0, 0]] = lo;
        w[[0, 31]] = hi;
        w.mapv_inplace(|x| x.clamp(lo, hi));
        check(&w, &format!("rtn:int{bits}:g32:asym"));
        // The stored scale is the once-rounded one.
        let q = quantize_rtn(w.view(), &spec(&format!("rtn:int{bits}:g32:asym"))).unwrap();
        let (s, _) = ref_asym_params(w.as_slice().unwrap(), bits);
        assert_eq!(
            f64::from(q.quantizer().scale_value(q.params()[0].raw_scale)),
            f64_to_f16(s),
            "lo {lo:e} hi {hi:e}"
        );
    }
}

/// NF4 values next to the midpoints between two levels: the implementation's
/// midpoint search must agree with the reference's f32 argmin (first index on ties).
#[test]
fn nf4_near_midpoints_matches_reference() {
    let mut w = Array2::<f32>::zeros((15, 64));
    for k in 0..15 {
        let mid = (NF4_PUBLISHED[k] + NF4_PUBLISHED[k + 1]) / 2.0;
        w[[k, 0]] = 1.0; // absmax 1: x / absmax == x exactly
        for d in -31i32..=31 {
            w[[k, (d + 32) as usize]] = f32::from_bits((mid.to_bits() as i32 + d) as u32);
        }
    }
    for gran in ["g64", "channel"] {
        check(&w, &format!("rtn:nf4:{gran}"));
    }
    // With absmax 1 the codes are plain argmins.
    let q = quantize_rtn(w.view(), &spec("rtn:nf4:g64")).unwrap();
    for ((i, j), &x) in w.indexed_iter() {
        assert_eq!(
            usize::from(q.codes()[i * 64 + j]),
            ref_nf4_index(x),
            "x = {x:e}"
        );
    }
}

/// Integer values exactly half-way between two levels round to even.
#[test]
fn half_way_cases_round_to_even() {
    // absmax 7 with int4:sym gives s = 1 exactly; x.5 values are ties.
    let mut w = Array2::<f32>::zeros((1, 32));
    let xs = [7.0, -7.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, 6.5, -6.5];
    for (j, &x) in xs.iter().enumerate() {
        w[[0, j]] = x;
    }
    let got = quantize_rtn(w.view(), &spec("rtn:int4:g32:sym"))
        .unwrap()
        .to_dense();
    let want = [7.0, -7.0, 0.0, 2.0, 2.0, -0.0, -2.0, -2.0, 4.0, 6.0, -6.0];
    for (j, &v) in want.iter().enumerate() {
        assert_eq!(got[[0, j]], v, "x = {}", xs[j]);
    }
    check(&w, "rtn:int4:g32:sym");
    check(&w, "rtn:int4:g32:asym");
}

#[test]
fn granularity_group_lengths() {
    assert_eq!(group_len(Granularity::Tensor, 3, 4), 12);
    assert_eq!(group_len(Granularity::Channel, 3, 4), 4);
    assert_eq!(group_len(Granularity::Group(2), 3, 4), 2);
}
