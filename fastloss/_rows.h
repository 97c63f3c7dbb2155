/* Row reductions in vector registers, for the row-wise driver (_rowwise.pxi).
 *
 * fl_row_argmax(x, k): the index of the first largest element of x[0..k), with the scalar
 * loop's semantics exactly:
 *
 *     a = 0; for (j = 1; j < k; j++) if (x[j] > x[a]) a = j;
 *
 * i.e. NaNs are passed over, except a NaN first element, which is the row's; among equal
 * values (+0 and -0 included) the first wins. Written so, the loop is one dependent
 * compare-and-select chain per row, k steps long. Here the row's maximum is taken lane-wise
 * over vectors (NaN lanes keep the running maximum: vmaxpd returns its second operand when
 * either is NaN), reduced across lanes, and its first position found with one compare per
 * vector: the same index, so the same bits downstream. Tails are masked loads on AVX-512 and
 * AVX's maskload on AVX2 (neither reads outside the row); other targets keep the scalar loop.
 * Measured (AVX-512, AMD Zen 4, 1 thread): the argmax alone in L1 at k = 10, 0.52 -> 0.34 ns
 * per element, at k = 31, 1.06 -> 0.22; cross-entropy from logits at 200 x 1000, 0.52-0.60
 * -> 0.39-0.42 ms; at k = 10 the kernel's time did not change (its argmax samples were
 * waits for the rows' first loads, not the compare chain).
 */
#ifndef FASTLOSS_ROWS_H
#define FASTLOSS_ROWS_H
#include <stddef.h>
#include <math.h>
#include "_simd_math.h"   /* FL_INLINE */
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

/* Below this many elements the scalar loop is faster (the vector path's fixed cost is a
 * cross-lane reduction; measured in L1, AVX-512, k = 4: 0.42 against 0.79 ns per element;
 * k = 8: 0.86 against 0.65; k = 12: 0.97 against 0.47). */
#define FL_ROW_ARGMAX_VECTOR_FROM 8

#define FL_ROW_ARGMAX_SCALAR(T)                                                              \
    {                                                                                        \
        ptrdiff_t a = 0, j;                                                                  \
        T mx = x[0];                                                                         \
        for (j = 1; j < k; j++)                                                              \
            if (x[j] > mx) {                                                                 \
                mx = x[j];                                                                   \
                a = j;                                                                       \
            }                                                                                \
        return a;                                                                            \
    }

FL_INLINE ptrdiff_t fl_row_argmax_scalar(const double* x, ptrdiff_t k)
    FL_ROW_ARGMAX_SCALAR(double)
FL_INLINE ptrdiff_t fl_row_argmaxf_scalar(const float* x, ptrdiff_t k)
    FL_ROW_ARGMAX_SCALAR(float)

#if defined(__AVX512F__)

/* Rows of up to two vectors (k <= 16 doubles, 32 floats: the short rows whose time this is)
 * take no branch: the loop's early exit mispredicted on about one row in five at k = 10. */
#define FL_ROW_ARGMAX_AVX512(T, W, MASK, V, SFX, SCALAR)                                            \
    {                                                                                        \
        ptrdiff_t j, a;                                                                      \
        const V ninf = _mm512_set1_##SFX(-INFINITY);                                         \
        V acc = ninf, top, c0, c1;                                                           \
        MASK tail = (MASK)((1u << (k % W)) - 1), e;                                          \
        if (k < FL_ROW_ARGMAX_VECTOR_FROM)                                                   \
            return SCALAR(x, k);                                                             \
        if (k <= 2 * W) {                                                                    \
            MASK m0 = k >= W ? (MASK)-1 : tail, m1 = k > W ? (k == 2 * W ? (MASK)-1 : tail) : 0; \
            c0 = _mm512_mask_loadu_##SFX(ninf, m0, x);                                       \
            c1 = _mm512_mask_loadu_##SFX(ninf, m1, x + W);                                   \
            acc = _mm512_max_##SFX(_mm512_max_##SFX(c0, ninf), _mm512_max_##SFX(c1, ninf));  \
            top = _mm512_set1_##SFX(_mm512_reduce_max_##SFX(acc));                           \
            a = __builtin_ctzll((unsigned long long)_mm512_cmp_##SFX##_mask(c0, top, _CMP_EQ_OQ) \
                                | (unsigned long long)_mm512_cmp_##SFX##_mask(c1, top, _CMP_EQ_OQ) << W \
                                | 1ull << 63);                                               \
            return x[0] != x[0] ? 0 : a;                                                     \
        }                                                                                    \
        if (x[0] != x[0])                                                                    \
            return 0;                                                                        \
        for (j = 0; j + W <= k; j += W)                                                      \
            acc = _mm512_max_##SFX(_mm512_loadu_##SFX(x + j), acc);                          \
        if (tail)                                                                            \
            acc = _mm512_max_##SFX(_mm512_mask_loadu_##SFX(acc, tail, x + j), acc);          \
        top = _mm512_set1_##SFX(_mm512_reduce_max_##SFX(acc));                               \
        for (j = 0; j + W <= k; j += W) {                                                    \
            e = _mm512_cmp_##SFX##_mask(_mm512_loadu_##SFX(x + j), top, _CMP_EQ_OQ);          \
            if (e)                                                                           \
                return j + __builtin_ctz(e);                                                 \
        }                                                                                    \
        /* x[0] is a number, so the maximum is in the row, here if not before */             \
        e = _mm512_mask_cmp_##SFX##_mask(tail, _mm512_maskz_loadu_##SFX(tail, x + j), top,   \
                                         _CMP_EQ_OQ);                                        \
        return j + __builtin_ctz(e);                                                         \
    }

FL_INLINE ptrdiff_t fl_row_argmax(const double* x, ptrdiff_t k)
    FL_ROW_ARGMAX_AVX512(double, 8, __mmask8, __m512d, pd, fl_row_argmax_scalar)
FL_INLINE ptrdiff_t fl_row_argmaxf(const float* x, ptrdiff_t k)
    FL_ROW_ARGMAX_AVX512(float, 16, __mmask16, __m512, ps, fl_row_argmaxf_scalar)

#elif defined(__AVX2__)

/* The lanes' maximum of a 4-double vector, in every lane. */
FL_INLINE __m256d fl_hmax4(__m256d v) {
    v = _mm256_max_pd(v, _mm256_permute2f128_pd(v, v, 1));
    return _mm256_max_pd(v, _mm256_permute_pd(v, 5));
}

FL_INLINE __m256 fl_hmax8(__m256 v) {
    v = _mm256_max_ps(v, _mm256_permute2f128_ps(v, v, 1));
    v = _mm256_max_ps(v, _mm256_permute_ps(v, 0x4e));
    return _mm256_max_ps(v, _mm256_permute_ps(v, 0xb1));
}

/* The long-row method of the AVX-512 path (lane maxima, then the first lane equal to their
 * maximum) on W = 4 doubles or 8 floats. Lane l of the tail is live where l < t, i.e. where
 * the sign bit of (l - t) is set: maskload's and blendv's mask. */
#define FL_ROW_ARGMAX_AVX2(W, V, SFX, EPI, SET1, LANES, HMAX, SCALAR)                         \
    {                                                                                        \
        ptrdiff_t j, t = k & (W - 1);                                                        \
        __m256i tail = _mm256_sub_##EPI(LANES, SET1(t));                                     \
        V acc = _mm256_set1_##SFX(-INFINITY), top;                                           \
        int e;                                                                               \
        if (k < FL_ROW_ARGMAX_VECTOR_FROM)                                                   \
            return SCALAR(x, k);                                                             \
        if (x[0] != x[0])                                                                    \
            return 0;                                                                        \
        for (j = 0; j + W <= k; j += W)                                                      \
            acc = _mm256_max_##SFX(_mm256_loadu_##SFX(x + j), acc);                          \
        if (t)                                                                               \
            acc = _mm256_max_##SFX(_mm256_blendv_##SFX(acc, _mm256_maskload_##SFX(x + j, tail), \
                                                       _mm256_castsi256_##SFX(tail)), acc);  \
        top = HMAX(acc);                                                                     \
        if (k <= 64) {                                                                       \
            /* Short rows: every lane's match in one mask, no early exit (the exit's branch   \
             * mispredicted on most rows, where the maximum's position is random: AVX2,     \
             * Zen 3, cross-entropy from logits 20000 x 10 float64 in cache, 1 thread,      \
             * 5.0-5.5 -> 4.0-4.5 ns per element). */                                       \
            unsigned long long hits = 0;                                                     \
            for (j = 0; j + W <= k; j += W)                                                  \
                hits |= (unsigned long long)_mm256_movemask_##SFX(                           \
                    _mm256_cmp_##SFX(_mm256_loadu_##SFX(x + j), top, _CMP_EQ_OQ)) << j;       \
            if (t)                                                                           \
                hits |= (unsigned long long)(_mm256_movemask_##SFX(_mm256_cmp_##SFX(         \
                    _mm256_maskload_##SFX(x + j, tail), top, _CMP_EQ_OQ)) & ((1 << t) - 1)) << j; \
            return __builtin_ctzll(hits);                                                    \
        }                                                                                    \
        for (j = 0; j + W <= k; j += W) {                                                    \
            e = _mm256_movemask_##SFX(_mm256_cmp_##SFX(_mm256_loadu_##SFX(x + j), top,      \
                                                       _CMP_EQ_OQ));                         \
            if (e)                                                                           \
                return j + __builtin_ctz(e);                                                 \
        }                                                                                    \
        e = _mm256_movemask_##SFX(_mm256_cmp_##SFX(_mm256_maskload_##SFX(x + j, tail), top,  \
                                                   _CMP_EQ_OQ)) & ((1 << t) - 1);            \
        return j + __builtin_ctz(e);                                                         \
    }

FL_INLINE ptrdiff_t fl_row_argmax(const double* x, ptrdiff_t k)
    FL_ROW_ARGMAX_AVX2(4, __m256d, pd, epi64, _mm256_set1_epi64x,
                       _mm256_set_epi64x(3, 2, 1, 0), fl_hmax4, fl_row_argmax_scalar)
FL_INLINE ptrdiff_t fl_row_argmaxf(const float* x, ptrdiff_t k)
    FL_ROW_ARGMAX_AVX2(8, __m256, ps, epi32, _mm256_set1_epi32,
                       _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0), fl_hmax8, fl_row_argmaxf_scalar)

#else

FL_INLINE ptrdiff_t fl_row_argmax(const double* x, ptrdiff_t k) {
    return fl_row_argmax_scalar(x, k);
}
FL_INLINE ptrdiff_t fl_row_argmaxf(const float* x, ptrdiff_t k) {
    return fl_row_argmaxf_scalar(x, k);
}

#endif
#endif
