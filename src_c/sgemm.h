/*
 * float32 GEMM for conv-layer shapes (AVX-512 or AVX2, chosen at run time). All
 * matrices row-major with the given row strides; no allocation, no checks:
 * the Cython layer validates sizes and falls back to BLAS when
 * ncnn_sgemm_available() is 0.
 */
#ifndef NEWTONCNN_SGEMM_H
#define NEWTONCNN_SGEMM_H

#include <stdint.h>

/* 1 when this build and this CPU can run the kernels below. */
int ncnn_sgemm_available(void);

/* 1 when they run with AVX-512 (0: AVX2 or not at all). */
int ncnn_sgemm_avx512(void);

/* Floats of scratch that ncnn_sgemm_nt needs for an N-column result. */
int64_t ncnn_sgemm_scratch_size(int N);

/* C (M x N) = op(A) B + beta C; op(A) = A (M x K, row stride lda) or, with
 * trans_a, the transpose of A stored K x M. B is K x N. */
void ncnn_sgemm_nn(int M, int N, int K, const float *A, int64_t lda, int trans_a,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* C (M x N) = A Btᵀ + beta C; A is M x K, Bt is N x K (the thin operand, N small). */
void ncnn_sgemm_nt(int M, int N, int K, const float *A, int64_t lda, const float *Bt,
                   int64_t ldbt, float beta, float *C, int64_t ldc, float *scratch);

#endif
