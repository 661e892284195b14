//! Acceptance by the `compressed-tensors` Python package: shrink exports
//! folders of every compressed-tensors format it writes, the package loads
//! each one through its own load path (`scripts/ct_load.py`) and the
//! weights it decompresses must equal shrink's decompression.
//!
//! The interpreter is `$SHRINK_CT_PYTHON` (default `python3`) and needs
//! `compressed_tensors` (>= 0.15 takes the `ModelCompressor` lifecycle that
//! transformers runs), torch, safetensors and transformers. Folders that
//! newer packages no longer read (`sparse-24-bitmask`, removed after 0.14;
//! act-order `weight_g_idx`, whose `actorder: "group"` 0.20.0 rejects) run
//! with `$SHRINK_CT014_PYTHON` when it is set (an interpreter with
//! compressed-tensors 0.14.x). Each case that cannot run is skipped
//! with a printed `SKIPPED` message; the test never fails for a missing
//! interpreter or package.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use shrink_pack::compressed_tensors::{
    CompressedModel, CtFormat, QuantArgs, QuantizationConfig, SparseValues, SparsityConfig,
    Strategy, quantize_fp8, quantize_int, quantize_mxfp4, quantize_nvfp4, write_float_quantized,
    write_folder, write_mxfp4, write_nvfp4, write_pack_quantized, write_pack_quantized_act_order,
    write_sparse24, write_sparse24_fp8,
};
use shrink_pack::safetensors_io::{SafetensorsFile, SafetensorsWriter};
use shrink_pack::sparse::Sparse24;
use shrink_quant::ActOrderMatrix;

const MODULES: [&str; 2] = ["layers.0.q", "layers.0.rand"];

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compressed_tensors")
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ct_load.py")
}

fn input(name: &str) -> Vec<(String, usize, usize, Vec<f32>)> {
    let f = SafetensorsFile::open(data().join(name)).unwrap();
    MODULES
        .iter()
        .map(|m| {
            let (shape, v) = f.tensor_f32(&format!("{m}.weight")).unwrap();
            (m.to_string(), shape[0], shape[1], v)
        })
        .collect()
}

/// The interpreter named by `var` (or `default`), if it has the package.
fn python(var: &str, default: Option<&str>) -> Result<String, String> {
    let py = match (std::env::var(var), default) {
        (Ok(p), _) if !p.is_empty() => p,
        (_, Some(d)) => d.to_string(),
        _ => return Err(format!("${var} is not set")),
    };
    match Command::new(&py)
        .args([
            "-c",
            "import compressed_tensors, torch, safetensors; print(compressed_tensors.__version__)",
        ])
        .output()
    {
        Err(e) => Err(format!("{py} not runnable: {e}")),
        Ok(o) if !o.status.success() => Err(format!(
            "{py} lacks compressed_tensors/torch/safetensors: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Ok(_) => Ok(py),
    }
}

/// One exported case: a folder name, its tensors and config.
struct Case {
    name: &'static str,
    tensors: SafetensorsWriter,
    config: QuantizationConfig,
    /// Runs only with a compressed-tensors 0.14 interpreter.
    needs_014: bool,
    /// The package may return values one unit in the last place of its
    /// (16-bit) output dtype away from ours rounded to it.
    one_ulp: bool,
}

fn pack_case(name: &'static str, args: QuantArgs) -> Case {
    let mut st = SafetensorsWriter::new();
    for (p, r, c, v) in input("input.safetensors") {
        let q = quantize_int(&v, r, c, &args).unwrap();
        write_pack_quantized(&p, &q, &mut st).unwrap();
    }
    Case {
        name,
        tensors: st,
        config: QuantizationConfig::single(CtFormat::PackQuantized, args, None),
        needs_014: false,
        one_ulp: false,
    }
}

fn cases() -> Vec<Case> {
    let mut out = vec![
        pack_case("int4-sym-g128", QuantArgs::w4a16()),
        pack_case("int4-asym-g128", QuantArgs::w4a16_asym()),
        pack_case("int8-channel", QuantArgs::w8a16()),
    ];
    // int4 with weight_g_idx (GPTQ act-order): quantize a column
    // permutation of the weights, store codes in the original order.
    let mut st = SafetensorsWriter::new();
    let mut args = None;
    for (p, r, c, v) in input("input.safetensors") {
        let perm: Vec<u32> = (0..c as u32).map(|k| (k * 97) % c as u32).collect();
        let permuted: Vec<f32> = (0..r)
            .flat_map(|i| perm.iter().map(move |&j| (i, j)))
            .map(|(i, j)| v[i * c + j as usize])
            .collect();
        let inner = quantize_int(&permuted, r, c, &QuantArgs::w4a16()).unwrap();
        let a = ActOrderMatrix::new(inner, perm).unwrap();
        args = Some(write_pack_quantized_act_order(&p, &a, &mut st).unwrap());
    }
    // compressed-tensors 0.20.0 refuses the config ("actorder='group' has
    // been removed"), so this case runs with 0.14.
    out.push(Case {
        name: "int4-sym-g128-g_idx",
        tensors: st,
        config: QuantizationConfig::single(CtFormat::PackQuantized, args.unwrap(), None),
        needs_014: true,
        one_ulp: false,
    });
    let mut st = SafetensorsWriter::new();
    for (p, r, c, v) in input("input.safetensors") {
        let q = quantize_fp8(&v, r, c, Strategy::Channel).unwrap();
        write_float_quantized(&p, &q, &mut st).unwrap();
    }
    out.push(Case {
        name: "fp8-channel",
        tensors: st,
        config: QuantizationConfig::single(
            CtFormat::FloatQuantized,
            QuantArgs::fp8(Strategy::Channel),
            Some(QuantArgs::fp8_dynamic_token()),
        ),
        needs_014: false,
        one_ulp: false,
    });
    let mut st = SafetensorsWriter::new();
    for (p, r, c, v) in input("input.safetensors") {
        write_nvfp4(&p, &quantize_nvfp4(&v, r, c).unwrap(), &mut st).unwrap();
    }
    out.push(Case {
        name: "nvfp4",
        tensors: st,
        config: QuantizationConfig::single(CtFormat::Nvfp4PackQuantized, QuantArgs::nvfp4(), None),
        needs_014: false,
        one_ulp: false,
    });
    let mut st = SafetensorsWriter::new();
    for (p, r, c, v) in input("input.safetensors") {
        write_mxfp4(&p, &quantize_mxfp4(&v, r, c).unwrap(), &mut st).unwrap();
    }
    out.push(Case {
        name: "mxfp4",
        tensors: st,
        config: QuantizationConfig::single(CtFormat::Mxfp4PackQuantized, QuantArgs::mxfp4(), None),
        needs_014: false,
        one_ulp: false,
    });
    let sparsity = SparsityConfig {
        global_sparsity: 0.5,
        targets: vec!["Linear".into()],
        ignore: vec![],
    };
    let mut st = SafetensorsWriter::new();
    for (p, r, c, v) in input("input-pruned24.safetensors") {
        let s = Sparse24::compress(&v, r, c).unwrap();
        write_sparse24(&p, &s, SparseValues::F32, &mut st).unwrap();
    }
    out.push(Case {
        name: "sparse-24-bitmask",
        tensors: st,
        config: QuantizationConfig {
            groups: vec![],
            ignore: vec![],
            sparsity: Some(sparsity.clone()),
        },
        needs_014: true,
        one_ulp: false,
    });
    let mut st = SafetensorsWriter::new();
    for (p, r, c, v) in input("input-pruned24.safetensors") {
        let q = quantize_fp8(&v, r, c, Strategy::Channel).unwrap();
        let mask = Sparse24::compress(&v, r, c).unwrap().mask().unwrap();
        write_sparse24_fp8(&p, &q, &mask, &mut st).unwrap();
    }
    let mut config = QuantizationConfig::single(
        CtFormat::FloatQuantized,
        QuantArgs::fp8(Strategy::Channel),
        Some(QuantArgs::fp8_dynamic_token()),
    );
    config.sparsity = Some(sparsity);
    out.push(Case {
        name: "sparse-24-bitmask-fp8-channel",
        tensors: st,
        config,
        needs_014: true,
        // 0.14.0 returns this case in float16 computed as f16(e4m3) *
        // f16(scale) (checked: equal to that on every value of the golden
        // folder), i.e. the f32 scale is rounded first; ours rounded once
        // is up to one f16 ulp away (11% of the values here).
        one_ulp: true,
    });
    out
}

/// Rounds `x` to the dtype the package returned.
fn round_to(dtype: &str, x: f32) -> f32 {
    match dtype {
        "torch.bfloat16" => half::bf16::from_f32(x).to_f32(),
        "torch.float16" => half::f16::from_f32(x).to_f32(),
        _ => x,
    }
}

/// Distance in units in the last place of a 16-bit `dtype` (same sign).
fn ulps16(dtype: &str, a: f32, b: f32) -> u32 {
    let bits = |x: f32| match dtype {
        "torch.bfloat16" => i32::from(half::bf16::from_f32(x).to_bits() as i16),
        _ => i32::from(half::f16::from_f32(x).to_bits() as i16),
    };
    if (a < 0.0) != (b < 0.0) && a != b {
        return u32::MAX;
    }
    bits(a).abs_diff(bits(b))
}

/// Loads `dir` with the package and compares every module; returns a
/// one-line summary.
fn check_case(py: &str, dir: &Path, one_ulp: bool) -> String {
    let out_file = dir.join("package_dequant.safetensors");
    let o = Command::new(py)
        .arg(script())
        .arg(dir)
        .arg(&out_file)
        .output()
        .expect("run ct_load.py");
    assert!(
        o.status.success(),
        "{}: the package failed to load the folder:\n{}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let info: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    let ours = CompressedModel::open(dir).unwrap();
    let theirs = SafetensorsFile::open(&out_file).unwrap();
    let (mut n, mut off) = (0usize, 0usize);
    for p in MODULES {
        let (r, c, want) = ours.decompress(p).unwrap();
        let (shape, got) = theirs.tensor_f32(&format!("{p}.weight")).unwrap();
        assert_eq!(shape, vec![r, c], "{}/{p}: shape", dir.display());
        let dtype = info["dtypes"][p].as_str().unwrap_or("torch.float32");
        let bad = want.iter().zip(&got).position(|(a, b)| {
            let a = round_to(dtype, *a);
            a != *b && !(one_ulp && dtype != "torch.float32" && ulps16(dtype, a, *b) <= 1)
        });
        off += want
            .iter()
            .zip(&got)
            .filter(|(a, b)| round_to(dtype, **a) != **b)
            .count();
        assert!(
            bad.is_none(),
            "{}/{p}: value {} differs: ours {} (as {dtype}: {}), package {}",
            dir.display(),
            bad.unwrap_or(0),
            want[bad.unwrap_or(0)],
            round_to(dtype, want[bad.unwrap_or(0)]),
            got[bad.unwrap_or(0)]
        );
        n += want.len();
    }
    format!(
        "{} of {n} values equal, {off} one ulp off (package {} via {}, dtypes {})",
        n - off,
        info["compressed_tensors"],
        info["path"],
        info["dtypes"]
    )
}

#[test]
fn compressed_tensors_package_loads_our_folders() {
    let new = python("SHRINK_CT_PYTHON", Some("python3"));
    let old = python("SHRINK_CT014_PYTHON", None);
    if let (Err(a), Err(b)) = (&new, &old) {
        println!("SKIPPED: compressed-tensors acceptance test ({a}; {b})");
        return;
    }
    let root = std::env::temp_dir().join(format!("shrink-ct-python-{}", std::process::id()));
    let mut checked = 0;
    for mut case in cases() {
        let py = if case.needs_014 { &old } else { &new };
        let py = match py {
            Ok(p) => p,
            Err(e) => {
                println!("SKIPPED: {}: {e}", case.name);
                continue;
            }
        };
        let dir = root.join(case.name);
        write_folder(&dir, &mut case.tensors, &case.config).unwrap();
        let summary = check_case(py, &dir, case.one_ulp);
        println!("{}: {summary}", case.name);
        checked += 1;
    }
    println!("{checked} folders accepted by the compressed-tensors package");
    std::fs::remove_dir_all(&root).ok();
}
