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
//!
//! # Pruned then quantized ("SMQ1")
//!
//! A quantized matrix whose weights outside a mask are exactly zero (the
//! joint `sparsegpt:50%:int4:g128` form, or a pruning stage followed by a
//! quantizer restricted to the kept weights) stores the mask and the codes of
//! the **kept** weights only ([`encode_masked`], [`decode_masked`]):
//!
//! ```text
//! offset  size                      field
//! 0       4                         magic "SMQ1"
//! 4       4 + L + 16                spec length, spec text, rows, cols (as SQM1)
//! ...     ceil(rows*cols/8)         mask bitmap: bit k (LSB-first, bit k % 8 of byte k / 8)
//!                                   is weight k = i * cols + j, 1 = kept; padding bits zero
//! ...     ceil(kept*B/8)            codes of the kept weights, row-major, packed at width B
//! ...                               scales, zero points, tensor scale, codebook (as SQM1)
//! ```
//!
//! On decoding, a pruned weight gets the code of 0 under its group's
//! parameters (what GPTQ, SparseGPT's joint mode and restricted RTN store
//! there), so the matrix decodes to exactly the one encoded whenever its
//! pruned codes are those; its reconstruction is zero there either way once
//! the mask is applied. The payload after the header equals
//! [`Reconstruct::storage_on`] of the matrix for that mask (tested).

use crate::bits;
use crate::sparse::{mask_bitmap, mask_from_bitmap};
use shrink_core::{Error, Mask, Reconstruct, Result, StageSpec};
use shrink_quant::matrix::group_layout;
use shrink_quant::{GroupParams, Prepared, QuantSpec, QuantizedMatrix};

const MAGIC: &[u8; 4] = b"SQM1";
const MAGIC_MASKED: &[u8; 4] = b"SMQ1";

/// Serializes a quantized matrix.
pub fn encode(m: &QuantizedMatrix) -> Result<Vec<u8>> {
    encode_layout(m, None)
}

/// Serializes a quantized matrix restricted to `mask` (SMQ1: the bitmap and
/// the kept codes only; see the module documentation).
///
/// Errors: [`Error::Shape`] when the mask's shape differs from the matrix's.
pub fn encode_masked(mask: &Mask, m: &QuantizedMatrix) -> Result<Vec<u8>> {
    if mask.shape() != m.shape() {
        return Err(Error::shape(
            "mask of an SMQ1 matrix",
            format!("{:?}", m.shape()),
            format!("{:?}", mask.shape()),
        ));
    }
    encode_layout(m, Some(mask))
}

fn encode_layout(m: &QuantizedMatrix, mask: Option<&Mask>) -> Result<Vec<u8>> {
    let spec = m.spec();
    let text = spec.to_string();
    let (rows, cols) = m.shape();
    let b = spec.grid.code_bits();
    let mut out = Vec::with_capacity(32 + text.len() + m.storage().bytes() as usize);
    out.extend_from_slice(if mask.is_some() { MAGIC_MASKED } else { MAGIC });
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&(rows as u64).to_le_bytes());
    out.extend_from_slice(&(cols as u64).to_le_bytes());
    match mask {
        None => out.extend_from_slice(&bits::pack(m.codes(), b)?),
        Some(mask) => {
            out.extend_from_slice(&mask_bitmap(mask));
            let kept: Vec<u8> = m
                .codes()
                .iter()
                .enumerate()
                .filter(|(k, _)| mask.get(k / cols, k % cols))
                .map(|(_, &c)| c)
                .collect();
            out.extend_from_slice(&bits::pack(&kept, b)?);
        }
    }
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
    Ok(decode_layout(bytes, false)?.1)
}

/// Deserializes a mask and a quantized matrix written by [`encode_masked`]
/// (pruned weights get the code of 0 under their group's parameters).
pub fn decode_masked(bytes: &[u8]) -> Result<(Mask, QuantizedMatrix)> {
    let (mask, m) = decode_layout(bytes, true)?;
    let mask = mask.ok_or_else(|| Error::corrupt("SMQ1 matrix", "internal: no mask"))?;
    Ok((mask, m))
}

fn decode_layout(bytes: &[u8], masked: bool) -> Result<(Option<Mask>, QuantizedMatrix)> {
    let mut pos = 0;
    let (magic, name) = if masked {
        (MAGIC_MASKED, "SMQ1")
    } else {
        (MAGIC, "SQM1")
    };
    if take(bytes, &mut pos, 4, "magic")? != magic {
        return Err(Error::corrupt(
            "SQM1 matrix",
            format!("bad magic (not an {name} quantized matrix)"),
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
    let (mask, codes) = if masked {
        let bm = take(bytes, &mut pos, n.div_ceil(8), "mask bitmap")?;
        let mask = mask_from_bitmap(bm, rows, cols)?;
        let kept = mask.kept();
        let kc = bits::unpack(
            take(bytes, &mut pos, bits::packed_len(kept, b)?, "kept codes")?,
            b,
            kept,
        )?;
        (Some(mask), kc)
    } else {
        let codes = bits::unpack(
            take(bytes, &mut pos, bits::packed_len(n, b)?, "codes")?,
            b,
            n,
        )?;
        (None, codes)
    };
    let (groups, per_row) = group_layout(spec.granularity, rows, cols)
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
    let codes = match &mask {
        None => codes,
        Some(mask) => {
            // Scatter the kept codes; a pruned weight gets the code of 0.
            let per_group = if groups == 1 { n } else { cols / per_row };
            let mut kept = codes.into_iter();
            let mut all = Vec::with_capacity(n);
            for k in 0..n {
                if mask.get(k / cols, k % cols) {
                    all.push(kept.next().unwrap_or(0));
                } else {
                    let p = params.get(k / per_group).copied().unwrap_or_default();
                    all.push(q.encode_with(0.0, q.scale_value(p.raw_scale), p.zero));
                }
            }
            all
        }
    };
    let m = QuantizedMatrix::from_parts(q, rows, cols, codes, params)?;
    Ok((mask, m))
}
