//! GGUF block types as [`Compressor`]s: the `gguf:<type>` recipes.
//!
//! A Linear weight `W` is `(out_features, in_features)`; ggml stores it as
//! `out_features` rows of `in_features` values and cuts every row into blocks
//! of [`GgufType::block_size`] values, so `in_features` must be a multiple of
//! the block size (32 for the legacy types, IQ4_NL and MXFP4, 256 for the
//! K-quants, IQ4_XS and the ternary types, 1 for F16 / BF16). The compressed
//! form, [`GgufMatrix`], holds exactly the ggml block bytes of every row,
//! rows back to back (the bytes a GGUF file stores for the tensor);
//! [`Reconstruct::to_dense`] is ggml's dequantization, [`Reconstruct::forward`]
//! decodes blocks of rows into a scratch buffer (the dense `W'` is never
//! built), and [`Reconstruct::storage`] counts exactly the block bytes.
//!
//! # Methods
//!
//! * `gguf:<type>` ([`GgufMethod::Reference`]): ggml's reference quantizer
//!   (`quantize_row_*_ref`, the path of `ggml_quantize_chunk` without an
//!   importance matrix), byte for byte ([`super::quantize`]).
//! * `gguf:<type>:imatrix` ([`GgufMethod::Imatrix`]): ggml's importance-weighted
//!   quantizer (llama.cpp's imatrix quantization, [`super::weighted`]) with
//!   the importance of input column `j` taken from the layer's calibration
//!   statistics as `diag(H)_j / count`, the mean of `x_j^2` over the
//!   calibration tokens (what llama.cpp's `imatrix` tool stores). For the
//!   types whose ggml quantizer reads importance weights (Q4_0, Q4_1, Q5_0,
//!   Q5_1, Q2_K .. Q6_K, IQ4_NL, IQ4_XS); needs [`LayerStats`].
//! * `gguf:<type>:gptq[:dampX][:blockN]` ([`GgufMethod::Gptq`]): GPTQ whose
//!   block parameters are fitted by ggml's own rule on the error-updated
//!   weights as the sweep reaches each block ([`super::gptq`]); valid ggml
//!   bytes that no ggml tool writes. Needs [`LayerStats`] (the Gram matrix);
//!   damping (default 0.01 of the mean diagonal) and lazy-block width
//!   (default 128) as in `gptq:`. A pipeline's restricted-support mask is
//!   not used inside the sweep; the pipeline zeroes pruned weights after.
//!
//! # Recipe
//!
//! `gguf:<type>[:imatrix|:gptq[:dampX][:blockN]]` with `<type>` one of `f16`, `bf16`, `q4_0`, `q4_1`, `q5_0`,
//! `q5_1`, `q8_0`, `q2_k`, `q3_k`, `q4_k`, `q5_k`, `q6_k`, `q8_k`, `iq4_nl`,
//! `iq4_xs`, `tq1_0`, `tq2_0`, `mxfp4` (case-insensitive; printed in lower
//! case).
//!
//! # Composition
//!
//! In a [`Pipeline`](shrink_core::Pipeline) the stage composes like any
//! other: as a residual stage it quantizes the residual it is given; after a
//! pruning stage it quantizes the earlier reconstruction (pruned weights are
//! 0 there) and the pipeline zeroes the pruned weights of its output.

use ndarray::{Array2, ArrayView2};
use shrink_core::check::{finite_matrix, input_width};
use shrink_core::linalg::{dense_from_rows, forward_by_row_blocks};
use shrink_core::{
    Compressed, Compressor, Context, Error, Reconstruct, Result, StageSpec, Storage,
};

use super::GgufType;
use shrink_core::LayerStats;

/// A weight matrix stored as ggml blocks: `rows` rows of `cols` values, each
/// row `cols / block_size` blocks of `type_size` bytes, rows back to back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufMatrix {
    ty: GgufType,
    rows: usize,
    cols: usize,
    bytes: Vec<u8>,
}

/// Checks that a row of `cols` values is a whole number of `t` blocks, with
/// an error naming the type and its block size.
pub fn check_row_length(t: GgufType, cols: usize) -> Result<()> {
    let bs = t.block_size();
    if cols == 0 || !cols.is_multiple_of(bs) {
        return Err(Error::shape(
            format!(
                "in_features for GGUF {} (ggml quantizes each row in blocks of {bs} values)",
                t.name()
            ),
            format!("a positive multiple of {bs}"),
            cols,
        ));
    }
    Ok(())
}

impl GgufMatrix {
    /// Quantizes `w` (out x in) row by row with ggml's reference quantizer.
    ///
    /// Errors: [`Error::Shape`] when `in_features` is not a positive multiple
    /// of the type's block size; [`Error::NonFinite`] for NaN or infinite
    /// weights; [`Error::Empty`] for a matrix without rows.
    pub fn quantize(t: GgufType, w: ArrayView2<'_, f32>) -> Result<Self> {
        let (rows, cols) = w.dim();
        check_shape(t, rows, cols)?;
        finite_matrix("GGUF quantization input", w)?;
        let values: Vec<f32> = w.iter().copied().collect();
        let bytes = super::quantize(t, &values)?;
        Self::from_bytes(t, rows, cols, bytes)
    }

    /// Quantizes `w` (out x in) row by row with ggml's importance-weighted
    /// quantizer, `importance` holding one value per input column
    /// ([`super::quantize_weighted`]).
    pub fn quantize_weighted(
        t: GgufType,
        w: ArrayView2<'_, f32>,
        importance: &[f32],
    ) -> Result<Self> {
        let (rows, cols) = w.dim();
        check_shape(t, rows, cols)?;
        finite_matrix("GGUF quantization input", w)?;
        let values: Vec<f32> = w.iter().copied().collect();
        let bytes = super::quantize_weighted(t, &values, cols, importance)?;
        Self::from_bytes(t, rows, cols, bytes)
    }

    /// GPTQ into `t`'s blocks with the Gram matrix `h` (`X^T X`, in x in),
    /// relative damping `damp` and lazy blocks of `block` columns
    /// ([`super::gptq`]).
    pub fn quantize_gptq(
        t: GgufType,
        w: ArrayView2<'_, f32>,
        h: ArrayView2<'_, f64>,
        damp: f64,
        block: usize,
    ) -> Result<Self> {
        let (rows, cols) = w.dim();
        check_shape(t, rows, cols)?;
        let rule = super::GgufGptqRule::new(t, cols)?;
        let mut states: Vec<super::GgufRow> = (0..rows).map(|_| rule.new_row()).collect();
        shrink_quant::gptq_sweep(w, h, damp, block, &rule, &mut states)?;
        let mut bytes = Vec::with_capacity(t.byte_len(rows * cols)?);
        for s in states {
            bytes.extend_from_slice(&s.bytes);
        }
        Self::from_bytes(t, rows, cols, bytes)
    }

    /// Wraps ggml block bytes of a `(rows, cols)` matrix.
    ///
    /// Errors: [`Error::Shape`] for a bad row length, [`Error::Corrupt`] when
    /// `bytes` is not exactly `rows * cols / block_size * type_size` bytes.
    pub fn from_bytes(t: GgufType, rows: usize, cols: usize, bytes: Vec<u8>) -> Result<Self> {
        check_shape(t, rows, cols)?;
        let n = rows
            .checked_mul(cols)
            .ok_or_else(|| Error::invalid("GGUF matrix shape", "rows * cols overflows"))?;
        let want = t.byte_len(n)?;
        if bytes.len() != want {
            return Err(Error::corrupt(
                format!("GGUF {} matrix", t.name()),
                format!(
                    "{rows}x{cols} values need {want} bytes, got {}",
                    bytes.len()
                ),
            ));
        }
        Ok(Self {
            ty: t,
            rows,
            cols,
            bytes,
        })
    }

    /// The ggml type.
    pub fn gguf_type(&self) -> GgufType {
        self.ty
    }

    /// All block bytes, rows back to back (a GGUF file's tensor data).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The block bytes, consuming the matrix.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Bytes of one row (`cols / block_size * type_size`).
    pub fn row_bytes(&self, r: usize) -> &[u8] {
        let rb = self.bytes.len() / self.rows;
        &self.bytes[r * rb..(r + 1) * rb]
    }

    /// Decodes row `r` into `out` (`cols` values), as ggml's
    /// `dequantize_row_*` does.
    fn decode_row(&self, r: usize, out: &mut [f32]) {
        let f = self.ty.dequantize_block_fn();
        for (bb, ob) in self
            .row_bytes(r)
            .chunks_exact(self.ty.type_size())
            .zip(out.chunks_exact_mut(self.ty.block_size()))
        {
            f(bb, ob);
        }
    }
}

fn check_shape(t: GgufType, rows: usize, cols: usize) -> Result<()> {
    if rows == 0 {
        return Err(Error::Empty {
            what: format!("GGUF {} matrix (no rows)", t.name()),
        });
    }
    check_row_length(t, cols)
}

impl Reconstruct for GgufMatrix {
    fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    fn to_dense(&self) -> Array2<f32> {
        dense_from_rows(self.rows, self.cols, |r, out| self.decode_row(r, out))
    }

    fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        input_width("forward input", x, self.cols)?;
        Ok(forward_by_row_blocks(x, self.rows, |r, out| {
            self.decode_row(r, out)
        }))
    }

    fn storage(&self) -> Storage {
        Storage::new((self.rows * self.cols) as u64).with(
            format!("{} blocks", self.ty.name()),
            self.bytes.len() as u64,
        )
    }
}

/// How a `gguf:<type>` stage chooses its bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum GgufMethod {
    /// ggml's reference quantizer (no importance matrix).
    Reference,
    /// ggml's importance-weighted quantizer, importance `diag(H) / count`.
    Imatrix,
    /// GPTQ into the type's blocks.
    Gptq {
        /// Relative damping of `H` (default 0.01).
        damp: f64,
        /// Lazy-block width in columns (default 128).
        block: usize,
    },
}

/// The `gguf:<type>[...]` compressor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GgufQuant {
    /// The ggml block type.
    pub ty: GgufType,
    /// How blocks are fitted.
    pub method: GgufMethod,
}

impl GgufQuant {
    /// ggml's reference quantizer for type `ty`.
    pub fn new(ty: GgufType) -> Self {
        Self {
            ty,
            method: GgufMethod::Reference,
        }
    }

    /// The arguments after `gguf`, canonical (type name in lower case first).
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![self.ty.name().to_ascii_lowercase()];
        match self.method {
            GgufMethod::Reference => {}
            GgufMethod::Imatrix => a.push("imatrix".into()),
            GgufMethod::Gptq { damp, block } => {
                a.push("gptq".into());
                if damp != shrink_quant::gptq::DEFAULT_DAMP {
                    a.push(format!("damp{damp}"));
                }
                if block != shrink_quant::gptq::DEFAULT_BLOCK {
                    a.push(format!("block{block}"));
                }
            }
        }
        a
    }

    /// Parses a `gguf:<type>[...]` stage.
    pub fn from_stage(stage: &StageSpec) -> Result<Self> {
        if stage.method != "gguf" {
            return Err(stage.error(&stage.method, "not a gguf stage"));
        }
        let mut args = stage.args.iter();
        let ty_text = args.next().ok_or_else(|| {
            stage.error(
                "gguf",
                "name the ggml type: gguf:q4_0, gguf:q4_k, gguf:q6_k, ...",
            )
        })?;
        let ty: GgufType = ty_text
            .parse()
            .map_err(|e: Error| stage.error(ty_text, e.to_string()))?;
        let mut q = Self::new(ty);
        if let Some(a) = args.next() {
            match a.as_str() {
                "imatrix" => {
                    if !ty.takes_importance() {
                        return Err(stage.error(
                            a,
                            format!(
                                "ggml's {} quantizer takes no importance weights \
                                 (imatrix works with q4_0, q4_1, q5_0, q5_1, q2_k..q6_k, \
                                 iq4_nl, iq4_xs)",
                                ty.name()
                            ),
                        ));
                    }
                    q.method = GgufMethod::Imatrix;
                }
                "gptq" => {
                    if !ty.takes_gptq() {
                        return Err(
                            stage.error(a, format!("GPTQ does not round into {}", ty.name()))
                        );
                    }
                    let mut damp = None;
                    let mut block = None;
                    for o in args.by_ref() {
                        if let Some(v) = o.strip_prefix("damp") {
                            match v.parse::<f64>() {
                                Ok(d) if d.is_finite() && d >= 0.0 && damp.is_none() => {
                                    damp = Some(d)
                                }
                                _ => {
                                    return Err(stage.error(
                                        o,
                                        "the damping is a finite non-negative number \
                                         given once (damp0.01)",
                                    ));
                                }
                            }
                        } else if let Some(v) = o.strip_prefix("block") {
                            match v.parse::<usize>() {
                                Ok(b) if b > 0 && block.is_none() => block = Some(b),
                                _ => {
                                    return Err(stage.error(
                                        o,
                                        "the block width is a positive integer given once \
                                         (block128)",
                                    ));
                                }
                            }
                        } else {
                            return Err(
                                stage.error(o, "unknown gguf gptq argument (dampX, blockN)")
                            );
                        }
                    }
                    q.method = GgufMethod::Gptq {
                        damp: damp.unwrap_or(shrink_quant::gptq::DEFAULT_DAMP),
                        block: block.unwrap_or(shrink_quant::gptq::DEFAULT_BLOCK),
                    };
                }
                _ => return Err(stage.error(a, "unknown gguf argument (imatrix, gptq)")),
            }
        }
        if let Some(a) = args.next() {
            return Err(stage.error(a, "unknown gguf argument"));
        }
        Ok(q)
    }
}

impl Compressor for GgufQuant {
    fn recipe(&self) -> String {
        StageSpec::new("gguf", self.args()).to_string()
    }

    fn compress(&self, w: ArrayView2<'_, f32>, ctx: &Context<'_>) -> Result<Compressed> {
        let m = match self.method {
            GgufMethod::Reference => GgufMatrix::quantize(self.ty, w)?,
            GgufMethod::Imatrix => {
                let stats = ctx.require_stats(&self.recipe())?;
                GgufMatrix::quantize_weighted(self.ty, w, &importance(stats)?)?
            }
            GgufMethod::Gptq { damp, block } => {
                let stats = ctx.require_stats(&self.recipe())?;
                GgufMatrix::quantize_gptq(self.ty, w, stats.gram().view(), damp, block)?
            }
        };
        Ok(Compressed::new(m))
    }
}

/// llama.cpp's imatrix from calibration statistics: the mean of `x_j^2` over
/// the calibration tokens, `diag(H)_j / count`, as f32 (one value per input
/// column).
pub fn importance(stats: &LayerStats) -> Result<Vec<f32>> {
    stats.require_data("GGUF importance (imatrix)")?;
    let c = stats.count() as f64;
    let g = stats.gram();
    Ok((0..stats.in_features())
        .map(|j| (g[(j, j)] / c) as f32)
        .collect())
}
