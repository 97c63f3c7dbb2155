"""Two builds of fastloss side by side: ``python -m bench.builds DIR_A DIR_B``.

Each DIR holds an importable ``fastloss`` (a ``pip install --target`` folder, a venv's
site-packages, or a source tree built in place), e.g. a portable release wheel against a local
build. Each build runs in worker processes of its own (PYTHONPATH=DIR, started afresh for
every sample); samples alternate A, B, A, B, ... so that both see the same machine state.
A sample is the median of ``--inner`` timed calls of ``loss_gradient`` with a preallocated
``gradient_out`` per workload. Prints each build's configuration (the conditions line: build
kind, active kernels, vector math, CPU, load) and per workload the medians over samples, the
ratio B/A of the medians and the range of the per-sample ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r"""
import json, sys, time, io
import numpy as np
import fastloss as fl
n, threads, inner, dtype = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng(0)
dt = np.dtype(dtype)
z = rng.normal(scale=3, size=n).astype(dt)
y01 = (rng.random(n) < 0.5).astype(dt)
cnt = rng.poisson(2.0, size=n).astype(dt)
a, b = rng.random(n).astype(dt) * 3, rng.random(n).astype(dt) * 3
k = 10
logits = rng.normal(size=(n // k, k)).astype(dt)
labels = rng.integers(0, k, size=n // k)
work = {
    "BCE logits": (fl.BinaryCrossEntropy(from_logits=True, n_threads=threads), y01, z),
    "Poisson": (fl.Poisson(n_threads=threads), cnt, z * 0.3),
    "LogCosh": (fl.LogCosh(n_threads=threads), a, b),
    "MSLE": (fl.MeanSquaredLogError(n_threads=threads), a, b),
    "CCE logits k=10": (fl.CategoricalCrossEntropy(from_logits=True, n_threads=threads),
                        labels, logits),
}
out = {}
for name, (loss, t, p) in work.items():
    g = np.empty_like(p)
    loss.loss_gradient(t, p, gradient_out=g)
    times = []
    for _ in range(inner):
        t0 = time.perf_counter()
        loss.loss_gradient(t, p, gradient_out=g)
        times.append(time.perf_counter() - t0)
    out[name] = sorted(times)[len(times) // 2]
cfg = fl.show_config(file=io.StringIO())
out["_config"] = {k: cfg[k] for k in ("version", "active_isa", "portable_build", "native_build",
                                      "vector_math", "exp_inline", "openmp", "cflags")}
out["_file"] = fl.__file__
print(json.dumps(out))
"""


def sample(path, args, extra=()):
    env = dict(os.environ, PYTHONPATH=path)
    env.update(kv.split("=", 1) for kv in extra)
    r = subprocess.run([sys.executable, "-c", WORKER, str(args.n), str(args.threads),
                        str(args.inner), args.dtype], capture_output=True, text=True, env=env,
                       cwd=path, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"bench.builds: the worker for {path} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "?"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="folder holding build A (e.g. a local build)")
    ap.add_argument("b", help="folder holding build B (e.g. the portable wheel, installed)")
    ap.add_argument("--n", type=int, default=10**6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--inner", type=int, default=15)
    ap.add_argument("--samples", type=int, default=7)
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--json", help="also write the samples here")
    ap.add_argument("--b-env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment for build B's workers only (e.g. "
                         "FASTLOSS_LIBMVEC_RUNTIME=0: what a glibc < 2.35 runs)")
    args = ap.parse_args(argv)
    runs = {"A": [], "B": []}
    for _ in range(args.samples):
        for key, path in (("A", args.a), ("B", args.b)):
            runs[key].append(sample(os.path.abspath(path), args,
                                    args.b_env if key == "B" else ()))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"fastloss builds compared: loss_gradient, gradient_out preallocated, n = {args.n:,} "
          f"{args.dtype} elements, {args.threads} thread(s), median of {args.inner} calls per "
          f"sample, {args.samples} samples per build alternating A/B, one worker process per "
          f"sample; CPU {_cpu()}, load average {load:.2f} at the end")
    for key in ("A", "B"):
        c = runs[key][0]["_config"]
        kind = ("portable" if c["portable_build"] else "native" if c["native_build"] else "local")
        vm = ", ".join(f"{k}: {v}" for k, v in c["vector_math"].items())
        env = " ".join(args.b_env) if key == "B" and args.b_env else ""
        print(f"  {key}: {kind} build, {runs[key][0]['_file']} {env}\n     active_isa={c['active_isa']}"
              f" openmp={c['openmp']} exp_inline={c['exp_inline']}; vector math: {vm}")
    names = [k for k in runs["A"][0] if not k.startswith("_")]
    print(f"  {'workload':<18} {'A (ms)':>9} {'B (ms)':>9} {'B/A':>6}  per-sample B/A")
    for name in names:
        ta = [r[name] for r in runs["A"]]
        tb = [r[name] for r in runs["B"]]
        ratios = sorted(b / a for a, b in zip(ta, tb))
        ma, mb = statistics.median(ta), statistics.median(tb)
        print(f"  {name:<18} {ma * 1e3:9.3f} {mb * 1e3:9.3f} {mb / ma:6.2f}  "
              f"{ratios[0]:.2f}-{ratios[-1]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
