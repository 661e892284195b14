//! Per-block kernels for the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K)
//! and the non-linear IQ4_NL / IQ4_XS, after ggml's `quantize_row_*_ref`
//! and `dequantize_row_*` (`ggml-quants.c`; `docs/algorithms.md` 9.3).
//!
//! Lengths are checked by [`super::quantize`] / [`super::dequantize`]; the
//! kernels take exactly one block and panic on other lengths.
//!
//! # Search helpers (ggml names)
//!
//! - `make_qx_quants(n, nmax, x, rmse_type = 1)` (Q6_K): symmetric codes
//!   `l = clamp(nearest_int(iscale x), -nmax, nmax - 1)` with weights `w =
//!   x^2`, `iscale = -nmax / max` (`max` the signed value of largest
//!   magnitude), least-squares scale `sum(w x l) / sum(w l^2)`, then 18 more
//!   trials `iscale = -(nmax + 0.1 is) / max`, `is = -9..=9, is != 0`, kept
//!   when they raise `sum(w x l)^2 / sum(w l^2)`.
//! - `make_q3_quants(n, 4, x)` (Q3_K): the first trial above with `l in
//!   [-4, 3]`, then up to five passes of coordinate descent on single codes.
//! - `make_qkx2_quants(n, nmax, x, w, rmin, rdelta, nstep, use_mad)` (Q2_K,
//!   Q4_K, Q5_K): asymmetric `x ~ scale l + min` with `min <= 0`; trials
//!   `iscale = (rmin + rdelta is + nmax) / (max - min)`, `is = 0..=nstep`,
//!   each refit by weighted least squares and kept when the weighted error
//!   (`|d|` or `d^2`) drops.
//!
//! # Packings
//!
//! - Q2_K / Q3_K 2-bit codes: `qs[32 h + l] = L[128h+l] | L[128h+l+32] << 2 |
//!   L[128h+l+64] << 4 | L[128h+l+96] << 6`. Q2_K `scales[j]` = scale in the
//!   low nibble, min in the high nibble (`x = d sc q - dmin m`).
//! - Q3_K: 6-bit scales `l_j` (offset 32): low 4 bits in `scales[j]` (j < 8)
//!   or the high nibble of `scales[j - 8]`, high 2 bits at bit `2 (j / 4)` of
//!   `scales[8 + j % 4]`; the third code bit of value `k` is bit `k / 32` of
//!   `hmask[k % 32]`, set when the code is >= 4 (`x = d (l_j - 32) (q - 4 +
//!   4 hbit)`).
//! - Q4_K / Q5_K 6-bit scales and mins in 12 bytes: for j < 4 `scales[j] =
//!   sc_j`, `scales[j + 4] = m_j`; for j >= 4 `scales[j + 4] = sc_j & 15 |
//!   (m_j & 15) << 4` and the top two bits of `sc_j` / `m_j` go to bits 6..7
//!   of `scales[j - 4]` / `scales[j]`. Codes: per 64 values `c`, `qs[32c +
//!   l] = L[64c + l] | L[64c + 32 + l] << 4`; Q5_K's fifth bits are bit `2c`
//!   (first 32) and `2c + 1` (second 32) of `qh[l]`.
//! - Q6_K: per 128 values, `ql[l] = L[l] & 15 | (L[l+64] & 15) << 4`,
//!   `ql[l+32] = L[l+32] & 15 | (L[l+96] & 15) << 4`, `qh[l]` = the top two
//!   bits of `L[l], L[l+32], L[l+64], L[l+96]` at bits 0, 2, 4, 6; int8
//!   `scales[16]`, `x = d scales[k / 16] (q - 32)`.
//! - Q8_K: `d = 1 / iscale` with `iscale = -127 / max`, `q =
//!   min(127, nearest_int(iscale x))`, `bsums[j]` = sum of codes `16j..16j+15`.
//! - IQ4_NL / IQ4_XS: 4-bit indices into `kvalues_iq4nl` (element `j` in the
//!   low nibble of `qs[j]`, `j + 16` in the high nibble, per 32 values).
//!   These follow ggml's `quantize_iq4_nl` / `quantize_iq4_xs` without
//!   importance weights (`ntry = 7`, the path `ggml_quantize_chunk` takes).
//!   IQ4_XS stores 6-bit sub-block scales (offset 32): low nibbles in
//!   `scales_l[ib / 2]` (even `ib` low), high 2 bits at bit `2 ib` of
//!   `scales_h`.

// Index loops mirror ggml's block layouts (`16 j + ii`, `64 c + l`...).
#![allow(clippy::needless_range_loop)]

use super::{f16_to_f32, f32_to_f16, nearest_int};

/// ggml's `GROUP_MAX_EPS`.
const GROUP_MAX_EPS: f32 = 1e-15;

/// Signed value of largest magnitude and that magnitude (first on ties).
#[inline]
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    (max, amax)
}

/// Scale trials evaluated side by side: each lane runs one trial's loop in
/// ggml's order (so its sums are bit for bit C's), and lanes of different
/// trials vectorize. 8 is the widest f32 vector (AVX).
const LANES: usize = 8;

/// The longest run of values the lane searches take (a sub-block of 16 or
/// 32, or Q3_K's 16 scales).
const MAX_RUN: usize = 32;

/// `make_qx_quants` with `rmse_type = 1`: weights `qw` when given (ggml's
/// `quant_weights` path), `x^2` otherwise; writes `L = l + nmax` and returns
/// the scale.
///
/// ggml's first trial (`iscale = -nmax / max`) and its 18 more (`is = -9..=9`,
/// `is != 0`) are evaluated in lanes of [`LANES`] (trial `t` in lane `t % 8`
/// of group `t / 8`), then compared one after another in ggml's order.
#[inline(always)]
pub(super) fn make_qx_quants(nmax: i32, x: &[f32], ls: &mut [i8], qw: Option<&[f32]>) -> f32 {
    const TRIALS: usize = 19;
    const GROUPS: usize = TRIALS.div_ceil(LANES);
    let n = x.len();
    assert!(
        n <= MAX_RUN && ls.len() == n,
        "make_qx_quants: runs of at most 32 values"
    );
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        ls.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut w = [0f32; MAX_RUN];
    match qw {
        Some(q) => w[..n].copy_from_slice(&q[..n]),
        None => {
            for (wi, &xi) in w.iter_mut().zip(x) {
                *wi = xi * xi;
            }
        }
    }
    let mut sumlx = [[0f32; LANES]; GROUPS];
    let mut suml2 = [[0f32; LANES]; GROUPS];
    let mut codes = [[[0i8; LANES]; MAX_RUN]; GROUPS];
    let mut iscale = [[0f32; LANES]; GROUPS];
    for (t, s) in iscale.as_flattened_mut().iter_mut().enumerate() {
        *s = if t == 0 {
            -nmaxf / max
        } else {
            // Trials 1..=18 are is = -9..=-1, 1..=9 (the padding lanes
            // repeat is = 9 and are never read).
            let is = if t <= 9 {
                t as i32 - 10
            } else {
                (t as i32 - 9).min(9)
            };
            -(nmaxf + 0.1f32 * is as f32) / max
        };
    }
    // Values outside, groups inside: the groups' sums are independent
    // chains (each lane still adds in ggml's order), so they overlap.
    for i in 0..n {
        let (xi, wi) = (x[i], w[i]);
        for g in 0..GROUPS {
            let (slx, sl2) = (&mut sumlx[g], &mut suml2[g]);
            for k in 0..LANES {
                let l = nearest_int(iscale[g][k] * xi).clamp(-nmax, nmax - 1);
                codes[g][i][k] = l as i8;
                let lf = l as f32;
                slx[k] += wi * xi * lf;
                sl2[k] += wi * lf * lf;
            }
        }
    }
    let (slx0, sl20) = (sumlx[0][0], suml2[0][0]);
    let mut scale = if sl20 != 0.0 { slx0 / sl20 } else { 0.0 };
    let mut best = scale * slx0;
    let mut win = 0usize;
    for t in 1..TRIALS {
        let (slx, sl2) = (sumlx[t / LANES][t % LANES], suml2[t / LANES][t % LANES]);
        if sl2 > 0.0 && slx * slx > best * sl2 {
            scale = slx / sl2;
            best = scale * slx;
            win = t;
        }
    }
    let cw = &codes[win / LANES];
    for (i, l) in ls.iter_mut().enumerate() {
        *l = (nmax + i32::from(cw[i][win % LANES])) as i8;
    }
    scale
}

/// `make_q3_quants(n, nmax, x, L, do_rmse = true)`; writes `L = l + nmax`.
fn make_q3_quants(nmax: i32, x: &[f32], ls: &mut [i8]) -> f32 {
    let (max, amax) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        ls.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for (i, &xi) in x.iter().enumerate() {
        let l = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
        ls[i] = l as i8;
        let w = xi * xi;
        let lf = l as f32;
        sumlx += w * xi * lf;
        suml2 += w * lf * lf;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (i, &xi) in x.iter().enumerate() {
            let w = xi * xi;
            let li = f32::from(ls[i]);
            let mut slx = sumlx - w * xi * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(xi * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != i32::from(ls[i]) {
                    let nl = new_l as f32;
                    slx += w * xi * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        ls[i] = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for l in ls.iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// `make_qkx2_quants` for the `S` sub-blocks of `N` values of one
/// super-block side by side (`MAD` is ggml's `use_mad`): sub-block `k` is
/// lane `k`, with its values and weights transposed (`x[i][k]` is value `i`
/// of sub-block `k`). Each lane follows ggml's sequential algorithm step for
/// step (a trial that wins changes `min`, which the later trials use), so
/// its sums and its result are C's bit for bit; the lanes vectorize.
///
/// Returns per lane `(scale, the_min)` and writes the codes to `ls`
/// (transposed like `x`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn make_qkx2_quants<const S: usize, const N: usize, const MAD: bool>(
    nmax: i32,
    x: &[[f32; S]; N],
    weights: &[[f32; S]; N],
    ls: &mut [[u8; S]; N],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> ([f32; S], [f32; S]) {
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = [0f32; S];
    for k in 0..S {
        sum_x[k] = sum_w[k] * x[0][k];
    }
    for i in 1..N {
        for k in 0..S {
            let v = x[i][k];
            if v < min[k] {
                min[k] = v;
            }
            if v > max[k] {
                max[k] = v;
            }
            let w = weights[i][k];
            sum_w[k] += w;
            sum_x[k] += w * v;
        }
    }
    // ggml returns at once (codes 0, scale 0) where `max == min`.
    let mut flat = [false; S];
    for k in 0..S {
        if min[k] > 0.0 {
            min[k] = 0.0;
        }
        flat[k] = max[k] == min[k];
    }
    let nmaxf = nmax as f32;
    let mut scale = [0f32; S];
    let mut iscale = [0f32; S];
    for k in 0..S {
        iscale[k] = nmaxf / (max[k] - min[k]);
        scale[k] = 1.0 / iscale[k];
    }
    let mut best_error = [0f32; S];
    for i in 0..N {
        for k in 0..S {
            let l = nearest_int(iscale[k] * (x[i][k] - min[k])).clamp(0, nmax);
            ls[i][k] = l as u8;
            let mut diff = scale[k] * l as f32 + min[k] - x[i][k];
            diff = if MAD { diff.abs() } else { diff * diff };
            best_error[k] += weights[i][k] * diff;
        }
    }
    // ggml returns before the trials when `nstep < 1`.
    for is in (0..=nstep).filter(|_| nstep >= 1) {
        for k in 0..S {
            iscale[k] = (rmin + rdelta * is as f32 + nmaxf) / (max[k] - min[k]);
        }
        let mut sum_l = [0f32; S];
        let mut sum_l2 = [0f32; S];
        let mut sum_xl = [0f32; S];
        let mut laux = [[0u8; S]; N];
        for i in 0..N {
            for k in 0..S {
                let l = nearest_int(iscale[k] * (x[i][k] - min[k])).clamp(0, nmax);
                laux[i][k] = l as u8;
                let w = weights[i][k];
                let lf = l as f32;
                sum_l[k] += w * lf;
                sum_l2[k] += w * lf * lf;
                sum_xl[k] += w * lf * x[i][k];
            }
        }
        let mut ok = [false; S];
        let mut this_scale = [0f32; S];
        let mut this_min = [0f32; S];
        for k in 0..S {
            let d = sum_w[k] * sum_l2[k] - sum_l[k] * sum_l[k];
            ok[k] = d > 0.0 && !flat[k];
            let mut ts = (sum_w[k] * sum_xl[k] - sum_x[k] * sum_l[k]) / d;
            let mut tm = (sum_l2[k] * sum_x[k] - sum_l[k] * sum_xl[k]) / d;
            if tm > 0.0 {
                tm = 0.0;
                ts = sum_xl[k] / sum_l2[k];
            }
            this_scale[k] = ts;
            this_min[k] = tm;
        }
        let mut cur_error = [0f32; S];
        for i in 0..N {
            for k in 0..S {
                let mut diff = this_scale[k] * f32::from(laux[i][k]) + this_min[k] - x[i][k];
                diff = if MAD { diff.abs() } else { diff * diff };
                cur_error[k] += weights[i][k] * diff;
            }
        }
        let mut better = [false; S];
        for k in 0..S {
            better[k] = ok[k] && cur_error[k] < best_error[k];
            if better[k] {
                best_error[k] = cur_error[k];
                scale[k] = this_scale[k];
                min[k] = this_min[k];
            }
        }
        // Branch-free per-lane select of the codes (a byte mask per lane).
        let mut keep = [0u8; S];
        for k in 0..S {
            keep[k] = u8::from(better[k]).wrapping_neg();
        }
        for i in 0..N {
            for k in 0..S {
                ls[i][k] = (laux[i][k] & keep[k]) | (ls[i][k] & !keep[k]);
            }
        }
    }
    let mut the_min = [0f32; S];
    for k in 0..S {
        if flat[k] {
            scale[k] = 0.0;
            for l in ls.iter_mut() {
                l[k] = 0;
            }
        }
        the_min[k] = -min[k];
    }
    (scale, the_min)
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j`.
#[inline]
pub(super) fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Packs 2-bit codes of 256 values into 64 bytes (Q2_K / Q3_K order).
#[inline(always)]
pub(super) fn pack_2bit(l: &[u8], qs: &mut [u8]) {
    for h in 0..2 {
        let j = 128 * h;
        for i in 0..32 {
            qs[32 * h + i] =
                l[j + i] | (l[j + i + 32] << 2) | (l[j + i + 64] << 4) | (l[j + i + 96] << 6);
        }
    }
}

// ---------------------------------------------------------------- Q2_K

/// Q2_K: 256 values to `scales[16]`, `qs[64]`, `d`, `dmin`.
#[inline(always)]
pub(crate) fn quantize_q2_k(x: &[f32], out: &mut [u8]) {
    let x: &[f32; 256] = x.try_into().expect("one Q2_K block");
    let mut xt = [[0f32; 16]; 16];
    let mut wt = [[0f32; 16]; 16];
    for j in 0..16 {
        for i in 0..16 {
            let v = x[16 * j + i];
            xt[i][j] = v;
            wt[i][j] = v.abs();
        }
    }
    let mut lt = [[0u8; 16]; 16];
    let (scales, mins) = make_qkx2_quants::<16, 16, true>(3, &xt, &wt, &mut lt, -0.5, 0.1, 15);
    let mut l = [0u8; 256];
    for j in 0..16 {
        for i in 0..16 {
            l[16 * j + i] = lt[i][j];
        }
    }
    let q4scale = 15.0f32;
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..16 {
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let (sc, rest) = out.split_at_mut(16);
    let (qs, dd) = rest.split_at_mut(64);
    if max_scale > 0.0 {
        let iscale = q4scale / max_scale;
        for j in 0..16 {
            sc[j] = nearest_int(iscale * scales[j]) as u8;
        }
        dd[0..2].copy_from_slice(&f32_to_f16(max_scale / q4scale));
    } else {
        sc.fill(0);
        dd[0..2].copy_from_slice(&f32_to_f16(0.0));
    }
    if max_min > 0.0 {
        let iscale = q4scale / max_min;
        for j in 0..16 {
            let v = nearest_int(iscale * mins[j]);
            sc[j] |= (v << 4) as u8;
        }
        dd[2..4].copy_from_slice(&f32_to_f16(max_min / q4scale));
    } else {
        dd[2..4].copy_from_slice(&f32_to_f16(0.0));
    }
    let dall = f16_to_f32(&dd[0..2]);
    let dmin = f16_to_f32(&dd[2..4]);
    for j in 0..16 {
        let d = dall * f32::from(sc[j] & 0x0f);
        if d == 0.0 {
            continue;
        }
        let dm = dmin * f32::from(sc[j] >> 4);
        for ii in 0..16 {
            let v = nearest_int((x[16 * j + ii] + dm) / d).clamp(0, 3);
            l[16 * j + ii] = v as u8;
        }
    }
    pack_2bit(&l, qs);
}

/// Q2_K block to 256 values.
#[inline(always)]
pub(crate) fn dequantize_q2_k(b: &[u8], y: &mut [f32]) {
    let b: &[u8; 84] = b.try_into().expect("one Q2_K block");
    let y: &mut [f32; 256] = y.try_into().expect("one Q2_K block");
    let d = f16_to_f32(&b[80..82]);
    let min = f16_to_f32(&b[82..84]);
    // Sub-block `is` (16 values) takes bits `2 (is / 2 % 4)` of `qs[32 (is
    // / 8) + 16 (is % 2) ..][..16]`; the shift is a constant in each call
    // of `sub` (byte shifts by a variable amount do not vectorize).
    #[inline(always)]
    fn sub<const SHIFT: u32>(q: &[u8], s: u8, d: f32, min: f32, yy: &mut [f32]) {
        let q: &[u8; 16] = q.try_into().expect("16 code bytes");
        let yy: &mut [f32; 16] = yy.try_into().expect("16 values");
        let dl = d * f32::from(s & 0x0f);
        let ml = min * f32::from(s >> 4);
        for i in 0..16 {
            yy[i] = dl * f32::from((q[i] >> SHIFT) & 3) - ml;
        }
    }
    for (h, yh) in y.chunks_exact_mut(128).enumerate() {
        let qs = &b[16 + 32 * h..16 + 32 * h + 32];
        let sc = &b[8 * h..8 * h + 8];
        let (q0, q1) = qs.split_at(16);
        let (y0, rest) = yh.split_at_mut(32);
        let (y1, rest) = rest.split_at_mut(32);
        let (y2, y3) = rest.split_at_mut(32);
        sub::<0>(q0, sc[0], d, min, &mut y0[..16]);
        sub::<0>(q1, sc[1], d, min, &mut y0[16..]);
        sub::<2>(q0, sc[2], d, min, &mut y1[..16]);
        sub::<2>(q1, sc[3], d, min, &mut y1[16..]);
        sub::<4>(q0, sc[4], d, min, &mut y2[..16]);
        sub::<4>(q1, sc[5], d, min, &mut y2[16..]);
        sub::<6>(q0, sc[6], d, min, &mut y3[..16]);
        sub::<6>(q1, sc[7], d, min, &mut y3[16..]);
    }
}

// ---------------------------------------------------------------- Q3_K

/// Q3_K: 256 values to `hmask[32]`, `qs[64]`, `scales[12]`, `d`.
#[inline]
pub(crate) fn quantize_q3_k(x: &[f32], out: &mut [u8]) {
    let mut l = [0i8; 256];
    let mut scales = [0f32; 16];
    let mut max_scale = 0.0f32;
    let mut amax = 0.0f32;
    for j in 0..16 {
        scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
        let s = scales[j].abs();
        if s > amax {
            amax = s;
            max_scale = scales[j];
        }
    }
    let (sc, dd) = out[96..110].split_at_mut(12);
    sc.fill(0);
    if max_scale != 0.0 {
        let iscale = -32.0f32 / max_scale;
        for j in 0..16 {
            let v = nearest_int(iscale * scales[j]) as i8;
            let v = (v.clamp(-32, 31) + 32) as u8;
            if j < 8 {
                sc[j] = v & 0x0f;
            } else {
                sc[j - 8] |= (v & 0x0f) << 4;
            }
            sc[j % 4 + 8] |= (v >> 4) << (2 * (j / 4));
        }
        dd.copy_from_slice(&f32_to_f16(1.0 / iscale));
    } else {
        dd.copy_from_slice(&f32_to_f16(0.0));
    }
    requant_pack_q3_k(x, &mut l, out);
}

/// Q3_K's second half, shared with the weighted path: given the scales and
/// `d` already in `out`, re-quantizes every sub-block whose scale is not 0
/// (the others keep the codes `l` of the search, offset 4) and packs the
/// codes.
pub(super) fn requant_pack_q3_k(x: &[f32], l: &mut [i8; 256], out: &mut [u8]) {
    let (hmask, rest) = out.split_at_mut(32);
    let (qs, rest) = rest.split_at_mut(64);
    let (sc, dd) = rest.split_at_mut(12);
    let dall = f16_to_f32(dd);
    for j in 0..16 {
        let lo = if j < 8 { sc[j] & 0x0f } else { sc[j - 8] >> 4 };
        let s = (lo | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) as i8 - 32;
        let d = dall * f32::from(s);
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let v = nearest_int(x[16 * j + ii] / d).clamp(-4, 3);
            l[16 * j + ii] = (v + 4) as i8;
        }
    }
    hmask.fill(0);
    let mut codes = [0u8; 256];
    for (j, (&lv, c)) in l.iter().zip(codes.iter_mut()).enumerate() {
        let mut v = lv as u8;
        if v > 3 {
            hmask[j % 32] |= 1 << (j / 32);
            v -= 4;
        }
        *c = v;
    }
    pack_2bit(&codes, qs);
}

/// Unpacks Q3_K's twelve scale bytes to the 16 signed 6-bit scales.
pub(super) fn q3_k_scales(sc: &[u8]) -> [i32; 16] {
    let mut s = [0i32; 16];
    for (j, v) in s.iter_mut().enumerate() {
        let lo = if j < 8 { sc[j] & 0x0f } else { sc[j - 8] >> 4 };
        let hi = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
        *v = i32::from(lo | (hi << 4)) - 32;
    }
    s
}

/// Q3_K block to 256 values.
#[inline]
pub(crate) fn dequantize_q3_k(b: &[u8], y: &mut [f32]) {
    let hm = &b[0..32];
    let scales = q3_k_scales(&b[96..108]);
    let d_all = f16_to_f32(&b[108..110]);
    let mut k = 0;
    let mut is = 0;
    let mut m = 1u8;
    for h in 0..2 {
        let q = &b[32 + 32 * h..32 + 32 * h + 32];
        for shift in [0u32, 2, 4, 6] {
            for half in 0..2 {
                let dl = d_all * scales[is] as f32;
                is += 1;
                for i in 0..16 {
                    let lo = i32::from((q[16 * half + i] >> shift) & 3);
                    let sub = if hm[16 * half + i] & m != 0 { 0 } else { 4 };
                    y[k] = dl * (lo - sub) as f32;
                    k += 1;
                }
            }
            m = m.wrapping_shl(1);
        }
    }
}

// ---------------------------------------------------------- Q4_K / Q5_K

/// Shared first half of Q4_K / Q5_K: sub-block search, scale packing, and
/// re-quantization. Writes `d`, `dmin`, `scales[12]` into `head` (16 bytes)
/// and returns the codes.
#[inline(always)]
fn quantize_k_asym(x: &[f32], head: &mut [u8], nmax: i32, rmin: f32, nstep: i32) -> [u8; 256] {
    let (scales, mins, lt) = search_k_asym::<8>(x, nmax, rmin, nstep);
    finish_k_asym(x, head, nmax, &scales, &mins, &lt, 0)
}

/// The sub-block search of Q4_K / Q5_K for `S / 8` super-blocks (`x` holds
/// `32 S` values) side by side: lane `k` is the sub-block of the 32 values
/// `x[32 k..]`, searched in ggml's order on its own. (Two super-blocks in
/// 16 lanes measured 5-10% slower than one in 8 on AVX2: the wider loop
/// spills registers.) Returns per lane the
/// scale and the min, and the codes transposed (`[i][k]` is value `i` of
/// lane `k`).
#[inline(always)]
fn search_k_asym<const S: usize>(
    x: &[f32],
    nmax: i32,
    rmin: f32,
    nstep: i32,
) -> ([f32; S], [f32; S], [[u8; S]; 32]) {
    assert_eq!(x.len(), 32 * S, "whole K-quant super-blocks");
    let mut xt = [[0f32; S]; 32];
    for k in 0..S {
        for i in 0..32 {
            xt[i][k] = x[32 * k + i];
        }
    }
    // Per sub-block, in ggml's order: sum of squares, then `av_x + |x|`.
    let mut sum_x2 = [0f32; S];
    for row in &xt {
        for k in 0..S {
            sum_x2[k] += row[k] * row[k];
        }
    }
    let mut av_x = [0f32; S];
    for k in 0..S {
        av_x[k] = (sum_x2[k] / 32.0).sqrt();
    }
    let mut wt = [[0f32; S]; 32];
    for i in 0..32 {
        for k in 0..S {
            wt[i][k] = av_x[k] + xt[i][k].abs();
        }
    }
    let mut lt = [[0u8; S]; 32];
    let (scales, mins) =
        make_qkx2_quants::<S, 32, false>(nmax, &xt, &wt, &mut lt, rmin, 0.1, nstep);
    (scales, mins, lt)
}

/// Scale packing and re-quantization of one Q4_K / Q5_K super-block (the
/// 256 values `x`) whose sub-blocks are lanes `lane0..lane0 + 8` of a
/// [`search_k_asym`] result.
#[inline(always)]
fn finish_k_asym<const S: usize>(
    x: &[f32],
    head: &mut [u8],
    nmax: i32,
    scales: &[f32; S],
    mins: &[f32; S],
    lt: &[[u8; S]; 32],
    lane0: usize,
) -> [u8; 256] {
    let scales = &scales[lane0..lane0 + 8];
    let mins = &mins[lane0..lane0 + 8];
    let mut l = [0u8; 256];
    for j in 0..8 {
        for i in 0..32 {
            l[32 * j + i] = lt[i][lane0 + j];
        }
    }
    pack_k_head(head, scales, mins);
    requant_k_asym(x, head, nmax, &mut l);
    l
}

/// Q4_K / Q5_K's `d`, `dmin` and 6-bit `scales[12]` (the first 16 bytes of
/// `head`) from the eight sub-block scales and mins of a search.
#[inline(always)]
pub(super) fn pack_k_head(head: &mut [u8], scales: &[f32], mins: &[f32]) {
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..8 {
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let sc = &mut head[4..16];
    for j in 0..8 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
            sc[j - 4] |= (ls >> 4) << 6;
            sc[j] |= (lm >> 4) << 6;
        }
    }
    head[0..2].copy_from_slice(&f32_to_f16(max_scale / 63.0));
    head[2..4].copy_from_slice(&f32_to_f16(max_min / 63.0));
}

/// The second half of Q4_K / Q5_K, shared with the weighted path: with
/// `d`, `dmin` and the packed scales in `head`, re-quantizes every sub-block
/// whose scale is not 0 (the others keep the codes of the search).
#[inline(always)]
pub(super) fn requant_k_asym(x: &[f32], head: &[u8], nmax: i32, l: &mut [u8; 256]) {
    let dall = f16_to_f32(&head[0..2]);
    let dmin = f16_to_f32(&head[2..4]);
    for j in 0..8 {
        let (s, m) = get_scale_min_k4(j, &head[4..16]);
        let d = dall * f32::from(s);
        if d == 0.0 {
            continue;
        }
        let dm = dmin * f32::from(m);
        for ii in 0..32 {
            let v = nearest_int((x[32 * j + ii] + dm) / d).clamp(0, nmax);
            l[32 * j + ii] = v as u8;
        }
    }
}

/// Q4_K: 256 values to `d`, `dmin`, `scales[12]`, `qs[128]`.
#[inline(always)]
pub(crate) fn quantize_q4_k(x: &[f32], out: &mut [u8]) {
    let (head, qs) = out.split_at_mut(16);
    let l = quantize_k_asym(x, head, 15, -1.0, 20);
    pack_q4_k(&l, qs);
}

/// Packs Q4_K's 4-bit codes (per 64 values, the first 32 in low nibbles).
#[inline(always)]
pub(super) fn pack_q4_k(l: &[u8; 256], qs: &mut [u8]) {
    for c in 0..4 {
        for i in 0..32 {
            qs[32 * c + i] = l[64 * c + i] | (l[64 * c + 32 + i] << 4);
        }
    }
}

/// Q4_K block to 256 values.
#[inline(always)]
pub(crate) fn dequantize_q4_k(b: &[u8], y: &mut [f32]) {
    let b: &[u8; 144] = b.try_into().expect("one Q4_K block");
    let y: &mut [f32; 256] = y.try_into().expect("one Q4_K block");
    let d = f16_to_f32(&b[0..2]);
    let min = f16_to_f32(&b[2..4]);
    let sc = &b[4..16];
    for (c, yc) in y.chunks_exact_mut(64).enumerate() {
        let q: &[u8; 32] = b[16 + 32 * c..16 + 32 * c + 32].try_into().expect("codes");
        let (s1, m1) = get_scale_min_k4(2 * c, sc);
        let (s2, m2) = get_scale_min_k4(2 * c + 1, sc);
        let (d1, m1) = (d * f32::from(s1), min * f32::from(m1));
        let (d2, m2) = (d * f32::from(s2), min * f32::from(m2));
        let (lo, hi) = yc.split_at_mut(32);
        for i in 0..32 {
            lo[i] = d1 * f32::from(q[i] & 0x0f) - m1;
            hi[i] = d2 * f32::from(q[i] >> 4) - m2;
        }
    }
}

/// Q5_K: 256 values to `d`, `dmin`, `scales[12]`, `qh[32]`, `qs[128]`.
#[inline]
pub(crate) fn quantize_q5_k(x: &[f32], out: &mut [u8]) {
    let (head, rest) = out.split_at_mut(16);
    let l = quantize_k_asym(x, head, 31, -0.5, 15);
    pack_q5_k(&l, rest);
}

/// Packs Q5_K's 5-bit codes into `qh[32]` then `qs[128]`.
pub(super) fn pack_q5_k(l: &[u8; 256], rest: &mut [u8]) {
    let (qh, ql) = rest.split_at_mut(32);
    qh.fill(0);
    for c in 0..4 {
        let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
        for j in 0..32 {
            let mut l1 = l[64 * c + j];
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= m1;
            }
            let mut l2 = l[64 * c + 32 + j];
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[32 * c + j] = l1 | (l2 << 4);
        }
    }
}

/// Q5_K block to 256 values.
#[inline]
pub(crate) fn dequantize_q5_k(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(&b[0..2]);
    let min = f16_to_f32(&b[2..4]);
    let sc = &b[4..16];
    let qh = &b[16..48];
    for c in 0..4 {
        let ql = &b[48 + 32 * c..48 + 32 * c + 32];
        let (s1, m1) = get_scale_min_k4(2 * c, sc);
        let (s2, m2) = get_scale_min_k4(2 * c + 1, sc);
        let (d1, m1) = (d * f32::from(s1), min * f32::from(m1));
        let (d2, m2) = (d * f32::from(s2), min * f32::from(m2));
        let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
        for i in 0..32 {
            let h1 = if qh[i] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[i] & u2 != 0 { 16 } else { 0 };
            y[64 * c + i] = d1 * f32::from((ql[i] & 0x0f) + h1) - m1;
            y[64 * c + 32 + i] = d2 * f32::from((ql[i] >> 4) + h2) - m2;
        }
    }
}

// ---------------------------------------------------------------- Q6_K

/// Q6_K: 256 values to `ql[128]`, `qh[64]`, `scales[16]`, `d`.
#[inline(always)]
pub(crate) fn quantize_q6_k(x: &[f32], out: &mut [u8]) {
    quantize_q6_k_with(x, None, out);
}

/// Q6_K with optional importance weights (ggml's `quantize_row_q6_K_impl`:
/// the weights go straight into `make_qx_quants`, nothing else changes).
#[inline(always)]
pub(super) fn quantize_q6_k_with(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) {
    let mut l = [0i8; 256];
    let mut scales = [0f32; 16];
    let mut max_scale = 0.0f32;
    let mut max_abs_scale = 0.0f32;
    for ib in 0..16 {
        let s = make_qx_quants(
            32,
            &x[16 * ib..16 * ib + 16],
            &mut l[16 * ib..16 * ib + 16],
            qw.map(|q| &q[16 * ib..16 * ib + 16]),
        );
        scales[ib] = s;
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = s;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        out.fill(0);
        out[208..210].copy_from_slice(&f32_to_f16(0.0));
        return;
    }
    let iscale = -128.0f32 / max_scale;
    out[208..210].copy_from_slice(&f32_to_f16(1.0 / iscale));
    let dall = f16_to_f32(&out[208..210]);
    let mut sc = [0i8; 16];
    for ib in 0..16 {
        sc[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
        out[192 + ib] = sc[ib] as u8;
    }
    for j in 0..16 {
        let d = dall * f32::from(sc[j]);
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let v = nearest_int(x[16 * j + ii] / d).clamp(-32, 31);
            l[16 * j + ii] = (v + 32) as i8;
        }
    }
    let (ql, rest) = out.split_at_mut(128);
    let qh = &mut rest[..64];
    for h in 0..2 {
        let lv = &l[128 * h..128 * h + 128];
        for i in 0..32 {
            let q1 = lv[i] as u8;
            let q2 = lv[i + 32] as u8;
            let q3 = lv[i + 64] as u8;
            let q4 = lv[i + 96] as u8;
            ql[64 * h + i] = (q1 & 0x0f) | ((q3 & 0x0f) << 4);
            ql[64 * h + i + 32] = (q2 & 0x0f) | ((q4 & 0x0f) << 4);
            qh[32 * h + i] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
}

/// Q6_K block to 256 values.
#[inline(always)]
pub(crate) fn dequantize_q6_k(b: &[u8], y: &mut [f32]) {
    let b: &[u8; 210] = b.try_into().expect("one Q6_K block");
    let y: &mut [f32; 256] = y.try_into().expect("one Q6_K block");
    let d = f16_to_f32(&b[208..210]);
    for h in 0..2 {
        let ql: &[u8; 64] = b[64 * h..64 * h + 64].try_into().expect("ql");
        let qh: &[u8; 32] = b[128 + 32 * h..128 + 32 * h + 32].try_into().expect("qh");
        let sc = &b[192 + 8 * h..192 + 8 * h + 8];
        let yy = &mut y[128 * h..128 * h + 128];
        // ggml's `d * sc[is] * q` is `(d * sc[is]) * q`: the product is
        // taken once per 16 values.
        for part in 0..2 {
            let s = |k: usize| d * f32::from(sc[part + k] as i8);
            let (d1, d2, d3, d4) = (s(0), s(2), s(4), s(6));
            for l in 16 * part..16 * part + 16 {
                let q1 = i32::from((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
                let q2 = i32::from((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                yy[l] = d1 * q1 as f32;
                yy[l + 32] = d2 * q2 as f32;
                yy[l + 64] = d3 * q3 as f32;
                yy[l + 96] = d4 * q4 as f32;
            }
        }
    }
}

// ---------------------------------------------------------------- Q8_K

/// Q8_K: 256 values to f32 `d`, `qs[256]`, `bsums[16]`.
#[inline]
pub(crate) fn quantize_q8_k(x: &[f32], out: &mut [u8]) {
    let (max, amax) = signed_absmax(x);
    out.fill(0);
    if amax == 0.0 {
        return;
    }
    let iscale = -127.0f32 / max;
    let mut qs = [0i8; 256];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (o, &q) in out[4..260].iter_mut().zip(&qs) {
        *o = q as u8;
    }
    for j in 0..16 {
        let s: i32 = qs[16 * j..16 * j + 16].iter().map(|&q| i32::from(q)).sum();
        out[260 + 2 * j..262 + 2 * j].copy_from_slice(&(s as i16).to_le_bytes());
    }
    out[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
}

/// Q8_K block to 256 values (the `bsums` are not read).
#[inline]
pub(crate) fn dequantize_q8_k(b: &[u8], y: &mut [f32]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for (v, &q) in y.iter_mut().zip(&b[4..260]) {
        *v = d * f32::from(q as i8);
    }
}

// ------------------------------------------------------- IQ4_NL / IQ4_XS

/// ggml's `kvalues_iq4nl`: the 16 non-linear 4-bit levels.
pub(super) const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// ggml's `best_index_int8` over [`KVALUES_IQ4NL`].
#[inline]
pub(super) fn best_index_iq4(x: f32) -> u8 {
    let val = &KVALUES_IQ4NL;
    if x <= f32::from(val[0]) {
        return 0;
    }
    if x >= f32::from(val[15]) {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < f32::from(val[mav]) {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - f32::from(val[mu - 1]) < f32::from(val[mu]) - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// Number of scale trials on each side (`ntry` of ggml's
/// `quantize_row_iq4_nl_impl`, 7 on the `ggml_quantize_chunk` path).
const IQ4_NTRY: i32 = 7;

/// The per-32 search of `quantize_row_iq4_nl_impl` with weights `w` (`x^2`
/// without importance, `qw sqrt(sigma2 + x^2)` with it); writes codes to
/// `lb` and returns the sub-block scale.
fn iq4_block_scale(xb: &[f32], lb: &mut [u8], weights: Option<&[f32]>) -> f32 {
    let (max, amax) = signed_absmax(xb);
    if amax < GROUP_MAX_EPS {
        return 0.0;
    }
    let v0 = f32::from(KVALUES_IQ4NL[0]);
    let mut d = -max / v0;
    let mut id = 1.0 / d;
    let mut sumqx = 0.0f32;
    let mut sumq2 = 0.0f32;
    for (j, &x) in xb.iter().enumerate() {
        let al = id * x;
        let l = best_index_iq4(al);
        lb[j] = l;
        let q = f32::from(KVALUES_IQ4NL[usize::from(l)]);
        let w = weights.map_or(x * x, |ws| ws[j]);
        sumqx += w * q * x;
        sumq2 += w * q * q;
    }
    d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -IQ4_NTRY..=IQ4_NTRY {
        id = (itry + i32::from(KVALUES_IQ4NL[0])) as f32 / max;
        sumqx = 0.0;
        sumq2 = 0.0;
        for (j, &x) in xb.iter().enumerate() {
            let al = id * x;
            let l = best_index_iq4(al);
            let q = f32::from(KVALUES_IQ4NL[usize::from(l)]);
            let w = weights.map_or(x * x, |ws| ws[j]);
            sumqx += w * q * x;
            sumq2 += w * q * q;
        }
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// Packs 4-bit indices, 32 values per 16 bytes (low nibble first half).
fn pack_iq4(l: &[u8], qs: &mut [u8]) {
    for (lc, qc) in l.chunks_exact(32).zip(qs.chunks_exact_mut(16)) {
        for j in 0..16 {
            qc[j] = lc[j] | (lc[16 + j] << 4);
        }
    }
}

/// IQ4_NL: 32 values to `d`, `qs[16]`.
#[inline]
pub(crate) fn quantize_iq4_nl(x: &[f32], out: &mut [u8]) {
    quantize_iq4_nl_with(x, None, out);
}

/// The weights of ggml's weighted IQ4 search: `qw_j sqrt(sigma2 + x_j^2)`
/// with `sigma2 = (2 / n) sum x^2` over the `n` values of the (super-)block.
fn iq4_weights(x: &[f32], qw: &[f32], out: &mut [f32]) {
    let mut sigma2 = 0.0f32;
    for &v in x {
        sigma2 += v * v;
    }
    sigma2 *= 2.0f32 / x.len() as f32;
    for ((o, &q), &v) in out.iter_mut().zip(qw).zip(x) {
        *o = q * (sigma2 + v * v).sqrt();
    }
}

/// IQ4_NL with optional importance weights (ggml's `quantize_iq4_nl`).
/// Returns the inverse scale the codes were chosen with (`1 / d` before `d`
/// is rounded to half, 0 for an all-zero block).
pub(super) fn quantize_iq4_nl_with(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) -> f32 {
    let mut l = [0u8; 32];
    let mut w = [0f32; 32];
    let weights = qw.map(|q| {
        iq4_weights(x, q, &mut w);
        &w[..]
    });
    let scale = iq4_block_scale(x, &mut l, weights);
    out[0..2].copy_from_slice(&f32_to_f16(scale));
    let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
    for (lj, &xj) in l.iter_mut().zip(x) {
        *lj = best_index_iq4(id * xj);
    }
    pack_iq4(&l, &mut out[2..18]);
    id
}

/// IQ4_NL block to 32 values.
#[inline]
pub(crate) fn dequantize_iq4_nl(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(&b[0..2]);
    for j in 0..16 {
        let q = b[2 + j];
        y[j] = d * f32::from(KVALUES_IQ4NL[usize::from(q & 0x0f)]);
        y[j + 16] = d * f32::from(KVALUES_IQ4NL[usize::from(q >> 4)]);
    }
}

/// IQ4_XS: 256 values to `d`, `scales_h`, `scales_l[4]`, `qs[128]`.
#[inline]
pub(crate) fn quantize_iq4_xs(x: &[f32], out: &mut [u8]) {
    quantize_iq4_xs_with(x, None, out);
}

/// IQ4_XS with optional importance weights (ggml's `quantize_iq4_xs`).
/// Returns the inverse sub-block scales the codes were chosen with (`1 /
/// (d l_ib)` with `d` before rounding to half, 0 where that is 0).
pub(super) fn quantize_iq4_xs_with(x: &[f32], qw: Option<&[f32]>, out: &mut [u8]) -> [f32; 8] {
    let mut w = [0f32; 256];
    let weights = qw.map(|q| {
        iq4_weights(x, q, &mut w);
        &w[..]
    });
    let mut l = [0u8; 256];
    let mut scales = [0f32; 8];
    let mut max_scale = 0.0f32;
    let mut amax_scale = 0.0f32;
    for ib in 0..8 {
        let d = iq4_block_scale(
            &x[32 * ib..32 * ib + 32],
            &mut l[32 * ib..32 * ib + 32],
            weights.map(|ws| &ws[32 * ib..32 * ib + 32]),
        );
        scales[ib] = d;
        if d.abs() > amax_scale {
            amax_scale = d.abs();
            max_scale = d;
        }
    }
    let d = -max_scale / 32.0;
    out[0..2].copy_from_slice(&f32_to_f16(d));
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut scales_h = 0u16;
    let mut scales_l = [0u8; 4];
    let mut idls = [0f32; 8];
    for ib in 0..8 {
        let li = nearest_int(id * scales[ib]).clamp(-32, 31);
        let dl = d * li as f32;
        let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
        idls[ib] = idl;
        for j in 0..32 {
            l[32 * ib + j] = best_index_iq4(idl * x[32 * ib + j]);
        }
        let lu = (li + 32) as u8;
        let (l_l, l_h) = (lu & 0x0f, lu >> 4);
        if ib.is_multiple_of(2) {
            scales_l[ib / 2] = l_l;
        } else {
            scales_l[ib / 2] |= l_l << 4;
        }
        scales_h |= u16::from(l_h) << (2 * ib);
    }
    out[2..4].copy_from_slice(&scales_h.to_le_bytes());
    out[4..8].copy_from_slice(&scales_l);
    pack_iq4(&l, &mut out[8..136]);
    idls
}

/// IQ4_XS block to 256 values.
#[inline]
pub(crate) fn dequantize_iq4_xs(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(&b[0..2]);
    let scales_h = u16::from_le_bytes([b[2], b[3]]);
    for ib in 0..8 {
        let lo = (b[4 + ib / 2] >> (4 * (ib % 2))) & 0x0f;
        let hi = ((scales_h >> (2 * ib)) & 3) as u8;
        let ls = i32::from(lo | (hi << 4));
        let dl = d * (ls - 32) as f32;
        let qs = &b[8 + 16 * ib..8 + 16 * ib + 16];
        for j in 0..16 {
            y[32 * ib + j] = dl * f32::from(KVALUES_IQ4NL[usize::from(qs[j] & 0x0f)]);
            y[32 * ib + j + 16] = dl * f32::from(KVALUES_IQ4NL[usize::from(qs[j] >> 4)]);
        }
    }
}
