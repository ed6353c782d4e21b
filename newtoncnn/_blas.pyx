# cython: language_level=3, boundscheck=False, wraparound=False
"""GEMM on row-major arrays through scipy's BLAS (``scipy.linalg.cython_blas``).

newtoncnn links no BLAS of its own: every product goes through the BLAS
that scipy ships, called without the GIL.
"""
import numpy as np
from cython cimport floating
from newtoncnn._blas cimport gemm_rm


cdef inline int _ld(Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t stride, size_t itemsize):
    # numpy may give a length-1 axis any stride; BLAS needs ld >= the row length.
    if rows <= 1:
        return max(1, <int>cols)
    return <int>(stride // <Py_ssize_t>itemsize)


def gemm(const floating[:, :] A, const floating[:, :] B, floating[:, :] C,
         bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """C = alpha op(A) op(B) + beta C, in place; op(X) = X or Xᵀ.

    Rows may be strided (slices of larger arrays); columns must be contiguous.
    """
    for name, X in (("A", A), ("B", B), ("C", C)):
        if X.shape[1] > 1 and X.strides[1] != sizeof(floating):
            raise ValueError(f"gemm: the columns of {name} must be contiguous")
        if X.shape[0] > 1 and X.strides[0] < X.shape[1] * <Py_ssize_t>sizeof(floating):
            raise ValueError(f"gemm: the rows of {name} overlap")
    cdef int M = C.shape[0], N = C.shape[1]
    cdef int K = A.shape[0] if trans_a else A.shape[1]
    cdef int am = A.shape[1] if trans_a else A.shape[0]
    cdef int bk = B.shape[1] if trans_b else B.shape[0]
    cdef int bn = B.shape[0] if trans_b else B.shape[1]
    if am != M or bk != K or bn != N:
        raise ValueError(f"gemm shapes do not match: op(A) {am}x{K}, op(B) {bk}x{bn}, C {M}x{N}")
    if M == 0 or N == 0:
        return
    if K == 0:
        np.asarray(C)[...] *= beta
        return
    cdef int lda = _ld(A.shape[0], A.shape[1], A.strides[0], sizeof(floating))
    cdef int ldb = _ld(B.shape[0], B.shape[1], B.strides[0], sizeof(floating))
    cdef int ldc = _ld(C.shape[0], C.shape[1], C.strides[0], sizeof(floating))
    cdef floating a = <floating> alpha, b = <floating> beta
    with nogil:
        gemm_rm(trans_a, trans_b, M, N, K, a, &A[0, 0], lda, &B[0, 0], ldb, b, &C[0, 0], ldc)
