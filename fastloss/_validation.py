"""Argument checks and error messages: the one place that decides what is valid.

The compiled entry point checks the common case (contiguous float32/float64 ndarrays) itself,
at C speed, and calls into this module only to convert other inputs or to raise.
"""
from __future__ import annotations

import numbers
import operator

import numpy as np

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
REDUCTIONS = ("mean", "sum", "none")


def _real_array(y, name: str) -> np.ndarray:
    if isinstance(y, np.ma.MaskedArray):
        raise TypeError(f"{name}: masked arrays are not supported (their mask would be "
                        f"ignored); pass the selected elements, or y.filled(value)")
    try:
        a = np.asarray(y)
    except MemoryError:
        raise
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name}: cannot be converted to an array ({exc})") from None
    if a.dtype == object:
        _no_missing_values(y, a, name)
    if a.dtype.kind not in "biuf":
        raise TypeError(
            f"{name}: expected real numbers (bool, integer or floating dtype), got dtype {a.dtype}"
        )
    return a


def _no_missing_values(y, a, name: str):
    """pandas' missing values (pd.NA in a nullable Int64 Series, ...) come out of np.asarray
    as objects: a ValueError saying so, not a complaint about the dtype. (Other object data
    stays a TypeError.)"""
    isna = getattr(y, "isna", None)
    if not callable(isna):
        return
    missing = np.asarray(isna()).reshape(-1)
    if missing.any():
        raise ValueError(f"{name}: missing value at index {int(np.argmax(missing))}; "
                         "fastloss needs every value (drop or fill them first)")


def _aligned(a: np.ndarray) -> np.ndarray:
    # np.asarray keeps a C-contiguous but misaligned view (e.g. from a byte buffer) as is;
    # the kernels load whole float64/int64 words, so such data is copied.
    return a if a.flags.aligned else a.copy()


def as_pred(y) -> np.ndarray:
    """y_pred keeps float32/float64 (in native byte order); any other real dtype becomes float64."""
    a = _real_array(y, "y_pred")
    dtype = a.dtype.newbyteorder("=") if a.dtype.kind == "f" else a.dtype
    if dtype not in _FLOATS:
        dtype = np.dtype(np.float64)
    return _aligned(np.asarray(a, dtype=dtype, order="C"))  # keeps 0-d inputs 0-d


def _shape_placeholder(y, shapes):
    """A zero-copy stand-in of y's shape when that shape is none of `shapes`, so that the
    caller's shape check fails at once -- before a large array-like is converted or copied."""
    shape = getattr(y, "shape", None)
    if shapes is None or not isinstance(shape, tuple) or tuple(shape) in shapes:
        return None
    try:
        return np.broadcast_to(np.zeros((), np.uint8), shape)
    except (TypeError, ValueError):
        return None


def as_real(y, dtype, name: str, shapes=None) -> np.ndarray:
    """Cast y_true or sample_weight to y_pred's dtype, C-contiguous (when its shape is one of
    `shapes`: otherwise a stand-in of its shape, for the caller's shape error)."""
    placeholder = _shape_placeholder(y, shapes)
    if placeholder is not None:
        return placeholder
    return _aligned(np.asarray(_real_array(y, name), dtype=dtype, order="C"))


def is_labels(y) -> bool:
    """Integer (or bool) y_true: class labels for categorical cross-entropy."""
    dtype = getattr(y, "dtype", None)
    try:
        kind = np.dtype(dtype).kind if dtype is not None else None
    except TypeError:        # a foreign dtype (torch, pandas extension types)
        kind = None
    if kind is None:
        kind = _real_array(y, "y_true").dtype.kind
    return kind in "biu"


def as_labels(y, n_rows: int, n_classes: int, ignore_index) -> np.ndarray:
    """Integer class labels as int64 (a stand-in of y's shape if it is not (n_rows,))."""
    placeholder = _shape_placeholder(y, ((n_rows,),))
    if placeholder is not None:
        return placeholder
    a = _real_array(y, "y_true")
    if a.dtype.kind == "u" and a.dtype.itemsize == 8 and a.size and a.max() > INT64_MAX:
        # uint64 labels >= 2**63 have no int64 value: a negative one is out of range just as
        # well (the kernel reports it, with the caller's value: see kernel_error's arrays),
        # and it must not be mistaken for ignore_index.
        sentinel = INT64_MIN if ignore_index != INT64_MIN else INT64_MIN + 1
        a = np.where(a > INT64_MAX, np.int64(sentinel), a.astype(np.int64))
    return _aligned(np.asarray(a, dtype=np.int64, order="C"))


def labels_only(loss: str, y, n_rows: int):
    """y_true of a loss that takes integer class labels only (not target rows)."""
    if isinstance(y, np.ma.MaskedArray):
        _real_array(y, "y_true")                     # the masked-array TypeError
    shape = getattr(y, "shape", None)
    if shape is None:
        shape = np.shape(_real_array(y, "y_true"))
    dtype = getattr(y, "dtype", None)
    if isinstance(shape, tuple) and tuple(shape) != (n_rows,):
        raise ValueError(f"y_true: shape {tuple(shape)} does not match ({n_rows},): {loss} "
                         f"takes integer class labels, one per row of y_pred")
    raise TypeError(f"y_true: {loss} takes integer class labels of shape ({n_rows},), got "
                    f"dtype {dtype if dtype is not None else _real_array(y, 'y_true').dtype}")


def bad_reduction(reduction):
    raise ValueError(f"reduction: must be one of {REDUCTIONS}, got {reduction!r}")


def shape_error(name: str, arr, expected, per_row: bool = False, labels: bool = False,
                rowwise=None):
    # rowwise: y_pred's (n, k) shape, where `expected` is the per-row (n,)
    msg = f"{name}: shape {tuple(np.shape(arr))} does not match y_pred's shape {tuple(expected)}"
    if per_row:
        msg = (f"{name}: shape {tuple(np.shape(arr))} must be y_pred's shape {tuple(expected)}"
               + (f" or ({expected[0]},) for one weight per row" if len(expected) > 1 else ""))
    elif name == "sample_weight" and rowwise:
        msg = (f"sample_weight: shape {tuple(np.shape(arr))} must be ({expected[0]},): row-wise "
               f"losses take one weight per row (sample) of y_pred, whose shape is "
               f"{tuple(rowwise)}")
    if labels:
        msg += (f"; categorical targets are integer class labels of shape ({expected[0]},) or "
                f"float targets of shape {tuple(expected) if len(expected) == 2 else '(n, k)'}")
    raise ValueError(msg)


def rowwise_shape_error(p):
    raise ValueError(
        f"y_pred: row-wise losses need shape (n_samples, n_classes) with n_classes >= 1, "
        f"got shape {p.shape}"
    )


def param_shape_error(name: str, param, shape):
    raise ValueError(
        f"{name}: has {np.size(param)} entries but y_pred's last axis has "
        f"{shape[-1] if len(shape) else 'none'} (y_pred shape {tuple(shape)})"
    )


_TYPENAMES = {11: "float32", 12: "float64"}


def bad_out(buf, name: str, shape, typenum: int):
    want = (f"a C-contiguous, aligned, writeable ndarray of shape {shape} and dtype "
            f"{_TYPENAMES.get(typenum, typenum)}")
    if not isinstance(buf, np.ndarray):
        raise ValueError(f"{name}: must be {want}, got {type(buf).__name__}")
    # Name only what is wrong: a buffer right in every other respect learns why it was refused.
    wrong = []
    if tuple(buf.shape) != tuple(shape):
        wrong.append(f"shape {buf.shape}")
    if buf.dtype.num != typenum:
        wrong.append(f"dtype {buf.dtype}")
    if not buf.flags.c_contiguous:
        wrong.append("not C-contiguous")
    if not buf.flags.aligned:
        wrong.append(f"not aligned (its address is not a multiple of {buf.dtype.itemsize}, the "
                     f"itemsize; a view at a byte offset of another buffer)")
    if not buf.flags.writeable:
        wrong.append("read-only")
    raise ValueError(f"{name}: must be {want}, got " + ", ".join(wrong or [repr(buf.flags)]))


def unused_loss_out(reduction):
    raise ValueError(
        f"loss_out: only used with reduction='none' (got reduction={reduction!r}); "
        "a reduced loss is returned as a float"
    )


def overlap_error(name: str, other: str):
    raise ValueError(
        f"{name}: overlaps {other}, which would be overwritten while it is read "
        f"(only gradient_out may be y_pred itself)"
    )


def mean_normalizer_overflow(name: str):
    raise ValueError(
        f"{name}: the weighted mean's normalizer (the sum of the weights) overflows float64; "
        f"scale the weights down (the mean does not change)")


def param_overflows_float32(name: str, value, index):
    where = "" if index is None else f" at index {index}"
    raise ValueError(
        f"{name}: {value!r}{where} overflows float32, y_pred's dtype, in which the loss is "
        f"computed; pass y_pred as float64")


def float32_overflow(name, values):
    """(name, value, index) of the first of `values` that is finite but inf in float32."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        bad = np.flatnonzero(np.isfinite(v) & np.isinf(v.astype(np.float32)))
    if bad.size == 0:
        return None
    i = int(bad[0])
    return (name, float(v.reshape(-1)[i]), None if v.ndim == 0 else i)


def zero_weights():
    raise ValueError("sample_weight: weights sum to zero, so the weighted mean is undefined")


# What a kernel reports as a bad element: index * _BAD_ARGS + the argument (see _jobs.pxi).
_BAD_ARGS = 4
_BAD_ARG_NAMES = {1: "y_true", 2: "y_pred", 3: "sample_weight"}
LABEL_ERROR = "class label {value!r} at index {index} is outside [0, n_classes) and is not ignore_index"


def _element(arr, flat_index, offset=0, shape=None):
    # offset, shape (fastloss.dask): arr is the piece of an array of `shape` that starts at
    # flat index `offset`; flat_index and the index reported are global.
    flat = np.asarray(arr).reshape(-1)
    local = flat_index - offset
    value = flat[local].item() if 0 <= local < flat.size else None
    shape = np.shape(arr) if shape is None else shape
    index = (tuple(int(i) for i in np.unravel_index(flat_index, shape))
             if len(shape) > 1 else flat_index)
    return value, index


def kernel_error(code: int, errors, arrays, offset=0, shape=None):
    """Raise for a kernel's error code: the loss's own domain message for the argument at fault.

    `errors` maps an argument name to its message template ({value!r} and {index} are filled
    in); `arrays` maps argument names to the arrays the kernel read (for fastloss.dask, the
    chunk at global flat `offset` of an array of `shape`).
    """
    if code == -2:
        raise MemoryError("fastloss: could not allocate kernel scratch memory")
    if code < 0:
        raise RuntimeError(f"fastloss: kernel failed with code {code}")
    name = _BAD_ARG_NAMES[code % _BAD_ARGS]
    value, index = _element(arrays[name], code // _BAD_ARGS, offset, shape)
    raise ValueError(f"{name}: " + errors[name].format(value=value, index=index))


def bad_weight(w, flat_index: int, given=None, offset=0, shape=None):
    """`w` is the weights the kernel read, `given` the caller's (before any cast); `offset`,
    `shape`: as for kernel_error (flat_index is local to w here)."""
    value, index = _element(w, flat_index + offset, offset, shape)
    if given is not None and np.isinf(value):
        try:
            original = np.asarray(given)
            orig_value = (_element(original, flat_index + offset, offset, shape)[0]
                          if original.size == np.size(w) else None)
        except Exception:   # a foreign object that converted once: keep the plain message
            orig_value = None
        if isinstance(orig_value, (int, float)) and np.isfinite(orig_value) and orig_value >= 0:
            raise ValueError(
                f"sample_weight: {orig_value!r} at index {index} overflows {np.asarray(w).dtype} "
                f"(y_pred's dtype, in which weights are applied); pass y_pred as float64 or "
                f"scale the weights")
    raise ValueError(f"sample_weight: must be finite and >= 0, found {value!r} at index {index}")


# ---- constructor parameters ----

def n_threads(value) -> int:
    """None -> 0 (OpenMP's default); otherwise an int >= 1."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"n_threads: must be None or an int >= 1, got {value!r}")
    if not 1 <= value <= 2**31 - 1:
        raise ValueError(f"n_threads: must be None or an int in [1, 2**31 - 1], got {value!r}")
    return int(value)


def positive(name: str, value) -> float:
    v = _scalar(name, value)
    if not (v > 0 and np.isfinite(v)):
        raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")
    return v


def nonnegative(name: str, value) -> float:
    v = _scalar(name, value)
    if not (v >= 0 and np.isfinite(v)):
        raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")
    return v


def open_unit_interval(name: str, value) -> float:
    v = _scalar(name, value)
    if not 0 < v < 1:
        raise ValueError(f"{name}: must lie in the open interval (0, 1), got {value!r}")
    return v


def unit_interval(name: str, value, upper_open: bool = False) -> float:
    v = _scalar(name, value)
    if not (0 <= v <= 1) or (upper_open and v == 1):
        raise ValueError(f"{name}: must lie in [0, 1{')' if upper_open else ']'}, got {value!r}")
    return v


def _scalar(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name}: must be a real number, got {value!r}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name}: {value!r} is out of range") from None


def weight_vector(name: str, value, allow_scalar: bool):
    """A finite, >= 0 scalar (if allowed) or 1-D array; returned as float or float64 array."""
    if value is None:
        return None
    a = _real_array(value, name)
    if a.ndim == 0 and allow_scalar:
        v = float(a)
        if not (np.isfinite(v) and v >= 0):
            raise ValueError(f"{name}: must be finite and >= 0, got {value!r}")
        return v
    if a.ndim != 1 or a.size == 0:
        raise ValueError(
            f"{name}: must be {'a scalar or ' if allow_scalar else ''}a non-empty 1-D array, "
            f"got shape {a.shape}"
        )
    a = np.array(a, dtype=np.float64)
    if not np.all(np.isfinite(a) & (a >= 0)):
        raise ValueError(f"{name}: entries must be finite and >= 0")
    a.flags.writeable = False
    return a


def boolean(name: str, value) -> bool:
    return bool(value)


def weights_or_scalar(name: str, value):
    return weight_vector(name, value, allow_scalar=True)


def weights_1d(name: str, value):
    return weight_vector(name, value, allow_scalar=False)


def index_or_none(name: str, value):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: must be None or an int, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: must be None or an int, got {value!r}") from None


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
