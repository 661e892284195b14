//! Choosing which weights to prune from scores, with one deterministic
//! tie rule everywhere:
//!
//! **Ties.** Scores are compared as f64 with `total_cmp`; among equal scores
//! the entry with the smaller index (row-major position `i * cols + j` over
//! the compared set; the smaller column inside a row or an N:M group; the
//! smaller row or column index for structured pruning) is **pruned first**.
//! Selecting the largest (LIFT) keeps the smaller index first. This is what a
//! stable ascending sort gives (Wanda's reference sorts stably) and it never
//! depends on the thread count.

use crate::pattern::Pattern;
use ndarray::ArrayView2;
use rayon::prelude::*;
use shrink_core::{Mask, Result};

/// Orders `(score, index)` ascending; equal scores by index.
#[inline]
fn asc(scores: &[f64], a: usize, b: usize) -> std::cmp::Ordering {
    scores[a].total_cmp(&scores[b]).then(a.cmp(&b))
}

/// An unsigned key whose order is `f64::total_cmp`'s: negative values (sign
/// bit set) have all their bits flipped, the others only the sign bit.
#[inline]
pub(crate) fn total_key(v: f64) -> u64 {
    let b = v.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

/// Flags (`true` = selected) of the `k` smallest scores (ties: lower index
/// selected first). Selects on `(key, index)` pairs held by value (the
/// order of [`asc`], without indirect loads).
pub(crate) fn smallest(scores: &[f64], k: usize) -> Vec<bool> {
    let n = scores.len();
    let mut out = vec![false; n];
    if k == 0 {
        return out;
    }
    if k >= n {
        out.fill(true);
        return out;
    }
    let mut keyed: Vec<(u64, usize)> = scores
        .iter()
        .enumerate()
        .map(|(i, &v)| (total_key(v), i))
        .collect();
    for &(_, i) in select_smallest(&mut keyed, k) {
        out[i] = true;
    }
    out
}

/// The `k` smallest of `(key, index)` pairs (keys from [`total_key`], so
/// the order and tie rule of [`smallest`]), moved to the front of `keyed`
/// and returned; for callers that build the pairs in a reused buffer.
pub(crate) fn select_smallest(keyed: &mut [(u64, usize)], k: usize) -> &[(u64, usize)] {
    let k = k.min(keyed.len());
    if k > 0 && k < keyed.len() {
        keyed.select_nth_unstable(k - 1);
    }
    &keyed[..k]
}

/// Flags of the `k` largest scores (ties: lower index selected first).
pub(crate) fn largest(scores: &[f64], k: usize) -> Vec<bool> {
    let n = scores.len();
    let mut out = vec![false; n];
    if k == 0 {
        return out;
    }
    if k >= n {
        out.fill(true);
        return out;
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.select_nth_unstable_by(k - 1, |&a, &b| {
        scores[b].total_cmp(&scores[a]).then(a.cmp(&b))
    });
    for &i in &idx[..k] {
        out[i] = true;
    }
    out
}

/// Within `scores` (one N:M group), the `prune` entries to remove: smallest
/// first, ties to the lower index. Groups of up to 32 need no allocation.
pub(crate) fn nm_group(scores: &[f64], prune: usize, out_pruned: &mut [bool]) {
    out_pruned.fill(false);
    let m = scores.len();
    let prune = prune.min(m);
    if m <= 32 {
        // Rank of each entry under (score, index): O(m^2), tiny for N:M,
        // on integer keys with `total_cmp`'s order (branch-free counts).
        let mut keys = [0u64; 32];
        // (Bitwise `|` and `&` below: no short-circuit branches, which
        // mispredict on random scores.)
        for (k, &v) in keys.iter_mut().zip(scores) {
            *k = total_key(v);
        }
        let keys = &keys[..m];
        for (a, o) in out_pruned.iter_mut().enumerate().take(m) {
            let ka = keys[a];
            let rank: usize = keys
                .iter()
                .enumerate()
                .map(|(b, &kb)| usize::from((kb < ka) | ((kb == ka) & (b < a))))
                .sum();
            *o = rank < prune;
        }
        return;
    }
    let mut idx: Vec<usize> = (0..m).collect();
    idx.sort_by(|&a, &b| asc(scores, a, b));
    for &i in &idx[..prune] {
        out_pruned[i] = true;
    }
}

/// The keep-mask of a `(rows, cols)` score matrix under a pattern, where
/// [`Pattern::Unstructured`] compares over the whole matrix.
///
/// Structured patterns sum the scores of each row (or column) in f64 in
/// index order and remove the lowest sums.
pub(crate) fn mask_from_scores(scores: ArrayView2<'_, f64>, pattern: &Pattern) -> Result<Mask> {
    let (rows, cols) = scores.dim();
    pattern.check_shape(rows, cols)?;
    let flat: Vec<f64> = scores.iter().copied().collect();
    let keep: Vec<bool> = match *pattern {
        Pattern::Unstructured(r) => {
            let pruned = smallest(&flat, r.count_of(rows * cols));
            pruned.into_iter().map(|p| !p).collect()
        }
        Pattern::PerRow(r) => {
            let k = r.count_of(cols);
            let mut keep = vec![true; rows * cols];
            keep.par_chunks_mut(cols.max(1))
                .zip(flat.par_chunks(cols.max(1)))
                .for_each(|(kr, sr)| {
                    for (o, p) in kr.iter_mut().zip(smallest(sr, k)) {
                        *o = !p;
                    }
                });
            keep
        }
        Pattern::NM { n, m } => {
            let mut keep = vec![true; rows * cols];
            keep.par_chunks_mut(cols.max(1))
                .zip(flat.par_chunks(cols.max(1)))
                .for_each(|(kr, sr)| {
                    let mut pruned = vec![false; m];
                    for (kg, sg) in kr.chunks_mut(m).zip(sr.chunks(m)) {
                        nm_group(sg, m - n, &mut pruned);
                        for (o, p) in kg.iter_mut().zip(&pruned) {
                            *o = !p;
                        }
                    }
                });
            keep
        }
        Pattern::Rows(r) => {
            let sums: Vec<f64> = flat
                .chunks(cols.max(1))
                .map(|row| row.iter().sum())
                .collect();
            let gone = smallest(&sums, r.count_of(rows));
            (0..rows * cols).map(|k| !gone[k / cols]).collect()
        }
        Pattern::Columns(r) => {
            let mut sums = vec![0f64; cols];
            for row in flat.chunks(cols.max(1)) {
                for (s, v) in sums.iter_mut().zip(row) {
                    *s += v;
                }
            }
            let gone = smallest(&sums, r.count_of(cols));
            (0..rows * cols).map(|k| !gone[k % cols]).collect()
        }
    };
    Mask::from_flags(rows, cols, &keep)
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn the_key_orders_like_total_cmp() {
        let vals = [
            f64::NEG_INFINITY,
            -1e300,
            -1.0,
            -f64::MIN_POSITIVE,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            1.0,
            2.5,
            1e300,
            f64::INFINITY,
        ];
        for a in vals {
            for b in vals {
                assert_eq!(total_key(a).cmp(&total_key(b)), a.total_cmp(&b), "{a} {b}");
            }
        }
    }

    #[test]
    fn nm_group_prunes_the_smallest_with_ties_to_the_lower_index() {
        // Ties, signed zeros, infinities, NaN, groups of 4, 8 and 40 (the
        // sort path), every prune count.
        let pool = [
            0.0,
            -0.0,
            1.5,
            1.5,
            0.25,
            f64::INFINITY,
            f64::NAN,
            3.0,
            0.25,
            -2.0,
        ];
        for m in [4usize, 8, 40] {
            for shift in 0..pool.len() {
                let scores: Vec<f64> = (0..m).map(|k| pool[(k * 7 + shift) % pool.len()]).collect();
                let mut idx: Vec<usize> = (0..m).collect();
                idx.sort_by(|&a, &b| asc(&scores, a, b));
                for prune in 0..=m {
                    let mut want = vec![false; m];
                    for &i in &idx[..prune] {
                        want[i] = true;
                    }
                    let mut got = vec![true; m];
                    nm_group(&scores, prune, &mut got);
                    assert_eq!(got, want, "m {m} shift {shift} prune {prune}");
                }
            }
        }
    }

    #[test]
    fn smallest_equals_a_stable_sort() {
        let scores: Vec<f64> = (0..500)
            .map(|i| ((i * 37) % 23) as f64 * 0.5 - 3.0)
            .collect();
        for k in [0, 1, 7, 250, 499, 500, 600] {
            let got = smallest(&scores, k);
            let mut idx: Vec<usize> = (0..scores.len()).collect();
            idx.sort_by(|&a, &b| asc(&scores, a, b));
            let mut want = vec![false; scores.len()];
            for &i in idx.iter().take(k) {
                want[i] = true;
            }
            assert_eq!(got, want, "k = {k}");
        }
    }
}
