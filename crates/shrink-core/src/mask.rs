//! A bitset over a weight matrix: which weights a stage keeps.
//!
//! Pruning methods produce a [`Mask`]; a [`Pipeline`](crate::Pipeline) in
//! restricted-support mode hands it to the next stage, which then only
//! touches kept weights. Bit `i * cols + j` is weight `(i, j)`, 1 = kept.

use crate::{Error, Result};
use ndarray::{Array2, ArrayView2};

/// Which weights of an `(rows, cols)` matrix are kept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mask {
    rows: usize,
    cols: usize,
    words: Vec<u64>,
}

impl Mask {
    /// A mask that keeps everything (`keep = true`) or nothing.
    pub fn full(rows: usize, cols: usize, keep: bool) -> Self {
        let n = rows * cols;
        let mut words = vec![if keep { u64::MAX } else { 0 }; n.div_ceil(64)];
        if keep
            && !n.is_multiple_of(64)
            && let Some(last) = words.last_mut()
        {
            *last = (1u64 << (n % 64)) - 1;
        }
        Self { rows, cols, words }
    }

    /// A mask from one flag per weight in row-major order (`flags[i * cols +
    /// j]` for weight `(i, j)`, `true` = kept); words are packed in parallel.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `flags.len()` is not `rows * cols`.
    pub fn from_flags(rows: usize, cols: usize, flags: &[bool]) -> Result<Self> {
        use rayon::prelude::*;
        if flags.len() != rows * cols {
            return Err(Error::shape("mask flags", rows * cols, flags.len()));
        }
        let mut words = vec![0u64; flags.len().div_ceil(64)];
        words
            .par_iter_mut()
            .zip(flags.par_chunks(64))
            .with_min_len(1024)
            .for_each(|(w, fl)| {
                *w = fl
                    .iter()
                    .enumerate()
                    .fold(0u64, |acc, (b, &k)| acc | (u64::from(k) << b));
            });
        Ok(Self { rows, cols, words })
    }

    /// A mask built from a predicate on `(row, col)`.
    pub fn from_fn(rows: usize, cols: usize, mut keep: impl FnMut(usize, usize) -> bool) -> Self {
        let mut m = Self::full(rows, cols, false);
        for i in 0..rows {
            for j in 0..cols {
                if keep(i, j) {
                    m.set(i, j, true);
                }
            }
        }
        m
    }

    /// The mask of the non-zero entries of `w`.
    pub fn nonzero(w: ArrayView2<'_, f32>) -> Self {
        Self::from_fn(w.nrows(), w.ncols(), |i, j| w[(i, j)] != 0.0)
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Whether weight `(i, j)` is kept. Out-of-range indices are not kept.
    pub fn get(&self, i: usize, j: usize) -> bool {
        if i >= self.rows || j >= self.cols {
            return false;
        }
        let k = i * self.cols + j;
        self.words[k / 64] >> (k % 64) & 1 == 1
    }

    /// Sets whether weight `(i, j)` is kept (ignored when out of range).
    pub fn set(&mut self, i: usize, j: usize, keep: bool) {
        if i >= self.rows || j >= self.cols {
            return;
        }
        let k = i * self.cols + j;
        if keep {
            self.words[k / 64] |= 1 << (k % 64);
        } else {
            self.words[k / 64] &= !(1 << (k % 64));
        }
    }

    /// Number of kept weights.
    pub fn kept(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Fraction of weights kept (1 for an empty matrix).
    pub fn density(&self) -> f64 {
        let n = self.rows * self.cols;
        if n == 0 {
            1.0
        } else {
            self.kept() as f64 / n as f64
        }
    }

    /// True when every group of `m` consecutive weights along each row keeps
    /// exactly `n` (the N:M pattern). False when `m` is 0 or does not divide
    /// the row length.
    pub fn is_n_of_m(&self, n: usize, m: usize) -> bool {
        if m == 0 || !self.cols.is_multiple_of(m) || n > m {
            return false;
        }
        (0..self.rows).all(|i| {
            (0..self.cols / m).all(|g| (0..m).filter(|&t| self.get(i, g * m + t)).count() == n)
        })
    }

    /// Zeroes every weight of `w` that the mask does not keep.
    pub fn apply(&self, w: &mut Array2<f32>) -> Result<()> {
        if w.dim() != self.shape() {
            return Err(Error::shape(
                "mask",
                format!("{:?}", w.dim()),
                format!("{:?}", self.shape()),
            ));
        }
        for ((i, j), v) in w.indexed_iter_mut() {
            if !self.get(i, j) {
                *v = 0.0;
            }
        }
        Ok(())
    }

    /// Stored size as a plain bitmap: one bit per weight, in bytes.
    pub fn bitmap_bytes(&self) -> u64 {
        ((self.rows * self.cols) as u64).div_ceil(8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_flags_equals_from_fn() {
        for &(rows, cols) in &[(1, 1), (3, 7), (17, 129), (64, 64), (5, 1000)] {
            let flags: Vec<bool> = (0..rows * cols).map(|k| (k * 7919) % 13 < 6).collect();
            let a = Mask::from_flags(rows, cols, &flags).unwrap();
            let b = Mask::from_fn(rows, cols, |i, j| flags[i * cols + j]);
            assert_eq!(a, b, "{rows}x{cols}");
        }
        assert!(matches!(
            Mask::from_flags(2, 3, &[true; 5]),
            Err(Error::Shape { .. })
        ));
    }
}
