"""Each implementation timed in a worker process of its own.

PyTorch, scikit-learn and XGBoost ship their own OpenMP runtimes, whose idle threads spin
for milliseconds after each parallel region. Timed in one process, one implementation's
spinning threads take the cores of the next one's samples (fastloss's BCE at 10^7 measured
28 ms interleaved with torch against 9 ms alone). Here each implementation lives in its own
process (started with "spawn", so nothing is inherited), the parent hands out the samples one
at a time, round robin, and pauses between samples of different workers long enough for the
previous one's threads to go to sleep. Only one process computes at any moment.
"""
from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import sys
import time
import traceback
from typing import Any, Callable, Dict, Optional

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Between two workers' samples: at least PAUSE_S, longer than an OpenMP runtime's spin after
# its last region, and where /proc tells (Linux) until the previous process is idle: its
# threads' CPU time growing by under IDLE_CPU_S per IDLE_WINDOW_S, at most MAX_PAUSE_S.
# (OpenBLAS's idle worker spins for ~0.1 s after a BLAS call, measured here 110-130 ms: a
# fixed 30 ms pause let it run into the next process's samples.)
PAUSE_S = 0.03
IDLE_WINDOW_S, IDLE_CPU_S, MAX_PAUSE_S = 0.01, 0.001, 0.5

HOW = (f"each implementation in its own worker process (spawn), samples handed out round "
       f"robin, one process computing at a time; between processes a pause of at least "
       f"{PAUSE_S * 1e3:.0f} ms and, where /proc shows it, until the previous process's "
       f"threads are idle (under {IDLE_CPU_S * 1e3:.0f} ms of CPU per "
       f"{IDLE_WINDOW_S * 1e3:.0f} ms, at most {MAX_PAUSE_S * 1e3:.0f} ms)")


def _cpu_time_s(pid: int) -> Optional[float]:
    """CPU time of all of a process's threads (nanosecond schedstat), None if unknown."""
    try:
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total * 1e-9
    except (OSError, ValueError, IndexError):
        return None


def wait_idle(pid: Optional[int]) -> float:
    """Sleep PAUSE_S, then until process `pid` is idle (see above); the seconds waited."""
    start = time.perf_counter()
    time.sleep(PAUSE_S)
    last = _cpu_time_s(pid) if pid else None
    while last is not None and time.perf_counter() - start < MAX_PAUSE_S:
        time.sleep(IDLE_WINDOW_S)
        now = _cpu_time_s(pid)
        if now is None or now - last < IDLE_CPU_S:
            break
        last = now
    return time.perf_counter() - start


def _serve(conn) -> None:
    # slot -> [fn, close, number, settle]: a process may hold several callables (variants that
    # must share one process, see Worker.load), each timed on its own.
    slots: Dict[str, list] = {}
    from bench import runner
    while True:
        msg = conn.recv()
        try:
            if msg[0] == "load":                  # ("load", module, factory, kwargs, slot)
                old = slots.pop(msg[4], None)
                if old and old[1]:
                    old[1]()
                made = getattr(importlib.import_module(msg[1]), msg[2])(**msg[3])
                fn, close = made if isinstance(made, tuple) else (made, None)
                slots[msg[4]] = [fn, close, 1, False]
                conn.send(("ok", None))
            elif msg[0] == "calibrate":           # ("calibrate", target_s, settle, slot)
                slot = slots[msg[3]]
                slot[3] = msg[2]
                slot[2], per_call = runner._calibrate(slot[0], msg[1], slot[3])
                conn.send(("ok", (slot[2], per_call)))
            elif msg[0] == "sample":              # ("sample", number, max_s, slot)
                slot = slots[msg[3]]
                slot[2] = msg[1]
                conn.send(("ok", runner._sample(slot[0], slot[2], slot[3], msg[2])))
            elif msg[0] == "stop":
                for slot in slots.values():
                    if slot[1]:
                        slot[1]()
                conn.send(("ok", None))
                return
        except BaseException:
            conn.send(("error", traceback.format_exc()))


class Worker:
    """One implementation's process: ``load`` a factory's callable there, then time it."""

    def __init__(self):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        # The child starts from this process's sys.path, which need not hold the folder above
        # bench/ (a test may have imported bench through a sys.path entry it then removed).
        # Last, so that an installed fastloss still wins over the bare source folder.
        saved = list(sys.path)
        if not any(os.path.realpath(p or os.curdir) == os.path.realpath(_ROOT) for p in saved):
            sys.path.append(_ROOT)
        try:
            self.proc.start()
        finally:
            sys.path[:] = saved
        child.close()
        self.last_used = 0.0

    def _call(self, *msg):
        self.conn.send(msg)
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"bench worker failed:\n{value}")
        return value

    def load(self, module: str, factory: str, slot: str = "", **kwargs) -> None:
        """Make ``module.factory(**kwargs)`` the callable timed in ``slot`` (replacing any)."""
        self._call("load", module, factory, kwargs, slot)

    def calibrate(self, target_s: float, settle: bool, slot: str = ""):
        return self._call("calibrate", target_s, settle, slot)

    def sample(self, number: int, max_s: float, slot: str = "") -> float:
        return self._call("sample", number, max_s, slot)

    def close(self) -> None:
        try:
            self._call("stop")
        except (EOFError, OSError, RuntimeError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


class Workers:
    """A worker per name, made on first use and kept (its imports are paid once)."""

    def __init__(self):
        self.by_name: Dict[str, Worker] = {}
        self.current: Optional[str] = None

    def get(self, name: str) -> Worker:
        if name not in self.by_name:
            self.by_name[name] = Worker()
        return self.by_name[name]

    def turn(self, name: str) -> Worker:
        """The worker about to compute: pause first if another one computed last."""
        if self.current is not None and self.current != name:
            prev = self.by_name.get(self.current)
            wait_idle(prev.proc.pid if prev is not None else None)
        self.current = name
        return self.get(name)

    def close(self) -> None:
        for w in self.by_name.values():
            w.close()
        self.by_name.clear()
