//! shrink-recipe: from recipe text to a runnable [`Pipeline`], and the
//! evaluation rows that the CLI and the report examples print.
//!
//! ```
//! use shrink_recipe::build;
//! let p = build("rtn:int4:g128:asym").unwrap();
//! assert_eq!(shrink_core::Compressor::recipe(&p), "rtn:int4:g128:asym");
//! ```
//!
//! Every method of every family registers here by name; [`KNOWN_RECIPES`]
//! lists the recipes the reports run by default.
#![deny(unsafe_code)]

pub mod report;
pub mod synth;

use shrink_core::{Compressor, Error, Pipeline, Recipe, Result, StageSpec};
use shrink_quant::{Gptq, Hqq, Rtn};

/// The methods this build knows, for error messages.
pub const METHODS: &[&str] = &[
    "rtn",
    "gptq",
    "hqq",
    "magnitude",
    "wanda",
    "sparsegpt",
    "lift",
    "svd",
    "rsvd",
    "fwsvd",
    "svd-llm",
    "asvd",
    "qera",
    "qera-approx",
    "lqer",
    "lorc",
    "gguf",
];

/// The recipes the reports run when none is given.
pub const KNOWN_RECIPES: &[&str] = &[
    "rtn:int8:channel:sym",
    "rtn:fp8-e4m3:channel",
    "rtn:fp8-e5m2:channel",
    "rtn:mxfp8",
    "rtn:mxfp6",
    "rtn:int4:g128:sym",
    "rtn:int4:g128:asym",
    "rtn:int4:g128:asym:mse",
    "rtn:nf4:g64",
    "rtn:lloyd4:g128",
    "rtn:fp4:g32",
    "rtn:mxfp4",
    "rtn:nvfp4",
    "rtn:int3:g128:asym",
    "rtn:nf3:g64",
    "rtn:int2:g64:asym",
    "gptq:int4:g128:asym",
    "gptq:int4:g128:sym",
    "gptq:int3:g128:asym",
    "gptq:int2:g64:asym",
    "gptq:int4:g128:asym:actorder",
    "gptq:int4:g128:asym:actorder:static",
    "gptq:nf4:g64",
    "gptq:mxfp4",
    "gptq:fp4:g32",
    "gptq:int8:channel:sym",
    "hqq:int4:g64",
    "hqq:int3:g64",
    "hqq:int2:g16",
    "hqq:int4:g128",
    "magnitude:50%",
    "magnitude:row:50%",
    "wanda:50%",
    "sparsegpt:50%",
    "magnitude:2:4",
    "wanda:2:4",
    "sparsegpt:2:4",
    "sparsegpt:4:8",
    "wanda:rows:25%",
    "lift:r64:5%",
    "sparsegpt:50%:int4:g128:asym",
    "wanda:50%+rtn:int4:g128:asym",
    "svd:r64",
    "rsvd:r64",
    "fwsvd:r64",
    "fwsvd:r64:col",
    "svd-llm:r64",
    "asvd:r64",
    "qera:r64",
    "svd-llm:ratio0.5",
    "rtn:int3:g128:asym+lorc:r32",
    "rtn:int3:g128:asym+lqer:r32",
    "rtn:int3:g128:asym+qera-approx:r32",
    "rtn:int3:g128:asym+qera:r32",
    "gptq:int3:g128:asym+qera:r32",
    "hqq:int3:g64+qera:r32",
    "gguf:q4_0",
    "gguf:q8_0",
    "gguf:iq4_nl",
    "gguf:q4_0:imatrix",
    "gguf:iq4_nl:imatrix",
    "gguf:q4_0:gptq",
    "gguf:q4_k",
    "gguf:q6_k",
    "gguf:q4_k:imatrix",
    "gguf:q4_k:gptq",
];

/// Builds one stage's compressor.
pub fn build_stage(stage: &StageSpec) -> Result<Box<dyn Compressor>> {
    match stage.method.as_str() {
        "rtn" => Ok(Box::new(Rtn::from_stage(stage)?)),
        "gptq" => Ok(Box::new(Gptq::from_stage(stage)?)),
        "hqq" => Ok(Box::new(Hqq::from_stage(stage)?)),
        "gguf" => Ok(Box::new(shrink_pack::gguf::GgufQuant::from_stage(stage)?)),
        "magnitude" | "wanda" | "sparsegpt" | "lift" => shrink_prune::from_stage(stage),
        m if shrink_lowrank::METHODS.contains(&m) => shrink_lowrank::from_stage(stage),
        other => Err(Error::Recipe {
            recipe: stage.to_string(),
            part: other.to_string(),
            reason: format!("unknown method (known: {})", METHODS.join(", ")),
        }),
    }
}

/// Builds the pipeline of a parsed recipe.
pub fn build_recipe(recipe: &Recipe) -> Result<Pipeline> {
    let mut stages = recipe.stages.iter();
    let first = stages.next().ok_or_else(|| Error::Recipe {
        recipe: recipe.to_string(),
        part: String::new(),
        reason: "the recipe has no stage".into(),
    })?;
    let with_context = |e: Error| match e {
        Error::Recipe { part, reason, .. } => Error::Recipe {
            recipe: recipe.to_string(),
            part,
            reason,
        },
        other => other,
    };
    let mut p = Pipeline::from_boxed(build_stage(first).map_err(with_context)?);
    for s in stages {
        p = p.then_boxed(build_stage(s).map_err(with_context)?, None);
    }
    Ok(p)
}

/// Parses and builds a recipe from text.
pub fn build(text: &str) -> Result<Pipeline> {
    build_recipe(&text.parse()?)
}

/// The canonical text of a recipe (defaults made explicit, arguments in
/// canonical order): `rtn:int4` becomes `rtn:int4:g128:asym`.
pub fn canonical(text: &str) -> Result<String> {
    Ok(build(text)?.recipe())
}
