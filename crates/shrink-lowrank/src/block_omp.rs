//! Block-OMP: the sparse coder CoSpaDi uses when the number of non-zeros per
//! signal is large (see [`crate::cospadi`]).
//!
//! # Objective
//!
//! For each signal `y` (given only through `b = D^T y`) and the Gram matrix
//! `G = D^T D` of a unit-norm dictionary, find a support `I` of exactly `s`
//! atoms and coefficients `x_I` approximately minimizing `||y - D_I x_I||^2 =
//! ||y||^2 - (2 b_I^T x_I - x_I^T G_II x_I)`.
//!
//! # Method
//!
//! Generalized OMP (several atoms per step; Wang, Kwon, Shim, "Generalized
//! orthogonal matching pursuit", 2012) in Gram form and batched over all
//! signals, so that every product with `G` is one matrix product for all
//! signals at once:
//!
//! * `steps` selection steps; step `t` adds the `ceil(s / steps)` atoms (fewer
//!   in the last ones, `s` in all) outside the support with the largest
//!   `|alpha_a|`, where `alpha = b - G x` are the correlations of the current
//!   residual (ties: lowest atom index);
//! * after each step, a few conjugate-gradient iterations ([`STEP_CG`] in
//!   CoSpaDi) on `G_II x_I = b_I` started from the previous coefficients
//!   (zero on the new atoms), fewer once the residual norm falls below
//!   `1e-5` of `||b_I||`; each is
//!   one product `P G` of the `N x k` search directions (zero off the
//!   support) with `G`, which also keeps `alpha = b - G x` up to date on all
//!   atoms; `alpha` is recomputed exactly before each selection;
//! * after the last step, conjugate gradients until the residual norm falls
//!   below that tolerance (at most [`FINAL_CG`] products);
//! * the energy `2 b^T x - x^T G x = ||y||^2 - ||y - D x||^2` of the
//!   coefficients returned is evaluated in `f64`.
//!
//! Everything but the energy runs in `f32`. With `steps = s` the selection is
//! OMP's (up to the accuracy of the least-squares solves), and for an
//! orthonormal dictionary any number of steps selects OMP's support. The
//! products use a partition fixed in advance, and the per-signal work runs
//! on fixed chunks of signals, so the result does not depend on the thread
//! count.

use multiversion::multiversion;
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;
use shrink_core::Result;
use shrink_core::interop::{as_faer, as_faer_mut};
use std::cmp::Ordering;

/// Conjugate-gradient iterations after each selection step.
pub const STEP_CG: usize = 2;
/// At most this many conjugate-gradient iterations after the last step.
pub const FINAL_CG: usize = 40;
/// A signal's conjugate gradients stop once `||b_I - G_II x_I||^2 <=
/// FINAL_TOL^2 ||b_I||^2`.
const FINAL_TOL: f32 = 1e-5;
/// Signals per parallel task of the per-signal work (a fixed partition).
const CHUNK: usize = 32;
/// Columns per parallel task of the products with `G` (a fixed partition).
const GEMM_BLOCK: usize = 64;

/// `q = p g` (`p`: `N x k` row-major, `g`: `k x k` symmetric) in `f32`,
/// split over fixed blocks of columns of `q`.
fn times_gram(q: &mut [f32], p: &[f32], g: &[f32], n: usize, k: usize) {
    let pv = ArrayView2::from_shape((n, k), p).expect("p shape");
    let gv = ArrayView2::from_shape((k, k), g).expect("g shape");
    let mut qv = ArrayViewMut2::from_shape((n, k), q).expect("q shape");
    qv.axis_chunks_iter_mut(ndarray::Axis(1), GEMM_BLOCK)
        .into_par_iter()
        .enumerate()
        .for_each(|(c, qb)| {
            let j0 = c * GEMM_BLOCK;
            let w = qb.ncols();
            let gb = gv.slice(ndarray::s![.., j0..j0 + w]);
            faer::linalg::matmul::matmul(
                as_faer_mut(qb),
                faer::Accum::Replace,
                as_faer(pv),
                as_faer(gb),
                1.0f32,
                faer::Par::Seq,
            );
        });
}

/// Per-signal state of the batched solver (row-major `N x k` arrays).
struct State {
    /// Coefficients (zero off the support).
    x: Vec<f32>,
    /// `b - G x` on every atom.
    alpha: Vec<f32>,
    /// Search directions (zero off the support).
    p: Vec<f32>,
    /// `p G`.
    q: Vec<f32>,
    /// 1 on the support, 0 elsewhere.
    mask: Vec<f32>,
    /// Squared residual norm on the support, per signal.
    rr: Vec<f32>,
    /// Squared tolerance per signal (final phase).
    tol: Vec<f32>,
}

/// One conjugate-gradient iteration for every signal whose residual is above
/// its tolerance (`q = p G` already computed). Returns whether any signal
/// moved.
fn cg_update(st: &mut State, k: usize, use_tol: bool) -> bool {
    let State {
        x,
        alpha,
        p,
        q,
        mask,
        rr,
        tol,
    } = st;
    x.par_chunks_mut(CHUNK * k)
        .zip(alpha.par_chunks_mut(CHUNK * k))
        .zip(p.par_chunks_mut(CHUNK * k))
        .zip(q.par_chunks(CHUNK * k))
        .zip(mask.par_chunks(CHUNK * k))
        .zip(rr.par_chunks_mut(CHUNK).zip(tol.par_chunks(CHUNK)))
        .map(|(((((xc, ac), pc), qc), mc), (rc, tc))| {
            let mut moved = false;
            for (r, rrj) in rc.iter_mut().enumerate() {
                if *rrj <= 0.0 || (use_tol && *rrj <= tc[r]) {
                    continue;
                }
                let sl = r * k..(r + 1) * k;
                let (xj, aj, pj, qj, mj) = (
                    &mut xc[sl.clone()],
                    &mut ac[sl.clone()],
                    &mut pc[sl.clone()],
                    &qc[sl.clone()],
                    &mc[sl],
                );
                let pq = dot32(pj, qj);
                if pq <= 0.0 || !pq.is_finite() {
                    *rrj = 0.0;
                    continue;
                }
                let a = *rrj / pq;
                let new_rr = cg_axpys(xj, aj, pj, qj, mj, a);
                let beta = new_rr / *rrj;
                for (pv, (&av, &mv)) in pj.iter_mut().zip(aj.iter().zip(mj.iter())) {
                    *pv = av * mv + beta * *pv;
                }
                *rrj = new_rr;
                moved = true;
            }
            moved
        })
        .reduce(|| false, |a, b| a || b)
}

/// `sum_i a_i b_i` in `f32` with eight partial sums (lane `i mod 8`).
#[multiversion(targets("x86_64+avx2"))]
fn dot32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `x += a p`, `alpha -= a q`, and the squared norm of `alpha` on the
/// support.
#[multiversion(targets("x86_64+avx2"))]
fn cg_axpys(x: &mut [f32], alpha: &mut [f32], p: &[f32], q: &[f32], mask: &[f32], a: f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let n = x
        .len()
        .min(alpha.len())
        .min(p.len())
        .min(q.len())
        .min(mask.len());
    let full = n / 8 * 8;
    for ((((xc, ac), pc), qc), mc) in x[..full]
        .chunks_exact_mut(8)
        .zip(alpha[..full].chunks_exact_mut(8))
        .zip(p[..full].chunks_exact(8))
        .zip(q[..full].chunks_exact(8))
        .zip(mask[..full].chunks_exact(8))
    {
        for l in 0..8 {
            xc[l] += a * pc[l];
            ac[l] -= a * qc[l];
            let r = ac[l] * mc[l];
            acc[l] += r * r;
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    for i in full..n {
        x[i] += a * p[i];
        alpha[i] -= a * q[i];
        let r = alpha[i] * mask[i];
        s += r * r;
    }
    s
}

/// Block-OMP of `N` signals (module documentation): `ytd` = `(D^T Y)^T`
/// (`N x k`, row-major, row `j` = `D^T y_j`), `dtd` = `D^T D` (`k x k`,
/// row-major). Writes per signal `s` atom indices in selection order
/// (`idx`, `N x s`), their coefficients (`val`) and the energy `||y||^2 -
/// ||y - D c||^2` of each code (`energy`, in `f64`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn block_omp_rows(
    ytd: &[f64],
    dtd: &[f64],
    k: usize,
    s: usize,
    steps: usize,
    step_cg: usize,
    idx: &mut [u32],
    val: &mut [f64],
    energy: &mut [f64],
) {
    let n = energy.len();
    let s = s.min(k);
    let steps = steps.clamp(1, s.max(1));
    let g32: Vec<f32> = dtd.iter().map(|&v| v as f32).collect();
    let b32: Vec<f32> = ytd.iter().map(|&v| v as f32).collect();
    let mut st = State {
        x: vec![0.0; n * k],
        alpha: b32.clone(),
        p: vec![0.0; n * k],
        q: vec![0.0; n * k],
        mask: vec![0.0; n * k],
        rr: vec![0.0; n],
        tol: vec![0.0; n],
    };
    let mut chosen = 0usize;
    for t in 0..steps {
        let add = (s * (t + 1)).div_ceil(steps) - chosen;
        if t > 0 {
            // alpha = b - x G, exactly (no drift from the updates).
            times_gram(&mut st.q, &st.x, &g32, n, k);
            st.alpha
                .par_chunks_mut(CHUNK * k)
                .zip(st.q.par_chunks(CHUNK * k).zip(b32.par_chunks(CHUNK * k)))
                .for_each(|(a, (q, b))| {
                    for (av, (&qv, &bv)) in a.iter_mut().zip(q.iter().zip(b)) {
                        *av = bv - qv;
                    }
                });
        }
        select(&mut st, idx, k, s, chosen, add);
        chosen += add;
        // Conjugate gradients from the current x: r = p = alpha on I.
        start_cg(&mut st, k);
        let last = t + 1 == steps;
        let iters = if last { FINAL_CG } else { step_cg };
        {
            st.tol
                .par_chunks_mut(CHUNK)
                .zip(b32.par_chunks(CHUNK * k).zip(st.mask.par_chunks(CHUNK * k)))
                .for_each(|(tc, (bc, mc))| {
                    for (r, tv) in tc.iter_mut().enumerate() {
                        let sl = r * k..(r + 1) * k;
                        let bb: f32 = bc[sl.clone()]
                            .iter()
                            .zip(&mc[sl])
                            .map(|(b, m)| b * b * m)
                            .sum();
                        *tv = FINAL_TOL * FINAL_TOL * bb;
                    }
                });
        }
        for _ in 0..iters {
            times_gram(&mut st.q, &st.p, &g32, n, k);
            if !cg_update(&mut st, k, true) {
                break;
            }
        }
    }
    // f64 coefficients and exact energies: e = x^T (2 b - G x).
    let x64: Vec<f64> = st.x.iter().map(|&v| f64::from(v)).collect();
    let xv = ArrayView2::from_shape((n, k), &x64[..]).expect("x shape");
    let gv = ArrayView2::from_shape((k, k), dtd).expect("g shape");
    let gx = shrink_core::linalg::matmul(xv, gv);
    let gx = gx.as_slice().expect("contiguous");
    energy
        .par_chunks_mut(CHUNK)
        .zip(idx.par_chunks(CHUNK * s).zip(val.par_chunks_mut(CHUNK * s)))
        .enumerate()
        .for_each(|(c, (ec, (ic, vc)))| {
            for (r, e) in ec.iter_mut().enumerate() {
                let j = c * CHUNK + r;
                let xr = &x64[j * k..(j + 1) * k];
                let gr = &gx[j * k..(j + 1) * k];
                let br = &ytd[j * k..(j + 1) * k];
                let mut acc = 0.0;
                for q in 0..s {
                    let a = ic[r * s + q] as usize;
                    vc[r * s + q] = xr[a];
                    acc += xr[a] * (2.0 * br[a] - gr[a]);
                }
                *e = acc;
            }
        });
}

/// Adds `add` atoms per signal: the largest `|alpha_a|` outside the support
/// (ties: lowest index), written to `idx[j s + chosen ..]` in that order.
fn select(st: &mut State, idx: &mut [u32], k: usize, s: usize, chosen: usize, add: usize) {
    if add == 0 {
        return;
    }
    st.alpha
        .par_chunks(CHUNK * k)
        .zip(st.mask.par_chunks_mut(CHUNK * k))
        .zip(idx.par_chunks_mut(CHUNK * s))
        .for_each(|((ac, mc), ic)| {
            let mut cand: Vec<(f32, u32)> = Vec::with_capacity(k);
            for r in 0..ac.len() / k {
                let (aj, mj) = (&ac[r * k..(r + 1) * k], &mut mc[r * k..(r + 1) * k]);
                cand.clear();
                cand.extend(
                    aj.iter()
                        .zip(mj.iter())
                        .enumerate()
                        .filter(|(_, (_, m))| **m == 0.0)
                        .map(|(a, (v, _))| (v.abs(), a as u32)),
                );
                let order = |u: &(f32, u32), v: &(f32, u32)| -> Ordering {
                    v.0.total_cmp(&u.0).then(u.1.cmp(&v.1))
                };
                let take = add.min(cand.len());
                if take < cand.len() {
                    cand.select_nth_unstable_by(take, order);
                }
                cand[..take].sort_unstable_by(order);
                for (q, &(_, a)) in cand[..take].iter().enumerate() {
                    ic[r * s + chosen + q] = a;
                    mj[a as usize] = 1.0;
                }
            }
        });
}

/// Starts conjugate gradients on the current support: `p = alpha` on the
/// support (0 elsewhere), `rr = |p|^2`.
fn start_cg(st: &mut State, k: usize) {
    st.p.par_chunks_mut(CHUNK * k)
        .zip(
            st.alpha
                .par_chunks(CHUNK * k)
                .zip(st.mask.par_chunks(CHUNK * k)),
        )
        .zip(st.rr.par_chunks_mut(CHUNK))
        .for_each(|((pc, (ac, mc)), rc)| {
            for (r, rrj) in rc.iter_mut().enumerate() {
                let sl = r * k..(r + 1) * k;
                let mut acc = 0.0f32;
                for (pv, (&av, &mv)) in pc[sl.clone()]
                    .iter_mut()
                    .zip(ac[sl.clone()].iter().zip(&mc[sl]))
                {
                    *pv = av * mv;
                    acc += *pv * *pv;
                }
                *rrj = acc;
            }
        });
}

/// Block-OMP for many signals: `dty` = `D^T Y` (`k x N`), `dtd` = `D^T D`
/// (`k x k`, unit diagonal), `steps` selection steps (`1..=s`; `steps = s`
/// adds one atom per step), at most `step_cg` conjugate-gradient iterations
/// after each step but the last (CoSpaDi uses [`STEP_CG`]). Returns, per signal, `s` atom indices in
/// selection order and their coefficients (row-major `N x s`), and the
/// energy `||D c_j||^2 = ||y_j||^2 - ||y_j - D c_j||^2` of each code.
///
/// # Errors
///
/// [`Error::Shape`](shrink_core::Error::Shape) for inconsistent sizes, `s > k` or `steps` outside
/// `1..=s`, [`Error::NonFinite`](shrink_core::Error::NonFinite) for NaN or infinite input.
pub fn block_omp(
    dty: ArrayView2<'_, f64>,
    dtd: ArrayView2<'_, f64>,
    s: usize,
    steps: usize,
    step_cg: usize,
) -> Result<(Vec<u32>, Vec<f64>, Vec<f64>)> {
    let (k, signals) = dty.dim();
    crate::cospadi::check_coder_inputs(dty, dtd, s, Some(steps))?;
    let g = dtd.as_standard_layout().into_owned();
    let yt = dty.t().as_standard_layout().into_owned();
    let mut idx = vec![0u32; signals * s];
    let mut val = vec![0.0f64; signals * s];
    let mut energy = vec![0.0f64; signals];
    block_omp_rows(
        yt.as_slice().unwrap_or(&[]),
        g.as_slice().unwrap_or(&[]),
        k,
        s,
        steps,
        step_cg,
        &mut idx,
        &mut val,
        &mut energy,
    );
    Ok((idx, val, energy))
}
