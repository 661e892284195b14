//! For every linear of a layer file and every recipe: bits/weight, relative
//! weight error, relative output error (from the file's Gram matrix) and
//! seconds.
//!
//! ```text
//! cargo run --release --example layer_report -- <layer.safetensors>... [--recipe R]... [--json]
//! ```
//!
//! Without `--recipe` every recipe of `shrink::recipe::KNOWN_RECIPES` runs.
//! `--json` prints one JSON line per row:
//! `{"linear","recipe","bits_per_weight","rel_weight_error","rel_output_error","seconds"}`,
//! plus `"density"` for pruning recipes (results with a mask) and
//! `"rel_fisher_error"` when the layer has Fisher information. A recipe that
//! does not apply to a linear (missing data, or a shape its format cannot
//! hold) is skipped with the reason on stderr.

use shrink::core::LayerFile;
use shrink::recipe::{KNOWN_RECIPES, build, report};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut files = Vec::new();
    let mut recipes = Vec::new();
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => json = true,
            "--recipe" | "-r" => match args.next() {
                Some(r) => recipes.push(r),
                None => {
                    eprintln!("--recipe needs a value");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("usage: layer_report <layer.safetensors>... [--recipe R]... [--json]");
                return ExitCode::SUCCESS;
            }
            _ => files.push(a),
        }
    }
    if files.is_empty() {
        eprintln!("usage: layer_report <layer.safetensors>... [--recipe R]... [--json]");
        return ExitCode::from(2);
    }
    if recipes.is_empty() {
        recipes = KNOWN_RECIPES.iter().map(|s| s.to_string()).collect();
    }
    let mut pipelines = Vec::new();
    for r in &recipes {
        match build(r) {
            Ok(p) => pipelines.push(p),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut rows = Vec::new();
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
            for p in &pipelines {
                let name = format!("{stem} {lin}");
                match report::evaluate(&name, p, w.view(), Some(&stats), 0) {
                    Ok(row) => {
                        if json {
                            println!("{}", row.to_json());
                        } else {
                            eprint!(".");
                        }
                        rows.push(row);
                    }
                    // A recipe that does not apply to this linear (data the
                    // file lacks, such as Fisher information for fwsvd, or a
                    // shape the format cannot hold, such as a 384-wide row
                    // for 256-weight K-quant blocks) is skipped with the
                    // reason; other errors stop the report.
                    Err(
                        e @ (shrink::core::Error::Stats { .. } | shrink::core::Error::Shape { .. }),
                    ) => {
                        eprintln!(
                            "\nskipped: {name} {}: {e}",
                            shrink::core::Compressor::recipe(p)
                        );
                    }
                    Err(e) => {
                        eprintln!("error: {name} {}: {e}", shrink::core::Compressor::recipe(p));
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
    }
    if !json {
        eprintln!();
        print!("{}", report::table(&rows));
    }
    ExitCode::SUCCESS
}
