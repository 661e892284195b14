//! Importance-weighted ggml quantizers: the `quant_weights != NULL` path of
//! ggml's `quantize_q2_K` .. `quantize_q6_K`, `quantize_q4_0` ..
//! `quantize_q5_1`, `quantize_iq4_nl` and `quantize_iq4_xs` (llama.cpp's
//! imatrix quantization), byte for byte.
//!
//! # Objective
//!
//! Each block's parameters minimize a weighted squared error
//! `sum_j w_j (x_j - x'_j)^2` instead of the unweighted heuristics of the
//! reference path. With an importance `q_j >= 0` per input column (llama.cpp's
//! imatrix: the mean of `x_j^2` over calibration tokens, here `diag(H)_j /
//! count` from [`shrink_core::LayerStats`]), ggml uses
//!
//! ```text
//! w_j = q_j * sqrt(sigma2 + x_j^2)
//! ```
//!
//! with `sigma2 = (1/n) sum x^2` over the whole row (Q4_0, Q4_1, Q5_0, Q5_1)
//! or over the 256-value super-block (Q2_K), `sigma2 = (2/n) sum x^2` over the
//! super-block (Q3_K, Q4_K, Q5_K, IQ4_XS) or the 32-value block (IQ4_NL), and
//! `w_j = q_j` unchanged for Q6_K. The searches:
//!
//! * `make_qx_quants(.., w)` (Q3_K sub-blocks, Q3_K super-block scale over the
//!   sub-block weight sums, Q4_0, Q5_0, Q6_K): symmetric codes, least-squares
//!   scale `sum w x l / sum w l^2`, 19 trial inverse scales.
//! * `make_qkx3_quants(n, nmax, x, w, rmin = -0.9, rdelta = 0.05, nstep = 36)`
//!   (Q2_K, Q4_K, Q5_K sub-blocks, Q4_1, Q5_1): asymmetric `x ~ scale l + min`,
//!   `min <= 0`, the weighted least-squares refit of 37 trial grids, keeping
//!   the least weighted squared error.
//! * `make_qp_quants(n, nmax, x, sw)` (the 4-bit / 6-bit super-block scales
//!   and mins of Q2_K, Q4_K, Q5_K, weighted by the sub-blocks' weight sums):
//!   non-negative codes, 9 trial scales, then up to five passes of
//!   coordinate descent on single codes.
//! * IQ4_NL / IQ4_XS: the reference search with the weights above.
//!
//! After the block parameters are stored (rounded to half), the K-quants
//! re-quantize every value to the nearest code as the reference path does;
//! the legacy types keep the codes of the search.
//!
//! # Source
//!
//! ggml-org/ggml `src/ggml-quants.c` (MIT licence): `make_qx_quants`,
//! `make_qkx3_quants`, `make_qp_quants`, `quantize_row_q*_K_impl`,
//! `quantize_row_q4_0_impl` .. `quantize_row_q5_1_impl`,
//! `quantize_row_iq4_nl_impl`. Read for the math and re-written here; the C
//! operation order is kept (separate multiplies and adds, left-to-right
//! products) so the bytes equal ggml's built without FMA contraction, checked
//! against vectors from ggml's C code in `tests/data/gguf_imatrix`.
//!
//! # Uniform importance
//!
//! ggml's weighted path with all-ones `quant_weights` is **not** its
//! reference path: the weights become `sqrt(sigma2 + x^2)` instead of the
//! reference's `x^2` or `rms + |x|`, and the K-quants use `make_qkx3_quants`
//! and `make_qp_quants` instead of `make_qkx2_quants` and plain rounding of
//! the scales. So [`quantize_weighted`] with all-ones importance equals ggml's
//! `quantize_*(.., quant_weights = ones)` (tested), not [`super::quantize`];
//! only a positive rescaling of the importance leaves the bytes unchanged up
//! to float rounding.

// Index loops mirror ggml's block layouts (`16 j + l`, `32 j + ii`...).
#![allow(clippy::needless_range_loop)]

use shrink_core::{Error, Result};

use super::kquants::{
    make_qx_quants, pack_2bit, pack_q4_k, pack_q5_k, quantize_iq4_nl_with, quantize_iq4_xs_with,
    quantize_q6_k_with, requant_k_asym, requant_pack_q3_k,
};
use super::{GgufType, f16_to_f32, f32_to_f16, nearest_int};

/// ggml's `GROUP_MAX_EPS`.
const GROUP_MAX_EPS: f32 = 1e-15;

/// `make_qkx3_quants` with weights: returns `(scale, the_min)` (`the_min =
/// -min >= 0`) and writes codes `0..=nmax` to `ls`.
#[allow(clippy::too_many_arguments)]
fn make_qkx3_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    ls: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max <= min {
        ls[..n].fill(0);
        return (0.0, -min);
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        ls[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best += weights[i] * (diff * diff);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmaxf) / (max - min);
        let mut sum_l = 0.0f32;
        let mut sum_l2 = 0.0f32;
        let mut sum_xl = 0.0f32;
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur = 0.0f32;
            for i in 0..n {
                let diff = this_scale * f32::from(laux[i]) + this_min - x[i];
                cur += weights[i] * (diff * diff);
            }
            if cur < best {
                ls[..n].copy_from_slice(&laux[..n]);
                best = cur;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// `make_qp_quants`: non-negative codes `l <= nmax` (stored as C's
/// `uint8_t`, wrapping) for the values `x` with weights `qw`; returns the
/// scale.
fn make_qp_quants(nmax: i32, x: &[f32], ls: &mut [u8], qw: &[f32]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    for &v in x {
        max = if max > v { max } else { v };
    }
    if max < GROUP_MAX_EPS {
        ls[..n].fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / max;
    for i in 0..n {
        ls[i] = nearest_int(iscale * x[i]) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0f32;
    for i in 0..n {
        let diff = x[i] - scale * f32::from(ls[i]);
        best_mse += qw[i] * diff * diff;
    }
    for is in -4i32..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1f32 * is as f32 + nmaxf) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0f32;
        for i in 0..n {
            let l = nearest_int(iscale_is * x[i]).min(nmax);
            let diff = x[i] - scale_is * l as f32;
            mse += qw[i] * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).min(nmax);
        ls[i] = l as u8;
        let w = qw[i];
        let lf = l as f32;
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = qw[i];
            let li = f32::from(ls[i]);
            let mut slx = sumlx - w * x[i] * li;
            let mut sl2 = suml2 - w * li * li;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(x[i] * sl2 / slx).min(nmax);
                if new_l != i32::from(ls[i]) {
                    let nl = new_l as f32;
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        ls[i] = new_l as u8;
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
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// `sum x^2` in order.
fn sum_sq(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s
}

/// `w_j = qw_j * sqrt(sigma2 + x_j^2)`.
fn fill_weights(x: &[f32], qw: &[f32], sigma2: f32, out: &mut [f32]) {
    for ((o, &q), &v) in out.iter_mut().zip(qw).zip(x) {
        *o = q * (sigma2 + v * v).sqrt();
    }
}

/// Weighted Q2_K (`quantize_row_q2_K_impl`).
fn q2_k(x: &[f32], qw: &[f32], out: &mut [u8]) {
    let mut l = [0u8; 256];
    let mut laux = [0u8; 16];
    let mut mins = [0f32; 16];
    let mut scales = [0f32; 16];
    let mut sw = [0f32; 16];
    let mut weight = [0f32; 16];
    let mut ls = [0u8; 16];
    let mut lm = [0u8; 16];
    let sigma2 = sum_sq(x) / 256.0;
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        fill_weights(xs, &qw[16 * j..16 * j + 16], sigma2, &mut weight);
        for &w in &weight {
            sw[j] += w;
        }
        let (s, m) = make_qkx3_quants(
            3,
            xs,
            &weight,
            &mut l[16 * j..16 * j + 16],
            &mut laux,
            -0.9,
            0.05,
            36,
        );
        scales[j] = s;
        mins[j] = m;
    }
    let dm = make_qp_quants(15, &scales, &mut ls, &sw);
    let mm = make_qp_quants(15, &mins, &mut lm, &sw);
    let (sc, rest) = out.split_at_mut(16);
    let (qs, dd) = rest.split_at_mut(64);
    dd[0..2].copy_from_slice(&f32_to_f16(dm));
    dd[2..4].copy_from_slice(&f32_to_f16(mm));
    let dm = f16_to_f32(&dd[0..2]);
    let mm = f16_to_f32(&dd[2..4]);
    for j in 0..16 {
        sc[j] = ls[j] | (lm[j] << 4);
    }
    for j in 0..16 {
        let d = dm * f32::from(sc[j] & 0x0f);
        if d == 0.0 {
            continue;
        }
        let m = mm * f32::from(sc[j] >> 4);
        for ii in 0..16 {
            let v = nearest_int((x[16 * j + ii] + m) / d).clamp(0, 3);
            l[16 * j + ii] = v as u8;
        }
    }
    pack_2bit(&l, qs);
}

/// Weighted Q3_K (`quantize_row_q3_K_impl`).
fn q3_k(x: &[f32], qw: &[f32], out: &mut [u8]) {
    let mut l = [0i8; 256];
    let mut scales = [0f32; 16];
    let mut weight = [0f32; 16];
    let mut sw = [0f32; 16];
    let mut ls = [0i8; 16];
    let sigma2 = 2.0 * sum_sq(x) / 256.0;
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        fill_weights(xs, &qw[16 * j..16 * j + 16], sigma2, &mut weight);
        let mut sumw = 0.0f32;
        for &w in &weight {
            sumw += w;
        }
        sw[j] = sumw;
        scales[j] = make_qx_quants(4, xs, &mut l[16 * j..16 * j + 16], Some(&weight));
    }
    let d_block = make_qx_quants(32, &scales, &mut ls, Some(&sw));
    {
        let (sc, dd) = out[96..110].split_at_mut(12);
        sc.fill(0);
        for j in 0..16 {
            let v = ls[j] as u8;
            if j < 8 {
                sc[j] = v & 0x0f;
            } else {
                sc[j - 8] |= (v & 0x0f) << 4;
            }
            sc[j % 4 + 8] |= (v >> 4) << (2 * (j / 4));
        }
        dd.copy_from_slice(&f32_to_f16(d_block));
    }
    requant_pack_q3_k(x, &mut l, out);
}

/// Weighted Q4_K / Q5_K (`quantize_row_q4_K_impl`, `quantize_row_q5_K_impl`):
/// writes `d`, `dmin`, `scales[12]` into `head` and returns the codes.
fn k_asym(x: &[f32], qw: &[f32], head: &mut [u8], nmax: i32, clamp63: bool) -> [u8; 256] {
    let mut l = [0u8; 256];
    let mut laux = [0u8; 32];
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    let mut weights = [0f32; 32];
    let mut sw = [0f32; 8];
    let mut mins = [0f32; 8];
    let mut scales = [0f32; 8];
    let sigma2 = 2.0 * sum_sq(x) / 256.0;
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        fill_weights(xs, &qw[32 * j..32 * j + 32], sigma2, &mut weights);
        let mut sumw = 0.0f32;
        for &w in &weights {
            sumw += w;
        }
        sw[j] = sumw;
        let (s, m) = make_qkx3_quants(
            nmax,
            xs,
            &weights,
            &mut l[32 * j..32 * j + 32],
            &mut laux,
            -0.9,
            0.05,
            36,
        );
        scales[j] = s;
        mins[j] = m;
    }
    let d_block = make_qp_quants(63, &scales, &mut ls, &sw);
    let m_block = make_qp_quants(63, &mins, &mut lm, &sw);
    let sc = &mut head[4..16];
    sc.fill(0);
    for j in 0..8 {
        let (mut a, mut b) = (ls[j], lm[j]);
        if clamp63 {
            a = a.min(63);
            b = b.min(63);
        }
        if j < 4 {
            sc[j] = a;
            sc[j + 4] = b;
        } else {
            sc[j + 4] = (a & 0x0f) | ((b & 0x0f) << 4);
            sc[j - 4] |= (a >> 4) << 6;
            sc[j] |= (b >> 4) << 6;
        }
    }
    head[0..2].copy_from_slice(&f32_to_f16(d_block));
    head[2..4].copy_from_slice(&f32_to_f16(m_block));
    requant_k_asym(x, head, nmax, &mut l);
    l
}

fn q4_k(x: &[f32], qw: &[f32], out: &mut [u8]) {
    let (head, qs) = out.split_at_mut(16);
    let l = k_asym(x, qw, head, 15, false);
    pack_q4_k(&l, qs);
}

fn q5_k(x: &[f32], qw: &[f32], out: &mut [u8]) {
    let (head, rest) = out.split_at_mut(16);
    let l = k_asym(x, qw, head, 31, true);
    pack_q5_k(&l, rest);
}

/// Packs 32 codes (5 bits) of a Q5_0 / Q5_1 block into `qh` (LE u32) and `qs[16]`.
fn pack_q5(l: &[u8], qh_out: &mut [u8], qs: &mut [u8]) {
    let mut qh = 0u32;
    for j in 0..16 {
        let (a, b) = (l[j], l[j + 16]);
        qs[j] = (a & 0x0f) | ((b & 0x0f) << 4);
        qh |= u32::from((a & 0x10) >> 4) << j;
        qh |= u32::from((b & 0x10) >> 4) << (j + 16);
    }
    qh_out.copy_from_slice(&qh.to_le_bytes());
}

/// Weighted Q4_0 / Q5_0 (`quantize_row_q4_0_impl`, `_q5_0_impl`): the codes
/// and scale of `make_qx_quants(32, nmax, x, w)`.
fn legacy_sym(x: &[f32], qw: &[f32], sigma2: f32, nmax: i32, out: &mut [u8]) {
    let mut weight = [0f32; 32];
    let mut l = [0i8; 32];
    fill_weights(x, qw, sigma2, &mut weight);
    let d = make_qx_quants(nmax, x, &mut l, Some(&weight));
    out[0..2].copy_from_slice(&f32_to_f16(d));
    let lu: [u8; 32] = l.map(|v| v as u8);
    if nmax == 8 {
        for j in 0..16 {
            out[2 + j] = lu[j] | (lu[j + 16] << 4);
        }
    } else {
        let (qh, qs) = out[2..22].split_at_mut(4);
        pack_q5(&lu, qh, qs);
    }
}

/// Weighted Q4_1 / Q5_1 (`quantize_row_q4_1_impl`, `_q5_1_impl`): the codes,
/// scale and min of `make_qkx3_quants(32, nmax, x, w)`.
fn legacy_asym(x: &[f32], qw: &[f32], sigma2: f32, nmax: i32, out: &mut [u8]) {
    let mut weight = [0f32; 32];
    let mut l = [0u8; 32];
    let mut laux = [0u8; 32];
    fill_weights(x, qw, sigma2, &mut weight);
    let (d, the_min) = make_qkx3_quants(nmax, x, &weight, &mut l, &mut laux, -0.9, 0.05, 36);
    out[0..2].copy_from_slice(&f32_to_f16(d));
    out[2..4].copy_from_slice(&f32_to_f16(-the_min));
    if nmax == 15 {
        for j in 0..16 {
            out[4 + j] = l[j] | (l[j + 16] << 4);
        }
    } else {
        let (qh, qs) = out[4..24].split_at_mut(4);
        pack_q5(&l, qh, qs);
    }
}

impl GgufType {
    /// Whether ggml's quantizer of this type reads importance weights
    /// (`quant_weights`): Q4_0, Q4_1, Q5_0, Q5_1, Q2_K .. Q6_K, IQ4_NL and
    /// IQ4_XS. (Q8_0, Q8_K, MXFP4, TQ1_0, TQ2_0, F16 and BF16 ignore them.)
    pub fn takes_importance(self) -> bool {
        matches!(
            self,
            GgufType::Q4_0
                | GgufType::Q4_1
                | GgufType::Q5_0
                | GgufType::Q5_1
                | GgufType::Q2_K
                | GgufType::Q3_K
                | GgufType::Q4_K
                | GgufType::Q5_K
                | GgufType::Q6_K
                | GgufType::IQ4_NL
                | GgufType::IQ4_XS
        )
    }
}

/// Quantizes rows of `row_len` values (`x` holds whole rows back to back)
/// to `t`'s bytes with importance `importance` (one non-negative value per
/// column, the same for every row), exactly as ggml's `quantize_<type>(x,
/// .., nrow, row_len, quant_weights = importance)` does.
///
/// Errors: [`Error::InvalidArgument`] when `t` takes no importance (see
/// [`GgufType::takes_importance`]) or an importance value is negative or
/// not finite; [`Error::Shape`] when `row_len` is not a positive multiple of
/// the block size, `x` is not whole rows, or `importance.len() != row_len`;
/// [`Error::NonFinite`] for NaN or infinite values in `x`.
pub fn quantize_weighted(
    t: GgufType,
    x: &[f32],
    row_len: usize,
    importance: &[f32],
) -> Result<Vec<u8>> {
    if !t.takes_importance() {
        return Err(Error::invalid(
            "importance",
            format!("ggml's {} quantizer takes no importance weights", t.name()),
        ));
    }
    super::compress::check_row_length(t, row_len)?;
    if !x.len().is_multiple_of(row_len) {
        return Err(Error::shape(
            format!("{} input (whole rows of {row_len})", t.name()),
            format!("a multiple of {row_len} values"),
            x.len(),
        ));
    }
    if importance.len() != row_len {
        return Err(Error::shape("importance", row_len, importance.len()));
    }
    if let Some((j, v)) = importance
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite() || **v < 0.0)
    {
        return Err(Error::invalid(
            "importance",
            format!("column {j} is {v}; importance must be finite and non-negative"),
        ));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: format!("{} quantization input", t.name()),
            position: format!("index {i}"),
            value: x[i].to_string(),
        });
    }
    let (bs, ts) = (t.block_size(), t.type_size());
    let mut out = vec![0u8; t.byte_len(x.len())?];
    let row_bytes = row_len / bs * ts;
    for (xr, or) in x.chunks_exact(row_len).zip(out.chunks_exact_mut(row_bytes)) {
        // Legacy types: sigma2 over the whole row.
        let sigma2 = sum_sq(xr) / row_len as f32;
        for ((xb, qb), ob) in xr
            .chunks_exact(bs)
            .zip(importance.chunks_exact(bs))
            .zip(or.chunks_exact_mut(ts))
        {
            match t {
                GgufType::Q4_0 => legacy_sym(xb, qb, sigma2, 8, ob),
                GgufType::Q5_0 => legacy_sym(xb, qb, sigma2, 16, ob),
                GgufType::Q4_1 => legacy_asym(xb, qb, sigma2, 15, ob),
                GgufType::Q5_1 => legacy_asym(xb, qb, sigma2, 31, ob),
                GgufType::Q2_K => q2_k(xb, qb, ob),
                GgufType::Q3_K => q3_k(xb, qb, ob),
                GgufType::Q4_K => q4_k(xb, qb, ob),
                GgufType::Q5_K => q5_k(xb, qb, ob),
                GgufType::Q6_K => quantize_q6_k_with(xb, Some(qb), ob),
                GgufType::IQ4_NL => {
                    quantize_iq4_nl_with(xb, Some(qb), ob);
                }
                GgufType::IQ4_XS => {
                    quantize_iq4_xs_with(xb, Some(qb), ob);
                }
                _ => unreachable!("checked by takes_importance"),
            }
        }
    }
    Ok(out)
}
