"""Pipeline rows of ``python -m bench``: fastloss inside the loops it is used in.

A kernel that is fast alone but slows the NumPy/BLAS/XGBoost work around it (its idle
threads spinning on the cores the next step needs) is slow. Each pipeline is timed as a
whole iteration and as its parts alone, each variant in its own worker process
(bench.isolate), samples interleaved across the processes:

* alternating: ``BinaryCrossEntropy(from_logits=True).loss_gradient`` over 10^6 float64
  (into ``gradient_out``), then a NumPy step (three 300 x 300 matmuls and ``np.exp`` over
  2 x 10^6). Target: the loop within 10% of the sum of its parts, timed alone. Timed twice:
  each variant in its own process, and the loop and its parts in one process (each sample
  after the process's threads went idle), which compares them on the same memory: the
  parts' own times differ from one process to the next (see the two "NumPy step alone").
* softmax regression: 200,000 x 50 float64 features, 10 classes: logits = X W, the
  cross-entropy's loss and gradient, X^T G, the update. Target: default threads no slower
  than ``n_threads=1``.
* XGBoost round (where xgboost is installed): one boosting round, 160,000 rows, binary, a
  custom objective: fastloss.gbdt's against the NumPy one a user writes. Target: no slower.

Each is also run with the NumPy loss a user would write instead.
"""
from __future__ import annotations

import os
import statistics
from typing import Dict, List, Tuple

import numpy as np

from bench import isolate

# Pipelines whose variants share one worker process (interleaved there, each with its own
# data and model): an XGBoost round's own time varies by about 10% from one process to the
# next (memory placement), more than the objectives being compared differ, and all variants
# use the same XGBoost runtime anyway; the alternating loop is timed so too, against its
# parts on the same memory (as well as each variant in its own process).
SHARED_PROCESS = {"xgboost", "alternating, one process"}
# Shared-process groups whose variants each take the same number of calls per sample (an
# XGBoost round's cost drifts with its index), and those whose process must be idle before
# each sample (a variant timed "alone" must not run into the spinning BLAS threads the
# previous variant's matmuls left behind).
SAME_NUMBER = {"xgboost"}
IDLE_BEFORE_EACH = {"alternating, one process"}

N_ALT, N_SOFTMAX, FEATURES, CLASSES, N_XGB = 1_000_000, 200_000, 50, 10, 160_000


def _bce_numpy(y, z, g):
    # the stable form a user writes: loss = log(1 + e^z) - y z, gradient sigmoid(z) - y
    loss = np.mean(np.logaddexp(0, z) - y * z)
    np.subtract(1 / (1 + np.exp(-z)), y, out=g)
    g /= len(z)
    return loss


def _cce_numpy(labels, z, g):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    q = e / e.sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    loss = -np.mean(np.log(q[rows, labels]))
    q[rows, labels] -= 1
    np.divide(q, len(labels), out=g)
    return loss


def alternating(part: str, loss: str = "fastloss", n_threads=None, blas_threads=None):
    """One iteration: part "loss", "numpy" (the step alone) or "loop" (both).

    ``blas_threads``: limit NumPy's BLAS to that many threads in this (worker) process, which
    tells how much of a loop's overhead comes from BLAS's own idle threads spinning."""
    import fastloss as fl
    if blas_threads is not None:
        from threadpoolctl import threadpool_limits
        threadpool_limits(blas_threads, user_api="blas")
    rng = np.random.default_rng(0)
    y = (rng.random(N_ALT) < 0.3).astype(np.float64)
    z = rng.normal(size=N_ALT)
    g = np.empty_like(z)
    A, B, C = (rng.normal(size=(300, 300)) for _ in range(3))
    big = rng.normal(size=2_000_000)
    out = np.empty_like(big)
    bce = fl.BinaryCrossEntropy(from_logits=True, n_threads=n_threads)

    def step():
        np.exp(((A @ B) @ C @ A).ravel()[:1] + big, out=out)

    def call():
        if loss == "fastloss":
            bce.loss_gradient(y, z, gradient_out=g)
        else:
            _bce_numpy(y, z, g)

    if part == "loss":
        return call
    if part == "numpy":
        return step

    def loop():
        call()
        step()
    return loop


def softmax_regression(loss: str = "fastloss", n_threads=None):
    import fastloss as fl
    rng = np.random.default_rng(1)
    X = rng.normal(size=(N_SOFTMAX, FEATURES))
    labels = rng.integers(0, CLASSES, size=N_SOFTMAX)
    W = np.zeros((FEATURES, CLASSES))
    G = np.empty((N_SOFTMAX, CLASSES))
    cce = fl.CategoricalCrossEntropy(from_logits=True, n_threads=n_threads)

    def iteration():
        logits = X @ W
        if loss == "fastloss":
            cce.loss_gradient(labels, logits, gradient_out=G)
        else:
            _cce_numpy(labels, logits, G)
        W[...] -= 0.5 * (X.T @ G)
    return iteration


def xgboost_round(objective: str = "fastloss", n_threads=None):
    import xgboost as xgb
    import fastloss as fl
    from fastloss.gbdt import xgboost_objective
    rng = np.random.default_rng(2)
    X = rng.normal(size=(N_XGB, 10))
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.normal(size=N_XGB) > 0).astype(np.float64)
    dtrain = xgb.DMatrix(X, label=y, base_margin=np.zeros(N_XGB))
    params = {"max_depth": 6, "tree_method": "hist", "disable_default_eval_metric": 1,
              "verbosity": 0}
    booster = xgb.Booster(params, [dtrain])
    if objective == "fastloss":
        obj = xgboost_objective(fl.BinaryCrossEntropy(from_logits=True), n_threads=n_threads)
    else:
        def obj(pred, d):
            p = 1 / (1 + np.exp(-pred))
            return p - y, p * (1 - p)
    state = {"i": 0}

    def round_():
        booster.update(dtrain, state["i"], fobj=obj)
        state["i"] += 1
    return round_


def variants() -> List[Tuple[str, str, str, dict]]:
    """(pipeline, row label, factory, kwargs), in the order printed."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    rows = [
        ("alternating", "fastloss BCE alone (default threads)", "alternating", {"part": "loss"}),
        ("alternating", "fastloss BCE alone (1 thread)", "alternating",
         {"part": "loss", "n_threads": 1}),
        ("alternating", "NumPy step alone", "alternating", {"part": "numpy"}),
        ("alternating", "loop: fastloss (default threads) + NumPy step", "alternating",
         {"part": "loop"}),
        ("alternating", "loop: fastloss (1 thread) + NumPy step", "alternating",
         {"part": "loop", "n_threads": 1}),
        ("alternating", "NumPy BCE alone", "alternating", {"part": "loss", "loss": "numpy"}),
        ("alternating", "loop: NumPy BCE + NumPy step", "alternating",
         {"part": "loop", "loss": "numpy"}),
    ]
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        pass
    else:
        rows += [
            ("alternating", "NumPy step alone (BLAS on 1 thread)", "alternating",
             {"part": "numpy", "blas_threads": 1}),
            ("alternating", "loop: fastloss (default threads) + NumPy step (BLAS on 1 thread)",
             "alternating", {"part": "loop", "blas_threads": 1}),
        ]
    one = "alternating, one process"
    rows += [
        (one, "one process: fastloss BCE alone (default threads)", "alternating",
         {"part": "loss"}),
        (one, "one process: NumPy step alone", "alternating", {"part": "numpy"}),
        (one, "one process: loop: fastloss (default threads) + NumPy step", "alternating",
         {"part": "loop"}),
    ]
    rows += [
        ("softmax", "iteration, fastloss CCE (default threads)", "softmax_regression", {}),
        ("softmax", "iteration, fastloss CCE (1 thread)", "softmax_regression",
         {"n_threads": 1}),
        ("softmax", "iteration, NumPy CCE", "softmax_regression", {"loss": "numpy"}),
    ]
    try:
        import xgboost  # noqa: F401
    except ImportError:
        pass
    else:
        rows += [
            ("xgboost", "round, fastloss.gbdt objective (its default: 1 thread)",
             "xgboost_round", {}),
            ("xgboost", f"round, fastloss.gbdt objective ({cpus} threads)", "xgboost_round",
             {"n_threads": cpus}),
            ("xgboost", "round, NumPy objective", "xgboost_round", {"objective": "numpy"}),
        ]
    return rows


def measure(repeat: int = 7, sample_s: float = 0.25, rows=None) -> Dict[str, dict]:
    """label -> {pipeline, median_s, q25_s, q75_s}, each variant in its own process."""
    rows = variants() if rows is None else rows
    workers = isolate.Workers()
    try:
        numbers, process = {}, {}
        for pipeline, label, factory, kwargs in rows:
            process[label] = pipeline if pipeline in SHARED_PROCESS else label
            w = workers.turn(process[label])
            w.load("bench.pipelines", factory, slot=label, **kwargs)
            numbers[label] = w.calibrate(sample_s, True, slot=label)[0]
        # A round's cost drifts with the round's index (the trees change as the fit
        # improves): the variants sharing a process take the same number of rounds per
        # sample, so that their r-th samples cover the same rounds.
        for group in SAME_NUMBER:
            labels = [label for _, label, _, _ in rows if process[label] == group]
            if labels:
                common = max(numbers[label] for label in labels)
                numbers.update({label: common for label in labels})
        # Round robin over the processes; within a shared process its variants take turns
        # being the first after the switch from another process (which pays for caches the
        # other process emptied).
        units: List[List[str]] = []
        for _, label, _, _ in rows:
            if units and process[units[-1][0]] == process[label] != label:
                units[-1].append(label)
            else:
                units.append([label])
        samples = {label: [] for _, label, _, _ in rows}
        for r in range(repeat):
            for u in range(len(units)):
                unit = units[(u + r) % len(units)]
                for j in range(len(unit)):
                    label = unit[(j + r) % len(unit)]
                    worker = workers.turn(process[label])
                    if process[label] in IDLE_BEFORE_EACH:
                        isolate.wait_idle(worker.proc.pid)
                    samples[label].append(worker.sample(numbers[label], 10 * sample_s,
                                                        slot=label))
    finally:
        workers.close()
    out = {}
    for pipeline, label, _, _ in rows:
        s = samples[label]
        q25, med, q75 = np.percentile(s, [25, 50, 75])
        out[label] = {"pipeline": pipeline, "median_s": float(med), "q25_s": float(q25),
                      "q75_s": float(q75), "samples": len(s),
                      "per_round_s": [float(x) for x in s]}
    return out


def verdicts(res: Dict[str, dict]) -> List[str]:
    """The targets of the module docstring, each as a line with its figures."""
    def m(label):
        return res[label]["median_s"] if label in res else float("nan")

    def rounds(label):
        return np.asarray(res[label].get("per_round_s", []) if label in res else [])

    def paired(num, *den):
        """The ratio num / sum(den) round by round (one round's samples are seconds apart,
        a median's span the whole run): median [q25-q75], in per cent over 1."""
        a, bs = rounds(num), [rounds(d) for d in den]
        n = min([len(a)] + [len(b) for b in bs])
        if n == 0:
            return ""
        r = 100 * (a[:n] / sum(b[:n] for b in bs) - 1)
        q25, med, q75 = np.percentile(r, [25, 50, 75])
        return f"; round by round {med:+.1f}% [{q25:+.1f}..{q75:+.1f}]"
    lines = []
    parts = m("fastloss BCE alone (default threads)") + m("NumPy step alone")
    loop = m("loop: fastloss (default threads) + NumPy step")
    lines.append(f"alternating loop {loop * 1e3:.2f} ms vs its parts {parts * 1e3:.2f} ms: "
                 f"{100 * (loop / parts - 1):+.1f}% (target <= +10%)"
                 + paired("loop: fastloss (default threads) + NumPy step",
                          "fastloss BCE alone (default threads)", "NumPy step alone"))
    one = "one process: "
    if one + "NumPy step alone" in res:
        parts_1p = m(one + "fastloss BCE alone (default threads)") + m(one + "NumPy step alone")
        loop_1p = m(one + "loop: fastloss (default threads) + NumPy step")
        lines.append(f"  in one process: loop {loop_1p * 1e3:.2f} ms vs its parts "
                     f"{parts_1p * 1e3:.2f} ms: {100 * (loop_1p / parts_1p - 1):+.1f}% "
                     f"(target <= +10%)"
                     + paired(one + "loop: fastloss (default threads) + NumPy step",
                              one + "fastloss BCE alone (default threads)",
                              one + "NumPy step alone")
                     + f"; the NumPy step alone there {m(one + 'NumPy step alone') * 1e3:.2f}"
                     f" ms, in its own process {m('NumPy step alone') * 1e3:.2f} ms")
    loop1t = m("loop: fastloss (1 thread) + NumPy step")
    lines.append(f"  the loop with fastloss on default threads vs on 1 thread: {loop * 1e3:.2f} vs "
                 f"{loop1t * 1e3:.2f} ms: {100 * (loop / loop1t - 1):+.1f}%")
    if "NumPy step alone (BLAS on 1 thread)" in res:
        parts1 = m("fastloss BCE alone (default threads)") + m("NumPy step alone (BLAS on 1 thread)")
        loop1 = m("loop: fastloss (default threads) + NumPy step (BLAS on 1 thread)")
        lines.append(f"  the same with NumPy's BLAS on 1 thread (no BLAS threads left spinning "
                     f"into fastloss's call): loop {loop1 * 1e3:.2f} ms vs its parts "
                     f"{parts1 * 1e3:.2f} ms: {100 * (loop1 / parts1 - 1):+.1f}%")
    one, dflt = m("fastloss BCE alone (1 thread)"), m("fastloss BCE alone (default threads)")
    lines.append(f"BCE 10^6 alone: default threads {dflt * 1e3:.3f} ms, 1 thread "
                 f"{one * 1e3:.3f} ms: {one / dflt:.2f}x (target >= 1.5x)")
    sd, s1 = m("iteration, fastloss CCE (default threads)"), m("iteration, fastloss CCE (1 thread)")
    lines.append(f"softmax regression: default threads {sd * 1e3:.2f} ms vs 1 thread "
                 f"{s1 * 1e3:.2f} ms: {100 * (sd / s1 - 1):+.1f}% (target <= 0%)"
                 + paired("iteration, fastloss CCE (default threads)",
                          "iteration, fastloss CCE (1 thread)"))
    xg = [k for k in res if res[k]["pipeline"] == "xgboost"]
    if xg:
        npo = m("round, NumPy objective")
        for k in xg[:2]:
            lines.append(f"XGBoost {k[len('round, '):]}: {m(k) * 1e3:.2f} ms vs NumPy objective "
                         f"{npo * 1e3:.2f} ms: {100 * (m(k) / npo - 1):+.1f}% (target <= 0%)"
                         + paired(k, "round, NumPy objective"))
    return lines


def run(repeat: int = 7, sample_s: float = 0.25, rows=None) -> Dict[str, dict]:
    print(f"Pipelines ({isolate.HOW}; except the groups "
          f"{', '.join(repr(g) for g in sorted(SHARED_PROCESS))}, each of which shares one "
          f"process ({', '.join(repr(g) for g in sorted(IDLE_BEFORE_EACH))} waiting there too "
          f"until the process is idle before each sample)); medians of "
          f"{repeat} interleaved samples, q25-q75 in brackets:", flush=True)
    res = measure(repeat, sample_s, rows)
    width = max(map(len, res))
    current = None
    for label, r in res.items():
        if r["pipeline"] != current:
            current = r["pipeline"]
            print(f"  [{current}]")
        print(f"    {label:<{width}}  {r['median_s'] * 1e3:8.3f} ms  "
              f"[{r['q25_s'] * 1e3:.3f}-{r['q75_s'] * 1e3:.3f}]")
    for line in verdicts(res):
        print("  " + line)
    return res


if __name__ == "__main__":
    run()
