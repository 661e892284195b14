mod common;
use common::*;
use shrink_quant::float::{f16_bits, f16_from_bits};

#[test]
fn explore_double_rounding() {
    // search f32 absmax values where absmax/qmax double-rounds
    let mut found = 0;
    for qmax in [3u32, 7, 15, 31, 63, 127] {
        let mut r = rng(qmax as u64);
        use rand::Rng;
        for _ in 0..2_000_000 {
            let a: f32 = r.random_range(0.01f32..10.0);
            let s = f64::from(a) / f64::from(qmax);
            let direct = f64_to_f16(s);
            let dbl = f64::from(f16_from_bits(f16_bits(s as f32)));
            if direct != dbl {
                if found < 5 {
                    println!(
                        "qmax {qmax} absmax {a:e} bits {:#x}: direct {direct:e} double {dbl:e}",
                        a.to_bits()
                    );
                }
                found += 1;
            }
        }
    }
    println!("found {found}");
}

#[test]
fn explore_nf4_ties() {
    let mut bad = 0;
    for k in 0..15 {
        let mid = (NF4_PUBLISHED[k] + NF4_PUBLISHED[k + 1]) / 2.0;
        let mut u = f32::from_bits(mid.to_bits().wrapping_sub(if mid > 0.0 { 40 } else { 0 }));
        let _ = &mut u;
        for d in -40i32..=40 {
            let u = f32::from_bits((mid.to_bits() as i32 + d) as u32);
            let mut w = ndarray::Array2::<f32>::zeros((1, 64));
            w[[0, 0]] = 1.0;
            w[[0, 1]] = u;
            let q = shrink_quant::quantize_rtn(w.view(), &spec("rtn:nf4:g64")).unwrap();
            use shrink_core::Reconstruct;
            let got = q.to_dense()[[0, 1]];
            let want = ref_nf4(&w, 64)[[0, 1]];
            if got != want {
                bad += 1;
                println!("k {k} mid {mid:e} u {u:e}: got {got:e} want {want:e}");
            }
        }
    }
    println!("bad {bad}");
}
