"""The row argmax of fastloss/_rows.h, compiled by itself for each instruction set the kernels
are built for (baseline x86-64, AVX2, AVX-512), against NumPy: the first largest element,
NaNs passed over unless the row's first element is NaN (the scalar loop's semantics, which
the row-wise kernels' bits depend on).

Each row is placed at the very end of a page followed by an inaccessible one, so a vector
load past the row's end would crash the harness. Skipped without a C compiler, off x86-64
Linux, where the CPU cannot run a variant, or without the sources (installed-wheel runs)."""
import subprocess

import numpy as np
import pytest

import c_harness

HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "_rows.h"
/* argv[1]: d or f; stdin: rows of argv[2] elements; stdout: each row's index (int64). */
int main(int argc, char** argv) {
    if (argc != 3) return 2;
    int dbl = argv[1][0] == 'd';
    long long k = atoll(argv[2]), a;
    size_t size = dbl ? sizeof(double) : sizeof(float), bytes = k * size;
    long page = sysconf(_SC_PAGESIZE);
    size_t span = (bytes + page - 1) / page * page;
    char* base = mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
    if (base == MAP_FAILED || mprotect(base + span, page, PROT_NONE)) return 3;
    char* row = base + span - bytes;   /* the row ends where the guard page begins */
    while (fread(row, size, k, stdin) == (size_t)k) {
        a = dbl ? fl_row_argmax((const double*)row, k) : fl_row_argmaxf((const float*)row, k);
        fwrite(&a, sizeof a, 1, stdout);
    }
    return 0;
}
"""

VARIANTS = {
    "baseline": ["-march=x86-64"],
    "avx2": ["-march=x86-64-v3"],
    "avx512": ["-march=x86-64-v4", "-mprefer-vector-width=512"],
}
SIZES = list(range(1, 41)) + [47, 48, 63, 64, 65, 100, 1000]


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def argmax(request, tmp_path_factory):
    flags = ["-O2", "-fno-math-errno", "-fno-trapping-math", *VARIANTS[request.param]]
    exe = c_harness.build("_rows.h", HARNESS, flags,
                          tmp_path_factory.mktemp("rows_" + request.param), ["d", "1"],
                          np.zeros(1).tobytes(), "the row argmax")

    def call(x):
        out = subprocess.run([str(exe), "d" if x.dtype == np.float64 else "f", str(x.shape[1])],
                             input=np.ascontiguousarray(x).tobytes(), capture_output=True)
        assert out.returncode == 0, f"harness failed ({out.returncode}): {out.stderr[-300:]}"
        return np.frombuffer(out.stdout, np.int64)
    return call


def _reference(x):
    """First index of the largest non-NaN element; 0 where the row starts with NaN."""
    clean = np.where(np.isnan(x), -np.inf, x)
    idx = np.argmax(clean, axis=1)   # NumPy's argmax: the first occurrence
    return np.where(np.isnan(x[:, 0]), 0, idx)


def _rows(k, dtype, rng):
    n = 400
    parts = [
        rng.normal(size=(n, k)),                                   # distinct values
        rng.choice([-1.0, 0.0, -0.0, 1.0], size=(n, k)),           # ties, signed zeros
        rng.choice([-np.inf, np.inf, 0.0, np.nan, 2.0], size=(n, k)),
        np.full((2, k), np.nan), np.full((2, k), -np.inf), np.full((2, k), np.inf),
    ]
    x = np.concatenate(parts).astype(dtype)
    nan_at = rng.random(x.shape) < 0.1   # NaNs sprinkled into the distinct rows too
    x[:n][nan_at[:n]] = np.nan
    x[n:n + 5, 0] = np.nan               # a NaN first element is the row's
    return x


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_argmax_as_numpy_every_length(argmax, dtype):
    rng = np.random.default_rng(7)
    for k in SIZES:
        x = _rows(k, dtype, rng)
        got = argmax(x)
        want = _reference(x)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (k, x[bad[0]].tolist(), int(got[bad[0]]), int(want[bad[0]]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_argmax_first_of_equal_maxima(argmax, dtype):
    # +0 and -0 are equal: the first wins, whichever sign the vector maximum kept
    for k in (8, 10, 16, 17, 33):
        x = np.zeros((k, k), dtype)
        x[np.arange(k), np.arange(k)] = -0.0
        assert argmax(x).tolist() == [0] * k
        y = np.full((k, k), -5.0, dtype)
        y[:, k - 1] = 3.0
        y[np.arange(k), np.arange(k)] = 3.0   # the diagonal's 3 comes first (or is the last)
        assert argmax(y).tolist() == list(range(k))
