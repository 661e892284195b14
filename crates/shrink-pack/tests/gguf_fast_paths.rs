//! The vectorized row kernels of `gguf::quantize` / `gguf::dequantize`
//! against plain scalar restatements of ggml's reference loops, byte for
//! byte (bit for bit for f32 output), on random rows whose blocks mix
//! awkward cases: zeros, all-equal values, `+a / -a` ties, `+-f32::MAX`,
//! subnormals, blocks below the fast path's `1e-30` threshold, values on
//! rounding ties, and signed zeros. Rows hold a few groups of eight blocks
//! plus a remainder, so both the grouped and the leftover paths run (Q4_K:
//! pairs of super-blocks and a leftover one).

use half::f16;
use proptest::prelude::*;
use shrink_pack::gguf::{GgufType, dequantize, quantize};

/// A small deterministic generator (splitmix64) for the block contents.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
}

/// `n` values of one awkward kind (`kind % 10`), seeded by `seed`.
fn block(kind: u8, seed: u64, n: usize) -> Vec<f32> {
    let mut r = Mix(seed);
    let scale = 10f32.powi(r.below(60) as i32 - 30);
    let mut x: Vec<f32> = (0..n).map(|_| r.unit() * scale).collect();
    match kind % 10 {
        0 => {}
        1 => x.fill(0.0),
        2 => x.fill(r.unit() * scale),
        3 => {
            // A `+a / -a` tie for the largest magnitude, in either order.
            let a = scale * 2.0;
            let (i, j) = (r.below(n as u64), r.below(n as u64));
            if i != j {
                x[i] = a;
                x[j] = -a;
            }
        }
        4 => {
            let i = r.below(n as u64);
            x[i] = if r.next() & 1 == 0 {
                f32::MAX
            } else {
                -f32::MAX
            };
        }
        5 => {
            for v in &mut x {
                *v = f32::from_bits(r.next() as u32 & 0x807f_ffff);
            }
        }
        6 => {
            // Largest magnitude below 1e-30 (possibly subnormal scales).
            for v in &mut x {
                *v *= 1e-32 / scale;
            }
        }
        7 => {
            // Multiples of max / 16 and max / 254: codes on rounding ties.
            let m = if r.next() & 1 == 0 { scale } else { -scale };
            let den = if r.next() & 1 == 0 { 16.0 } else { 254.0 };
            for v in &mut x {
                *v = m * (r.below(33) as f32 - 16.0) / den;
            }
            x[0] = m;
        }
        8 => {
            for v in &mut x {
                if r.next() & 1 == 0 {
                    *v = if r.next() & 1 == 0 { 0.0 } else { -0.0 };
                }
            }
        }
        _ => {
            // A few large values among small ones.
            for _ in 0..3 {
                let i = r.below(n as u64);
                x[i] = r.unit() * scale * 1e6;
            }
        }
    }
    x
}

fn row(blocks: &[(u8, u64)], bs: usize) -> Vec<f32> {
    blocks.iter().flat_map(|&(k, s)| block(k, s, bs)).collect()
}

fn f16_bytes(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_bits().to_le_bytes()
}

fn f16_value(b: &[u8]) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

/// ggml's `quantize_row_q4_0_ref`, one block at a time.
fn q4_0_reference(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for xb in x.chunks_exact(32) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in xb {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16_bytes(d));
        for j in 0..16 {
            let q0 = (c_int(xb[j] * id + 8.5) as i8).min(15) as u8;
            let q1 = (c_int(xb[16 + j] * id + 8.5) as i8).min(15) as u8;
            out.push(q0 | (q1 << 4));
        }
    }
    out
}

/// C's float-to-integer cast as x86-64 code does it (`cvttss2si`: NaN and
/// out-of-range values give `i32::MIN`), which ggml's reference bytes
/// reflect when a subnormal block maximum makes the inverse scale infinite
/// (see `tests/gguf_tiny_blocks.rs` for ggml's own bytes).
fn c_int(v: f32) -> i32 {
    if v.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        i32::MIN
    } else {
        v as i32
    }
}

/// ggml's `quantize_row_q8_0_ref`.
fn q8_0_reference(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for xb in x.chunks_exact(32) {
        let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16_bytes(d));
        out.extend(xb.iter().map(|&v| c_int((v * id).round()) as u8));
    }
    out
}

/// ggml's `dequantize_row_q2_K`.
fn q2_k_dequant_reference(b: &[u8]) -> Vec<f32> {
    let mut y = Vec::new();
    for bb in b.chunks_exact(84) {
        let (d, dmin) = (f16_value(&bb[80..82]), f16_value(&bb[82..84]));
        let mut is = 0;
        for h in 0..2 {
            let q = &bb[16 + 32 * h..48 + 32 * h];
            for shift in [0, 2, 4, 6] {
                for half in 0..2 {
                    let sc = bb[is];
                    is += 1;
                    let dl = d * f32::from(sc & 0x0f);
                    let ml = dmin * f32::from(sc >> 4);
                    for l in 0..16 {
                        let c = f32::from((q[16 * half + l] >> shift) & 3);
                        y.push(dl * c - ml);
                    }
                }
            }
        }
    }
    y
}

/// ggml's `nearest_int` (the magic-number trick, also for large inputs).
fn nearest_int(f: f32) -> i32 {
    let v = f + 12_582_912.0f32;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// ggml's `make_qkx2_quants(32, 15, x, w, L, &the_min, Laux, -1, 0.1, 20,
/// false)`: returns `(scale, the_min)`.
fn qkx2_reference(x: &[f32], w: &[f32], l: &mut [u8]) -> (f32, f32) {
    let (nmax, rmin, rdelta, nstep) = (15, -1.0f32, 0.1f32, 20);
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = w[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..32 {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..32 {
        l[i] = nearest_int(iscale * (x[i] - min)).clamp(0, nmax) as u8;
        let diff = scale * f32::from(l[i]) + min - x[i];
        best_error += w[i] * (diff * diff);
    }
    let mut laux = [0u8; 32];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..32 {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = q as u8;
            let q = q as f32;
            sum_l += w[i] * q;
            sum_l2 += w[i] * q * q;
            sum_xl += w[i] * q * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0f32;
            for i in 0..32 {
                let diff = this_scale * f32::from(laux[i]) + this_min - x[i];
                cur_error += w[i] * (diff * diff);
            }
            if cur_error < best_error {
                l.copy_from_slice(&laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml's `quantize_row_q4_K_ref`.
fn q4_k_reference(x: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for xb in x.chunks_exact(256) {
        let mut l = [0u8; 256];
        let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
        let (mut max_scale, mut max_min) = (0f32, 0f32);
        for j in 0..8 {
            let xs = &xb[32 * j..32 * j + 32];
            let mut sum_x2 = 0f32;
            for &v in xs {
                sum_x2 += v * v;
            }
            let av_x = (sum_x2 / 32.0).sqrt();
            let w: Vec<f32> = xs.iter().map(|v| av_x + v.abs()).collect();
            (scales[j], mins[j]) = qkx2_reference(xs, &w, &mut l[32 * j..32 * j + 32]);
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
        let mut sc = [0u8; 12];
        for j in 0..8 {
            let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
            let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
            if j < 4 {
                sc[j] = ls;
                sc[j + 4] = lm;
            } else {
                sc[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
                sc[j - 4] |= (ls >> 4) << 6;
                sc[j] |= (lm >> 4) << 6;
            }
        }
        let d_bytes = f16_bytes(max_scale / 63.0);
        let dmin_bytes = f16_bytes(max_min / 63.0);
        let (d_all, d_min) = (f16_value(&d_bytes), f16_value(&dmin_bytes));
        for j in 0..8 {
            let (s, m) = if j < 4 {
                (sc[j] & 63, sc[j + 4] & 63)
            } else {
                (
                    (sc[j + 4] & 0xf) | ((sc[j - 4] >> 6) << 4),
                    (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4),
                )
            };
            let d = d_all * f32::from(s);
            if d == 0.0 {
                continue;
            }
            let dm = d_min * f32::from(m);
            for ii in 0..32 {
                l[32 * j + ii] = nearest_int((xb[32 * j + ii] + dm) / d).clamp(0, 15) as u8;
            }
        }
        out.extend_from_slice(&d_bytes);
        out.extend_from_slice(&dmin_bytes);
        out.extend_from_slice(&sc);
        for c in 0..4 {
            for i in 0..32 {
                out.push(l[64 * c + i] | (l[64 * c + 32 + i] << 4));
            }
        }
    }
    out
}

/// Equal bits, or both NaN (a NaN's payload depends on operand order).
fn same_f32(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

fn blocks_strategy(max_blocks: usize) -> impl Strategy<Value = Vec<(u8, u64)>> {
    prop::collection::vec((any::<u8>(), any::<u64>()), 1..=max_blocks)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn q4_0_quantize_matches_scalar_reference(blocks in blocks_strategy(27)) {
        let x = row(&blocks, 32);
        let got = quantize(GgufType::Q4_0, &x).unwrap();
        prop_assert_eq!(got, q4_0_reference(&x));
    }

    #[test]
    fn q8_0_quantize_matches_scalar_reference(blocks in blocks_strategy(27)) {
        let x = row(&blocks, 32);
        let got = quantize(GgufType::Q8_0, &x).unwrap();
        prop_assert_eq!(got, q8_0_reference(&x));
    }

    #[test]
    fn q2_k_dequantize_matches_scalar_reference(
        bytes in prop::collection::vec(any::<u8>(), 1..=5usize).prop_flat_map(|v| {
            prop::collection::vec(any::<u8>(), 84 * v.len())
        })
    ) {
        let got = dequantize(GgufType::Q2_K, &bytes, bytes.len() / 84 * 256).unwrap();
        prop_assert!(same_f32(&got, &q2_k_dequant_reference(&bytes)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Sub-blocks of mixed kinds (eight per super-block), one to five
    /// super-blocks: the paired and the leftover searches.
    #[test]
    fn q4_k_quantize_matches_scalar_reference(
        blocks in prop::collection::vec(any::<(u8, u64)>(), 1..=5usize).prop_flat_map(|v| {
            prop::collection::vec(any::<(u8, u64)>(), 8 * v.len())
        })
    ) {
        let x = row(&blocks, 32);
        let got = quantize(GgufType::Q4_K, &x).unwrap();
        prop_assert_eq!(got, q4_k_reference(&x));
    }
}

/// Q4_K on 4096 bell-shaped values per row (sums of four uniforms, scaled
/// per row), the weights' usual shape: most trials of the search are
/// decided by small margins here.
#[test]
fn q4_k_bell_rows() {
    let mut r = Mix(0x0a4b);
    for row in 0..24 {
        let scale = 10f32.powi(row % 7 - 3);
        let x: Vec<f32> = (0..4096)
            .map(|_| (r.unit() + r.unit() + r.unit() + r.unit()) * scale)
            .collect();
        assert_eq!(
            quantize(GgufType::Q4_K, &x).unwrap(),
            q4_k_reference(&x),
            "Q4_K row {row}"
        );
    }
}

/// Q4_K: every awkward kind in whole super-blocks and mixed with plain
/// sub-blocks, in pairs and a leftover super-block.
#[test]
fn q4_k_each_kind() {
    for kind in 0..10u8 {
        for seed in 0..12u64 {
            let whole: Vec<(u8, u64)> = (0..3).map(|i| (kind, seed * 16 + i)).collect();
            let x = row(&whole, 256);
            assert_eq!(
                quantize(GgufType::Q4_K, &x).unwrap(),
                q4_k_reference(&x),
                "Q4_K kind {kind} seed {seed}"
            );
            let mixed: Vec<(u8, u64)> = (0..24)
                .map(|i| (if i % 3 == 0 { kind } else { 0 }, seed * 64 + i))
                .collect();
            let x = row(&mixed, 32);
            assert_eq!(
                quantize(GgufType::Q4_K, &x).unwrap(),
                q4_k_reference(&x),
                "Q4_K mixed kind {kind} seed {seed}"
            );
        }
    }
}

/// Every awkward kind on its own, in a full group of eight and a remainder.
#[test]
fn q4_0_q8_0_each_kind_in_groups() {
    for kind in 0..10u8 {
        for seed in 0..40u64 {
            let blocks: Vec<(u8, u64)> = (0..11).map(|i| (kind, seed * 16 + i)).collect();
            let x = row(&blocks, 32);
            assert_eq!(
                quantize(GgufType::Q4_0, &x).unwrap(),
                q4_0_reference(&x),
                "Q4_0 kind {kind} seed {seed}"
            );
            assert_eq!(
                quantize(GgufType::Q8_0, &x).unwrap(),
                q8_0_reference(&x),
                "Q8_0 kind {kind} seed {seed}"
            );
        }
    }
}

/// Quantizing a whole row (the row kernels: eight Q4_0 / Q8_0 blocks per
/// group, ...) gives the bytes of quantizing it one block per call (a
/// single block takes the scalar kernels).
fn whole_row_equals_block_by_block(t: GgufType, blocks: &[(u8, u64)]) {
    let bs = t.block_size();
    let x = row(blocks, bs);
    let whole = quantize(t, &x).unwrap();
    let single: Vec<u8> = x
        .chunks_exact(bs)
        .flat_map(|xb| quantize(t, xb).unwrap())
        .collect();
    assert_eq!(whole, single, "{t}");
    let y = dequantize(t, &whole, x.len()).unwrap();
    let y1: Vec<f32> = whole
        .chunks_exact(t.type_size())
        .flat_map(|b| dequantize(t, b, bs).unwrap())
        .collect();
    assert!(same_f32(&y, &y1), "{t} dequantize");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn k_quant_rows_match_single_blocks(blocks in blocks_strategy(5)) {
        for t in [GgufType::Q2_K, GgufType::Q4_K, GgufType::Q5_K, GgufType::Q6_K] {
            whole_row_equals_block_by_block(t, &blocks);
        }
    }

    #[test]
    fn legacy_rows_match_single_blocks(blocks in blocks_strategy(27)) {
        for t in [GgufType::Q4_0, GgufType::Q8_0] {
            whole_row_equals_block_by_block(t, &blocks);
        }
    }
}
