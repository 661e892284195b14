//! Small dense kernels every crate needs, built on faer and made
//! deterministic: work is split into fixed blocks before it is spread over
//! threads, so the result never depends on how many threads run.

use crate::interop::{as_faer, as_faer_mut};
use faer::{Accum, Par};
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

/// Column block width used to split products over threads.
const BLOCK: usize = 64;

/// A row-major copy of `w` with the columns in `zero` set to 0 (the dead
/// inputs of the optimal-brain-surgeon sweeps), copied row by row on the
/// rayon pool: for large matrices the first touches of the new buffer's
/// pages are much of a copy's cost, and they run in parallel this way.
pub fn copy_zeroing_columns(w: ArrayView2<'_, f32>, zero: &[usize]) -> Vec<f32> {
    let cols = w.ncols();
    let mut out = vec![0f32; w.len()];
    if cols == 0 {
        return out;
    }
    out.par_chunks_mut(cols).enumerate().for_each(|(r, dst)| {
        let src = w.row(r);
        match src.as_slice() {
            Some(s) => dst.copy_from_slice(s),
            None => dst.iter_mut().zip(src.iter()).for_each(|(d, &v)| *d = v),
        }
        for &j in zero {
            dst[j] = 0.0;
        }
    });
    out
}

/// `C (+)= A B` in f64, split over column blocks of `C` (deterministic).
///
/// Shapes must agree (`A: m x k`, `B: k x n`, `C: m x n`); callers check them.
pub fn matmul_into(c: &mut Array2<f64>, a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>, add: bool) {
    let accum = if add { Accum::Add } else { Accum::Replace };
    let bf = b;
    c.axis_chunks_iter_mut(Axis(1), BLOCK)
        .into_par_iter()
        .enumerate()
        .for_each(|(k, cblock)| {
            let j0 = k * BLOCK;
            let w = cblock.ncols();
            let bblock = bf.slice(ndarray::s![.., j0..j0 + w]);
            faer::linalg::matmul::matmul(
                as_faer_mut(cblock),
                accum,
                as_faer(a),
                as_faer(bblock),
                1.0,
                Par::Seq,
            );
        });
}

/// `A B` in f64 (deterministic, parallel over column blocks).
pub fn matmul(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Array2<f64> {
    let mut c = Array2::zeros((a.nrows(), b.ncols()));
    matmul_into(&mut c, a, b, false);
    c
}

/// `A B^T` in f32 (deterministic, parallel over row blocks of the result):
/// the product `y = x W^T` of a linear layer.
pub fn matmul_f32_bt(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Array2<f32> {
    let mut c = Array2::<f32>::zeros((a.nrows(), b.nrows()));
    c.axis_chunks_iter_mut(Axis(1), BLOCK)
        .into_par_iter()
        .enumerate()
        .for_each(|(k, cblock)| {
            let j0 = k * BLOCK;
            let w = cblock.ncols();
            let bblock = b.slice(ndarray::s![j0..j0 + w, ..]);
            faer::linalg::matmul::matmul(
                as_faer_mut(cblock),
                Accum::Replace,
                as_faer(a),
                as_faer(bblock.t()),
                1.0,
                Par::Seq,
            );
        });
    c
}

/// `sum_ij A_ij B_ij` in f64, summed row by row in a fixed order.
pub fn frobenius_inner(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> f64 {
    let rows: Vec<f64> = a
        .outer_iter()
        .into_par_iter()
        .zip(b.outer_iter().into_par_iter())
        .map(|(ra, rb)| ra.iter().zip(rb.iter()).map(|(x, y)| x * y).sum::<f64>())
        .collect();
    rows.iter().sum()
}

/// `tr(E H E^T) = sum_ij (E H)_ij E_ij` for `E: m x n`, `H: n x n`, in f64.
pub fn quadratic_trace(e: ArrayView2<'_, f64>, h: ArrayView2<'_, f64>) -> f64 {
    let eh = matmul(e, h);
    frobenius_inner(eh.view(), e)
}

/// `C = A B^T` in f32 on the calling thread (a building block for callers
/// that split work themselves). Shapes must agree (`A: m x k`, `B: n x k`,
/// `C: m x n`).
pub fn gemm_f32_bt_seq(
    c: ndarray::ArrayViewMut2<'_, f32>,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
) {
    faer::linalg::matmul::matmul(
        as_faer_mut(c),
        Accum::Replace,
        as_faer(a),
        as_faer(b.t()),
        1.0,
        Par::Seq,
    );
}

/// Rows of `W'` decoded at a time by [`forward_by_row_blocks`].
pub const ROW_BLOCK: usize = 64;

/// A dense `(rows, cols)` matrix whose row `i` is written by `decode(i, row)`,
/// rows decoded in parallel (each row by one call, so the result does not
/// depend on the thread count).
pub fn dense_from_rows(
    rows: usize,
    cols: usize,
    decode: impl Fn(usize, &mut [f32]) + Sync,
) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros((rows, cols));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut row)| {
            if let Some(s) = row.as_slice_mut() {
                decode(i, s);
            }
        });
    out
}

/// `y = x W'^T` for a `W'` of shape `(rows, x.ncols())` given only by a row
/// decoder: [`ROW_BLOCK`] rows are decoded into a scratch block and multiplied
/// at a time, so the dense `W'` is never built. Callers check `x`'s width.
pub fn forward_by_row_blocks(
    x: ArrayView2<'_, f32>,
    rows: usize,
    decode: impl Fn(usize, &mut [f32]) + Sync,
) -> Array2<f32> {
    let cols = x.ncols();
    let mut y = Array2::<f32>::zeros((x.nrows(), rows));
    y.axis_chunks_iter_mut(Axis(1), ROW_BLOCK)
        .into_par_iter()
        .enumerate()
        .for_each(|(b, yblock)| {
            let r0 = b * ROW_BLOCK;
            let block = dense_block(r0, yblock.ncols(), cols, &decode);
            gemm_f32_bt_seq(yblock, x, block.view());
        });
    y
}

fn dense_block(
    r0: usize,
    nr: usize,
    cols: usize,
    decode: &(impl Fn(usize, &mut [f32]) + Sync),
) -> Array2<f32> {
    let mut block = Array2::<f32>::zeros((nr, cols));
    for (k, mut row) in block.axis_iter_mut(Axis(0)).enumerate() {
        if let Some(s) = row.as_slice_mut() {
            decode(r0 + k, s);
        }
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_zeroing_columns_copies_any_layout() {
        let a = Array2::from_shape_fn((5, 7), |(i, j)| (i * 7 + j) as f32 + 0.5);
        for w in [a.view(), a.t()] {
            let got = copy_zeroing_columns(w, &[0, 3]);
            let want: Vec<f32> = w
                .indexed_iter()
                .map(|((_, j), &v)| if j == 0 || j == 3 { 0.0 } else { v })
                .collect();
            assert_eq!(got, want);
        }
        assert!(copy_zeroing_columns(Array2::<f32>::zeros((3, 0)).view(), &[]).is_empty());
    }
}
