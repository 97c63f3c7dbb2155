/* Vector-math declarations for fastloss kernels.
 *
 * glibc only announces its vector math library (libmvec) to gcc under -ffast-math, which we
 * refuse because it changes NaN/inf semantics. Re-declaring the functions with
 * "omp declare simd" lets gcc call libmvec's SSE/AVX2/AVX-512 variants from vectorized loops
 * (it needs -fopenmp or -fopenmp-simd plus -fno-math-errno -fno-trapping-math). Without
 * OpenMP support the pragmas are ignored and the scalar libm functions are used.
 */
#ifndef FASTLOSS_SIMD_MATH_H
#define FASTLOSS_SIMD_MATH_H
#include <math.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#pragma omp declare simd notinbranch
extern double exp(double);
#pragma omp declare simd notinbranch
extern float expf(float);
#pragma omp declare simd notinbranch
extern double log(double);
#pragma omp declare simd notinbranch
extern float logf(float);
#pragma omp declare simd notinbranch
extern double log1p(double);
#pragma omp declare simd notinbranch
extern float log1pf(float);
/* libmvec has vector expm1 from glibc 2.35 on; older ones keep the scalar function. */
#if __GLIBC_PREREQ(2, 35)
#pragma omp declare simd notinbranch
extern double expm1(double);
#pragma omp declare simd notinbranch
extern float expm1f(float);
#endif
#define FL_HAVE_LIBMVEC 1
#else
#define FL_HAVE_LIBMVEC 0
#endif

/* x * y + z rounded once where the target has FMA instructions (where gcc would otherwise
 * contract some x * y + z and not others), else as written (nothing is contracted there).
 * Either way every loop computes it alike, whichever outputs it keeps. */
#ifdef __FMA__
static inline double fl_fma(double x, double y, double z) { return __builtin_fma(x, y, z); }
static inline float fl_fmaf(float x, float y, float z) { return __builtin_fmaf(x, y, z); }
#else
static inline double fl_fma(double x, double y, double z) { return x * y + z; }
static inline float fl_fmaf(float x, float y, float z) { return x * y + z; }
#endif

#ifdef _OPENMP
#include <omp.h>
#define FL_OPENMP 1
static inline int fl_max_threads(void) { return omp_get_max_threads(); }
#else
#define FL_OPENMP 0
static inline int fl_max_threads(void) { return 1; }
#endif

/* 4: x86-64-v4 (AVX-512), 3: x86-64-v3 (AVX2, FMA), 1: other x86-64, 0: unknown. */
static inline int fl_cpu_level(void) {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return 4;
    if (__builtin_cpu_supports("x86-64-v3")) return 3;
    return 1;
#else
    return 0;
#endif
}

/* Which instruction set this translation unit was compiled for. */
#ifndef FL_ISA
#define FL_ISA "baseline"
#endif

#endif
