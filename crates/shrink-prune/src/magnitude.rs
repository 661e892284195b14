//! Magnitude pruning: remove the weights of smallest `|W_ij|`.
//!
//! Objective: none beyond the weights themselves; it minimizes the number of
//! large weights removed, i.e. `||W - W'||` greedily per weight. The
//! baseline of the Wanda paper (Sun et al., "A Simple and Effective Pruning
//! Approach for Large Language Models", ICLR 2024) and of its code.
//!
//! * `magnitude:50%`: one threshold over the whole matrix: exactly
//!   `floor(0.5 * rows * cols)` weights of smallest `|W_ij|` are pruned.
//! * `magnitude:row:50%`: `floor(0.5 * cols)` per row.
//! * `magnitude:2:4`: in every group of 4 consecutive weights of a row the 2
//!   smallest `|W_ij|` are pruned (2 kept).
//! * `magnitude:rows:25%` / `magnitude:cols:25%`: whole rows (columns) of
//!   smallest `sum |W_ij|` are removed.
//!
//! Ties are broken as [`crate::select`] documents (lower index pruned
//! first). The reference prunes every weight `<=` the threshold, one more
//! than `floor` when there are no ties; shrink prunes exactly `floor`.

use crate::pattern::{Pattern, format_token, parse_args};
use crate::select::mask_from_scores;
use crate::{finish, stage_for};
use ndarray::ArrayView2;
use shrink_core::check::finite_matrix;
use shrink_core::{Compressed, Compressor, Context, Mask, Result, StageSpec};
use shrink_pack::sparse::ValueFormat;

/// Magnitude pruning; recipe `magnitude:[row:|rows:|cols:]P%` or `magnitude:N:M`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Magnitude {
    /// What to remove.
    pub pattern: Pattern,
    /// How kept values are stored.
    pub format: ValueFormat,
}

impl Magnitude {
    /// Magnitude pruning with f16 kept values.
    pub fn new(pattern: Pattern) -> Self {
        Self {
            pattern,
            format: ValueFormat::default(),
        }
    }

    /// Parses a `magnitude:...` stage.
    ///
    /// # Errors
    ///
    /// [`shrink_core::Error::Recipe`] for a bad or missing sparsity.
    pub fn from_stage(stage: &StageSpec) -> Result<Self> {
        let p = parse_args(stage, false)?;
        if p.rank.is_some() {
            return Err(stage.error(&stage.method, "magnitude takes no rank"));
        }
        let pattern = p.pattern.ok_or_else(|| {
            stage.error(
                &stage.method,
                "a sparsity is required (50%, row:50%, 2:4, rows:25%)",
            )
        })?;
        Ok(Self {
            pattern,
            format: p.format.unwrap_or_default(),
        })
    }

    /// The keep-mask of `w`.
    ///
    /// # Errors
    ///
    /// [`shrink_core::Error::InvalidArgument`] when the pattern does not fit
    /// the shape; errors for empty or non-finite weights.
    pub fn mask(&self, w: ArrayView2<'_, f32>) -> Result<Mask> {
        finite_matrix("weights", w)?;
        let scores = w.mapv(|v| f64::from(v.abs()));
        mask_from_scores(scores.view(), &self.pattern)
    }
}

impl Compressor for Magnitude {
    fn recipe(&self) -> String {
        stage_for("magnitude", &self.pattern, format_token(self.format), &[])
    }

    fn compress(&self, w: ArrayView2<'_, f32>, ctx: &Context<'_>) -> Result<Compressed> {
        let mask = self.mask(w)?;
        finish(w, mask, ctx, self.format, &self.pattern)
    }
}
