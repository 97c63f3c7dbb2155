"""fastloss on dask arrays: the same losses and methods, with the same bits.

``pip install "fastloss[dask]"`` (dask[array] and distributed; never a requirement of
fastloss itself, and ``import fastloss`` does not import dask).

Every loss of `fastloss.LOSSES` is here under the same name, with the same parameters and
methods, taking ``dask.array`` inputs (or NumPy arrays, which are chunked like ``y_pred``)::

    import dask.array as da
    import fastloss.dask as fld

    loss = fld.BinaryCrossEntropy(from_logits=True)
    value, grad = loss.loss_gradient(y_true, y_pred)       # a dask scalar and a dask array
    value.compute()                                          # == the in-memory call's float

* Gradients, hessians and ``reduction="none"`` losses are dask arrays chunked like
  ``y_pred``. Row-wise losses chunk along rows only: a chunked class axis is rechunked to one
  chunk first (outputs are then chunked like that). Elementwise arrays chunked along another
  axis than the first are computed on whole trailing axes and their outputs rechunked back
  to ``y_pred``'s chunks (that moves data; chunk along the first axis to avoid it).
* Reduced losses (``"mean"``, ``"sum"``) are 0-d dask arrays (dask scalars) whose value is
  bit-for-bit the in-memory result on the same data, for every chunking and number of
  workers: each chunk's kernel call returns the partial sums of the fixed blocks of the
  global index it already computes (2,048 elements, or the rows of about 2,048 row-wise
  elements), the few blocks that straddle two chunks are recomputed from their slivers (the
  slivers move, never the chunks), and all partials are summed in block order, as the
  in-memory call does. Dask's own ``sum`` depends on the chunking. (Workers must run the
  same fastloss build and kernel variant: pin one with ``FASTLOSS_ISA`` on mixed CPUs.)
* The gradient of a mean depends on its normalizer (the sum of the weights, or of the class
  weights of the labels): it is computed first, as a reduction of its own, and the chunks'
  gradient calls wait for it.
* A bad element (a label out of range, a value outside the loss's domain, a negative
  weight) raises the in-memory call's ValueError on ``compute()``, naming the element's
  global index. A reduced loss reports the first bad element of the whole array, as the
  in-memory call; an output array reports the first bad element of the chunk that fails.
* Threads: on a ``dask.distributed`` worker, a loss with ``n_threads=None`` runs each chunk on
  as many threads as the worker has (its ``nthreads``: ``LocalCluster`` gives each worker
  its share of the machine's cores), in the worker process's one fastloss thread team --
  not on every core of the machine in every worker. (Distributed's nannies set
  ``OMP_NUM_THREADS=1`` in workers, which would otherwise mean one thread.) An explicit
  ``n_threads`` is used as given. Outside distributed (dask's threaded scheduler) the loss's
  own ``n_threads`` applies.

Where they run: on the active ``dask.distributed.Client`` -- to a ``LocalCluster`` or to a
multi-machine scheduler by address (``distributed.Client("tcp://scheduler:8786")``). Where no
client is active and no scheduler is configured (``dask.config``'s ``"scheduler"``), the first
method call starts a ``LocalCluster`` (worker processes sized by distributed to this machine's
cores, no dashboard) and a client to it, which becomes the default client of the process and
is closed at exit; `local_client()` returns it, or starts it ahead of time. To stay on dask's
threaded scheduler instead, configure it: ``dask.config.set(scheduler="threads")`` (or pass
``scheduler=`` to ``compute()``, which keeps the graph off the started cluster). Scripts that
start worker processes need the ``if __name__ == "__main__":`` guard, as with any
``LocalCluster``. Out buffers (``loss_out``, ...) are not taken: dask arrays are immutable.
"""
from __future__ import annotations

import atexit
import bisect
import logging
import threading
from typing import Optional

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("fastloss.dask needs dask: pip install \"fastloss[dask]\" "
                      "(dask[array] and distributed)") from exc

from fastloss import _entry
from fastloss import _validation as _v
from fastloss._base import Loss, _GRAD, _HESS, _LOSS
from fastloss._registry import LOSSES

__all__ = ["DaskLoss", "wrap", "local_client"]

_RED = {"none": 0, "sum": 1, "mean": 2}
_NONE, _SUM, _MEAN = 0, 1, 2
BLOCK = _entry.CHUNK_BLOCK


# ---- tasks (run on the workers) ----

def _current_worker():
    """The dask.distributed worker running this task, None outside one (or no distributed)."""
    try:
        from distributed import get_worker
        return get_worker()
    except (ImportError, ValueError):
        return None


def _threads(loss) -> int:
    """Threads for a chunk: the worker's share of cores for n_threads=None (0: the loss's)."""
    if loss.n_threads is not None:
        return 0
    worker = _current_worker()
    if worker is None:
        return 0
    nthreads = getattr(getattr(worker, "state", worker), "nthreads", None)
    return int(nthreads) if nthreads else 0


def _scale(red, den):
    return _entry.mean_scale(float(den)) if red == _MEAN else (1.0, 1.0)


def _flat(x):
    return None if x is None else np.reshape(x, -1)


def _ew_chunk(loss, wanted, red, den, t, p, w, offset, shape, w_per_row, check_w, partials):
    gscale, wpre = _scale(red, den)
    cshape = np.shape(p)
    try:
        lo, go, ho, parts = _entry.chunk_elementwise(
            loss._spec, _flat(t), _flat(p), _flat(w), wanted, red, gscale, wpre, offset,
            tuple(shape), w_per_row, check_w, partials, _threads(loss))
    except ValueError as exc:
        return None, None, None, None, exc
    return tuple(None if a is None else a.reshape(cshape) for a in (lo, go, ho)) + (parts, None)


def _rw_chunk(loss, wanted, red, den, t, p, w, offset, n_total, check_w, partials):
    gscale, wpre = _scale(red, den)
    try:
        lo, go, ho, pn, pd = _entry.chunk_rowwise(
            loss._spec, t, p, w, wanted, red, gscale, wpre, offset, n_total, check_w, partials,
            _threads(loss))
    except ValueError as exc:
        return None, None, None, None, exc
    return lo, go, ho, (pn, pd), None


def _weights_chunk(w, dtype, offset, shape):
    try:
        return _entry.chunk_weights(w, dtype, offset, tuple(shape)), None
    except ValueError as exc:
        return None, exc


def _labels_chunk(loss, t, w, dtype, k, offset, n_total):
    try:
        return _entry.chunk_label_normalizer(loss._spec, t, w, dtype, k, offset, n_total,
                                             _threads(loss)), None
    except ValueError as exc:
        return None, exc


def _outputs(dsk, cname, tok, wanted, red, nchunks, deps, dtype, layout):
    """The requested output arrays (per-element loss, gradient, hessian), each chunk picked
    from its chunk task's result; ``layout(pos)`` gives (key tail, chunks, ndim)."""
    outs = []
    for bit, pos in ((_LOSS, 0), (_GRAD, 1), (_HESS, 2)):
        if wanted & bit and (bit != _LOSS or red == _NONE):
            tail, chunks, ndim = layout(pos)
            oname = ("fastloss-%s-" % ("loss", "gradient", "hessian")[pos]) + tok
            odsk = dict(dsk)
            for i in range(nchunks):
                odsk[(oname, i) + tail] = (_pick, (cname, i), pos)
            outs.append(_array(odsk, oname, deps, chunks, dtype, ndim))
    return outs


def _pick(result, i):
    if result[-1] is not None:
        raise result[-1]
    return result[i]


def _parts_of(result):
    # only the partials (and an error) travel to the reduction, never the chunk's outputs
    return result[-2], result[-1]


def _piece(x, lo, hi, how, row_len):
    """The sliver [lo, hi) of a chunk: rows, flat elements, or per-row weights of elements."""
    if how == "rows":
        return x[lo:hi]
    if how == "flat":
        return np.reshape(x, -1)[lo:hi]
    r0, r1 = lo // row_len, (hi - 1) // row_len + 1
    return np.repeat(np.asarray(x)[r0:r1], row_len)[lo - r0 * row_len:hi - r0 * row_len]


def _cat(pieces):
    return None if pieces is None else np.concatenate(pieces)


def _ew_sliver(loss, start, shape, t, p, w):
    try:
        parts = _entry.chunk_elementwise(loss._spec, _cat(t), _cat(p), _cat(w), _LOSS, _SUM,
                                         1.0, 1.0, start, tuple(shape), False, False, True)[3]
    except ValueError as exc:
        return None, exc
    return parts[0], None


def _rw_sliver(loss, start, n_total, t, p, w):
    try:
        out = _entry.chunk_rowwise(loss._spec, _cat(t), _cat(p), _cat(w), _LOSS, _SUM, 1.0, 1.0,
                                   start, n_total, False, True)
    except ValueError as exc:
        return None, exc
    return (out[3][0], out[4][0]), None


def _weights_sliver(w, dtype, start, shape):
    try:
        return _entry.chunk_weights(_cat(w), dtype, start, tuple(shape))[0], None
    except ValueError as exc:
        return None, exc


def _labels_sliver(loss, t, w, dtype, k, start, n_total):
    try:
        return _entry.chunk_label_normalizer(loss._spec, _cat(t), _cat(w), dtype, k, start,
                                             n_total)[0], None
    except ValueError as exc:
        return None, exc


def _first_error(results, pos=-1):
    """The error the in-memory call raises first: weights are checked before the kernel."""
    errors = [r[pos] for r in results if r[pos] is not None]
    for e in errors:
        if str(e).startswith("sample_weight"):
            raise e
    if errors:
        raise errors[0]


def _total(blocks, results, slivers, part=None):
    """Partials of the chunks and slivers, in block order, summed as partials_finish does."""
    get = (lambda x: x) if part is None else (lambda x: x[part])
    return _entry.ordered_sum(blocks.assemble([get(r[-2]) for r in results],
                                              [get(s[0]) for s in slivers]))


def _den_task(red, wplan, wres, wsl, row_len, lplan, lres, lsl, overflow_name):
    """The mean's normalizer, with the in-memory call's checks in its order."""
    den = None
    if wplan is not None:
        _first_error(wres)
        den = _total(wplan, wres, wsl) * row_len
        if red == _MEAN and den == 0:
            _v.zero_weights()
    if lplan is not None:
        _first_error(lres)
        den = _total(lplan, lres, lsl)
    if red == _MEAN and den == np.inf:
        _v.mean_normalizer_overflow(overflow_name)
    return np.float64(den)


def _ew_value(red, den, plan, results, slivers):
    _first_error(results)
    _first_error(slivers)
    lsum = _total(plan, results, slivers)
    if red == _SUM:
        return np.float64(lsum)
    return np.float64(lsum / den if den > 0 else np.nan)


def _rw_value(red, plan, results, slivers, overflow_name):
    _first_error(results)
    _first_error(slivers)
    num = _total(plan, results, slivers, 0)
    den = _total(plan, results, slivers, 1)
    if red == _SUM:
        return np.float64(num)
    if den == np.inf:
        _v.mean_normalizer_overflow(overflow_name)
    return np.float64(num / den if den > 0 else np.nan)


# ---- where graphs run (on the client) ----

_local = {"client": None, "cluster": None}
_local_lock = threading.Lock()


def _active_client():
    """The current distributed client, None where there is none (or no distributed)."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def local_client(**cluster_options):
    """The client of the ``LocalCluster`` fastloss.dask runs on by default, started if needed.

    Started once per process (worker processes sized by ``distributed`` to this machine's
    cores unless ``cluster_options`` say otherwise, e.g. ``n_workers=2,
    threads_per_worker=1``), set as the process's default client, and closed at exit.
    fastloss.dask's methods call it only where no client is active and no scheduler is
    configured; called directly, it starts the cluster (if not yet running) whatever else is
    active, and its client becomes the default.

    Returns
    -------
    distributed.Client

    Examples
    --------
    >>> import fastloss.dask as fld                           # doctest: +SKIP
    >>> client = fld.local_client(n_workers=2, threads_per_worker=1)  # doctest: +SKIP
    """
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - the extra brings distributed
        raise ImportError("fastloss.dask's LocalCluster needs distributed: "
                          "pip install \"fastloss[dask]\"") from exc
    with _local_lock:
        client = _local["client"]
        if client is not None and client.status not in ("closing", "closed"):
            return client
        if _local["cluster"] is not None:      # its client was closed: close it too
            try:
                _local["cluster"].close()
            except Exception:  # pragma: no cover - already gone
                pass
        options = {"processes": True, "dashboard_address": None,
                   "silence_logs": logging.ERROR}
        options.update(cluster_options)
        cluster = distributed.LocalCluster(**options)
        client = distributed.Client(cluster, set_as_default=True)
        if not _local.get("atexit"):
            atexit.register(_close_local)
            _local["atexit"] = True
        _local.update(client=client, cluster=cluster)
        return client


def _close_local():
    with _local_lock:
        client, cluster = _local["client"], _local["cluster"]
        _local.update(client=None, cluster=None)
    for obj in (client, cluster):
        if obj is not None:
            try:
                obj.close()
            except Exception:  # pragma: no cover - best effort at interpreter exit
                pass


def _ensure_cluster():
    """A LocalCluster by default: started where no client is active, no scheduler is
    configured, and this is not a task on a worker (nested graphs run where they are)."""
    if dask.config.get("scheduler", None) is not None or _active_client() is not None:
        return
    if _current_worker() is not None:
        return
    local_client()


# ---- planning (on the client) ----

class _Blocks:
    """How the fixed blocks of a global index (elements or rows) fall on the chunks.

    Blocks wholly inside a chunk take that chunk's partial; the others ("straddling") are
    recomputed from the slivers of the chunks they touch.
    """

    def __init__(self, bounds, size: int, total: int):
        self.bounds, self.size, self.total = bounds, size, total
        self.nb = -(-total // size)
        self.starts = [a for a, _ in bounds]
        self.first, self.keep = [], []
        straddle = set()
        for a, b in bounds:
            if b <= a:
                self.first.append(0)
                self.keep.append((0, 0))
                continue
            g0, nb = a // size, (a % size + b - a + size - 1) // size
            lo = 0 if a % size == 0 else 1
            hi = nb if (b % size == 0 or b == total) else nb - 1
            if lo == 1:
                straddle.add(g0)
            if hi == nb - 1:
                straddle.add(g0 + nb - 1)
            self.first.append(g0)
            self.keep.append((lo, max(lo, hi)))
        self.straddle = sorted(straddle)
        covered = np.zeros(self.nb, dtype=np.int64)
        for g0, (lo, hi) in zip(self.first, self.keep):
            covered[g0 + lo:g0 + hi] += 1
        covered[self.straddle] += 1
        if self.nb and not (covered == 1).all():  # pragma: no cover - a planning bug
            raise AssertionError("fastloss.dask: blocks not covered exactly once")

    def pieces(self, g):
        """(chunk, local start, local stop) of every chunk block g's elements lie in."""
        s, e = g * self.size, min((g + 1) * self.size, self.total)
        i = max(0, bisect.bisect_right(self.starts, s) - 1)
        out = []
        while i < len(self.bounds) and self.bounds[i][0] < e:
            a, b = self.bounds[i]
            if b > s and b > a:
                out.append((i, max(a, s) - a, min(b, e) - a))
            i += 1
        return out

    def assemble(self, parts, sliver_parts):
        out = np.empty(self.nb)
        for g0, (lo, hi), p in zip(self.first, self.keep, parts):
            if hi > lo:
                out[g0 + lo:g0 + hi] = p[lo:hi]
        out[self.straddle] = np.asarray(sliver_parts, dtype=np.float64).reshape(-1)
        return out


def _slivers(dsk, name, blocks, sources):
    """Piece tasks (on the chunks' workers) of every straddling block; per block, per source,
    the list of piece keys (None for an absent source)."""
    out = []
    for g in blocks.straddle:
        per = []
        for si, src in enumerate(sources):
            if src is None:
                per.append(None)
                continue
            keys, how, row_len = src
            pk = []
            for i, lo, hi in blocks.pieces(g):
                k = (name + "-piece", g, i, si)
                dsk[k] = (_piece, keys[i], lo, hi, how, row_len)
                pk.append(k)
            per.append(pk)
        out.append(per)
    return out


def _array(dsk, name, deps, chunks, dtype, ndim):
    hlg = HighLevelGraph.from_collections(name, dsk, dependencies=[d for d in deps if d is not None])
    return da.Array(hlg, name, chunks=chunks, meta=np.empty((0,) * ndim, dtype=dtype))


def _as_dask(x, name: str, like: Optional[da.Array] = None):
    if isinstance(x, da.Array):
        arr = x
    else:
        if isinstance(x, np.ma.MaskedArray):
            _v._real_array(x, name)      # the masked-array TypeError
        arr = np.asarray(x)
        arr = da.from_array(arr, chunks=like.chunks if like is not None and arr.shape == like.shape
                            else "auto")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers (bool, integer or floating dtype), got "
                        f"dtype {arr.dtype}")
    if any(np.isnan(c) for cs in arr.chunks for c in cs):
        raise ValueError(f"{name}: its chunk sizes are unknown; call {name}.compute_chunk_sizes() "
                         "first")
    return arr


def _out_dtype(p):
    return p.dtype if p.dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _keys(arr):
    """The chunk keys along the first axis (the other axes are one chunk each)."""
    return [(arr.name, i) + (0,) * (arr.ndim - 1) for i in range(arr.numblocks[0])]


class DaskLoss:
    """A fastloss loss over dask arrays: `wrap(loss)`, or ``fastloss.dask.<ClassName>(...)``.

    Methods as `fastloss.Loss`'s, without out buffers; see the module docstring.
    """

    __slots__ = ("_loss",)

    def __init__(self, loss: Loss):
        if not isinstance(loss, Loss):
            raise TypeError(f"loss: expected a fastloss loss object, got {type(loss).__name__}")
        object.__setattr__(self, "_loss", loss)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} objects are immutable")

    def __reduce__(self):
        return wrap, (self._loss,)

    def __repr__(self):
        return f"fastloss.dask.wrap({self._loss!r})"

    @property
    def loss_object(self) -> Loss:
        """The in-memory loss object every chunk runs."""
        return self._loss

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The mean loss, a dask scalar."""
        return self._run(y_true, y_pred, sample_weight, "mean", _LOSS)

    def loss(self, y_true, y_pred, *, sample_weight=None, reduction="mean"):
        """A dask scalar for "mean"/"sum"; a dask array chunked like y_pred for "none"."""
        return self._run(y_true, y_pred, sample_weight, reduction, _LOSS)

    def gradient(self, y_true, y_pred, *, sample_weight=None, reduction="mean"):
        """The gradient of ``loss(..., reduction)``, a dask array chunked like y_pred."""
        return self._run(y_true, y_pred, sample_weight, reduction, _GRAD)

    def loss_gradient(self, y_true, y_pred, *, sample_weight=None, reduction="mean"):
        """``(loss, gradient)`` from one kernel pass per chunk."""
        return self._run(y_true, y_pred, sample_weight, reduction, _LOSS | _GRAD)

    def gradient_hessian(self, y_true, y_pred, *, sample_weight=None):
        """Per-element gradient and hessian (as reduction="none"), dask arrays."""
        return self._run(y_true, y_pred, sample_weight, "none", _GRAD | _HESS)

    # ---- graph construction ----

    def _run(self, y_true, y_pred, sample_weight, reduction, wanted):
        if not isinstance(reduction, str) or reduction not in _RED:
            _v.bad_reduction(reduction)
        red = _NONE if wanted & _HESS else _RED[reduction]
        p = _as_dask(y_pred, "y_pred")
        t = _as_dask(y_true, "y_true", p)
        w = None if sample_weight is None else _as_dask(sample_weight, "sample_weight", p)
        if self._loss.family == "rowwise":
            out = self._rowwise(t, p, w, red, wanted)
        else:
            out = self._elementwise(t, p, w, red, wanted)
        _ensure_cluster()      # after the checks: a bad call starts nothing
        return out

    def _elementwise(self, t, p, w, red, wanted):
        loss = self._loss
        shape = p.shape
        if t.shape != shape:
            _v.shape_error("y_true", t, shape)
        w_per_row = False
        if w is not None and w.shape != shape:
            if p.ndim > 1 and w.shape == shape[:1]:
                w_per_row = True
            else:
                _v.shape_error("sample_weight", w, shape, per_row=True)
        original_chunks = p.chunks
        if p.ndim == 0:
            p, t = p.reshape(1), t.reshape(1)
            w = None if w is None else w.reshape(1)
        elif p.ndim > 1 and any(len(c) > 1 for c in p.chunks[1:]):
            p = p.rechunk({i: -1 for i in range(1, p.ndim)})
        t = t.rechunk(p.chunks)
        if w is not None:
            w = w.rechunk(p.chunks[:1] if w_per_row else p.chunks)
        n = int(np.prod(shape)) if shape else 1
        row_len = n // shape[0] if len(shape) > 1 and shape[0] > 0 else 1
        rows = np.cumsum((0,) + p.chunks[0])
        bounds = [(int(a) * row_len, int(b) * row_len) for a, b in zip(rows[:-1], rows[1:])]
        dtype = _out_dtype(p)
        tok = tokenize(loss, wanted, red, t, p, w)
        tk, pk = _keys(t), _keys(p)
        wk = None if w is None else _keys(w)

        # The normalizer of a mean: the sum of the weights (checked), times the row length.
        den, den_arr = float(n), None
        if w is not None and red == _MEAN:
            wshape = shape[:1] if w_per_row else (shape if shape else (1,))
            wbounds = [(int(a), int(b)) for a, b in zip(rows[:-1], rows[1:])] if w_per_row \
                else bounds
            wplan = _Blocks(wbounds, BLOCK, int(np.prod(wshape)))
            dname = "fastloss-normalizer-" + tok
            dsk = {(dname + "-w", i): (_weights_chunk, wk[i], dtype, a, wshape)
                   for i, (a, _) in enumerate(wbounds)}
            sl = _slivers(dsk, dname, wplan, [(wk, "rows" if w_per_row else "flat", 1)])
            for g, per in zip(wplan.straddle, sl):
                dsk[(dname + "-sliver", g)] = (_weights_sliver, per[0], dtype, g * BLOCK, wshape)
            dsk[(dname,)] = (_den_task, red, wplan, [(dname + "-w", i) for i in range(len(wbounds))],
                             [(dname + "-sliver", g) for g in wplan.straddle],
                             row_len if w_per_row else 1, None, None, None, "sample_weight")
            den = den_arr = _array(dsk, dname, [w], (), np.float64, 0)
        den_key = (den_arr.name,) if den_arr is not None else den

        partials = bool(wanted & _LOSS) and red != _NONE
        cname = "fastloss-chunk-" + tok
        dsk = {(cname, i): (_ew_chunk, loss, wanted, red, den_key, tk[i], pk[i],
                            None if wk is None else wk[i], bounds[i][0], shape, w_per_row,
                            w is not None and red != _MEAN, partials)
               for i in range(len(bounds))}
        deps = [t, p, w, den_arr]
        outs = []
        for arr in _outputs(dsk, cname, tok, wanted, red, len(bounds), deps, dtype,
                            lambda pos: ((0,) * (p.ndim - 1), p.chunks, p.ndim)):
            if len(shape) == 0:
                arr = arr.reshape(())
            elif arr.chunks != original_chunks:
                arr = arr.rechunk(original_chunks)
            outs.append(arr)
        if partials:
            plan = _Blocks(bounds, BLOCK, n)
            vname = "fastloss-value-" + tok
            vdsk = dict(dsk)
            flat = (pk, "flat", 1)
            wsrc = None if wk is None else (wk, "rowweights" if w_per_row else "flat", row_len)
            sl = _slivers(vdsk, vname, plan, [(tk, "flat", 1), flat, wsrc])
            for g, per in zip(plan.straddle, sl):
                vdsk[(vname + "-sliver", g)] = (_ew_sliver, loss, g * BLOCK,
                                                shape if shape else (1,), *per)
            for i in range(len(bounds)):
                vdsk[(vname + "-parts", i)] = (_parts_of, (cname, i))
            vdsk[(vname,)] = (_ew_value, red, den_key, plan,
                              [(vname + "-parts", i) for i in range(len(bounds))],
                              [(vname + "-sliver", g) for g in plan.straddle])
            outs.insert(0, _array(vdsk, vname, deps, (), np.float64, 0))
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _rowwise(self, t, p, w, red, wanted):
        loss = self._loss
        info = _entry.spec_info(loss._spec)
        if p.ndim != 2 or p.shape[1] == 0:
            _v.rowwise_shape_error(p)
        n, k = p.shape
        if len(p.chunks[1]) > 1:
            p = p.rechunk({1: -1})
        labels = info["labels"] and t.dtype.kind in "biu"
        if labels:
            if t.shape != (n,):
                _v.shape_error("y_true", t, (n,), labels=True)
            t = t.rechunk((p.chunks[0],))
        elif not info["dense"]:
            _v.labels_only(info["loss_name"], t, n)
        else:
            if t.shape != p.shape:
                _v.shape_error("y_true", t, p.shape, labels=info["labels"])
            t = t.rechunk(p.chunks)
        if w is not None:
            if w.shape != (n,):
                _v.shape_error("sample_weight", w, (n,), rowwise=p.shape)
            w = w.rechunk((p.chunks[0],))
        rows = np.cumsum((0,) + p.chunks[0])
        bounds = [(int(a), int(b)) for a, b in zip(rows[:-1], rows[1:])]
        dtype = _out_dtype(p)
        tok = tokenize(loss, wanted, red, t, p, w)
        tk, pk = _keys(t), _keys(p)
        wk = None if w is None else _keys(w)
        overflow = "class_weight" if info["class_weight"] else "sample_weight"
        need_labels = (red == _MEAN and wanted & _GRAD and labels and not info["rows_mean"]
                       and (info["class_weight"] or info["has_ignore"] or w is not None))

        den, den_arr = float(n), None
        if (w is not None and red == _MEAN) or need_labels:
            dname = "fastloss-normalizer-" + tok
            dsk = {}
            wplan = _Blocks(bounds, BLOCK, n)
            wres, wsl = [], []
            if w is not None:
                for i, (a, _) in enumerate(bounds):
                    dsk[(dname + "-w", i)] = (_weights_chunk, wk[i], dtype, a, (n,))
                for g, per in zip(wplan.straddle, _slivers(dsk, dname + "-w", wplan,
                                                           [(wk, "rows", 1)])):
                    dsk[(dname + "-wsliver", g)] = (_weights_sliver, per[0], dtype, g * BLOCK, (n,))
                wres = [(dname + "-w", i) for i in range(len(bounds))]
                wsl = [(dname + "-wsliver", g) for g in wplan.straddle]
            else:
                wplan = None
            lplan = lres = lsl = None
            if need_labels:
                lplan = _Blocks(bounds, BLOCK, n)
                for i, (a, _) in enumerate(bounds):
                    dsk[(dname + "-l", i)] = (_labels_chunk, loss, tk[i],
                                              None if wk is None else wk[i], dtype, k, a, n)
                srcs = [(tk, "rows", 1), None if wk is None else (wk, "rows", 1)]
                for g, per in zip(lplan.straddle, _slivers(dsk, dname + "-l", lplan, srcs)):
                    dsk[(dname + "-lsliver", g)] = (_labels_sliver, loss, per[0], per[1], dtype, k,
                                                    g * BLOCK, n)
                lres = [(dname + "-l", i) for i in range(len(bounds))]
                lsl = [(dname + "-lsliver", g) for g in lplan.straddle]
            dsk[(dname,)] = (_den_task, red, wplan, wres, wsl, 1, lplan, lres, lsl, overflow)
            den_arr = _array(dsk, dname, [t, w], (), np.float64, 0)
        den_key = (den_arr.name,) if den_arr is not None else den

        partials = bool(wanted & _LOSS) and red != _NONE
        cname = "fastloss-chunk-" + tok
        dsk = {(cname, i): (_rw_chunk, loss, wanted, red, den_key, tk[i], pk[i],
                            None if wk is None else wk[i], bounds[i][0], n,
                            w is not None and red != _MEAN, partials)
               for i in range(len(bounds))}
        deps = [t, p, w, den_arr]
        # Per-row losses are 1-D (chunked by rows); gradients and hessians (n, k).
        outs = _outputs(dsk, cname, tok, wanted, red, len(bounds), deps, dtype,
                        lambda pos: ((0,), p.chunks, 2) if pos else ((), p.chunks[:1], 1))
        if partials:
            plan = _Blocks(bounds, _entry.rows_per_block(k), n)
            vname = "fastloss-value-" + tok
            vdsk = dict(dsk)
            srcs = [(tk, "rows", 1), (pk, "rows", 1), None if wk is None else (wk, "rows", 1)]
            for g, per in zip(plan.straddle, _slivers(vdsk, vname, plan, srcs)):
                vdsk[(vname + "-sliver", g)] = (_rw_sliver, loss, g * plan.size, n, *per)
            for i in range(len(bounds)):
                vdsk[(vname + "-parts", i)] = (_parts_of, (cname, i))
            vdsk[(vname,)] = (_rw_value, red, plan,
                              [(vname + "-parts", i) for i in range(len(bounds))],
                              [(vname + "-sliver", g) for g in plan.straddle], overflow)
            outs.insert(0, _array(vdsk, vname, deps, (), np.float64, 0))
        return outs[0] if len(outs) == 1 else tuple(outs)


def wrap(loss: Loss) -> DaskLoss:
    """The dask form of a fastloss loss object (its parameters and n_threads kept)."""
    return DaskLoss(loss)


def _dask_class(cls):
    def __init__(self, **params):
        DaskLoss.__init__(self, cls(**params))

    __init__.__signature__ = cls.__init__.__signature__
    doc = (f"`fastloss.{cls.__name__}` over dask arrays: ``fastloss.dask.{cls.__name__}(**params)``"
           f" is ``fastloss.dask.wrap(fastloss.{cls.__name__}(**params))``; see the module "
           f"docstring of fastloss.dask and `fastloss.{cls.__name__}` for the loss.")
    return type(cls.__name__, (DaskLoss,), {"__init__": __init__, "__doc__": doc,
                                            "__module__": __name__, "__slots__": ()})


def _dask_functional(cls, dcls):
    def f(y_true, y_pred, *, sample_weight=None, reduction="mean", n_threads=None, **params):
        return dcls(n_threads=n_threads, **params).loss(y_true, y_pred,
                                                        sample_weight=sample_weight,
                                                        reduction=reduction)

    f.__name__ = f.__qualname__ = cls.function
    f.__module__ = __name__
    f.__doc__ = f"``fastloss.dask.{cls.__name__}(**params, n_threads=n_threads).loss(...)``."
    return f


for _cls in LOSSES.values():
    _d = _dask_class(_cls)
    globals()[_cls.__name__] = _d
    globals()[_cls.function] = _dask_functional(_cls, _d)
    __all__ += [_cls.__name__, _cls.function]
del _cls, _d
