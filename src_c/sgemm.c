/*
 * Single-precision GEMM for the shapes of convolution layers, AVX-512 or AVX2.
 *
 * Why not BLAS: the conv GEMMs are thin (M = out_c of 32 or 64, or N = out_c
 * in the weight gradient) and OpenBLAS packs both operands for every call; for
 * these shapes it runs at 40-70 % of its large-square rate. Here the wide
 * operand is read in place (it is an im2col tile that sits in L2), only the
 * thin one is ever repacked, and register blocks of MR rows x VL*NV columns
 * are chosen per call by the lanes they would waste and their measured speed.
 * Every column of C is computed by the same sequence of multiply-adds wherever
 * it sits, so an image's outputs do not depend on its position in the batch
 * (OpenBLAS's edge kernels sum in another order).
 *
 * The body (sgemm_impl.h) is compiled twice, with the AVX-512 and the AVX2 + FMA
 * target attributes, and chosen at run time by the CPU; without either (or a
 * compiler that cannot target them) ncnn_sgemm_available() is 0 and the caller
 * uses BLAS. Summation order differs from BLAS; results agree to float32 rounding.
 */
#include "sgemm.h"
#include "simd.h"

/* K is split into chunks of KC so that a chunk of the B rows stays in L1. */
#define KC 128
/* the most rows of a register block */
#define MR_MAX 12

int64_t ncnn_sgemm_scratch_size(int N)
{
    return (int64_t)KC * (N > 0 ? N : 1);
}

#if defined(NCNN_HAVE_AVX512) || defined(NCNN_HAVE_AVX2)

typedef void (*micro_fn)(int, const float *, const int64_t *, int64_t, const float *, int64_t,
                         float *, int64_t, int, int, float);

/* rate: the block's speed relative to the first on full blocks (AVX-512: measured on the
 * paper's conv shapes on one Sapphire Rapids core; AVX2: estimates, not measured) */
typedef struct { int mr, nv; micro_fn fn; double rate; } micro_shape;

/* C = beta C (K = 0) */
static void scale_rows(int M, int N, float beta, float *C, int64_t ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(int64_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(int64_t)i * ldc + j];
}

#endif

#ifdef NCNN_HAVE_AVX512

/* dst (16 x 16, row stride ds) = the transpose of src (16 x 16, row stride ss) */
NCNN_TARGET static void transpose16(const float *src, int64_t ss, float *dst, int64_t ds)
{
    __m512 r[16], t[16];
    _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * ss);
    _Pragma("GCC unroll 16") for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    _Pragma("GCC unroll 16") for (int i = 0; i < 4; i++) {
        r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    _Pragma("GCC unroll 16") for (int i = 0; i < 2; i++)
        _Pragma("GCC unroll 16") for (int j = 0; j < 4; j++) {
            t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
            t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xdd);
        }
    _Pragma("GCC unroll 16") for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
    }
    _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * ds, r[i]);
}

#define SG_SUF avx512
#define SG_TARGET NCNN_TARGET
#define SG_VL 16
#define SG_V __m512
#define SG_M __mmask16
#define SG_MASK(n) ((n) >= 16 ? (__mmask16)0xFFFF : (n) <= 0 ? (__mmask16)0 \
                    : (__mmask16)((1u << (n)) - 1))
#define SG_FULL ((__mmask16)0xFFFF)
#define SG_LOAD _mm512_loadu_ps
#define SG_MASKZ_LOAD(m, p) _mm512_maskz_loadu_ps(m, p)
#define SG_MASK_STORE(p, m, v) _mm512_mask_storeu_ps(p, m, v)
#define SG_FMA _mm512_fmadd_ps
#define SG_SET1 _mm512_set1_ps
#define SG_ZERO _mm512_setzero_ps
#define SG_TRANSPOSE_TILE transpose16
/* 12 broadcasts per 2 loads make 12x2 the slowest */
#define SG_MICROS() NCNN_MICRO(8, 3) NCNN_MICRO(6, 4) NCNN_MICRO(12, 2)
#define SG_SHAPES {{8, 3, micro_8x3_avx512, 1.0}, {6, 4, micro_6x4_avx512, 0.97}, \
                   {12, 2, micro_12x2_avx512, 0.88}}
#include "sgemm_impl.h"

#endif

#ifdef NCNN_HAVE_AVX2

/* dst (8 x 8, row stride ds) = the transpose of src (8 x 8, row stride ss) */
NCNN_TARGET_AVX2 static void transpose8(const float *src, int64_t ss, float *dst, int64_t ds)
{
    __m256 r[8], t[8];
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * ss);
    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    _Pragma("GCC unroll 2") for (int i = 0; i < 2; i++) {
        r[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {
        t[j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x20);
        t[4 + j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x31);
    }
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + i * ds, t[i]);
}

#define SG_SUF avx2
#define SG_TARGET NCNN_TARGET_AVX2
#define SG_VL 8
#define SG_V __m256
#define SG_M __m256i
#define SG_MASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), \
                                      _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define SG_FULL _mm256_set1_epi32(-1)
#define SG_LOAD _mm256_loadu_ps
#define SG_MASKZ_LOAD(m, p) _mm256_maskload_ps(p, m)
#define SG_MASK_STORE(p, m, v) _mm256_maskstore_ps(p, m, v)
#define SG_FMA _mm256_fmadd_ps
#define SG_SET1 _mm256_set1_ps
#define SG_ZERO _mm256_setzero_ps
#define SG_TRANSPOSE_TILE transpose8
/* 16 registers: MR x NV accumulators + NV loads + 1 broadcast */
#define SG_MICROS() NCNN_MICRO(6, 2) NCNN_MICRO(4, 3) NCNN_MICRO(8, 1)
#define SG_SHAPES {{6, 2, micro_6x2_avx2, 1.0}, {4, 3, micro_4x3_avx2, 1.0}, \
                   {8, 1, micro_8x1_avx2, 0.85}}
#include "sgemm_impl.h"

#endif

/* 2: AVX-512, 1: AVX2 + FMA, 0: neither (BLAS); -1: not asked yet (a benign race asks
 * twice and gets the same answer) */
static int isa = -1;

static int sgemm_isa(void)
{
    if (isa < 0) {
        int found = 0;
#ifdef NCNN_HAVE_AVX2
        if (ncnn_cpu_has_avx2())
            found = 1;
#endif
#ifdef NCNN_HAVE_AVX512
        if (ncnn_cpu_has_avx512f())
            found = 2;
#endif
        isa = found;
    }
    return isa;
}

int ncnn_sgemm_available(void)
{
    return sgemm_isa() > 0;
}

int ncnn_sgemm_avx512(void)
{
    return sgemm_isa() == 2;
}

void ncnn_sgemm_nn(int M, int N, int K, const float *A, int64_t lda, int trans_a,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
#ifdef NCNN_HAVE_AVX512
    if (sgemm_isa() == 2) {
        sgemm_nn_avx512(M, N, K, A, lda, trans_a, B, ldb, beta, C, ldc);
        return;
    }
#endif
#ifdef NCNN_HAVE_AVX2
    if (sgemm_isa() == 1) {
        sgemm_nn_avx2(M, N, K, A, lda, trans_a, B, ldb, beta, C, ldc);
        return;
    }
#endif
    (void)M; (void)N; (void)K; (void)A; (void)lda; (void)trans_a;
    (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;
}

void ncnn_sgemm_nt(int M, int N, int K, const float *A, int64_t lda, const float *Bt,
                   int64_t ldbt, float beta, float *C, int64_t ldc, float *scratch)
{
#ifdef NCNN_HAVE_AVX512
    if (sgemm_isa() == 2) {
        sgemm_nt_avx512(M, N, K, A, lda, Bt, ldbt, beta, C, ldc, scratch);
        return;
    }
#endif
#ifdef NCNN_HAVE_AVX2
    if (sgemm_isa() == 1) {
        sgemm_nt_avx2(M, N, K, A, lda, Bt, ldbt, beta, C, ldc, scratch);
        return;
    }
#endif
    (void)M; (void)N; (void)K; (void)A; (void)lda; (void)Bt; (void)ldbt;
    (void)beta; (void)C; (void)ldc; (void)scratch;
}
