//! The vector kernels of the dictionary solver, compiled for the baseline
//! CPU and for AVX2 (picked at run time by `multiversion`).
//!
//! None uses fused multiply-add, the dot product always sums in the same
//! eight-lane order and the `f32` matrix-vector product adds the rows in
//! order for every output, so every CPU path returns the same bits.

use multiversion::multiversion;

/// `sum_i a_i b_i` with eight partial sums (lane `l` takes `i = l mod 8`),
/// combined pairwise, then the tail in order.
#[multiversion(targets("x86_64+avx2"))]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let s4 = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    let mut s = (s4[0] + s4[2]) + (s4[1] + s4[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `y_i += t x_i`.
#[multiversion(targets("x86_64+avx2"))]
pub fn axpy(y: &mut [f64], t: f64, x: &[f64]) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a += t * b;
    }
}

/// `y_i += (t_0 x0_i + t_1 x1_i) + (t_2 x2_i + t_3 x3_i)`: four `axpy`s
/// with one pass over `y`.
#[multiversion(targets("x86_64+avx2"))]
pub fn axpy4(y: &mut [f64], t: [f64; 4], x: [&[f64]; 4]) {
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

/// `y[c0..c0 + B] += sum_l t_l x_{l, c0..c0 + B}` with the block in
/// registers (inlined into the callers' target features).
#[inline(always)]
fn gemv_block_f32<const B: usize>(y: &mut [f32], t: &[f32], rows: &[f32], n: usize, c0: usize) {
    let mut acc = [0.0f32; B];
    acc.copy_from_slice(&y[c0..c0 + B]);
    for (l, &tl) in t.iter().enumerate() {
        let r: &[f32; B] = rows[l * n + c0..l * n + c0 + B].try_into().expect("block");
        for i in 0..B {
            acc[i] += tl * r[i];
        }
    }
    y[c0..c0 + B].copy_from_slice(&acc);
}

/// `y_i += sum_l t_l x_{l,i}` in `f32` over the rows `x_l` (length
/// `y.len()`) of `rows`: the terms of each
/// output added one row after the other (`l = 0, 1, ...`), in blocks of
/// 64, 32, 16 and 8 outputs kept in registers, the last `n mod 8` one by one.
#[multiversion(targets("x86_64+avx2"))]
pub fn gemv_acc_f32(y: &mut [f32], t: &[f32], rows: &[f32]) {
    let n = y.len();
    let t = &t[..t.len().min(rows.len().checked_div(n).unwrap_or(0))];
    let mut c0 = 0;
    while c0 + 64 <= n {
        gemv_block_f32::<64>(y, t, rows, n, c0);
        c0 += 64;
    }
    for b in [32, 16, 8] {
        if c0 + b <= n {
            match b {
                32 => gemv_block_f32::<32>(y, t, rows, n, c0),
                16 => gemv_block_f32::<16>(y, t, rows, n, c0),
                _ => gemv_block_f32::<8>(y, t, rows, n, c0),
            }
            c0 += b;
        }
    }
    for (i, yi) in y.iter_mut().enumerate().skip(c0) {
        let mut a = *yi;
        for (l, &tl) in t.iter().enumerate() {
            a += tl * rows[l * n + i];
        }
        *yi = a;
    }
}
