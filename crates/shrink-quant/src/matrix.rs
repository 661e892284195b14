//! A quantized weight matrix: one code per weight plus per-group scales
//! (and zero points, codebook, tensor scale where the grid has them).

use crate::quantizer::{GroupParams, Prepared};
use crate::spec::{Granularity, QuantSpec};
use ndarray::{Array2, ArrayView2};
use shrink_core::check::input_width;
use shrink_core::linalg::{dense_from_rows, forward_by_row_blocks};
use shrink_core::{Error, Mask, Reconstruct, Result, Storage};

/// A quantized `(rows, cols)` matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedMatrix {
    quantizer: Prepared,
    rows: usize,
    cols: usize,
    codes: Vec<u8>,
    params: Vec<GroupParams>,
    /// Decoded scales, one per group (derived from `params`).
    scales: Vec<f32>,
}

/// Number of groups of a `(rows, cols)` matrix under a granularity, and the
/// number of groups per row (0 for a tensor-wide scale).
pub fn group_layout(g: Granularity, rows: usize, cols: usize) -> Result<(usize, usize)> {
    match g {
        Granularity::Tensor => Ok((1, 0)),
        Granularity::Channel => Ok((rows, 1)),
        Granularity::Group(0) => Err(Error::invalid(
            "group size",
            "a group must hold at least one weight",
        )),
        Granularity::Group(gs) => {
            if !cols.is_multiple_of(gs) {
                return Err(Error::invalid(
                    "group size",
                    format!(
                        "group size {gs} does not divide the row length {cols}; shrink does not pad \
                         (padding would invent weights), so choose a divisor of {cols}"
                    ),
                ));
            }
            Ok((rows * (cols / gs), cols / gs))
        }
    }
}

impl QuantizedMatrix {
    /// Assembles a quantized matrix from its parts, checking every invariant
    /// (code range, group count, finite positive scales, zero-point range).
    pub fn from_parts(
        quantizer: Prepared,
        rows: usize,
        cols: usize,
        codes: Vec<u8>,
        params: Vec<GroupParams>,
    ) -> Result<Self> {
        let spec = *quantizer.spec();
        let (ngroups, _) = group_layout(spec.granularity, rows, cols)?;
        if codes.len() != rows * cols {
            return Err(Error::corrupt(
                "quantized matrix",
                format!("{} codes for a {rows}x{cols} matrix", codes.len()),
            ));
        }
        if params.len() != ngroups {
            return Err(Error::corrupt(
                "quantized matrix",
                format!(
                    "{} scales where {ngroups} groups need one each",
                    params.len()
                ),
            ));
        }
        if let Some(k) = (!quantizer.all_codes_valid(&codes))
            .then(|| codes.iter().position(|&c| !quantizer.valid_code(c)))
            .flatten()
        {
            return Err(Error::corrupt(
                "quantized matrix",
                format!("code {} at weight {k} is not a valid {spec} code", codes[k]),
            ));
        }
        let zmax = if spec.grid.has_zero_point() {
            quantizer.code_count() - 1
        } else {
            0
        };
        let mut scales = Vec::with_capacity(ngroups);
        let raw_bits = 8 * spec.scale_format.bytes();
        for (k, p) in params.iter().enumerate() {
            if raw_bits < 32 && p.raw_scale >> raw_bits != 0 {
                return Err(Error::corrupt(
                    "quantized matrix",
                    format!(
                        "scale bits {:#x} of group {k} do not fit a {raw_bits}-bit scale",
                        p.raw_scale
                    ),
                ));
            }
            let s = quantizer.scale_value(p.raw_scale);
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::corrupt(
                    "quantized matrix",
                    format!("scale of group {k} is {s}"),
                ));
            }
            if u32::from(p.zero) > zmax {
                return Err(Error::corrupt(
                    "quantized matrix",
                    format!("zero point {} of group {k} is out of range", p.zero),
                ));
            }
            scales.push(s);
        }
        Ok(Self {
            quantizer,
            rows,
            cols,
            codes,
            params,
            scales,
        })
    }

    /// The spec.
    pub fn spec(&self) -> &QuantSpec {
        self.quantizer.spec()
    }

    /// The prepared quantizer (levels, codebook, tensor scale).
    pub fn quantizer(&self) -> &Prepared {
        &self.quantizer
    }

    /// One code per weight, row-major.
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }

    /// Per-group stored parameters, row-major over groups.
    pub fn params(&self) -> &[GroupParams] {
        &self.params
    }

    /// The group index of weight `(i, j)`.
    #[inline]
    pub fn group_of(&self, i: usize, j: usize) -> usize {
        match self.spec().granularity {
            Granularity::Tensor => 0,
            Granularity::Channel => i,
            Granularity::Group(g) => i * (self.cols / g) + j / g,
        }
    }

    /// Dequantizes row `i` into `out` (length `cols`).
    pub fn dequantize_row(&self, i: usize, out: &mut [f32]) {
        let codes = &self.codes[i * self.cols..(i + 1) * self.cols];
        let q = &self.quantizer;
        match self.spec().granularity {
            Granularity::Group(g) => {
                for (k, (cs, os)) in codes.chunks(g).zip(out.chunks_mut(g)).enumerate() {
                    let gi = i * (self.cols / g) + k;
                    let (s, z) = (self.scales[gi], self.params[gi].zero);
                    for (c, o) in cs.iter().zip(os.iter_mut()) {
                        *o = q.decode_with(*c, s, z);
                    }
                }
            }
            _ => {
                let gi = self.group_of(i, 0);
                let (s, z) = (self.scales[gi], self.params[gi].zero);
                for (c, o) in codes.iter().zip(out.iter_mut()) {
                    *o = q.decode_with(*c, s, z);
                }
            }
        }
    }

    /// Number of stored groups.
    pub fn groups(&self) -> usize {
        self.params.len()
    }
}

impl Reconstruct for QuantizedMatrix {
    fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    fn to_dense(&self) -> Array2<f32> {
        dense_from_rows(self.rows, self.cols, |i, row| self.dequantize_row(i, row))
    }

    /// `x W'^T` decoding 64 rows of `W'` at a time: the dense matrix is never built.
    fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        input_width("forward input", x, self.cols)?;
        Ok(forward_by_row_blocks(x, self.rows, |i, row| {
            self.dequantize_row(i, row)
        }))
    }

    fn storage(&self) -> Storage {
        let spec = self.spec();
        let n = (self.rows * self.cols) as u64;
        let bits = u64::from(spec.grid.code_bits());
        let g = self.params.len() as u64;
        let mut s = Storage::new(n)
            .with("codes", (n * bits).div_ceil(8))
            .with("scales", g * spec.scale_format.bytes());
        if spec.grid.has_zero_point() {
            s = s.with("zero points", (g * bits).div_ceil(8));
        }
        if self.quantizer.tensor_scale().is_some() {
            s = s.with("tensor scale", 4);
        }
        if let Some(cb) = self.quantizer.codebook() {
            s = s.with("codebook", 4 * cb.len() as u64);
        }
        s
    }

    /// The bitmap, the kept weights' codes and every parameter (the
    /// `SMQ1` layout of `shrink-pack`); `None` when the mask's shape differs.
    fn storage_on(&self, mask: &Mask) -> Option<Storage> {
        if mask.shape() != self.shape() {
            return None;
        }
        let n = (self.rows * self.cols) as u64;
        let bits = u64::from(self.spec().grid.code_bits());
        let kept = mask.kept() as u64;
        let mut s = Storage::new(n)
            .with("mask bitmap", mask.bitmap_bytes())
            .with("codes (kept weights)", (kept * bits).div_ceil(8));
        for p in self.storage().parts {
            if p.name != "codes" {
                s.parts.push(p);
            }
        }
        Some(s)
    }
}
