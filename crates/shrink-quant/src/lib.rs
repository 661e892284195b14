//! shrink-quant: scalar quantization grids, scale granularity and formats,
//! and the rounding methods that work over all of them.
//!
//! * [`spec`]: grids (uniform int 1..8 sym/asym, NF4/NF3, FP8/FP6/FP4, Lloyd-Max
//!   codebooks, MX, NVFP4), granularity and scale formats, recipe arguments;
//! * [`quantizer`]: a spec made concrete for one tensor ([`Prepared`]);
//! * [`rtn`]: round-to-nearest with optional MSE-optimal clipping;
//! * [`gptq`]: GPTQ, data-aware rounding with inverse-Hessian error compensation;
//! * [`hqq`]: HQQ, calibration-free half-quadratic zero-point optimization;
//! * [`matrix`]: the quantized matrix, its reconstruction and exact storage;
//! * [`float`], [`normal`], [`lloyd`]: the number formats and codebooks.
#![deny(unsafe_code)]

pub mod float;
pub mod gptq;
pub mod hqq;
pub mod lloyd;
pub mod matrix;
pub mod normal;
pub mod quantizer;
pub mod rtn;
pub mod spec;

pub use gptq::{ActOrderMatrix, Gptq, GptqOutput, GptqRule, gptq_sweep, quantize_gptq};
pub use hqq::{Hqq, HqqMatrix, HqqSolver, quantize_hqq};
pub use matrix::QuantizedMatrix;
pub use quantizer::{GroupParams, Prepared};
pub use rtn::{Rtn, quantize_rtn};
pub use spec::{Granularity, Grid, QuantSpec, ScaleFormat};
