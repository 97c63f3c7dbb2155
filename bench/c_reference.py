"""The hand-written C reference kernels of ``bench/c_reference/``, built on demand.

They are compiled with the C compiler Python's build tools use (``sysconfig``'s ``CC``, the one
``setup.py`` built fastloss with), with fastloss's own math flags (no ``-ffast-math``) and the
instruction set of fastloss's active kernel, so the comparison is between two codes on the same
compiler and vector math, not between two builds. The shared object is cached under the
system's temporary folder, keyed by the source, the compiler and the flags. Where there is no
compiler (or it fails), `load` says why and the benchmark skips the C rows.
"""
from __future__ import annotations

import ctypes
import hashlib
import io
import os
import shlex
import subprocess
import sysconfig
import tempfile
from typing import Optional, Tuple

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c_reference")
SOURCE = os.path.join(HERE, "rowwise.c")

# fastloss's active kernel -> the same instruction-set flags as setup.py gives it.
ISA_FLAGS = {"baseline": [], "avx2": ["-march=x86-64-v3"],
             "avx512": ["-march=x86-64-v4", "-mprefer-vector-width=512"],
             "native": ["-march=native", "-mprefer-vector-width=512"]}


def _compiler() -> list:
    cc = sysconfig.get_config_var("CC") or "cc"
    return shlex.split(os.environ.get("CC", cc))


def flags() -> list:
    import fastloss as fl
    cfg = fl.show_config(file=io.StringIO())
    isa = "native" if cfg.get("native_build") else cfg.get("active_isa", "baseline")
    omp = ["-fopenmp"] if cfg.get("openmp") else []
    return (["-O3", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared"] + omp
            + ISA_FLAGS.get(isa, []))


_LIB = None
_WHY = None


def load() -> Tuple[Optional[ctypes.CDLL], str]:
    """``(library, how it was built)``, or ``(None, why not)``."""
    global _LIB, _WHY
    if _LIB is not None or _WHY is not None:
        return _LIB, _WHY
    cmd = _compiler() + flags()
    with open(SOURCE, "rb") as f:
        key = hashlib.sha1(f.read() + repr(cmd).encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"fastloss-bench-cref-{key}.so")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            r = subprocess.run(cmd + [SOURCE, "-o", tmp, "-lm"], capture_output=True,
                               text=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            _WHY = f"no C compiler ({' '.join(cmd[:1])}: {exc})"
            return None, _WHY
        if r.returncode != 0:
            _WHY = f"the C reference did not compile: {r.stderr.strip()[-500:]}"
            return None, _WHY
        os.replace(tmp, path)
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        _WHY = f"the C reference did not load: {exc}"
        return None, _WHY
    for name, ct in (("ce_logits_f64", ctypes.c_double), ("ce_logits_f32", ctypes.c_float)):
        fn = getattr(lib, name)
        fn.restype = ctypes.c_double
        fn.argtypes = [ctypes.POINTER(ct), ctypes.POINTER(ctypes.c_int64), ctypes.c_int64,
                       ctypes.c_int64, ctypes.POINTER(ct), ctypes.c_int]
    _LIB = lib
    _WHY = " ".join(cmd)
    return _LIB, _WHY


def ce_logits(labels: np.ndarray, z: np.ndarray, g: np.ndarray, threads: int):
    """``(mean loss, g)``: the C kernel's cross-entropy from logits into ``g``."""
    return bound(labels, z, g, threads)()


def bound(labels: np.ndarray, z: np.ndarray, g: np.ndarray, threads: int):
    """A callable running the C kernel on these arrays (what the benchmark times)."""
    lib, why = load()
    if lib is None:
        raise RuntimeError(why)
    assert z.flags.c_contiguous and g.flags.c_contiguous and z.shape == g.shape
    assert labels.dtype == np.int64 and labels.flags.c_contiguous and z.dtype == g.dtype
    ct = ctypes.c_double if z.dtype == np.float64 else ctypes.c_float
    fn = lib.ce_logits_f64 if z.dtype == np.float64 else lib.ce_logits_f32
    args = (z.ctypes.data_as(ctypes.POINTER(ct)),
            labels.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)),
            z.shape[0], z.shape[1], g.ctypes.data_as(ctypes.POINTER(ct)), int(threads))

    def call():
        return fn(*args), g
    return call
