/*
 * 2x2 max pool of one float32 plane with AVX2, for x86 CPUs without AVX-512
 * (AMD before Zen 4, many Intel client chips): 8 windows per step, no branches,
 * masked loads and stores for a row's last windows. Same results as the scalar
 * loop and the AVX-512 version: first maximum in the order (0,0), (0,1), (1,0),
 * (1,1), a window holding a NaN gives NaN, ReLU as max(m, 0).
 */
#include <math.h>

#include "kernels.h"
#include "simd.h"

#ifdef NCNN_HAVE_AVX2

/* The even (odd = 0) or odd (odd = 1) elements of the 16 floats lo, hi, in order. */
NCNN_TARGET_AVX2 static inline __m256 deinterleave(__m256 lo, __m256 hi, int odd)
{
    /* per 128-bit lane: lo[0] lo[2] hi[0] hi[2] | lo[4] lo[6] hi[4] hi[6]; then 64-bit
       blocks 0 2 1 3 put the 8 in order */
    const __m256 s = odd ? _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))
                         : _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* Lanes i < n set (n in 0..8): the mask of maskload / maskstore. */
NCNN_TARGET_AVX2 static inline __m256i first_lanes(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

NCNN_TARGET_AVX2 static void pool_row(const float *r0, const float *r1, int W, int y, int Wo,
                                      float *dst, ncnn_index *a, int relu)
{
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256 zero = _mm256_setzero_ps();
    for (int x = 0; x < Wo; x += 8) {
        const int nout = Wo - x < 8 ? Wo - x : 8;
        const __m256i out = first_lanes(nout);
        const __m256i lo = first_lanes(2 * nout), hi = first_lanes(2 * nout - 8);
        const __m256 a0 = _mm256_maskload_ps(r0 + 2 * x, lo);
        const __m256 a1 = _mm256_maskload_ps(r0 + 2 * x + 8, hi);
        const __m256 b0 = _mm256_maskload_ps(r1 + 2 * x, lo);
        const __m256 b1 = _mm256_maskload_ps(r1 + 2 * x + 8, hi);
        const __m256i i00 = _mm256_add_epi32(_mm256_set1_epi32(2 * y * W + 2 * x), even);
        __m256 m = deinterleave(a0, a1, 0);
        __m256i best = i00;
        __m256 v = deinterleave(a0, a1, 1);
        __m256 nan = _mm256_cmp_ps(v, m, _CMP_UNORD_Q);
        __m256 gt = _mm256_cmp_ps(v, m, _CMP_GT_OQ);
        m = _mm256_blendv_ps(m, v, gt);
        best = _mm256_blendv_epi8(best, _mm256_add_epi32(i00, _mm256_set1_epi32(1)),
                                  _mm256_castps_si256(gt));
        v = deinterleave(b0, b1, 0);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        gt = _mm256_cmp_ps(v, m, _CMP_GT_OQ);
        m = _mm256_blendv_ps(m, v, gt);
        best = _mm256_blendv_epi8(best, _mm256_add_epi32(i00, _mm256_set1_epi32(W)),
                                  _mm256_castps_si256(gt));
        v = deinterleave(b0, b1, 1);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        gt = _mm256_cmp_ps(v, m, _CMP_GT_OQ);
        m = _mm256_blendv_ps(m, v, gt);
        best = _mm256_blendv_epi8(best, _mm256_add_epi32(i00, _mm256_set1_epi32(W + 1)),
                                  _mm256_castps_si256(gt));
        if (relu)
            m = _mm256_and_ps(m, _mm256_cmp_ps(m, zero, _CMP_GT_OQ));
        m = _mm256_blendv_ps(m, _mm256_set1_ps(NAN), nan);
        _mm256_maskstore_ps(dst + x, out, m);
        _mm256_maskstore_epi32((int *)(a + x), out, best);
    }
}

NCNN_TARGET_AVX2 static void pool_plane(const float *src, float *dst, ncnn_index *a, int H,
                                        int W, int relu)
{
    const int Ho = H / 2, Wo = W / 2;
    for (int y = 0; y < Ho; ++y)
        pool_row(src + (int64_t)2 * y * W, src + (int64_t)(2 * y + 1) * W, W, y, Wo,
                 dst + (int64_t)y * Wo, a + (int64_t)y * Wo, relu);
}

int ncnn_maxpool2_avx2_f32(const float *src, float *dst, ncnn_index *a, int H, int W, int relu)
{
    if (!ncnn_avx2_on())
        return 0;
    pool_plane(src, dst, a, H, W, relu);
    return 1;
}

#else

int ncnn_maxpool2_avx2_f32(const float *src, float *dst, ncnn_index *a, int H, int W, int relu)
{
    (void)src; (void)dst; (void)a; (void)H; (void)W; (void)relu;
    return 0;
}

#endif
