"""What gets timed: the workloads of a run, and the data each one uses."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

LOSSES = ("mse", "mae", "huber", "bce", "cce", "kl")
ROWWISE = frozenset({"cce", "kl"})
OPS = ("loss", "loss_gradient")
DTYPES = ("float32", "float64")
TITLES = {
    "mse": "MSE", "mae": "MAE", "huber": "Huber (delta=1)", "bce": "BCE from logits",
    "cce": "CCE from logits, integer labels", "kl": "KL from logits",
}

QUICK_SIZES = (10**3, 10**5, 10**7)
FULL_SIZES = (10**3, 10**4, 10**5, 10**6, 10**7)
CLASSES = (10, 1000)
# k = 1000 at 10^3 elements would be a single row: the default grids start where there are rows.
QUICK_SIZES_K1000 = (10**6,)
FULL_MIN_ROWS_K1000 = 10


def all_threads() -> int:
    return os.cpu_count() or 1


@dataclass(frozen=True)
class Workload:
    loss: str
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
        return (f"{self.loss} {self.op} {self.shape} {self.dtype} "
                f"{self.threads} thread{'s' if self.threads > 1 else ''}")

    def as_dict(self) -> dict:
        return {"loss": self.loss, "op": self.op, "n_elements": self.n, "rows": self.rows,
                "k": self.k, "dtype": self.dtype, "threads": self.threads}


def headline_workloads(threads: int) -> List[Workload]:
    """The four workloads of the headline table (float64, loss_gradient, all threads)."""
    lg, f64 = "loss_gradient", "float64"
    return [Workload("mse", lg, 10**7, None, f64, threads),
            Workload("bce", lg, 10**7, None, f64, threads),
            Workload("cce", lg, 10**7, 10, f64, threads),
            Workload("mse", lg, 10**3, None, f64, threads)]


def _shapes(loss: str, sizes: Sequence[int], sizes_given: bool, full: bool):
    if loss not in ROWWISE:
        return [(n, None) for n in sizes]
    out = [(n, 10) for n in sizes if n >= 10]
    if sizes_given:
        out += [(n, 1000) for n in sizes if n >= 1000]
    elif full:
        out += [(n, 1000) for n in sizes if n // 1000 >= FULL_MIN_ROWS_K1000]
    else:
        out += [(n, 1000) for n in QUICK_SIZES_K1000]
    return [(n - n % k if k else n, k) for n, k in out]


def plan(full: bool, losses: Sequence[str], sizes: Optional[Sequence[int]] = None,
         dtypes: Optional[Sequence[str]] = None,
         threads: Optional[Sequence[int]] = None) -> List[Workload]:
    """The workloads of a run, ordered so that those sharing data run back to back.

    ``full``: every size, dtype, thread count and operation. Quick: loss_gradient, float64,
    all threads at every size, plus float32, one thread and loss-only at the middle size
    (each extra only where the user did not pick that dimension).
    """
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
    return sorted(out, key=lambda w: (LOSSES.index(w.loss), w.k or 0, w.n, w.dtype,
                                      OPS.index(w.op), w.threads))


@dataclass
class Data:
    """Inputs of one workload. ``y_true`` holds int64 labels for CCE, floats otherwise."""
    y_true: np.ndarray
    y_pred: np.ndarray


def make_data(loss: str, n: int, k: Optional[int], dtype: str, seed: int = 0) -> Data:
    """Random, well-conditioned inputs (no overflow, no zeros in KL targets)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if loss in ("mse", "mae", "huber"):
        # d ~ N(0, 2): about half of Huber's elements fall on each side of delta = 1.
        return Data(rng.standard_normal(n, dtype=dt), rng.standard_normal(n, dtype=dt))
    if loss == "bce":
        y = (rng.random(n) < 0.5).astype(dt)
        z = rng.standard_normal(n, dtype=dt)
        z *= 2
        return Data(y, z)
    rows = n // k
    z = rng.standard_normal((rows, k), dtype=dt)
    if loss == "cce":
        return Data(rng.integers(0, k, size=rows, dtype=np.int64), z)
    a = rng.standard_normal((rows, k))
    a = np.exp(a - a.max(axis=1, keepdims=True))
    a /= a.sum(axis=1, keepdims=True)
    return Data(a.astype(dt), z)
