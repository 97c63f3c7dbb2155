"""Build fastloss's Cython modules.

* ``fastloss._entry`` (compiled once): argument handling, output allocation, sample weights
  and the reduction glue -- nothing there depends on the instruction set.
* ``fastloss._ext_<isa>`` (compiled per instruction set): the kernels of _kernels.pxi, for a
  portable baseline and, on x86-64 with gcc, x86-64-v3 (AVX2/FMA) and x86-64-v4 (AVX-512);
  the package picks the best one the CPU runs at import time.

Each loss's kernel math is one block of fastloss/_elementwise_losses.pxi or
fastloss/_rowwise_losses.pxi, headed by ``# @elementwise_loss(...)`` / ``# @rowwise_loss``.
`write_kernel_registry` collects those blocks into the fused types and the dispatch by kernel
id, written to build/cython/_kernel_registry.pxi and _kernel_dispatch.pxi (read them there).
Nothing is written into the source tree.

Environment switches (all optional):
  FASTLOSS_NATIVE=1    only one kernel module, compiled with -march=native (not portable)
  FASTLOSS_OPENMP=0    serial build without OpenMP (also automatic when the compiler lacks it)
  FASTLOSS_SANITIZE=1  AddressSanitizer + UndefinedBehaviorSanitizer debug build (-O1 -g)
  FASTLOSS_PORTABLE=1  a release (manylinux_2_28) build: glibc symbols no newer than 2.28
                       (_glibc_compat.h), libmvec's 2.35 functions bound at run time
                       (_mvec_shim.c), stripped, no build-machine RUNPATH; see README "Packaging"
"""
import glob
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import sysconfig
import tempfile
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "fastloss")
CYTHON_OUT = os.path.join("build", "cython")


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


# ---- the kernel registry: every loss block of the loss files, in file order ----

_BLOCK = re.compile(r"^# @(elementwise|rowwise)_loss(?:\((?P<opts>[^)]*)\))?\s*\n"
                    r"cdef struct (?P<name>\w+):\s*\n(?P<body>(?:[ \t]+.*\n)+)", re.M)
_FIELD = re.compile(r"^\s+(double|int|long long|char)\s+(\w+)", re.M)
_OPTION = re.compile(r"(\w+)\s*=\s*(\"[^\"]*\"|\w+)")


def _loss_blocks(path, family):
    text = open(path).read()
    blocks = []
    for m in _BLOCK.finditer(text):
        if m.group(1) != family:
            raise SystemExit(f"{path}: a {m.group(1)} loss ({m.group('name')}) in the "
                             f"{family} file")
        opts = {k: v.strip('"') for k, v in _OPTION.findall(m.group("opts") or "")}
        fields = [f for _, f in _FIELD.findall(m.group("body")) if f != "unused"]
        name = m.group("name")
        for fn in ("math",) if family == "elementwise" else ("row",):
            if not re.search(rf"\b{name}_{fn}\(", text):
                raise SystemExit(f"{path}: loss {name} has no {name}_{fn} function")
        blocks.append(dict(name=name, fields=fields, opts=opts,
                           invalid=bool(re.search(rf"\b{name}_invalid\(", text))))
    if not blocks:
        raise SystemExit(f"{path}: no loss blocks found")
    unknown = {k for b in blocks for k in b["opts"]} - {"cost", "column", "math",
                                                        "gradient_factor", "target_logs"}
    if unknown:
        raise SystemExit(f"{path}: unknown loss options {sorted(unknown)}")
    return blocks


def _fused(name, blocks):
    return [f"ctypedef fused {name}:"] + [f"    {b['name']}" for b in blocks] + [""]


def _branches(var, blocks, line, default=None):
    """`if var is A: <line A> elif ...`, one branch per block (`line` makes its body)."""
    out = []
    for i, b in enumerate(blocks):
        out += [f"    {'if' if i == 0 else 'elif'} {var} is {b['name']}:", f"        {line(b)}"]
    if default is not None:
        out += ["    else:", f"        {default}"]
    return out


def _predicate(fn, var, blocks, rtype="bint", yes="True", no="False"):
    chosen = [b["name"] for b in blocks if fn(b)]
    body = [f"    if {' or '.join(f'{var} is {n}' for n in chosen)}:", f"        return {yes}"] \
        if chosen else []
    return body + [f"    return {no}"]


def kernel_registry(ew, rw):
    """The generated Cython: (fused types and per-loss dispatch, dispatch by kernel id)."""
    sig_ew = "floating t, floating p, floating column, floating* l, floating* g, floating* h"
    sig_rw = ("const RwJob* job, const floating* lq, const floating* q, floating lse, "
              "floating inv, double rest, Py_ssize_t jmax, const floating* t, long long y, "
              "floating label_weight, floating grad_scale, floating hess_scale, floating* go, floating* ho, "
              "floating* work")
    args_rw = "L, job, lq, q, lse, inv, rest, jmax, t, y, label_weight, grad_scale, hess_scale, go, ho, work"
    head = ["# Generated by setup.py from _elementwise_losses.pxi and _rowwise_losses.pxi.",
            "# Do not edit: declare a loss in its family's file instead.", ""]
    reg = head + _fused("ew_loss", ew) + _fused("rw_loss", rw) + [
        "",
        f"cdef inline void ew_math(ew_loss L, {sig_ew}) noexcept nogil:",
        *_branches("ew_loss", ew, lambda b: f"{b['name']}_math(L, t, p, column, l, g, h)"),
        "",
        "cdef inline int ew_invalid(ew_loss L, floating t, floating p) noexcept nogil:",
        *[x for b in ew if b["invalid"] for x in (
            f"    if ew_loss is {b['name']}:", f"        return {b['name']}_invalid(L, t, p)")],
        "    return 0",
        "",
        "cdef inline bint ew_has_check(ew_loss L) noexcept nogil:",
        *_predicate(lambda b: b["invalid"], "ew_loss", ew),
        "",
        "cdef inline bint ew_has_column(ew_loss L) noexcept nogil:",
        *_predicate(lambda b: b["opts"].get("column") == "True", "ew_loss", ew),
        "",
        "cdef inline bint ew_padded_loop(ew_loss L) noexcept nogil:",
        *[x for b in ew if b["opts"].get("math") == "inline" for x in (
            f"    if ew_loss is {b['name']}:", "        return not FL_EXP_INLINE")],
        *_predicate(lambda b: b["opts"].get("math") == "libm", "ew_loss", ew),
        "",
        "cdef inline double ew_gradient_factor(ew_loss L) noexcept nogil:",
        *[x for b in ew if "gradient_factor" in b["opts"] for x in (
            f"    if ew_loss is {b['name']}:",
            f"        return {float(b['opts']['gradient_factor'])!r}")],
        "    return 1.0",
        "",
        "cdef inline Py_ssize_t ew_min_work(ew_loss L) noexcept nogil:",
        *_predicate(lambda b: b["opts"].get("cost", "cheap") == "transcendental", "ew_loss",
                    ew, "Py_ssize_t", "MIN_WORK_TRANSCENDENTAL", "MIN_WORK_CHEAP"),
        "",
        "cdef inline bint rw_target_logs(rw_loss L) noexcept nogil:",
        *_predicate(lambda b: b["opts"].get("target_logs") == "True", "rw_loss", rw),
        "",
        f"cdef inline double rw_row(rw_loss L, {sig_rw}) noexcept nogil:",
        *_branches("rw_loss", rw, lambda b: f"return {b['name']}_row({args_rw})"),
        "",
    ]
    for b in ew:
        if b["opts"].get("cost", "cheap") not in ("cheap", "transcendental"):
            raise SystemExit(f"loss {b['name']}: cost must be cheap or transcendental")
        if b["opts"].get("math", "arithmetic") not in ("arithmetic", "inline", "libm"):
            raise SystemExit(f"loss {b['name']}: math must be arithmetic, inline or libm")
        f = b["opts"].get("gradient_factor", "1")
        if not re.fullmatch(r"[1-9][0-9]*", f) or int(f) & (int(f) - 1):
            # a power of two: folded into the scale, it changes no gradient's bits
            raise SystemExit(f"loss {b['name']}: gradient_factor must be a power of two")

    def run_branches(blocks, call, job="job", kernel="kernel", is_double="is_double", ret="return ",
                     otherwise="    return BAD_KERNEL"):
        out = []
        for i, b in enumerate(blocks):
            ptr = f"(<const {b['name']}*>{job}.params)[0]"
            out += [f"    if {kernel} == {i}:",
                    f"        if {is_double}:",
                    f"            {ret}{call(ptr, 'double')}",
                    f"        else:",
                    f"            {ret}{call(ptr, 'float')}"]
            if not ret:
                out += ["        return"]
        return out + [otherwise]

    def team_entry(name, team_type, blocks, work):
        # The thread team calls a plain function; it dispatches back to the typed worker.
        return [f"cdef void {name}(void* ctx, int worker) noexcept nogil:",
                f"    cdef {team_type}* team = <{team_type}*>ctx",
                *run_branches(blocks, work, "team.job", "team.kernel", "team.is_double", "",
                              "")]

    def pack(family, blocks):
        out = []
        for i, b in enumerate(blocks):
            out += [f"    if family == {family!r} and kernel == {i}:",
                    f"        expect_fields({b['name']!r}, fields, {tuple(b['fields'])!r})",
                    f"        memset(&{family[0]}{i}, 0, sizeof({family[0]}{i}))"]
            out += [f"        {family[0]}{i}.{f} = fields[{f!r}]" for f in b["fields"]]
            out += [f"        return (<char*>&{family[0]}{i})[:sizeof({family[0]}{i})]"]
        return out

    dispatch = head + [
        "ELEMENTWISE_KERNELS = " + repr(tuple(b["name"] for b in ew)),
        "ROWWISE_KERNELS = " + repr(tuple(b["name"] for b in rw)),
        "",
        "",
        "cdef Py_ssize_t elementwise(int kernel, bint is_double, const EwJob* job, "
        "int n_threads, double* loss_sum) noexcept nogil:",
        *run_branches(ew, lambda ptr, dt: f"ew_run({ptr}, <{dt}>0, job, n_threads, loss_sum, "
                                          f"kernel)"),
        "",
        "",
        *team_entry("ew_team_entry", "EwTeam", ew,
                    lambda ptr, dt: f"ew_team_work({ptr}, <{dt}>0, team)"),
        "",
        "",
        "cdef Py_ssize_t rowwise(int kernel, bint is_double, const RwJob* job, "
        "int n_threads, double* loss_sum, double* normalizer) noexcept nogil:",
        *run_branches(rw, lambda ptr, dt: f"rw_run({ptr}, <{dt}>0, job, n_threads, loss_sum, "
                                          f"normalizer, kernel)"),
        "",
        "",
        *team_entry("rw_team_entry", "RwTeam", rw,
                    lambda ptr, dt: f"rw_team_work({ptr}, <{dt}>0, team)"),
        "",
        "",
        "def pack(str family, int kernel, dict fields):",
        '    """A kernel\'s parameter struct, filled from `fields`, as bytes."""',
        *[f"    cdef {b['name']} e{i}" for i, b in enumerate(ew)],
        *[f"    cdef {b['name']} r{i}" for i, b in enumerate(rw)],
        *pack("elementwise", ew),
        *pack("rowwise", rw),
        "    raise ValueError(f'fastloss: no {family} kernel number {kernel}')",
        "",
    ]
    return "\n".join(reg) + "\n", "\n".join(dispatch) + "\n"


def write_kernel_registry(out_dir):
    ew = _loss_blocks(os.path.join(SRC, "_elementwise_losses.pxi"), "elementwise")
    rw = _loss_blocks(os.path.join(SRC, "_rowwise_losses.pxi"), "rowwise")
    os.makedirs(out_dir, exist_ok=True)
    for name, text in zip(("_kernel_registry.pxi", "_kernel_dispatch.pxi"),
                          kernel_registry(ew, rw)):
        path = os.path.join(out_dir, name)
        # Rewritten only when it changes, so that an unchanged tree is not re-cythonized.
        if not os.path.exists(path) or open(path).read() != text:
            with open(path, "w") as f:
                f.write(text)


# ---- compiler switches ----

OMP_TEST = "#include <omp.h>\nint main(void){return omp_get_max_threads() < 0;}\n"
native = _flag("FASTLOSS_NATIVE")
portable = _flag("FASTLOSS_PORTABLE")
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
    # -g0: no debug info in the modules (a fifth of their size, and of the compile time).
    base_flags += ["-O3", "-g0"]
    link_san = []
# Each kernel module instantiates every loss's math in every loop, and gcc stops inlining
# once the module has grown by 40% (its default): Tweedie's loss+gradient loop then called
# its inline exp out of line, scalar, at 18 ns an element instead of 2. 200% lets every
# `inline` helper inline (+20% compile time, +12% code). And a loss's math with several
# inline transcendentals (LogCosh: exp, expm1, log1p) exceeds gcc's 200-instruction limit
# for one inline function: called out of line it ran at 25 ns an element instead of 2
# (+1% code). The second knob also moves a few of gcc's other choices in the row-wise
# kernels: measured at 3e5 elements, 1 thread, CategoricalCrossEntropy from probabilities
# with label smoothing, float32 loss(), 1.41 -> 1.72 ns an element and CategoricalFocal
# (dense targets) loss() +8%; CCE and KL from logits unchanged. Compilers without the knobs
# skip them.
for knob in ("--param=inline-unit-growth=200", "--param=max-inline-insns-single=400"):
    if _compiles([knob]):
        base_flags += [knob]

if native:
    variants = {"native": ["-march=native", "-mprefer-vector-width=512"]}
elif platform.machine().lower() in ("x86_64", "amd64") and _compiles(["-march=x86-64-v4"]) \
        and "gcc" in (sysconfig.get_config_var("CC") or "gcc") and not sanitize:
    variants = {"baseline": [], "avx2": ["-march=x86-64-v3"],
                "avx512": ["-march=x86-64-v4", "-mprefer-vector-width=512"]}
else:
    variants = {"baseline": []}

build_info = {
    "variants": sorted(variants),
    "openmp": openmp,
    "native": native,
    "sanitize": sanitize,
    "portable": portable,
    "cflags": " ".join(base_flags),
    "compiler": (sysconfig.get_config_var("CC") or "cc"),
    "python": sys.version.split()[0],
    "numpy_build": np.__version__,
}
# ---- portable (release) builds and glibc's vector math ----
linux_gcc_x86 = (sys.platform.startswith("linux") and "gcc" in (sysconfig.get_config_var("CC") or "gcc")
                 and platform.machine().lower() in ("x86_64", "amd64"))
shim_sources, shim_macros, link_portable = [], [], []
omp_link = ["-fopenmp"] if openmp else []
if linux_gcc_x86 and not sanitize:
    # Vector log1p/expm1 (glibc >= 2.35 only) bound at run time where the build targets an
    # older glibc (portable builds, older systems): see _mvec_shim.c and _simd_math.h.
    shim_sources, shim_macros = ["fastloss/_mvec_shim.c"], [("FL_MVEC_SHIM", "1")]
if portable:
    if native or sanitize:
        raise SystemExit("FASTLOSS_PORTABLE=1 cannot be combined with FASTLOSS_NATIVE or "
                         "FASTLOSS_SANITIZE")
    shim_macros.append(("FL_PORTABLE", "1"))
    if sys.platform.startswith("linux") and openmp:
        # No OpenMP runtime linked: libgomp.so.1 is opened at load time (_omp_shim.c).
        shim_sources = shim_sources + ["fastloss/_omp_shim.c"]
        shim_macros.append(("FL_OMP_RUNTIME_DLOPEN", "1"))
        omp_link = ["-pthread"]
    if sys.platform.startswith("linux"):
        base_flags += ["-include", os.path.join(SRC, "_glibc_compat.h")]
        # Strip symbols; libpthread/libdl named so that glibc < 2.34 finds the functions there.
        link_portable = ["-Wl,--strip-all", "-Wl,--no-as-needed", "-l:libpthread.so.0",
                         "-l:libdl.so.2"]
    elif sys.platform == "darwin":
        link_portable = ["-Wl,-x"]
elif shim_sources:
    link_portable = ["-ldl"]
# Builds with other switches (serial, sanitizers, native) get their own build folders, so
# their objects are never linked into this one and nothing has to be rebuilt by force.
tag = hashlib.sha1(json.dumps([base_flags, variants, link_san, shim_macros, omp_link,
                               link_portable]).encode()).hexdigest()[:10]
common = dict(
    include_dirs=[np.get_include(), "fastloss"],
    # The build's description, compiled in as a C string: build_info() returns it.
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                   ("FL_BUILD_INFO", json.dumps(json.dumps(build_info)))] + shim_macros,
    extra_link_args=omp_link + link_san + link_portable,
    libraries=["m"] if os.name != "nt" else [],
    # The C headers the kernels include: an edit there rebuilds the modules (the generated
    # .c files do not change, so nothing else would notice).
    depends=sorted(glob.glob(os.path.join("fastloss", "*.h"))),
)


def shims(module):
    """The C shims for one module, as a file of its own: each module compiles them with its
    own instruction-set flags, into an object of its own (a shared object path would be
    compiled by several extensions at once, with different flags)."""
    if not shim_sources:
        return []
    os.makedirs(CYTHON_OUT, exist_ok=True)
    path = os.path.join(CYTHON_OUT, f"_shims_{module}.c")
    text = "".join(f'#include "{os.path.basename(f)}"\n' for f in shim_sources)
    if not os.path.exists(path) or open(path).read() != text:
        with open(path, "w") as f:
            f.write(text)
    return [path]


extensions = [Extension("fastloss._entry", ["fastloss/_entry.pyx"] + shims("entry"),
                        extra_compile_args=base_flags, **common)]
for isa, isa_flags in variants.items():
    module = "baseline" if isa == "native" else isa
    ext_common = dict(common, define_macros=common["define_macros"] + [("FL_ISA", f'"{isa}"')])
    extensions.append(Extension(f"fastloss._ext_{module}",
                                [f"fastloss/_ext_{module}.pyx"] + shims(module),
                                extra_compile_args=base_flags + isa_flags, **ext_common))

write_kernel_registry(CYTHON_OUT)
# sdist and metadata commands compile nothing: they skip the (minutes long) cythonization.
_commands = {a for a in sys.argv[1:] if not a.startswith("-")}
metadata_only = bool(_commands & {"sdist", "egg_info", "dist_info"}) and not (
    _commands & {"build", "build_ext", "bdist_wheel", "bdist", "install", "develop",
                 "editable_wheel"})

class BuildExt(build_ext):
    """Portable builds drop the interpreter's own link flags that name this machine's paths
    (pyenv/conda put -Wl,-rpath,<prefix>/lib into LDSHARED): the wheel gets no RUNPATH."""

    def build_extensions(self):
        if portable and self.compiler.compiler_type == "unix":
            self.compiler.linker_so = [a for a in self.compiler.linker_so
                                       if not a.startswith(("-Wl,-rpath", "-Wl,-R"))]
        super().build_extensions()


setup(
    cmdclass={"build_ext": BuildExt},
    options={"build": {"build_base": os.path.join("build", tag)},
             "build_ext": {"parallel": os.cpu_count() or 1}},
    ext_modules=extensions if metadata_only else cythonize(
        extensions,
        build_dir=CYTHON_OUT,
        include_path=[CYTHON_OUT, "fastloss"],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
        # The four modules are cythonized in parallel (FASTLOSS_CYTHON_JOBS=1: one at a time).
        nthreads=int(os.environ.get("FASTLOSS_CYTHON_JOBS", "0")) or os.cpu_count() or 1,
    ),
)
