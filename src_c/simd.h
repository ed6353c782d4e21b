/*
 * What the SIMD kernels need to compile and to choose themselves at run time.
 * NCNN_HAVE_AVX512 / NCNN_HAVE_AVX2 are defined when the compiler can build them
 * (GCC or Clang on x86); NCNN_TARGET / NCNN_TARGET_AVX2 mark the functions that use
 * AVX-512F / AVX2 and FMA instructions, which run only after ncnn_avx512_on() /
 * ncnn_avx2_on() said yes. The extension itself is built for the baseline x86-64,
 * so one wheel serves every CPU.
 */
#ifndef NEWTONCNN_SIMD_H
#define NEWTONCNN_SIMD_H

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(NCNN_NO_AVX512)
#define NCNN_HAVE_AVX512 1
#define NCNN_TARGET __attribute__((target("avx512f")))
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(NCNN_NO_AVX2)
#define NCNN_HAVE_AVX2 1
#define NCNN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif

#if defined(NCNN_HAVE_AVX512) || defined(NCNN_HAVE_AVX2)
#include <immintrin.h>
#endif

#ifdef NCNN_HAVE_AVX512
static inline int ncnn_cpu_has_avx512f(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}
#endif

#ifdef NCNN_HAVE_AVX2
/* AVX2 with FMA (every AVX2 CPU but a few VIA ones has both) */
static inline int ncnn_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
}
#endif

/* Whether the AVX-512 / AVX2 fast paths of kernels.c's callers run: the CPU has the
 * instructions and they were not switched off by ncnn_set_simd(0) (kernels.c; for
 * tests and A/B timing). Where both could, the AVX-512 path runs. */
int ncnn_avx512_on(void);
int ncnn_avx2_on(void);

#endif
