"""What gets timed: the workloads of a run, and the data each one uses.

Everything here is derived from the loss registry, ``fastloss.LOSSES``: a loss declared there
(with ``@register`` in ``fastloss/losses.py``) is benchmarked without any change to ``bench/``.

* ``LOSSES``: every registered loss, by its functional's name, in declaration order;
  `is_rowwise`; `title`: its class name and the parameters the benchmark sets.
* `params_of(loss)`: the registry defaults, except that a ``from_logits`` parameter is True
  wherever a loss has one (the benchmark times losses on logits).
* `make_data`: one generator per data kind of ``fastloss._registry.DATA_KINDS`` fills
  ``y_true`` and ``y_pred`` as the loss's ``inputs(params)`` declares them. A kind without
  a generator here stops the run at once with a message saying what to add.
* `resolve`: the names the CLI accepts for a loss: the registry name, the class name, or a
  short alias from `ALIASES` (a convenience only; it never decides which losses exist).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

import fastloss as fl
from fastloss._registry import DATA_KINDS

OPS = ("loss", "loss_gradient")
DTYPES = ("float32", "float64")

QUICK_SIZES = (10**3, 10**5, 10**7)
FULL_SIZES = (10**3, 10**4, 10**5, 10**6, 10**7)
CLASSES = (10, 1000)
# k = 1000 at 10^3 elements would be a single row: the default grids start where there are rows.
QUICK_SIZES_K1000 = (10**6,)
FULL_MIN_ROWS_K1000 = 10

#: Short command-line names (and headline labels) of some losses. Only a convenience: the
#: losses benchmarked are those of ``fastloss.LOSSES``, aliased or not.
ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error",
           "bce": "binary_cross_entropy", "cce": "categorical_cross_entropy",
           "kl": "kl_divergence"}


# ---------------------------------------------------------------------------------------
# The registry, as the benchmark sees it

#: Every registered loss, by its functional's name, in declaration order (the registry itself,
#: so a loss registered after this import is benchmarked too).
LOSSES = fl.LOSSES


def is_rowwise(name: str) -> bool:
    return loss_class(name).family == "rowwise"


def loss_class(name: str) -> type:
    try:
        return fl.LOSSES[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a registered loss; fastloss.LOSSES has "
                         f"{', '.join(fl.LOSSES)}") from None


def params_of(name: str) -> dict:
    """The parameters a workload of this loss uses: the registry defaults, with
    ``from_logits=True`` where the loss has that parameter."""
    cls = loss_class(name)
    return {p.name: (True if p.name == "from_logits" else p.default) for p in cls.params}


def make_loss(name: str, n_threads: Optional[int] = None):
    """fastloss's object for this loss's workloads."""
    return loss_class(name)(n_threads=n_threads, **params_of(name))


def _checked_params(name: str) -> dict:
    """The parameters as the constructor keeps them (what ``cls.inputs`` is declared on)."""
    p = make_loss(name).get_params()
    p.pop("n_threads", None)
    return p


def input_kinds(name: str) -> Dict[str, str]:
    """``{"y_true": kind, "y_pred": kind}`` of this loss's workloads, checked against the
    generators below (ValueError naming what is missing)."""
    cls = loss_class(name)
    kinds = cls.inputs(_checked_params(name))
    if not isinstance(kinds, Mapping) or set(kinds) != {"y_true", "y_pred"}:
        raise ValueError(f"{cls.__name__}.inputs(params) returned {kinds!r}; expected "
                         f"{{'y_true': kind, 'y_pred': kind}}")
    for arg, kind in kinds.items():
        if kind not in GENERATORS:
            known = ", ".join(GENERATORS)
            where = ("a kind fastloss._registry.DATA_KINDS does not list either"
                     if kind not in DATA_KINDS else "it is listed in DATA_KINDS")
            raise ValueError(
                f"no data generator for the data kind {kind!r} ({arg} of "
                f"{cls.__name__}, {where}); add one to GENERATORS in bench/workloads.py "
                f"(generators exist for: {known})")
    return dict(kinds)


def _fmt(v) -> str:
    return np.array2string(v, separator=", ") if isinstance(v, np.ndarray) else repr(v)


def title(name: str) -> str:
    """The class name and the parameters that differ from the defaults, e.g.
    ``BinaryCrossEntropy(from_logits=True)``; integer labels are said where used."""
    cls = loss_class(name)
    params = params_of(name)
    changed = [f"{p.name}={_fmt(params[p.name])}" for p in cls.params
               if not same_value(params[p.name], p.default)]
    out = cls.__name__ + (f"({', '.join(changed)})" if changed else "")
    if cls.inputs(_checked_params(name)).get("y_true") in ("labels", "class_labels"):
        out += ", integer labels"
    return out


def same_value(a, b) -> bool:
    """Whether a parameter value is the default (same type and equal; arrays never are)."""
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return a is b


def short_name(name: str) -> str:
    """A short label: the alias where there is one, else the registry name."""
    return next((a for a, n in ALIASES.items() if n == name), name)


def resolve(name: str) -> str:
    """The registry name for a CLI name (registry name, class name or alias, any case)."""
    key = name.strip()
    low = key.lower()
    if key in fl.LOSSES:
        return key
    if low in fl.LOSSES:
        return low
    if low in ALIASES and ALIASES[low] in fl.LOSSES:
        return ALIASES[low]
    for n, cls in fl.LOSSES.items():
        if cls.__name__.lower() == low:
            return n
    raise ValueError(f"unknown loss {name!r}; choose from {choices()}")


def choices() -> str:
    """The accepted names, for help and error messages."""
    return ", ".join(n + (f" ({short_name(n)})" if short_name(n) != n else "") for n in LOSSES)


# ---------------------------------------------------------------------------------------
# Workloads

def all_threads() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class Workload:
    loss: str         # the registry name (fastloss.LOSSES key)
    op: str           # "loss" or "loss_gradient"
    n: int            # elements; rows * k for row-wise losses
    k: Optional[int]  # classes of a row-wise loss, None for elementwise ones
    dtype: str
    threads: int

    @property
    def rows(self) -> int:
        return self.n // self.k if self.k else self.n

    @property
    def data_key(self):
        return (self.loss, self.n, self.k, self.dtype)

    @property
    def shape(self) -> str:
        if self.k:
            return f"{self.rows:,} x {self.k} ({self.n:,} elements)"
        return f"n={self.n:,}"

    @property
    def label(self) -> str:
        return (f"{short_name(self.loss)} {self.op} {self.shape} {self.dtype} "
                f"{self.threads} thread{'s' if self.threads > 1 else ''}")

    def as_dict(self) -> dict:
        return {"loss": self.loss, "op": self.op, "n_elements": self.n, "rows": self.rows,
                "k": self.k, "dtype": self.dtype, "threads": self.threads}


def workload_info(name: str) -> dict:
    """What the JSON says about a loss's workloads: class, parameters, data kinds."""
    params = {k: (v.tolist() if isinstance(v, np.ndarray) else
                  v if isinstance(v, (bool, int, float, str, type(None))) else repr(v))
              for k, v in params_of(name).items()}
    return {"loss": name, "class": loss_class(name).__name__, "family": loss_class(name).family,
            "title": title(name), "params": params, "inputs": input_kinds(name)}


def headline_workloads(threads: int) -> List[Workload]:
    """The four workloads of the headline table (float64, loss_gradient, all threads)."""
    lg, f64 = "loss_gradient", "float64"
    mse, bce, cce = "mean_squared_error", "binary_cross_entropy", "categorical_cross_entropy"
    return [w for w in (Workload(mse, lg, 10**7, None, f64, threads),
                        Workload(bce, lg, 10**7, None, f64, threads),
                        Workload(cce, lg, 10**7, 10, f64, threads),
                        Workload(mse, lg, 10**3, None, f64, threads))
            if w.loss in fl.LOSSES]


def _shapes(loss: str, sizes, sizes_given: bool, full: bool):
    if not is_rowwise(loss):
        return [(n, None) for n in sizes]
    out = [(n, 10) for n in sizes if n >= 10]
    if sizes_given:
        out += [(n, 1000) for n in sizes if n >= 1000]
    elif full:
        out += [(n, 1000) for n in sizes if n // 1000 >= FULL_MIN_ROWS_K1000]
    else:
        out += [(n, 1000) for n in QUICK_SIZES_K1000]
    return [(n - n % k if k else n, k) for n, k in out]


def plan(full: bool, losses=None, sizes=None, dtypes=None, threads=None) -> List[Workload]:
    """The workloads of a run, ordered so that those sharing data run back to back.

    ``losses``: registry names (default: every registered loss); each is checked to have
    data generators before anything runs. ``full``: every size, dtype, thread count and
    operation. Quick: loss_gradient, float64, all threads at every size, plus float32, one
    thread and loss-only at the middle size (each extra only where the user did not pick
    that dimension).
    """
    losses = list(LOSSES) if losses is None else [resolve(x) for x in losses]
    for loss in losses:
        input_kinds(loss)  # fail now, not after minutes of timing, if a kind has no generator
    sizes_given = bool(sizes)
    sizes = sorted(set(sizes)) if sizes else list(FULL_SIZES if full else QUICK_SIZES)
    t_all = all_threads()
    dts = list(dtypes) if dtypes else (list(DTYPES) if full else ["float64"])
    ths = sorted(set(threads)) if threads else sorted({1, t_all} if full else {t_all})
    out = set()
    for loss in losses:
        shapes = _shapes(loss, sizes, sizes_given, full)
        ops = OPS if full else ("loss_gradient",)
        for n, k in shapes:
            for dt in dts:
                for th in ths:
                    for op in ops:
                        out.add(Workload(loss, op, n, k, dt, th))
        if full:
            continue
        mid = sizes[len(sizes) // 2]
        for n, k in shapes:
            if k not in (None, 10) or n != mid - mid % (k or 1):
                continue
            top = max(ths)
            if not dtypes:
                out.add(Workload(loss, "loss_gradient", n, k, "float32", top))
            if not threads and t_all > 1:
                out.add(Workload(loss, "loss_gradient", n, k, dts[-1], 1))
            out.add(Workload(loss, "loss", n, k, dts[-1], top))
    order = list(fl.LOSSES)
    return sorted(out, key=lambda w: (order.index(w.loss), w.k or 0, w.n, w.dtype,
                                      OPS.index(w.op), w.threads))


# ---------------------------------------------------------------------------------------
# Data: one generator per kind of fastloss._registry.DATA_KINDS

@dataclass
class Data:
    """Inputs of one workload. ``y_true`` holds int64 labels where the loss takes labels."""
    y_true: np.ndarray
    y_pred: np.ndarray


# A generator gets (rng, n, k, dtype): n elements, k classes (None for an elementwise loss),
# and returns an array of shape (n,) elementwise, (n // k, k) row-wise ((n // k,) for labels).
Generator = Callable[[np.random.Generator, int, Optional[int], np.dtype], np.ndarray]


def _shape(n, k):
    return (n // k, k) if k else (n,)


def _needs_rows(kind, k):
    if not k:
        raise ValueError(f"data kind {kind!r} needs rows of classes; it cannot be the "
                         f"input of an elementwise loss")


def _softmax_rows(rng, n, k):
    a = rng.standard_normal(_shape(n, k))
    a = np.exp(a - a.max(axis=1, keepdims=True))
    a /= a.sum(axis=1, keepdims=True)
    return a


def gen_real(rng, n, k, dt):
    """N(0, 1): with y_true and y_pred both real, d = y_pred - y_true ~ N(0, 2), so about half
    of Huber's elements fall on each side of delta = 1."""
    return rng.standard_normal(_shape(n, k), dtype=dt)


def gen_above_minus_one(rng, n, k, dt):
    """expm1(N(0, 1)): values > -1 (log1p's argument), mostly in (-0.95, 20)."""
    return np.expm1(rng.standard_normal(_shape(n, k), dtype=dt))


def gen_logit(rng, n, k, dt):
    """Elementwise: N(0, 4) (a binary classifier's logits, probabilities spread over (0, 1));
    row-wise: N(0, 1) per class score."""
    z = rng.standard_normal(_shape(n, k), dtype=dt)
    if not k:
        z *= 2
    return z


def gen_probability(rng, n, k, dt):
    """The probabilities of `gen_logit`'s scores: sigmoid elementwise, softmax per row (never
    exactly 0 or 1 at these scales)."""
    if k:
        return _softmax_rows(rng, n, k).astype(dt)
    z = 2 * rng.standard_normal(n)
    return (1 / (1 + np.exp(-z))).astype(dt)


def gen_binary(rng, n, k, dt):
    """0/1 targets, each 1 with probability 1/2."""
    return (rng.random(_shape(n, k)) < 0.5).astype(dt)


def gen_labels(rng, n, k, dt):
    """Integer class labels (int64), uniform over the k classes."""
    _needs_rows("labels", k)
    return rng.integers(0, k, size=n // k, dtype=np.int64)


def gen_class_labels(rng, n, k, dt):
    """Integer class labels (int64), uniform over the k classes (labels-only losses)."""
    _needs_rows("class_labels", k)
    return rng.integers(0, k, size=n // k, dtype=np.int64)


def gen_signs(rng, n, k, dt):
    """-1/1 labels, each 1 with probability 1/2."""
    return np.where(rng.random(_shape(n, k)) < 0.5, 1.0, -1.0).astype(dt)


def gen_distribution(rng, n, k, dt):
    """Rows summing to 1: the softmax of N(0, 1) scores (no zeros, so KL needs no 0 log 0)."""
    _needs_rows("distribution", k)
    return _softmax_rows(rng, n, k).astype(dt)


def gen_count(rng, n, k, dt):
    """Poisson(2) counts (zeros included)."""
    return rng.poisson(2.0, size=_shape(n, k)).astype(dt)


def gen_positive(rng, n, k, dt):
    """Gamma(2, 1) values plus 1e-3 (> 0)."""
    return (rng.gamma(2.0, 1.0, size=_shape(n, k)) + 1e-3).astype(dt)


def gen_nonnegative(rng, n, k, dt):
    """Gamma(2, 1) rates (> 0)."""
    return rng.gamma(2.0, 1.0, size=_shape(n, k)).astype(dt)


#: One generator per data kind (the keys of ``fastloss._registry.DATA_KINDS``).
GENERATORS: Dict[str, Generator] = {
    "real": gen_real, "logit": gen_logit, "probability": gen_probability,
    "binary": gen_binary, "labels": gen_labels, "distribution": gen_distribution,
    "count": gen_count, "positive": gen_positive, "nonnegative": gen_nonnegative,
    "above_minus_one": gen_above_minus_one, "signs": gen_signs,
    "class_labels": gen_class_labels,
}


def make_data(loss: str, n: int, k: Optional[int], dtype: str, seed: int = 0) -> Data:
    """Random, well-conditioned inputs of the kinds the loss declares (no overflow, no zeros
    in distributions): ``y_true`` first, then ``y_pred``, from one generator seeded by
    ``seed``."""
    kinds = input_kinds(loss)
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    y_true = GENERATORS[kinds["y_true"]](rng, n, k, dt)
    y_pred = GENERATORS[kinds["y_pred"]](rng, n, k, dt)
    return Data(y_true, y_pred)
