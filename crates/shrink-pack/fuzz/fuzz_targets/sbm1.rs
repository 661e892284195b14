//! SBM1 bitmask-sparse decoders (unstructured and structured): any bytes
//! give a matrix or a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shrink_pack::sparse;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = sparse::decode_bitmask(data) {
        let _ = s.to_dense();
    }
    if let Ok((s, _axis)) = sparse::decode_structured(data) {
        let _ = s.to_dense();
    }
});
