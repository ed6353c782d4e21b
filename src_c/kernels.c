/* Instantiates the type-generic kernels of kernels_impl.h for float and double. */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "simd.h"

/* CPU features, -1: not asked yet (a benign race asks twice and gets the same answer) */
static int has_avx512 = -1, has_avx2 = -1;
/* the switch of ncnn_set_simd */
static int simd_allowed = 1;

int ncnn_avx512_on(void)
{
#ifdef NCNN_HAVE_AVX512
    if (has_avx512 < 0)
        has_avx512 = ncnn_cpu_has_avx512f();
    return simd_allowed && has_avx512;
#else
    return 0;
#endif
}

int ncnn_avx2_on(void)
{
#ifdef NCNN_HAVE_AVX2
    if (has_avx2 < 0)
        has_avx2 = ncnn_cpu_has_avx2();
    return simd_allowed && has_avx2;
#else
    return 0;
#endif
}

int ncnn_set_simd(int on)
{
    const int before = ncnn_avx512_on() || ncnn_avx2_on();
    simd_allowed = on != 0;
    return before;
}

/* The fastest 2x2 float32 pool this CPU has; 0 (nothing done) leaves it to the scalar loop. */
static int maxpool2_fast_f32(const float *src, float *dst, ncnn_index *a, int H, int W, int relu)
{
    return ncnn_maxpool2_avx512_f32(src, dst, a, H, W, relu)
        || ncnn_maxpool2_avx2_f32(src, dst, a, H, W, relu);
}

void ncnn_im2col_index(ncnn_index *idx, int kh, int kw, int stride, int padded_w,
                       int out_h, int out_w)
{
    const int64_t P = (int64_t)out_h * out_w;
    for (int p = 0; p < kh; ++p)
        for (int q = 0; q < kw; ++q) {
            ncnn_index *map = idx + (int64_t)(p * kw + q) * P;
            for (int y = 0; y < out_h; ++y)
                for (int x = 0; x < out_w; ++x)
                    map[y * out_w + x] =
                        (ncnn_index)((y * stride + p) * padded_w + x * stride + q);
        }
}

/* Keep short copy loops inline: GCC would turn them back into memcpy/memset calls. */
#if defined(__GNUC__) && !defined(__clang__)
#define NCNN_NO_LIBC_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NCNN_NO_LIBC_LOOPS
#endif

/* the 2x2 pool has vector versions for float32 only */
#define T float
#define SUF f32
#define NCNN_MAXPOOL2_FAST(src, dst, a, H, W, relu) maxpool2_fast_f32(src, dst, a, H, W, relu)
#include "kernels_impl.h"
#undef T
#undef SUF
#undef NCNN_MAXPOOL2_FAST

#define T double
#define SUF f64
#define NCNN_MAXPOOL2_FAST(src, dst, a, H, W, relu) 0
#include "kernels_impl.h"
#undef T
#undef SUF
