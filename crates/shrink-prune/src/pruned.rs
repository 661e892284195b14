//! The compressed forms of a pruned matrix: [`Pruned`] (kept values plus the
//! mask) and [`SparseQuantized`] (SparseGPT's joint mode: kept weights
//! quantized, pruned weights exactly zero).

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;
use shrink_core::check::input_width;
use shrink_core::linalg::{dense_from_rows, forward_by_row_blocks};
use shrink_core::{Error, Mask, Reconstruct, Result, Storage};
use shrink_pack::sparse::{self, Sparse24, ValueFormat};
use shrink_quant::QuantizedMatrix;

/// How a [`Pruned`] matrix is stored (and counted in bits/weight).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layout {
    /// One bit per weight (row-major, LSB-first) plus the kept values:
    /// `ceil(rows*cols/8) + kept * V` bytes ([`shrink_pack::sparse::encode_bitmask`]).
    Bitmap,
    /// compressed-tensors' `sparse-24-bitmask` (2:4 masks only): `(rows,
    /// cols/2)` values plus a `(rows, ceil(cols/8))` per-row bitmask
    /// ([`shrink_pack::sparse::Sparse24`]).
    Sparse24,
    /// Whole rows removed: one bit per row plus the kept rows, dense
    /// ([`shrink_pack::sparse::encode_structured`]).
    Rows,
    /// Whole columns removed: one bit per column plus the kept columns, dense.
    Columns,
}

/// Structural queries on a [`Mask`].
pub trait MaskStructure {
    /// Kept weights of each row.
    fn kept_per_row(&self) -> Vec<usize>;
    /// Rows with no kept weight.
    fn pruned_rows(&self) -> Vec<usize>;
    /// Columns with no kept weight.
    fn pruned_columns(&self) -> Vec<usize>;
    /// Every row is either fully kept or fully pruned.
    fn is_row_structured(&self) -> bool;
    /// Every column is either fully kept or fully pruned.
    fn is_column_structured(&self) -> bool;
    /// Like [`Mask::is_n_of_m`], as a typed error naming the first bad group.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the pattern is impossible for the
    /// shape or a group does not keep exactly `n`.
    fn check_n_of_m(&self, n: usize, m: usize) -> Result<()>;
}

impl MaskStructure for Mask {
    fn kept_per_row(&self) -> Vec<usize> {
        let (rows, cols) = self.shape();
        (0..rows)
            .map(|i| (0..cols).filter(|&j| self.get(i, j)).count())
            .collect()
    }

    fn pruned_rows(&self) -> Vec<usize> {
        let (rows, cols) = self.shape();
        (0..rows)
            .filter(|&i| (0..cols).all(|j| !self.get(i, j)))
            .collect()
    }

    fn pruned_columns(&self) -> Vec<usize> {
        let (rows, cols) = self.shape();
        (0..cols)
            .filter(|&j| (0..rows).all(|i| !self.get(i, j)))
            .collect()
    }

    fn is_row_structured(&self) -> bool {
        let (rows, cols) = self.shape();
        (0..rows).all(|i| {
            let first = self.get(i, 0);
            (0..cols).all(|j| self.get(i, j) == first)
        })
    }

    fn is_column_structured(&self) -> bool {
        let (rows, cols) = self.shape();
        (0..cols).all(|j| {
            let first = self.get(0, j);
            (0..rows).all(|i| self.get(i, j) == first)
        })
    }

    fn check_n_of_m(&self, n: usize, m: usize) -> Result<()> {
        let (rows, cols) = self.shape();
        crate::Pattern::n_of_m(n, m)?.check_shape(rows, cols)?;
        for i in 0..rows {
            for g in 0..cols / m {
                let k = (0..m).filter(|&t| self.get(i, g * m + t)).count();
                if k != n {
                    return Err(Error::invalid(
                        "N:M mask",
                        format!(
                            "row {i}, columns {}..{} keep {k} weights instead of {n}",
                            g * m,
                            (g + 1) * m
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Densities at or below which [`Pruned::forward`] multiplies straight from
/// the kept values instead of decoding row blocks for a dense GEMM.
const SPARSE_FORWARD_DENSITY: f64 = 0.125;

/// A pruned matrix: the mask and the kept values (row-major), stored in a
/// [`ValueFormat`] (f16 by default: kept values are rounded to f16 when the
/// form is built, so [`Reconstruct::to_dense`] returns exactly what is
/// stored).
#[derive(Clone, Debug, PartialEq)]
pub struct Pruned {
    mask: Mask,
    values: Vec<f32>,
    /// `row_start[i]`: index in `values` of row `i`'s first kept weight.
    row_start: Vec<usize>,
    format: ValueFormat,
    layout: Layout,
}

impl Pruned {
    /// Keeps the weights of `w` that `mask` keeps, rounded to `format`.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when shapes differ; [`Error::InvalidArgument`] when
    /// the layout does not fit the mask (see [`Pruned::from_parts`]) or a kept
    /// value overflows the format.
    pub fn new(
        w: ArrayView2<'_, f32>,
        mask: Mask,
        format: ValueFormat,
        layout: Layout,
    ) -> Result<Self> {
        if w.dim() != mask.shape() {
            return Err(Error::shape(
                "mask of a pruned matrix",
                format!("{:?}", w.dim()),
                format!("{:?}", mask.shape()),
            ));
        }
        let mut values = Vec::with_capacity(mask.kept());
        for ((i, j), &v) in w.indexed_iter() {
            if mask.get(i, j) {
                values.push(format.round(v)?);
            }
        }
        Self::from_parts(mask, values, format, layout)
    }

    /// Assembles a pruned matrix from a mask and its kept values (row-major,
    /// already representable in `format`).
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `values` does not hold one value per kept weight;
    /// [`Error::InvalidArgument`] when a value is not representable, or the
    /// layout does not fit: [`Layout::Sparse24`] needs a 2:4 mask,
    /// [`Layout::Rows`] / [`Layout::Columns`] a row / column-structured mask.
    pub fn from_parts(
        mask: Mask,
        values: Vec<f32>,
        format: ValueFormat,
        layout: Layout,
    ) -> Result<Self> {
        if values.len() != mask.kept() {
            return Err(Error::shape(
                "kept values of a pruned matrix",
                mask.kept(),
                values.len(),
            ));
        }
        for &v in &values {
            if format.round(v)?.to_bits() != v.to_bits() {
                return Err(Error::invalid(
                    "kept value",
                    format!("{v} is not exactly representable as {format:?}"),
                ));
            }
        }
        match layout {
            Layout::Sparse24 if !mask.is_n_of_m(2, 4) => {
                return Err(Error::invalid(
                    "layout",
                    "the sparse-24 layout needs a 2:4 mask",
                ));
            }
            Layout::Rows if !mask.is_row_structured() => {
                return Err(Error::invalid(
                    "layout",
                    "the rows layout needs whole rows kept or pruned",
                ));
            }
            Layout::Columns if !mask.is_column_structured() => {
                return Err(Error::invalid(
                    "layout",
                    "the columns layout needs whole columns kept or pruned",
                ));
            }
            _ => {}
        }
        let mut row_start = Vec::with_capacity(mask.shape().0 + 1);
        row_start.push(0);
        for k in mask.kept_per_row() {
            let last = row_start.last().copied().unwrap_or(0);
            row_start.push(last + k);
        }
        Ok(Self {
            mask,
            values,
            row_start,
            format,
            layout,
        })
    }

    /// The mask (1 = kept).
    pub fn mask(&self) -> &Mask {
        &self.mask
    }

    /// The kept values, row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// How the values are stored.
    pub fn format(&self) -> ValueFormat {
        self.format
    }

    /// How the matrix is laid out in bytes.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Fraction of weights kept.
    pub fn density(&self) -> f64 {
        self.mask.density()
    }

    /// Row `i` decoded into `out` (length `cols`).
    fn decode_row(&self, i: usize, out: &mut [f32]) {
        let mut v = self.values[self.row_start[i]..self.row_start[i + 1]].iter();
        for (j, o) in out.iter_mut().enumerate() {
            *o = if self.mask.get(i, j) {
                v.next().copied().unwrap_or(0.0)
            } else {
                0.0
            };
        }
    }

    /// The bytes of the layout ([`Layout`] names the format of each), whose
    /// length after the header is exactly [`Reconstruct::storage`].
    ///
    /// # Errors
    ///
    /// Only on internal inconsistency (never for a form built by this crate).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        match self.layout {
            Layout::Bitmap => sparse::encode_bitmask(&self.mask, &self.values, self.format),
            Layout::Sparse24 => {
                let dense = self.to_dense();
                let s = Sparse24::from_mask(&self.mask, dense.as_slice().unwrap_or(&[]))?;
                s.to_bytes(self.format)
            }
            Layout::Rows => {
                sparse::encode_structured(&self.mask, &self.values, self.format, sparse::Axis::Rows)
            }
            Layout::Columns => sparse::encode_structured(
                &self.mask,
                &self.values,
                self.format,
                sparse::Axis::Columns,
            ),
        }
    }

    /// Header bytes that [`Pruned::to_bytes`] writes before the counted payload.
    pub fn header_bytes(&self) -> usize {
        sparse::HEADER_BYTES + usize::from(matches!(self.layout, Layout::Rows | Layout::Columns))
    }
}

impl Reconstruct for Pruned {
    fn shape(&self) -> (usize, usize) {
        self.mask.shape()
    }

    fn to_dense(&self) -> Array2<f32> {
        let (rows, cols) = self.shape();
        dense_from_rows(rows, cols, |i, row| self.decode_row(i, row))
    }

    /// `x W'^T` without building `W'`: at density <= 1/8 straight from the
    /// kept values (`y[:, i] = sum_j w_ij x[:, j]` over kept `j`), otherwise
    /// decoding 64 rows at a time into a dense block for one GEMM each.
    fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let (rows, cols) = self.shape();
        input_width("forward input", x, cols)?;
        let t = x.nrows();
        if self.density() <= SPARSE_FORWARD_DENSITY {
            // Columns of x as contiguous rows.
            let xt = x.t().as_standard_layout().into_owned();
            let mut yt = Array2::<f32>::zeros((rows, t));
            yt.axis_iter_mut(Axis(0))
                .into_par_iter()
                .enumerate()
                .for_each(|(i, mut yrow)| {
                    let mut v = self.values[self.row_start[i]..self.row_start[i + 1]].iter();
                    for j in 0..cols {
                        if self.mask.get(i, j) {
                            let w = v.next().copied().unwrap_or(0.0);
                            yrow.zip_mut_with(&xt.row(j), |y, &xv| *y += w * xv);
                        }
                    }
                });
            return Ok(yt.t().as_standard_layout().into_owned());
        }
        Ok(forward_by_row_blocks(x, rows, |i, row| {
            self.decode_row(i, row)
        }))
    }

    fn storage(&self) -> Storage {
        let (rows, cols) = self.shape();
        let kept = self.values.len() as u64;
        let vb = self.format.bytes() as u64;
        let fmt = format!("{:?}", self.format).to_lowercase();
        let s = Storage::new((rows * cols) as u64);
        match self.layout {
            Layout::Bitmap => s
                .with("mask bitmap", self.mask.bitmap_bytes())
                .with(format!("kept values ({fmt})"), kept * vb),
            Layout::Sparse24 => s
                .with("sparse-24 bitmask", (rows * cols.div_ceil(8)) as u64)
                .with(format!("sparse-24 values ({fmt})"), kept * vb),
            Layout::Rows => s
                .with("kept-row bitmap", (rows as u64).div_ceil(8))
                .with(format!("kept rows ({fmt})"), kept * vb),
            Layout::Columns => s
                .with("kept-column bitmap", (cols as u64).div_ceil(8))
                .with(format!("kept columns ({fmt})"), kept * vb),
        }
    }

    fn support(&self) -> Option<&Mask> {
        Some(&self.mask)
    }
}

/// SparseGPT's joint mode: a quantized matrix whose pruned weights are
/// exactly zero.
///
/// Stored as the mask bitmap, the codes of the **kept** weights only (packed
/// at the grid's code width, row-major), and the quantizer's parameters
/// (scales, zero points, codebook, tensor scale) exactly as
/// [`QuantizedMatrix`] counts them: the `SMQ1` layout of
/// [`shrink_pack::qmatrix`], written by [`SparseQuantized::to_bytes`] and
/// read by [`SparseQuantized::from_bytes`]; its payload is exactly
/// [`Reconstruct::storage`].
#[derive(Clone, Debug, PartialEq)]
pub struct SparseQuantized {
    mask: Mask,
    quantized: QuantizedMatrix,
}

impl SparseQuantized {
    /// Combines a mask and a quantized matrix of the same shape.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when the shapes differ.
    pub fn new(mask: Mask, quantized: QuantizedMatrix) -> Result<Self> {
        if mask.shape() != quantized.shape() {
            return Err(Error::shape(
                "mask of a sparse quantized matrix",
                format!("{:?}", quantized.shape()),
                format!("{:?}", mask.shape()),
            ));
        }
        Ok(Self { mask, quantized })
    }

    /// The mask (1 = kept).
    pub fn mask(&self) -> &Mask {
        &self.mask
    }

    /// The `SMQ1` bytes ([`shrink_pack::qmatrix::encode_masked`]).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        shrink_pack::qmatrix::encode_masked(&self.mask, &self.quantized)
    }

    /// Reads `SMQ1` bytes written by [`SparseQuantized::to_bytes`].
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] (or the checks of [`QuantizedMatrix::from_parts`])
    /// for truncated or inconsistent bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (mask, quantized) = shrink_pack::qmatrix::decode_masked(bytes)?;
        Self::new(mask, quantized)
    }

    /// The quantized matrix (codes at pruned positions are the code nearest
    /// to zero and are not stored).
    pub fn quantized(&self) -> &QuantizedMatrix {
        &self.quantized
    }

    fn decode_row(&self, i: usize, out: &mut [f32]) {
        self.quantized.dequantize_row(i, out);
        for (j, o) in out.iter_mut().enumerate() {
            if !self.mask.get(i, j) {
                *o = 0.0;
            }
        }
    }
}

impl Reconstruct for SparseQuantized {
    fn shape(&self) -> (usize, usize) {
        self.mask.shape()
    }

    fn to_dense(&self) -> Array2<f32> {
        let (rows, cols) = self.shape();
        dense_from_rows(rows, cols, |i, row| self.decode_row(i, row))
    }

    /// Decodes 64 rows at a time (masked) for one GEMM each.
    fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let (rows, cols) = self.shape();
        input_width("forward input", x, cols)?;
        Ok(forward_by_row_blocks(x, rows, |i, row| {
            self.decode_row(i, row)
        }))
    }

    fn storage(&self) -> Storage {
        let (rows, cols) = self.shape();
        self.quantized
            .storage_on(&self.mask)
            .unwrap_or_else(|| Storage::new((rows * cols) as u64))
    }

    fn support(&self) -> Option<&Mask> {
        Some(&self.mask)
    }
}
