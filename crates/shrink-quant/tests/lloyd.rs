//! Lloyd-Max grids: better than uniform on Gaussian data, and monotone in bits.

mod common;

use common::*;
use ndarray::Array2;
use shrink_core::Reconstruct;
use shrink_quant::lloyd::gaussian_lloyd_max;
use shrink_quant::quantize_rtn;

fn mse(w: &Array2<f32>, recipe: &str) -> f64 {
    let d = quantize_rtn(w.view(), &spec(recipe)).unwrap().to_dense();
    (&d - w).mapv(|x| f64::from(x).powi(2)).mean().unwrap()
}

#[test]
fn lloyd4_beats_uniform_int4_on_gaussian_data() {
    for seed in 0..3 {
        let w = normal_matrix(128, 512, 1.0, seed);
        let lloyd = mse(&w, "rtn:lloyd4:g128");
        let int4 = mse(&w, "rtn:int4:g128:sym");
        let int4a = mse(&w, "rtn:int4:g128:asym");
        assert!(
            lloyd < int4,
            "seed {seed}: lloyd4 {lloyd:e} >= int4 sym {int4:e}"
        );
        assert!(
            lloyd < int4a,
            "seed {seed}: lloyd4 {lloyd:e} >= int4 asym {int4a:e}"
        );
        // Also at least as good as NF4, which is a fixed 16-level table.
        let nf4 = mse(&w, "rtn:nf4:g128");
        assert!(
            lloyd <= nf4 * 1.001,
            "seed {seed}: lloyd4 {lloyd:e} vs nf4 {nf4:e}"
        );
    }
}

#[test]
fn lloyd_error_decreases_with_bits() {
    let w = normal_matrix(64, 512, 1.0, 21);
    for gran in ["g128", "channel", "tensor"] {
        let errs: Vec<f64> = (1..=8)
            .map(|b| mse(&w, &format!("rtn:lloyd{b}:{gran}")))
            .collect();
        for b in 1..errs.len() {
            assert!(
                errs[b] < errs[b - 1],
                "{gran}: lloyd{} {:e} >= lloyd{} {:e}",
                b + 1,
                errs[b],
                b,
                errs[b - 1]
            );
        }
        // Four more bits buy well over an order of magnitude.
        assert!(errs[7] < errs[3] / 20.0, "{gran}: {errs:?}");
    }
}

#[test]
fn lloyd_tensor_grid_approaches_the_gaussian_optimum() {
    // With one tensor-wide scale (absmax), normalized data are N(0, 1/absmax^2);
    // the fitted codebook's MSE must be close to the Lloyd-Max optimum.
    let w = normal_matrix(256, 512, 1.0, 5);
    for bits in 2..=4 {
        let (opt, _) = gaussian_lloyd_max(1 << bits); // unit variance
        let got = mse(&w, &format!("rtn:lloyd{bits}:tensor"));
        assert!(
            got < opt * 1.03 && got > opt * 0.97,
            "lloyd{bits}: {got:e} vs optimum {opt:e}"
        );
    }
}

#[test]
fn lloyd_with_mse_clip_is_not_worse() {
    let w = heavy_matrix(64, 256, 3);
    for bits in 2..=4 {
        let a = mse(&w, &format!("rtn:lloyd{bits}:g128"));
        let b = mse(&w, &format!("rtn:lloyd{bits}:g128:mse"));
        assert!(b <= a, "lloyd{bits}: mse clip {b:e} > plain {a:e}");
    }
}
