/*
 * Conv + ReLU + 2x2 max pool of one float32 instance in one pass with AVX2 + FMA, for
 * stride-1 conv layers whose output channels come in multiples of 8: the conv output
 * S^m is never written, there is no im2col matrix φ and no GEMM packing. For the small
 * fan-ins and planes of image CNNs (25 taps of one channel over 28x28; 3x3 taps over
 * 14x14 and 7x7) the GEMM path spent about as long moving φ and S as multiplying.
 *
 * The 8 lanes of a vector are 8 output channels (the planes are too narrow to fill them
 * with pixels), except in layers with few taps and rows of 8 or more pool windows (the
 * first layer of image CNNs), where they are 8 neighbouring windows (see "lanes = 8
 * neighbouring pool windows" below). A block keeps CB <= 3 vectors of channels x the 4 pixels of one pool
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
 *
 * The backward pass of such a layer (input delta and weight gradient, for input channels
 * in multiples of 8) starts from the pooled deltas and visits only the nonzero entries of
 * ∂S^m, a quarter or fewer of its pixels (see ncnn_conv_delta / ncnn_conv_wgrad below).
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

/* The same for 8 ints. */
NCNN_TARGET_AVX2 static NCNN_INLINE void scatter8i(__m256i v, ncnn_index *dst, int64_t ds)
{
    ncnn_index t[8];
    _mm256_storeu_si256((__m256i *)t, v);
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
 * NaN if any pixel is NaN, ReLU as max(m, 0); argmax offsets i00 + {0, 1, W, W + 1} (i00
 * per lane). */
NCNN_TARGET_AVX2 static NCNN_INLINE __m256
pool4v(__m256 p0, __m256 p1, __m256 p2, __m256 p3, __m256i i00, int W, int relu, __m256i *am)
{
    const __m256 p[4] = {p0, p1, p2, p3};
    const int off[4] = {0, 1, W, W + 1};
    __m256 m = p0;
    __m256i best = i00;
    __m256 nan = _mm256_cmp_ps(p1, p0, _CMP_UNORD_Q);
    for (int q = 1; q < 4; ++q) {
        if (q > 1)
            nan = _mm256_or_ps(nan, _mm256_cmp_ps(p[q], p[q], _CMP_UNORD_Q));
        const __m256 gt = _mm256_cmp_ps(p[q], m, _CMP_GT_OQ);
        m = _mm256_blendv_ps(m, p[q], gt);
        best = _mm256_blendv_epi8(best, _mm256_add_epi32(i00, _mm256_set1_epi32(off[q])),
                                  _mm256_castps_si256(gt));
    }
    if (relu)
        m = _mm256_and_ps(m, _mm256_cmp_ps(m, _mm256_setzero_ps(), _CMP_GT_OQ));
    *am = best;
    return _mm256_blendv_ps(m, _mm256_set1_ps(NAN), nan);
}

/* The same for one window, lanes = 8 channels zs apart in z and a. */
NCNN_TARGET_AVX2 static NCNN_INLINE void
pool4(__m256 p0, __m256 p1, __m256 p2, __m256 p3, int i00, int W, int relu, float *z,
      ncnn_index *a, int64_t zs)
{
    __m256i best;
    scatter8(pool4v(p0, p1, p2, p3, _mm256_set1_epi32(i00), W, relu, &best), z, zs);
    scatter8i(best, a, zs);
}

/* p[am - i00] (am one of i00 + {0, 1, W, W + 1}, as the caller checked; i00 per lane),
 * zero where mask (when given) is not > 0, as ncnn_pool_gather does it. */
NCNN_TARGET_AVX2 static NCNN_INLINE __m256
gather4v(__m256 p0, __m256 p1, __m256 p2, __m256 p3, __m256i i00, int W, __m256i am,
         const __m256 *mask)
{
    const __m256i d = _mm256_sub_epi32(am, i00);
    __m256 r = p0;
    r = _mm256_blendv_ps(r, p1, _mm256_castsi256_ps(_mm256_cmpeq_epi32(d, _mm256_set1_epi32(1))));
    r = _mm256_blendv_ps(r, p2, _mm256_castsi256_ps(_mm256_cmpeq_epi32(d, _mm256_set1_epi32(W))));
    r = _mm256_blendv_ps(r, p3, _mm256_castsi256_ps(_mm256_cmpeq_epi32(d, _mm256_set1_epi32(W + 1))));
    if (mask)
        r = _mm256_and_ps(r, _mm256_cmp_ps(*mask, _mm256_setzero_ps(), _CMP_GT_OQ));
    return r;
}

/* The same for one window, lanes = 8 channels zs apart in a, mask and z. */
NCNN_TARGET_AVX2 static NCNN_INLINE void
gather4(__m256 p0, __m256 p1, __m256 p2, __m256 p3, int i00, int W, const ncnn_index *a,
        const float *mask, float *z, int64_t zs)
{
    ncnn_index t[8];
    for (int l = 0; l < 8; ++l)
        t[l] = a[l * zs];
    const __m256i am = _mm256_loadu_si256((const __m256i *)t);
    const __m256 m = mask ? gather8(mask, zs) : _mm256_setzero_ps();
    scatter8(gather4v(p0, p1, p2, p3, _mm256_set1_epi32(i00), W, am, mask ? &m : 0), z, zs);
}

/* The 12 accumulators a{c}{q} of CB blocks x 4 pixels, each block's 4 starting at its
 * bias b{c} (zero beyond CB). */
#define NCNN_ACCUMULATORS(b0, b1, b2)                                                   \
    __m256 a00, a01, a02, a03, a10 = zero, a11 = zero, a12 = zero, a13 = zero;          \
    __m256 a20 = zero, a21 = zero, a22 = zero, a23 = zero;                              \
    a00 = a01 = a02 = a03 = (b0);                                                       \
    if (CB > 1)                                                                         \
        a10 = a11 = a12 = a13 = (b1);                                                   \
    if (CB > 2)                                                                         \
        a20 = a21 = a22 = a23 = (b2)

/* a{c}{q} += w{c} x for the CB weight vectors w{c} and the input vector x of pixel q */
#define NCNN_FMA_PIXEL(q, x)                                                            \
    do {                                                                                \
        const __m256 x_ = (x);                                                          \
        a0##q = _mm256_fmadd_ps(w0, x_, a0##q);                                         \
        if (CB > 1)                                                                     \
            a1##q = _mm256_fmadd_ps(w1, x_, a1##q);                                     \
        if (CB > 2)                                                                     \
            a2##q = _mm256_fmadd_ps(w2, x_, a2##q);                                     \
    } while (0)

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
                NCNN_FMA_PIXEL(0, _mm256_broadcast_ss(r0 + kx));                        \
                NCNN_FMA_PIXEL(1, _mm256_broadcast_ss(r0 + kx + 1));                    \
                NCNN_FMA_PIXEL(2, _mm256_broadcast_ss(r1 + kx));                        \
                NCNN_FMA_PIXEL(3, _mm256_broadcast_ss(r1 + kx + 1));                    \
            }                                                                           \
        }

/* One pool window (output (yo, xo)) of channels 8 v0 .. 8 (v0 + CB) - 1: the 4 pixels of
 * [W | b][φ(x); 1ᵀ] (+ [W2 | 0][φ(x2); 0] when x2 is given), then the pool (GATHER = 0:
 * writes z and the argmax a) or the gather at the argmax a (GATHER = 1, with mask). Named
 * accumulators: GCC kept an array of them in memory. */
NCNN_TARGET_AVX2 static NCNN_INLINE void
window(const int CB, const int GATHER, const float *x, const float *x2, int64_t xcs, int Wp,
       int C, int k, const float *w, const float *w2, int ldw, int yo, int xo, int out_w,
       float *z, ncnn_index *a, const float *mask, int64_t zs, int relu)
{
    const __m256 zero = _mm256_setzero_ps();
    const float *bias = w + (int64_t)C * k * k * ldw;
    const int64_t corner = (int64_t)2 * yo * Wp + 2 * xo, o = (int64_t)yo * out_w + xo;
    const int W = 2 * out_w, i00 = 2 * yo * W + 2 * xo;
    NCNN_ACCUMULATORS(_mm256_loadu_ps(bias), _mm256_loadu_ps(bias + 8), _mm256_loadu_ps(bias + 16));
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
/* DEF(CB, GATHER, name) for CB = 1, 2, 3 channel blocks, pooling and gathering */
#define NCNN_VARIANTS(DEF, pool, gather)                                                 \
    DEF(1, 0, pool##_1) DEF(2, 0, pool##_2) DEF(3, 0, pool##_3)                          \
    DEF(1, 1, gather##_1) DEF(2, 1, gather##_2) DEF(3, 1, gather##_3)
NCNN_VARIANTS(NCNN_BLOCK, pool, gather)
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

/* ---- lanes = 8 neighbouring pool windows, for layers with few taps ----
 *
 * With 25 taps of one input channel (the first layer of image CNNs) a window's epilogue
 * above (pool, then 16 strided stores per 8 channels) took as long as its taps. Here the 8
 * lanes are 8 neighbouring windows of one row of one channel: the input is copied into
 * k + 1 planes of every other column (plane t holds columns t, t + 2, ...), so that each of
 * a window's 4 pixels is one contiguous load per tap, and pool and stores are vector
 * operations. A block keeps CB <= 3 channels x 4 pixels in 12 accumulators; per tap it
 * broadcasts CB weights and loads 4 input vectors, one at a time (12 + 3 + 1 registers).
 * Each pixel's sum runs in the order of the kernel above (bias, then the taps by channel,
 * kernel row, kernel column), so the results are the same bit for bit. A row of fewer than
 * 16 windows ends with a vector that overlaps the one before (same values written twice). */

/* floats of the column planes on the stack (the paper's first layer needs 2,688) */
#define NCNN_SPLIT_MAX 8192

static int window_lanes = 1;

int ncnn_conv_window_lanes(int on)
{
    const int previous = window_lanes;
    if (on >= 0)
        window_lanes = on != 0;
    return previous;
}

/* Floats the column planes of C padded planes take for Hr rows (0 when lanes of windows do
 * not apply: rows of fewer than 8 windows, or taps enough to hide the channel lanes'
 * epilogue). */
static int64_t split_size(int C, int k, int Hr, int out_w)
{
    if (!window_lanes || out_w < 8 || (int64_t)C * k * k >= 64)
        return 0;
    return (int64_t)C * (k + 1) * Hr * out_w;
}

/* The column planes' floats per input for a layer of these sizes, or 0 when the window
 * lanes do not apply or the planes (of one or two inputs) do not fit the stack buffer. */
static int64_t window_split(int C, int k, int out_h, int out_w, int two_inputs)
{
    const int64_t size = split_size(C, k, 2 * out_h + k - 1, out_w);
    return size * (two_inputs ? 2 : 1) <= NCNN_SPLIT_MAX ? size : 0;
}

int ncnn_conv_window_lanes_apply(int C, int k, int out_h, int out_w, int two_inputs)
{
    return window_split(C, k, out_h, out_w, two_inputs) > 0;
}

/* Plane ci's columns 2j + t (j < out_w, t <= k) to pl[((ci (k + 1) + t) Hr + r) out_w + j]. */
static void split_columns(const float *x, int64_t xcs, int C, int Hr, int Wp, int k, int out_w,
                          float *pl)
{
    for (int ci = 0; ci < C; ++ci)
        for (int t = 0; t <= k; ++t)
            for (int r = 0; r < Hr; ++r) {
                const float *src = x + ci * xcs + (int64_t)r * Wp + t;
                float *dst = pl + (((int64_t)ci * (k + 1) + t) * Hr + r) * out_w;
                for (int j = 0; j < out_w; ++j)
                    dst[j] = src[2 * j];
            }
}

/* Adds Σ_taps w[tap][c] x[tap at pixel q] to a{c}{q} for the 8 windows from column j0 of
 * window row yo (w: rows of ldw per tap; pl: column planes, ps floats apart). */
#define NCNN_ROW_TAPS(pl, w)                                                              \
    for (int ci = 0; ci < C; ++ci)                                                        \
        for (int ky = 0; ky < k; ++ky) {                                                  \
            const float *wt = (w) + ((int64_t)ci * k * k + (int64_t)ky * k) * ldw;        \
            /* pixel (a, b) of tap (ky, kx): plane b + kx, row 2 yo + a + ky */           \
            const float *e = (pl) + (((int64_t)ci * (k + 1)) * Hr + 2 * yo + ky) * out_w + j0; \
            for (int kx = 0; kx < k; ++kx, wt += ldw, e += ps) {                          \
                const __m256 w0 = _mm256_broadcast_ss(wt);                                \
                const __m256 w1 = CB > 1 ? _mm256_broadcast_ss(wt + 1) : zero;            \
                const __m256 w2 = CB > 2 ? _mm256_broadcast_ss(wt + 2) : zero;            \
                NCNN_FMA_PIXEL(0, _mm256_loadu_ps(e));                                    \
                NCNN_FMA_PIXEL(1, _mm256_loadu_ps(e + ps));                               \
                NCNN_FMA_PIXEL(2, _mm256_loadu_ps(e + out_w));                            \
                NCNN_FMA_PIXEL(3, _mm256_loadu_ps(e + ps + out_w));                       \
            }                                                                             \
        }
/* channel c's epilogue: the pool (GATHER = 0) or the gather at the argmax (GATHER = 1) */
#define NCNN_ROW_OUT(c)                                                                   \
    do {                                                                                  \
        const int64_t o_ = (int64_t)(c) * zs + (int64_t)yo * out_w + j0;                  \
        if (GATHER) {                                                                     \
            const __m256i am_ = _mm256_loadu_si256((const __m256i *)(a + o_));           \
            const __m256 m_ = mask ? _mm256_loadu_ps(mask + o_) : zero;                   \
            _mm256_storeu_ps(z + o_, gather4v(a##c##0, a##c##1, a##c##2, a##c##3, i00, W, \
                                              am_, mask ? &m_ : 0));                      \
        } else {                                                                          \
            __m256i best_;                                                                \
            _mm256_storeu_ps(z + o_, pool4v(a##c##0, a##c##1, a##c##2, a##c##3, i00, W,  \
                                            relu, &best_));                               \
            _mm256_storeu_si256((__m256i *)(a + o_), best_);                              \
        }                                                                                 \
    } while (0)

/* Windows (yo, j0 .. j0 + 7) of channels c0 .. c0 + CB - 1 (w, z, a, mask offset to c0). */
NCNN_TARGET_AVX2 static NCNN_INLINE void
row_windows(const int CB, const int GATHER, const float *pl, const float *pl2, int Hr, int C,
            int k, const float *w, const float *w2, int ldw, int yo, int j0, int out_w, float *z,
            ncnn_index *a, const float *mask, int64_t zs, int relu)
{
    const __m256 zero = _mm256_setzero_ps();
    const int64_t ps = (int64_t)Hr * out_w;
    const float *bias = w + (int64_t)C * k * k * ldw;
    const int W = 2 * out_w;
    const __m256i i00 = _mm256_add_epi32(_mm256_set1_epi32(2 * yo * W + 2 * j0),
                                         _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
    NCNN_ACCUMULATORS(_mm256_broadcast_ss(bias), _mm256_broadcast_ss(bias + 1),
                      _mm256_broadcast_ss(bias + 2));
    NCNN_ROW_TAPS(pl, w)
    if (pl2) {
        NCNN_ROW_TAPS(pl2, w2)
    }
    NCNN_ROW_OUT(0);
    if (CB > 1)
        NCNN_ROW_OUT(1);
    if (CB > 2)
        NCNN_ROW_OUT(2);
}
#undef NCNN_ROW_OUT
#undef NCNN_ROW_TAPS

#define NCNN_ROW_BLOCK(CB, GATHER, NAME)                                                      \
    NCNN_TARGET_AVX2 static void NAME(const float *pl, const float *pl2, int Hr, int C,       \
                                      int k, const float *w, const float *w2, int ldw,        \
                                      float *z, ncnn_index *a, const float *mask, int64_t zs, \
                                      int out_h, int out_w, int relu)                         \
    {                                                                                         \
        for (int yo = 0; yo < out_h; ++yo)                                                    \
            for (int j = 0; j < out_w; j += 8)                                                \
                row_windows(CB, GATHER, pl, pl2, Hr, C, k, w, w2, ldw, yo,                    \
                            j + 8 <= out_w ? j : out_w - 8, out_w, z, a, mask, zs, relu);     \
    }
NCNN_VARIANTS(NCNN_ROW_BLOCK, row_pool, row_gather)
#undef NCNN_ROW_BLOCK
#undef NCNN_VARIANTS

typedef void (*row_fn)(const float *, const float *, int, int, int, const float *,
                       const float *, int, float *, ncnn_index *, const float *, int64_t, int,
                       int, int);

/* Every block of 3 channels (2 + 2 rather than 3 + 1) with lanes of windows, when they
 * apply (split_size) and the split planes fit the stack buffer; returns whether they ran.
 * The split planes hold the rows the windows read, 2 out_h + k - 1. */
NCNN_TARGET_AVX2 static int row_blocks(const row_fn fn[3], const float *x, const float *x2,
                                       int64_t xcs, int C, int Wp, int k, const float *w,
                                       const float *w2, int out_c, float *z, ncnn_index *a,
                                       const float *mask, int64_t zs, int out_h, int out_w,
                                       int relu)
{
    const int Hr = 2 * out_h + k - 1;
    const int64_t size = window_split(C, k, out_h, out_w, x2 != 0);
    if (size == 0)
        return 0;
    float pl[NCNN_SPLIT_MAX];
    split_columns(x, xcs, C, Hr, Wp, k, out_w, pl);
    if (x2)
        split_columns(x2, xcs, C, Hr, Wp, k, out_w, pl + size);
    for (int c = 0; c < out_c;) {
        const int cb = out_c - c >= 3 && out_c - c != 4 ? 3 : (out_c - c >= 2 ? 2 : 1);
        fn[cb - 1](pl, x2 ? pl + size : 0, Hr, C, k, w + c, w2 ? w2 + c : 0, out_c, z + c * zs,
                   a + c * zs, mask ? mask + c * zs : 0, zs, out_h, out_w, relu);
        c += cb;
    }
    return 1;
}

void ncnn_conv_pool2_avx2_f32(const float *xp, int64_t xcs, int C, int Wp, int k,
                              const float *wt, int out_c, float *z, ncnn_index *am,
                              int64_t zs, int out_h, int out_w, int relu)
{
    static const block_fn fn[3] = {pool_1, pool_2, pool_3};
    static const row_fn rows[3] = {row_pool_1, row_pool_2, row_pool_3};
    if (!row_blocks(rows, xp, 0, xcs, C, Wp, k, wt, 0, out_c, z, am, 0, zs, out_h, out_w, relu))
        blocks(fn, xp, 0, xcs, Wp, C, k, wt, 0, out_c, z, am, 0, zs, out_h, out_w, relu);
}

void ncnn_conv_gather2_avx2_f32(const float *xp, const float *xp2, int64_t xcs, int C,
                                int Wp, int k, const float *wt, const float *wt2, int out_c,
                                const ncnn_index *am, const float *mask, float *z,
                                int64_t zs, int out_h, int out_w)
{
    static const block_fn fn[3] = {gather_1, gather_2, gather_3};
    static const row_fn rows[3] = {row_gather_1, row_gather_2, row_gather_3};
    if (!row_blocks(rows, xp, xp2, xcs, C, Wp, k, wt, wt2, out_c, z, (ncnn_index *)am, mask, zs,
                    out_h, out_w, 0))
        blocks(fn, xp, xp2, xcs, Wp, C, k, wt, wt2, out_c, z, (ncnn_index *)am, mask, zs, out_h,
               out_w, 0);
}


/* ---- Winograd F(2x2, 3x3): one 2x2 output tile per pool window ----
 *
 * For 3x3 stride-1 layers a pool window's 4 pixels are one Winograd tile: in the transformed
 * domain the 36 multiply-adds per input channel and output channel become 16 (Lavin and
 * Gray, "Fast algorithms for convolutional neural networks", CVPR 2016). Per chunk of up to
 * NCNN_WINO_TILES windows: the 4x4 input patches are transformed (V = Bᵀ d B) for every input
 * channel, then for each of the 16 transformed positions a small GEMM sums over the input
 * channels with the transformed weights U = G g Gᵀ (computed once per pass: lanes = 8 output
 * channels, 3 vectors x 4 windows in registers, as the direct kernel), then the output
 * transform Aᵀ M A gives the 4 pixels, the bias is added and the pool or the gather runs as
 * above. The R-operator's second term (W over R{X}) is a second set of input channels. The
 * sums run in another order than the direct kernel's, so results differ from it by rounding
 * (a few ulps more: the transforms add and subtract up to 4 terms). */

#define NCNN_WINO_TILES 16

int64_t ncnn_wino_scratch(int C2, int out_c, int Hp, int Wp)
{
    return (int64_t)16 * NCNN_WINO_TILES * ((int64_t)C2 + out_c) + (int64_t)C2 * Hp * Wp;
}

/* U[ξν][ci][co] = (G g Gᵀ)[ξ][ν] for g = the 3x3 taps of (co, ci): rows ci 9 + 3 ky + kx of
 * wt (out_c wide) for ci < C, of wt2 for C <= ci < 2 C when wt2 is given. */
void ncnn_wino_weights_f32(const float *wt, const float *wt2, int C, int out_c, float *U)
{
    const int C2 = wt2 ? 2 * C : C;
    for (int ci = 0; ci < C2; ++ci) {
        const float *w = (ci < C ? wt + (int64_t)ci * 9 * out_c : wt2 + (int64_t)(ci - C) * 9 * out_c);
        for (int co = 0; co < out_c; ++co) {
            float g[3][3], t[4][3];
            for (int y = 0; y < 3; ++y)
                for (int x = 0; x < 3; ++x)
                    g[y][x] = w[(int64_t)(3 * y + x) * out_c + co];
            for (int x = 0; x < 3; ++x) {          /* t = G g */
                t[0][x] = g[0][x];
                t[1][x] = 0.5f * (g[0][x] + g[1][x] + g[2][x]);
                t[2][x] = 0.5f * (g[0][x] - g[1][x] + g[2][x]);
                t[3][x] = g[2][x];
            }
            for (int y = 0; y < 4; ++y) {          /* U = t Gᵀ */
                float *u = U + ((int64_t)4 * y * C2 + ci) * out_c + co;
                const int64_t step = (int64_t)C2 * out_c;
                u[0] = t[y][0];
                u[step] = 0.5f * (t[y][0] + t[y][1] + t[y][2]);
                u[2 * step] = 0.5f * (t[y][0] - t[y][1] + t[y][2]);
                u[3 * step] = t[y][2];
            }
        }
    }
}

/* The C planes x (H x W, xs apart), zero-padded by pad to Wp columns, rows 0 .. Hr - 1 of
 * the padded plane, laid out HWC in h (C a multiple of 8). */
NCNN_TARGET_AVX2 static void to_hwc(const float *x, int64_t xs, int C, int H, int W, int pad,
                                    int Hr, int Wp, float *h)
{
    for (int r = 0; r < Hr; ++r)
        for (int c = 0; c < Wp; ++c) {
            float *dst = h + ((int64_t)r * Wp + c) * C;
            const int y = r - pad, xx = c - pad;
            if (y < 0 || y >= H || xx < 0 || xx >= W) {
                for (int ci = 0; ci < C; ci += 8)
                    _mm256_storeu_ps(dst + ci, _mm256_setzero_ps());
                continue;
            }
            const float *src = x + (int64_t)y * W + xx;
            for (int ci = 0; ci < C; ci += 8)
                _mm256_storeu_ps(dst + ci, gather8(src + ci * xs, xs));
        }
}

/* V[ξν][t][c0 + ci] = (Bᵀ d B)[ξ][ν] for the 4x4 patch d of channel ci under window t of the
 * chunk (windows w0 .., n of them; a window's patch starts at padded row 2 yo, column 2 xo),
 * 8 channels at a time from the HWC planes h (C a multiple of 8). */
NCNN_TARGET_AVX2 static void wino_inputs(const float *h, int C, int Wp, int w0, int n,
                                         int out_w, int C2, int c0, float *V)
{
    const int64_t step = (int64_t)NCNN_WINO_TILES * C2, row = (int64_t)Wp * C;
    for (int t = 0; t < n; ++t) {
        const int yo = (w0 + t) / out_w, xo = (w0 + t) % out_w;
        for (int ci = 0; ci < C; ci += 8) {
            const float *d = h + ((int64_t)2 * yo * Wp + 2 * xo) * C + ci;
            __m256 r[4][4];
            for (int j = 0; j < 4; ++j) {          /* r = Bᵀ d */
                const __m256 d0 = _mm256_loadu_ps(d + j * C), d1 = _mm256_loadu_ps(d + row + j * C);
                const __m256 d2 = _mm256_loadu_ps(d + 2 * row + j * C);
                const __m256 d3 = _mm256_loadu_ps(d + 3 * row + j * C);
                r[0][j] = _mm256_sub_ps(d0, d2);
                r[1][j] = _mm256_add_ps(d1, d2);
                r[2][j] = _mm256_sub_ps(d2, d1);
                r[3][j] = _mm256_sub_ps(d1, d3);
            }
            float *v = V + (int64_t)t * C2 + c0 + ci;
            for (int i = 0; i < 4; ++i) {          /* V = r B */
                _mm256_storeu_ps(v + (4 * i + 0) * step, _mm256_sub_ps(r[i][0], r[i][2]));
                _mm256_storeu_ps(v + (4 * i + 1) * step, _mm256_add_ps(r[i][1], r[i][2]));
                _mm256_storeu_ps(v + (4 * i + 2) * step, _mm256_sub_ps(r[i][2], r[i][1]));
                _mm256_storeu_ps(v + (4 * i + 3) * step, _mm256_sub_ps(r[i][1], r[i][3]));
            }
        }
    }
}

/* M[ξν][t][8 v ..] = Σ_ci U[ξν][ci][8 v ..] V[ξν][t][ci] for the CB vectors from channel c and
 * TB windows from t0 (one transformed position; U, V, M offset to it). */
#define NCNN_WINO_GEMM(CB_, TB_)                                                                \
    NCNN_TARGET_AVX2 static void wino_gemm_##CB_##_##TB_(const float *U, const float *V,        \
                                                         float *M, int C2, int out_c, int t0)   \
    {                                                                                           \
        enum { CB = CB_, TB = TB_ };                                                            \
        const __m256 zero = _mm256_setzero_ps();                                                \
        NCNN_ACCUMULATORS(zero, zero, zero);                                                    \
        const float *v = V + (int64_t)t0 * C2;                                                  \
        for (int ci = 0; ci < C2; ++ci, U += out_c, ++v) {                                      \
            const __m256 w0 = _mm256_loadu_ps(U);                                               \
            const __m256 w1 = CB > 1 ? _mm256_loadu_ps(U + 8) : zero;                           \
            const __m256 w2 = CB > 2 ? _mm256_loadu_ps(U + 16) : zero;                          \
            NCNN_FMA_PIXEL(0, _mm256_broadcast_ss(v));                                          \
            if (TB > 1)                                                                         \
                NCNN_FMA_PIXEL(1, _mm256_broadcast_ss(v + C2));                                 \
            if (TB > 2)                                                                         \
                NCNN_FMA_PIXEL(2, _mm256_broadcast_ss(v + 2 * C2));                             \
            if (TB > 3)                                                                         \
                NCNN_FMA_PIXEL(3, _mm256_broadcast_ss(v + 3 * C2));                             \
        }                                                                                       \
        float *m = M + (int64_t)t0 * out_c;                                                     \
        NCNN_WINO_STORE(0);                                                                     \
        if (TB > 1)                                                                             \
            NCNN_WINO_STORE(1);                                                                 \
        if (TB > 2)                                                                             \
            NCNN_WINO_STORE(2);                                                                 \
        if (TB > 3)                                                                             \
            NCNN_WINO_STORE(3);                                                                 \
    }
#define NCNN_WINO_STORE(t)                                                               \
    do {                                                                                 \
        _mm256_storeu_ps(m + (t) * out_c, a0##t);                                        \
        if (CB > 1)                                                                      \
            _mm256_storeu_ps(m + (t) * out_c + 8, a1##t);                                \
        if (CB > 2)                                                                      \
            _mm256_storeu_ps(m + (t) * out_c + 16, a2##t);                               \
    } while (0)
NCNN_WINO_GEMM(1, 1) NCNN_WINO_GEMM(1, 2) NCNN_WINO_GEMM(1, 3) NCNN_WINO_GEMM(1, 4)
NCNN_WINO_GEMM(2, 1) NCNN_WINO_GEMM(2, 2) NCNN_WINO_GEMM(2, 3) NCNN_WINO_GEMM(2, 4)
NCNN_WINO_GEMM(3, 1) NCNN_WINO_GEMM(3, 2) NCNN_WINO_GEMM(3, 3) NCNN_WINO_GEMM(3, 4)
#undef NCNN_WINO_STORE
#undef NCNN_WINO_GEMM

#undef NCNN_FMA_PIXEL
#undef NCNN_ACCUMULATORS

typedef void (*wino_gemm_fn)(const float *, const float *, float *, int, int, int);

NCNN_TARGET_AVX2 void ncnn_conv_pool2_wino_f32(const float *x, const float *x2, int64_t xs,
                                               int C, int H, int W_in, int pad, int Wp,
                                               const float *U, const float *bias, int out_c,
                                               float *z, ncnn_index *am, const float *mask,
                                               int64_t zs, int out_h, int out_w, int relu,
                                               int gather, float *scratch)
{
    static const wino_gemm_fn gemm[3][4] = {
        {wino_gemm_1_1, wino_gemm_1_2, wino_gemm_1_3, wino_gemm_1_4},
        {wino_gemm_2_1, wino_gemm_2_2, wino_gemm_2_3, wino_gemm_2_4},
        {wino_gemm_3_1, wino_gemm_3_2, wino_gemm_3_3, wino_gemm_3_4}};
    const int C2 = x2 ? 2 * C : C, T = out_h * out_w, V8 = out_c / 8, W = 2 * out_w;
    const int Hr = 2 * out_h + 2;   /* the rows the windows' patches read */
    float *V = scratch, *M = scratch + (int64_t)16 * NCNN_WINO_TILES * C2;
    float *h = M + (int64_t)16 * NCNN_WINO_TILES * out_c, *h2 = h + (int64_t)Hr * Wp * C;
    to_hwc(x, xs, C, H, W_in, pad, Hr, Wp, h);
    if (x2)
        to_hwc(x2, xs, C, H, W_in, pad, Hr, Wp, h2);
    for (int w0 = 0; w0 < T; w0 += NCNN_WINO_TILES) {
        const int n = T - w0 < NCNN_WINO_TILES ? T - w0 : NCNN_WINO_TILES;
        wino_inputs(h, C, Wp, w0, n, out_w, C2, 0, V);
        if (x2)
            wino_inputs(h2, C, Wp, w0, n, out_w, C2, C, V);
        for (int q = 0; q < 16; ++q) {
            const float *Uq = U + (int64_t)q * C2 * out_c, *Vq = V + (int64_t)q * NCNN_WINO_TILES * C2;
            float *Mq = M + (int64_t)q * NCNN_WINO_TILES * out_c;
            for (int v = 0; v < V8;) {
                const int cb = V8 - v >= 3 && V8 - v != 4 ? 3 : (V8 - v >= 2 ? 2 : 1);
                for (int t0 = 0; t0 < n; t0 += 4)
                    gemm[cb - 1][(n - t0 < 4 ? n - t0 : 4) - 1](Uq + 8 * v, Vq, Mq + 8 * v, C2,
                                                                 out_c, t0);
                v += cb;
            }
        }
        /* Aᵀ M A per window and vector of channels, then the bias and the epilogue */
        const int64_t step = (int64_t)NCNN_WINO_TILES * out_c;
        for (int t = 0; t < n; ++t) {
            const int yo = (w0 + t) / out_w, xo = (w0 + t) % out_w;
            const int64_t o = (int64_t)yo * out_w + xo;
            const int i00 = 2 * yo * W + 2 * xo;
            for (int v = 0; v < V8; ++v) {
                const float *m = M + (int64_t)t * out_c + 8 * v;
                __m256 s0[4], s1[4];
                for (int j = 0; j < 4; ++j) {      /* s = Aᵀ M: rows 0 + 1 + 2 and 1 - 2 - 3 */
                    const __m256 m0 = _mm256_loadu_ps(m + (0 + j) * step);
                    const __m256 m1 = _mm256_loadu_ps(m + (4 + j) * step);
                    const __m256 m2 = _mm256_loadu_ps(m + (8 + j) * step);
                    const __m256 m3 = _mm256_loadu_ps(m + (12 + j) * step);
                    s0[j] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
                    s1[j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
                }
                const __m256 b = _mm256_loadu_ps(bias + 8 * v);
                const __m256 p0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s0[0], s0[1]), s0[2]), b);
                const __m256 p1 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s0[1], s0[2]), s0[3]), b);
                const __m256 p2 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s1[0], s1[1]), s1[2]), b);
                const __m256 p3 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(s1[1], s1[2]), s1[3]), b);
                const int64_t c = (int64_t)8 * v * zs + o;
                if (gather)
                    gather4(p0, p1, p2, p3, i00, W, am + c, mask ? mask + c : 0, z + c, zs);
                else
                    pool4(p0, p1, p2, p3, i00, W, relu, z + c, am + c, zs);
            }
        }
    }
}

/* ---- the backward pass from pooled deltas, visiting only the nonzero entries ----
 *
 * Behind a 2x2 pool, ∂/∂S^m is zero except at one pixel of each window per channel (and
 * zero where ReLU cut), so P_φᵀ(Wᵀ ∂S) and ∂S φᵀ need a quarter or less of the
 * multiply-adds of the GEMM path. The lanes hold 8 input channels; the sums are kept in
 * registers (up to 4 vectors, a chunk of 32 input channels, at a time) and stored once:
 * read-modify-write of memory per entry ran at a fifth of the FMA rate. */

/* Vectors of the chunk of input channels from c0: up to 4 (32 channels). */
static inline int chunk_vectors(int C, int c0)
{
    return (C - c0) / 8 < 4 ? (C - c0) / 8 : 4;
}

/* Whether the pooled delta (c, o) is an entry of the sparse ∂S^m: mask > 0 (when given)
 * and d != 0 (a NaN d is an entry). */
static inline int is_entry(const float *dz, const float *mask, int64_t j)
{
    return !(mask && !(mask[j] > 0)) && dz[j] != 0;
}

/* The same for K seeds dks apart: an entry where some seed's d != 0. */
static inline int is_entry_k(const float *dz, int64_t dks, int K, const float *mask, int64_t j)
{
    for (int s = 0; s < K; ++s)
        if (is_entry(dz + s * dks, mask, j))
            return 1;
    return 0;
}

/* The entries of K seeds' pooled deltas sorted by pixel (counting sort, stable: by channel
 * within a pixel), in scratch: start[p] .. start[p + 1] are pixel p's, ec[e] W[c]'s offset
 * in wk (c k k C), ed[e K + s] seed s's value; returns ec (ed follows its out_c Po ints). */
static int *sort_entries(const float *dz, int64_t dks, int K, const float *mask,
                         const ncnn_index *am, int64_t zs, int out_c, int Po, int P, int k, int C,
                         float *scratch)
{
    int *start = (int *)scratch, *cur = start + P + 1, *ec = cur + P;
    float *ed = (float *)(ec + (int64_t)out_c * Po);
    for (int p = 0; p <= P; ++p)
        start[p] = 0;
    for (int c = 0; c < out_c; ++c)
        for (int o = 0; o < Po; ++o)
            if (is_entry_k(dz, dks, K, mask, c * zs + o))
                start[am[c * zs + o] + 1]++;
    for (int p = 0; p < P; ++p) {
        start[p + 1] += start[p];
        cur[p] = start[p];
    }
    for (int c = 0; c < out_c; ++c)
        for (int o = 0; o < Po; ++o)
            if (is_entry_k(dz, dks, K, mask, c * zs + o)) {
                const int e = cur[am[c * zs + o]]++;
                ec[e] = c * k * k * C;
                for (int s = 0; s < K; ++s)
                    ed[(int64_t)e * K + s] = dz[s * dks + c * zs + o];
            }
    return ec;
}

/* acc{0..VB-1} += d x the VB vectors at src; acc{j} += other{j} (one sum of two chains). */
#define NCNN_AXPY(VB, acc, d, src)                                                   \
    do {                                                                             \
        const float *s_ = (src);                                                     \
        acc##0 = _mm256_fmadd_ps(d, _mm256_loadu_ps(s_), acc##0);                    \
        if (VB > 1) acc##1 = _mm256_fmadd_ps(d, _mm256_loadu_ps(s_ + 8), acc##1);    \
        if (VB > 2) acc##2 = _mm256_fmadd_ps(d, _mm256_loadu_ps(s_ + 16), acc##2);   \
        if (VB > 3) acc##3 = _mm256_fmadd_ps(d, _mm256_loadu_ps(s_ + 24), acc##3);   \
    } while (0)
/* a += Σ d_e x the VB vectors at base + offs[e] for e in [lo, hi): even entries into a,
 * odd ones into b (two chains, so FMA latency does not bound the loop). */
#define NCNN_ENTRIES(VB, lo, hi, vals, base, offs)                                   \
    do {                                                                             \
        int e_ = (lo);                                                               \
        for (; e_ + 1 < (hi); e_ += 2) {                                             \
            const __m256 d_ = _mm256_broadcast_ss((vals) + e_);                      \
            const __m256 f_ = _mm256_broadcast_ss((vals) + e_ + 1);                  \
            NCNN_AXPY(VB, a, d_, (base) + (offs)[e_]);                               \
            NCNN_AXPY(VB, b, f_, (base) + (offs)[e_ + 1]);                           \
        }                                                                            \
        if (e_ < (hi)) {                                                             \
            const __m256 d_ = _mm256_broadcast_ss((vals) + e_);                      \
            NCNN_AXPY(VB, a, d_, (base) + (offs)[e_]);                               \
        }                                                                            \
    } while (0)
#define NCNN_SUM(acc, other)                                                         \
    do {                                                                             \
        acc##0 = _mm256_add_ps(acc##0, other##0);                                    \
        acc##1 = _mm256_add_ps(acc##1, other##1);                                    \
        acc##2 = _mm256_add_ps(acc##2, other##2);                                    \
        acc##3 = _mm256_add_ps(acc##3, other##3);                                    \
    } while (0)

/* BODY for each tap (ky, kx) of input pixel (y, x) whose conv pixel p lies in the conv
 * plane, with wt = wk + tap C (that tap's row of W laid out (out_c, k, k, C)). */
#define NCNN_FOR_TAPS(...)                                                               \
    for (int ky = 0; ky < k; ++ky) {                                                     \
        const int py = y + pad - ky;                                                     \
        if (py < 0 || py >= conv_h)                                                      \
            continue;                                                                    \
        for (int kx = 0; kx < k; ++kx) {                                                 \
            const int px = x + pad - kx;                                                 \
            if (px < 0 || px >= conv_w)                                                  \
                continue;                                                                \
            const int p = py * conv_w + px;                                              \
            const float *wt = wk + (int64_t)(ky * k + kx) * C;                           \
            __VA_ARGS__                                                                  \
        }                                                                                \
    }

/* dx[ci][y][x] for the 8 VB input channels ci0..: Σ over taps and over the entries at the
 * conv pixel the tap maps (y, x) from, d W[c][tap][ci] (start[p] .. start[p + 1] are the
 * entries at pixel p, sorted by channel; ec holds W[c]'s offset in wk, c k k C). */
#define NCNN_DELTA_CHUNK(VB)                                                                    \
    NCNN_TARGET_AVX2 static void delta_chunk_##VB(const int *start, const int *ec,              \
                                                  const float *ed, const float *wk, int C,      \
                                                  int k, int conv_h, int conv_w, float *dx,     \
                                                  int64_t xs, int H, int W, int pad)            \
    {                                                                                           \
        for (int y = 0; y < H; ++y)                                                             \
            for (int x = 0; x < W; ++x) {                                                       \
                /* two sums per vector (even and odd entries): one chain waited on FMA latency */ \
                __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                    \
                __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;                                      \
                NCNN_FOR_TAPS(NCNN_ENTRIES(VB, start[p], start[p + 1], ed, wt, ec);)            \
                NCNN_SUM(a, b);                                                                 \
                float *t = dx + (int64_t)y * W + x;                                             \
                scatter8(a0, t, xs);                                                            \
                if (VB > 1) scatter8(a1, t + 8 * xs, xs);                                       \
                if (VB > 2) scatter8(a2, t + 16 * xs, xs);                                      \
                if (VB > 3) scatter8(a3, t + 24 * xs, xs);                                      \
            }                                                                                   \
    }
NCNN_DELTA_CHUNK(1)
NCNN_DELTA_CHUNK(2)
NCNN_DELTA_CHUNK(3)
NCNN_DELTA_CHUNK(4)
#undef NCNN_DELTA_CHUNK

int64_t ncnn_conv_sparse_scratch(int P, int out_c, int Po, int Hp, int Wp, int C)
{
    const int64_t delta = 2 * (int64_t)P + 1 + 2 * (int64_t)out_c * Po;
    const int64_t wgrad = (int64_t)Hp * Wp * C + 3 * (int64_t)Po + 1;
    return delta > wgrad ? delta : wgrad;
}

void ncnn_conv_delta_avx2_f32(const float *dz, const float *mask, const ncnn_index *am,
                              int64_t zs, int out_c, int Po, int conv_h, int conv_w,
                              const float *wk, int C, int k, float *scratch, float *dx,
                              int64_t xs, int H, int W, int pad)
{
    const int P = conv_h * conv_w;
    const int *start = (const int *)scratch;
    const int *ec = sort_entries(dz, 0, 1, mask, am, zs, out_c, Po, P, k, C, scratch);
    const float *ed = (const float *)(ec + (int64_t)out_c * Po);
    static void (*const chunk[4])(const int *, const int *, const float *, const float *, int,
                                  int, int, int, float *, int64_t, int, int, int) = {
        delta_chunk_1, delta_chunk_2, delta_chunk_3, delta_chunk_4};
    for (int c0 = 0; c0 < C; c0 += 32)
        chunk[chunk_vectors(C, c0) - 1](start, ec, ed, wk + c0, C, k, conv_h, conv_w,
                                        dx + (int64_t)c0 * xs, xs, H, W, pad);
}

/* ---- the Jacobian build: the input deltas of all K output seeds in one pass ----
 *
 * The stored-Jacobian build propagates K seeds through the same layer; their nonzero
 * entries sit at the same places (the pool's argmax where ReLU passes), so the entries are
 * sorted once and each weight vector loaded serves KB <= 6 seeds: per entry VB weight loads
 * and KB broadcasts feed VB x KB FMAs into independent sums (the one-seed kernel above does
 * 4 FMAs per entry and sorts again for every seed). */

/* a{j}{v} += d[j] x w{v} for the KB seeds j and VB vectors v of one entry. */
#define NCNN_SEED_FMA(j)                                                                 \
    if (KB > j) {                                                                        \
        const __m256 d_ = _mm256_broadcast_ss(d + j);                                    \
        a##j##0 = _mm256_fmadd_ps(w0, d_, a##j##0);                                      \
        if (VB > 1)                                                                      \
            a##j##1 = _mm256_fmadd_ps(w1, d_, a##j##1);                                  \
    }
/* seed j's sums to dx, zero where xmask (when given) is not > 0 */
#define NCNN_SEED_STORE(j)                                                               \
    if (KB > j) {                                                                        \
        float *t_ = dx + (int64_t)j * xks + (int64_t)y * W + x;                          \
        scatter8(xmask ? _mm256_and_ps(a##j##0, m0) : a##j##0, t_, xs);                  \
        if (VB > 1)                                                                      \
            scatter8(xmask ? _mm256_and_ps(a##j##1, m1) : a##j##1, t_ + 8 * xs, xs);     \
    }
#define NCNN_SEEDS_CHUNK(VB_, KB_)                                                              \
    NCNN_TARGET_AVX2 static void seeds_##VB_##_##KB_(const int *start, const int *ec,             \
                                                   const float *ed, int K, const float *wk,     \
                                                   int C, int k, int conv_h, int conv_w,        \
                                                   float *dx, int64_t xks, int64_t xs, int H,   \
                                                   int W, int pad, const float *xmask)          \
    {                                                                                           \
        enum { VB = VB_, KB = KB_ };   /* for the FMA and store macros */                      \
        const __m256 zero = _mm256_setzero_ps();                                                \
        for (int y = 0; y < H; ++y)                                                             \
            for (int x = 0; x < W; ++x) {                                                       \
                __m256 a00 = zero, a01 = zero, a10 = zero, a11 = zero, a20 = zero, a21 = zero;  \
                __m256 a30 = zero, a31 = zero, a40 = zero, a41 = zero, a50 = zero, a51 = zero;  \
                NCNN_FOR_TAPS(                                                                  \
                    for (int e = start[p]; e < start[p + 1]; ++e) {                             \
                        const __m256 w0 = _mm256_loadu_ps(wt + ec[e]);                          \
                        const __m256 w1 = VB > 1 ? _mm256_loadu_ps(wt + ec[e] + 8) : zero;      \
                        const float *d = ed + (int64_t)e * K;                                   \
                        NCNN_SEED_FMA(0) NCNN_SEED_FMA(1) NCNN_SEED_FMA(2)                      \
                        NCNN_SEED_FMA(3) NCNN_SEED_FMA(4) NCNN_SEED_FMA(5)                      \
                    })                                                                          \
                const int64_t o_ = (int64_t)y * W + x;                                          \
                __m256 m0 = zero, m1 = zero;                                                    \
                if (xmask) {                                                                    \
                    m0 = _mm256_cmp_ps(gather8(xmask + o_, xs), zero, _CMP_GT_OQ);              \
                    if (VB > 1)                                                                 \
                        m1 = _mm256_cmp_ps(gather8(xmask + o_ + 8 * xs, xs), zero, _CMP_GT_OQ); \
                }                                                                               \
                NCNN_SEED_STORE(0) NCNN_SEED_STORE(1) NCNN_SEED_STORE(2)                        \
                NCNN_SEED_STORE(3) NCNN_SEED_STORE(4) NCNN_SEED_STORE(5)                        \
            }                                                                                   \
    }
NCNN_SEEDS_CHUNK(1, 1) NCNN_SEEDS_CHUNK(1, 2) NCNN_SEEDS_CHUNK(1, 3)
NCNN_SEEDS_CHUNK(1, 4) NCNN_SEEDS_CHUNK(1, 5) NCNN_SEEDS_CHUNK(1, 6)
NCNN_SEEDS_CHUNK(2, 1) NCNN_SEEDS_CHUNK(2, 2) NCNN_SEEDS_CHUNK(2, 3)
NCNN_SEEDS_CHUNK(2, 4) NCNN_SEEDS_CHUNK(2, 5) NCNN_SEEDS_CHUNK(2, 6)
#undef NCNN_SEEDS_CHUNK
#undef NCNN_FOR_TAPS
#undef NCNN_SEED_STORE
#undef NCNN_SEED_FMA

int64_t ncnn_conv_seeds_scratch(int P, int out_c, int Po, int K)
{
    return 2 * (int64_t)P + 1 + (int64_t)out_c * Po * (1 + (int64_t)K);
}

void ncnn_conv_delta_seeds_avx2_f32(const float *dz, int64_t dks, int K, const ncnn_index *am,
                                    int64_t zs, int out_c, int Po, int conv_h, int conv_w,
                                    const float *wk, int C, int k, float *scratch, float *dx,
                                    int64_t xks, int64_t xs, int H, int W, int pad,
                                    const float *xmask)
{
    typedef void (*seeds_fn)(const int *, const int *, const float *, int, const float *, int,
                             int, int, int, float *, int64_t, int64_t, int, int, int,
                             const float *);
    static const seeds_fn fn[2][6] = {
        {seeds_1_1, seeds_1_2, seeds_1_3, seeds_1_4, seeds_1_5, seeds_1_6},
        {seeds_2_1, seeds_2_2, seeds_2_3, seeds_2_4, seeds_2_5, seeds_2_6}};
    /* the entries: where some seed's d != 0 (NaN counts), with all K seeds' values */
    const int P = conv_h * conv_w;
    const int *start = (const int *)scratch;
    const int *ec = sort_entries(dz, dks, K, 0, am, zs, out_c, Po, P, k, C, scratch);
    const float *ed = (const float *)(ec + (int64_t)out_c * Po);
    const int groups = (K + 5) / 6;
    for (int c0 = 0; c0 < C; c0 += 16) {
        const int vb = C - c0 >= 16 ? 2 : 1;
        for (int g = 0, s0 = 0; g < groups; ++g) {
            const int kb = K / groups + (g < K % groups);
            fn[vb - 1][kb - 1](start, ec, ed + s0, K, wk + c0, C, k, conv_h, conv_w,
                               dx + s0 * xks + (int64_t)c0 * xs, xks, xs, H, W, pad,
                               xmask ? xmask + (int64_t)c0 * xs : 0);
            s0 += kb;
        }
    }
}

/* g[tap][ci] += Σ_e d_e x[off_e + tap][ci] for the VB vectors of input channels from ci0 (g
 * and x already offset to ci0; x is the padded input, HWC; off_e the entry's pixel's offset
 * in it). */
#define NCNN_WGRAD_CHUNK(VB)                                                                    \
    NCNN_TARGET_AVX2 static void wgrad_chunk_##VB(const int64_t *off, const float *ed, int n,   \
                                                  const float *x, int C, int k, int Wp,         \
                                                  float *g)                                     \
    {                                                                                           \
        for (int ky = 0; ky < k; ++ky)                                                          \
            for (int kx = 0; kx < k; ++kx) {                                                    \
                float *t = g + (int64_t)(ky * k + kx) * C;                                      \
                __m256 a0 = _mm256_loadu_ps(t), a1 = a0, a2 = a0, a3 = a0;                     \
                if (VB > 1) a1 = _mm256_loadu_ps(t + 8);                                        \
                if (VB > 2) a2 = _mm256_loadu_ps(t + 16);                                       \
                if (VB > 3) a3 = _mm256_loadu_ps(t + 24);                                       \
                const float *xt = x + ((int64_t)ky * Wp + kx) * C;                              \
                __m256 b0 = _mm256_setzero_ps(), b1 = b0, b2 = b0, b3 = b0;                     \
                NCNN_ENTRIES(VB, 0, n, ed, xt, off);                                            \
                NCNN_SUM(a, b);                                                                 \
                _mm256_storeu_ps(t, a0);                                                        \
                if (VB > 1) _mm256_storeu_ps(t + 8, a1);                                        \
                if (VB > 2) _mm256_storeu_ps(t + 16, a2);                                       \
                if (VB > 3) _mm256_storeu_ps(t + 24, a3);                                       \
            }                                                                                   \
    }
NCNN_WGRAD_CHUNK(1)
NCNN_WGRAD_CHUNK(2)
NCNN_WGRAD_CHUNK(3)
NCNN_WGRAD_CHUNK(4)
#undef NCNN_WGRAD_CHUNK
#undef NCNN_AXPY
#undef NCNN_ENTRIES
#undef NCNN_SUM

void ncnn_conv_wgrad_avx2_f32(const float *dz, const float *mask, const ncnn_index *am,
                              int64_t zs, int out_c, int Po, int conv_w, const float *x,
                              int64_t xs, int C, int H, int W, int pad, int k, int Hp, int Wp,
                              float *scratch, float *gk, float *gb)
{
    /* the input, padded and laid out HWC; then the entries of one channel at a time */
    static void (*const chunk[4])(const int64_t *, const float *, int, const float *, int, int,
                                  int, float *) = {
        wgrad_chunk_1, wgrad_chunk_2, wgrad_chunk_3, wgrad_chunk_4};
    const int64_t plane = (int64_t)Hp * Wp * C, tap = (int64_t)k * k * C;
    float *buf = scratch, *ed = scratch + plane;
    /* rounded up to 8 bytes (the scratch has one float to spare) */
    int64_t *off = (int64_t *)(((uintptr_t)(ed + Po) + 7) & ~(uintptr_t)7);
    to_hwc(x, xs, C, H, W, pad, Hp, Wp, buf);
    for (int c = 0; c < out_c; ++c) {
        int n = 0;
        for (int o = 0; o < Po; ++o)
            if (is_entry(dz, mask, c * zs + o)) {
                const ncnn_index p = am[c * zs + o];
                off[n] = ((int64_t)(p / conv_w) * Wp + p % conv_w) * C;
                ed[n] = dz[c * zs + o];
                gb[c] += ed[n];
                ++n;
            }
        if (n == 0)
            continue;
        for (int c0 = 0; c0 < C; c0 += 32)
            chunk[chunk_vectors(C, c0) - 1](off, ed, n, buf + c0, C, k, Wp, gk + c * tap + c0);
    }
}

#else

int ncnn_conv_pool2_avx2_on(void)
{
    return 0;
}

int ncnn_conv_window_lanes(int on)
{
    (void)on;
    return 0;
}

int ncnn_conv_window_lanes_apply(int C, int k, int out_h, int out_w, int two_inputs)
{
    (void)C; (void)k; (void)out_h; (void)out_w; (void)two_inputs;
    return 0;
}

int64_t ncnn_wino_scratch(int C2, int out_c, int Hp, int Wp)
{
    (void)C2; (void)out_c; (void)Hp; (void)Wp;
    return 1;
}

void ncnn_wino_weights_f32(const float *wt, const float *wt2, int C, int out_c, float *U)
{
    (void)wt; (void)wt2; (void)C; (void)out_c; (void)U;
}

void ncnn_conv_pool2_wino_f32(const float *x, const float *x2, int64_t xs, int C, int H,
                              int W_in, int pad, int Wp, const float *U, const float *bias,
                              int out_c, float *z, ncnn_index *am, const float *mask, int64_t zs,
                              int out_h, int out_w, int relu, int gather, float *scratch)
{
    (void)x; (void)x2; (void)xs; (void)C; (void)H; (void)W_in; (void)pad; (void)Wp; (void)U; (void)bias; (void)out_c;
    (void)z; (void)am; (void)mask; (void)zs; (void)out_h; (void)out_w; (void)relu;
    (void)gather; (void)scratch;
}

/* never called: ncnn_conv_pool2_avx2_on() says no */
void ncnn_conv_pool2_avx2_f32(const float *xp, int64_t xcs, int C, int Wp, int k,
                              const float *wt, int out_c, float *z, ncnn_index *am,
                              int64_t zs, int out_h, int out_w, int relu)
{
    (void)xp; (void)xcs; (void)C; (void)Wp; (void)k; (void)wt; (void)out_c; (void)z;
    (void)am; (void)zs; (void)out_h; (void)out_w; (void)relu;
}

int64_t ncnn_conv_sparse_scratch(int P, int out_c, int Po, int Hp, int Wp, int C)
{
    (void)P; (void)out_c; (void)Po; (void)Hp; (void)Wp; (void)C;
    return 1;
}

void ncnn_conv_delta_avx2_f32(const float *dz, const float *mask, const ncnn_index *am,
                              int64_t zs, int out_c, int Po, int conv_h, int conv_w,
                              const float *wk, int C, int k, float *scratch, float *dx,
                              int64_t xs, int H, int W, int pad)
{
    (void)dz; (void)mask; (void)am; (void)zs; (void)out_c; (void)Po; (void)conv_h;
    (void)conv_w; (void)wk; (void)C; (void)k; (void)scratch; (void)dx; (void)xs; (void)H;
    (void)W; (void)pad;
}

int64_t ncnn_conv_seeds_scratch(int P, int out_c, int Po, int K)
{
    (void)P; (void)out_c; (void)Po; (void)K;
    return 1;
}

void ncnn_conv_delta_seeds_avx2_f32(const float *dz, int64_t dks, int K, const ncnn_index *am,
                                    int64_t zs, int out_c, int Po, int conv_h, int conv_w,
                                    const float *wk, int C, int k, float *scratch, float *dx,
                                    int64_t xks, int64_t xs, int H, int W, int pad,
                                    const float *xmask)
{
    (void)dz; (void)dks; (void)K; (void)am; (void)zs; (void)out_c; (void)Po; (void)conv_h;
    (void)conv_w; (void)wk; (void)C; (void)k; (void)scratch; (void)dx; (void)xks; (void)xs;
    (void)H; (void)W; (void)pad; (void)xmask;
}

void ncnn_conv_wgrad_avx2_f32(const float *dz, const float *mask, const ncnn_index *am,
                              int64_t zs, int out_c, int Po, int conv_w, const float *x,
                              int64_t xs, int C, int H, int W, int pad, int k, int Hp, int Wp,
                              float *scratch, float *gk, float *gb)
{
    (void)dz; (void)mask; (void)am; (void)zs; (void)out_c; (void)Po; (void)conv_w; (void)x;
    (void)xs; (void)C; (void)H; (void)W; (void)pad; (void)k; (void)Hp; (void)Wp; (void)scratch;
    (void)gk; (void)gb;
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

/* portable: whether every offset of `planes` pooled planes is one of its 2x2 window's four */
int ncnn_pool2_argmax_in_windows(const ncnn_index *am, int64_t planes, int out_h, int out_w)
{
    const int W = 2 * out_w, Po = out_h * out_w;
    int bad = 0;
    for (int64_t j = 0; j < planes; ++j) {
        const ncnn_index *a = am + j * Po;
        for (int yo = 0; yo < out_h; ++yo)
            for (int xo = 0; xo < out_w; ++xo) {
                const int d = a[yo * out_w + xo] - (2 * yo * W + 2 * xo);
                bad |= (d != 0) & (d != 1) & (d != W) & (d != W + 1);
            }
    }
    return !bad;
}
