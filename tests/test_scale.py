"""Huge arrays: more than 2**31 elements, to show 64-bit indexing end to end.

Skipped unless FASTLOSS_TEST_LARGE=1 is set *and* the machine has room (checked per test):

* RAM: /proc/meminfo MemAvailable >= 10 GiB. The inputs are np.memmap views of *sparse* files
  (holes read as zeros), so they take page cache, not process memory: the mapped file pages
  show in the resident set (up to ~17 GB in the gradient test) but are reclaimable, and the
  tests assert that anonymous memory (RssAnon) stays below 1 GiB -- nothing is copied.
* Disk (in pytest's tmp_path): sparse files take almost nothing, except the memory-mapped
  gradient buffer of test_gradient_into_memmapped_out_beyond_2_31, which is written in full:
  about 8.6 GB (2**31 + 1000 float32). That test needs >= 12 GB free and deletes its files.
* Time: each test streams 8.6-17 GB through the kernels; tens of seconds on a laptop-class
  disk for the written one, seconds to a minute for the others.

Run:  FASTLOSS_TEST_LARGE=1 pytest tests/test_scale.py -m slow -v
"""
import os
import shutil

import numpy as np
import pytest

import fastloss as fl

N = 2**31 + 1000                       # elements: more than fits a 32-bit index
GIB = 2**30


def _mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _require(tmp_path, disk_bytes=0, ram_bytes=10 * GIB):
    if os.environ.get("FASTLOSS_TEST_LARGE") != "1":
        pytest.skip("set FASTLOSS_TEST_LARGE=1 to run the > 2**31-element tests")
    if os.environ.get("FASTLOSS_UNDER_SANITIZER"):
        pytest.skip("too slow under sanitizers")
    avail = _mem_available()
    if avail < ram_bytes:
        pytest.skip(f"needs MemAvailable >= {ram_bytes / GIB:.0f} GiB, have {avail / GIB:.1f}")
    free = shutil.disk_usage(tmp_path).free
    if free < disk_bytes:
        pytest.skip(f"needs {disk_bytes / GIB:.0f} GiB free in {tmp_path}, have {free / GIB:.1f}")


def _sparse(path, dtype, n, values):
    """A sparse file of n zeros of `dtype` with `values` ({index: value}) written in; returns a
    read-only memmap of it."""
    itemsize = np.dtype(dtype).itemsize
    with open(path, "wb") as f:
        f.truncate(n * itemsize)
    m = np.memmap(path, dtype=dtype, mode="r+", shape=(n,))
    for i, v in values.items():
        m[i] = v
    m.flush()
    del m
    return np.memmap(path, dtype=dtype, mode="r", shape=(n,))


def _rss_anon():
    """Anonymous resident memory of this process (bytes): copies of the inputs would show here."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _assert_no_copies(before):
    grown = _rss_anon() - before
    assert grown < GIB, f"anonymous memory grew by {grown / GIB:.2f} GiB: inputs were copied?"


def _unlink(*paths):
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass


@pytest.mark.slow
def test_loss_sums_elements_beyond_2_31(tmp_path):
    """float32 MSE and MAE over 2**31 + 1000 elements: the few nonzero differences, most of
    them past index 2**31, are all picked up, exactly (small integers add exactly in float64).

    y_true and y_pred are two overlapping views of one sparse file of N + 1 float32
    (y_true = f[:-1], y_pred = f[1:]), so d_i = f[i+1] - f[i]: half the page cache of two files.
    """
    _require(tmp_path)
    vals = {10: 3.0, 2**31 - 2: 5.0, 2**31 + 1: 2.0, 2**31 + 500: -4.0, N - 1: 7.0, N: 1.0}
    path = str(tmp_path / "f32.bin")
    try:
        f = _sparse(path, np.float32, N + 1, vals)
        y_true, y_pred = f[:-1], f[1:]
        assert y_pred.size == N > 2**31
        d = {}
        for j, v in vals.items():           # d_{j-1} gets +v, d_j gets -v
            if j - 1 >= 0:
                d[j - 1] = d.get(j - 1, 0.0) + v
            if j < N:
                d[j] = d.get(j, 0.0) - v
        want_sq = sum(x * x for x in d.values())
        want_abs = sum(abs(x) for x in d.values())
        mse = fl.MeanSquaredError()
        anon = _rss_anon()
        assert mse.loss(y_true, y_pred, reduction="sum") == want_sq
        _assert_no_copies(anon)
        assert mse(y_true, y_pred) == want_sq / N
        assert fl.MeanAbsoluteError().loss(y_true, y_pred, reduction="sum") == want_abs
        # bit-identical for every thread count, even here
        assert fl.MeanSquaredError(n_threads=1).loss(y_true, y_pred, reduction="sum") == want_sq
        assert fl.MeanSquaredError(n_threads=3).loss(y_true, y_pred, reduction="sum") == want_sq
    finally:
        _unlink(path)


@pytest.mark.slow
def test_gradient_into_memmapped_out_beyond_2_31(tmp_path):
    """MSE gradient (reduction "sum": 2 d) of 2**31 + 1000 float32 elements written into a
    memory-mapped gradient_out: the values past index 2**31 are right, the rest is zero."""
    _require(tmp_path, disk_bytes=12 * GIB)
    vals = {2**31 - 1: 1.5, 2**31 + 3: -2.0, N - 2: 4.0}
    fpath, gpath = str(tmp_path / "f32.bin"), str(tmp_path / "grad.bin")
    try:
        f = _sparse(fpath, np.float32, N + 1, vals)
        y_true, y_pred = f[:-1], f[1:]
        with open(gpath, "wb") as fh:
            fh.truncate(N * 4)
        out = np.memmap(gpath, dtype=np.float32, mode="r+", shape=(N,))
        out[-1] = 123.0
        anon = _rss_anon()
        g = fl.MeanSquaredError().gradient(y_true, y_pred, reduction="sum", gradient_out=out)
        _assert_no_copies(anon)
        assert g is out
        expected = {}
        for j, v in vals.items():
            expected[j - 1] = expected.get(j - 1, 0.0) + 2 * v
            if j < N:
                expected[j] = expected.get(j, 0.0) - 2 * v
        for j, v in expected.items():
            assert out[j] == v, (j, out[j], v)
        for lo, hi in [(0, 4096), (2**31 - 4096, 2**31 - 2), (2**31 + 5, 2**31 + 4096),
                       (N - 4096, N - 3)]:
            block = np.asarray(out[lo:hi])
            keep = [j - lo for j in expected if lo <= j < hi]
            assert not np.delete(block, keep).any(), (lo, hi)
        assert out[N - 1] == 0.0          # the sentinel was overwritten by the last gradient
        del g, out
    finally:
        _unlink(fpath, gpath)


@pytest.mark.slow
def test_categorical_labels_beyond_2_31_elements(tmp_path):
    """CCE on probabilities, y_pred of shape (2**21 + 8, 1024) (> 2**31 elements) with int64
    labels: every row reads the right element (row * k + label > 2**31; loss sum exact), and a
    bad label in the very last row is reported."""
    _require(tmp_path)
    n, k = 2**21 + 8, 1024
    assert n * k > 2**31
    # y_pred all 0 except q = 1 at the label of a few rows past element 2**31: each row's loss
    # is -log(0) -> clamped 100, except those rows (0).
    hit_rows = [2**21 + 1, 2**21 + 5, n - 1]
    lab_vals = {r: 1000 for r in hit_rows}            # their label is class 1000
    q_vals = {r * k + 1000: 1.0 for r in hit_rows}
    lpath, qpath = str(tmp_path / "lab.bin"), str(tmp_path / "q.bin")
    try:
        lab = _sparse(lpath, np.int64, n, lab_vals)
        q = _sparse(qpath, np.float32, n * k, q_vals).reshape(n, k)
        loss = fl.CategoricalCrossEntropy()
        anon = _rss_anon()
        assert loss.loss(lab, q, reduction="sum") == 100.0 * (n - len(hit_rows))
        _assert_no_copies(anon)
        g = loss.gradient(lab[-2:], q[-2:], reduction="sum")   # the tail: a view past 2**31
        assert g[-1, 1000] == -1.0 and g[0, 0] == 0.0
        # the last row's label out of range: found, and named by its row
        del lab
        with open(lpath, "r+b") as fh:
            fh.seek((n - 1) * 8)
            fh.write(np.int64(k).tobytes())
        lab = np.memmap(lpath, dtype=np.int64, mode="r", shape=(n,))
        with pytest.raises(ValueError, match=f"index {n - 1}"):
            loss.loss(lab, q, reduction="sum")
        del lab, q
    finally:
        _unlink(lpath, qpath)
