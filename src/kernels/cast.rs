//! Same-type casts: how a generic `F` reaches the kernel written for `f32`.
//!
//! The public [`Float`](crate::Float) trait carries no kernel machinery; a
//! plan made for `f32` weights holds `f32` kernels, and the driver hands them
//! its `F` buffers through these functions, which succeed exactly when `F`
//! *is* the target type (compared by [`TypeId`]) and hand the value back
//! otherwise. ndarray picks `sgemm`/`dgemm` the same way.

use std::any::TypeId;
use std::mem::ManuallyDrop;

use ndarray::{ArrayView2, ArrayViewMut2};

/// Whether `F` and `G` are the same type.
#[inline]
pub(crate) fn same<F: 'static, G: 'static>() -> bool {
    TypeId::of::<F>() == TypeId::of::<G>()
}

/// Reinterprets `x` as a `U`.
///
/// # Safety
/// `T` and `U` are the same type (up to lifetimes that are equal).
#[inline]
unsafe fn identity<T, U>(x: T) -> U {
    let x = ManuallyDrop::new(x);
    // SAFETY: T and U are one type (the caller's contract), so the bits of a
    // T are a valid U; the original is not dropped.
    unsafe { std::ptr::read((&*x as *const T).cast::<U>()) }
}

/// `s` as a `&[G]` when `F` is `G`.
#[inline]
pub(crate) fn slice<F: 'static, G: 'static>(s: &[F]) -> Option<&[G]> {
    // SAFETY: F is G, checked first.
    same::<F, G>().then(|| unsafe { identity::<&[F], &[G]>(s) })
}

/// `s` as a `&mut [G]` when `F` is `G`.
#[inline]
pub(crate) fn slice_mut<F: 'static, G: 'static>(s: &mut [F]) -> Option<&mut [G]> {
    // SAFETY: F is G, checked first.
    same::<F, G>().then(|| unsafe { identity::<&mut [F], &mut [G]>(s) })
}

/// `v` as a view of `G` when `F` is `G`.
#[inline]
pub(crate) fn view2<'a, F: 'static, G: 'static>(v: ArrayView2<'a, F>) -> Option<ArrayView2<'a, G>> {
    // SAFETY: F is G, checked first, so the two view types are one type.
    same::<F, G>().then(|| unsafe { identity::<ArrayView2<'a, F>, ArrayView2<'a, G>>(v) })
}

/// `v` as a mutable view of `G` when `F` is `G`, else `v` back.
#[inline]
pub(crate) fn view2_mut<'a, F: 'static, G: 'static>(
    v: ArrayViewMut2<'a, F>,
) -> Result<ArrayViewMut2<'a, G>, ArrayViewMut2<'a, F>> {
    if same::<F, G>() {
        // SAFETY: F is G, checked just above.
        Ok(unsafe { identity::<ArrayViewMut2<'a, F>, ArrayViewMut2<'a, G>>(v) })
    } else {
        Err(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, s};

    #[test]
    fn casts_only_to_the_same_type() {
        let a = Array2::from_shape_fn((3, 4), |(i, j)| (i * 4 + j) as f32);
        let v = view2::<f32, f32>(a.slice(s![..;2, ..;-1])).unwrap();
        assert_eq!(v, a.slice(s![..;2, ..;-1]));
        assert!(view2::<f32, f64>(a.view()).is_none());
        assert_eq!(slice::<f32, f32>(&[1.0, 2.0]).unwrap(), &[1.0, 2.0]);
        assert!(slice::<f64, f32>(&[1.0]).is_none());
        assert_eq!(slice_mut::<f32, f32>(&mut [1.0]).unwrap(), &[1.0]);
        assert!(slice_mut::<f64, f32>(&mut [1.0]).is_none());
        let mut b = Array2::<f64>::zeros((2, 2));
        assert!(view2_mut::<f64, f32>(b.view_mut()).is_err());
        view2_mut::<f64, f64>(b.view_mut()).unwrap()[[1, 1]] = 3.0;
        assert_eq!(b[[1, 1]], 3.0);
    }
}
