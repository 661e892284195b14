//! AVX2 row kernels for the hot types whose block kernels the compiler
//! does not vectorize well: Q4_0 and Q8_0 quantize, Q2_K dequantize.
//!
//! Each function here is picked by a [`super::rows`] kernel only on its
//! AVX2 (+F16C) clone and gives the bytes / bits of the portable block
//! kernels in [`super::legacy`] and [`super::kquants`]: the same f32
//! operations in the same order (a multiply and an add stay two roundings,
//! never a fused multiply-add), and `min` / `max` reductions, which are
//! exact, in any order. The only `unsafe` blocks are the unaligned vector
//! loads and stores, each on a fixed-size array whose length covers it
//! (the crate denies `unsafe` elsewhere).

use std::arch::x86_64::*;

use super::legacy;

/// Eight f32 values from `x[at..at + 8]`.
#[target_feature(enable = "avx2,f16c")]
#[inline]
#[allow(unsafe_code)]
fn load8(x: &[f32], at: usize) -> __m256 {
    let v: &[f32; 8] = x[at..at + 8].try_into().expect("8 values");
    // SAFETY: `v` is 8 readable f32 (32 bytes); `loadu` takes any alignment.
    unsafe { _mm256_loadu_ps(v.as_ptr()) }
}

/// Stores eight f32 values to `y[at..at + 8]`.
#[target_feature(enable = "avx2,f16c")]
#[inline]
#[allow(unsafe_code)]
fn store8(y: &mut [f32], at: usize, v: __m256) {
    let y: &mut [f32; 8] = (&mut y[at..at + 8]).try_into().expect("8 values");
    // SAFETY: `y` is 8 writable f32 (32 bytes); `storeu` takes any alignment.
    unsafe { _mm256_storeu_ps(y.as_mut_ptr(), v) }
}

/// Sixteen bytes from `b[at..at + 16]`.
#[target_feature(enable = "avx2,f16c")]
#[inline]
#[allow(unsafe_code)]
fn load16(b: &[u8], at: usize) -> __m128i {
    let v: &[u8; 16] = b[at..at + 16].try_into().expect("16 bytes");
    // SAFETY: `v` is 16 readable bytes; `loadu` takes any alignment.
    unsafe { _mm_loadu_si128(v.as_ptr().cast()) }
}

/// Stores sixteen bytes to `b[at..at + 16]`.
#[target_feature(enable = "avx2,f16c")]
#[inline]
#[allow(unsafe_code)]
fn store16(b: &mut [u8], at: usize, v: __m128i) {
    let b: &mut [u8; 16] = (&mut b[at..at + 16]).try_into().expect("16 bytes");
    // SAFETY: `b` is 16 writable bytes; `storeu` takes any alignment.
    unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), v) }
}

/// The eight lanes of `v`.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn lanes(v: __m256) -> [f32; 8] {
    let mut a = [0f32; 8];
    store8(&mut a, 0, v);
    a
}

/// Lane `k` of the result is the reduction (`op`: an exact `min` or `max`)
/// of the eight lanes of `v[k]`: a transposing tree of 7 operations for 8
/// vectors instead of three shuffles and three operations per vector.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn reduce8(v: &[__m256; 8], op: impl Fn(__m256, __m256) -> __m256) -> __m256 {
    // Lanes (2i, 2i+1) of each 128-bit half now hold partials of v[2p],
    // v[2p+1].
    let pair = |a: __m256, b: __m256| op(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
    let p01 = pair(v[0], v[1]);
    let p23 = pair(v[2], v[3]);
    let p45 = pair(v[4], v[5]);
    let p67 = pair(v[6], v[7]);
    // 64-bit interleave: each 128-bit half holds partials of v[0..4] (v[4..8]).
    let quad = |a: __m256, b: __m256| {
        let (a, b) = (_mm256_castps_pd(a), _mm256_castps_pd(b));
        op(
            _mm256_castpd_ps(_mm256_unpacklo_pd(a, b)),
            _mm256_castpd_ps(_mm256_unpackhi_pd(a, b)),
        )
    };
    let q0 = quad(p01, p23);
    let q1 = quad(p45, p67);
    // Lane k of the low halves and of the high halves.
    op(
        _mm256_permute2f128_ps::<0x20>(q0, q1),
        _mm256_permute2f128_ps::<0x31>(q0, q1),
    )
}

/// Q4_0 blocks (32 values to 18 bytes) for whole rows; eight blocks share
/// their reductions, scale division and half conversion in the lanes of
/// one vector. Same bytes as [`legacy::quantize_q4_0`], which takes any
/// block whose scale could be subnormal and any `+a / -a` tie.
#[target_feature(enable = "avx2,f16c")]
pub(super) fn quantize_q4_0_rows(x: &[f32], out: &mut [u8]) {
    let mut xs = x.chunks_exact(256);
    let mut os = out.chunks_exact_mut(8 * 18);
    for (xg, og) in (&mut xs).zip(&mut os) {
        quantize_q4_0_x8(xg, og);
    }
    for (xb, ob) in xs
        .remainder()
        .chunks_exact(32)
        .zip(os.into_remainder().chunks_exact_mut(18))
    {
        legacy::quantize_q4_0(xb, ob);
    }
}

/// Eight Q4_0 blocks: `x` holds 256 values, `out` 144 bytes.
#[target_feature(enable = "avx2,f16c")]
fn quantize_q4_0_x8(x: &[f32], out: &mut [u8]) {
    let zero = _mm256_setzero_ps();
    let mut hi = [zero; 8];
    let mut lo = [zero; 8];
    for b in 0..8 {
        let v0 = load8(x, 32 * b);
        let v1 = load8(x, 32 * b + 8);
        let v2 = load8(x, 32 * b + 16);
        let v3 = load8(x, 32 * b + 24);
        hi[b] = _mm256_max_ps(_mm256_max_ps(v0, v1), _mm256_max_ps(v2, v3));
        lo[b] = _mm256_min_ps(_mm256_min_ps(v0, v1), _mm256_min_ps(v2, v3));
    }
    // Lane b: block b's largest and smallest value.
    let hi = reduce8(&hi, |a, b| _mm256_max_ps(a, b));
    let lo = reduce8(&lo, |a, b| _mm256_min_ps(a, b));
    // The signed value of largest magnitude: `hi` when `hi > -lo` (then
    // `hi > 0`), `lo` when `hi < -lo` (then `lo < 0`); on a tie it is 0
    // when `hi == 0` and otherwise the first of `+a`, `-a` in the block
    // (the scalar kernel's rule, taken below).
    let neg_lo = _mm256_sub_ps(zero, lo);
    let take_hi = _mm256_cmp_ps::<_CMP_GT_OQ>(hi, neg_lo);
    let tie = _mm256_cmp_ps::<_CMP_EQ_OQ>(hi, neg_lo);
    let max = _mm256_andnot_ps(tie, _mm256_blendv_ps(lo, hi, take_hi));
    let d = _mm256_div_ps(max, _mm256_set1_ps(-8.0));
    let nonzero = _mm256_cmp_ps::<_CMP_NEQ_OQ>(d, zero);
    let id = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0), d), nonzero);
    let dh = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(d);
    let mut dh16 = [0u8; 16];
    store16(&mut dh16, 0, dh);
    // Blocks for the scalar kernel: a `+a / -a` tie with `a != 0`, or a
    // largest magnitude below `TINY` (a possibly subnormal scale).
    let hard_tie = _mm256_and_ps(tie, _mm256_cmp_ps::<_CMP_NEQ_OQ>(hi, zero));
    let abs_max = _mm256_max_ps(hi, neg_lo);
    let tiny = _mm256_cmp_ps::<_CMP_LT_OQ>(abs_max, _mm256_set1_ps(legacy::TINY));
    let scalar = _mm256_movemask_ps(_mm256_or_ps(hard_tie, tiny));
    let id = lanes(id);
    let half = _mm256_set1_ps(8.5);
    let fifteen = _mm256_set1_epi8(15);
    // Bytes of the low 64 bits of each 128-bit half (see below) in `j` order.
    let order = _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15);
    for b in 0..8 {
        let o = &mut out[18 * b..18 * b + 18];
        if scalar & (1 << b) != 0 {
            legacy::quantize_q4_0(&x[32 * b..32 * b + 32], o);
            continue;
        }
        o[0] = dh16[2 * b];
        o[1] = dh16[2 * b + 1];
        let idv = _mm256_set1_ps(id[b]);
        // `(int8_t)(x*id + 8.5f)`: the sum lies in (0, 17), so truncation
        // to i32 is C's conversion.
        let q = |k: usize| {
            let v = _mm256_mul_ps(load8(x, 32 * b + 8 * k), idv);
            _mm256_cvttps_epi32(_mm256_add_ps(v, half))
        };
        let (q0, q1, q2, q3) = (q(0), q(1), q(2), q(3));
        // Bytes per 128-bit half h: q0, q1, q2, q3 lanes 4h..4h+4; values
        // j < 16 in the low 64 bits, j + 16 at the same place in the high.
        let p = _mm256_packus_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
        let p = _mm256_min_epu8(p, fifteen);
        let c = _mm256_or_si256(p, _mm256_slli_epi16::<4>(_mm256_srli_si256::<8>(p)));
        // Low 64 bits of both halves: j = 0..4, 8..12, 4..8, 12..16.
        let c = _mm256_permute4x64_epi64::<0b00_00_10_00>(c);
        let c = _mm_shuffle_epi8(_mm256_castsi256_si128(c), order);
        store16(o, 2, c);
    }
}

/// Q8_0 blocks (32 values to 34 bytes) for whole rows, eight blocks at a
/// time like [`quantize_q4_0_rows`]. Same bytes as
/// [`legacy::quantize_q8_0`], which takes any block whose largest magnitude
/// is below `TINY`.
#[target_feature(enable = "avx2,f16c")]
pub(super) fn quantize_q8_0_rows(x: &[f32], out: &mut [u8]) {
    let mut xs = x.chunks_exact(256);
    let mut os = out.chunks_exact_mut(8 * 34);
    for (xg, og) in (&mut xs).zip(&mut os) {
        quantize_q8_0_x8(xg, og);
    }
    for (xb, ob) in xs
        .remainder()
        .chunks_exact(32)
        .zip(os.into_remainder().chunks_exact_mut(34))
    {
        legacy::quantize_q8_0(xb, ob);
    }
}

/// C's `roundf` (halves away from zero) of each lane: the nearest-even
/// rounding, except where the fraction is exactly one half (`v - trunc(v)`
/// is exact), which goes to `trunc(v) + sign(v)`.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn round_half_away(v: __m256) -> __m256 {
    let even = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
    let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
    let sign = _mm256_set1_ps(-0.0);
    let frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    let tie = _mm256_cmp_ps::<_CMP_EQ_OQ>(frac, _mm256_set1_ps(0.5));
    let away = _mm256_add_ps(t, _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0)));
    _mm256_blendv_ps(even, away, tie)
}

/// Eight Q8_0 blocks: `x` holds 256 values, `out` 272 bytes.
#[target_feature(enable = "avx2,f16c")]
fn quantize_q8_0_x8(x: &[f32], out: &mut [u8]) {
    let zero = _mm256_setzero_ps();
    let sign = _mm256_set1_ps(-0.0);
    let mut m = [zero; 8];
    for (b, mb) in m.iter_mut().enumerate() {
        let a = |k: usize| _mm256_andnot_ps(sign, load8(x, 32 * b + 8 * k));
        *mb = _mm256_max_ps(_mm256_max_ps(a(0), a(1)), _mm256_max_ps(a(2), a(3)));
    }
    // Lane b: block b's largest magnitude.
    let amax = reduce8(&m, |a, b| _mm256_max_ps(a, b));
    let d = _mm256_div_ps(amax, _mm256_set1_ps(127.0));
    let nonzero = _mm256_cmp_ps::<_CMP_NEQ_OQ>(d, zero);
    let id = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0), d), nonzero);
    let mut dh16 = [0u8; 16];
    store16(
        &mut dh16,
        0,
        _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(d),
    );
    let tiny = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(
        amax,
        _mm256_set1_ps(legacy::TINY),
    ));
    let id = lanes(id);
    // After the two packs, 32-bit groups are q0 q1 q2 q3 (lanes 0..4) then
    // q0 q1 q2 q3 (lanes 4..8); this puts them back in value order.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for b in 0..8 {
        let o = &mut out[34 * b..34 * b + 34];
        if tiny & (1 << b) != 0 {
            legacy::quantize_q8_0(&x[32 * b..32 * b + 32], o);
            continue;
        }
        o[0] = dh16[2 * b];
        o[1] = dh16[2 * b + 1];
        let idv = _mm256_set1_ps(id[b]);
        // `roundf(x*id)` lies in [-127, 127]: converted exactly.
        let q = |k: usize| {
            let v = _mm256_mul_ps(load8(x, 32 * b + 8 * k), idv);
            _mm256_cvtps_epi32(round_half_away(v))
        };
        let p = _mm256_packs_epi16(
            _mm256_packs_epi32(q(0), q(1)),
            _mm256_packs_epi32(q(2), q(3)),
        );
        let p = _mm256_permutevar8x32_epi32(p, order);
        store16(o, 2, _mm256_castsi256_si128(p));
        store16(o, 18, _mm256_extracti128_si256::<1>(p));
    }
}

/// Q2_K blocks (84 bytes to 256 values) for whole rows. Same bits as
/// [`super::kquants::dequantize_q2_k`]: `dl * q - ml` per value, `dl = d * (sc &
/// 15)` and `ml = dmin * (sc >> 4)` per 16 values.
#[target_feature(enable = "avx2,f16c")]
pub(super) fn dequantize_q2_k_rows(b: &[u8], y: &mut [f32]) {
    for (bb, yb) in b.chunks_exact(84).zip(y.chunks_exact_mut(256)) {
        dequantize_q2_k_block(bb, yb);
    }
}

#[target_feature(enable = "avx2,f16c")]
fn dequantize_q2_k_block(b: &[u8], y: &mut [f32]) {
    let d = super::f16_to_f32(&b[80..82]);
    let dmin = super::f16_to_f32(&b[82..84]);
    let three = _mm_set1_epi8(3);
    for h in 0..2 {
        let q = [load16(b, 16 + 32 * h), load16(b, 32 + 32 * h)];
        for s in 0..8 {
            // Sub-block `8 h + s`: bits `2 (s / 2)` of `q[s % 2]`.
            let sc = b[8 * h + s];
            let dl = _mm256_set1_ps(d * f32::from(sc & 0x0f));
            let ml = _mm256_set1_ps(dmin * f32::from(sc >> 4));
            let shift = _mm_cvtsi32_si128(2 * (s as i32 / 2));
            let c = _mm_and_si128(_mm_srl_epi16(q[s % 2], shift), three);
            let lo = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c));
            let hi = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128::<8>(c)));
            let at = 128 * h + 16 * s;
            store8(y, at, _mm256_sub_ps(_mm256_mul_ps(dl, lo), ml));
            store8(y, at + 8, _mm256_sub_ps(_mm256_mul_ps(dl, hi), ml));
        }
    }
}
