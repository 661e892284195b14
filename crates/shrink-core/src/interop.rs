//! Zero-copy views between `ndarray` (the public API) and `faer` (the linear
//! algebra inside).
//!
//! Both libraries describe a strided matrix by a pointer, two extents and two
//! strides, so a view in one is a view in the other over the same memory: no
//! element is copied. Contiguous row-major and column-major arrays go through
//! faer's safe slice constructors; arbitrary (including negative) strides use
//! `from_raw_parts`, which is sound because the ndarray view already proves
//! every addressed element is in bounds and borrowed for the view's lifetime.

use faer::{MatMut, MatRef};
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

/// A faer view over the same memory as an ndarray view.
pub fn as_faer<'a, T>(a: ArrayView2<'a, T>) -> MatRef<'a, T> {
    let (m, n) = a.dim();
    let rs = a.strides()[0];
    let cs = a.strides()[1];
    if a.is_standard_layout()
        && let Some(s) = a.to_slice()
    {
        return MatRef::from_row_major_slice(s, m, n);
    }
    let ptr = a.as_ptr();
    // SAFETY: `a` is a valid ndarray view: for every i < m, j < n the element at
    // `ptr + i*rs + j*cs` is in bounds, initialised and borrowed immutably for
    // 'a. faer addresses exactly those elements with the same strides and only
    // reads them.
    #[allow(unsafe_code)]
    unsafe {
        MatRef::from_raw_parts(ptr, m, n, rs, cs)
    }
}

/// A mutable faer view over the same memory as a mutable ndarray view.
pub fn as_faer_mut<'a, T>(mut a: ArrayViewMut2<'a, T>) -> MatMut<'a, T> {
    let (m, n) = a.dim();
    let rs = a.strides()[0];
    let cs = a.strides()[1];
    let ptr = a.as_mut_ptr();
    // SAFETY: `a` is a unique (mutable) ndarray view whose addressed elements
    // are in bounds and pairwise distinct (ndarray forbids aliasing strides in
    // mutable views); consuming `a` transfers that unique borrow to the
    // returned view for 'a.
    #[allow(unsafe_code)]
    unsafe {
        MatMut::from_raw_parts_mut(ptr, m, n, rs, cs)
    }
}

/// An ndarray view over the same memory as a faer view.
pub fn as_ndarray<'a, T>(a: MatRef<'a, T>) -> ArrayView2<'a, T> {
    let (m, n) = (a.nrows(), a.ncols());
    let (rs, cs) = (a.row_stride(), a.col_stride());
    if m == 0 || n == 0 {
        // No element is addressed; any well-aligned pointer would do, but a
        // shape-only empty view needs no unsafe at all.
        return ArrayView2::from_shape((m, n), &[]).expect("empty shape is valid");
    }
    let ptr = a.as_ptr();
    if rs >= 0 && cs >= 0 {
        // SAFETY: faer guarantees the elements `ptr + i*rs + j*cs` for i < m,
        // j < n are valid for reads for 'a; ndarray reads the same ones.
        #[allow(unsafe_code)]
        unsafe {
            ArrayView2::from_shape_ptr((m, n).strides((rs as usize, cs as usize)), ptr)
        }
    } else {
        // Negative strides: view the reversed axes, then flip them back.
        let flip_r = rs < 0;
        let flip_c = cs < 0;
        let a2 = if flip_r { a.reverse_rows() } else { a };
        let a2 = if flip_c { a2.reverse_cols() } else { a2 };
        let mut v = as_ndarray(a2);
        if flip_r {
            v.invert_axis(ndarray::Axis(0));
        }
        if flip_c {
            v.invert_axis(ndarray::Axis(1));
        }
        v
    }
}
