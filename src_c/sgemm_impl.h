/*
 * The float32 GEMM of sgemm.c for one instruction set, included once per set with
 * these defined (sgemm.c):
 *   SG_SUF             name suffix (avx512, avx2)
 *   SG_TARGET          the function attribute of that instruction set
 *   SG_VL              floats per vector; SG_V the vector type, SG_M a lane mask type
 *   SG_MASK(n)         the mask of lanes 0 .. n-1 (n clamped to 0 .. SG_VL)
 *   SG_FULL            the mask of every lane
 *   SG_LOAD, SG_MASKZ_LOAD(m, p), SG_MASK_STORE(p, m, v), SG_FMA(a, b, c), SG_SET1,
 *   SG_ZERO            the vector operations
 *   SG_TRANSPOSE_TILE  a function transposing an SG_VL x SG_VL tile: (src, ss, dst, ds)
 *   SG_SHAPES          the three register blocks {MR, NV, micro_MRxNV, rate}, and the
 *                      matching SG_MICROS() instantiating them with NCNN_MICRO(MR, NV)
 * The wide operand B is read in place; K runs in chunks of KC. The file undefines
 * them all at its end, ready for the next instruction set.
 */
#define SG_CAT_(a, b) a##_##b
#define SG_CAT(a, b) SG_CAT_(a, b)
#define SG_FN(name) SG_CAT(name, SG_SUF)

/*
 * C[r, j] = beta C[r, j] + sum_k A(r, k) B[k, j] for r < mr, j < nr (C not read when
 * beta = 0), with A(r, k) = A[rows[r] + k * acs]; rows[] repeats its last valid row
 * when mr < MR, so reads stay in bounds (those results are not stored). MR x NV
 * accumulators stay in registers (hence the unrolling); `full` (a constant after
 * inlining) drops the lane masks of the edge columns.
 */
#define UNROLL _Pragma("GCC unroll 16")
#define NCNN_MICRO(MR, NV)                                                                    \
SG_TARGET static inline __attribute__((always_inline)) void                                   \
SG_FN(micro_body_##MR##x##NV)(int kc, const float *A, const int64_t *rows, int64_t acs,       \
                       const float *B, int64_t ldb, float *C, int64_t ldc, int mr, int nr,    \
                       float beta, const int full)                                            \
{                                                                                             \
    SG_V c[MR][NV];                                                                           \
    SG_M m[NV];                                                                               \
    const float *ar[MR];                                                                      \
    UNROLL for (int v = 0; v < NV; v++) m[v] = full ? SG_FULL : SG_MASK(nr - SG_VL * v);      \
    UNROLL for (int r = 0; r < MR; r++) {                                                     \
        ar[r] = A + rows[r];                                                                  \
        UNROLL for (int v = 0; v < NV; v++) c[r][v] = SG_ZERO();                              \
    }                                                                                         \
    for (int k = 0; k < kc; k++) {                                                            \
        SG_V b[NV];                                                                           \
        const float *bk = B + k * ldb;                                                        \
        const int64_t ak = k * acs;                                                           \
        UNROLL for (int v = 0; v < NV; v++)                                                   \
            b[v] = full ? SG_LOAD(bk + SG_VL * v) : SG_MASKZ_LOAD(m[v], bk + SG_VL * v);      \
        UNROLL for (int r = 0; r < MR; r++) {                                                 \
            SG_V a = SG_SET1(ar[r][ak]);                                                      \
            UNROLL for (int v = 0; v < NV; v++) c[r][v] = SG_FMA(a, b[v], c[r][v]);           \
        }                                                                                     \
    }                                                                                         \
    UNROLL for (int r = 0; r < MR; r++) {                                                     \
        float *cr = C + r * ldc;                                                              \
        if (r >= mr)                                                                          \
            break;                                                                            \
        UNROLL for (int v = 0; v < NV; v++) {                                                 \
            SG_V acc = c[r][v];                                                               \
            if (beta != 0.0f)                                                                 \
                acc = SG_FMA(SG_SET1(beta), SG_MASKZ_LOAD(m[v], cr + SG_VL * v), acc);        \
            SG_MASK_STORE(cr + SG_VL * v, m[v], acc);                                         \
        }                                                                                     \
    }                                                                                         \
}                                                                                             \
SG_TARGET static void SG_FN(micro_##MR##x##NV)(int kc, const float *A, const int64_t *rows,   \
                                          int64_t acs, const float *B, int64_t ldb,           \
                                          float *C, int64_t ldc, int mr, int nr, float beta)  \
{                                                                                             \
    if (nr == SG_VL * NV)                                                                     \
        SG_FN(micro_body_##MR##x##NV)(kc, A, rows, acs, B, ldb, C, ldc, mr, nr, beta, 1);     \
    else                                                                                      \
        SG_FN(micro_body_##MR##x##NV)(kc, A, rows, acs, B, ldb, C, ldc, mr, nr, beta, 0);     \
}

SG_MICROS()

static const micro_shape SG_FN(shapes)[3] = SG_SHAPES;

/* The register block with the least time: multiply-adds including the wasted lanes on
 * the edges of M x N, over the block's rate. */
static micro_shape SG_FN(pick_shape)(int M, int N)
{
    const micro_shape *shapes = SG_FN(shapes);
    micro_shape best = shapes[0];
    double best_work = -1;
    for (int s = 0; s < 3; s++) {
        int mr = shapes[s].mr, nr = SG_VL * shapes[s].nv;
        double work = (double)((M + mr - 1) / mr) * mr * (double)((N + nr - 1) / nr) * nr /
                      shapes[s].rate;
        if (best_work < 0 || work < best_work) {
            best = shapes[s];
            best_work = work;
        }
    }
    return best;
}

/* C = A(kc rows of K) B over one K chunk; A(r, k) = A[r * ars + k * acs]. */
SG_TARGET static void SG_FN(gemm_chunk)(micro_shape s, int M, int N, int kc, const float *A,
                                        int64_t ars, int64_t acs, const float *B, int64_t ldb,
                                        float beta, float *C, int64_t ldc)
{
    const int nr_full = SG_VL * s.nv;
    int64_t rows[MR_MAX];
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

SG_TARGET static void SG_FN(sgemm_nn)(int M, int N, int K, const float *A, int64_t lda,
                                      int trans_a, const float *B, int64_t ldb, float beta,
                                      float *C, int64_t ldc)
{
    const micro_shape s = SG_FN(pick_shape)(M, N);
    const int64_t ars = trans_a ? 1 : lda, acs = trans_a ? lda : 1;
    if (K == 0) {
        scale_rows(M, N, beta, C, ldc);
        return;
    }
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int kc = K - k0 < KC ? K - k0 : KC;
        SG_FN(gemm_chunk)(s, M, N, kc, A + k0 * acs, ars, acs, B + (int64_t)k0 * ldb, ldb,
                          k0 == 0 ? beta : 1.0f, C, ldc);
    }
}

/* The thin operand of a K chunk, transposed: dst[k, j] = Bt[j, k] (N x kc -> kc x N). */
SG_TARGET static void SG_FN(transpose_chunk)(const float *Bt, int64_t ldbt, int N, int kc,
                                             float *dst)
{
    const int Nv = N - N % SG_VL, kcv = kc - kc % SG_VL;
    for (int j = 0; j < Nv; j += SG_VL)
        for (int k = 0; k < kcv; k += SG_VL)
            SG_TRANSPOSE_TILE(Bt + (int64_t)j * ldbt + k, ldbt, dst + (int64_t)k * N + j, N);
    for (int j = 0; j < N; j++) {        /* the edges */
        const float *src = Bt + (int64_t)j * ldbt;
        for (int k = j < Nv ? kcv : 0; k < kc; k++)
            dst[(int64_t)k * N + j] = src[k];
    }
}

SG_TARGET static void SG_FN(sgemm_nt)(int M, int N, int K, const float *A, int64_t lda,
                                      const float *Bt, int64_t ldbt, float beta, float *C,
                                      int64_t ldc, float *scratch)
{
    const micro_shape s = SG_FN(pick_shape)(M, N);
    if (K == 0) {
        scale_rows(M, N, beta, C, ldc);
        return;
    }
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int kc = K - k0 < KC ? K - k0 : KC;
        SG_FN(transpose_chunk)(Bt + k0, ldbt, N, kc, scratch);
        SG_FN(gemm_chunk)(s, M, N, kc, A + k0, lda, 1, scratch, N, k0 == 0 ? beta : 1.0f,
                          C, ldc);
    }
}

#undef NCNN_MICRO
#undef UNROLL
#undef SG_FN
#undef SG_CAT
#undef SG_CAT_
#undef SG_SUF
#undef SG_TARGET
#undef SG_VL
#undef SG_V
#undef SG_M
#undef SG_MASK
#undef SG_FULL
#undef SG_LOAD
#undef SG_MASKZ_LOAD
#undef SG_MASK_STORE
#undef SG_FMA
#undef SG_SET1
#undef SG_ZERO
#undef SG_TRANSPOSE_TILE
#undef SG_MICROS
#undef SG_SHAPES
