//! Inputs found by the cargo-fuzz targets in `fuzz/` (each hung the decoder
//! before its fix); they must now fail fast with a typed error.

use shrink_core::Error;

/// SQM1 claiming 2089670227099910145 x 0 weights: every size check passed
/// and reconstruction iterated over 2^60 empty rows.
#[test]
fn sqm1_zero_dimension_is_rejected() {
    let mut b = b"SQM1\x0d\x00\x00\x00int3:g32:asym".to_vec();
    b.extend_from_slice(&2089670227099910145u64.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.push(0);
    assert!(matches!(
        shrink_pack::qmatrix::decode(&b),
        Err(Error::Corrupt { .. })
    ));
}

/// SST1 structured layout claiming 5 x 1358954577 weights with every line
/// pruned, in 23 bytes: the 6.8e9-bit mask was expanded.
#[test]
fn sst1_huge_all_pruned_shape_is_rejected() {
    let b: [u8; 23] = [
        0x53, 0x53, 0x54, 0x31, 0x05, 0, 0, 0, 0, 0, 0, 0, 0x51, 0, 0, 0x51, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert!(matches!(
        shrink_pack::sparse::decode_structured(&b),
        Err(Error::Corrupt { .. })
    ));
}
