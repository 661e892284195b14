//! HQQ: Half-Quadratic Quantization, calibration-free zero-point (and
//! optionally scale) optimization for uniform integer grids.
//!
//! Source: Badri & Shaji (Mobius Labs), "Half-Quadratic Quantization of Large
//! Machine Learning Models", technical report, Nov 2023; algorithm as
//! restated in the project's algorithm notes (section 7), defaults of the
//! `hqq` package 0.2.8 (`optimize_weights_proximal_legacy`, its default
//! solver).
//!
//! # Map
//!
//! HQQ works with the inverse scale `s` and a real-valued zero `z` per group:
//! `q = clamp(round(w s + z), 0, 2^b - 1)` (round half to even), and the
//! reconstruction is `w' = (q - z) / s`, stored as `(q - z) * scale` with
//! `scale = 1/s`. Initialization per group from its minimum and maximum
//! (0 need not be inside): `s = (2^b - 1) / (max - min)` (1 when
//! `|max - min| <= 1e-4`, and at most `2e4`), `z = -min s`, rounded when the
//! `roundzero` option is on.
//!
//! # Objective and solver
//!
//! ```text
//! min over z, W_e of  ||W_e||_p^p + beta/2 ||W_e - (W - Q_z^{-1}(Q_z(W)))||_2^2,   p = 0.7
//! ```
//!
//! solved by half-quadratic splitting; each iteration:
//! 1. `q = clamp(round(w s + z))`, `w_r = (q - z) / s`;
//! 2. `W_e = shrink_p(w - w_r)`, `shrink_p(x) = sign(x) max(|x| - |x|^(p-1) / beta, 0)`;
//! 3. `z = mean over the group of (q - (w - W_e) s)` (closed form);
//!
//! with `p = 0.7`, `beta = 10`, 20 iterations. The error `mean |W - W_r|`
//! over the whole tensor, evaluated in step 1 (with the zero before the
//! update), stops the loop at the first iteration that does not improve it;
//! the zero of that iteration's update is kept (no rollback), as the legacy
//! solver does. `kappa` (1.01) is kept in [`HqqSolver`] for completeness but,
//! as in the legacy solver, `beta` stays fixed and `kappa` is ignored.
//!
//! With the `scale` option, the inverse scale of every group is first chosen
//! among 129 candidates `s + t`, `t` evenly spaced in `[-r, r]` with
//! `r = 0.05 mean |s|` (tensor-wide mean), keeping the codes of the initial
//! map fixed and minimizing the group's `mean |w - (q - z)/s'|`, as in the
//! package's `update_scale_grid_search` (there only usable along axis 0;
//! here it runs per group). The zero is then optimized as above.
//!
//! Guarantee: the result (as stored, with rounded scale and zero) is never
//! worse in the solver's error `sum |W - W'|` than the initial min/max map
//! it starts from; if it were, the initial map is returned.
//!
//! Computation follows the package on CPU: element-wise arithmetic in f32,
//! sums (means, errors) accumulated in f64. Groups are independent within an
//! iteration and the tensor error is summed in group order, so the result
//! does not depend on the thread count.
//!
//! # Grids, granularity, storage
//!
//! Only uniform integer grids (`int1`..`int8`, asymmetric, since HQQ fits a
//! zero point) are supported; every other grid, `sym` and `mse` are typed
//! errors. Groups are `gN` consecutive inputs of a row (the package's
//! `axis = 1`), a whole row (`channel`), or the whole tensor (`tensor`).
//!
//! HQQ zero points are real numbers, which the integer zero points of
//! [`QuantizedMatrix`](crate::QuantizedMatrix) cannot hold, so the result is
//! an [`HqqMatrix`]: `b`-bit codes plus a scale and a zero per group, both in
//! the spec's scale format (f16 by default, the package's compute dtype;
//! `:f32`, `:bf16`). Bits per weight for `gN`: `b + 2 * 16 / N` with f16.
//!
//! With a restriction mask (a [`Context::mask`]) HQQ fits the values it is
//! given and stores, at pruned weights, the code nearest the group's zero;
//! the restricted-support [`Pipeline`](shrink_core::Pipeline) zeroes pruned
//! weights on reconstruction ([`shrink_core::Restricted`]).
//!
//! Checked against a NumPy port of the package's solver on the MiniLM layers:
//! the package's published numbers were produced by `Quantizer.quantize` with
//! its default `round_zero = False` (which is why `roundzero` is off by
//! default here, although `BaseQuantizeConfig` turns it on for 4 bits).
//!
//! # Recipe
//!
//! `hqq:intB[:gN|channel|tensor][:f32|f16|bf16][:scale][:roundzero][:itersN]`,
//! e.g. `hqq:int4:g64`, `hqq:int2:g16`. The group size defaults to 64 (the
//! package's default).

use crate::float::{round_to_bf16, round_to_f16};
use crate::matrix::group_layout;
use crate::spec::{Granularity, Grid, QuantSpec, ScaleFormat};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use shrink_core::check::{finite_matrix, input_width};
use shrink_core::linalg::{dense_from_rows, forward_by_row_blocks};
use shrink_core::{
    Compressed, Compressor, Context, Error, Mask, Reconstruct, Result, StageSpec, Storage,
};

/// Default HQQ group size (the package's `BaseQuantizeConfig`).
pub const DEFAULT_GROUP: usize = 64;

/// Candidates of the optional scale search (odd, so the initial scale is one).
const SCALE_CANDIDATES: usize = 129;

/// The half-quadratic solver's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HqqSolver {
    /// The `p` of the lp "norm" of the error (default 0.7; must be in `(0, 1]`).
    pub lp_norm: f32,
    /// The quadratic penalty weight (default 10).
    pub beta: f32,
    /// Growth of `beta` per iteration in the package's v2 solver (1.01).
    /// The legacy (default) solver, implemented here, ignores it.
    pub kappa: f32,
    /// Maximum number of iterations (default 20).
    pub iters: usize,
}

impl Default for HqqSolver {
    fn default() -> Self {
        Self {
            lp_norm: 0.7,
            beta: 10.0,
            kappa: 1.01,
            iters: 20,
        }
    }
}

/// The HQQ compressor and its options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hqq {
    /// An asymmetric integer grid, its granularity and the storage format of
    /// scales and zeros (f32, f16 or bf16).
    pub spec: QuantSpec,
    /// Solver parameters.
    pub solver: HqqSolver,
    /// Round the initial zero to an integer (the package's `round_zero`).
    pub round_zero: bool,
    /// Search the scale before optimizing the zero.
    pub optimize_scale: bool,
}

impl Hqq {
    /// HQQ over `intB` with groups of `group` (the package's defaults otherwise).
    pub fn int(bits: u8, granularity: Granularity) -> Self {
        Self::new(QuantSpec::new(Grid::Int { bits, sym: false }).with_granularity(granularity))
    }

    /// HQQ with a spec (which must be an asymmetric integer grid).
    pub fn new(spec: QuantSpec) -> Self {
        Self {
            spec,
            solver: HqqSolver::default(),
            round_zero: false,
            optimize_scale: false,
        }
    }

    /// Turns the scale search on or off.
    pub fn with_optimize_scale(mut self, on: bool) -> Self {
        self.optimize_scale = on;
        self
    }

    /// Turns the rounding of the initial zero on or off.
    pub fn with_round_zero(mut self, on: bool) -> Self {
        self.round_zero = on;
        self
    }

    /// Sets the solver's parameters.
    pub fn with_solver(mut self, solver: HqqSolver) -> Self {
        self.solver = solver;
        self
    }

    /// The code width.
    fn bits(&self) -> Result<u8> {
        match self.spec.grid {
            Grid::Int { bits, sym: false } if (1..=8).contains(&bits) => Ok(bits),
            Grid::Int { sym: true, .. } => Err(Error::invalid(
                "HQQ grid",
                "HQQ optimizes a zero point; symmetric grids have none (drop `sym`)",
            )),
            _ => Err(Error::invalid(
                "HQQ grid",
                "HQQ quantizes to uniform integer grids (int1..int8) only",
            )),
        }
    }

    /// Checks the options.
    pub fn validate(&self) -> Result<()> {
        self.spec.validate()?;
        self.bits()?;
        if self.spec.mse_clip {
            return Err(Error::invalid(
                "mse",
                "HQQ fits its own zero point (and scale); MSE clipping does not apply",
            ));
        }
        if !matches!(
            self.spec.scale_format,
            ScaleFormat::F32 | ScaleFormat::F16 | ScaleFormat::Bf16
        ) {
            return Err(Error::invalid(
                "HQQ scale format",
                "scales and zeros are stored as f32, f16 or bf16",
            ));
        }
        let s = &self.solver;
        if !(s.lp_norm > 0.0 && s.lp_norm <= 1.0) {
            return Err(Error::invalid(
                "HQQ lp_norm",
                format!("{} is outside (0, 1]", s.lp_norm),
            ));
        }
        if !(s.beta.is_finite() && s.beta > 0.0) {
            return Err(Error::invalid(
                "HQQ beta",
                format!("{} is not a positive finite number", s.beta),
            ));
        }
        if !s.kappa.is_finite() {
            return Err(Error::invalid("HQQ kappa", "must be finite"));
        }
        if s.iters == 0 {
            return Err(Error::invalid("HQQ iterations", "at least one is needed"));
        }
        Ok(())
    }

    /// The arguments after `hqq` in canonical order.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = self
            .spec
            .args()
            .into_iter()
            .filter(|t| t != "asym")
            .collect();
        if self.optimize_scale {
            a.push("scale".into());
        }
        if self.round_zero {
            a.push("roundzero".into());
        }
        if self.solver.iters != HqqSolver::default().iters {
            a.push(format!("iters{}", self.solver.iters));
        }
        a
    }

    /// Parses an `hqq:...` stage.
    pub fn from_stage(stage: &StageSpec) -> Result<Self> {
        if stage.method != "hqq" {
            return Err(stage.error(&stage.method, "not an hqq stage"));
        }
        let grid_token = stage.args.first().cloned().unwrap_or_default();
        let given_granularity = stage.args.iter().skip(1).any(|a| {
            a == "tensor"
                || a == "channel"
                || (a.len() > 1 && a.starts_with('g') && a[1..].bytes().all(|b| b.is_ascii_digit()))
        });
        let mut optimize_scale = false;
        let mut round_zero = false;
        let mut iters: Option<usize> = None;
        let mut bad: Option<Error> = None;
        let mut spec = QuantSpec::parse_args(stage, |a| {
            let mut fail = |reason: &str| {
                bad.get_or_insert_with(|| stage.error(a, reason));
            };
            match a {
                "scale" => {
                    if std::mem::replace(&mut optimize_scale, true) {
                        fail("given twice");
                    }
                    true
                }
                "roundzero" => {
                    if std::mem::replace(&mut round_zero, true) {
                        fail("given twice");
                    }
                    true
                }
                _ => match a.strip_prefix("iters") {
                    Some(v) => {
                        match v.parse::<usize>() {
                            Ok(k) if k > 0 => {
                                if iters.replace(k).is_some() {
                                    fail("given twice");
                                }
                            }
                            _ => fail("the iteration count is a positive integer (iters20)"),
                        }
                        true
                    }
                    None => false,
                },
            }
        })?;
        if let Some(e) = bad {
            return Err(e);
        }
        if !given_granularity {
            spec.granularity = Granularity::Group(DEFAULT_GROUP);
        }
        let mut h = Self::new(spec)
            .with_optimize_scale(optimize_scale)
            .with_round_zero(round_zero);
        if let Some(k) = iters {
            h.solver.iters = k;
        }
        if let Err(e) = h.bits() {
            return Err(stage.error(grid_token, e.to_string()));
        }
        h.validate()
            .map_err(|e| stage.error(stage.to_string(), e.to_string()))?;
        Ok(h)
    }
}

impl Compressor for Hqq {
    fn recipe(&self) -> String {
        StageSpec::new("hqq", self.args()).to_string()
    }

    fn compress(&self, w: ArrayView2<'_, f32>, ctx: &Context<'_>) -> Result<Compressed> {
        let mut q = quantize_hqq(w, self)?;
        if let Some(m) = ctx.mask {
            q.set_pruned_to_zero_code(m)?;
        }
        Ok(Compressed::new(q))
    }
}

/// Per-group state of the map: inverse scale and zero.
#[derive(Clone, Copy, Debug)]
struct Map {
    s: f32,
    z: f32,
}

#[inline]
fn code(x: f32, m: Map, maxv: f32) -> f32 {
    (x * m.s + m.z).round_ties_even().clamp(0.0, maxv)
}

/// Quantizes `w` (out x in) with HQQ.
pub fn quantize_hqq(w: ArrayView2<'_, f32>, cfg: &Hqq) -> Result<HqqMatrix> {
    finite_matrix("weights", w)?;
    cfg.validate()?;
    let bits = cfg.bits()?;
    let (rows, cols) = w.dim();
    group_layout(cfg.spec.granularity, rows, cols)?;
    let glen = match cfg.spec.granularity {
        Granularity::Group(g) => g,
        Granularity::Channel => cols,
        Granularity::Tensor => rows * cols,
    };
    let values: Vec<f32> = w.iter().copied().collect();
    let maxv = ((1u32 << bits) - 1) as f32;

    // Initial map from each group's min and max.
    let init: Vec<Map> = values
        .par_chunks(glen)
        .map(|xs| {
            let mn = xs.iter().copied().fold(f32::INFINITY, f32::min);
            let mx = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let denom = mx - mn;
            let mut s = maxv / denom;
            if denom.abs() <= 1e-4 {
                s = 1.0;
            }
            let s = s.min(2e4);
            let mut z = -mn * s;
            if cfg.round_zero {
                z = z.round_ties_even();
            }
            Map { s, z }
        })
        .collect();

    let mut map = init.clone();
    if cfg.optimize_scale {
        map = search_scales(&values, glen, &map, maxv);
    }
    solve_zeros(&values, glen, &mut map, maxv, &cfg.solver);

    let fmt = cfg.spec.scale_format;
    let stored = store(&map, fmt)?;
    let chosen = match store(&init, fmt) {
        Ok(init_stored)
            if l1_error(&values, glen, &init, &init_stored, maxv)
                < l1_error(&values, glen, &map, &stored, maxv) =>
        {
            (init, init_stored)
        }
        _ => (map, stored),
    };
    let (map, (scales, zeros)) = chosen;
    let mut codes = vec![0u8; values.len()];
    codes
        .par_chunks_mut(glen)
        .zip(values.par_chunks(glen))
        .zip(map.par_iter())
        .for_each(|((c, xs), &m)| {
            for (o, &x) in c.iter_mut().zip(xs) {
                *o = code(x, m, maxv) as u8;
            }
        });
    HqqMatrix::from_parts(
        bits,
        cfg.spec.granularity,
        fmt,
        rows,
        cols,
        codes,
        scales,
        zeros,
    )
}

/// The legacy proximal solver: updates the zeros in place.
fn solve_zeros(values: &[f32], glen: usize, map: &mut [Map], maxv: f32, solver: &HqqSolver) {
    let p1 = solver.lp_norm - 1.0;
    let inv_beta = 1.0 / solver.beta;
    // `|x| - |x|^(p-1) / beta` increases with |x| and crosses 0 at
    // `beta^(-1/(2-p))`; well below that the result is 0 without the power
    // (a 0.1 % margin keeps the boundary cases on the exact formula).
    let cut = inv_beta.powf(1.0 / (2.0 - solver.lp_norm)) * 0.999;
    let shrink = |x: f32| -> f32 {
        let a = x.abs();
        if a < cut {
            return 0.0;
        }
        let t = (a - inv_beta * a.powf(p1)).max(0.0);
        if x > 0.0 {
            t
        } else if x < 0.0 {
            -t
        } else {
            0.0
        }
    };
    let n = values.len() as f64;
    let mut best = f64::INFINITY;
    for _ in 0..solver.iters {
        let step: Vec<(f32, f64)> = values
            .par_chunks(glen)
            .zip(map.par_iter())
            .map(|(xs, &m)| {
                let mut zsum = 0f64;
                let mut esum = 0f64;
                for &x in xs {
                    let q = code(x, m, maxv);
                    let r = (q - m.z) / m.s;
                    let e = x - r;
                    esum += f64::from(e.abs());
                    let we = shrink(e);
                    zsum += f64::from(q - (x - we) * m.s);
                }
                ((zsum / xs.len() as f64) as f32, esum)
            })
            .collect();
        let err = step.iter().map(|&(_, e)| e).sum::<f64>() / n;
        for (m, &(z, _)) in map.iter_mut().zip(&step) {
            m.z = z;
        }
        if err < best {
            best = err;
        } else {
            break;
        }
    }
}

/// The optional scale search (see the module documentation).
fn search_scales(values: &[f32], glen: usize, map: &[Map], maxv: f32) -> Vec<Map> {
    let mean_abs = map.iter().map(|m| f64::from(m.s.abs())).sum::<f64>() / map.len() as f64;
    let rng = (mean_abs * 0.05) as f32;
    let half = (SCALE_CANDIDATES - 1) as f32 / 2.0;
    values
        .par_chunks(glen)
        .zip(map.par_iter())
        .map(|(xs, &m)| {
            let codes: Vec<f32> = xs.iter().map(|&x| code(x, m, maxv)).collect();
            let mut best = (f64::INFINITY, m.s);
            for i in 0..SCALE_CANDIDATES {
                let shift = rng * (i as f32 - half) / half;
                let mut c = m.s + shift;
                if c.abs() <= 2e-4 {
                    c = if c >= 0.0 { 2e-4 } else { -2e-4 };
                }
                let err: f64 = xs
                    .iter()
                    .zip(&codes)
                    .map(|(&x, &q)| f64::from((x - (q - m.z) / c).abs()))
                    .sum();
                if err < best.0 {
                    best = (err, c);
                }
            }
            Map { s: best.1, z: m.z }
        })
        .collect()
}

fn round_to(fmt: ScaleFormat, x: f32) -> f32 {
    match fmt {
        ScaleFormat::F16 => round_to_f16(x),
        ScaleFormat::Bf16 => round_to_bf16(x),
        _ => x,
    }
}

/// Stored scales `1/s` and zeros, rounded to the format.
fn store(map: &[Map], fmt: ScaleFormat) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut scales = Vec::with_capacity(map.len());
    let mut zeros = Vec::with_capacity(map.len());
    for (k, m) in map.iter().enumerate() {
        let s = round_to(fmt, 1.0 / m.s);
        let z = round_to(fmt, m.z);
        if !(s.is_finite() && s != 0.0 && z.is_finite()) {
            return Err(Error::invalid(
                "HQQ scale",
                format!(
                    "group {k}: scale {} / zero {} do not fit the scale format; use `:f32`",
                    1.0 / m.s,
                    m.z
                ),
            ));
        }
        scales.push(s);
        zeros.push(z);
    }
    Ok((scales, zeros))
}

/// `sum |W - W'|` of a map with stored (rounded) scales and zeros.
fn l1_error(
    values: &[f32],
    glen: usize,
    map: &[Map],
    stored: &(Vec<f32>, Vec<f32>),
    maxv: f32,
) -> f64 {
    let per: Vec<f64> = values
        .par_chunks(glen)
        .zip(map.par_iter())
        .zip(stored.0.par_iter().zip(stored.1.par_iter()))
        .map(|((xs, &m), (&s, &z))| {
            xs.iter()
                .map(|&x| f64::from((x - (code(x, m, maxv) - z) * s).abs()))
                .sum::<f64>()
        })
        .collect();
    per.iter().sum()
}

/// An HQQ-quantized `(rows, cols)` matrix: `b`-bit codes and, per group, a
/// scale and a real-valued zero; weight = `(code - zero) * scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct HqqMatrix {
    bits: u8,
    granularity: Granularity,
    scale_format: ScaleFormat,
    rows: usize,
    cols: usize,
    codes: Vec<u8>,
    scales: Vec<f32>,
    zeros: Vec<f32>,
}

impl HqqMatrix {
    /// Assembles the form, checking every invariant: codes below `2^bits`,
    /// one finite non-zero scale and one finite zero per group, both exactly
    /// representable in `scale_format` (f32, f16 or bf16).
    #[allow(clippy::too_many_arguments)]
    pub fn from_parts(
        bits: u8,
        granularity: Granularity,
        scale_format: ScaleFormat,
        rows: usize,
        cols: usize,
        codes: Vec<u8>,
        scales: Vec<f32>,
        zeros: Vec<f32>,
    ) -> Result<Self> {
        if !(1..=8).contains(&bits) {
            return Err(Error::corrupt(
                "HQQ matrix",
                format!("code width {bits} is outside 1..=8"),
            ));
        }
        if !matches!(
            scale_format,
            ScaleFormat::F32 | ScaleFormat::F16 | ScaleFormat::Bf16
        ) {
            return Err(Error::corrupt(
                "HQQ matrix",
                "scales and zeros are stored as f32, f16 or bf16",
            ));
        }
        let (ngroups, _) = group_layout(granularity, rows, cols)?;
        if codes.len() != rows * cols {
            return Err(Error::corrupt(
                "HQQ matrix",
                format!("{} codes for a {rows}x{cols} matrix", codes.len()),
            ));
        }
        if scales.len() != ngroups || zeros.len() != ngroups {
            return Err(Error::corrupt(
                "HQQ matrix",
                format!(
                    "{} scales and {} zeros where {ngroups} groups need one each",
                    scales.len(),
                    zeros.len()
                ),
            ));
        }
        if let Some(k) = codes.iter().position(|&c| u32::from(c) >= 1u32 << bits) {
            return Err(Error::corrupt(
                "HQQ matrix",
                format!("code {} at weight {k} does not fit {bits} bits", codes[k]),
            ));
        }
        for (k, (&s, &z)) in scales.iter().zip(&zeros).enumerate() {
            if !(s.is_finite() && s != 0.0 && z.is_finite()) {
                return Err(Error::corrupt(
                    "HQQ matrix",
                    format!("group {k} has scale {s} and zero {z}"),
                ));
            }
            if round_to(scale_format, s) != s || round_to(scale_format, z) != z {
                return Err(Error::corrupt(
                    "HQQ matrix",
                    format!("group {k}: scale {s} or zero {z} is not a {scale_format:?} value"),
                ));
            }
        }
        Ok(Self {
            bits,
            granularity,
            scale_format,
            rows,
            cols,
            codes,
            scales,
            zeros,
        })
    }

    /// Code width in bits.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Which weights share a scale and a zero.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }

    /// Storage format of scales and zeros.
    pub fn scale_format(&self) -> ScaleFormat {
        self.scale_format
    }

    /// One code per weight, row-major.
    pub fn codes(&self) -> &[u8] {
        &self.codes
    }

    /// Per-group scales (`1/s`), row-major over groups.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Per-group zeros, row-major over groups.
    pub fn zeros(&self) -> &[f32] {
        &self.zeros
    }

    /// The group index of weight `(i, j)`.
    #[inline]
    pub fn group_of(&self, i: usize, j: usize) -> usize {
        match self.granularity {
            Granularity::Tensor => 0,
            Granularity::Channel => i,
            Granularity::Group(g) => i * (self.cols / g) + j / g,
        }
    }

    /// Dequantizes row `i` into `out` (length `cols`).
    pub fn dequantize_row(&self, i: usize, out: &mut [f32]) {
        let codes = &self.codes[i * self.cols..(i + 1) * self.cols];
        let g = match self.granularity {
            Granularity::Group(g) => g,
            _ => self.cols,
        };
        for (k, (cs, os)) in codes.chunks(g).zip(out.chunks_mut(g)).enumerate() {
            let gi = self.group_of(i, k * g);
            let (s, z) = (self.scales[gi], self.zeros[gi]);
            for (&c, o) in cs.iter().zip(os.iter_mut()) {
                *o = (f32::from(c) - z) * s;
            }
        }
    }

    /// Sets every pruned weight's code to the one nearest its group's zero
    /// (the smallest magnitude the group can store).
    fn set_pruned_to_zero_code(&mut self, mask: &Mask) -> Result<()> {
        if mask.shape() != (self.rows, self.cols) {
            return Err(Error::shape(
                "HQQ mask",
                format!("{:?}", (self.rows, self.cols)),
                format!("{:?}", mask.shape()),
            ));
        }
        let maxv = ((1u32 << self.bits) - 1) as f32;
        for i in 0..self.rows {
            for j in 0..self.cols {
                if !mask.get(i, j) {
                    let z = self.zeros[self.group_of(i, j)];
                    self.codes[i * self.cols + j] = z.round_ties_even().clamp(0.0, maxv) as u8;
                }
            }
        }
        Ok(())
    }
}

impl Reconstruct for HqqMatrix {
    fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    fn to_dense(&self) -> Array2<f32> {
        dense_from_rows(self.rows, self.cols, |i, row| self.dequantize_row(i, row))
    }

    /// `x W'^T` decoding 64 rows of `W'` at a time: the dense matrix is never built.
    fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        input_width("forward input", x, self.cols)?;
        Ok(forward_by_row_blocks(x, self.rows, |i, row| {
            self.dequantize_row(i, row)
        }))
    }

    fn storage(&self) -> Storage {
        let n = (self.rows * self.cols) as u64;
        let g = self.scales.len() as u64;
        let b = self.scale_format.bytes();
        Storage::new(n)
            .with("codes", (n * u64::from(self.bits)).div_ceil(8))
            .with("scales", g * b)
            .with("zero points", g * b)
    }
}
