//! safetensors reader: any bytes give a file or a typed error, and every
//! tensor of an accepted file converts or fails typed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shrink_pack::safetensors_io::SafetensorsFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = SafetensorsFile::from_bytes(data.to_vec()) {
        let names: Vec<String> = f.names().map(str::to_string).collect();
        for n in names {
            if let Ok(t) = f.tensor(&n) {
                let _ = t.to_f32();
            }
            let _ = f.tensor_f32(&n);
        }
        let _ = f.metadata().len();
    }
});
