/* Vector log1p and expm1 for kernel modules built for a glibc older than 2.35 (portable,
 * manylinux_2_28 builds: FASTLOSS_PORTABLE=1, or a build on such a system).
 *
 * libmvec has had vector exp and log since glibc 2.22, but log1p and expm1 only since 2.35;
 * linking them would make the modules need glibc 2.35. _simd_math.h therefore declares
 * fl_log1p/fl_expm1 (and the float versions) as vector functions instead, and gcc calls the
 * vector variants defined here (_ZGV<isa>N<lanes>v_fl_log1p, the x86-64 vector function ABI:
 * b = SSE2, c = AVX, d = AVX2, e = AVX-512). Each jumps through a pointer that starts at a
 * per-lane loop over the scalar libm function and is replaced, when this module is loaded,
 * by libmvec's own variant where the running glibc has it (looked up with dlsym). So the
 * portable wheel runs libmvec's code on glibc >= 2.35 and scalar code, one lane at a time,
 * below: the same values either way up to libmvec's rounding (its vector log1p differs from
 * the scalar one in the last bit for some inputs, as in a native build).
 * fl_mvec_shim_resolved() says which were found (fastloss.show_config()["vector_math"]).
 * This file never includes _simd_math.h, whose declarations rename log1p to fl_log1p. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC diagnostic ignored "-Wpsabi"

typedef double fl_d2 __attribute__((vector_size(16)));
typedef double fl_d4 __attribute__((vector_size(32)));
typedef double fl_d8 __attribute__((vector_size(64)));
typedef float fl_f4 __attribute__((vector_size(16)));
typedef float fl_f8 __attribute__((vector_size(32)));
typedef float fl_f16 __attribute__((vector_size(64)));

#define FL_HIDDEN __attribute__((visibility("hidden")))

/* Scalar entry points: the loops' scalar iterations and code gcc did not vectorize. */
FL_HIDDEN double fl_log1p(double x) { return log1p(x); }
FL_HIDDEN float fl_log1pf(float x) { return log1pf(x); }
FL_HIDDEN double fl_expm1(double x) { return expm1(x); }
FL_HIDDEN float fl_expm1f(float x) { return expm1f(x); }

/* One vector variant: the scalar fallback, the pointer, and the entry gcc calls. */
#define FL_VARIANT(VT, T, N, TGT, FN, SCALAR, OURS, THEIRS)                               \
    __attribute__((target(TGT))) static VT fallback_##OURS(VT x) {                      \
        T a[N];                                                                          \
        memcpy(a, &x, sizeof a);                                                         \
        for (int i = 0; i < N; i++) a[i] = SCALAR(a[i]);                                 \
        memcpy(&x, a, sizeof a);                                                         \
        return x;                                                                        \
    }                                                                                    \
    static VT (*ptr_##OURS)(VT) = fallback_##OURS;                                       \
    __attribute__((target(TGT))) FL_HIDDEN VT OURS(VT x) { return ptr_##OURS(x); }

#define FL_FUNCTION(FN, FNF)                                                                 \
    FL_VARIANT(fl_d2, double, 2, "sse2", FN, FN, _ZGVbN2v_fl_##FN, _ZGVbN2v_##FN)            \
    FL_VARIANT(fl_d4, double, 4, "avx", FN, FN, _ZGVcN4v_fl_##FN, _ZGVcN4v_##FN)             \
    FL_VARIANT(fl_d4, double, 4, "avx2", FN, FN, _ZGVdN4v_fl_##FN, _ZGVdN4v_##FN)            \
    FL_VARIANT(fl_d8, double, 8, "avx512f", FN, FN, _ZGVeN8v_fl_##FN, _ZGVeN8v_##FN)         \
    FL_VARIANT(fl_f4, float, 4, "sse2", FNF, FNF, _ZGVbN4v_fl_##FNF, _ZGVbN4v_##FNF)         \
    FL_VARIANT(fl_f8, float, 8, "avx", FNF, FNF, _ZGVcN8v_fl_##FNF, _ZGVcN8v_##FNF)          \
    FL_VARIANT(fl_f8, float, 8, "avx2", FNF, FNF, _ZGVdN8v_fl_##FNF, _ZGVdN8v_##FNF)         \
    FL_VARIANT(fl_f16, float, 16, "avx512f", FNF, FNF, _ZGVeN16v_fl_##FNF, _ZGVeN16v_##FNF)

FL_FUNCTION(log1p, log1pf)
FL_FUNCTION(expm1, expm1f)

/* libmvec's name of each variant, and the pointer it replaces. */
#define FL_SLOT(OURS, THEIRS) {#THEIRS, (void**)&ptr_##OURS}
#define FL_SLOTS(FN, FNF)                                                                   \
    FL_SLOT(_ZGVbN2v_fl_##FN, _ZGVbN2v_##FN), FL_SLOT(_ZGVcN4v_fl_##FN, _ZGVcN4v_##FN),    \
    FL_SLOT(_ZGVdN4v_fl_##FN, _ZGVdN4v_##FN), FL_SLOT(_ZGVeN8v_fl_##FN, _ZGVeN8v_##FN),    \
    FL_SLOT(_ZGVbN4v_fl_##FNF, _ZGVbN4v_##FNF), FL_SLOT(_ZGVcN8v_fl_##FNF, _ZGVcN8v_##FNF), \
    FL_SLOT(_ZGVdN8v_fl_##FNF, _ZGVdN8v_##FNF), FL_SLOT(_ZGVeN16v_fl_##FNF, _ZGVeN16v_##FNF)

static const struct { const char* name; void** slot; } fl_slots[] = {
    FL_SLOTS(log1p, log1pf), FL_SLOTS(expm1, expm1f)};
enum { FL_PER_FUNCTION = 8 };

static int fl_resolved;   /* bit 0: every log1p variant is libmvec's; bit 1: every expm1 one */

/* Runs when the module is loaded (before its Python init, before any thread of ours). Only
 * whole functions switch over: every variant of log1p comes from libmvec, or none does. */
__attribute__((constructor)) static void fl_mvec_shim_init(void) {
    /* FASTLOSS_LIBMVEC_RUNTIME=0 keeps the scalar fallbacks: what a glibc < 2.35 runs (tests). */
    const char* off = getenv("FASTLOSS_LIBMVEC_RUNTIME");
    if (off != NULL && off[0] == '0') return;
    void* lib = dlopen("libmvec.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) return;
    for (int f = 0; f < 2; f++) {
        void* found[FL_PER_FUNCTION];
        int all = 1;
        for (int i = 0; i < FL_PER_FUNCTION; i++) {
            found[i] = dlsym(lib, fl_slots[f * FL_PER_FUNCTION + i].name);
            all = all && found[i] != NULL;
        }
        if (!all) continue;
        for (int i = 0; i < FL_PER_FUNCTION; i++)
            memcpy(fl_slots[f * FL_PER_FUNCTION + i].slot, &found[i], sizeof(void*));
        fl_resolved |= 1 << f;
    }
    /* The library stays loaded: the pointers now point into it. */
}

FL_HIDDEN int fl_mvec_shim_resolved(void) { return fl_resolved; }

#else
/* Elsewhere _simd_math.h never declares the fl_ functions: nothing to provide. */
typedef int fl_mvec_shim_unused;
#endif
