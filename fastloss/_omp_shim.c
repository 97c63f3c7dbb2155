/* The OpenMP runtime of portable Linux builds, bound when the module loads (see _threads.h).
 *
 * fastloss runs its own thread team and needs OpenMP's runtime only for the default thread
 * count (omp_get_max_threads: OMP_NUM_THREADS, omp_set_num_threads, threadpoolctl's limits).
 * Linking libgomp would make the wheel depend on a library that manylinux does not allow
 * (auditwheel would graft a private copy: a second runtime, with its own spinning threads,
 * beside the system one LightGBM uses). Opening "libgomp.so.1" here instead gives
 * the system's copy, and the one already loaded when a neighbour loaded it first (the dynamic
 * loader shares a library by name), so threadpoolctl sees and limits it. Without libgomp the
 * module still loads: OMP_NUM_THREADS (its first value), else the CPU count. */
#if defined(__linux__) && defined(__GNUC__)
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FL_HIDDEN __attribute__((visibility("hidden")))

static int (*max_threads)(void);
static int (*num_procs)(void);

__attribute__((constructor)) static void fl_omp_shim_init(void) {
    void* lib = dlopen("libgomp.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) return;
    void* a = dlsym(lib, "omp_get_max_threads");
    void* b = dlsym(lib, "omp_get_num_procs");
    if (a == NULL || b == NULL) return;    /* not an OpenMP runtime: as without one */
    memcpy(&max_threads, &a, sizeof a);
    memcpy(&num_procs, &b, sizeof b);
    /* The library stays loaded: the pointers point into it. */
}

FL_HIDDEN int fl_omp_shim_bound(void) { return max_threads != NULL; }

FL_HIDDEN int fl_omp_get_num_procs(void) {
    if (num_procs != NULL) return num_procs();
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (n > 4096 ? 4096 : (int)n);
}

FL_HIDDEN int fl_omp_get_max_threads(void) {
    if (max_threads != NULL) return max_threads();
    const char* s = getenv("OMP_NUM_THREADS");
    if (s != NULL) {
        char* end;
        long v = strtol(s, &end, 10);
        if (end != s && v > 0) return v > 4096 ? 4096 : (int)v;
    }
    return fl_omp_get_num_procs();
}
#else
typedef int fl_omp_shim_unused;
#endif
