//! Every quantized matrix of the foundation recipes packs to bytes and back
//! unchanged, and the payload is exactly what `storage()` counts.

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StudentT};
use shrink_core::{Error, Reconstruct, StageSpec};
use shrink_pack::qmatrix::{decode, encode};
use shrink_quant::{QuantSpec, quantize_rtn};

const RECIPES: &[&str] = &[
    "rtn:int4:g128:sym",
    "rtn:int4:g128:asym",
    "rtn:int3:g128:asym",
    "rtn:int2:g64:asym",
    "rtn:int1:g64:asym",
    "rtn:int1:g64:sym",
    "rtn:int5:g32:asym",
    "rtn:int6:channel:asym",
    "rtn:int7:tensor:sym",
    "rtn:int8:channel:sym",
    "rtn:nf4:g64",
    "rtn:nf3:g64",
    "rtn:fp4:g32",
    "rtn:fp6-e2m3:g32",
    "rtn:fp6-e3m2:g32:f32",
    "rtn:mxfp4",
    "rtn:mxfp6",
    "rtn:mxfp6-e3m2",
    "rtn:mxfp8",
    "rtn:mxfp8-e5m2",
    "rtn:nvfp4",
    "rtn:fp8-e4m3:channel",
    "rtn:fp8-e5m2:channel",
    "rtn:lloyd4:g128",
    "rtn:lloyd3:g64",
    "rtn:int4:g128:asym:mse",
    "rtn:int4:g128:sym:bf16",
];

fn weights(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let t = StudentT::new(3.0f32).unwrap();
    Array2::from_shape_fn((rows, cols), |_| 0.05 * t.sample(&mut rng))
}

fn spec(r: &str) -> QuantSpec {
    QuantSpec::parse_args(&r.parse::<StageSpec>().unwrap(), |_| false).unwrap()
}

#[test]
fn every_recipe_round_trips_and_counts_exactly() {
    for (k, r) in RECIPES.iter().enumerate() {
        let w = weights(24, 256, k as u64);
        let m = quantize_rtn(w.view(), &spec(r)).unwrap();
        let bytes = encode(&m).unwrap();
        let header = 4 + 4 + m.spec().to_string().len() + 16;
        assert_eq!(
            (bytes.len() - header) as u64,
            m.storage().bytes(),
            "{r}: payload bytes differ from storage()"
        );
        let back = decode(&bytes).unwrap();
        assert_eq!(back, m, "{r}: round trip changed the matrix");
        assert_eq!(back.to_dense(), m.to_dense(), "{r}");
    }
}

#[test]
fn odd_lengths_round_trip() {
    // 3-bit codes over a row count that leaves a partial last byte.
    let w = weights(7, 96, 9);
    let m = quantize_rtn(w.view(), &spec("rtn:int3:g32:asym")).unwrap();
    assert_eq!(decode(&encode(&m).unwrap()).unwrap(), m);
}

#[test]
fn truncated_extended_and_corrupt_bytes_are_errors() {
    let w = weights(8, 64, 1);
    let m = quantize_rtn(w.view(), &spec("rtn:int4:g32:asym")).unwrap();
    let bytes = encode(&m).unwrap();
    for cut in [0, 3, 8, 20, bytes.len() - 1] {
        assert!(
            matches!(decode(&bytes[..cut]), Err(Error::Corrupt { .. })),
            "cut at {cut}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(decode(&longer), Err(Error::Corrupt { .. })));
    let mut bad_magic = bytes.clone();
    bad_magic[0] = b'X';
    assert!(matches!(decode(&bad_magic), Err(Error::Corrupt { .. })));
    let mut bad_spec = bytes.clone();
    bad_spec[8] = b'z'; // "int4..." -> "znt4..."
    assert!(matches!(decode(&bad_spec), Err(Error::Corrupt { .. })));
    // A zero scale is rejected by the matrix invariants.
    let header = 4 + 4 + m.spec().to_string().len() + 16;
    let scales_at = header + 8 * 64 / 2;
    let mut zero_scale = bytes.clone();
    zero_scale[scales_at] = 0;
    zero_scale[scales_at + 1] = 0;
    assert!(matches!(decode(&zero_scale), Err(Error::Corrupt { .. })));
    // Huge dimensions do not allocate or panic.
    let mut huge = bytes;
    let dims_at = 8 + m.spec().to_string().len();
    huge[dims_at..dims_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(decode(&huge), Err(Error::Corrupt { .. })));
}
