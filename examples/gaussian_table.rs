//! Quantizers on Gaussian data beside the physical limits.
//!
//! ```text
//! cargo run --release --example gaussian_table [-- --json]
//! ```
//!
//! 1,000,448 seeded N(0,1) values (a 977 x 1024 matrix: the nearest count to
//! one million whose rows every group size here divides). For every recipe:
//! bits/weight with every stored byte counted, the MSE, and beside them the
//! Lloyd-Max optimum and the rate-distortion bound `2^(-2R)` at the same code
//! width R. `--json` prints `{"recipe","bits_per_weight","mse",...}` lines.

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use shrink::core::{Compressor, Context, Reconstruct};
use shrink::quant::lloyd::gaussian_lloyd_max;
use shrink::recipe::KNOWN_RECIPES;

fn main() -> Result<(), shrink::Error> {
    let json = std::env::args().any(|a| a == "--json");
    let mut rng = StdRng::seed_from_u64(2024);
    let w = Array2::from_shape_fn((977, 1024), |_| {
        let v: f32 = StandardNormal.sample(&mut rng);
        v
    });
    let n = w.len() as f64;
    if !json {
        println!(
            "{:<24} {:>8} {:>10} {:>12} {:>10}",
            "recipe", "bits/w", "mse", "lloyd-max(R)", "2^(-2R)"
        );
    }
    // Every calibration-free RTN recipe the library knows (data-aware methods
    // need statistics that Gaussian samples do not come with).
    for r in KNOWN_RECIPES.iter().filter(|r| r.starts_with("rtn:")) {
        let p = shrink::recipe::build(r)?;
        let q = p.compress(w.view(), &Context::default())?;
        let d = q.to_dense();
        let mse = w
            .iter()
            .zip(d.iter())
            .map(|(a, b)| {
                let e = f64::from(*a) - f64::from(*b);
                e * e
            })
            .sum::<f64>()
            / n;
        let bpw = q.storage().bits_per_weight();
        let code_bits = code_width(r);
        let (lm, _) = gaussian_lloyd_max(1usize << code_bits);
        let rd = 2f64.powi(-2 * code_bits as i32);
        if json {
            println!(
                "{{\"recipe\":\"{}\",\"bits_per_weight\":{bpw},\"mse\":{mse},\"code_bits\":{code_bits},\"lloyd_max_mse\":{lm},\"rate_distortion_mse\":{rd}}}",
                p.recipe()
            );
        } else {
            println!(
                "{:<24} {bpw:>8.4} {mse:>10.6} {lm:>12.6} {rd:>10.6}",
                p.recipe()
            );
        }
    }
    if !json {
        println!("\nLloyd-Max optimum of N(0,1) by code width (exact Gaussian integrals):");
        for b in 1..=4u32 {
            let (lm, _) = gaussian_lloyd_max(1 << b);
            println!(
                "  R = {b}: {lm:.6}   2^(-2R) = {:.6}",
                2f64.powi(-2 * b as i32)
            );
        }
    }
    Ok(())
}

/// The code width of a recipe's grid (the R of the bounds).
fn code_width(recipe: &str) -> u32 {
    let stage: shrink::core::StageSpec = recipe.parse().unwrap_or_else(|_| unreachable!());
    shrink::quant::QuantSpec::parse_args(&stage, |_| false)
        .map(|s| u32::from(s.grid.code_bits()))
        .unwrap_or(0)
}
