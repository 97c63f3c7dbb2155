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
/* Each function is declared a vector function only for a glibc whose libmvec has it, so the
 * modules never need a newer glibc than the one they are built for: the build's own, or at
 * most 2.28 for a portable (manylinux_2_28) build, FASTLOSS_PORTABLE=1. */
#ifdef FL_PORTABLE
#define FL_GLIBC_LINKS(maj, min) (__GLIBC_PREREQ(maj, min) && (maj) == 2 && (min) <= 28)
#else
#define FL_GLIBC_LINKS(maj, min) __GLIBC_PREREQ(maj, min)
#endif
#if FL_GLIBC_LINKS(2, 22)
/* libmvec's first functions (glibc 2.22): exp and log. */
#pragma omp declare simd notinbranch
extern double exp(double);
#pragma omp declare simd notinbranch
extern float expf(float);
#pragma omp declare simd notinbranch
extern double log(double);
#pragma omp declare simd notinbranch
extern float logf(float);
#define FL_HAVE_LIBMVEC 1
#if FL_GLIBC_LINKS(2, 35)
/* log1p and expm1 joined libmvec in glibc 2.35. */
#define FL_VM_LOG1P 1
#pragma omp declare simd notinbranch
extern double log1p(double);
#pragma omp declare simd notinbranch
extern float log1pf(float);
#pragma omp declare simd notinbranch
extern double expm1(double);
#pragma omp declare simd notinbranch
extern float expm1f(float);
#elif defined(FL_MVEC_SHIM)
/* Older glibc targets: _mvec_shim.c's vector variants bind libmvec's at run time where the
 * running glibc has them (one scalar call per lane where it does not). */
#define FL_VM_LOG1P 2
/* const: as the libm builtins under -fno-math-errno; gcc vectorizes no loop around a call
 * that might write memory. */
#define FL_SHIM_FN __attribute__((const, nothrow, visibility("hidden")))
#pragma omp declare simd notinbranch
extern double fl_log1p(double) FL_SHIM_FN;
#pragma omp declare simd notinbranch
extern float fl_log1pf(float) FL_SHIM_FN;
#pragma omp declare simd notinbranch
extern double fl_expm1(double) FL_SHIM_FN;
#pragma omp declare simd notinbranch
extern float fl_expm1f(float) FL_SHIM_FN;
extern int fl_mvec_shim_resolved(void);
#define log1p fl_log1p
#define log1pf fl_log1pf
#define expm1 fl_expm1
#define expm1f fl_expm1f
#else
#define FL_VM_LOG1P 0
#endif
#else
#define FL_HAVE_LIBMVEC 0
#define FL_VM_LOG1P 0
#endif
#else
#define FL_HAVE_LIBMVEC 0
#define FL_VM_LOG1P 0
#endif

/* How vectorized loops compute function `which` (0 exp, 1 log, 2 log1p, 3 expm1): 0 scalar
 * libm calls, 1 libmvec (linked), 2 libmvec bound at run time by _mvec_shim.c. */
static inline int fl_vm_kind(int which) {
    if (which < 2) return FL_HAVE_LIBMVEC;
#if FL_VM_LOG1P == 2
    return (fl_mvec_shim_resolved() >> (which - 2)) & 1 ? 2 : 0;
#else
    return FL_VM_LOG1P;
#endif
}

/* x * y + z rounded once where the target has FMA instructions (where gcc would otherwise
 * contract some x * y + z and not others), else as written (nothing is contracted there).
 * Either way every loop computes it alike, whichever outputs it keeps. */
/* Always inlined: gcc's inliner gives up on these in kernels that already inline much (Tweedie's
 * loss+gradient loop called fl_exp_parts out of line, scalar, per element: 18 ns instead of 2),
 * and a call inside a loop stops it vectorizing. */
#if defined(__GNUC__) || defined(__clang__)
#define FL_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define FL_INLINE static __forceinline
#else
#define FL_INLINE static inline
#endif

#ifdef __FMA__
FL_INLINE double fl_fma(double x, double y, double z) { return __builtin_fma(x, y, z); }
FL_INLINE float fl_fmaf(float x, float y, float z) { return __builtin_fmaf(x, y, z); }
#else
FL_INLINE double fl_fma(double x, double y, double z) { return x * y + z; }
FL_INLINE float fl_fmaf(float x, float y, float z) { return x * y + z; }
#endif

/* exp(x) as straight-line arithmetic, for loops whose only transcendental is exp. Inlined, it
 * vectorizes with the loop around it: no call and no spilling of the loop's registers across
 * one. Against libmvec's exp on the AVX-512 build (loss+gradient, float64, n = 1e5, 1 thread,
 * AMD Zen 5, one alternating run): Poisson 1.8 -> 1.06 ns per element, Gamma 1.1-1.3 -> 1.07,
 * Tweedie 2.3 -> 2.1. On the baseline build (SSE2, no FMA) libmvec was faster (2.0 against
 * 3.3 ns for exp alone), so there fl_exp_inline is libmvec's exp.
 * Method: Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2 (k * ln2_hi exact); e^r - 1 by
 * its Taylor polynomial in Estrin's scheme (degree 13 in double, 7 in float: truncation
 * below a tenth of an ulp), 1 added last; 2^k applied as two exact power-of-two factors, so
 * results in the subnormal range are rounded once and overflow gives inf. Beyond x > 710
 * and x < -746, where the result is already inf or 0, it is selected at the end; NaN fails
 * both comparisons and propagates. Measured against mpmath: at most 0.94 ulp (double) and 0.96 ulp
 * (float) over the normal range, 1 ulp of the smallest subnormal below it; against long
 * double over 10^5 points (tests/test_vecmath.py), 0.999 and 0.975. */
#if defined(__FMA__) && defined(__AVX2__)
#define FL_EXP_INLINE 1
FL_INLINE double fl_bits_to_double(unsigned long long u) {
    double d; __builtin_memcpy(&d, &u, sizeof d); return d;
}
FL_INLINE unsigned long long fl_double_to_bits(double d) {
    unsigned long long u; __builtin_memcpy(&u, &d, sizeof u); return u;
}
FL_INLINE float fl_bits_to_float(unsigned int u) {
    float f; __builtin_memcpy(&f, &u, sizeof f); return f;
}
FL_INLINE unsigned int fl_float_to_bits(float f) {
    unsigned int u; __builtin_memcpy(&u, &f, sizeof u); return u;
}

/* The reduction, e^r - 1 and the two power-of-two factors of 2^k, for -746 <= x <= 710
 * (NaN propagates). Outside that range the parts are meaningless and the callers select
 * the result (inf, 0, -1) at the end: selecting there instead of clamping x first gives the
 * same bits and takes the selection off the head of the dependency chain. On AVX2 (Zen 3,
 * a Gamma loss+gradient loop, n = 1e5, 1 thread) the clamp cost 2.4 against 1.9 ns per
 * element: gcc turned the two clamps into nine compare/mask/blend instructions that every
 * later step waited for. */
FL_INLINE double fl_exp_parts(double x, double* s1, double* s2) {
    const double shift = 0x1.8p52;                  /* adding it rounds to an integer */
    const double inv_ln2 = 0x1.71547652b82fep0;
    const double ln2_hi = 0x1.62e42fee00000p-1;     /* 32 bits: k * ln2_hi is exact */
    const double ln2_lo = 0x1.a39ef35793c76p-33;
    double z = fl_fma(x, inv_ln2, shift);
    double kd = z - shift;
    double r = fl_fma(-kd, ln2_lo, x - kd * ln2_hi);
    double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    double a0 = fl_fma(1.0 / 6, r, 1.0 / 2);
    double a1 = fl_fma(1.0 / 120, r, 1.0 / 24);
    double a2 = fl_fma(1.0 / 5040, r, 1.0 / 720);
    double a3 = fl_fma(1.0 / 362880, r, 1.0 / 40320);
    double a4 = fl_fma(1.0 / 39916800, r, 1.0 / 3628800);
    double a5 = fl_fma(1.0 / 6227020800.0, r, 1.0 / 479001600);
    double b0 = fl_fma(a1, r2, a0), b1 = fl_fma(a3, r2, a2), b2 = fl_fma(a5, r2, a4);
    /* k = k1 + k2 with k1 = round(k/2): 2^k1 and 2^k2 are normal for every x in range. */
    double z1 = fl_fma(kd, 0.5, shift);
    double z2 = (kd - (z1 - shift)) + shift;
    *s1 = fl_bits_to_double((fl_double_to_bits(z1) << 52) + 0x3ff0000000000000ULL);
    *s2 = fl_bits_to_double((fl_double_to_bits(z2) << 52) + 0x3ff0000000000000ULL);
    return fl_fma(fl_fma(b2, r8, fl_fma(b1, r4, b0)), r2, r);
}

/* exp of x within fl_exp_parts' range, +inf above it and 0 below (what exp(710) and
 * exp(-746) round to). The 0 is selected by a bit mask, not by `?:`: with two `?:` selects
 * gcc 12 folds a caller's `fabs(e) == INFINITY` test through them into a mask of mixed
 * precision it cannot vectorize (Tweedie's loss+gradient loop went scalar, 0.65 -> 1.63 ms
 * at n = 1e5). */
FL_INLINE double fl_exp_select(double x, double e) {
    e = x > 710.0 ? INFINITY : e;
    return fl_bits_to_double(fl_double_to_bits(e) & ~-(unsigned long long)(x < -746.0));
}

FL_INLINE double fl_exp_inline(double x) {
    double s1, s2, q = fl_exp_parts(x, &s1, &s2);
    return fl_exp_select(x, ((q + 1.0) * s1) * s2);
}

/* exp(x), and expm1(x) in *em1, from the same parts (LogCosh needs both):
 * e^x - 1 = q 2^k + (2^k - 1), rounded once by the fma; 2^k - 1 is exact for |k| <= 53 (and
 * rounds to -1 below, where the result is -1 anyway; above x = 40 the 1 is below the
 * result's rounding, and e^x - 1 avoids 2^1024). k = 0 for |x| <= ln2/2 gives q itself: full
 * relative precision at tiny x. Measured against long double (tests/test_vecmath.py): x <= 0
 * at most 1.17 ulp (double), 0.85 (float); x > 0 1.7 and 1.6 (k = 1 doubles q's error). */
FL_INLINE double fl_exp_expm1_inline(double x, double* em1) {
    double s1, s2, q = fl_exp_parts(x, &s1, &s2);
    double s = s1 * s2;                      /* inf for k = 1024: x > 40 takes e^x - 1 */
    double e = fl_exp_select(x, ((q + 1.0) * s1) * s2);
    double r = x > 40.0 ? e - 1.0 : fl_fma(q, s, s - 1.0);
    r = x < -746.0 ? -1.0 : r;
    *em1 = x == 0.0 ? x : r;                 /* -0 stays -0 */
    return e;
}

/* expm1 alone: the pair's exp is dead code after inlining. */
FL_INLINE double fl_expm1_inline(double x) {
    double w;
    (void)fl_exp_expm1_inline(x, &w);
    return w;
}

/* As fl_exp_parts, for -104 <= x <= 89. */
FL_INLINE float fl_expf_parts(float x, float* s1, float* s2) {
    const float shift = 0x1.8p23f;
    const float inv_ln2 = 0x1.715476p0f;
    const float ln2_hi = 0x1.62e400p-1f;            /* 15 bits: k * ln2_hi is exact */
    const float ln2_lo = 0x1.7f7d1cp-20f;
    float z = fl_fmaf(x, inv_ln2, shift);
    float kd = z - shift;
    float r = fl_fmaf(-kd, ln2_lo, x - kd * ln2_hi);
    float r2 = r * r, r4 = r2 * r2;
    float a0 = fl_fmaf(1.0f / 6, r, 1.0f / 2);
    float a1 = fl_fmaf(1.0f / 120, r, 1.0f / 24);
    float a2 = fl_fmaf(1.0f / 5040, r, 1.0f / 720);
    float z1 = fl_fmaf(kd, 0.5f, shift);
    float z2 = (kd - (z1 - shift)) + shift;
    *s1 = fl_bits_to_float((fl_float_to_bits(z1) << 23) + 0x3f800000u);
    *s2 = fl_bits_to_float((fl_float_to_bits(z2) << 23) + 0x3f800000u);
    return fl_fmaf(fl_fmaf(a2, r4, fl_fmaf(a1, r2, a0)), r2, r);
}

FL_INLINE float fl_expf_select(float x, float e) {
    e = x > 89.0f ? INFINITY : e;
    return fl_bits_to_float(fl_float_to_bits(e) & ~-(unsigned int)(x < -104.0f));
}

FL_INLINE float fl_expf_inline(float x) {
    float s1, s2, q = fl_expf_parts(x, &s1, &s2);
    return fl_expf_select(x, ((q + 1.0f) * s1) * s2);
}

FL_INLINE float fl_expf_expm1f_inline(float x, float* em1) {
    float s1, s2, q = fl_expf_parts(x, &s1, &s2);
    float s = s1 * s2;
    float e = fl_expf_select(x, ((q + 1.0f) * s1) * s2);
    float r = x > 20.0f ? e - 1.0f : fl_fmaf(q, s, s - 1.0f);
    r = x < -104.0f ? -1.0f : r;
    *em1 = x == 0.0f ? x : r;
    return e;
}

FL_INLINE float fl_expm1f_inline(float x) {
    float w;
    (void)fl_expf_expm1f_inline(x, &w);
    return w;
}

/* log1p(x) as straight-line arithmetic (fdlibm's s_log1p.c method, branch-free), for loops
 * whose transcendentals are all inline: no call, no spilled registers, the same bits in
 * scalar and vector code. u = 1 + x = 2^k m with m in [sqrt(2)/2, sqrt(2)); f = m - 1,
 * s = f / (2 + f); log(m) = f - hfsq + s (hfsq + R(s^2)) with hfsq = f^2 / 2 and fdlibm's
 * minimax R (error below 2^-58); c = (1 + x) - u, the rounding of u, adds c / u. One
 * division gives both s and 1/u (which needs only a few bits: c / u is below half an ulp
 * of the result, except at tiny x, which takes x - x^2/2). NaN, +inf, -1 and x < -1 are
 * selected at the end. Measured against long double: at most 0.75 ulp in both dtypes
 * (tests/test_vecmath.py). */
FL_INLINE double fl_log1p_inline(double x) {
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    double u = 1.0 + x;
    unsigned long long hx = fl_double_to_bits(u);
    unsigned long long eb = (hx >> 52) & 0x7ff;
    unsigned long long hm = hx & 0x000fffffffffffffULL;
    int up = hm > 0x6a09e667f3bccULL;              /* m >= sqrt(2): halve it */
    double m = fl_bits_to_double(hm | (up ? 0x3fe0000000000000ULL : 0x3ff0000000000000ULL));
    /* The exponent as a double without an int64 conversion (none in AVX2). */
    double kd = (fl_bits_to_double(0x4330000000000000ULL | eb) - 0x1p52) - 1023.0 + (up ? 1.0 : 0.0);
    double c = eb > 1023 ? 1.0 - (u - x) : x - (u - 1.0);   /* exact */
    double f = m - 1.0;
    double D = 1.0 / (m * (1.0 + m));
    double sv = f * m * D;                          /* f / (2 + f) */
    /* 1/u = 2^-k / m; k capped (c / u is negligible there) so that 2^-k stays normal. */
    double kc = kd > 100.0 ? 100.0 : kd;
    double inv_2k = fl_bits_to_double(fl_double_to_bits((1023.0 - kc) + 0x1p52) << 52);
    double cu = c * ((1.0 + m) * D) * inv_2k;
    double z = sv * sv, z2 = z * z, z4 = z2 * z2;
    double R = z * (fl_fma(3.999999999940941908e-01, z, 6.666666666666735130e-01)
                    + z2 * fl_fma(2.222219843214978396e-01, z, 2.857142874366239149e-01)
                    + z4 * fl_fma(z, fl_fma(1.479819860511658591e-01, z, 1.531383769920937332e-01),
                                  1.818357216161805012e-01));
    double hfsq = 0.5 * f * f;
    double r = kd * ln2_hi - ((hfsq - (sv * (hfsq + R) + fl_fma(kd, ln2_lo, cu))) - f);
    /* Tiny x: c / u is as large as the result itself there, and its few-bit 1/u would
     * cost an ulp; x - x^2/2 is exact to 2^-58 relative. */
    r = fabs(x) < 0x1p-29 ? fl_fma(-0.5 * x, x, x) : r;   /* +-0 too, with its sign */
    r = x > -1.0 ? r : (x == -1.0 ? -INFINITY : NAN);
    return x < INFINITY ? r : x;                   /* +inf, and NaN as it came */
}

FL_INLINE float fl_log1pf_inline(float x) {
    const float ln2_hi = 6.9313812256e-01f, ln2_lo = 9.0580006145e-06f;
    float u = 1.0f + x;
    unsigned int hx = fl_float_to_bits(u);
    unsigned int eb = (hx >> 23) & 0xff;
    unsigned int hm = hx & 0x007fffffu;
    int up = hm > 0x3504f3u;
    float m = fl_bits_to_float(hm | (up ? 0x3f000000u : 0x3f800000u));
    float kd = (fl_bits_to_float(0x4b000000u | eb) - 0x1p23f) - 127.0f + (up ? 1.0f : 0.0f);
    float c = eb > 127 ? 1.0f - (u - x) : x - (u - 1.0f);
    float f = m - 1.0f;
    float D = 1.0f / (m * (1.0f + m));
    float sv = f * m * D;
    float kc = kd > 40.0f ? 40.0f : kd;
    float inv_2k = fl_bits_to_float(fl_float_to_bits((127.0f - kc) + 0x1p23f) << 23);
    float cu = c * ((1.0f + m) * D) * inv_2k;
    float z = sv * sv, z2 = z * z;
    /* FreeBSD's e_logf.c minimax R (|s| <= 0.1716, error below 2^-34). */
    float R = z * fl_fmaf(0xccce13.0p-25f, z, 0xaaaaaa.0p-24f)
              + z2 * z * fl_fmaf(0xf89e26.0p-26f, z, 0x91e9ee.0p-25f);
    float hfsq = 0.5f * f * f;
    float r = kd * ln2_hi - ((hfsq - (sv * (hfsq + R) + fl_fmaf(kd, ln2_lo, cu))) - f);
    r = fabsf(x) < 0x1p-15f ? fl_fmaf(-0.5f * x, x, x) : r;
    r = x > -1.0f ? r : (x == -1.0f ? -INFINITY : NAN);
    return x < INFINITY ? r : x;
}

#else
#define FL_EXP_INLINE 0
FL_INLINE double fl_exp_inline(double x) { return exp(x); }
FL_INLINE float fl_expf_inline(float x) { return expf(x); }
FL_INLINE double fl_log1p_inline(double x) { return log1p(x); }
FL_INLINE float fl_log1pf_inline(float x) { return log1pf(x); }
FL_INLINE double fl_expm1_inline(double x) { return expm1(x); }
FL_INLINE float fl_expm1f_inline(float x) { return expm1f(x); }
FL_INLINE double fl_exp_expm1_inline(double x, double* em1) { *em1 = expm1(x); return exp(x); }
FL_INLINE float fl_expf_expm1f_inline(float x, float* em1) { *em1 = expm1f(x); return expf(x); }
#endif

/* A hint to fetch the cache line holding p (never faults). Compute-bound loops (exp, log)
 * ask for data too slowly for the hardware prefetcher to keep ahead of them. */
#if defined(__GNUC__) || defined(__clang__)
FL_INLINE void fl_prefetch(const void* p) { __builtin_prefetch(p, 0, 3); }
FL_INLINE void fl_prefetch_write(const void* p) { __builtin_prefetch(p, 1, 3); }
#else   /* MSVC: no hint */
FL_INLINE void fl_prefetch(const void* p) { (void)p; }
FL_INLINE void fl_prefetch_write(const void* p) { (void)p; }
#endif

/* Threads: the team, the default count and its cap. */
#include "_threads.h"

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
