/*
 * Single-precision GEMM for the shapes of convolution layers, AVX-512.
 *
 * Why not BLAS: the conv GEMMs are thin (M = out_c of 32 or 64, or N = out_c
 * in the weight gradient) and OpenBLAS packs both operands for every call; for
 * these shapes it runs at 40-70 % of its large-square rate. Here the wide
 * operand is read in place (it is an im2col tile that sits in L2), only the
 * thin one is ever repacked, and register blocks of MR rows x 16*NV columns
 * are chosen per call by the lanes they would waste and their measured speed.
 *
 * Compiled with the AVX-512 target attribute and chosen at run time: when the
 * CPU (or the compiler) lacks AVX-512F, ncnn_sgemm_available() is 0 and the
 * caller uses BLAS. Summation order differs from BLAS; results agree to
 * float32 rounding.
 */
#include "sgemm.h"
#include "simd.h"

/* K is split into chunks of KC so that a chunk of the B rows stays in L1. */
#define KC 128

int64_t ncnn_sgemm_scratch_size(int N)
{
    return (int64_t)KC * (N > 0 ? N : 1);
}

#ifdef NCNN_HAVE_AVX512

int ncnn_sgemm_available(void)
{
    return ncnn_cpu_has_avx512f();
}

static inline __mmask16 lane_mask(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/*
 * C[r, j] = beta C[r, j] + sum_k A(r, k) B[k, j] for r < mr, j < nr (C not read when
 * beta = 0), with A(r, k) = A[rows[r] + k * acs]; rows[] repeats its last valid row
 * when mr < MR, so reads stay in bounds (those results are not stored). MR x NV
 * accumulators stay in registers (hence the unrolling); `full` (a constant after
 * inlining) drops the lane masks of the edge columns.
 */
#define UNROLL _Pragma("GCC unroll 16")
#define NCNN_MICRO(MR, NV)                                                                    \
NCNN_TARGET static inline __attribute__((always_inline)) void                                 \
micro_body_##MR##x##NV(int kc, const float *A, const int64_t *rows, int64_t acs,              \
                       const float *B, int64_t ldb, float *C, int64_t ldc, int mr, int nr,    \
                       float beta, const int full)                                            \
{                                                                                             \
    __m512 c[MR][NV];                                                                         \
    __mmask16 m[NV];                                                                          \
    const float *ar[MR];                                                                      \
    UNROLL for (int v = 0; v < NV; v++) m[v] = full ? (__mmask16)0xFFFF : lane_mask(nr - 16 * v); \
    UNROLL for (int r = 0; r < MR; r++) {                                                     \
        ar[r] = A + rows[r];                                                                  \
        UNROLL for (int v = 0; v < NV; v++) c[r][v] = _mm512_setzero_ps();                    \
    }                                                                                         \
    for (int k = 0; k < kc; k++) {                                                            \
        __m512 b[NV];                                                                         \
        const float *bk = B + k * ldb;                                                        \
        const int64_t ak = k * acs;                                                           \
        UNROLL for (int v = 0; v < NV; v++)                                                   \
            b[v] = full ? _mm512_loadu_ps(bk + 16 * v) : _mm512_maskz_loadu_ps(m[v], bk + 16 * v); \
        UNROLL for (int r = 0; r < MR; r++) {                                                 \
            __m512 a = _mm512_set1_ps(ar[r][ak]);                                             \
            UNROLL for (int v = 0; v < NV; v++) c[r][v] = _mm512_fmadd_ps(a, b[v], c[r][v]);  \
        }                                                                                     \
    }                                                                                         \
    UNROLL for (int r = 0; r < MR; r++) {                                                     \
        float *cr = C + r * ldc;                                                              \
        if (r >= mr)                                                                          \
            break;                                                                            \
        UNROLL for (int v = 0; v < NV; v++) {                                                 \
            __m512 acc = c[r][v];                                                             \
            if (beta != 0.0f)                                                                 \
                acc = _mm512_fmadd_ps(_mm512_set1_ps(beta),                                   \
                                      _mm512_maskz_loadu_ps(m[v], cr + 16 * v), acc);         \
            _mm512_mask_storeu_ps(cr + 16 * v, m[v], acc);                                    \
        }                                                                                     \
    }                                                                                         \
}                                                                                             \
NCNN_TARGET static void micro_##MR##x##NV(int kc, const float *A, const int64_t *rows,        \
                                          int64_t acs, const float *B, int64_t ldb,           \
                                          float *C, int64_t ldc, int mr, int nr, float beta)  \
{                                                                                             \
    if (nr == 16 * NV)                                                                        \
        micro_body_##MR##x##NV(kc, A, rows, acs, B, ldb, C, ldc, mr, nr, beta, 1);            \
    else                                                                                      \
        micro_body_##MR##x##NV(kc, A, rows, acs, B, ldb, C, ldc, mr, nr, beta, 0);            \
}

NCNN_MICRO(8, 3)
NCNN_MICRO(6, 4)
NCNN_MICRO(12, 2)

typedef void (*micro_fn)(int, const float *, const int64_t *, int64_t, const float *, int64_t,
                         float *, int64_t, int, int, float);

/* rate: the block's speed relative to 8x3 on full blocks (measured on the paper's conv
 * shapes, one Sapphire Rapids core: 12 broadcasts per 2 loads make 12x2 the slowest) */
typedef struct { int mr, nv; micro_fn fn; double rate; } micro_shape;

static const micro_shape SHAPES[3] = {
    {8, 3, micro_8x3, 1.0}, {6, 4, micro_6x4, 0.97}, {12, 2, micro_12x2, 0.88}};

/* The register block with the least time: multiply-adds including the wasted lanes on
 * the edges of M x N, over the block's rate. */
static micro_shape pick_shape(int M, int N)
{
    micro_shape best = SHAPES[0];
    double best_work = -1;
    for (int s = 0; s < 3; s++) {
        int mr = SHAPES[s].mr, nr = 16 * SHAPES[s].nv;
        double work = (double)((M + mr - 1) / mr) * mr * (double)((N + nr - 1) / nr) * nr /
                      SHAPES[s].rate;
        if (best_work < 0 || work < best_work) {
            best = SHAPES[s];
            best_work = work;
        }
    }
    return best;
}

/* C = A(kc rows of K) B over one K chunk; A(r, k) = A[r * ars + k * acs]. */
NCNN_TARGET static void gemm_chunk(micro_shape s, int M, int N, int kc, const float *A,
                                   int64_t ars, int64_t acs, const float *B, int64_t ldb,
                                   float beta, float *C, int64_t ldc)
{
    const int nr_full = 16 * s.nv;
    int64_t rows[12];
    for (int j = 0; j < N; j += nr_full) {
        const int nr = N - j < nr_full ? N - j : nr_full;
        for (int i = 0; i < M; i += s.mr) {
            const int mr = M - i < s.mr ? M - i : s.mr;
            for (int r = 0; r < s.mr; r++)
                rows[r] = (int64_t)(i + (r < mr ? r : mr - 1)) * ars;
            s.fn(kc, A, rows, acs, B + j, ldb, C + (int64_t)i * ldc + j, ldc, mr, nr, beta);
        }
    }
}

NCNN_TARGET void ncnn_sgemm_nn(int M, int N, int K, const float *A, int64_t lda, int trans_a,
                               const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    const micro_shape s = pick_shape(M, N);
    const int64_t ars = trans_a ? 1 : lda, acs = trans_a ? lda : 1;
    if (K == 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(int64_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(int64_t)i * ldc + j];
        return;
    }
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int kc = K - k0 < KC ? K - k0 : KC;
        gemm_chunk(s, M, N, kc, A + k0 * acs, ars, acs, B + (int64_t)k0 * ldb, ldb,
                   k0 == 0 ? beta : 1.0f, C, ldc);
    }
}

/* dst (16 x 16, row stride ds) = the transpose of src (16 x 16, row stride ss) */
NCNN_TARGET static void transpose16(const float *src, int64_t ss, float *dst, int64_t ds)
{
    __m512 r[16], t[16];
    UNROLL for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * ss);
    UNROLL for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    UNROLL for (int i = 0; i < 4; i++) {
        r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    UNROLL for (int i = 0; i < 2; i++)
        UNROLL for (int j = 0; j < 4; j++) {
            t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
            t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xdd);
        }
    UNROLL for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
    }
    UNROLL for (int i = 0; i < 16; i++) _mm512_storeu_ps(dst + i * ds, r[i]);
}

/* The thin operand of a K chunk, transposed: dst[k, j] = Bt[j, k] (N x kc -> kc x N). */
NCNN_TARGET static void transpose_chunk(const float *Bt, int64_t ldbt, int N, int kc, float *dst)
{
    const int N16 = N - N % 16, kc16 = kc - kc % 16;
    for (int j = 0; j < N16; j += 16)
        for (int k = 0; k < kc16; k += 16)
            transpose16(Bt + (int64_t)j * ldbt + k, ldbt, dst + (int64_t)k * N + j, N);
    for (int j = 0; j < N; j++) {        /* the edges */
        const float *src = Bt + (int64_t)j * ldbt;
        for (int k = j < N16 ? kc16 : 0; k < kc; k++)
            dst[(int64_t)k * N + j] = src[k];
    }
}

NCNN_TARGET void ncnn_sgemm_nt(int M, int N, int K, const float *A, int64_t lda, const float *Bt,
                               int64_t ldbt, float beta, float *C, int64_t ldc, float *scratch)
{
    const micro_shape s = pick_shape(M, N);
    if (K == 0) {
        ncnn_sgemm_nn(M, N, 0, A, lda, 0, Bt, ldbt, beta, C, ldc);
        return;
    }
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int kc = K - k0 < KC ? K - k0 : KC;
        transpose_chunk(Bt + k0, ldbt, N, kc, scratch);
        gemm_chunk(s, M, N, kc, A + k0, lda, 1, scratch, N, k0 == 0 ? beta : 1.0f, C, ldc);
    }
}

#else /* no AVX-512 at compile time: the caller must use BLAS */

int ncnn_sgemm_available(void) { return 0; }

void ncnn_sgemm_nn(int M, int N, int K, const float *A, int64_t lda, int trans_a,
                   const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    (void)M; (void)N; (void)K; (void)A; (void)lda; (void)trans_a;
    (void)B; (void)ldb; (void)beta; (void)C; (void)ldc;
}

void ncnn_sgemm_nt(int M, int N, int K, const float *A, int64_t lda, const float *Bt,
                   int64_t ldbt, float beta, float *C, int64_t ldc, float *scratch)
{
    (void)M; (void)N; (void)K; (void)A; (void)lda; (void)Bt; (void)ldbt;
    (void)beta; (void)C; (void)ldc; (void)scratch;
}

#endif
