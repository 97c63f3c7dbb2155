/* Portable builds (FASTLOSS_PORTABLE=1) only, force-included into every translation unit
 * (gcc -include): bind the glibc functions whose default symbol version is newer than glibc
 * 2.28 (manylinux_2_28) to their oldest version, so that modules linked on a newer glibc still
 * load on 2.28. Same functions, same results:
 *   - exp, log, pow, exp2, log2 got new versions in glibc 2.29 (the old ones are wrappers that
 *     also set errno, which -fno-math-errno code never reads);
 *   - the pthread and dl functions moved from libpthread/libdl into libc in glibc 2.34 (new
 *     versions there; setup.py links libpthread.so.0 and libdl.so.2 so that older glibcs find
 *     them where they were). pthread_cond_* keep their default (GLIBC_2.3.2) versions: the
 *     GLIBC_2.2.5 ones are the old condition variables; pthread_setaffinity_np binds to
 *     GLIBC_2.3.4 on x86-64 (2.3.3's has another signature).
 * .ci/wheel_check.py fails the build when any other symbol newer than 2.28 appears. */
#ifndef FASTLOSS_GLIBC_COMPAT_H
#define FASTLOSS_GLIBC_COMPAT_H
#if defined(__linux__) && defined(__GNUC__)
/* Included first, so it decides the feature macros: GNU's, as Python.h (pyconfig.h) asks
 * in every other build (the thread team's CPU masks need them: sched_getaffinity, CPU_COUNT,
 * sched_getcpu, pthread_setaffinity_np). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <features.h>
#if defined(__GLIBC__)
#if defined(__x86_64__)
#define FL_GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define FL_GLIBC_BASE "GLIBC_2.17"
#endif
#ifdef FL_GLIBC_BASE
#define FL_SYMVER(sym) __asm__(".symver " #sym "," #sym "@" FL_GLIBC_BASE)
#if __GLIBC_PREREQ(2, 29)
FL_SYMVER(exp);
FL_SYMVER(log);
FL_SYMVER(pow);
FL_SYMVER(exp2);
FL_SYMVER(log2);
#endif
#if __GLIBC_PREREQ(2, 34)
FL_SYMVER(pthread_create);
FL_SYMVER(pthread_attr_setstacksize);
FL_SYMVER(pthread_mutex_trylock);
FL_SYMVER(pthread_once);
FL_SYMVER(pthread_key_create);
FL_SYMVER(pthread_getspecific);
FL_SYMVER(pthread_setspecific);
FL_SYMVER(dlopen);
FL_SYMVER(dlsym);
FL_SYMVER(dlerror);
FL_SYMVER(dlclose);
/* (its oldest version with this signature is newer than the base: 2.3.3's took no size) */
#if defined(__x86_64__)
__asm__(".symver pthread_setaffinity_np,pthread_setaffinity_np@GLIBC_2.3.4");
#else
FL_SYMVER(pthread_setaffinity_np);
#endif
#endif
#endif
#endif
#endif
#endif
