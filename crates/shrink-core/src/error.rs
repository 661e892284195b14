//! The one error type every shrink crate returns.
//!
//! A single `#[non_exhaustive]` enum (rather than one per crate) because a
//! [`Pipeline`](crate::Pipeline) mixes stages from every family behind one
//! [`Compressor`](crate::Compressor) trait: one error type keeps `?` working
//! across crates without boxing or downcasting. Each variant says what was
//! wrong and where, so the message alone is enough to fix the input.

use std::path::PathBuf;

/// Result alias used across shrink.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in shrink. Library code never panics on user
/// input; it returns one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A matrix or vector has the wrong shape.
    #[error("shape mismatch in {what}: expected {expected}, got {actual}")]
    Shape {
        /// What was being checked.
        what: String,
        /// The shape that was required.
        expected: String,
        /// The shape that was given.
        actual: String,
    },
    /// An input that must have at least one element is empty.
    #[error("{what} is empty")]
    Empty {
        /// What was empty.
        what: String,
    },
    /// A NaN or infinite value where finite numbers are required.
    #[error("{what} holds a non-finite value ({value}) at {position}")]
    NonFinite {
        /// What was being checked.
        what: String,
        /// Where the first bad value sits (for example `row 3, column 7`).
        position: String,
        /// The value itself, printed.
        value: String,
    },
    /// A parameter outside its allowed range (bit width, group size, ratio...).
    #[error("invalid {name}: {reason}")]
    InvalidArgument {
        /// The parameter's name.
        name: String,
        /// Why the value is not allowed.
        reason: String,
    },
    /// A recipe that cannot be parsed or names something unknown.
    #[error("bad recipe `{recipe}` at `{part}`: {reason}")]
    Recipe {
        /// The whole recipe text.
        recipe: String,
        /// The stage or argument that is wrong.
        part: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Statistics that a method needs are missing or unusable (no Gram matrix,
    /// a Hessian that is not positive definite even after damping...).
    #[error("statistics: {reason}")]
    Stats {
        /// What is missing or wrong.
        reason: String,
    },
    /// Bytes that cannot be decoded: truncated, corrupt, or of an unknown layout.
    #[error("corrupt or truncated {what}: {reason}")]
    Corrupt {
        /// What was being decoded.
        what: String,
        /// What is wrong with the bytes.
        reason: String,
    },
    /// A file lacks a tensor it must hold, or holds it with the wrong type.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An operating-system I/O error, with the file it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Shape`].
    pub fn shape(
        what: impl Into<String>,
        expected: impl std::fmt::Display,
        actual: impl std::fmt::Display,
    ) -> Self {
        Error::Shape {
            what: what.into(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        }
    }

    /// Shorthand for [`Error::Corrupt`].
    pub fn corrupt(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Stats`].
    pub fn stats(reason: impl Into<String>) -> Self {
        Error::Stats {
            reason: reason.into(),
        }
    }
}
