"""The same bits wherever the data lives (API.md, "Threads and determinism"; issue 17, item 2).

For every loss declared in fastloss.LOSSES, at every parameter setting its declaration names, in
both dtypes, with and without sample weights: every input and output buffer placed at each byte
offset within a 64-byte cache line (its dtype's alignment steps), and the data shifted by a few
leading elements (rows), must give bit for bit the results of the plainly allocated call -- so no
element takes another arithmetic path (a peeled head, a scalar tail, an alias fallback) because of
where it lies. At each placement the methods must also agree: loss() with loss_gradient()'s loss,
gradient() with loss_gradient()'s and gradient_hessian()'s gradient.
"""
import zlib

import numpy as np
import pytest

import fastloss as fl
import references as R
from references import F32, F64

SETTINGS = R.settings(fl.LOSSES)
SHAPES = {"elementwise": (203,), "rowwise": (37, 5)}    # a vector body and a ragged tail
CELLS = [pytest.param(s, dt, weighted, id=f"{s.id}-{dt.name}-{'w' if weighted else 'nw'}")
         for s in SETTINGS for dt in (F32, F64) for weighted in (False, True)]


def _placed(a, offset):
    """A copy of `a` whose data starts `offset` bytes past a 64-byte boundary."""
    a = np.ascontiguousarray(a)
    raw = np.zeros(a.nbytes + 128, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    out = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert out.ctypes.data % 64 == offset
    return out


def _empty_placed(shape, dtype, offset):
    return _placed(np.zeros(shape, dtype), offset)


def _bits(x):
    x = np.asarray(x)
    return x.view(np.uint64 if x.dtype.itemsize == 8 else np.uint32).tobytes() \
        if x.dtype.kind == "f" else x.tobytes()


def _same(a, b):
    return _bits(a) == _bits(b)


def _run_all(obj, t, p, w, offsets, dt):
    """Every method's results with inputs and outputs at the given byte offsets."""
    o_t, o_p, o_w, o_l, o_g, o_h = offsets
    t = np.asarray(t)
    t = _placed(t, o_t - o_t % t.itemsize)             # int64 labels keep their alignment
    p = _placed(p, o_p)
    w = None if w is None else _placed(w, o_w)
    loss_shape = p.shape if p.ndim == 1 or obj.family == "elementwise" else p.shape[:1]
    res = {}
    res["loss_none"] = obj.loss(t, p, sample_weight=w, reduction="none",
                                loss_out=_empty_placed(loss_shape, dt, o_l)).copy()
    res["loss_mean"] = obj.loss(t, p, sample_weight=w)
    res["loss_sum"] = obj.loss(t, p, sample_weight=w, reduction="sum")
    g_buf = _empty_placed(p.shape, dt, o_g)
    res["lg_mean"], g = obj.loss_gradient(t, p, sample_weight=w, gradient_out=g_buf)
    res["lg_grad"] = g.copy()
    res["lg_none_loss"], g2 = obj.loss_gradient(t, p, sample_weight=w, reduction="none",
                                                loss_out=_empty_placed(loss_shape, dt, o_l),
                                                gradient_out=_empty_placed(p.shape, dt, o_g))
    res["lg_none_grad"] = g2.copy()
    res["grad"] = obj.gradient(t, p, sample_weight=w,
                               gradient_out=_empty_placed(p.shape, dt, o_g)).copy()
    inplace = _placed(p, o_g)
    res["grad_in_place"] = obj.gradient(t, inplace, sample_weight=w, gradient_out=inplace).copy()
    res["grad_none"] = obj.gradient(t, p, sample_weight=w, reduction="none",
                                    gradient_out=_empty_placed(p.shape, dt, o_g)).copy()
    gh_g, gh_h = obj.gradient_hessian(t, p, sample_weight=w,
                                      gradient_out=_empty_placed(p.shape, dt, o_g),
                                      hessian_out=_empty_placed(p.shape, dt, o_h))
    res["gh_grad"], res["gh_hess"] = gh_g.copy(), gh_h.copy()
    return res


def _offset_sets(dt):
    """Byte offsets (y_true, y_pred, weights, loss_out, gradient_out, hessian_out)."""
    step = np.dtype(dt).itemsize
    offs = list(range(0, 64, step))
    rng = np.random.default_rng(7)
    sets = [tuple([o] * 6) for o in offs]                       # all at the same offset
    for _ in range(8):                                          # each its own offset
        sets.append(tuple(int(rng.choice(offs)) for _ in range(6)))
    return sets


def _case(s, dt, weighted, salt):
    """(loss object, y_true, y_pred, weights or None, y_pred's shape) of a cell."""
    rng = np.random.default_rng(zlib.crc32(f"{s.id}/{dt.name}/{salt}".encode()))
    shape = SHAPES[s.cls.family]
    t, p = s.data(rng, shape, dt)
    w = rng.uniform(0.1, 2.0, size=shape[:1]).astype(dt) if weighted else None
    return s.cls(**s.params), t, p, w, shape


@pytest.mark.parametrize("s,dt,weighted", CELLS)
def test_same_bits_at_every_buffer_offset(s, dt, weighted):
    obj, t, p, w, _ = _case(s, dt, weighted, "place")
    base = _run_all(obj, t, p, w, (0,) * 6, dt)
    for offsets in _offset_sets(dt)[1:]:
        got = _run_all(obj, t, p, w, offsets, dt)
        diff = [k for k in base if not _same(base[k], got[k])]
        assert not diff, f"{diff} differ with buffers at byte offsets {offsets}"
    # the methods agree with each other
    b = base
    pairs = [("loss_none", "lg_none_loss"), ("loss_mean", "lg_mean"),
             ("grad", "lg_grad"), ("grad", "grad_in_place"), ("grad_none", "lg_none_grad"),
             ("grad_none", "gh_grad")]
    diff = [pair for pair in pairs if not _same(b[pair[0]], b[pair[1]])]
    assert not diff, f"methods disagree: {diff}"


@pytest.mark.parametrize("s,dt,weighted", CELLS)
def test_same_bits_at_every_position(s, dt, weighted):
    """An element's (row's) results do not depend on how many elements precede it."""
    obj, t, p, w, shape = _case(s, dt, weighted, "position")
    # reduction="none" and gradient_hessian: the mean's 1/n would change with the prefix
    base_l = obj.loss(t, p, sample_weight=w, reduction="none")
    base_g, base_h = obj.gradient_hessian(t, p, sample_weight=w)
    base_lg = obj.loss_gradient(t, p, sample_weight=w, reduction="none")
    for k in (1, 2, 3, 5, 7, 8, 13, 16):
        tp, pp = s.data(np.random.default_rng(k), (k,) + shape[1:], dt)
        T = np.concatenate([tp, t]) if np.ndim(t) else t
        P = np.concatenate([pp, p])
        W = None if w is None else np.concatenate([np.ones(k, dt), w])
        l = obj.loss(T, P, sample_weight=W, reduction="none")[k:]
        g, h = obj.gradient_hessian(T, P, sample_weight=W)
        lg_l, lg_g = obj.loss_gradient(T, P, sample_weight=W, reduction="none")
        got = {"loss": (l, base_l), "gradient": (g[k:], base_g), "hessian": (h[k:], base_h),
               "lg_loss": (lg_l[k:], base_lg[0]), "lg_gradient": (lg_g[k:], base_lg[1])}
        diff = [name for name, (a, b) in got.items() if not _same(a, b)]
        assert not diff, f"{diff} differ after {k} leading elements (rows)"
