//! The stored low-rank form: `W' = (A B)^T` with `A` (`n x k`) and `B`
//! (`k x m`) kept in f16, bf16 or f32; a layer computes `y = (x A) B` without
//! ever building `W'`.

use crate::scaled::Factors;
use ndarray::{Array2, ArrayView2};
use shrink_core::check::input_width;
use shrink_core::linalg::matmul_f32_bt;
use shrink_core::{Compressed, Compressor, Context, Error, Reconstruct, Result, Storage};
use std::fmt;
use std::str::FromStr;

/// Number format of stored factors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// IEEE half precision (2 bytes per value).
    #[default]
    F16,
    /// bfloat16 (2 bytes per value).
    Bf16,
    /// IEEE single precision (4 bytes per value).
    F32,
}

impl Precision {
    /// Bytes per stored value.
    pub fn bytes(self) -> u64 {
        match self {
            Precision::F16 | Precision::Bf16 => 2,
            Precision::F32 => 4,
        }
    }

    /// `x` rounded to this format (to nearest, ties to even), as f32.
    pub fn round(self, x: f64) -> f32 {
        match self {
            Precision::F16 => half::f16::from_f64(x).to_f32(),
            Precision::Bf16 => half::bf16::from_f64(x).to_f32(),
            Precision::F32 => x as f32,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
            Precision::F32 => "f32",
        })
    }
}

impl FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f16" => Ok(Precision::F16),
            "bf16" => Ok(Precision::Bf16),
            "f32" => Ok(Precision::F32),
            other => Err(Error::invalid(
                "factor precision",
                format!("`{other}` is not one of f16, bf16, f32"),
            )),
        }
    }
}

/// A rank-`k` matrix stored as two factors (see the module documentation).
#[derive(Clone, PartialEq)]
pub struct LowRankMatrix {
    /// `A^T`, `k x n` (row-major, so `x A` is a row-block product).
    at: Array2<f32>,
    /// `B^T`, `m x k`.
    bt: Array2<f32>,
    precision: Precision,
}

impl fmt::Debug for LowRankMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LowRankMatrix")
            .field("shape", &self.shape())
            .field("rank", &self.rank())
            .field("precision", &self.precision)
            .finish()
    }
}

impl LowRankMatrix {
    /// Rounds f64 factors to `precision`.
    ///
    /// Each rank-one term `a_i b_i` is first rebalanced so that the largest
    /// magnitudes of `a_i` and `b_i` are equal (the product is unchanged), which
    /// keeps both inside the narrow ranges of f16 and bf16.
    ///
    /// # Errors
    ///
    /// [`Error::NonFinite`] when a factor is not finite or a value overflows
    /// the format (use f32 then).
    pub fn from_factors(f: &Factors, precision: Precision) -> Result<Self> {
        let (n, k) = f.a.dim();
        let m = f.b.ncols();
        if f.b.nrows() != k {
            return Err(Error::shape(
                "low-rank factor B",
                format!("{k} rows"),
                f.b.nrows().to_string(),
            ));
        }
        let mut at = Array2::<f32>::zeros((k, n));
        let mut bt = Array2::<f32>::zeros((m, k));
        for i in 0..k {
            let a = f.a.column(i);
            let b = f.b.row(i);
            let ma = a.iter().fold(0.0f64, |acc, x| acc.max(x.abs()));
            let mb = b.iter().fold(0.0f64, |acc, x| acc.max(x.abs()));
            let c = if ma > 0.0 && mb > 0.0 && (mb / ma).is_finite() {
                (mb / ma).sqrt()
            } else {
                1.0
            };
            for (dst, &x) in at.row_mut(i).iter_mut().zip(a) {
                *dst = precision.round(x * c);
            }
            for (j, &x) in b.iter().enumerate() {
                bt[(j, i)] = precision.round(x / c);
            }
        }
        for (what, arr) in [("low-rank factor A", &at), ("low-rank factor B", &bt)] {
            if let Some(((i, j), v)) = arr.indexed_iter().find(|(_, v)| !v.is_finite()) {
                return Err(Error::NonFinite {
                    what: format!("{what} in {precision}"),
                    position: format!("({i}, {j}); store the factors in f32 if they overflow"),
                    value: v.to_string(),
                });
            }
        }
        Ok(Self { at, bt, precision })
    }

    /// Builds the form from stored factors `A` (`n x k`) and `B` (`k x m`),
    /// given as f32 values that are already representable in `precision`.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when the ranks differ, [`Error::NonFinite`] for NaN or
    /// infinite values, [`Error::InvalidArgument`] when a value is not exactly
    /// representable in `precision`.
    pub fn from_parts(
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        precision: Precision,
    ) -> Result<Self> {
        if a.ncols() != b.nrows() {
            return Err(Error::shape(
                "low-rank factors",
                format!(
                    "A n x k and B k x m with the same k (A has k = {})",
                    a.ncols()
                ),
                format!("B has {} rows", b.nrows()),
            ));
        }
        for (what, arr) in [("low-rank factor A", a), ("low-rank factor B", b)] {
            shrink_core::check::finite_matrix(what, arr)?;
            if let Some(v) = arr
                .iter()
                .find(|&&v| precision.round(f64::from(v)).to_bits() != v.to_bits())
            {
                return Err(Error::invalid(
                    what,
                    format!("{v} is not representable in {precision}"),
                ));
            }
        }
        Ok(Self {
            at: a.t().to_owned(),
            bt: b.t().to_owned(),
            precision,
        })
    }

    /// The rank `k`.
    pub fn rank(&self) -> usize {
        self.at.nrows()
    }

    /// The number format of the stored values.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// `A` (`n x k`).
    pub fn a(&self) -> ArrayView2<'_, f32> {
        self.at.t()
    }

    /// `B` (`k x m`).
    pub fn b(&self) -> ArrayView2<'_, f32> {
        self.bt.t()
    }

    /// `x A` (`tokens x k`): the first half of the forward pass.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when `x` does not have `n` columns.
    pub fn project(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        input_width("forward input", x, self.at.ncols())?;
        Ok(matmul_f32_bt(x, self.at.view()))
    }
}

impl Reconstruct for LowRankMatrix {
    fn shape(&self) -> (usize, usize) {
        (self.bt.nrows(), self.at.ncols())
    }

    fn to_dense(&self) -> Array2<f32> {
        matmul_f32_bt(self.bt.view(), self.at.t())
    }

    fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let xa = self.project(x)?;
        Ok(matmul_f32_bt(xa.view(), self.bt.view()))
    }

    fn compress_factors(
        &self,
        stage: &dyn Compressor,
        ctx: &Context<'_>,
    ) -> Option<Result<Compressed>> {
        Some((|| {
            let a = stage.compress(self.at.view(), ctx)?;
            let b = stage.compress(self.bt.view(), ctx)?;
            Ok(Compressed::new(CompressedLowRank::new(a, b)?))
        })())
    }

    fn storage(&self) -> Storage {
        let (m, n) = self.shape();
        let k = self.rank() as u64;
        let p = self.precision;
        Storage::new((m * n) as u64)
            .with(
                format!("low-rank A ({n}x{k} {p})"),
                n as u64 * k * p.bytes(),
            )
            .with(
                format!("low-rank B ({k}x{m} {p})"),
                k * m as u64 * p.bytes(),
            )
    }
}

/// A low-rank form whose factors are themselves compressed (e.g. quantized
/// to int8): `A^T` (`k x n`) and `B^T` (`m x k`) as [`Compressed`] matrices;
/// `y = (x A) B` through their forward passes.
#[derive(Debug)]
pub struct CompressedLowRank {
    at: Compressed,
    bt: Compressed,
}

impl CompressedLowRank {
    /// Pairs compressed `A^T` (`k x n`) and `B^T` (`m x k`).
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when the ranks differ.
    pub fn new(at: Compressed, bt: Compressed) -> Result<Self> {
        if at.shape().0 != bt.shape().1 {
            return Err(Error::shape(
                "compressed low-rank factors",
                format!("B^T with {} columns", at.shape().0),
                format!("{:?}", bt.shape()),
            ));
        }
        Ok(Self { at, bt })
    }

    /// The compressed `A^T` (`k x n`).
    pub fn a_t(&self) -> &Compressed {
        &self.at
    }

    /// The compressed `B^T` (`m x k`).
    pub fn b_t(&self) -> &Compressed {
        &self.bt
    }
}

impl Reconstruct for CompressedLowRank {
    fn shape(&self) -> (usize, usize) {
        (self.bt.shape().0, self.at.shape().1)
    }

    fn to_dense(&self) -> Array2<f32> {
        let a = self.at.to_dense();
        let b = self.bt.to_dense();
        matmul_f32_bt(b.view(), a.t())
    }

    fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let xa = self.at.forward(x)?;
        self.bt.forward(xa.view())
    }

    fn storage(&self) -> Storage {
        let (m, n) = self.shape();
        let mut s = Storage::new((m * n) as u64);
        for (tag, part) in [("A", &self.at), ("B", &self.bt)] {
            for p in part.storage().parts {
                s = s.with(format!("low-rank {tag}: {}", p.name), p.bytes);
            }
        }
        s
    }
}
