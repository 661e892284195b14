//! compressed-tensors (vLLM / llm-compressor) checkpoints: export of
//! quantized and 2:4-pruned Linear weights, `config.json`'s
//! `quantization_config`, and reading such a folder back.
//!
//! Layouts (`docs/algorithms.md` section 10; checked byte for byte against
//! folders written by the `compressed-tensors` Python package, see
//! `tests/data/compressed_tensors/README.md`). For a Linear module `<p>`
//! with weight `(m, n)` (PyTorch `(out, in)`):
//!
//! | format | tensors |
//! |---|---|
//! | `pack-quantized` (int, b bits) | `<p>.weight_packed` I32 `(m, ceil(n b / 32))`: codes `q + 2^(b-1)` as one little-endian bit stream per row (element 0 in the low bits of word 0); `<p>.weight_scale` `(m, n/g)` / `(m, 1)` / `(1,)` in the model dtype; `<p>.weight_zero_point` (asymmetric group/channel) I32 `(ceil(m b / 32), groups)`, the signed zero points `+ 2^(b-1)` packed along dim 0; `<p>.weight_g_idx` I32 `(n,)` (act-order); `<p>.weight_shape` I64 `[m, n]` |
//! | `float-quantized` (FP8) | `<p>.weight` F8_E4M3 `(m, n)`; `<p>.weight_scale` F32 `(m, 1)` or `(1,)` |
//! | `nvfp4-pack-quantized` | `<p>.weight_packed` U8 `(m, n/2)`, E2M1 nibbles (element `2k` low); `<p>.weight_scale` F8_E4M3 `(m, n/16)`; `<p>.weight_global_scale` F32 `(1,)` |
//! | `mxfp4-pack-quantized` | `<p>.weight_packed` U8 `(m, n/2)` as NVFP4; `<p>.weight_scale` U8 `(m, n/32)`, E8M0 exponents (bias 127); no global scale |
//! | `sparse-24-bitmask` | `<p>.compressed` `(m, n/2)` kept values (weight dtype, F8_E4M3 with FP8); `<p>.bitmask` U8 `(m, ceil(n/8))`; `<p>.shape` I64 `(2, 1)`; FP8 adds `<p>.weight_scale` |
//!
//! Dequantization: int `(code - zero) * scale`, FP8 `e4m3(code) * scale`,
//! NVFP4 `e2m1(code) * (e4m3(scale) / global_scale)`, MXFP4 `e2m1(code) *
//! 2^(scale - 127)`.
//!
//! # From shrink's forms
//!
//! The exporters take shrink's own quantized forms: a [`QuantizedMatrix`]
//! over `Grid::Int` (F32/F16/BF16 scales; symmetric codes are `q + 2^(b-1)`
//! already, asymmetric codes and zero points are unsigned, which is exactly
//! the packed form), over `Grid::Float(E4M3)` with F32 scales, or over
//! `Grid::Nvfp4`, or over `Grid::Mx(E2M1)` (MXFP4: E8M0 scales per 32);
//! an [`ActOrderMatrix`] (GPTQ act-order: codes are written
//! in the original column order, scales per permuted group, and
//! `weight_g_idx[perm[k]] = k / g`); and a [`Sparse24`] for 2:4 pruning.
//!
//! # The package's own arithmetic
//!
//! [`quantize_int`], [`quantize_fp8`], [`quantize_nvfp4`] and
//! [`quantize_mxfp4`] quantize with
//! the rules of compressed-tensors' `calculate_qparams` and the MinMax
//! observer (symmetric int scale `absmax / ((qmax - qmin) / 2)`, i.e. `/ 7.5`
//! for int4; asymmetric `(max - min) / (qmax - qmin)` and zero point
//! `round(clamp(qmin - min / scale))`; f32 true division; round half to
//! even), so that exporting their result reproduces the package's bytes
//! exactly. Any other shrink quantizer (RTN with MSE clipping, GPTQ, HQQ)
//! exports the same way with its own scales.
//!
//! # Reading
//!
//! [`CompressedModel::open`] reads `config.json` and the safetensors
//! (single file or shards), lists the compressed modules, and
//! [`CompressedModel::decompress`] returns any module's dense f32 weight;
//! [`CompressedModel::quantized_matrix`] rebuilds a [`QuantizedMatrix`].
//! Every tensor's dtype and shape is checked against the others; bad input
//! is an [`Error::Corrupt`] or [`Error::File`], never a panic.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::{Map, Value, json};
use shrink_core::{Error, Mask, Reconstruct, Result};
use shrink_quant::float::FloatFormat;
use shrink_quant::{
    ActOrderMatrix, Granularity, Grid, GroupParams, Prepared, QuantSpec, QuantizedMatrix,
    ScaleFormat,
};

use crate::bits;
use crate::safetensors_io::{Dtype, RawTensor, SafetensorsModel, SafetensorsWriter, bytes_to_f32};
use crate::sparse::Sparse24;

/// The compressed-tensors version whose `config.json` layout is written.
pub const CT_VERSION: &str = "0.20.0";

// ---------------------------------------------------------------------------
// Config vocabulary
// ---------------------------------------------------------------------------

/// A compression format name (`CompressionFormat` in the package).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CtFormat {
    /// Plain weights.
    Dense,
    /// Integer codes bit-packed into int32 words.
    PackQuantized,
    /// FP8 weights stored as float8 tensors.
    FloatQuantized,
    /// Quantized weights stored unpacked in their quantized dtype.
    NaiveQuantized,
    /// Integer codes stored as int8.
    IntQuantized,
    /// NVFP4: E2M1 nibbles, E4M3 group scales, f32 global scale.
    Nvfp4PackQuantized,
    /// MXFP4: E2M1 nibbles, E8M0 (uint8 exponent) scales per 32 values.
    Mxfp4PackQuantized,
    /// 2:4 sparsity: kept values plus a bitmask.
    Sparse24Bitmask,
}

impl CtFormat {
    /// The name used in `config.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            CtFormat::Dense => "dense",
            CtFormat::PackQuantized => "pack-quantized",
            CtFormat::FloatQuantized => "float-quantized",
            CtFormat::NaiveQuantized => "naive-quantized",
            CtFormat::IntQuantized => "int-quantized",
            CtFormat::Nvfp4PackQuantized => "nvfp4-pack-quantized",
            CtFormat::Mxfp4PackQuantized => "mxfp4-pack-quantized",
            CtFormat::Sparse24Bitmask => "sparse-24-bitmask",
        }
    }
}

impl fmt::Display for CtFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CtFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "dense" => CtFormat::Dense,
            "pack-quantized" => CtFormat::PackQuantized,
            "float-quantized" => CtFormat::FloatQuantized,
            "naive-quantized" => CtFormat::NaiveQuantized,
            "int-quantized" => CtFormat::IntQuantized,
            "nvfp4-pack-quantized" => CtFormat::Nvfp4PackQuantized,
            "mxfp4-pack-quantized" => CtFormat::Mxfp4PackQuantized,
            "sparse-24-bitmask" => CtFormat::Sparse24Bitmask,
            other => {
                return Err(Error::invalid(
                    "compressed-tensors format",
                    format!("`{other}` is not supported"),
                ));
            }
        })
    }
}

/// Which values share a scale (`QuantizationStrategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Strategy {
    /// One scale per tensor.
    Tensor,
    /// One scale per output channel.
    Channel,
    /// One scale per `group_size` inputs of a row.
    Group,
    /// NVFP4: per-group E4M3 scales under one f32 tensor scale.
    TensorGroup,
    /// Activations: one scale per token.
    Token,
}

impl Strategy {
    /// The name used in `config.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Tensor => "tensor",
            Strategy::Channel => "channel",
            Strategy::Group => "group",
            Strategy::TensorGroup => "tensor_group",
            Strategy::Token => "token",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "tensor" => Strategy::Tensor,
            "channel" => Strategy::Channel,
            "group" => Strategy::Group,
            "tensor_group" => Strategy::TensorGroup,
            "token" => Strategy::Token,
            other => {
                return Err(Error::invalid(
                    "quantization strategy",
                    format!("`{other}` is not supported"),
                ));
            }
        })
    }
}

/// Integer or floating-point quantization (`QuantizationType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantKind {
    /// `"int"`.
    Int,
    /// `"float"`.
    Float,
}

/// `QuantizationArgs` of one tensor kind (weights or input activations).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantArgs {
    /// Bits per value.
    pub num_bits: u8,
    /// Integer or float.
    pub kind: QuantKind,
    /// Symmetric (no zero point).
    pub symmetric: bool,
    /// Scale granularity.
    pub strategy: Strategy,
    /// Group size (group and tensor_group strategies).
    pub group_size: Option<usize>,
    /// Scales computed at run time (activations).
    pub dynamic: bool,
    /// `"group"` when weight_g_idx is stored (act-order).
    pub actorder: Option<String>,
    /// Scale dtype, e.g. `"torch.float8_e4m3fn"` for NVFP4.
    pub scale_dtype: Option<String>,
}

impl QuantArgs {
    /// Integer weights: `bits` wide, symmetric or not, per tensor, channel,
    /// or group of `group_size`.
    pub fn int(bits: u8, symmetric: bool, strategy: Strategy, group_size: Option<usize>) -> Self {
        Self {
            num_bits: bits,
            kind: QuantKind::Int,
            symmetric,
            strategy,
            group_size,
            dynamic: false,
            actorder: None,
            scale_dtype: None,
        }
    }

    /// Preset `W4A16`: int4 symmetric, groups of 128.
    pub fn w4a16() -> Self {
        Self::int(4, true, Strategy::Group, Some(128))
    }

    /// Preset `W4A16_ASYM`: int4 asymmetric, groups of 128.
    pub fn w4a16_asym() -> Self {
        Self::int(4, false, Strategy::Group, Some(128))
    }

    /// Preset `W8A16`: int8 symmetric per channel.
    pub fn w8a16() -> Self {
        Self::int(8, true, Strategy::Channel, None)
    }

    /// FP8 E4M3 weights, per channel (`FP8_DYNAMIC`) or per tensor (`FP8`).
    pub fn fp8(strategy: Strategy) -> Self {
        Self {
            num_bits: 8,
            kind: QuantKind::Float,
            symmetric: true,
            strategy,
            group_size: None,
            dynamic: false,
            actorder: None,
            scale_dtype: None,
        }
    }

    /// Dynamic per-token FP8 activations (the input side of `FP8_DYNAMIC`).
    pub fn fp8_dynamic_token() -> Self {
        Self {
            dynamic: true,
            ..Self::fp8(Strategy::Token)
        }
    }

    /// NVFP4 weights (preset `NVFP4A16`).
    pub fn nvfp4() -> Self {
        Self {
            num_bits: 4,
            kind: QuantKind::Float,
            symmetric: true,
            strategy: Strategy::TensorGroup,
            group_size: Some(16),
            dynamic: false,
            actorder: None,
            scale_dtype: Some("torch.float8_e4m3fn".into()),
        }
    }

    /// MXFP4 weights (preset `MXFP4A16`): float, 4 bits, symmetric, groups
    /// of 32, `scale_dtype` `torch.uint8` (E8M0 exponents).
    pub fn mxfp4() -> Self {
        Self {
            num_bits: 4,
            kind: QuantKind::Float,
            symmetric: true,
            strategy: Strategy::Group,
            group_size: Some(32),
            dynamic: false,
            actorder: None,
            scale_dtype: Some("torch.uint8".into()),
        }
    }

    /// The JSON object `config.json` holds (keys sorted; `actorder` and
    /// `scale_dtype` only when set, as version 0.20.0 writes).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("dynamic".into(), json!(self.dynamic));
        m.insert("group_size".into(), json!(self.group_size));
        m.insert("num_bits".into(), json!(self.num_bits));
        m.insert("strategy".into(), json!(self.strategy.as_str()));
        m.insert("symmetric".into(), json!(self.symmetric));
        m.insert(
            "type".into(),
            json!(match self.kind {
                QuantKind::Int => "int",
                QuantKind::Float => "float",
            }),
        );
        if let Some(a) = &self.actorder {
            m.insert("actorder".into(), json!(a));
        }
        if let Some(s) = &self.scale_dtype {
            m.insert("scale_dtype".into(), json!(s));
        }
        Value::Object(m)
    }

    /// Parses the JSON object of `config.json` (extra keys of other versions
    /// are ignored).
    ///
    /// Errors: [`Error::Corrupt`] for missing or mistyped fields.
    pub fn from_json(v: &Value) -> Result<Self> {
        let bad = |r: &str| Error::corrupt("quantization args", r.to_string());
        let num_bits = v["num_bits"]
            .as_u64()
            .filter(|b| (1..=8).contains(b))
            .ok_or_else(|| bad("num_bits must be 1..=8"))? as u8;
        let kind = match v["type"].as_str() {
            Some("int") => QuantKind::Int,
            Some("float") => QuantKind::Float,
            _ => return Err(bad("type must be \"int\" or \"float\"")),
        };
        let strategy = Strategy::parse(v["strategy"].as_str().unwrap_or("tensor"))
            .map_err(|e| bad(&e.to_string()))?;
        let group_size = match &v["group_size"] {
            Value::Null => None,
            g => Some(
                g.as_u64()
                    .filter(|&g| g > 0)
                    .ok_or_else(|| bad("group_size must be a positive integer or null"))?
                    as usize,
            ),
        };
        Ok(Self {
            num_bits,
            kind,
            symmetric: v["symmetric"].as_bool().unwrap_or(true),
            strategy,
            group_size,
            dynamic: v["dynamic"].as_bool().unwrap_or(false),
            actorder: v["actorder"].as_str().map(str::to_string),
            scale_dtype: v["scale_dtype"].as_str().map(str::to_string),
        })
    }
}

/// One entry of `config_groups`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigGroup {
    /// Module classes or `re:` patterns the group applies to.
    pub targets: Vec<String>,
    /// Weight quantization.
    pub weights: Option<QuantArgs>,
    /// Input activation quantization.
    pub input_activations: Option<QuantArgs>,
    /// The group's compression format.
    pub format: CtFormat,
}

/// The `sparsity_config` of a 2:4-pruned model.
#[derive(Clone, Debug, PartialEq)]
pub struct SparsityConfig {
    /// Fraction of pruned weights over the targets (0.5 for 2:4).
    pub global_sparsity: f64,
    /// Module classes or patterns that are sparse.
    pub targets: Vec<String>,
    /// Modules left dense.
    pub ignore: Vec<String>,
}

/// `quantization_config` of `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizationConfig {
    /// `config_groups`, named `group_0`, `group_1`, ... in order.
    pub groups: Vec<ConfigGroup>,
    /// Modules left unquantized.
    pub ignore: Vec<String>,
    /// 2:4 sparsity, when the weights are pruned.
    pub sparsity: Option<SparsityConfig>,
}

impl QuantizationConfig {
    /// One group targeting `Linear` modules.
    pub fn single(
        format: CtFormat,
        weights: QuantArgs,
        input_activations: Option<QuantArgs>,
    ) -> Self {
        Self {
            groups: vec![ConfigGroup {
                targets: vec!["Linear".into()],
                weights: Some(weights),
                input_activations,
                format,
            }],
            ignore: Vec::new(),
            sparsity: None,
        }
    }

    /// The model-level `format`: the groups' format when they agree,
    /// `mixed-precision` otherwise, `dense` without groups.
    pub fn format(&self) -> String {
        let mut fmts = self.groups.iter().map(|g| g.format);
        match fmts.next() {
            None => CtFormat::Dense.as_str().into(),
            Some(f) if fmts.all(|g| g == f) => f.as_str().into(),
            Some(_) => "mixed-precision".into(),
        }
    }

    /// The whole `config.json` object `{"quantization_config": {...}}` in
    /// the layout compressed-tensors 0.20.0 writes.
    pub fn to_json(&self) -> Value {
        let opt = |a: &Option<QuantArgs>| a.as_ref().map_or(Value::Null, QuantArgs::to_json);
        let groups: Map<String, Value> = self
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                (
                    format!("group_{i}"),
                    json!({
                        "format": g.format.as_str(),
                        "input_activations": opt(&g.input_activations),
                        "output_activations": null,
                        "targets": g.targets,
                        "weights": opt(&g.weights),
                    }),
                )
            })
            .collect();
        let sparsity = match &self.sparsity {
            None => json!({}),
            Some(s) => json!({
                "format": CtFormat::Sparse24Bitmask.as_str(),
                "global_sparsity": s.global_sparsity,
                "ignore": s.ignore,
                "sparsity_structure": "2:4",
                "targets": s.targets,
            }),
        };
        json!({"quantization_config": {
            "config_groups": groups,
            "format": self.format(),
            "global_compression_ratio": null,
            "ignore": self.ignore,
            "kv_cache_scheme": null,
            "moe_sparsity_config": null,
            "quant_method": "compressed-tensors",
            "quantization_status": "compressed",
            "sparsity_config": sparsity,
            "transform_config": {},
            "version": CT_VERSION,
        }})
    }

    /// `config.json` text: indent 2, keys sorted (as the package's
    /// `json.dump(..., indent=2, sort_keys=True)`), no trailing newline.
    pub fn to_config_string(&self) -> String {
        let v = sorted(self.to_json());
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    /// Parses `config.json` text (the whole file, or just the
    /// `quantization_config` object).
    ///
    /// Errors: [`Error::Corrupt`] for invalid JSON or fields.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let bad = |r: String| Error::corrupt("compressed-tensors config", r);
        let v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let q = v.get("quantization_config").unwrap_or(&v);
        if q["quant_method"].as_str() != Some("compressed-tensors") {
            return Err(bad("quant_method is not \"compressed-tensors\"".into()));
        }
        let model_format = q["format"].as_str();
        let mut groups = Vec::new();
        if let Some(g) = q["config_groups"].as_object() {
            for (name, g) in g {
                let args = |k: &str| -> Result<Option<QuantArgs>> {
                    match &g[k] {
                        Value::Null => Ok(None),
                        a => QuantArgs::from_json(a).map(Some),
                    }
                };
                let format = g["format"]
                    .as_str()
                    .or(model_format)
                    .ok_or_else(|| bad(format!("{name} has no format")))?;
                groups.push(ConfigGroup {
                    targets: strings(&g["targets"]),
                    weights: args("weights")?,
                    input_activations: args("input_activations")?,
                    format: CtFormat::from_str(format).map_err(|e| bad(e.to_string()))?,
                });
            }
        }
        let sparsity = match q["sparsity_config"].as_object() {
            Some(s) if !s.is_empty() => {
                if s.get("format").and_then(Value::as_str) != Some("sparse-24-bitmask") {
                    return Err(bad(format!(
                        "sparsity format {:?} is not supported",
                        s.get("format")
                    )));
                }
                Some(SparsityConfig {
                    global_sparsity: s
                        .get("global_sparsity")
                        .and_then(Value::as_f64)
                        .unwrap_or(0.5),
                    targets: s.get("targets").map(strings).unwrap_or_default(),
                    ignore: s.get("ignore").map(strings).unwrap_or_default(),
                })
            }
            _ => None,
        };
        Ok(Self {
            groups,
            ignore: strings(&q["ignore"]),
            sparsity,
        })
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `v` with every object's keys in sorted order.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let b: BTreeMap<String, Value> = m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(b.into_iter().collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        v => v,
    }
}

// ---------------------------------------------------------------------------
// The package's quantization arithmetic
// ---------------------------------------------------------------------------

fn check_matrix(w: &[f32], rows: usize, cols: usize) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Err(Error::Empty {
            what: "weight matrix".into(),
        });
    }
    if rows.checked_mul(cols) != Some(w.len()) {
        return Err(Error::shape(
            "weight matrix",
            format!("{rows}x{cols}"),
            format!("{} values", w.len()),
        ));
    }
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "weight matrix".into(),
            position: format!("row {}, column {}", i / cols, i % cols),
            value: w[i].to_string(),
        });
    }
    Ok(())
}

/// `(granularity, values per group)` of weight args on a `cols`-wide matrix.
fn granularity(args: &QuantArgs, cols: usize) -> Result<Granularity> {
    Ok(match args.strategy {
        Strategy::Tensor => Granularity::Tensor,
        Strategy::Channel => Granularity::Channel,
        Strategy::Group | Strategy::TensorGroup => {
            let g = args
                .group_size
                .ok_or_else(|| Error::invalid("group_size", "group strategy without a size"))?;
            if g == 0 || !cols.is_multiple_of(g) {
                return Err(Error::invalid(
                    "group_size",
                    format!("{g} does not divide the row length {cols}"),
                ));
            }
            Granularity::Group(g)
        }
        Strategy::Token => {
            return Err(Error::invalid(
                "strategy",
                "token strategy applies to activations, not weights",
            ));
        }
    })
}

/// The groups of a row-major matrix: `(group index, row, column range)` for
/// each group, in group order.
fn for_each_group(
    rows: usize,
    cols: usize,
    g: Granularity,
    mut f: impl FnMut(usize, &mut dyn Iterator<Item = usize>),
) {
    match g {
        Granularity::Tensor => f(0, &mut (0..rows * cols)),
        Granularity::Channel => {
            for i in 0..rows {
                f(i, &mut (i * cols..(i + 1) * cols));
            }
        }
        Granularity::Group(gs) => {
            let per = cols / gs;
            for i in 0..rows {
                for k in 0..per {
                    let s = i * cols + k * gs;
                    f(i * per + k, &mut (s..s + gs));
                }
            }
        }
        _ => {}
    }
}

/// Quantizes `w` (`rows x cols`, row-major) to integers exactly as
/// compressed-tensors' MinMax observer and `calculate_qparams` do (f32
/// scales), returning shrink's [`QuantizedMatrix`].
///
/// Per group: `min = min(min(w), 0)`, `max = max(max(w), 0)`; symmetric
/// `scale = max(|min|, max) / ((qmax - qmin) / 2)`, asymmetric `scale =
/// (max - min) / (qmax - qmin)` and `zp = round(clamp(qmin - min / scale,
/// qmin, qmax))`; a zero scale becomes `f32::EPSILON`; `q = round(clamp(w /
/// scale + zp, qmin, qmax))`, rounding half to even.
///
/// Errors: [`Error::InvalidArgument`] for args that are not int with 2..=8
/// bits or a group size that does not divide `cols`; shape and finiteness
/// errors for `w`.
pub fn quantize_int(
    w: &[f32],
    rows: usize,
    cols: usize,
    args: &QuantArgs,
) -> Result<QuantizedMatrix> {
    check_matrix(w, rows, cols)?;
    if args.kind != QuantKind::Int || !(2..=8).contains(&args.num_bits) {
        return Err(Error::invalid(
            "quantization args",
            "quantize_int needs int args with 2..=8 bits",
        ));
    }
    let b = args.num_bits;
    let g = granularity(args, cols)?;
    let spec = QuantSpec::new(Grid::Int {
        bits: b,
        sym: args.symmetric,
    })
    .with_granularity(g)
    .with_scale_format(ScaleFormat::F32);
    let prepared = Prepared::new(spec, &[1.0], 1)?;
    let qmin = -((1i32 << (b - 1)) as f32);
    let qmax = ((1i32 << (b - 1)) - 1) as f32;
    let half = 1i32 << (b - 1);
    let mut codes = vec![0u8; rows * cols];
    let mut params = Vec::new();
    for_each_group(rows, cols, g, |_, idx| {
        let idx: Vec<usize> = idx.collect();
        let mut mn = 0f32;
        let mut mx = 0f32;
        for &k in &idx {
            mn = mn.min(w[k]);
            mx = mx.max(w[k]);
        }
        let mut scale = if args.symmetric {
            mn.abs().max(mx) / ((qmax - qmin) / 2.0)
        } else {
            (mx - mn) / (qmax - qmin)
        };
        if scale == 0.0 {
            scale = f32::EPSILON;
        }
        let zp = if args.symmetric {
            0.0
        } else {
            (qmin - mn / scale).clamp(qmin, qmax).round_ties_even()
        };
        for &k in &idx {
            let q = (w[k] / scale + zp).clamp(qmin, qmax).round_ties_even();
            codes[k] = (q as i32 + half) as u8;
        }
        params.push(GroupParams {
            raw_scale: scale.to_bits(),
            zero: if args.symmetric {
                0
            } else {
                (zp as i32 + half) as u8
            },
        });
    });
    QuantizedMatrix::from_parts(prepared, rows, cols, codes, params)
}

/// Quantizes `w` to FP8 E4M3 as compressed-tensors does: `scale = absmax /
/// 448` per channel or per tensor (absmax over the values and 0), a zero
/// scale becomes `f32::EPSILON`, codes `e4m3(clamp(w / scale, -448, 448))`
/// rounded to nearest even (small negatives keep their sign).
///
/// Errors: [`Error::InvalidArgument`] for a strategy other than channel or
/// tensor; shape and finiteness errors for `w`.
pub fn quantize_fp8(
    w: &[f32],
    rows: usize,
    cols: usize,
    strategy: Strategy,
) -> Result<QuantizedMatrix> {
    check_matrix(w, rows, cols)?;
    let g = match strategy {
        Strategy::Channel => Granularity::Channel,
        Strategy::Tensor => Granularity::Tensor,
        _ => {
            return Err(Error::invalid(
                "strategy",
                "FP8 weights are exported per channel or per tensor",
            ));
        }
    };
    let spec = QuantSpec::new(Grid::Float(FloatFormat::E4M3))
        .with_granularity(g)
        .with_scale_format(ScaleFormat::F32);
    let prepared = Prepared::new(spec, &[1.0], 1)?;
    let mut codes = vec![0u8; rows * cols];
    let mut params = Vec::new();
    for_each_group(rows, cols, g, |_, idx| {
        let idx: Vec<usize> = idx.collect();
        let (mut mn, mut mx) = (0f32, 0f32);
        for &k in &idx {
            mn = mn.min(w[k]);
            mx = mx.max(w[k]);
        }
        let mut scale = mn.abs().max(mx) / 448.0;
        if scale == 0.0 {
            scale = f32::EPSILON;
        }
        for &k in &idx {
            codes[k] = FloatFormat::E4M3.encode((w[k] / scale).clamp(-448.0, 448.0));
        }
        params.push(GroupParams {
            raw_scale: scale.to_bits(),
            zero: 0,
        });
    });
    QuantizedMatrix::from_parts(prepared, rows, cols, codes, params)
}

/// Largest dimension a stored `weight_shape` / `shape` may give (2^32).
const MAX_DIM: i64 = 1 << 32;

/// E4M3 code of 0.125, the package's replacement for a zero NVFP4 scale.
const E4M3_EIGHTH: u8 = 0x20;

/// Quantizes `w` to NVFP4 as compressed-tensors does: global scale `gs =
/// 448 * 6 / absmax(w)`; per 16 values `s = e4m3(clamp(gs * (absmax / 6),
/// -448, 448))` (a zero becomes 0.125); codes `e2m1(clamp(w / (s / gs), -6,
/// 6))` rounded to nearest even, a negative value rounding to zero keeping
/// its sign.
///
/// Errors: [`Error::InvalidArgument`] when `cols` is not a multiple of 16;
/// shape and finiteness errors for `w`.
pub fn quantize_nvfp4(w: &[f32], rows: usize, cols: usize) -> Result<QuantizedMatrix> {
    check_matrix(w, rows, cols)?;
    if !cols.is_multiple_of(16) {
        return Err(Error::invalid(
            "NVFP4",
            format!("the row length {cols} is not a multiple of 16"),
        ));
    }
    let (mut mn, mut mx) = (0f32, 0f32);
    for &v in w {
        mn = mn.min(v);
        mx = mx.max(v);
    }
    let amax = mn.abs().max(mx).max(f32::MIN_POSITIVE);
    let gs = 448.0f32 * 6.0 / amax;
    if !gs.is_finite() {
        return Err(Error::invalid("NVFP4", "global scale overflows"));
    }
    let spec = QuantSpec::new(Grid::Nvfp4);
    let prepared = Prepared::from_parts(spec, None, Some(gs))?;
    let mut codes = vec![0u8; rows * cols];
    let mut params = Vec::with_capacity(rows * cols / 16);
    for (gi, chunk) in w.chunks_exact(16).enumerate() {
        let (mut gmn, mut gmx) = (0f32, 0f32);
        for &v in chunk {
            gmn = gmn.min(v);
            gmx = gmx.max(v);
        }
        let a = gmn.abs().max(gmx);
        let mut code = FloatFormat::E4M3.encode((gs * (a / 6.0)).clamp(-448.0, 448.0));
        if FloatFormat::E4M3.decode(code) == 0.0 {
            code = E4M3_EIGHTH;
        }
        let s = FloatFormat::E4M3.decode(code) / gs;
        for (k, &v) in chunk.iter().enumerate() {
            codes[gi * 16 + k] = FloatFormat::E2M1.encode((v / s).clamp(-6.0, 6.0));
        }
        params.push(GroupParams {
            raw_scale: u32::from(code),
            zero: 0,
        });
    }
    QuantizedMatrix::from_parts(prepared, rows, cols, codes, params)
}

/// The E8M0 scale byte compressed-tensors gives a group of 32 whose largest
/// magnitude is `amax` (`generate_mx_scales` for FP4, then the cast to
/// uint8): `amax` is rounded to a power of two by adding `2^21` to its f32
/// bits and keeping sign and exponent (`round_to_power_2`, so a mantissa of
/// 1.75 or more rounds up), then `127 + log2(that) - 2`, clamped to
/// `0..=254` (a zero or subnormal-rounded-to-zero `amax` gives 0, scale
/// `2^-127`, as the package does).
pub fn mxfp4_scale_code(amax: f32) -> u8 {
    let bits = amax.abs().to_bits().wrapping_add(1 << 21) & 0xFF80_0000;
    let exp = (bits >> 23) as i32;
    if exp == 0 {
        return 0;
    }
    // exp is the biased exponent of the power of two: log2 = exp - 127.
    (exp - 2).clamp(0, 254) as u8
}

/// Quantizes `w` to MXFP4 as compressed-tensors 0.20.0 does with the
/// `MXFP4A16` preset and a MinMax observer: per 32 values the E8M0 scale
/// byte of [`mxfp4_scale_code`] (from `max(|min(w, 0)|, max(w, 0))`), scale
/// `s = 2^(byte - 127)`, codes `e2m1(clamp(w / s, -6, 6))` rounded to
/// nearest even (a negative value rounding to zero keeps its sign). The
/// result is a [`QuantizedMatrix`] over `Grid::Mx(E2M1)`.
///
/// Errors: [`Error::InvalidArgument`] when `cols` is not a multiple of 32;
/// shape and finiteness errors for `w`.
pub fn quantize_mxfp4(w: &[f32], rows: usize, cols: usize) -> Result<QuantizedMatrix> {
    check_matrix(w, rows, cols)?;
    if !cols.is_multiple_of(32) {
        return Err(Error::invalid(
            "MXFP4",
            format!("the row length {cols} is not a multiple of 32"),
        ));
    }
    let spec = QuantSpec::new(Grid::Mx(FloatFormat::E2M1));
    let prepared = Prepared::from_parts(spec, None, None)?;
    let mut codes = vec![0u8; rows * cols];
    let mut params = Vec::with_capacity(rows * cols / 32);
    for (gi, chunk) in w.chunks_exact(32).enumerate() {
        let (mut gmn, mut gmx) = (0f32, 0f32);
        for &v in chunk {
            gmn = gmn.min(v);
            gmx = gmx.max(v);
        }
        let code = mxfp4_scale_code(gmn.abs().max(gmx));
        let s = shrink_quant::float::e8m0::decode(code);
        for (k, &v) in chunk.iter().enumerate() {
            codes[gi * 32 + k] = FloatFormat::E2M1.encode((v / s).clamp(-6.0, 6.0));
        }
        params.push(GroupParams {
            raw_scale: u32::from(code),
            zero: 0,
        });
    }
    QuantizedMatrix::from_parts(prepared, rows, cols, codes, params)
}

// ---------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------

/// Packs `rows` rows of `cols` unsigned `b`-bit codes into int32 words, one
/// little-endian bit stream per row: `(rows, ceil(cols * b / 32))`.
pub fn pack_rows_i32(codes: &[u8], rows: usize, cols: usize, b: u8) -> Result<Vec<i32>> {
    if rows.checked_mul(cols) != Some(codes.len()) {
        return Err(Error::shape(
            "codes",
            rows.saturating_mul(cols),
            codes.len(),
        ));
    }
    let words = (cols * usize::from(b)).div_ceil(32);
    let mut out = Vec::with_capacity(rows * words);
    for r in 0..rows {
        let mut bytes = bits::pack(&codes[r * cols..(r + 1) * cols], b)?;
        bytes.resize(words * 4, 0);
        out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    Ok(out)
}

/// Inverse of [`pack_rows_i32`].
///
/// Errors: [`Error::Corrupt`] when `words` is not `rows * ceil(cols*b/32)`
/// long.
pub fn unpack_rows_i32(words: &[i32], rows: usize, cols: usize, b: u8) -> Result<Vec<u8>> {
    let per = cols
        .checked_mul(usize::from(b))
        .map(|x| x.div_ceil(32))
        .ok_or_else(|| Error::corrupt("packed int32 codes", "size overflows"))?;
    if rows.checked_mul(per) != Some(words.len()) {
        return Err(Error::corrupt(
            "packed int32 codes",
            format!("{} words for {rows} rows of {per}", words.len()),
        ));
    }
    let mut out = Vec::with_capacity(rows * cols);
    let mut buf = vec![0u8; per * 4];
    for r in 0..rows {
        for (k, w) in words[r * per..(r + 1) * per].iter().enumerate() {
            buf[4 * k..4 * k + 4].copy_from_slice(&w.to_le_bytes());
        }
        let nbytes = (cols * usize::from(b)).div_ceil(8);
        out.extend(bits::unpack(&buf[..nbytes], b, cols)?);
    }
    Ok(out)
}

fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn scale_tensor(
    q: &QuantizedMatrix,
    rows: usize,
    name: String,
    out: &mut SafetensorsWriter,
) -> Result<()> {
    let spec = q.spec();
    let shape: Vec<usize> = match spec.granularity {
        Granularity::Tensor => vec![1],
        Granularity::Channel => vec![rows, 1],
        _ => vec![rows, q.groups() / rows],
    };
    let raw = |f: &dyn Fn(u32) -> Vec<u8>| -> Vec<u8> {
        q.params().iter().flat_map(|p| f(p.raw_scale)).collect()
    };
    let (dtype, data) = match spec.scale_format {
        ScaleFormat::F32 => (Dtype::F32, raw(&|r| r.to_le_bytes().to_vec())),
        ScaleFormat::F16 => (Dtype::F16, raw(&|r| (r as u16).to_le_bytes().to_vec())),
        ScaleFormat::Bf16 => (Dtype::BF16, raw(&|r| (r as u16).to_le_bytes().to_vec())),
        ScaleFormat::E4m3 => (Dtype::F8_E4M3, raw(&|r| vec![r as u8])),
        ScaleFormat::E8m0 => (Dtype::U8, raw(&|r| vec![r as u8])),
        _ => {
            return Err(Error::invalid(
                "scale format",
                "compressed-tensors stores f32, f16, bf16, E4M3 or E8M0 scales",
            ));
        }
    };
    out.add_raw(name, dtype, &shape, data)
}

/// Writes `pack-quantized` tensors of an integer [`QuantizedMatrix`] under
/// `prefix` (`weight_packed`, `weight_scale` in the scale format's dtype,
/// `weight_zero_point` when asymmetric per group/channel, `weight_shape`)
/// and returns the weight [`QuantArgs`] for the config.
///
/// A GPTQ act-order result with static groups (`gptq:...:actorder:static`,
/// a plain [`QuantizedMatrix`]) is written here too; set the returned args'
/// `actorder` to `"weight"`, compressed-tensors' name for that ordering
/// (the layout is unchanged, and current compressed-tensors and vLLM read
/// it). Dynamic act-order groups need
/// [`write_pack_quantized_act_order`].
///
/// Errors: [`Error::InvalidArgument`] for a non-integer grid, 1-bit codes,
/// E8M0/E4M3 scales, or an asymmetric per-tensor matrix (whose zero point
/// the format cannot hold).
pub fn write_pack_quantized(
    prefix: &str,
    q: &QuantizedMatrix,
    out: &mut SafetensorsWriter,
) -> Result<QuantArgs> {
    let (rows, cols) = q.shape();
    let spec = *q.spec();
    let Grid::Int { bits: b, sym } = spec.grid else {
        return Err(Error::invalid(
            "grid",
            "pack-quantized holds integer grids only",
        ));
    };
    if b < 2 {
        return Err(Error::invalid(
            "bit width",
            "pack-quantized needs 2..=8 bits",
        ));
    }
    let (strategy, group_size) = match spec.granularity {
        Granularity::Tensor => (Strategy::Tensor, None),
        Granularity::Channel => (Strategy::Channel, None),
        Granularity::Group(g) => (Strategy::Group, Some(g)),
        _ => return Err(Error::invalid("granularity", "unsupported")),
    };
    if !sym && strategy == Strategy::Tensor {
        return Err(Error::invalid(
            "granularity",
            "asymmetric per-tensor zero points are not stored by pack-quantized",
        ));
    }
    let words = pack_rows_i32(q.codes(), rows, cols, b)?;
    out.add_raw(
        format!("{prefix}.weight_packed"),
        Dtype::I32,
        &[rows, (cols * usize::from(b)).div_ceil(32)],
        i32_bytes(&words),
    )?;
    scale_tensor(q, rows, format!("{prefix}.weight_scale"), out)?;
    if !sym {
        let per_row = q.groups() / rows;
        // Transpose to (groups, rows), pack each line, transpose back.
        let mut t = vec![0u8; q.groups()];
        for (k, p) in q.params().iter().enumerate() {
            t[(k % per_row) * rows + k / per_row] = p.zero;
        }
        let packed = pack_rows_i32(&t, per_row, rows, b)?;
        let wr = (rows * usize::from(b)).div_ceil(32);
        let mut back = vec![0i32; wr * per_row];
        for gi in 0..per_row {
            for j in 0..wr {
                back[j * per_row + gi] = packed[gi * wr + j];
            }
        }
        out.add_raw(
            format!("{prefix}.weight_zero_point"),
            Dtype::I32,
            &[wr, per_row],
            i32_bytes(&back),
        )?;
    }
    out.add_i64(
        format!("{prefix}.weight_shape"),
        &[2],
        &[rows as i64, cols as i64],
    )?;
    Ok(QuantArgs::int(b, sym, strategy, group_size))
}

/// Writes an act-order GPTQ result as `pack-quantized` with
/// `weight_g_idx`: codes in the original column order, one scale (and zero
/// point) per permuted group, `g_idx[perm[k]] = k / group_size`. Returns the
/// weight args (`actorder: "group"`).
///
/// Errors: those of [`write_pack_quantized`]; the inner matrix must be
/// grouped.
pub fn write_pack_quantized_act_order(
    prefix: &str,
    a: &ActOrderMatrix,
    out: &mut SafetensorsWriter,
) -> Result<QuantArgs> {
    let inner = a.inner();
    let (rows, cols) = inner.shape();
    let Granularity::Group(g) = inner.spec().granularity else {
        return Err(Error::invalid(
            "granularity",
            "act-order with weight_g_idx needs groups",
        ));
    };
    // The same matrix with codes back in the original order; its params are
    // the permuted groups' params, which g_idx addresses.
    let original = QuantizedMatrix::from_parts(
        inner.quantizer().clone(),
        rows,
        cols,
        a.original_codes(),
        inner.params().to_vec(),
    )?;
    let mut args = write_pack_quantized(prefix, &original, out)?;
    let mut g_idx = vec![0i32; cols];
    for (k, &p) in a.perm().iter().enumerate() {
        g_idx[p as usize] = (k / g) as i32;
    }
    out.add_i32(format!("{prefix}.weight_g_idx"), &[cols], &g_idx)?;
    args.actorder = Some("group".into());
    Ok(args)
}

fn e4m3_matrix(q: &QuantizedMatrix) -> Result<()> {
    let spec = q.spec();
    if spec.grid != Grid::Float(FloatFormat::E4M3)
        || spec.scale_format != ScaleFormat::F32
        || !matches!(spec.granularity, Granularity::Channel | Granularity::Tensor)
    {
        return Err(Error::invalid(
            "grid",
            "float-quantized holds FP8 E4M3 codes with f32 per-channel or per-tensor scales",
        ));
    }
    Ok(())
}

/// Writes `float-quantized` tensors (`weight` as F8_E4M3 codes,
/// `weight_scale` F32) of an FP8 E4M3 [`QuantizedMatrix`] and returns the
/// weight args.
///
/// Errors: [`Error::InvalidArgument`] for another grid, scale format or
/// granularity.
pub fn write_float_quantized(
    prefix: &str,
    q: &QuantizedMatrix,
    out: &mut SafetensorsWriter,
) -> Result<QuantArgs> {
    e4m3_matrix(q)?;
    let (rows, cols) = q.shape();
    out.add_raw(
        format!("{prefix}.weight"),
        Dtype::F8_E4M3,
        &[rows, cols],
        q.codes().to_vec(),
    )?;
    scale_tensor(q, rows, format!("{prefix}.weight_scale"), out)?;
    Ok(QuantArgs::fp8(match q.spec().granularity {
        Granularity::Tensor => Strategy::Tensor,
        _ => Strategy::Channel,
    }))
}

/// Writes `nvfp4-pack-quantized` tensors of an NVFP4 [`QuantizedMatrix`]
/// and returns the weight args.
///
/// Errors: [`Error::InvalidArgument`] for another grid or an odd row length.
pub fn write_nvfp4(
    prefix: &str,
    q: &QuantizedMatrix,
    out: &mut SafetensorsWriter,
) -> Result<QuantArgs> {
    let (rows, cols) = q.shape();
    let gs = match (q.spec().grid, q.quantizer().tensor_scale()) {
        (Grid::Nvfp4, Some(g)) => g,
        _ => {
            return Err(Error::invalid(
                "grid",
                "nvfp4-pack-quantized holds NVFP4 matrices",
            ));
        }
    };
    let packed: Vec<u8> = q
        .codes()
        .chunks_exact(2)
        .map(|c| (c[0] & 0xF) | (c[1] & 0xF) << 4)
        .collect();
    out.add_raw(
        format!("{prefix}.weight_packed"),
        Dtype::U8,
        &[rows, cols / 2],
        packed,
    )?;
    scale_tensor(q, rows, format!("{prefix}.weight_scale"), out)?;
    out.add_f32(format!("{prefix}.weight_global_scale"), &[1], &[gs])?;
    Ok(QuantArgs::nvfp4())
}

/// Writes `mxfp4-pack-quantized` tensors of an MXFP4 [`QuantizedMatrix`]
/// (`Grid::Mx(E2M1)`, groups of 32, E8M0 scales): `weight_packed` U8 `(m,
/// n/2)` (element `2k` in the low nibble) and `weight_scale` U8 `(m, n/32)`,
/// and returns the weight args ([`QuantArgs::mxfp4`]).
///
/// Errors: [`Error::InvalidArgument`] for another grid, granularity or
/// scale format.
pub fn write_mxfp4(
    prefix: &str,
    q: &QuantizedMatrix,
    out: &mut SafetensorsWriter,
) -> Result<QuantArgs> {
    let (rows, cols) = q.shape();
    let spec = q.spec();
    if spec.grid != Grid::Mx(FloatFormat::E2M1)
        || spec.granularity != Granularity::Group(32)
        || spec.scale_format != ScaleFormat::E8m0
    {
        return Err(Error::invalid(
            "grid",
            "mxfp4-pack-quantized holds MXFP4 matrices (E2M1 codes, E8M0 scales per 32)",
        ));
    }
    let packed: Vec<u8> = q
        .codes()
        .chunks_exact(2)
        .map(|c| (c[0] & 0xF) | (c[1] & 0xF) << 4)
        .collect();
    out.add_raw(
        format!("{prefix}.weight_packed"),
        Dtype::U8,
        &[rows, cols / 2],
        packed,
    )?;
    scale_tensor(q, rows, format!("{prefix}.weight_scale"), out)?;
    Ok(QuantArgs::mxfp4())
}

/// How [`write_sparse24`] stores kept values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SparseValues {
    /// IEEE f32.
    F32,
    /// IEEE f16 (rounded to nearest even).
    F16,
    /// bfloat16 (rounded to nearest even).
    Bf16,
}

fn write_bitmask_and_shape(prefix: &str, s: &Sparse24, out: &mut SafetensorsWriter) -> Result<()> {
    out.add_u8(
        format!("{prefix}.bitmask"),
        &[s.rows, s.cols.div_ceil(8)],
        &s.bitmask,
    )?;
    out.add_i64(
        format!("{prefix}.shape"),
        &[2, 1],
        &[s.rows as i64, s.cols as i64],
    )
}

/// Writes `sparse-24-bitmask` tensors of a 2:4 layout under `prefix` (the
/// module name, without `.weight`).
///
/// Errors: those of the safetensors writer (duplicate names).
pub fn write_sparse24(
    prefix: &str,
    s: &Sparse24,
    values: SparseValues,
    out: &mut SafetensorsWriter,
) -> Result<()> {
    let shape = [s.rows, s.cols / 2];
    let name = format!("{prefix}.compressed");
    match values {
        SparseValues::F32 => out.add_f32(name, &shape, &s.compressed)?,
        SparseValues::F16 => out.add_f16(name, &shape, &s.compressed)?,
        SparseValues::Bf16 => out.add_bf16(name, &shape, &s.compressed)?,
    }
    write_bitmask_and_shape(prefix, s, out)
}

/// Writes an FP8 matrix that is also 2:4 sparse (`sparse-24-bitmask` over
/// `float-quantized`): `compressed` F8_E4M3 codes at the kept positions of
/// `mask`, `bitmask`, `shape` and `weight_scale`. Returns the weight args.
///
/// Errors: [`Error::InvalidArgument`] when `q` is not FP8 or the mask is
/// not 2:4 of the same shape.
pub fn write_sparse24_fp8(
    prefix: &str,
    q: &QuantizedMatrix,
    mask: &Mask,
    out: &mut SafetensorsWriter,
) -> Result<QuantArgs> {
    e4m3_matrix(q)?;
    let (rows, cols) = q.shape();
    if mask.shape() != (rows, cols) {
        return Err(Error::shape(
            "2:4 mask",
            format!("{rows}x{cols}"),
            format!("{:?}", mask.shape()),
        ));
    }
    let codes_as_f32: Vec<f32> = q.codes().iter().map(|&c| f32::from(c)).collect();
    let s = Sparse24::from_mask(mask, &codes_as_f32)?;
    let kept: Vec<u8> = s.compressed.iter().map(|&c| c as u8).collect();
    out.add_raw(
        format!("{prefix}.compressed"),
        Dtype::F8_E4M3,
        &[rows, cols / 2],
        kept,
    )?;
    write_bitmask_and_shape(prefix, &s, out)?;
    scale_tensor(q, rows, format!("{prefix}.weight_scale"), out)?;
    Ok(QuantArgs::fp8(match q.spec().granularity {
        Granularity::Tensor => Strategy::Tensor,
        _ => Strategy::Channel,
    }))
}

/// Writes a compressed-tensors folder: `model.safetensors` (with metadata
/// `{"format": "pt"}`, as `save_pretrained` writes) and `config.json`.
///
/// Errors: [`Error::Io`] when the folder cannot be written.
pub fn write_folder(
    dir: impl AsRef<Path>,
    tensors: &mut SafetensorsWriter,
    config: &QuantizationConfig,
) -> Result<()> {
    let dir = dir.as_ref();
    let io = |p: PathBuf| move |source| Error::Io { path: p, source };
    std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
    tensors.set_metadata("format", "pt");
    tensors.write_file(dir.join("model.safetensors"))?;
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, config.to_config_string()).map_err(io(cfg.clone()))
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

/// The storage form of one compressed module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModuleKind {
    /// `weight_packed` I32 + `weight_scale` (+ zero point, g_idx).
    PackQuantized,
    /// `weight` F8_E4M3 + `weight_scale`.
    FloatQuantized,
    /// `weight_packed` U8 + F8 `weight_scale` + `weight_global_scale`.
    Nvfp4,
    /// `weight_packed` U8 + U8 (E8M0) `weight_scale`.
    Mxfp4,
    /// `compressed` + `bitmask` + `shape` (values dense or FP8).
    Sparse24,
}

/// A compressed-tensors folder opened for reading.
#[derive(Debug)]
pub struct CompressedModel {
    config: QuantizationConfig,
    model: SafetensorsModel,
    modules: BTreeMap<String, ModuleKind>,
}

fn file_err(model: &SafetensorsModel, reason: String) -> Error {
    Error::File {
        path: model.root().to_path_buf(),
        reason,
    }
}

impl CompressedModel {
    /// Opens `dir`: `config.json` plus `model.safetensors` or sharded files.
    ///
    /// Errors: [`Error::Io`] / [`Error::Corrupt`] / [`Error::File`] for
    /// missing or invalid files.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|source| Error::Io {
            path: cfg_path.clone(),
            source,
        })?;
        let config = QuantizationConfig::from_json_str(&text)?;
        let model = SafetensorsModel::open(dir)?;
        Self::new(config, model)
    }

    /// Pairs a parsed config with the tensors.
    ///
    /// Errors: none beyond the config's own (modules are classified by the
    /// tensor names present).
    pub fn new(config: QuantizationConfig, model: SafetensorsModel) -> Result<Self> {
        let mut modules = BTreeMap::new();
        for (name, dtype, _) in model.list() {
            let kind = if let Some(p) = name.strip_suffix(".weight_packed") {
                let e8m0_scale = model
                    .tensor(&format!("{p}.weight_scale"))
                    .is_ok_and(|t| t.dtype == Dtype::U8);
                Some((
                    p,
                    match (dtype, e8m0_scale) {
                        (Dtype::U8, true) => ModuleKind::Mxfp4,
                        (Dtype::U8, false) => ModuleKind::Nvfp4,
                        _ => ModuleKind::PackQuantized,
                    },
                ))
            } else if let Some(p) = name.strip_suffix(".bitmask") {
                Some((p, ModuleKind::Sparse24))
            } else if let Some(p) = name.strip_suffix(".weight") {
                (dtype == Dtype::F8_E4M3).then_some((p, ModuleKind::FloatQuantized))
            } else {
                None
            };
            if let Some((p, k)) = kind {
                modules.insert(p.to_string(), k);
            }
        }
        Ok(Self {
            config,
            model,
            modules,
        })
    }

    /// The parsed `quantization_config`.
    pub fn config(&self) -> &QuantizationConfig {
        &self.config
    }

    /// The tensors.
    pub fn tensors(&self) -> &SafetensorsModel {
        &self.model
    }

    /// Every compressed module (name prefix) and its storage form.
    pub fn modules(&self) -> &BTreeMap<String, ModuleKind> {
        &self.modules
    }

    fn t(&self, name: &str) -> Result<RawTensor<'_>> {
        self.model.tensor(name)
    }

    fn expect(&self, name: &str, dtype: Dtype, shape: &[usize]) -> Result<RawTensor<'_>> {
        let t = self.t(name)?;
        if t.dtype != dtype || t.shape != shape {
            return Err(file_err(
                &self.model,
                format!(
                    "`{name}` is {} {:?}, expected {dtype} {shape:?}",
                    t.dtype, t.shape
                ),
            ));
        }
        Ok(t)
    }

    fn weight_shape(&self, name: &str) -> Result<(usize, usize)> {
        let t = self.t(name)?;
        let vals: Vec<i64> = match t.dtype {
            Dtype::I64 => t
                .data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            Dtype::I32 => t
                .data
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            d => {
                return Err(file_err(
                    &self.model,
                    format!("`{name}` has dtype {d}, expected I64"),
                ));
            }
        };
        match vals[..] {
            // Bounded so that size arithmetic on it cannot overflow; real
            // tensors' sizes are then checked against the file.
            [r, c] if (1..=MAX_DIM).contains(&r) && (1..=MAX_DIM).contains(&c) => {
                Ok((r as usize, c as usize))
            }
            _ => Err(file_err(
                &self.model,
                format!("`{name}` = {vals:?} is not a 2-D shape"),
            )),
        }
    }

    fn weight_args(&self) -> Option<&QuantArgs> {
        let mut w = self.config.groups.iter().filter_map(|g| g.weights.as_ref());
        let first = w.next()?;
        w.next().is_none().then_some(first)
    }

    /// The bits of a pack-quantized module: from the config when it has a
    /// single weight scheme, else inferred from the packed width.
    fn packed_bits(&self, prefix: &str, cols: usize, words: usize) -> Result<u8> {
        if let Some(a) = self.weight_args().filter(|a| a.kind == QuantKind::Int) {
            return Ok(a.num_bits);
        }
        let fits: Vec<u8> = (1..=8u8)
            .filter(|&b| (cols * usize::from(b)).div_ceil(32) == words)
            .collect();
        match fits[..] {
            [b] => Ok(b),
            _ => Err(file_err(
                &self.model,
                format!("cannot tell the bit width of `{prefix}` from the config or its shape"),
            )),
        }
    }

    fn i32s(t: &RawTensor<'_>) -> Vec<i32> {
        t.data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// Rebuilds module `prefix` as a [`QuantizedMatrix`] (pack-quantized
    /// without `weight_g_idx`, float-quantized, NVFP4, MXFP4). The result packs
    /// back to the same tensors.
    ///
    /// Errors: [`Error::File`] for a missing module or tensor, or one of
    /// another kind; [`Error::Corrupt`] for inconsistent tensors.
    pub fn quantized_matrix(&self, prefix: &str) -> Result<QuantizedMatrix> {
        let kind = *self
            .modules
            .get(prefix)
            .ok_or_else(|| file_err(&self.model, format!("no compressed module `{prefix}`")))?;
        match kind {
            ModuleKind::PackQuantized => {
                if self.model.tensor(&format!("{prefix}.weight_g_idx")).is_ok() {
                    return Err(file_err(
                        &self.model,
                        format!("`{prefix}` has weight_g_idx; use decompress"),
                    ));
                }
                self.read_pack(prefix).map(|(q, _)| q)
            }
            ModuleKind::FloatQuantized => self.read_fp8(prefix, &format!("{prefix}.weight")),
            ModuleKind::Nvfp4 => self.read_nvfp4(prefix),
            ModuleKind::Mxfp4 => self.read_mxfp4(prefix),
            ModuleKind::Sparse24 => Err(file_err(
                &self.model,
                format!("`{prefix}` is sparse; use decompress"),
            )),
        }
    }

    fn scales(&self, name: &str, n: usize) -> Result<(ScaleFormat, Vec<u32>)> {
        let t = self.t(name)?;
        if t.shape.iter().product::<usize>() != n {
            return Err(file_err(
                &self.model,
                format!("`{name}` has shape {:?}, {n} scales expected", t.shape),
            ));
        }
        let (f, raw) = match t.dtype {
            Dtype::F32 => (
                ScaleFormat::F32,
                t.data
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::F16 | Dtype::BF16 => (
                if t.dtype == Dtype::F16 {
                    ScaleFormat::F16
                } else {
                    ScaleFormat::Bf16
                },
                t.data
                    .chunks_exact(2)
                    .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
                    .collect(),
            ),
            Dtype::F8_E4M3 => (
                ScaleFormat::E4m3,
                t.data.iter().map(|&b| u32::from(b)).collect(),
            ),
            d => {
                return Err(file_err(
                    &self.model,
                    format!("`{name}` has scale dtype {d}"),
                ));
            }
        };
        Ok((f, raw))
    }

    /// `(matrix, g_idx)`; with g_idx the matrix's params follow the groups
    /// g_idx names and its codes are in the original column order.
    fn read_pack(&self, prefix: &str) -> Result<(QuantizedMatrix, Option<Vec<i32>>)> {
        let (rows, cols) = self.weight_shape(&format!("{prefix}.weight_shape"))?;
        let packed = self.t(&format!("{prefix}.weight_packed"))?;
        let words = match (packed.dtype, packed.shape) {
            (Dtype::I32, [r, w]) if *r == rows => *w,
            _ => {
                return Err(file_err(
                    &self.model,
                    format!(
                        "`{prefix}.weight_packed` is {} {:?}",
                        packed.dtype, packed.shape
                    ),
                ));
            }
        };
        let b = self.packed_bits(prefix, cols, words)?;
        if b < 2 {
            return Err(file_err(&self.model, format!("`{prefix}`: {b}-bit codes")));
        }
        let codes = unpack_rows_i32(&Self::i32s(&packed), rows, cols, b)?;
        let g_idx = match self.model.tensor(&format!("{prefix}.weight_g_idx")) {
            Ok(t) => {
                let t = self
                    .expect(&format!("{prefix}.weight_g_idx"), Dtype::I32, &[cols])
                    .map(|_| t)?;
                Some(Self::i32s(&t))
            }
            Err(_) => None,
        };
        let scale_t = self.t(&format!("{prefix}.weight_scale"))?;
        let (gran, groups_per_row) = match (scale_t.shape, &g_idx) {
            ([1], None) => (Granularity::Tensor, 0),
            ([r, 1], None)
                if *r == rows
                    && self
                        .weight_args()
                        .is_none_or(|a| a.strategy != Strategy::Group) =>
            {
                (Granularity::Channel, 1)
            }
            ([r, g], _) if *r == rows && *g > 0 && cols.is_multiple_of(*g) => {
                (Granularity::Group(cols / g), *g)
            }
            (s, _) => {
                return Err(file_err(
                    &self.model,
                    format!("`{prefix}.weight_scale` has shape {s:?} for a {rows}x{cols} weight"),
                ));
            }
        };
        let ngroups = if groups_per_row == 0 {
            1
        } else {
            rows * groups_per_row
        };
        let (sf, raw) = self.scales(&format!("{prefix}.weight_scale"), ngroups)?;
        if sf == ScaleFormat::E4m3 {
            return Err(file_err(
                &self.model,
                format!("`{prefix}`: F8 scales on int codes"),
            ));
        }
        let zp_name = format!("{prefix}.weight_zero_point");
        let zeros: Option<Vec<u8>> = match self.model.tensor(&zp_name) {
            Ok(_) => {
                let per = groups_per_row.max(1);
                let wr = (rows * usize::from(b)).div_ceil(32);
                let t = self.expect(&zp_name, Dtype::I32, &[wr, per])?;
                let w = Self::i32s(&t);
                let mut tr = vec![0i32; wr * per];
                for j in 0..wr {
                    for g in 0..per {
                        tr[g * wr + j] = w[j * per + g];
                    }
                }
                let z = unpack_rows_i32(&tr, per, rows, b)?;
                // back to (rows, per)
                let mut out = vec![0u8; rows * per];
                for g in 0..per {
                    for r in 0..rows {
                        out[r * per + g] = z[g * rows + r];
                    }
                }
                Some(out)
            }
            Err(_) => None,
        };
        let sym = zeros.is_none();
        let spec = QuantSpec::new(Grid::Int { bits: b, sym })
            .with_granularity(gran)
            .with_scale_format(sf);
        let prepared = Prepared::new(spec, &[1.0], 1)?;
        let params = raw
            .iter()
            .enumerate()
            .map(|(k, &r)| GroupParams {
                raw_scale: r,
                zero: zeros.as_ref().map_or(0, |z| z[k]),
            })
            .collect();
        if let Some(gi) = &g_idx {
            let per = groups_per_row as i32;
            if gi.iter().any(|&g| g < 0 || g >= per) {
                return Err(file_err(
                    &self.model,
                    format!("`{prefix}.weight_g_idx` out of range"),
                ));
            }
            // Codes stay in column order; use a channel-free per-group
            // matrix over permuted columns in `decompress`.
            let q = QuantizedMatrix::from_parts(prepared, rows, cols, codes, params)?;
            return Ok((q, g_idx));
        }
        Ok((
            QuantizedMatrix::from_parts(prepared, rows, cols, codes, params)?,
            None,
        ))
    }

    fn read_fp8(&self, prefix: &str, codes_name: &str) -> Result<QuantizedMatrix> {
        let t = self.t(codes_name)?;
        let (rows, cols) = match (t.dtype, t.shape) {
            (Dtype::F8_E4M3, [r, c]) => (*r, *c),
            _ => {
                return Err(file_err(
                    &self.model,
                    format!("`{codes_name}` is not 2-D F8_E4M3"),
                ));
            }
        };
        self.fp8_from_codes(prefix, rows, cols, t.data.to_vec())
    }

    fn fp8_from_codes(
        &self,
        prefix: &str,
        rows: usize,
        cols: usize,
        codes: Vec<u8>,
    ) -> Result<QuantizedMatrix> {
        let st = self.t(&format!("{prefix}.weight_scale"))?;
        let gran = match st.shape {
            [1] | [1, 1] if rows != 1 => Granularity::Tensor,
            [r, 1] if *r == rows => Granularity::Channel,
            s => {
                return Err(file_err(
                    &self.model,
                    format!("`{prefix}.weight_scale` has shape {s:?}"),
                ));
            }
        };
        let n = if gran == Granularity::Tensor { 1 } else { rows };
        let (sf, raw) = self.scales(&format!("{prefix}.weight_scale"), n)?;
        if sf != ScaleFormat::F32 {
            return Err(file_err(
                &self.model,
                format!("`{prefix}`: FP8 scales must be F32"),
            ));
        }
        let spec = QuantSpec::new(Grid::Float(FloatFormat::E4M3))
            .with_granularity(gran)
            .with_scale_format(sf);
        let prepared = Prepared::new(spec, &[1.0], 1)?;
        let params = raw
            .into_iter()
            .map(|r| GroupParams {
                raw_scale: r,
                zero: 0,
            })
            .collect();
        QuantizedMatrix::from_parts(prepared, rows, cols, codes, params)
    }

    fn read_nvfp4(&self, prefix: &str) -> Result<QuantizedMatrix> {
        let packed = self.t(&format!("{prefix}.weight_packed"))?;
        let (rows, half) = match (packed.dtype, packed.shape) {
            (Dtype::U8, [r, h]) => (*r, *h),
            _ => {
                return Err(file_err(
                    &self.model,
                    format!("`{prefix}.weight_packed` is not 2-D U8"),
                ));
            }
        };
        let cols = half * 2;
        if !cols.is_multiple_of(16) {
            return Err(file_err(&self.model, format!("`{prefix}`: {cols} columns")));
        }
        let gs_t = self.expect(&format!("{prefix}.weight_global_scale"), Dtype::F32, &[1])?;
        let gs = f32::from_le_bytes([gs_t.data[0], gs_t.data[1], gs_t.data[2], gs_t.data[3]]);
        self.expect(
            &format!("{prefix}.weight_scale"),
            Dtype::F8_E4M3,
            &[rows, cols / 16],
        )?;
        let (_, raw) = self.scales(&format!("{prefix}.weight_scale"), rows * cols / 16)?;
        let codes = packed
            .data
            .iter()
            .flat_map(|&b| [b & 0xF, b >> 4])
            .collect();
        let prepared = Prepared::from_parts(QuantSpec::new(Grid::Nvfp4), None, Some(gs))?;
        let params = raw
            .into_iter()
            .map(|r| GroupParams {
                raw_scale: r,
                zero: 0,
            })
            .collect();
        QuantizedMatrix::from_parts(prepared, rows, cols, codes, params)
    }

    fn read_mxfp4(&self, prefix: &str) -> Result<QuantizedMatrix> {
        let packed = self.t(&format!("{prefix}.weight_packed"))?;
        let (rows, half) = match (packed.dtype, packed.shape) {
            (Dtype::U8, [r, h]) => (*r, *h),
            _ => {
                return Err(file_err(
                    &self.model,
                    format!("`{prefix}.weight_packed` is not 2-D U8"),
                ));
            }
        };
        let cols = half * 2;
        if cols == 0 || !cols.is_multiple_of(32) {
            return Err(file_err(&self.model, format!("`{prefix}`: {cols} columns")));
        }
        let scale = self.expect(
            &format!("{prefix}.weight_scale"),
            Dtype::U8,
            &[rows, cols / 32],
        )?;
        let codes = packed
            .data
            .iter()
            .flat_map(|&b| [b & 0xF, b >> 4])
            .collect();
        let prepared =
            Prepared::from_parts(QuantSpec::new(Grid::Mx(FloatFormat::E2M1)), None, None)?;
        let params = scale
            .data
            .iter()
            .map(|&r| GroupParams {
                raw_scale: u32::from(r),
                zero: 0,
            })
            .collect();
        QuantizedMatrix::from_parts(prepared, rows, cols, codes, params)
    }

    /// Module `prefix` decompressed to its dense f32 weight `(rows, cols,
    /// values)`.
    ///
    /// Integer codes give `(code - zero) * scale` (so an exact zero is
    /// `+0.0`), FP8 `e4m3 * scale`, NVFP4 `e2m1 * (e4m3 / global)`, MXFP4
    /// `e2m1 * 2^(e - 127)` (the E8M0 NaN byte 255 decodes to NaN; the
    /// package computes `2^128 = inf` in bfloat16), all in f32 (the Python package returns NVFP4 in bfloat16; round the result
    /// to compare); 2:4 values are scattered where the bitmask is set.
    ///
    /// Errors: as [`CompressedModel::quantized_matrix`].
    pub fn decompress(&self, prefix: &str) -> Result<(usize, usize, Vec<f32>)> {
        let kind = *self
            .modules
            .get(prefix)
            .ok_or_else(|| file_err(&self.model, format!("no compressed module `{prefix}`")))?;
        let dense = |q: &QuantizedMatrix| {
            let (r, c) = q.shape();
            let mut out = vec![0f32; r * c];
            for (i, row) in out.chunks_mut(c).enumerate() {
                q.dequantize_row(i, row);
            }
            (r, c, out)
        };
        match kind {
            ModuleKind::PackQuantized => {
                let (q, g_idx) = self.read_pack(prefix)?;
                match g_idx {
                    None => Ok(dense(&q)),
                    Some(gi) => {
                        let (rows, cols) = q.shape();
                        let per = q.groups() / rows;
                        let mut out = vec![0f32; rows * cols];
                        for i in 0..rows {
                            for j in 0..cols {
                                let p = q.params()[i * per + gi[j] as usize];
                                out[i * cols + j] =
                                    q.quantizer().decode(q.codes()[i * cols + j], &p);
                            }
                        }
                        Ok((rows, cols, out))
                    }
                }
            }
            ModuleKind::FloatQuantized | ModuleKind::Nvfp4 | ModuleKind::Mxfp4 => {
                Ok(dense(&self.quantized_matrix(prefix)?))
            }
            ModuleKind::Sparse24 => self.decompress_sparse(prefix),
        }
    }

    fn decompress_sparse(&self, prefix: &str) -> Result<(usize, usize, Vec<f32>)> {
        let (rows, cols) = self.weight_shape(&format!("{prefix}.shape"))?;
        if !cols.is_multiple_of(4) {
            return Err(file_err(&self.model, format!("`{prefix}`: {cols} columns")));
        }
        let bm = self.expect(
            &format!("{prefix}.bitmask"),
            Dtype::U8,
            &[rows, cols.div_ceil(8)],
        )?;
        let comp = self.t(&format!("{prefix}.compressed"))?;
        if comp.shape != [rows, cols / 2] {
            return Err(file_err(
                &self.model,
                format!("`{prefix}.compressed` has shape {:?}", comp.shape),
            ));
        }
        let (values, fp8) = match comp.dtype {
            Dtype::F8_E4M3 => (comp.data.iter().map(|&c| f32::from(c)).collect(), true),
            d => (
                bytes_to_f32(d, comp.data).map_err(|e| file_err(&self.model, e.to_string()))?,
                false,
            ),
        };
        let s = Sparse24 {
            rows,
            cols,
            compressed: values,
            bitmask: bm.data.to_vec(),
        };
        let dense = s.decompress()?;
        if !fp8 {
            return Ok((rows, cols, dense));
        }
        // FP8 codes at kept positions (pruned positions are code 0 = +0).
        let codes: Vec<u8> = dense.iter().map(|&c| c as u8).collect();
        let q = self.fp8_from_codes(prefix, rows, cols, codes)?;
        let mask = s.mask()?;
        let mut out = vec![0f32; rows * cols];
        for (i, row) in out.chunks_mut(cols).enumerate() {
            q.dequantize_row(i, row);
            for (j, v) in row.iter_mut().enumerate() {
                if !mask.get(i, j) {
                    *v = 0.0;
                }
            }
        }
        Ok((rows, cols, out))
    }
}
