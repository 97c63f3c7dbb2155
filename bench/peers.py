"""The implementations timed side by side: fastloss, and what a user would use instead.

Each builder returns an `Impl` whose ``fn()`` is one call with every input prepared
beforehand (outside the timer), and whose ``result(out)`` turns that call's return value into
``(mean loss, gradient of the mean loss)`` comparable with fastloss's, or None where the peer
computes something else (a different loss or scale).

Optional peers (PyTorch, scikit-learn) are imported only if installed;
``FASTLOSS_BENCH_DISABLE=torch,sklearn,matplotlib`` makes them look absent, to test that path.
"""
from __future__ import annotations

import importlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Callable, List, Optional, Tuple

import numpy as np

import fastloss as fl
from bench.workloads import Data, Workload

Result = Tuple[float, Optional[np.ndarray]]


@dataclass
class Impl:
    name: str
    kind: str  # fastloss, fastloss-alloc, numpy, torch, sklearn, memref
    fn: Callable[[], object]
    result: Optional[Callable[[object], Result]] = None
    close: Optional[Callable[[], None]] = None


@dataclass
class Optional_:
    """An optional dependency: the module, or why it is missing."""
    key: str
    module: object = None
    reason: str = ""

    @property
    def version(self) -> Optional[str]:
        return getattr(self.module, "__version__", None) if self.module else None


def optional_import(key: str, module: str) -> Optional_:
    disabled = {s.strip().lower() for s in
                os.environ.get("FASTLOSS_BENCH_DISABLE", "").split(",") if s.strip()}
    if key in disabled:
        return Optional_(key, reason="disabled by FASTLOSS_BENCH_DISABLE")
    try:
        return Optional_(key, importlib.import_module(module))
    except Exception as exc:  # a broken install must not stop the benchmark either
        return Optional_(key, reason=f"{type(exc).__name__}: {exc}")


TORCH = optional_import("torch", "torch")
SKLEARN = optional_import("sklearn", "sklearn")


def _mean_grad(out) -> Result:
    value, grad = out if isinstance(out, tuple) else (out, None)
    return float(value), grad


# ---------------------------------------------------------------------------------------
# fastloss

def _fastloss_object(w: Workload):
    cls = {"mse": fl.MeanSquaredError, "mae": fl.MeanAbsoluteError, "huber": fl.Huber,
           "bce": fl.BinaryCrossEntropy, "cce": fl.CategoricalCrossEntropy,
           "kl": fl.KLDivergence}[w.loss]
    params = {"from_logits": True} if w.loss in ("bce", "cce", "kl") else {}
    if w.loss == "huber":
        params["delta"] = 1.0
    return cls(n_threads=w.threads, **params)


def fastloss_impls(w: Workload, d: Data, alloc: bool) -> List[Impl]:
    obj = _fastloss_object(w)
    if w.op == "loss":
        return [Impl("fastloss", "fastloss", partial(obj.loss, d.y_true, d.y_pred), _mean_grad)]
    buf = np.empty_like(d.y_pred)
    out = [Impl("fastloss", "fastloss",
                partial(obj.loss_gradient, d.y_true, d.y_pred, gradient_out=buf), _mean_grad)]
    if alloc:
        out.append(Impl("fastloss (alloc)", "fastloss-alloc",
                        partial(obj.loss_gradient, d.y_true, d.y_pred), _mean_grad))
    return out


# ---------------------------------------------------------------------------------------
# NumPy: the expressions a user would write by hand (single-threaded, temporaries and all)

def np_mse(t, p, grad):
    d = p - t
    loss = np.mean(d * d)
    return (loss, 2 * d / d.size) if grad else loss


def np_mae(t, p, grad):
    d = p - t
    loss = np.mean(np.abs(d))
    return (loss, np.sign(d) / d.size) if grad else loss


def np_huber(t, p, grad, delta=1.0):
    d = p - t
    a = np.abs(d)
    loss = np.mean(np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta)))
    return (loss, np.clip(d, -delta, delta) / d.size) if grad else loss


def np_bce_logits(y, z, grad):
    loss = np.mean(np.logaddexp(0, z) - y * z)
    return (loss, (1 / (1 + np.exp(-z)) - y) / z.size) if grad else loss


def np_cce_logits(labels, z, grad):
    n = z.shape[0]
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = np.mean(np.log(s[:, 0]) + m[:, 0] - z[rows, labels])
    if not grad:
        return loss
    g = e / s
    g[rows, labels] -= 1
    g /= n
    return loss, g


def np_kl_logits(t, z, grad):
    # The benchmark's targets have no zeros, so t * log(t) needs no 0 * log(0) guard.
    n = z.shape[0]
    s = z - z.max(axis=1, keepdims=True)
    e = np.exp(s)
    se = e.sum(axis=1, keepdims=True)
    loss = np.sum(t * (np.log(t) - (s - np.log(se)))) / n
    return (loss, (e / se - t) / n) if grad else loss


NUMPY = {"mse": np_mse, "mae": np_mae, "huber": np_huber, "bce": np_bce_logits,
         "cce": np_cce_logits, "kl": np_kl_logits}


def numpy_impl(w: Workload, d: Data) -> Impl:
    fn = partial(NUMPY[w.loss], d.y_true, d.y_pred, w.op == "loss_gradient")
    return Impl("NumPy (1 thread)", "numpy", fn, _mean_grad)


# ---------------------------------------------------------------------------------------
# PyTorch CPU: functional losses, autograd for the gradient

def torch_impl(w: Workload, d: Data) -> Impl:
    torch = TORCH.module
    F = torch.nn.functional
    torch.set_num_threads(w.threads)
    t = torch.from_numpy(d.y_true)
    f = {"mse": lambda x: F.mse_loss(x, t),
         "mae": lambda x: F.l1_loss(x, t),
         "huber": lambda x: F.huber_loss(x, t, delta=1.0),
         "bce": lambda x: F.binary_cross_entropy_with_logits(x, t),
         "cce": lambda x: F.cross_entropy(x, t),
         "kl": lambda x: F.kl_div(F.log_softmax(x, dim=1), t, reduction="batchmean")}[w.loss]
    name = "PyTorch"
    if w.op == "loss":
        p = torch.from_numpy(d.y_pred)

        def fn():
            return f(p).item()
        return Impl(name, "torch", fn, _mean_grad)

    leaf = torch.from_numpy(d.y_pred).requires_grad_()

    def fn():
        # As after optimizer.zero_grad() (set_to_none=True, its default): a fresh gradient.
        leaf.grad = None
        out = f(leaf)
        out.backward()
        return out.item(), leaf.grad

    def result(out):
        return float(out[0]), out[1].numpy()
    return Impl(name + " (autograd)", "torch", fn, result)


# ---------------------------------------------------------------------------------------
# scikit-learn's private sklearn._loss: unreduced per-element (per-row) loss and gradient

def sklearn_impl(w: Workload, d: Data) -> Optional[Impl]:
    if w.loss == "kl":
        return None  # no equivalent
    L = importlib.import_module("sklearn._loss.loss")
    obj = {"mse": lambda: L.HalfSquaredError(), "mae": lambda: L.AbsoluteError(),
           "huber": lambda: L.HuberLoss(delta=1.0), "bce": lambda: L.HalfBinomialLoss(),
           "cce": lambda: L.HalfMultinomialLoss(n_classes=w.k)}[w.loss]()
    # sklearn takes class labels as floats of the prediction's dtype.
    y = d.y_true.astype(d.y_pred.dtype) if w.loss == "cce" else d.y_true
    loss_out = np.empty(w.rows, dtype=d.y_pred.dtype)
    # Half squared error is half of ours; all are unreduced (gradient not divided by n).
    scale = 2.0 if w.loss == "mse" else 1.0
    if w.op == "loss":
        fn = partial(obj.loss, y, d.y_pred, loss_out=loss_out, n_threads=w.threads)

        def result(out):
            return scale * float(np.mean(out, dtype=np.float64)), None
    else:
        grad_out = np.empty_like(d.y_pred)
        fn = partial(obj.loss_gradient, y, d.y_pred, loss_out=loss_out, gradient_out=grad_out,
                     n_threads=w.threads)

        def result(out):
            return (scale * float(np.mean(out[0], dtype=np.float64)),
                    out[1] * (scale / w.rows))
    return Impl("scikit-learn (unreduced)", "sklearn", fn, result)


# ---------------------------------------------------------------------------------------
# The memory reference: the same traffic as an elementwise loss_gradient (two reads, one write)

def memory_reference(w: Workload, d: Data) -> Impl:
    t, p = d.y_true.reshape(-1), d.y_pred.reshape(-1)
    buf = np.empty_like(p)
    if w.threads == 1:
        return Impl("memory reference (np.add)", "memref", partial(np.add, t, p, out=buf))
    # NumPy is single-threaded: split into one slice per thread (np.add releases the GIL).
    edges = np.linspace(0, p.size, w.threads + 1).astype(int)
    parts = [(t[a:b], p[a:b], buf[a:b]) for a, b in zip(edges[:-1], edges[1:])]
    pool = ThreadPoolExecutor(w.threads - 1)

    def fn():
        futures = [pool.submit(np.add, a, b, out=c) for a, b, c in parts[1:]]
        a, b, c = parts[0]
        np.add(a, b, out=c)
        for f in futures:
            f.result()
    return Impl(f"memory reference (np.add, {w.threads} threads)", "memref", fn,
                close=pool.shutdown)


def build(w: Workload, d: Data, *, alloc: bool, memref: bool) -> List[Impl]:
    impls = fastloss_impls(w, d, alloc) + [numpy_impl(w, d)]
    if TORCH.module is not None:
        impls.append(torch_impl(w, d))
    if SKLEARN.module is not None:
        sk = sklearn_impl(w, d)
        if sk is not None:
            impls.append(sk)
    if memref:
        impls.append(memory_reference(w, d))
    return impls
