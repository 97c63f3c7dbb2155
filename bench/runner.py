"""Time the implementations of each workload side by side, after checking they agree."""
from __future__ import annotations

import gc
import itertools
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from bench import peers
from bench.workloads import is_rowwise, Data, Workload, input_kinds, make_data, make_loss


class BenchError(RuntimeError):
    """A peer disagrees with fastloss: the comparison would not be honest."""


@dataclass
class Settings:
    repeat: int
    sample_s: float          # a timed sample lasts at least this long (loop inside the timer)
    alloc: bool              # also time fastloss without gradient_out
    memref_n: Optional[int]  # elementwise size that gets the memory reference row
    min_repeat: int = 3      # with budget_s: the fewest samples of a slow workload
    budget_s: Optional[float] = None  # about this many seconds of timed rounds per workload


@dataclass
class Timing:
    impl: str
    kind: str
    number: int              # calls per sample
    samples: List[float] = field(default_factory=list)  # seconds per call

    def stats(self) -> dict:
        s = np.asarray(self.samples)
        q25, med, q75 = np.percentile(s, [25, 50, 75])
        return {"median_s": float(med), "q25_s": float(q25), "q75_s": float(q75),
                "min_s": float(s.min()), "max_s": float(s.max())}


# Calls longer than this get no settle call: a late thread wake-up is small beside them.
SETTLE_MAX_S = 0.02


def _sample(fn, number: int, settle: bool, max_s: float = float("inf")) -> float:
    """Seconds per call, averaged over ``number`` calls in one timed loop (gc off, as timeit).

    ``settle``: one untimed call first, so that the implementation's worker threads, asleep
    since its last sample, are awake; on a VM, waking a sleeping thread can take milliseconds,
    which would otherwise land in the first timed call of every sample.
    The loop runs in a few chunks and stops early once it has taken ``max_s`` (on a loaded
    machine every multi-threaded call can stall for milliseconds).
    """
    if settle:
        fn()
    chunk = max(1, number // 8)
    done = 0
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        while done < number:
            for _ in itertools.repeat(None, min(chunk, number - done)):
                fn()
            done += min(chunk, number - done)
            if time.perf_counter() - t0 > max_s:
                break
        return (time.perf_counter() - t0) / done
    finally:
        if gc_was_on:
            gc.enable()


def _calibrate(fn, target_s: float, settle: bool):
    """``(calls per sample, seconds per call)`` so that a sample lasts about ``target_s``."""
    number = 1
    while True:
        per_call = _sample(fn, number, settle, 10 * target_s)
        if per_call * number >= target_s / 10 or number >= 10**6:
            break
        number *= 10
    if per_call * number < target_s:
        # Small calls: one stalled call (a descheduled thread) must not set the loop length.
        per_call = min(per_call, _sample(fn, number, settle, 10 * target_s))
    return max(1, min(10**7, int(round(target_s / max(per_call, 1e-9))))), per_call


def _tolerances(w: Workload, kind: str):
    """rtol, atol-as-a-fraction-of-max|gradient| for checking a peer against fastloss."""
    if w.dtype == "float32":
        return 1e-4, 1e-5
    return 1e-9, 1e-12


def _check_finite(w: Workload, ref: peers.Result) -> None:
    """fastloss's own result on the benchmark's data must be finite: where no peer checks a
    loss, this at least catches data outside its domain (a generator that does not fit)."""
    value, grad = ref
    if not np.isfinite(value) or (grad is not None and not np.all(np.isfinite(grad))):
        raise BenchError(f"fastloss gave a non-finite result on {w.label} (loss {value!r}): "
                         f"the benchmark's data for {make_loss(w.loss)!r} "
                         f"(inputs {input_kinds(w.loss)}) do not suit it; see "
                         f"GENERATORS in bench/workloads.py")


def _check(w: Workload, ref: peers.Result, impl: peers.Impl, out) -> Optional[dict]:
    """Compare one peer's result with fastloss's; raise BenchError if they disagree."""
    if impl.result is None:
        return None
    value, grad = impl.result(out)
    ref_value, ref_grad = ref
    rtol, atol_frac = _tolerances(w, impl.kind)
    rec = {"impl": impl.name, "peer_loss": value, "fastloss_loss": ref_value,
           "loss_rel_diff": abs(value - ref_value) / max(abs(ref_value), 1e-300)}
    problems = []
    if not np.isclose(value, ref_value, rtol=rtol, atol=0):
        problems.append(f"loss {value:.17g} vs fastloss {ref_value:.17g}")
    if grad is not None and ref_grad is not None:
        g, rg = np.asarray(grad, dtype=np.float64), np.asarray(ref_grad, dtype=np.float64)
        if g.shape != rg.shape:
            problems.append(f"gradient shape {g.shape} vs fastloss {rg.shape}")
        else:
            atol = atol_frac * float(np.max(np.abs(rg)))
            err = np.abs(g - rg)
            bad = err > atol + rtol * np.abs(rg)
            rec["grad_max_abs_diff"] = float(err.max())
            if bad.any():
                i = tuple(int(x) for x in np.unravel_index(int(np.argmax(bad)), bad.shape))
                problems.append(f"gradient differs at {int(bad.sum())} elements, e.g. at {i}: "
                                f"{g[i]:.17g} vs fastloss {rg[i]:.17g}")
    if problems:
        raise BenchError(f"{impl.name} disagrees with fastloss on {w.label}: "
                         + "; ".join(problems) + f" (rtol={rtol})")
    return rec


class Progress:
    """One line on stderr, rewritten in place on a terminal; short lines otherwise."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.stream = total, stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.width = 0

    def show(self, i: int, text: str, final: bool = False):
        line = f"[{i:>{len(str(self.total))}}/{self.total}] {text}"
        if self.tty:
            pad = " " * max(0, self.width - len(line))
            self.stream.write("\r" + line + pad)
            self.width = len(line)
        elif final:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self):
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def run_workload(w: Workload, data: Data, s: Settings, progress=None, workers=None) -> dict:
    """Check every implementation against fastloss, then time them in interleaved rounds:
    in this process, or each in its own worker process (``workers``, bench.isolate)."""
    alloc = s.alloc and w.op == "loss_gradient"
    memref = w.op == "loss_gradient" and not is_rowwise(w.loss) and w.n == s.memref_n
    impls = peers.build(w, data, alloc=alloc, memref=memref)
    names = [impl.name for impl in impls]
    try:
        # Warm-up: one call each, whose results are checked before anything is timed.
        outs = [impl.fn() for impl in impls]
        ref = impls[0].result(outs[0])
        _check_finite(w, ref)
        checks = [c for impl, out in zip(impls[1:], outs[1:])
                  if (c := _check(w, ref, impl, out)) is not None]
        del outs, ref
        if workers is not None:
            # Timed elsewhere: this process's copies are done with (their threads sleep).
            kinds = [impl.kind for impl in impls]
            for impl in impls:
                if impl.close:
                    impl.close()
            impls = []
            for name in names:
                worker = workers.get(name)
                worker.load("bench.peers", "isolated_impl", loss=w.loss, op=w.op, n=w.n, k=w.k,
                            dtype=w.dtype, threads=w.threads, name=name, alloc=alloc,
                            memref=memref)
        else:
            kinds = [impl.kind for impl in impls]
        # Single-threaded code has no sleeping workers to wake: no settle call for it.
        settle, timings, cost = [], [], 0.0
        for i, name in enumerate(names):
            threaded = w.threads > 1 and kinds[i] != "numpy"
            if workers is not None:
                number, per_call = workers.turn(name).calibrate(s.sample_s, threaded)
            else:
                number, per_call = _calibrate(impls[i].fn, s.sample_s, threaded)
            settle.append(threaded and per_call < SETTLE_MAX_S)
            timings.append(Timing(name, kinds[i], number))
            cost += per_call * (number + settle[-1])
        repeat = s.repeat
        if s.budget_s:  # slow workloads get fewer rounds, never fewer than min_repeat
            repeat = max(min(repeat, s.min_repeat), min(repeat, int(s.budget_s / cost)))
        # Round robin, starting one further each round, so drift and position hit all alike.
        for r in range(repeat):
            if progress:
                progress(f"round {r + 1}/{repeat}")
            for j in range(len(names)):
                i = (j + r) % len(names)
                if workers is not None:
                    t = workers.turn(names[i]).sample(timings[i].number, 20 * s.sample_s)
                else:
                    t = _sample(impls[i].fn, timings[i].number, settle[i], 20 * s.sample_s)
                timings[i].samples.append(t)
    finally:
        for impl in impls:
            if impl.close:
                impl.close()
    return {"workload": w, "timings": timings, "checks": checks, "missing": peers.missing(w)}


def run(workloads: List[Workload], s: Settings, stream=sys.stderr, workers=None) -> List[dict]:
    progress = Progress(len(workloads), stream)
    results = []
    cache: Dict[tuple, Data] = {}
    t0 = time.perf_counter()
    for i, w in enumerate(workloads, 1):
        if w.data_key not in cache:
            cache.clear()  # one data set at a time: at 10^7 elements they are large
            progress.show(i, f"{w.label}: making data")
            cache[w.data_key] = make_data(w.loss, w.n, w.k, w.dtype)
        progress.show(i, w.label)
        t1 = time.perf_counter()
        res = run_workload(w, cache[w.data_key], s,
                           lambda msg: progress.show(i, f"{w.label}: {msg}"), workers)
        res["wall_s"] = time.perf_counter() - t1
        results.append(res)
        fast = res["timings"][0].stats()["median_s"]
        progress.show(i, f"{w.label}: fastloss {fast * 1e3:.3f} ms "
                         f"({time.perf_counter() - t0:.0f} s so far)", final=True)
    progress.done()
    return results
