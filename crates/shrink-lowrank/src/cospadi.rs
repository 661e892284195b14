//! CoSpaDi: a dense dictionary times column-sparse coefficients, fitted to
//! the layer's outputs.
//!
//! Paper: Makhov, Shopkhoev, Zhussip, Ali, Lefkimmiatis, "CoSpaDi:
//! Compressing LLMs via Calibration-Guided Sparse Dictionary Learning"
//! (arXiv 2509.22075). Decisions the paper leaves open follow the project's
//! reference `cospadi_ref.py` (bitmap accounting, SVD initialization, the
//! monotone safeguard).
//!
//! # Objective
//!
//! With `G` upper triangular, `G^T G = H = X^T X` (the Cholesky factor, with
//! SVD-LLM's shift when `H` is not positive definite), the output error is
//! `||X (W - W')^T||_F^2 = ||G W^T - G W'^T||_F^2`. The signals are the
//! columns of `Y = G W^T` (`n x m`, one per output neuron). CoSpaDi learns a
//! dictionary `D~` (`n x k`, unit-norm atoms) and coefficients `C` (`k x m`,
//! exactly `s` non-zeros per column) minimizing `||Y - D~ C||_F^2`, then maps
//! back with `D_a = G^{-1} D~` (a triangular solve): `W'^T = D_a C`, and a
//! layer computes `y = (x D_a) C` with a sparse second product.
//!
//! # Solver
//!
//! K-SVD (Aharon, Elad, Bruckstein 2006) alternating
//!
//! * sparse coding of every signal by Batch-OMP in Gram form (Rubinstein,
//!   Zibulevsky, Elad 2008): only `D^T D` and `D^T Y` are used; at step `j`
//!   the chosen atom is orthogonalized against the chosen ones in coefficient
//!   space and the correlations are updated, and the coefficients come from
//!   one back substitution at the end. Ties pick the lowest atom index. The
//!   greedy selection (correlations and orthogonalized Gram columns, the
//!   `k s^2 / 2` multiply-adds per signal that dominate the solver) runs in
//!   `f32` over the atoms not chosen yet, kept contiguous and stored in
//!   column blocks of 64 so that each step reads only what it uses (about
//!   `s^3 / 3` fewer multiply-adds at `s = k / 2`). The energy of each code,
//!   `2 b^T c - c^T G c = ||y||^2 - ||y - D c||^2`, is evaluated in `f64`
//!   for the coefficients actually kept. Inside K-SVD the coefficients are
//!   those of the `f32` Cholesky factor: every non-zero one is replaced by
//!   the atom update of the same sweep, so only the energy needs `f64`; the
//!   public [`omp`] refines them once in `f64` against `D^T D` (iterative
//!   refinement of the least-squares solution). A
//!   signal keeps its previous code when that is strictly better (the
//!   safeguard that keeps the objective non-increasing). From
//!   [`BLOCK_MIN_S`] = 256 non-zeros on ([`Coder::Auto`]), the coder is
//!   Block-OMP ([`crate::block_omp`]: [`BLOCK_STEPS`] = 16 steps of several
//!   atoms each, least squares by conjugate gradients, every product with
//!   `D^T D` one `f32` matrix product for all signals), an approximation of
//!   OMP that replaces the `k s^2 / 2` memory-bound multiply-adds per signal
//!   by about `60 k^2` per signal in matrix products. Its energies are
//!   exact (`f64`), so the same safeguard applies;
//! * atom updates, one atom at a time on the signals that use it: the best
//!   rank-one approximation of the restricted residual by power iterations
//!   started from the current atom (at most 8, as the paper), which never
//!   increases the objective (every power step raises the captured energy);
//!   an unused atom is replaced by the worst-represented signal (each signal
//!   at most once per sweep). Each power step is one pass over the
//!   restricted residual; the first only reads it, every later one also
//!   writes the rank-one term of the iterate it starts from (so no separate
//!   projection pass), and the update stops with that iterate once the next
//!   one is within `1e-3` of it in norm (its effect on the captured energy
//!   is of the order of the square). The residual of a sweep is kept in
//!   `f32` (rebuilt in `f64` from the dictionary and coefficients before
//!   each sweep); the objective after the sweep is evaluated exactly in
//!   `f64` from `D^T D` and `D^T Y` (`||y||^2 - 2 c . (D^T y)_I + c^T
//!   (D^T D)_II c` per signal), and a sweep that ends above the objective it
//!   started from (only `f32` rounding can do that) is undone and ends the
//!   solver.
//!
//! Initialization: the top-`k` left singular vectors of `Y` (completed by
//! seeded random signals when `k` exceeds its rank), from a seeded
//! randomized SVD (oversampling 10, one power iteration) once the smaller
//! side `min(m, n)` reaches [`RANDOMIZED_INIT_MIN`] = 2048. Iterations: 60 (the
//! paper's), stopping early when the relative improvement of one sweep falls
//! below `1e-4`. Every parallel loop works on a partition fixed in advance
//! and reduces in a fixed order, so the result does not depend on the thread
//! count.
//!
//! # Budget and storage
//!
//! Values are bf16 (16-bit words). A factorization stores the dictionary
//! (`n k` values), the `m s` non-zero coefficients and the support as a
//! packed bitmap of `k m` bits (the paper's eq. 10): `n k + m s +
//! ceil(k m / 16)` words. A compression ratio `CR` gives the budget of
//! SVD-LLM at that ratio, `r (m + n)` words with `r = floor(m n (1 - CR) /
//! (m + n))`, and `(k, s)` follow the paper's split `rho = k / s = 2`: the
//! largest `k` with `n k + m k/2 + m k/16` within the budget, then the largest
//! `s >= floor(k/2)` that fits.

use crate::block_omp::block_omp_rows;
use crate::dense::{
    Randomized, Svd, randomized_svd, right_singular_vectors, solve_lower_transpose_in_place,
};
use crate::form::Precision;
use crate::kernels::{
    VB, accumulate_commit4_32, axpy, axpy_32, axpy_f32, axpy2_32, axpy4_32, dot, dot_32, dot_f32,
    dot4_32, find_abs_eq, gemv_blocks_f32, max_abs, scale_update_max,
};
use crate::whiten::svd_llm_whitening;
use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rayon::prelude::*;
use shrink_core::check::{finite_matrix, input_width};
use shrink_core::linalg::{matmul, matmul_f32_bt};
use shrink_core::{
    Compose, Compressed, Compressor, Context, Error, Mask, Reconstruct, Result, StageSpec, Storage,
};
use shrink_pack::sparse::{ValueFormat, decode_bitmask, encode_bitmask};
use std::fmt;

/// Signals coded per parallel task (a fixed partition).
const OMP_CHUNK: usize = 16;
/// Rows per partial sum in the atom update (a fixed partition).
const ROW_CHUNK: usize = 32;

/// Stored 16-bit words of a factorization with bitmap accounting:
/// `n k + m s + ceil(m k / 16)` for an `(m, n) = (out, in)` weight.
pub fn storage_words(m: usize, n: usize, k: usize, s: usize) -> u64 {
    (n * k + m * s) as u64 + ((m * k) as u64).div_ceil(16)
}

/// SVD-LLM's stored count at compression ratio `ratio` (fraction of the
/// `m n` values removed): `r (m + n)` with `r = floor(m n (1 - ratio) /
/// (m + n))`.
pub fn svd_llm_budget(m: usize, n: usize, ratio: f64) -> u64 {
    let r = ((m * n) as f64 * (1.0 - ratio) / (m + n) as f64).floor() as u64;
    r * (m + n) as u64
}

/// The largest `s <= k` whose storage fits `budget`, if any.
pub fn fit_sparsity(m: usize, n: usize, k: usize, budget: u64) -> Option<usize> {
    let fixed = (n * k) as u64 + ((m * k) as u64).div_ceil(16);
    if fixed > budget || m == 0 {
        return None;
    }
    let s = ((budget - fixed) / m as u64).min(k as u64) as usize;
    (s >= 1).then_some(s)
}

/// The paper's split at `rho = k / s = 2` for a budget in words.
///
/// # Errors
///
/// [`Error::InvalidArgument`] when no `(k, s)` with `s >= 1` fits.
pub fn default_split(m: usize, n: usize, budget: u64) -> Result<(usize, usize)> {
    let per_k = n as f64 + m as f64 / 2.0 + m as f64 / 16.0;
    let mut k = (budget as f64 / per_k).floor() as usize;
    while k >= 1 {
        if let Some(s) = fit_sparsity(m, n, k, budget).filter(|&s| s >= k / 2) {
            return Ok((k, s));
        }
        k -= 1;
    }
    Err(Error::invalid(
        "cospadi budget",
        format!("{budget} stored values cannot hold any dictionary and code for a {m}x{n} weight"),
    ))
}

/// How the dictionary size and sparsity are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    /// Same stored count as SVD-LLM at this compression ratio (`0 <= ratio < 1`).
    Ratio(f64),
    /// Explicit dictionary size `k` and non-zeros per column `s`.
    Sizes {
        /// Atoms.
        k: usize,
        /// Non-zeros per output neuron.
        s: usize,
    },
}

/// Dictionary initialization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Init {
    /// Top-`k` left singular vectors of the whitened signals.
    #[default]
    Svd,
    /// `k` randomly chosen (seeded) normalized signals (the paper's "random
    /// columns of W", in the whitened space).
    Signals,
}

/// The sparse coder of the K-SVD iterations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Coder {
    /// Batch-OMP below [`BLOCK_MIN_S`] non-zeros per output neuron,
    /// Block-OMP with [`BLOCK_STEPS`] steps from there on.
    #[default]
    Auto,
    /// Batch-OMP (one atom per step).
    Omp,
    /// Block-OMP ([`crate::block_omp`]) with this many selection steps
    /// (clamped to `1..=s`).
    Block(usize),
}

/// From this many non-zeros per output neuron on, [`Coder::Auto`] codes by
/// Block-OMP: Batch-OMP costs `k s^2 / 2` multiply-adds per signal, read
/// from a per-signal `s x k` matrix (memory bound), where Block-OMP's cost
/// is a few dozen products of all signals with `D^T D`.
pub const BLOCK_MIN_S: usize = 256;

/// Selection steps of Block-OMP under [`Coder::Auto`].
pub const BLOCK_STEPS: usize = 16;

impl Coder {
    /// The number of Block-OMP steps for sparsity `s`, or `None` for
    /// Batch-OMP.
    pub fn block_steps(self, s: usize) -> Option<usize> {
        match self {
            Coder::Auto if s >= BLOCK_MIN_S => Some(BLOCK_STEPS.min(s)),
            Coder::Auto | Coder::Omp => None,
            Coder::Block(t) => Some(t.clamp(1, s.max(1))),
        }
    }
}

/// The CoSpaDi stage (module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct Cospadi {
    /// Dictionary size and sparsity.
    pub budget: Budget,
    /// Maximum alternating iterations (60).
    pub iters: usize,
    /// Early stop when one sweep improves the objective by less than this
    /// fraction (`1e-4`); 0 runs all iterations.
    pub tol: f64,
    /// Power iterations per atom update (8).
    pub power_iters: usize,
    /// Initialization.
    pub init: Init,
    /// Stored value format (bf16 as the paper).
    pub precision: Precision,
    /// Sparse coder ([`Coder::Auto`]).
    pub coder: Coder,
}

impl Cospadi {
    /// A stage with the paper's defaults.
    pub fn new(budget: Budget) -> Self {
        Self {
            budget,
            iters: 60,
            tol: 1e-4,
            power_iters: 8,
            init: Init::Svd,
            precision: Precision::Bf16,
            coder: Coder::Auto,
        }
    }

    /// `(k, s)` for an `(m, n)` weight.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the budget is too small or the sizes
    /// are invalid.
    pub fn sizes(&self, m: usize, n: usize) -> Result<(usize, usize)> {
        match self.budget {
            Budget::Ratio(r) => default_split(m, n, svd_llm_budget(m, n, r)),
            Budget::Sizes { k, s } => {
                if k == 0 || s == 0 || s > k {
                    return Err(Error::invalid(
                        "cospadi sizes",
                        format!("need 1 <= s <= k, got k = {k}, s = {s}"),
                    ));
                }
                Ok((k, s))
            }
        }
    }

    /// Runs the solver on `w` with the statistics of `ctx`, on the current
    /// rayon pool (called from outside it, the work moves to one of its
    /// threads until it returns).
    ///
    /// # Errors
    ///
    /// [`Error::Stats`] without statistics, [`Error::Shape`] when they do not
    /// fit, [`Error::Empty`] / [`Error::NonFinite`] for bad weights, and the
    /// budget errors of [`Cospadi::sizes`].
    pub fn fit(&self, w: ArrayView2<'_, f32>, ctx: &Context<'_>) -> Result<CospadiFit> {
        // On a pool worker, so that the many small parallel loops of the
        // solver run without waking the calling thread each time.
        rayon::scope(|_| self.fit_on_pool(w, ctx))
    }

    fn fit_on_pool(&self, w: ArrayView2<'_, f32>, ctx: &Context<'_>) -> Result<CospadiFit> {
        let (m, n) = w.dim();
        if m == 0 || n == 0 {
            return Err(Error::Empty {
                what: "weight matrix".into(),
            });
        }
        finite_matrix("weight matrix", w)?;
        let stats = ctx.require_stats("cospadi")?;
        if stats.in_features() != n {
            return Err(Error::shape(
                "calibration statistics",
                format!("{n} input features (the weight's columns)"),
                stats.in_features().to_string(),
            ));
        }
        let (k, s) = self.sizes(m, n)?;
        let (l, shift) = svd_llm_whitening(stats.gram().view())?;
        // Signals as rows: Y^T = W L (m x n), row j = signal of output j.
        let yt = matmul(w.mapv(f64::from).view(), l.view());
        let mut dict = init_dictionary(&yt, k, self.init, ctx.seed)?;
        let learned = ksvd(&yt, &mut dict, s, self)?;
        // D_a = G^{-1} D~ with G = L^T: solve L^T D_a = D~ (D~ = dict^T).
        let mut da = dict.t().to_owned();
        solve_lower_transpose_in_place(l.view(), &mut da);
        Ok(CospadiFit {
            da,
            idx: learned.idx,
            val: learned.val,
            k,
            s,
            history: learned.history,
            shift,
        })
    }
}

/// The solver's result in f64.
#[derive(Clone, Debug, PartialEq)]
pub struct CospadiFit {
    /// `D_a` (`n x k`).
    pub da: Array2<f64>,
    /// Atom indices, `s` per output neuron (row-major `m x s`).
    pub idx: Vec<u32>,
    /// Coefficients, aligned with `idx`.
    pub val: Vec<f64>,
    /// Atoms.
    pub k: usize,
    /// Non-zeros per output neuron.
    pub s: usize,
    /// Whitened objective `||Y - D~ C||_F^2` after each iteration.
    pub history: Vec<f64>,
    /// The shift SVD-LLM's fallback added to `H` (0 when it factored).
    pub shift: f64,
}

impl CospadiFit {
    /// `W' = (D_a C)^T` (`m x n`).
    pub fn to_dense(&self) -> Array2<f64> {
        let n = self.da.nrows();
        let m = self.idx.len() / self.s;
        let mut out = Array2::<f64>::zeros((m, n));
        for (j, mut row) in out.rows_mut().into_iter().enumerate() {
            for t in 0..self.s {
                let a = self.idx[j * self.s + t] as usize;
                let v = self.val[j * self.s + t];
                for (o, &d) in row.iter_mut().zip(self.da.column(a)) {
                    *o += v * d;
                }
            }
        }
        out
    }
}

fn normalize(v: &mut [f64]) -> f64 {
    let nrm = dot(v, v).sqrt();
    if nrm > 0.0 {
        v.iter_mut().for_each(|x| *x /= nrm);
    }
    nrm
}

/// From this size on (`min(m, n)`), [`Init::Svd`] takes the top singular
/// vectors from a randomized SVD ([`randomized_svd`]) instead of the full
/// thin SVD, whose cost (`O(m n min(m, n))` with a large constant: 155 s at
/// 4096 x 4096 on the 2-core machine) would exceed the whole fit's.
pub const RANDOMIZED_INIT_MIN: usize = 2048;
/// Oversampling of the randomized initialization.
const INIT_OVERSAMPLE: usize = 10;
/// Power iterations of the randomized initialization.
const INIT_POWER_ITERS: usize = 1;

/// The initial dictionary as rows (`k x n`, unit norm).
fn init_dictionary(yt: &Array2<f64>, k: usize, init: Init, seed: u64) -> Result<Array2<f64>> {
    let (m, n) = yt.dim();
    let mut dict = Array2::<f64>::zeros((k, n));
    let mut filled = 0;
    if init == Init::Svd {
        let (s, v) = if m.min(n) >= RANDOMIZED_INIT_MIN {
            let cfg = Randomized {
                oversample: Some(INIT_OVERSAMPLE),
                power_iters: INIT_POWER_ITERS,
            };
            let Svd { s, v, .. } = randomized_svd(yt.view(), k, cfg, seed)?;
            (s, v)
        } else {
            right_singular_vectors(yt.view())?
        };
        let top = s.first().copied().unwrap_or(0.0);
        let rank = s.iter().filter(|&&x| top > 0.0 && x > top * 1e-12).count();
        filled = k.min(rank);
        for i in 0..filled {
            dict.row_mut(i).assign(&v.column(i));
        }
    }
    if filled < k {
        let mut rng = StdRng::seed_from_u64(seed);
        let need = k - filled;
        let picks: Vec<usize> = if need <= m {
            sample(&mut rng, m, need).into_vec()
        } else {
            (0..need).map(|i| i % m).collect()
        };
        for (i, j) in picks.into_iter().enumerate() {
            let mut row = yt.row(j).to_vec();
            if normalize(&mut row) == 0.0 {
                row[(filled + i) % n] = 1.0;
            }
            dict.row_mut(filled + i).assign(&ndarray::Array1::from(row));
        }
    }
    Ok(dict)
}

struct Learned {
    idx: Vec<u32>,
    val: Vec<f64>,
    history: Vec<f64>,
}

/// Below this squared norm, a chosen atom counts as lying in the span of the
/// atoms chosen before it (its coefficient is 0). The selection runs in
/// `f32`, whose rounding of `1 - |v|^2` is far above the `f64` epsilon.
const OMP_DEPENDENT: f32 = 1e-5;

/// Batch-OMP of one signal: `dty` = `D^T y`, `dtd` = `D^T D` (`k x k`,
/// row-major) and its `f32` copy ([`gram_f32`]). The greedy selection
/// (correlations, orthogonalized Gram columns) runs in `f32` over the atoms
/// not chosen yet, kept contiguous (a chosen atom's column is replaced by
/// the last active one, in the correlations and in every stored column,
/// the columns stored in blocks of [`VB`]; ties still pick the lowest atom
/// index); the coefficients on the selected atoms come from the `f32`
/// Cholesky factor by back substitution, with `refine` refined once in
/// `f64` against `dtd` (iterative refinement), and the returned energy `2
/// b^T x - x^T G_II x = ||y||^2 - ||y - D c||^2` is exact (`f64`) for the
/// coefficients written. Writes `s` atom indices (selection order) and
/// coefficients.
#[allow(clippy::too_many_arguments)]
fn omp_one(
    dty: &[f64],
    dtd: &[f64],
    dtd32: &[f32],
    s: usize,
    refine: bool,
    scratch: &mut OmpScratch,
    idx: &mut [u32],
    val: &mut [f64],
) -> f64 {
    let k = dty.len();
    let kp = padded(k);
    let OmpScratch {
        v,
        alpha,
        act,
        gbuf,
        ok,
        z,
        rd,
        tcol,
        xk,
        r,
        w,
    } = scratch;
    alpha.iter_mut().zip(dty).for_each(|(a, &b)| *a = b as f32);
    act.iter_mut().enumerate().for_each(|(i, a)| *a = i as u32);
    // Column `c` of the stored orthogonalized Gram columns, row `l`.
    let at = |l: usize, c: usize| ((c / VB) * s + l) * VB + c % VB;
    let mut live = k;
    let mut best = max_abs(&alpha[..live]);
    for step in 0..s {
        let pos = argmax_pos(&alpha[..live], &act[..live], best);
        let p = act[pos] as usize;
        let last = live - 1;
        // t_l = u_l^T d_p for the chosen directions so far (row `step` of
        // `tcol`), and the column of `p` replaced by the last active one.
        let (mut op, mut ol) = (at(0, pos), at(0, last));
        let mut sq = 0.0f32;
        for tl in tcol[step * s..step * s + step].iter_mut() {
            *tl = -v[op];
            sq += *tl * *tl;
            v[op] = v[ol];
            op += VB;
            ol += VB;
        }
        let alpha_p = alpha[pos];
        alpha[pos] = alpha[last];
        act[pos] = act[last];
        live = last;
        let nrm2 = 1.0 - sq;
        let good = nrm2 > OMP_DEPENDENT;
        let nrm = if good { nrm2.sqrt() } else { 1.0 };
        let coef = if good { alpha_p / nrm } else { 0.0 };
        let blocks = live.div_ceil(VB);
        let grow = &dtd32[p * kp..(p + 1) * kp];
        for (g, &a) in gbuf.iter_mut().zip(act[..live].iter()) {
            *g = grow[a as usize];
        }
        gbuf[live..blocks * VB].iter_mut().for_each(|g| *g = 0.0);
        gemv_blocks_f32(v, s, step, &tcol[step * s..step * s + step], gbuf, blocks);
        best = f32::NEG_INFINITY;
        for b in 0..blocks {
            let n = VB.min(live - b * VB);
            let row = &mut v[(b * s + step) * VB..(b * s + step) * VB + n];
            if good {
                let m = scale_update_max(row, &mut alpha[b * VB..b * VB + n], 1.0 / nrm, coef);
                if m > best {
                    best = m;
                }
            } else {
                row.iter_mut().for_each(|c| *c = 0.0);
            }
        }
        if !good {
            best = max_abs(&alpha[..live]);
        }
        idx[step] = p as u32;
        z[step] = coef;
        rd[step] = nrm;
        ok[step] = good;
    }
    // R (upper triangular, R[j][l] = u_j^T d_{I_l} = -tcol[l][j] for j < l,
    // diagonal rd; R^T R = G_II on the independent atoms).
    let rdiag = |j: usize| f64::from(rd[j]);
    // R x = rhs, column by column (rhs is overwritten).
    let back = |rhs: &mut [f64], x: &mut [f64]| {
        for l in (0..s).rev() {
            let xl = if ok[l] { rhs[l] / rdiag(l) } else { 0.0 };
            x[l] = xl;
            axpy_f32(&mut rhs[..l], xl, &tcol[l * s..l * s + l]);
        }
    };
    // x, then r = b - G_II x on the independent atoms.
    let residual = |x: &[f64], xk: &mut [f64], r: &mut [f64]| -> f64 {
        for (&a, &xv) in idx.iter().zip(x) {
            xk[a as usize] = xv;
        }
        let mut energy = 0.0;
        for j in 0..s {
            let a = idx[j] as usize;
            let gx = dot(&dtd[a * k..(a + 1) * k], xk);
            energy += x[j] * (2.0 * dty[a] - gx);
            r[j] = if ok[j] { dty[a] - gx } else { 0.0 };
        }
        for &a in idx.iter() {
            xk[a as usize] = 0.0;
        }
        energy
    };
    w.iter_mut()
        .zip(z.iter())
        .for_each(|(a, &b)| *a = f64::from(b));
    back(w, val);
    if !refine {
        return residual(val, xk, r);
    }
    // One step of iterative refinement in f64: r = b - G_II x, R^T R d = r,
    // x += d.
    residual(val, xk, r);
    for j in 0..s {
        w[j] = if ok[j] {
            (r[j] + dot_f32(&tcol[j * s..j * s + j], &w[..j])) / rdiag(j)
        } else {
            0.0
        };
    }
    back(w, r);
    val.iter_mut().zip(r.iter()).for_each(|(x, d)| *x += d);
    residual(val, xk, r)
}

/// `k` rounded up to a multiple of 8 (the row stride of the `f32` Gram
/// matrix and of the orthogonalized columns; the padding is zero).
fn padded(k: usize) -> usize {
    k.div_ceil(8) * 8
}

/// `D^T D` in `f32`, rows padded to [`padded`]`(k)` with zeros.
fn gram_f32(dtd: &[f64], k: usize) -> Vec<f32> {
    let kp = padded(k);
    let mut out = vec![0.0f32; k * kp];
    for (o, r) in out.chunks_mut(kp).zip(dtd.chunks(k)) {
        o.iter_mut().zip(r).for_each(|(a, &b)| *a = b as f32);
    }
    out
}

/// The position of the lowest atom index (`act`) among the positions whose
/// `|alpha|` equals `best` (the largest; position 0 if none does).
fn argmax_pos(alpha: &[f32], act: &[u32], best: f32) -> usize {
    let mut pos = 0;
    let mut atom = u32::MAX;
    let mut from = 0;
    while let Some(i) = find_abs_eq(alpha, from, best) {
        if act[i] < atom {
            pos = i;
            atom = act[i];
        }
        from = i + 1;
    }
    pos
}

/// The input checks of [`omp`] and [`crate::block_omp::block_omp`]: `dtd`
/// is `k x k` for the `k` rows of `dty`, `1 <= s <= k`, with `steps`
/// (Block-OMP) also `1 <= steps <= s`, and no entry is NaN or infinite.
pub(crate) fn check_coder_inputs(
    dty: ArrayView2<'_, f64>,
    dtd: ArrayView2<'_, f64>,
    s: usize,
    steps: Option<usize>,
) -> Result<()> {
    let k = dty.nrows();
    let bad_steps = steps.is_some_and(|t| t == 0 || t > s);
    if dtd.dim() != (k, k) || s == 0 || s > k || bad_steps {
        let (what, expected, found) = match steps {
            None => (
                "OMP inputs",
                format!("D^T D {k}x{k} and 1 <= s <= {k}"),
                format!("{}x{}, s = {s}", dtd.nrows(), dtd.ncols()),
            ),
            Some(t) => (
                "block-OMP inputs",
                format!("D^T D {k}x{k}, 1 <= s <= {k} and 1 <= steps <= s"),
                format!("{}x{}, s = {s}, steps = {t}", dtd.nrows(), dtd.ncols()),
            ),
        };
        return Err(Error::shape(what, expected, found));
    }
    for (what, a) in [("D^T Y", dty), ("D^T D", dtd)] {
        if a.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: what.into(),
                position: "an entry".into(),
                value: "NaN or infinite".into(),
            });
        }
    }
    Ok(())
}

/// Batch-OMP in Gram form for many signals: `dty` = `D^T Y` (`k x N`),
/// `dtd` = `D^T D` (`k x k`, unit diagonal for unit-norm atoms). Returns, per
/// signal, `s` atom indices in selection order and their least-squares
/// coefficients (row-major `N x s`), and the energy `||D c_j||^2` of each fit.
///
/// # Errors
///
/// [`Error::Shape`] for inconsistent sizes or `s > k`, [`Error::NonFinite`]
/// for NaN or infinite input.
pub fn omp(
    dty: ArrayView2<'_, f64>,
    dtd: ArrayView2<'_, f64>,
    s: usize,
) -> Result<(Vec<u32>, Vec<f64>, Vec<f64>)> {
    let (k, signals) = dty.dim();
    check_coder_inputs(dty, dtd, s, None)?;
    let dtd = dtd.as_standard_layout().into_owned();
    let dtd = dtd.as_slice().unwrap_or(&[]);
    let mut idx = vec![0u32; signals * s];
    let mut val = vec![0.0f64; signals * s];
    let mut energy = vec![0.0f64; signals];
    let dtd32 = gram_f32(dtd, k);
    let mut scratch = OmpScratch::new(k, s);
    for j in 0..signals {
        let alpha = dty.column(j).to_vec();
        energy[j] = omp_one(
            &alpha,
            dtd,
            &dtd32,
            s,
            true,
            &mut scratch,
            &mut idx[j * s..(j + 1) * s],
            &mut val[j * s..(j + 1) * s],
        );
    }
    Ok((idx, val, energy))
}

struct OmpScratch {
    v: Vec<f32>,
    alpha: Vec<f32>,
    act: Vec<u32>,
    gbuf: Vec<f32>,
    ok: Vec<bool>,
    z: Vec<f32>,
    rd: Vec<f32>,
    tcol: Vec<f32>,
    xk: Vec<f64>,
    r: Vec<f64>,
    w: Vec<f64>,
}

impl OmpScratch {
    fn new(k: usize, s: usize) -> Self {
        Self {
            v: vec![0.0; s * k.div_ceil(VB) * VB],
            alpha: vec![0.0; k],
            act: vec![0; k],
            gbuf: vec![0.0; k.div_ceil(VB) * VB],
            ok: vec![false; s],
            z: vec![0.0; s],
            rd: vec![1.0; s],
            tcol: vec![0.0; s * s],
            xk: vec![0.0; k],
            r: vec![0.0; s],
            w: vec![0.0; s],
        }
    }
}

/// K-SVD on signals `yt` (rows) with the dictionary `dict` (rows, updated in
/// place).
fn ksvd(yt: &Array2<f64>, dict: &mut Array2<f64>, s: usize, cfg: &Cospadi) -> Result<Learned> {
    let (m, n) = yt.dim();
    let k = dict.nrows();
    let s = s.min(k);
    let ys = yt
        .as_slice()
        .ok_or_else(|| Error::invalid("signals", "not contiguous"))?;
    let yy: Vec<f64> = ys.chunks(n).map(|r| dot(r, r)).collect();
    let mut idx = vec![0u32; m * s];
    let mut val = vec![0.0f64; m * s];
    let mut err_col = yy.clone();
    let mut history: Vec<f64> = Vec::new();
    let mut et = vec![0.0f32; m * n];
    // D^T D and D^T Y (m x k, row j = D^T y_j) of the current dictionary,
    // row-major (`matmul` returns a fresh standard-layout array).
    let grams = |dict: &Array2<f64>| -> (Vec<f64>, Vec<f64>) {
        let dtd = matmul(dict.view(), dict.t());
        let ytd = matmul(yt.view(), dict.t());
        (
            dtd.into_raw_vec_and_offset().0,
            ytd.into_raw_vec_and_offset().0,
        )
    };
    let (mut dtd, mut ytd) = grams(dict);
    for t in 0..cfg.iters.max(1) {
        // Sparse coding.
        let mut new_idx = vec![0u32; m * s];
        let mut new_val = vec![0.0f64; m * s];
        let mut energy = vec![0.0f64; m];
        if let Some(steps) = cfg.coder.block_steps(s) {
            block_omp_rows(
                &ytd,
                &dtd,
                k,
                s,
                steps,
                crate::block_omp::STEP_CG,
                &mut new_idx,
                &mut new_val,
                &mut energy,
            );
        } else {
            let dtd32 = gram_f32(&dtd, k);
            new_idx
                .par_chunks_mut(OMP_CHUNK * s)
                .zip(new_val.par_chunks_mut(OMP_CHUNK * s))
                .zip(energy.par_chunks_mut(OMP_CHUNK))
                .enumerate()
                .for_each(|(c, ((ic, vc), ec))| {
                    let mut scratch = OmpScratch::new(k, s);
                    for (r, e) in ec.iter_mut().enumerate() {
                        let j = c * OMP_CHUNK + r;
                        *e = omp_one(
                            &ytd[j * k..(j + 1) * k],
                            &dtd,
                            &dtd32,
                            s,
                            false,
                            &mut scratch,
                            &mut ic[r * s..(r + 1) * s],
                            &mut vc[r * s..(r + 1) * s],
                        );
                    }
                });
        }
        // Each signal keeps its previous code when that is strictly better;
        // `coded_total` is the exact objective after sparse coding.
        let mut coded_total = 0.0f64;
        for j in 0..m {
            let fresh = yy[j] - energy[j];
            if t > 0 && err_col[j] < fresh {
                coded_total += err_col[j];
            } else {
                idx[j * s..(j + 1) * s].copy_from_slice(&new_idx[j * s..(j + 1) * s]);
                val[j * s..(j + 1) * s].copy_from_slice(&new_val[j * s..(j + 1) * s]);
                coded_total += fresh;
            }
        }
        // Residual E^T = Y^T - C^T D (rows), computed in f64 and kept in
        // f32 for the sweep.
        let ds = dict
            .as_slice()
            .ok_or_else(|| Error::invalid("dictionary", "not contiguous"))?;
        et.par_chunks_mut(n).enumerate().for_each_init(
            || vec![0.0f64; n],
            |buf, (j, row)| {
                residual_row(ys, ds, &idx, &val, n, s, j, buf);
                row.iter_mut()
                    .zip(buf.iter())
                    .for_each(|(e, &b)| *e = b as f32);
            },
        );
        let dict_before = dict.clone();
        let val_before = val.clone();
        // Which (signal, slot) pairs use each atom.
        let mut users: Vec<Vec<(u32, u32)>> = vec![Vec::new(); k];
        for j in 0..m {
            for q in 0..s {
                if val[j * s + q] != 0.0 {
                    users[idx[j * s + q] as usize].push((j as u32, q as u32));
                }
            }
        }
        let mut replaced = vec![false; m];
        for (i, om) in users.iter().enumerate() {
            if om.is_empty() {
                replace_atom(&et, ys, n, &mut replaced, dict.row_mut(i))?;
                continue;
            }
            update_atom(
                &mut et,
                n,
                om,
                s,
                &mut val,
                dict.row_mut(i),
                cfg.power_iters,
            )?;
        }
        // The exact objective of the swept dictionary and coefficients, from
        // the Gram matrices the next sparse coding uses.
        let (swept_dtd, swept_ytd) = grams(dict);
        let swept_err = code_errors(&yy, &swept_ytd, &swept_dtd, &idx, &val, k, s);
        let total: f64 = swept_err.iter().sum();
        if total > coded_total {
            // Every atom update captures at least the energy it replaces in
            // exact arithmetic; a sweep that loses to the f32 residual's
            // rounding is undone and the solver stops.
            dict.assign(&dict_before);
            val = val_before;
            history.push(coded_total);
            break;
        }
        err_col = swept_err;
        dtd = swept_dtd;
        ytd = swept_ytd;
        history.push(total);
        if t > 0 {
            let prev = history[t - 1];
            if prev - total <= cfg.tol * prev {
                break;
            }
        }
    }
    Ok(Learned { idx, val, history })
}

/// Replaces an unused atom by the worst-represented signal not yet used for a
/// replacement this sweep (K-SVD's rule).
fn replace_atom(
    et: &[f32],
    ys: &[f64],
    n: usize,
    replaced: &mut [bool],
    mut atom: ndarray::ArrayViewMut1<'_, f64>,
) -> Result<()> {
    let en: Vec<f32> = et.par_chunks(n).map(|r| dot_32(r, r)).collect();
    let mut best = -1.0;
    let mut w = usize::MAX;
    for (j, &e) in en.iter().enumerate() {
        if !replaced[j] && e > best {
            best = e;
            w = j;
        }
    }
    if w != usize::MAX && best > 0.0 {
        let mut row = ys[w * n..(w + 1) * n].to_vec();
        if normalize(&mut row) > 0.0 {
            atom.iter_mut().zip(&row).for_each(|(a, &r)| *a = r);
            replaced[w] = true;
        }
    }
    Ok(())
}

/// Work (rows x length) above which an atom update runs on the rayon pool;
/// smaller ones run on the calling thread. Both paths use the same fixed
/// chunks and reduction order, so they give the same bits.
const PAR_WORK: usize = 1 << 15;

/// The squared error of each signal's code, `||y_j - D c_j||^2 = ||y_j||^2
/// - 2 c_j . (D^T y_j)_I + c_j^T (D^T D)_II c_j` in `f64`, from `yy`
/// (`||y_j||^2`), `ytd` (`m x k`, row `j` = `D^T y_j`) and `dtd` (`k x k`).
fn code_errors(
    yy: &[f64],
    ytd: &[f64],
    dtd: &[f64],
    idx: &[u32],
    val: &[f64],
    k: usize,
    s: usize,
) -> Vec<f64> {
    yy.par_iter()
        .enumerate()
        .map(|(j, &y2)| {
            let (ij, cj) = (&idx[j * s..(j + 1) * s], &val[j * s..(j + 1) * s]);
            let b = &ytd[j * k..(j + 1) * k];
            let mut lin = 0.0;
            let mut quad = 0.0;
            for (q, (&a, &c)) in ij.iter().zip(cj).enumerate() {
                let g = &dtd[a as usize * k..(a as usize + 1) * k];
                let mut row = 0.5 * g[a as usize] * c;
                for (&a2, &c2) in ij[..q].iter().zip(&cj[..q]) {
                    row += g[a2 as usize] * c2;
                }
                lin += c * b[a as usize];
                quad += c * row;
            }
            y2 - 2.0 * lin + 2.0 * quad
        })
        .collect()
}

/// Row `j` of the residual `Y^T - C^T D` in `f64` (into `buf`, length
/// `n`): the signal minus its code's atoms, in slot order.
#[allow(clippy::too_many_arguments)]
fn residual_row(
    ys: &[f64],
    ds: &[f64],
    idx: &[u32],
    val: &[f64],
    n: usize,
    s: usize,
    j: usize,
    buf: &mut [f64],
) {
    buf.copy_from_slice(&ys[j * n..(j + 1) * n]);
    for q in 0..s {
        let a = idx[j * s + q] as usize;
        let c = val[j * s + q];
        if c != 0.0 {
            axpy(buf, -c, &ds[a * n..(a + 1) * n]);
        }
    }
}

/// One pass over the restricted residual `R = E_om + a c^T` (columns `R_j =
/// E_j + c_j a`, `E_j` the rows `om` of the `f32` residual `et`, length
/// `n`) without building it, reading each row once: `x_j = R_j . u`; with
/// `commit`, the rank-one term moves to `u` (`E_j <- R_j - x_j u = E_j +
/// c_j a - x_j u`, so that `R = E_om + u x^T`); with `want`, returns the
/// power iterate `R x = sum_j x_j E_j + (x . c) a` (the old `E_j`), else an
/// empty vector. The sum is taken in `f32` within fixed chunks of
/// [`ROW_CHUNK`] signals (four rows per step), then in `f64` over the chunks
/// in order, so the bits do not depend on `par`.
#[allow(clippy::too_many_arguments)]
fn power_pass(
    et: &mut [f32],
    n: usize,
    om: &[usize],
    c: &[f32],
    a: &[f32],
    u: &[f32],
    x: &mut [f32],
    commit: bool,
    want: bool,
    par: bool,
) -> Vec<f64> {
    let au = dot_32(a, u);
    // The rows `om` are distinct and ascending: split `et` into them.
    let mut rows: Vec<&mut [f32]> = Vec::with_capacity(om.len());
    let mut rest = et;
    let mut base = 0;
    for &j in om {
        let (_, tail) = rest.split_at_mut((j - base) * n);
        let (row, tail) = tail.split_at_mut(n);
        rows.push(row);
        rest = tail;
        base = j + 1;
    }
    let chunk = |rs: &mut [&mut [f32]], xs: &mut [f32], cs: &[f32]| {
        let mut acc = if want { vec![0.0f32; n] } else { Vec::new() };
        let full = rs.len() / 4 * 4;
        for b in (0..full).step_by(4) {
            let d4 = dot4_32([&*rs[b], &*rs[b + 1], &*rs[b + 2], &*rs[b + 3]], u);
            for q in 0..4 {
                xs[b + q] = d4[q] + cs[b + q] * au;
            }
            let x4 = [xs[b], xs[b + 1], xs[b + 2], xs[b + 3]];
            if commit {
                let [r0, r1, r2, r3] = &mut rs[b..b + 4] else {
                    unreachable!("four rows")
                };
                let c4 = [cs[b], cs[b + 1], cs[b + 2], cs[b + 3]];
                accumulate_commit4_32(&mut acc, [r0, r1, r2, r3], x4, c4, a, u, want);
            } else if want {
                axpy4_32(
                    &mut acc,
                    x4,
                    [&*rs[b], &*rs[b + 1], &*rs[b + 2], &*rs[b + 3]],
                );
            }
        }
        for b in full..rs.len() {
            xs[b] = dot_32(rs[b], u) + cs[b] * au;
            if want {
                axpy_32(&mut acc, xs[b], rs[b]);
            }
            if commit {
                axpy2_32(rs[b], cs[b], a, -xs[b], u);
            }
        }
        acc
    };
    let partial: Vec<Vec<f32>> = if par {
        rows.par_chunks_mut(ROW_CHUNK)
            .zip(x.par_chunks_mut(ROW_CHUNK).zip(c.par_chunks(ROW_CHUNK)))
            .map(|(rs, (xs, cs))| chunk(rs, xs, cs))
            .collect()
    } else {
        rows.chunks_mut(ROW_CHUNK)
            .zip(x.chunks_mut(ROW_CHUNK).zip(c.chunks(ROW_CHUNK)))
            .map(|(rs, (xs, cs))| chunk(rs, xs, cs))
            .collect()
    };
    if !want {
        return Vec::new();
    }
    let mut out = vec![0.0f64; n];
    for p in &partial {
        axpy_f32(&mut out, 1.0, p);
    }
    let xc: f64 = x
        .iter()
        .zip(c)
        .map(|(&p, &q)| f64::from(p) * f64::from(q))
        .sum();
    axpy_f32(&mut out, xc, a);
    out
}

/// A power iteration stops once the atom moves by at most this much
/// (Euclidean norm of the change of the unit vector): the captured energy
/// then differs from the converged one by a term of the order of its square.
const POWER_TOL: f64 = 1e-3;

/// Rank-one update of one atom on the signals that use it: the best
/// rank-one approximation of `R = E_om + d c_om^T` by power iterations
/// `u_0 = d`, `u_{i+1} = R R^T u_i / |.|`, then `E_om = R - u x^T`, atom `u`,
/// coefficients `x = R^T u`. The first pass (from `d`) only reads the rows;
/// every later pass, with `u_i`, also writes the rank-one term of `u_i`
/// ([`power_pass`]) while it computes `u_{i+1}`, and the update stops with
/// `u_i` once `|u_{i+1} - u_i| <= POWER_TOL` (or with `u_1` when already
/// `|u_1 - d| <= POWER_TOL`, or at `u_{power_iters}`): one pass per power
/// step, none for a separate projection. Every committed `u_i` captures at
/// least the energy of `d` (power steps never lower the Rayleigh quotient),
/// so the objective does not increase in exact arithmetic; the residual is
/// `f32` (the caller checks the sweep's objective in `f64`). The iterates are
/// normalized in `f64`; the atom written is the `f32` vector the residual
/// was updated with, widened.
#[allow(clippy::too_many_arguments)]
fn update_atom(
    et: &mut [f32],
    n: usize,
    om: &[(u32, u32)],
    s: usize,
    val: &mut [f64],
    mut atom: ndarray::ArrayViewMut1<'_, f64>,
    power_iters: usize,
) -> Result<()> {
    let rows: Vec<usize> = om.iter().map(|&(j, _)| j as usize).collect();
    let mut c: Vec<f32> = om
        .iter()
        .map(|&(j, q)| val[j as usize * s + q as usize] as f32)
        .collect();
    let par = rows.len() * n >= PAR_WORK;
    let mut a: Vec<f32> = atom.iter().map(|&v| v as f32).collect();
    let mut u_wide: Vec<f64> = atom.to_vec();
    let mut u = a.clone();
    let mut x = vec![0.0f32; rows.len()];
    let mut i = 0;
    loop {
        let commit = i > 0 || power_iters == 0;
        let last = i >= power_iters;
        let mut w = power_pass(et, n, &rows, &c, &a, &u, &mut x, commit, !last, par);
        if commit {
            a.copy_from_slice(&u);
            c.copy_from_slice(&x);
        }
        if last || normalize(&mut w) == 0.0 {
            if !commit {
                power_pass(et, n, &rows, &c, &a, &u, &mut x, true, false, par);
                a.copy_from_slice(&u);
                c.copy_from_slice(&x);
            }
            break;
        }
        let moved = w
            .iter()
            .zip(&u_wide)
            .map(|(p, q)| (p - q) * (p - q))
            .sum::<f64>()
            .sqrt();
        if commit && moved <= POWER_TOL {
            break;
        }
        u.iter_mut().zip(&w).for_each(|(t, &v)| *t = v as f32);
        u_wide = w;
        i += 1;
        if moved <= POWER_TOL {
            // Converged from the read-only first pass: commit u_1 and stop.
            power_pass(et, n, &rows, &c, &a, &u, &mut x, true, false, par);
            a.copy_from_slice(&u);
            c.copy_from_slice(&x);
            break;
        }
    }
    for (&(j, q), &xi) in om.iter().zip(&c) {
        val[j as usize * s + q as usize] = f64::from(xi);
    }
    atom.iter_mut()
        .zip(&a)
        .for_each(|(t, &v)| *t = f64::from(v));
    Ok(())
}

/// A stored CoSpaDi factorization: `W'^T = D_a C` with `D_a` (`n x k`) dense
/// and `C` (`k x m`) holding `s` coefficients per output neuron, values in
/// the stored precision.
#[derive(Clone, PartialEq)]
pub struct SparseDictMatrix {
    /// `D_a^T`, `k x n`.
    dat: Array2<f32>,
    /// Atom indices per output neuron, ascending (`m x s`).
    idx: Vec<u32>,
    /// Coefficients aligned with `idx`.
    val: Vec<f32>,
    m: usize,
    s: usize,
    precision: Precision,
}

impl fmt::Debug for SparseDictMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SparseDictMatrix")
            .field("shape", &self.shape())
            .field("k", &self.atoms())
            .field("s", &self.s)
            .field("precision", &self.precision)
            .finish()
    }
}

impl SparseDictMatrix {
    /// Rounds a fit to `precision`, each output's coefficients sorted by atom.
    ///
    /// # Errors
    ///
    /// [`Error::NonFinite`] when a value overflows the format.
    pub fn from_fit(fit: &CospadiFit, precision: Precision) -> Result<Self> {
        let dat = fit.da.t().mapv(|x| precision.round(x));
        let m = fit.idx.len() / fit.s;
        let mut idx = Vec::with_capacity(m * fit.s);
        let mut val = Vec::with_capacity(m * fit.s);
        for j in 0..m {
            let mut pairs: Vec<(u32, f64)> = (0..fit.s)
                .map(|q| (fit.idx[j * fit.s + q], fit.val[j * fit.s + q]))
                .collect();
            pairs.sort_by_key(|p| p.0);
            for (a, v) in pairs {
                idx.push(a);
                val.push(precision.round(v));
            }
        }
        Self::from_parts(dat.t(), idx, val, m, fit.s, precision)
    }

    /// Builds the form from `D_a` (`n x k`), `s` ascending distinct atom
    /// indices per output neuron (`m x s`, row-major) and their coefficients.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] for inconsistent sizes, [`Error::InvalidArgument`] for
    /// indices out of range, not ascending, or values not representable in
    /// `precision`, [`Error::NonFinite`] for NaN or infinite values.
    pub fn from_parts(
        da: ArrayView2<'_, f32>,
        idx: Vec<u32>,
        val: Vec<f32>,
        m: usize,
        s: usize,
        precision: Precision,
    ) -> Result<Self> {
        let k = da.ncols();
        if s == 0 || s > k || idx.len() != m * s || val.len() != m * s || m == 0 {
            return Err(Error::shape(
                "sparse dictionary codes",
                format!("{m} x {s} indices and values with 1 <= s <= k = {k}"),
                format!("{} indices, {} values", idx.len(), val.len()),
            ));
        }
        finite_matrix("dictionary", da)?;
        for row in idx.chunks(s) {
            if row.iter().any(|&a| a as usize >= k) || row.windows(2).any(|p| p[0] >= p[1]) {
                return Err(Error::invalid(
                    "sparse dictionary codes",
                    format!("atom indices must be ascending, distinct and below {k}: {row:?}"),
                ));
            }
        }
        for (what, mut it) in [
            (
                "dictionary",
                Box::new(da.iter().copied()) as Box<dyn Iterator<Item = f32>>,
            ),
            ("coefficients", Box::new(val.iter().copied())),
        ] {
            if let Some(v) = it.find(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    what: format!("{what} in {precision}"),
                    position: "a stored value; use f32 if it overflows".into(),
                    value: v.to_string(),
                });
            }
        }
        for v in da.iter().chain(&val) {
            if precision.round(f64::from(*v)).to_bits() != v.to_bits() {
                return Err(Error::invalid(
                    "sparse dictionary values",
                    format!("{v} is not representable in {precision}"),
                ));
            }
        }
        Ok(Self {
            dat: da.t().to_owned(),
            idx,
            val,
            m,
            s,
            precision,
        })
    }

    /// Atoms `k`.
    pub fn atoms(&self) -> usize {
        self.dat.nrows()
    }

    /// Non-zeros per output neuron `s`.
    pub fn sparsity(&self) -> usize {
        self.s
    }

    /// `D_a` (`n x k`).
    pub fn dictionary(&self) -> ArrayView2<'_, f32> {
        self.dat.t()
    }

    /// Atom indices (`m x s`, row-major, ascending per row).
    pub fn indices(&self) -> &[u32] {
        &self.idx
    }

    /// Coefficients aligned with [`SparseDictMatrix::indices`].
    pub fn values(&self) -> &[f32] {
        &self.val
    }

    /// The stored value format.
    pub fn precision(&self) -> Precision {
        self.precision
    }
}

/// Magic of the byte layout of [`SparseDictMatrix`].
const SDL_MAGIC: &[u8; 4] = b"SDL1";
/// Magic, m, n, k, s.
const SDL_HEADER: usize = 4 + 4 * 8;

fn value_format(p: Precision) -> ValueFormat {
    match p {
        Precision::F16 => ValueFormat::F16,
        Precision::Bf16 => ValueFormat::Bf16,
        Precision::F32 => ValueFormat::F32,
    }
}

impl SparseDictMatrix {
    /// The byte layout "SDL1":
    ///
    /// ```text
    /// offset  size           field
    /// 0       4              magic "SDL1"
    /// 4       4 x 8          u64 LE m (outputs), n (inputs), k (atoms), s (non-zeros per output)
    /// 36      k n V          D_a^T (k x n) row-major, little-endian, V = 2 (bf16, f16) or 4 (f32)
    /// ...     SBM1 block     shrink-pack's bitmask layout of C^T (m x k): its 21-byte
    ///                        header (value format included), the k m support bits,
    ///                        then the m s coefficients in row-major order
    /// ```
    ///
    /// The bytes after the two headers are exactly [`Reconstruct::storage`].
    ///
    /// # Errors
    ///
    /// Only if a stored value is not representable (never for a form built
    /// by this crate).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let (m, n) = self.shape();
        let k = self.atoms();
        let mut out = Vec::with_capacity(SDL_HEADER + self.storage().bytes() as usize + 21);
        out.extend_from_slice(SDL_MAGIC);
        for v in [m, n, k, self.s] {
            out.extend_from_slice(&(v as u64).to_le_bytes());
        }
        for &x in self.dat.iter() {
            match self.precision {
                Precision::F32 => out.extend_from_slice(&x.to_le_bytes()),
                Precision::F16 => {
                    out.extend_from_slice(&half::f16::from_f32(x).to_bits().to_le_bytes())
                }
                Precision::Bf16 => {
                    out.extend_from_slice(&half::bf16::from_f32(x).to_bits().to_le_bytes())
                }
            }
        }
        let mut mask = Mask::full(m, k, false);
        for (j, row) in self.idx.chunks(self.s).enumerate() {
            for &a in row {
                mask.set(j, a as usize, true);
            }
        }
        out.extend_from_slice(&encode_bitmask(
            &mask,
            &self.val,
            value_format(self.precision),
        )?);
        Ok(out)
    }

    /// Reads the layout written by [`SparseDictMatrix::to_bytes`].
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] for truncated or inconsistent bytes (wrong magic,
    /// sizes that do not match, a support row without exactly `s` atoms).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let what = "SDL1 sparse dictionary";
        if bytes.len() < SDL_HEADER || &bytes[..4] != SDL_MAGIC {
            return Err(Error::corrupt(what, "missing or wrong header"));
        }
        let rd = |i: usize| -> Result<usize> {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[4 + 8 * i..12 + 8 * i]);
            usize::try_from(u64::from_le_bytes(b))
                .map_err(|_| Error::corrupt(what, "size does not fit in usize"))
        };
        let (m, n, k, s) = (rd(0)?, rd(1)?, rd(2)?, rd(3)?);
        if m == 0 || n == 0 || s == 0 || s > k {
            return Err(Error::corrupt(
                what,
                format!("bad sizes m {m}, n {n}, k {k}, s {s}"),
            ));
        }
        let rest = &bytes[SDL_HEADER..];
        // The value format is in the SBM1 header, after the dictionary; try
        // each width and keep the one whose SBM1 block parses.
        let dict_len = |vb: usize| k.checked_mul(n).and_then(|x| x.checked_mul(vb));
        let mut found = None;
        for p in [Precision::Bf16, Precision::F16, Precision::F32] {
            let Some(len) = dict_len(p.bytes() as usize) else {
                continue;
            };
            if rest.len() < len + 21
                || rest[len + 20] != value_code(p)
                || &rest[len..len + 4] != b"SBM1"
            {
                continue;
            }
            found = Some((p, len));
            break;
        }
        let (precision, len) = found
            .ok_or_else(|| Error::corrupt(what, "truncated, or no valid coefficient block"))?;
        let dict: Vec<f32> = rest[..len]
            .chunks_exact(precision.bytes() as usize)
            .map(|b| match precision {
                Precision::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                Precision::F16 => half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
                Precision::Bf16 => half::bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32(),
            })
            .collect();
        let sparse = decode_bitmask(&rest[len..])?;
        if sparse.mask.shape() != (m, k) || sparse.format != value_format(precision) {
            return Err(Error::corrupt(
                what,
                "the coefficient block does not match the header",
            ));
        }
        let mut idx = Vec::with_capacity(m * s);
        for j in 0..m {
            let before = idx.len();
            idx.extend((0..k).filter(|&a| sparse.mask.get(j, a)).map(|a| a as u32));
            if idx.len() - before != s {
                return Err(Error::corrupt(
                    what,
                    format!("output {j} has {} atoms, not {s}", idx.len() - before),
                ));
            }
        }
        let dat = Array2::from_shape_vec((k, n), dict)
            .map_err(|e| Error::corrupt(what, e.to_string()))?;
        Self::from_parts(dat.t(), idx, sparse.values, m, s, precision)
            .map_err(|e| Error::corrupt(what, e.to_string()))
    }
}

fn value_code(p: Precision) -> u8 {
    match p {
        Precision::F32 => 0,
        Precision::F16 => 1,
        Precision::Bf16 => 2,
    }
}

impl Reconstruct for SparseDictMatrix {
    fn shape(&self) -> (usize, usize) {
        (self.m, self.dat.ncols())
    }

    fn to_dense(&self) -> Array2<f32> {
        let n = self.dat.ncols();
        let mut out = Array2::<f32>::zeros((self.m, n));
        out.axis_iter_mut(ndarray::Axis(0))
            .into_par_iter()
            .enumerate()
            .for_each(|(j, mut row)| {
                for q in 0..self.s {
                    let a = self.idx[j * self.s + q] as usize;
                    let v = self.val[j * self.s + q];
                    for (o, &d) in row.iter_mut().zip(self.dat.row(a)) {
                        *o += v * d;
                    }
                }
            });
        out
    }

    fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        input_width("forward input", x, self.dat.ncols())?;
        let z = matmul_f32_bt(x, self.dat.view()); // tokens x k
        let mut y = Array2::<f32>::zeros((x.nrows(), self.m));
        y.axis_iter_mut(ndarray::Axis(0))
            .into_par_iter()
            .zip(z.axis_iter(ndarray::Axis(0)))
            .for_each(|(mut yr, zr)| {
                for (j, o) in yr.iter_mut().enumerate() {
                    let mut acc = 0.0f32;
                    for q in 0..self.s {
                        acc += zr[self.idx[j * self.s + q] as usize] * self.val[j * self.s + q];
                    }
                    *o = acc;
                }
            });
        Ok(y)
    }

    fn compress_factors(
        &self,
        stage: &dyn Compressor,
        ctx: &Context<'_>,
    ) -> Option<Result<Compressed>> {
        Some((|| {
            let dict = stage.compress(self.dat.view(), ctx)?;
            let vals = Array2::from_shape_vec((self.m, self.s), self.val.clone())
                .map_err(|e| Error::invalid("coefficients", e.to_string()))?;
            let coef = stage.compress(vals.view(), ctx)?;
            Ok(Compressed::new(CompressedSparseDict::new(
                dict,
                coef,
                self.idx.clone(),
            )?))
        })())
    }

    fn storage(&self) -> Storage {
        let (m, n) = self.shape();
        let k = self.atoms() as u64;
        let b = self.precision.bytes();
        let p = self.precision;
        Storage::new((m * n) as u64)
            .with(format!("dictionary ({n}x{k} {p})"), n as u64 * k * b)
            .with(
                format!("coefficients ({m}x{} {p})", self.s),
                (m * self.s) as u64 * b,
            )
            .with(
                format!("support bitmap ({k}x{m} bits)"),
                (k * m as u64).div_ceil(8),
            )
    }
}

impl Compressor for Cospadi {
    fn recipe(&self) -> String {
        let mut a = vec![];
        match self.budget {
            Budget::Ratio(r) => a.push(format!("ratio{r}")),
            Budget::Sizes { k, s } => {
                a.push(format!("k{k}"));
                a.push(format!("s{s}"));
            }
        }
        if self.iters != 60 {
            a.push(format!("it{}", self.iters));
        }
        if self.power_iters != 8 {
            a.push(format!("pw{}", self.power_iters));
        }
        if self.init == Init::Signals {
            a.push("signals".into());
        }
        if self.precision != Precision::Bf16 {
            a.push(self.precision.to_string());
        }
        match self.coder {
            Coder::Auto => {}
            Coder::Omp => a.push("omp".into()),
            Coder::Block(t) => a.push(format!("bomp{t}")),
        }
        StageSpec::new("cospadi", a).to_string()
    }

    fn compress(&self, w: ArrayView2<'_, f32>, ctx: &Context<'_>) -> Result<Compressed> {
        if ctx.mask.is_some() {
            return Err(Error::invalid(
                self.recipe(),
                "a sparse dictionary gives a dense matrix and cannot be restricted to a \
                 pruning mask",
            ));
        }
        let fit = self.fit(w, ctx)?;
        Ok(Compressed::new(SparseDictMatrix::from_fit(
            &fit,
            self.precision,
        )?))
    }

    fn compose(&self) -> Compose {
        Compose::Residual
    }
}

impl Cospadi {
    /// Parses a `cospadi:...` stage: `ratio<CR>` or `k<K>:s<S>`, then
    /// optionally `it<N>` (iterations), `pw<N>` (power iterations),
    /// `signals` (initialization), `bf16` / `f16` / `f32`, `omp` (always
    /// Batch-OMP) or `bomp<N>` (always Block-OMP with `N` steps).
    ///
    /// # Errors
    ///
    /// [`Error::Recipe`] naming the bad argument.
    pub fn from_stage(stage: &StageSpec) -> Result<Self> {
        if stage.method != "cospadi" {
            return Err(stage.error(&stage.method, "not a cospadi stage"));
        }
        let mut ratio = None;
        let mut k = None;
        let mut s = None;
        let mut c = Cospadi::new(Budget::Ratio(0.0));
        let mut seen: Vec<&str> = Vec::new();
        for a in &stage.args {
            let key = match a.as_str() {
                "bf16" | "f16" | "f32" => "precision",
                "signals" => "signals",
                "omp" => "coder",
                _ if a.starts_with("bomp") => "coder",
                _ => a.trim_end_matches(|ch: char| ch.is_ascii_digit() || ch == '.'),
            };
            if seen.contains(&key) {
                return Err(stage.error(a, "given twice"));
            }
            seen.push(key);
            let num = |p: &str| a.strip_prefix(p).and_then(|v| v.parse::<usize>().ok());
            match key {
                "ratio" => match a[5..].parse::<f64>() {
                    Ok(r) if r.is_finite() && (0.0..1.0).contains(&r) => ratio = Some(r),
                    _ => {
                        return Err(stage.error(
                            a,
                            "the ratio is the fraction of stored values removed, 0 <= ratio < 1",
                        ));
                    }
                },
                "k" => {
                    k = Some(
                        num("k")
                            .filter(|&x| x > 0)
                            .ok_or_else(|| stage.error(a, "k<N>, N >= 1"))?,
                    )
                }
                "s" => {
                    s = Some(
                        num("s")
                            .filter(|&x| x > 0)
                            .ok_or_else(|| stage.error(a, "s<N>, N >= 1"))?,
                    )
                }
                "it" => {
                    c.iters = num("it")
                        .filter(|&x| x > 0)
                        .ok_or_else(|| stage.error(a, "it<N>, N >= 1"))?
                }
                "pw" => c.power_iters = num("pw").ok_or_else(|| stage.error(a, "pw<N>"))?,
                "signals" => c.init = Init::Signals,
                "precision" => c.precision = a.parse()?,
                "coder" if a == "omp" => c.coder = Coder::Omp,
                "coder" => {
                    c.coder = Coder::Block(
                        num("bomp")
                            .filter(|&x| x > 0)
                            .ok_or_else(|| stage.error(a, "bomp<N>, N >= 1 selection steps"))?,
                    )
                }
                _ => {
                    return Err(stage.error(
                        a,
                        "unknown argument for cospadi (known: ratio<CR>, k<K>, s<S>, it<N>, pw<N>, \
                         signals, bf16, f16, f32, omp, bomp<N>)",
                    ));
                }
            }
        }
        c.budget = match (ratio, k, s) {
            (Some(r), None, None) => Budget::Ratio(r),
            (None, Some(k), Some(s)) if s <= k => Budget::Sizes { k, s },
            (None, Some(_), Some(_)) => {
                return Err(stage.error(stage.to_string(), "needs s <= k"));
            }
            _ => {
                return Err(stage.error(
                    stage.to_string(),
                    "give either a ratio (cospadi:ratio0.3) or both sizes (cospadi:k171:s86)",
                ));
            }
        };
        Ok(c)
    }
}

/// A sparse dictionary whose stored values are themselves compressed (e.g.
/// quantized to int8): the dictionary `D_a^T` (`k x n`) and the non-zero
/// coefficients (`m x s`, one row per output neuron) as [`Compressed`]
/// matrices, with the support kept as a bitmap.
#[derive(Debug)]
pub struct CompressedSparseDict {
    dict: Compressed,
    coef: Compressed,
    /// The decoded coefficients (`m x s`), used by the forward pass.
    coef_values: Array2<f32>,
    idx: Vec<u32>,
}

impl CompressedSparseDict {
    /// Pairs a compressed dictionary (`k x n`) and compressed coefficients
    /// (`m x s`) with their atom indices (`m x s`, row-major).
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] for inconsistent sizes, [`Error::InvalidArgument`] for
    /// an index out of range.
    pub fn new(dict: Compressed, coef: Compressed, idx: Vec<u32>) -> Result<Self> {
        let (m, s) = coef.shape();
        let k = dict.shape().0;
        if idx.len() != m * s {
            return Err(Error::shape("atom indices", m * s, idx.len()));
        }
        if let Some(a) = idx.iter().find(|&&a| a as usize >= k) {
            return Err(Error::invalid(
                "atom indices",
                format!("{a} is not below the dictionary size {k}"),
            ));
        }
        let coef_values = coef.to_dense();
        Ok(Self {
            dict,
            coef,
            coef_values,
            idx,
        })
    }

    /// The compressed dictionary `D_a^T` (`k x n`).
    pub fn dictionary(&self) -> &Compressed {
        &self.dict
    }

    /// The compressed coefficients (`m x s`).
    pub fn coefficients(&self) -> &Compressed {
        &self.coef
    }
}

impl Reconstruct for CompressedSparseDict {
    fn shape(&self) -> (usize, usize) {
        (self.coef_values.nrows(), self.dict.shape().1)
    }

    fn to_dense(&self) -> Array2<f32> {
        let d = self.dict.to_dense();
        let (m, s) = self.coef_values.dim();
        let mut out = Array2::<f32>::zeros((m, d.ncols()));
        out.axis_iter_mut(ndarray::Axis(0))
            .into_par_iter()
            .enumerate()
            .for_each(|(j, mut row)| {
                for q in 0..s {
                    let a = self.idx[j * s + q] as usize;
                    let v = self.coef_values[(j, q)];
                    for (o, &x) in row.iter_mut().zip(d.row(a)) {
                        *o += v * x;
                    }
                }
            });
        out
    }

    fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let z = self.dict.forward(x)?;
        let (m, s) = self.coef_values.dim();
        let mut y = Array2::<f32>::zeros((x.nrows(), m));
        y.axis_iter_mut(ndarray::Axis(0))
            .into_par_iter()
            .zip(z.axis_iter(ndarray::Axis(0)))
            .for_each(|(mut yr, zr)| {
                for (j, o) in yr.iter_mut().enumerate() {
                    let mut acc = 0.0f32;
                    for q in 0..s {
                        acc += zr[self.idx[j * s + q] as usize] * self.coef_values[(j, q)];
                    }
                    *o = acc;
                }
            });
        Ok(y)
    }

    fn storage(&self) -> Storage {
        let (m, n) = self.shape();
        let k = self.dict.shape().0 as u64;
        let mut st = Storage::new((m * n) as u64);
        for (tag, part) in [("dictionary", &self.dict), ("coefficients", &self.coef)] {
            for p in part.storage().parts {
                st = st.with(format!("{tag}: {}", p.name), p.bytes);
            }
        }
        st.with(
            format!("support bitmap ({k}x{m} bits)"),
            (k * m as u64).div_ceil(8),
        )
    }
}
