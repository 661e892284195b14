//! Ternary packing: trits in {-1, 0, 1}, five per byte in base 3.
//!
//! # Layout
//!
//! Trit `t_i` becomes the digit `d_i = t_i + 1` in {0, 1, 2}. Each run of five
//! trits is one byte
//!
//! ```text
//! byte = d_0 + 3 d_1 + 9 d_2 + 27 d_3 + 81 d_4      (0..=242)
//! ```
//!
//! so the first trit is the least significant digit. `count` trits take
//! `ceil(count / 5)` bytes ([`packed_len`]); when `count % 5 = r > 0`, the last
//! byte holds the remaining `r` trits with the unused digits zero, so it is
//! below `3^r`. [`unpack_trits`] rejects any other byte value as corrupt, so
//! every valid byte string decodes to exactly one trit sequence.
//!
//! Since `3^5 = 243 <= 256`, this costs 8 / 5 = 1.6 bits per trit, against 2
//! bits for plain 2-bit codes and the information-theoretic log2(3) = 1.585.
//!
//! # Example
//!
//! ```
//! # fn main() -> shrink_core::Result<()> {
//! use shrink_pack::ternary::{pack_trits, unpack_trits};
//! // Digits [2, 1, 0, 1, 2] -> 2 + 3 + 0 + 27 + 162 = 194.
//! let bytes = pack_trits(&[1, 0, -1, 0, 1])?;
//! assert_eq!(bytes, vec![194]);
//! assert_eq!(unpack_trits(&bytes, 5)?, vec![1, 0, -1, 0, 1]);
//! # Ok(())
//! # }
//! ```

use shrink_core::{Error, Result};

/// Trits packed per byte.
const PER_BYTE: usize = 5;

/// Largest valid byte: 3^5 - 1.
const MAX_BYTE: u8 = 242;

/// `DECODE[b]` holds the five trits of byte `b` (for `b <= 242`).
static DECODE: [[i8; PER_BYTE]; 243] = {
    let mut table = [[0i8; PER_BYTE]; 243];
    let mut b = 0;
    while b < 243 {
        let mut v = b;
        let mut i = 0;
        while i < PER_BYTE {
            table[b][i] = (v % 3) as i8 - 1;
            v /= 3;
            i += 1;
        }
        b += 1;
    }
    table
};

/// Number of bytes that `count` trits occupy: `ceil(count / 5)`.
pub fn packed_len(count: usize) -> usize {
    count.div_ceil(PER_BYTE)
}

/// Packs trits (each -1, 0 or 1) five per byte, in the layout of the
/// [module documentation](self).
///
/// # Errors
///
/// [`Error::InvalidArgument`] if a trit is outside -1..=1.
pub fn pack_trits(trits: &[i8]) -> Result<Vec<u8>> {
    // Validate first with a branch-free pass that vectorizes; search for the
    // culprit only on failure.
    let bad = trits
        .iter()
        .fold(false, |acc, &t| acc | !(-1..=1).contains(&t));
    if bad {
        let (index, t) = trits
            .iter()
            .enumerate()
            .find(|&(_, t)| !(-1..=1).contains(t))
            .map_or((0, 0), |(i, &t)| (i, t));
        return Err(Error::invalid(
            "trits",
            format!("trit {t} at index {index} is not -1, 0 or 1"),
        ));
    }
    let chunks = trits.chunks_exact(PER_BYTE);
    let tail = chunks.remainder();
    let mut out = Vec::with_capacity(packed_len(trits.len()));
    out.extend(chunks.map(encode));
    if !tail.is_empty() {
        out.push(encode(tail));
    }
    Ok(out)
}

/// Base-3 value of up to five validated trits, first trit least significant.
#[inline(always)]
fn encode(trits: &[i8]) -> u8 {
    trits
        .iter()
        .rev()
        .fold(0u8, |acc, &t| acc * 3 + (t + 1) as u8)
}

/// Unpacks `count` trits from `bytes`, which must hold exactly
/// [`packed_len`]`(count)` bytes in the layout of the
/// [module documentation](self).
///
/// # Errors
///
/// [`Error::Corrupt`] if `bytes` has the wrong length, a byte exceeds 242, or
/// the last byte of a partial run of `r` trits is not below `3^r`.
pub fn unpack_trits(bytes: &[u8], count: usize) -> Result<Vec<i8>> {
    let need = packed_len(count);
    if bytes.len() != need {
        return Err(Error::corrupt(
            "packed trits",
            format!("{count} trits need {need} bytes, got {}", bytes.len()),
        ));
    }
    if let Some(index) = bytes.iter().position(|&b| b > MAX_BYTE) {
        return Err(Error::corrupt(
            "packed trits",
            format!(
                "byte {} at index {index} exceeds {MAX_BYTE} = 3^5 - 1",
                bytes[index]
            ),
        ));
    }
    let r = count % PER_BYTE;
    if r != 0 {
        let last = bytes[need - 1];
        let limit = 3u8.pow(r as u32);
        if last >= limit {
            return Err(Error::corrupt(
                "packed trits",
                format!("last byte {last} holds {r} trits and must be below 3^{r} = {limit}"),
            ));
        }
    }
    let mut out = vec![0i8; count];
    let mut chunks = out.chunks_exact_mut(PER_BYTE);
    for (o, &b) in (&mut chunks).zip(bytes) {
        o.copy_from_slice(&DECODE[usize::from(b)]);
    }
    let tail = chunks.into_remainder();
    if let Some(&b) = bytes.last()
        && !tail.is_empty()
    {
        tail.copy_from_slice(&DECODE[usize::from(b)][..tail.len()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_table_inverts_encode() {
        for b in 0..=MAX_BYTE {
            assert_eq!(encode(&DECODE[usize::from(b)]), b);
        }
    }
}
