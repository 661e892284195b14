//! AVX2 row kernels for the hot types whose block kernels the compiler
//! does not vectorize well: Q4_0, Q8_0 and Q4_K quantize, Q2_K dequantize.
//!
//! Q4_K's search (`make_qkx2_quants` per sub-block of 32 values) runs the
//! eight sub-blocks of a super-block in the eight lanes of a vector and two
//! super-blocks interleaved (each trial's sums are sequential, so one
//! super-block alone waits on add latency); every lane does ggml's
//! operations in ggml's order.
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

use super::{kquants, legacy};

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

// ------------------------------------------------------------------ Q4_K

/// `nearest_int`'s magic constant `1.5 * 2^23`.
const MAGIC: f32 = 12_582_912.0;

/// Above this magnitude (exclusive bound) `iscale * (x - min)` may leave the
/// range where `nearest_int` equals rounding to nearest even.
const ROUND_SAFE: f32 = 2_097_152.0;

/// The eight rows `r[k]` (8 values each) transposed: lane `k` of result
/// `j` is `r[k][j]`.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xee>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xee>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xee>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xee>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}

/// `clamp(nearest_int(f), 0, nmax)` per lane, bit for bit with
/// [`super::nearest_int`] for any input (the magic-number trick in integer
/// lanes).
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn nearest_clamped(f: __m256, nmax: __m256i) -> __m256i {
    let v = _mm256_add_ps(f, _mm256_set1_ps(MAGIC));
    let bits = _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x007f_ffff));
    let l = _mm256_sub_epi32(bits, _mm256_set1_epi32(0x0040_0000));
    _mm256_min_epi32(_mm256_max_epi32(l, _mm256_setzero_si256()), nmax)
}

/// `clamp(nearest_int(iscale * (x - min)), 0, nmax)` as f32, exact for any
/// input.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn code_exact(iscale: __m256, min: __m256, x: __m256, nmax: __m256i) -> __m256 {
    let f = _mm256_mul_ps(iscale, _mm256_sub_ps(x, min));
    _mm256_cvtepi32_ps(nearest_clamped(f, nmax))
}

/// [`code_exact`] where `|iscale * (x - min)| < ROUND_SAFE` (there
/// `nearest_int` is rounding to nearest even): one rounding instead of the
/// integer round trip. `LO` / `HI` clamp at 0 / `nmax`; a caller leaves a
/// clamp out only where it cannot change a value, except that without
/// `LO` a code may be `-0` for `+0`, which the trial's products and sums
/// (all starting at `+0`) and its squared error cannot tell apart.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn code_fast<const LO: bool, const HI: bool>(
    iscale: __m256,
    min: __m256,
    x: __m256,
    nmax: __m256,
) -> __m256 {
    let f = _mm256_mul_ps(iscale, _mm256_sub_ps(x, min));
    let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(f);
    let r = if LO {
        _mm256_max_ps(r, _mm256_setzero_ps())
    } else {
        r
    };
    if HI { _mm256_min_ps(r, nmax) } else { r }
}

/// One super-block's eight sub-blocks of 32 values, transposed: lane `k` of
/// `x[i]` is value `i` of sub-block `k`, `w[i]` its weight.
struct SubBlocks {
    x: [__m256; 32],
    w: [__m256; 32],
}

/// The state of `make_qkx2_quants` for the eight lanes of one super-block.
#[derive(Clone, Copy)]
struct Search {
    /// Largest value.
    max: __m256,
    /// Smallest value.
    lo: __m256,
    /// The current `min` (first the smallest value or 0, then the winning
    /// trial's).
    min: __m256,
    /// `max == min` (ggml returns at once).
    flat: __m256,
    /// Largest magnitude of the values (`|x - min| <= amax + |min|`).
    amax: __m256,
    sum_w: __m256,
    sum_x: __m256,
    best: __m256,
    scale: __m256,
    /// The `iscale` and `min` that gave the best codes so far.
    win_iscale: __m256,
    win_min: __m256,
}

/// Whether every non-flat lane's `|iscale * (x - min)|` is below
/// [`ROUND_SAFE`] (`|x - min| <= amax + |min|`, and rounding is monotone).
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn round_safe(s: &Search, iscale: __m256) -> bool {
    let sign = _mm256_set1_ps(-0.0);
    let bound = _mm256_mul_ps(
        _mm256_andnot_ps(sign, iscale),
        _mm256_add_ps(s.amax, _mm256_andnot_ps(sign, s.min)),
    );
    let ok = _mm256_cmp_ps::<_CMP_LT_OQ>(bound, _mm256_set1_ps(ROUND_SAFE));
    _mm256_movemask_ps(_mm256_or_ps(ok, s.flat)) == 0xff
}

/// Transposes the super-block `x` (256 values) into `b.x` and computes
/// Q4_K / Q5_K's weights `av_x + |x|` (`av_x = sqrt(sum x^2 / 32)`, summed
/// in order) into `b.w`.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn sub_blocks(x: &[f32], b: &mut SubBlocks) {
    for c in 0..4 {
        let r = std::array::from_fn(|k| load8(x, 32 * k + 8 * c));
        b.x[8 * c..8 * c + 8].copy_from_slice(&transpose8(r));
    }
    let mut sum_x2 = _mm256_setzero_ps();
    for v in &b.x {
        sum_x2 = _mm256_add_ps(sum_x2, _mm256_mul_ps(*v, *v));
    }
    let av_x = _mm256_sqrt_ps(_mm256_div_ps(sum_x2, _mm256_set1_ps(32.0)));
    let sign = _mm256_set1_ps(-0.0);
    for (w, v) in b.w.iter_mut().zip(&b.x) {
        *w = _mm256_add_ps(av_x, _mm256_andnot_ps(sign, *v));
    }
}

/// `make_qkx2_quants` (`use_mad = false`) up to the trials: the range, the
/// weight sums and the error of the first codes.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn search_start(b: &SubBlocks, nmax: i32) -> Search {
    let zero = _mm256_setzero_ps();
    let mut lo = b.x[0];
    let mut max = b.x[0];
    let sum_w0 = b.w[0];
    let mut sum_w = sum_w0;
    let mut sum_x = _mm256_mul_ps(sum_w0, b.x[0]);
    for i in 1..32 {
        let (v, w) = (b.x[i], b.w[i]);
        // `if (x < min) min = x`: `min_ps` keeps its second operand on ties
        // of signed zeros, like the comparison.
        lo = _mm256_min_ps(v, lo);
        max = _mm256_max_ps(v, max);
        sum_w = _mm256_add_ps(sum_w, w);
        sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(w, v));
    }
    // `if (min > 0) min = 0` (a `-0` min stays `-0`).
    let min = _mm256_min_ps(zero, lo);
    let flat = _mm256_cmp_ps::<_CMP_EQ_OQ>(max, min);
    let sign = _mm256_set1_ps(-0.0);
    let amax = _mm256_max_ps(_mm256_andnot_ps(sign, max), _mm256_andnot_ps(sign, lo));
    let iscale = _mm256_div_ps(_mm256_set1_ps(nmax as f32), _mm256_sub_ps(max, min));
    let scale = _mm256_div_ps(_mm256_set1_ps(1.0), iscale);
    let mut s = Search {
        max,
        lo,
        min,
        flat,
        amax,
        sum_w,
        sum_x,
        best: zero,
        scale,
        win_iscale: iscale,
        win_min: min,
    };
    let nmaxi = _mm256_set1_epi32(nmax);
    let mut best = zero;
    for i in 0..32 {
        let l = code_exact(iscale, min, b.x[i], nmaxi);
        let diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, l), min), b.x[i]);
        best = _mm256_add_ps(best, _mm256_mul_ps(b.w[i], _mm256_mul_ps(diff, diff)));
    }
    s.best = best;
    s
}

/// One trial's codes and sums for `G` super-blocks side by side: fills
/// `laux` and returns per super-block `(sum_l, sum_l2, sum_xl)`, summed in
/// value order like ggml. `FAST` takes [`code_fast`] (every lane passed
/// [`round_safe`]) with the clamps `LO` and `HI`.
#[target_feature(enable = "avx2,f16c")]
#[inline]
// Row `i` of the `G` super-blocks' arrays at once.
#[allow(clippy::needless_range_loop)]
fn trial_sums<const G: usize, const FAST: bool, const LO: bool, const HI: bool>(
    b: &[SubBlocks; G],
    s: &[Search; G],
    iscale: &[__m256; G],
    nmax: i32,
    laux: &mut [[__m256; 32]; G],
) -> [[__m256; 3]; G] {
    let zero = _mm256_setzero_ps();
    let nmaxf = _mm256_set1_ps(nmax as f32);
    let nmaxi = _mm256_set1_epi32(nmax);
    let mut sums = [[zero; 3]; G];
    for i in 0..32 {
        for g in 0..G {
            let v = b[g].x[i];
            let l = if FAST {
                code_fast::<LO, HI>(iscale[g], s[g].min, v, nmaxf)
            } else {
                code_exact(iscale[g], s[g].min, v, nmaxi)
            };
            laux[g][i] = l;
            let wl = _mm256_mul_ps(b[g].w[i], l);
            sums[g][0] = _mm256_add_ps(sums[g][0], wl);
            sums[g][1] = _mm256_add_ps(sums[g][1], _mm256_mul_ps(wl, l));
            sums[g][2] = _mm256_add_ps(sums[g][2], _mm256_mul_ps(wl, v));
        }
    }
    sums
}

/// `make_qkx2_quants(32, nmax, x, w, L, &min, Laux, rmin, 0.1, nstep,
/// false)` for the eight sub-blocks (lanes) of each of the `G` super-blocks
/// `b`, every lane in ggml's order of operations; the `G` searches
/// interleave to hide the latency of their sequential sums. Returns the
/// final states: a lane's scale is `scale` (0 where `flat`), its min
/// `-min`, and its codes those of `win_iscale` and `win_min` (0 where
/// `flat`).
#[target_feature(enable = "avx2,f16c")]
#[inline]
// Row `i` of the `G` super-blocks' arrays at once.
#[allow(clippy::needless_range_loop)]
fn search_k_asym<const G: usize>(
    b: &[SubBlocks; G],
    nmax: i32,
    rmin: f32,
    nstep: i32,
) -> [Search; G] {
    let zero = _mm256_setzero_ps();
    let mut s: [Search; G] = std::array::from_fn(|g| search_start(&b[g], nmax));
    let mut laux = [[zero; 32]; G];
    // ggml returns before the trials when `nstep < 1`.
    for is in (0..=nstep).filter(|_| nstep >= 1) {
        let numf = rmin + 0.1 * is as f32 + nmax as f32;
        let num = _mm256_set1_ps(numf);
        let iscale: [__m256; G] =
            std::array::from_fn(|g| _mm256_div_ps(num, _mm256_sub_ps(s[g].max, s[g].min)));
        // Where `max - min > 0` (then `iscale > 0`) and rounding is
        // monotone: `x <= max` gives `iscale (x - min) <= num (1 + eps)^2`,
        // below `nmax + 0.5` (the code stays <= nmax) when `num <= nmax +
        // 0.4`; and `min <= lo` gives `x - min >= 0` (the code >= 0). Flat
        // lanes do not count.
        let spans = (0..G).all(|g| {
            let pos = _mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_sub_ps(s[g].max, s[g].min), zero);
            _mm256_movemask_ps(_mm256_or_ps(pos, s[g].flat)) == 0xff
        });
        let hi = !spans || numf > nmax as f32 + 0.4;
        let lo = !spans
            || !(0..G).all(|g| {
                let below = _mm256_cmp_ps::<_CMP_LE_OQ>(s[g].min, s[g].lo);
                _mm256_movemask_ps(_mm256_or_ps(below, s[g].flat)) == 0xff
            });
        let sums = if !(0..G).all(|g| round_safe(&s[g], iscale[g])) {
            trial_sums::<G, false, true, true>(b, &s, &iscale, nmax, &mut laux)
        } else {
            match (lo, hi) {
                (false, false) => {
                    trial_sums::<G, true, false, false>(b, &s, &iscale, nmax, &mut laux)
                }
                (false, true) => {
                    trial_sums::<G, true, false, true>(b, &s, &iscale, nmax, &mut laux)
                }
                (true, false) => {
                    trial_sums::<G, true, true, false>(b, &s, &iscale, nmax, &mut laux)
                }
                (true, true) => trial_sums::<G, true, true, true>(b, &s, &iscale, nmax, &mut laux),
            }
        };
        let mut this_scale = [zero; G];
        let mut this_min = [zero; G];
        let mut ok = [zero; G];
        for g in 0..G {
            let [sum_l, sum_l2, sum_xl] = sums[g];
            let (sum_w, sum_x) = (s[g].sum_w, s[g].sum_x);
            let d = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
            let ts = _mm256_div_ps(
                _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)),
                d,
            );
            let tm = _mm256_div_ps(
                _mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)),
                d,
            );
            // `if (this_min > 0) { this_min = 0; this_scale = sum_xl / sum_l2; }`
            let pos = _mm256_cmp_ps::<_CMP_GT_OQ>(tm, zero);
            this_min[g] = _mm256_andnot_ps(pos, tm);
            this_scale[g] = _mm256_blendv_ps(ts, _mm256_div_ps(sum_xl, sum_l2), pos);
            ok[g] = _mm256_andnot_ps(s[g].flat, _mm256_cmp_ps::<_CMP_GT_OQ>(d, zero));
        }
        let mut err = [zero; G];
        for i in 0..32 {
            for g in 0..G {
                let l = laux[g][i];
                let diff = _mm256_sub_ps(
                    _mm256_add_ps(_mm256_mul_ps(this_scale[g], l), this_min[g]),
                    b[g].x[i],
                );
                err[g] = _mm256_add_ps(err[g], _mm256_mul_ps(b[g].w[i], _mm256_mul_ps(diff, diff)));
            }
        }
        for g in 0..G {
            let s = &mut s[g];
            let better = _mm256_and_ps(ok[g], _mm256_cmp_ps::<_CMP_LT_OQ>(err[g], s.best));
            s.best = _mm256_blendv_ps(s.best, err[g], better);
            s.scale = _mm256_blendv_ps(s.scale, this_scale[g], better);
            s.win_iscale = _mm256_blendv_ps(s.win_iscale, iscale[g], better);
            s.win_min = _mm256_blendv_ps(s.win_min, s.min, better);
            s.min = _mm256_blendv_ps(s.min, this_min[g], better);
        }
    }
    s
}

/// Writes the Q4_K block (144 bytes) of the super-block `x` (256 values)
/// from its search `s`: [`kquants::pack_k_head`], then per sub-block the
/// codes `nearest_int((x + dm) / d)` where its packed scale `d` is not 0
/// and the search's codes where it is (ggml's `quantize_row_q4_K_ref`).
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn finish_q4_k(x: &[f32], s: &Search, out: &mut [u8]) {
    let (head, qs) = out.split_at_mut(16);
    let scale = lanes(_mm256_andnot_ps(s.flat, s.scale));
    let the_min = lanes(_mm256_xor_ps(s.min, _mm256_set1_ps(-0.0)));
    kquants::pack_k_head(head, &scale, &the_min);
    let dall = super::f16_to_f32(&head[0..2]);
    let dmin = super::f16_to_f32(&head[2..4]);
    let (win_iscale, win_min) = (lanes(s.win_iscale), lanes(s.win_min));
    let flat = _mm256_movemask_ps(s.flat);
    let nmax = _mm256_set1_epi32(15);
    // `l[4 j + k]`: the codes of values `32 j + 8 k..+ 8` as i32.
    let mut l = [_mm256_setzero_si256(); 32];
    for j in 0..8 {
        let (sc, m) = kquants::get_scale_min_k4(j, &head[4..16]);
        let d = dall * f32::from(sc);
        let dv = _mm256_set1_ps(d);
        let dm = _mm256_set1_ps(dmin * f32::from(m));
        let (iscale, min) = (_mm256_set1_ps(win_iscale[j]), _mm256_set1_ps(win_min[j]));
        for k in 0..4 {
            let v = load8(x, 32 * j + 8 * k);
            l[4 * j + k] = if d != 0.0 {
                nearest_clamped(_mm256_div_ps(_mm256_add_ps(v, dm), dv), nmax)
            } else if flat & (1 << j) != 0 {
                _mm256_setzero_si256()
            } else {
                nearest_clamped(_mm256_mul_ps(iscale, _mm256_sub_ps(v, min)), nmax)
            };
        }
    }
    // Per 64 values `c`: the first 32 codes in low nibbles, the next 32 in
    // high ones. After the two packs, 32-bit groups hold bytes 0..4 of the
    // four vectors, then 4..8; `order` puts them back in value order.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for c in 0..4 {
        let q = |k: usize| _mm256_or_si256(l[8 * c + k], _mm256_slli_epi32::<4>(l[8 * c + 4 + k]));
        let p = _mm256_packus_epi16(
            _mm256_packs_epi32(q(0), q(1)),
            _mm256_packs_epi32(q(2), q(3)),
        );
        let p = _mm256_permutevar8x32_epi32(p, order);
        store16(qs, 32 * c, _mm256_castsi256_si128(p));
        store16(qs, 32 * c + 16, _mm256_extracti128_si256::<1>(p));
    }
}

/// Q4_K blocks (256 values to 144 bytes) for whole rows, two super-blocks
/// per search (three measured no faster: the trial loop is then
/// throughput-bound). Same bytes as [`kquants::quantize_q4_k`].
#[target_feature(enable = "avx2,f16c")]
pub(super) fn quantize_q4_k_rows(x: &[f32], out: &mut [u8]) {
    const NMAX: i32 = 15;
    let zero = _mm256_setzero_ps();
    let mut b = [
        SubBlocks {
            x: [zero; 32],
            w: [zero; 32],
        },
        SubBlocks {
            x: [zero; 32],
            w: [zero; 32],
        },
    ];
    let mut xs = x.chunks_exact(512);
    let mut os = out.chunks_exact_mut(288);
    for (xg, og) in (&mut xs).zip(&mut os) {
        sub_blocks(&xg[..256], &mut b[0]);
        sub_blocks(&xg[256..], &mut b[1]);
        let s = search_k_asym::<2>(&b, NMAX, -1.0, 20);
        let (o0, o1) = og.split_at_mut(144);
        finish_q4_k(&xg[..256], &s[0], o0);
        finish_q4_k(&xg[256..], &s[1], o1);
    }
    for (xb, ob) in xs
        .remainder()
        .chunks_exact(256)
        .zip(os.into_remainder().chunks_exact_mut(144))
    {
        let b = std::array::from_mut(&mut b[0]);
        sub_blocks(xb, &mut b[0]);
        let s = search_k_asym::<1>(b, NMAX, -1.0, 20);
        finish_q4_k(xb, &s[0], ob);
    }
}
