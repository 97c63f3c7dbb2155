"""Tests of the elementwise regression losses: MeanSquaredError, MeanAbsoluteError, Huber.

Every expected value comes from an independent NumPy float64 formula written in this file
(or from PyTorch, when installed); fastloss is never used to make its own reference.
"""
import io
import math
import pickle
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np
import pytest

import fastloss as fl
from conftest import assert_close

DTYPES = [np.float32, np.float64]
SHAPES = [(7,), (5, 3), (2, 3, 4)]
REDUCTIONS = ["none", "sum", "mean"]
# float32 results must be within ~1e-6 relative of the float64 reference on the same inputs.
RTOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}


# ---------------------------------------------------------------------------------------------
# Independent references: (loss, d loss/d p, d2 loss/d p2) per element, in float64.
# ---------------------------------------------------------------------------------------------

def ref_mse(d):
    return d * d, 2.0 * d, np.full_like(d, 2.0)


def ref_mae(d):
    return np.abs(d), np.sign(d), np.zeros_like(d)


def make_ref_huber(delta):
    def ref(d):
        ad = np.abs(d)
        inside = ad < delta
        with np.errstate(invalid="ignore", over="ignore"):
            loss = np.where(inside, 0.5 * d * d, delta * (ad - 0.5 * delta))
            grad = np.where(inside, d, delta * np.sign(d))
        return loss, grad, inside.astype(np.float64)
    return ref


@dataclass(frozen=True)
class Case:
    name: str
    cls: type
    func: Callable
    ref: Callable
    params: dict = field(default_factory=dict)
    torch_name: str = ""
    torch_kwargs: dict = field(default_factory=dict)
    kinks: tuple = (0.0,)          # values of |d| where the loss is not twice differentiable

    def make(self, **kw):
        return self.cls(**self.params, **kw)

    def reference(self, y_true, y_pred):
        """Per-element (loss, grad, hess) in float64 from the inputs' exact values."""
        d = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
        return self.ref(d)


CASES = [
    Case("mse", fl.MeanSquaredError, fl.mean_squared_error, ref_mse, torch_name="mse_loss"),
    Case("mae", fl.MeanAbsoluteError, fl.mean_absolute_error, ref_mae, torch_name="l1_loss"),
    Case("huber", fl.Huber, fl.huber, make_ref_huber(1.0), torch_name="huber_loss",
         kinks=(0.0, 1.0)),  # default delta=1.0
    Case("huber_2.5", fl.Huber, fl.huber, make_ref_huber(2.5), params={"delta": 2.5},
         torch_name="huber_loss", torch_kwargs={"delta": 2.5}, kinks=(0.0, 2.5)),
]
CASE_PARAMS = [pytest.param(c, id=c.name) for c in CASES]


# ---------------------------------------------------------------------------------------------
# Data and reference reductions
# ---------------------------------------------------------------------------------------------

def make_data(shape, dtype=np.float64, seed=0):
    """y_true, y_pred with d = y_pred - y_true ~ N(0, 2): both Huber regions are hit."""
    rng = np.random.default_rng(seed)
    t = rng.normal(size=shape)
    p = t + 2.0 * rng.normal(size=shape)
    return t.astype(dtype), p.astype(dtype)


def make_weights(shape, kind, dtype=np.float64, seed=1):
    """Sample weights: None, 'full' (y_pred's shape) or 'per_row' (shape[0],); some zeros."""
    if kind is None:
        return None
    rng = np.random.default_rng(seed)
    wshape = shape if kind == "full" else shape[:1]
    w = rng.uniform(0.0, 3.0, size=wshape)
    w.reshape(-1)[::5] = 0.0
    return w.astype(dtype)


def full_weights(w, shape):
    """Weights as float64 broadcast to the data's shape (per-row weights cover their row)."""
    if w is None:
        return None
    w = np.asarray(w, dtype=np.float64)
    if w.shape != tuple(shape):
        w = w.reshape(w.shape + (1,) * (len(shape) - 1))
    return np.broadcast_to(w, shape)


def ref_loss(l, reduction, w=None):
    if reduction == "none":
        return l if w is None else w * l
    if reduction == "sum":
        return math.fsum((l if w is None else w * l).ravel())
    return float(np.average(l, weights=w))


def ref_grad(g, reduction, w=None):
    gw = g if w is None else w * g
    if reduction == "mean":
        return gw / (g.size if w is None else w.sum())
    return gw


def check_array(actual, expected, dtype, rtol=None, atol=0.0):
    dtype = np.dtype(dtype)
    assert isinstance(actual, np.ndarray), type(actual)
    assert actual.dtype == dtype, f"dtype {actual.dtype} != {dtype}"
    assert_close(actual, expected, rtol=RTOL[dtype] if rtol is None else rtol, atol=atol)


def check_loss(actual, expected, reduction, dtype, rtol=None):
    if reduction == "none":
        check_array(actual, expected, dtype, rtol)
    else:
        assert type(actual) is float, type(actual)
        assert_close(actual, expected, rtol=RTOL[np.dtype(dtype)] if rtol is None else rtol)


# ---------------------------------------------------------------------------------------------
# Values and gradients against the NumPy formulas
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_loss_and_gradient_match_reference(case, dtype, shape, reduction):
    t, p = make_data(shape, dtype)
    l, g, _ = case.reference(t, p)
    want_l, want_g = ref_loss(l, reduction), ref_grad(g, reduction)
    obj = case.make()

    check_loss(obj.loss(t, p, reduction=reduction), want_l, reduction, dtype)
    check_loss(case.func(t, p, reduction=reduction, **case.params), want_l, reduction, dtype)
    check_array(obj.gradient(t, p, reduction=reduction), want_g, dtype)
    lv, gv = obj.loss_gradient(t, p, reduction=reduction)
    check_loss(lv, want_l, reduction, dtype)
    check_array(gv, want_g, dtype)
    if reduction == "mean":
        check_loss(obj(t, p), want_l, reduction, dtype)
        check_loss(obj.loss(t, p), want_l, reduction, dtype)        # "mean" is the default
        check_array(obj.gradient(t, p), want_g, dtype)
        check_loss(case.func(t, p, **case.params), want_l, reduction, dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_gradient_hessian_matches_reference(case, dtype, shape):
    t, p = make_data(shape, dtype)
    _, g, h = case.reference(t, p)
    gv, hv = case.make().gradient_hessian(t, p)
    check_array(gv, g, dtype)
    check_array(hv, h, dtype)


def test_huber_delta_changes_the_result():
    t, p = np.zeros(4), np.array([0.5, -1.5, 2.0, -3.0])
    assert_close(fl.Huber().loss(t, p, reduction="none"), [0.125, 1.0, 1.5, 2.5])
    assert_close(fl.Huber(delta=2.0).loss(t, p, reduction="none"), [0.125, 1.125, 2.0, 4.0])
    assert_close(fl.huber(t, p, delta=0.5, reduction="none"), [0.125, 0.625, 0.875, 1.375])
    assert_close(fl.Huber(delta=2.0).gradient(t, p, reduction="none"), [0.5, -1.5, 2.0, -2.0])


def test_mae_gradient_is_zero_where_prediction_is_exact():
    t = np.array([1.0, 2.0, -3.0, 0.0])
    p = np.array([1.0, 2.5, -3.0, -0.0])
    g, h = fl.MeanAbsoluteError().gradient_hessian(t, p)
    assert_close(g, [0.0, 1.0, 0.0, 0.0])
    assert_close(h, np.zeros(4))


# ---------------------------------------------------------------------------------------------
# Finite differences (float64, away from the kinks)
# ---------------------------------------------------------------------------------------------

def fd_data(case, shape=(4, 3), seed=3):
    """y_true, y_pred whose |d| stays at least 0.3 away from every kink of every case."""
    rng = np.random.default_rng(seed)
    mags = np.array([0.3, 0.6, 1.4, 1.9, 3.2, 4.1])
    d = rng.choice(mags, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    assert min(abs(abs(d) - k).min() for k in case.kinks) >= 0.29
    t = rng.normal(size=shape)
    return t, t + d


@pytest.mark.parametrize("weights", [None, "full", "per_row"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_gradient_matches_finite_differences(case, reduction, weights):
    t, p = fd_data(case)
    w = make_weights(p.shape, weights)
    obj = case.make()
    grad = obj.gradient(t, p, sample_weight=w, reduction=reduction)
    eps = 1e-6
    fd = np.empty_like(p)
    for i in np.ndindex(p.shape):
        hi, lo = p.copy(), p.copy()
        hi[i] += eps
        lo[i] -= eps
        if reduction == "none":   # each element's own loss, differentiated
            diff = (obj.loss(t, hi, sample_weight=w, reduction="none")
                    - obj.loss(t, lo, sample_weight=w, reduction="none"))
            others = np.ones(p.shape, bool)
            others[i] = False
            assert np.all(diff[others] == 0)
            fd[i] = diff[i] / (2 * eps)
        else:
            fd[i] = (obj.loss(t, hi, sample_weight=w, reduction=reduction)
                     - obj.loss(t, lo, sample_weight=w, reduction=reduction)) / (2 * eps)
    assert_close(grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("weights", [None, "full", "per_row"])
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_hessian_matches_finite_differences(case, weights):
    t, p = fd_data(case)
    w = make_weights(p.shape, weights)
    obj = case.make()
    grad, hess = obj.gradient_hessian(t, p, sample_weight=w)
    eps = 1e-3   # the losses are piecewise polynomials of degree <= 2: no truncation error
    loss = lambda x: obj.loss(t, x, sample_weight=w, reduction="none")  # noqa: E731
    # Second difference of each element's own loss, and first difference of the gradient.
    d2 = (loss(p + eps) - 2 * loss(p) + loss(p - eps)) / eps**2
    dg = (obj.gradient(t, p + eps, sample_weight=w, reduction="none")
          - obj.gradient(t, p - eps, sample_weight=w, reduction="none")) / (2 * eps)
    assert_close(hess, d2, rtol=1e-6, atol=1e-6)
    assert_close(hess, dg, rtol=1e-9, atol=1e-9)
    fd_g = (loss(p + 1e-6) - loss(p - 1e-6)) / 2e-6
    assert_close(grad, fd_g, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_matches_torch(case, dtype, reduction, torch):
    t, p = make_data((6, 5), dtype, seed=7)
    tt = torch.from_numpy(t)
    tp = torch.from_numpy(p).requires_grad_(True)
    fn = getattr(torch.nn.functional, case.torch_name)
    out = fn(tp, tt, reduction=reduction, **case.torch_kwargs)
    out.sum().backward()   # "none": each element's own loss, so summing gives its gradient
    want_l = out.detach().numpy() if reduction == "none" else out.item()
    want_g = tp.grad.numpy()
    rtol = 2e-6 if dtype == np.float32 else 1e-12
    obj = case.make()
    lv, gv = obj.loss_gradient(t, p, reduction=reduction)
    check_loss(lv, want_l, reduction, dtype, rtol=rtol)
    check_array(gv, want_g, dtype, rtol=rtol)
    check_loss(case.func(t, p, reduction=reduction, **case.params), want_l, reduction, dtype,
               rtol=rtol)


# ---------------------------------------------------------------------------------------------
# sample_weight
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape,kind", [((7,), "full"), ((5, 3), "full"), ((5, 3), "per_row"),
                                        ((2, 3, 4), "full"), ((2, 3, 4), "per_row")],
                         ids=lambda x: str(x))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_sample_weight(case, dtype, shape, kind, reduction):
    t, p = make_data(shape, dtype)
    w = make_weights(shape, kind, dtype)
    wf = full_weights(w, shape)
    l, g, h = case.reference(t, p)
    want_l = ref_loss(l, reduction, wf)
    want_g = ref_grad(g, reduction, wf)
    if reduction == "mean":   # the documented forms, written out once more
        assert_close(want_l, np.average(l, weights=wf))
        assert_close(want_g, wf * g / wf.sum())
    obj = case.make()
    check_loss(obj.loss(t, p, sample_weight=w, reduction=reduction), want_l, reduction, dtype)
    check_loss(case.func(t, p, sample_weight=w, reduction=reduction, **case.params),
               want_l, reduction, dtype)
    check_array(obj.gradient(t, p, sample_weight=w, reduction=reduction), want_g, dtype)
    lv, gv = obj.loss_gradient(t, p, sample_weight=w, reduction=reduction)
    check_loss(lv, want_l, reduction, dtype)
    check_array(gv, want_g, dtype)
    if reduction == "mean":
        check_loss(obj(t, p, w), want_l, reduction, dtype)
        check_loss(obj(t, p, sample_weight=w), want_l, reduction, dtype)
    gv, hv = obj.gradient_hessian(t, p, sample_weight=w)
    check_array(gv, wf * g, dtype)
    check_array(hv, wf * h, dtype)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_unit_weights_equal_no_weights_and_list_weights_work(case):
    t, p = make_data((4, 3))
    l, g, _ = case.reference(t, p)
    obj = case.make()
    for w in (np.ones((4, 3)), [1, 1, 1, 1], [[True] * 3] * 4):
        assert_close(obj.loss(t, p, sample_weight=w), l.mean())
        assert_close(obj.gradient(t, p, sample_weight=w), g / g.size)
    w = [0, 2, 1, 3]
    wf = full_weights(w, (4, 3))
    assert_close(obj.loss(t, p, sample_weight=w, reduction="sum"), (wf * l).sum())


# ---------------------------------------------------------------------------------------------
# Out buffers
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_out_buffers_are_written_in_place_and_returned(case, dtype):
    shape = (5, 3)
    t, p = make_data(shape, dtype)
    w = make_weights(shape, "per_row", dtype)
    wf = full_weights(w, shape)
    l, g, h = case.reference(t, p)
    obj = case.make()
    nan = lambda: np.full(shape, np.nan, dtype=dtype)  # noqa: E731

    lo = nan()
    assert obj.loss(t, p, reduction="none", loss_out=lo) is lo
    check_array(lo, l, dtype)
    go = nan()
    assert obj.gradient(t, p, gradient_out=go) is go
    check_array(go, g / g.size, dtype)
    lo, go = nan(), nan()
    lv, gv = obj.loss_gradient(t, p, sample_weight=w, reduction="none", loss_out=lo,
                               gradient_out=go)
    assert lv is lo and gv is go
    check_array(lo, wf * l, dtype)
    check_array(go, wf * g, dtype)
    go = nan()
    lv, gv = obj.loss_gradient(t, p, gradient_out=go)
    assert gv is go and type(lv) is float
    check_array(go, g / g.size, dtype)
    go, ho = nan(), nan()
    gv, hv = obj.gradient_hessian(t, p, sample_weight=w, gradient_out=go, hessian_out=ho)
    assert gv is go and hv is ho
    check_array(go, wf * g, dtype)
    check_array(ho, wf * h, dtype)


@pytest.mark.parametrize("method", ["gradient", "loss_gradient", "gradient_hessian"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_gradient_out_may_be_y_pred(case, dtype, method):
    t, p = make_data((6, 4), dtype)
    l, g, h = case.reference(t, p)
    obj = case.make()
    buf = p.copy()
    if method == "gradient":
        assert obj.gradient(t, buf, gradient_out=buf) is buf
    elif method == "loss_gradient":
        lv, gv = obj.loss_gradient(t, buf, reduction="sum", gradient_out=buf)
        assert gv is buf
        check_loss(lv, ref_loss(l, "sum"), "sum", dtype)   # computed from the old y_pred
    else:
        gv, hv = obj.gradient_hessian(t, buf, gradient_out=buf)
        assert gv is buf
        check_array(hv, h, dtype)
    want = ref_grad(g, "sum" if method == "loss_gradient" else
                    ("mean" if method == "gradient" else "none"))
    check_array(buf, want, dtype)


def _bad_buffers(shape, dtype):
    other = np.float32 if dtype == np.float64 else np.float64
    ro = np.zeros(shape, dtype)
    ro.flags.writeable = False
    return {
        "wrong_shape": np.zeros(shape[::-1], dtype),
        "flat": np.zeros(int(np.prod(shape)), dtype),
        "wrong_dtype": np.zeros(shape, other),
        "int_dtype": np.zeros(shape, np.int64),
        "big_endian": np.zeros(shape, np.dtype(dtype).newbyteorder(">")),
        "non_contiguous": np.zeros((shape[0], 2 * shape[1]), dtype)[:, ::2],
        "fortran": np.zeros(shape, dtype, order="F"),
        "read_only": ro,
        "list": np.zeros(shape, dtype).tolist(),
    }


BAD_BUFFER_KINDS = list(_bad_buffers((5, 3), np.float64))
OUT_ARGS = [  # (method, kwargs besides the buffer, the buffer's argument name)
    ("loss", {"reduction": "none"}, "loss_out"),
    ("loss_gradient", {"reduction": "none"}, "loss_out"),
    ("gradient", {}, "gradient_out"),
    ("loss_gradient", {}, "gradient_out"),
    ("gradient_hessian", {}, "gradient_out"),
    ("gradient_hessian", {}, "hessian_out"),
]


@pytest.mark.parametrize("kind", BAD_BUFFER_KINDS)
@pytest.mark.parametrize("method,kwargs,name", OUT_ARGS,
                         ids=[f"{m}-{n}" for m, _, n in OUT_ARGS])
@pytest.mark.parametrize("dtype", DTYPES)
def test_bad_out_buffer_raises(dtype, method, kwargs, name, kind):
    t, p = make_data((5, 3), dtype)
    buf = _bad_buffers((5, 3), dtype)[kind]
    before = np.array(buf, copy=True)
    with pytest.raises(ValueError, match=name):
        getattr(fl.Huber(), method)(t, p, **kwargs, **{name: buf})
    np.testing.assert_array_equal(np.asarray(buf), before)   # nothing written


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_outputs_sharing_memory_raise(case):
    t, p = make_data((5, 3))
    obj = case.make()
    buf = np.empty_like(p)
    with pytest.raises(ValueError, match="hessian_out|gradient_out"):
        obj.gradient_hessian(t, p, gradient_out=buf, hessian_out=buf)
    with pytest.raises(ValueError, match="loss_out|gradient_out"):
        obj.loss_gradient(t, p, reduction="none", loss_out=buf, gradient_out=buf)


# ---------------------------------------------------------------------------------------------
# Accuracy on large inputs, and determinism across thread counts
# ---------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _big_data(n, dtype, seed):
    """Data whose losses span many orders of magnitude (a naive float32 sum would fail)."""
    rng = np.random.default_rng(seed)
    t = rng.normal(size=n)
    d = rng.normal(size=n) * 10.0 ** rng.uniform(-3, 2, size=n)
    p = (t + d).astype(dtype)
    t = t.astype(dtype)
    t.flags.writeable = False
    p.flags.writeable = False
    return t, p


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_large_mean_and_sum_against_fsum(case, dtype):
    n = 10**6 + 3
    t, p = _big_data(n, np.dtype(dtype), 11)
    l, g, _ = case.reference(t, p)
    total = math.fsum(l)
    obj = case.make()
    rtol = RTOL[np.dtype(dtype)]
    assert_close(obj.loss(t, p, reduction="sum"), total, rtol=rtol)
    assert_close(obj(t, p), total / n, rtol=rtol)
    lv, gv = obj.loss_gradient(t, p)
    assert_close(lv, total / n, rtol=rtol)
    check_array(gv, g / n, dtype)


THREAD_COUNTS = [1, 2, 3, 7]


@pytest.mark.parametrize("weights", [None, "full", "per_row"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_results_are_bit_identical_for_every_thread_count(case, dtype, weights):
    shape = (100_003, 3)   # 300_009 elements: enough work for several threads
    t, p = (a.reshape(shape) for a in _big_data(shape[0] * 3, np.dtype(dtype), 12))
    w = make_weights(shape, weights, dtype, seed=13)
    results = []
    for nt in THREAD_COUNTS + [None]:
        obj = case.make(n_threads=nt)
        r = {red: obj.loss(t, p, sample_weight=w, reduction=red) for red in ("sum", "mean")}
        r["lg"], r["lg_grad"] = obj.loss_gradient(t, p, sample_weight=w)
        r["grad_sum"] = obj.gradient(t, p, sample_weight=w, reduction="sum")
        r["grad_mean"] = obj.gradient(t, p, sample_weight=w, reduction="mean")
        r["g"], r["h"] = obj.gradient_hessian(t, p, sample_weight=w)
        r["func"] = case.func(t, p, sample_weight=w, n_threads=nt, **case.params)
        results.append(r)
    # Not a trivial agreement: the one-thread result is right.
    l, g, _ = case.reference(t, p)
    wf = full_weights(w, shape)
    rtol = RTOL[np.dtype(dtype)]
    assert_close(results[0]["sum"], ref_loss(l, "sum", wf), rtol=rtol)
    assert_close(results[0]["mean"], ref_loss(l, "mean", wf), rtol=rtol)
    check_array(results[0]["grad_mean"], ref_grad(g, "mean", wf), dtype)
    assert results[0]["lg"] == results[0]["mean"] == results[0]["func"]
    for nt, r in zip(THREAD_COUNTS[1:] + [None], results[1:]):
        for key, value in r.items():
            ref = results[0][key]
            if isinstance(value, float):
                assert value == ref, f"{key} with n_threads={nt}: {value!r} != {ref!r}"
            else:
                assert np.array_equal(value, ref), f"{key} differs with n_threads={nt}"


# ---------------------------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------------------------

ARRAY_LIKES = {
    "lists": lambda t, p: (t.tolist(), p.tolist()),
    "ints": lambda t, p: (np.round(t).astype(np.int64), np.round(p).astype(np.int32)),
    "int_lists": lambda t, p: (np.round(t).astype(int).tolist(), np.round(p).astype(int).tolist()),
    "bools": lambda t, p: (t > 0, p > 0),
    "float16": lambda t, p: (t.astype(np.float16), p.astype(np.float16)),
    "uint8": lambda t, p: (np.abs(np.round(t)).astype(np.uint8),
                           np.abs(np.round(p)).astype(np.uint8)),
    "tuple_and_list": lambda t, p: (tuple(map(tuple, t.tolist())), p.tolist()),
}


@pytest.mark.parametrize("kind", list(ARRAY_LIKES))
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_array_likes_become_float64(case, kind):
    t0, p0 = make_data((4, 3))
    t, p = ARRAY_LIKES[kind](t0, p0)
    l, g, h = case.reference(np.asarray(t, float), np.asarray(p, float))
    obj = case.make()
    check_array(obj.loss(t, p, reduction="none"), l, np.float64)
    assert_close(obj(t, p), l.mean())
    check_array(obj.gradient(t, p), g / g.size, np.float64)
    gv, hv = obj.gradient_hessian(t, p)
    check_array(gv, g, np.float64)
    check_array(hv, h, np.float64)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_y_true_is_cast_to_float32_y_pred(case):
    t0, p0 = make_data((6,))
    p = p0.astype(np.float32)
    for t in (t0, t0.tolist(), np.round(t0).astype(int)):
        t32 = np.asarray(t).astype(np.float32)
        l, g, _ = case.reference(t32, p)
        check_array(case.make().loss(t, p, reduction="none"), l, np.float32)
        check_array(case.make().gradient(t, p), g / g.size, np.float32)


def _strided(a):
    big = np.zeros(a.shape + (2,), a.dtype)
    big[..., 0] = a
    v = big[..., 0]                          # same values, every stride doubled
    assert not v.flags.c_contiguous and not v.flags.f_contiguous
    return v


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


LAYOUTS = {
    "step_slice": lambda a: np.repeat(a, 2, axis=0)[::2],
    "strided": _strided,
    "reversed": lambda a: a[::-1].copy()[::-1],
    "read_only": _read_only,
    "fortran": np.asfortranarray,
    "big_endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "transposed_view": lambda a: np.ascontiguousarray(a.T).T,
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_input_layouts(case, dtype, layout):
    shape = (6, 4)
    t0, p0 = make_data(shape, dtype)
    w0 = make_weights(shape, "full", dtype)
    wr0 = make_weights(shape, "per_row", dtype)
    t, p, w, wr = (LAYOUTS[layout](a) for a in (t0, p0, w0, wr0))
    np.testing.assert_array_equal(p, p0)
    copies = [np.array(a, copy=True) for a in (t, p, w, wr)]
    l, g, h = case.reference(t0, p0)
    obj = case.make()
    check_array(obj.loss(t, p, reduction="none"), l, dtype)
    assert_close(obj(t, p), l.mean(), rtol=RTOL[np.dtype(dtype)])
    check_array(obj.gradient(t, p), g / g.size, dtype)
    for weights, w_ref in ((w, w0), (wr, wr0)):
        wf = full_weights(w_ref, shape)
        assert_close(obj.loss(t, p, sample_weight=weights), np.average(l, weights=wf),
                     rtol=RTOL[np.dtype(dtype)])
        lv, gv = obj.loss_gradient(t, p, sample_weight=weights, reduction="none")
        check_array(lv, wf * l, dtype)
        check_array(gv, wf * g, dtype)
        gv, hv = obj.gradient_hessian(t, p, sample_weight=weights)
        check_array(gv, wf * g, dtype)
        check_array(hv, wf * h, dtype)
    for a, c in zip((t, p, w, wr), copies):   # inputs untouched
        np.testing.assert_array_equal(a, c)


BAD_DTYPES = {
    "complex": np.array([1 + 1j, 2.0, 3.0]),
    "object": np.array([1.0, 2.0, 3.0], dtype=object),
    "str": np.array(["1", "2", "3"]),
    "str_list": ["1.0", "2.0", "3.0"],
    "bytes": np.array([b"1", b"2", b"3"]),
    "datetime": np.array(["2020-01-01"] * 3, dtype="datetime64[D]"),
}


@pytest.mark.parametrize("bad", list(BAD_DTYPES))
@pytest.mark.parametrize("arg", ["y_true", "y_pred", "sample_weight"])
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_non_real_dtypes_raise_type_error(case, arg, bad):
    kwargs = {"y_true": np.zeros(3), "y_pred": np.ones(3), "sample_weight": None}
    kwargs[arg] = BAD_DTYPES[bad]
    obj = case.make()
    for call in (
        lambda: obj.loss(kwargs["y_true"], kwargs["y_pred"], sample_weight=kwargs["sample_weight"]),
        lambda: obj.gradient(kwargs["y_true"], kwargs["y_pred"],
                             sample_weight=kwargs["sample_weight"]),
        lambda: obj.gradient_hessian(kwargs["y_true"], kwargs["y_pred"],
                                     sample_weight=kwargs["sample_weight"]),
    ):
        with pytest.raises(TypeError, match=arg):
            call()


@pytest.mark.parametrize("shapes", [((5,), (6,)), ((5, 3), (3, 5)), ((15,), (5, 3)),
                                    ((5, 1), (5,)), ((5,), (5, 1)), ((1,), (4,)),
                                    ((2, 3, 4), (2, 12))], ids=str)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_shape_mismatch_raises(case, shapes):
    t, p = np.zeros(shapes[0]), np.ones(shapes[1])
    obj = case.make()
    for method in ("loss", "gradient", "loss_gradient", "gradient_hessian"):
        with pytest.raises(ValueError, match="y_true"):
            getattr(obj, method)(t, p)
    with pytest.raises(ValueError, match="y_true"):
        case.func(t, p, **case.params)


@pytest.mark.parametrize("reduction", ["avg", "MEAN", "", None, "elementwise"])
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_bad_reduction_raises(case, reduction):
    t, p = make_data((4,))
    obj = case.make()
    for method in ("loss", "gradient", "loss_gradient"):
        with pytest.raises(ValueError, match="reduction"):
            getattr(obj, method)(t, p, reduction=reduction)
    with pytest.raises(ValueError, match="reduction"):
        case.func(t, p, reduction=reduction, **case.params)


@pytest.mark.parametrize("bad", [-1.0, -1e-300, np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kind", ["full", "per_row"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_invalid_weight_values_raise(case, dtype, kind, bad):
    t, p = make_data((5, 3), dtype)
    w = make_weights((5, 3), kind, np.float64)
    w.reshape(-1)[3] = bad
    if dtype == np.float32 and bad == -1e-300:
        bad = -1.0     # -1e-300 rounds to -0.0 in float32, a valid weight
        w.reshape(-1)[3] = bad
    obj = case.make()
    for red in REDUCTIONS:
        with pytest.raises(ValueError, match="sample_weight"):
            obj.loss(t, p, sample_weight=w, reduction=red)
        with pytest.raises(ValueError, match="sample_weight"):
            obj.gradient(t, p, sample_weight=w, reduction=red)
    with pytest.raises(ValueError, match="sample_weight"):
        obj.gradient_hessian(t, p, sample_weight=w)
    with pytest.raises(ValueError, match="sample_weight"):
        case.func(t, p, sample_weight=w, **case.params)


@pytest.mark.parametrize("shape,wshape", [((7,), (6,)), ((7,), (7, 1)), ((5, 3), (3,)),
                                          ((5, 3), (5, 1)), ((5, 3), (15,)), ((5, 3), (3, 5)),
                                          ((2, 3, 4), (2, 3)), ((2, 3, 4), (4,)),
                                          ((4,), ())], ids=str)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_wrong_weight_shape_raises(case, shape, wshape):
    t, p = make_data(shape)
    w = np.ones(wshape)
    obj = case.make()
    for method in ("loss", "gradient", "gradient_hessian"):
        with pytest.raises(ValueError, match="sample_weight"):
            getattr(obj, method)(t, p, sample_weight=w)


@pytest.mark.parametrize("kind", ["full", "per_row"])
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_zero_weights(case, kind):
    t, p = make_data((4, 3))
    w = np.zeros((4, 3) if kind == "full" else (4,))
    obj = case.make()
    with pytest.raises(ValueError, match="sample_weight"):
        obj.loss(t, p, sample_weight=w)
    with pytest.raises(ValueError, match="sample_weight"):
        obj(t, p, sample_weight=w)
    with pytest.raises(ValueError, match="sample_weight"):
        obj.gradient(t, p, sample_weight=w)
    with pytest.raises(ValueError, match="sample_weight"):
        obj.loss_gradient(t, p, sample_weight=w)
    # Other reductions are well defined: zero.
    assert obj.loss(t, p, sample_weight=w, reduction="sum") == 0.0
    assert_close(obj.loss(t, p, sample_weight=w, reduction="none"), np.zeros((4, 3)))
    assert_close(obj.gradient(t, p, sample_weight=w, reduction="sum"), np.zeros((4, 3)))
    gv, hv = obj.gradient_hessian(t, p, sample_weight=w)
    assert_close(gv, np.zeros((4, 3)))
    assert_close(hv, np.zeros((4, 3)))


@pytest.mark.parametrize("delta", [0, 0.0, -1, -1e-300, np.nan, np.inf, -np.inf])
def test_bad_huber_delta_raises(delta):
    with pytest.raises(ValueError, match="delta"):
        fl.Huber(delta=delta)
    with pytest.raises(ValueError, match="delta"):
        fl.huber(np.zeros(2), np.ones(2), delta=delta)


@pytest.mark.parametrize("n_threads,exc", [(0, ValueError), (-1, ValueError), (-8, ValueError),
                                           (1.5, TypeError), ("2", TypeError)])
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_bad_n_threads_raises(case, n_threads, exc):
    with pytest.raises(exc, match="n_threads"):
        case.make(n_threads=n_threads)
    with pytest.raises(exc, match="n_threads"):
        case.func(np.zeros(2), np.ones(2), n_threads=n_threads, **case.params)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_arguments_after_y_pred_are_keyword_only(case):
    t, p = make_data((3,))
    obj = case.make()
    with pytest.raises(TypeError):
        obj.loss(t, p, None, "sum")
    with pytest.raises(TypeError):
        obj.gradient(t, p, None)
    with pytest.raises(TypeError):
        case.func(t, p, None)
    with pytest.raises(TypeError):
        fl.Huber(2.0)
    with pytest.raises(TypeError):
        case.func(t, p, no_such_parameter=1)


@pytest.mark.parametrize("good,bad", [({"n_threads": 1}, {"n_threads": 1.0}),
                                      ({"n_threads": 1}, {"n_threads": True}),
                                      ({"delta": 1}, {"delta": True})], ids=str)
def test_functional_validates_parameters_even_after_a_cached_call(good, bad):
    t, p = np.zeros(3), np.array([1.0, 2.0, 3.0])
    fl.huber(t, p, **good)
    with pytest.raises(TypeError):
        fl.Huber(**bad)          # the class rejects it ...
    with pytest.raises(TypeError):
        fl.huber(t, p, **bad)    # ... so the functional form, documented as equal, must too


# ---------------------------------------------------------------------------------------------
# Scalars (0-d)
# ---------------------------------------------------------------------------------------------

def test_zero_d_arrays():
    t, p = np.array(2.0), np.array(3.5)
    assert fl.mean_squared_error(t, p) == 2.25
    assert fl.Huber().loss(t, p, reduction="sum") == 1.0
    g = fl.MeanSquaredError().gradient(t, p)
    assert g.shape == () and g == 3.0


@pytest.mark.parametrize("t,p", [(2.0, 3.5), (2, 3.5), (np.float64(2.0), np.float64(3.5)),
                                 (2.0, np.array(3.5)), (np.array(2.0), 3.5),
                                 (np.array(2.0), np.array(3.5, dtype=">f8")),
                                 (np.array(2.0), np.array(3.5, dtype=np.float16))],
                         ids=["float-float", "int-float", "np.float64", "float-0d",
                              "0d-float", "0d-big-endian-0d", "0d-float16-0d"])
def test_python_and_numpy_scalars_keep_0d_shape(t, p):
    g = fl.MeanSquaredError().gradient(t, p)
    assert g.shape == ()
    assert g == 3.0
    assert fl.Huber().loss(t, p, reduction="none").shape == ()


def test_scalar_y_pred_with_1d_y_true_is_a_shape_mismatch():
    with pytest.raises(ValueError, match="y_true"):
        fl.MeanSquaredError().gradient(np.array([2.0]), 3.5)


# ---------------------------------------------------------------------------------------------
# NaN / inf, empty arrays
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_nan_and_inf_propagate(case, dtype):
    t = np.array([0.0, 0.0, np.nan, 1.0, -np.inf, np.inf, 2.0, 0.5, np.nan], dtype=dtype)
    p = np.array([0.5, np.nan, 1.0, np.inf, 0.0, np.inf, -3.0, 0.4, np.nan], dtype=dtype)
    with np.errstate(all="ignore"):
        l, g, _ = case.reference(t, p)
        d = p.astype(np.float64) - t.astype(np.float64)
    obj = case.make()
    lv = obj.loss(t, p, reduction="none")
    check_array(lv, l, dtype)
    np.testing.assert_array_equal(np.isnan(lv), np.isnan(l))
    np.testing.assert_array_equal(np.isnan(lv), np.isnan(d))
    np.testing.assert_array_equal(np.isinf(lv), np.isinf(l))
    assert math.isnan(obj(t, p))
    assert math.isnan(obj.loss(t, p, reduction="sum"))
    gv = obj.gradient(t, p, reduction="none")
    check_array(gv, g, dtype)
    gm = obj.gradient(t, p)
    np.testing.assert_array_equal(np.isnan(gm), np.isnan(g))
    gv, hv = obj.gradient_hessian(t, p)
    check_array(gv, g, dtype)
    np.testing.assert_array_equal(np.isnan(hv), np.isnan(d))   # NaN where d is NaN only
    # Without NaN, inf propagates to the reductions.
    finite = ~np.isnan(d)
    lm = obj(t[finite], p[finite])
    assert lm == np.inf
    assert obj.loss(t[finite], p[finite], reduction="sum") == np.inf


@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0), (4, 0, 2)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_empty_arrays(case, dtype, shape):
    t, p = np.zeros(shape, dtype), np.zeros(shape, dtype)
    obj = case.make()
    assert math.isnan(obj(t, p))
    assert math.isnan(obj.loss(t, p))
    assert math.isnan(case.func(t, p, **case.params))
    s = obj.loss(t, p, reduction="sum")
    assert s == 0.0 and type(s) is float
    check_array(obj.loss(t, p, reduction="none"), np.zeros(shape), dtype)
    for red in REDUCTIONS:
        check_array(obj.gradient(t, p, reduction=red), np.zeros(shape), dtype)
    lv, gv = obj.loss_gradient(t, p)
    assert math.isnan(lv)
    check_array(gv, np.zeros(shape), dtype)
    gv, hv = obj.gradient_hessian(t, p)
    check_array(gv, np.zeros(shape), dtype)
    check_array(hv, np.zeros(shape), dtype)
    assert obj.loss([], []) != obj.loss([], [])  # lists too: NaN


# ---------------------------------------------------------------------------------------------
# Loss objects
# ---------------------------------------------------------------------------------------------

REPRS = [
    (lambda: fl.MeanSquaredError(), "MeanSquaredError(n_threads=None)"),
    (lambda: fl.MeanAbsoluteError(n_threads=3), "MeanAbsoluteError(n_threads=3)"),
    (lambda: fl.Huber(), "Huber(delta=1.0, n_threads=None)"),
    (lambda: fl.Huber(delta=2.0), "Huber(delta=2.0, n_threads=None)"),
    (lambda: fl.Huber(delta=0.25, n_threads=2), "Huber(delta=0.25, n_threads=2)"),
]


@pytest.mark.parametrize("make,text", REPRS, ids=[r for _, r in REPRS])
def test_repr_shows_parameters(make, text):
    obj = make()
    assert repr(obj) == text
    assert repr(eval(text, {**vars(fl)})) == text


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_objects_are_immutable(case):
    obj = case.make(n_threads=2)
    before = repr(obj)
    for name in ("delta", "n_threads", "_params", "_spec", "anything"):
        with pytest.raises(AttributeError):
            setattr(obj, name, 3)
    for name in ("n_threads", "_params"):
        with pytest.raises(AttributeError):
            delattr(obj, name)
    assert repr(obj) == before
    t, p = make_data((5,))
    assert_close(obj(t, p), case.reference(t, p)[0].mean())


@pytest.mark.parametrize("n_threads", [None, 2])
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_pickle_round_trip(case, n_threads):
    obj = case.make(n_threads=n_threads)
    clone = pickle.loads(pickle.dumps(obj))
    assert type(clone) is type(obj)
    assert repr(clone) == repr(obj)
    t, p = make_data((5, 3))
    l, g, h = case.reference(t, p)
    assert_close(clone(t, p), l.mean())
    assert clone(t, p) == obj(t, p)
    assert_close(clone.gradient(t, p), g / g.size)
    gv, hv = clone.gradient_hessian(t, p)
    assert_close(gv, g)
    assert_close(hv, h)


def test_version_and_show_config():
    assert isinstance(fl.__version__, str) and fl.__version__
    buf = io.StringIO()
    cfg = fl.show_config(file=buf)
    assert isinstance(cfg, dict)
    assert {"openmp", "active_isa", "version"} <= set(cfg)
    assert cfg["version"] == fl.__version__
    assert isinstance(cfg["openmp"], bool)
    assert isinstance(cfg["active_isa"], str) and cfg["active_isa"]
    assert buf.getvalue().strip()        # printed to the given file


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_out_with_a_reduced_loss_is_an_error(reduction):
    t, p = np.zeros(3), np.ones(3)
    with pytest.raises(ValueError, match="loss_out"):
        fl.MeanSquaredError().loss(t, p, reduction=reduction, loss_out=np.empty(3))
