# The Python-facing entry: validates arguments at C speed on the common path (contiguous
# float32/float64 ndarrays), hands anything else to fastloss._validation, then runs a kernel.
cimport numpy as cnp
import numpy as np
from fastloss import _validation as _v

cnp.import_array()

cdef enum:
    K_MSE = 0
    K_MAE = 1
    K_HUBER = 2
    K_BCE = 3
    K_CCE = 4
    K_KL = 5
    RED_NONE = 0
    RED_SUM = 1
    RED_MEAN = 2

KINDS = {"mse": K_MSE, "mae": K_MAE, "huber": K_HUBER, "bce": K_BCE, "cce": K_CCE, "kl": K_KL}


cdef class Spec:
    """A loss's kind and parameters in C form, built once per loss object."""
    cdef int kind, n_threads
    cdef bint logits, has_ignore
    cdef double delta, smooth, pw_scalar, cw_sum
    cdef long long ignore
    cdef object col64, col32, cw64, cw32

    def __init__(self, str kind, int n_threads, *, double delta=1.0, double smooth=0.0,
                 bint logits=False, pos_weight=None, class_weight=None, ignore_index=None):
        self.kind = KINDS[kind]
        self.n_threads = n_threads
        self.delta = delta
        self.smooth = smooth
        self.logits = logits
        self.pw_scalar = 1.0
        self.col64 = self.col32 = self.cw64 = self.cw32 = None
        if pos_weight is not None:
            if np.ndim(pos_weight) == 0:
                self.pw_scalar = float(pos_weight)
            else:
                self.col64 = np.ascontiguousarray(pos_weight, dtype=np.float64)
                self.col32 = self.col64.astype(np.float32)
        if class_weight is not None:
            self.cw64 = np.ascontiguousarray(class_weight, dtype=np.float64)
            self.cw32 = self.cw64.astype(np.float32)
        # An ignore_index no int64 label can equal ignores nothing.
        self.has_ignore = ignore_index is not None and _v.INT64_MIN <= ignore_index <= _v.INT64_MAX
        self.ignore = ignore_index if self.has_ignore else 0


cdef inline int _reduction(object reduction) except -1:
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


cdef inline cnp.ndarray _cast(object y, int typ, object dtype, str name):
    if cnp.PyArray_CheckExact(y) and cnp.PyArray_TYPE(<cnp.ndarray>y) == typ \
            and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>y):
        return <cnp.ndarray>y
    return _v.as_real(y, dtype, name)


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
    # any other overlap would let one output clobber data still to be read.
    cdef Py_ssize_t i, j
    for i in range(len(outs)):
        for j in range(len(inputs)):
            if _overlap(outs[i], inputs[j]):
                if names[i] == "gradient_out" and inputs[j] is p and _same_buffer(outs[i], p):
                    continue
                _v.overlap_error(names[i])
        for j in range(i):
            if _overlap(outs[i], outs[j]):
                _v.overlap_error(names[i])


cdef inline bint _same_buffer(object a, cnp.ndarray p):
    return cnp.PyArray_BYTES(<cnp.ndarray>a) == cnp.PyArray_BYTES(p) \
        and cnp.PyArray_NBYTES(<cnp.ndarray>a) == cnp.PyArray_NBYTES(p)


cdef Py_ssize_t _ew_dispatch(floating tag, int kind, bint logits, double delta, double smooth,
                             const EwJob* J, int nt, double* lsum) noexcept nogil:
    # The one table of elementwise losses: kind -> (parameters struct, thread threshold).
    cdef MSE mse
    cdef MAE mae
    cdef Huber hub
    cdef BCELogits bl
    cdef BCEProbs bp
    if kind == K_MSE:
        return ew_run(mse, tag, J, nt, MIN_WORK_CHEAP, lsum)
    if kind == K_MAE:
        return ew_run(mae, tag, J, nt, MIN_WORK_CHEAP, lsum)
    if kind == K_HUBER:
        hub.delta = delta
        return ew_run(hub, tag, J, nt, MIN_WORK_CHEAP, lsum)
    if logits:
        bl.smooth_a = 1 - smooth
        bl.smooth_b = smooth / 2
        return ew_run(bl, tag, J, nt, MIN_WORK_TRANSCENDENTAL, lsum)
    bp.smooth_a = 1 - smooth
    bp.smooth_b = smooth / 2
    return ew_run(bp, tag, J, nt, MIN_WORK_TRANSCENDENTAL, lsum)


cdef double _weights(cnp.ndarray w, int nt) except? -1:
    cdef Py_ssize_t bad
    cdef double total = 0
    cdef Py_ssize_t m = cnp.PyArray_SIZE(w)
    with nogil:
        if cnp.PyArray_TYPE(w) == cnp.NPY_DOUBLE:
            bad = weights_sum(<const double*>cnp.PyArray_DATA(w), m, nt, &total)
        else:
            bad = weights_sum(<const float*>cnp.PyArray_DATA(w), m, nt, &total)
    if bad != OK:
        _v.kernel_error(bad, "sample_weight", w)
    return total


def run(Spec s, y_true, y_pred, sample_weight, reduction, loss_out, gradient_out, hessian_out,
        int what):
    """Compute what `what` asks for (WANT_* bits); see fastloss._base for the semantics."""
    cdef cnp.ndarray p = _pred(y_pred)
    cdef int red = _reduction(reduction) if not what & WANT_HESS else RED_NONE
    if loss_out is not None and red != RED_NONE:
        _v.unused_loss_out(reduction)
    if s.kind >= K_CCE:
        return _run_rowwise(s, y_true, p, sample_weight, red, loss_out, gradient_out,
                            hessian_out, what)
    cdef int typ = cnp.PyArray_TYPE(p)
    cdef cnp.ndarray t = _cast(y_true, typ, (<object>p).dtype, "y_true")
    cdef cnp.ndarray w = None
    cdef int nd = cnp.PyArray_NDIM(p)
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(p)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(p), bad
    cdef EwJob J
    cdef double den = n, lsum = 0
    cdef list keep = []
    cdef object col = None
    if not _same_shape(t, p):
        _v.shape_error("y_true", t, (<object>p).shape)
    J.t = cnp.PyArray_DATA(t)
    J.p = cnp.PyArray_DATA(p)
    J.n = n
    J.ncol = dims[nd - 1] if nd > 0 else 1
    J.row_len = n // dims[0] if nd > 0 and dims[0] > 0 else 1
    J.w = NULL
    J.w_per_row = False
    J.what = what
    J.col = NULL
    J.col_scalar = s.pw_scalar
    if s.col64 is not None:
        col = s.col64 if typ == cnp.NPY_DOUBLE else s.col32
        if nd == 0 or cnp.PyArray_SIZE(col) != dims[nd - 1]:
            _v.param_shape_error("pos_weight", col, (<object>p).shape)
        J.col = cnp.PyArray_DATA(col)
    if sample_weight is not None:
        w = _cast(sample_weight, typ, (<object>p).dtype, "sample_weight")
        if not _same_shape(w, p):
            if nd > 1 and cnp.PyArray_NDIM(w) == 1 and cnp.PyArray_DIMS(w)[0] == dims[0]:
                J.w_per_row = True
            else:
                _v.shape_error("sample_weight", w, (<object>p).shape, per_row=True)
        J.w = cnp.PyArray_DATA(w)
    J.lo = _out(loss_out, nd, dims, typ, "loss_out", keep) \
        if what & WANT_LOSS and red == RED_NONE else NULL
    J.go = _out(gradient_out, nd, dims, typ, "gradient_out", keep) if what & WANT_GRAD else NULL
    J.ho = _out(hessian_out, nd, dims, typ, "hessian_out", keep) if what & WANT_HESS else NULL
    if loss_out is not None or gradient_out is not None or hessian_out is not None:
        _check_overlaps(keep, _out_names(what, red), p, [t, p, w])
    if w is not None:
        den = _weights(w, s.n_threads) * J.row_len if J.w_per_row else _weights(w, s.n_threads)
        if red == RED_MEAN and den == 0:
            _v.zero_weights()
    J.gscale = 1.0 / den if red == RED_MEAN and den > 0 else 1.0
    with nogil:
        if typ == cnp.NPY_DOUBLE:
            bad = _ew_dispatch(<double>0, s.kind, s.logits, s.delta, s.smooth, &J, s.n_threads, &lsum)
        else:
            bad = _ew_dispatch(<float>0, s.kind, s.logits, s.delta, s.smooth, &J, s.n_threads, &lsum)
    if bad != OK:
        _v.kernel_error(bad, "y_pred", p)
    return _result(what, red, lsum, den, keep)


cdef list _out_names(int what, int red):
    names = []
    if what & WANT_LOSS and red == RED_NONE:
        names.append("loss_out")
    if what & WANT_GRAD:
        names.append("gradient_out")
    if what & WANT_HESS:
        names.append("hessian_out")
    return names


cdef inline object _result(int what, int red, double lsum, double den, list keep):
    # `keep` holds the outputs in the order loss (only for "none"), gradient, hessian.
    cdef object lval
    cdef Py_ssize_t g = 0
    if what & WANT_LOSS:
        if red == RED_NONE:
            lval = keep[0]
            g = 1
        elif red == RED_SUM:
            lval = lsum
        else:
            lval = lsum / den if den > 0 else float("nan")
        if what & WANT_GRAD:
            return lval, keep[g]
        return lval
    if what & WANT_HESS:
        return keep[0], keep[1]
    return keep[0]


cdef object _run_rowwise(Spec s, object y_true, cnp.ndarray p, object sample_weight, int red,
                         object loss_out, object gradient_out, object hessian_out, int what):
    cdef int typ = cnp.PyArray_TYPE(p)
    cdef cnp.ndarray t = None, lab = None, w = None
    cdef object cw = None
    cdef RwJob J
    cdef Py_ssize_t n, k, bad
    cdef double num = 0, den, den_main = 0
    cdef list keep = []
    cdef bint need_den
    if cnp.PyArray_NDIM(p) != 2:
        _v.rowwise_shape_error(p)
    n = cnp.PyArray_DIMS(p)[0]
    k = cnp.PyArray_DIMS(p)[1]
    J.z = cnp.PyArray_DATA(p)
    J.n = n
    J.k = k
    J.rows = max(1, RW_ELEMS // k) if k > 0 else 1
    J.logits = s.logits
    J.what = what
    J.smooth = s.smooth
    J.has_ignore = s.has_ignore
    J.ignore = s.ignore
    J.t = NULL
    J.lab = NULL
    J.w = NULL
    J.cw = NULL
    J.cw_sum = k
    if k == 0:
        _v.rowwise_shape_error(p)
    if s.kind == K_CCE and _v.is_labels(y_true):
        lab = _v.as_labels(y_true)
        if cnp.PyArray_NDIM(lab) != 1 or cnp.PyArray_DIMS(lab)[0] != n:
            _v.shape_error("y_true", lab, (n,), labels=True)
        J.target = T_LABELS
        J.lab = <const long long*>cnp.PyArray_DATA(lab)
    else:
        t = _cast(y_true, typ, (<object>p).dtype, "y_true")
        if not _same_shape(t, p):
            _v.shape_error("y_true", t, (<object>p).shape, labels=s.kind == K_CCE)
        J.target = T_KL if s.kind == K_KL else T_SOFT
        J.t = cnp.PyArray_DATA(t)
    if s.cw64 is not None:
        cw = s.cw64 if typ == cnp.NPY_DOUBLE else s.cw32
        if cnp.PyArray_SIZE(cw) != k:
            _v.param_shape_error("class_weight", cw, (<object>p).shape)
        J.cw = cnp.PyArray_DATA(cw)
        J.cw_sum = float(np.sum(s.cw64))
    if sample_weight is not None:
        w = _cast(sample_weight, typ, (<object>p).dtype, "sample_weight")
        if cnp.PyArray_NDIM(w) != 1 or cnp.PyArray_DIMS(w)[0] != n:
            _v.shape_error("sample_weight", w, (n,))
        J.w = cnp.PyArray_DATA(w)
    cdef cnp.npy_intp ndims[1]
    ndims[0] = n
    J.lo = _out(loss_out, 1, ndims, typ, "loss_out", keep) \
        if what & WANT_LOSS and red == RED_NONE else NULL
    J.go = _out(gradient_out, 2, cnp.PyArray_DIMS(p), typ, "gradient_out", keep) \
        if what & WANT_GRAD else NULL
    J.ho = _out(hessian_out, 2, cnp.PyArray_DIMS(p), typ, "hessian_out", keep) \
        if what & WANT_HESS else NULL
    if loss_out is not None or gradient_out is not None or hessian_out is not None:
        _check_overlaps(keep, _out_names(what, red), p, [t, p, w, lab])
    den = n
    if w is not None:
        den = _weights(w, s.n_threads)
        if red == RED_MEAN and den == 0:
            _v.zero_weights()
    need_den = red == RED_MEAN and what & WANT_GRAD and J.target == T_LABELS \
        and (cw is not None or s.has_ignore or w is not None)
    if need_den:
        with nogil:
            if typ == cnp.NPY_DOUBLE:
                bad = label_den(<double>0, &J, s.n_threads, &den)
            else:
                bad = label_den(<float>0, &J, s.n_threads, &den)
        if bad != OK:
            _v.kernel_error(bad, "y_true", lab)
    J.gscale = 1.0 / den if red == RED_MEAN and den > 0 else (0.0 if red == RED_MEAN else 1.0)
    with nogil:
        if typ == cnp.NPY_DOUBLE:
            bad = rw_run(<double>0, &J, s.n_threads, &num, &den_main)
        else:
            bad = rw_run(<float>0, &J, s.n_threads, &num, &den_main)
    if bad != OK:
        _v.kernel_error(bad, "y_true", lab)
    return _result(what, red, num, den_main, keep)


def build_info():
    """What this kernel module was compiled with."""
    return {"isa": FL_ISA.decode(), "openmp": bool(FL_OPENMP), "libmvec": bool(FL_HAVE_LIBMVEC),
            "default_threads": fl_max_threads()}


def cpu_level():
    """4: the CPU runs x86-64-v4 (AVX-512) code, 3: x86-64-v3 (AVX2), 1: baseline, 0: unknown."""
    return fl_cpu_level()
