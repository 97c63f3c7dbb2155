"""fastloss.dask on a real dask.distributed cluster (two worker processes, one thread each):
every loss of fastloss.LOSSES, its reduced values, gradients, hessians and per-element losses
bit for bit equal to the in-memory call on the same data, for several chunkings (chunks that
straddle the kernels' reduction blocks, and ones that do not), with sample weights, errors
raised from inside one chunk with their global index, a worker killed in the middle of a
computation, and a second client connected to the scheduler by its address.

The in-memory call is the reference (its own tests compare it with independent formulas);
NumPy's float64 formula checks a few values besides. Skipped without dask/distributed.
"""
import os
import signal
import sys
import time

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import fastloss as fl  # noqa: E402
import fastloss.dask as fld  # noqa: E402
import references as R  # noqa: E402
from isolated import run_isolated  # noqa: E402

F64, F32 = np.dtype(np.float64), np.dtype(np.float32)
# Sizes keep the graphs at a few chunks each (the cluster's cost is per task): every chunk
# boundary but a few lies inside a reduction block, so partial blocks are recomputed from
# slivers, and each chunk also holds whole blocks.
N_EW = 30_011             # elements: 2048-element blocks; chunks of 4097
N_RW, K = 5_003, 5        # rows x classes: 409-row blocks (and 2048-row normalizer blocks)
EW_CHUNKS = (1000, 4097, 99991)
RW_CHUNKS = (333, 4097)


def _n_for(chunk, base):
    """About four chunks of `chunk` elements (rows), the last one short."""
    return max(base, 3 * chunk + 1234)


@pytest.fixture(scope="module")
def client():
    # Functions of this module (slow inputs) travel by value: workers need not import it.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def bits(a):
    a = np.asarray(a)
    return a.view(np.uint32 if a.dtype == F32 else np.uint64)


def same_bits(got, want, what=""):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, \
        f"{what}: {got.shape}/{got.dtype} != {want.shape}/{want.dtype}"
    assert np.array_equal(bits(got), bits(want)), \
        f"{what}: {np.count_nonzero(bits(got) != bits(want))} elements differ"


def compute(client, *xs):
    return client.gather(client.compute(list(xs)))


SETTINGS = [s for s in R.settings(fl.LOSSES) if s.label == "default"]


def _data(s, dt, salt=0, shape=None):
    rng = np.random.default_rng(1234 + salt)
    shape = shape or ((N_RW, K) if s.rowwise else (N_EW,))
    t, p = s.data(rng, shape, dt)
    return t, p


def _chunked(t, p, w, chunk):
    """dask arrays of the data, y_pred chunked by `chunk` rows (elements for 1-D)."""
    cp = da.from_array(p, chunks=(chunk,) + p.shape[1:])
    ct = da.from_array(t, chunks=(chunk,) + np.shape(t)[1:])
    cw = None if w is None else da.from_array(w, chunks=(chunk,) + w.shape[1:])
    return ct, cp, cw


def _check_all(client, obj, t, p, w, chunk, what):
    """Every method and reduction of fastloss.dask against the in-memory call."""
    dobj = fld.wrap(obj)
    ct, cp, cw = _chunked(t, p, w, chunk)
    lazy = {}
    for red in ("mean", "sum"):
        lazy[f"loss_gradient[{red}]"] = dobj.loss_gradient(ct, cp, sample_weight=cw, reduction=red)
        lazy[f"loss[{red}]"] = dobj.loss(ct, cp, sample_weight=cw, reduction=red)
    lazy["gradient[mean]"] = dobj.gradient(ct, cp, sample_weight=cw)
    lazy["loss[none]"] = dobj.loss(ct, cp, sample_weight=cw, reduction="none")
    lazy["gradient_hessian"] = dobj.gradient_hessian(ct, cp, sample_weight=cw)
    names = list(lazy)
    flat = [x for n in names for x in (lazy[n] if isinstance(lazy[n], tuple) else (lazy[n],))]
    for x in flat:
        if x.ndim:
            assert x.chunks[0] == cp.chunks[0], f"{what}: output chunked like y_pred"
    got = iter(compute(client, *flat))
    for name in names:
        method, red = (name.split("[") + [""])[:2]
        red = red.rstrip("]")
        kw = {"sample_weight": w}
        if red:
            kw["reduction"] = red
        want = getattr(obj, method)(t, p, **kw)
        want = want if isinstance(want, tuple) else (want,)
        for i, v in enumerate(want):
            g = next(got)
            if isinstance(v, float):
                assert isinstance(g, float), f"{what} {name}: {type(g)}"
                same_bits(np.float64(g), np.float64(v), f"{what} {name}")
            else:
                same_bits(g, v, f"{what} {name}[{i}]")


@pytest.mark.parametrize("s", SETTINGS, ids=lambda s: s.id)
def test_every_loss_bit_identical(client, s):
    """Every registered loss (each form of its data), weighted and not, one chunking that
    straddles blocks; float32 and float64."""
    chunk = 333 if s.rowwise else 4097
    for dt in (F64, F32):
        t, p = _data(s, dt)
        rng = np.random.default_rng(7)
        w = rng.uniform(0.1, 2.0, size=p.shape[0]).astype(dt)
        _check_all(client, s.cls(**s.params), t, p, w, chunk, f"{s.id} {dt} weighted")
    _check_all(client, s.cls(**s.params), t, p, None, 1000 if s.rowwise else 2048 * 3,
               f"{s.id} {dt} unweighted, chunks of whole blocks")


def test_registry_is_covered():
    """fastloss.dask has every loss of the registry (and its functional)."""
    for name, cls in fl.LOSSES.items():
        assert issubclass(getattr(fld, cls.__name__), fld.DaskLoss), name
        assert callable(getattr(fld, name)), name
    assert {s.name for s in SETTINGS} == set(fl.LOSSES)


@pytest.mark.parametrize("chunk", EW_CHUNKS)
@pytest.mark.parametrize("case", ["mse", "bce-logits-posweight-2d", "poisson-rowweights"])
def test_elementwise_chunkings(client, case, chunk):
    rng = np.random.default_rng(chunk)
    N_EW = _n_for(chunk, 30_011)
    if case == "mse":
        obj = fl.MeanSquaredError()
        p = rng.normal(size=N_EW)
        t = rng.normal(size=N_EW)
        w = rng.uniform(0, 3, size=N_EW)
    elif case == "bce-logits-posweight-2d":
        # 2-D with a per-column parameter: columns follow the global index in every sliver
        obj = fl.BinaryCrossEntropy(from_logits=True, pos_weight=np.linspace(0.5, 2, 7),
                                    label_smoothing=0.1)
        p = rng.normal(size=(N_EW // 7, 7)) * 4
        t = (rng.random(p.shape) < 0.3).astype(np.float64)
        w = rng.uniform(0, 3, size=p.shape)
        chunk = max(1, chunk // 7)
    else:
        obj = fl.Poisson()
        p = rng.normal(size=(N_EW // 3, 3))
        t = rng.poisson(2.0, size=p.shape).astype(np.float64)
        w = rng.uniform(0, 3, size=p.shape[0])          # one weight per row
        chunk = max(1, chunk // 3)
    _check_all(client, obj, t, p, w, chunk, f"{case} chunk={chunk}")
    if chunk == 4097:
        _check_all(client, obj, t, p, None, chunk, f"{case} chunk={chunk} unweighted")
    if case == "mse":
        # and the value is the loss (NumPy's float64 formula), not just the same bits
        ct, cp, cw = _chunked(t, p, w, chunk)
        v = compute(client, fld.wrap(obj)(ct, cp, cw))[0]
        assert abs(v - np.average((p - t) ** 2, weights=w)) <= 1e-12 * v


@pytest.mark.parametrize("chunk", RW_CHUNKS)
@pytest.mark.parametrize("case", ["cce-labels-classweight-ignore", "cce-targets", "kl",
                                  "multi-margin"])
def test_rowwise_chunkings(client, case, chunk):
    rng = np.random.default_rng(chunk)
    N_RW = _n_for(chunk, 5_003)
    p = rng.normal(size=(N_RW, K))
    w = rng.uniform(0, 3, size=N_RW)
    if case == "cce-labels-classweight-ignore":
        # the mean's normalizer (sum of class_weight[label] * w) is computed first
        obj = fl.CategoricalCrossEntropy(from_logits=True, class_weight=np.arange(1.0, K + 1),
                                         ignore_index=-100, label_smoothing=0.05)
        t = rng.integers(0, K, size=N_RW)
        t[::11] = -100
    elif case == "cce-targets":
        obj = fl.CategoricalCrossEntropy(from_logits=True)
        t = rng.dirichlet(np.ones(K), size=N_RW)
    elif case == "kl":
        obj = fl.KLDivergence(from_logits=True)
        t = rng.dirichlet(np.ones(K), size=N_RW)
    else:
        obj = fl.MultiMargin(class_weight=np.linspace(0.5, 1.5, K))
        t = rng.integers(0, K, size=N_RW)
    _check_all(client, obj, t, p, w, chunk, f"{case} chunk={chunk}")
    if chunk == 333:
        _check_all(client, obj, t, p, None, chunk, f"{case} chunk={chunk} unweighted")


def test_irregular_chunks_and_chunked_class_axis(client):
    """Uneven chunks (some smaller than a block), a chunked class axis (rechunked), NumPy
    y_true beside a dask y_pred."""
    rng = np.random.default_rng(5)
    p = rng.normal(size=(N_RW, K))
    t = rng.integers(0, K, size=N_RW)
    obj = fl.CategoricalCrossEntropy(from_logits=True, class_weight=np.arange(1.0, K + 1))
    rows = (1, 2, 400, 409, 3000, 5, N_RW - 3817)
    cp = da.from_array(p, chunks=(rows, (2, 3)))
    value, grad = fld.wrap(obj).loss_gradient(t, cp)
    assert grad.chunks == (rows, (K,))
    v, g = compute(client, value, grad)
    want_v, want_g = obj.loss_gradient(t, p)
    same_bits(np.float64(v), np.float64(want_v), "value")
    same_bits(g, want_g, "gradient")
    # elementwise, chunked along both axes: outputs come back in y_pred's chunks
    obj = fl.Huber(delta=0.7)
    pe = rng.normal(size=(3001, 13))
    te = rng.normal(size=(3001, 13))
    cpe = da.from_array(pe, chunks=(700, 5))
    value, grad = fld.wrap(obj).loss_gradient(te, cpe)
    assert grad.chunks == cpe.chunks
    v, g = compute(client, value, grad)
    want_v, want_g = obj.loss_gradient(te, pe)
    same_bits(np.float64(v), np.float64(want_v), "value 2-D")
    same_bits(g, want_g, "gradient 2-D")


def test_dask_sum_is_not_bit_stable_but_fastloss_is(client):
    """The property this module exists for: dask's own sum moves with the chunking."""
    rng = np.random.default_rng(11)
    t, p = rng.normal(size=N_EW), rng.normal(size=N_EW) * 1e3
    obj = fld.MeanSquaredError()
    ours, theirs = set(), set()
    for chunk in (997, 4097, 33333, N_EW):
        ct, cp, _ = _chunked(t, p, None, chunk)
        v, d = compute(client, obj(ct, cp), ((cp - ct) ** 2).mean())
        ours.add(float(v))
        theirs.add(float(d))
    assert ours == {fl.MeanSquaredError()(t, p)}
    # (informative: dask's mean is usually not one value over these chunkings)
    print("dask.array mean over chunkings:", sorted(theirs))


def _first_chunk_error(call):
    with pytest.raises(ValueError) as info:
        call()
    return str(info.value)


@pytest.mark.parametrize("case", ["bce-probabilities", "cce-labels", "weights", "poisson-2d"])
def test_errors_in_one_chunk(client, case):
    """The in-memory call's ValueError, with the global index; a reduced loss names the first
    bad element of the whole array even when a later chunk fails too."""
    rng = np.random.default_rng(3)
    N_EW, N_RW = 100_003, 20_011
    w = None
    if case == "bce-probabilities":
        obj = fl.BinaryCrossEntropy()
        p = rng.uniform(0.01, 0.99, size=N_EW)
        t = (rng.random(N_EW) < 0.5).astype(float)
        p[54_321] = 1.5
        p[90_000] = -1.0        # a later chunk's error must not win
        later = "index 90000"
        chunk = 10_000
    elif case == "cce-labels":
        obj = fl.CategoricalCrossEntropy(from_logits=True, class_weight=np.ones(K))
        p = rng.normal(size=(N_RW, K))
        t = rng.integers(0, K, size=N_RW)
        t[7_001] = K + 3
        t[15_000] = -1
        later = "index 15000"
        chunk = 2500
    elif case == "weights":
        obj = fl.MeanSquaredError()
        p, t = rng.normal(size=N_EW), rng.normal(size=N_EW)
        w = rng.uniform(0, 1, size=N_EW)
        w[33_333] = -2.0
        p[10] = np.nan          # data NaN raises nothing
        later = None
        chunk = 4097
    else:
        obj = fl.Poisson()
        p = rng.normal(size=(N_EW // 3, 3))
        t = rng.poisson(1.0, size=p.shape).astype(float)
        t[20_000, 2] = -1.0     # y_true >= 0: its (row, column) index is global
        later = None
        chunk = 4999
    ct, cp, cw = _chunked(t, p, w, chunk)
    dobj = fld.wrap(obj)
    for method, red in (("loss", "mean"), ("loss_gradient", "mean"), ("loss", "sum"),
                        ("gradient", "mean"), ("gradient", "sum"), ("loss", "none"),
                        ("gradient_hessian", None)):
        kw = {"sample_weight": w} if red is None else {"sample_weight": w, "reduction": red}
        want = _first_chunk_error(lambda: getattr(obj, method)(t, p, **kw))
        assert "index" in want
        kw["sample_weight"] = cw
        lazy = getattr(dobj, method)(ct, cp, **kw)
        lazy = lazy if isinstance(lazy, tuple) else (lazy,)
        got = _first_chunk_error(lambda: compute(client, lazy[0]))
        if lazy[0].ndim == 0 or later is None:
            assert got == want, (method, red)
        else:
            # an output array fails with the error of the chunk that fails first
            assert got == want or later in got, (method, red, got)


def _slow(x):
    time.sleep(0.15)
    return x


def test_worker_killed_in_the_middle(client):
    rng = np.random.default_rng(9)
    n = 2_000_000
    t, p = rng.normal(size=n), rng.normal(size=n)
    obj = fl.LogCosh()
    want_v, want_g = obj.loss_gradient(t, p)
    ct, cp, _ = _chunked(t, p, None, 99_991)
    cp = cp.map_blocks(_slow, dtype=cp.dtype)
    value, grad = fld.wrap(obj).loss_gradient(ct, cp)
    futures = client.compute([value, grad])
    time.sleep(0.6)
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    os.kill(pids[victim], signal.SIGKILL)          # its nanny starts a new worker
    v, g = client.gather(futures)
    same_bits(np.float64(v), np.float64(want_v), "value after a worker died")
    same_bits(g, want_g, "gradient after a worker died")
    client.wait_for_workers(2, timeout=60)


def test_client_by_address(client):
    """A second client that knows only the scheduler's address (as to a remote cluster)."""
    rng = np.random.default_rng(2)
    t, p = rng.integers(0, K, size=N_RW), rng.normal(size=(N_RW, K))
    obj = fl.CategoricalFocal(class_weight=np.arange(1.0, K + 1))
    address = client.scheduler_info()["address"]
    with distributed.Client(address, set_as_default=False) as remote:
        cp = da.from_array(p, chunks=(1234, K))
        v, g = remote.gather(remote.compute(list(fld.wrap(obj).loss_gradient(t, cp))))
    want_v, want_g = obj.loss_gradient(t, p)
    same_bits(np.float64(v), np.float64(want_v), "value")
    same_bits(g, want_g, "gradient")


def test_worker_threads_are_the_workers_share(client):
    # each worker has one thread (of the machine's cores): its chunks run on 1 fastloss thread
    got = client.gather([client.submit(fld._threads, fl.MeanSquaredError(), pure=False,
                                       workers=[w]) for w in client.scheduler_info()["workers"]])
    assert got == [1, 1]
    # an explicit n_threads is the loss's own
    assert client.submit(fld._threads, fl.MeanSquaredError(n_threads=2)).result() == 0


def test_arguments_checked_when_the_graph_is_built():
    p = da.zeros((10, 3), chunks=5)
    obj = fld.MeanSquaredError()
    with pytest.raises(ValueError, match="y_true"):
        obj(da.zeros((10, 2)), p)
    with pytest.raises(ValueError, match="sample_weight"):
        obj(da.zeros((10, 3)), p, sample_weight=da.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        obj.loss(da.zeros((10, 3)), p, reduction="avg")
    with pytest.raises(TypeError, match="y_pred"):
        obj(da.zeros(3), da.zeros(3, dtype=complex))
    with pytest.raises(ValueError, match="y_pred"):
        fld.CategoricalCrossEntropy()(da.zeros(4, dtype=int), da.zeros(4))


def test_local_threaded_scheduler_and_functional():
    """dask's threaded scheduler where it is configured, the functional form."""
    rng = np.random.default_rng(4)
    t, p = rng.normal(size=50_000), rng.normal(size=50_000)
    ct, cp, _ = _chunked(t, p, None, 7777)
    with dask.config.set(scheduler="threads"):
        v = fld.huber(ct, cp, delta=0.5).compute()
    assert v == fl.huber(t, p, delta=0.5)


def test_a_local_cluster_by_default():
    """No client and no configured scheduler: the first call starts a LocalCluster of worker
    processes, whose client becomes the default; a configured scheduler starts nothing, nor
    does a call whose arguments are wrong; the cluster is closed at exit."""
    rc, out = run_isolated("""
    import dask, dask.array as da, distributed
    import fastloss.dask as fld

    def clients():
        try:
            return distributed.default_client()
        except ValueError:
            return None

    rng = np.random.default_rng(8)
    t, p = rng.normal(size=40_000), rng.normal(size=40_000)
    ct, cp = da.from_array(t, chunks=9_000), da.from_array(p, chunks=9_000)
    with dask.config.set(scheduler="threads"):
        v = fld.MeanSquaredError().loss(ct, cp)
    assert clients() is None and fld._local["client"] is None
    expect("bad shape", lambda: fld.MeanSquaredError().loss(ct[:5], cp), ValueError, "y_true")
    assert clients() is None and fld._local["client"] is None
    v, g = fld.MeanSquaredError().loss_gradient(ct, cp)
    client = clients()
    assert client is not None and client is fld.local_client(), client
    workers = client.scheduler_info()["workers"]
    assert len(workers) >= 1, workers
    import os
    pids = set(client.run(os.getpid).values())
    assert os.getpid() not in pids, pids           # worker processes, not threads here
    got_v, got_g = dask.compute(v, g)
    want_v, want_g = fl.MeanSquaredError().loss_gradient(t, p)
    same("value", got_v, np.float64(want_v))
    same("gradient", got_g, want_g)
    # its client closed by the user: the next call starts a fresh cluster (the old one closed)
    old_cluster = fld._local["cluster"]
    client.close()
    v = fld.MeanSquaredError().loss(ct, cp)
    assert fld._local["client"] is not client and clients() is fld._local["client"]
    assert old_cluster.status.name == "closed", old_cluster.status
    same("value again", v.compute(), np.float64(want_v))
    print("LOCAL-CLUSTER", len(workers), flush=True)
    """, timeout=240)
    assert rc == 0 and "LOCAL-CLUSTER" in out, out


def test_import_fastloss_does_not_import_dask():
    # In a fresh interpreter outside the source tree (whose uncompiled fastloss/ would shadow
    # the installed package), importing the very fastloss under test.
    rc, out = run_isolated("""
    import sys
    assert "dask" not in sys.modules and "distributed" not in sys.modules, sorted(sys.modules)
    print("NO-DASK")
    """)
    assert rc == 0 and "NO-DASK" in out, out
