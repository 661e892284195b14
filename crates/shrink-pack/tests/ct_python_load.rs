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
//! compressed-tensors 0.14.x). GPTQ act-order with static groups is
//! exported as `actorder: "weight"`, which 0.20.0 and vLLM 0.33 read.
//! Each case that cannot run is skipped
//! with a printed `SKIPPED` message; the test never fails for a missing
//! interpreter or package.
//!
//! `vllm_loads_our_folders` does the same with vLLM's compressed-tensors
//! loading code (`scripts/vllm_load.py`, interpreter `$SHRINK_VLLM_PYTHON`,
//! skipped when unset): config parsing, scheme selection, parameter creation,
//! weight loading, weight processing and an identity forward.
//! `old_vllm_loads_the_folders_vllm_033_refuses` runs the three folders vLLM
//! 0.33 refuses (act-order, sparse-24-bitmask, and over FP8) through vLLM
//! 0.17.0 with the same script (interpreter `$SHRINK_VLLM_OLD_PYTHON`,
//! skipped when unset).

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::Value;
use shrink_pack::compressed_tensors::{
    CompressedModel, CtFormat, QuantArgs, QuantizationConfig, SparseValues, SparsityConfig,
    Strategy, quantize_fp8, quantize_int, quantize_mxfp4, quantize_nvfp4, write_float_quantized,
    write_folder, write_mxfp4, write_nvfp4, write_pack_quantized, write_pack_quantized_act_order,
    write_sparse24, write_sparse24_fp8,
};
use shrink_pack::safetensors_io::{SafetensorsFile, SafetensorsWriter};
use shrink_pack::sparse::Sparse24;
use shrink_quant::{ActOrderMatrix, Gptq, GptqOutput, quantize_gptq};

const MODULES: [&str; 2] = ["layers.0.q", "layers.0.rand"];

/// vLLM 0.33's refusal of any `sparsity_config` with targets.
const SPARSITY_REMOVED: &str = "Sparsity support has been removed from compressed-tensors";

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

/// A calibration Gram matrix `X^T X` for `n` inputs: `X` is `2n x n`
/// standard normal with a few columns scaled up, so that act-order moves
/// columns.
fn gram(n: usize, seed: u64) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((2 * n, n), |(_, j)| {
        let v: f64 = StandardNormal.sample(&mut rng);
        v * (1.0 + (j * 7 % 11) as f64)
    });
    x.t().dot(&x)
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
    /// vLLM (0.33) refuses this folder's config with an error containing
    /// this text (see `vllm_loads_our_folders`).
    vllm_refuses: Option<&'static str>,
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
        vllm_refuses: None,
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
        vllm_refuses: Some("activation ordering (actorder='group') is no longer supported"),
    });
    // GPTQ with act-order and static groups
    // (`gptq:int4:g128:asym:actorder:static`): columns quantized in
    // act-order, groups contiguous in the original order, so the ordinary
    // pack-quantized layout; compressed-tensors calls this ordering
    // `actorder: "weight"` (alias "static") and both 0.20 and vLLM 0.33
    // accept it, where they refuse `"group"` above.
    let mut st = SafetensorsWriter::new();
    let mut args = None;
    let gptq = Gptq::from_stage(&"gptq:int4:g128:asym:actorder:static".parse().unwrap()).unwrap();
    for (k, (p, r, c, v)) in input("input.safetensors").into_iter().enumerate() {
        let w = Array2::from_shape_vec((r, c), v).unwrap();
        let GptqOutput::Matrix(q) =
            quantize_gptq(w.view(), gram(c, k as u64).view(), &gptq, None).unwrap()
        else {
            panic!("static groups give a plain matrix");
        };
        let mut a = write_pack_quantized(&p, &q, &mut st).unwrap();
        a.actorder = Some("weight".into());
        args = Some(a);
    }
    out.push(Case {
        name: "int4-asym-g128-gptq-actorder-weight",
        tensors: st,
        config: QuantizationConfig::single(CtFormat::PackQuantized, args.unwrap(), None),
        needs_014: false,
        one_ulp: false,
        vllm_refuses: None,
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
        vllm_refuses: None,
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
        vllm_refuses: None,
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
        vllm_refuses: None,
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
        vllm_refuses: Some(SPARSITY_REMOVED),
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
        vllm_refuses: Some(SPARSITY_REMOVED),
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

fn vllm_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/vllm_load.py")
}

/// The interpreter named by `var` (`$SHRINK_VLLM_PYTHON`), if vLLM's
/// compressed-tensors config class imports there.
fn vllm_python(var: &str) -> Result<String, String> {
    let py = match std::env::var(var) {
        Ok(p) if !p.is_empty() => p,
        _ => return Err(format!("${var} is not set")),
    };
    let probe = "from vllm.model_executor.layers.quantization.compressed_tensors\
                 .compressed_tensors import CompressedTensorsConfig";
    match Command::new(&py)
        .env("VLLM_TARGET_DEVICE", "cpu")
        .args(["-c", probe])
        .output()
    {
        Err(e) => Err(format!("{py} not runnable: {e}")),
        Ok(o) if !o.status.success() => Err(format!(
            "{py} cannot import vLLM's CompressedTensorsConfig: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
        Ok(_) => Ok(py),
    }
}

/// Runs `scripts/vllm_load.py` on `dir`; returns its JSON report.
fn run_vllm(py: &str, dir: &Path, out_file: &Path) -> Value {
    let o = Command::new(py)
        .env("VLLM_TARGET_DEVICE", "cpu")
        .arg(vllm_script())
        .arg(dir)
        .arg(out_file)
        .output()
        .expect("run vllm_load.py");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = stdout.lines().last().unwrap_or("");
    match serde_json::from_str::<Value>(line) {
        Ok(v) if o.status.success() => v,
        _ => panic!(
            "{}: vllm_load.py failed (status {}):\n{stdout}\n{}",
            dir.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

/// vLLM acceptance: vLLM's own compressed-tensors code parses each folder's
/// `quantization_config`, picks a scheme per linear, creates the layer
/// parameters, loads every tensor of the folder through vLLM's weight
/// loaders and (where vLLM has a kernel that runs on this machine) runs
/// `process_weights_after_loading` and a forward of the identity matrix,
/// which must give our dequantized weights (rounded to the output dtype, to
/// the tolerance the script reports). See `scripts/vllm_load.py` for which
/// vLLM code runs. Skipped unless `$SHRINK_VLLM_PYTHON` names an
/// interpreter with vLLM; set `SHRINK_VLLM_KEEP=1` to keep the folders.
#[test]
fn vllm_loads_our_folders() {
    let py = match vllm_python("SHRINK_VLLM_PYTHON") {
        Ok(p) => p,
        Err(e) => {
            println!("SKIPPED: vLLM acceptance test ({e})");
            return;
        }
    };
    check_vllm(&py, false);
}

/// The folders vLLM 0.33 refuses (`Case::vllm_refuses`: act-order
/// `weight_g_idx`, `sparse-24-bitmask` with f32 values and over FP8) through
/// an older vLLM whose compressed-tensors support still reads them (0.17.0:
/// `CompressedTensorsWNA16` with `actorder: "group"`, `CompressedTensors24`),
/// with the same script. Skipped unless `$SHRINK_VLLM_OLD_PYTHON` names an
/// interpreter with that vLLM. What runs per folder, and where the CPU stops
/// it, is in `scripts/vllm_load.py` and `scripts/README.md`.
#[test]
fn old_vllm_loads_the_folders_vllm_033_refuses() {
    let py = match vllm_python("SHRINK_VLLM_OLD_PYTHON") {
        Ok(p) => p,
        Err(e) => {
            println!("SKIPPED: older-vLLM acceptance test ({e})");
            return;
        }
    };
    check_vllm(&py, true);
}

/// Runs every case (`old`: only those vLLM 0.33 refuses, none of which may
/// be refused) through `vllm_load.py` with `py` and compares the forwards.
fn check_vllm(py: &str, old: bool) {
    let tag = if old {
        "shrink-vllm-old"
    } else {
        "shrink-vllm"
    };
    let root = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    let (mut loaded, mut refused, mut forwards) = (0, 0, 0);
    let mut all: Vec<Case> = cases()
        .into_iter()
        .filter(|c| !old || c.vllm_refuses.is_some())
        .collect();
    for case in &mut all {
        write_folder(root.join(case.name), &mut case.tensors, &case.config).unwrap();
    }
    for case in all {
        let dir = root.join(case.name);
        let out_file = dir.join("vllm_forward.safetensors");
        let info = run_vllm(py, &dir, &out_file);
        let version = info["vllm"].as_str().unwrap_or("?").to_string();
        if info["status"] == "refused" {
            let err = info["error"].as_str().unwrap_or("");
            if err.contains("amd-quark package not available") {
                println!(
                    "SKIPPED: {}: vLLM's MXFP4 emulation kernel needs amd-quark",
                    case.name
                );
                continue;
            }
            match case.vllm_refuses {
                Some(want) if !old && err.contains(want) => {
                    println!(
                        "{}: refused by vLLM {version} as expected: {err}",
                        case.name
                    );
                    refused += 1;
                    continue;
                }
                _ => panic!("{}: vLLM {version} refused the folder: {err}", case.name),
            }
        }
        assert_eq!(info["status"], "loaded", "{}: {info}", case.name);
        let ours = CompressedModel::open(&dir).unwrap();
        let theirs = out_file
            .exists()
            .then(|| SafetensorsFile::open(&out_file).unwrap());
        let mut notes = vec![];
        for p in MODULES {
            let m = &info["modules"][p];
            let scheme = m["scheme"].as_str().unwrap_or("?");
            let Some(dtype) = m["forward_dtype"].as_str() else {
                notes.push(format!(
                    "{p}: {scheme}, loaded; forward {}",
                    m["forward"].as_str().unwrap_or("?")
                ));
                continue;
            };
            let tol = m["tolerance"].as_f64().unwrap_or(0.0) as f32;
            let (r, c, want) = ours.decompress(p).unwrap();
            let (shape, got) = theirs
                .as_ref()
                .expect("forward output")
                .tensor_f32(&format!("{p}.identity_forward"))
                .unwrap();
            // y = I * W^T: element (j, i) is weight (i, j).
            assert_eq!(shape, vec![c, r], "{}/{p}: forward shape", case.name);
            let (mut exact, mut worst) = (0usize, 0f32);
            for i in 0..r {
                for j in 0..c {
                    let a = round_to(dtype, want[i * c + j]);
                    let b = got[j * r + i];
                    let d = (a - b).abs();
                    assert!(
                        d <= tol * a.abs().max(f32::MIN_POSITIVE),
                        "{}/{p}: weight ({i}, {j}): ours {} (as {dtype}: {a}), vLLM forward {b} (tolerance {tol})",
                        case.name,
                        want[i * c + j]
                    );
                    exact += usize::from(d == 0.0);
                    worst = worst.max(d / a.abs().max(f32::MIN_POSITIVE));
                }
            }
            forwards += 1;
            notes.push(format!(
                "{p}: {scheme} via {}, {} in {dtype}: {exact} of {} equal, worst rel {worst:e}",
                m["kernel"].as_str().unwrap_or("?"),
                m["forward"].as_str().unwrap_or("forward"),
                r * c
            ));
        }
        println!(
            "{}: loaded by vLLM {version} ({} tensors consumed); {}",
            case.name,
            info["consumed"],
            notes.join("; ")
        );
        loaded += 1;
    }
    println!(
        "vLLM: {loaded} folders loaded ({forwards} module forwards checked), {refused} refused as expected"
    );
    if std::env::var_os("SHRINK_VLLM_KEEP").is_some() {
        println!("folders kept in {}", root.display());
    } else {
        std::fs::remove_dir_all(&root).ok();
    }
}
