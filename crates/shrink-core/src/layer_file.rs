//! Reading a layer file: the weights and calibration statistics of the
//! linears of one block, as safetensors.
//!
//! For each linear `<lin>` the file holds `<lin>.weight` (f32, out x in),
//! `<lin>.gram` (f32, in x in: `H = X^T X`), `<lin>.count` (i64, one value),
//! and optionally `<lin>.act_mean_abs` and `<lin>.act_rms` (f32, in) and
//! `<lin>.bias`. A Fisher file `<stem>.fisher.safetensors` beside it may hold
//! `<lin>.fisher` (f32, out x in). F16 and BF16 tensors are widened to f32.

use crate::{Error, LayerStats, Result};
use ndarray::{Array1, Array2};
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};

/// A layer file read into memory.
#[derive(Debug)]
pub struct LayerFile {
    path: PathBuf,
    bytes: Vec<u8>,
    linears: Vec<String>,
    fisher: Option<(PathBuf, Vec<u8>)>,
}

fn file_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::File {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A tensor's values widened to f32, with its shape.
fn tensor_f32(st: &SafeTensors<'_>, path: &Path, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let t = st
        .tensor(name)
        .map_err(|_| file_err(path, format!("missing tensor `{name}`")))?;
    let data = t.data();
    let vals: Vec<f32> = match t.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(file_err(
                path,
                format!("tensor `{name}` has dtype {other:?}; expected F32, F16 or BF16"),
            ));
        }
    };
    Ok((t.shape().to_vec(), vals))
}

fn matrix(
    st: &SafeTensors<'_>,
    path: &Path,
    name: &str,
    shape: Option<(usize, usize)>,
) -> Result<Array2<f32>> {
    let (dims, vals) = tensor_f32(st, path, name)?;
    if dims.len() != 2 || shape.is_some_and(|s| (dims[0], dims[1]) != s) {
        let want = shape.map_or("2-D".to_string(), |s| format!("{s:?}"));
        return Err(file_err(
            path,
            format!("tensor `{name}` has shape {dims:?}; expected {want}"),
        ));
    }
    Array2::from_shape_vec((dims[0], dims[1]), vals)
        .map_err(|e| file_err(path, format!("tensor `{name}`: {e}")))
}

fn vector(
    st: &SafeTensors<'_>,
    path: &Path,
    name: &str,
    len: usize,
) -> Result<Option<Array1<f64>>> {
    if st.tensor(name).is_err() {
        return Ok(None);
    }
    let (dims, vals) = tensor_f32(st, path, name)?;
    if dims.iter().product::<usize>() != len {
        return Err(file_err(
            path,
            format!("tensor `{name}` has shape {dims:?}; expected ({len},)"),
        ));
    }
    Ok(Some(vals.into_iter().map(f64::from).collect()))
}

impl LayerFile {
    /// Reads a layer file, and `<stem>.fisher.safetensors` beside it when present.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let linears = {
            let st = SafeTensors::deserialize(&bytes)
                .map_err(|e| file_err(&path, format!("not a safetensors file: {e}")))?;
            let (_, meta) = SafeTensors::read_metadata(&bytes)
                .map_err(|e| file_err(&path, format!("not a safetensors file: {e}")))?;
            let names: Vec<String> = meta
                .offset_keys()
                .into_iter()
                .filter_map(|k| k.strip_suffix(".weight").map(str::to_string))
                .collect();
            drop(st);
            names
        };
        if linears.is_empty() {
            return Err(file_err(&path, "no `<linear>.weight` tensor in the file"));
        }
        let fisher_path = {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let stem = name.strip_suffix(".safetensors").unwrap_or(name);
            path.with_file_name(format!("{stem}.fisher.safetensors"))
        };
        let fisher = match std::fs::read(&fisher_path) {
            Ok(b) => Some((fisher_path, b)),
            Err(_) => None,
        };
        Ok(Self {
            path,
            bytes,
            linears,
            fisher,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The linears in the file, in storage order.
    pub fn linears(&self) -> &[String] {
        &self.linears
    }

    fn st(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes)
            .map_err(|e| file_err(&self.path, format!("not a safetensors file: {e}")))
    }

    /// The weight `W` (out x in) of a linear.
    pub fn weight(&self, linear: &str) -> Result<Array2<f32>> {
        self.check_name(linear)?;
        matrix(&self.st()?, &self.path, &format!("{linear}.weight"), None)
    }

    /// The calibration statistics of a linear (with Fisher information when a
    /// Fisher file beside this one holds `<linear>.fisher`).
    pub fn stats(&self, linear: &str) -> Result<LayerStats> {
        self.check_name(linear)?;
        let st = self.st()?;
        let w = matrix(&st, &self.path, &format!("{linear}.weight"), None)?;
        let n = w.ncols();
        let gram = matrix(&st, &self.path, &format!("{linear}.gram"), Some((n, n)))?;
        let count_name = format!("{linear}.count");
        let ct = st
            .tensor(&count_name)
            .map_err(|_| file_err(&self.path, format!("missing tensor `{count_name}`")))?;
        let count = match (ct.dtype(), ct.data()) {
            (Dtype::I64, d) if d.len() == 8 => i64::from_le_bytes(d.try_into().unwrap_or([0; 8])),
            (Dtype::I32, d) if d.len() == 4 => {
                i64::from(i32::from_le_bytes(d.try_into().unwrap_or([0; 4])))
            }
            (dt, d) => {
                return Err(file_err(
                    &self.path,
                    format!(
                        "`{count_name}` must be one I64 value; it is {dt:?} with {} bytes",
                        d.len()
                    ),
                ));
            }
        };
        if count <= 0 {
            return Err(file_err(
                &self.path,
                format!("`{count_name}` is {count}; it must be positive"),
            ));
        }
        let mean_abs = vector(&st, &self.path, &format!("{linear}.act_mean_abs"), n)?;
        let rms = vector(&st, &self.path, &format!("{linear}.act_rms"), n)?;
        let stats = LayerStats::from_parts(gram.mapv(f64::from), count as u64, mean_abs, rms)?;
        match &self.fisher {
            Some((fp, fb)) => {
                let fst = SafeTensors::deserialize(fb)
                    .map_err(|e| file_err(fp, format!("not a safetensors file: {e}")))?;
                let name = format!("{linear}.fisher");
                if fst.tensor(&name).is_err() {
                    return Ok(stats);
                }
                let f = matrix(&fst, fp, &name, Some(w.dim()))?;
                stats.with_fisher(f)
            }
            None => Ok(stats),
        }
    }

    /// Whether a Fisher file was found beside this one.
    pub fn has_fisher(&self) -> bool {
        self.fisher.is_some()
    }

    fn check_name(&self, linear: &str) -> Result<()> {
        if self.linears.iter().any(|l| l == linear) {
            Ok(())
        } else {
            Err(file_err(
                &self.path,
                format!(
                    "no linear `{linear}`; the file has: {}",
                    self.linears.join(", ")
                ),
            ))
        }
    }
}
