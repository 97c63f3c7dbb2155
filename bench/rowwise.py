"""Row-wise rows of ``python -m bench``: fastloss's row kernels against hand-written C.

``loss_gradient`` with a preallocated ``gradient_out``, mean reduction, from logits, at
10^7 elements: 10^6 rows x 10 classes and 10^4 rows x 1000, float64 and float32, all threads:

* CCE: ``CategoricalCrossEntropy(from_logits=True)``, integer labels.
* C: the hand-written kernel of ``bench/c_reference/rowwise.c`` for the same job (no label
  checks, weights or smoothing), built with fastloss's compiler, flags and instruction set
  (``bench.c_reference``). Target: C time / CCE time >= 0.90.
* KL: ``KLDivergence(from_logits=True)``, dense targets (a softmax per row). Target: <= 1.5x
  CCE's time.
* focal: ``CategoricalFocal()`` (gamma 2), integer labels. Target: <= 1.5x CCE's time.

and float32's throughput over float64's for each (target >= 1.7x). fastloss and C each run in
a worker process of their own (bench.isolate), samples interleaved round robin, one process
computing at a time; ratios are the medians of the ratios within a round (the machine's speed
drifts between rounds, much less within one).
"""
from __future__ import annotations

import statistics
from typing import Dict, List, Optional, Tuple

import numpy as np

from bench import c_reference, isolate
from bench.workloads import all_threads

SHAPES = ((10**6, 10), (10**4, 1000))
DTYPES = ("float64", "float32")
LOSSES = ("CCE", "C", "KL", "focal")
# Which worker process each variant runs in: fastloss's three share one (one runtime).
PROCESS = {"CCE": "fastloss", "KL": "fastloss", "focal": "fastloss", "C": "C"}


def _data(rows: int, k: int, dtype: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = (2 * rng.standard_normal((rows, k))).astype(dtype)
    labels = rng.integers(0, k, size=rows)
    e = np.exp(rng.standard_normal((rows, k)))
    targets = (e / e.sum(axis=1, keepdims=True)).astype(dtype)
    return z, labels, targets


def _fastloss(loss: str, n_threads: int):
    import fastloss as fl
    if loss == "CCE":
        return fl.CategoricalCrossEntropy(from_logits=True, n_threads=n_threads)
    if loss == "KL":
        return fl.KLDivergence(from_logits=True, n_threads=n_threads)
    return fl.CategoricalFocal(n_threads=n_threads)


def case(loss: str, rows: int, k: int, dtype: str, threads: int):
    """The callable timed for one variant (made in its worker process)."""
    z, labels, targets = _data(rows, k, dtype)
    g = np.empty_like(z)
    if loss == "C":
        return c_reference.bound(labels, z, g, threads)
    obj = _fastloss(loss, threads)
    y = targets if loss == "KL" else labels

    def call():
        return obj.loss_gradient(y, z, gradient_out=g)
    return call


def check(rows: int = 300) -> List[str]:
    """The C kernel against fastloss on small inputs of every shape and dtype: a benchmark of
    a kernel that computes something else would mean nothing."""
    lines = []
    for _, k in SHAPES:
        for dtype in DTYPES:
            z, labels, _ = _data(rows, k, dtype, seed=1)
            g = np.empty_like(z)
            loss_c, _ = c_reference.ce_logits(labels, z, g, 1)
            loss_f, g_f = _fastloss("CCE", 1).loss_gradient(labels, z)
            tol = 1e-12 if dtype == "float64" else 1e-5
            err = max(abs(loss_c - loss_f) / abs(loss_f), float(np.max(np.abs(g - g_f))) * rows)
            if not err <= tol:
                raise AssertionError(f"the C reference disagrees with fastloss (k={k}, {dtype}): "
                                     f"relative error {err:.2e} > {tol:g}")
            lines.append(f"k={k} {dtype}: {err:.1e}")
    return lines


def variants(shapes, dtypes, with_c: bool) -> List[Tuple[str, int, int, str]]:
    return [(loss, rows, k, dtype) for rows, k in shapes for dtype in dtypes
            for loss in LOSSES if loss != "C" or with_c]


def measure(shapes, dtypes, threads: int, repeat: int, sample_s: float,
            with_c: bool) -> Dict[tuple, List[float]]:
    """variant -> its seconds per call, one per round, rounds interleaved across variants."""
    rows = variants(shapes, dtypes, with_c)
    workers = isolate.Workers()
    try:
        numbers = {}
        for v in rows:
            loss, n, k, dtype = v
            w = workers.turn(PROCESS[loss])
            w.load("bench.rowwise", "case", slot=repr(v), loss=loss, rows=n, k=k, dtype=dtype,
                   threads=threads)
            numbers[v] = w.calibrate(sample_s, True, slot=repr(v))[0]
        samples = {v: [] for v in rows}
        for r in range(repeat):
            # Rotate the order, so that being first after a switch of process (cold caches,
            # threads waking) and the machine's drift hit every variant alike.
            for j in range(len(rows)):
                v = rows[(j + r) % len(rows)]
                samples[v].append(workers.turn(PROCESS[v[0]]).sample(
                    numbers[v], 10 * sample_s, slot=repr(v)))
    finally:
        workers.close()
    return samples


def _ratio(a: List[float], b: List[float]) -> Tuple[float, float, float]:
    """Median, q25 and q75 of a[r] / b[r] over the rounds r."""
    rs = [x / y for x, y in zip(a, b)]
    q25, med, q75 = np.percentile(rs, [25, 50, 75])
    return float(med), float(q25), float(q75)


def summarize(samples, shapes, dtypes, targets: bool = True) -> Tuple[List[str], List[dict]]:
    """The rows' lines and records; ``targets``: say the issue's targets (they are set for
    the default sizes, where a call is long enough for threads to pay)."""
    def target(t):
        return f" (target {t})" if targets else ""
    lines, recs = [], []
    for rows, k in shapes:
        for dtype in dtypes:
            cce = samples.get(("CCE", rows, k, dtype))
            for loss in LOSSES:
                s = samples.get((loss, rows, k, dtype))
                if not s:
                    continue
                med = statistics.median(s)
                rec = {"loss": loss, "rows": rows, "k": k, "dtype": dtype, "median_s": med,
                       "samples": len(s),
                       "gelem_per_s": rows * k / med / 1e9}
                text = (f"    {loss:<6} {rows:>8} x {k:<5} {dtype:<8} {med * 1e3:9.3f} ms  "
                        f"{rec['gelem_per_s']:6.3f} Gelem/s")
                if loss == "C":
                    m, lo, hi = _ratio(s, cce)
                    rec["c_over_cce"] = m
                    text += (f"   C time / fastloss CCE time {m:.2f} [{lo:.2f}-{hi:.2f}]"
                             + target(">= 0.90"))
                elif loss != "CCE":
                    m, lo, hi = _ratio(s, cce)
                    rec["over_cce"] = m
                    text += f"   {loss} / CCE time {m:.2f} [{lo:.2f}-{hi:.2f}]" + target("<= 1.5")
                if dtype == "float32" and ("float64" in dtypes):
                    s64 = samples.get((loss, rows, k, "float64"))
                    if s64:
                        m, lo, hi = _ratio(s64, s)
                        rec["f32_over_f64_throughput"] = m
                        text += f"   float32 / float64 throughput {m:.2f}" + target(">= 1.7")
                lines.append(text)
                recs.append(rec)
    return lines, recs


def run(n: Optional[int] = None, threads: Optional[int] = None, dtypes=None, repeat: int = 7,
        sample_s: float = 0.1) -> dict:
    """Print the row-wise rows; ``n`` elements per case (default 10^7) keeps the shapes' k."""
    threads = threads or all_threads()
    dtypes = tuple(dtypes or DTYPES)
    shapes = [(max(1, (n or rows * k) // k), k) for rows, k in SHAPES]
    lib, how = c_reference.load()
    print(f"Row-wise kernels against hand-written C (loss_gradient into gradient_out, mean, "
          f"from logits, {threads} threads; {isolate.HOW}; medians of {repeat} rounds, ratios "
          f"within a round, q25-q75 in brackets):", flush=True)
    if lib is None:
        print(f"  C reference: skipped: {how}", flush=True)
        checked = None
    else:
        checked = check()
        print(f"  C reference: bench/c_reference/rowwise.c, built with: {how}", flush=True)
        print(f"  C reference checked against fastloss (max relative error of the loss and the "
              f"gradient): {'; '.join(checked)}", flush=True)
    samples = measure(shapes, dtypes, threads, repeat, sample_s, lib is not None)
    lines, recs = summarize(samples, shapes, dtypes,
                            targets=all(r * k >= 10**7 for r, k in shapes))
    for line in lines:
        print(line)
    return {"threads": threads, "repeat": repeat, "c_reference": how if lib else None,
            "c_skipped": None if lib else how, "check": checked, "rows": recs}


if __name__ == "__main__":
    run()
