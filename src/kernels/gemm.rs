//! Safe matrix products over ndarray views, through matrixmultiply.

use ndarray::{ArrayView2, ArrayViewMut2};

use super::depthwise::Depthwise;
use super::direct::DirectConv;
use crate::activation::Activation;

/// The element types the kernels are compiled for (f32 and f64).
///
/// Sealed: it lives in a private module, so only this crate implements it.
pub trait Scalar: Copy + Send + Sync + 'static {
    /// `c ← a · b + beta · c` for views of any strides (negative included).
    ///
    /// When `beta` is zero `c` is not read, so it may hold NaN or garbage.
    ///
    /// **Panics** if the shapes do not chain (`a: m×k`, `b: k×n`, `c: m×n`);
    /// that is a bug in the caller, never a user error.
    fn gemm(
        a: ArrayView2<'_, Self>,
        b: ArrayView2<'_, Self>,
        beta: Self,
        c: ArrayViewMut2<'_, Self>,
    );

    /// Weights packed for this type's fast GEMM (`()` where there is none).
    type Packed: Clone + std::fmt::Debug + PartialEq + Send + Sync;

    /// Packs `b` (`K × N`) and `bias` (`N`) for [`gemm_packed`](Self::gemm_packed),
    /// or `None` when this type or CPU has no fast GEMM.
    fn pack(b: ArrayView2<'_, Self>, bias: Option<&[Self]>) -> Option<Self::Packed>;

    /// `c = act(a · b + bias)` with the fast kernel. Returns `false`, having
    /// done nothing, for a case the kernel does not take (the caller then
    /// runs the portable path). `parallel`: split over threads.
    fn gemm_packed(
        a: ArrayView2<'_, Self>,
        b: &Self::Packed,
        c: ArrayViewMut2<'_, Self>,
        act: Activation,
        parallel: bool,
    ) -> bool;

    /// Output rows `first_row..` of the depthwise problem `p` with this
    /// type's fast kernel. Returns `false`, having done nothing, when there
    /// is none for this type, CPU or problem.
    fn depthwise_rows(
        p: &Depthwise<'_, Self>,
        first_row: usize,
        out: ArrayViewMut2<'_, Self>,
    ) -> bool;

    /// Output rows `first_row..` of the direct convolution `p` with this
    /// type's kernel. Returns `false`, having done nothing, when there is
    /// none for this type, CPU or problem.
    fn direct_conv_rows(
        p: &DirectConv<'_, Self>,
        first_row: usize,
        out: ArrayViewMut2<'_, Self>,
    ) -> bool;
}

macro_rules! impl_scalar {
    ($t:ty, $gemm:path, $packed:ty, { $($fast:tt)* }) => {
        impl Scalar for $t {
            type Packed = $packed;
            $($fast)*

            fn gemm(
                a: ArrayView2<'_, $t>,
                b: ArrayView2<'_, $t>,
                beta: $t,
                mut c: ArrayViewMut2<'_, $t>,
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
                let [rsa, csa] = [a.strides()[0], a.strides()[1]];
                let [rsb, csb] = [b.strides()[0], b.strides()[1]];
                let [rsc, csc] = [c.strides()[0], c.strides()[1]];
                // SAFETY: the three pointers come from live ndarray views whose
                // shapes were checked above to be m×k, k×n and m×n; for every
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
        }
    };
}

impl_scalar!(f32, matrixmultiply::sgemm, super::gemm_f32::PackedB, {
    fn pack(b: ArrayView2<'_, f32>, bias: Option<&[f32]>) -> Option<Self::Packed> {
        super::gemm_f32::available().then(|| super::gemm_f32::PackedB::new(b, bias))
    }
    fn gemm_packed(
        a: ArrayView2<'_, f32>,
        b: &Self::Packed,
        c: ArrayViewMut2<'_, f32>,
        act: Activation,
        parallel: bool,
    ) -> bool {
        super::gemm_f32::gemm(a, b, c, act, parallel)
    }
    fn depthwise_rows(
        p: &Depthwise<'_, f32>,
        first_row: usize,
        out: ArrayViewMut2<'_, f32>,
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        return super::depthwise_f32::rows(p, first_row, out);
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (p, first_row, out);
            false
        }
    }
    fn direct_conv_rows(
        p: &DirectConv<'_, f32>,
        first_row: usize,
        out: ArrayViewMut2<'_, f32>,
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        return super::conv_f32::rows(p, first_row, out);
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (p, first_row, out);
            false
        }
    }
});
impl_scalar!(f64, matrixmultiply::dgemm, (), {
    fn pack(_: ArrayView2<'_, f64>, _: Option<&[f64]>) -> Option<()> {
        None
    }
    fn gemm_packed(
        _: ArrayView2<'_, f64>,
        _: &(),
        _: ArrayViewMut2<'_, f64>,
        _: Activation,
        _: bool,
    ) -> bool {
        false
    }
    fn depthwise_rows(_: &Depthwise<'_, f64>, _: usize, _: ArrayViewMut2<'_, f64>) -> bool {
        false
    }
    fn direct_conv_rows(_: &DirectConv<'_, f64>, _: usize, _: ArrayViewMut2<'_, f64>) -> bool {
        false
    }
});

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
        f64::gemm(a, b, 0.0, c.slice_mut(s![..;2, ..]));
        assert_eq!(c.slice(s![..;2, ..]), naive(a, b));
        assert!(c.slice(s![1..;2, ..]).iter().all(|x| x.is_nan()));
    }
}
