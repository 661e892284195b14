//! compressed-tensors reader: the input is a `config.json` text (its length
//! in the first two bytes, little-endian) followed by a safetensors file;
//! opening and decompressing every module gives values or typed errors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shrink_pack::compressed_tensors::{CompressedModel, QuantizationConfig};
use shrink_pack::safetensors_io::{SafetensorsFile, SafetensorsModel};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let len = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let rest = &data[2..];
    let (cfg, st) = rest.split_at(len.min(rest.len()));
    let Ok(config) = QuantizationConfig::from_json_str(&String::from_utf8_lossy(cfg)) else {
        return;
    };
    let Ok(file) = SafetensorsFile::from_bytes(st.to_vec()) else {
        return;
    };
    if let Ok(m) = CompressedModel::new(config, SafetensorsModel::from_file(file)) {
        let names: Vec<String> = m.modules().keys().cloned().collect();
        for p in names {
            let _ = m.decompress(&p);
            let _ = m.quantized_matrix(&p);
        }
    }
});
