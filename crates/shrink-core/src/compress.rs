//! The roles every method plays: a [`Compressor`] turns a weight matrix into
//! a [`Compressed`] form, which can be turned back into a dense matrix,
//! applied to inputs, and measured in bytes.

use crate::check::input_width;
use crate::linalg::matmul_f32_bt;
use crate::{Error, LayerStats, Mask, Result};
use ndarray::{Array2, ArrayView2};
use std::any::Any;
use std::fmt;

/// What a compressor may use besides the weights.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    /// Calibration statistics of the layer's inputs (data-aware methods need them).
    pub stats: Option<&'a LayerStats>,
    /// Seed for anything random; the same seed gives the same bytes.
    pub seed: u64,
    /// Weights the stage may touch (restricted-support composition): a stage
    /// given a mask must return exact zeros where the mask is 0.
    pub mask: Option<&'a Mask>,
}

impl<'a> Context<'a> {
    /// A context with statistics.
    pub fn with_stats(stats: &'a LayerStats) -> Self {
        Self {
            stats: Some(stats),
            ..Self::default()
        }
    }

    /// The statistics, or a clear error naming the method that needs them.
    pub fn require_stats(&self, method: &str) -> Result<&'a LayerStats> {
        let s = self.stats.ok_or_else(|| {
            Error::stats(format!(
                "{method} is data-aware and needs calibration statistics (LayerStats)"
            ))
        })?;
        s.require_data(method)?;
        Ok(s)
    }
}

/// A weight-compression method.
pub trait Compressor: Send + Sync + fmt::Debug {
    /// The recipe stage that builds this compressor (e.g. `rtn:int4:g128:asym`).
    fn recipe(&self) -> String;

    /// Compresses `w` (out_features x in_features).
    fn compress(&self, w: ArrayView2<'_, f32>, ctx: &Context<'_>) -> Result<Compressed>;

    /// How this stage combines with earlier ones in a [`Pipeline`](crate::Pipeline)
    /// when the pipeline is not told explicitly.
    fn compose(&self) -> crate::Compose {
        crate::Compose::Auto
    }
}

/// The reconstruction role of a compressed weight matrix.
pub trait Reconstruct: Send + Sync + fmt::Debug + Any {
    /// `(out_features, in_features)` of the original matrix.
    fn shape(&self) -> (usize, usize);

    /// The dense approximation `W'`.
    fn to_dense(&self) -> Array2<f32>;

    /// `y = x W'^T` for `x` (tokens x in_features). Forms that allow it do this
    /// without building `W'` (the default builds it).
    fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        input_width("forward input", x, self.shape().1)?;
        Ok(matmul_f32_bt(x, self.to_dense().view()))
    }

    /// Exact stored size.
    fn storage(&self) -> Storage;

    /// The weights this form keeps, when it is sparse.
    fn support(&self) -> Option<&Mask> {
        None
    }

    /// Exact stored size when the weights outside `mask` are known to be
    /// zero and the form stores only the others, the bitmap included (how a
    /// [`Restricted`](crate::Restricted) stage counts its inner form).
    /// `None` (the default) for forms that store every weight regardless;
    /// quantized matrices return the bitmap, the kept weights' codes and
    /// their parameters.
    fn storage_on(&self, mask: &Mask) -> Option<Storage> {
        let _ = mask;
        None
    }

    /// For factored forms: the same form with every stored factor matrix
    /// compressed by `stage` (see [`Compose::Factors`](crate::Compose::Factors));
    /// `None` for forms that store no factors (the default).
    fn compress_factors(
        &self,
        stage: &dyn Compressor,
        ctx: &Context<'_>,
    ) -> Option<Result<Compressed>> {
        let _ = (stage, ctx);
        None
    }
}

/// A compressed weight matrix of any form.
#[derive(Debug)]
pub struct Compressed(Box<dyn Reconstruct>);

impl Compressed {
    /// Wraps a concrete form.
    pub fn new(r: impl Reconstruct) -> Self {
        Self(Box::new(r))
    }

    /// The concrete form, when it is a `T`.
    pub fn downcast_ref<T: Reconstruct>(&self) -> Option<&T> {
        (self.0.as_ref() as &dyn Any).downcast_ref::<T>()
    }

    /// The form as a trait object.
    pub fn as_reconstruct(&self) -> &dyn Reconstruct {
        self.0.as_ref()
    }
}

impl Reconstruct for Compressed {
    fn shape(&self) -> (usize, usize) {
        self.0.shape()
    }
    fn to_dense(&self) -> Array2<f32> {
        self.0.to_dense()
    }
    fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        self.0.forward(x)
    }
    fn storage(&self) -> Storage {
        self.0.storage()
    }
    fn support(&self) -> Option<&Mask> {
        self.0.support()
    }
    fn storage_on(&self, mask: &Mask) -> Option<Storage> {
        self.0.storage_on(mask)
    }
    fn compress_factors(
        &self,
        stage: &dyn Compressor,
        ctx: &Context<'_>,
    ) -> Option<Result<Compressed>> {
        self.0.compress_factors(stage, ctx)
    }
}

/// One named part of a stored form (codes, scales, zero points, mask...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoragePart {
    /// What the bytes hold.
    pub name: String,
    /// How many bytes.
    pub bytes: u64,
}

/// Exact stored size of a compressed matrix, part by part.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Storage {
    /// Number of weights of the original matrix.
    pub weights: u64,
    /// The stored parts.
    pub parts: Vec<StoragePart>,
}

impl Storage {
    /// Storage for a matrix of `weights` weights, no parts yet.
    pub fn new(weights: u64) -> Self {
        Self {
            weights,
            parts: Vec::new(),
        }
    }

    /// Adds a part.
    pub fn with(mut self, name: impl Into<String>, bytes: u64) -> Self {
        self.parts.push(StoragePart {
            name: name.into(),
            bytes,
        });
        self
    }

    /// Adds all parts of another storage (same weights).
    pub fn merge(mut self, other: Storage) -> Self {
        self.parts.extend(other.parts);
        self
    }

    /// Total bytes.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }

    /// Bits per weight: `8 * bytes / weights`.
    pub fn bits_per_weight(&self) -> f64 {
        if self.weights == 0 {
            0.0
        } else {
            8.0 * self.bytes() as f64 / self.weights as f64
        }
    }
}

/// An uncompressed f32 matrix (the identity compression), useful as a
/// baseline and in tests.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense(pub Array2<f32>);

impl Reconstruct for Dense {
    fn shape(&self) -> (usize, usize) {
        self.0.dim()
    }
    fn to_dense(&self) -> Array2<f32> {
        self.0.clone()
    }
    fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        input_width("forward input", x, self.0.ncols())?;
        Ok(matmul_f32_bt(x, self.0.view()))
    }
    fn storage(&self) -> Storage {
        Storage::new(self.0.len() as u64).with("f32 values", 4 * self.0.len() as u64)
    }
}
