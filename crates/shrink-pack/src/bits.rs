//! Bit packing of unsigned codes of width 1..=8 bits, and group-wise
//! dequantization of packed codes to `f32`.
//!
//! # Layout
//!
//! `count` codes of width `w` form one LSB-first, little-endian bit stream:
//!
//! - code `j` occupies stream bits `[j * w, (j + 1) * w)`, its least
//!   significant bit first;
//! - stream bit `k` is bit `k % 8` (bit 0 = least significant) of byte `k / 8`.
//!
//! The stream takes `ceil(count * w / 8)` bytes ([`packed_len`]). The unused
//! high bits of the last byte are zero; [`unpack`] rejects non-zero padding as
//! corrupt, so every valid byte string decodes to exactly one code sequence.
//!
//! Examples: at width 4, codes `[1, 2]` are the byte `0x21` (first code in the
//! low nibble); at width 1, codes `[1, 0, 1, 1]` are `0b0000_1101`; at width 3,
//! eight codes fill exactly three bytes. Width 8 is the identity.
//!
//! # Speed
//!
//! Every width works on whole bytes, never bit by bit: widths 1, 2 and 4 map
//! each packed byte to 8, 4 or 2 codes with loops the compiler vectorizes;
//! widths 3, 5, 6 and 7 move 8 codes (one `u64`) to or from `w` bytes with
//! three shift-and-mask steps (SWAR) and one unaligned 8-byte load or store
//! per 8 codes; width 8 is a copy. Packing first checks every code with one
//! vectorized OR over the input, so on error nothing has been written.
//!
//! # Dequantization
//!
//! [`dequantize_into`] expands packed codes in groups of `group` consecutive
//! codes, each group with its own scale `s` and zero point `z`:
//! `out[j] = (code_j as f32 - z) * s`, computed exactly in that order (no fused
//! multiply-add), so every implementation gives the same bits.
//! [`dequantize_par_into`] does the same work on the rayon thread pool.
//!
//! Width 4 with an even group size has a dedicated loop that computes the
//! formula directly from each nibble; the compiler vectorizes it, and on the
//! benchmark (16 Mi codes, group 128) it ran about twice as fast as a 16-entry
//! per-group lookup table and far ahead of a 256-entry byte-pair table, whose
//! per-group construction dominates. Other widths unpack blocks of codes to a
//! stack buffer and then apply the same vectorized formula.

use rayon::prelude::*;
use shrink_core::{Error, Result};

/// Checks that `width` is a supported code width (1..=8).
fn check_width(width: u8) -> Result<()> {
    if (1..=8).contains(&width) {
        Ok(())
    } else {
        Err(Error::invalid(
            "width",
            format!("code width must be 1..=8 bits, got {width}"),
        ))
    }
}

/// Number of bytes that `count` codes of `width` bits occupy:
/// `ceil(count * width / 8)`.
///
/// Never overflows, even for `count` near `usize::MAX`.
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `width` is not in 1..=8.
pub fn packed_len(count: usize, width: u8) -> Result<usize> {
    check_width(width)?;
    let w = usize::from(width);
    // (count / 8) * w <= count, so this cannot overflow.
    Ok((count / 8) * w + ((count % 8) * w).div_ceil(8))
}

/// Packs `codes` (each `< 2^width`) into a new byte vector of
/// [`packed_len`]`(codes.len(), width)` bytes, in the layout of the
/// [module documentation](self).
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `width` is not in 1..=8 or a code does not fit
/// in `width` bits.
///
/// # Example
///
/// ```
/// # fn main() -> shrink_core::Result<()> {
/// assert_eq!(shrink_pack::bits::pack(&[1, 2], 4)?, vec![0x21]);
/// # Ok(())
/// # }
/// ```
pub fn pack(codes: &[u8], width: u8) -> Result<Vec<u8>> {
    let mut out = vec![0u8; packed_len(codes.len(), width)?];
    pack_into(codes, width, &mut out)?;
    Ok(out)
}

/// Packs `codes` (each `< 2^width`) into `out`, which must hold exactly
/// [`packed_len`]`(codes.len(), width)` bytes.
///
/// All codes are checked before anything is written, so on error `out` is
/// unchanged.
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `width` is not in 1..=8 or a code does not fit
/// in `width` bits; [`Error::Shape`] if `out` has the wrong length.
pub fn pack_into(codes: &[u8], width: u8, out: &mut [u8]) -> Result<()> {
    let need = packed_len(codes.len(), width)?;
    if out.len() != need {
        return Err(Error::shape(
            format!("packed output for {} codes of width {width}", codes.len()),
            format!("{need} bytes"),
            format!("{} bytes", out.len()),
        ));
    }
    check_codes(codes, width)?;
    match width {
        1 => pack1(codes, out),
        2 => pack2(codes, out),
        3 => pack_swar::<3>(codes, out),
        4 => pack4(codes, out),
        5 => pack_swar::<5>(codes, out),
        6 => pack_swar::<6>(codes, out),
        7 => pack_swar::<7>(codes, out),
        _ => out.copy_from_slice(codes),
    }
    Ok(())
}

/// Unpacks `count` codes of `width` bits from `bytes`, which must hold exactly
/// [`packed_len`]`(count, width)` bytes with zero padding bits.
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `width` is not in 1..=8; [`Error::Corrupt`] if
/// `bytes` has the wrong length or non-zero padding bits.
///
/// # Example
///
/// ```
/// # fn main() -> shrink_core::Result<()> {
/// assert_eq!(shrink_pack::bits::unpack(&[0x21], 4, 2)?, vec![1, 2]);
/// # Ok(())
/// # }
/// ```
pub fn unpack(bytes: &[u8], width: u8, count: usize) -> Result<Vec<u8>> {
    check_packed(bytes, width, count)?;
    let mut out = vec![0u8; count];
    unpack_unchecked(bytes, width, &mut out);
    Ok(out)
}

/// Unpacks `out.len()` codes of `width` bits from `bytes` into `out`. `bytes`
/// must hold exactly [`packed_len`]`(out.len(), width)` bytes with zero
/// padding bits. On error `out` is unchanged.
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `width` is not in 1..=8; [`Error::Corrupt`] if
/// `bytes` has the wrong length or non-zero padding bits.
pub fn unpack_into(bytes: &[u8], width: u8, out: &mut [u8]) -> Result<()> {
    check_packed(bytes, width, out.len())?;
    unpack_unchecked(bytes, width, out);
    Ok(())
}

/// Checks that no code needs more than `width` bits; names the first one that
/// does.
fn check_codes(codes: &[u8], width: u8) -> Result<()> {
    if width >= 8 {
        return Ok(());
    }
    // A branch-free OR over everything vectorizes; search only on failure.
    let all = codes.iter().fold(0u8, |acc, &c| acc | c);
    if all >> width == 0 {
        return Ok(());
    }
    let (index, code) = codes
        .iter()
        .enumerate()
        .find(|&(_, &c)| c >> width != 0)
        .map_or((0, all), |(i, &c)| (i, c));
    Err(Error::invalid(
        "codes",
        format!(
            "code {code} at index {index} does not fit in {width} bits (max {})",
            (1u16 << width) - 1
        ),
    ))
}

/// Checks the width, that `bytes` is exactly the packed length of `count`
/// codes, and that the padding bits of the last byte are zero.
fn check_packed(bytes: &[u8], width: u8, count: usize) -> Result<()> {
    let need = packed_len(count, width)?;
    if bytes.len() != need {
        return Err(Error::corrupt(
            "packed codes",
            format!(
                "{count} codes of width {width} need {need} bytes, got {}",
                bytes.len()
            ),
        ));
    }
    let used = (count % 8) * usize::from(width) % 8;
    if used != 0 {
        let last = bytes[need - 1];
        if last >> used != 0 {
            return Err(Error::corrupt(
                "packed codes",
                format!(
                    "non-zero padding bits in the last byte ({last:#04x}: only the low {used} bits are used)"
                ),
            ));
        }
    }
    Ok(())
}

/// Unpacks after validation: `bytes.len() == packed_len(out.len(), width)`.
fn unpack_unchecked(bytes: &[u8], width: u8, out: &mut [u8]) {
    match width {
        1 => unpack1(bytes, out),
        2 => unpack2(bytes, out),
        3 => unpack_swar::<3>(bytes, out),
        4 => unpack4(bytes, out),
        5 => unpack_swar::<5>(bytes, out),
        6 => unpack_swar::<6>(bytes, out),
        7 => unpack_swar::<7>(bytes, out),
        _ => out.copy_from_slice(bytes),
    }
}

// ---------------------------------------------------------------------------
// Widths 1, 2, 4: one packed byte holds a whole number of codes. Each loop
// reads the codes of one byte as one little-endian integer and merges them
// with shifts; the compiler vectorizes these loops. The codes are already
// checked to fit in their width, so no masking is needed when packing.

fn pack1(codes: &[u8], out: &mut [u8]) {
    let (chunks, tail) = codes.as_chunks::<8>();
    for (o, c) in out.iter_mut().zip(chunks) {
        // Each byte of x is 0 or 1; the multiply gathers byte i's bit to bit
        // 56 + i without carries (checked exhaustively in the tests).
        let x = u64::from_le_bytes(*c);
        *o = (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8;
    }
    if !tail.is_empty() {
        out[out.len() - 1] = tail
            .iter()
            .enumerate()
            .fold(0u8, |acc, (i, &c)| acc | (c << i));
    }
}

fn pack2(codes: &[u8], out: &mut [u8]) {
    let (chunks, tail) = codes.as_chunks::<4>();
    for (o, c) in out.iter_mut().zip(chunks) {
        // Codes at bits 0, 8, 16, 24 -> bits 0, 2, 4, 6.
        let x = u32::from_le_bytes(*c);
        let x = x | (x >> 6);
        *o = (x | (x >> 12)) as u8;
    }
    if !tail.is_empty() {
        out[out.len() - 1] = tail
            .iter()
            .enumerate()
            .fold(0u8, |acc, (i, &c)| acc | (c << (2 * i)));
    }
}

fn pack4(codes: &[u8], out: &mut [u8]) {
    let (chunks, tail) = codes.as_chunks::<2>();
    for (o, c) in out.iter_mut().zip(chunks) {
        let x = u16::from_le_bytes(*c);
        *o = (x | (x >> 4)) as u8;
    }
    if let [c] = tail {
        out[out.len() - 1] = *c;
    }
}

fn unpack1(bytes: &[u8], out: &mut [u8]) {
    let (chunks, tail) = out.as_chunks_mut::<8>();
    for (o, &b) in chunks.iter_mut().zip(bytes) {
        // Replicate b into every byte and keep bit i of byte i; adding 0x7F
        // sets bit 7 of a byte exactly when it is non-zero (no carries, as
        // each byte is at most 0x80).
        let x = (u64::from(b) * 0x0101_0101_0101_0101) & 0x8040_2010_0804_0201;
        let x = ((x + 0x7F7F_7F7F_7F7F_7F7F) & 0x8080_8080_8080_8080) >> 7;
        *o = x.to_le_bytes();
    }
    if let Some(&b) = bytes.last()
        && !tail.is_empty()
    {
        for (i, o) in tail.iter_mut().enumerate() {
            *o = (b >> i) & 1;
        }
    }
}

fn unpack2(bytes: &[u8], out: &mut [u8]) {
    let (chunks, tail) = out.as_chunks_mut::<4>();
    for (o, &b) in chunks.iter_mut().zip(bytes) {
        // Bits 0-3 stay, bits 4-7 move to 16-19; then bits 2-3 and 18-19
        // move up 6 to 8-9 and 24-25.
        let x = u32::from(b);
        let x = (x | (x << 12)) & 0x000F_000F;
        let x = (x | (x << 6)) & 0x0303_0303;
        *o = x.to_le_bytes();
    }
    if let Some(&b) = bytes.last()
        && !tail.is_empty()
    {
        for (i, o) in tail.iter_mut().enumerate() {
            *o = (b >> (2 * i)) & 3;
        }
    }
}

fn unpack4(bytes: &[u8], out: &mut [u8]) {
    let (chunks, tail) = out.as_chunks_mut::<2>();
    for (o, &b) in chunks.iter_mut().zip(bytes) {
        *o = [b & 15, b >> 4];
    }
    if let ([o], Some(&b)) = (tail, bytes.last()) {
        *o = b & 15;
    }
}

// ---------------------------------------------------------------------------
// Any width: 8 codes <-> W bytes through a u64 (SWAR).

/// Packs 8 codes of `W` bits, one per byte of `x` (little-endian), into the
/// low `8 * W` bits of the result.
#[inline(always)]
fn squeeze<const W: u32>(x: u64) -> u64 {
    const B: u64 = 0x00FF_00FF_00FF_00FF;
    const H: u64 = 0x0000_FFFF_0000_FFFF;
    // Pairs of bytes -> 16-bit lanes of 2W bits.
    let x = (x & B) | (((x >> 8) & B) << W);
    // Pairs of 16-bit lanes -> 32-bit lanes of 4W bits.
    let x = (x & H) | (((x >> 16) & H) << (2 * W));
    // The two halves -> 8W bits.
    (x & 0xFFFF_FFFF) | ((x >> 32) << (4 * W))
}

/// Inverse of [`squeeze`]: spreads the low `8 * W` bits of `x` into 8 codes,
/// one per byte (little-endian). Bits above `8 * W` are ignored.
#[inline(always)]
fn spread<const W: u32>(x: u64) -> u64 {
    let m4 = (1u64 << (4 * W)) - 1;
    let m2 = ((1u64 << (2 * W)) - 1) * 0x0000_0001_0000_0001;
    let m1 = ((1u64 << W) - 1) * 0x0001_0001_0001_0001;
    let x = (x & m4) | (((x >> (4 * W)) & m4) << 32);
    let x = (x & m2) | (((x >> (2 * W)) & m2) << 16);
    (x & m1) | (((x >> W) & m1) << 8)
}

/// Chunks of 8 codes squeezed per block by [`pack_swar`]: the squeezes
/// vectorize, then the block is stored with one 8-byte write per chunk.
const SWAR_BLOCK: usize = 64;

fn pack_swar<const W: u32>(codes: &[u8], out: &mut [u8]) {
    let w = W as usize;
    let (chunks, tail) = codes.as_chunks::<8>();
    // Whole blocks, while their last 8-byte store stays inside `out` (each
    // store writes W bytes of its own and 8 - W bytes the next one
    // overwrites).
    let blocks = (out.len().saturating_sub(8) / (SWAR_BLOCK * w)).min(chunks.len() / SWAR_BLOCK);
    let mut tmp = [0u64; SWAR_BLOCK];
    for (k, c) in chunks.chunks_exact(SWAR_BLOCK).take(blocks).enumerate() {
        for (t, c) in tmp.iter_mut().zip(c) {
            *t = squeeze::<W>(u64::from_le_bytes(*c));
        }
        let start = k * SWAR_BLOCK * w;
        let o = &mut out[start..start + (SWAR_BLOCK - 1) * w + 8];
        for (i, t) in tmp.iter().enumerate() {
            o[i * w..i * w + 8].copy_from_slice(&t.to_le_bytes());
        }
    }
    // The rest chunk by chunk: 8-byte stores while they fit, then through a
    // buffer (which also zero-pads the last, partial chunk).
    let done = blocks * SWAR_BLOCK;
    let (chunks, out) = (&chunks[done..], &mut out[done * w..]);
    let direct = if out.len() >= 8 {
        chunks.len().min((out.len() - 8) / w + 1)
    } else {
        0
    };
    for (i, c) in chunks[..direct].iter().enumerate() {
        let x = squeeze::<W>(u64::from_le_bytes(*c));
        out[i * w..i * w + 8].copy_from_slice(&x.to_le_bytes());
    }
    let rest = chunks[direct..]
        .iter()
        .map(|c| c.as_slice())
        .chain((!tail.is_empty()).then_some(tail));
    for (k, c) in rest.enumerate() {
        let mut buf = [0u8; 8];
        buf[..c.len()].copy_from_slice(c);
        let packed = squeeze::<W>(u64::from_le_bytes(buf)).to_le_bytes();
        let start = (direct + k) * w;
        let end = out.len().min(start + w);
        out[start..end].copy_from_slice(&packed[..end - start]);
    }
}

fn unpack_swar<const W: u32>(bytes: &[u8], out: &mut [u8]) {
    let w = W as usize;
    let (chunks, tail) = out.as_chunks_mut::<8>();
    // Chunks whose 8-byte load stays inside `bytes`: windows at 0, w, 2w...
    let direct = if bytes.len() >= 8 {
        chunks.len().min((bytes.len() - 8) / w + 1)
    } else {
        0
    };
    let (head, rest) = chunks.split_at_mut(direct);
    for (o, b) in head.iter_mut().zip(bytes.array_windows::<8>().step_by(w)) {
        *o = spread::<W>(u64::from_le_bytes(*b)).to_le_bytes();
    }
    // The rest through a buffer, the partial chunk last.
    let rest = rest
        .iter_mut()
        .map(|o| o.as_mut_slice())
        .chain((!tail.is_empty()).then_some(tail));
    for (k, o) in rest.enumerate() {
        let start = (direct + k) * w;
        let end = bytes.len().min(start + w);
        let mut buf = [0u8; 8];
        buf[..end - start].copy_from_slice(&bytes[start..end]);
        let codes = spread::<W>(u64::from_le_bytes(buf)).to_le_bytes();
        o.copy_from_slice(&codes[..o.len()]);
    }
}

// ---------------------------------------------------------------------------
// Dequantization.

/// Checks every argument of the dequantization kernels.
fn check_dequantize(
    bytes: &[u8],
    width: u8,
    group: usize,
    scales: &[f32],
    zeros: &[f32],
    out: &[f32],
) -> Result<()> {
    check_width(width)?;
    if group == 0 {
        return Err(Error::invalid("group", "group size must be at least 1"));
    }
    if !out.len().is_multiple_of(group) {
        return Err(Error::shape(
            format!("dequantized output (group size {group})"),
            format!("a multiple of {group} values"),
            format!("{} values", out.len()),
        ));
    }
    let groups = out.len() / group;
    if scales.len() != groups {
        return Err(Error::shape(
            "scales",
            format!("{groups} (one per group)"),
            scales.len(),
        ));
    }
    if zeros.len() != groups {
        return Err(Error::shape(
            "zeros",
            format!("{groups} (one per group)"),
            zeros.len(),
        ));
    }
    check_packed(bytes, width, out.len())
}

/// Dequantizes packed codes group by group:
/// `out[j] = (code_j as f32 - zeros[j / group]) * scales[j / group]`.
///
/// `bytes` holds `out.len()` codes of `width` bits in the layout of the
/// [module documentation](self); `out.len()` must be a multiple of `group`,
/// and `scales` and `zeros` hold one value per group. The arithmetic is
/// exactly the formula above (a subtraction, then a multiplication, each
/// rounded to `f32`).
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `width` is not in 1..=8 or `group` is 0;
/// [`Error::Shape`] if `out.len()` is not a multiple of `group` or `scales` or
/// `zeros` do not hold `out.len() / group` values; [`Error::Corrupt`] if
/// `bytes` has the wrong length or non-zero padding bits. On error `out` is
/// unchanged.
///
/// # Example
///
/// ```
/// # fn main() -> shrink_core::Result<()> {
/// let mut out = [0.0f32; 4];
/// // Codes [1, 2, 3, 4] at width 4, two groups of two.
/// shrink_pack::bits::dequantize_into(&[0x21, 0x43], 4, 2, &[0.5, 2.0], &[1.0, 3.0], &mut out)?;
/// assert_eq!(out, [0.0, 0.5, 0.0, 2.0]);
/// # Ok(())
/// # }
/// ```
pub fn dequantize_into(
    bytes: &[u8],
    width: u8,
    group: usize,
    scales: &[f32],
    zeros: &[f32],
    out: &mut [f32],
) -> Result<()> {
    check_dequantize(bytes, width, group, scales, zeros, out)?;
    dequantize_unchecked(bytes, width, group, scales, zeros, out);
    Ok(())
}

/// [`dequantize_into`] split over groups on the rayon thread pool. Same
/// arguments, same errors, and bit-for-bit the same output.
///
/// # Errors
///
/// As [`dequantize_into`].
pub fn dequantize_par_into(
    bytes: &[u8],
    width: u8,
    group: usize,
    scales: &[f32],
    zeros: &[f32],
    out: &mut [f32],
) -> Result<()> {
    check_dequantize(bytes, width, group, scales, zeros, out)?;
    let w = usize::from(width);
    // A task covers whole groups and a multiple of 8 codes, so that it starts
    // on a byte boundary: `step` groups are lcm(group, 8) codes.
    let step = 8 / gcd(group, 8);
    let target = 1usize << 16; // codes per task
    let groups_per_task = (target / group).max(1).div_ceil(step) * step;
    let codes_per_task = groups_per_task.saturating_mul(group);
    let bytes_per_task = codes_per_task / 8 * w;
    if codes_per_task >= out.len() {
        dequantize_unchecked(bytes, width, group, scales, zeros, out);
        return Ok(());
    }
    out.par_chunks_mut(codes_per_task)
        .zip(bytes.par_chunks(bytes_per_task))
        .zip(scales.par_chunks(groups_per_task))
        .zip(zeros.par_chunks(groups_per_task))
        .for_each(|(((o, b), s), z)| dequantize_unchecked(b, width, group, s, z, o));
    Ok(())
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Codes unpacked per block by the general dequantization path (a multiple of
/// 8, so blocks start on byte boundaries).
const BLOCK: usize = 1024;

/// Dequantizes after validation.
fn dequantize_unchecked(
    bytes: &[u8],
    width: u8,
    group: usize,
    scales: &[f32],
    zeros: &[f32],
    out: &mut [f32],
) {
    if width == 4 && group.is_multiple_of(2) {
        dequantize4(bytes, group, scales, zeros, out);
        return;
    }
    if width == 8 {
        dequantize_codes(bytes, 0, group, scales, zeros, out);
        return;
    }
    let w = usize::from(width);
    let mut codes = [0u8; BLOCK];
    for (k, o) in out.chunks_mut(BLOCK).enumerate() {
        let start = k * BLOCK / 8 * w;
        let end = bytes.len().min(start + BLOCK / 8 * w);
        let codes = &mut codes[..o.len()];
        unpack_unchecked(&bytes[start..end], width, codes);
        dequantize_codes(codes, k * BLOCK, group, scales, zeros, o);
    }
}

/// `out[i] = (codes[i] - z) * s` with the parameters of the group of code
/// `first + i`.
fn dequantize_codes(
    codes: &[u8],
    first: usize,
    group: usize,
    scales: &[f32],
    zeros: &[f32],
    out: &mut [f32],
) {
    let mut done = 0;
    while done < out.len() {
        let j = first + done;
        let g = j / group;
        let len = (group - j % group).min(out.len() - done);
        let (s, z) = (scales[g], zeros[g]);
        let o = &mut out[done..done + len];
        for (o, &q) in o.iter_mut().zip(&codes[done..done + len]) {
            *o = (f32::from(q) - z) * s;
        }
        done += len;
    }
}

/// Width 4 with an even group: each group is a whole number of bytes. The
/// direct formula vectorizes and beats a per-group lookup table.
fn dequantize4(bytes: &[u8], group: usize, scales: &[f32], zeros: &[f32], out: &mut [f32]) {
    let groups = out
        .chunks_exact_mut(group)
        .zip(bytes.chunks_exact(group / 2))
        .zip(scales.iter().zip(zeros));
    for ((o, b), (&s, &z)) in groups {
        // `group` is even, so the pairs cover the whole group.
        for (o, &b) in o.as_chunks_mut::<2>().0.iter_mut().zip(b) {
            *o = [(f32::from(b & 15) - z) * s, (f32::from(b >> 4) - z) * s];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack1_multiply_gathers_bits() {
        // Exhaustive over all 256 bit patterns of 8 one-bit codes.
        for b in 0u16..256 {
            let codes: Vec<u8> = (0..8).map(|i| ((b >> i) & 1) as u8).collect();
            let mut out = [0u8];
            pack1(&codes, &mut out);
            assert_eq!(u16::from(out[0]), b);
            let mut back = [0u8; 8];
            unpack1(&out, &mut back);
            assert_eq!(back.as_slice(), codes.as_slice());
        }
    }

    #[test]
    fn squeeze_spread_are_inverse() {
        fn check<const W: u32>() {
            let mut state = 0x9E37_79B9_7F4A_7C15u64;
            for _ in 0..10_000 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let codes = state & (((1u64 << W) - 1) * 0x0101_0101_0101_0101);
                let packed = squeeze::<W>(codes);
                if W < 8 {
                    assert_eq!(packed >> (8 * W), 0);
                }
                // Bit-by-bit reference.
                let mut expect = 0u64;
                for i in 0..8 {
                    expect |= ((codes >> (8 * i)) & ((1 << W) - 1)) << (W * i);
                }
                assert_eq!(packed, expect);
                assert_eq!(
                    spread::<W>(packed | u64::MAX.checked_shl(8 * W).unwrap_or(0)),
                    codes
                );
            }
        }
        check::<1>();
        check::<2>();
        check::<3>();
        check::<4>();
        check::<5>();
        check::<6>();
        check::<7>();
        check::<8>();
    }

    #[test]
    fn gcd_small() {
        assert_eq!(gcd(128, 8), 8);
        assert_eq!(gcd(3, 8), 1);
        assert_eq!(gcd(12, 8), 4);
    }
}
