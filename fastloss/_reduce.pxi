# Threads and deterministic block reductions, shared by the entry module and the kernels:
# fixed blocks of the global index, float64 partials per block, summed in block order, so a
# reduced result is bit-identical for every thread count. Nothing here depends on the
# instruction set.
from cython cimport floating
from libc.stdlib cimport malloc, free
from libc.math cimport INFINITY

cdef extern from "_simd_math.h" nogil:
    int fl_max_threads()
    int fl_threads_cap(int requested)
    int fl_cpu_count()
    int fl_cpu_level()
    int FL_OPENMP
    int FL_POOL
    int FL_HAVE_LIBMVEC
    const char* FL_ISA
    # fastloss's thread team (_threads.h): fn(ctx, worker) runs on the caller (worker 0) and
    # on up to nt - 1 helpers, each claiming blocks from a shared counter until none are left.
    void fl_team_run(int nt, team_body fn, void* ctx)
    ctypedef long long fl_counter
    void fl_counter_init(fl_counter* c, long long v)
    long long fl_claim(fl_counter* next, long long nb, long long grain, int nt, long long* count)

cdef enum:
    # Elements per reduction block. The size keeps a block's scratch in L1.
    EW_BLOCK = 2048
    # Elements per sub-chunk inside a block: the chunk's loss scratch stays in L1 while the
    # inputs stream past it.
    EW_SUB = 256
    # exp/log-bound loops run over a multiple of this many elements (see ew_padded): a multiple
    # of every vector width (16 float32 lanes in AVX-512) and of any unrolling gcc applies.
    EW_PAD = 32
    # How far ahead (elements) exp/log-bound loops ask for their data: far enough to cover
    # DRAM latency at their slow pace, near enough to stay in L1/L2.
    EW_PREFETCH_AHEAD = 1024
    # Partials for this many blocks live on the stack; more are malloc'ed (n > 32768).
    STACK_BLOCKS = 16
    # Blocks a thread claims at least at a time: cheap blocks take ~1 us each, so a few
    # together make the claim's cost negligible; exp/log-bound ones take several us.
    GRAIN_CHEAP = 4
    GRAIN_TRANSCENDENTAL = 1

# Work (in elements) a thread must get before a parallel region pays for itself: entering one
# costs about 1 us, a memory-bound element about 0.5 ns, an exp/log-bound one a few ns.
cdef Py_ssize_t MIN_WORK_CHEAP = 32768
cdef Py_ssize_t MIN_WORK_TRANSCENDENTAL = 4096


cdef inline int n_threads_for(int requested, Py_ssize_t work, Py_ssize_t min_work) noexcept nogil:
    """Threads to use for `work` elements (capped at the CPUs); 1 means: run on the caller."""
    cdef int nt = fl_threads_cap(requested) if requested > 0 else fl_max_threads()
    cdef Py_ssize_t cap = work // min_work
    if cap < nt:
        nt = <int>cap
    return nt if nt > 1 else 1


cdef struct Partials:
    # One slot per block: its float64 partial sums and its first bad index (or OK).
    Py_ssize_t nb
    double* num
    double* den
    Py_ssize_t* bad
    double s_num[STACK_BLOCKS]
    double s_den[STACK_BLOCKS]
    Py_ssize_t s_bad[STACK_BLOCKS]


cdef inline int partials_init(Partials* P, Py_ssize_t nb) noexcept nogil:
    cdef Py_ssize_t b
    P.nb = nb
    if nb <= STACK_BLOCKS:
        P.num = P.s_num
        P.den = P.s_den
        P.bad = P.s_bad
    else:
        P.num = <double*>malloc(nb * sizeof(double))
        P.den = <double*>malloc(nb * sizeof(double))
        P.bad = <Py_ssize_t*>malloc(nb * sizeof(Py_ssize_t))
        if P.num == NULL or P.den == NULL or P.bad == NULL:
            partials_free(P)
            return -1
    for b in range(nb):
        P.num[b] = 0
        P.den[b] = 0
        P.bad[b] = OK
    return 0


cdef inline void partials_free(Partials* P) noexcept nogil:
    if P.num != P.s_num:
        free(P.num)
        free(P.den)
        free(P.bad)
    P.num = P.s_num
    P.den = P.s_den
    P.bad = P.s_bad


cdef inline Py_ssize_t partials_finish(Partials* P, double* num, double* den) noexcept nogil:
    """Sum the block partials in block order; return the first bad index, or OK."""
    cdef Py_ssize_t b, first = OK
    cdef double sn = 0, sd = 0
    for b in range(P.nb):
        sn += P.num[b]
        sd += P.den[b]
        if first == OK and P.bad[b] != OK:
            first = P.bad[b]
    num[0] = sn
    den[0] = sd
    partials_free(P)
    return first


cdef enum:
    SUM_LANES = 32


cdef inline void lanes_add(double* acc, const floating* x, Py_ssize_t n) noexcept nogil:
    # 32 float64 lanes in a fixed order: gcc turns the unrolled lane loop into 4-16 independent
    # vector adds (no -ffast-math needed). Which lane gets which element depends only on the
    # position in the block, so sums do not depend on the thread count.
    cdef Py_ssize_t i = 0, j, m = n - n % SUM_LANES
    while i < m:  # (Cython turns range() into a C loop only for a literal step)
        for j in range(SUM_LANES):
            acc[j] += x[i + j]
        i += SUM_LANES
    for i in range(m, n):
        acc[i - m] += x[i]


cdef inline double lanes_total(double* acc) noexcept nogil:
    cdef Py_ssize_t i, j = SUM_LANES
    while j > 1:
        j //= 2
        for i in range(j):
            acc[i] += acc[i + j]
    return acc[0]


cdef inline double block_sum(const floating* x, Py_ssize_t n) noexcept nogil:
    cdef double acc[SUM_LANES]
    cdef Py_ssize_t j
    for j in range(SUM_LANES):
        acc[j] = 0
    lanes_add(acc, x, n)
    return lanes_total(acc)
