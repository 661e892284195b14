//! Checks shrink's GGUF block quantizers against a directory of golden
//! vectors.
//!
//! ```text
//! cargo run --release --example gguf_vectors -- <dir>
//! ```
//!
//! `<dir>/manifest.json` lists entries with `type`, `case` and `shape`; each
//! entry has `<dir>/<type>/<case>.input.f32` (little-endian f32, row-major),
//! `<case>.bin` (the reference quantized bytes) and `<case>.dequant.f32`
//! (the reference dequantization). For every entry this quantizes the input
//! with shrink, compares the bytes with `.bin`, dequantizes `.bin` with shrink
//! and compares the f32 bits with `.dequant.f32`, and prints one JSON line
//! `{"type","case","bytes_equal","dequant_equal"}` (plus `"error"` when the
//! entry could not be checked). Exits with status 1 if any entry differs or
//! fails, 2 on a usage or manifest error.

use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;

use serde_json::{Value, json};
use shrink::pack::gguf::{GgufType, dequantize, quantize};

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn f32s(bytes: &[u8], path: &Path) -> Result<Vec<f32>, String> {
    if !bytes.len().is_multiple_of(4) {
        return Err(format!(
            "{}: length {} is not a multiple of 4",
            path.display(),
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// `(bytes_equal, dequant_equal)` for one entry.
fn check(dir: &Path, ty: &str, case: &str, shape: &[usize]) -> Result<(bool, bool), String> {
    let t = GgufType::from_str(ty).map_err(|e| e.to_string())?;
    let base = dir.join(ty);
    let input_path = base.join(format!("{case}.input.f32"));
    let input = f32s(&read(&input_path)?, &input_path)?;
    let n: usize = shape.iter().product();
    if input.len() != n {
        return Err(format!(
            "input holds {} values, shape {shape:?} needs {n}",
            input.len()
        ));
    }
    let want_bin = read(&base.join(format!("{case}.bin")))?;
    let deq_path = base.join(format!("{case}.dequant.f32"));
    let want_deq = f32s(&read(&deq_path)?, &deq_path)?;
    let got_bin = quantize(t, &input).map_err(|e| e.to_string())?;
    let bytes_equal = got_bin == want_bin;
    let dequant_equal = match dequantize(t, &want_bin, n) {
        Ok(got) => {
            got.len() == want_deq.len()
                && got
                    .iter()
                    .zip(&want_deq)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
        }
        Err(_) => false,
    };
    Ok((bytes_equal, dequant_equal))
}

fn main() -> ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: gguf_vectors <dir with manifest.json>");
        return ExitCode::from(2);
    };
    let dir = Path::new(&dir);
    let manifest: Value = match read(&dir.join("manifest.json"))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("manifest.json: {e}")))
    {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let Some(entries) = manifest["entries"].as_array() else {
        eprintln!("manifest.json has no `entries` array");
        return ExitCode::from(2);
    };
    let (mut total, mut bad) = (0usize, 0usize);
    for e in entries {
        let ty = e["type"].as_str().unwrap_or("");
        let case = e["case"].as_str().unwrap_or("");
        let shape: Option<Vec<usize>> = e["shape"]
            .as_array()
            .and_then(|s| s.iter().map(|d| d.as_u64().map(|d| d as usize)).collect());
        total += 1;
        let line = match shape
            .ok_or_else(|| "entry has no valid `shape`".to_string())
            .and_then(|s| check(dir, ty, case, &s))
        {
            Ok((b, d)) => {
                bad += usize::from(!(b && d));
                json!({"type": ty, "case": case, "bytes_equal": b, "dequant_equal": d})
            }
            Err(err) => {
                bad += 1;
                json!({"type": ty, "case": case, "bytes_equal": false,
                       "dequant_equal": false, "error": err})
            }
        };
        println!("{line}");
    }
    eprintln!("{} of {total} entries equal, {bad} differ", total - bad);
    if bad == 0 && total > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
