//! Safe matrix products over ndarray views, through matrixmultiply.

use ndarray::{ArrayView2, ArrayViewMut2};

use super::cast;
use crate::Float;

/// `c ← a · b + beta · c` for views of any strides (negative included),
/// through matrixmultiply's `sgemm` or `dgemm` as `F` is f32 or f64.
///
/// When `beta` is zero `c` is not read, so it may hold NaN or garbage.
///
/// **Panics** if the shapes do not chain (`a: m×k`, `b: k×n`, `c: m×n`);
/// that is a bug in the caller, never a user error.
pub(crate) fn gemm<F: Float>(
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    beta: F,
    c: ArrayViewMut2<'_, F>,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(
        k == k2 && c.dim() == (m, n),
        "gemm shapes do not chain: {m}×{k} · {k2}×{n} → {:?}",
        c.dim()
    );
    if m == 0 || n == 0 {
        return;
    }
    let c = match cast::view2_mut::<F, f32>(c) {
        Ok(c) => {
            let (a, b) = (
                cast::view2(a).expect("F is f32"),
                cast::view2(b).expect("F is f32"),
            );
            let beta = cast::slice::<F, f32>(std::slice::from_ref(&beta)).expect("F is f32")[0];
            return sgemm(a, b, beta, c);
        }
        Err(c) => c,
    };
    let c = cast::view2_mut::<F, f64>(c).unwrap_or_else(|_| unreachable!("Float is f32 or f64"));
    let (a, b) = (
        cast::view2(a).expect("F is f64"),
        cast::view2(b).expect("F is f64"),
    );
    let beta = cast::slice::<F, f64>(std::slice::from_ref(&beta)).expect("F is f64")[0];
    dgemm(a, b, beta, c);
}

macro_rules! matrixmultiply_gemm {
    ($name:ident, $t:ty, $gemm:path) => {
        fn $name(
            a: ArrayView2<'_, $t>,
            b: ArrayView2<'_, $t>,
            beta: $t,
            mut c: ArrayViewMut2<'_, $t>,
        ) {
            let (m, k) = a.dim();
            let n = b.ncols();
            let [rsa, csa] = [a.strides()[0], a.strides()[1]];
            let [rsb, csb] = [b.strides()[0], b.strides()[1]];
            let [rsc, csc] = [c.strides()[0], c.strides()[1]];
            // SAFETY: the three pointers come from live ndarray views whose
            // shapes were checked by `gemm` to be m×k, k×n and m×n; for every
            // index in those ranges `ptr + i·rs + j·cs` is an element of the
            // view (ndarray's own invariant for a view of that shape and
            // strides, negative strides included). `c` is a unique mutable
            // view, so it does not alias `a` or `b`. matrixmultiply reads
            // only those elements of a and b and writes only those of c,
            // and does not read c when beta is 0. k = 0 is allowed (c is
            // then scaled by beta, i.e. zeroed).
            unsafe {
                $gemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    rsa,
                    csa,
                    b.as_ptr(),
                    rsb,
                    csb,
                    beta,
                    c.as_mut_ptr(),
                    rsc,
                    csc,
                );
            }
        }
    };
}

matrixmultiply_gemm!(sgemm, f32, matrixmultiply::sgemm);
matrixmultiply_gemm!(dgemm, f64, matrixmultiply::dgemm);

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, s};

    fn naive(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Array2<f64> {
        let mut c = Array2::zeros((a.nrows(), b.ncols()));
        for i in 0..a.nrows() {
            for j in 0..b.ncols() {
                c[[i, j]] = (0..a.ncols()).map(|p| a[[i, p]] * b[[p, j]]).sum();
            }
        }
        c
    }

    #[test]
    fn strided_and_negative_views_with_nan_output() {
        let big = Array2::from_shape_fn((9, 11), |(i, j)| (i * 11 + j) as f64 - 40.0);
        let a = big.slice(s![..;2, ..;-3]); // 5×4, negative column stride
        let b = big.slice(s![1..5, 2..9]).reversed_axes(); // 7×4 transposed view
        let b = b.t(); // 4×7, column-major
        let mut c = Array2::from_elem((9, 7), f64::NAN);
        gemm(a, b, 0.0, c.slice_mut(s![..;2, ..]));
        assert_eq!(c.slice(s![..;2, ..]), naive(a, b));
        assert!(c.slice(s![1..;2, ..]).iter().all(|x| x.is_nan()));
    }
}
