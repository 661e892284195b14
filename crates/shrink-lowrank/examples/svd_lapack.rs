//! faer's thin SVD beside LAPACK's (`gesdd` through ndarray-linalg and the
//! system OpenBLAS) on one random N x N matrix, timed once each in the same
//! run, with the largest relative disagreement of the singular values.
//!
//! ```text
//! cargo run --release -p shrink-lowrank --features lapack --example svd_lapack -- [N]
//! ```
//!
//! On a machine whose cores are busy with other work, set
//! `OPENBLAS_NUM_THREADS=1`: OpenBLAS threads spinning on busy cores ran
//! 10-20x slower here (faer uses the rayon pool, `RAYON_NUM_THREADS`).

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use shrink_lowrank::{dense, lapack};
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let n: usize = match std::env::args().nth(1).map(|s| s.parse()) {
        None => 2048,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: svd_lapack [N]");
            return ExitCode::from(2);
        }
    };
    let mut rng = StdRng::seed_from_u64(0);
    let a = Array2::from_shape_simple_fn((n, n), || {
        <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)
    });
    let t = Instant::now();
    let f = match dense::thin_svd(a.view()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tf = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let l = match lapack::thin_svd(a.view()) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tl = t.elapsed().as_secs_f64();
    let top = l.s[0];
    let diff =
        f.s.iter()
            .zip(&l.s)
            .map(|(x, y)| (x - y).abs() / top)
            .fold(0.0, f64::max);
    println!(
        "N = {n}: faer {tf:.3} s, LAPACK (OpenBLAS) {tl:.3} s, faer/LAPACK {:.2}; \
         max |s_faer - s_lapack| / s_max = {diff:.2e}",
        tf / tl
    );
    ExitCode::SUCCESS
}
