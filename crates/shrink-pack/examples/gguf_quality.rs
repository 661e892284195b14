//! Relative output error of `gguf:` recipes on real layers.
//!
//! ```text
//! cargo run --release -p shrink-pack --example gguf_quality -- <layer.safetensors>... [--recipe R]...
//! ```
//!
//! For every linear of every layer file (weights plus calibration Gram
//! matrix, the format of `../shared/data/minilm-l6/layer*.safetensors`) and
//! every recipe, prints `linear recipe bits/weight rel_output_error`, where
//! the error is `tr((W-W') H (W-W')^T) / tr(W H W^T)`; then, per recipe, the
//! mean over the linears it ran on. A linear whose `in_features` is not a
//! whole number of the type's blocks (384 for the 256-value K-quants) is
//! skipped with a note, as ggml cannot store it in that type.

use shrink_core::{Compressor, Context, Error, LayerFile, Objective, Reconstruct, StageSpec};
use shrink_pack::gguf::GgufQuant;
use std::process::ExitCode;

const DEFAULT: &[&str] = &[
    "gguf:q4_0",
    "gguf:q4_0:imatrix",
    "gguf:q4_0:gptq",
    "gguf:q4_k",
    "gguf:q4_k:imatrix",
    "gguf:q4_k:gptq",
    "gguf:q8_0",
    "gguf:q8_0:gptq",
    "gguf:q5_k",
    "gguf:q5_k:imatrix",
    "gguf:q5_k:gptq",
    "gguf:q6_k",
    "gguf:q6_k:imatrix",
    "gguf:q6_k:gptq",
];

fn main() -> ExitCode {
    let mut files = Vec::new();
    let mut recipes = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--recipe" | "-r" => match args.next() {
                Some(r) => recipes.push(r),
                None => {
                    eprintln!("--recipe needs a value");
                    return ExitCode::from(2);
                }
            },
            _ => files.push(a),
        }
    }
    if files.is_empty() {
        eprintln!("usage: gguf_quality <layer.safetensors>... [--recipe gguf:...]...");
        return ExitCode::from(2);
    }
    if recipes.is_empty() {
        recipes = DEFAULT.iter().map(|s| s.to_string()).collect();
    }
    let mut quants = Vec::new();
    for r in &recipes {
        match r
            .parse::<StageSpec>()
            .and_then(|s| GgufQuant::from_stage(&s))
        {
            Ok(q) => quants.push(q),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut sums = vec![(0.0f64, 0usize); quants.len()];
    for f in &files {
        let file = match LayerFile::open(f) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let stem = std::path::Path::new(f)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("layer")
            .to_string();
        for lin in file.linears() {
            let (w, stats) = match (file.weight(lin), file.stats(lin)) {
                (Ok(w), Ok(s)) => (w, s),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let ctx = Context::with_stats(&stats);
            for (q, sum) in quants.iter().zip(sums.iter_mut()) {
                let name = format!("{stem} {lin}");
                match q.compress(w.view(), &ctx) {
                    Ok(c) => {
                        let e = match Objective::Output.relative(
                            w.view(),
                            c.to_dense().view(),
                            Some(&stats),
                        ) {
                            Ok(e) => e,
                            Err(e) => {
                                eprintln!("error: {e}");
                                return ExitCode::FAILURE;
                            }
                        };
                        println!(
                            "{name:<36} {:<22} {:>7.4} {e:.6e}",
                            q.recipe(),
                            c.storage().bits_per_weight()
                        );
                        sum.0 += e;
                        sum.1 += 1;
                    }
                    Err(e @ Error::Shape { .. }) => {
                        println!("{name:<36} {:<22} skipped: {e}", q.recipe());
                    }
                    Err(e) => {
                        eprintln!("error: {name} {}: {e}", q.recipe());
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
    }
    println!();
    println!("mean relative output error per recipe:");
    for (q, (s, n)) in quants.iter().zip(&sums) {
        if *n > 0 {
            println!("{:<22} {:.6e}  over {n} linears", q.recipe(), s / *n as f64);
        } else {
            println!("{:<22} (no linear fits its blocks)", q.recipe());
        }
    }
    ExitCode::SUCCESS
}
