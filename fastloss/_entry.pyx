# The Python-facing entry: validates arguments at C speed on the common path (contiguous
# float32/float64 ndarrays), hands anything else to fastloss._validation, then runs a kernel.
cimport numpy as cnp
import numpy as np
from fastloss import _validation as _v

cnp.import_array()

include "_jobs.pxi"
include "_reduce.pxi"

from cpython.bytes cimport PyBytes_AS_STRING
from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.math cimport NAN, INFINITY
from libc.float cimport DBL_MIN

cdef enum:
    RED_NONE = 0
    RED_SUM = 1
    RED_MEAN = 2

# The kernel table of the module fastloss._config chose for this CPU (see use_kernels).
cdef const KernelTable* kernels = NULL
cdef object kernel_names = None
cdef object pack = None


def use_kernels(module):
    """Run every later call on `module`'s kernels (a fastloss._ext_<isa> module)."""
    global kernels, kernel_names, pack
    cdef const KernelTable* table = <const KernelTable*>PyCapsule_GetPointer(
        module.table, b"fastloss.KernelTable")
    if table.abi_version != ABI_VERSION:
        raise ImportError(f"{module.__name__} was built for another fastloss (kernel ABI "
                          f"{table.abi_version}, expected {ABI_VERSION}); reinstall fastloss")
    kernels = table
    kernel_names = {"elementwise": {n: i for i, n in enumerate(module.ELEMENTWISE_KERNELS)},
                    "rowwise": {n: i for i, n in enumerate(module.ROWWISE_KERNELS)}}
    pack = module.pack


cdef class Spec:
    """A loss object's kernel and parameters in C form, built once per loss object."""
    cdef readonly str family
    cdef int kernel, n_threads
    cdef object params            # the kernel's parameter struct, as bytes
    cdef object errors            # argument -> domain message
    cdef double column_scalar
    cdef object column_name, column64, column32
    cdef int inputs
    cdef bint labels, has_ignore, dense, rows_mean
    cdef object loss_name
    cdef double smooth, cw_sum
    cdef long long ignore
    cdef object cw64, cw32
    cdef object f32_overflow      # (name, value, index) of a parameter inf in float32, or None

    def __init__(self, kernel, int n_threads):
        for family, names in kernel_names.items():
            if kernel.name in names:
                break
        else:
            raise RuntimeError(f"fastloss: no compiled kernel named {kernel.name!r}; "
                               f"the kernel files declare {kernel_names}")
        self.family = family
        self.kernel = kernel_names[family][kernel.name]
        self.params = pack(family, self.kernel, dict(kernel.fields))
        self.n_threads = n_threads
        self.errors = dict(kernel.errors)
        self.column_name = kernel.column_name
        self.column_scalar = 1.0
        self.column64 = self.column32 = self.cw64 = self.cw32 = None
        if kernel.column is not None:
            if np.ndim(kernel.column) == 0:
                self.column_scalar = float(kernel.column)
            else:
                self.column64 = np.ascontiguousarray(kernel.column, dtype=np.float64)
                self.column32 = self.column64.astype(np.float32)
        self.inputs = {"softmax": ROWS_SOFTMAX, "probabilities": ROWS_PROBABILITIES,
                       "raw": ROWS_RAW}[kernel.inputs]
        self.labels = kernel.labels
        self.dense = kernel.dense_targets
        self.rows_mean = kernel.normalizer == "rows"
        self.loss_name = kernel.loss_name
        if self.labels:
            self.errors.setdefault("y_true", _v.LABEL_ERROR)
        self.smooth = kernel.label_smoothing
        if kernel.class_weight is not None:
            self.cw64 = np.ascontiguousarray(kernel.class_weight, dtype=np.float64)
            self.cw32 = self.cw64.astype(np.float32)
            self.cw_sum = float(np.sum(self.cw64))   # once, not per call
        self.f32_overflow = None
        if kernel.column is not None:
            self.f32_overflow = _v.float32_overflow(self.column_name, kernel.column)
        if self.f32_overflow is None and kernel.class_weight is not None:
            self.f32_overflow = _v.float32_overflow("class_weight", self.cw64)
        ig = kernel.ignore_index
        # An ignore_index no int64 label can equal ignores nothing.
        self.has_ignore = ig is not None and _v.INT64_MIN <= ig <= _v.INT64_MAX
        self.ignore = ig if self.has_ignore else 0


cdef inline int _reduction(object reduction) except -1:
    if not isinstance(reduction, str):   # an array's == would be elementwise
        _v.bad_reduction(reduction)
    if reduction == "mean":
        return RED_MEAN
    if reduction == "sum":
        return RED_SUM
    if reduction == "none":
        return RED_NONE
    _v.bad_reduction(reduction)


cdef inline cnp.ndarray _pred(object y):
    if cnp.PyArray_CheckExact(y):
        typ = cnp.PyArray_TYPE(<cnp.ndarray>y)
        if (typ == cnp.NPY_DOUBLE or typ == cnp.NPY_FLOAT) and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>y):
            return <cnp.ndarray>y
    return _v.as_pred(y)


cdef inline cnp.ndarray _cast(object y, int typ, object dtype, str name, tuple shapes):
    # `shapes`: the shapes y may have; any other is refused before anything is converted.
    if cnp.PyArray_CheckExact(y) and cnp.PyArray_TYPE(<cnp.ndarray>y) == typ \
            and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>y):
        return <cnp.ndarray>y
    return _v.as_real(y, dtype, name, shapes)


cdef inline bint _same_shape(cnp.ndarray a, cnp.ndarray b):
    cdef int i, nd = cnp.PyArray_NDIM(a)
    if nd != cnp.PyArray_NDIM(b):
        return False
    for i in range(nd):
        if cnp.PyArray_DIMS(a)[i] != cnp.PyArray_DIMS(b)[i]:
            return False
    return True


cdef inline void* _out(object buf, int nd, cnp.npy_intp* dims, int typ, str name, list keep):
    """Allocate an output, or check a caller's buffer; return its data pointer."""
    cdef int i
    cdef cnp.ndarray a
    if buf is None:
        a = cnp.PyArray_EMPTY(nd, dims, typ, 0)
        keep.append(a)
        return cnp.PyArray_DATA(a)
    if cnp.PyArray_Check(buf):
        a = <cnp.ndarray>buf
        if cnp.PyArray_TYPE(a) == typ and cnp.PyArray_ISCARRAY(a) and cnp.PyArray_NDIM(a) == nd:
            for i in range(nd):
                if cnp.PyArray_DIMS(a)[i] != dims[i]:
                    break
            else:
                keep.append(a)
                return cnp.PyArray_DATA(a)
    _v.bad_out(buf, name, tuple([dims[i] for i in range(nd)]), typ)


cdef inline bint _overlap(object a, object b):
    cdef char* pa
    cdef char* pb
    if a is None or b is None:
        return False
    pa = cnp.PyArray_BYTES(<cnp.ndarray>a)
    pb = cnp.PyArray_BYTES(<cnp.ndarray>b)
    return pa < pb + cnp.PyArray_NBYTES(<cnp.ndarray>b) and pb < pa + cnp.PyArray_NBYTES(<cnp.ndarray>a) \
        and cnp.PyArray_NBYTES(<cnp.ndarray>a) > 0 and cnp.PyArray_NBYTES(<cnp.ndarray>b) > 0


cdef void _check_overlaps(list outs, list names, cnp.ndarray p, list inputs) except *:
    # gradient_out may be y_pred itself (the kernels read an element before writing it);
    # any other overlap would let one output clobber data still to be read -- sample weights,
    # say, which are read after the gradient is written, even when they are y_pred too.
    # `inputs` is [y_true, y_pred, sample_weight, labels]: only its y_pred slot may be shared.
    cdef Py_ssize_t i, j
    for i in range(len(outs)):
        for j in range(len(inputs)):
            if _overlap(outs[i], inputs[j]):
                if names[i] == "gradient_out" and j == 1 and _same_buffer(outs[i], p):
                    continue
                _v.overlap_error(names[i], _INPUT_NAMES[j])
        for j in range(i):
            if _overlap(outs[i], outs[j]):
                _v.overlap_error(names[i], names[j])


_INPUT_NAMES = ("y_true", "y_pred", "sample_weight", "y_true")


cdef inline bint _same_buffer(object a, cnp.ndarray p):
    return cnp.PyArray_BYTES(<cnp.ndarray>a) == cnp.PyArray_BYTES(p) \
        and cnp.PyArray_NBYTES(<cnp.ndarray>a) == cnp.PyArray_NBYTES(p)


# ---- sample weights: checked (finite, >= 0) and summed in one blocked pass ----

cdef Py_ssize_t _weights_block(const floating* w, Py_ssize_t start, Py_ssize_t stop,
                               double* out) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef floating low[SUM_LANES]
    cdef floating lowest = INFINITY
    # The check is a min over SUM_LANES lanes (a negative weight) and the float64 sum (NaN or
    # inf make it non-finite; a sum that overflows from finite weights is rescanned and
    # passes). Both vectorize; the per-weight test `not (w >= 0 and w < inf)` compiled to a
    # scalar loop of branches (and a min reduction would not vectorize: NaN order), half the
    # time of a weighted MSE (1.6 of its 1.9 ns per float64 element).
    for j in range(SUM_LANES):
        low[j] = INFINITY
    i = start
    while i + SUM_LANES <= stop:
        for j in range(SUM_LANES):
            low[j] = w[i + j] if w[i + j] < low[j] else low[j]
        i += SUM_LANES
    for i in range(i, stop):
        lowest = w[i] if w[i] < lowest else lowest
    for j in range(SUM_LANES):
        lowest = low[j] if low[j] < lowest else lowest
    out[0] = block_sum(w + start, stop - start)
    if not (lowest >= 0 and out[0] < INFINITY):
        for i in range(start, stop):
            if not (w[i] >= 0 and w[i] < INFINITY):
                return i
    return OK


cdef struct WeightsTeam:
    const void* w
    bint is_double
    Py_ssize_t m
    Partials* P
    int nt
    long long nb
    fl_counter next


cdef void _weights_work(floating tag, WeightsTeam* team) noexcept nogil:
    cdef long long b, b0, count
    cdef const floating* w = <const floating*>team.w
    while True:
        b0 = fl_claim(&team.next, team.nb, GRAIN_CHEAP, team.nt, &count)
        if count == 0:
            return
        for b in range(b0, b0 + count):
            team.P.bad[b] = _weights_block(w, b * EW_BLOCK, min(team.m, (b + 1) * EW_BLOCK),
                                           &team.P.num[b])


cdef void _weights_entry(void* ctx, int worker) noexcept nogil:
    cdef WeightsTeam* team = <WeightsTeam*>ctx
    if team.is_double:
        _weights_work(<double>0, team)
    else:
        _weights_work(<float>0, team)


cdef Py_ssize_t weights_sum(const floating* w, Py_ssize_t m, int n_threads,
                            double* total) noexcept nogil:
    cdef Partials P
    cdef WeightsTeam team
    cdef double unused
    cdef int nt = n_threads_for(n_threads, m, MIN_WORK_CHEAP)
    team.nb = (m + EW_BLOCK - 1) // EW_BLOCK
    if partials_init(&P, team.nb):
        return NOMEM
    team.w = w
    team.is_double = floating is double
    team.m = m
    team.P = &P
    team.nt = nt
    fl_counter_init(&team.next, 0)
    if nt == 1:
        _weights_work(<floating>0, &team)
    else:
        kernels.run_team(nt, _weights_entry, &team)   # the kernel module's team: one per process
    return partials_finish(&P, total, &unused)


cdef inline double _mean_scale(double den, double* wpre) noexcept:
    # 1 / den for the gradient of a mean. With weights whose sum is subnormal (below ~5.6e-309
    # 1 / den overflows), the weights are first scaled by 2**1022 (exactly) and the scale is
    # 1 / (den 2**1022): g w_i / sum(w) stays finite (weights never exceed their sum).
    wpre[0] = 1.0
    if den == 0:
        return NAN
    if den < DBL_MIN:
        wpre[0] = 4.49423283715579e+307                    # 2**1022
        return 1.0 / (den * wpre[0])
    return 1.0 / den


cdef double _weights(cnp.ndarray w, int nt, object given) except? -1:
    # `given`: the caller's sample_weight, for the message (w may be its cast to y_pred's dtype)
    cdef Py_ssize_t bad
    cdef double total = 0
    cdef Py_ssize_t m = cnp.PyArray_SIZE(w)
    with nogil:
        if cnp.PyArray_TYPE(w) == cnp.NPY_DOUBLE:
            bad = weights_sum(<const double*>cnp.PyArray_DATA(w), m, nt, &total)
        else:
            bad = weights_sum(<const float*>cnp.PyArray_DATA(w), m, nt, &total)
    if bad == NOMEM:
        _v.kernel_error(NOMEM, None, None)
    if bad != OK:
        _v.bad_weight(w, bad, given)
    return total


cdef class Conventions:
    """How fastloss.gbdt wants gradient_hessian's outputs: the gradient times `gscale`, the
    hessian times `hscale` and raised to `hfloor` (before the sample weight), float32 outputs
    (`out32`), and, row-wise, y_pred and the outputs class-major (`class_major`: y_pred is
    passed as its (k, n) transpose, LightGBM's layout, and the outputs are (k, n))."""
    cdef readonly double gscale, hscale, hfloor
    cdef readonly bint out32, class_major

    def __init__(self, double gscale=1.0, double hscale=1.0, double hfloor=-INFINITY,
                 bint out32=False, bint class_major=False):
        self.gscale = gscale
        self.hscale = hscale
        self.hfloor = hfloor
        self.out32 = out32
        self.class_major = class_major


cdef Conventions _PLAIN = Conventions()


def run(Spec spec, y_true, y_pred, sample_weight, reduction, loss_out, gradient_out, hessian_out,
        int wanted, Conventions conv=None):
    """Compute wanted `wanted` asks for (WANT_* bits); see fastloss._base for the semantics.

    `conv` (fastloss.gbdt only, with reduction "none"): see `Conventions`.
    """
    cdef cnp.ndarray p = _pred(y_pred)
    cdef int reduction_code = _reduction(reduction) if not wanted & WANT_HESS else RED_NONE
    if loss_out is not None and reduction_code != RED_NONE:
        _v.unused_loss_out(reduction)
    if conv is None:
        conv = _PLAIN
    elif reduction_code != RED_NONE:
        conv = Conventions(class_major=conv.class_major)   # factors: per-element outputs only
    if spec.family == "rowwise":
        return _run_rowwise(spec, y_true, p, sample_weight, reduction_code, loss_out, gradient_out,
                            hessian_out, wanted, conv)
    if conv.class_major:
        raise ValueError("fastloss: class_major applies to row-wise losses only")
    cdef int typ = cnp.PyArray_TYPE(p)
    cdef int otyp = cnp.NPY_FLOAT if conv.out32 else typ
    cdef object shape = (<object>p).shape
    cdef cnp.ndarray t = _cast(y_true, typ, (<object>p).dtype, "y_true", (shape,))
    cdef cnp.ndarray w = None
    cdef int nd = cnp.PyArray_NDIM(p)
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(p)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(p), bad
    cdef EwJob job
    cdef double den = n, lsum = 0
    cdef list keep = []
    cdef object col = None
    if not _same_shape(t, p):
        _v.shape_error("y_true", t, (<object>p).shape)
    job.t = cnp.PyArray_DATA(t)
    job.p = cnp.PyArray_DATA(p)
    job.n = n
    job.ncol = dims[nd - 1] if nd > 0 else 1
    job.row_len = n // dims[0] if nd > 0 and dims[0] > 0 else 1
    job.w = NULL
    job.w_per_row = False
    job.wanted = wanted
    job.columns = NULL
    job.params = PyBytes_AS_STRING(spec.params)
    job.col_scalar = spec.column_scalar
    job.offset = 0
    job.parts = NULL
    if spec.column64 is not None:
        col = spec.column64 if typ == cnp.NPY_DOUBLE else spec.column32
        if nd == 0 or cnp.PyArray_SIZE(col) != dims[nd - 1]:
            _v.param_shape_error(spec.column_name, col, (<object>p).shape)
        job.columns = cnp.PyArray_DATA(col)
    if sample_weight is not None:
        w = _cast(sample_weight, typ, (<object>p).dtype, "sample_weight",
                  (shape, shape[:1]) if nd > 1 else (shape,))
        if not _same_shape(w, p):
            if nd > 1 and cnp.PyArray_NDIM(w) == 1 and cnp.PyArray_DIMS(w)[0] == dims[0]:
                job.w_per_row = True
            else:
                _v.shape_error("sample_weight", w, (<object>p).shape, per_row=True)
        job.w = cnp.PyArray_DATA(w)
    job.lo = _out(loss_out, nd, dims, typ, "loss_out", keep) \
        if wanted & WANT_LOSS and reduction_code == RED_NONE else NULL
    job.go = _out(gradient_out, nd, dims, otyp, "gradient_out", keep) if wanted & WANT_GRAD else NULL
    job.ho = _out(hessian_out, nd, dims, otyp, "hessian_out", keep) if wanted & WANT_HESS else NULL
    job.hscale = conv.hscale
    job.hfloor = conv.hfloor
    job.out32 = conv.out32
    if loss_out is not None or gradient_out is not None or hessian_out is not None:
        _check_overlaps(keep, _out_names(wanted, reduction_code), p, [t, p, w])
    if w is not None:
        den = _weights(w, spec.n_threads, sample_weight) * (job.row_len if job.w_per_row else 1)
        if reduction_code == RED_MEAN and den == 0:
            _v.zero_weights()
        if reduction_code == RED_MEAN and den == INFINITY:
            _v.mean_normalizer_overflow("sample_weight")
    if typ == cnp.NPY_FLOAT and spec.f32_overflow is not None:
        _v.param_overflows_float32(*spec.f32_overflow)
    job.wpre = 1.0
    job.gscale = _mean_scale(den, &job.wpre) if reduction_code == RED_MEAN else conv.gscale
    with nogil:
        bad = kernels.elementwise(spec.kernel, typ == cnp.NPY_DOUBLE, &job, spec.n_threads, &lsum)
    if bad != OK:
        _v.kernel_error(bad, spec.errors, {"y_true": t, "y_pred": p})
    return _result(wanted, reduction_code, lsum, den, keep)


cdef list _out_names(int wanted, int reduction_code):
    names = []
    if wanted & WANT_LOSS and reduction_code == RED_NONE:
        names.append("loss_out")
    if wanted & WANT_GRAD:
        names.append("gradient_out")
    if wanted & WANT_HESS:
        names.append("hessian_out")
    return names


cdef inline object _result(int wanted, int reduction_code, double lsum, double den, list keep):
    # `keep` holds the outputs in the order loss (only for "none"), gradient, hessian.
    cdef object lval
    cdef Py_ssize_t g = 0
    if wanted & WANT_LOSS:
        if reduction_code == RED_NONE:
            lval = keep[0]
            g = 1
        elif reduction_code == RED_SUM:
            lval = lsum
        else:
            lval = lsum / den if den > 0 else float("nan")
        if wanted & WANT_GRAD:
            return lval, keep[g]
        return lval
    if wanted & WANT_HESS:
        return keep[0], keep[1]
    return keep[0]


cdef object _run_rowwise(Spec spec, object y_true, cnp.ndarray p, object sample_weight, int reduction_code,
                         object loss_out, object gradient_out, object hessian_out, int wanted,
                         Conventions conv):
    cdef int typ = cnp.PyArray_TYPE(p)
    cdef int otyp = cnp.NPY_FLOAT if conv.out32 else typ
    cdef cnp.ndarray t = None, lab = None, w = None
    cdef object cw = None
    cdef RwJob job
    cdef Py_ssize_t n, k, bad
    cdef double num = 0, den, den_main = 0
    cdef list keep = []
    cdef bint need_den
    if cnp.PyArray_NDIM(p) != 2:
        _v.rowwise_shape_error(p)
    n = cnp.PyArray_DIMS(p)[0]
    k = cnp.PyArray_DIMS(p)[1]
    if conv.class_major:   # p is the (k, n) transpose of y_pred
        n, k = k, n
    job.z = cnp.PyArray_DATA(p)
    job.n = n
    job.k = k
    job.rows = max(1, RW_ELEMS // k) if k > 0 else 1
    job.params = PyBytes_AS_STRING(spec.params)
    job.inputs = spec.inputs
    job.wanted = wanted
    job.smooth = spec.smooth
    job.has_ignore = spec.has_ignore
    job.ignore = spec.ignore
    job.rows_mean = spec.rows_mean
    job.offset = 0
    job.parts_num = job.parts_den = NULL
    job.t = NULL
    job.lab = NULL
    job.w = NULL
    job.cw = NULL
    job.cw_sum = k
    job.hscale = conv.hscale
    job.hfloor = conv.hfloor
    job.out32 = conv.out32
    job.class_major = conv.class_major
    if k == 0:
        _v.rowwise_shape_error(p)
    if spec.labels and _v.is_labels(y_true):
        lab = _v.as_labels(y_true, n, k, spec.ignore if spec.has_ignore else None)
        if cnp.PyArray_NDIM(lab) != 1 or cnp.PyArray_DIMS(lab)[0] != n:
            _v.shape_error("y_true", lab, (n,), labels=True)
        job.lab = <const long long*>cnp.PyArray_DATA(lab)
    elif not spec.dense:
        _v.labels_only(spec.loss_name, y_true, n)
    else:
        # (n,) too: integer labels' shape, for which a wrong dtype is the better message
        if conv.class_major:
            raise ValueError("fastloss: class_major takes integer labels")
        t = _cast(y_true, typ, (<object>p).dtype, "y_true", ((<object>p).shape, (n,)))
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
        w = _cast(sample_weight, typ, (<object>p).dtype, "sample_weight", ((n,),))
        if cnp.PyArray_NDIM(w) != 1 or cnp.PyArray_DIMS(w)[0] != n:
            _v.shape_error("sample_weight", w, (n,), rowwise=(<object>p).shape)
        job.w = cnp.PyArray_DATA(w)
    cdef cnp.npy_intp ndims[1]
    ndims[0] = n
    job.lo = _out(loss_out, 1, ndims, typ, "loss_out", keep) \
        if wanted & WANT_LOSS and reduction_code == RED_NONE else NULL
    job.go = _out(gradient_out, 2, cnp.PyArray_DIMS(p), otyp, "gradient_out", keep) \
        if wanted & WANT_GRAD else NULL
    job.ho = _out(hessian_out, 2, cnp.PyArray_DIMS(p), otyp, "hessian_out", keep) \
        if wanted & WANT_HESS else NULL
    if loss_out is not None or gradient_out is not None or hessian_out is not None:
        _check_overlaps(keep, _out_names(wanted, reduction_code), p, [t, p, w, lab])
    den = n
    if w is not None:
        den = _weights(w, spec.n_threads, sample_weight)
        if reduction_code == RED_MEAN and den == 0:
            _v.zero_weights()
    need_den = reduction_code == RED_MEAN and wanted & WANT_GRAD and lab is not None \
        and not spec.rows_mean and (cw is not None or spec.has_ignore or w is not None)
    if need_den:
        with nogil:
            bad = kernels.label_normalizer(typ == cnp.NPY_DOUBLE, &job, spec.n_threads, &den)
        if bad != OK:
            _v.kernel_error(bad, spec.errors, {"y_true": y_true})   # the caller's values
    if reduction_code == RED_MEAN and den == INFINITY:
        _v.mean_normalizer_overflow("class_weight" if cw is not None else "sample_weight")
    # A mean over no weight (all class weights 0, every row ignored) is 0/0: NaN, as PyTorch's.
    job.wpre = 1.0
    job.gscale = _mean_scale(den, &job.wpre) if reduction_code == RED_MEAN else conv.gscale
    with nogil:
        bad = kernels.rowwise(spec.kernel, typ == cnp.NPY_DOUBLE, &job, spec.n_threads, &num, &den_main)
    if bad != OK:
        _v.kernel_error(bad, spec.errors, {"y_true": y_true if lab is not None else t, "y_pred": p})
    if reduction_code == RED_MEAN and den_main == INFINITY:
        _v.mean_normalizer_overflow("class_weight" if cw is not None else "sample_weight")
    return _result(wanted, reduction_code, num, den_main, keep)


include "_chunks.pxi"      # fastloss.dask's per-chunk calls


def build_info():
    """How this copy of fastloss was built (compiled in by setup.py)."""
    import json
    return json.loads(FL_BUILD_INFO.decode())


cdef extern from *:
    const char* FL_BUILD_INFO
