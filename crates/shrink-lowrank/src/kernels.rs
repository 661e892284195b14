//! The two vector kernels of the dictionary solver, compiled for the
//! baseline CPU and for AVX2 (picked at run time by `multiversion`).
//!
//! Neither uses fused multiply-add and the dot product always sums in the
//! same eight-lane order, so every CPU path returns the same bits.

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

/// `y += sum_l t_l x_l` over the rows `x_l` (length `y.len()`) of `rows`,
/// four rows per pass, then the remaining rows one by one.
pub fn axpy_rows(y: &mut [f64], t: &[f64], rows: &[f64]) {
    let n = y.len();
    let full = t.len() / 4 * 4;
    for b in (0..full).step_by(4) {
        let r = |i: usize| &rows[(b + i) * n..(b + i + 1) * n];
        axpy4(
            y,
            [t[b], t[b + 1], t[b + 2], t[b + 3]],
            [r(0), r(1), r(2), r(3)],
        );
    }
    for l in full..t.len() {
        axpy(y, t[l], &rows[l * n..(l + 1) * n]);
    }
}
