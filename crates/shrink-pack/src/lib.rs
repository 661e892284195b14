//! shrink-pack: byte layouts for quantized weights.
//!
//! Quantizers produce small integer codes (a few bits each) plus per-group
//! floating-point parameters. This crate turns those codes into compact,
//! exactly specified byte streams and back, and expands them to `f32`:
//!
//! - [`bits`]: unsigned codes of any width 1..=8 bits, packed LSB-first into a
//!   little-endian bit stream, plus the group-wise dequantization kernel
//!   `(code - zero) * scale` ([`bits::dequantize_into`], and
//!   [`bits::dequantize_par_into`] on the rayon pool).
//! - [`sparse`]: pruned matrices: a bitmap of kept weights plus the kept
//!   values, and compressed-tensors' `sparse-24-bitmask` layout for 2:4.
//! - [`ternary`]: trits in {-1, 0, 1}, five per byte in base 3 (1.6 bits per
//!   trit).
//! - [`gguf`]: ggml block types and whole GGUF v3 files ([`gguf::GgufWriter`],
//!   memory-mapped [`gguf::GgufFile`]).
//! - [`safetensors_io`]: safetensors files and sharded model folders,
//!   memory-mapped, and a writer.
//! - [`compressed_tensors`]: vLLM / llm-compressor checkpoints
//!   (`pack-quantized`, `float-quantized`, `nvfp4-pack-quantized`,
//!   `sparse-24-bitmask`, `config.json`), written and read back.
//!
//! Every function validates its input and returns a [`shrink_core::Error`]
//! instead of panicking: bad arguments are [`shrink_core::Error::InvalidArgument`],
//! undecodable bytes are [`shrink_core::Error::Corrupt`], and slices of
//! mismatched lengths are [`shrink_core::Error::Shape`].
#![deny(unsafe_code)]

pub mod bits;
pub mod compressed_tensors;
pub mod gguf;
pub mod qmatrix;
pub mod safetensors_io;
pub mod sparse;
pub mod ternary;
