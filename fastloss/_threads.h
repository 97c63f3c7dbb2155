/* fastloss's own thread team: how a kernel's blocks are spread over threads.
 *
 * Why not OpenMP's parallel regions: libgomp's idle workers spin for milliseconds after each
 * region (GOMP_SPINCOUNT) and take the cores the caller's next step (BLAS, XGBoost, NumPy)
 * needs; a child forked after a region hangs in its first one; n_threads = 10**9 starts that
 * many threads; and the only remedies (OMP_WAIT_POLICY, GOMP_SPINCOUNT) are process-wide
 * settings that would change every other library sharing libgomp. This team
 *   - spins briefly after a call (FL_SPIN_NS: long enough to cover back-to-back calls, short
 *     against any next step), then sleeps on a condition variable;
 *   - lets the calling thread start at once: workers claim blocks from a shared counter as
 *     they wake (guided chunks), so a late worker takes fewer blocks instead of delaying the
 *     call; blocks own their partial sums, so any assignment gives the same bits;
 *   - never waits for a worker that has not started on the call (it is turned away instead);
 *   - keeps its workers off the caller's CPU (Linux): when the other CPUs are busy (another
 *     library's spinning threads: OpenBLAS's idle worker spins for ~0.1 s after each call,
 *     with no yield) the scheduler put the woken worker on the caller's CPU, where it only
 *     took turns with the caller; excluded from it, the worker takes its turn on another CPU
 *     from the spinning thread instead (see fl_pool_place);
 *   - is rebuilt in a forked child (pthread_atfork), and is capped at the CPUs the process
 *     may run on; a thread that cannot be created means fewer threads, never an error.
 * OpenMP stays the source of the default thread count (OMP_NUM_THREADS, threadpoolctl).
 * Without POSIX threads (Windows) an OpenMP region runs the same worker function; without
 * OpenMP everything runs on the calling thread.
 */
#ifndef FASTLOSS_THREADS_H
#define FASTLOSS_THREADS_H

#include <stddef.h>

/* The work of one call: `fn(ctx, worker)` runs on the caller (worker 0) and on each helping
 * thread (1, 2, ...), and claims blocks until none are left. */
typedef void (*fl_team_fn)(void* ctx, int worker);

#ifdef _OPENMP
#include <omp.h>
#define FL_OPENMP 1
#else
#define FL_OPENMP 0
#endif

/* Portable Linux builds (FASTLOSS_PORTABLE=1) link no OpenMP runtime: _omp_shim.c opens the
 * system's libgomp.so.1 when the module loads (the very copy LightGBM uses, if
 * they loaded it first) and asks it for these two; without one, OMP_NUM_THREADS and the CPU
 * count. Nothing else of OpenMP's runtime is used where the team (FL_POOL) runs. */
#if FL_OPENMP && defined(FL_OMP_RUNTIME_DLOPEN)
extern int fl_omp_get_max_threads(void);
extern int fl_omp_get_num_procs(void);
extern int fl_omp_shim_bound(void);
#define omp_get_max_threads fl_omp_get_max_threads
#define omp_get_num_procs fl_omp_get_num_procs
#endif

/* 0: no OpenMP runtime (serial build, or none found), 1: linked, 2: loaded at run time. */
static inline int fl_omp_runtime(void) {
#if FL_OPENMP && defined(FL_OMP_RUNTIME_DLOPEN)
    return fl_omp_shim_bound() ? 2 : 0;
#elif FL_OPENMP
    return 1;
#else
    return 0;
#endif
}

#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#include <unistd.h>
#endif

#if FL_OPENMP && (defined(__unix__) || defined(__APPLE__)) && !defined(FL_NO_POOL)
#define FL_POOL 1
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#else
#define FL_POOL 0
#endif

/* CPUs this process may run on (its affinity mask), at least 1. */
static int fl_cpu_count(void) {
#if defined(__linux__) && defined(CPU_COUNT)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
#endif
#if defined(_SC_NPROCESSORS_ONLN)
    {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        if (n > 0) return n > 4096 ? 4096 : (int)n;
    }
#endif
#if FL_OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
}

/* The default thread count: OpenMP's (OMP_NUM_THREADS, threadpoolctl), capped at the CPUs. */
static inline int fl_max_threads(void) {
#if FL_OPENMP
    int nt = omp_get_max_threads(), cpus = fl_cpu_count();
    return nt < cpus ? nt : cpus;
#else
    return 1;
#endif
}

/* A requested thread count capped at the CPUs (never thousands of threads). */
static inline int fl_threads_cap(int requested) {
#if FL_OPENMP
    int cpus = fl_cpu_count();
    return requested < cpus ? requested : cpus;
#else
    (void)requested;
    return 1;
#endif
}

#if FL_POOL

/* How long an idle worker spins before it sleeps: covers the gap between back-to-back calls
 * (a few microseconds of Python), and is short against a next step's milliseconds. */
#ifndef FL_SPIN_NS
#define FL_SPIN_NS 50000
#endif
/* Workers' stacks: kernels keep their scratch on the heap; this is ample for what remains. */
#define FL_WORKER_STACK (512 * 1024)

typedef struct {
    pthread_mutex_t lock;       /* guards the sleeps and wake-ups below */
    pthread_cond_t wake;        /* idle workers sleep here */
    pthread_cond_t done;        /* the caller sleeps here until the helpers are out */
    pthread_mutex_t busy;       /* one call at a time uses the team */
    /* (generation << 1) | open: a new call opens a new generation, which its end closes. */
    atomic_ullong state;
    atomic_int inside;          /* workers inside the open call's fn */
    atomic_int joined;          /* seats taken in the open call */
    fl_team_fn fn;
    void* ctx;
    int helpers;                /* seats in the open call: helping workers number 1..helpers */
    int started;                /* workers created so far */
    int capacity;
    pthread_t* threads;
} fl_pool_t;

static fl_pool_t fl_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                            PTHREAD_COND_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, 0, 0, 0,
                            NULL, NULL, 0, 0, 0, NULL};
static int fl_pool_atfork_done = 0;

#if defined(__linux__) && defined(_GNU_SOURCE) && defined(CPU_COUNT)
#define FL_PLACE_WORKERS 1
/* The caller's CPU and mask the workers' masks were made from (-1: none yet, or workers were
 * added since). */
static int fl_pool_placed_cpu = -1;
static cpu_set_t fl_pool_placed_mask;

/* Let the workers run wherever the caller may, except on the caller's own CPU.
 *
 * A woken thread goes to an idle CPU if there is one; if there is none, Linux puts it on
 * the waker's CPU, where it takes turns with the caller and the call gains nothing. That is
 * the common case inside pipelines: OpenBLAS's idle worker spins (without yielding) for about
 * 0.1 s after each BLAS call, so the CPU a fastloss call would use is busy. Measured on the
 * 2-CPU test machine, a 200k x 10 cross-entropy call between two matmuls: the worker ran on
 * the caller's CPU in 113 of 120 calls and the call took as long as on one thread (17.0 ms
 * against 16.9); excluded from it, the worker takes its turns on the other CPU from the
 * spinning thread and the call took 12.1-13.9 ms (alone, with both CPUs free: about 9).
 * The masks are only fastloss's own threads'; the caller's mask is read, never changed, and
 * bounds the workers', so a restriction by the user (taskset, cpusets, sched_setaffinity of
 * the calling thread) keeps holding. Per parallel call: one sched_getcpu (a vDSO read) and
 * one more sched_getaffinity (fl_cpu_count makes the other); the workers' masks are set only
 * when the caller's CPU or mask changed. */
static void fl_pool_place(void) {
    cpu_set_t set;
    int i, cpu = sched_getcpu();
    if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof(set), &set) != 0)
        return;
    if (cpu == fl_pool_placed_cpu && CPU_EQUAL(&set, &fl_pool_placed_mask))
        return;
    fl_pool_placed_cpu = cpu;
    fl_pool_placed_mask = set;
    CPU_CLR(cpu, &set);
    if (CPU_COUNT(&set) == 0)       /* the caller may run on one CPU only: leave them be */
        return;
    for (i = 0; i < fl_pool.started; i++)
        pthread_setaffinity_np(fl_pool.threads[i], sizeof(set), &set);   /* best effort */
}
#else
#define FL_PLACE_WORKERS 0
static inline void fl_pool_place(void) {}
#endif

static inline long long fl_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void fl_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Wait until `state` differs from `seen`: spin FL_SPIN_NS (if `spin`), then sleep. */
static unsigned long long fl_pool_wait(unsigned long long seen, int spin) {
    unsigned long long s;
    long long deadline = fl_now_ns() + FL_SPIN_NS;
    int i;
    while (spin) {
        for (i = 0; i < 256; i++) {
            s = atomic_load_explicit(&fl_pool.state, memory_order_acquire);
            if (s != seen) return s;
            fl_cpu_relax();
        }
        if (fl_now_ns() > deadline) break;
    }
    pthread_mutex_lock(&fl_pool.lock);
    while ((s = atomic_load(&fl_pool.state)) == seen)
        pthread_cond_wait(&fl_pool.wake, &fl_pool.lock);
    pthread_mutex_unlock(&fl_pool.lock);
    return s;
}

static void fl_pool_leave(void) {
    /* The last one out of a closed call wakes its caller (under the lock: no lost wake-up). */
    if (atomic_fetch_sub(&fl_pool.inside, 1) == 1 && !(atomic_load(&fl_pool.state) & 1)) {
        pthread_mutex_lock(&fl_pool.lock);
        pthread_cond_signal(&fl_pool.done);
        pthread_mutex_unlock(&fl_pool.lock);
    }
}

static void* fl_pool_worker(void* arg) {
    unsigned long long s, seen = atomic_load(&fl_pool.state);
    int seat, worked = 0;
    (void)arg;
    for (;;) {
        /* Spin only after having worked: a worker woken for a call with no seat left for it
         * goes straight back to sleep. */
        s = fl_pool_wait(seen, worked);
        seen = s;
        if (!(s & 1)) continue;                 /* a call closed: nothing to join */
        worked = 0;
        /* Announce, then check the call is still the one seen and open: the caller closes
         * before it waits for `inside` to drain, so either it waits for us or we see it
         * closed (both sides use sequentially consistent operations). */
        atomic_fetch_add(&fl_pool.inside, 1);
        if (atomic_load(&fl_pool.state) == s) {
            seat = atomic_fetch_add(&fl_pool.joined, 1);
            if (seat < fl_pool.helpers) {
                fl_pool.fn(fl_pool.ctx, seat + 1);
                worked = 1;
            }
        }
        fl_pool_leave();
    }
    return NULL;
}

static void fl_pool_after_fork_child(void) {
    /* The child has only the forking thread: the workers are gone. Start over (the old
     * memory is left as it is; the child may not even own a consistent copy of the locks). */
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    fl_pool.lock = m;
    fl_pool.busy = m;
    fl_pool.wake = c;
    fl_pool.done = c;
    atomic_store(&fl_pool.inside, 0);
    atomic_store(&fl_pool.joined, 0);
    atomic_store(&fl_pool.state, 0);
    fl_pool.started = 0;
    fl_pool.capacity = 0;
#if FL_PLACE_WORKERS
    fl_pool_placed_cpu = -1;
#endif
    fl_pool.threads = NULL;
}

/* Make sure `want` workers exist; return how many do (creation may fail: fewer then). */
static int fl_pool_grow(int want) {
    pthread_attr_t attr;
    if (!fl_pool_atfork_done) {
        pthread_atfork(NULL, NULL, fl_pool_after_fork_child);
        fl_pool_atfork_done = 1;
    }
    if (want > fl_pool.capacity) {
        pthread_t* t = (pthread_t*)realloc(fl_pool.threads, want * sizeof(pthread_t));
        if (t == NULL) return fl_pool.started;
        fl_pool.threads = t;
        fl_pool.capacity = want;
    }
    if (fl_pool.started >= want) return fl_pool.started;
    if (pthread_attr_init(&attr) != 0) return fl_pool.started;
    pthread_attr_setstacksize(&attr, FL_WORKER_STACK);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (fl_pool.started < want) {
        if (pthread_create(&fl_pool.threads[fl_pool.started], &attr, fl_pool_worker, NULL)
                != 0)
            break;
        fl_pool.started++;
#if FL_PLACE_WORKERS
        fl_pool_placed_cpu = -1;    /* created with the caller's mask: place it next */
#endif
    }
    pthread_attr_destroy(&attr);
    return fl_pool.started;
}

/* Run fn on the caller and up to nt - 1 workers; return when every worker is out of it. */
static void fl_team_run(int nt, fl_team_fn fn, void* ctx) {
    unsigned long long s;
    int helpers, i;
    if (nt <= 1 || pthread_mutex_trylock(&fl_pool.busy) != 0) {
        fn(ctx, 0);            /* another thread's call holds the team: run alone */
        return;
    }
    helpers = fl_pool_grow(nt - 1);
    if (helpers > nt - 1) helpers = nt - 1;
    if (helpers == 0) {
        pthread_mutex_unlock(&fl_pool.busy);
        fn(ctx, 0);
        return;
    }
    fl_pool_place();
    fl_pool.fn = fn;
    fl_pool.ctx = ctx;
    fl_pool.helpers = helpers;
    atomic_store(&fl_pool.joined, 0);
    s = atomic_load(&fl_pool.state);
    atomic_store(&fl_pool.state, (((s >> 1) + 1) << 1) | 1);   /* open the next call */
    /* Wake as many sleepers as there are seats (a worker still spinning takes a seat without
     * being woken; a woken one that finds none goes back to sleep). */
    pthread_mutex_lock(&fl_pool.lock);
    if (helpers >= fl_pool.started) {
        pthread_cond_broadcast(&fl_pool.wake);
    } else {
        for (i = 0; i < helpers; i++)
            pthread_cond_signal(&fl_pool.wake);
    }
    pthread_mutex_unlock(&fl_pool.lock);
    fn(ctx, 0);
    atomic_store(&fl_pool.state, atomic_load(&fl_pool.state) & ~1ULL);   /* close it */
    for (i = 0; i < 4096 && atomic_load(&fl_pool.inside) != 0; i++)
        fl_cpu_relax();
    if (atomic_load(&fl_pool.inside) != 0) {
        pthread_mutex_lock(&fl_pool.lock);
        while (atomic_load(&fl_pool.inside) != 0)
            pthread_cond_wait(&fl_pool.done, &fl_pool.lock);
        pthread_mutex_unlock(&fl_pool.lock);
    }
    pthread_mutex_unlock(&fl_pool.busy);
}

#elif FL_OPENMP
static void fl_team_run(int nt, fl_team_fn fn, void* ctx) {
    if (nt <= 1) {
        fn(ctx, 0);
        return;
    }
#pragma omp parallel num_threads(nt)
    fn(ctx, omp_get_thread_num());
}
#else
static void fl_team_run(int nt, fl_team_fn fn, void* ctx) {
    (void)nt;
    fn(ctx, 0);
}
#endif

/* Blocks [first, first + count) of `nb` for the claiming thread, or count 0 when none are left.
 * Guided chunks: a share of what remains, at least `grain`: few claims, and a thread that
 * wakes late finds small chunks left to balance the end. */
#if FL_POOL
typedef atomic_llong fl_counter;
#define fl_counter_init(c, v) atomic_init((c), (v))
static inline long long fl_claim(fl_counter* next, long long nb, long long grain, int nt,
                                 long long* count) {
    long long cur = atomic_load_explicit(next, memory_order_relaxed), take;
    do {
        if (cur >= nb) { *count = 0; return nb; }
        take = (nb - cur) / (2LL * nt);
        if (take < grain) take = grain;
        if (take > nb - cur) take = nb - cur;
    } while (!atomic_compare_exchange_weak(next, &cur, cur + take));
    *count = take;
    return cur;
}
#else
typedef long long fl_counter;
#define fl_counter_init(c, v) (*(c) = (v))
static inline long long fl_claim(fl_counter* next, long long nb, long long grain, int nt,
                                 long long* count) {
    long long cur, take;
#if FL_OPENMP
#pragma omp atomic capture
#endif
    { cur = *next; *next += grain; }
    (void)nt;
    if (cur >= nb) { *count = 0; return nb; }
    take = grain < nb - cur ? grain : nb - cur;
    *count = take;
    return cur;
}
#endif

#endif
