//! shrink-prune: pruning masks and the weights they keep.
//!
//! | recipe | method | module |
//! |---|---|---|
//! | `magnitude:50%`, `magnitude:row:50%`, `magnitude:2:4`, `magnitude:rows:25%` | smallest `\|W\|` | [`magnitude`] |
//! | `wanda:50%`, `wanda:2:4`, `wanda:rows:25%`, `wanda:cols:25%` | smallest `\|W_ij\| \|\|X_j\|\|` per row | [`wanda`] |
//! | `sparsegpt:50%`, `sparsegpt:2:4`, `sparsegpt:4:8` | OBS updates, mask per block of 128 | [`mod@sparsegpt`] |
//! | `sparsegpt:50%:int4:g128` | joint pruning + quantization | [`mod@sparsegpt`] |
//! | `lift:r64:5%` | principal weights of a rank-64 approximation (mask only) | [`lift`] |
//!
//! Sparsity arguments ([`pattern`]): `P%` is the fraction **pruned** (for
//! LIFT, the fraction kept); `N:M` keeps `N` of every `M` consecutive
//! weights of a row; `row:` compares within rows; `rows:` / `cols:` remove
//! whole output rows / input columns. An optional `f32` / `bf16` stores kept
//! values in that format instead of f16. Bad ratios (negative, above 100 %),
//! `N > M` and an `M` that does not divide the row are typed errors
//! ([`shrink_core::Error::Recipe`] from recipes,
//! [`shrink_core::Error::InvalidArgument`] from the API). Ties are broken by
//! index ([`select`]), so results are deterministic and never depend on the
//! rayon thread count.
//!
//! Every method returns a [`Pruned`] matrix (or [`SparseQuantized`] in
//! joint mode) whose [`Reconstruct::support`](shrink_core::Reconstruct::support)
//! is the mask, so a later stage of a [`shrink_core::Pipeline`] is
//! restricted to the kept weights (`wanda:50%+rtn:int4:g128:asym`: the
//! quantizer sees the pruned matrix and the pipeline keeps pruned weights
//! exactly zero). Storage ([`Layout`]): a bitmap of one bit per weight plus
//! the kept values in f16, compressed-tensors' `sparse-24-bitmask` for 2:4,
//! a row (column) bitmap plus dense kept rows (columns) for structured
//! pruning; the bytes are written by [`shrink_pack::sparse`].
#![deny(unsafe_code)]

pub mod lift;
pub mod magnitude;
pub mod pattern;
pub mod pruned;
pub mod select;
pub mod sparsegpt;
pub mod wanda;

pub use lift::Lift;
pub use magnitude::Magnitude;
pub use pattern::{Pattern, Ratio};
pub use pruned::{Layout, MaskStructure, Pruned, SparseQuantized};
pub use shrink_pack::sparse::ValueFormat;
pub use sparsegpt::{SparseGpt, SparseGptConfig, SparseGptOutput, sparsegpt};
pub use wanda::{Wanda, wanda_scores};

use ndarray::ArrayView2;
use shrink_core::{Compressed, Compressor, Context, Error, Mask, Result, StageSpec};

/// The recipe methods of this crate.
pub const METHODS: &[&str] = &["magnitude", "wanda", "sparsegpt", "lift"];

/// Builds the compressor of a `magnitude`, `wanda`, `sparsegpt` or `lift`
/// stage.
///
/// # Errors
///
/// [`Error::Recipe`] for another method or bad arguments.
pub fn from_stage(stage: &StageSpec) -> Result<Box<dyn Compressor>> {
    Ok(match stage.method.as_str() {
        "magnitude" => Box::new(Magnitude::from_stage(stage)?),
        "wanda" => Box::new(Wanda::from_stage(stage)?),
        "sparsegpt" => Box::new(SparseGpt::from_stage(stage)?),
        "lift" => Box::new(Lift::from_stage(stage)?),
        other => {
            return Err(stage.error(
                other,
                format!("not a pruning method (known: {})", METHODS.join(", ")),
            ));
        }
    })
}

/// The canonical stage text: method, `pre` tokens, the pattern, the value
/// format when not f16.
pub(crate) fn stage_for(
    method: &str,
    pattern: &Pattern,
    format: Option<String>,
    pre: &[String],
) -> String {
    let mut args: Vec<String> = pre.to_vec();
    args.extend(pattern.tokens());
    args.extend(format);
    StageSpec::new(method, args).to_string()
}

/// The layout that fits a pattern and the final mask.
fn layout_for(pattern: &Pattern, mask: &Mask) -> Layout {
    match *pattern {
        Pattern::NM { n: 2, m: 4 } if mask.is_n_of_m(2, 4) => Layout::Sparse24,
        Pattern::Rows(_) if mask.is_row_structured() => Layout::Rows,
        Pattern::Columns(_) if mask.is_column_structured() => Layout::Columns,
        _ => Layout::Bitmap,
    }
}

/// Builds the [`Pruned`] result of a mask-producing stage: the mask is
/// intersected with the context's mask (restricted support), the kept values
/// of `w` are stored in `format`.
pub(crate) fn finish(
    w: ArrayView2<'_, f32>,
    mask: Mask,
    ctx: &Context<'_>,
    format: ValueFormat,
    pattern: &Pattern,
) -> Result<Compressed> {
    let mask = match ctx.mask {
        Some(m) => sparsegpt::intersect(&mask, m)?,
        None => mask,
    };
    if mask.shape() != w.dim() {
        return Err(Error::shape(
            "mask",
            format!("{:?}", w.dim()),
            format!("{:?}", mask.shape()),
        ));
    }
    let layout = layout_for(pattern, &mask);
    Ok(Compressed::new(Pruned::new(w, mask, format, layout)?))
}
