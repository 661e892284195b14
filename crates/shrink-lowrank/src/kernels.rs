//! The vector kernels of the dictionary solver, compiled for the baseline
//! CPU and for AVX2 (picked at run time by `multiversion`).
//!
//! None uses fused multiply-add, the dot products always sum in the same
//! eight-lane order and the `f32` matrix-vector product adds the rows in
//! order for every output, so every CPU path returns the same bits.

use multiversion::multiversion;

/// `sum_i a_i b_i` with eight partial sums (lane `l` takes `i = l mod 8`),
/// combined pairwise, then the tail in order.
#[multiversion(targets("x86_64+avx2"))]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    dot_lanes(a, b)
}

/// The body of [`dot`] and [`dot_f32`] (`a` widened to `f64` first),
/// inlined into each so it is compiled for the caller's target.
#[inline(always)]
fn dot_lanes<T: Copy + Into<f64>>(a: &[T], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l].into() * y[l];
        }
    }
    let mut s = combine_lanes(&acc);
    for (&x, y) in ra.iter().zip(rb) {
        s += x.into() * y;
    }
    s
}

/// The eight lane sums of [`dot`] combined pairwise:
/// `((0 + 4) + (2 + 6)) + ((1 + 5) + (3 + 7))`.
#[inline(always)]
fn combine_lanes<T: Copy + std::ops::Add<Output = T>>(acc: &[T; 8]) -> T {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// `y_i += t x_i`.
#[multiversion(targets("x86_64+avx2"))]
pub fn axpy(y: &mut [f64], t: f64, x: &[f64]) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a += t * b;
    }
}

/// The eight partial sums of [`dot4_32`] and [`dot_32`] combined (lane `l`
/// and lane `l + 8` first, then as [`combine_lanes`]).
#[inline(always)]
fn combine_lanes_32(acc: &[f32; 16]) -> f32 {
    combine_lanes(&std::array::from_fn(|l| acc[l] + acc[l + 8]))
}

/// `sum_i a_i b_i` in `f32` with sixteen partial sums (lane `l` takes `i =
/// l mod 16` over full groups of sixteen, combined by `combine_lanes_32`),
/// then the tail in order.
#[multiversion(targets("x86_64+avx2"))]
pub fn dot_32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let full = n / 16 * 16;
    let mut acc = [0.0f32; 16];
    for (x, y) in a[..full].chunks_exact(16).zip(b[..full].chunks_exact(16)) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = combine_lanes_32(&acc);
    for (x, y) in a[full..].iter().zip(&b[full..]) {
        s += x * y;
    }
    s
}

/// Four [`dot_32`]s against the same `b` in one pass (each with the lanes
/// and order of [`dot_32`], so the same bits).
#[multiversion(targets("x86_64+avx2"))]
pub fn dot4_32(a: [&[f32]; 4], b: &[f32]) -> [f32; 4] {
    let n = b
        .len()
        .min(a[0].len())
        .min(a[1].len())
        .min(a[2].len())
        .min(a[3].len());
    let full = n / 16 * 16;
    let (a0, a1, a2, a3) = (&a[0][..full], &a[1][..full], &a[2][..full], &a[3][..full]);
    let mut acc = [[0.0f32; 16]; 4];
    let [c0, c1, c2, c3] = &mut acc;
    for ((((y, x0), x1), x2), x3) in b[..full]
        .chunks_exact(16)
        .zip(a0.chunks_exact(16))
        .zip(a1.chunks_exact(16))
        .zip(a2.chunks_exact(16))
        .zip(a3.chunks_exact(16))
    {
        for l in 0..16 {
            c0[l] += x0[l] * y[l];
            c1[l] += x1[l] * y[l];
            c2[l] += x2[l] * y[l];
            c3[l] += x3[l] * y[l];
        }
    }
    let mut out = [0.0f32; 4];
    for (q, o) in out.iter_mut().enumerate() {
        let mut s = combine_lanes_32(&acc[q]);
        for (x, y) in a[q][full..n].iter().zip(&b[full..n]) {
            s += x * y;
        }
        *o = s;
    }
    out
}

/// `y_i += t x_i` in `f32`.
#[multiversion(targets("x86_64+avx2"))]
pub fn axpy_32(y: &mut [f32], t: f32, x: &[f32]) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a += t * b;
    }
}

/// `y_i = (y_i + t_0 x0_i) + t_1 x1_i` in `f32`: two [`axpy_32`]s in one
/// pass (the same bits).
#[multiversion(targets("x86_64+avx2"))]
pub fn axpy2_32(y: &mut [f32], t0: f32, x0: &[f32], t1: f32, x1: &[f32]) {
    for ((a, &b0), &b1) in y.iter_mut().zip(x0).zip(x1) {
        *a = (*a + t0 * b0) + t1 * b1;
    }
}

/// `y_i += (t_0 x0_i + t_1 x1_i) + (t_2 x2_i + t_3 x3_i)` in `f32`: four
/// [`axpy_32`]s with one pass over `y`.
#[multiversion(targets("x86_64+avx2"))]
pub fn axpy4_32(y: &mut [f32], t: [f32; 4], x: [&[f32]; 4]) {
    let n = y
        .len()
        .min(x[0].len())
        .min(x[1].len())
        .min(x[2].len())
        .min(x[3].len());
    let (x0, x1, x2, x3) = (&x[0][..n], &x[1][..n], &x[2][..n], &x[3][..n]);
    for (i, a) in y[..n].iter_mut().enumerate() {
        *a += (t[0] * x0[i] + t[1] * x1[i]) + (t[2] * x2[i] + t[3] * x3[i]);
    }
}

/// [`axpy4_32`] of four rows into `acc` followed by [`axpy2_32`] on each
/// row, in one pass over the rows: `acc_i += (x_0 r0_i + x_1 r1_i) + (x_2
/// r2_i + x_3 r3_i)` with the old rows, then `rq_i = (rq_i + c_q a_i) +
/// (-x_q) u_i` (the same bits as the three calls). Without `want`, `acc` is
/// not touched.
#[multiversion(targets("x86_64+avx2"))]
pub fn accumulate_commit4_32(
    acc: &mut [f32],
    rows: [&mut [f32]; 4],
    x: [f32; 4],
    c: [f32; 4],
    a: &[f32],
    u: &[f32],
    want: bool,
) {
    let [r0, r1, r2, r3] = rows;
    let n = a
        .len()
        .min(u.len())
        .min(r0.len())
        .min(r1.len())
        .min(r2.len())
        .min(r3.len());
    let (r0, r1, r2, r3) = (&mut r0[..n], &mut r1[..n], &mut r2[..n], &mut r3[..n]);
    let (a, u) = (&a[..n], &u[..n]);
    let acc = if want { &mut acc[..n] } else { &mut acc[..0] };
    let nx = [-x[0], -x[1], -x[2], -x[3]];
    for i in 0..n {
        let (v0, v1, v2, v3) = (r0[i], r1[i], r2[i], r3[i]);
        if want {
            acc[i] += (x[0] * v0 + x[1] * v1) + (x[2] * v2 + x[3] * v3);
        }
        r0[i] = (v0 + c[0] * a[i]) + nx[0] * u[i];
        r1[i] = (v1 + c[1] * a[i]) + nx[1] * u[i];
        r2[i] = (v2 + c[2] * a[i]) + nx[2] * u[i];
        r3[i] = (v3 + c[3] * a[i]) + nx[3] * u[i];
    }
}

/// Width of the column blocks of [`gemv_blocks_f32`].
pub const VB: usize = 64;

/// The blocked matrix-vector product of Batch-OMP in `f32`: `v` holds
/// `blocks` regions of `cap` rows of [`VB`] values (row `l` of block `b` at
/// `(b cap + l) VB`); writes row `step` of every block, `g_i + sum_{l <
/// step} t_l v_{l,i}` (the terms of each output added one row after the
/// other, `l = 0, 1, ...`), reading rows `0..step`.
#[multiversion(targets("x86_64+avx2"))]
pub fn gemv_blocks_f32(
    v: &mut [f32],
    cap: usize,
    step: usize,
    t: &[f32],
    g: &[f32],
    blocks: usize,
) {
    let t = &t[..step];
    for b in 0..blocks {
        let region = &mut v[b * cap * VB..(b + 1) * cap * VB];
        let (done, rest) = region.split_at_mut(step * VB);
        let mut acc = [0.0f32; VB];
        acc.copy_from_slice(&g[b * VB..(b + 1) * VB]);
        for (r, &tl) in done.chunks_exact(VB).zip(t) {
            let r: &[f32; VB] = r.try_into().expect("block row");
            for i in 0..VB {
                acc[i] += tl * r[i];
            }
        }
        rest[..VB].copy_from_slice(&acc);
    }
}

/// One Batch-OMP correlation update in `f32`: `col_i *= inv`, then
/// `alpha_i -= coef col_i`; returns the largest `|alpha_i|` (minus infinity
/// for empty input; NaN entries are skipped).
#[multiversion(targets("x86_64+avx2"))]
pub fn scale_update_max(col: &mut [f32], alpha: &mut [f32], inv: f32, coef: f32) -> f32 {
    let n = col.len().min(alpha.len());
    let (col, alpha) = (&mut col[..n], &mut alpha[..n]);
    let mut lane = [f32::NEG_INFINITY; 8];
    let full = n / 8 * 8;
    for (c, a) in col[..full]
        .chunks_exact_mut(8)
        .zip(alpha[..full].chunks_exact_mut(8))
    {
        for l in 0..8 {
            c[l] *= inv;
            a[l] -= coef * c[l];
            let x = a[l].abs();
            lane[l] = if x > lane[l] { x } else { lane[l] };
        }
    }
    let mut best = lane
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    for (c, a) in col[full..].iter_mut().zip(alpha[full..].iter_mut()) {
        *c *= inv;
        *a -= coef * *c;
        if a.abs() > best {
            best = a.abs();
        }
    }
    best
}

/// The largest `|alpha_i|` (minus infinity for empty input; NaN entries are
/// skipped).
#[multiversion(targets("x86_64+avx2"))]
pub fn max_abs(alpha: &[f32]) -> f32 {
    let mut lane = [f32::NEG_INFINITY; 8];
    let ca = alpha.chunks_exact(8);
    let rest = ca.remainder();
    for a in ca {
        for l in 0..8 {
            let x = a[l].abs();
            lane[l] = if x > lane[l] { x } else { lane[l] };
        }
    }
    let mut best = lane
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    for a in rest {
        if a.abs() > best {
            best = a.abs();
        }
    }
    best
}

/// The first index `i >= from` with `|alpha_i| == best`, if any.
#[multiversion(targets("x86_64+avx2"))]
pub fn find_abs_eq(alpha: &[f32], from: usize, best: f32) -> Option<usize> {
    let tail = alpha.get(from..)?;
    let chunks = tail.chunks_exact(8);
    let rest = chunks.remainder();
    for (c, ch) in chunks.enumerate() {
        let mut hit = false;
        for a in ch {
            hit |= a.abs() == best;
        }
        if hit {
            let i = ch.iter().position(|a| a.abs() == best).unwrap_or(0);
            return Some(from + c * 8 + i);
        }
    }
    let base = from + tail.len() - rest.len();
    rest.iter().position(|a| a.abs() == best).map(|i| base + i)
}

/// `y_i += t x_i` with `f32` `x` widened to `f64`.
#[multiversion(targets("x86_64+avx2"))]
pub fn axpy_f32(y: &mut [f64], t: f64, x: &[f32]) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a += t * f64::from(b);
    }
}

/// `sum_i a_i b_i` with `f32` `a` widened to `f64`, in the lane order of
/// [`dot`].
#[multiversion(targets("x86_64+avx2"))]
pub fn dot_f32(a: &[f32], b: &[f64]) -> f64 {
    dot_lanes(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented order: lane `l` sums `i = l mod 8` over full groups of
    /// eight, lanes combined `((0+4) + (2+6)) + ((1+5) + (3+7))`, then the
    /// tail in order.
    fn dot_reference(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len().min(b.len());
        let full = n / 8 * 8;
        let mut acc = [0.0f64; 8];
        for i in 0..full {
            acc[i % 8] += a[i] * b[i];
        }
        let mut s =
            ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
        for i in full..n {
            s += a[i] * b[i];
        }
        s
    }

    #[test]
    fn dots_sum_in_the_documented_order() {
        for n in [0usize, 1, 7, 8, 9, 15, 16, 17, 64, 101] {
            let a32: Vec<f32> = (0..n)
                .map(|k| ((k * 37 % 101) as f32 - 50.0) * 0.37)
                .collect();
            let a: Vec<f64> = a32.iter().map(|&x| f64::from(x)).collect();
            let b: Vec<f64> = (0..n).map(|k| 1.0 / (1.0 + k as f64) - 0.3).collect();
            let want = dot_reference(&a, &b).to_bits();
            assert_eq!(dot(&a, &b).to_bits(), want, "dot, n = {n}");
            assert_eq!(dot_f32(&a32, &b).to_bits(), want, "dot_f32, n = {n}");
        }
    }

    /// The fused and four-row `f32` kernels give the bits of the single ones
    /// they stand for.
    #[test]
    fn fused_f32_kernels_equal_their_parts() {
        for n in [0usize, 1, 7, 15, 16, 17, 33, 100] {
            let vec = |seed: usize| -> Vec<f32> {
                (0..n)
                    .map(|k| (((k + 3) * (seed + 7) * 31 % 97) as f32 - 48.0) * 0.013)
                    .collect()
            };
            let rows: Vec<Vec<f32>> = (0..4).map(vec).collect();
            let (a, u) = (vec(5), vec(6));
            let (x, c) = ([0.7f32, -1.3, 0.01, 2.5], [-0.4f32, 0.9, 1.7, -2.2]);
            let d4 = dot4_32([&rows[0], &rows[1], &rows[2], &rows[3]], &u);
            for q in 0..4 {
                assert_eq!(d4[q].to_bits(), dot_32(&rows[q], &u).to_bits(), "n = {n}");
            }
            for want in [true, false] {
                let mut acc_want = vec(7);
                let mut rows_want = rows.clone();
                if want {
                    axpy4_32(&mut acc_want, x, [&rows[0], &rows[1], &rows[2], &rows[3]]);
                }
                for q in 0..4 {
                    axpy2_32(&mut rows_want[q], c[q], &a, -x[q], &u);
                }
                let mut acc = vec(7);
                let mut got = rows.clone();
                let [r0, r1, r2, r3] = &mut got[..] else {
                    unreachable!()
                };
                accumulate_commit4_32(&mut acc, [r0, r1, r2, r3], x, c, &a, &u, want);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&acc), bits(&acc_want), "n = {n}, want = {want}");
                for q in 0..4 {
                    assert_eq!(bits(&got[q]), bits(&rows_want[q]), "n = {n}, row {q}");
                }
            }
        }
    }
}
