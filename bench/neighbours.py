"""fastloss beside other OpenMP users: ``python -m bench.neighbours [--fastloss DIR ...]``.

Times one unit of each neighbour's own work with its default threads -- a LightGBM and an
XGBoost boosting round (built-in binary objective), a scikit-learn HistGradientBoosting
iteration, a PyTorch elementwise op -- in a fresh process per sample, in three modes:
``alone`` (fastloss never imported), ``before`` (fastloss imported, and one default-thread
call made, before the neighbour is imported) and ``after`` (the neighbour imported first).
Each ``--fastloss DIR`` (a folder holding an importable fastloss, e.g. a wheel installed with
``pip install --target``; default: the fastloss this interpreter imports) is one more set of
rows, so that a wheel sharing the system libgomp and one grafting its own copy can be
compared. Also lists the OpenMP runtimes loaded in each process (threadpoolctl), which tells
shared from private copies. Samples are interleaved over modes; medians and ranges printed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r"""
import json, os, sys, time
mode, lib, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
import numpy as np

def use_fastloss():
    import fastloss as fl
    rng = np.random.default_rng(1)
    z = rng.normal(size=10**6)
    y = (rng.random(10**6) < 0.5).astype(float)
    fl.BinaryCrossEntropy(from_logits=True).loss_gradient(y, z)   # default threads
    return fl.__file__

where = use_fastloss() if mode == "before" else None
rng = np.random.default_rng(0)
X = rng.normal(size=(160_000, 20))
y = (X[:, 0] + 0.5 * X[:, 1] ** 2 + rng.normal(size=len(X)) > 0.5).astype(float)

if lib == "lightgbm":
    import lightgbm as lgb
    data = lgb.Dataset(X, y, params={"verbose": -1}).construct()
    def unit():
        lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 63}, data,
                  num_boost_round=rounds)
elif lib == "xgboost":
    import xgboost as xgb
    data = xgb.DMatrix(X, y)
    def unit():
        xgb.train({"objective": "binary:logistic", "tree_method": "hist", "max_depth": 6},
                  data, num_boost_round=rounds)
elif lib == "sklearn":
    from sklearn.ensemble import HistGradientBoostingClassifier
    def unit():
        HistGradientBoostingClassifier(max_iter=rounds, early_stopping=False).fit(X, y)
elif lib == "torch":
    import torch
    t = torch.from_numpy(rng.normal(size=4 * 10**6))
    def unit():
        for _ in range(rounds):
            torch.exp(t).sum()
else:
    raise SystemExit("unknown neighbour " + lib)
if mode == "after":
    where = use_fastloss()
unit()                                    # warm-up (first-round allocations, thread start)
times = []
for _ in range(3):
    t0 = time.perf_counter()
    unit()
    times.append((time.perf_counter() - t0) / rounds)
runtimes = []
try:
    from threadpoolctl import threadpool_info
    runtimes = sorted({(i.get("internal_api"), i["filepath"]) for i in threadpool_info()
                       if i.get("user_api") == "openmp"})
except ImportError:
    pass
print(json.dumps({"t": sorted(times)[1], "fastloss": where, "openmp": runtimes}))
"""

ROUNDS = {"lightgbm": 10, "xgboost": 10, "sklearn": 10, "torch": 20}


def available(lib):
    name = {"sklearn": "sklearn"}.get(lib, lib)
    r = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True)
    return r.returncode == 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fastloss", action="append", default=[],
                    help="a folder holding the fastloss to test (repeatable)")
    ap.add_argument("--libs", default="lightgbm,xgboost,sklearn,torch")
    ap.add_argument("--samples", type=int, default=5)
    args = ap.parse_args(argv)
    builds = args.fastloss or [None]
    libs = [lib for lib in args.libs.split(",") if available(lib)]
    print(f"fastloss neighbours: seconds per round of each library's own work, default "
          f"threads, fresh process per sample, {args.samples} samples interleaved, median "
          f"(range); os.cpu_count() = {os.cpu_count()}, OMP_NUM_THREADS = "
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}")
    results = {}
    for lib in libs:
        for build in builds:
            env = dict(os.environ)
            if build:
                env["PYTHONPATH"] = os.path.abspath(build)
            cells = {m: [] for m in ("alone", "before", "after")}
            info = {}
            for _ in range(args.samples):
                for mode in cells:
                    r = subprocess.run([sys.executable, "-c", WORKER, mode, lib,
                                        str(ROUNDS[lib])], capture_output=True, text=True,
                                       env=env, cwd=build or os.getcwd(), timeout=900)
                    if r.returncode != 0:
                        raise SystemExit(f"bench.neighbours: {lib}/{mode} failed:\n"
                                         f"{r.stderr[-3000:]}")
                    out = json.loads(r.stdout.strip().splitlines()[-1])
                    cells[mode].append(out["t"])
                    info[mode] = out
            label = build or "this interpreter's fastloss"
            print(f"\n{lib} with {label} ({info['before']['fastloss']})")
            base = statistics.median(cells["alone"])
            for mode, ts in cells.items():
                med = statistics.median(ts)
                print(f"  {mode:<7} {med * 1e3:8.2f} ms  ({min(ts) * 1e3:.2f}-{max(ts) * 1e3:.2f})"
                      f"  x{med / base:.2f}   OpenMP runtimes: "
                      + "; ".join(f"{a} {p}" for a, p in info[mode]["openmp"]))
            results[f"{lib}|{label}"] = cells
    return 0


if __name__ == "__main__":
    sys.exit(main())
