//! Wanda: prune by weight magnitude times input activation norm.
//!
//! Paper: Sun, Liu, Bair, Kolter, "A Simple and Effective Pruning Approach
//! for Large Language Models", ICLR 2024 (arXiv 2306.11695); code
//! `locuslab/wanda` (`prune_wanda`).
//!
//! Objective: a per-weight estimate of the output error of removing it,
//! `S_ij = |W_ij| * ||X_{:,j}||_2`, with `||X_{:,j}||_2^2 = H_jj` (the
//! diagonal of the Gram matrix `H = X^T X`; any positive scale of `H` gives
//! the same ranking). No weight is updated.
//!
//! * `wanda:50%`: the comparison group is **each output row**: in every row
//!   the `floor(0.5 * cols)` lowest scores are pruned (the paper's
//!   per-output pruning; `wanda:row:50%` is accepted as the same thing).
//! * `wanda:2:4`: in every group of 4 consecutive weights of a row the 2
//!   lowest scores are pruned.
//! * `wanda:rows:25%` / `wanda:cols:25%` (structured): whole output rows
//!   (input columns) of smallest summed score `sum S_ij` are removed.
//!
//! With `H = I` every column has the same norm and Wanda is per-row
//! magnitude pruning (tested). Ties as in [`crate::select`].

use crate::pattern::{Pattern, format_token, parse_args};
use crate::select::mask_from_scores;
use crate::{finish, stage_for};
use ndarray::{Array2, ArrayView2};
use shrink_core::check::finite_matrix;
use shrink_core::{Compressed, Compressor, Context, Error, LayerStats, Mask, Result, StageSpec};
use shrink_pack::sparse::ValueFormat;

/// Wanda pruning; recipe `wanda:P%`, `wanda:N:M`, `wanda:rows:P%`, `wanda:cols:P%`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wanda {
    /// What to remove ([`Pattern::Unstructured`] means per row, as
    /// [`Pattern::PerRow`]).
    pub pattern: Pattern,
    /// How kept values are stored.
    pub format: ValueFormat,
}

/// The Wanda scores `|W_ij| * sqrt(H_jj)` of `w` under `stats`.
///
/// # Errors
///
/// [`Error::Shape`] when `stats` has another input width; errors for empty
/// or non-finite weights.
pub fn wanda_scores(w: ArrayView2<'_, f32>, stats: &LayerStats) -> Result<Array2<f64>> {
    finite_matrix("weights", w)?;
    if stats.in_features() != w.ncols() {
        return Err(Error::shape(
            "statistics for wanda",
            format!("{} input features", w.ncols()),
            stats.in_features(),
        ));
    }
    let g = stats.gram();
    let norms: Vec<f64> = (0..w.ncols()).map(|j| g[(j, j)].max(0.0).sqrt()).collect();
    Ok(Array2::from_shape_fn(w.dim(), |(i, j)| {
        f64::from(w[(i, j)].abs()) * norms[j]
    }))
}

impl Wanda {
    /// Wanda with f16 kept values.
    pub fn new(pattern: Pattern) -> Self {
        Self {
            pattern: normalize(pattern),
            format: ValueFormat::default(),
        }
    }

    /// Parses a `wanda:...` stage.
    ///
    /// # Errors
    ///
    /// [`Error::Recipe`] for a bad or missing sparsity.
    pub fn from_stage(stage: &StageSpec) -> Result<Self> {
        let p = parse_args(stage, false)?;
        if p.rank.is_some() {
            return Err(stage.error(&stage.method, "wanda takes no rank"));
        }
        let pattern = p.pattern.ok_or_else(|| {
            stage.error(
                &stage.method,
                "a sparsity is required (50%, 2:4, rows:25%, cols:25%)",
            )
        })?;
        Ok(Self {
            pattern: normalize(pattern),
            format: p.format.unwrap_or_default(),
        })
    }

    /// The keep-mask of `w` under `stats`.
    ///
    /// # Errors
    ///
    /// As [`wanda_scores`]; [`Error::InvalidArgument`] when the pattern does
    /// not fit the shape.
    pub fn mask(&self, w: ArrayView2<'_, f32>, stats: &LayerStats) -> Result<Mask> {
        let s = wanda_scores(w, stats)?;
        mask_from_scores(s.view(), &normalize(self.pattern))
    }
}

/// Wanda compares within rows: unstructured means per row.
fn normalize(p: Pattern) -> Pattern {
    match p {
        Pattern::Unstructured(r) => Pattern::PerRow(r),
        other => other,
    }
}

impl Compressor for Wanda {
    fn recipe(&self) -> String {
        let shown = match self.pattern {
            Pattern::PerRow(r) => Pattern::Unstructured(r),
            other => other,
        };
        stage_for("wanda", &shown, format_token(self.format), &[])
    }

    fn compress(&self, w: ArrayView2<'_, f32>, ctx: &Context<'_>) -> Result<Compressed> {
        let stats = ctx.require_stats("wanda")?;
        let mask = self.mask(w, stats)?;
        finish(w, mask, ctx, self.format, &normalize(self.pattern))
    }
}
