//! The low-rank methods as [`Compressor`]s, and their recipe syntax.
//!
//! ```text
//! svd:r64            plain truncated SVD            [W]_k
//! rsvd:r64           the same by randomized SVD     (q2, p = max(10, k/2) by default)
//! fwsvd:r64[:col]    Fisher-weighted SVD            output side (row) or input side (col)
//! svd-llm:r64        truncation-aware whitening     [W L]_k L^{-1}, L = cholesky(R)
//! asvd:r64[:a0.5]    activation-aware scaling       [W S]_k S^{-1}, S = diag(mean|x|^a)
//! qera:r32[:chol]    QERA-exact                     [E S]_k S^{-1}, S S^T = R
//! qera-approx:r32    QERA with S = diag(rms)
//! lqer:r32           LQER's normalized mean |x| scaling
//! lorc:r32           ZeroQuant-V2 LoRC              [E]_k
//! ```
//!
//! Every method takes a rank `r<k>` or a parameter budget `ratio<rho>`: the
//! fraction of the `m n` parameters removed, `k = floor(m n (1 - rho) /
//! (m + n))` as SVD-LLM defines it (`ratio0.5` keeps half). A rank above
//! `min(m, n)` is clamped to it. Optional arguments: `rand` (randomized SVD by
//! subspace iteration, `q2` power iterations by default) or `krylov`
//! (randomized block Krylov, `q6` blocks by default; far more accurate than
//! `rand` for the same work on flat spectra such as quantization errors),
//! both with `p<N>` oversampling (default `max(10, k/2)`) and `q<N>`, and the
//! stored precision `f16` (default), `bf16` or `f32`.
//!
//! In a pipeline the stages fit the residual of the stages before them, so
//! `rtn:int3:g128:asym+qera:r32` is `W' = Q + A B` with `A B` fitted to
//! `E = W - Q`; alone, `qera:r64` is the output-optimal rank-64
//! approximation of `W` (the same matrix as `svd-llm:r64` up to float
//! rounding).

use crate::dense::Randomized;
use crate::form::{LowRankMatrix, Precision};
use crate::scaled::{Factors, KRYLOV_DEPTH, Scaling, Solver, approximate};
use crate::whiten::{
    Side, asvd_scale, fisher_weights, lqer_scale, qera_approx_scale, svd_llm_whitening, sym_sqrt,
};
use ndarray::{Array2, ArrayView2};
use shrink_core::check::finite_matrix;
use shrink_core::{Compose, Compressed, Compressor, Context, Error, LayerStats, Result, StageSpec};

/// How QERA-exact whitens (both give the same optimum; see
/// [`crate::scaled`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Whitening {
    /// The symmetric square root through the symmetric eigendecomposition,
    /// eigenvalues clipped to `1e-12 lambda_max` (the paper's choice).
    #[default]
    SymSqrt,
    /// The Cholesky factor of `R` (about 3x cheaper than the
    /// eigendecomposition); when `R` is not numerically positive definite it
    /// falls back to the clipped symmetric square root.
    Cholesky,
}

/// A low-rank method (module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    /// Plain truncated SVD.
    Svd,
    /// Fisher-weighted SVD on one side.
    Fwsvd(Side),
    /// SVD-LLM's Cholesky whitening.
    SvdLlm,
    /// ASVD's diagonal scaling with exponent `alpha`.
    Asvd {
        /// Exponent of the mean |x| (0.5 by default).
        alpha: f64,
    },
    /// QERA-exact.
    Qera(Whitening),
    /// QERA-approx (diagonal RMS).
    QeraApprox,
    /// LQER (normalized mean |x|).
    Lqer,
    /// ZeroQuant-V2 LoRC (plain SVD of the error).
    Lorc,
}

impl Method {
    /// The recipe name.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Svd => "svd",
            Method::Fwsvd(_) => "fwsvd",
            Method::SvdLlm => "svd-llm",
            Method::Asvd { .. } => "asvd",
            Method::Qera(_) => "qera",
            Method::QeraApprox => "qera-approx",
            Method::Lqer => "lqer",
            Method::Lorc => "lorc",
        }
    }

    /// Whether the method reads calibration statistics.
    pub fn needs_stats(&self) -> bool {
        !matches!(self, Method::Svd | Method::Lorc)
    }
}

/// The rank, directly or from a parameter budget.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rank {
    /// Exactly `k` (clamped to `min(m, n)`).
    Fixed(usize),
    /// Remove this fraction of the parameters (`0 <= rho < 1`).
    Ratio(f64),
}

impl Rank {
    /// The rank for an `m x n` matrix.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the budget leaves no rank at all.
    pub fn resolve(self, m: usize, n: usize) -> Result<usize> {
        match self {
            Rank::Fixed(k) => Ok(k.min(m).min(n)),
            Rank::Ratio(rho) => {
                let k = ((m * n) as f64 * (1.0 - rho) / (m + n) as f64).floor() as usize;
                if k == 0 {
                    return Err(Error::invalid(
                        "rank budget",
                        format!(
                            "removing {rho} of the parameters of a {m}x{n} matrix leaves no rank"
                        ),
                    ));
                }
                Ok(k.min(m).min(n))
            }
        }
    }
}

/// A low-rank stage: a method, a rank, a solver and a stored precision.
#[derive(Clone, Debug, PartialEq)]
pub struct LowRank {
    /// The method.
    pub method: Method,
    /// The rank or budget.
    pub rank: Rank,
    /// Exact or randomized SVD.
    pub solver: Solver,
    /// Precision of the stored factors.
    pub precision: Precision,
}

impl LowRank {
    /// A stage with the exact solver and f16 factors.
    pub fn new(method: Method, rank: Rank) -> Self {
        Self {
            method,
            rank,
            solver: Solver::Exact,
            precision: Precision::F16,
        }
    }

    /// Sets the solver.
    pub fn with_solver(mut self, solver: Solver) -> Self {
        self.solver = solver;
        self
    }

    /// Sets the stored precision.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// The scaling this method uses on an `m x n` matrix.
    ///
    /// # Errors
    ///
    /// [`Error::Stats`] when the statistics the method needs are missing or
    /// unusable, [`Error::Shape`] when they do not fit the matrix.
    pub fn scaling(&self, m: usize, n: usize, ctx: &Context<'_>) -> Result<Scaling> {
        let stats = if self.method.needs_stats() && !matches!(self.method, Method::Fwsvd(_)) {
            let s = ctx.require_stats(self.method.name())?;
            if s.in_features() != n {
                return Err(Error::shape(
                    "calibration statistics",
                    format!("{n} input features (the weight's columns)"),
                    s.in_features().to_string(),
                ));
            }
            Some(s)
        } else {
            None
        };
        let corr = |s: &LayerStats| s.gram() / s.count() as f64;
        Ok(match self.method {
            Method::Svd | Method::Lorc => Scaling::Identity,
            Method::Fwsvd(side) => {
                let f = ctx.stats.and_then(LayerStats::fisher).ok_or_else(|| {
                    Error::stats(
                        "fwsvd needs Fisher information (LayerStats::with_fisher, or a \
                         `<layer>.fisher.safetensors` file beside the layer file)",
                    )
                })?;
                if f.dim() != (m, n) {
                    return Err(Error::shape(
                        "Fisher information",
                        format!("{m}x{n} (the weight's shape)"),
                        format!("{}x{}", f.nrows(), f.ncols()),
                    ));
                }
                let d = fisher_weights(f.view(), side)?;
                match side {
                    Side::Output => Scaling::OutputDiag(d),
                    Side::Input => Scaling::InputDiag(d),
                }
            }
            Method::SvdLlm => {
                let r = corr(stats.expect("checked"));
                Scaling::InputCholesky(svd_llm_whitening(r.view())?.0)
            }
            Method::Asvd { alpha } => Scaling::InputDiag(asvd_scale(
                stats.expect("checked").mean_abs().view(),
                alpha,
            )?),
            Method::Qera(w) => {
                let r = corr(stats.expect("checked"));
                match w {
                    Whitening::SymSqrt => sym_sqrt(r.view())?,
                    Whitening::Cholesky => match crate::dense::cholesky_lower(r.view())? {
                        Some(l) => Scaling::InputCholesky(l),
                        None => sym_sqrt(r.view())?,
                    },
                }
            }
            Method::QeraApprox => {
                Scaling::InputDiag(qera_approx_scale(stats.expect("checked").rms().view()))
            }
            Method::Lqer => {
                Scaling::InputDiag(lqer_scale(stats.expect("checked").mean_abs().view()))
            }
        })
    }

    /// The f64 factors of the best approximation of `w` under this method's
    /// scaling.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] / [`Error::NonFinite`] for bad weights, the errors of
    /// [`LowRank::scaling`] and of the decompositions.
    pub fn fit(&self, w: ArrayView2<'_, f32>, ctx: &Context<'_>) -> Result<Factors> {
        let (m, n) = w.dim();
        if m == 0 || n == 0 {
            return Err(Error::Empty {
                what: "weight matrix".into(),
            });
        }
        finite_matrix("weight matrix", w)?;
        let k = self.rank.resolve(m, n)?;
        let scaling = self.scaling(m, n, ctx)?;
        let w64: Array2<f64> = w.mapv(f64::from);
        approximate(w64.view(), &scaling, k, self.solver, ctx.seed)
    }

    /// The canonical arguments (rank first).
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![match self.rank {
            Rank::Fixed(k) => format!("r{k}"),
            Rank::Ratio(r) => format!("ratio{r}"),
        }];
        match self.method {
            Method::Fwsvd(Side::Input) => a.push("col".into()),
            Method::Asvd { alpha } if alpha != 0.5 => a.push(format!("a{alpha}")),
            Method::Qera(Whitening::Cholesky) => a.push("chol".into()),
            _ => {}
        }
        let sketch = match self.solver {
            Solver::Exact => None,
            Solver::Randomized(cfg) => {
                if self.method != Method::Svd {
                    a.push("rand".into());
                }
                Some((cfg, Randomized::default().power_iters))
            }
            Solver::Krylov(cfg) => {
                a.push("krylov".into());
                Some((cfg, KRYLOV_DEPTH))
            }
        };
        if let Some((cfg, default_q)) = sketch {
            if let Some(p) = cfg.oversample {
                a.push(format!("p{p}"));
            }
            if cfg.power_iters != default_q {
                a.push(format!("q{}", cfg.power_iters));
            }
        }
        if self.precision != Precision::F16 {
            a.push(self.precision.to_string());
        }
        a
    }

    /// The recipe method name (`rsvd` for the randomized plain SVD).
    pub fn stage_name(&self) -> &'static str {
        match (self.method, self.solver) {
            (Method::Svd, Solver::Randomized(_)) => "rsvd",
            (m, _) => m.name(),
        }
    }

    /// Parses a stage (`svd`, `rsvd`, `fwsvd`, `svd-llm`, `asvd`, `qera`,
    /// `qera-approx`, `lqer`, `lorc`).
    ///
    /// # Errors
    ///
    /// [`Error::Recipe`] naming the bad argument.
    pub fn from_stage(stage: &StageSpec) -> Result<Self> {
        let mut method = match stage.method.as_str() {
            "svd" | "rsvd" => Method::Svd,
            "fwsvd" => Method::Fwsvd(Side::Output),
            "svd-llm" => Method::SvdLlm,
            "asvd" => Method::Asvd { alpha: 0.5 },
            "qera" => Method::Qera(Whitening::SymSqrt),
            "qera-approx" => Method::QeraApprox,
            "lqer" => Method::Lqer,
            "lorc" => Method::Lorc,
            other => return Err(stage.error(other, "not a low-rank method")),
        };
        let mut args = stage.args.iter();
        let first = args.next().ok_or_else(|| {
            stage.error(
                stage.to_string(),
                "needs a rank (r64) or a parameter budget (ratio0.5) as its first argument",
            )
        })?;
        let rank = if let Some(v) = first.strip_prefix("ratio") {
            match v.parse::<f64>() {
                Ok(r) if r.is_finite() && (0.0..1.0).contains(&r) => Rank::Ratio(r),
                _ => {
                    return Err(stage.error(
                        first,
                        "the budget is the fraction of parameters removed, 0 <= ratio < 1",
                    ));
                }
            }
        } else if let Some(v) = first.strip_prefix('r') {
            match v.parse::<usize>() {
                Ok(k) if k > 0 => Rank::Fixed(k),
                _ => return Err(stage.error(first, "the rank is a positive integer (r64)")),
            }
        } else {
            return Err(stage.error(
                first,
                "the first argument is a rank (r64) or a parameter budget (ratio0.5)",
            ));
        };
        let mut randomized = stage.method == "rsvd";
        let mut krylov = false;
        let mut oversample: Option<usize> = None;
        let mut power: Option<usize> = None;
        let mut precision: Option<Precision> = None;
        let mut variant = false;
        for a in args {
            let dup = |seen: bool| -> Result<()> {
                if seen {
                    Err(stage.error(a, "given twice"))
                } else {
                    Ok(())
                }
            };
            match (a.as_str(), &mut method) {
                ("f16" | "bf16" | "f32", _) => {
                    dup(precision.is_some())?;
                    precision = Some(a.parse()?);
                }
                ("rand", _) => {
                    dup(randomized)?;
                    if krylov {
                        return Err(stage.error(a, "choose one of rand and krylov"));
                    }
                    randomized = true;
                }
                ("krylov", _) => {
                    dup(krylov)?;
                    if randomized {
                        return Err(stage.error(a, "choose one of rand and krylov"));
                    }
                    krylov = true;
                }
                ("row" | "col", Method::Fwsvd(side)) => {
                    dup(variant)?;
                    variant = true;
                    *side = if a == "col" {
                        Side::Input
                    } else {
                        Side::Output
                    };
                }
                ("sqrt" | "chol", Method::Qera(wh)) => {
                    dup(variant)?;
                    variant = true;
                    *wh = if a == "chol" {
                        Whitening::Cholesky
                    } else {
                        Whitening::SymSqrt
                    };
                }
                (s, Method::Asvd { alpha }) if s.starts_with('a') => {
                    dup(variant)?;
                    variant = true;
                    *alpha = match s[1..].parse::<f64>() {
                        Ok(x) if x.is_finite() && x > 0.0 => x,
                        _ => return Err(stage.error(a, "alpha is a positive number (a0.5)")),
                    };
                }
                (s, _) if s.starts_with('p') && s[1..].parse::<usize>().is_ok() => {
                    dup(oversample.is_some())?;
                    oversample = s[1..].parse().ok();
                }
                (s, _) if s.starts_with('q') && s[1..].parse::<usize>().is_ok() => {
                    dup(power.is_some())?;
                    power = s[1..].parse().ok();
                }
                _ => {
                    return Err(stage.error(
                        a,
                        format!(
                            "unknown argument for {} (known: rand, krylov, p<N>, q<N>, f16, bf16, f32{})",
                            stage.method,
                            match method {
                                Method::Fwsvd(_) => ", row, col",
                                Method::Qera(_) => ", sqrt, chol",
                                Method::Asvd { .. } => ", a<alpha>",
                                _ => "",
                            }
                        ),
                    ));
                }
            }
        }
        if !randomized && !krylov && (oversample.is_some() || power.is_some()) {
            return Err(stage.error(
                stage.to_string(),
                "p<N> and q<N> set a randomized solver; add `rand` or `krylov` (or use rsvd)",
            ));
        }
        let solver = if randomized {
            Solver::Randomized(Randomized {
                oversample,
                power_iters: power.unwrap_or(Randomized::default().power_iters),
            })
        } else if krylov {
            Solver::Krylov(Randomized {
                oversample,
                power_iters: power.unwrap_or(KRYLOV_DEPTH),
            })
        } else {
            Solver::Exact
        };
        Ok(Self {
            method,
            rank,
            solver,
            precision: precision.unwrap_or_default(),
        })
    }
}

impl Compressor for LowRank {
    fn recipe(&self) -> String {
        StageSpec::new(self.stage_name(), self.args()).to_string()
    }

    fn compress(&self, w: ArrayView2<'_, f32>, ctx: &Context<'_>) -> Result<Compressed> {
        if ctx.mask.is_some() {
            return Err(Error::invalid(
                self.recipe(),
                "a low-rank stage gives a dense matrix and cannot be restricted to a pruning \
                 mask; it composes as a residual (sparse plus low-rank)",
            ));
        }
        let f = self.fit(w, ctx)?;
        Ok(Compressed::new(LowRankMatrix::from_factors(
            &f,
            self.precision,
        )?))
    }

    fn compose(&self) -> Compose {
        Compose::Residual
    }
}
