"""The implementations timed side by side: fastloss, and what a user would use instead.

Each builder returns an `Impl` whose ``fn()`` is one call with every input prepared
beforehand (outside the timer), and whose ``result(out)`` turns that call's return value into
``(mean loss, gradient of the mean loss)`` comparable with fastloss's, or None where the peer
computes something else (a different loss or scale).

fastloss's own implementation exists for every registered loss (built from the registry with
the workload's parameters). The peers exist only where they have the loss: the NumPy,
PyTorch and scikit-learn tables below are keyed by registry name, and a loss none of them
has is still timed, fastloss alone (`missing` says which peers it lacks, for the report).

Optional peers (PyTorch, scikit-learn) are imported only if installed;
``FASTLOSS_BENCH_DISABLE=torch,sklearn,matplotlib`` makes them look absent, to test that path.
"""
from __future__ import annotations

import importlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, List, Mapping, Optional, Tuple

import numpy as np

import fastloss as fl
from bench.workloads import Data, Workload, make_loss, params_of, same_value

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
# fastloss: any registered loss, with the workload's parameters (bench.workloads.params_of)

def fastloss_impls(w: Workload, d: Data, alloc: bool) -> List[Impl]:
    obj = make_loss(w.loss, w.threads)
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


def np_quantile(t, p, grad, quantile=0.5):
    d = p - t
    loss = np.mean(np.where(d <= 0, -quantile * d, (1 - quantile) * d))
    return (loss, np.where(d < 0, -quantile, 1 - quantile) / d.size) if grad else loss


def np_smooth_l1(t, p, grad, beta=1.0):
    d = p - t
    a = np.abs(d)
    loss = np.mean(np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta))
    return (loss, np.where(a < beta, d / beta, np.sign(d)) / d.size) if grad else loss


def np_pseudo_huber(t, p, grad, delta=1.0):
    d = p - t
    s = np.sqrt(1 + (d / delta) ** 2)
    loss = np.mean(delta ** 2 * (s - 1))
    return (loss, d / s / d.size) if grad else loss


def np_msle(t, p, grad):
    e = np.log1p(p) - np.log1p(t)
    loss = np.mean(e * e)
    return (loss, 2 * e / (1 + p) / e.size) if grad else loss


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


def np_log_cosh(t, p, grad):
    # What a user writes (it overflows past |d| ~ 710; the benchmark's data stays far below).
    d = p - t
    loss = np.mean(np.log(np.cosh(d)))
    return (loss, np.tanh(d) / d.size) if grad else loss


def np_poisson(y, z, grad):
    e = np.exp(z)
    loss = np.mean(e - y * z)
    return (loss, (e - y) / z.size) if grad else loss


def np_gamma(y, z, grad):
    ye = y * np.exp(-z)
    loss = np.mean(z + ye)
    return (loss, (1 - ye) / z.size) if grad else loss


def np_tweedie(y, z, grad, power=1.5):
    a, b = 2 - power, 1 - power
    ea, eb = np.exp(a * z), y * np.exp(b * z)
    loss = np.mean(ea / a - eb / b)
    return (loss, (ea - eb) / z.size) if grad else loss


def np_binary_focal(y, z, grad, gamma=2.0, alpha=None):
    # torchvision's sigmoid_focal_loss in NumPy, and its derivative by the chain rule
    p = 1 / (1 + np.exp(-z))
    ce = np.logaddexp(0, z) - y * z
    p_t = p * y + (1 - p) * (1 - y)
    mod = (1 - p_t) ** gamma
    a_t = 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
    loss = np.mean(a_t * mod * ce)
    if not grad:
        return loss
    dmod = gamma * (1 - p_t) ** (gamma - 1) * (1 - 2 * y) * p * (1 - p)
    return loss, a_t * (dmod * ce + mod * (p - y)) / z.size


def np_hinge(y, p, grad, squared=False, margin=1.0):
    s = np.where(y == 1, 1.0, -1.0)
    m = np.maximum(margin - s * p, 0)
    if squared:
        loss = np.mean(m * m)
        return (loss, -2 * s * m / p.size) if grad else loss
    loss = np.mean(m)
    return (loss, np.where(m > 0, -s, 0.0) / p.size) if grad else loss


def np_categorical_focal(labels, z, grad, gamma=2.0):
    n = z.shape[0]
    rows = np.arange(n)
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    q = e / s
    lq_y = z[rows, labels] - m[:, 0] - np.log(s[:, 0])
    q_y = q[rows, labels]
    w = (1 - q_y) ** gamma
    loss = np.mean(-w * lq_y)
    if not grad:
        return loss
    # d/dz_j = c (q_j - [j == y]) with c = q_y d/dq_y[-(1 - q_y)**gamma log q_y]'s negative
    c = w - gamma * q_y * (1 - q_y) ** (gamma - 1) * lq_y
    g = q * c[:, None]
    g[rows, labels] -= c
    g /= n
    return loss, g


def np_multi_margin(labels, x, grad, p=1, margin=1.0):
    n, k = x.shape
    rows = np.arange(n)
    d = margin - x[rows, labels][:, None] + x
    d[rows, labels] = 0
    act = d > 0
    loss = np.mean(np.where(act, d ** p, 0).sum(axis=1) / k)
    if not grad:
        return loss
    g = np.where(act, p * d ** (p - 1), 0.0) / k
    g[rows, labels] = -g.sum(axis=1)
    g /= n
    return loss, g


# ---------------------------------------------------------------------------------------
# Which peer computes which loss. Peers exist only for some losses: every table is keyed by
# the registry name, and a loss (or a parameter setting) missing from one is benchmarked
# without that peer; the report says so ("no NumPy peer") rather than dropping the row.

@dataclass(frozen=True)
class Peer:
    """A peer's version of one loss: ``make``, valid only where the workload's parameters
    (`bench.workloads.params_of`) have the values in ``requires``; the parameters named in
    ``passes`` are handed to ``make`` as keywords."""
    make: Callable
    requires: Mapping[str, object] = field(default_factory=dict)
    passes: Tuple[str, ...] = ()


# Parameters at their defaults: plain, unweighted, unsmoothed losses on logits.
_LOGITS_PLAIN_BCE = {"from_logits": True, "pos_weight": None, "label_smoothing": 0.0}
_LOGITS_PLAIN_CCE = {"from_logits": True, "class_weight": None, "label_smoothing": 0.0,
                     "ignore_index": None}

NUMPY = {
    "mean_squared_error": Peer(np_mse),
    "mean_absolute_error": Peer(np_mae),
    "huber": Peer(np_huber, passes=("delta",)),
    "binary_cross_entropy": Peer(np_bce_logits, _LOGITS_PLAIN_BCE),
    "categorical_cross_entropy": Peer(np_cce_logits, _LOGITS_PLAIN_CCE),
    "kl_divergence": Peer(np_kl_logits, {"from_logits": True}),
    "log_cosh": Peer(np_log_cosh),
    "poisson": Peer(np_poisson, {"log_input": True, "full": False}),
    "gamma": Peer(np_gamma),
    # the general power (not 0, 1 or 2, which are other formulas)
    "tweedie": Peer(np_tweedie, passes=("power",)),
    "quantile": Peer(np_quantile, passes=("quantile",)),
    "smooth_l1": Peer(np_smooth_l1, passes=("beta",)),
    "pseudo_huber": Peer(np_pseudo_huber, passes=("delta",)),
    "mean_squared_log_error": Peer(np_msle),
    "binary_focal": Peer(np_binary_focal, {"from_logits": True, "label_smoothing": 0.0},
                         passes=("gamma", "alpha")),
    "hinge": Peer(np_hinge, passes=("squared", "margin")),
    "categorical_focal": Peer(np_categorical_focal, _LOGITS_PLAIN_CCE, passes=("gamma",)),
    "multi_margin": Peer(np_multi_margin, {"class_weight": None}, passes=("p", "margin")),
}


def _torch_losses():
    F = TORCH.module.nn.functional
    return {
        "mean_squared_error": Peer(lambda t: lambda x: F.mse_loss(x, t)),
        "mean_absolute_error": Peer(lambda t: lambda x: F.l1_loss(x, t)),
        "huber": Peer(lambda t, delta: lambda x: F.huber_loss(x, t, delta=delta),
                      passes=("delta",)),
        "binary_cross_entropy": Peer(
            lambda t: lambda x: F.binary_cross_entropy_with_logits(x, t), _LOGITS_PLAIN_BCE),
        "categorical_cross_entropy": Peer(lambda t: lambda x: F.cross_entropy(x, t),
                                          _LOGITS_PLAIN_CCE),
        "kl_divergence": Peer(
            lambda t: lambda x: F.kl_div(F.log_softmax(x, dim=1), t, reduction="batchmean"),
            {"from_logits": True}),
        "poisson": Peer(lambda t, log_input, full, eps: lambda x: F.poisson_nll_loss(
            x, t, log_input=log_input, full=full, eps=eps), passes=("log_input", "full", "eps")),
        "smooth_l1": Peer(lambda t, beta: lambda x: F.smooth_l1_loss(x, t, beta=beta),
                          passes=("beta",)),
        # torchvision.ops.sigmoid_focal_loss's lines (torchvision itself is not required)
        "binary_focal": Peer(lambda t, gamma, alpha: lambda x: _torch_focal(
            F, x, t, gamma, -1 if alpha is None else alpha).mean(),
            {"from_logits": True, "label_smoothing": 0.0}, passes=("gamma", "alpha")),
        "hinge": Peer(lambda t, squared, margin: lambda x: _torch_hinge(
            TORCH.module, x, t, squared, margin), passes=("squared", "margin")),
        "categorical_focal": Peer(lambda t, gamma: lambda x: _torch_categorical_focal(
            F, x, t, gamma), _LOGITS_PLAIN_CCE, passes=("gamma",)),
        "multi_margin": Peer(lambda t, p, margin: lambda x: F.multi_margin_loss(
            x, t, p=p, margin=margin), {"class_weight": None}, passes=("p", "margin")),
    }


def _torch_focal(F, x, t, gamma, alpha):
    p = x.sigmoid()
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss


def _torch_hinge(torch, x, t, squared, margin):
    m = (margin - torch.where(t == 1, 1.0, -1.0).to(x.dtype) * x).clamp_min(0)
    return (m * m).mean() if squared else m.mean()


def _torch_categorical_focal(F, x, labels, gamma):
    lq = F.log_softmax(x, dim=1).gather(1, labels[:, None])[:, 0]
    return (-(1 - lq.exp()) ** gamma * lq).mean()


def _sklearn_losses():
    # make(k, **passes) -> (sklearn._loss object, scale to our loss, labels as floats?)
    L = importlib.import_module("sklearn._loss.loss")
    return {
        # Half squared error is half of ours.
        "mean_squared_error": Peer(lambda k: (L.HalfSquaredError(), 2.0, False)),
        "mean_absolute_error": Peer(lambda k: (L.AbsoluteError(), 1.0, False)),
        "huber": Peer(lambda k, delta: (L.HuberLoss(delta=delta), 1.0, False),
                      passes=("delta",)),
        "binary_cross_entropy": Peer(lambda k: (L.HalfBinomialLoss(), 1.0, False),
                                     _LOGITS_PLAIN_BCE),
        # sklearn takes class labels as floats of the prediction's dtype.
        "categorical_cross_entropy": Peer(
            lambda k: (L.HalfMultinomialLoss(n_classes=k), 1.0, True), _LOGITS_PLAIN_CCE),
        "quantile": Peer(lambda k, quantile: (L.PinballLoss(quantile=quantile), 1.0, False),
                         passes=("quantile",)),
        # kl_divergence: no equivalent.
        "poisson": Peer(lambda k: (L.HalfPoissonLoss(), 1.0, False),
                        {"log_input": True, "full": False}),
        "gamma": Peer(lambda k: (L.HalfGammaLoss(), 1.0, False)),
        "tweedie": Peer(lambda k, power: (L.HalfTweedieLoss(power=power), 1.0, False),
                        passes=("power",)),
    }


PEER_NAMES = {"numpy": "NumPy", "torch": "PyTorch", "sklearn": "scikit-learn"}


def _lookup(kind: str, table, w: Workload):
    """``(peer, keywords for make)``, or ``(None, why there is none)``."""
    peer = table.get(w.loss)
    if peer is None:
        return None, f"no {PEER_NAMES[kind]} peer"
    params = params_of(w.loss)
    off = [f"{k}={params.get(k)!r}" for k, v in peer.requires.items()
           if not same_value(params.get(k), v)]
    if off:
        return None, f"no {PEER_NAMES[kind]} peer for {', '.join(off)}"
    return peer, {k: params[k] for k in peer.passes}


def numpy_impl(w: Workload, d: Data) -> Optional[Impl]:
    peer, kw = _lookup("numpy", NUMPY, w)
    if peer is None:
        return None
    fn = partial(peer.make, d.y_true, d.y_pred, w.op == "loss_gradient", **kw)
    return Impl("NumPy (1 thread)", "numpy", fn, _mean_grad)


# ---------------------------------------------------------------------------------------
# PyTorch CPU: functional losses, autograd for the gradient

def torch_impl(w: Workload, d: Data) -> Optional[Impl]:
    peer, kw = _lookup("torch", _torch_losses(), w)
    if peer is None:
        return None
    torch = TORCH.module
    torch.set_num_threads(w.threads)
    f = peer.make(torch.from_numpy(d.y_true), **kw)
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
    peer, kw = _lookup("sklearn", _sklearn_losses(), w)
    if peer is None:
        return None
    obj, scale, float_labels = peer.make(w.k, **kw)
    y = d.y_true.astype(d.y_pred.dtype) if float_labels else d.y_true
    loss_out = np.empty(w.rows, dtype=d.y_pred.dtype)
    # All are unreduced (gradient not divided by n); ``scale`` maps their loss onto ours.
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


def missing(w: Workload) -> List[dict]:
    """The peers that are installed but have no version of this workload's loss (with these
    parameters): ``[{"kind", "peer", "reason"}]``. Peers that are not installed are said once,
    in the run's header, not per workload."""
    tables = [("numpy", lambda: NUMPY)]
    if TORCH.module is not None:
        tables.append(("torch", _torch_losses))
    if SKLEARN.module is not None:
        tables.append(("sklearn", _sklearn_losses))
    out = []
    for kind, table in tables:
        peer, why = _lookup(kind, table(), w)
        if peer is None:
            out.append({"kind": kind, "peer": PEER_NAMES[kind], "reason": why})
    return out


def isolated_impl(loss, op, n, k, dtype, threads, name, alloc, memref):
    """In a bench.isolate worker: the workload's data and the implementation called `name`
    (the others are closed again); returns ``(fn, close)``."""
    from bench.workloads import make_data
    w = Workload(loss, op, n, k, dtype, threads)
    chosen, others = None, []
    for impl in build(w, make_data(loss, n, k, dtype), alloc=alloc, memref=memref):
        if impl.name == name and chosen is None:
            chosen = impl
        elif impl.close:
            others.append(impl.close)
    for close in others:
        close()
    if chosen is None:
        raise ValueError(f"no implementation {name!r} for {w.label}")
    return chosen.fn, chosen.close


def build(w: Workload, d: Data, *, alloc: bool, memref: bool) -> List[Impl]:
    """fastloss first (the reference of every check), then each peer that has this loss."""
    impls = fastloss_impls(w, d, alloc)
    for available, make in ((True, numpy_impl), (TORCH.module is not None, torch_impl),
                            (SKLEARN.module is not None, sklearn_impl)):
        impl = make(w, d) if available else None
        if impl is not None:
            impls.append(impl)
    if memref:
        impls.append(memory_reference(w, d))
    return impls
