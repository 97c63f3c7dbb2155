"""The dask rows (``python -m bench --dask``): fastloss.dask's ``loss_gradient`` on a
LocalCluster against the in-memory call on the same data, and against the same loss written
in plain dask.array expressions (what a user would write without fastloss).

Every implementation computes the mean loss and its gradient; the gradient stays on the
cluster (persisted, as a training step would keep it), the loss value comes back. The data
are made on the workers and persisted before timing; the in-memory copies are gathered from
them, and fastloss.dask's value is checked bit for bit against the in-memory call's.

The implementations are timed round by round, in a rotating order, with the same pause after
every sample: each allocates its outputs (10^8 float64 gradients are 800 MB), and on a virtual
machine whose freed memory goes back to the host within seconds (virtio-balloon free page
reporting) touching memory again costs far more than on bare metal, so one implementation
timed after a long pause and another right after a free would not be comparable. The cost of
fresh memory, just freed and after an idle pause, is printed with the conditions.
"""
from __future__ import annotations

import io
import json
import os
import statistics
import sys
import time

import numpy as np

import fastloss as fl
from bench.report import _cpu_model


def _expr_mse(t, p):
    d = p - t
    return (d ** 2).mean(), 2 * d / d.size


def _expr_bce_logits(t, z):
    import dask.array as da
    # the numerically stable form (as torch's binary_cross_entropy_with_logits)
    loss = da.maximum(z, 0) - z * t + da.log1p(da.exp(-abs(z)))
    return loss.mean(), (1 / (1 + da.exp(-z)) - t) / z.size


CASES = {
    "mean_squared_error": (lambda: fl.MeanSquaredError(), _expr_mse, "normal"),
    "binary_cross_entropy": (lambda: fl.BinaryCrossEntropy(from_logits=True), _expr_bce_logits,
                             "binary"),
}


PAUSE_S = 0.2          # after every sample, whichever implementation it timed


def _median_ms(fn, repeat, cleanup=None):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if cleanup is not None:
            cleanup()
    return statistics.median(times) * 1e3, min(times) * 1e3


def _interleaved_ms(fns, repeat, cleanup):
    """{name: sorted sample times in ms}: one sample of each per round, the order rotated
    each round, ``cleanup(name)`` and the same pause after every sample."""
    names = list(fns)
    times = {k: [] for k in names}
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append((time.perf_counter() - t0) * 1e3)
            cleanup(name)
            time.sleep(PAUSE_S)
    return {k: sorted(v) for k, v in times.items()}


def _fresh_memory_gbs(nbytes=1 << 30, idle_s=5.0):
    """GB/s of first touches of freshly allocated memory: right after the same amount was
    freed, and after an idle pause (on a VM that returns freed memory to the host, the
    second is many times slower)."""
    def touch():
        t0 = time.perf_counter()
        a = np.ones(nbytes // 8)
        dt = time.perf_counter() - t0
        del a
        return nbytes / dt / 1e9
    touch()
    warm = touch()
    time.sleep(idle_s)
    cold = touch()
    return round(warm, 2), round(cold, 2)


def _forget(client, kept):
    """Untimed, between samples: wait until the scheduler has dropped the last sample's
    results (the next sample has the same keys, and must not find them computed)."""
    def n_tasks(dask_scheduler):
        return len(dask_scheduler.tasks)
    deadline = time.time() + 30
    while client.run_on_scheduler(n_tasks) > kept and time.time() < deadline:
        time.sleep(0.05)


def run(n=10**8, chunk=10**7, workers=2, repeat=3, losses=None, out_dir="bench_results"):
    import dask
    import dask.array as da
    import distributed
    import fastloss.dask as fld

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    per_worker = max(1, cpus // workers)
    cond = {
        "cpu": _cpu_model(), "cpus": cpus, "n": n, "chunk": chunk, "chunks": -(-n // chunk),
        "dtype": "float64", "workers": workers, "threads_per_worker": per_worker,
        "in_memory_threads": "n_threads=None (%d)" % fl.show_config(file=io.StringIO())[
            "default_threads"],
        "python": sys.version.split()[0], "numpy": np.__version__, "fastloss": fl.__version__,
        "dask": dask.__version__, "distributed": distributed.__version__,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "timing": f"rounds of one sample each, order rotated, {PAUSE_S} s pause after each",
    }
    if n * 8 >= 256 << 20:     # (a smoke run at small n is not worth the probe's 1 GiB)
        warm, cold = _fresh_memory_gbs()
        cond["fresh_memory_GB/s"] = f"{warm} just freed, {cold} after 5 s idle (1 GiB)"
    print("fastloss.dask benchmark: loss_gradient (mean), float64, gradient kept on the cluster")
    for k, v in cond.items():
        print(f"  {k:<18}: {v}")
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=per_worker,
                                       processes=True, dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster)
    rows = []
    try:
        for name in losses or list(CASES):
            make, expr, kind = CASES[name]
            loss = make()
            rng = da.random.default_rng(12345)
            p = rng.normal(size=n, chunks=chunk)
            t = (rng.random(size=n, chunks=chunk) < 0.3).astype(np.float64) if kind == "binary" \
                else rng.normal(size=n, chunks=chunk)
            p, t = client.persist([p, t])
            distributed.wait([p, t])
            pn, tn = client.gather(client.compute([p, t]))
            buf = np.empty_like(pn)

            def in_memory():
                return loss.loss_gradient(tn, pn, gradient_out=buf)

            def in_memory_alloc():
                return loss.loss_gradient(tn, pn)

            kept = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))

            def on_cluster(build):
                def go():
                    v, g = build()
                    v, g = client.persist([v, g])
                    distributed.wait([v, g])
                    value = v.compute()
                    client.cancel([v, g])
                    return value
                return go

            def forget():
                _forget(client, kept)

            ours = on_cluster(lambda: fld.wrap(loss).loss_gradient(t, p))
            theirs = on_cluster(lambda: expr(t, p))
            want = in_memory()[0]
            got = ours()
            forget()
            theirs()                                     # warm both once
            forget()
            identical = float(got) == want
            fns = {"in_memory": in_memory, "in_memory_alloc": in_memory_alloc,
                   "fastloss_dask": ours, "dask_array": theirs}
            samples = _interleaved_ms(
                fns, repeat, lambda k: forget() if k in ("fastloss_dask", "dask_array") else None)
            del pn, tn, buf
            client.cancel([p, t])
            row = {"loss": name, "bit_identical": identical}
            for k, v in samples.items():
                row[k + "_ms"] = statistics.median(v)
                row[k + "_samples_ms"] = [round(x, 1) for x in v]
            rows.append(row)
        # The cost of one chunk: a graph of tiny chunks (whole blocks: no slivers), whose
        # compute is negligible.
        small_chunks = 200
        x = da.ones(small_chunks * 4096, chunks=4096).persist()
        distributed.wait(x)
        mse = fld.MeanSquaredError()

        kept = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))

        def tiny():
            v, g = client.persist(list(mse.loss_gradient(x, x)))
            distributed.wait([v, g])
            value = v.compute()
            client.cancel([v, g])
            return value

        def forget_tiny():
            _forget(client, kept)

        tiny()
        forget_tiny()
        t_tiny, _ = _median_ms(tiny, repeat, forget_tiny)
        per_chunk_ms = t_tiny / small_chunks
    finally:
        client.close()
        cluster.close()

    print()
    print(f"| loss | in-memory (gradient_out) | in-memory (allocating) | fastloss.dask "
          f"({workers} workers) | dask.array expression | fastloss.dask / in-memory | "
          f"dask.array / fastloss.dask | value bit-identical |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['loss']} | {r['in_memory_ms']:.0f} ms | {r['in_memory_alloc_ms']:.0f} ms | "
              f"{r['fastloss_dask_ms']:.0f} ms | {r['dask_array_ms']:.0f} ms | "
              f"{r['fastloss_dask_ms'] / r['in_memory_ms']:.2f}x "
              f"({r['fastloss_dask_ms'] / r['in_memory_alloc_ms']:.2f}x allocating) | "
              f"{r['dask_array_ms'] / r['fastloss_dask_ms']:.2f}x | "
              f"{'yes' if r['bit_identical'] else 'NO'} |")
    print("\nmedians; every sample, ms (sorted):")
    for r in rows:
        for k in ("in_memory", "in_memory_alloc", "fastloss_dask", "dask_array"):
            print(f"  {r['loss']:<22} {k:<16} {r[k + '_samples_ms']}")
    print(f"\noverhead per chunk (loss_gradient over {small_chunks} chunks of 4,096 elements, "
          f"{workers} workers): {per_chunk_ms:.2f} ms")
    cond["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "fastloss-dask-" + time.strftime("%Y%m%d-%H%M%S") + ".json")
    with open(path, "w") as f:
        json.dump({"conditions": cond, "rows": rows, "overhead_per_chunk_ms": per_chunk_ms},
                  f, indent=1)
    print(f"Wrote {path}")
    return rows
