//! Low-rank timings on one random N x N problem, side by side with the NumPy
//! reference in the same run.
//!
//! ```text
//! cargo run --release --example lowrank_speed -- [--n 4096] [--rank 32] [--big-rank 256]
//!     [--power 2] [--oversample P] [--krylov 6] [--big-krylov 1] [--decay] [--svd-only] [--reference ../shared/peers/lowrank_ref.py] [--skip-full] [--json]
//! ```
//!
//! The problem is the reference's timing problem (`lowrank_ref.py --time N`):
//! `W = 0.02 G` and `R = A A^T / N + 0.01 I` with Gaussian `G`, `A` (a flat
//! spectrum, the hard case for sketches); `--decay` uses instead
//! `W = G1 diag(0.02 (i+1)^-1/2) G2` (a slowly decaying spectrum, like trained
//! weights). Rows:
//!
//! * `thin SVD` (faer, full) beside `rsvd r<big-rank>` (randomized subspace
//!   iteration, `--power` iterations) and `krylov r<big-rank>` (block Krylov,
//!   `--big-krylov` blocks): time and the excess Frobenius error of each over
//!   the optimum (from the full SVD's tail);
//! * QERA-exact at `--rank` three ways: the paper's symmetric square root with
//!   the full SVD (`qera`), the Cholesky factor with the full SVD
//!   (`qera:chol`), and the Cholesky factor with the randomized SVD
//!   (`qera:chol:rand`, subspace iteration with `--power` iterations) and
//!   with the block Krylov SVD (`qera:chol:krylov`, `--krylov` blocks); the
//!   excess output error of each over the exact optimum is printed;
//! * SVD-LLM at `--rank` (Cholesky + full SVD).
//!
//! With `--reference`, the reference's `qera_exact` and `svd_llm` are timed
//! once each (`python3`, f64, `OPENBLAS_NUM_THREADS=1` as its docs advise)
//! right after, and the ratios printed.

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use shrink::core::linalg::{matmul, quadratic_trace};
use shrink::core::{Context, LayerStats};
use shrink::lowrank::dense::{block_krylov_svd, randomized_svd, thin_svd};
use shrink::lowrank::{LowRank, Method, Randomized, Rank, Solver, Whitening};
use std::process::{Command, ExitCode};
use std::time::Instant;

struct Args {
    n: usize,
    rank: usize,
    big_rank: usize,
    reference: Option<String>,
    skip_full: bool,
    json: bool,
    decay: bool,
    power: usize,
    krylov: Option<usize>,
    big_krylov: usize,
    oversample: Option<usize>,
    svd_only: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        n: 4096,
        rank: 32,
        big_rank: 256,
        reference: None,
        skip_full: false,
        json: false,
        decay: false,
        power: 2,
        krylov: None,
        big_krylov: 1,
        oversample: None,
        svd_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut num = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a positive integer"))
        };
        match x.as_str() {
            "--n" => a.n = num("--n")?,
            "--rank" => a.rank = num("--rank")?,
            "--big-rank" => a.big_rank = num("--big-rank")?,
            "--reference" => a.reference = it.next(),
            "--skip-full" => a.skip_full = true,
            "--power" => a.power = num("--power")?,
            "--krylov" => a.krylov = Some(num("--krylov")?),
            "--big-krylov" => a.big_krylov = num("--big-krylov")?,
            "--oversample" => a.oversample = Some(num("--oversample")?),
            "--svd-only" => a.svd_only = true,
            "--json" => a.json = true,
            "--decay" => a.decay = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.n == 0 || a.rank == 0 || a.big_rank == 0 {
        return Err("sizes must be positive".into());
    }
    Ok(a)
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_secs_f64())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let n = args.n;
    let mut rng = StdRng::seed_from_u64(0);
    let w64 = Array2::from_shape_simple_fn((n, n), || {
        0.02 * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)
    });
    let w64 = if args.decay {
        // G1 diag(sigma) G2 / n with Gaussian G1, G2 and sigma_i = (i+1)^-1/2:
        // a slowly decaying spectrum, like trained weights.
        let mut g1 = Array2::from_shape_simple_fn((n, n), || {
            <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)
        });
        let g2 = Array2::from_shape_simple_fn((n, n), || {
            <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)
        });
        for (j, mut c) in g1.columns_mut().into_iter().enumerate() {
            let s = 0.02 / (j as f64 + 1.0).sqrt();
            c.mapv_inplace(|x| x * s);
        }
        matmul(g1.view(), g2.view())
    } else {
        w64
    };
    let a = Array2::from_shape_simple_fn((n, n), || {
        <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)
    });
    let mut r = matmul(a.view(), a.t()) / n as f64;
    drop(a);
    r.diag_mut().mapv_inplace(|x| x + 0.01);
    let w = w64.mapv(|x| x as f32);
    let stats = match LayerStats::from_parts(r.clone(), 1, None, None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ctx = Context::with_stats(&stats);
    let mut rows: Vec<(String, f64, Option<f64>)> = Vec::new();
    let report = |rows: &mut Vec<(String, f64, Option<f64>)>, name: String, s: f64, excess| {
        eprintln!("{name:<28} {s:>9.3} s");
        rows.push((name, s, excess));
    };

    // Full thin SVD beside the randomized ones.
    let k = args.big_rank.min(n);
    let cfg = Randomized {
        oversample: args.oversample,
        power_iters: args.power,
    };
    let kcfg = Randomized {
        oversample: None,
        power_iters: args.big_krylov,
    };
    let mut sketches = Vec::new();
    for (name, krylov) in [
        (format!("rsvd r{k} q{}", args.power), false),
        (format!("krylov r{k} q{}", args.big_krylov), true),
    ] {
        let (rs, t) = time(|| {
            if krylov {
                block_krylov_svd(w64.view(), k, kcfg, 0)
            } else {
                randomized_svd(w64.view(), k, cfg, 0)
            }
        });
        match rs {
            Ok(x) => sketches.push((name, x, t)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let full = if args.skip_full {
        None
    } else {
        let (full, t_full) = time(|| thin_svd(w64.view()));
        match full {
            Ok(x) => {
                report(&mut rows, "thin SVD (faer)".into(), t_full, None);
                Some(x)
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    for (name, rs, t) in sketches {
        // ||W - U_k S_k V_k^T||^2 = ||W||^2 - sum of the kept squares, since
        // U_k^T W = S_k V_k^T for the Rayleigh-Ritz triplets.
        let excess = full.as_ref().map(|f| {
            let opt: f64 = f.s[k..].iter().map(|x| x * x).sum();
            let total: f64 = f.s.iter().map(|x| x * x).sum();
            let kept: f64 = rs.s.iter().map(|x| x * x).sum();
            (total - kept) / opt - 1.0
        });
        report(&mut rows, name, t, excess);
    }

    // QERA-exact three ways, and SVD-LLM.
    let obj = |m: &LowRank| -> Result<(f64, f64), shrink::Error> {
        let (f, t) = time(|| m.fit(w.view(), &ctx));
        let f = f?;
        let e = &w64 - &f.to_dense();
        Ok((quadratic_trace(e.view(), r.view()), t))
    };
    let rank = Rank::Fixed(args.rank);
    let variants = [
        (
            "qera (sqrt, full SVD)",
            LowRank::new(Method::Qera(Whitening::SymSqrt), rank),
        ),
        (
            "qera:chol (full SVD)",
            LowRank::new(Method::Qera(Whitening::Cholesky), rank),
        ),
        (
            "qera:chol:rand",
            LowRank::new(Method::Qera(Whitening::Cholesky), rank)
                .with_solver(Solver::Randomized(cfg)),
        ),
        (
            "qera:chol:krylov",
            LowRank::new(Method::Qera(Whitening::Cholesky), rank).with_solver(match args.krylov {
                Some(q) => Solver::Krylov(Randomized {
                    oversample: None,
                    power_iters: q,
                }),
                None => Solver::krylov(),
            }),
        ),
        ("svd-llm (full SVD)", LowRank::new(Method::SvdLlm, rank)),
    ];
    let mut exact_obj = None;
    let mut ours = std::collections::BTreeMap::new();
    for (name, m) in variants.iter() {
        if args.svd_only || (args.skip_full && m.solver == Solver::Exact) {
            continue;
        }
        match obj(m) {
            Ok((o, t)) => {
                let base = *exact_obj.get_or_insert(o);
                report(
                    &mut rows,
                    format!("{name} r{}", args.rank),
                    t,
                    Some(o / base - 1.0),
                );
                ours.insert(name.to_string(), t);
            }
            Err(e) => {
                eprintln!("error: {name}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    let mut reference = None;
    if let Some(path) = &args.reference {
        let dir = std::path::Path::new(path)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| ".".into());
        let code = format!(
            "import sys, json; sys.path.insert(0, {dir:?}); import lowrank_ref as L; \
             print(json.dumps(L.time_methods({n}, {}, reps=1)))",
            args.rank
        );
        eprintln!("running the reference (python3, one BLAS thread)...");
        match Command::new("python3")
            .arg("-c")
            .arg(&code)
            .env("OPENBLAS_NUM_THREADS", "1")
            .env("OMP_NUM_THREADS", "1")
            .env("MKL_NUM_THREADS", "1")
            .output()
        {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout);
                match serde_json::from_str::<serde_json::Value>(text.trim()) {
                    Ok(v) => reference = Some(v),
                    Err(e) => eprintln!("could not read the reference's output ({e}): {text}"),
                }
            }
            Ok(out) => eprintln!(
                "the reference failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("could not run python3: {e}"),
        }
    }

    if args.json {
        for (name, s, excess) in &rows {
            println!(
                "{}",
                serde_json::json!({"n": n, "what": name, "seconds": s, "excess_error": excess})
            );
        }
        if let Some(v) = &reference {
            println!("{}", serde_json::json!({"n": n, "reference": v}));
        }
    } else {
        println!("N = {n}");
        println!("{:<28} {:>10} {:>14}", "what", "seconds", "excess error");
        for (name, s, excess) in &rows {
            let e = excess.map_or_else(|| "-".into(), |x| format!("{:.2e}", x));
            println!("{name:<28} {s:>10.3} {e:>14}");
        }
        if let Some(v) = &reference {
            for (key, ours_key) in [
                ("qera_exact", "qera:chol:krylov"),
                ("svd_llm", "svd-llm (full SVD)"),
            ] {
                if let Some(t) = v[key]["median_s"].as_f64() {
                    let mine = ours.get(ours_key).copied();
                    println!(
                        "reference {key:<12} {t:>10.3} s   ours ({ours_key}) {}",
                        mine.map_or_else(
                            || "-".into(),
                            |m| format!("{m:.3} s, {:.1}x faster", t / m)
                        )
                    );
                }
            }
            if let (Some(t), Some(m)) = (
                v["qera_exact"]["median_s"].as_f64(),
                ours.get("qera (sqrt, full SVD)"),
            ) {
                println!(
                    "reference qera_exact vs ours qera (sqrt, full SVD): {:.1}x faster",
                    t / m
                );
            }
        }
    }
    ExitCode::SUCCESS
}
