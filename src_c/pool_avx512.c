/*
 * 2x2 max pool of one float32 plane with AVX-512: 16 windows per step, no
 * branches. The scalar loop of kernels_impl.h mispredicts about every other
 * comparison on real feature maps and was a third of the forward pass.
 * Same results as the scalar loop: first maximum in the order (0,0), (0,1),
 * (1,0), (1,1), a window holding a NaN gives NaN, ReLU as max(m, 0).
 */
#include <math.h>

#include "kernels.h"
#include "simd.h"

#ifdef NCNN_HAVE_AVX512

NCNN_TARGET static void pool_row(const float *r0, const float *r1, int W, int y, int Wo,
                                 float *dst, ncnn_index *a, int relu)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (int x = 0; x < Wo; x += 16) {
        const int nout = Wo - x < 16 ? Wo - x : 16;
        const __mmask16 out = (__mmask16)((1u << nout) - 1);
        const int nin = 2 * nout;
        const __mmask16 lo = (__mmask16)(nin >= 16 ? 0xFFFF : (1u << nin) - 1);
        const __mmask16 hi = (__mmask16)(nin <= 16 ? 0 : (1u << (nin - 16)) - 1);
        const __m512 a0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * x);
        const __m512 a1 = _mm512_maskz_loadu_ps(hi, r0 + 2 * x + 16);
        const __m512 b0 = _mm512_maskz_loadu_ps(lo, r1 + 2 * x);
        const __m512 b1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * x + 16);
        const __m512i i00 = _mm512_add_epi32(_mm512_set1_epi32(2 * y * W + 2 * x), even);
        __m512 m = _mm512_permutex2var_ps(a0, even, a1);
        __m512i best = i00;
        __m512 v = _mm512_permutex2var_ps(a0, odd, a1);
        __mmask16 nan = _mm512_cmp_ps_mask(v, m, _CMP_UNORD_Q);
        __mmask16 gt = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ);
        m = _mm512_mask_mov_ps(m, gt, v);
        best = _mm512_mask_add_epi32(best, gt, i00, _mm512_set1_epi32(1));
        v = _mm512_permutex2var_ps(b0, even, b1);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        gt = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ);
        m = _mm512_mask_mov_ps(m, gt, v);
        best = _mm512_mask_add_epi32(best, gt, i00, _mm512_set1_epi32(W));
        v = _mm512_permutex2var_ps(b0, odd, b1);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        gt = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ);
        m = _mm512_mask_mov_ps(m, gt, v);
        best = _mm512_mask_add_epi32(best, gt, i00, _mm512_set1_epi32(W + 1));
        if (relu)
            m = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ), m);
        m = _mm512_mask_mov_ps(m, nan, _mm512_set1_ps(NAN));
        _mm512_mask_storeu_ps(dst + x, out, m);
        _mm512_mask_storeu_epi32(a + x, out, best);
    }
}

NCNN_TARGET static void pool_plane(const float *src, float *dst, ncnn_index *a, int H, int W,
                                   int relu)
{
    const int Ho = H / 2, Wo = W / 2;
    for (int y = 0; y < Ho; ++y)
        pool_row(src + (int64_t)2 * y * W, src + (int64_t)(2 * y + 1) * W, W, y, Wo,
                 dst + (int64_t)y * Wo, a + (int64_t)y * Wo, relu);
}

int ncnn_maxpool2_avx512_f32(const float *src, float *dst, ncnn_index *a, int H, int W, int relu)
{
    if (!ncnn_avx512_on())
        return 0;
    pool_plane(src, dst, a, H, W, relu);
    return 1;
}

#else

int ncnn_maxpool2_avx512_f32(const float *src, float *dst, ncnn_index *a, int H, int W, int relu)
{
    (void)src; (void)dst; (void)a; (void)H; (void)W; (void)relu;
    return 0;
}

#endif
