//! CoSpaDi timings and errors per linear, side by side with the NumPy
//! reference (`cospadi_ref.py`) run right after each linear.
//!
//! ```text
//! cargo run --release -p shrink-lowrank --example cospadi_speed -- \
//!     LAYER.safetensors... [--ratio 0.5] [--linear NAME] [--iters N] [--tol T] \
//!     [--pw N] [--coder auto|omp|bompN] [--curve] [--reference ../shared/peers/cospadi_ref.py]
//!     [--ref-iters 20]
//! cargo run --release -p shrink-lowrank --example cospadi_speed -- --n 4096 [--ratio 0.5]
//! ```
//!
//! Per linear: `k`, `s`, iterations run, seconds, and the relative output
//! error `tr((W-W')H(W-W')^T) / tr(W H W^T)` of the stored (bf16)
//! factorization; with `--reference`, the reference's error and seconds
//! (`python3`, `OPENBLAS_NUM_THREADS=1`) and the speed ratio. `--n N` times
//! a random `N x N` problem instead (the bench's: `W = 0.02 G`,
//! `H = A A^T / N + 0.01 I`). `--curve` also prints the relative error of the
//! f64 factorization after every iteration.

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use shrink_core::linalg::{matmul, quadratic_trace};
use shrink_core::{Context, LayerFile, LayerStats};
use shrink_lowrank::{Budget, Coder, Cospadi, Precision, SparseDictMatrix};
use std::process::{Command, ExitCode};
use std::time::Instant;

struct Args {
    files: Vec<String>,
    ratio: f64,
    linear: Option<String>,
    iters: Option<usize>,
    tol: Option<f64>,
    reference: Option<String>,
    ref_iters: usize,
    n: Option<usize>,
    pw: Option<usize>,
    coder: Option<Coder>,
    curve: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        files: vec![],
        ratio: 0.5,
        linear: None,
        iters: None,
        tol: None,
        reference: None,
        ref_iters: 20,
        n: None,
        pw: None,
        coder: None,
        curve: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = || it.next().ok_or(format!("{x} needs a value"));
        match x.as_str() {
            "--ratio" => a.ratio = val()?.parse().map_err(|e| format!("--ratio: {e}"))?,
            "--linear" => a.linear = Some(val()?),
            "--iters" => a.iters = Some(val()?.parse().map_err(|e| format!("--iters: {e}"))?),
            "--tol" => a.tol = Some(val()?.parse().map_err(|e| format!("--tol: {e}"))?),
            "--reference" => a.reference = Some(val()?),
            "--ref-iters" => {
                a.ref_iters = val()?.parse().map_err(|e| format!("--ref-iters: {e}"))?
            }
            "--pw" => a.pw = Some(val()?.parse().map_err(|e| format!("--pw: {e}"))?),
            "--curve" => a.curve = true,
            "--coder" => {
                let v = val()?;
                a.coder = Some(match v.as_str() {
                    "auto" => Coder::Auto,
                    "omp" => Coder::Omp,
                    _ => Coder::Block(
                        v.strip_prefix("bomp")
                            .and_then(|x| x.parse().ok())
                            .ok_or(format!("--coder: auto, omp or bomp<N>, not {v}"))?,
                    ),
                })
            }
            "--n" => a.n = Some(val()?.parse().map_err(|e| format!("--n: {e}"))?),
            "-h" | "--help" => return Err(String::new()),
            _ if x.starts_with("--") => return Err(format!("unknown flag {x}")),
            _ => a.files.push(x),
        }
    }
    if a.files.is_empty() && a.n.is_none() {
        return Err("give layer files or --n N".into());
    }
    Ok(a)
}

fn rel_error(w: &Array2<f32>, wp: &Array2<f32>, stats: &LayerStats) -> f64 {
    let w64 = w.mapv(f64::from);
    let e = &w64 - &wp.mapv(f64::from);
    quadratic_trace(e.view(), stats.gram().view())
        / quadratic_trace(w64.view(), stats.gram().view())
}

fn run(a: &Args, file: Option<&str>, name: &str, w: &Array2<f32>, stats: &LayerStats) {
    let mut c = Cospadi::new(Budget::Ratio(a.ratio));
    if let Some(i) = a.iters {
        c.iters = i;
    }
    if let Some(p) = a.pw {
        c.power_iters = p;
    }
    if let Some(t) = a.tol {
        c.tol = t;
    }
    if let Some(k) = a.coder {
        c.coder = k;
    }
    let ctx = Context::with_stats(stats);
    let t0 = Instant::now();
    let fit = c.fit(w.view(), &ctx).expect("cospadi");
    let form = SparseDictMatrix::from_fit(&fit, Precision::Bf16).expect("form");
    let secs = t0.elapsed().as_secs_f64();
    let err = rel_error(w, &shrink_core::Reconstruct::to_dense(&form), stats);
    if a.curve {
        // The whitened objective relative to ||G W^T||^2 = tr(W H W^T) is the
        // relative output error of the f64 factorization after each sweep.
        let w64 = w.mapv(f64::from);
        let total = quadratic_trace(w64.view(), stats.gram().view());
        let rel: Vec<String> = fit
            .history
            .iter()
            .map(|h| format!("{:.5}", h / total))
            .collect();
        println!("{name} curve {}", rel.join(" "));
        // Full precision of the last value, to compare builds bit for bit.
        if let Some(h) = fit.history.last() {
            println!("{name} final objective {h:e}");
        }
    }
    print!(
        "{name:32} k {:4} s {:4} it {:2} ours {err:.5} {secs:8.2}s",
        fit.k,
        fit.s,
        fit.history.len()
    );
    if let (Some(r), Some(f)) = (&a.reference, file) {
        let out = Command::new("python3")
            .env("OPENBLAS_NUM_THREADS", "1")
            .args([r.as_str(), f, "--json", "--linear", name])
            .args(["--ratio", &a.ratio.to_string()])
            .args(["--iters", &a.ref_iters.to_string()])
            .output()
            .expect("python3");
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |key: &str| -> Option<f64> {
            let at = text.find(&format!("\"{key}\": "))? + key.len() + 4;
            let rest = &text[at..];
            let end = rest.find([',', '}'])?;
            rest[..end].trim().parse().ok()
        };
        match (field("cospadi_err"), field("cospadi_s")) {
            (Some(e), Some(s)) => print!(
                " | ref {e:.5} {s:8.2}s | err x{:.3} speed x{:.1}",
                err / e,
                s / secs
            ),
            _ => print!(
                " | reference failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
    println!();
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!(
                "usage: cospadi_speed LAYER.safetensors... [--ratio R] [--linear NAME] [--iters N] \
                 [--tol T] [--pw N] [--coder auto|omp|bompN] [--curve] [--reference cospadi_ref.py] \
                 [--ref-iters N] | --n N"
            );
            return ExitCode::from(2);
        }
    };
    if let Some(n) = a.n {
        let mut rng = StdRng::seed_from_u64(0);
        let mut g = || -> f64 { StandardNormal.sample(&mut rng) };
        let w = Array2::from_shape_simple_fn((n, n), || (0.02 * g()) as f32);
        let x = Array2::from_shape_simple_fn((n, n), &mut g);
        let mut h = matmul(x.view(), x.t()) / n as f64;
        h.diag_mut().mapv_inplace(|v| v + 0.01);
        let stats = LayerStats::from_parts(h, 1, None, None).expect("statistics");
        run(&a, None, &format!("random {n}x{n}"), &w, &stats);
    }
    for f in &a.files {
        let file = LayerFile::open(f).expect("layer file");
        for lin in file.linears() {
            if a.linear.as_ref().is_some_and(|l| l != lin) {
                continue;
            }
            let (w, stats) = (file.weight(lin).expect("w"), file.stats(lin).expect("h"));
            run(&a, Some(f), lin, &w, &stats);
        }
    }
    ExitCode::SUCCESS
}
