//! The sparse layouts: exact round trips, sizes in bits/weight, the
//! compressed-tensors bit order, and corrupt input.

use shrink_core::{Error, Mask};
use shrink_pack::sparse::{
    self, Axis, Sparse24, ValueFormat, bitmask_payload_bytes, decode_bitmask, encode_bitmask,
    mask_bitmap, mask_from_bitmap,
};

fn values_for(mask: &Mask, f: ValueFormat) -> Vec<f32> {
    (0..mask.kept())
        .map(|k| f.round((k as f32 - 7.3) * 0.173).unwrap())
        .collect()
}

#[test]
fn bitmask_round_trips_exactly() {
    for (rows, cols) in [(3, 5), (8, 8), (1, 1), (7, 13)] {
        let mask = Mask::from_fn(rows, cols, |i, j| (i * 7 + j * 3) % 5 < 2);
        for f in [ValueFormat::F32, ValueFormat::F16, ValueFormat::Bf16] {
            let v = values_for(&mask, f);
            let bytes = encode_bitmask(&mask, &v, f).unwrap();
            assert_eq!(
                (bytes.len() - sparse::HEADER_BYTES) as u64,
                bitmask_payload_bytes(rows, cols, v.len(), f)
            );
            let d = decode_bitmask(&bytes).unwrap();
            assert_eq!(d.mask, mask);
            assert_eq!(d.format, f);
            assert_eq!(
                d.values.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
            assert_eq!(mask.bitmap_bytes() as usize, mask_bitmap(&mask).len());
        }
    }
    // Bit order: weight k is bit k % 8 of byte k / 8.
    let mask = Mask::from_fn(2, 5, |i, j| (i, j) == (0, 1) || (i, j) == (1, 4));
    assert_eq!(mask_bitmap(&mask), vec![0b0000_0010, 0b0000_0010]);
    assert_eq!(mask_from_bitmap(&[0b10, 0b10], 2, 5).unwrap(), mask);
}

#[test]
fn bitmask_rejects_bad_input() {
    let mask = Mask::full(3, 3, true);
    assert!(matches!(
        encode_bitmask(&mask, &[1.0; 8], ValueFormat::F16),
        Err(Error::Shape { .. })
    ));
    // Not representable in f16 without rounding.
    assert!(matches!(
        encode_bitmask(&mask, &[0.1; 9], ValueFormat::F16),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(ValueFormat::F16.round(70000.0).is_err());
    let good = encode_bitmask(&mask, &[0.5; 9], ValueFormat::F16).unwrap();
    for bad in [
        &good[..good.len() - 1],
        &good[..10],
        &[b"XBM1".as_slice(), &good[4..]].concat(),
    ] {
        assert!(matches!(decode_bitmask(bad), Err(Error::Corrupt { .. })));
    }
    // Padding bits must be zero.
    let mut pad = good.clone();
    pad[sparse::HEADER_BYTES + 1] |= 0x80;
    assert!(matches!(decode_bitmask(&pad), Err(Error::Corrupt { .. })));
    let mut fmt = good;
    fmt[20] = 9;
    assert!(matches!(decode_bitmask(&fmt), Err(Error::Corrupt { .. })));
}

#[test]
fn sparse24_matches_compressed_tensors() {
    // Row-major dense (2 x 8); keep the 2 largest |x| of each group of 4.
    let dense = [
        1.0f32, -4.0, 3.0, 0.5, /**/ 0.0, 0.25, -0.125, 2.0, //
        -1.0, 1.0, 1.0, -1.0, /**/ 5.0, 6.0, 7.0, 8.0,
    ];
    let s = Sparse24::compress(&dense, 2, 8).unwrap();
    assert_eq!(
        s.compressed,
        vec![-4.0, 3.0, 0.25, 2.0, -1.0, 1.0, 7.0, 8.0]
    );
    // numpy.packbits(bitorder="little") per row: column 8c + b is bit b of byte c.
    assert_eq!(s.bitmask, vec![0b1010_0110, 0b1100_0011]);
    assert_eq!(s.decompress().unwrap(), {
        let mut d = dense.to_vec();
        for (k, x) in d.iter_mut().enumerate() {
            if !s.mask().unwrap().get(k / 8, k % 8) {
                *x = 0.0;
            }
        }
        d
    });
    for f in [ValueFormat::F32, ValueFormat::F16, ValueFormat::Bf16] {
        let bytes = s.to_bytes(f).unwrap();
        assert_eq!(
            (bytes.len() - sparse::HEADER_BYTES) as u64,
            Sparse24::payload_bytes(2, 8, f)
        );
        let (back, bf) = Sparse24::from_bytes(&bytes).unwrap();
        assert_eq!(bf, f);
        assert_eq!(back, s);
    }
    // 9 bits per weight with f16 values, 17 with f32.
    assert_eq!(
        Sparse24::payload_bytes(64, 128, ValueFormat::F16) * 8,
        9 * 64 * 128
    );
    assert_eq!(
        Sparse24::payload_bytes(64, 128, ValueFormat::F32) * 8,
        17 * 64 * 128
    );
    // Rows not a multiple of 8 are padded per row.
    let dense12: Vec<f32> = (0..24).map(|k| k as f32).collect();
    let s = Sparse24::compress(&dense12, 2, 12).unwrap();
    assert_eq!(s.bitmask.len(), 4);
    assert_eq!(s.bitmask, vec![0b1100_1100, 0b1100, 0b1100_1100, 0b1100]);
}

#[test]
fn sparse24_rejects_bad_input() {
    let not24 = Mask::from_fn(1, 8, |_, j| j < 3);
    assert!(matches!(
        Sparse24::from_mask(&not24, &[0.0; 8]),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Sparse24::compress(&[0.0; 6], 1, 6),
        Err(Error::InvalidArgument { .. })
    ));
    let s = Sparse24::compress(&[1.0, 2.0, 3.0, 4.0], 1, 4).unwrap();
    let bytes = s.to_bytes(ValueFormat::F16).unwrap();
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] = 0b0111; // three kept in the group
    assert!(matches!(
        Sparse24::from_bytes(&bad),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        Sparse24::from_bytes(&bytes[..bytes.len() - 1]),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn structured_layout_round_trips() {
    let rows_mask = Mask::from_fn(5, 6, |i, _| i != 1 && i != 4);
    let cols_mask = Mask::from_fn(5, 6, |_, j| j % 3 != 0);
    for (mask, axis) in [(rows_mask, Axis::Rows), (cols_mask, Axis::Columns)] {
        let v = values_for(&mask, ValueFormat::F16);
        let bytes = sparse::encode_structured(&mask, &v, ValueFormat::F16, axis).unwrap();
        let lines = if axis == Axis::Rows { 5 } else { 6 };
        assert_eq!(
            (bytes.len() - sparse::HEADER_BYTES - 1) as u64,
            sparse::structured_payload_bytes(lines, v.len(), ValueFormat::F16)
        );
        let (d, a) = sparse::decode_structured(&bytes).unwrap();
        assert_eq!(a, axis);
        assert_eq!(d.mask, mask);
        assert_eq!(d.values, v);
    }
    let unstructured = Mask::from_fn(2, 2, |i, j| i == j);
    assert!(matches!(
        sparse::encode_structured(&unstructured, &[1.0, 1.0], ValueFormat::F16, Axis::Rows),
        Err(Error::InvalidArgument { .. })
    ));
}
