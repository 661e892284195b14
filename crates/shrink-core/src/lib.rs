//! shrink-core: the vocabulary every shrink crate speaks.
//!
//! * [`LayerStats`]: calibration statistics of a layer's inputs (`H = X^T X`,
//!   token count, per-channel mean |x| and RMS, optional Fisher information).
//! * [`Objective`]: how an approximation is judged (Frobenius, output error
//!   `tr((W-W') H (W-W')^T)`, Fisher-weighted; absolute and relative).
//! * [`Compressor`], [`Compressed`] and the [`Reconstruct`] role: compress a
//!   weight matrix, turn it back into a dense one, apply it to inputs, and
//!   count its stored bytes ([`Storage`]).
//! * [`Pipeline`]: stages composed by residual fitting or restricted support.
//! * [`recipe`]: the text form of pipelines (`rtn:int4:g128:asym+...`).
//! * [`interop`]: zero-copy views between ndarray and faer.
//! * [`Error`]: the one error type of every shrink crate.
//!
//! Conventions: a weight matrix is `(out_features, in_features)`, row-major,
//! and a layer computes `y = x W^T`, exactly like PyTorch's `nn.Linear`.
#![deny(unsafe_code)]

pub mod check;
mod compress;
pub mod error;
pub mod interop;
pub mod layer_file;
pub mod linalg;
mod mask;
mod objective;
pub mod obs;
mod pipeline;
pub mod recipe;
mod stats;

pub use compress::{Compressed, Compressor, Context, Dense, Reconstruct, Storage, StoragePart};
pub use error::{Error, Result};
pub use layer_file::LayerFile;
pub use mask::Mask;
pub use objective::Objective;
pub use pipeline::{Compose, Pipeline, Restricted, Sum};
pub use recipe::{Recipe, StageSpec};
pub use stats::LayerStats;
