//! GPTQ: data-aware rounding with second-order error compensation, over any
//! grid and scaling of [`crate::spec`].
//!
//! Paper: Frantar, Ashkboos, Hoefler, Alistarh, "GPTQ: Accurate Post-Training
//! Quantization for Generative Pre-trained Transformers", ICLR 2023
//! (arXiv 2210.17323). Algorithm as restated in the project's algorithm notes
//! (section 5.1) and the project's PyTorch reference `gptq_ref.py`.
//!
//! # Objective
//!
//! With `H = X^T X` the Gram matrix of the layer's calibration inputs, GPTQ
//! approximately solves, for every output row `w` of `W` independently,
//!
//! ```text
//! min over w' on the grid of  (w - w') H (w - w')^T  = ||X (w - w')^T||^2
//! ```
//!
//! by quantizing one input column at a time and spreading each column's
//! rounding error over the columns not yet quantized, with the optimal
//! (least-squares) correction given by the inverse Hessian.
//!
//! # Algorithm
//!
//! 1. Dead inputs (`H_jj = 0`): set `H_jj = 1` and `W[:, j] = 0`.
//! 2. Static groups (option): the parameters of every group of `g`
//!    consecutive input columns are fitted now, on these weights.
//! 3. Act-order (option): columns are processed by decreasing `H_jj`
//!    (a stable sort, so ties keep their index order); `W` and `H` are
//!    permuted accordingly.
//! 4. Damping: `H += damp * mean(diag H) * I` (`damp` = 0.01 by default).
//! 5. `U` = upper Cholesky factor of `H^{-1}` (`H^{-1} = U^T U`).
//! 6. For each column `c`, in lazy blocks of `B` columns (128 by default):
//!    when `c` starts a group (`c % g == 0`, dynamic groups) the group's
//!    parameters are fitted on the **current** weights of columns `[c, c+g)`;
//!    then `q = Q(w_c)`, `e = (w_c - q) / U_cc`, and the block's remaining
//!    columns are updated `w_j -= e U_cj`. The columns after a block receive
//!    all of its updates at once (in the reference,
//!    `W[:, i2:] -= E U[i1:i2, i2:]` after each block; here the equivalent
//!    left-looking product at the start of each block, see below).
//!
//! `Q` is the [`Prepared`] quantizer of the spec, so every grid works: integer
//! (sym/asym), NormalFloat, small floats, Lloyd, MX and NVFP4, with MSE
//! clipping (`mse`) applied through [`Prepared::params`] whenever a group's
//! parameters are fitted. Tensor-level state (the Lloyd codebook, the NVFP4
//! tensor scale) is prepared once from the weights before any update.
//! Per-channel and per-tensor parameters are fitted once, up front, as in the
//! reference.
//!
//! # Numerical choices
//!
//! * The factor comes from [`shrink_core::obs::ObsFactor`]: the sweep is
//!   organized **left-looking**. With `R = U^{-1}` (the upper factor of
//!   `H = R R^T`, a Cholesky factorization of the reversed matrix), the
//!   weights of a lazy block `b` when the sweep reaches it are
//!   `W_b + (W - Q)_<b R_<b,b U_bb`: one matrix product from the original
//!   weights and the differences already fixed. This is the same quantity as
//!   the reference's right-looking lazy updates, but needs one Cholesky
//!   factorization (`n^3 / 3`) instead of a factorization and a whole
//!   triangular inverse; see that module for the derivation. The
//!   factorization runs in f32 (as the reference's does) and again in f64
//!   when f32 fails; if both fail, or the factor is not finite, the damping
//!   is multiplied by 10 (at least 1e-3) and the factorization retried, up
//!   to 6 attempts; after that a [`Error::Stats`] is returned. Only the
//!   lower triangle of the (permuted) `H` is read. A non-finite or
//!   negative-diagonal `H` is rejected up front.
//! * Lazy blocks have at least `B` columns and never split a group of the
//!   rounding rule (a block ends only where every group started so far has
//!   ended), so group parameters are always fitted on fully up-to-date
//!   weights. In exact arithmetic the block width changes nothing.
//! * The weights being updated are f32 (as in the reference); `U` is rounded
//!   to f32 for the updates.
//! * Dynamic group parameters are fitted on the fully up-to-date weights of
//!   the group's columns. This equals the column-at-a-time algorithm for
//!   every group size, and equals the reference whenever the group size
//!   divides the block size or is a multiple of it (all shipped recipes).
//! * Rows are independent given the factor and the parameters: the work is
//!   split into fixed chunks of 64 rows before it is spread over threads
//!   (each chunk sweeps every block on its own), so the result does not
//!   depend on the number of threads.
//!
//! # Custom rounding rules (block formats)
//!
//! The column sweep of step 6 is generic over a [`GptqRule`]: when a column
//! starts a group the rule fits the group's parameters on the current
//! (error-updated) weights, then rounds each value with them. The grids of
//! this crate are one such rule; [`gptq_sweep`] runs GPTQ (without
//! act-order) with any other, which is how `shrink-pack` drives ggml's GGUF
//! block types (parameters fitted by ggml's own rule on each block of each
//! row as GPTQ reaches it).
//!
//! # Act-order and storage
//!
//! Without act-order, or with act-order and static groups, or with per-channel
//! or per-tensor parameters, the result is a plain [`QuantizedMatrix`] with
//! codes in the original column order. With act-order and dynamic groups the
//! groups are sets of columns in processing order, which a contiguous-group
//! matrix cannot describe; the result is then an [`ActOrderMatrix`]: the
//! quantized matrix of the permuted columns plus the permutation (the layout
//! act-order kernels use: they permute the input activations once).
//!
//! # Restricted support (masks)
//!
//! Given a mask (a [`Context::mask`], set by a pipeline after a pruning
//! stage) every pruned weight is quantized to `q = 0` and its error
//! `(w - 0) / U_cc` is propagated like any other, exactly as SparseGPT does;
//! group parameters are fitted with pruned weights counted as 0. The stored
//! code of a pruned weight is the code of 0 under its group's parameters.
//! Every grid except Lloyd codebooks without a zero level and the 1-bit sign
//! grid represents 0 exactly; for those two, the code stored there is the
//! nearest level, and a [`Pipeline`](shrink_core::Pipeline) in
//! restricted-support mode zeroes it ([`shrink_core::Restricted`] applies the
//! mask on reconstruction), so the reconstruction is exactly 0 there.
//!
//! # Recipe
//!
//! `gptq:<grid>[:<granularity>][:sym|asym][:mse][:f32|f16|bf16][:actorder][:static][:blockN][:dampX]`,
//! e.g. `gptq:int4:g128:asym`, `gptq:int4:g128:asym:actorder:static`,
//! `gptq:nf4:g64`, `gptq:mxfp4`. `static` needs group granularity. The
//! canonical form omits the default block (128) and damping (0.01).

use crate::matrix::{QuantizedMatrix, group_layout};
use crate::quantizer::{GroupParams, Prepared, round_ties_even};
use crate::spec::{Granularity, QuantSpec};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use shrink_core::check::{finite_matrix, input_width};
use shrink_core::obs::ObsFactor;
use shrink_core::{
    Compressed, Compressor, Context, Error, Mask, Reconstruct, Result, StageSpec, Storage,
};

/// Default lazy-block width (columns updated together).
pub const DEFAULT_BLOCK: usize = 128;

/// Default relative damping: `H += 0.01 * mean(diag H) * I`.
pub const DEFAULT_DAMP: f64 = 0.01;

/// Rows per work item (fixed, so results do not depend on the thread count).
const ROW_CHUNK: usize = 48;

/// Factorization attempts (each multiplies the damping by 10) before giving up.
const DAMP_ATTEMPTS: usize = 6;

/// The GPTQ compressor and its options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gptq {
    /// The grid, granularity and scale format.
    pub spec: QuantSpec,
    /// Process columns by decreasing `H_jj` (act-order, "desc_act").
    pub act_order: bool,
    /// Fit every group's parameters before any update (needs group granularity).
    pub static_groups: bool,
    /// Lazy-block width in columns (default 128).
    pub block: usize,
    /// Relative damping added to the diagonal of `H` (default 0.01).
    pub damp: f64,
}

impl Gptq {
    /// GPTQ with default options (no act-order, block 128, damping 0.01).
    pub fn new(spec: QuantSpec) -> Self {
        Self {
            spec,
            act_order: false,
            static_groups: false,
            block: DEFAULT_BLOCK,
            damp: DEFAULT_DAMP,
        }
    }

    /// Turns act-order on or off.
    pub fn with_act_order(mut self, on: bool) -> Self {
        self.act_order = on;
        self
    }

    /// Turns static groups on or off.
    pub fn with_static_groups(mut self, on: bool) -> Self {
        self.static_groups = on;
        self
    }

    /// Sets the lazy-block width.
    pub fn with_block(mut self, block: usize) -> Self {
        self.block = block;
        self
    }

    /// Sets the relative damping.
    pub fn with_damp(mut self, damp: f64) -> Self {
        self.damp = damp;
        self
    }

    /// Checks the options.
    pub fn validate(&self) -> Result<()> {
        self.spec.validate()?;
        if self.block == 0 {
            return Err(Error::invalid(
                "GPTQ block",
                "the lazy-block width must be at least 1 column",
            ));
        }
        if !(self.damp.is_finite() && self.damp >= 0.0) {
            return Err(Error::invalid(
                "GPTQ damping",
                format!("{} is not a finite non-negative number", self.damp),
            ));
        }
        if self.static_groups && !matches!(self.spec.granularity, Granularity::Group(_)) {
            return Err(Error::invalid(
                "static",
                "static groups need group granularity (gN, or a block format)",
            ));
        }
        Ok(())
    }

    /// The arguments after `gptq` in canonical order.
    pub fn args(&self) -> Vec<String> {
        let mut a = self.spec.args();
        if self.act_order {
            a.push("actorder".into());
        }
        if self.static_groups {
            a.push("static".into());
        }
        if self.block != DEFAULT_BLOCK {
            a.push(format!("block{}", self.block));
        }
        if self.damp != DEFAULT_DAMP {
            a.push(format!("damp{}", self.damp));
        }
        a
    }

    /// Parses a `gptq:...` stage.
    pub fn from_stage(stage: &StageSpec) -> Result<Self> {
        if stage.method != "gptq" {
            return Err(stage.error(&stage.method, "not a gptq stage"));
        }
        let mut act_order = false;
        let mut static_groups = false;
        let mut block: Option<usize> = None;
        let mut damp: Option<f64> = None;
        let mut bad: Option<Error> = None;
        let spec = QuantSpec::parse_args(stage, |a| {
            let mut fail = |reason: &str| {
                bad.get_or_insert_with(|| stage.error(a, reason));
            };
            match a {
                "actorder" => {
                    if std::mem::replace(&mut act_order, true) {
                        fail("given twice");
                    }
                    true
                }
                "static" => {
                    if std::mem::replace(&mut static_groups, true) {
                        fail("given twice");
                    }
                    true
                }
                _ => {
                    if let Some(v) = a.strip_prefix("block") {
                        match v.parse::<usize>() {
                            Ok(b) if b > 0 => {
                                if block.replace(b).is_some() {
                                    fail("given twice");
                                }
                            }
                            _ => fail("the block width is a positive integer (block128)"),
                        }
                        true
                    } else if let Some(v) = a.strip_prefix("damp") {
                        match v.parse::<f64>() {
                            Ok(d) if d.is_finite() && d >= 0.0 => {
                                if damp.replace(d).is_some() {
                                    fail("given twice");
                                }
                            }
                            _ => fail("the damping is a finite non-negative number (damp0.01)"),
                        }
                        true
                    } else {
                        false
                    }
                }
            }
        })?;
        if let Some(e) = bad {
            return Err(e);
        }
        let g = Self {
            spec,
            act_order,
            static_groups,
            block: block.unwrap_or(DEFAULT_BLOCK),
            damp: damp.unwrap_or(DEFAULT_DAMP),
        };
        g.validate()
            .map_err(|e| stage.error(stage.to_string(), e.to_string()))?;
        Ok(g)
    }
}

impl Compressor for Gptq {
    fn recipe(&self) -> String {
        StageSpec::new("gptq", self.args()).to_string()
    }

    fn compress(&self, w: ArrayView2<'_, f32>, ctx: &Context<'_>) -> Result<Compressed> {
        let stats = ctx.require_stats("gptq")?;
        Ok(quantize_gptq(w, stats.gram().view(), self, ctx.mask)?.into_compressed())
    }
}

/// What GPTQ returns: a plain quantized matrix, or (act-order with dynamic
/// groups) the quantized permuted matrix with its permutation.
#[derive(Clone, Debug, PartialEq)]
pub enum GptqOutput {
    /// Codes in the original column order, contiguous groups.
    Matrix(QuantizedMatrix),
    /// Groups over the act-order permutation.
    ActOrder(ActOrderMatrix),
}

impl GptqOutput {
    /// Wraps the concrete form (so that it can be downcast to
    /// [`QuantizedMatrix`] or [`ActOrderMatrix`]).
    pub fn into_compressed(self) -> Compressed {
        match self {
            GptqOutput::Matrix(q) => Compressed::new(q),
            GptqOutput::ActOrder(a) => Compressed::new(a),
        }
    }

    /// The form as a trait object.
    pub fn as_reconstruct(&self) -> &dyn Reconstruct {
        match self {
            GptqOutput::Matrix(q) => q,
            GptqOutput::ActOrder(a) => a,
        }
    }

    /// The plain matrix, when the result is one.
    pub fn as_matrix(&self) -> Option<&QuantizedMatrix> {
        match self {
            GptqOutput::Matrix(q) => Some(q),
            GptqOutput::ActOrder(_) => None,
        }
    }

    /// One code per weight in the original column order, row-major.
    pub fn codes(&self) -> Vec<u8> {
        match self {
            GptqOutput::Matrix(q) => q.codes().to_vec(),
            GptqOutput::ActOrder(a) => a.original_codes(),
        }
    }
}

/// A quantized matrix whose columns are stored in a permuted order: column
/// `k` of [`inner`](Self::inner) is column `perm[k]` of the weight matrix.
/// Groups are contiguous in the permuted order (GPTQ act-order without
/// static groups).
///
/// Storage: the inner matrix plus the permutation, one index per input
/// column (2 bytes when there are at most 65,536 columns, 4 otherwise).
#[derive(Clone, Debug, PartialEq)]
pub struct ActOrderMatrix {
    inner: QuantizedMatrix,
    perm: Vec<u32>,
}

impl ActOrderMatrix {
    /// Assembles the form; `perm` must be a permutation of `0..cols`.
    pub fn new(inner: QuantizedMatrix, perm: Vec<u32>) -> Result<Self> {
        let cols = inner.shape().1;
        if perm.len() != cols {
            return Err(Error::corrupt(
                "column permutation",
                format!("{} indices for {cols} columns", perm.len()),
            ));
        }
        let mut seen = vec![false; cols];
        for (k, &p) in perm.iter().enumerate() {
            match seen.get_mut(p as usize) {
                Some(s) if !*s => *s = true,
                _ => {
                    return Err(Error::corrupt(
                        "column permutation",
                        format!("index {p} at position {k} is out of range or repeated"),
                    ));
                }
            }
        }
        Ok(Self { inner, perm })
    }

    /// The quantized matrix of the permuted columns.
    pub fn inner(&self) -> &QuantizedMatrix {
        &self.inner
    }

    /// The permutation: stored column `k` is weight column `perm[k]`.
    pub fn perm(&self) -> &[u32] {
        &self.perm
    }

    /// One code per weight in the original column order, row-major.
    pub fn original_codes(&self) -> Vec<u8> {
        let (rows, cols) = self.inner.shape();
        let src = self.inner.codes();
        let mut out = vec![0u8; rows * cols];
        for (o, s) in out.chunks_mut(cols).zip(src.chunks(cols)) {
            for (&p, &c) in self.perm.iter().zip(s) {
                o[p as usize] = c;
            }
        }
        out
    }
}

impl Reconstruct for ActOrderMatrix {
    fn shape(&self) -> (usize, usize) {
        self.inner.shape()
    }

    fn to_dense(&self) -> Array2<f32> {
        let d = self.inner.to_dense();
        let mut out = Array2::<f32>::zeros(d.dim());
        for (k, &p) in self.perm.iter().enumerate() {
            out.column_mut(p as usize).assign(&d.column(k));
        }
        out
    }

    /// `x W'^T = x[:, perm] W_inner^T`: the inputs are permuted once and the
    /// inner matrix's fused forward does the rest.
    fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        input_width("forward input", x, self.perm.len())?;
        let mut xp = Array2::<f32>::zeros(x.dim());
        for (k, &p) in self.perm.iter().enumerate() {
            xp.column_mut(k).assign(&x.column(p as usize));
        }
        self.inner.forward(xp.view())
    }

    fn storage(&self) -> Storage {
        let cols = self.perm.len() as u64;
        let width = if cols <= 1 << 16 { 2 } else { 4 };
        self.inner
            .storage()
            .with("column permutation", cols * width)
    }

    /// The inner matrix's kept codes (the count does not depend on the
    /// column order) plus the permutation.
    fn storage_on(&self, mask: &Mask) -> Option<Storage> {
        let cols = self.perm.len() as u64;
        let width = if cols <= 1 << 16 { 2 } else { 4 };
        Some(
            self.inner
                .storage_on(mask)?
                .with("column permutation", cols * width),
        )
    }
}

/// Where the parameters of a weight come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParamPlan {
    /// One set for the whole matrix, fitted up front.
    Tensor,
    /// One set per row, fitted up front.
    Channel,
    /// Groups of original columns, fitted up front.
    Static(usize),
    /// Groups of processing-order columns, fitted when reached.
    Dynamic(usize),
}

/// Quantizes `w` (out x in) by GPTQ with the Gram matrix `h` (in x in,
/// `X^T X` at any positive scale), optionally restricted to `mask`.
pub fn quantize_gptq(
    w: ArrayView2<'_, f32>,
    h: ArrayView2<'_, f64>,
    cfg: &Gptq,
    mask: Option<&Mask>,
) -> Result<GptqOutput> {
    finite_matrix("weights", w)?;
    cfg.validate()?;
    let (rows, cols) = w.dim();
    check_gram(h, cols)?;
    if let Some(m) = mask.filter(|m| m.shape() != (rows, cols)) {
        return Err(Error::shape(
            "GPTQ mask",
            format!("{:?}", (rows, cols)),
            format!("{:?}", m.shape()),
        ));
    }
    let spec = cfg.spec;
    let (_, per_row) = group_layout(spec.granularity, rows, cols)?;

    // 1. Dead inputs.
    let (mut wk, diag) = dead_zeroed(w, h);
    let keep: Option<Vec<bool>> = mask.map(|m| {
        (0..rows * cols)
            .map(|k| m.get(k / cols, k % cols))
            .collect()
    });

    // 2. The values the result approximates (dead and pruned weights are 0):
    // tensor-level state (Lloyd codebook, NVFP4 tensor scale) and up-front
    // parameters (tensor, channel, static groups) are fitted on them.
    let masked: Option<Vec<f32>> = keep.as_ref().map(|k| {
        wk.iter()
            .zip(k)
            .map(|(&v, &kept)| if kept { v } else { 0.0 })
            .collect()
    });
    let target: &[f32] = masked.as_deref().unwrap_or(&wk);
    let quant = Prepared::new(spec, target, cols)?;
    let plan = match spec.granularity {
        Granularity::Tensor => ParamPlan::Tensor,
        Granularity::Channel => ParamPlan::Channel,
        Granularity::Group(g) if cfg.static_groups => ParamPlan::Static(g),
        Granularity::Group(g) => ParamPlan::Dynamic(g),
    };
    let upfront: Vec<GroupParams> = match plan {
        ParamPlan::Tensor => vec![quant.params(target)?],
        ParamPlan::Channel => collect_params(&quant, target, cols)?,
        ParamPlan::Static(g) => collect_params(&quant, target, g)?,
        ParamPlan::Dynamic(_) => Vec::new(),
    };

    // 3. Act-order permutation (stable: ties keep index order).
    let mut perm: Vec<usize> = (0..cols).collect();
    if cfg.act_order {
        perm.sort_by(|&a, &b| diag[b].total_cmp(&diag[a]));
    }
    let identity = perm.iter().enumerate().all(|(k, &p)| k == p);
    if !identity {
        let src = wk.clone();
        for (dst, s) in wk.chunks_mut(cols).zip(src.chunks(cols)) {
            for (d, &p) in dst.iter_mut().zip(&perm) {
                *d = s[p];
            }
        }
    }
    let keep_p: Option<Vec<bool>> = keep.map(|k| {
        let mut out = vec![false; rows * cols];
        for r in 0..rows {
            for (c, &p) in perm.iter().enumerate() {
                out[r * cols + c] = k[r * cols + p];
            }
        }
        out
    });

    // 6. The column loop.
    let dyn_per_row = match plan {
        ParamPlan::Dynamic(_) => per_row,
        _ => 1,
    };
    let mut codes_p = vec![0u8; rows * cols];
    let mut params_dyn = vec![GroupParams::default(); rows * dyn_per_row];
    let rule = PreparedRule {
        quant: &quant,
        cols,
        plan,
        upfront_sz: upfront
            .iter()
            .map(|p| (quant.scale_value(p.raw_scale), p.zero))
            .collect(),
        perm: &perm,
        keep: keep_p.as_deref(),
        per_row,
        rows: std::marker::PhantomData,
    };
    {
        let mut row_states: Vec<PreparedRow<'_>> = codes_p
            .chunks_mut(cols)
            .zip(params_dyn.chunks_mut(dyn_per_row))
            .map(|(codes, params)| PreparedRow {
                codes,
                params,
                cur: (1.0, 0),
            })
            .collect();
        // 4-5. Damping and the inverse-Hessian factor.
        let bounds = partition(&rule, cols, cfg.block);
        let factor = ObsFactor::new(h, &perm, cfg.damp, DAMP_ATTEMPTS, &bounds)?;
        run_sweep(&wk, &factor, &rule, &mut row_states)?;
    }

    // Assemble.
    match plan {
        ParamPlan::Dynamic(_) if !identity => {
            let inner = QuantizedMatrix::from_parts(quant, rows, cols, codes_p, params_dyn)?;
            let perm32 = perm.iter().map(|&p| p as u32).collect();
            Ok(GptqOutput::ActOrder(ActOrderMatrix::new(inner, perm32)?))
        }
        _ => {
            let codes = if identity {
                codes_p
            } else {
                let mut out = vec![0u8; rows * cols];
                for (o, s) in out.chunks_mut(cols).zip(codes_p.chunks(cols)) {
                    for (&p, &c) in perm.iter().zip(s) {
                        o[p] = c;
                    }
                }
                out
            };
            let params = match plan {
                ParamPlan::Dynamic(_) => params_dyn,
                _ => upfront,
            };
            Ok(GptqOutput::Matrix(QuantizedMatrix::from_parts(
                quant, rows, cols, codes, params,
            )?))
        }
    }
}

/// The weights (row-major) with dead inputs (`H_jj = 0`) zeroed, and the
/// diagonal of `h` with those entries set to 1.
fn dead_zeroed(w: ArrayView2<'_, f32>, h: ArrayView2<'_, f64>) -> (Vec<f32>, Vec<f64>) {
    let cols = w.ncols();
    let mut diag: Vec<f64> = (0..cols).map(|j| h[(j, j)]).collect();
    let dead: Vec<usize> = (0..cols).filter(|&j| diag[j] == 0.0).collect();
    for &j in &dead {
        diag[j] = 1.0;
    }
    let wk = shrink_core::linalg::copy_zeroing_columns(w, &dead);
    (wk, diag)
}

/// Checks the Gram matrix: `cols x cols`, finite, non-negative diagonal.
fn check_gram(h: ArrayView2<'_, f64>, cols: usize) -> Result<()> {
    shrink_core::check::gram("GPTQ Gram matrix", h, cols)
}

/// Parameters of consecutive chunks of `len` values (rows or groups), in order.
fn collect_params(quant: &Prepared, values: &[f32], len: usize) -> Result<Vec<GroupParams>> {
    let per: Vec<Result<GroupParams>> = values.par_chunks(len).map(|xs| quant.params(xs)).collect();
    per.into_iter().collect()
}

/// A rounding rule driven by GPTQ's column sweep ([`gptq_sweep`]): the hook
/// that lets any block format (ggml's GGUF blocks in `shrink-pack`, or the
/// grids of this crate) take GPTQ's error compensation.
///
/// The sweep visits the input columns of every row in order. When column `c`
/// starts a group ([`GptqRule::group_at`] returns its length `g`), the sweep
/// hands [`GptqRule::fit`] the **current** weights of columns `[c, c + g)`
/// of that row (every error update so far applied, including the pending
/// lazy-block updates), and the rule fixes the group's parameters; then every
/// column is rounded by [`GptqRule::quantize`] with those fixed parameters,
/// and its rounding error is propagated to the later columns as GPTQ does.
/// The rule records codes and parameters in its per-row state
/// ([`GptqRule::Row`]).
pub trait GptqRule: Sync {
    /// Per-row state and output (codes, parameters, block bytes...).
    type Row: Send;

    /// The length of the group whose parameters are fitted when the sweep
    /// reaches column `c`, or `None` when `c` starts no group.
    fn group_at(&self, c: usize) -> Option<usize>;

    /// Fits the parameters of the group that starts at column `c` of row `r`
    /// from its current weights `values` (`min(g, cols - c)` of them).
    fn fit(&self, row: &mut Self::Row, r: usize, c: usize, values: &[f32]) -> Result<()>;

    /// Rounds the current weight `x` of column `c` of row `r` with the
    /// parameters fitted for its group, records its code, and returns the
    /// value it is rounded to (exactly what the stored form decodes to).
    fn quantize(&self, row: &mut Self::Row, r: usize, c: usize, x: f32) -> f32;

    /// [`GptqRule::quantize`] for column `c` of the consecutive rows
    /// `r0..r0 + xs.len()` (states `rows`, current weights `xs`), writing the
    /// rounded values to `qs`. The provided method calls
    /// [`GptqRule::quantize`] row by row; a rule may override it with a
    /// faster equivalent, which must give the same values and codes.
    fn quantize_column(
        &self,
        rows: &mut [Self::Row],
        r0: usize,
        c: usize,
        xs: &[f32],
        qs: &mut [f32],
    ) {
        quantize_rows(self, rows, r0, c, xs, qs);
    }
}

/// [`GptqRule::quantize_column`]'s provided body: [`GptqRule::quantize`]
/// row by row.
fn quantize_rows<R: GptqRule + ?Sized>(
    rule: &R,
    rows: &mut [R::Row],
    r0: usize,
    c: usize,
    xs: &[f32],
    qs: &mut [f32],
) {
    for (lr, ((row, &x), q)) in rows.iter_mut().zip(xs).zip(qs.iter_mut()).enumerate() {
        *q = rule.quantize(row, r0 + lr, c, x);
    }
}

/// GPTQ with a custom rounding rule (no act-order): dead inputs, damping
/// `damp * mean(diag H)`, the upper Cholesky factor of `H^{-1}`, then the
/// column sweep with lazy blocks of `block` columns, calling `rule` for
/// every group and value (see [`GptqRule`]). `rows` holds one state per row
/// of `w` (out x in); `h` is `X^T X` at any positive scale (in x in).
///
/// Errors: the shape, finiteness and positive-definiteness errors of
/// [`quantize_gptq`]; [`Error::Shape`] when `rows.len()` is not the number of
/// rows of `w`; any error of [`GptqRule::fit`].
pub fn gptq_sweep<R: GptqRule>(
    w: ArrayView2<'_, f32>,
    h: ArrayView2<'_, f64>,
    damp: f64,
    block: usize,
    rule: &R,
    rows: &mut [R::Row],
) -> Result<()> {
    finite_matrix("weights", w)?;
    let (m, cols) = w.dim();
    check_gram(h, cols)?;
    if rows.len() != m {
        return Err(Error::shape("GPTQ row states", m, rows.len()));
    }
    if block == 0 {
        return Err(Error::invalid(
            "GPTQ block",
            "the lazy-block width must be at least 1 column",
        ));
    }
    if !(damp.is_finite() && damp >= 0.0) {
        return Err(Error::invalid(
            "GPTQ damping",
            format!("{damp} is not a finite non-negative number"),
        ));
    }
    let (wk, _) = dead_zeroed(w, h);
    let perm: Vec<usize> = (0..cols).collect();
    let bounds = partition(rule, cols, block);
    let factor = ObsFactor::new(h, &perm, damp, DAMP_ATTEMPTS, &bounds)?;
    run_sweep(&wk, &factor, rule, rows)
}

/// The lazy-block partition of `cols` columns: blocks of at least `block`
/// columns (the last may be shorter), never splitting a group of the rule
/// (a block ends only where every group started so far has ended), so that
/// [`GptqRule::fit`] always sees the up-to-date weights of a whole group.
fn partition<R: GptqRule>(rule: &R, cols: usize, block: usize) -> Vec<usize> {
    let mut bounds = vec![0];
    let mut start = 0;
    let mut need = 0;
    for c in 0..cols {
        if let Some(g) = rule.group_at(c) {
            need = need.max((c + g).min(cols));
        }
        let end = c + 1;
        if end < cols && end - start >= block && need <= end {
            bounds.push(end);
            start = end;
        }
    }
    bounds.push(cols);
    bounds
}

/// The left-looking column sweep (see [`shrink_core::obs`]): block by
/// block, rows split into fixed chunks spread over threads (deterministic).
/// All chunks sweep the same block at a time, so its slice of the factor
/// stays in cache while every chunk reads it. `orig` holds the dead-zeroed
/// weights (rows x cols).
fn run_sweep<R: GptqRule>(
    orig: &[f32],
    factor: &ObsFactor,
    rule: &R,
    rows: &mut [R::Row],
) -> Result<()> {
    let n = factor.n();
    let bounds = factor.bounds();
    let widest = bounds.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    // `w - q` of the swept columns; each chunk's slice is column-major.
    let mut diff = vec![0f32; orig.len()];
    // Per chunk: the current block, its rounded values and one error column.
    let mut cur = vec![0f32; rows.len() * (2 * widest + 1)];
    for b in 0..bounds.len() - 1 {
        orig.par_chunks(ROW_CHUNK * n)
            .zip(diff.par_chunks_mut(ROW_CHUNK * n))
            .zip(rows.par_chunks_mut(ROW_CHUNK))
            .zip(cur.par_chunks_mut(ROW_CHUNK * (2 * widest + 1)))
            .enumerate()
            .map(|(ci, (((oc, dc), rc), cc))| {
                sweep_block(rule, factor, b, ci * ROW_CHUNK, oc, dc, rc, cc)
            })
            .collect::<Result<Vec<()>>>()?;
    }
    Ok(())
}

/// Sweeps block `b` for one chunk of rows (first row `r0`): the block's
/// current weights from one product ([`ObsFactor::block_start_cols`],
/// column-major in `cur`), then column by column: fit a group where one starts, round
/// every row's value, spread the rows' errors over the block's later columns
/// ([`ObsFactor::propagate`]); `w - q` is recorded at the end, column-major
/// within the chunk (`diff[c * rows + r]`).
/// The rows of a chunk are independent, so a column's roundings carry no
/// serial dependency and the update is vectorized across the rows.
#[allow(clippy::too_many_arguments)]
fn sweep_block<R: GptqRule>(
    rule: &R,
    factor: &ObsFactor,
    b: usize,
    r0: usize,
    orig: &[f32],
    diff: &mut [f32],
    rc: &mut [R::Row],
    cur: &mut [f32],
) -> Result<()> {
    let n = factor.n();
    let nr = orig.len() / n;
    let (i1, i2) = (factor.bounds()[b], factor.bounds()[b + 1]);
    let bw = i2 - i1;
    let (cur, rest) = cur.split_at_mut(nr * bw);
    // The block's rounded values (column-major, like `cur`), then the rows'
    // scaled errors of the current column.
    let (qblk, rest) = rest.split_at_mut(nr * bw);
    let e = &mut rest[..nr];
    factor.block_start_cols(b, orig, diff, nr, cur);
    let mut group: Vec<f32> = Vec::new();
    for c in i1..i2 {
        let k = c - i1;
        if let Some(g) = rule.group_at(c) {
            let end = (k + g).min(bw);
            for (lr, row) in rc.iter_mut().enumerate().take(nr) {
                group.clear();
                group.extend((k..end).map(|j| cur[j * nr + lr]));
                rule.fit(row, r0 + lr, c, &group)?;
            }
        }
        let dc = factor.diag(c);
        let (col, later) = cur[k * nr..].split_at_mut(nr);
        let qcol = &mut qblk[k * nr..(k + 1) * nr];
        rule.quantize_column(&mut rc[..nr], r0, c, col, qcol);
        for ((ev, &x), &q) in e.iter_mut().zip(&*col).zip(&*qcol) {
            *ev = (x - q) / dc;
        }
        factor.propagate(c, e, later);
    }
    // `diff` is column-major within the chunk (what the next block starts
    // read as one product operand).
    for (k, (d_col, q_col)) in diff[i1 * nr..i2 * nr]
        .chunks_exact_mut(nr)
        .zip(qblk.chunks_exact(nr))
        .enumerate()
    {
        for (lr, (d, &q)) in d_col.iter_mut().zip(q_col).enumerate() {
            *d = orig[lr * n + i1 + k] - q;
        }
    }
    Ok(())
}

/// The [`GptqRule`] of the grids of this crate: a [`Prepared`] quantizer with
/// up-front (tensor, channel, static-group) or dynamic-group parameters, and
/// the restricted-support mask.
struct PreparedRule<'a, 'b> {
    quant: &'a Prepared,
    cols: usize,
    plan: ParamPlan,
    /// Scale values and zero points of the up-front parameters.
    upfront_sz: Vec<(f32, u8)>,
    perm: &'a [usize],
    /// Kept weights in processing order, when restricted.
    keep: Option<&'a [bool]>,
    per_row: usize,
    rows: std::marker::PhantomData<&'b ()>,
}

/// One row's codes and dynamic-group parameters (slices of the whole
/// matrix's buffers).
struct PreparedRow<'b> {
    codes: &'b mut [u8],
    params: &'b mut [GroupParams],
    /// Scale value and zero point of the dynamic group in force.
    cur: (f32, u8),
}

impl PreparedRule<'_, '_> {
    fn kept(&self, r: usize, c: usize) -> bool {
        self.keep.is_none_or(|k| k[r * self.cols + c])
    }

    /// The scale and zero point that round column `c` of row `r`.
    #[inline]
    fn scale_zero(&self, row: &PreparedRow<'_>, r: usize, c: usize) -> (f32, u8) {
        match self.plan {
            ParamPlan::Tensor => self.upfront_sz[0],
            ParamPlan::Channel => self.upfront_sz[r],
            ParamPlan::Static(g) => self.upfront_sz[r * self.per_row + self.perm[c] / g],
            ParamPlan::Dynamic(_) => row.cur,
        }
    }
}

impl<'b> GptqRule for PreparedRule<'_, 'b> {
    type Row = PreparedRow<'b>;

    fn group_at(&self, c: usize) -> Option<usize> {
        match self.plan {
            ParamPlan::Dynamic(g) if c.is_multiple_of(g) => Some(g),
            _ => None,
        }
    }

    fn fit(&self, row: &mut PreparedRow<'b>, r: usize, c: usize, values: &[f32]) -> Result<()> {
        let ParamPlan::Dynamic(g) = self.plan else {
            return Ok(());
        };
        let vals: Vec<f32> = values
            .iter()
            .enumerate()
            .map(|(t, &v)| if self.kept(r, c + t) { v } else { 0.0 })
            .collect();
        let p = self.quant.params(&vals)?;
        row.params[c / g] = p;
        row.cur = (self.quant.scale_value(p.raw_scale), p.zero);
        Ok(())
    }

    /// Integer grids without a mask: the scales and zero points of the rows
    /// gathered, then [`int_column`] (the arithmetic of
    /// [`Prepared::encode_with`] and [`Prepared::decode_with`], vectorized
    /// over rows).
    fn quantize_column(
        &self,
        rows: &mut [PreparedRow<'b>],
        r0: usize,
        c: usize,
        xs: &[f32],
        qs: &mut [f32],
    ) {
        let Some((lo, hi)) = self.quant.int_range().filter(|_| self.keep.is_none()) else {
            quantize_rows(self, rows, r0, c, xs, qs);
            return;
        };
        const LANES: usize = 64;
        let (mut s, mut z, mut codes) = ([0f32; LANES], [0u8; LANES], [0u8; LANES]);
        for (t, ((rs, xs), qs)) in rows
            .chunks_mut(LANES)
            .zip(xs.chunks(LANES))
            .zip(qs.chunks_mut(LANES))
            .enumerate()
        {
            let n = xs.len();
            for (lr, row) in rs.iter().enumerate() {
                (s[lr], z[lr]) = self.scale_zero(row, r0 + t * LANES + lr, c);
            }
            int_column(xs, &s[..n], &z[..n], lo, hi, &mut codes[..n], qs);
            for (row, &code) in rs.iter_mut().zip(&codes[..n]) {
                row.codes[c] = code;
            }
        }
    }

    #[inline]
    fn quantize(&self, row: &mut PreparedRow<'b>, r: usize, c: usize, x: f32) -> f32 {
        let (s, zero) = self.scale_zero(row, r, c);
        if self.kept(r, c) {
            let code = self.quant.encode_with(x, s, zero);
            row.codes[c] = code;
            self.quant.decode_with(code, s, zero)
        } else {
            row.codes[c] = self.quant.encode_with(0.0, s, zero);
            0.0
        }
    }
}

/// Integer-grid rounding of a column of values `xs` with per-value scales
/// `s` and zero points `z` (levels `lo..=hi`): `code = clamp(round_half_even(x
/// / s) + z, lo, hi) - lo` in f64 and `q = (code + lo - z) s` in f32, the
/// operations of [`Prepared::encode_with`] and [`Prepared::decode_with`] for
/// integer levels, so the same codes and bits. Compiled for the baseline CPU
/// and for AVX2 (picked at run time).
#[multiversion::multiversion(targets("x86_64+avx2"))]
fn int_column(xs: &[f32], s: &[f32], z: &[u8], lo: i32, hi: i32, codes: &mut [u8], qs: &mut [f32]) {
    let (flo, fhi) = (f64::from(lo), f64::from(hi));
    for ((((&x, &s), &z), code), q) in xs.iter().zip(s).zip(z).zip(codes).zip(qs) {
        let v = round_ties_even(f64::from(x) / f64::from(s)) + f64::from(z);
        let k = v.clamp(flo, fhi) as i32 - lo;
        *code = k as u8;
        *q = (k + lo - i32::from(z)) as f32 * s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `int_column` gives `encode_with` / `decode_with`'s codes and bits on
    /// ties, clamped values, tiny and huge quotients and signed zeros.
    #[test]
    fn int_column_is_encode_then_decode() {
        for recipe in [
            "x:int4:g128:asym",
            "x:int3:g128:sym",
            "x:int8:channel:sym",
            "x:int2:g64:asym",
        ] {
            let spec = QuantSpec::parse_args(&recipe.parse().unwrap(), |_| false).unwrap();
            let data: Vec<f32> = (0..256).map(|k| (k as f32 - 128.0) / 37.0).collect();
            let q = Prepared::new(spec, &data, 128).unwrap();
            let (lo, hi) = q.int_range().unwrap();
            let mut xs: Vec<f32> = (0..200).map(|k| (k as f32 - 100.0) * 0.125).collect();
            xs.extend([
                0.0, -0.0, 1e-30, -1e-30, 3e38, -3e38, 0.5, 1.5, 2.5, -0.5, -2.5,
            ]);
            let n = xs.len();
            let s: Vec<f32> = (0..n)
                .map(|k| [0.25f32, 0.5, 1.0, 1e-20, 3.0][k % 5])
                .collect();
            let z: Vec<u8> = (0..n).map(|k| (k % (hi - lo + 1) as usize) as u8).collect();
            let (mut codes, mut qs) = (vec![0u8; n], vec![0f32; n]);
            int_column(&xs, &s, &z, lo, hi, &mut codes, &mut qs);
            for k in 0..n {
                let code = q.encode_with(xs[k], s[k], z[k]);
                assert_eq!(
                    codes[k], code,
                    "{recipe}: x {} s {} z {}",
                    xs[k], s[k], z[k]
                );
                assert_eq!(
                    qs[k].to_bits(),
                    q.decode_with(code, s[k], z[k]).to_bits(),
                    "{recipe}: x {}",
                    xs[k]
                );
            }
        }
    }
}
