"""Build fastloss's Cython kernels.

One kernel source (fastloss/_kernels.pxi) is compiled once per instruction set: a portable
baseline, and on x86-64 with gcc also x86-64-v3 (AVX2/FMA) and x86-64-v4 (AVX-512); the package
picks the best one the CPU runs at import time.

Environment switches (all optional):
  FASTLOSS_NATIVE=1    only one module, compiled with -march=native (not portable)
  FASTLOSS_OPENMP=0    serial build without OpenMP (also automatic when the compiler lacks it)
  FASTLOSS_SANITIZE=1  AddressSanitizer + UndefinedBehaviorSanitizer debug build (-O1 -g)
"""
import os
import platform
import subprocess
import sys
import sysconfig
import tempfile
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _compiles(flags, code="int main(void){return 0;}\n"):
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "t.c")
        with open(src, "w") as f:
            f.write(code)
        try:
            r = subprocess.run(cc + flags + [src, "-o", os.path.join(d, "t")],
                               capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return r.returncode == 0


OMP_TEST = "#include <omp.h>\nint main(void){return omp_get_max_threads() < 0;}\n"
native = _flag("FASTLOSS_NATIVE")
sanitize = _flag("FASTLOSS_SANITIZE")
want_openmp = os.environ.get("FASTLOSS_OPENMP", "1").strip().lower() not in ("0", "false", "no", "off")

openmp = want_openmp and _compiles(["-fopenmp"], OMP_TEST)
if want_openmp and not openmp:
    warnings.warn("fastloss: the C compiler does not support OpenMP; building a serial library")
# -fopenmp-simd alone still lets gcc use the vector math library (see _simd_math.h).
simd_flag = ["-fopenmp"] if openmp else (["-fopenmp-simd"] if _compiles(["-fopenmp-simd"]) else [])

# No -ffast-math: it changes NaN/inf semantics. These two only drop errno and FP-trap
# preservation, which lets gcc vectorize exp/log calls.
base_flags = ["-fno-math-errno", "-fno-trapping-math"] + simd_flag
if sanitize:
    base_flags += ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                   "-fno-sanitize-recover=undefined"]
    link_san = ["-fsanitize=address,undefined"]
else:
    base_flags += ["-O3"]
    link_san = []

if native:
    variants = {"native": ["-march=native", "-mprefer-vector-width=512"]}
elif platform.machine().lower() in ("x86_64", "amd64") and _compiles(["-march=x86-64-v4"]) \
        and "gcc" in (sysconfig.get_config_var("CC") or "gcc") and not sanitize:
    variants = {"baseline": [], "avx2": ["-march=x86-64-v3"],
                "avx512": ["-march=x86-64-v4", "-mprefer-vector-width=512"]}
else:
    variants = {"baseline": []}

extensions = []
for isa, isa_flags in variants.items():
    module = "baseline" if isa == "native" else isa
    extensions.append(Extension(
        f"fastloss._ext_{module}",
        [f"fastloss/_ext_{module}.pyx"],
        include_dirs=[np.get_include(), "fastloss"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       ("FL_ISA", f'"{isa}"')],
        extra_compile_args=base_flags + isa_flags,
        extra_link_args=(["-fopenmp"] if openmp else []) + link_san,
        libraries=["m"] if os.name != "nt" else [],
    ))

build_info = {
    "variants": sorted(variants),
    "openmp": openmp,
    "native": native,
    "sanitize": sanitize,
    "cflags": " ".join(base_flags),
    "compiler": (sysconfig.get_config_var("CC") or "cc"),
    "python": sys.version.split()[0],
    "numpy_build": np.__version__,
}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastloss", "_build_info.py"), "w") as f:
    f.write('"""Written by setup.py at build time."""\nBUILD_INFO = ' + repr(build_info) + "\n")

setup(
    # Always recompile: objects left in build/ by a build with other switches (serial,
    # sanitizers, native) must never be linked into this one. Two compile jobs at a time.
    options={"build_ext": {"force": True, "parallel": os.cpu_count() or 1}},
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
        nthreads=int(os.environ.get("FASTLOSS_CYTHON_JOBS", "0")) or None,
    ),
)
