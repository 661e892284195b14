//! What a pruning method removes: a ratio and a sparsity pattern, and their
//! recipe tokens.
//!
//! | token | pattern | pruned |
//! |---|---|---|
//! | `50%` | [`Pattern::Unstructured`] | `floor(0.5 * count)` weights of the comparison group (the method says which) |
//! | `row:50%` | [`Pattern::PerRow`] | `floor(0.5 * cols)` weights of every row |
//! | `2:4` | [`Pattern::NM`] | every group of 4 consecutive weights of a row keeps exactly 2 |
//! | `rows:25%` | [`Pattern::Rows`] | `floor(0.25 * rows)` whole output rows |
//! | `cols:25%` | [`Pattern::Columns`] | `floor(0.25 * cols)` whole input columns |
//!
//! A count `floor(p * n / 100)` is computed from the percentage as written
//! (`p * n / 100` with a relative tolerance of `1e-9`, so that a decimal
//! percentage such as `33.3%` of 1000 prunes 333 and not 332).

use shrink_core::{Error, Result, StageSpec};
use shrink_pack::sparse::ValueFormat;
use std::fmt;

/// A percentage in `[0, 100]`, kept as written so that it prints back
/// unchanged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ratio {
    percent: f64,
}

impl Ratio {
    /// A ratio from a percentage (`50.0` is half).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `percent` is not finite or outside
    /// `[0, 100]`.
    pub fn percent(percent: f64) -> Result<Self> {
        if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
            return Err(Error::invalid(
                "sparsity ratio",
                format!("{percent}% is outside 0%..=100%"),
            ));
        }
        // -0.0 prints as "-0"; normalize.
        Ok(Self {
            percent: percent + 0.0,
        })
    }

    /// A ratio from a fraction (`0.5` is half).
    ///
    /// # Errors
    ///
    /// As [`Ratio::percent`], for `fraction` outside `[0, 1]`.
    pub fn fraction(fraction: f64) -> Result<Self> {
        Self::percent(fraction * 100.0)
    }

    /// The percentage.
    pub fn as_percent(self) -> f64 {
        self.percent
    }

    /// The fraction (`percent / 100`).
    pub fn as_fraction(self) -> f64 {
        self.percent / 100.0
    }

    /// `floor(p * n / 100)`, with the tolerance of the module documentation.
    pub fn count_of(self, n: usize) -> usize {
        let x = self.percent * n as f64 / 100.0;
        let k = (x * (1.0 + 1e-9)).floor();
        (k.max(0.0) as usize).min(n)
    }

    /// Parses `50%` (the `%` is required).
    fn parse(token: &str) -> Option<std::result::Result<Self, String>> {
        let num = token.strip_suffix('%')?;
        Some(match num.parse::<f64>() {
            Ok(p) => Self::percent(p).map_err(|e| e.to_string()),
            Err(_) => Err(format!("`{num}` is not a number")),
        })
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.percent)
    }
}

/// Which weights a pruning method may remove, and how many.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Pattern {
    /// Remove this fraction of the weights, compared over the method's own
    /// group (the whole matrix for magnitude, each row for Wanda, each block
    /// of columns for SparseGPT).
    Unstructured(Ratio),
    /// Remove this fraction of every row.
    PerRow(Ratio),
    /// N:M: every group of `m` consecutive weights of a row keeps exactly `n`.
    NM {
        /// Weights kept per group.
        n: usize,
        /// Group size; must divide the row length.
        m: usize,
    },
    /// Remove this fraction of the output rows (structured).
    Rows(Ratio),
    /// Remove this fraction of the input columns (structured).
    Columns(Ratio),
}

impl Pattern {
    /// N:M with `n` kept of every `m`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `m == 0` or `n > m`.
    pub fn n_of_m(n: usize, m: usize) -> Result<Self> {
        if m == 0 {
            return Err(Error::invalid("N:M", "the group size M must be at least 1"));
        }
        if n > m {
            return Err(Error::invalid(
                "N:M",
                format!("{n}:{m} keeps more weights (N = {n}) than a group holds (M = {m})"),
            ));
        }
        Ok(Pattern::NM { n, m })
    }

    /// Checks the pattern against a `(rows, cols)` matrix: N:M needs `M` to
    /// divide the row length.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the pattern does not fit the shape.
    pub fn check_shape(&self, _rows: usize, cols: usize) -> Result<()> {
        if let Pattern::NM { n, m } = *self {
            Self::n_of_m(n, m)?;
            if !cols.is_multiple_of(m) {
                return Err(Error::invalid(
                    "N:M",
                    format!(
                        "the group size M = {m} does not divide the row length {cols}; \
                         N:M groups never straddle rows, so choose an M that divides {cols}"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The recipe tokens of this pattern.
    pub fn tokens(&self) -> Vec<String> {
        match self {
            Pattern::Unstructured(r) => vec![r.to_string()],
            Pattern::PerRow(r) => vec!["row".into(), r.to_string()],
            Pattern::NM { n, m } => vec![n.to_string(), m.to_string()],
            Pattern::Rows(r) => vec!["rows".into(), r.to_string()],
            Pattern::Columns(r) => vec!["cols".into(), r.to_string()],
        }
    }
}

/// What a stage's arguments say beyond the pattern.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub pattern: Option<Pattern>,
    /// `rK` (LIFT rank).
    pub rank: Option<usize>,
    /// `f32`, `f16` or `bf16`: how kept values are stored.
    pub format: Option<ValueFormat>,
    /// Arguments after the pattern that the method handles (for SparseGPT's
    /// quantizer), in order.
    pub rest: Vec<String>,
}

/// Parses pruning arguments: `row`, `rows` or `cols` before a percentage,
/// `N` `M` as two integer arguments, `rK`; with `rest_allowed`, the first
/// argument that is none of those starts the rest (handed back untouched).
pub(crate) fn parse_args(stage: &StageSpec, rest_allowed: bool) -> Result<Parsed> {
    let mut out = Parsed::default();
    let mut structure: Option<&str> = None;
    let args = &stage.args;
    let mut k = 0;
    let set = |out: &mut Parsed, p: Pattern, at: &str| -> Result<()> {
        if out.pattern.replace(p).is_some() {
            return Err(stage.error(at, "a second sparsity (give one ratio or one N:M)"));
        }
        Ok(())
    };
    while k < args.len() {
        let a = args[k].as_str();
        if let Some(r) = Ratio::parse(a) {
            let r = r.map_err(|reason| stage.error(a, reason))?;
            let p = match structure.take() {
                None => Pattern::Unstructured(r),
                Some("row") => Pattern::PerRow(r),
                Some("rows") => Pattern::Rows(r),
                _ => Pattern::Columns(r),
            };
            set(&mut out, p, a)?;
        } else if matches!(a, "row" | "rows" | "cols") {
            if structure.replace(a).is_some() || out.pattern.is_some() {
                return Err(stage.error(
                    a,
                    "`row`, `rows` or `cols` comes once, right before the percentage",
                ));
            }
        } else if a.bytes().all(|b| b.is_ascii_digit()) && !a.is_empty() {
            let n: usize = a.parse().map_err(|_| stage.error(a, "number too large"))?;
            let m_tok = args.get(k + 1).ok_or_else(|| {
                stage.error(a, "N:M needs two numbers (`2:4`: keep 2 of every 4)")
            })?;
            let m: usize = m_tok
                .parse()
                .map_err(|_| stage.error(m_tok, "N:M needs two numbers (`2:4`)"))?;
            let p = Pattern::n_of_m(n, m)
                .map_err(|e| stage.error(format!("{n}:{m}"), e.to_string()))?;
            if structure.is_some() {
                return Err(stage.error(a, "`row`/`rows`/`cols` take a percentage, not N:M"));
            }
            set(&mut out, p, a)?;
            k += 1;
        } else if let Some(r) = a
            .strip_prefix('r')
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        {
            let r: usize = r.parse().map_err(|_| stage.error(a, "rank too large"))?;
            if out.rank.replace(r).is_some() {
                return Err(stage.error(a, "given twice"));
            }
        } else if matches!(a, "f32" | "f16" | "bf16") {
            let f = match a {
                "f32" => ValueFormat::F32,
                "bf16" => ValueFormat::Bf16,
                _ => ValueFormat::F16,
            };
            if out.format.replace(f).is_some() {
                return Err(stage.error(a, "the value format is given twice"));
            }
        } else if rest_allowed && out.pattern.is_some() {
            out.rest = args[k..].to_vec();
            break;
        } else {
            return Err(stage.error(
                a,
                "unknown argument (expected a percentage like 50%, N:M like 2:4, \
                 row:/rows:/cols: before a percentage, rK, or f32/f16/bf16)",
            ));
        }
        k += 1;
    }
    if let Some(s) = structure {
        return Err(stage.error(s, "needs a percentage after it (e.g. rows:25%)"));
    }
    Ok(out)
}

/// The recipe token of a non-default value format.
pub(crate) fn format_token(f: ValueFormat) -> Option<String> {
    match f {
        ValueFormat::F16 => None,
        ValueFormat::F32 => Some("f32".into()),
        ValueFormat::Bf16 => Some("bf16".into()),
    }
}
