# GEMM on row-major arrays (part of _kernels.pyx): scipy's BLAS (``scipy.linalg.cython_blas``), and
# newtoncnn's own float32 kernel for conv shapes (``src_c/sgemm.c``, AVX-512 or AVX2).
#
# newtoncnn links no BLAS of its own: every product that is not a float32 conv
# GEMM on an AVX-512 or AVX2 CPU goes through the BLAS that scipy ships.
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


def _ld(func, name, X, itemsize):
    # numpy may give a length-1 axis any stride; BLAS needs ld >= the row length.
    rows, cols, stride = X.shape[0], X.shape[1], X.strides[0]
    if rows <= 1:
        return _cint(f"{func}: the row length of {name}", max(1, cols))
    if stride % itemsize:
        raise ValueError(f"{func}: the row stride of {name} is not a whole number of elements")
    return _cint(f"{func}: the row stride of {name}", stride // itemsize)


def _layout(func, A, B, C, bint trans_a, bint trans_b, size_t itemsize):
    """Checks the operands of C = op(A) op(B); returns M, N, K and the row strides, each
    checked to fit the C int that BLAS takes."""
    for name, X in (("A", A), ("B", B), ("C", C)):
        if X.shape[1] > 1 and X.strides[1] != itemsize:
            raise ValueError(f"{func}: the columns of {name} must be contiguous")
        if X.shape[0] > 1 and X.strides[0] < X.shape[1] * <Py_ssize_t>itemsize:
            raise ValueError(f"{func}: the rows of {name} overlap")
    M, N = C.shape[0], C.shape[1]
    K, am = (A.shape[0], A.shape[1]) if trans_a else (A.shape[1], A.shape[0])
    bk, bn = (B.shape[1], B.shape[0]) if trans_b else (B.shape[0], B.shape[1])
    if am != M or bk != K or bn != N:
        raise ValueError(f"{func} shapes do not match: op(A) {am}x{K}, op(B) {bk}x{bn}, C {M}x{N}")
    return (_cint(f"{func}: M", M), _cint(f"{func}: N", N), _cint(f"{func}: K", K),
            _ld(func, "A", A, itemsize), _ld(func, "B", B, itemsize), _ld(func, "C", C, itemsize))


def gemm(const floating[:, :] A, const floating[:, :] B, floating[:, :] C,
         bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """C = alpha op(A) op(B) + beta C, in place; op(X) = X or Xᵀ.

    Rows may be strided (slices of larger arrays); columns must be contiguous.
    """
    cdef int M, N, K, lda, ldb, ldc
    M, N, K, lda, ldb, ldc = _layout("gemm", A, B, C, trans_a, trans_b, sizeof(floating))
    if M == 0 or N == 0:
        return
    if K == 0:
        np.asarray(C)[...] *= beta
        return
    cdef floating a = <floating> alpha, b = <floating> beta
    with nogil:
        gemm_rm(trans_a, trans_b, M, N, K, a, &A[0, 0], lda, &B[0, 0], ldb, b, &C[0, 0], ldc)


def native_sgemm_available():
    """True when newtoncnn's AVX-512 or AVX2 float32 GEMM was compiled in and this CPU runs it."""
    return bool(ncnn_sgemm_available())


def native_sgemm(const float[:, :] A, const float[:, :] B, float[:, :] C,
                 bint trans_a=False, bint trans_b=False, float beta=0.0):
    """C = op(A) op(B) + beta C with newtoncnn's own float32 kernel (not both transposed).

    The conv passes call the kernel directly; this wrapper exists to test it.
    """
    if not ncnn_sgemm_available():
        raise RuntimeError("the native float32 GEMM needs AVX-512F or AVX2 with FMA (this CPU or build lacks it)")
    if trans_a and trans_b:
        raise ValueError("native_sgemm: op(A) and op(B) cannot both be transposed")
    cdef int M, N, K, lda, ldb, ldc
    M, N, K, lda, ldb, ldc = _layout("native_sgemm", A, B, C, trans_a, trans_b, sizeof(float))
    if M == 0 or N == 0:
        return
    cdef const float *a = &A[0, 0] if A.shape[0] and A.shape[1] else NULL
    cdef const float *b = &B[0, 0] if B.shape[0] and B.shape[1] else NULL
    cdef float[::1] scratch = np.empty(ncnn_sgemm_scratch_size(N), dtype=np.float32)
    with nogil:
        if trans_b:
            ncnn_sgemm_nt(M, N, K, a, lda, b, ldb, beta, &C[0, 0], ldc, &scratch[0])
        else:
            ncnn_sgemm_nn(M, N, K, a, lda, trans_a, b, ldb, beta, &C[0, 0], ldc)
