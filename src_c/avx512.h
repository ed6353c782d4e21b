/*
 * What the AVX-512 kernels need to compile and to choose themselves at run time.
 * NCNN_HAVE_AVX512 is defined when the compiler can build them (GCC or Clang on
 * x86); NCNN_TARGET marks the functions that use AVX-512F instructions, which
 * run only after ncnn_cpu_has_avx512f() said yes.
 */
#ifndef NEWTONCNN_AVX512_H
#define NEWTONCNN_AVX512_H

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(NCNN_NO_AVX512)
#define NCNN_HAVE_AVX512 1
#include <immintrin.h>
#define NCNN_TARGET __attribute__((target("avx512f")))

static inline int ncnn_cpu_has_avx512f(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}
#endif

/* Whether the AVX-512 fast paths of kernels.c's callers run: the CPU has AVX-512F and
 * they were not switched off by ncnn_set_avx512(0) (kernels.c; for tests and A/B timing). */
int ncnn_avx512_on(void);

#endif
