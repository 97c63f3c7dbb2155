"""Pick the kernel module for this CPU, and report how fastloss was built."""
from __future__ import annotations

import importlib
import os
import platform
import sys

import numpy as np

def _load_error(exc: ImportError) -> ImportError:
    """An ImportError that says why the compiled modules did not load, and what to do."""
    here = os.path.dirname(os.path.abspath(__file__))
    built = [f for f in os.listdir(here) if f.startswith(("_entry.", "_ext_baseline."))
             and f.endswith((".so", ".pyd"))]
    if not built:
        return ImportError(
            f"fastloss's compiled kernels are missing in {here}. If this is the source tree, "
            "install the package (pip install .) and run from outside the repository root, "
            "or build in place (pip install -e .).")
    msg = str(exc)
    if any(s in msg for s in ("libgomp", "omp_", "GOMP_", "OMP_")):
        hint = ("fastloss uses the system's GNU OpenMP runtime (libgomp.so.1, shared with "
                "LightGBM), which is missing or broken here: install it "
                "(Debian/Ubuntu: apt-get install libgomp1; Fedora/RHEL: dnf install libgomp; "
                "Alpine: apk add libgomp), or build a serial fastloss from source with "
                "FASTLOSS_OPENMP=0.")
    elif "GLIBC_" in msg or "GLIBCXX_" in msg:
        libc = " ".join(platform.libc_ver()) or "unknown"
        hint = (f"these modules were built for a newer C library than this system's ({libc}); "
                "install a wheel made for this platform, or build from source: "
                "pip install --no-binary fastloss fastloss.")
    elif "undefined symbol" in msg:
        hint = ("a function the modules were linked against is missing from this system's "
                "libraries; build from source: pip install --no-binary fastloss fastloss.")
    else:
        hint = "reinstall fastloss, or build it from source (pip install --no-binary fastloss fastloss)."
    return ImportError(f"fastloss's compiled kernels in {here} failed to load: {msg}. {hint}")


try:
    from fastloss import _entry, _ext_baseline
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise _load_error(exc) from exc

BUILD_INFO = _entry.build_info()

_LEVELS = {"avx512": 4, "avx2": 3, "baseline": 0}


def _select():
    """The best compiled variant this CPU runs; FASTLOSS_ISA=baseline|avx2|avx512 forces one."""
    forced = os.environ.get("FASTLOSS_ISA", "").strip().lower()
    level = _ext_baseline.cpu_level()
    candidates = [forced] if forced else ["avx512", "avx2", "baseline"]
    for isa in candidates:
        if isa not in _LEVELS:
            raise ImportError(f"FASTLOSS_ISA: unknown instruction set {forced!r}; "
                              f"use one of {sorted(_LEVELS)}")
        if _LEVELS[isa] > level:
            if forced:
                raise ImportError(f"FASTLOSS_ISA={forced}: this CPU does not support it")
            continue
        try:
            return importlib.import_module(f"fastloss._ext_{isa}")
        except ImportError:
            if forced:
                raise
    return _ext_baseline


ext = _select()
_entry.use_kernels(ext)


def show_config(file=None) -> dict:
    """Print and return how fastloss was built and what it uses on this machine.

    Returns
    -------
    dict
        ``version``, the active kernel instruction set, OpenMP (or serial build), whether
        vector math (libmvec) is used, the default thread count, compiler flags and versions.

    Examples
    --------
    >>> import fastloss
    >>> info = fastloss.show_config(file=open("/dev/null", "w"))
    >>> sorted(info)[:3]
    ['active_isa', 'built_variants', 'cflags']
    """
    from fastloss import __version__

    info = ext.build_info()
    cfg = {
        "version": __version__,
        "active_isa": info["isa"],
        "built_variants": BUILD_INFO.get("variants", ["baseline"]),
        "openmp": info["openmp"],
        "default_threads": info["default_threads"],
        "threads": info["threads"],
        "cpus": info["cpus"],
        "vector_math_libmvec": info["libmvec"],
        # How the active kernels' vectorized loops compute each function: "libmvec" (glibc's
        # vector math library), "libmvec, bound at run time" (portable builds: log1p/expm1
        # looked up in the running glibc) or "scalar libm".
        "vector_math": dict(info.get("vector_math", {})),
        "exp_inline": info.get("exp_inline", False),
        "portable_build": BUILD_INFO.get("portable", False),
        # Where the default thread count comes from: the OpenMP runtime linked, the system's
        # libgomp.so.1 opened at import (portable wheels), or none (OMP_NUM_THREADS read).
        "openmp_runtime": info.get("openmp_runtime", "linked" if info["openmp"] else "none"),
        "native_build": BUILD_INFO.get("native", False),
        "sanitizers": BUILD_INFO.get("sanitize", False),
        "cflags": BUILD_INFO.get("cflags", "?"),
        "compiler": BUILD_INFO.get("compiler", "?"),
        "cpu_level": _ext_baseline.cpu_level(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
    out = file if file is not None else sys.stdout
    width = max(map(len, cfg))
    print("fastloss configuration", file=out)
    for key, value in cfg.items():
        if key == "openmp" and not value:
            value = "False (serial build: every call runs on one thread)"
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        print(f"  {key:<{width}} : {value}", file=out)
    return cfg
