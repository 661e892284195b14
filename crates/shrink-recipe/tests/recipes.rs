//! Recipe text round trips and errors, and the synthetic layers.

use shrink_core::{Compressor, Error, Recipe};
use shrink_recipe::{KNOWN_RECIPES, build, canonical, synth};

/// The recipes of the foundation issue, in canonical form.
const FOUNDATION: &[&str] = &[
    "rtn:int4:g128:sym",
    "rtn:int4:g128:asym",
    "rtn:int3:g128:asym",
    "rtn:int2:g64:asym",
    "rtn:int8:channel:sym",
    "rtn:nf4:g64",
    "rtn:nf3:g64",
    "rtn:fp4:g32",
    "rtn:mxfp4",
    "rtn:mxfp6",
    "rtn:mxfp8",
    "rtn:nvfp4",
    "rtn:fp8-e4m3:channel",
    "rtn:fp8-e5m2:channel",
    "rtn:lloyd4:g128",
    "rtn:int4:g128:asym:mse",
];

#[test]
fn canonical_recipes_print_back_unchanged() {
    for r in FOUNDATION.iter().chain(KNOWN_RECIPES) {
        let p = build(r).unwrap();
        assert_eq!(p.recipe(), *r);
        let parsed: Recipe = r.parse().unwrap();
        assert_eq!(parsed.to_string(), *r);
    }
}

#[test]
fn multi_stage_recipes_round_trip() {
    let r = "rtn:int4:g128:asym+rtn:int2:g64:asym";
    assert_eq!(build(r).unwrap().recipe(), r);
}

#[test]
fn defaults_become_explicit() {
    assert_eq!(canonical("rtn:int4").unwrap(), "rtn:int4:g128:asym");
    assert_eq!(canonical("rtn:nf4").unwrap(), "rtn:nf4:g64");
    assert_eq!(canonical("rtn:fp8-e4m3").unwrap(), "rtn:fp8-e4m3:channel");
    assert_eq!(canonical("rtn:int4:sym:g128").unwrap(), "rtn:int4:g128:sym");
    assert_eq!(
        canonical("rtn:int4:g128:sym:f16").unwrap(),
        "rtn:int4:g128:sym"
    );
}

fn part_of(r: &str) -> (String, String) {
    match build(r) {
        Err(Error::Recipe { part, recipe, .. }) => (part, recipe),
        other => panic!("{r}: expected a recipe error, got {other:?}"),
    }
}

#[test]
fn errors_name_the_bad_part() {
    assert_eq!(part_of("gptx:int4").0, "gptx");
    assert_eq!(part_of("rtn:int4+foo:r3").0, "foo");
    assert_eq!(part_of("rtn:int4+foo:r3").1, "rtn:int4+foo:r3");
    assert_eq!(part_of("rtn:int9:g128").0, "int9");
    assert_eq!(part_of("rtn:int4:g128:bogus").0, "bogus");
    assert_eq!(part_of("rtn:int4+").0, "stage 2");
    assert!(matches!(build(""), Err(Error::Recipe { .. })));
}

#[test]
fn synthetic_layers_are_seeded() {
    let a = synth::demo_layers(3).unwrap();
    let b = synth::demo_layers(3).unwrap();
    let c = synth::demo_layers(4).unwrap();
    assert_eq!(a[0].weight, b[0].weight);
    assert_eq!(a[1].stats, b[1].stats);
    assert_ne!(a[0].weight, c[0].weight);
    // Heavy tails: kurtosis well above the Gaussian 3.
    let w = &a[0].weight;
    let n = w.len() as f64;
    let m2 = w.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / n;
    let m4 = w.iter().map(|v| f64::from(*v).powi(4)).sum::<f64>() / n;
    assert!(m4 / (m2 * m2) > 5.0, "kurtosis {}", m4 / (m2 * m2));
}
