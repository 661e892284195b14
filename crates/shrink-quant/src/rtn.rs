//! Round-to-nearest (RTN) quantization over any grid and scaling.
//!
//! Objective: none beyond the grid: each weight is replaced by the nearest
//! representable value of its group, `w' = (level(q) - z) * s` with
//! `q = nearest code of w / s (+ z)`. Scales come from min/max (or absmax)
//! of each group, optionally with the MSE-optimal clipping search that
//! shrinks the range by `p = 1 - i/100, i < 80` and keeps the `p` with the
//! least squared error (the grid search of GPTQ's reference quantizer, with
//! norm 2). The module [`crate::spec`] lists grids, scale rules and storage.
//!
//! Properties (tested): inside the clipping range the error per weight is at
//! most half a step; `quantize(dequantize(q)) == q`; symmetric grids are
//! odd-symmetric; MSE clipping never does worse than plain min/max.

use crate::matrix::{QuantizedMatrix, group_layout};
use crate::quantizer::{GroupParams, Prepared};
use crate::spec::{Granularity, QuantSpec};
use ndarray::ArrayView2;
use rayon::prelude::*;
use shrink_core::check::finite_matrix;
use shrink_core::{Compressed, Compressor, Context, Result, StageSpec};

/// Quantizes `w` (out x in) by round-to-nearest under `spec`.
pub fn quantize_rtn(w: ArrayView2<'_, f32>, spec: &QuantSpec) -> Result<QuantizedMatrix> {
    finite_matrix("weights", w)?;
    spec.validate()?;
    let (rows, cols) = w.dim();
    let (_, per_row) = group_layout(spec.granularity, rows, cols)?;
    let values: Vec<f32> = w.iter().copied().collect();
    let q = Prepared::new(*spec, &values, cols)?;
    let mut codes = vec![0u8; rows * cols];
    let params: Vec<GroupParams> = match spec.granularity {
        Granularity::Tensor => {
            let p = q.params(&values)?;
            codes
                .par_chunks_mut(cols)
                .zip(values.par_chunks(cols))
                .for_each(|(c, v)| encode_slice(&q, v, &p, c));
            vec![p]
        }
        Granularity::Channel => {
            let per: Vec<Result<GroupParams>> = codes
                .par_chunks_mut(cols)
                .zip(values.par_chunks(cols))
                .map(|(c, v)| {
                    let p = q.params(v)?;
                    encode_slice(&q, v, &p, c);
                    Ok(p)
                })
                .collect();
            per.into_iter().collect::<Result<_>>()?
        }
        Granularity::Group(g) => {
            debug_assert_eq!(per_row, cols / g);
            let per: Vec<Result<GroupParams>> = codes
                .par_chunks_mut(g)
                .zip(values.par_chunks(g))
                .map(|(c, v)| {
                    let p = q.params(v)?;
                    encode_slice(&q, v, &p, c);
                    Ok(p)
                })
                .collect();
            per.into_iter().collect::<Result<_>>()?
        }
    };
    QuantizedMatrix::from_parts(q, rows, cols, codes, params)
}

fn encode_slice(q: &Prepared, v: &[f32], p: &GroupParams, out: &mut [u8]) {
    let s = q.scale_value(p.raw_scale);
    for (o, &x) in out.iter_mut().zip(v) {
        *o = q.encode_with(x, s, p.zero);
    }
}

/// The RTN compressor: recipe `rtn:<grid>[:<granularity>][:sym|asym][:mse][:f32|f16|bf16]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rtn {
    /// The quantizer.
    pub spec: QuantSpec,
}

impl Rtn {
    /// RTN with a spec.
    pub fn new(spec: QuantSpec) -> Self {
        Self { spec }
    }

    /// Parses an `rtn:...` stage.
    pub fn from_stage(stage: &StageSpec) -> Result<Self> {
        if stage.method != "rtn" {
            return Err(stage.error(&stage.method, "not an rtn stage"));
        }
        Ok(Self::new(QuantSpec::parse_args(stage, |_| false)?))
    }
}

impl Compressor for Rtn {
    fn recipe(&self) -> String {
        StageSpec::new("rtn", self.spec.args()).to_string()
    }

    fn compress(&self, w: ArrayView2<'_, f32>, _ctx: &Context<'_>) -> Result<Compressed> {
        Ok(Compressed::new(quantize_rtn(w, &self.spec)?))
    }
}
