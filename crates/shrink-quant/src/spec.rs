//! What a quantizer is: an element grid, a scale granularity and a scale
//! format, independent of the rounding method (RTN, GPTQ, HQQ all take a
//! [`QuantSpec`]).
//!
//! # Grids
//!
//! | token | grid | levels (normalized units) | scale rule |
//! |---|---|---|---|
//! | `intB` + `sym` | uniform signed integers, B = 1..8 | `-2^(B-1) .. 2^(B-1)-1` | `s = absmax / (2^(B-1)-1)`; B = 1 is the sign grid `{-1, +1}` with `s = mean |x|` |
//! | `intB` + `asym` | uniform unsigned integers with a zero point | `0 .. 2^B-1` | GPTQ min/max: `s = (max - min)/(2^B-1)` with 0 inside the range, `z = round(-min/s)` |
//! | `nf4`, `nf3` | NormalFloat (bitsandbytes NF4; NF3 by the same construction) | 16 / 8 values in `[-1, 1]` | `s = absmax` |
//! | `fp4`, `fp6-e2m3`, `fp6-e3m2`, `fp8-e4m3`, `fp8-e5m2` | OCP small floats | every finite value | `s = absmax / max_finite` |
//! | `lloydB` | Lloyd-Max codebook of 2^B levels fitted (1-D k-means) to the normalized values of the whole tensor | learned | `s = absmax` |
//! | `mxfp4`, `mxfp6`, `mxfp6-e3m2`, `mxfp8`, `mxfp8-e5m2` | OCP MX v1.0: blocks of 32, E8M0 scale | element format values | `s = 2^(floor(log2 amax) - emax_elem)` |
//! | `nvfp4` | NVFP4: blocks of 16 E2M1, E4M3 block scale, f32 tensor scale | E2M1 values | `g = 448*6/amax(W)`, `block = e4m3(g * amax(block)/6)`, `s = block/g` |
//!
//! Rounding to the grid: integer grids round half to even on `x / s` and then
//! add the zero point (as GPTQ and the PyTorch references do); float grids
//! round to nearest with ties to even and saturate; table grids (NF, Lloyd,
//! sign) take the nearest level with ties to the lower level.
//!
//! # Granularity
//!
//! `tensor` (one scale), `channel` (one per output row) or `gN` (groups of N
//! consecutive inputs within a row). A group size must divide the row
//! length: shrink does not pad (padding would invent weights and change the
//! byte count); a non-dividing size is an error at compress time.
//!
//! # Storage conventions (every stored byte counts in bits/weight)
//!
//! * codes: one stream of `rows * cols` codes of the grid's width, bit-packed;
//! * integer scales: f16 by default (`:f32`, `:bf16` to change);
//! * asymmetric zero points: integers in `[0, 2^B-1]`, packed at the code width;
//! * NF4/NF3: f32 absmax per block, as bitsandbytes stores it (no double quantization);
//! * small-float grids with explicit groups: f16 scales for `fp4`/`fp6` groups,
//!   f32 per-channel/per-tensor scales for `fp8` (as compressed-tensors);
//! * Lloyd: f16 scales plus the f32 codebook (2^B values per tensor);
//! * MX: one E8M0 byte per block of 32;
//! * NVFP4: one E4M3 byte per block of 16 plus one f32 tensor scale.

use crate::float::FloatFormat;
use shrink_core::{Error, Result, StageSpec};
use std::fmt;

/// The element grid of a quantizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Grid {
    /// Uniform integers of `bits` bits (1..=8), symmetric or with a zero point.
    Int {
        /// Code width.
        bits: u8,
        /// Symmetric (no zero point) or asymmetric (integer zero point).
        sym: bool,
    },
    /// NormalFloat code of `bits` bits (3 or 4; NF4 is bitsandbytes' table).
    Normal {
        /// Code width.
        bits: u8,
    },
    /// An OCP small float format with an explicit per-group scale.
    Float(FloatFormat),
    /// A Lloyd-Max codebook of `2^bits` levels learned from the tensor.
    Lloyd {
        /// Code width.
        bits: u8,
    },
    /// OCP Microscaling: blocks of 32 elements of the given format sharing an E8M0 scale.
    Mx(FloatFormat),
    /// NVFP4: blocks of 16 E2M1 values, E4M3 block scale, f32 tensor scale.
    Nvfp4,
}

/// Which weights share one scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Granularity {
    /// One scale for the whole matrix.
    Tensor,
    /// One scale per output row.
    Channel,
    /// One scale per group of this many consecutive inputs within a row.
    Group(usize),
}

/// How scales are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScaleFormat {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    Bf16,
    /// OCP E8M0 power of two (MX).
    E8m0,
    /// FP8 E4M3 block scale with an f32 tensor scale (NVFP4).
    E4m3,
}

impl ScaleFormat {
    /// Bytes per stored scale.
    pub fn bytes(self) -> u64 {
        match self {
            ScaleFormat::F32 => 4,
            ScaleFormat::F16 | ScaleFormat::Bf16 => 2,
            ScaleFormat::E8m0 | ScaleFormat::E4m3 => 1,
        }
    }
}

/// A complete quantizer description.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QuantSpec {
    /// The element grid.
    pub grid: Grid,
    /// Which weights share a scale.
    pub granularity: Granularity,
    /// How scales are stored.
    pub scale_format: ScaleFormat,
    /// Search the clipping range that minimizes each group's squared error.
    pub mse_clip: bool,
}

impl Grid {
    /// Width of one stored code in bits.
    pub fn code_bits(self) -> u8 {
        match self {
            Grid::Int { bits, .. } | Grid::Normal { bits } | Grid::Lloyd { bits } => bits,
            Grid::Float(f) | Grid::Mx(f) => f.bits(),
            Grid::Nvfp4 => 4,
        }
    }

    /// Whether the grid has a zero point.
    pub fn has_zero_point(self) -> bool {
        matches!(self, Grid::Int { sym: false, .. })
    }

    fn default_granularity(self) -> Granularity {
        match self {
            Grid::Int { .. } | Grid::Lloyd { .. } => Granularity::Group(128),
            Grid::Normal { .. } => Granularity::Group(64),
            Grid::Float(FloatFormat::E4M3 | FloatFormat::E5M2) => Granularity::Channel,
            Grid::Float(_) => Granularity::Group(32),
            Grid::Mx(_) => Granularity::Group(32),
            Grid::Nvfp4 => Granularity::Group(16),
        }
    }

    fn default_scale_format(self) -> ScaleFormat {
        match self {
            Grid::Int { .. } | Grid::Lloyd { .. } => ScaleFormat::F16,
            Grid::Normal { .. } => ScaleFormat::F32,
            Grid::Float(FloatFormat::E4M3 | FloatFormat::E5M2) => ScaleFormat::F32,
            Grid::Float(_) => ScaleFormat::F16,
            Grid::Mx(_) => ScaleFormat::E8m0,
            Grid::Nvfp4 => ScaleFormat::E4m3,
        }
    }

    /// Block formats fix their own granularity and scale format.
    fn fixed_blocks(self) -> bool {
        matches!(self, Grid::Mx(_) | Grid::Nvfp4)
    }

    fn token(self) -> String {
        match self {
            Grid::Int { bits, .. } => format!("int{bits}"),
            Grid::Normal { bits } => format!("nf{bits}"),
            Grid::Lloyd { bits } => format!("lloyd{bits}"),
            Grid::Float(f) => match f {
                FloatFormat::E2M1 => "fp4".into(),
                FloatFormat::E2M3 => "fp6-e2m3".into(),
                FloatFormat::E3M2 => "fp6-e3m2".into(),
                FloatFormat::E4M3 => "fp8-e4m3".into(),
                _ => "fp8-e5m2".into(),
            },
            Grid::Mx(f) => match f {
                FloatFormat::E2M1 => "mxfp4".into(),
                FloatFormat::E2M3 => "mxfp6".into(),
                FloatFormat::E3M2 => "mxfp6-e3m2".into(),
                FloatFormat::E4M3 => "mxfp8".into(),
                _ => "mxfp8-e5m2".into(),
            },
            Grid::Nvfp4 => "nvfp4".into(),
        }
    }

    fn parse_token(t: &str) -> Option<Result<Grid, String>> {
        let bits = |rest: &str| -> Result<u8, String> {
            match rest.parse::<u8>() {
                Ok(b) if (1..=8).contains(&b) => Ok(b),
                _ => Err(format!("bit width `{rest}` is outside 1..=8")),
            }
        };
        let g = if let Some(rest) = t.strip_prefix("int") {
            bits(rest).map(|b| Grid::Int {
                bits: b,
                sym: false,
            })
        } else if let Some(rest) = t.strip_prefix("lloyd") {
            bits(rest).map(|b| Grid::Lloyd { bits: b })
        } else {
            match t {
                "nf4" => Ok(Grid::Normal { bits: 4 }),
                "nf3" => Ok(Grid::Normal { bits: 3 }),
                "fp4" | "fp4-e2m1" => Ok(Grid::Float(FloatFormat::E2M1)),
                "fp6-e2m3" => Ok(Grid::Float(FloatFormat::E2M3)),
                "fp6-e3m2" => Ok(Grid::Float(FloatFormat::E3M2)),
                "fp8-e4m3" => Ok(Grid::Float(FloatFormat::E4M3)),
                "fp8-e5m2" => Ok(Grid::Float(FloatFormat::E5M2)),
                "mxfp4" => Ok(Grid::Mx(FloatFormat::E2M1)),
                "mxfp6" | "mxfp6-e2m3" => Ok(Grid::Mx(FloatFormat::E2M3)),
                "mxfp6-e3m2" => Ok(Grid::Mx(FloatFormat::E3M2)),
                "mxfp8" | "mxfp8-e4m3" => Ok(Grid::Mx(FloatFormat::E4M3)),
                "mxfp8-e5m2" => Ok(Grid::Mx(FloatFormat::E5M2)),
                "nvfp4" => Ok(Grid::Nvfp4),
                _ => return None,
            }
        };
        Some(g)
    }
}

impl QuantSpec {
    /// A spec with the grid's default granularity and scale format.
    pub fn new(grid: Grid) -> Self {
        Self {
            grid,
            granularity: grid.default_granularity(),
            scale_format: grid.default_scale_format(),
            mse_clip: false,
        }
    }

    /// Sets the granularity.
    pub fn with_granularity(mut self, g: Granularity) -> Self {
        self.granularity = g;
        self
    }

    /// Sets the scale format.
    pub fn with_scale_format(mut self, f: ScaleFormat) -> Self {
        self.scale_format = f;
        self
    }

    /// Turns the MSE-optimal clipping search on or off.
    pub fn with_mse_clip(mut self, on: bool) -> Self {
        self.mse_clip = on;
        self
    }

    /// Checks the spec's internal consistency.
    pub fn validate(&self) -> Result<()> {
        match self.grid {
            Grid::Int { bits, .. } | Grid::Lloyd { bits } if !(1..=8).contains(&bits) => {
                return Err(Error::invalid(
                    "bit width",
                    format!("{bits} is outside 1..=8"),
                ));
            }
            Grid::Normal { bits } if bits != 3 && bits != 4 => {
                return Err(Error::invalid(
                    "NormalFloat width",
                    format!("nf{bits} is not provided (nf3 and nf4 are)"),
                ));
            }
            _ => {}
        }
        if let Granularity::Group(0) = self.granularity {
            return Err(Error::invalid(
                "group size",
                "a group must hold at least one weight",
            ));
        }
        if self.grid.fixed_blocks() {
            if self.granularity != self.grid.default_granularity()
                || self.scale_format != self.grid.default_scale_format()
            {
                return Err(Error::invalid(
                    "block format",
                    format!(
                        "{} fixes its blocks and scale format; they cannot be changed",
                        self.grid.token()
                    ),
                ));
            }
            if self.mse_clip {
                return Err(Error::invalid(
                    "mse",
                    "MSE clipping applies to grids with a free scale, not to MX/NVFP4 blocks",
                ));
            }
        } else if matches!(self.scale_format, ScaleFormat::E8m0 | ScaleFormat::E4m3) {
            return Err(Error::invalid(
                "scale format",
                "E8M0 and E4M3 scales belong to the MX and NVFP4 block formats",
            ));
        }
        if let Grid::Int { bits: 1, sym: true } = self.grid
            && self.mse_clip
        {
            return Err(Error::invalid(
                "mse",
                "the 1-bit sign grid has no clipping range",
            ));
        }
        Ok(())
    }

    /// The arguments of this spec in canonical recipe form (`int4:g128:asym`).
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![self.grid.token()];
        if !self.grid.fixed_blocks() {
            a.push(match self.granularity {
                Granularity::Tensor => "tensor".into(),
                Granularity::Channel => "channel".into(),
                Granularity::Group(g) => format!("g{g}"),
            });
        }
        if let Grid::Int { sym, .. } = self.grid {
            a.push(if sym { "sym" } else { "asym" }.into());
        }
        if self.mse_clip {
            a.push("mse".into());
        }
        if self.scale_format != self.grid.default_scale_format() {
            a.push(
                match self.scale_format {
                    ScaleFormat::F32 => "f32",
                    ScaleFormat::F16 => "f16",
                    ScaleFormat::Bf16 => "bf16",
                    ScaleFormat::E8m0 => "e8m0",
                    ScaleFormat::E4m3 => "e4m3",
                }
                .into(),
            );
        }
        a
    }

    /// Parses the arguments of a quantizing stage (everything after the
    /// method name). Arguments the caller handles itself (for example GPTQ's
    /// `actorder`) are passed through `extra`: return `true` to accept one.
    pub fn parse_args(stage: &StageSpec, mut extra: impl FnMut(&str) -> bool) -> Result<Self> {
        let mut it = stage.args.iter();
        let first = it.next().ok_or_else(|| {
            stage.error(
                &stage.method,
                "a grid is required (int4, nf4, fp4, mxfp4, nvfp4, ...)",
            )
        })?;
        let grid = match Grid::parse_token(first) {
            Some(Ok(g)) => g,
            Some(Err(reason)) => return Err(stage.error(first, reason)),
            None => {
                return Err(stage.error(
                    first,
                    "unknown grid (expected intB, nf4, nf3, fp4, fp6-e2m3, fp6-e3m2, fp8-e4m3, \
                     fp8-e5m2, lloydB, mxfp4, mxfp6, mxfp6-e3m2, mxfp8, mxfp8-e5m2 or nvfp4)",
                ));
            }
        };
        let mut spec = QuantSpec::new(grid);
        let (mut seen_gran, mut seen_sym, mut seen_fmt) = (false, false, false);
        // The arguments that set the granularity and the scale format, for errors.
        let (mut gran_arg, mut fmt_arg) = (None, None);
        for a in it {
            let dup = |seen: &mut bool| -> Result<()> {
                if std::mem::replace(seen, true) {
                    Err(stage.error(a, "given twice"))
                } else {
                    Ok(())
                }
            };
            match a.as_str() {
                "tensor" | "channel" => {
                    dup(&mut seen_gran)?;
                    gran_arg = Some(a);
                    spec.granularity = if a == "tensor" {
                        Granularity::Tensor
                    } else {
                        Granularity::Channel
                    };
                }
                "sym" | "asym" => {
                    dup(&mut seen_sym)?;
                    match &mut spec.grid {
                        Grid::Int { sym, .. } => *sym = a == "sym",
                        _ => return Err(stage.error(a, "sym/asym applies to integer grids only")),
                    }
                }
                "mse" => {
                    if std::mem::replace(&mut spec.mse_clip, true) {
                        return Err(stage.error(a, "given twice"));
                    }
                }
                "f32" | "f16" | "bf16" => {
                    dup(&mut seen_fmt)?;
                    fmt_arg = Some(a);
                    spec.scale_format = match a.as_str() {
                        "f32" => ScaleFormat::F32,
                        "f16" => ScaleFormat::F16,
                        _ => ScaleFormat::Bf16,
                    };
                }
                _ if a.starts_with('g')
                    && a[1..].bytes().all(|b| b.is_ascii_digit())
                    && a.len() > 1 =>
                {
                    dup(&mut seen_gran)?;
                    gran_arg = Some(a);
                    let g: usize = a[1..]
                        .parse()
                        .map_err(|_| stage.error(a, "group size is too large"))?;
                    if g == 0 {
                        return Err(stage.error(a, "a group must hold at least one weight"));
                    }
                    spec.granularity = Granularity::Group(g);
                }
                _ if extra(a) => {}
                _ => {
                    return Err(stage.error(
                        a,
                        "unknown argument (expected gN, channel, tensor, sym, asym, mse, f32, f16 or bf16)",
                    ));
                }
            }
        }
        if let (true, Some(a)) = (spec.grid.fixed_blocks(), gran_arg) {
            return Err(stage.error(
                a,
                "MX and NVFP4 fix their block size; drop the granularity argument",
            ));
        }
        spec.validate().map_err(|e| {
            // Name the argument that made the spec invalid.
            let part = match (&e, fmt_arg) {
                (Error::InvalidArgument { name, .. }, _) if name == "mse" => "mse".to_string(),
                (Error::InvalidArgument { .. }, Some(f)) if spec.grid.fixed_blocks() => f.clone(),
                _ => stage.to_string(),
            };
            stage.error(part, e.to_string())
        })?;
        Ok(spec)
    }
}

impl fmt::Display for QuantSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.args().join(":"))
    }
}
