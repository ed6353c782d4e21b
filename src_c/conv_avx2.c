/*
 * Conv + ReLU + 2x2 max pool of one float32 instance in one pass with AVX2 + FMA, for
 * stride-1 conv layers whose output channels come in multiples of 8: the conv output
 * S^m is never written, there is no im2col matrix φ and no GEMM packing. For the small
 * fan-ins and planes of image CNNs (25 taps of one channel over 28x28; 3x3 taps over
 * 14x14 and 7x7) the GEMM path spent about as long moving φ and S as multiplying.
 *
 * The 8 lanes of a vector are 8 output channels (the planes are too narrow to fill them
 * with pixels). A block keeps CB <= 3 vectors of channels x the 4 pixels of one pool
 * window in 12 named accumulators; per tap it loads CB weight vectors (w is [W | b]
 * transposed: one row of out_c per tap, the bias row last), broadcasts the 4 input
 * pixels and does 4 CB FMAs, so the FMA units are the bound. Each pixel's sum runs
 * bias first, then taps in the order (channel, kernel row, kernel column): one fixed
 * order whatever the instance's place in the batch. Every read is inside the padded
 * planes.
 *
 * Two epilogues run on the accumulators: the pool (forward pass: value and argmax as
 * ncnn_maxpool computes them from S), and the gather at a given argmax (R-operator and
 * stored-Jacobian products: R{S}[am], masked by Z > 0 when asked).
 */
#include <math.h>

#include "kernels.h"
#include "simd.h"

#ifdef NCNN_HAVE_AVX2

#define NCNN_INLINE inline __attribute__((always_inline))

static int has_avx2 = -1;

int ncnn_conv_pool2_avx2_on(void)
{
    if (has_avx2 < 0)
        has_avx2 = ncnn_cpu_has_avx2();
    return has_avx2;
}

/* The 8 lanes of v to dst[0], dst[ds], ... (one output channel per lane). */
NCNN_TARGET_AVX2 static NCNN_INLINE void scatter8(__m256 v, float *dst, int64_t ds)
{
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int l = 0; l < 8; ++l)
        dst[l * ds] = t[l];
}

/* src[0], src[ds], ... as the 8 lanes of a vector. */
NCNN_TARGET_AVX2 static NCNN_INLINE __m256 gather8(const float *src, int64_t ds)
{
    float t[8];
    for (int l = 0; l < 8; ++l)
        t[l] = src[l * ds];
    return _mm256_loadu_ps(t);
}

/* Max pool of the pixels p0..p3 as ncnn_maxpool does it: first maximum in pixel order,
 * NaN if any pixel is NaN, ReLU as max(m, 0); argmax offsets i00 + {0, 1, W, W + 1}. */
NCNN_TARGET_AVX2 static NCNN_INLINE void
pool4(__m256 p0, __m256 p1, __m256 p2, __m256 p3, int i00, int W, int relu, float *z,
      ncnn_index *a, int64_t zs)
{
    const __m256 p[4] = {p0, p1, p2, p3};
    const int off[4] = {0, 1, W, W + 1};
    __m256 m = p0;
    __m256i best = _mm256_set1_epi32(i00);
    __m256 nan = _mm256_cmp_ps(p1, p0, _CMP_UNORD_Q);
    for (int q = 1; q < 4; ++q) {
        if (q > 1)
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(p[q], p[q], _CMP_UNORD_Q));
        const __m256 gt = _mm256_cmp_ps(p[q], m, _CMP_GT_OQ);
        m = _mm256_blendv_ps(m, p[q], gt);
        best = _mm256_blendv_epi8(best, _mm256_set1_epi32(i00 + off[q]), _mm256_castps_si256(gt));
    }
    if (relu)
        m = _mm256_and_ps(m, _mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_GT_OQ));
    m = _mm256_blendv_ps(m, _mm256_set1_ps(NAN), nan);
    scatter8(m, z, zs);
    scatter8(_mm256_castsi256_ps(best), (float *)a, zs);
}

/* z = p[am - i00] (am one of i00 + {0, 1, W, W + 1}, as the caller checked), times
 * [mask > 0] when mask is given, as ncnn_pool_gather does it. */
NCNN_TARGET_AVX2 static NCNN_INLINE void
gather4(__m256 p0, __m256 p1, __m256 p2, __m256 p3, int i00, int W, const ncnn_index *a,
        const float *mask, float *z, int64_t zs)
{
    const __m256i am = _mm256_castps_si256(gather8((const float *)a, zs));
    __m256 r = p0;
    r = _mm256_blendv_ps(r, p1, _mm256_castsi256_ps(_mm256_cmpeq_epi32(am, _mm256_set1_epi32(i00 + 1))));
    r = _mm256_blendv_ps(r, p2, _mm256_castsi256_ps(_mm256_cmpeq_epi32(am, _mm256_set1_epi32(i00 + W))));
    r = _mm256_blendv_ps(r, p3, _mm256_castsi256_ps(_mm256_cmpeq_epi32(am, _mm256_set1_epi32(i00 + W + 1))));
    if (mask)
        r = _mm256_and_ps(r, _mm256_cmp_ps(gather8(mask, zs), _mm256_setzero_ps(), _CMP_GT_OQ));
    scatter8(r, z, zs);
}

/* Adds Σ_taps w[tap][8v ..] x[tap at pixel q] to the accumulators a{v}{q} of the window
 * whose top-left pixel x points to (w: K rows of ldw; the taps run over C channels
 * xcs apart, k x k, rows Wp apart). */
#define NCNN_WINDOW_TAPS(x, w, C)                                                       \
    for (int ci = 0; ci < (C); ++ci)                                                    \
        for (int ky = 0; ky < k; ++ky) {                                                \
            const float *r0 = (x) + ci * xcs + (int64_t)ky * Wp, *r1 = r0 + Wp;         \
            const float *wt = (w) + ((int64_t)ci * k * k + (int64_t)ky * k) * ldw;      \
            for (int kx = 0; kx < k; ++kx, wt += ldw) {                                 \
                const __m256 w0 = _mm256_loadu_ps(wt);                                  \
                const __m256 w1 = CB > 1 ? _mm256_loadu_ps(wt + 8) : zero;              \
                const __m256 w2 = CB > 2 ? _mm256_loadu_ps(wt + 16) : zero;             \
                NCNN_FMA_PIXEL(0, r0 + kx);                                             \
                NCNN_FMA_PIXEL(1, r0 + kx + 1);                                         \
                NCNN_FMA_PIXEL(2, r1 + kx);                                             \
                NCNN_FMA_PIXEL(3, r1 + kx + 1);                                         \
            }                                                                           \
        }
#define NCNN_FMA_PIXEL(q, src)                                                          \
    do {                                                                                \
        const __m256 b = _mm256_broadcast_ss(src);                                      \
        a0##q = _mm256_fmadd_ps(w0, b, a0##q);                                          \
        if (CB > 1)                                                                     \
            a1##q = _mm256_fmadd_ps(w1, b, a1##q);                                      \
        if (CB > 2)                                                                     \
            a2##q = _mm256_fmadd_ps(w2, b, a2##q);                                      \
    } while (0)

/* One pool window (output (yo, xo)) of channels 8 v0 .. 8 (v0 + CB) - 1: the 4 pixels of
 * [W | b][φ(x); 1ᵀ] (+ [W2 | 0][φ(x2); 0] when x2 is given), then the pool (am == NULL
 * on entry: writes z, a) or the gather at a (with mask). Named accumulators: GCC kept an
 * array of them in memory. */
NCNN_TARGET_AVX2 static NCNN_INLINE void
window(const int CB, const int GATHER, const float *x, const float *x2, int64_t xcs, int Wp,
       int C, int k, const float *w, const float *w2, int ldw, int yo, int xo, int out_w,
       float *z, ncnn_index *a, const float *mask, int64_t zs, int relu)
{
    const __m256 zero = _mm256_setzero_ps();
    const float *bias = w + (int64_t)C * k * k * ldw;
    const int64_t corner = (int64_t)2 * yo * Wp + 2 * xo, o = (int64_t)yo * out_w + xo;
    const int W = 2 * out_w, i00 = 2 * yo * W + 2 * xo;
    __m256 a00, a01, a02, a03, a10 = zero, a11 = zero, a12 = zero, a13 = zero;
    __m256 a20 = zero, a21 = zero, a22 = zero, a23 = zero;
    a00 = a01 = a02 = a03 = _mm256_loadu_ps(bias);
    if (CB > 1)
        a10 = a11 = a12 = a13 = _mm256_loadu_ps(bias + 8);
    if (CB > 2)
        a20 = a21 = a22 = a23 = _mm256_loadu_ps(bias + 16);
    NCNN_WINDOW_TAPS(x + corner, w, C)
    if (x2) {
        NCNN_WINDOW_TAPS(x2 + corner, w2, C)
    }
    if (GATHER) {
        gather4(a00, a01, a02, a03, i00, W, a + o, mask ? mask + o : 0, z + o, zs);
        if (CB > 1)
            gather4(a10, a11, a12, a13, i00, W, a + 8 * zs + o, mask ? mask + 8 * zs + o : 0,
                    z + 8 * zs + o, zs);
        if (CB > 2)
            gather4(a20, a21, a22, a23, i00, W, a + 16 * zs + o, mask ? mask + 16 * zs + o : 0,
                    z + 16 * zs + o, zs);
    } else {
        pool4(a00, a01, a02, a03, i00, W, relu, z + o, a + o, zs);
        if (CB > 1)
            pool4(a10, a11, a12, a13, i00, W, relu, z + 8 * zs + o, a + 8 * zs + o, zs);
        if (CB > 2)
            pool4(a20, a21, a22, a23, i00, W, relu, z + 16 * zs + o, a + 16 * zs + o, zs);
    }
}
#undef NCNN_FMA_PIXEL
#undef NCNN_WINDOW_TAPS

#define NCNN_BLOCK(CB, GATHER, NAME)                                                          \
    NCNN_TARGET_AVX2 static void NAME(const float *x, const float *x2, int64_t xcs, int Wp,   \
                                      int C, int k, const float *w, const float *w2, int ldw, \
                                      float *z, ncnn_index *a, const float *mask, int64_t zs, \
                                      int out_h, int out_w, int relu)                         \
    {                                                                                         \
        for (int yo = 0; yo < out_h; ++yo)                                                    \
            for (int xo = 0; xo < out_w; ++xo)                                                \
                window(CB, GATHER, x, x2, xcs, Wp, C, k, w, w2, ldw, yo, xo, out_w, z, a,     \
                       mask, zs, relu);                                                       \
    }
NCNN_BLOCK(1, 0, pool_1)
NCNN_BLOCK(2, 0, pool_2)
NCNN_BLOCK(3, 0, pool_3)
NCNN_BLOCK(1, 1, gather_1)
NCNN_BLOCK(2, 1, gather_2)
NCNN_BLOCK(3, 1, gather_3)
#undef NCNN_BLOCK

typedef void (*block_fn)(const float *, const float *, int64_t, int, int, int, const float *,
                         const float *, int, float *, ncnn_index *, const float *, int64_t,
                         int, int, int);

/* Every channel block: 3 vectors at a time, but 2 + 2 rather than 3 + 1. */
static void blocks(const block_fn fn[3], const float *x, const float *x2, int64_t xcs, int Wp,
                   int C, int k, const float *w, const float *w2, int out_c, float *z,
                   ncnn_index *a, const float *mask, int64_t zs, int out_h, int out_w, int relu)
{
    const int V = out_c / 8;
    for (int v = 0; v < V;) {
        const int cb = V - v >= 3 && V - v != 4 ? 3 : (V - v >= 2 ? 2 : 1);
        const int64_t c = (int64_t)8 * v;
        fn[cb - 1](x, x2, xcs, Wp, C, k, w + c, w2 ? w2 + c : 0, out_c, z + c * zs,
                   a + c * zs, mask ? mask + c * zs : 0, zs, out_h, out_w, relu);
        v += cb;
    }
}

void ncnn_conv_pool2_avx2_f32(const float *xp, int64_t xcs, int C, int Wp, int k,
                              const float *wt, int out_c, float *z, ncnn_index *am,
                              int64_t zs, int out_h, int out_w, int relu)
{
    static const block_fn fn[3] = {pool_1, pool_2, pool_3};
    blocks(fn, xp, 0, xcs, Wp, C, k, wt, 0, out_c, z, am, 0, zs, out_h, out_w, relu);
}

void ncnn_conv_gather2_avx2_f32(const float *xp, const float *xp2, int64_t xcs, int C,
                                int Wp, int k, const float *wt, const float *wt2, int out_c,
                                const ncnn_index *am, const float *mask, float *z,
                                int64_t zs, int out_h, int out_w)
{
    static const block_fn fn[3] = {gather_1, gather_2, gather_3};
    blocks(fn, xp, xp2, xcs, Wp, C, k, wt, wt2, out_c, z, (ncnn_index *)am, mask, zs, out_h,
           out_w, 0);
}

#else

int ncnn_conv_pool2_avx2_on(void)
{
    return 0;
}

/* never called: ncnn_conv_pool2_avx2_on() says no */
void ncnn_conv_pool2_avx2_f32(const float *xp, int64_t xcs, int C, int Wp, int k,
                              const float *wt, int out_c, float *z, ncnn_index *am,
                              int64_t zs, int out_h, int out_w, int relu)
{
    (void)xp; (void)xcs; (void)C; (void)Wp; (void)k; (void)wt; (void)out_c; (void)z;
    (void)am; (void)zs; (void)out_h; (void)out_w; (void)relu;
}

void ncnn_conv_gather2_avx2_f32(const float *xp, const float *xp2, int64_t xcs, int C,
                                int Wp, int k, const float *wt, const float *wt2, int out_c,
                                const ncnn_index *am, const float *mask, float *z,
                                int64_t zs, int out_h, int out_w)
{
    (void)xp; (void)xp2; (void)xcs; (void)C; (void)Wp; (void)k; (void)wt; (void)wt2;
    (void)out_c; (void)am; (void)mask; (void)z; (void)zs; (void)out_h; (void)out_w;
}

#endif
