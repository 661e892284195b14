//! GGUF v3 reader and every block decoder (the decode-only i-quants and
//! NVFP4 included): any bytes give a file or a typed error, and every tensor
//! of an accepted file decodes or fails typed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shrink_core::Reconstruct;
use shrink_pack::gguf::iquants::{self, DecodeOnlyType};
use shrink_pack::gguf::{GgufFile, GgufHeader, GgufMatrix, GgufType, dequantize};

fuzz_target!(|data: &[u8]| {
    let _ = GgufHeader::parse(data);
    if let Ok(f) = GgufFile::from_bytes(data.to_vec()) {
        for name in f
            .tensors()
            .iter()
            .map(|t| t.name().to_string())
            .collect::<Vec<_>>()
        {
            let _ = f.tensor_bytes(&name);
            let _ = f.tensor_f32(&name);
        }
        let _ = f.metadata().len();
    }
    // The raw block decoders on the same bytes, as every type.
    for t in GgufType::ALL {
        let nb = data.len() / t.type_size();
        let n = nb * t.block_size();
        let bytes = &data[..nb * t.type_size()];
        let _ = dequantize(t, bytes, n);
        let _ = dequantize(t, data, n);
        if nb > 0
            && let Ok(m) = GgufMatrix::from_bytes(t, 1, n, bytes.to_vec())
        {
            let _ = m.to_dense();
        }
    }
    // The decode-only block types (i-quants, NVFP4).
    for t in DecodeOnlyType::ALL {
        let nb = data.len() / t.type_size();
        let n = nb * t.block_size();
        let _ = iquants::dequantize(t, &data[..nb * t.type_size()], n);
        let _ = iquants::dequantize(t, data, n);
    }
});
