# fastloss.dask's per-chunk calls (included by _entry.pyx).
#
# A dask chunk is one contiguous piece of the global index (flat elements, or rows) starting
# at `offset`. Its kernel call blocks the global index exactly as the in-memory call does
# (blocks start at multiples of the block size, not at the chunk's start), returns each
# block's float64 partial sum instead of their total, and reports a bad element by its
# global index. The partials of blocks that lie wholly inside a chunk are the in-memory
# call's own; fastloss.dask recomputes the few blocks that straddle two chunks from their
# slivers and sums all partials in block order with `ordered_sum` -- partials_finish's sum.
from libc.string cimport memset

CHUNK_BLOCK = EW_BLOCK


def rows_per_block(Py_ssize_t k):
    """Rows per reduction block of a row-wise kernel over k classes."""
    return max(1, RW_ELEMS // k) if k > 0 else 1


def mean_scale(double den):
    """(gscale, wpre) of the gradient of a mean over `den` (see _mean_scale)."""
    cdef double wpre = 1.0
    cdef double g = _mean_scale(den, &wpre)
    return g, wpre


def ordered_sum(parts):
    """Block partials summed in block order, from 0: partials_finish's arithmetic."""
    cdef cnp.ndarray a = np.ascontiguousarray(parts, dtype=np.float64).reshape(-1)
    cdef const double* x = <const double*>cnp.PyArray_DATA(a)
    cdef Py_ssize_t b, nb = cnp.PyArray_SIZE(a)
    cdef double s = 0
    for b in range(nb):
        s += x[b]
    return s


def spec_info(Spec spec):
    """What fastloss.dask needs to know of a loss's kernel to plan its graph."""
    return {"family": spec.family, "labels": spec.labels, "dense": spec.dense,
            "has_ignore": spec.has_ignore, "class_weight": spec.cw64 is not None,
            "rows_mean": spec.rows_mean, "column": spec.column64 is not None,
            "loss_name": spec.loss_name}


cdef inline Py_ssize_t _n_blocks(Py_ssize_t offset, Py_ssize_t n, Py_ssize_t size) noexcept:
    return (offset % size + n + size - 1) // size if n > 0 else 0


cdef inline int _chunk_threads(Spec spec, int n_threads):
    return n_threads if n_threads > 0 else spec.n_threads


def chunk_weights(sample_weight, dtype, Py_ssize_t offset, tuple shape):
    """Check a chunk of sample weights (the global weights' `shape`, the chunk at flat
    `offset`) and return their partial sums per block of CHUNK_BLOCK weights."""
    cdef cnp.ndarray w = _v.as_real(sample_weight, dtype, "sample_weight").reshape(-1)
    cdef Py_ssize_t m = cnp.PyArray_SIZE(w), nb = _n_blocks(offset, m, EW_BLOCK), b, start
    cdef Py_ssize_t first = offset - offset % EW_BLOCK, bad = OK, got
    cdef cnp.ndarray parts = np.zeros(nb, dtype=np.float64)
    cdef double* pp = <double*>cnp.PyArray_DATA(parts)
    cdef bint is_double = cnp.PyArray_TYPE(w) == cnp.NPY_DOUBLE
    cdef void* data = cnp.PyArray_DATA(w)
    with nogil:
        for b in range(nb):
            start = first + b * EW_BLOCK - offset
            if is_double:
                got = _weights_block(<const double*>data, max(0, start), min(m, start + EW_BLOCK),
                                     &pp[b])
            else:
                got = _weights_block(<const float*>data, max(0, start), min(m, start + EW_BLOCK),
                                     &pp[b])
            if bad == OK and got != OK:
                bad = got
    if bad != OK:
        _v.bad_weight(w, bad, sample_weight, offset=offset, shape=shape)
    return parts


def chunk_elementwise(Spec spec, y_true, y_pred, sample_weight, int wanted, int reduction_code,
                      double gscale, double wpre, Py_ssize_t offset, tuple shape,
                      bint w_per_row, bint check_weights, bint partials, int n_threads=0):
    """One chunk of an elementwise call: flat y_true/y_pred (and sample weights, per element
    or, `w_per_row`, per first-axis row), element 0 at global flat `offset` of an array of
    `shape`. `gscale`/`wpre`: the mean's gradient scale (from `mean_scale` of the global
    normalizer). Returns (loss "none" or None, gradient or None, hessian or None, the loss's
    per-block partials or None); a bad element raises the in-memory call's ValueError with
    its global index."""
    cdef cnp.ndarray p = _pred(y_pred).reshape(-1)
    cdef int typ = cnp.PyArray_TYPE(p)
    cdef object dtype = (<object>p).dtype
    cdef cnp.ndarray t = _cast(y_true, typ, dtype, "y_true", None).reshape(-1)
    cdef cnp.ndarray w = None, parts = None, col
    cdef Py_ssize_t n = cnp.PyArray_SIZE(p), bad, row_len = 1
    cdef cnp.npy_intp dims[1]
    cdef EwJob job
    cdef double lsum = 0
    cdef list keep = []
    cdef int nt = _chunk_threads(spec, n_threads)
    cdef Py_ssize_t ncol = shape[len(shape) - 1] if len(shape) > 0 else 1
    if len(shape) > 1 and shape[0] > 0:
        for d in shape[1:]:
            row_len *= d
    if cnp.PyArray_SIZE(t) != n:
        _v.shape_error("y_true", t, (n,))
    dims[0] = n
    job.t = cnp.PyArray_DATA(t)
    job.p = cnp.PyArray_DATA(p)
    job.n = n
    job.ncol = ncol
    job.row_len = row_len
    job.w = NULL
    job.w_per_row = False
    job.wanted = wanted
    job.columns = NULL
    job.params = PyBytes_AS_STRING(spec.params)
    job.col_scalar = spec.column_scalar
    job.offset = offset
    job.parts = NULL
    job.hscale = 1.0
    job.hfloor = -INFINITY
    job.out32 = False
    if spec.column64 is not None:
        col = spec.column64 if typ == cnp.NPY_DOUBLE else spec.column32
        if cnp.PyArray_SIZE(col) != ncol or len(shape) == 0:
            _v.param_shape_error(spec.column_name, col, shape)
        job.columns = cnp.PyArray_DATA(col)
    if sample_weight is not None:
        w = _cast(sample_weight, typ, dtype, "sample_weight", None).reshape(-1)
        if cnp.PyArray_SIZE(w) != ((n // row_len if row_len > 0 else 0) if w_per_row else n):
            _v.shape_error("sample_weight", w, (n,), per_row=True)
        job.w = cnp.PyArray_DATA(w)
        job.w_per_row = w_per_row
        if check_weights:
            chunk_weights(sample_weight, dtype,
                          (offset // row_len if row_len > 0 else 0) if w_per_row else offset,
                          shape[:1] if w_per_row else shape)
    if typ == cnp.NPY_FLOAT and spec.f32_overflow is not None:
        _v.param_overflows_float32(*spec.f32_overflow)
    job.lo = _out(None, 1, dims, typ, "loss_out", keep) \
        if wanted & WANT_LOSS and reduction_code == RED_NONE else NULL
    job.go = _out(None, 1, dims, typ, "gradient_out", keep) if wanted & WANT_GRAD else NULL
    job.ho = _out(None, 1, dims, typ, "hessian_out", keep) if wanted & WANT_HESS else NULL
    if partials and wanted & WANT_LOSS and reduction_code != RED_NONE:
        parts = np.zeros(_n_blocks(offset, n, EW_BLOCK), dtype=np.float64)
        job.parts = <double*>cnp.PyArray_DATA(parts)
    job.wpre = wpre if reduction_code == RED_MEAN else 1.0
    job.gscale = gscale if reduction_code == RED_MEAN else 1.0
    with nogil:
        bad = kernels.elementwise(spec.kernel, typ == cnp.NPY_DOUBLE, &job, nt, &lsum)
    if bad != OK:
        _v.kernel_error(bad, spec.errors, {"y_true": t, "y_pred": p}, offset=offset, shape=shape)
    outs = [None, None, None]
    i = 0
    for j, bit in enumerate((WANT_LOSS, WANT_GRAD, WANT_HESS)):
        if wanted & bit and (bit != WANT_LOSS or reduction_code == RED_NONE):
            outs[j] = keep[i]
            i += 1
    return outs[0], outs[1], outs[2], parts


def chunk_rowwise(Spec spec, y_true, y_pred, sample_weight, int wanted, int reduction_code,
                  double gscale, double wpre, Py_ssize_t offset, Py_ssize_t n_total,
                  bint check_weights, bint partials, int n_threads=0):
    """One chunk of rows of a row-wise call, row 0 at global row `offset` of `n_total` rows.
    Returns (loss "none" or None, gradient or None, hessian or None, loss partials or None,
    the mean's weight partials or None), per block of `rows_per_block(k)` rows."""
    cdef cnp.ndarray p = _pred(y_pred)
    cdef int typ = cnp.PyArray_TYPE(p)
    cdef object dtype = (<object>p).dtype
    cdef cnp.ndarray t = None, lab = None, w = None, pn = None, pd = None
    cdef object cw = None
    cdef RwJob job
    cdef Py_ssize_t n, k, bad
    cdef double num = 0, den_main = 0
    cdef list keep = []
    cdef int nt = _chunk_threads(spec, n_threads)
    cdef cnp.npy_intp ndims[1]
    if cnp.PyArray_NDIM(p) != 2 or cnp.PyArray_DIMS(p)[1] == 0:
        _v.rowwise_shape_error(p)
    n = cnp.PyArray_DIMS(p)[0]
    k = cnp.PyArray_DIMS(p)[1]
    job.z = cnp.PyArray_DATA(p)
    job.n = n
    job.k = k
    job.rows = max(1, RW_ELEMS // k)
    job.params = PyBytes_AS_STRING(spec.params)
    job.inputs = spec.inputs
    job.wanted = wanted
    job.smooth = spec.smooth
    job.has_ignore = spec.has_ignore
    job.ignore = spec.ignore
    job.rows_mean = spec.rows_mean
    job.offset = offset
    job.parts_num = job.parts_den = NULL
    job.t = NULL
    job.lab = NULL
    job.w = NULL
    job.cw = NULL
    job.cw_sum = k
    job.hscale = 1.0
    job.hfloor = -INFINITY
    job.out32 = False
    job.class_major = False
    if spec.labels and _v.is_labels(y_true):
        lab = _v.as_labels(y_true, n, k, spec.ignore if spec.has_ignore else None)
        if cnp.PyArray_NDIM(lab) != 1 or cnp.PyArray_DIMS(lab)[0] != n:
            _v.shape_error("y_true", lab, (n,), labels=True)
        job.lab = <const long long*>cnp.PyArray_DATA(lab)
    elif not spec.dense:
        _v.labels_only(spec.loss_name, y_true, n)
    else:
        t = _cast(y_true, typ, dtype, "y_true", ((<object>p).shape, (n,)))
        if not _same_shape(t, p):
            _v.shape_error("y_true", t, (<object>p).shape, labels=spec.labels)
        job.t = cnp.PyArray_DATA(t)
    if spec.cw64 is not None:
        cw = spec.cw64 if typ == cnp.NPY_DOUBLE else spec.cw32
        if cnp.PyArray_SIZE(cw) != k:
            _v.param_shape_error("class_weight", cw, (<object>p).shape)
        job.cw = cnp.PyArray_DATA(cw)
        job.cw_sum = spec.cw_sum
    if typ == cnp.NPY_FLOAT and spec.f32_overflow is not None:
        _v.param_overflows_float32(*spec.f32_overflow)
    if sample_weight is not None:
        w = _cast(sample_weight, typ, dtype, "sample_weight", ((n,),))
        if cnp.PyArray_NDIM(w) != 1 or cnp.PyArray_DIMS(w)[0] != n:
            _v.shape_error("sample_weight", w, (n,), rowwise=(<object>p).shape)
        job.w = cnp.PyArray_DATA(w)
        if check_weights:
            chunk_weights(sample_weight, dtype, offset, (n_total,))
    ndims[0] = n
    job.lo = _out(None, 1, ndims, typ, "loss_out", keep) \
        if wanted & WANT_LOSS and reduction_code == RED_NONE else NULL
    job.go = _out(None, 2, cnp.PyArray_DIMS(p), typ, "gradient_out", keep) \
        if wanted & WANT_GRAD else NULL
    job.ho = _out(None, 2, cnp.PyArray_DIMS(p), typ, "hessian_out", keep) \
        if wanted & WANT_HESS else NULL
    if partials and wanted & WANT_LOSS and reduction_code != RED_NONE:
        pn = np.zeros(_n_blocks(offset, n, job.rows), dtype=np.float64)
        pd = np.zeros(_n_blocks(offset, n, job.rows), dtype=np.float64)
        job.parts_num = <double*>cnp.PyArray_DATA(pn)
        job.parts_den = <double*>cnp.PyArray_DATA(pd)
    job.wpre = wpre if reduction_code == RED_MEAN else 1.0
    job.gscale = gscale if reduction_code == RED_MEAN else 1.0
    with nogil:
        bad = kernels.rowwise(spec.kernel, typ == cnp.NPY_DOUBLE, &job, nt, &num, &den_main)
    if bad != OK:
        _v.kernel_error(bad, spec.errors,
                        {"y_true": y_true if lab is not None else t, "y_pred": p},
                        offset=offset, shape=(n_total,) if lab is not None else (n_total, k))
    outs = [None, None, None]
    i = 0
    for j, bit in enumerate((WANT_LOSS, WANT_GRAD, WANT_HESS)):
        if wanted & bit and (bit != WANT_LOSS or reduction_code == RED_NONE):
            outs[j] = keep[i]
            i += 1
    return outs[0], outs[1], outs[2], pn, pd


def chunk_label_normalizer(Spec spec, y_true, sample_weight, dtype, Py_ssize_t k,
                           Py_ssize_t offset, Py_ssize_t n_total, int n_threads=0):
    """Partials (per CHUNK_BLOCK rows) of the mean's normalizer over integer labels: the sum
    of class_weight[label] * sample_weight over non-ignored rows, as the in-memory call's
    first pass; a label out of range raises with its global row."""
    cdef cnp.ndarray lab, w = None, parts
    cdef object cw = None
    cdef RwJob job
    cdef Py_ssize_t n, bad
    cdef double den = 0
    cdef bint is_double = np.dtype(dtype) == np.float64
    cdef int nt = _chunk_threads(spec, n_threads)
    n = np.shape(y_true)[0] if np.ndim(y_true) == 1 else -1
    lab = _v.as_labels(y_true, n, k, spec.ignore if spec.has_ignore else None)
    if cnp.PyArray_NDIM(lab) != 1:
        _v.shape_error("y_true", lab, (n,), labels=True)
    n = cnp.PyArray_DIMS(lab)[0]
    memset(&job, 0, sizeof(job))
    job.n = n
    job.k = k
    job.lab = <const long long*>cnp.PyArray_DATA(lab)
    job.has_ignore = spec.has_ignore
    job.ignore = spec.ignore
    job.offset = offset
    if spec.cw64 is not None:
        cw = spec.cw64 if is_double else spec.cw32
        job.cw = cnp.PyArray_DATA(cw)
    if sample_weight is not None:
        w = _v.as_real(sample_weight, np.float64 if is_double else np.float32, "sample_weight")
        job.w = cnp.PyArray_DATA(w)
    parts = np.zeros(_n_blocks(offset, n, EW_BLOCK), dtype=np.float64)
    job.parts_num = <double*>cnp.PyArray_DATA(parts)
    with nogil:
        bad = kernels.label_normalizer(is_double, &job, nt, &den)
    if bad != OK:
        _v.kernel_error(bad, spec.errors, {"y_true": y_true}, offset=offset, shape=(n_total,))
    return parts
