//! A self-describing byte layout for [`QuantizedMatrix`] ("SQM1"), so that
//! every quantized matrix packs to bytes and back unchanged.
//!
//! ```text
//! offset  size                      field
//! 0       4                         magic "SQM1"
//! 4       4                         u32 LE: length L of the spec text
//! 8       L                         spec text, UTF-8 (recipe arguments, e.g. `int4:g128:asym`)
//! 8+L     8 + 8                     u64 LE rows, u64 LE cols
//! ...     ceil(rows*cols*B/8)       codes, bit-packed at the grid's width B (see [`crate::bits`])
//! ...     groups * S                scales, little-endian, S = 4 (f32), 2 (f16/bf16), 1 (E8M0/E4M3)
//! ...     ceil(groups*B/8)          zero points, bit-packed at width B (asymmetric grids only)
//! ...     4                         f32 LE tensor scale (NVFP4 only)
//! ...     2^B * 4                   f32 LE codebook (Lloyd grids only)
//! ```
//!
//! Everything after the header is exactly what [`Reconstruct::storage`]
//! counts, byte for byte (tested). Decoding checks every length and every
//! invariant of [`QuantizedMatrix::from_parts`]; bad bytes are an error.

use crate::bits;
use shrink_core::{Error, Reconstruct, Result, StageSpec};
use shrink_quant::matrix::group_layout;
use shrink_quant::{GroupParams, Prepared, QuantSpec, QuantizedMatrix};

const MAGIC: &[u8; 4] = b"SQM1";

/// Serializes a quantized matrix.
pub fn encode(m: &QuantizedMatrix) -> Result<Vec<u8>> {
    let spec = m.spec();
    let text = spec.to_string();
    let (rows, cols) = m.shape();
    let b = spec.grid.code_bits();
    let mut out = Vec::with_capacity(32 + text.len() + m.storage().bytes() as usize);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&(rows as u64).to_le_bytes());
    out.extend_from_slice(&(cols as u64).to_le_bytes());
    out.extend_from_slice(&bits::pack(m.codes(), b)?);
    let sb = spec.scale_format.bytes() as usize;
    for p in m.params() {
        out.extend_from_slice(&p.raw_scale.to_le_bytes()[..sb]);
    }
    if spec.grid.has_zero_point() {
        let zeros: Vec<u8> = m.params().iter().map(|p| p.zero).collect();
        out.extend_from_slice(&bits::pack(&zeros, b)?);
    }
    if let Some(g) = m.quantizer().tensor_scale() {
        out.extend_from_slice(&g.to_le_bytes());
    }
    if let Some(cb) = m.quantizer().codebook() {
        for v in cb {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    Ok(out)
}

/// Reads `n` bytes at `*pos`, or fails naming `what`.
fn take<'a>(bytes: &'a [u8], pos: &mut usize, n: usize, what: &str) -> Result<&'a [u8]> {
    let end = pos
        .checked_add(n)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            Error::corrupt(
                "SQM1 matrix",
                format!(
                    "truncated: {what} needs {n} bytes at offset {pos}, only {} remain",
                    bytes.len().saturating_sub(*pos)
                ),
            )
        })?;
    let s = &bytes[*pos..end];
    *pos = end;
    Ok(s)
}

fn u64_at(bytes: &[u8], pos: &mut usize, what: &str) -> Result<u64> {
    let s = take(bytes, pos, 8, what)?;
    Ok(u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
}

/// Deserializes a quantized matrix written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<QuantizedMatrix> {
    let mut pos = 0;
    if take(bytes, &mut pos, 4, "magic")? != MAGIC {
        return Err(Error::corrupt(
            "SQM1 matrix",
            "bad magic (not an SQM1 quantized matrix)",
        ));
    }
    let l = u32::from_le_bytes(
        take(bytes, &mut pos, 4, "spec length")?
            .try_into()
            .unwrap_or([0; 4]),
    ) as usize;
    let text = std::str::from_utf8(take(bytes, &mut pos, l, "spec text")?)
        .map_err(|_| Error::corrupt("SQM1 matrix", "spec text is not UTF-8"))?;
    let stage: StageSpec = format!("q:{text}")
        .parse()
        .map_err(|e| Error::corrupt("SQM1 matrix", format!("bad spec text `{text}`: {e}")))?;
    let spec = QuantSpec::parse_args(&stage, |_| false)
        .map_err(|e| Error::corrupt("SQM1 matrix", format!("bad spec text `{text}`: {e}")))?;
    let rows = u64_at(bytes, &mut pos, "rows")?;
    let cols = u64_at(bytes, &mut pos, "cols")?;
    // A zero dimension would let the other one be anything (2^60 empty rows
    // pass every size check and then take forever to reconstruct); no
    // quantizer produces an empty matrix.
    if rows == 0 || cols == 0 {
        return Err(Error::corrupt(
            "SQM1 matrix",
            format!("{rows}x{cols} has a zero dimension"),
        ));
    }
    let n = rows
        .checked_mul(cols)
        .filter(|&n| n <= bytes.len() as u64 * 8)
        .ok_or_else(|| {
            Error::corrupt(
                "SQM1 matrix",
                format!("{rows}x{cols} cannot fit in {} bytes", bytes.len()),
            )
        })?;
    let (rows, cols, n) = (rows as usize, cols as usize, n as usize);
    let b = spec.grid.code_bits();
    let codes = bits::unpack(
        take(bytes, &mut pos, bits::packed_len(n, b)?, "codes")?,
        b,
        n,
    )?;
    let (groups, _) = group_layout(spec.granularity, rows, cols)
        .map_err(|e| Error::corrupt("SQM1 matrix", e.to_string()))?;
    let sb = spec.scale_format.bytes() as usize;
    let raw = take(bytes, &mut pos, groups * sb, "scales")?;
    let mut params: Vec<GroupParams> = raw
        .chunks_exact(sb)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..sb].copy_from_slice(c);
            GroupParams {
                raw_scale: u32::from_le_bytes(w),
                zero: 0,
            }
        })
        .collect();
    if spec.grid.has_zero_point() {
        let zb = take(bytes, &mut pos, bits::packed_len(groups, b)?, "zero points")?;
        for (p, z) in params.iter_mut().zip(bits::unpack(zb, b, groups)?) {
            p.zero = z;
        }
    }
    let tensor_scale = if spec.grid == shrink_quant::Grid::Nvfp4 {
        Some(f32::from_le_bytes(
            take(bytes, &mut pos, 4, "tensor scale")?
                .try_into()
                .unwrap_or([0; 4]),
        ))
    } else {
        None
    };
    let codebook = if let shrink_quant::Grid::Lloyd { bits: lb } = spec.grid {
        let k = 1usize << lb;
        let cb = take(bytes, &mut pos, 4 * k, "codebook")?;
        Some(
            cb.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap_or([0; 4])))
                .collect(),
        )
    } else {
        None
    };
    if pos != bytes.len() {
        return Err(Error::corrupt(
            "SQM1 matrix",
            format!("{} trailing bytes after the matrix", bytes.len() - pos),
        ));
    }
    let q = Prepared::from_parts(spec, codebook, tensor_scale)?;
    QuantizedMatrix::from_parts(q, rows, cols, codes, params)
}
