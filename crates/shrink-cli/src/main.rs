//! `shrink`: run compression recipes over weights and print what they cost
//! and what they lose.
//!
//! * `shrink demo [--json]`: seeded synthetic transformer-like layers, every
//!   known recipe, one row per recipe (no files needed).
//! * `shrink report <layer.safetensors>... [--recipe R]... [--json]`: the
//!   same over the linears of layer files with calibration statistics.
//! * `shrink recipes`: the recipes this build knows, in canonical form.

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use shrink_core::{Compressor, LayerFile, Pipeline};
use shrink_recipe::report::{self, Row};
use shrink_recipe::{KNOWN_RECIPES, build, synth};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "shrink",
    version,
    about = "Compress neural-network weights with composable recipes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Synthetic layers, every known recipe (or those given), one row per recipe.
    Demo {
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        /// Recipes to run (default: all known).
        #[arg(long = "recipe", short = 'r')]
        recipes: Vec<String>,
        /// Seed of the synthetic layers.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Every linear of layer files (weights + Gram matrices) under each recipe.
    Report {
        /// Layer files (safetensors with `<linear>.weight`, `.gram`, `.count`).
        #[arg(required = true)]
        files: Vec<String>,
        /// Recipes to run (default: all known).
        #[arg(long = "recipe", short = 'r')]
        recipes: Vec<String>,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the recipes this build knows.
    Recipes,
}

fn pipelines(recipes: &[String]) -> Result<Vec<Pipeline>, shrink_core::Error> {
    let list: Vec<String> = if recipes.is_empty() {
        KNOWN_RECIPES.iter().map(|s| s.to_string()).collect()
    } else {
        recipes.to_vec()
    };
    list.iter().map(|r| build(r)).collect()
}

/// A bar over `len` (linear, recipe) steps with the elapsed time, redrawn
/// every quarter second so that a single long fit (minutes for a large
/// CoSpaDi layer) still shows the clock moving. Hidden when stderr is not a
/// terminal.
fn progress(len: usize) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} {bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.enable_steady_tick(std::time::Duration::from_millis(250));
    pb
}

fn print_rows(rows: &[Row], json: bool) {
    if json {
        for r in rows {
            println!("{}", r.to_json());
        }
    } else {
        print!("{}", report::table(rows));
    }
}

fn demo(recipes: &[String], json: bool, seed: u64) -> Result<(), shrink_core::Error> {
    let layers = synth::demo_layers(seed)?;
    let ps = pipelines(recipes)?;
    let pb = progress(ps.len() * layers.len());
    let mut rows = Vec::new();
    for p in &ps {
        pb.set_message(p.recipe());
        // Pool over layers: bits weighted by weight count, errors averaged.
        let mut per = Vec::new();
        for l in &layers {
            per.push(report::evaluate(
                &l.name,
                p,
                l.weight.view(),
                Some(&l.stats),
                seed,
            )?);
            pb.inc(1);
        }
        let weights: Vec<f64> = layers.iter().map(|l| l.weight.len() as f64).collect();
        let total: f64 = weights.iter().sum();
        let k = per.len() as f64;
        rows.push(Row {
            linear: format!("synthetic x{}", layers.len()),
            recipe: p.recipe(),
            bits_per_weight: per
                .iter()
                .zip(&weights)
                .map(|(r, w)| r.bits_per_weight * w)
                .sum::<f64>()
                / total,
            rel_weight_error: per.iter().map(|r| r.rel_weight_error).sum::<f64>() / k,
            rel_output_error: Some(per.iter().filter_map(|r| r.rel_output_error).sum::<f64>() / k),
            rel_fisher_error: per
                .iter()
                .map(|r| r.rel_fisher_error)
                .sum::<Option<f64>>()
                .map(|f| f / k),
            seconds: per.iter().map(|r| r.seconds).sum(),
            density: per
                .iter()
                .zip(&weights)
                .map(|(r, w)| r.density.map(|d| d * w))
                .sum::<Option<f64>>()
                .map(|d| d / total),
        });
    }
    pb.finish_and_clear();
    print_rows(&rows, json);
    Ok(())
}

fn report_files(
    files: &[String],
    recipes: &[String],
    json: bool,
) -> Result<(), shrink_core::Error> {
    let ps = pipelines(recipes)?;
    let mut rows = Vec::new();
    for f in files {
        let file = LayerFile::open(f)?;
        let stem = std::path::Path::new(f)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("layer")
            .to_string();
        let pb = progress(file.linears().len() * ps.len());
        for lin in file.linears() {
            let w = file.weight(lin)?;
            let stats = file.stats(lin)?;
            for p in &ps {
                pb.set_message(format!("{lin} {}", p.recipe()));
                match report::evaluate(&format!("{stem} {lin}"), p, w.view(), Some(&stats), 0) {
                    Ok(row) => rows.push(row),
                    // A recipe that does not apply to this linear (data it
                    // needs is missing, or its shape does not fit the format)
                    // is skipped with the reason; other errors stop the report.
                    Err(
                        e @ (shrink_core::Error::Stats { .. } | shrink_core::Error::Shape { .. }),
                    ) => {
                        pb.println(format!("skipped: {stem} {lin} {}: {e}", p.recipe()));
                    }
                    Err(e) => return Err(e),
                }
                pb.inc(1);
            }
        }
        pb.finish_and_clear();
    }
    print_rows(&rows, json);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Demo {
            json,
            recipes,
            seed,
        } => demo(&recipes, json, seed),
        Command::Report {
            files,
            recipes,
            json,
        } => report_files(&files, &recipes, json),
        Command::Recipes => {
            for r in KNOWN_RECIPES {
                println!("{r}");
            }
            Ok(())
        }
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
