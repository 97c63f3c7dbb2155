"""float32 kernels compute in float32: read from the built machine code.

Cython writes a literal such as ``1`` as the C double ``1.0``, and libc's ``fabs`` takes and
returns double, so ``1 - y`` or ``f_exp(-fabs(p))`` in a float32 kernel silently computes in
double (f_exp then takes its double specialization: libmvec's 8-lane double exp instead of
the 16-lane float one). The results stay correct, so no value test notices; the kernel runs at
float64's speed or below (BCE from logits and binary focal did, until typed constants and
`f_abs`). This test disassembles each instruction set's extension and checks every float32
elementwise kernel (`ew_block` of each loss, the float specialization): no call of a double
vector-math function, and few float<->double conversions (the float64 accumulation of the
loss, which is meant, takes as many in MSE's kernel as in any: a kernel may have 25 more, and
those that computed in double had 40-280 more).

Skipped without objdump (binutils), off x86-64 Linux, or where the symbols are stripped."""
import functools
import importlib
import importlib.util
import platform
import re
import shutil
import subprocess
import sys
from collections import Counter

import pytest

# Conversions between float and double a float32 kernel may have beyond MSE's (whose are all
# the float64 accumulation of the loss, which every kernel shares): measured, at most 10
# (baseline), 16 (AVX2, AVX-512) beyond; the kernels that computed in double had 40-280.
EXTRA_CONVERSIONS = 25
CONVERSION = re.compile(r"\bv?cvt(ps2pd|pd2ps|ss2sd|sd2ss)\b")
# libmvec's double functions: _ZGV<isa><mask><lanes>v_<name>, the name without a final "f".
DOUBLE_VECTOR_MATH = re.compile(r"<_ZGV\w+?v_(exp|log|log1p|expm1|pow)(@plt)?>")
FUNCTION = re.compile(r"^[0-9a-f]+ <(.+)>:$")


@functools.lru_cache(maxsize=None)
def _disassemble(path):
    """(function names, name -> conversions, name -> double vector-math calls)."""
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], capture_output=True,
                          text=True, check=True).stdout
    names, conv, calls = [], Counter(), Counter()
    name = None
    for line in text.splitlines():
        m = FUNCTION.match(line)
        if m:
            name = m.group(1)
            names.append(name)
        elif name is not None:
            if CONVERSION.search(line):
                conv[name] += 1
            if "call" in line and DOUBLE_VECTOR_MATH.search(line):
                calls[name] += 1
    return names, conv, calls


@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
def test_float32_kernels_compute_in_float32(isa):
    x86_64 = platform.machine().lower() in ("x86_64", "amd64")
    if not x86_64 or not sys.platform.startswith("linux"):
        pytest.skip("checked on x86-64 Linux")
    if shutil.which("objdump") is None:
        pytest.skip("no objdump (binutils)")
    # Located, never imported: a module built for AVX-512 may execute its instructions as it
    # loads, which kills the process on a CPU without them. Every variant is built from the
    # same declarations, so the baseline module (which runs anywhere) lists the kernels.
    try:
        spec = importlib.util.find_spec(f"fastloss._ext_{isa}")
    except ImportError:
        spec = None
    if spec is None or spec.origin is None:
        pytest.skip(f"no {isa} extension in this build")
    try:
        kernels = importlib.import_module("fastloss._ext_baseline").ELEMENTWISE_KERNELS
    except ImportError:
        pytest.skip("no baseline extension to list the kernels (a native build)")
    names, conv, calls = _disassemble(spec.origin)
    counts = {}
    for i, kernel in enumerate(kernels):
        # ew_block's float specialization of kernel i (Cython: fuse_<loss>_<dtype>, float first;
        # gcc may add .constprop/.isra suffixes)
        prefix = f"__pyx_fuse_{i}_0__pyx_f_8fastloss_{len('_ext_' + isa)}_ext_{isa}_ew_block"
        mine = [n for n in names if n.startswith(prefix)]
        if mine:
            counts[kernel] = (sum(conv[n] for n in mine), sum(calls[n] for n in mine))
    if not counts:
        pytest.skip(f"the {isa} extension's kernel symbols are not visible (stripped?)")
    assert len(counts) == len(kernels), \
        f"found {len(counts)} of {len(kernels)} float32 kernels in {spec.origin}"
    base = counts["MeanSquaredError"][0]
    problems = [f"{kernel}: {n_conv} float<->double conversions (MSE's kernel: {base}), "
                f"{n_calls} calls of double vector math"
                for kernel, (n_conv, n_calls) in counts.items()
                if n_conv > base + EXTRA_CONVERSIONS or n_calls]
    assert not problems, "float32 kernels computing in double:\n" + "\n".join(problems)
