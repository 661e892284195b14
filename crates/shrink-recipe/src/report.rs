//! Evaluation rows: one recipe on one weight matrix, with bits/weight,
//! relative weight and output errors and the time taken; printed as a table
//! or as JSON lines `{"linear","recipe","bits_per_weight","rel_weight_error",
//! "rel_output_error","seconds"}` (a stable format other tools may read),
//! plus `"density"` (fraction of weights kept) when the result has a mask.

use ndarray::ArrayView2;
use serde::Serialize;
use shrink_core::{Compressor, Context, LayerStats, Objective, Reconstruct, Result};
use std::time::Instant;

/// One evaluated (linear, recipe) pair.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The linear (or synthetic layer) name.
    pub linear: String,
    /// The canonical recipe.
    pub recipe: String,
    /// Stored bits per weight, every byte counted.
    pub bits_per_weight: f64,
    /// `||W - W'||_F^2 / ||W||_F^2`.
    pub rel_weight_error: f64,
    /// `tr((W-W') H (W-W')^T) / tr(W H W^T)`; `None` without statistics.
    pub rel_output_error: Option<f64>,
    /// `sum F (W-W')^2 / sum F W^2` when the statistics carry Fisher
    /// information; left out of the JSON otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rel_fisher_error: Option<f64>,
    /// Wall-clock seconds of the compression alone.
    pub seconds: f64,
    /// Fraction of weights kept, when the result is sparse (has a mask);
    /// left out of the JSON otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub density: Option<f64>,
}

/// Compresses `w` with `pipeline` and measures the result.
pub fn evaluate(
    linear: &str,
    pipeline: &dyn Compressor,
    w: ArrayView2<'_, f32>,
    stats: Option<&LayerStats>,
    seed: u64,
) -> Result<Row> {
    let ctx = Context {
        stats,
        seed,
        mask: None,
    };
    let t = Instant::now();
    let c = pipeline.compress(w, &ctx)?;
    let seconds = t.elapsed().as_secs_f64();
    let dense = c.to_dense();
    let rel_weight_error = Objective::Frobenius.relative(w, dense.view(), None)?;
    let rel_output_error = match stats {
        Some(s) => Some(Objective::Output.relative(w, dense.view(), Some(s))?),
        None => None,
    };
    let rel_fisher_error = match stats {
        Some(s) if s.fisher().is_some() => {
            Some(Objective::Fisher.relative(w, dense.view(), Some(s))?)
        }
        _ => None,
    };
    Ok(Row {
        linear: linear.to_string(),
        recipe: pipeline.recipe(),
        bits_per_weight: c.storage().bits_per_weight(),
        rel_weight_error,
        rel_output_error,
        rel_fisher_error,
        seconds,
        density: c.support().map(|m| m.density()),
    })
}

impl Row {
    /// The row as one JSON line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Renders rows as an aligned text table.
pub fn table(rows: &[Row]) -> String {
    let lw = rows
        .iter()
        .map(|r| r.linear.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let rw = rows
        .iter()
        .map(|r| r.recipe.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let dens = rows.iter().any(|r| r.density.is_some());
    let fisher = rows.iter().any(|r| r.rel_fisher_error.is_some());
    let mut s = format!(
        "{:<lw$}  {:<rw$}  {:>8}  {:>11}  {:>11}  {:>8}",
        "linear", "recipe", "bits/w", "rel w err", "rel out err", "seconds"
    );
    if dens {
        s.push_str(&format!("  {:>7}", "density"));
    }
    if fisher {
        s.push_str(&format!("  {:>11}", "rel F err"));
    }
    s.push('\n');
    let width =
        lw + rw + 8 + 11 + 11 + 8 + 10 + if dens { 9 } else { 0 } + if fisher { 13 } else { 0 };
    s.push_str(&format!("{}\n", "-".repeat(width)));
    for r in rows {
        let out = r
            .rel_output_error
            .map_or_else(|| "-".to_string(), |v| format!("{v:.5}"));
        s.push_str(&format!(
            "{:<lw$}  {:<rw$}  {:>8.4}  {:>11.5}  {:>11}  {:>8.3}",
            r.linear, r.recipe, r.bits_per_weight, r.rel_weight_error, out, r.seconds
        ));
        if dens {
            let d = r
                .density
                .map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
            s.push_str(&format!("  {d:>7}"));
        }
        if fisher {
            let f = r
                .rel_fisher_error
                .map_or_else(|| "-".to_string(), |v| format!("{v:.5}"));
            s.push_str(&format!("  {f:>11}"));
        }
        s.push('\n');
    }
    s
}
