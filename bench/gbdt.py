"""GBDT rows of ``python -m bench``: custom objectives for XGBoost and LightGBM.

For binary (160k rows) and multiclass (K = 8, 160k rows) objectives, per library:
* "objective": one call of the objective plus the conversion the library then applies to its
  result (LightGBM: ravel in Fortran order and cast to float32; XGBoost: float32, C order),
  with the predictions in the layout the library hands them (LightGBM: Fortran-ordered
  float64; XGBoost: float32);
* "round": one whole boosting round (the library's tree building included), from a short
  training run.
Objectives: fastloss.gbdt's adapter with its default threads (LightGBM: OpenMP's default;
XGBoost: 1, the good-neighbour setting) and with the other choice ("1T", "<n>T"), the NumPy objective a user writes, and today's hand adaptation
of fastloss (labels cast, predictions copied to C order, gradient_hessian,
the hessian scaled, the outputs cast/reordered).
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np

import fastloss as fl
from fastloss import gbdt

N, K, FEATURES = 160_000, 8, 10


def _time(fs, repeat=9, min_s=0.03):
    """Per-call times of each of `fs` (name -> callable), interleaved: a load spike on the
    shared machine hits every implementation alike. Returns name -> (median, min, max)."""
    out = {name: [] for name in fs}
    for f in fs.values():
        f()
    for _ in range(repeat):
        for name, f in fs.items():
            calls, t0 = 0, time.perf_counter()
            while True:
                f()
                calls += 1
                dt = time.perf_counter() - t0
                if dt >= min_s:
                    break
            out[name].append(dt / calls)
    return {name: (statistics.median(v), min(v), max(v)) for name, v in out.items()}


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _np_binary(y):
    def obj(z):
        p = _sigmoid(z)
        return p - y, p * (1 - p)
    return obj


def _np_softmax(y, factor):
    rows = np.arange(len(y))

    def obj(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        q = e / e.sum(axis=1, keepdims=True)
        g = q.copy()
        g[rows, y] -= 1
        return g, factor * q * (1 - q)
    return obj


def _problems(rng, n):
    X = rng.normal(size=(n, FEATURES))
    s = X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.normal(size=n)
    return X, {"binary": (s > 0).astype(np.float64),
               "multiclass": np.digitize(s, np.linspace(-1.5, 1.5, K - 1)).astype(np.float64)}


def _lgb_objectives(task, y):
    """name -> fobj(preds, dataset) for LightGBM."""
    if task == "binary":
        bce = fl.BinaryCrossEntropy(from_logits=True)
        npo = _np_binary(y)

        def hand(preds, ds):
            g, h = bce.gradient_hessian(ds.get_label().astype(np.float64), preds)
            return g, h
        return {"fastloss.gbdt": gbdt.lightgbm_objective(bce),
                "fastloss.gbdt 1T": gbdt.lightgbm_objective(bce, n_threads=1),
                "NumPy objective": lambda p, ds: npo(p),
                "fastloss by hand": hand}
    cce = fl.CategoricalCrossEntropy(from_logits=True)
    f = K / (K - 1)
    npo = _np_softmax(y.astype(np.int64), f)

    def hand(preds, ds):
        g, h = cce.gradient_hessian(ds.get_label().astype(np.int64), np.ascontiguousarray(preds))
        h *= f
        return g, h
    return {"fastloss.gbdt": gbdt.lightgbm_objective(cce),
            "fastloss.gbdt 1T": gbdt.lightgbm_objective(cce, n_threads=1),
            "NumPy objective": lambda p, ds: npo(p),
            "fastloss by hand": hand}


def _xgb_objectives(task, y, nt):
    if task == "binary":
        bce = fl.BinaryCrossEntropy(from_logits=True)
        npo = _np_binary(y.astype(np.float32))

        def hand(preds, d):
            return bce.gradient_hessian(d.get_label(), preds)
        return {"fastloss.gbdt": gbdt.xgboost_objective(bce),
                f"fastloss.gbdt {nt}T": gbdt.xgboost_objective(bce, n_threads=nt),
                "NumPy objective": lambda p, d: npo(p),
                "fastloss by hand": hand}
    cce = fl.CategoricalCrossEntropy(from_logits=True)
    npo = _np_softmax(y.astype(np.int64), 2.0)

    def hand(preds, d):
        g, h = cce.gradient_hessian(d.get_label().astype(np.int64), preds)
        h *= 2
        return g, h
    return {"fastloss.gbdt": gbdt.xgboost_objective(cce),
            f"fastloss.gbdt {nt}T": gbdt.xgboost_objective(cce, n_threads=nt),
            "NumPy objective": lambda p, d: npo(p),
            "fastloss by hand": hand}


def _lgb_convert(g, h):
    # What lightgbm.Booster.__boost does with a custom objective's result.
    if g.ndim == 2:
        g, h = g.ravel(order="F"), h.ravel(order="F")
    return np.asarray(g, np.float32), np.asarray(h, np.float32)


def _xgb_convert(g, h):
    return np.ascontiguousarray(g, np.float32), np.ascontiguousarray(h, np.float32)


def run(rounds=4, threads=None, n=N, repeat=9):
    """Print the table; return its rows (dicts)."""
    rows = []
    rng = np.random.default_rng(0)
    X, ys = _problems(rng, n)
    try:
        import lightgbm as lgb
    except ImportError:
        lgb = None
    try:
        import xgboost as xgb
    except ImportError:
        xgb = None
    nt = threads or os.cpu_count() or 1
    for task, y in ys.items():
        k = K if task == "multiclass" else 1
        if lgb is not None:
            ds = lgb.Dataset(X, y, params={"verbose": -1}).construct()
            preds = rng.normal(size=(n, k)).astype(np.float64)
            preds = np.asfortranarray(preds) if k > 1 else preds[:, 0].copy()
            params = dict(num_threads=nt, verbose=-1, max_depth=6, num_leaves=63,
                          **({"num_class": K} if k > 1 else {}))
            objs = _lgb_objectives(task, y)
            times = _time({name: (lambda obj=obj: _lgb_convert(*obj(preds, ds)))
                           for name, obj in objs.items()}, repeat)
            for name, obj in objs.items():
                med, lo, hi = times[name]
                t_round = _train_lgb(lgb, X, y, params, obj, rounds)
                rows.append(dict(library="lightgbm", task=task, objective=name,
                                 objective_ms=med * 1e3, spread_ms=(lo * 1e3, hi * 1e3),
                                 round_ms=t_round * 1e3))
        if xgb is not None:
            d = xgb.DMatrix(X, label=y, nthread=nt)
            preds = rng.normal(size=(n, k)).astype(np.float32)
            preds = preds if k > 1 else preds[:, 0].copy()
            params = dict(tree_method="hist", max_depth=6, nthread=nt,
                          **({"num_class": K} if k > 1 else {}))
            objs = _xgb_objectives(task, y, nt)
            times = _time({name: (lambda obj=obj: _xgb_convert(*obj(preds, d)))
                           for name, obj in objs.items()}, repeat)
            for name, obj in objs.items():
                med, lo, hi = times[name]
                t_round = _train_xgb(xgb, d, params, obj, rounds)
                rows.append(dict(library="xgboost", task=task, objective=name,
                                 objective_ms=med * 1e3, spread_ms=(lo * 1e3, hi * 1e3),
                                 round_ms=t_round * 1e3))
    print(table(rows, nt, n))
    return rows


def _train_lgb(lgb, X, y, params, obj, rounds):
    ds = lgb.Dataset(X, y, params={"verbose": -1})
    lgb.train(dict(params, objective=obj), ds, 1)            # warm-up (binning)
    t0 = time.perf_counter()
    lgb.train(dict(params, objective=obj), ds, rounds)
    return (time.perf_counter() - t0) / rounds


def _train_xgb(xgb, d, params, obj, rounds):
    xgb.train(params, d, 1, obj=obj)
    t0 = time.perf_counter()
    xgb.train(params, d, rounds, obj=obj)
    return (time.perf_counter() - t0) / rounds


def table(rows, threads, n=N):
    if not rows:
        return "GBDT: neither XGBoost nor LightGBM is importable (pip install 'fastloss[gbdt]')"
    out = [f"GBDT custom objectives: {n} rows (multiclass K = {K}), {threads} threads; "
           "objective = one call + the library's conversion of its result (median [min-max]); "
           "round = one whole boosting round",
           f"{'library':<9} {'task':<10} {'objective':<17} {'objective ms':>22} {'round ms':>9}"
           f" {'vs by hand':>10}"]
    for r in rows:
        ref = next(x for x in rows if x["library"] == r["library"] and x["task"] == r["task"]
                   and x["objective"] == "fastloss by hand")
        lo, hi = r["spread_ms"]
        out.append(f"{r['library']:<9} {r['task']:<10} {r['objective']:<17} "
                   f"{r['objective_ms']:>8.2f} [{lo:.2f}-{hi:.2f}]".ljust(61)
                   + f" {r['round_ms']:>9.1f} {ref['objective_ms'] / r['objective_ms']:>9.1f}x")
    return "\n".join(out)
