//! Streaming statistics of one linear layer's inputs.
//!
//! Every data-aware method (GPTQ, SparseGPT, Wanda, SVD-LLM, QERA, ...) reads
//! only a [`LayerStats`]: the Gram matrix `H = X^T X` of the calibration
//! inputs `X` (tokens x in_features), the token count, the per-channel mean
//! `|x|` and RMS, and optionally the Fisher information of the weights.
//! Everything is accumulated in f64; `H` is not divided by the count, has no
//! factor 2 and no damping (methods that want `2 X^T X / T` scale it
//! themselves; every algorithm here is invariant to a positive scale of `H`
//! except through relative damping, which is defined on the mean diagonal).

use crate::check::{finite_slice, input_width};
use crate::linalg::matmul_into;
use crate::{Error, Result};
use ndarray::{Array1, Array2, ArrayView2, Zip};

/// Calibration statistics of one linear layer (`in_features = n`).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerStats {
    gram: Array2<f64>,
    count: u64,
    sum_abs: Array1<f64>,
    sum_sq: Array1<f64>,
    fisher: Option<Array2<f32>>,
}

impl LayerStats {
    /// Empty statistics for a layer with `in_features` inputs.
    pub fn new(in_features: usize) -> Result<Self> {
        if in_features == 0 {
            return Err(Error::Empty {
                what: "LayerStats in_features".into(),
            });
        }
        Ok(Self {
            gram: Array2::zeros((in_features, in_features)),
            count: 0,
            sum_abs: Array1::zeros(in_features),
            sum_sq: Array1::zeros(in_features),
            fisher: None,
        })
    }

    /// Statistics whose Gram matrix is the identity scaled by `count`, as if
    /// `count` tokens of white inputs had been seen (`mean|x|` and RMS are 1).
    /// With these, data-aware methods reduce to their plain forms (GPTQ to RTN,
    /// Wanda to magnitude), which tests use.
    pub fn identity(in_features: usize, count: u64) -> Result<Self> {
        let mut s = Self::new(in_features)?;
        let c = count.max(1);
        s.gram = Array2::eye(in_features) * c as f64;
        s.count = c;
        s.sum_abs.fill(c as f64);
        s.sum_sq.fill(c as f64);
        Ok(s)
    }

    /// Builds statistics from stored parts: the Gram matrix `H = X^T X`, the
    /// token count, and the per-channel mean `|x|` and RMS (`sqrt(mean x^2)`).
    /// When `rms` is `None` it is derived from `diag(H) / count`; when
    /// `mean_abs` is `None` the RMS stands in for it.
    pub fn from_parts(
        gram: Array2<f64>,
        count: u64,
        mean_abs: Option<Array1<f64>>,
        rms: Option<Array1<f64>>,
    ) -> Result<Self> {
        let n = gram.nrows();
        if n == 0 || gram.ncols() != n {
            return Err(Error::shape(
                "Gram matrix",
                "square and non-empty",
                format!("{}x{}", gram.nrows(), gram.ncols()),
            ));
        }
        if count == 0 {
            return Err(Error::stats("token count is zero"));
        }
        if let Some(((i, j), v)) = gram.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "Gram matrix".into(),
                position: format!("row {i}, column {j}"),
                value: v.to_string(),
            });
        }
        if let Some(i) = (0..n).find(|&i| gram[(i, i)] < 0.0) {
            return Err(Error::stats(format!(
                "Gram matrix has a negative diagonal entry {} at {i}; it cannot be X^T X",
                gram[(i, i)]
            )));
        }
        let c = count as f64;
        let rms = match rms {
            Some(r) => r,
            None => Array1::from_iter((0..n).map(|i| (gram[(i, i)] / c).sqrt())),
        };
        let mean_abs = mean_abs.unwrap_or_else(|| rms.clone());
        // RMS first: a missing mean |x| defaults to it, so a bad RMS is reported as such.
        for (what, v) in [("RMS", &rms), ("mean |x|", &mean_abs)] {
            if v.len() != n {
                return Err(Error::shape(what, n, v.len()));
            }
            if let Some((i, x)) = v
                .iter()
                .enumerate()
                .find(|(_, x)| !x.is_finite() || **x < 0.0)
            {
                return Err(Error::stats(format!(
                    "{what} must be finite and non-negative; channel {i} is {x}"
                )));
            }
        }
        Ok(Self {
            gram,
            count,
            sum_abs: mean_abs * c,
            sum_sq: rms.mapv(|r| r * r) * c,
            fisher: None,
        })
    }

    /// Attaches Fisher information (squared gradients summed over calibration
    /// batches), one non-negative value per weight, shape `(out, in)`.
    pub fn with_fisher(mut self, fisher: Array2<f32>) -> Result<Self> {
        if fisher.ncols() != self.in_features() || fisher.nrows() == 0 {
            return Err(Error::shape(
                "Fisher information",
                format!("(out, {})", self.in_features()),
                format!("({}, {})", fisher.nrows(), fisher.ncols()),
            ));
        }
        if let Some(((i, j), v)) = fisher
            .indexed_iter()
            .find(|(_, v)| !v.is_finite() || **v < 0.0)
        {
            return Err(Error::stats(format!(
                "Fisher information must be finite and non-negative; ({i}, {j}) is {v}"
            )));
        }
        self.fisher = Some(fisher);
        Ok(self)
    }

    /// Adds a batch of input rows `x` (tokens x in_features).
    pub fn observe(&mut self, x: ArrayView2<'_, f32>) -> Result<()> {
        input_width("LayerStats::observe input", x, self.in_features())?;
        if x.nrows() == 0 {
            return Ok(());
        }
        for row in x.outer_iter() {
            if let Some(s) = row.as_slice() {
                finite_slice("LayerStats::observe input", s)?;
            } else {
                finite_slice("LayerStats::observe input", &row.to_vec())?;
            }
        }
        let xd = x.mapv(f64::from);
        matmul_into(&mut self.gram, xd.t(), xd.view(), true);
        for row in xd.outer_iter() {
            Zip::from(&mut self.sum_abs)
                .and(&mut self.sum_sq)
                .and(&row)
                .for_each(|a, s, &v| {
                    *a += v.abs();
                    *s += v * v;
                });
        }
        self.count += x.nrows() as u64;
        Ok(())
    }

    /// Adds another layer's statistics (the same as observing its batches).
    /// Fisher information is summed when both sides have it, kept when one has.
    pub fn merge(&mut self, other: &LayerStats) -> Result<()> {
        if other.in_features() != self.in_features() {
            return Err(Error::shape(
                "LayerStats::merge",
                self.in_features(),
                other.in_features(),
            ));
        }
        // Check before mutating, so a failed merge leaves `self` unchanged.
        if let (Some(a), Some(b)) = (&self.fisher, &other.fisher)
            && a.dim() != b.dim()
        {
            return Err(Error::shape(
                "Fisher information in merge",
                format!("{:?}", a.dim()),
                format!("{:?}", b.dim()),
            ));
        }
        self.gram += &other.gram;
        self.sum_abs += &other.sum_abs;
        self.sum_sq += &other.sum_sq;
        self.count += other.count;
        self.fisher = match (self.fisher.take(), &other.fisher) {
            (Some(a), Some(b)) => Some(a + b),
            (Some(a), None) => Some(a),
            (None, Some(b)) => Some(b.clone()),
            (None, None) => None,
        };
        Ok(())
    }

    /// Number of input features `n`.
    pub fn in_features(&self) -> usize {
        self.gram.nrows()
    }

    /// Number of tokens seen.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The Gram matrix `H = X^T X` (n x n, f64, undivided).
    pub fn gram(&self) -> &Array2<f64> {
        &self.gram
    }

    /// Mean `|x_j|` per input channel (zero before any token is seen).
    pub fn mean_abs(&self) -> Array1<f64> {
        let c = self.count.max(1) as f64;
        &self.sum_abs / c
    }

    /// RMS `sqrt(mean x_j^2)` per input channel.
    pub fn rms(&self) -> Array1<f64> {
        let c = self.count.max(1) as f64;
        self.sum_sq.mapv(|s| (s / c).sqrt())
    }

    /// Column norms `||X_{:,j}||_2` (used by Wanda).
    pub fn column_norms(&self) -> Array1<f64> {
        self.sum_sq.mapv(f64::sqrt)
    }

    /// Fisher information per weight, if attached.
    pub fn fisher(&self) -> Option<&Array2<f32>> {
        self.fisher.as_ref()
    }

    /// Fails with a clear message when no token has been observed, for
    /// methods that need data.
    pub fn require_data(&self, method: &str) -> Result<()> {
        if self.count == 0 {
            return Err(Error::stats(format!(
                "{method} needs calibration statistics, but no token was observed"
            )));
        }
        Ok(())
    }
}
