# What the entry module (compiled once) and the kernel modules (compiled per instruction set)
# exchange: the description of one call, and the table of kernel entry points that each kernel
# module exports in a capsule. Included by both sides, so the layouts cannot drift apart.

cdef enum:
    # Bits of a job's `wanted`: the quantities a call asks for.
    WANT_LOSS = 1
    WANT_GRAD = 2
    WANT_HESS = 4
    # Codes returned by kernel entry points besides an encoded bad element (>= 0).
    OK = -1
    NOMEM = -2
    BAD_KERNEL = -3
    # A bad element is returned as index * BAD_ARGS + the argument it lies in.
    BAD_Y_TRUE = 1
    BAD_Y_PRED = 2
    BAD_WEIGHT = 3
    BAD_ARGS = 4
    # Row-wise inputs: how y_pred becomes the row's probabilities.
    ROWS_SOFTMAX = 0        # logits
    ROWS_PROBABILITIES = 1  # probabilities, log clamped at -100
    ROWS_RAW = 2            # scores used as they are (margin losses): no softmax, no logs
    ABI_VERSION = 5
    # Elements per row block of row-wise kernels: the block's scratch stays in L1/L2.
    RW_ELEMS = 2048


cdef inline Py_ssize_t bad_element(Py_ssize_t index, int argument) noexcept nogil:
    return index * BAD_ARGS + argument


cdef struct EwJob:
    # One elementwise call, dtype-free: pointers are cast back in the typed block worker.
    const void* params     # the loss's parameter struct
    const void* t
    const void* p
    const void* w          # sample weights or NULL
    const void* columns    # per-column parameter (length ncol) or NULL
    void* lo               # per-element loss out (reduction "none") or NULL
    void* go
    void* ho
    Py_ssize_t n
    Py_ssize_t row_len     # elements per first-axis row: per-row weights cover one row each
    Py_ssize_t ncol        # length of the last axis
    bint w_per_row
    int wanted
    double gscale          # 1 / the mean's normalizer (1 for "sum"/"none")
    double wpre            # a power of two the weights are scaled by first (see mean_scale)
    double col_scalar      # the column parameter when `columns` is NULL
    # GBDT conventions (fastloss.gbdt): the hessian is h * hscale, raised to hfloor (NaN kept;
    # -inf: no floor), before the sample weight; out32: lo/go/ho are float32 whatever p is.
    double hscale
    double hfloor
    bint out32
    # fastloss.dask's chunks: the global flat index of element 0 (blocks, columns and error
    # indices follow the global index), and where the per-block loss partials go (or NULL).
    Py_ssize_t offset
    double* parts


cdef struct RwJob:
    # One row-wise call over y_pred of shape (n, k).
    const void* params      # the loss's parameter struct
    const void* z           # y_pred (n, k)
    const void* t           # float targets (n, k), or NULL for labels
    const long long* lab    # int64 labels (n,), or NULL
    const void* w           # per-row sample weights, or NULL
    const void* cw          # class weights (k,), or NULL
    void* lo                # per-row loss out (reduction "none"), or NULL
    void* go
    void* ho
    Py_ssize_t n
    Py_ssize_t k
    Py_ssize_t rows         # rows per block
    int inputs              # ROWS_SOFTMAX or ROWS_PROBABILITIES
    int wanted
    double gscale
    double wpre             # as EwJob.wpre
    double smooth           # label smoothing e
    double cw_sum           # sum of class weights (k without them)
    long long ignore
    bint has_ignore
    # GBDT conventions, as EwJob's; class_major: z is (k, n) C-ordered (y_pred's transpose,
    # LightGBM's layout) and go/ho are written (k, n) too.
    double hscale
    double hfloor
    bint out32
    bint class_major
    bint rows_mean          # "mean" over rows (sample-weighted), not over class weights
    # fastloss.dask's chunks, as EwJob's: the global index of row 0, and the per-block
    # partials of the loss and of the mean's weight (label_normalizer: its partials in
    # parts_num), or NULL.
    Py_ssize_t offset
    double* parts_num
    double* parts_den


# fastloss's thread team (_threads.h): fn(ctx, worker) runs on the caller and on up to
# nt - 1 helping threads; the entry module runs its own parallel passes on the kernel
# module's team, so a process has one team.
ctypedef void (*team_body)(void* ctx, int worker) noexcept nogil
ctypedef void (*team_runner)(int nt, team_body fn, void* ctx) noexcept nogil

ctypedef Py_ssize_t (*elementwise_entry)(int kernel, bint is_double, const EwJob* job,
                                         int n_threads, double* loss_sum) noexcept nogil
ctypedef Py_ssize_t (*rowwise_entry)(int kernel, bint is_double, const RwJob* job,
                                     int n_threads, double* loss_sum,
                                     double* normalizer) noexcept nogil
ctypedef Py_ssize_t (*normalizer_entry)(bint is_double, const RwJob* job, int n_threads,
                                        double* normalizer) noexcept nogil


cdef struct KernelTable:
    int abi_version
    elementwise_entry elementwise
    rowwise_entry rowwise
    normalizer_entry label_normalizer
    team_runner run_team
