//! Composition of compressors.
//!
//! A [`Pipeline`] runs stages in order. Each later stage combines with what
//! came before in one of two ways:
//!
//! * **Residual** ([`Compose::Residual`]): the stage fits the residual
//!   `W - sum of earlier reconstructions`, and the result is the sum of all
//!   parts: `W' = Q + A B` for quantization plus a low-rank correction (QERA,
//!   LQER, LoRC), or stacked residual quantizers.
//! * **Restricted support** ([`Compose::Restrict`]): an earlier stage produced
//!   a mask (pruning); the stage compresses the earlier reconstruction and may
//!   only touch kept weights: it receives the mask in its [`Context`], and the
//!   pipeline zeroes every pruned weight of its output, so pruned weights stay
//!   exactly zero whatever the stage does. The result replaces the earlier
//!   values (the mask is kept and counted in the storage).
//!
//! * **Factors** ([`Compose::Factors`]): an earlier stage stored its result as
//!   factor matrices (low-rank `A`, `B`; a sparse dictionary and its
//!   coefficients); the stage compresses each stored matrix, and the result is
//!   the same factored form over the compressed factors
//!   (`svd-llm:r64+rtn:int8:channel:sym` quantizes both low-rank factors,
//!   `cospadi:ratio0.5+rtn:int8:channel:sym` the dictionary and the non-zero
//!   coefficients). The stage sees no calibration statistics (they describe
//!   the layer's inputs, not the factors).
//!
//! [`Compose::Auto`] picks restricted support when the output so far has a
//! support mask, factors when it is a factored form
//! ([`Reconstruct::compress_factors`]), and residual otherwise; a stage may
//! state its own preference through [`Compressor::compose`] (the low-rank
//! stages ask for residual, so `rtn:int3:g128:asym+qera:r32` corrects the
//! quantization error).

use crate::{Compressed, Compressor, Context, Error, Mask, Reconstruct, Result, Storage};
use ndarray::{Array2, ArrayView2};

/// How a stage combines with the stages before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compose {
    /// Restricted support if the output so far has a mask, residual otherwise.
    #[default]
    Auto,
    /// Fit the residual and add.
    Residual,
    /// Compress the kept weights only; pruned weights stay zero.
    Restrict,
    /// Compress the stored factor matrices of a factored form.
    Factors,
}

#[derive(Debug)]
struct Stage {
    compose: Compose,
    compressor: Box<dyn Compressor>,
}

/// Stages run in order; see the module documentation for how they combine.
#[derive(Debug)]
pub struct Pipeline {
    stages: Vec<Stage>,
}

impl Pipeline {
    /// A pipeline whose first stage is `first`.
    pub fn new(first: impl Compressor + 'static) -> Self {
        Self::from_boxed(Box::new(first))
    }

    /// A pipeline whose first stage is a boxed compressor.
    pub fn from_boxed(first: Box<dyn Compressor>) -> Self {
        Self {
            stages: vec![Stage {
                compose: Compose::Auto,
                compressor: first,
            }],
        }
    }

    /// Appends a stage that composes as it prefers ([`Compressor::compose`]).
    pub fn then(self, c: impl Compressor + 'static) -> Self {
        self.then_boxed(Box::new(c), None)
    }

    /// Appends a stage that fits the residual of what came before.
    pub fn then_residual(self, c: impl Compressor + 'static) -> Self {
        self.then_boxed(Box::new(c), Some(Compose::Residual))
    }

    /// Appends a stage restricted to the weights an earlier mask kept.
    pub fn then_restricted(self, c: impl Compressor + 'static) -> Self {
        self.then_boxed(Box::new(c), Some(Compose::Restrict))
    }

    /// Appends a stage that compresses the stored factors of the form so far.
    pub fn then_factors(self, c: impl Compressor + 'static) -> Self {
        self.then_boxed(Box::new(c), Some(Compose::Factors))
    }

    /// Appends a boxed stage; `compose = None` uses the stage's preference.
    pub fn then_boxed(mut self, c: Box<dyn Compressor>, compose: Option<Compose>) -> Self {
        let compose = compose.unwrap_or_else(|| c.compose());
        self.stages.push(Stage {
            compose,
            compressor: c,
        });
        self
    }

    /// Number of stages.
    pub fn len(&self) -> usize {
        self.stages.len()
    }

    /// Always false: a pipeline has at least one stage.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }
}

impl Compressor for Pipeline {
    fn recipe(&self) -> String {
        self.stages
            .iter()
            .map(|s| s.compressor.recipe())
            .collect::<Vec<_>>()
            .join("+")
    }

    fn compress(&self, w: ArrayView2<'_, f32>, ctx: &Context<'_>) -> Result<Compressed> {
        let mut stages = self.stages.iter();
        let first = stages.next().ok_or_else(|| Error::Empty {
            what: "pipeline".into(),
        })?;
        let mut acc = first.compressor.compress(w, ctx)?;
        for stage in stages {
            let factor_ctx = Context {
                stats: None,
                mask: None,
                ..*ctx
            };
            let factored = if matches!(stage.compose, Compose::Auto | Compose::Factors)
                && acc.support().is_none()
            {
                acc.compress_factors(stage.compressor.as_ref(), &factor_ctx)
            } else {
                None
            };
            if let Some(r) = factored {
                acc = r?;
                continue;
            }
            let mode = match stage.compose {
                Compose::Auto | Compose::Restrict if acc.support().is_some() => Compose::Restrict,
                Compose::Factors => {
                    return Err(Error::invalid(
                        "pipeline",
                        format!(
                            "stage `{}` compresses stored factors, but the form before it has none",
                            stage.compressor.recipe()
                        ),
                    ));
                }
                Compose::Restrict => {
                    return Err(Error::invalid(
                        "pipeline",
                        format!(
                            "stage `{}` is restricted to an earlier mask, but no earlier stage produced one",
                            stage.compressor.recipe()
                        ),
                    ));
                }
                _ => Compose::Residual,
            };
            acc = match mode {
                Compose::Restrict => {
                    let mask = acc.support().cloned().ok_or_else(|| {
                        Error::invalid("pipeline", "restricted stage without a mask")
                    })?;
                    let base = acc.to_dense();
                    let sub = Context {
                        mask: Some(&mask),
                        ..*ctx
                    };
                    let inner = stage.compressor.compress(base.view(), &sub)?;
                    Compressed::new(Restricted::new(mask, inner)?)
                }
                _ => {
                    let mut resid = w.to_owned();
                    resid -= &acc.to_dense();
                    let part = stage.compressor.compress(resid.view(), ctx)?;
                    Compressed::new(Sum::new(vec![acc, part])?)
                }
            };
        }
        Ok(acc)
    }
}

/// The sum of several compressed parts (residual composition).
#[derive(Debug)]
pub struct Sum {
    parts: Vec<Compressed>,
}

impl Sum {
    /// Sums parts of equal shape.
    pub fn new(parts: Vec<Compressed>) -> Result<Self> {
        let shape = parts
            .first()
            .map(|p| p.shape())
            .ok_or_else(|| Error::Empty {
                what: "sum of parts".into(),
            })?;
        if let Some(p) = parts.iter().find(|p| p.shape() != shape) {
            return Err(Error::shape(
                "residual part",
                format!("{shape:?}"),
                format!("{:?}", p.shape()),
            ));
        }
        Ok(Self { parts })
    }

    /// The parts in stage order.
    pub fn parts(&self) -> &[Compressed] {
        &self.parts
    }
}

impl Reconstruct for Sum {
    fn shape(&self) -> (usize, usize) {
        self.parts[0].shape()
    }
    fn to_dense(&self) -> Array2<f32> {
        let mut acc = self.parts[0].to_dense();
        for p in &self.parts[1..] {
            acc += &p.to_dense();
        }
        acc
    }
    fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let mut y = self.parts[0].forward(x)?;
        for p in &self.parts[1..] {
            y += &p.forward(x)?;
        }
        Ok(y)
    }
    fn storage(&self) -> Storage {
        let mut s = Storage::new(self.shape().0 as u64 * self.shape().1 as u64);
        for p in &self.parts {
            s = s.merge(p.storage());
        }
        s
    }
}

/// A compressed form restricted to a mask: weights outside the mask are
/// exactly zero. Storage is the inner form's
/// [`storage_on`](Reconstruct::storage_on) the mask when it has one (a
/// quantized matrix stores the bitmap and the kept codes only), otherwise
/// the inner form plus a one-bit-per-weight bitmap.
#[derive(Debug)]
pub struct Restricted {
    mask: Mask,
    inner: Compressed,
}

impl Restricted {
    /// Restricts `inner` to `mask` (shapes must match).
    pub fn new(mask: Mask, inner: Compressed) -> Result<Self> {
        if mask.shape() != inner.shape() {
            return Err(Error::shape(
                "mask of a restricted stage",
                format!("{:?}", inner.shape()),
                format!("{:?}", mask.shape()),
            ));
        }
        Ok(Self { mask, inner })
    }

    /// The compressed values (before masking).
    pub fn inner(&self) -> &Compressed {
        &self.inner
    }
}

impl Reconstruct for Restricted {
    fn shape(&self) -> (usize, usize) {
        self.inner.shape()
    }
    fn to_dense(&self) -> Array2<f32> {
        let mut d = self.inner.to_dense();
        // Shapes were checked in `new`.
        let _ = self.mask.apply(&mut d);
        d
    }
    fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        if self.inner.support() == Some(&self.mask) {
            self.inner.forward(x)
        } else {
            crate::Dense(self.to_dense()).forward(x)
        }
    }
    fn storage(&self) -> Storage {
        if let Some(s) = self.inner.storage_on(&self.mask) {
            return s;
        }
        let mut s = self.inner.storage();
        s.parts.push(crate::StoragePart {
            name: "mask bitmap".into(),
            bytes: self.mask.bitmap_bytes(),
        });
        s
    }
    fn support(&self) -> Option<&Mask> {
        Some(&self.mask)
    }
}
