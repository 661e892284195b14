//! Layout, round-trip and error tests for `shrink_pack::bits` and
//! `shrink_pack::ternary`.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shrink_core::Error;
use shrink_pack::{bits, ternary};

/// Bit-by-bit reference packer, written straight from the documented layout.
fn pack_ref(codes: &[u8], width: u8) -> Vec<u8> {
    let w = usize::from(width);
    let mut out = vec![0u8; (codes.len() * w).div_ceil(8)];
    for (j, &c) in codes.iter().enumerate() {
        for b in 0..w {
            let k = j * w + b;
            out[k / 8] |= ((c >> b) & 1) << (k % 8);
        }
    }
    out
}

fn is_invalid(r: Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(r, Err(Error::InvalidArgument { .. }))
}

fn is_corrupt(r: Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(r, Err(Error::Corrupt { .. }))
}

fn is_shape(r: Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(r, Err(Error::Shape { .. }))
}

fn random_codes(rng: &mut StdRng, n: usize, width: u8) -> Vec<u8> {
    let max = ((1u16 << width) - 1) as u8;
    (0..n).map(|_| rng.random_range(0..=max)).collect()
}

// ---------------------------------------------------------------------------
// Known bytes.

#[test]
fn known_bytes_every_width() {
    let cases: &[(u8, &[u8], &[u8])] = &[
        (1, &[1, 0, 1, 1], &[0x0D]),
        (1, &[1, 0, 0, 0, 0, 0, 0, 1, 1], &[0x81, 0x01]),
        (2, &[3, 0, 1, 2, 1], &[0x93, 0x01]),
        // 001 | 010 | 011 | 100 | 101 | 110 | 111 | 000, LSB first.
        (3, &[1, 2, 3, 4, 5, 6, 7, 0], &[0xD1, 0x58, 0x1F]),
        (3, &[7], &[0x07]),
        (4, &[1, 2], &[0x21]),
        (4, &[1, 2, 15], &[0x21, 0x0F]),
        (5, &[31, 1, 16], &[0x3F, 0x40]),
        (6, &[0x3F, 0x2A, 0x15, 0x01], &[0xBF, 0x5A, 0x05]),
        (7, &[0x7F, 0x00, 0x55], &[0x7F, 0x40, 0x15]),
        (8, &[1, 2, 255], &[1, 2, 255]),
    ];
    for &(width, codes, bytes) in cases {
        assert_eq!(
            bits::pack(codes, width).unwrap(),
            bytes,
            "pack width {width}"
        );
        assert_eq!(pack_ref(codes, width), bytes, "reference width {width}");
        assert_eq!(
            bits::unpack(bytes, width, codes.len()).unwrap(),
            codes,
            "unpack width {width}"
        );
    }
}

#[test]
fn known_bytes_long_width3() {
    // 64 codes cycling 1..=7,0 are 8 copies of the same 3 bytes; long enough
    // for the 8-byte fast path.
    let codes: Vec<u8> = (0..64).map(|i| ((i + 1) % 8) as u8).collect();
    let bytes: Vec<u8> = [0xD1, 0x58, 0x1F].repeat(8);
    assert_eq!(bits::pack(&codes, 3).unwrap(), bytes);
    assert_eq!(bits::unpack(&bytes, 3, 64).unwrap(), codes);
}

#[test]
fn known_bytes_ternary() {
    assert_eq!(ternary::pack_trits(&[1, 0, -1, 0, 1]).unwrap(), [194]);
    assert_eq!(ternary::pack_trits(&[1; 5]).unwrap(), [242]);
    assert_eq!(ternary::pack_trits(&[-1, -1]).unwrap(), [0]);
    assert_eq!(ternary::pack_trits(&[1, 1]).unwrap(), [8]);
    assert_eq!(ternary::pack_trits(&[0; 6]).unwrap(), [121, 1]);
    assert_eq!(ternary::pack_trits(&[]).unwrap(), Vec::<u8>::new());
    assert_eq!(
        ternary::unpack_trits(&[194, 8], 7).unwrap(),
        [1, 0, -1, 0, 1, 1, 1]
    );
    assert_eq!(ternary::packed_len(0), 0);
    assert_eq!(ternary::packed_len(5), 1);
    assert_eq!(ternary::packed_len(6), 2);
}

#[test]
fn packed_len_values() {
    assert_eq!(bits::packed_len(0, 3).unwrap(), 0);
    assert_eq!(bits::packed_len(1, 3).unwrap(), 1);
    assert_eq!(bits::packed_len(3, 3).unwrap(), 2);
    assert_eq!(bits::packed_len(8, 3).unwrap(), 3);
    assert_eq!(bits::packed_len(9, 7).unwrap(), 8);
    // No overflow near usize::MAX.
    let n = usize::MAX;
    assert_eq!(bits::packed_len(n, 8).unwrap(), n);
    assert_eq!(bits::packed_len(n, 1).unwrap(), n / 8 + 1);
}

// ---------------------------------------------------------------------------
// Errors.

#[test]
fn bad_width_is_invalid() {
    for width in [0u8, 9, 255] {
        assert!(is_invalid(bits::packed_len(4, width)));
        assert!(is_invalid(bits::pack(&[0, 0], width)));
        assert!(is_invalid(bits::pack_into(&[0, 0], width, &mut [0u8; 2])));
        assert!(is_invalid(bits::unpack(&[0, 0], width, 2)));
        assert!(is_invalid(bits::unpack_into(&[0, 0], width, &mut [0u8; 2])));
        assert!(is_invalid(bits::dequantize_into(
            &[0, 0],
            width,
            1,
            &[1.0; 2],
            &[0.0; 2],
            &mut [0.0; 2]
        )));
    }
}

#[test]
fn code_too_big_is_invalid() {
    for width in 1..=7u8 {
        let too_big = 1u8 << width;
        for n in [1usize, 7, 8, 9, 100] {
            let mut codes = vec![0u8; n];
            codes[n - 1] = too_big;
            assert!(is_invalid(bits::pack(&codes, width)), "width {width} n {n}");
            codes[n - 1] = 255;
            assert!(is_invalid(bits::pack(&codes, width)), "width {width} n {n}");
            codes[n - 1] = too_big - 1;
            assert!(bits::pack(&codes, width).is_ok(), "width {width} n {n}");
        }
    }
    // pack_into leaves the output untouched on error.
    let mut out = [0xAAu8; 2];
    assert!(is_invalid(bits::pack_into(&[1, 2, 16], 4, &mut out)));
    assert_eq!(out, [0xAA; 2]);
}

#[test]
fn wrong_lengths() {
    for width in 1..=8u8 {
        for n in [1usize, 5, 8, 13, 64] {
            let codes = vec![0u8; n];
            let len = bits::packed_len(n, width).unwrap();
            let bytes = vec![0u8; len];
            // Truncated and over-long byte strings are corrupt.
            assert!(is_corrupt(bits::unpack(&bytes[..len - 1], width, n)));
            let mut long = bytes.clone();
            long.push(0);
            assert!(is_corrupt(bits::unpack(&long, width, n)));
            assert!(is_corrupt(bits::unpack_into(&long, width, &mut vec![0; n])));
            assert!(is_corrupt(bits::unpack_into(
                &bytes[..len - 1],
                width,
                &mut vec![0; n]
            )));
            // A wrong-sized output buffer for pack_into is a shape error.
            assert!(is_shape(bits::pack_into(
                &codes,
                width,
                &mut vec![0; len + 1]
            )));
            assert!(is_shape(bits::pack_into(
                &codes,
                width,
                &mut vec![0; len - 1]
            )));
        }
    }
    assert!(is_corrupt(ternary::unpack_trits(&[0], 6)));
    assert!(is_corrupt(ternary::unpack_trits(&[0, 0, 0], 6)));
    assert!(is_corrupt(ternary::unpack_trits(&[0], 0)));
}

#[test]
fn nonzero_padding_is_corrupt() {
    for width in 1..=7u8 {
        for n in 1..=16usize {
            let used = n * usize::from(width) % 8;
            if used == 0 {
                continue;
            }
            let len = bits::packed_len(n, width).unwrap();
            for bit in used..8 {
                let mut bytes = vec![0u8; len];
                bytes[len - 1] = 1 << bit;
                assert!(
                    is_corrupt(bits::unpack(&bytes, width, n)),
                    "width {width} n {n} bit {bit}"
                );
            }
            // The highest used bit is fine.
            let mut bytes = vec![0u8; len];
            bytes[len - 1] = 1 << (used - 1);
            assert!(bits::unpack(&bytes, width, n).is_ok());
        }
    }
}

#[test]
fn ternary_errors() {
    assert!(is_corrupt(ternary::unpack_trits(&[243], 5)));
    assert!(is_corrupt(ternary::unpack_trits(&[255], 5)));
    assert!(is_corrupt(ternary::unpack_trits(&[0, 243, 0], 15)));
    assert!(ternary::unpack_trits(&[242], 5).is_ok());
    // Last byte of r trits must be < 3^r.
    for (r, limit) in [(1usize, 3u8), (2, 9), (3, 27), (4, 81)] {
        assert!(ternary::unpack_trits(&[0, limit - 1], 5 + r).is_ok());
        assert!(
            is_corrupt(ternary::unpack_trits(&[0, limit], 5 + r)),
            "r {r}"
        );
        assert!(is_corrupt(ternary::unpack_trits(&[0, 242], 5 + r)), "r {r}");
    }
    for bad in [2i8, -2, 127, -128] {
        assert!(is_invalid(ternary::pack_trits(&[0, 1, bad])));
        assert!(is_invalid(ternary::pack_trits(&[bad; 12])));
    }
}

#[test]
fn dequantize_argument_errors() {
    let bytes = [0u8; 4];
    let mut out = [0.0f32; 8];
    assert!(is_invalid(bits::dequantize_into(
        &bytes,
        4,
        0,
        &[],
        &[],
        &mut out
    )));
    assert!(is_shape(bits::dequantize_into(
        &bytes, 4, 3, &[1.0; 2], &[0.0; 2], &mut out
    )));
    assert!(is_shape(bits::dequantize_into(
        &bytes, 4, 4, &[1.0; 1], &[0.0; 2], &mut out
    )));
    assert!(is_shape(bits::dequantize_par_into(
        &bytes, 4, 4, &[1.0; 2], &[0.0; 3], &mut out
    )));
    assert!(is_corrupt(bits::dequantize_into(
        &bytes[..3],
        4,
        4,
        &[1.0; 2],
        &[0.0; 2],
        &mut out
    )));
    assert!(is_corrupt(bits::dequantize_par_into(
        &[0u8; 5], 4, 4, &[1.0; 2], &[0.0; 2], &mut out
    )));
    // Non-zero padding: 3 codes of width 3 use 9 bits of 2 bytes.
    assert!(is_corrupt(bits::dequantize_into(
        &[0, 0x80],
        3,
        3,
        &[1.0],
        &[0.0],
        &mut [0.0; 3]
    )));
}

// ---------------------------------------------------------------------------
// Dequantization against the naive formula.

fn dequantize_naive(codes: &[u8], group: usize, scales: &[f32], zeros: &[f32]) -> Vec<f32> {
    codes
        .iter()
        .enumerate()
        .map(|(j, &c)| (c as f32 - zeros[j / group]) * scales[j / group])
        .collect()
}

fn assert_same_bits(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    for (j, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.to_bits(), y.to_bits(), "{what}: index {j}: {x} vs {y}");
    }
}

fn check_dequantize(rng: &mut StdRng, width: u8, group: usize, groups: usize) {
    let n = group * groups;
    let codes = random_codes(rng, n, width);
    let bytes = bits::pack(&codes, width).unwrap();
    let scales: Vec<f32> = (0..groups).map(|_| rng.random_range(-2.0..2.0)).collect();
    let zeros: Vec<f32> = (0..groups).map(|_| rng.random_range(-1.0..9.0)).collect();
    let expect = dequantize_naive(&codes, group, &scales, &zeros);
    let what = format!("width {width} group {group} groups {groups}");

    let mut out = vec![f32::NAN; n];
    bits::dequantize_into(&bytes, width, group, &scales, &zeros, &mut out).unwrap();
    assert_same_bits(&out, &expect, &format!("serial {what}"));

    let mut par = vec![f32::NAN; n];
    bits::dequantize_par_into(&bytes, width, group, &scales, &zeros, &mut par).unwrap();
    assert_same_bits(&par, &out, &format!("parallel {what}"));
}

#[test]
fn dequantize_matches_naive_every_width() {
    let mut rng = StdRng::seed_from_u64(7);
    for width in 1..=8u8 {
        for group in [1usize, 2, 3, 5, 32, 128] {
            for groups in [0usize, 1, 2, 7, 33] {
                check_dequantize(&mut rng, width, group, groups);
            }
        }
    }
}

#[test]
fn dequantize_parallel_large_matches_serial() {
    // Large enough that the parallel version splits into many tasks, with
    // group sizes that do not divide 8 and do not start tasks byte-aligned
    // by accident.
    let mut rng = StdRng::seed_from_u64(11);
    for width in 1..=8u8 {
        for (group, groups) in [(1usize, 300_001), (3, 70_001), (32, 9_001), (128, 2_049)] {
            check_dequantize(&mut rng, width, group, groups);
        }
    }
    check_dequantize(&mut rng, 4, 1 << 17, 3);
    check_dequantize(&mut rng, 3, 5, 40_000);
}

// ---------------------------------------------------------------------------
// Round trips.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_every_width(raw in proptest::collection::vec(any::<u8>(), 0..2000)) {
        for width in 1..=8u8 {
            let mask = ((1u16 << width) - 1) as u8;
            let codes: Vec<u8> = raw.iter().map(|&c| c & mask).collect();
            let bytes = bits::pack(&codes, width).unwrap();
            prop_assert_eq!(bytes.len(), (codes.len() * usize::from(width)).div_ceil(8));
            prop_assert_eq!(bytes.len(), bits::packed_len(codes.len(), width).unwrap());
            prop_assert_eq!(&bytes, &pack_ref(&codes, width));
            prop_assert_eq!(&bits::unpack(&bytes, width, codes.len()).unwrap(), &codes);

            let mut out = vec![0u8; bytes.len()];
            bits::pack_into(&codes, width, &mut out).unwrap();
            prop_assert_eq!(&out, &bytes);
            let mut back = vec![0xFFu8; codes.len()];
            bits::unpack_into(&bytes, width, &mut back).unwrap();
            prop_assert_eq!(&back, &codes);
        }
    }

    #[test]
    fn unpack_then_pack_every_valid_stream(
        width in 1..=8u8,
        count in 0usize..2000,
        seed in any::<u64>(),
    ) {
        // Any bytes with zero padding decode, and re-encode to the same bytes.
        let mut rng = StdRng::seed_from_u64(seed);
        let len = bits::packed_len(count, width).unwrap();
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        let used = count * usize::from(width) % 8;
        if used != 0 {
            bytes[len - 1] &= (1u8 << used) - 1;
        }
        let codes = bits::unpack(&bytes, width, count).unwrap();
        prop_assert!(codes.iter().all(|&c| u16::from(c) < 1u16 << width));
        prop_assert_eq!(bits::pack(&codes, width).unwrap(), bytes);
    }

    #[test]
    fn ternary_round_trip(trits in proptest::collection::vec(-1i8..=1, 0..2000)) {
        let bytes = ternary::pack_trits(&trits).unwrap();
        prop_assert_eq!(bytes.len(), trits.len().div_ceil(5));
        prop_assert_eq!(bytes.len(), ternary::packed_len(trits.len()));
        prop_assert!(bytes.iter().all(|&b| b <= 242));
        // Reference: base-3 digits, first trit least significant.
        for (k, &b) in bytes.iter().enumerate() {
            let mut v = 0u32;
            for (i, &t) in trits[5 * k..].iter().take(5).enumerate() {
                v += (t + 1) as u32 * 3u32.pow(i as u32);
            }
            prop_assert_eq!(u32::from(b), v);
        }
        prop_assert_eq!(ternary::unpack_trits(&bytes, trits.len()).unwrap(), trits);
    }

    #[test]
    fn dequantize_random_shapes(
        width in 1..=8u8,
        group in 1usize..200,
        groups in 0usize..20,
        seed in any::<u64>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        check_dequantize(&mut rng, width, group, groups);
    }
}
