//! The inverse-Hessian factor of the optimal-brain-surgeon column sweeps
//! (GPTQ in `shrink-quant`, SparseGPT in `shrink-prune`), in left-looking
//! form.
//!
//! # What the sweeps need
//!
//! With `H = X^T X` (any positive scale) both methods process the input
//! columns in order. Rounding or pruning column `c` of a row to `q` leaves
//! `e_c = (w_c - q) / U_cc`, and every later column absorbs it,
//! `w_j -= e_c U_cj` (`j > c`), where `U` is the upper Cholesky factor of the
//! damped inverse Hessian, `H^{-1} = U^T U` (Frantar & Alistarh, "Optimal
//! Brain Compression", NeurIPS 2022; GPTQ, arXiv 2210.17323; SparseGPT,
//! arXiv 2301.00774).
//!
//! # Left-looking form
//!
//! Collect the errors of a row in `e`. Every column's final value is
//! `q_c = w_c - sum_{c' <= c} e_c' U_c'c`, so `w - q = e U`, and with
//! `R = U^{-1}` (upper triangular, `H = R R^T`) `e = (w - q) R`. For a block
//! `b` of consecutive columns the weights the sweep sees when it reaches the
//! block are `w_b - e_<b U_<b,b`; from `R U = I`,
//! `U_<b,b = -U_<b,<b R_<b,b U_bb`, and `e_<b U_<b,<b = (w - q)_<b`, so
//!
//! ```text
//! current_b = w_b + (w - q)_<b  V_<b,b      with  V_<b,b = R_<b,b U_bb,
//! ```
//!
//! one matrix product per block from the original weights and the
//! differences `w - q` already fixed, and inside the block the usual
//! column-at-a-time updates with `V_bb = U_bb = R_bb^{-1}`. This is the
//! right-looking lazy-batch algorithm of the papers reorganized: the same
//! quantity in exact arithmetic, but it needs only the Cholesky factor `R`
//! (`n^3 / 3` operations) and the small diagonal-block inverses, never the
//! whole `U` (which costs another `n^3 / 3`).
//!
//! `R` comes from the lower Cholesky factor of the reversed matrix: with `J`
//! the index reversal, `J H J = L L^T` gives `H = (J L J)(J L J)^T`, and
//! `J L J` is upper triangular with a positive diagonal.
//!
//! # Conditioning, numerics and determinism
//!
//! 1. Dead inputs (`H_jj = 0`) get `H_jj = 1` and no coupling to other
//!    inputs (their weights are zeroed by the caller).
//! 2. Damping `H += damp * mean(diag H) * I`.
//! 3. Cholesky in f32, as the PyTorch references factor (the damping keeps
//!    the condition number near `1 + n / damp` at worst), and in f64 when
//!    the f32 factorization breaks down; blocked by 128 (faer's kernels, run
//!    sequentially on blocks that are fixed before they are spread over the
//!    rayon pool). When both fail, or `V` is not finite, the damping is
//!    multiplied by 10 (at least `1e-3`) and the factorization retried, up
//!    to the caller's number of attempts; then [`Error::Stats`].
//! 4. `V` is computed in f64 from that factor and stored in f32 (the sweeps
//!    work in f32, as the references do).
//!
//! Only the lower triangle of the (permuted) `H` is read. No result depends
//! on the number of threads.

use crate::error::{Error, Result};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::triangular_solve::{
    solve_lower_triangular_in_place, solve_upper_triangular_in_place,
};
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use ndarray::ArrayView2;
use rayon::prelude::*;

/// Rows and columns per block of the Cholesky factorization.
const FACTOR_BLOCK: usize = 128;

/// The factor a left-looking sweep needs: for every block `b` of columns,
/// `V_bb = U_bb` (the diagonal block of the upper Cholesky factor of the
/// damped inverse Hessian) and `V_<b,b = R_<b,b U_bb` (see the module
/// documentation), in f32, for a fixed partition of the columns.
#[derive(Clone, Debug)]
pub struct ObsFactor {
    n: usize,
    bounds: Vec<usize>,
    /// Per block `b = [i1, i2)`: `V[0..i2, i1..i2]`, row-major `i2 x (i2 - i1)`
    /// (`V_<b,b` on top of `V_bb`, whose strict lower part is 0).
    v: Vec<Vec<f32>>,
    /// The block of every column.
    block_of: Vec<u32>,
    dead: Vec<bool>,
    damp: f64,
}

impl ObsFactor {
    /// Factors the damped Gram matrix `h` (`n x n`, `X^T X` at any positive
    /// scale) with its columns taken in the order `perm` (column `k` of the
    /// sweep is input `perm[k]`), for the block partition `bounds`
    /// (`0 = bounds[0] < bounds[1] < ... < bounds[last] = n`).
    ///
    /// `damp` is relative to the mean diagonal; `attempts` (at least 1) is
    /// how many damping levels are tried, each 10 times the previous (at
    /// least `1e-3`).
    ///
    /// Errors: [`Error::Shape`] for a non-square or empty `h` or a
    /// permutation of the wrong length; [`Error::NonFinite`] for a non-finite
    /// entry; [`Error::InvalidArgument`] for a bad permutation, partition, damping or
    /// attempt count; [`Error::Stats`] for a negative diagonal or a matrix
    /// that stays indefinite at every damping level tried.
    pub fn new(
        h: ArrayView2<'_, f64>,
        perm: &[usize],
        damp: f64,
        attempts: usize,
        bounds: &[usize],
    ) -> Result<Self> {
        let n = h.nrows();
        crate::check::gram("Gram matrix", h, n)?;
        if perm.len() != n {
            return Err(Error::shape("column permutation", n, perm.len()));
        }
        let mut seen = vec![false; n];
        for &p in perm {
            if p >= n || std::mem::replace(&mut seen[p], true) {
                return Err(Error::invalid(
                    "column permutation",
                    format!("{p} is out of range or repeated"),
                ));
            }
        }
        let ok_bounds = bounds.len() >= 2
            && bounds[0] == 0
            && bounds[bounds.len() - 1] == n
            && bounds.windows(2).all(|w| w[0] < w[1]);
        if !ok_bounds {
            return Err(Error::invalid(
                "block partition",
                format!("{bounds:?} is not 0 < ... < {n}, strictly increasing"),
            ));
        }
        if !(damp.is_finite() && damp >= 0.0) {
            return Err(Error::invalid(
                "damping",
                format!("{damp} is not a finite non-negative number"),
            ));
        }
        if attempts == 0 {
            return Err(Error::invalid("damping attempts", "must be at least 1"));
        }
        let dead: Vec<bool> = (0..n).map(|j| h[(j, j)] == 0.0).collect();
        let diag: Vec<f64> = (0..n)
            .map(|j| if dead[j] { 1.0 } else { h[(j, j)] })
            .collect();
        let mean = diag.iter().sum::<f64>() / n as f64;
        let mut d = damp;
        let mut last = d;
        for _ in 0..attempts {
            if let Some(v) = try_factor(h, &diag, &dead, perm, d * mean, bounds) {
                let dead_p = perm.iter().map(|&p| dead[p]).collect();
                let mut block_of = vec![0u32; n];
                for (b, w) in bounds.windows(2).enumerate() {
                    block_of[w[0]..w[1]].fill(b as u32);
                }
                return Ok(Self {
                    n,
                    bounds: bounds.to_vec(),
                    v,
                    block_of,
                    dead: dead_p,
                    damp: d,
                });
            }
            last = d;
            d = (d * 10.0).max(1e-3);
        }
        Err(Error::stats(format!(
            "the Gram matrix is not positive definite even with damping {last} of its mean \
             diagonal ({mean:e}); it is not a usable X^T X (increase the damping or check the \
             calibration statistics)"
        )))
    }

    /// The number of columns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The block partition (`0, ..., n`).
    pub fn bounds(&self) -> &[usize] {
        &self.bounds
    }

    /// The relative damping finally used (the requested one unless a
    /// retry raised it).
    pub fn damping(&self) -> f64 {
        self.damp
    }

    /// Dead inputs, in sweep order (`H_jj = 0` for input `perm[k]`).
    pub fn dead(&self) -> &[bool] {
        &self.dead
    }

    /// `U_cc`, the diagonal of the inverse factor (positive).
    #[inline]
    pub fn diag(&self, c: usize) -> f32 {
        let b = self.block_of[c] as usize;
        let (i1, i2) = (self.bounds[b], self.bounds[b + 1]);
        self.v[b][c * (i2 - i1) + c - i1]
    }

    /// `U[c, c+1..i2]`: the in-block updates of column `c`, whose block ends
    /// at `i2`.
    #[inline]
    pub fn row_in_block(&self, c: usize, i2: usize) -> &[f32] {
        let b = self.block_of[c] as usize;
        let (i1, e2) = (self.bounds[b], self.bounds[b + 1]);
        let bw = e2 - i1;
        let i2 = i2.min(e2);
        &self.v[b][c * bw + c + 1 - i1..c * bw + i2 - i1]
    }

    /// The weights a sweep sees at the start of block `b` for a chunk of
    /// `rows` rows: `out = orig[:, i1..i2] + diff[:, ..i1] V[..i1, i1..i2]`,
    /// where `orig` holds the rows' original weights and `diff` their
    /// `w - q` for the columns already swept (both row-major `rows x n`) and
    /// `out` is row-major `rows x (i2 - i1)`. Sequential (callers spread row
    /// chunks over threads).
    ///
    /// # Panics
    ///
    /// When a buffer is shorter than the sizes above.
    pub fn block_start(&self, b: usize, orig: &[f32], diff: &[f32], rows: usize, out: &mut [f32]) {
        let n = self.n;
        let (i1, i2) = (self.bounds[b], self.bounds[b + 1]);
        let bw = i2 - i1;
        assert!(orig.len() >= rows * n && diff.len() >= rows * n && out.len() >= rows * bw);
        for r in 0..rows {
            out[r * bw..(r + 1) * bw].copy_from_slice(&orig[r * n + i1..r * n + i2]);
        }
        if i1 == 0 || rows == 0 {
            return;
        }
        let dst = MatMut::from_row_major_slice_mut(&mut out[..rows * bw], rows, bw);
        let lhs = MatRef::from_row_major_slice_with_stride(diff, rows, i1, n);
        let rhs = MatRef::from_row_major_slice(&self.v[b][..i1 * bw], i1, bw);
        faer::linalg::matmul::matmul(dst, Accum::Add, lhs, rhs, 1.0f32, Par::Seq);
    }

    /// [`ObsFactor::block_start`] in column-major layouts: the same
    /// `orig[:, i1..i2] + diff[:, ..i1] V[..i1, i1..i2]`, with `orig`
    /// row-major `rows x n`, but `diff` **column-major** `rows x n`
    /// (`diff[c * rows + r]`, so the product reads it without repacking) and
    /// `out` column-major `rows x (i2 - i1)` (`out[j * rows + r]` is row `r`
    /// of the block's column `j`), the layout [`ObsFactor::propagate`] works
    /// on. Sequential (callers spread row chunks over threads).
    ///
    /// # Panics
    ///
    /// When a buffer is shorter than the sizes above.
    pub fn block_start_cols(
        &self,
        b: usize,
        orig: &[f32],
        diff: &[f32],
        rows: usize,
        out: &mut [f32],
    ) {
        let n = self.n;
        let (i1, i2) = (self.bounds[b], self.bounds[b + 1]);
        let bw = i2 - i1;
        assert!(orig.len() >= rows * n && diff.len() >= rows * n && out.len() >= rows * bw);
        for (r, o) in orig.chunks_exact(n).take(rows).enumerate() {
            for (j, &v) in o[i1..i2].iter().enumerate() {
                out[j * rows + r] = v;
            }
        }
        if i1 == 0 || rows == 0 {
            return;
        }
        let dst = MatMut::from_column_major_slice_mut(&mut out[..rows * bw], rows, bw);
        let lhs = MatRef::from_column_major_slice(&diff[..rows * i1], rows, i1);
        let rhs = MatRef::from_row_major_slice(&self.v[b][..i1 * bw], i1, bw);
        faer::linalg::matmul::matmul(dst, Accum::Add, lhs, rhs, 1.0f32, Par::Seq);
    }

    /// The in-block update after column `c` of a chunk of rows: with `e[r]`
    /// the scaled error `(w - q) / U_cc` of row `r`, every later column `j`
    /// of `c`'s block absorbs it, `w[r, j] -= e[r] U[c, j]`. `later` holds
    /// those columns, column-major (`later[t * e.len() + r]` is row `r` of
    /// column `c + 1 + t`; the tail of a [`ObsFactor::block_start_cols`] buffer).
    /// A multiply then a subtract, never a fused multiply-add, so every CPU
    /// gives the same bits.
    ///
    /// # Panics
    ///
    /// When `later.len()` is not `e.len()` times the number of columns after
    /// `c` in its block.
    pub fn propagate(&self, c: usize, e: &[f32], later: &mut [f32]) {
        let b = self.block_of[c] as usize;
        let u = self.row_in_block(c, self.bounds[b + 1]);
        assert_eq!(later.len(), e.len() * u.len(), "propagate: buffer size");
        if !e.is_empty() {
            rank1_sub(later, e, u);
        }
    }
}

/// `y_i -= e x_i` (the row-major in-block update of the sweeps), compiled
/// for the baseline CPU and for AVX2 (picked at run time). A multiply then a
/// subtract, never a fused multiply-add, so every path gives the same bits.
#[multiversion::multiversion(targets("x86_64+avx2"))]
pub fn sub_scaled(y: &mut [f32], e: f32, x: &[f32]) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a -= e * b;
    }
}

/// Two [`sub_scaled`] passes fused into one: `y_i = (y_i - e1 x1_i) - e2
/// x2_i`, the same operations in the same order per element as
/// `sub_scaled(y, e1, x1)` followed by `sub_scaled(y, e2, x2)` (so the same
/// bits), reading and writing `y` once. Baseline and AVX2 builds as
/// [`sub_scaled`].
#[multiversion::multiversion(targets("x86_64+avx2"))]
pub fn sub_scaled2(y: &mut [f32], e1: f32, x1: &[f32], e2: f32, x2: &[f32]) {
    for ((a, &b1), &b2) in y.iter_mut().zip(x1).zip(x2) {
        let t = *a - e1 * b1;
        *a = t - e2 * b2;
    }
}

/// `later[:, t] -= e * u[t]` on column-major columns of length `e.len()`,
/// compiled for the baseline CPU and for AVX2 (picked at run time).
#[multiversion::multiversion(targets("x86_64+avx2"))]
fn rank1_sub(later: &mut [f32], e: &[f32], u: &[f32]) {
    for (col, &ut) in later.chunks_exact_mut(e.len()).zip(u) {
        for (y, &ev) in col.iter_mut().zip(e) {
            *y -= ev * ut;
        }
    }
}

/// One damping level: the f32 blocks of `V` (see [`ObsFactor`]), or `None`
/// when the damped matrix is not (numerically) positive definite.
fn try_factor(
    h: ArrayView2<'_, f64>,
    diag: &[f64],
    dead: &[bool],
    perm: &[usize],
    add: f64,
    bounds: &[usize],
) -> Option<Vec<Vec<f32>>> {
    // Single precision first, as the reference implementations factor; the
    // whole factorization again in double precision when that fails.
    let mut a32 = reversed_lower::<f32>(h, diag, dead, perm, add, |v| v as f32);
    if cholesky_lower(a32.as_mut(), -1.0f32) {
        return v_blocks(a32.as_ref(), bounds, |v| v as f32, f64::from);
    }
    drop(a32);
    let mut a64 = reversed_lower::<f64>(h, diag, dead, perm, add, |v| v);
    if cholesky_lower(a64.as_mut(), -1.0f64) {
        return v_blocks(a64.as_ref(), bounds, |v| v, |v| v);
    }
    None
}

/// `A = J (P^T H P + add I) J`, lower triangle, column-major (strict upper
/// part 0); entry `(i, j)`, `i > j`, is input pair `(perm[n-1-i],
/// perm[n-1-j])`, read from the lower triangle of `H`; dead inputs are
/// uncoupled.
fn reversed_lower<T: faer::traits::RealField + Copy>(
    h: ArrayView2<'_, f64>,
    diag: &[f64],
    dead: &[bool],
    perm: &[usize],
    add: f64,
    cast: impl Fn(f64) -> T + Sync,
) -> Mat<T> {
    let n = diag.len();
    // Plain slice reads when `h` is in standard layout.
    let hs = h.as_slice();
    let mut a = Mat::<T>::zeros(n, n);
    a.as_mut()
        .par_col_chunks_mut(FACTOR_BLOCK)
        .with_max_len(1)
        .enumerate()
        .for_each(|(b, mut blk)| {
            for t in 0..blk.ncols() {
                let j = b * FACTOR_BLOCK + t;
                let pj = perm[n - 1 - j];
                blk[(j, t)] = cast(diag[pj] + add);
                if dead[pj] {
                    continue;
                }
                let value = |i: usize| {
                    let pi = perm[n - 1 - i];
                    (!dead[pi]).then(|| {
                        let (a, b) = (pi.max(pj), pi.min(pj));
                        cast(hs.map_or_else(|| h[(a, b)], |s| s[a * n + b]))
                    })
                };
                if let Some(col) = blk.rb_mut().col_mut(t).try_as_col_major_mut() {
                    for (i, x) in col.as_slice_mut().iter_mut().enumerate().skip(j + 1) {
                        if let Some(v) = value(i) {
                            *x = v;
                        }
                    }
                } else {
                    for i in j + 1..n {
                        if let Some(v) = value(i) {
                            blk[(i, t)] = v;
                        }
                    }
                }
            }
        });
    a
}

/// The blocks of `V` from the lower Cholesky factor `l` of the reversed
/// matrix (`R = J L J`): per block, `U_bb = R_bb^{-1}` in f64, then
/// `V_<b,b = R_<b,b U_bb` in the factor's precision, stored in f32.
/// `None` when an entry is not finite or a diagonal entry not positive.
fn v_blocks<T: faer::traits::RealField + Copy>(
    l: MatRef<'_, T>,
    bounds: &[usize],
    cast: impl Fn(f64) -> T + Sync,
    widen: impl Fn(T) -> f64 + Sync,
) -> Option<Vec<Vec<f32>>> {
    let n = l.nrows();
    // R[x, y] = L[n-1-x, n-1-y].
    let r_of = |x0: usize, y0: usize, rows: usize, cols: usize| -> MatRef<'_, T> {
        l.submatrix(n - x0 - rows, n - y0 - cols, rows, cols)
            .reverse_rows_and_cols()
    };
    let nb = bounds.len() - 1;
    let blocks: Vec<Option<Vec<f32>>> = (0..nb)
        .into_par_iter()
        .with_max_len(1)
        .map(|b| {
            let (i1, i2) = (bounds[b], bounds[b + 1]);
            let bw = i2 - i1;
            let rbb = r_of(i1, i1, bw, bw);
            let rbb =
                Mat::<f64>::from_fn(bw, bw, |x, y| if x <= y { widen(rbb[(x, y)]) } else { 0.0 });
            let mut ubb = Mat::<f64>::identity(bw, bw);
            solve_upper_triangular_in_place(rbb.as_ref(), ubb.as_mut(), Par::Seq);
            let mut out = vec![0f32; i2 * bw];
            if i1 > 0 {
                let ut = Mat::<T>::from_fn(bw, bw, |x, y| cast(ubb[(x, y)]));
                // Row-major, like `out`, so the conversion is one pass.
                let mut prod = vec![cast(0.0); i1 * bw];
                faer::linalg::matmul::matmul(
                    MatMut::from_row_major_slice_mut(&mut prod, i1, bw),
                    Accum::Replace,
                    r_of(0, i1, i1, bw),
                    ut.as_ref(),
                    cast(1.0),
                    Par::Seq,
                );
                for (o, &p) in out[..i1 * bw].iter_mut().zip(&prod) {
                    *o = widen(p) as f32;
                }
            }
            for x in 0..bw {
                for y in x..bw {
                    out[(i1 + x) * bw + y] = ubb[(x, y)] as f32;
                }
            }
            let finite = out.iter().all(|v| v.is_finite());
            let diag_ok = (0..bw).all(|t| out[(i1 + t) * bw + t] > 0.0);
            (finite && diag_ok).then_some(out)
        })
        .collect();
    blocks.into_iter().collect()
}

/// In-place lower Cholesky factorization `A = L L^T` (lower triangle of `a`
/// read and overwritten), blocked right-looking: each diagonal block is
/// factored by faer (sequentially), the panel below it solved, and the
/// trailing matrix updated. Panel rows and trailing columns are split into
/// fixed blocks before they are spread over threads, so the result does not
/// depend on the thread count. False when `A` is not positive definite.
fn cholesky_lower<T: faer::traits::RealField + Copy>(mut a: MatMut<'_, T>, neg_one: T) -> bool {
    let n = a.nrows();
    let zero = neg_one + T::one();
    let mut mem = MemBuffer::new(cholesky_in_place_scratch::<T>(
        FACTOR_BLOCK,
        Par::Seq,
        Default::default(),
    ));
    let mut k0 = 0;
    while k0 < n {
        let k1 = (k0 + FACTOR_BLOCK).min(n);
        let kb = k1 - k0;
        let mut d = a.rb_mut().submatrix_mut(k0, k0, kb, kb);
        // Earlier trailing updates wrote full blocks: clear the upper part.
        for j in 1..kb {
            for i in 0..j {
                d[(i, j)] = zero;
            }
        }
        if cholesky_in_place(
            d,
            Default::default(),
            Par::Seq,
            MemStack::new(&mut mem),
            Default::default(),
        )
        .is_err()
        {
            return false;
        }
        if k1 < n {
            let m = n - k1;
            let (left, right) = a.rb_mut().split_at_col_mut(k1);
            let (top, mut bottom) = left.split_at_row_mut(k1);
            let l11 = top.rb().submatrix(k0, k0, kb, kb);
            // Panel: A21 <- A21 L11^{-T}, i.e. L11 X = A21^T.
            bottom
                .rb_mut()
                .submatrix_mut(0, k0, m, kb)
                .par_row_chunks_mut(FACTOR_BLOCK)
                .with_max_len(1)
                .for_each(|chunk| {
                    solve_lower_triangular_in_place(l11, chunk.transpose_mut(), Par::Seq)
                });
            // Trailing update: A22 <- A22 - A21 A21^T (lower part, by column blocks).
            let a21 = bottom.rb().submatrix(0, k0, m, kb);
            right
                .submatrix_mut(k1, 0, m, m)
                .par_col_chunks_mut(FACTOR_BLOCK)
                .with_max_len(1)
                .enumerate()
                .for_each(|(b, blk)| {
                    let c0 = b * FACTOR_BLOCK;
                    let cw = blk.ncols();
                    faer::linalg::matmul::matmul(
                        blk.submatrix_mut(c0, 0, m - c0, cw),
                        Accum::Add,
                        a21.submatrix(c0, 0, m - c0, kb),
                        a21.submatrix(c0, 0, cw, kb).transpose(),
                        neg_one,
                        Par::Seq,
                    );
                });
        }
        k0 = k1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// A random-ish SPD matrix with a dead input.
    fn gram(n: usize, dead: usize) -> Array2<f64> {
        let mut s = 12345u64;
        let mut rnd = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        };
        let t = 2 * n;
        let mut x = Array2::from_shape_fn((t, n), |_| rnd());
        for i in 0..t {
            x[(i, dead)] = 0.0;
            x[(i, 1)] = x[(i, 0)] * 0.9 + x[(i, 1)] * 0.1;
        }
        x.t().dot(&x)
    }

    /// The upper Cholesky factor of the inverse of the damped, permuted
    /// matrix, by explicit inversion (test only).
    fn naive_u(h: &Array2<f64>, perm: &[usize], damp: f64) -> Array2<f64> {
        let n = h.nrows();
        let mut hp = Array2::from_shape_fn((n, n), |(a, b)| h[(perm[a], perm[b])]);
        let mean = (0..n)
            .map(|j| if hp[(j, j)] == 0.0 { 1.0 } else { hp[(j, j)] })
            .sum::<f64>()
            / n as f64;
        for j in 0..n {
            if hp[(j, j)] == 0.0 {
                hp[(j, j)] = 1.0;
            }
            hp[(j, j)] += damp * mean;
        }
        // Gauss-Jordan inverse.
        let mut a = hp.clone();
        let mut inv = Array2::<f64>::eye(n);
        for c in 0..n {
            let p = a[(c, c)];
            for j in 0..n {
                a[(c, j)] /= p;
                inv[(c, j)] /= p;
            }
            for r in 0..n {
                if r != c {
                    let f = a[(r, c)];
                    for j in 0..n {
                        a[(r, j)] -= f * a[(c, j)];
                        inv[(r, j)] -= f * inv[(c, j)];
                    }
                }
            }
        }
        // Upper Cholesky of inv: inv = U^T U.
        let mut u = Array2::<f64>::zeros((n, n));
        for i in 0..n {
            let mut s = inv[(i, i)];
            for k in 0..i {
                s -= u[(k, i)] * u[(k, i)];
            }
            u[(i, i)] = s.sqrt();
            for j in i + 1..n {
                let mut s = inv[(i, j)];
                for k in 0..i {
                    s -= u[(k, i)] * u[(k, j)];
                }
                u[(i, j)] = s / u[(i, i)];
            }
        }
        u
    }

    #[test]
    fn block_start_equals_the_right_looking_updates() {
        let n = 300;
        let h = gram(n, 7);
        let perm: Vec<usize> = (0..n).rev().collect();
        let bounds = [0, 128, 200, 256, 300];
        let f = ObsFactor::new(h.view(), &perm, 0.01, 1, &bounds).unwrap();
        let u = naive_u(&h, &perm, 0.01);
        // Diagonal blocks equal U.
        for w in bounds.windows(2) {
            for c in w[0]..w[1] {
                assert!((f64::from(f.diag(c)) - u[(c, c)]).abs() < 1e-5 * u[(c, c)]);
                for (k, &x) in f.row_in_block(c, w[1]).iter().enumerate() {
                    let e = u[(c, c + 1 + k)];
                    assert!((f64::from(x) - e).abs() < 1e-5 * u[(c, c)], "{c} {k}");
                }
            }
        }
        // Any differences: block_start = orig_b - e_<b U_<b,b with e = diff R.
        let rows = 3;
        let orig: Vec<f32> = (0..rows * n)
            .map(|k| ((k * 37 % 101) as f32) / 50.0 - 1.0)
            .collect();
        let diff: Vec<f32> = (0..rows * n)
            .map(|k| ((k * 53 % 97) as f32) / 400.0 - 0.1)
            .collect();
        // e = diff R, R = U^{-1}: solve e U = diff row by row (forward).
        for b in 1..bounds.len() - 1 {
            let (i1, i2) = (bounds[b], bounds[b + 1]);
            let mut out = vec![0f32; rows * (i2 - i1)];
            f.block_start(b, &orig, &diff, rows, &mut out);
            let mut out_cols = vec![0f32; rows * (i2 - i1)];
            let diff_cols: Vec<f32> = (0..rows * n)
                .map(|k| diff[(k % rows) * n + k / rows])
                .collect();
            f.block_start_cols(b, &orig, &diff_cols, rows, &mut out_cols);
            for r in 0..rows {
                let d = &diff[r * n..r * n + i1];
                let mut e = vec![0f64; i1];
                for c in 0..i1 {
                    let mut s = f64::from(d[c]);
                    for k in 0..c {
                        s -= e[k] * u[(k, c)];
                    }
                    e[c] = s / u[(c, c)];
                }
                for j in i1..i2 {
                    let mut want = f64::from(orig[r * n + j]);
                    for k in 0..i1 {
                        want -= e[k] * u[(k, j)];
                    }
                    let got = f64::from(out[r * (i2 - i1) + j - i1]);
                    let got_cols = f64::from(out_cols[(j - i1) * rows + r]);
                    for g in [got, got_cols] {
                        assert!(
                            (g - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "{g} vs {want}"
                        );
                    }
                }
            }
        }
        assert!(f.dead()[n - 1 - 7]);
    }

    #[test]
    fn propagate_is_the_scalar_update_bit_for_bit() {
        let n = 200;
        let h = gram(n, 5);
        let perm: Vec<usize> = (0..n).collect();
        let bounds = [0, 128, 200];
        let f = ObsFactor::new(h.view(), &perm, 0.01, 1, &bounds).unwrap();
        // 13 rows (not a multiple of a vector width), zeros and signed zeros.
        let rows = 13;
        for &(c, i2) in &[
            (0usize, 128usize),
            (5, 128),
            (126, 128),
            (127, 128),
            (150, 200),
        ] {
            let cols = i2 - c - 1;
            let mut later: Vec<f32> = (0..rows * cols)
                .map(|k| ((k * 29 % 83) as f32) / 40.0 - 1.0)
                .collect();
            if let Some(v) = later.first_mut() {
                *v = -0.0;
            }
            let e: Vec<f32> = (0..rows)
                .map(|r| {
                    if r % 4 == 0 {
                        0.0
                    } else {
                        (r as f32 - 6.5) / 3.0
                    }
                })
                .collect();
            let mut want = later.clone();
            let u = f.row_in_block(c, i2);
            for t in 0..cols {
                for r in 0..rows {
                    want[t * rows + r] -= e[r] * u[t];
                }
            }
            f.propagate(c, &e, &mut later);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&later), bits(&want), "column {c}");
        }
    }

    #[test]
    fn sub_scaled2_is_two_sub_scaled_passes_bit_for_bit() {
        // Lengths around the vector widths, values spread over exponents.
        for len in [0usize, 1, 7, 8, 9, 31, 33, 127] {
            let y: Vec<f32> = (0..len)
                .map(|k| ((k * 37 % 101) as f32 - 50.0) * 1.37e-3_f32.powi((k % 5) as i32))
                .collect();
            let x1: Vec<f32> = (0..len)
                .map(|k| ((k * 13 % 29) as f32) / 7.0 - 2.0)
                .collect();
            let x2: Vec<f32> = (0..len)
                .map(|k| ((k * 17 % 31) as f32) / 9.0 - 1.5)
                .collect();
            let (e1, e2) = (0.318_309_87_f32, -2.5_f32);
            let mut want = y.clone();
            sub_scaled(&mut want, e1, &x1);
            sub_scaled(&mut want, e2, &x2);
            let mut got = y.clone();
            sub_scaled2(&mut got, e1, &x1, e2, &x2);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "length {len}");
        }
    }

    #[test]
    fn thread_count_does_not_change_the_factor() {
        let n = 400;
        let h = gram(n, 3);
        let perm: Vec<usize> = (0..n).collect();
        let bounds = [0, 128, 256, 384, 400];
        let run = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| ObsFactor::new(h.view(), &perm, 0.01, 1, &bounds).unwrap().v)
        };
        assert_eq!(run(1), run(2));
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let h = gram(8, 2);
        let id: Vec<usize> = (0..8).collect();
        let b = [0, 8];
        assert!(matches!(
            ObsFactor::new(h.view(), &id[..7], 0.01, 1, &b),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            ObsFactor::new(h.view(), &[0, 0, 1, 2, 3, 4, 5, 6], 0.01, 1, &b),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            ObsFactor::new(h.view(), &id, 0.01, 1, &[0, 4, 4, 8]),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            ObsFactor::new(h.view(), &id, f64::NAN, 1, &b),
            Err(Error::InvalidArgument { .. })
        ));
        let mut bad = h.clone();
        bad[(3, 4)] = f64::INFINITY;
        assert!(matches!(
            ObsFactor::new(bad.view(), &id, 0.01, 1, &b),
            Err(Error::NonFinite { .. })
        ));
        // Indefinite without enough damping.
        let mut ind = Array2::<f64>::eye(8);
        ind[(0, 1)] = 2.0;
        ind[(1, 0)] = 2.0;
        assert!(matches!(
            ObsFactor::new(ind.view(), &id, 0.0, 1, &b),
            Err(Error::Stats { .. })
        ));
        // Retries raise the damping until it factors.
        let f = ObsFactor::new(ind.view(), &id, 0.0, 6, &b).unwrap();
        assert!(f.damping() > 0.0);
    }
}
