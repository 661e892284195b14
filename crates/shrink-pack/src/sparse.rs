//! Byte layouts for pruned (sparse) weight matrices: a bitmap of the kept
//! weights plus the kept values.
//!
//! Two layouts, both exact (decoding gives back the same mask and the same
//! value bits) and both counted in bits per weight:
//!
//! # Bitmask layout ("SBM1")
//!
//! Any mask. One bit per weight, then the kept values in row-major order:
//!
//! ```text
//! offset  size                 field
//! 0       4                    magic "SBM1"
//! 4       8 + 8                u64 LE rows, u64 LE cols
//! 20      1                    value format: 0 = f32, 1 = f16, 2 = bf16
//! 21      ceil(rows*cols/8)    bitmap: bit k (LSB-first, bit k % 8 of byte k / 8) is
//!                              weight k = i * cols + j, 1 = kept; padding bits are zero
//! ...     kept * V             kept values, row-major, little-endian, V = 4 or 2 bytes
//! ```
//!
//! The payload after the 21-byte header is [`bitmask_payload_bytes`]:
//! `ceil(rows*cols/8) + kept * V`. The bitmap is exactly the bit order of
//! [`shrink_core::Mask`] (and its [`Mask::bitmap_bytes`] size).
//!
//! # compressed-tensors `sparse-24-bitmask`
//!
//! Matrices pruned 2:4 (every group of 4 consecutive weights of a row keeps
//! exactly 2), in the tensors compressed-tensors stores for a Linear:
//!
//! * `compressed`: `(rows, cols/2)` kept values in row-major order;
//! * `bitmask`: `(rows, ceil(cols/8))` bytes, each row packed on its own with
//!   `numpy.packbits(..., bitorder="little")`: bit `b` of byte `c` of row `i`
//!   is column `8c + b`, 1 = kept;
//! * `shape`: `[rows, cols]`.
//!
//! [`Sparse24`] holds those three; [`Sparse24::to_bytes`] writes them as
//! "S241" (magic, u64 LE rows and cols, value-format byte, then `compressed`
//! and `bitmask`), and [`Sparse24::payload_bytes`] counts
//! `rows * cols/2 * V + rows * ceil(cols/8)`: 1 bit of mask plus half a value
//! per weight, 9 bits/weight with f16 values.
//!
//! # Structured layout ("SST1")
//!
//! Masks that keep or prune whole rows (or whole columns): the header, one
//! axis byte (0 = rows, 1 = columns), one bit per row (column) LSB-first,
//! then the kept values row-major ([`encode_structured`]); the payload is
//! `ceil(lines/8) + kept * V`.
//!
//! Every function validates its input and returns a [`shrink_core::Error`]
//! instead of panicking.

use shrink_core::{Error, Mask, Result};
use shrink_quant::float::{bf16_bits, bf16_from_bits, f16_bits, f16_from_bits};

/// How kept values are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ValueFormat {
    /// IEEE binary32 (4 bytes).
    F32,
    /// IEEE binary16 (2 bytes), the default: the usual dtype of checkpoint weights.
    #[default]
    F16,
    /// bfloat16 (2 bytes).
    Bf16,
}

impl ValueFormat {
    /// Bytes per stored value.
    pub fn bytes(self) -> usize {
        match self {
            ValueFormat::F32 => 4,
            ValueFormat::F16 | ValueFormat::Bf16 => 2,
        }
    }

    /// The code written in the layout headers.
    fn code(self) -> u8 {
        match self {
            ValueFormat::F32 => 0,
            ValueFormat::F16 => 1,
            ValueFormat::Bf16 => 2,
        }
    }

    fn from_code(c: u8) -> Result<Self> {
        match c {
            0 => Ok(ValueFormat::F32),
            1 => Ok(ValueFormat::F16),
            2 => Ok(ValueFormat::Bf16),
            other => Err(Error::corrupt(
                "sparse layout",
                format!("unknown value format code {other} (0 = f32, 1 = f16, 2 = bf16)"),
            )),
        }
    }

    /// `x` rounded to this format (round to nearest, ties to even), or an
    /// error when it is not finite in the format (f16 overflows above 65504).
    pub fn round(self, x: f32) -> Result<f32> {
        let r = match self {
            ValueFormat::F32 => x,
            ValueFormat::F16 => f16_from_bits(f16_bits(x)),
            ValueFormat::Bf16 => bf16_from_bits(bf16_bits(x)),
        };
        if r.is_finite() {
            Ok(r)
        } else {
            Err(Error::invalid(
                "kept value",
                format!("{x} is not representable as a finite {self:?}; store values as f32"),
            ))
        }
    }

    /// Appends the little-endian bytes of `x` (already representable).
    fn write(self, x: f32, out: &mut Vec<u8>) {
        match self {
            ValueFormat::F32 => out.extend_from_slice(&x.to_le_bytes()),
            ValueFormat::F16 => out.extend_from_slice(&f16_bits(x).to_le_bytes()),
            ValueFormat::Bf16 => out.extend_from_slice(&bf16_bits(x).to_le_bytes()),
        }
    }

    /// Reads one value from exactly [`ValueFormat::bytes`] bytes.
    fn read(self, b: &[u8]) -> f32 {
        match self {
            ValueFormat::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            ValueFormat::F16 => f16_from_bits(u16::from_le_bytes([b[0], b[1]])),
            ValueFormat::Bf16 => bf16_from_bits(u16::from_le_bytes([b[0], b[1]])),
        }
    }

    /// Encodes `values`, checking each is finite in the format and keeps
    /// its bits (the value must already be rounded to the format, so that
    /// the round trip is exact).
    fn encode_all(self, values: &[f32], out: &mut Vec<u8>) -> Result<()> {
        for (k, &v) in values.iter().enumerate() {
            let r = self.round(v)?;
            if r.to_bits() != v.to_bits() {
                return Err(Error::invalid(
                    "kept value",
                    format!(
                        "value {v} at kept index {k} is not exactly representable as {self:?}; \
                         round it first (ValueFormat::round)"
                    ),
                ));
            }
            self.write(v, out);
        }
        Ok(())
    }
}

/// The mask as a flat bitmap: bit `k` (bit `k % 8` of byte `k / 8`) is
/// weight `k = i * cols + j`, 1 = kept; `ceil(rows*cols/8)` bytes, zero
/// padding.
pub fn mask_bitmap(mask: &Mask) -> Vec<u8> {
    let (rows, cols) = mask.shape();
    let mut out = vec![0u8; (rows * cols).div_ceil(8)];
    for i in 0..rows {
        for j in 0..cols {
            if mask.get(i, j) {
                let k = i * cols + j;
                out[k / 8] |= 1 << (k % 8);
            }
        }
    }
    out
}

/// The mask of a flat bitmap written by [`mask_bitmap`].
///
/// # Errors
///
/// [`Error::Corrupt`] when `bytes` is not `ceil(rows*cols/8)` long or has
/// non-zero padding bits.
pub fn mask_from_bitmap(bytes: &[u8], rows: usize, cols: usize) -> Result<Mask> {
    let n = rows
        .checked_mul(cols)
        .ok_or_else(|| Error::corrupt("mask bitmap", "rows * cols overflows"))?;
    if bytes.len() != n.div_ceil(8) {
        return Err(Error::corrupt(
            "mask bitmap",
            format!(
                "a {rows}x{cols} mask needs {} bytes, got {}",
                n.div_ceil(8),
                bytes.len()
            ),
        ));
    }
    if !n.is_multiple_of(8) && bytes[bytes.len() - 1] >> (n % 8) != 0 {
        return Err(Error::corrupt("mask bitmap", "non-zero padding bits"));
    }
    let mut m = Mask::full(rows, cols, false);
    for k in 0..n {
        if bytes[k / 8] >> (k % 8) & 1 == 1 {
            m.set(k / cols, k % cols, true);
        }
    }
    Ok(m)
}

/// Stored bytes of the bitmask layout after its header: the bitmap plus the
/// kept values.
pub fn bitmask_payload_bytes(rows: usize, cols: usize, kept: usize, format: ValueFormat) -> u64 {
    ((rows * cols) as u64).div_ceil(8) + (kept * format.bytes()) as u64
}

const SBM_MAGIC: &[u8; 4] = b"SBM1";
const S24_MAGIC: &[u8; 4] = b"S241";
const SST_MAGIC: &[u8; 4] = b"SST1";
/// Magic, rows, cols, value format.
const HEADER: usize = 4 + 8 + 8 + 1;
/// Bytes of the common header (magic, rows, cols, value format) that every
/// layout here writes before its counted payload; the structured layout adds
/// one axis byte.
pub const HEADER_BYTES: usize = HEADER;

fn header(magic: &[u8; 4], rows: usize, cols: usize, format: ValueFormat, out: &mut Vec<u8>) {
    out.extend_from_slice(magic);
    out.extend_from_slice(&(rows as u64).to_le_bytes());
    out.extend_from_slice(&(cols as u64).to_le_bytes());
    out.push(format.code());
}

fn read_header(bytes: &[u8], magic: &[u8; 4], what: &str) -> Result<(usize, usize, ValueFormat)> {
    if bytes.len() < HEADER {
        return Err(Error::corrupt(
            what,
            format!(
                "{} bytes, shorter than the {HEADER}-byte header",
                bytes.len()
            ),
        ));
    }
    if &bytes[..4] != magic {
        return Err(Error::corrupt(what, format!("bad magic {:?}", &bytes[..4])));
    }
    let rd = |o: usize| -> Result<usize> {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[o..o + 8]);
        usize::try_from(u64::from_le_bytes(b))
            .map_err(|_| Error::corrupt(what, "dimension does not fit in usize"))
    };
    let rows = rd(4)?;
    let cols = rd(12)?;
    rows.checked_mul(cols)
        .filter(|n| *n <= isize::MAX as usize / 8)
        .ok_or_else(|| Error::corrupt(what, format!("{rows}x{cols} is too large")))?;
    Ok((rows, cols, ValueFormat::from_code(bytes[20])?))
}

/// Writes the bitmask layout of a pruned matrix: `mask` and its kept values
/// in row-major order (`values.len() == mask.kept()`), each already
/// representable in `format` (see [`ValueFormat::round`]).
///
/// # Errors
///
/// [`Error::Shape`] when `values` does not hold one value per kept weight;
/// [`Error::InvalidArgument`] when a value is not exactly representable.
pub fn encode_bitmask(mask: &Mask, values: &[f32], format: ValueFormat) -> Result<Vec<u8>> {
    let (rows, cols) = mask.shape();
    if values.len() != mask.kept() {
        return Err(Error::shape(
            "kept values of a bitmask layout",
            mask.kept(),
            values.len(),
        ));
    }
    let mut out = Vec::with_capacity(
        HEADER + bitmask_payload_bytes(rows, cols, values.len(), format) as usize,
    );
    header(SBM_MAGIC, rows, cols, format, &mut out);
    out.extend_from_slice(&mask_bitmap(mask));
    format.encode_all(values, &mut out)?;
    Ok(out)
}

/// A decoded bitmask layout.
#[derive(Clone, Debug, PartialEq)]
pub struct BitmaskSparse {
    /// Which weights are kept.
    pub mask: Mask,
    /// The kept values, row-major.
    pub values: Vec<f32>,
    /// How the values were stored.
    pub format: ValueFormat,
}

impl BitmaskSparse {
    /// The dense matrix, row-major (`rows * cols` values, zeros where pruned).
    pub fn to_dense(&self) -> Vec<f32> {
        scatter(&self.mask, &self.values)
    }
}

/// Scatters kept values (row-major) into a dense row-major matrix.
fn scatter(mask: &Mask, values: &[f32]) -> Vec<f32> {
    let (rows, cols) = mask.shape();
    let mut out = vec![0f32; rows * cols];
    let mut it = values.iter();
    for i in 0..rows {
        for j in 0..cols {
            if mask.get(i, j) {
                out[i * cols + j] = it.next().copied().unwrap_or(0.0);
            }
        }
    }
    out
}

/// Reads the bitmask layout written by [`encode_bitmask`].
///
/// # Errors
///
/// [`Error::Corrupt`] on a bad magic, unknown value format, wrong length or
/// non-zero bitmap padding.
pub fn decode_bitmask(bytes: &[u8]) -> Result<BitmaskSparse> {
    let what = "SBM1 sparse matrix";
    let (rows, cols, format) = read_header(bytes, SBM_MAGIC, what)?;
    let nb = (rows * cols).div_ceil(8);
    let body = &bytes[HEADER..];
    if body.len() < nb {
        return Err(Error::corrupt(
            what,
            format!(
                "truncated: the bitmap needs {nb} bytes, {} remain",
                body.len()
            ),
        ));
    }
    let mask = mask_from_bitmap(&body[..nb], rows, cols)?;
    let kept = mask.kept();
    let vb = format.bytes();
    let rest = &body[nb..];
    if rest.len() != kept * vb {
        return Err(Error::corrupt(
            what,
            format!(
                "{kept} kept values need {} bytes, got {}",
                kept * vb,
                rest.len()
            ),
        ));
    }
    let values = rest.chunks_exact(vb).map(|b| format.read(b)).collect();
    Ok(BitmaskSparse {
        mask,
        values,
        format,
    })
}

/// compressed-tensors' `sparse-24-bitmask` tensors of one 2:4-sparse matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Sparse24 {
    /// Rows of the original matrix.
    pub rows: usize,
    /// Columns of the original matrix (a multiple of 4).
    pub cols: usize,
    /// `(rows, cols/2)` kept values, row-major.
    pub compressed: Vec<f32>,
    /// `(rows, ceil(cols/8))` bytes: each row's mask packed with numpy's
    /// `packbits(bitorder="little")`.
    pub bitmask: Vec<u8>,
}

fn check_24_shape(rows: usize, cols: usize, len: usize) -> Result<()> {
    if !cols.is_multiple_of(4) {
        return Err(Error::invalid(
            "sparse-24 layout",
            format!("the row length {cols} is not a multiple of 4"),
        ));
    }
    if rows.checked_mul(cols) != Some(len) {
        return Err(Error::shape(
            "dense matrix of a sparse-24 layout",
            format!("{rows}x{cols} = {} values", rows.saturating_mul(cols)),
            len,
        ));
    }
    Ok(())
}

impl Sparse24 {
    /// The layout of a 2:4 `mask` over the dense row-major matrix `dense`
    /// (values at pruned positions are ignored).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the mask is not 2:4 (or `cols` is not
    /// a multiple of 4); [`Error::Shape`] when `dense` has the wrong length.
    pub fn from_mask(mask: &Mask, dense: &[f32]) -> Result<Self> {
        let (rows, cols) = mask.shape();
        check_24_shape(rows, cols, dense.len())?;
        if !mask.is_n_of_m(2, 4) {
            return Err(Error::invalid(
                "sparse-24 layout",
                "the mask does not keep exactly 2 of every 4 consecutive weights of each row",
            ));
        }
        let rb = cols.div_ceil(8);
        let mut compressed = Vec::with_capacity(rows * cols / 2);
        let mut bitmask = vec![0u8; rows * rb];
        for i in 0..rows {
            for j in 0..cols {
                if mask.get(i, j) {
                    compressed.push(dense[i * cols + j]);
                    bitmask[i * rb + j / 8] |= 1 << (j % 8);
                }
            }
        }
        Ok(Self {
            rows,
            cols,
            compressed,
            bitmask,
        })
    }

    /// compressed-tensors' own compressor: keeps the 2 largest `|x|` of every
    /// group of 4 consecutive weights of each row (ties: the lower column is
    /// kept).
    ///
    /// # Errors
    ///
    /// As [`Sparse24::from_mask`].
    pub fn compress(dense: &[f32], rows: usize, cols: usize) -> Result<Self> {
        check_24_shape(rows, cols, dense.len())?;
        let mut mask = Mask::full(rows, cols, false);
        for i in 0..rows {
            for g in (0..cols).step_by(4) {
                let mut idx = [g, g + 1, g + 2, g + 3];
                // Largest |x| first; equal magnitudes keep the lower column.
                idx.sort_by(|&a, &b| {
                    dense[i * cols + b]
                        .abs()
                        .total_cmp(&dense[i * cols + a].abs())
                        .then(a.cmp(&b))
                });
                mask.set(i, idx[0], true);
                mask.set(i, idx[1], true);
            }
        }
        Self::from_mask(&mask, dense)
    }

    /// The mask the bitmask describes.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] when the bitmask has the wrong size, non-zero
    /// padding bits, or is not 2:4.
    pub fn mask(&self) -> Result<Mask> {
        let rb = self.cols.div_ceil(8);
        if self.bitmask.len() != self.rows * rb {
            return Err(Error::corrupt(
                "sparse-24 bitmask",
                format!(
                    "{} bytes where ({}, {rb}) are needed",
                    self.bitmask.len(),
                    self.rows
                ),
            ));
        }
        let mut m = Mask::full(self.rows, self.cols, false);
        for i in 0..self.rows {
            let row = &self.bitmask[i * rb..(i + 1) * rb];
            if !self.cols.is_multiple_of(8) && row[rb - 1] >> (self.cols % 8) != 0 {
                return Err(Error::corrupt(
                    "sparse-24 bitmask",
                    format!("non-zero padding bits in row {i}"),
                ));
            }
            for j in 0..self.cols {
                if row[j / 8] >> (j % 8) & 1 == 1 {
                    m.set(i, j, true);
                }
            }
        }
        if !m.is_n_of_m(2, 4) {
            return Err(Error::corrupt(
                "sparse-24 bitmask",
                "not 2 kept weights in every group of 4",
            ));
        }
        if self.compressed.len() != self.rows * self.cols / 2 {
            return Err(Error::corrupt(
                "sparse-24 values",
                format!(
                    "{} values where {} are needed",
                    self.compressed.len(),
                    self.rows * self.cols / 2
                ),
            ));
        }
        Ok(m)
    }

    /// The dense row-major matrix (zeros where pruned).
    ///
    /// # Errors
    ///
    /// As [`Sparse24::mask`].
    pub fn decompress(&self) -> Result<Vec<f32>> {
        Ok(scatter(&self.mask()?, &self.compressed))
    }

    /// Stored bytes of the two tensors with values in `format`.
    pub fn payload_bytes(rows: usize, cols: usize, format: ValueFormat) -> u64 {
        (rows * (cols / 2) * format.bytes() + rows * cols.div_ceil(8)) as u64
    }

    /// Writes the "S241" layout (see the [module documentation](self)); the
    /// values must be representable in `format`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when a value is not exactly representable;
    /// [`Error::Corrupt`] when the struct is inconsistent.
    pub fn to_bytes(&self, format: ValueFormat) -> Result<Vec<u8>> {
        self.mask()?;
        let mut out =
            Vec::with_capacity(HEADER + Self::payload_bytes(self.rows, self.cols, format) as usize);
        header(S24_MAGIC, self.rows, self.cols, format, &mut out);
        format.encode_all(&self.compressed, &mut out)?;
        out.extend_from_slice(&self.bitmask);
        Ok(out)
    }

    /// Reads the "S241" layout; returns the tensors and the value format.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] on a bad magic, wrong length, a row length that is
    /// not a multiple of 4, or a bitmask that is not 2:4.
    pub fn from_bytes(bytes: &[u8]) -> Result<(Self, ValueFormat)> {
        let what = "S241 sparse-24 matrix";
        let (rows, cols, format) = read_header(bytes, S24_MAGIC, what)?;
        if !cols.is_multiple_of(4) {
            return Err(Error::corrupt(
                what,
                format!("row length {cols} is not a multiple of 4"),
            ));
        }
        let body = &bytes[HEADER..];
        let nv = rows * cols / 2;
        let vb = nv * format.bytes();
        let need = Self::payload_bytes(rows, cols, format) as usize;
        if body.len() != need {
            return Err(Error::corrupt(
                what,
                format!(
                    "{rows}x{cols} needs {need} bytes after the header, got {}",
                    body.len()
                ),
            ));
        }
        let compressed = body[..vb]
            .chunks_exact(format.bytes())
            .map(|b| format.read(b))
            .collect();
        let s = Self {
            rows,
            cols,
            compressed,
            bitmask: body[vb..].to_vec(),
        };
        s.mask()?;
        Ok((s, format))
    }
}

/// Which lines a structured mask keeps or prunes whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    /// Output rows.
    Rows,
    /// Input columns.
    Columns,
}

/// Writes the structured layout ("SST1") of a mask that keeps or prunes
/// whole rows (or columns), with its kept values in row-major order.
///
/// # Errors
///
/// [`Error::InvalidArgument`] when the mask is not structured along `axis`
/// or a value is not exactly representable; [`Error::Shape`] when `values`
/// does not hold one value per kept weight.
pub fn encode_structured(
    mask: &Mask,
    values: &[f32],
    format: ValueFormat,
    axis: Axis,
) -> Result<Vec<u8>> {
    let (rows, cols) = mask.shape();
    if values.len() != mask.kept() {
        return Err(Error::shape(
            "kept values of a structured layout",
            mask.kept(),
            values.len(),
        ));
    }
    let lines = match axis {
        Axis::Rows => rows,
        Axis::Columns => cols,
    };
    let at = |line: usize, k: usize| match axis {
        Axis::Rows => mask.get(line, k),
        Axis::Columns => mask.get(k, line),
    };
    let across = match axis {
        Axis::Rows => cols,
        Axis::Columns => rows,
    };
    let mut bitmap = vec![0u8; lines.div_ceil(8)];
    for l in 0..lines {
        let first = across > 0 && at(l, 0);
        if (0..across).any(|k| at(l, k) != first) {
            return Err(Error::invalid(
                "structured layout",
                format!("{axis:?} {l} is neither fully kept nor fully pruned"),
            ));
        }
        if first {
            bitmap[l / 8] |= 1 << (l % 8);
        }
    }
    let mut out = Vec::with_capacity(HEADER + 1 + bitmap.len() + values.len() * format.bytes());
    header(SST_MAGIC, rows, cols, format, &mut out);
    out.push(match axis {
        Axis::Rows => 0,
        Axis::Columns => 1,
    });
    out.extend_from_slice(&bitmap);
    format.encode_all(values, &mut out)?;
    Ok(out)
}

/// Reads the structured layout written by [`encode_structured`].
///
/// # Errors
///
/// [`Error::Corrupt`] on a bad magic or axis byte, wrong length or non-zero
/// bitmap padding, or a shape of more than 64 weights per stored byte (which
/// only a file keeping under 1/128 of its lines could have; such a header is
/// rejected rather than expanded).
pub fn decode_structured(bytes: &[u8]) -> Result<(BitmaskSparse, Axis)> {
    let what = "SST1 structured sparse matrix";
    let (rows, cols, format) = read_header(bytes, SST_MAGIC, what)?;
    let body = &bytes[HEADER..];
    let axis = match body.first() {
        Some(0) => Axis::Rows,
        Some(1) => Axis::Columns,
        Some(b) => return Err(Error::corrupt(what, format!("unknown axis byte {b}"))),
        None => return Err(Error::corrupt(what, "truncated before the axis byte")),
    };
    let (lines, across) = match axis {
        Axis::Rows => (rows, cols),
        Axis::Columns => (cols, rows),
    };
    // The mask is expanded to rows x cols bits, a size the header alone
    // claims: bound it by the bytes actually stored. Every file that keeps
    // at least 1/128 of its lines stores one byte per 64 weights or more.
    if (rows as u128) * (cols as u128) > 64 * bytes.len() as u128 {
        return Err(Error::corrupt(
            what,
            format!(
                "{rows}x{cols} weights from {} bytes: more than 64 weights per stored byte",
                bytes.len()
            ),
        ));
    }
    let nb = lines.div_ceil(8);
    let body = &body[1..];
    if body.len() < nb {
        return Err(Error::corrupt(what, "truncated line bitmap"));
    }
    let bitmap = &body[..nb];
    if !lines.is_multiple_of(8) && bitmap[nb - 1] >> (lines % 8) != 0 {
        return Err(Error::corrupt(what, "non-zero padding bits"));
    }
    let kept_lines = (0..lines)
        .filter(|&l| bitmap[l / 8] >> (l % 8) & 1 == 1)
        .count();
    let kept = kept_lines * across;
    let vb = format.bytes();
    let rest = &body[nb..];
    if rest.len() != kept * vb {
        return Err(Error::corrupt(
            what,
            format!(
                "{kept} kept values need {} bytes, got {}",
                kept * vb,
                rest.len()
            ),
        ));
    }
    let mask = Mask::from_fn(rows, cols, |i, j| {
        let l = match axis {
            Axis::Rows => i,
            Axis::Columns => j,
        };
        bitmap[l / 8] >> (l % 8) & 1 == 1
    });
    let values = rest.chunks_exact(vb).map(|b| format.read(b)).collect();
    Ok((
        BitmaskSparse {
            mask,
            values,
            format,
        },
        axis,
    ))
}

/// Stored bytes of the structured layout after its header and axis byte.
pub fn structured_payload_bytes(lines: usize, kept: usize, format: ValueFormat) -> u64 {
    lines.div_ceil(8) as u64 + (kept * format.bytes()) as u64
}
