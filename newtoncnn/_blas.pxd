# Row-major GEMM through scipy's BLAS, callable without the GIL from other Cython modules.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef inline void gemm_rm(bint trans_a, bint trans_b, int M, int N, int K, floating alpha,
                         const floating *A, int lda, const floating *B, int ldb,
                         floating beta, floating *C, int ldc) noexcept nogil:
    """C (M x N, row stride ldc) = alpha op(A) op(B) + beta C, all row-major.

    Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        sgemm(&tb, &ta, &N, &M, &K, &alpha, <float *> B, &ldb, <float *> A, &lda, &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &N, &M, &K, &alpha, <double *> B, &ldb, <double *> A, &lda, &beta, C, &ldc)
