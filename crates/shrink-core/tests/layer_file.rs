//! LayerFile: reading weights and calibration statistics from safetensors.

use ndarray::{Array1, Array2};
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use shrink_core::{Error, LayerFile, LayerStats};
use std::path::{Path, PathBuf};

/// A fresh, empty directory unique to this process and test.
fn temp_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "shrink-core-layerfile-{}-{test}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct T {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

fn f32t(name: &str, shape: &[usize], vals: &[f32]) -> T {
    assert_eq!(shape.iter().product::<usize>(), vals.len());
    T {
        name: name.into(),
        dtype: Dtype::F32,
        shape: shape.to_vec(),
        data: vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn i64t(name: &str, shape: &[usize], vals: &[i64]) -> T {
    T {
        name: name.into(),
        dtype: Dtype::I64,
        shape: shape.to_vec(),
        data: vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn write(path: &Path, tensors: &[T]) {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                TensorView::new(t.dtype, t.shape.clone(), &t.data).unwrap(),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Inputs X (5 x 4) with values exactly representable, their Gram matrix,
/// mean |x| and RMS.
struct Fixture {
    w: Array2<f32>,
    x: Array2<f32>,
    gram: Array2<f32>,
    mean_abs: Array1<f32>,
    rms: Array1<f32>,
}

fn fixture() -> Fixture {
    let w = Array2::from_shape_fn((3, 4), |(i, j)| (i as f32 - 1.0) * 0.5 + j as f32 * 0.25);
    let x = Array2::from_shape_fn((5, 4), |(t, i)| ((t * 3 + i * 5) % 7) as f32 - 3.0);
    let gram = x.t().dot(&x);
    let mean_abs = x.mapv(f32::abs).mean_axis(ndarray::Axis(0)).unwrap();
    let rms = x
        .mapv(|v| v * v)
        .mean_axis(ndarray::Axis(0))
        .unwrap()
        .mapv(f32::sqrt);
    Fixture {
        w,
        x,
        gram,
        mean_abs,
        rms,
    }
}

fn full_tensors(f: &Fixture) -> Vec<T> {
    vec![
        f32t("lin.weight", &[3, 4], f.w.as_slice().unwrap()),
        f32t("lin.gram", &[4, 4], f.gram.as_slice().unwrap()),
        i64t("lin.count", &[1], &[5]),
        f32t("lin.act_mean_abs", &[4], f.mean_abs.as_slice().unwrap()),
        f32t("lin.act_rms", &[4], f.rms.as_slice().unwrap()),
        f32t("proj.weight", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
    ]
}

fn without(mut ts: Vec<T>, name: &str) -> Vec<T> {
    ts.retain(|t| t.name != name);
    ts
}

fn replace(mut ts: Vec<T>, t: T) -> Vec<T> {
    let k = ts.iter().position(|x| x.name == t.name).unwrap();
    ts[k] = t;
    ts
}

fn file_reason(e: &Error) -> &str {
    match e {
        Error::File { reason, .. } => reason,
        other => panic!("expected Error::File, got {other:?}"),
    }
}

#[test]
fn reads_weight_and_stats() {
    let dir = temp_dir("good");
    let f = fixture();
    let p = dir.join("layer.safetensors");
    write(&p, &full_tensors(&f));
    let lf = LayerFile::open(&p).unwrap();
    assert_eq!(lf.path(), p.as_path());
    let mut names = lf.linears().to_vec();
    names.sort();
    assert_eq!(names, ["lin", "proj"]);
    assert!(!lf.has_fisher());
    assert_eq!(lf.weight("lin").unwrap(), f.w);
    assert_eq!(
        lf.weight("proj").unwrap(),
        Array2::from_shape_vec((2, 3), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap()
    );
    let s = lf.stats("lin").unwrap();
    assert_eq!(s.count(), 5);
    assert_eq!(s.in_features(), 4);
    assert_eq!(s.gram(), &f.gram.mapv(f64::from));
    let close = |a: &Array1<f64>, b: &Array1<f32>| {
        a.iter()
            .zip(b.iter())
            .all(|(x, y)| (x - f64::from(*y)).abs() <= 1e-12 * x.abs().max(1.0))
    };
    assert!(close(&s.mean_abs(), &f.mean_abs), "{:?}", s.mean_abs());
    assert!(close(&s.rms(), &f.rms), "{:?}", s.rms());
    assert!(s.fisher().is_none());
    // The same statistics as observing X directly (gram exact: small integers).
    let mut obs = LayerStats::new(4).unwrap();
    obs.observe(f.x.view()).unwrap();
    assert_eq!(s.gram(), obs.gram());
    // Stats of a linear without a Gram matrix: a clear error.
    let e = lf.stats("proj").unwrap_err();
    assert!(file_reason(&e).contains("proj.gram"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn optional_vectors_default_from_the_gram_and_fisher_is_read() {
    let dir = temp_dir("defaults");
    let f = fixture();
    let p = dir.join("block.safetensors");
    let ts = without(without(full_tensors(&f), "lin.act_mean_abs"), "lin.act_rms");
    write(&p, &ts);
    // A Fisher file beside it.
    let fisher = Array2::from_shape_fn((3, 4), |(i, j)| (i + j) as f32 * 0.5);
    write(
        &dir.join("block.fisher.safetensors"),
        &[f32t("lin.fisher", &[3, 4], fisher.as_slice().unwrap())],
    );
    let lf = LayerFile::open(&p).unwrap();
    assert!(lf.has_fisher());
    let s = lf.stats("lin").unwrap();
    for i in 0..4 {
        let want = (f64::from(f.gram[(i, i)]) / 5.0).sqrt();
        assert!((s.rms()[i] - want).abs() <= 1e-12 * want.max(1.0));
        assert!((s.mean_abs()[i] - want).abs() <= 1e-12 * want.max(1.0));
    }
    assert_eq!(s.fisher(), Some(&fisher));
    // proj has no Fisher entry but also no gram; lin's Fisher of the wrong shape fails.
    write(
        &dir.join("block.fisher.safetensors"),
        &[f32t("lin.fisher", &[4, 3], fisher.as_slice().unwrap())],
    );
    let lf = LayerFile::open(&p).unwrap();
    let e = lf.stats("lin").unwrap_err();
    assert!(file_reason(&e).contains("lin.fisher"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn half_precision_weights_are_widened() {
    let dir = temp_dir("half");
    let vals = [0.5f32, -1.25, 3.0, 0.0, 2.5, -0.125];
    let f16: Vec<u8> = vals
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = vals
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect();
    let p = dir.join("h.safetensors");
    write(
        &p,
        &[
            T {
                name: "a.weight".into(),
                dtype: Dtype::F16,
                shape: vec![2, 3],
                data: f16,
            },
            T {
                name: "b.weight".into(),
                dtype: Dtype::BF16,
                shape: vec![3, 2],
                data: bf16,
            },
            i64t("c.weight", &[2, 1], &[1, 2]),
        ],
    );
    let lf = LayerFile::open(&p).unwrap();
    assert_eq!(
        lf.weight("a").unwrap(),
        Array2::from_shape_vec((2, 3), vals.to_vec()).unwrap()
    );
    assert_eq!(
        lf.weight("b").unwrap(),
        Array2::from_shape_vec((3, 2), vals.to_vec()).unwrap()
    );
    let e = lf.weight("c").unwrap_err();
    let r = file_reason(&e);
    assert!(r.contains("c.weight") && r.contains("I64"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn broken_files_give_typed_errors() {
    let dir = temp_dir("broken");
    let f = fixture();
    let open_stats = |name: &str, ts: Vec<T>| -> Error {
        let p = dir.join(format!("{name}.safetensors"));
        write(&p, &ts);
        LayerFile::open(&p).unwrap().stats("lin").unwrap_err()
    };

    let e = open_stats("nogram", without(full_tensors(&f), "lin.gram"));
    let r = file_reason(&e);
    assert!(r.contains("missing") && r.contains("`lin.gram`"), "{e}");

    let e = open_stats("nocount", without(full_tensors(&f), "lin.count"));
    assert!(file_reason(&e).contains("`lin.count`"), "{e}");

    let e = open_stats(
        "gram3",
        replace(full_tensors(&f), f32t("lin.gram", &[3, 3], &[1.0; 9])),
    );
    let r = file_reason(&e);
    assert!(
        r.contains("lin.gram") && r.contains("[3, 3]") && r.contains("(4, 4)"),
        "{e}"
    );

    let e = open_stats(
        "gram1d",
        replace(full_tensors(&f), f32t("lin.gram", &[16], &[1.0; 16])),
    );
    assert!(file_reason(&e).contains("lin.gram"), "{e}");

    let e = open_stats(
        "count0",
        replace(full_tensors(&f), i64t("lin.count", &[1], &[0])),
    );
    let r = file_reason(&e);
    assert!(r.contains("lin.count") && r.contains("positive"), "{e}");

    let e = open_stats(
        "countneg",
        replace(full_tensors(&f), i64t("lin.count", &[], &[-3])),
    );
    assert!(file_reason(&e).contains("-3"), "{e}");

    let e = open_stats(
        "count2",
        replace(full_tensors(&f), i64t("lin.count", &[2], &[5, 5])),
    );
    assert!(file_reason(&e).contains("lin.count"), "{e}");

    let e = open_stats(
        "meanshort",
        replace(full_tensors(&f), f32t("lin.act_mean_abs", &[3], &[1.0; 3])),
    );
    assert!(file_reason(&e).contains("lin.act_mean_abs"), "{e}");

    // A Gram matrix that cannot be X^T X.
    let mut bad = f.gram.clone();
    bad[(1, 1)] = -1.0;
    let e = open_stats(
        "negdiag",
        replace(
            full_tensors(&f),
            f32t("lin.gram", &[4, 4], bad.as_slice().unwrap()),
        ),
    );
    assert!(matches!(e, Error::Stats { .. }), "{e}");

    // No weight at all.
    let p = dir.join("noweight.safetensors");
    write(&p, &[f32t("lin.gram", &[4, 4], f.gram.as_slice().unwrap())]);
    let e = LayerFile::open(&p).unwrap_err();
    assert!(file_reason(&e).contains(".weight"), "{e}");

    // Garbage bytes.
    let p = dir.join("garbage.safetensors");
    std::fs::write(&p, b"this is not a safetensors file at all").unwrap();
    let e = LayerFile::open(&p).unwrap_err();
    assert!(file_reason(&e).contains("not a safetensors file"), "{e}");
    assert!(e.to_string().contains("garbage.safetensors"), "{e}");

    // Missing file: an I/O error naming the path.
    let p = dir.join("absent.safetensors");
    let e = LayerFile::open(&p).unwrap_err();
    assert!(matches!(&e, Error::Io { path, .. } if path == &p), "{e}");

    // Unknown linear: the error lists the linears.
    let p = dir.join("good.safetensors");
    write(&p, &full_tensors(&f));
    let lf = LayerFile::open(&p).unwrap();
    for e in [lf.weight("mlp").unwrap_err(), lf.stats("mlp").unwrap_err()] {
        let r = file_reason(&e);
        assert!(
            r.contains("`mlp`") && r.contains("lin") && r.contains("proj"),
            "{e}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
