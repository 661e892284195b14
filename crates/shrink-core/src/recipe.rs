//! The recipe language shared by the CLI, the examples and the library.
//!
//! A recipe is one or more stages joined by `+`; a stage is a method name
//! followed by arguments, all separated by `:`:
//!
//! ```text
//! recipe := stage ('+' stage)*
//! stage  := method (':' arg)*
//! method := [a-z0-9_-]+          e.g. rtn, gptq, svd-llm
//! arg    := [A-Za-z0-9._%-]+     e.g. int4, g128, asym, r64, 50%, ratio0.5
//! ```
//!
//! This module only handles the syntax ([`Recipe`], [`StageSpec`]); each
//! method family parses its own arguments from a [`StageSpec`] and prints them
//! back in canonical form, so `Display` and `FromStr` round-trip.

use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// One stage: a method and its arguments.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StageSpec {
    /// The method name (`rtn`, `gptq`, ...).
    pub method: String,
    /// The arguments in order.
    pub args: Vec<String>,
}

impl StageSpec {
    /// A stage from a method and arguments.
    pub fn new(
        method: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            method: method.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// An error about argument `part` of this stage.
    pub fn error(&self, part: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Recipe {
            recipe: self.to_string(),
            part: part.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for StageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.method)?;
        for a in &self.args {
            write!(f, ":{a}")?;
        }
        Ok(())
    }
}

fn valid_method(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn valid_arg(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'-'))
}

impl FromStr for StageSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |part: &str, reason: &str| Error::Recipe {
            recipe: s.to_string(),
            part: part.to_string(),
            reason: reason.to_string(),
        };
        let mut it = s.split(':');
        let method = it.next().unwrap_or_default();
        if !valid_method(method) {
            return Err(bad(
                method,
                "a method name is lower-case letters, digits, `-` or `_`",
            ));
        }
        let mut args = Vec::new();
        for a in it {
            if !valid_arg(a) {
                return Err(bad(
                    if a.is_empty() { ":" } else { a },
                    "an argument is non-empty and made of letters, digits, `.`, `_`, `%` or `-`",
                ));
            }
            args.push(a.to_string());
        }
        Ok(Self {
            method: method.to_string(),
            args,
        })
    }
}

/// A whole recipe: stages in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Recipe {
    /// The stages.
    pub stages: Vec<StageSpec>,
}

impl fmt::Display for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.stages.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

impl FromStr for Recipe {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::Recipe {
                recipe: String::new(),
                part: String::new(),
                reason: "the recipe is empty".into(),
            });
        }
        let mut stages = Vec::new();
        for (k, part) in s.split('+').enumerate() {
            if part.is_empty() {
                return Err(Error::Recipe {
                    recipe: s.to_string(),
                    part: format!("stage {}", k + 1),
                    reason: "empty stage (two `+` in a row, or a `+` at an end)".into(),
                });
            }
            let st: StageSpec = part.parse().map_err(|e| match e {
                Error::Recipe {
                    part: p, reason, ..
                } => Error::Recipe {
                    recipe: s.to_string(),
                    part: p,
                    reason,
                },
                other => other,
            })?;
            stages.push(st);
        }
        Ok(Self { stages })
    }
}
