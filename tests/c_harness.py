"""Compiling one of fastloss's C headers by itself into a small test program.

The tests of _simd_math.h (test_vecmath.py) and _rows.h (test_rows.py) build a harness around
the header with the kernels' flags and run it on inputs from NumPy. `build` skips the calling
test where that cannot be done: off x86-64 Linux, without the sources (tests against an
installed wheel), without a C compiler, where the compiler cannot target the flags, or where
this CPU cannot run the result."""
import os
import platform
import shutil
import subprocess
import sys

import pytest

SOURCES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fastloss")


# What each -march level needs of the CPU, as /proc/cpuinfo names it.
_V3 = {"avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"}
_MARCH_NEEDS = {
    "x86-64-v3": _V3,
    "x86-64-v4": _V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
}


def _cpu_lacks(flags):
    """The CPU features `flags` (-march=...) need that this CPU lacks (empty if unknown)."""
    try:
        with open("/proc/cpuinfo") as f:
            have = next((set(line.split(":", 1)[1].split()) for line in f
                         if line.startswith("flags")), None)
    except OSError:
        return set()
    if have is None:
        return set()
    need = set()
    for flag in flags:
        if flag.startswith("-march="):
            need |= _MARCH_NEEDS.get(flag[len("-march="):], set())
    return need - have


def build(header, harness, flags, directory, probe_args, probe_input, what):
    """The path of `harness` (C source including `header`) compiled with `flags` into
    `directory`, once a run with `probe_args` on `probe_input` (bytes) has succeeded."""
    x86_64 = platform.machine().lower() in ("x86_64", "amd64")
    if not x86_64 or not sys.platform.startswith("linux"):
        pytest.skip(f"{what} is checked on x86-64 Linux")
    if not os.path.exists(os.path.join(SOURCES, header)):
        pytest.skip(f"fastloss/{header} is not at hand (tests of an installed package)")
    lacks = _cpu_lacks(flags)
    if lacks:
        # (a probe run alone can miss it: short inputs may never reach the vector code)
        pytest.skip(f"this CPU cannot run {' '.join(flags)} code (no {', '.join(sorted(lacks))})")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src, exe = directory / "harness.c", directory / "harness"
    src.write_text(harness)
    run = subprocess.run([cc, *flags, "-I", SOURCES, str(src), "-o", str(exe), "-lm"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        pytest.skip(f"the compiler cannot build {' '.join(flags)}: {run.stderr[-500:]}")
    if subprocess.run([str(exe), *probe_args], input=probe_input,
                      capture_output=True).returncode != 0:
        pytest.skip(f"this CPU cannot run {' '.join(flags)} code")
    return exe
