//! SparseGPT: one-shot pruning with optimal-brain-surgeon weight updates.
//!
//! Paper: Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be
//! Accurately Pruned in One-Shot", ICML 2023 (arXiv 2301.00774); code
//! `IST-DASLab/sparsegpt` (`SparseGPT.fasterprune`).
//!
//! Objective (per layer, rows independent): `min ||X (W - W')^T||_F^2 =
//! tr((W - W') H (W - W')^T)` over `W'` with the sparsity pattern, solved
//! greedily column by column: pruning (or quantizing) column `c` to `q`
//! leaves the error `err = (w_c - q) / U_cc`, and the remaining columns
//! absorb it, `W[:, c+1:] -= err U[c, c+1:]`, where `U` is the upper
//! Cholesky factor of the damped inverse Hessian (`H^{-1} = U^T U`, see
//! [`shrink_core::obs`]; dead inputs zeroed, damping `0.01 * mean(diag H)`).
//!
//! Algorithm (as the reference, and as algorithms.md 6.1):
//!
//! * columns are processed in blocks of `B = 128` (a multiple of `M` for N:M);
//! * **unstructured**: at the start of each block the mask is chosen from
//!   the block's current (already updated) weights by the score
//!   `W_rc^2 / U_cc^2`, pooled over **all rows and columns of the block**:
//!   exactly `floor(s * rows * B)` lowest scores are pruned (the reference
//!   prunes every score `<=` the threshold, one more when there are no ties);
//! * **N:M**: at each column `i` of the block with `i % M == 0`, every row
//!   prunes the `M - N` lowest scores among columns `[i, i+M)` (updated
//!   weights);
//! * then column by column `q = w` if kept, `0` if pruned (joint mode:
//!   the kept weight rounded to the quantizer's grid) and the in-block
//!   update above. The updates from earlier blocks reach a block in
//!   left-looking form ([`shrink_core::obs`]): at the block's start its
//!   current weights are `W_b + (W - W')_<b V_<b,b`, one GEMM, which equals
//!   the reference's lazy update `W[:, b1:] -= Err @ U[b0:b1, b1:]` after
//!   every earlier block without forming `U` outside the diagonal blocks.
//!
//! **Joint mode** (`sparsegpt:50%:int4:g128`, the paper's joint
//! sparsification and quantization): each kept weight is quantized as its
//! column is processed, through a [`Prepared`] quantizer of shrink-quant;
//! pruned weights are exactly zero. Group parameters are computed when the
//! sweep reaches a group's first column, from the row's current values of
//! the group with the entries already known to be pruned set to zero
//! (`channel`: at column 0 from the whole row; `tensor`: once, from the
//! dead-zeroed input).
//!
//! In joint mode a group must lie inside a block (its size divides the
//! block), so that its parameters are fitted on up-to-date weights;
//! `channel` and `tensor` parameters always work.
//!
//! Numerics: the factor as [`shrink_core::obs`] computes it (Cholesky in
//! f32 like the reference, f64 when that breaks down), in f32 for the sweep; weights,
//! errors and updates in f32 like the reference; mask scores in f64. Rows
//! are swept in chunks (32 to 256 rows, from the shape alone) on the rayon
//! pool (each row's arithmetic is independent of the thread count); the
//! block mask is chosen on one thread. Ties as in [`crate::select`]. Within
//! a row the in-block updates of two pruned columns share one pass over the
//! rest of the block, in the same per-element order as two passes.

use crate::pattern::{Pattern, format_token, parse_args};
use crate::pruned::SparseQuantized;
use crate::select::{nm_group, select_smallest, total_key};
use crate::{finish, stage_for};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use shrink_core::check::finite_matrix;
use shrink_core::obs::{ObsFactor, sub_scaled, sub_scaled2};
use shrink_core::{Compressed, Compressor, Context, Error, Mask, Result, StageSpec};
use shrink_pack::sparse::ValueFormat;
use shrink_quant::matrix::group_layout;
use shrink_quant::{Granularity, GroupParams, Prepared, QuantSpec, QuantizedMatrix};

/// Rows swept per task: a sixteenth of the rows, between 32 and 256. It
/// depends on the shape only, never on the thread count (and each row's
/// arithmetic is independent of the chunking anyway); larger chunks make
/// the block-start products larger GEMMs (the dominant cost), and sixteen
/// chunks keep two to four threads busy.
fn row_chunk(rows: usize) -> usize {
    (rows / 16).clamp(32, 256)
}

/// SparseGPT settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SparseGptConfig {
    /// [`Pattern::Unstructured`] or [`Pattern::NM`].
    pub pattern: Pattern,
    /// Column block size (128 in the paper).
    pub block: usize,
    /// Relative damping (0.01 of the mean diagonal).
    pub damp: f64,
    /// Joint mode: quantize kept weights with this spec.
    pub quant: Option<QuantSpec>,
}

impl SparseGptConfig {
    /// The paper's defaults (blocks of 128, damping 0.01, no quantization).
    pub fn new(pattern: Pattern) -> Self {
        Self {
            pattern,
            block: 128,
            damp: 0.01,
            quant: None,
        }
    }
}

/// What [`sparsegpt`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseGptOutput {
    /// The pruned and updated weights (exact zeros where pruned; in joint
    /// mode the dequantized values where kept).
    pub weights: Array2<f32>,
    /// The mask (1 = kept).
    pub mask: Mask,
    /// Joint mode: the quantized matrix (codes at pruned positions are the
    /// code nearest to zero).
    pub quantized: Option<QuantizedMatrix>,
}

/// The quantizer state of the joint mode.
struct Joint {
    q: Prepared,
    granularity: Granularity,
    /// Groups per row (Group), 1 (Channel), 0 (Tensor).
    per_row: usize,
    tensor: Option<GroupParams>,
}

/// Runs SparseGPT on `w` (out x in) with the Gram matrix `gram` (in x in).
///
/// # Errors
///
/// [`Error::Shape`] when `gram` does not match; [`Error::InvalidArgument`]
/// for a pattern other than unstructured or N:M, an N:M group that does not
/// divide the rows, a zero block or a bad quantizer spec; [`Error::Stats`]
/// when the damped Hessian is not positive definite; errors for empty or
/// non-finite inputs.
pub fn sparsegpt(
    w: ArrayView2<'_, f32>,
    gram: ArrayView2<'_, f64>,
    cfg: &SparseGptConfig,
) -> Result<SparseGptOutput> {
    finite_matrix("weights", w)?;
    let (rows, cols) = w.dim();
    if gram.dim() != (cols, cols) {
        return Err(Error::shape(
            "Gram matrix for sparsegpt",
            format!("({cols}, {cols})"),
            format!("{:?}", gram.dim()),
        ));
    }
    cfg.pattern.check_shape(rows, cols)?;
    let nm = match cfg.pattern {
        Pattern::Unstructured(_) => None,
        Pattern::NM { n, m } => Some((n, m)),
        _ => {
            return Err(Error::invalid(
                "sparsegpt pattern",
                "SparseGPT prunes unstructured (50%) or N:M (2:4); structured rows/columns are \
                 not an OBS update of this kind (use magnitude or wanda for rows:/cols:)",
            ));
        }
    };
    if cfg.block == 0 {
        return Err(Error::invalid("block size", "must be at least 1"));
    }
    let block = match nm {
        Some((_, m)) => (cfg.block / m).max(1) * m,
        None => cfg.block,
    };

    let mut bounds: Vec<usize> = (0..cols).step_by(block).collect();
    bounds.push(cols);
    let perm: Vec<usize> = (0..cols).collect();
    let factor = ObsFactor::new(gram, &perm, cfg.damp, 1, &bounds)?;
    let d: Vec<f32> = (0..cols).map(|c| factor.diag(c)).collect();
    // The original weights (dead inputs zeroed); each swept column is
    // overwritten with its result, so this becomes the output. A column's
    // original values are read only before it is swept (at its block's
    // start, for its `w - q`, and for joint-mode group parameters).
    let dead: Vec<usize> = (0..cols).filter(|&j| factor.dead()[j]).collect();
    let mut weights = Array2::from_shape_vec(
        (rows, cols),
        shrink_core::linalg::copy_zeroing_columns(w, &dead),
    )
    .map_err(|e| Error::invalid("weights", format!("internal: {e}")))?;
    let orig = weights
        .as_slice_mut()
        .ok_or_else(|| Error::invalid("weights", "internal: non-contiguous buffer"))?;

    let joint = match cfg.quant {
        None => None,
        Some(spec) => {
            spec.validate()?;
            let (_, per_row) = group_layout(spec.granularity, rows, cols)?;
            if let Granularity::Group(g) = spec.granularity
                && !block.is_multiple_of(g)
            {
                return Err(Error::invalid(
                    "sparsegpt joint quantizer",
                    format!(
                        "the group size {g} must divide the column block ({block}), so that \
                         each group's parameters are fitted on up-to-date weights"
                    ),
                ));
            }
            let q = Prepared::new(spec, orig, cols)?;
            let tensor = match spec.granularity {
                Granularity::Tensor => Some(q.params(orig)?),
                _ => None,
            };
            let per_row = match spec.granularity {
                Granularity::Channel => 1,
                _ => per_row,
            };
            Some(Joint {
                q,
                granularity: spec.granularity,
                per_row,
                tensor,
            })
        }
    };
    // Per-row group parameters (at least one slot per row, so that the row
    // chunks below always split evenly) and codes (unused without joint mode).
    let per_row = joint.as_ref().map_or(1, |j| j.per_row.max(1));
    let mut params = vec![GroupParams::default(); rows * per_row];
    // Codes only exist in joint mode (one placeholder per row otherwise).
    let codes_w = if joint.is_some() { cols } else { 1 };
    let mut codes = vec![0u8; rows * codes_w];
    let mut keep = vec![true; rows * cols];
    // `w - q` of the swept columns, and the current block.
    let mut diff = vec![0f32; rows * cols];
    let mut cur = vec![0f32; rows * block.min(cols)];

    let chunk = row_chunk(rows);
    let mut keyed: Vec<(u64, usize)> = Vec::new();
    for b in 0..bounds.len() - 1 {
        let (b0, b1) = (bounds[b], bounds[b + 1]);
        let bw = b1 - b0;
        let cur = &mut cur[..rows * bw];
        cur.par_chunks_mut(chunk * bw)
            .zip(orig.par_chunks(chunk * cols))
            .zip(diff.par_chunks(chunk * cols))
            .for_each(|((cc, oc), dc)| {
                factor.block_start(b, oc, dc, oc.len() / cols, cc);
            });
        if let Pattern::Unstructured(r) = cfg.pattern {
            // One pooled threshold over the whole block: (score key, index)
            // pairs built in parallel into a buffer reused across blocks.
            keyed.resize(rows * bw, (0, 0));
            keyed
                .par_chunks_mut(bw)
                .zip(cur.par_chunks(bw))
                .enumerate()
                .for_each(|(i, (kr, cr))| {
                    for (t, (k, &x)) in kr.iter_mut().zip(cr).enumerate() {
                        let x = f64::from(x);
                        let dc = f64::from(d[b0 + t]);
                        *k = (total_key(x * x / (dc * dc)), i * bw + t);
                    }
                });
            // The block's flags are all still `true` (kept).
            for &(_, k) in select_smallest(&mut keyed, r.count_of(rows * bw)) {
                keep[(k / bw) * cols + b0 + k % bw] = false;
            }
        }
        let tasks: Vec<Result<()>> = cur
            .par_chunks_mut(chunk * bw)
            .zip(orig.par_chunks_mut(chunk * cols))
            .zip(diff.par_chunks_mut(chunk * cols))
            .zip(keep.par_chunks_mut(chunk * cols))
            .zip(codes.par_chunks_mut(chunk * codes_w))
            .zip(params.par_chunks_mut(chunk * per_row))
            .map(|(((((cc, oc), dc), kc), ccodes), pc)| {
                sweep_chunk(
                    Chunk {
                        cur: cc,
                        orig: oc,
                        diff: dc,
                        keep: kc,
                        codes: ccodes,
                        params: pc,
                    },
                    SweepBlock {
                        b0,
                        b1,
                        cols,
                        factor: &factor,
                        d: &d,
                        nm,
                        joint: joint.as_ref(),
                        per_row,
                    },
                )
            })
            .collect();
        for t in tasks {
            t?;
        }
    }

    let mask = Mask::from_flags(rows, cols, &keep)?;
    let quantized = match joint {
        None => None,
        Some(j) => {
            let params = match j.tensor {
                Some(p) => vec![p],
                None => params,
            };
            Some(QuantizedMatrix::from_parts(j.q, rows, cols, codes, params)?)
        }
    };
    Ok(SparseGptOutput {
        weights,
        mask,
        quantized,
    })
}

/// What every row chunk needs to sweep one block.
#[derive(Clone, Copy)]
struct SweepBlock<'a> {
    b0: usize,
    b1: usize,
    cols: usize,
    factor: &'a ObsFactor,
    d: &'a [f32],
    nm: Option<(usize, usize)>,
    joint: Option<&'a Joint>,
    /// Parameter slots per row in `params`.
    per_row: usize,
}

/// One chunk of rows: the block's current weights (`rows x bw`) and the
/// rows' slices of the whole-matrix buffers (`rows x cols`; `orig` holds
/// the original weights of the columns not yet swept and the results of
/// those swept).
struct Chunk<'a> {
    cur: &'a mut [f32],
    orig: &'a mut [f32],
    diff: &'a mut [f32],
    keep: &'a mut [bool],
    codes: &'a mut [u8],
    params: &'a mut [GroupParams],
}

/// Sweeps the columns `[b0, b1)` of a chunk of rows, column by column,
/// starting from the block's current weights.
///
/// The in-block updates are applied in pairs: the update of a column with a
/// non-zero error is held back (applied element by element only as later
/// columns are read) until the next non-zero error, and then both pass over
/// the rest of the row together ([`sub_scaled2`]). Every element sees the
/// same operations in the same order as with one pass per column, so the
/// results are the same bits; the row is read and written half as often.
fn sweep_chunk(ch: Chunk<'_>, blk: SweepBlock<'_>) -> Result<()> {
    let SweepBlock {
        b0,
        b1,
        cols,
        factor,
        d,
        nm,
        joint,
        per_row,
    } = blk;
    let bw = b1 - b0;
    let nr = ch.cur.len() / bw;
    if let (Some(nm), None) = (nm, joint) {
        sweep_chunk_nm(ch, b0, b1, cols, factor, d, nm);
        return Ok(());
    }
    let mut pruned_group = vec![false; nm.map_or(0, |(_, m)| m)];
    let mut gscores = vec![0f64; nm.map_or(0, |(_, m)| m)];
    let mut gbuf: Vec<f32> = Vec::new();
    for r in 0..nr {
        let row = &mut ch.cur[r * bw..(r + 1) * bw];
        let krow = &mut ch.keep[r * cols..(r + 1) * cols];
        let orow = &mut ch.orig[r * cols..(r + 1) * cols];
        let drow = &mut ch.diff[r * cols..(r + 1) * cols];
        // The parameters in force at column b0: the tensor's, or those of
        // the group (row) that started in an earlier block.
        let mut cur: Option<(f32, u8)> = joint.and_then(|j| {
            let p = match (j.tensor, j.granularity) {
                (Some(p), _) => Some(p),
                (None, Granularity::Group(g)) => {
                    (!b0.is_multiple_of(g)).then(|| ch.params[r * per_row + b0 / g])
                }
                (None, Granularity::Channel) => (b0 != 0).then(|| ch.params[r * per_row]),
                _ => None,
            };
            p.map(|p| (j.q.scale_value(p.raw_scale), p.zero))
        });
        let mut held = Held::default();
        for i in 0..bw {
            let c = b0 + i;
            if let Some((n, m)) = nm
                && i.is_multiple_of(m)
            {
                held.catch_up(row, i + m - 1, factor, b0, b1);
                for (t, sc) in gscores.iter_mut().enumerate() {
                    let x = f64::from(row[i + t]);
                    let dc = f64::from(d[c + t]);
                    *sc = x * x / (dc * dc);
                }
                nm_group(&gscores, m - n, &mut pruned_group);
                for (t, &p) in pruned_group.iter().enumerate() {
                    krow[c + t] = !p;
                }
            }
            let start = joint.and_then(|j| match j.granularity {
                Granularity::Group(g) => c.is_multiple_of(g).then_some((c / g, g)),
                Granularity::Channel => (c == 0).then_some((0, cols)),
                _ => None,
            });
            if start.is_some() {
                // A group reads the rest of the block: bring it up to date.
                held.flush(row, factor, b0, b1);
            } else {
                held.catch_up(row, i, factor, b0, b1);
            }
            let w = row[i];
            let kept = krow[c];
            let q = match joint {
                None => {
                    if kept {
                        w
                    } else {
                        0.0
                    }
                }
                Some(j) => {
                    if let Some((gi, g)) = start {
                        gbuf.clear();
                        // Entries already known to be pruned count as zero;
                        // undecided ones (later blocks, later N:M groups)
                        // are still marked kept. A group lies inside the
                        // block; a channel starts at column 0, where the
                        // current weights are the original ones.
                        gbuf.extend((c..c + g).map(|t| {
                            let v = if t < b1 { row[t - b0] } else { orow[t] };
                            if krow[t] { v } else { 0.0 }
                        }));
                        let p = j.q.params(&gbuf)?;
                        ch.params[r * per_row + gi] = p;
                        cur = Some((j.q.scale_value(p.raw_scale), p.zero));
                    }
                    let (sc, z) = cur.unwrap_or((1.0, 0));
                    let code = j.q.encode_with(if kept { w } else { 0.0 }, sc, z);
                    ch.codes[r * cols + c] = code;
                    if kept {
                        j.q.decode_with(code, sc, z)
                    } else {
                        0.0
                    }
                }
            };
            let e = (w - q) / d[c];
            if e != 0.0 {
                held.push(row, i, e, factor, b0, b1);
            }
            drow[c] = orow[c] - q;
            orow[c] = q;
        }
    }
    Ok(())
}

/// [`sweep_chunk`] for N:M without a quantizer, group by group: the group's
/// pruned columns are known when it starts, so their updates of the rest of
/// the group are applied element by element as its columns are read, and
/// their updates of the columns after the group pass over the row together
/// (two at a time, [`sub_scaled2`]). Every element sees the same updates in
/// the same order as with one pass per pruned column (the same bits as
/// [`Held`]'s order in the general sweep).
fn sweep_chunk_nm(
    ch: Chunk<'_>,
    b0: usize,
    b1: usize,
    cols: usize,
    factor: &ObsFactor,
    d: &[f32],
    (n, m): (usize, usize),
) {
    let bw = b1 - b0;
    let nr = ch.cur.len() / bw;
    let mut pruned = vec![false; m];
    let mut scores = vec![0f64; m];
    // The group's non-zero errors, (column in the block, error): the first
    // `ne` entries (written unconditionally, counted only when non-zero, so
    // the random keep/prune pattern costs no branch).
    let mut errs: Vec<(usize, f32)> = vec![(0, 0.0); m];
    for r in 0..nr {
        let row = &mut ch.cur[r * bw..(r + 1) * bw];
        let krow = &mut ch.keep[r * cols + b0..r * cols + b1];
        let orow = &mut ch.orig[r * cols + b0..r * cols + b1];
        let drow = &mut ch.diff[r * cols + b0..r * cols + b1];
        for g in (0..bw).step_by(m) {
            for (t, sc) in scores.iter_mut().enumerate() {
                let x = f64::from(row[g + t]);
                let dc = f64::from(d[b0 + g + t]);
                *sc = x * x / (dc * dc);
            }
            nm_group(&scores, m - n, &mut pruned);
            let mut ne = 0;
            for (t, &pr) in pruned.iter().enumerate() {
                let i = g + t;
                for &(p, ep) in &errs[..ne] {
                    row[i] -= ep * factor.row_in_block(b0 + p, b1)[i - p - 1];
                }
                let w = row[i];
                let q = if pr { 0.0 } else { w };
                krow[i] = !pr;
                let e = (w - q) / d[b0 + i];
                errs[ne] = (i, e);
                ne += usize::from(e != 0.0);
                drow[i] = orow[i] - q;
                orow[i] = q;
            }
            // The columns after the group: the errors in column order, two
            // per pass.
            let rest = g + m;
            for pair in errs[..ne].chunks(2) {
                let (p, ep) = pair[0];
                let up = &factor.row_in_block(b0 + p, b1)[rest - p - 1..];
                match pair.get(1) {
                    Some(&(p2, e2)) => {
                        let u2 = &factor.row_in_block(b0 + p2, b1)[rest - p2 - 1..];
                        sub_scaled2(&mut row[rest..], ep, up, e2, u2);
                    }
                    None => sub_scaled(&mut row[rest..], ep, up),
                }
            }
        }
    }
}

/// The in-block update held back in [`sweep_chunk`]: column `i` of the
/// block with error `e`, already applied to the row's elements up to
/// `upto`.
#[derive(Default)]
struct Held {
    col: Option<(usize, f32)>,
    upto: usize,
}

impl Held {
    /// Applies the held update to the elements up to `k` (inclusive).
    fn catch_up(&mut self, row: &mut [f32], k: usize, f: &ObsFactor, b0: usize, b1: usize) {
        if let Some((i, e)) = self.col
            && self.upto < k
        {
            // `u[t]` is column `i + 1 + t` of the block.
            let u = f.row_in_block(b0 + i, b1);
            for (y, &x) in row[self.upto + 1..=k].iter_mut().zip(&u[self.upto - i..]) {
                *y -= e * x;
            }
            self.upto = k;
        }
    }

    /// Applies the held update to the rest of the row and drops it.
    fn flush(&mut self, row: &mut [f32], f: &ObsFactor, b0: usize, b1: usize) {
        if let Some((i, e)) = self.col.take() {
            let u = f.row_in_block(b0 + i, b1);
            sub_scaled(&mut row[self.upto + 1..], e, &u[self.upto - i..]);
        }
    }

    /// Column `i` (the row up to date through `i`) has the non-zero error
    /// `e`: applies it together with the held update, or holds it.
    fn push(&mut self, row: &mut [f32], i: usize, e: f32, f: &ObsFactor, b0: usize, b1: usize) {
        match self.col.take() {
            Some((p, ep)) => {
                // Elements `(i, upto]` already have the held update (an N:M
                // group read ahead); they take `e` alone, the rest both.
                let ui = f.row_in_block(b0 + i, b1);
                let k = self.upto.max(i);
                sub_scaled(&mut row[i + 1..=k], e, &ui[..k - i]);
                let up = &f.row_in_block(b0 + p, b1)[k - p..];
                sub_scaled2(&mut row[k + 1..], ep, up, e, &ui[k - i..]);
            }
            None => {
                self.col = Some((i, e));
                self.upto = i;
            }
        }
    }
}

/// SparseGPT as a compressor; recipe `sparsegpt:P%`, `sparsegpt:N:M`, and the
/// joint mode `sparsegpt:P%:<quantizer>` (e.g. `sparsegpt:50%:int4:g128`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SparseGpt {
    /// The algorithm's settings.
    pub config: SparseGptConfig,
    /// How kept values are stored (not used in joint mode).
    pub format: ValueFormat,
}

impl SparseGpt {
    /// SparseGPT with the paper's defaults and f16 kept values.
    pub fn new(pattern: Pattern) -> Self {
        Self {
            config: SparseGptConfig::new(pattern),
            format: ValueFormat::default(),
        }
    }

    /// Parses a `sparsegpt:...` stage; arguments after the sparsity are a
    /// quantizer spec (the arguments of `rtn:`).
    ///
    /// # Errors
    ///
    /// [`Error::Recipe`] for a bad sparsity or quantizer.
    pub fn from_stage(stage: &StageSpec) -> Result<Self> {
        let p = parse_args(stage, true)?;
        if p.rank.is_some() {
            return Err(stage.error(&stage.method, "sparsegpt takes no rank"));
        }
        let pattern = match p.pattern {
            Some(pat @ (Pattern::Unstructured(_) | Pattern::NM { .. })) => pat,
            Some(other) => {
                return Err(stage.error(
                    other.tokens().join(":"),
                    "sparsegpt prunes unstructured (50%) or N:M (2:4)",
                ));
            }
            None => {
                return Err(stage.error(&stage.method, "a sparsity is required (50%, 2:4)"));
            }
        };
        let mut cfg = SparseGptConfig::new(pattern);
        if !p.rest.is_empty() {
            if p.format.is_some() {
                return Err(stage.error(
                    &stage.method,
                    "the joint mode stores codes, not values: drop f32/f16/bf16 before the grid",
                ));
            }
            let sub = StageSpec::new(stage.method.clone(), p.rest.clone());
            let spec = QuantSpec::parse_args(&sub, |_| false).map_err(|e| match e {
                Error::Recipe { part, reason, .. } => stage.error(part, reason),
                other => other,
            })?;
            cfg.quant = Some(spec);
        }
        Ok(Self {
            config: cfg,
            format: p.format.unwrap_or_default(),
        })
    }
}

impl Compressor for SparseGpt {
    fn recipe(&self) -> String {
        let post = self.config.quant.map(|q| q.args()).unwrap_or_default();
        let fmt = if self.config.quant.is_some() {
            None
        } else {
            format_token(self.format)
        };
        stage_for("sparsegpt", &self.config.pattern, fmt, &[])
            + &post.iter().map(|a| format!(":{a}")).collect::<String>()
    }

    fn compress(&self, w: ArrayView2<'_, f32>, ctx: &Context<'_>) -> Result<Compressed> {
        let stats = ctx.require_stats("sparsegpt")?;
        let out = sparsegpt(w, stats.gram().view(), &self.config)?;
        match out.quantized {
            Some(q) => {
                let mask = match ctx.mask {
                    Some(m) => intersect(&out.mask, m)?,
                    None => out.mask,
                };
                Ok(Compressed::new(SparseQuantized::new(mask, q)?))
            }
            None => finish(
                out.weights.view(),
                out.mask,
                ctx,
                self.format,
                &self.config.pattern,
            ),
        }
    }
}

/// `a AND b`.
pub(crate) fn intersect(a: &Mask, b: &Mask) -> Result<Mask> {
    if a.shape() != b.shape() {
        return Err(Error::shape(
            "mask given to a pruning stage",
            format!("{:?}", a.shape()),
            format!("{:?}", b.shape()),
        ));
    }
    let (r, c) = a.shape();
    Ok(Mask::from_fn(r, c, |i, j| a.get(i, j) && b.get(i, j)))
}
