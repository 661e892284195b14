//! # shrink
//!
//! Compress neural-network weights in Rust: quantization grids and rounding,
//! low-rank and sparse factorization, pruning masks and packed storage
//! formats, composable into pipelines. This crate is the facade: it
//! re-exports the family crates and offers a [`prelude`].
//!
//! ```
//! use shrink::prelude::*;
//! use ndarray::Array2;
//!
//! // A weight matrix (out_features x in_features) and some calibration inputs.
//! let w = Array2::from_shape_fn((64, 256), |(i, j)| ((i * 31 + j * 17) % 97) as f32 / 97.0 - 0.5);
//! let x = Array2::from_shape_fn((512, 256), |(t, j)| ((t * 7 + j * 3) % 89) as f32 / 89.0 - 0.5);
//! let mut stats = LayerStats::new(256)?;
//! stats.observe(x.view())?;
//!
//! // Any recipe, or a pipeline built in code.
//! let pipeline = shrink::recipe::build("rtn:int4:g128:asym")?;
//! let q = pipeline.compress(w.view(), &Context::with_stats(&stats))?;
//! let err = Objective::Output.relative(w.view(), q.to_dense().view(), Some(&stats))?;
//! println!("relative output error {err:.5}");
//! assert!(err < 0.02);
//! assert_eq!(q.storage().bits_per_weight(), 4.0 + (16.0 + 4.0) / 128.0);
//! # Ok::<(), shrink::Error>(())
//! ```
#![forbid(unsafe_code)]

pub use shrink_core as core;
pub use shrink_core::{Error, Result};
pub use shrink_lowrank as lowrank;
pub use shrink_pack as pack;
pub use shrink_prune as prune;
pub use shrink_quant as quant;
pub use shrink_recipe as recipe;

/// The names most programs need.
pub mod prelude {
    pub use shrink_core::{
        Compose, Compressed, Compressor, Context, Dense, LayerFile, LayerStats, Mask, Objective,
        Pipeline, Recipe, Reconstruct, Storage,
    };
    pub use shrink_lowrank::{LowRank, LowRankMatrix, Method as LowRankMethod, Rank};
    pub use shrink_quant::{Granularity, Grid, QuantSpec, QuantizedMatrix, Rtn, ScaleFormat};
}

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
