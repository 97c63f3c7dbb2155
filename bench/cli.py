"""Command line of ``python -m bench``."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional

from bench import isolate, peers, report
from bench.runner import BenchError, Settings, run
from bench.workloads import (DTYPES, LOSSES, is_rowwise, title, all_threads, choices, plan,
                             resolve, workload_info)

EPILOG = """\
Workloads: every loss registered in fastloss.LOSSES, with its default parameters except
from_logits=True where it has one:
{losses}
Row-wise losses run with k = 10 and k = 1000 classes; sizes count elements (rows x k). Each
is timed as `loss` and `loss_gradient` (fastloss with a preallocated gradient_out).
--quick (default; about 10 s per loss on 2 cores): loss_gradient, float64, all threads at
10^3, 10^5, 10^7 elements, plus float32, 1 thread and `loss` alone at 10^5.
--full: both operations, float32 and float64, 1 and all threads, 10^3..10^7, and
"fastloss (alloc)" rows (no gradient_out: fresh arrays pay page faults at large n).

After the tables of --quick/--full: the pipeline rows (--pipelines alone) and the row-wise
rows, fastloss's cross-entropy, KL and focal against a hand-written C kernel built on first
use (--rowwise alone), and every elementwise loss's time against MSE's, interleaved
(--against-mse alone; --no-pipelines, --no-rowwise, --no-against-mse skip them).

Peers: NumPy expressions (always; their results are checked against fastloss's), PyTorch CPU
functional losses with autograd and scikit-learn's sklearn._loss (unreduced) when
importable, for the losses they have (a loss without one is timed alone, and its tables
say "no NumPy peer" and so on). FASTLOSS_BENCH_DISABLE=torch,sklearn,matplotlib makes them
look absent.
"""


def epilog() -> str:
    width = max(len(n) for n in LOSSES)
    rows = [f"  {n:<{width}}  {title(n)}" for n in LOSSES]
    return EPILOG.format(losses="\n".join(rows))


def _csv(values: Optional[List[str]]) -> List[str]:
    return [x.strip() for v in values or [] for x in v.split(",") if x.strip()]


def _size(s: str) -> int:
    try:
        n = int(float(s)) if any(c in s.lower() for c in ".e") else int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {s!r}")
    if n < 1:
        raise argparse.ArgumentTypeError(f"sizes must be >= 1, got {s!r}")
    return n


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=(
        "Benchmark fastloss against NumPy, PyTorch and scikit-learn in one interleaved run; "
        "prints tables and writes JSON (and a PNG plot where matplotlib is installed)."),
        epilog=epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="a subset, about 10 s per loss (default)")
    mode.add_argument("--full", action="store_true",
                      help="every loss, size, dtype and thread count")
    mode.add_argument("--pipelines", action="store_true",
                      help="the pipeline rows only: fastloss inside a NumPy/BLAS loop, a "
                           "softmax-regression iteration and an XGBoost round (about a minute)")
    mode.add_argument("--gbdt", action="store_true",
                      help="the GBDT rows only: fastloss.gbdt's objectives for XGBoost and "
                           "LightGBM against NumPy and hand-made ones (about a minute)")
    mode.add_argument("--dask", action="store_true",
                      help="the dask rows only: fastloss.dask's loss_gradient on a LocalCluster "
                           "against the in-memory call and plain dask.array expressions "
                           "(10^8 float64 elements in chunks of 10^7 unless --sizes/--chunk; "
                           "needs fastloss[dask]; about a minute)")
    mode.add_argument("--rowwise", action="store_true",
                      help="the row-wise rows only: cross-entropy, KL and focal at 10^6 x 10 "
                           "and 10^4 x 1000 against a hand-written C kernel (built on demand "
                           "with the compiler fastloss was built with; about 30 s)")
    mode.add_argument("--against-mse", action="store_true",
                      help="the elementwise losses' loss_gradient against MSE's, interleaved "
                           "in one process (10^7 float64 unless --sizes/--dtype; about 30 s)")
    p.add_argument("--chunk", type=_size, metavar="N",
                   help="--dask: elements per chunk (default 1e7)")
    p.add_argument("--workers", type=int, default=2, metavar="N",
                   help="--dask: worker processes of the LocalCluster (default 2)")
    p.add_argument("--loss", action="append", metavar="NAME",
                   help="only these losses (repeatable or comma-separated), by registry "
                        f"name, class name or short alias: {choices()}")
    p.add_argument("--threads", action="append", metavar="N",
                   help=f"thread counts (comma-separated; default: all = {all_threads()}, "
                        "and 1 in part)")
    p.add_argument("--dtype", action="append", metavar="DTYPE",
                   help="float32 and/or float64 (comma-separated)")
    p.add_argument("--sizes", action="append", metavar="N",
                   help="sizes in elements, comma-separated (e.g. 1e3,1e6)")
    p.add_argument("--repeat", type=int, metavar="N",
                   help="timed samples per implementation (default: 5 quick, 7 full, "
                        "fewer (3 quick, 5 full) for slow workloads)")
    p.add_argument("--in-process", action="store_true",
                   help="time every implementation in this process (default: each in its own "
                        "worker process, so that peers' OpenMP threads cannot distort others)")
    p.add_argument("--no-pipelines", action="store_true",
                   help="skip the pipeline rows at the end of --quick/--full")
    p.add_argument("--no-rowwise", action="store_true",
                   help="skip the row-wise rows at the end of --quick/--full")
    p.add_argument("--no-against-mse", action="store_true",
                   help="skip the against-MSE rows at the end of --quick/--full")
    p.add_argument("--out", default="bench_results", metavar="DIR",
                   help="where to write the JSON and PNG files (default ./bench_results)")
    a = p.parse_args(argv)

    chosen = set()
    for x in _csv(a.loss):
        try:
            chosen.add(resolve(x))
        except ValueError as exc:
            p.error(f"--loss: {exc}")
    a.losses = [x for x in LOSSES if x in chosen] if chosen else list(LOSSES)
    a.dtypes = _csv(a.dtype) or None
    for x in a.dtypes or []:
        if x not in DTYPES:
            p.error(f"--dtype: {x!r} is not one of {', '.join(DTYPES)}")
    try:
        a.thread_list = [int(x) for x in _csv(a.threads)] or None
        a.size_list = [_size(x) for x in _csv(a.sizes)] or None
    except (ValueError, argparse.ArgumentTypeError) as exc:
        p.error(str(exc))
    if a.thread_list and min(a.thread_list) < 1:
        p.error("--threads: thread counts must be >= 1")
    if a.repeat is not None and a.repeat < 1:
        p.error("--repeat: must be >= 1")
    return a


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    a = parse_args(argv)
    if a.dask:
        from bench import dask_bench
        names = [x for x in a.losses if x in dask_bench.CASES] if a.loss else None
        if a.loss and not names:
            print(f"bench: error: --dask runs {', '.join(dask_bench.CASES)}", file=sys.stderr)
            return 2
        dask_bench.run(n=a.size_list[0] if a.size_list else 10**8, chunk=a.chunk or 10**7,
                       workers=max(1, a.workers), repeat=a.repeat or 3, losses=names,
                       out_dir=a.out)
        return 0
    if a.gbdt:
        from bench import gbdt
        gbdt.run(threads=max(a.thread_list) if a.thread_list else None)
        return 0
    if a.rowwise:
        from bench import rowwise
        cond = report.conditions(
            [max(a.thread_list) if a.thread_list else all_threads()], a.dtypes or list(DTYPES),
            "rowwise", argv)
        print(report.header(cond), flush=True)
        rows = rowwise.run(n=a.size_list[0] if a.size_list else None,
                           threads=max(a.thread_list) if a.thread_list else None,
                           dtypes=a.dtypes, repeat=a.repeat or 7)
        os.makedirs(a.out, exist_ok=True)
        path = os.path.join(a.out, "fastloss-bench-rowwise-" + time.strftime("%Y%m%d-%H%M%S")
                            + ".json")
        report.write_json(path, {"schema": 2, "conditions": cond, "rowwise": rows})
        print(f"\nWrote {path}")
        return 0
    if a.against_mse:
        from bench import against_mse
        dtype = (a.dtypes or ["float64"])[0]
        threads = max(a.thread_list) if a.thread_list else all_threads()
        cond = report.conditions([threads], [dtype], "against-mse", argv)
        print(report.header(cond), flush=True)
        rows = against_mse.run(n=a.size_list[0] if a.size_list else None, threads=threads,
                               dtype=dtype, repeat=a.repeat or 11)
        os.makedirs(a.out, exist_ok=True)
        path = os.path.join(a.out, "fastloss-bench-against-mse-"
                            + time.strftime("%Y%m%d-%H%M%S") + ".json")
        report.write_json(path, {"schema": 2, "conditions": cond, "against_mse": rows})
        print(f"\nWrote {path}")
        return 0
    if a.pipelines:
        from bench import pipelines
        print(report.header(report.conditions([], [], "pipelines", argv)), flush=True)
        pipelines.run(repeat=a.repeat or 11)
        return 0
    full = bool(a.full)
    try:
        workloads = plan(full, a.losses, a.size_list, a.dtypes, a.thread_list)
    except ValueError as exc:  # a registered loss the benchmark cannot make data for
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    if not workloads:
        print("bench: nothing to run for these options", file=sys.stderr)
        return 2
    elementwise = [w.n for w in workloads if not is_rowwise(w.loss)]
    settings = Settings(repeat=a.repeat or (7 if full else 5),
                        sample_s=0.02 if full else 0.005,
                        alloc=full,
                        budget_s=None if a.repeat else (12.0 if full else 2.0),
                        min_repeat=5 if full else 3,
                        memref_n=max(elementwise) if elementwise else None)
    threads_used = sorted({w.threads for w in workloads})
    cond = report.conditions(threads_used, [w.dtype for w in workloads],
                             "full" if full else "quick", argv)
    print(report.header(cond), flush=True)
    skipped = []
    for opt, what in ((peers.TORCH, "PyTorch"), (peers.SKLEARN, "scikit-learn")):
        if opt.module is None:
            skipped.append({"peer": opt.key, "reason": opt.reason})
            print(f"  note      : {what} not importable ({opt.reason}): skipped", flush=True)
    mpl = peers.optional_import("matplotlib", "matplotlib")
    if mpl.module is None:
        skipped.append({"peer": "matplotlib", "reason": mpl.reason})
        print(f"  note      : matplotlib not importable ({mpl.reason}): no plot", flush=True)
    print(f"  workloads : {len(workloads)}; {settings.repeat} timed samples per implementation"
          + (f" ({settings.min_repeat} for slow ones)" if settings.budget_s else "")
          + f", each >= {settings.sample_s * 1e3:g} ms (many calls per sample at small n)",
          flush=True)

    print("  isolation : " + ("none: every implementation in this process (--in-process)"
                              if a.in_process else isolate.HOW), flush=True)

    t0 = time.perf_counter()
    workers = None if a.in_process else isolate.Workers()
    try:
        results = run(workloads, settings, workers=workers)
    except BenchError as exc:
        print(f"\nbench: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if workers is not None:
            workers.close()
    elapsed = time.perf_counter() - t0
    cond["loadavg_at_end"] = report._loadavg()

    recs = report.records(results, settings.memref_n)
    head_threads = max(threads_used)
    print(report.tables(results, recs, head_threads))
    bw_text, bw_rows = report.bandwidth(recs)
    if bw_text:
        print("\n" + bw_text)
    head_text, head_rows = report.headline(recs, head_threads)
    if head_text:
        print("\n" + head_text)
    pipeline_rows = None
    if not a.no_pipelines and not a.loss and not a.sizes:
        from bench import pipelines
        print()
        pipeline_rows = pipelines.run(repeat=7 if full else 5)
    rowwise_rows = None
    if not a.no_rowwise and not a.loss and not a.sizes:
        from bench import rowwise
        print()
        rowwise_rows = rowwise.run(repeat=7 if full else 5)
    against_mse_rows = None
    if not a.no_against_mse and not a.loss and not a.sizes:
        from bench import against_mse
        print()
        against_mse_rows = against_mse.run(repeat=11 if full else 7)

    os.makedirs(a.out, exist_ok=True)
    prefix = os.path.join(a.out, "fastloss-bench-" + time.strftime("%Y%m%d-%H%M%S"))
    checks = [dict(res["workload"].as_dict(), **c) for res in results for c in res["checks"]]
    missing = [dict(res["workload"].as_dict(), **m) for res in results for m in res["missing"]]
    losses_run = list(dict.fromkeys(w.loss for w in workloads))
    report.write_json(prefix + ".json", {
        "schema": 2, "conditions": cond, "elapsed_s": elapsed,
        "settings": {"repeat": settings.repeat, "min_sample_s": settings.sample_s,
                     "alloc_rows": settings.alloc, "memory_reference_n": settings.memref_n},
        "skipped": skipped, "losses": [workload_info(x) for x in losses_run],
        "missing_peers": missing, "results": recs, "headline": head_rows, "bandwidth": bw_rows,
        "checks": checks, "pipelines": pipeline_rows,
        "rowwise": rowwise_rows, "against_mse": against_mse_rows,
        "isolation": None if a.in_process else isolate.HOW})
    png = report.plot(recs, prefix + ".png")
    print(f"\nWrote {prefix}.json" + (f"\n      {png}" if png else "")
          + f"\n({len(workloads)} workloads in {elapsed:.0f} s; every peer's result was "
            f"checked against fastloss's where they compute the same quantity)")
    return 0
