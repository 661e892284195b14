//! Low-rank benches on a random N x N problem (the reference's timing
//! problem: `W = 0.02 G`, `R = A A^T / N + 0.01 I`).
//!
//! ```text
//! cargo bench -p shrink-lowrank --bench lowrank                     # N = 512
//! SHRINK_BENCH_N=4096 cargo bench -p shrink-lowrank --features lapack --bench lowrank
//! ```
//!
//! Groups: `svd` (faer's thin SVD, its right singular vectors alone (the
//! CoSpaDi initialization), LAPACK's `gesdd` with the `lapack` feature, and
//! the randomized rank-N/16 SVD) and `qera_r32` (QERA-exact by
//! the symmetric square root and full SVD, and by the Cholesky factor and the
//! block Krylov SVD). For the same comparison against the NumPy reference in
//! one run, see `examples/lowrank_speed.rs`.
//!
//! Group `cospadi_ratio0.5`: CoSpaDi at ratio 0.5 (`k`, `s` from the paper's
//! split; N = 512: k = 163, s = 82), the fit with 2 and with 20 iterations
//! (no early stop).
//!
//! With `SHRINK_BENCH_LARGE=1`, group `cospadi_ratio0.5_4096` also times the
//! fit with one iteration on the 4096 x 4096 problem (k = 1310, s = 656;
//! randomized SVD initialization, Block-OMP, one sweep of atom updates).
//! Criterion takes at least ten samples of several minutes each; for one
//! timing of the same problem run `cargo run --release -p shrink-lowrank
//! --example cospadi_speed -- --n 4096 --iters 1`. Measured figures are in
//! `benches/README.md` of this crate.

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use shrink_core::linalg::matmul;
use shrink_core::{Context, LayerStats};
use shrink_lowrank::dense::{randomized_svd, right_singular_vectors, thin_svd};
use shrink_lowrank::{Budget, Cospadi, LowRank, Method, Randomized, Rank, Solver, Whitening};
use std::hint::black_box;
use std::time::Duration;

fn size() -> usize {
    std::env::var("SHRINK_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

fn problem(n: usize) -> (Array2<f64>, LayerStats) {
    let mut rng = StdRng::seed_from_u64(0);
    let mut g = || -> f64 { StandardNormal.sample(&mut rng) };
    let w = Array2::from_shape_simple_fn((n, n), || 0.02 * g());
    let a = Array2::from_shape_simple_fn((n, n), &mut g);
    let mut r = matmul(a.view(), a.t()) / n as f64;
    r.diag_mut().mapv_inplace(|x| x + 0.01);
    let stats = LayerStats::from_parts(r, 1, None, None).expect("statistics");
    (w, stats)
}

fn bench(c: &mut Criterion) {
    let n = size();
    let (w, stats) = problem(n);
    let mut g = c.benchmark_group("svd");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function(format!("faer thin {n}"), |b| {
        b.iter(|| thin_svd(black_box(w.view())).expect("svd"))
    });
    g.bench_function(format!("faer right vectors {n}"), |b| {
        b.iter(|| right_singular_vectors(black_box(w.view())).expect("svd"))
    });
    #[cfg(feature = "lapack")]
    g.bench_function(format!("lapack gesdd {n}"), |b| {
        b.iter(|| shrink_lowrank::lapack::thin_svd(black_box(w.view())).expect("svd"))
    });
    let k = (n / 16).max(1);
    g.bench_function(format!("randomized r{k} {n}"), |b| {
        b.iter(|| randomized_svd(black_box(w.view()), k, Randomized::default(), 0).expect("rsvd"))
    });
    g.finish();

    let w32 = w.mapv(|x| x as f32);
    let ctx = Context::with_stats(&stats);
    let mut g = c.benchmark_group("qera_r32");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let exact = LowRank::new(Method::Qera(Whitening::SymSqrt), Rank::Fixed(32));
    let fast = LowRank::new(Method::Qera(Whitening::Cholesky), Rank::Fixed(32))
        .with_solver(Solver::krylov());
    g.bench_function(format!("sqrt + full SVD {n}"), |b| {
        b.iter(|| exact.fit(black_box(w32.view()), &ctx).expect("qera"))
    });
    g.bench_function(format!("chol + krylov {n}"), |b| {
        b.iter(|| fast.fit(black_box(w32.view()), &ctx).expect("qera"))
    });
    g.finish();

    let mut g = c.benchmark_group("cospadi_ratio0.5");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    for iters in [2, 20] {
        let mut co = Cospadi::new(Budget::Ratio(0.5));
        co.iters = iters;
        co.tol = 0.0;
        g.bench_function(format!("it{iters} {n}"), |b| {
            b.iter(|| co.fit(black_box(w32.view()), &ctx).expect("cospadi"))
        });
    }
    g.finish();

    if std::env::var_os("SHRINK_BENCH_LARGE").is_some() {
        let n = 4096;
        let (w, stats) = problem(n);
        let w32 = w.mapv(|x| x as f32);
        let ctx = Context::with_stats(&stats);
        let mut co = Cospadi::new(Budget::Ratio(0.5));
        co.iters = 1;
        let mut g = c.benchmark_group("cospadi_ratio0.5_4096");
        g.sample_size(10).measurement_time(Duration::from_secs(60));
        g.bench_function("it1 4096", |b| {
            b.iter(|| co.fit(black_box(w32.view()), &ctx).expect("cospadi"))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
