//! SQM1 quantized-matrix decoder: any bytes give a matrix or a typed error,
//! and a decoded matrix reconstructs and re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shrink_core::Reconstruct;
use shrink_pack::qmatrix;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = qmatrix::decode(data) {
        let _ = m.to_dense();
        let again = qmatrix::encode(&m).expect("a decoded matrix encodes");
        let m2 = qmatrix::decode(&again).expect("re-encoded bytes decode");
        assert_eq!(m2, m, "SQM1 round trip");
    }
});
