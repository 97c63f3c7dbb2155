/* A hand-written C reference for fastloss's row-wise kernels: cross-entropy from logits with
 * integer labels, mean reduction, loss and gradient in one pass. It is what a careful C
 * programmer writes for this one case (no class weights, no smoothing, no validation, k and
 * the layout fixed), and the benchmark times fastloss against it on the same compiler, flags
 * and vector math (bench/c_reference.py builds it).
 *
 * Per block of 64 rows: each row's max (scalar), z - max into g, one flat vector loop of exp
 * over the block (glibc's libmvec through `declare simd`), each row's sum, one vector loop of
 * log over the block's sums, then the gradient in place: g = exp(z - max) / sum / n, minus 1/n
 * at the label. Threads take contiguous runs of rows (schedule(static)); the loss is summed in
 * double. */
#include <math.h>
#include <stdint.h>

#pragma omp declare simd notinbranch
double exp(double);
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
double log(double);
#pragma omp declare simd notinbranch
float logf(float);

#define BLOCK 64

#define CE_LOGITS(NAME, T, EXP, LOG)                                                         \
double NAME(const T* restrict z, const int64_t* restrict y, int64_t n, int64_t k,           \
            T* restrict g, int threads)                                                      \
{                                                                                            \
    double total = 0;                                                                        \
    const T scale = (T)(1.0 / (double)n);                                                    \
    int64_t nblocks = (n + BLOCK - 1) / BLOCK;                                               \
    _Pragma("omp parallel for schedule(static) reduction(+:total) num_threads(threads)")    \
    for (int64_t b = 0; b < nblocks; b++) {                                                  \
        T rmax[BLOCK], rsum[BLOCK], rlog[BLOCK];                                             \
        int64_t r0 = b * BLOCK, r1 = r0 + BLOCK < n ? r0 + BLOCK : n, m = r1 - r0;           \
        for (int64_t r = 0; r < m; r++) {                                                    \
            const T* zr = z + (r0 + r) * k;                                                  \
            T* gr = g + (r0 + r) * k;                                                        \
            T mx = zr[0];                                                                    \
            for (int64_t j = 1; j < k; j++)                                                  \
                mx = zr[j] > mx ? zr[j] : mx;                                                \
            rmax[r] = mx;                                                                    \
            _Pragma("omp simd")                                                              \
            for (int64_t j = 0; j < k; j++)                                                  \
                gr[j] = zr[j] - mx;                                                          \
        }                                                                                    \
        T* gb = g + r0 * k;                                                                  \
        int64_t e = m * k;                                                                   \
        _Pragma("omp simd")                                                                  \
        for (int64_t i = 0; i < e; i++)                                                      \
            gb[i] = EXP(gb[i]);                                                              \
        for (int64_t r = 0; r < m; r++) {                                                    \
            const T* gr = gb + r * k;                                                        \
            T s = 0;                                                                         \
            _Pragma("omp simd reduction(+:s)")                                               \
            for (int64_t j = 0; j < k; j++)                                                  \
                s += gr[j];                                                                  \
            rsum[r] = s;                                                                     \
        }                                                                                    \
        _Pragma("omp simd")                                                                  \
        for (int64_t r = 0; r < m; r++)                                                      \
            rlog[r] = LOG(rsum[r]);                                                          \
        for (int64_t r = 0; r < m; r++) {                                                    \
            int64_t yr = y[r0 + r];                                                          \
            const T* zr = z + (r0 + r) * k;                                                  \
            T* gr = gb + r * k;                                                              \
            /* -log softmax(z)_y = max + log(sum) - z_y */                                   \
            total += (double)(rmax[r] + rlog[r] - zr[yr]);                                   \
            T c = scale / rsum[r];                                                           \
            _Pragma("omp simd")                                                              \
            for (int64_t j = 0; j < k; j++)                                                  \
                gr[j] *= c;                                                                  \
            gr[yr] -= scale;                                                                 \
        }                                                                                    \
    }                                                                                        \
    return total / (double)n;                                                                \
}

CE_LOGITS(ce_logits_f64, double, exp, log)
CE_LOGITS(ce_logits_f32, float, expf, logf)
