//! Per-block kernels for F16, BF16, the 32-value legacy types (Q4_0, Q4_1,
//! Q5_0, Q5_1, Q8_0), MXFP4 and the ternary TQ1_0 / TQ2_0.
//!
//! Each `quantize_*` takes one block of values and writes one block of bytes;
//! each `dequantize_*` does the reverse. Lengths are checked by the callers
//! in [`super`] ([`super::quantize`], [`super::dequantize`]); passing slices
//! of other lengths panics. The algorithms are ggml's `quantize_row_*_ref`
//! (`ggml-quants.c`), restated in `docs/algorithms.md` 9.2:
//!
//! - Q4_0 / Q5_0: `max` = signed value of largest magnitude, `d = max / -8`
//!   (`-16`), `id = d ? 1/d : 0`, `q = min(15, trunc(x*id + 8.5))`
//!   (`min(31, trunc(x*id + 16.5))`).
//! - Q4_1 / Q5_1: `d = (max - min) / 15` (`31`), `q = trunc((x - min)*id + 0.5)`
//!   (clamped to 15 for Q4_1), `m = min`.
//! - Q8_0: `d = amax / 127`, `q = roundf(x*id)` (ties away from zero).
//! - MXFP4: `e = floor(log2(amax)) - 2 + 127` (0 when `amax = 0`), scale
//!   `2^(e-128)` (half of the E8M0 value, since the code table holds doubled
//!   E2M1 values `0, 1, 2, 3, 4, 6, 8, 12` and negatives), each value takes
//!   the nearest code, the first on ties.
//! - TQ1_0 / TQ2_0: `d = amax`, trit `t = lroundf(x / d)` in {-1, 0, 1}.
//!   TQ2_0 stores `t + 1` in 2 bits (value `32 c + m` of each 128-value half
//!   goes to bits `2c` of byte `m`). TQ1_0 packs five trits per byte as
//!   `ceil(256 * sum 3^(4-n) (t_n + 1) / 243)`, so that a byte `b` gives back
//!   trit `n` as `((b * 3^n mod 256) * 3) >> 8`; the first 160 values fill 32
//!   bytes (trit `n` of byte `m` is value `m + 32 n`), the next 80 fill 16
//!   bytes, and the last 16 fill `qh[4]` with four trits each.

// Index loops mirror ggml's block layouts (`j`, `j + 16`, `m + 32 n`...).
#![allow(clippy::needless_range_loop)]

use super::{f16_to_f32, f32_to_f16, nearest_int};

/// The signed value of largest magnitude (the first one on ties).
#[inline]
pub(super) fn signed_absmax(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

#[inline]
pub(super) fn min_max(x: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// One F16 value.
#[inline]
pub(crate) fn quantize_f16(x: &[f32], out: &mut [u8]) {
    out.copy_from_slice(&f32_to_f16(x[0]));
}

/// One F16 value back to f32.
#[inline]
pub(crate) fn dequantize_f16(b: &[u8], y: &mut [f32]) {
    y[0] = f16_to_f32(b);
}

/// One BF16 value: round to nearest even on the upper 16 bits of the f32
/// (ggml's `ggml_compute_fp32_to_bf16`; NaN becomes a quiet NaN).
#[inline]
pub(crate) fn quantize_bf16(x: &[f32], out: &mut [u8]) {
    let u = x[0].to_bits();
    let h = if (u & 0x7fff_ffff) > 0x7f80_0000 {
        ((u >> 16) | 64) as u16
    } else {
        (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
    };
    out.copy_from_slice(&h.to_le_bytes());
}

/// One BF16 value back to f32 (exact).
#[inline]
pub(crate) fn dequantize_bf16(b: &[u8], y: &mut [f32]) {
    y[0] = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
}

/// Q4_0: 32 values to `d`, `qs[16]`.
#[inline(always)]
pub(crate) fn quantize_q4_0(x: &[f32], out: &mut [u8]) {
    let x: &[f32; 32] = x.try_into().expect("one Q4_0 block");
    let out: &mut [u8; 18] = out.try_into().expect("one Q4_0 block");
    let (lo, hi) = min_max32(x);
    // The signed value of largest magnitude is the largest or the smallest
    // value; only a tie `hi == -lo != 0` needs ggml's first-one rule.
    let max = if hi == -lo {
        if hi == 0.0 { 0.0 } else { signed_absmax(x) }
    } else if hi > -lo {
        hi
    } else {
        lo
    };
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out[0..2].copy_from_slice(&f32_to_f16(d));
    let mut q = [0u8; 32];
    if max.abs() >= TINY {
        // `(int8_t)(x*id + 8.5f)` with the sum in (0, 17): a truncation in
        // f32 and an exact integer conversion, both of which vectorize.
        for j in 0..32 {
            q[j] = nearest_int((x[j] * id + 8.5).trunc().min(15.0)) as u8;
        }
    } else {
        // A (sub)normal scale this small loses precision (and its inverse
        // may overflow): ggml's conversion as written, with C's cast.
        for j in 0..32 {
            q[j] = (c_int(x[j] * id + 8.5) as i8).min(15) as u8;
        }
    }
    for j in 0..16 {
        out[2 + j] = q[j] | (q[16 + j] << 4);
    }
}

/// Below this magnitude of a block's largest value, Q4_0 / Q8_0 take their
/// plain scalar path (whose scale may be subnormal, so `x * id` may leave
/// the code range); above it the vectorizing path gives the same bytes.
pub(super) const TINY: f32 = 1e-30;

/// Smallest and largest of 32 values in lanes of 8 (`min`/`max` are exact,
/// so the order does not matter).
#[inline(always)]
fn min_max32(x: &[f32; 32]) -> (f32, f32) {
    let mut lo = [0f32; 8];
    let mut hi = [0f32; 8];
    lo.copy_from_slice(&x[..8]);
    hi.copy_from_slice(&x[..8]);
    for c in x[8..].chunks_exact(8) {
        for k in 0..8 {
            lo[k] = if c[k] < lo[k] { c[k] } else { lo[k] };
            hi[k] = if c[k] > hi[k] { c[k] } else { hi[k] };
        }
    }
    let l = lo.iter().fold(lo[0], |a, &b| if b < a { b } else { a });
    let h = hi.iter().fold(hi[0], |a, &b| if b > a { b } else { a });
    (l, h)
}

/// Largest `|x|` of a 32-value block. `max` is exact, so lanes of 8 give
/// the value of ggml's sequential loop (and vectorize).
#[inline(always)]
pub(super) fn absmax32(x: &[f32; 32]) -> f32 {
    let mut m = [0f32; 8];
    for c in x.chunks_exact(8) {
        for k in 0..8 {
            let a = c[k].abs();
            m[k] = if a > m[k] { a } else { m[k] };
        }
    }
    m.iter().fold(0f32, |a, &b| if b > a { b } else { a })
}

/// Q4_0 block to 32 values.
#[inline(always)]
pub(crate) fn dequantize_q4_0(b: &[u8], y: &mut [f32]) {
    let b: &[u8; 18] = b.try_into().expect("one Q4_0 block");
    let y: &mut [f32; 32] = y.try_into().expect("one Q4_0 block");
    let d = f16_to_f32(&b[0..2]);
    let (lo, hi) = y.split_at_mut(16);
    for j in 0..16 {
        let q = b[2 + j];
        lo[j] = (i32::from(q & 0x0f) - 8) as f32 * d;
        hi[j] = (i32::from(q >> 4) - 8) as f32 * d;
    }
}

/// Q4_1: 32 values to `d`, `m`, `qs[16]`.
#[inline]
pub(crate) fn quantize_q4_1(x: &[f32], out: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out[0..2].copy_from_slice(&f32_to_f16(d));
    out[2..4].copy_from_slice(&f32_to_f16(min));
    for j in 0..16 {
        let x0 = (x[j] - min) * id;
        let x1 = (x[16 + j] - min) * id;
        let q0 = (c_int(x0 + 0.5) as i8).min(15) as u8;
        let q1 = (c_int(x1 + 0.5) as i8).min(15) as u8;
        out[4 + j] = q0 | (q1 << 4);
    }
}

/// Q4_1 block to 32 values.
#[inline]
pub(crate) fn dequantize_q4_1(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(&b[0..2]);
    let m = f16_to_f32(&b[2..4]);
    for j in 0..16 {
        let q = b[4 + j];
        y[j] = f32::from(q & 0x0f) * d + m;
        y[j + 16] = f32::from(q >> 4) * d + m;
    }
}

/// Q5_0: 32 values to `d`, `qh[4]`, `qs[16]`.
#[inline]
pub(crate) fn quantize_q5_0(x: &[f32], out: &mut [u8]) {
    let max = signed_absmax(x);
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out[0..2].copy_from_slice(&f32_to_f16(d));
    let mut qh = 0u32;
    for j in 0..16 {
        let x0 = x[j] * id;
        let x1 = x[16 + j] * id;
        let q0 = (c_int(x0 + 16.5) as i8).min(31) as u8;
        let q1 = (c_int(x1 + 16.5) as i8).min(31) as u8;
        out[6 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
        qh |= u32::from((q0 & 0x10) >> 4) << j;
        qh |= u32::from((q1 & 0x10) >> 4) << (j + 16);
    }
    out[2..6].copy_from_slice(&qh.to_le_bytes());
}

/// Q5_0 block to 32 values.
#[inline]
pub(crate) fn dequantize_q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(&b[0..2]);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for j in 0..16 {
        let q = b[6 + j];
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        y[j] = ((u32::from(q & 0x0f) | h0) as i32 - 16) as f32 * d;
        y[j + 16] = ((u32::from(q >> 4) | h1) as i32 - 16) as f32 * d;
    }
}

/// Q5_1: 32 values to `d`, `m`, `qh[4]`, `qs[16]`.
#[inline]
pub(crate) fn quantize_q5_1(x: &[f32], out: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out[0..2].copy_from_slice(&f32_to_f16(d));
    out[2..4].copy_from_slice(&f32_to_f16(min));
    let mut qh = 0u32;
    for j in 0..16 {
        let x0 = (x[j] - min) * id;
        let x1 = (x[16 + j] - min) * id;
        let q0 = c_int(x0 + 0.5) as u8;
        let q1 = c_int(x1 + 0.5) as u8;
        out[8 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
        qh |= u32::from((q0 & 0x10) >> 4) << j;
        qh |= u32::from((q1 & 0x10) >> 4) << (j + 16);
    }
    out[4..8].copy_from_slice(&qh.to_le_bytes());
}

/// Q5_1 block to 32 values.
#[inline]
pub(crate) fn dequantize_q5_1(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(&b[0..2]);
    let m = f16_to_f32(&b[2..4]);
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for j in 0..16 {
        let q = b[8 + j];
        let h0 = ((qh >> j) << 4) & 0x10;
        let h1 = (qh >> (j + 12)) & 0x10;
        y[j] = (u32::from(q & 0x0f) | h0) as f32 * d + m;
        y[j + 16] = (u32::from(q >> 4) | h1) as f32 * d + m;
    }
}

/// Q8_0: 32 values to `d`, `qs[32]`.
#[inline(always)]
pub(crate) fn quantize_q8_0(x: &[f32], out: &mut [u8]) {
    let x: &[f32; 32] = x.try_into().expect("one Q8_0 block");
    let out: &mut [u8; 34] = out.try_into().expect("one Q8_0 block");
    let amax = absmax32(x);
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out[0..2].copy_from_slice(&f32_to_f16(d));
    if amax >= TINY {
        // `roundf(x*id)` lies in [-127, 127]: `nearest_int` converts the
        // integral value exactly (and vectorizes, unlike a saturating `as`).
        for j in 0..32 {
            out[2 + j] = nearest_int((x[j] * id).round()) as i8 as u8;
        }
    } else {
        for j in 0..32 {
            out[2 + j] = c_int((x[j] * id).round()) as u8;
        }
    }
}

/// Q8_0 block to 32 values.
#[inline(always)]
pub(crate) fn dequantize_q8_0(b: &[u8], y: &mut [f32]) {
    let b: &[u8; 34] = b.try_into().expect("one Q8_0 block");
    let y: &mut [f32; 32] = y.try_into().expect("one Q8_0 block");
    let d = f16_to_f32(&b[0..2]);
    for j in 0..32 {
        y[j] = f32::from(b[2 + j] as i8) * d;
    }
}

/// Doubled E2M1 values indexed by the 4-bit FP4 code (ggml's `kvalues_fp4`).
pub(super) const KVALUES_FP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// Half the value of an E8M0 exponent byte: `2^(e - 128)`, as an f32 bit
/// pattern (subnormal for `e < 2`).
#[inline]
pub(super) fn e8m0_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        u32::from(e - 1) << 23
    };
    f32::from_bits(bits)
}

#[inline]
pub(super) fn best_index_fp4(x: f32, e: f32) -> u8 {
    let mut best = 0u8;
    let mut best_err = (f32::from(KVALUES_FP4[0]) * e - x).abs();
    for (i, &k) in KVALUES_FP4.iter().enumerate().skip(1) {
        let err = (f32::from(k) * e - x).abs();
        if err < best_err {
            best = i as u8;
            best_err = err;
        }
    }
    best
}

/// MXFP4: 32 values to `e`, `qs[16]`.
#[inline]
pub(crate) fn quantize_mxfp4(x: &[f32], out: &mut [u8]) {
    let amax = x
        .iter()
        .fold(0.0f32, |a, v| if a < v.abs() { v.abs() } else { a });
    let e = if amax > 0.0 {
        c_int(amax.log2().floor() - 2.0 + 127.0) as u8
    } else {
        0
    };
    let d = e8m0_half(e);
    out[0] = e;
    for j in 0..16 {
        let q0 = best_index_fp4(x[j], d);
        let q1 = best_index_fp4(x[16 + j], d);
        out[1 + j] = q0 | (q1 << 4);
    }
}

/// MXFP4 block to 32 values.
#[inline]
pub(crate) fn dequantize_mxfp4(b: &[u8], y: &mut [f32]) {
    let d = e8m0_half(b[0]);
    for j in 0..16 {
        let q = b[1 + j];
        y[j] = f32::from(KVALUES_FP4[usize::from(q & 0x0f)]) * d;
        y[j + 16] = f32::from(KVALUES_FP4[usize::from(q >> 4)]) * d;
    }
}

#[inline]
fn trit(x: f32, id: f32) -> u8 {
    // lroundf: ties away from zero; the result is -1, 0 or 1 for finite
    // scales. With an infinite inverse scale (a subnormal block maximum)
    // x86's lroundf gives i64::MIN, so the code's low byte is 1.
    let v = (x * id).round();
    let l = if v.is_finite() && v.abs() < 9.0e18 {
        v as i64
    } else {
        i64::MIN
    };
    l.wrapping_add(1) as u8
}

/// C's conversion of an `f32` to a narrow integer type as x86-64 compilers
/// emit it (and numpy's casts in gguf-py agree): truncate to `i32`
/// (`cvttss2si`), where NaN and out-of-range values give `i32::MIN`; the
/// caller keeps the low bits. In C these conversions are undefined for
/// out-of-range values; ggml reaches them when a block's largest magnitude
/// is so small that the inverse scale overflows to infinity, and the
/// reference bytes (its C build, gguf-py) then hold 0, not Rust's saturated
/// 127. In range this is exactly `v as i32`.
#[inline]
fn c_int(v: f32) -> i32 {
    if v.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        i32::MIN
    } else {
        v as i32
    }
}

#[inline]
fn ceil_243(q: u8) -> u8 {
    (u16::from(q) * 256).div_ceil(243) as u8
}

/// TQ1_0: 256 values to `qs[48]`, `qh[4]`, `d`.
#[inline]
pub(crate) fn quantize_tq1_0(x: &[f32], out: &mut [u8]) {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // 32 bytes of 5 trits from values 0..160.
    for m in 0..32 {
        let mut q = 0u8;
        for n in 0..5 {
            q = q.wrapping_mul(3).wrapping_add(trit(x[m + n * 32], id));
        }
        out[m] = ceil_243(q);
    }
    // 16 bytes of 5 trits from values 160..240.
    let xs = &x[160..240];
    for m in 0..16 {
        let mut q = 0u8;
        for n in 0..5 {
            q = q.wrapping_mul(3).wrapping_add(trit(xs[m + n * 16], id));
        }
        out[32 + m] = ceil_243(q);
    }
    // 4 bytes of 4 trits from values 240..256.
    let xs = &x[240..256];
    for j in 0..4 {
        let mut q = 0u8;
        for m in 0..4 {
            q = q.wrapping_mul(3).wrapping_add(trit(xs[j + m * 4], id));
        }
        q *= 3;
        out[48 + j] = ceil_243(q);
    }
    out[52..54].copy_from_slice(&f32_to_f16(d));
}

#[inline]
fn untrit(b: u8, pow3: u8, d: f32) -> f32 {
    let q = b.wrapping_mul(pow3);
    let xi = ((u16::from(q) * 3) >> 8) as i16;
    f32::from(xi - 1) * d
}

const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// TQ1_0 block to 256 values.
#[inline]
pub(crate) fn dequantize_tq1_0(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(&b[52..54]);
    let mut k = 0;
    for &p in &POW3 {
        for m in 0..32 {
            y[k] = untrit(b[m], p, d);
            k += 1;
        }
    }
    for &p in &POW3 {
        for m in 0..16 {
            y[k] = untrit(b[32 + m], p, d);
            k += 1;
        }
    }
    for &p in &POW3[..4] {
        for j in 0..4 {
            y[k] = untrit(b[48 + j], p, d);
            k += 1;
        }
    }
}

/// TQ2_0: 256 values to `qs[64]`, `d`.
#[inline]
pub(crate) fn quantize_tq2_0(x: &[f32], out: &mut [u8]) {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    for half in 0..2 {
        let xs = &x[128 * half..128 * half + 128];
        for m in 0..32 {
            let mut q = 0u8;
            for n in 0..4 {
                q += (trit(xs[m + n * 32], id) & 3) << (2 * n);
            }
            out[32 * half + m] = q;
        }
    }
    out[64..66].copy_from_slice(&f32_to_f16(d));
}

/// TQ2_0 block to 256 values.
#[inline]
pub(crate) fn dequantize_tq2_0(b: &[u8], y: &mut [f32]) {
    let d = f16_to_f32(&b[64..66]);
    let mut k = 0;
    for half in 0..2 {
        for l in 0..4 {
            for m in 0..32 {
                let q = (b[32 * half + m] >> (2 * l)) & 3;
                y[k] = f32::from(i16::from(q) - 1) * d;
                k += 1;
            }
        }
    }
}
