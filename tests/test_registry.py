"""Every loss declared in fastloss.LOSSES, at every parameter setting its declaration names (the
defaults, then each example value on its own), in float32 and float64, against its entry in
tests/references.py -- with no list of losses here: a newly declared loss is in every test at once,
and one without a reference fails (test_every_declared_loss_has_a_reference, and each of its
cells below) with a message saying so.

Per cell: values for every reduction, with and without sample weights; gradients of the mean and
the sum against the reference and against central finite differences of the loss; hessians
against finite differences of the gradient (away from the kinks the reference names); the
methods agreeing bit for bit; bit-identical results for 1, 2 and 3 threads on a parallel-size
input; domain errors naming the argument and the index; the functional equal to the class; and
the peers the reference names, where installed.
"""
import zlib

import numpy as np
import pytest

import fastloss as fl
import references as R
from references import F32, F64, RTOL, reference_for

SETTINGS = R.settings(fl.LOSSES)          # every loss x parameter setting x form of its data
DTYPES = (F32, F64)
CELLS = [pytest.param(s, dt, id=f"{s.id}-{dt.name}") for s in SETTINGS for dt in DTYPES]
SMALL = {"elementwise": (7, 5), "rowwise": (9, 5)}
LARGE = {"elementwise": (100_003,), "rowwise": (20_011, 5)}      # run in parallel
REDUCTIONS = ("none", "sum", "mean")


def _weight_modes(s):
    # full shape and one per row for elementwise losses (2-D input); one per row for row-wise
    return (None, "full", "row") if not s.rowwise else (None, "row")


CELLS_W = [pytest.param(s, dt, wm, id=f"{s.id}-{dt.name}-w={wm}")
           for s in SETTINGS for dt in DTYPES for wm in _weight_modes(s)]


def _seed(s, dt, salt=0):
    return zlib.crc32(f"{s.id}/{dt.name}/{salt}".encode())


def _data(s, dt, shape=None, salt=0):
    """(y_true, y_pred) of the setting's kinds in dtype dt, y_pred of `shape`."""
    rng = np.random.default_rng(_seed(s, dt, salt))
    return s.data(rng, SMALL[s.cls.family] if shape is None else shape, dt)


def _weights(s, dt, mode, shape, salt=0):
    if mode is None:
        return None
    rng = np.random.default_rng(_seed(s, dt, salt + 1))
    wshape = shape if mode == "full" else shape[:1]
    return rng.uniform(0.1, 2.0, size=wshape).astype(dt)


def _as_seen(s, t, p):
    """y_true as fastloss sees it: cast to y_pred's dtype, integer labels (int64) excepted."""
    return (np.asarray(t, np.int64) if s.labels else np.asarray(t).astype(p.dtype)), p


def _ref(s, t, p):
    """The reference's values on the inputs as fastloss sees them."""
    T, P = _as_seen(s, t, p)
    return reference_for(s.name).values(dict(s.params), T, P)


def _gradient_weights(s, p, w):
    """The weights as they multiply the gradient: (n, 1) per row, or y_pred's shape."""
    if s.rowwise:
        return (np.ones(p.shape[0]) if w is None else np.asarray(w, np.float64))[:, None]
    we = np.ones(p.shape) if w is None else np.asarray(w, np.float64)
    if we.shape != p.shape:
        we = np.broadcast_to(we.reshape((-1,) + (1,) * (p.ndim - 1)), p.shape)
    return we


def _den(s, Rv, p, w):
    """The normalizer of "mean" (API.md): sum of weights, or of w * class_weight[label]."""
    wg = _gradient_weights(s, p, w)
    if s.rowwise:
        return (wg[:, 0] * Rv["dn"]).sum() if s.labels else wg.sum()
    return wg.sum()


def _expected(s, Rv, p, w, reduction):
    """Expected (loss, loss magnitude, gradient, gradient magnitude) of a reduction, float64."""
    wg = _gradient_weights(s, p, w)
    wl = wg[:, 0] if s.rowwise else wg
    per, mper = wl * Rv["l"], wl * Rv["ml"]
    den = _den(s, Rv, p, w)
    if reduction == "none":
        return per, mper, Rv["g"] * wg, Rv["mg"] * wg
    if reduction == "sum":
        return per.sum(), mper.sum(), Rv["g"] * wg, Rv["mg"] * wg
    return per.sum() / den, mper.sum() / den, Rv["g"] * wg / den, Rv["mg"] * wg / den


def _close(actual, expected, mag, dt, what, rtol=None):
    """|actual - expected| <= rtol * (|expected| + mag) + a floor for subnormal results."""
    rtol = RTOL[dt] if rtol is None else rtol
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    m = np.broadcast_to(np.asarray(mag, dtype=np.float64), e.shape)
    tol = rtol * (np.abs(e) + m) + 16 * float(np.finfo(dt).smallest_normal)
    ok = (np.abs(a - e) <= tol) | (np.isnan(a) & np.isnan(e)) | (a == e)
    if not np.all(ok):
        idx = [tuple(i) for i in np.argwhere(~ok)[:5]]
        rows = "\n".join(f"  at {i}: got {a[i]!r}, expected {e[i]!r} (tolerance {tol[i]:.3g})"
                         for i in idx)
        raise AssertionError(f"{what}: {np.count_nonzero(~ok)} of {ok.size} values differ\n{rows}")


def _same_bits(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), \
        f"{what}: not bit-identical: {a!r} vs {b!r}"


# =============================================================================================
# The table covers the registry
# =============================================================================================

def test_every_declared_loss_has_a_reference():
    missing = []
    for name, cls in fl.LOSSES.items():
        try:
            ref = reference_for(name)
        except AssertionError as exc:
            missing.append(str(exc))
            continue
        assert ref.family == cls.family, \
            f"{name}: tests/references.py says {ref.family!r}, the declaration {cls.family!r}"
        if ref.peers is None:
            assert ref.no_peer.strip(), \
                f"{name}: peers=None in tests/references.py needs no_peer='why there is none'"
        else:
            assert ref.peers and all(isinstance(p, R.Peer) for p in ref.peers), \
                f"{name}: peers must be a non-empty tuple of references.Peer (or None + no_peer)"
        for _, params in R.param_settings(cls):
            for arg, kind in cls.inputs(params).items():
                R.data_kind(kind, name)
    assert not missing, "\n".join(missing)


def test_every_data_kind_has_a_generator():
    from fastloss._registry import DATA_KINDS
    for kind in DATA_KINDS:
        R.data_kind(kind)


def test_every_setting_is_in_the_matrix():
    """The matrix holds every declared loss, at its defaults and at each example value."""
    names = {s.name for s in SETTINGS}
    assert names == set(fl.LOSSES)
    for name, cls in fl.LOSSES.items():
        labels = {s.label for s in SETTINGS if s.name == name}
        assert "default" in labels
        for p in cls.params:
            for v in p.examples:
                assert f"{p.name}={v!r}" in labels, (name, p.name, v)


def test_reference_lookup_fails_loudly():
    with pytest.raises(AssertionError, match="is declared in fastloss.LOSSES but has no NumPy "
                                             "reference in tests/references.py"):
        reference_for("no_such_loss")
    with pytest.raises(AssertionError, match="has no generator in tests/references.py"):
        R.data_kind("no_such_kind", "no_such_loss")


# =============================================================================================
# Values and gradients against the reference
# =============================================================================================

@pytest.mark.parametrize("s,dt,wmode", CELLS_W)
def test_values_and_gradients_match_the_reference(s, dt, wmode):
    t, p = _data(s, dt)
    w = _weights(s, dt, wmode, p.shape)
    Rv = _ref(s, t, p)
    obj = s.cls(**s.params)
    for red in REDUCTIONS:
        want, mwant, g, mg = _expected(s, Rv, p, w, red)
        v = obj.loss(t, p, sample_weight=w, reduction=red)
        if red == "none":
            assert isinstance(v, np.ndarray) and v.dtype == dt, (type(v), getattr(v, "dtype", None))
        else:
            assert type(v) is float, type(v)
        _close(v, want, mwant, dt, f"loss[{red}]")
        grad = obj.gradient(t, p, sample_weight=w, reduction=red)
        assert isinstance(grad, np.ndarray) and grad.dtype == dt and grad.shape == p.shape
        _close(grad, g, mg, dt, f"gradient[{red}]")
        lv, lg = obj.loss_gradient(t, p, sample_weight=w, reduction=red)
        _close(lv, want, mwant, dt, f"loss_gradient[{red}] loss")
        _close(lg, g, mg, dt, f"loss_gradient[{red}] gradient")
    gg, hh = obj.gradient_hessian(t, p, sample_weight=w)
    _, _, g, mg = _expected(s, Rv, p, w, "none")
    wh = _gradient_weights(s, p, w)
    _close(gg, g, mg, dt, "gradient_hessian gradient")
    _close(hh, Rv["h"] * wh, Rv["mh"] * wh, dt, "gradient_hessian hessian")
    if wmode is None:
        assert obj(t, p) == obj.loss(t, p)


# =============================================================================================
# Finite differences (float64, of fastloss's own loss and of the reference's)
# =============================================================================================

def _steps(s, p):
    return 1e-6 * np.maximum(1.0, np.abs(np.asarray(p, np.float64)))


def _fd(f, p, h, rowwise):
    """Central differences of a per-element (per-row) function f of y_pred: d f_i / d p_i
    (row-wise: d f_r / d p_rj, one column at a time over all rows)."""
    p = np.asarray(p, np.float64)
    if not rowwise:
        return (f(p + h) - f(p - h)) / (2 * h)
    out = np.empty_like(p)
    for j in range(p.shape[1]):
        e = np.zeros_like(p)
        e[:, j] = h[:, j]
        fp, fm = f(p + e), f(p - e)
        if fp.ndim == 2:
            fp, fm = fp[:, j], fm[:, j]
        out[:, j] = (fp - fm) / (2 * h[:, j])
    return out


def _smooth_mask(s, t, p, h):
    T, P = _as_seen(s, t, p)
    k = reference_for(s.name).kinks(dict(s.params), T, np.asarray(P, np.float64), 4 * np.max(h))
    return np.ones(p.shape, bool) if k is None else ~np.asarray(k, bool)


FD_RTOL = {F32: 3e-5, F64: 1e-6}
EPS64 = float(np.finfo(np.float64).eps)


def _fd_noise(s, values_mag, h):
    """Rounding error of a central difference: a few ulp of the differenced values over 2h
    (a row's loss is shared by the derivatives of all its elements)."""
    m = values_mag[:, None] if s.rowwise and np.ndim(values_mag) == 1 else values_mag
    return 8 * EPS64 * np.abs(m) / h


@pytest.mark.parametrize("s,dt", CELLS)
def test_gradient_matches_finite_differences(s, dt):
    """The gradients of the weighted sum and mean against central differences (float64) of
    fastloss's own per-element (per-row) loss, and of the reference's."""
    t, p = _data(s, dt, salt=2)
    w = _weights(s, dt, "row", p.shape, salt=2)
    p64, w64 = np.asarray(p, np.float64), np.asarray(w, np.float64)
    t64 = t if s.labels else np.asarray(t, np.float64)
    h = _steps(s, p64)
    smooth = _smooth_mask(s, t, p, h)
    obj = s.cls(**s.params)
    ref = reference_for(s.name)
    # d(sum of w * l)/dp by finite differences; rows (elements) are independent
    fd = _fd(lambda x: obj.loss(t64, x, sample_weight=w64, reduction="none"), p64, h, s.rowwise)
    fd_ref = _fd(lambda x: _expected(s, ref.values(dict(s.params), _as_seen(s, t64, x)[0], x),
                                     x, w64, "none")[0], p64, h, s.rowwise)
    Rv = _ref(s, t, p)
    noise = _fd_noise(s, _expected(s, Rv, p, w64, "none")[1], h)
    for red in ("sum", "mean"):
        _, _, g, mg = _expected(s, Rv, p, w64, red)
        scale = 1 / _den(s, Rv, p, w64) if red == "mean" else 1.0
        got = obj.gradient(t, p, sample_weight=w, reduction=red)
        mag = np.where(smooth, np.abs(g) + mg + noise * scale / FD_RTOL[F64], 0)
        for what, have, want, d in (
                ("fastloss's gradient vs FD of its loss", got, fd * scale, dt),
                ("fastloss's gradient vs FD of the reference's loss", got, fd_ref * scale, dt),
                ("the reference's gradient vs FD of its loss", g, fd_ref * scale, F64)):
            _close(np.where(smooth, have, 0), np.where(smooth, want, 0), mag, d,
                   f"{what} [{red}]", rtol=FD_RTOL[d])
    assert smooth.mean() > 0.5, "most elements should be away from the kinks"


@pytest.mark.parametrize("s,dt", CELLS)
def test_hessian_matches_finite_differences(s, dt):
    t, p = _data(s, dt, salt=3)
    p64 = np.asarray(p, np.float64)
    t64 = t if s.labels else np.asarray(t, np.float64)
    h = _steps(s, p64)
    smooth = _smooth_mask(s, t, p, h)
    obj = s.cls(**s.params)
    ref = reference_for(s.name)
    fd = _fd(lambda x: obj.gradient_hessian(t64, x)[0], p64, h, s.rowwise)
    fd_ref = _fd(lambda x: ref.values(dict(s.params), _as_seen(s, t64, x)[0], x)["g"],
                 p64, h, s.rowwise)
    Rv = _ref(s, t, p)
    _, hess = obj.gradient_hessian(t, p)
    mag = np.abs(Rv["h"]) + Rv["mh"] + _fd_noise(s, np.abs(Rv["g"]) + Rv["mg"], h) / FD_RTOL[F64]
    for what, got, want, d in (("fastloss's hessian vs FD of its gradient", hess, fd, dt),
                               ("fastloss's hessian vs FD of the reference gradient", hess, fd_ref, dt),
                               ("reference hessian vs FD of its gradient", Rv["h"], fd_ref, F64)):
        _close(np.where(smooth, got, 0), np.where(smooth, want, 0), np.where(smooth, mag, 0),
               d, what, rtol=FD_RTOL[d])
    assert smooth.mean() > 0.5, "most elements should be away from the kinks"


# =============================================================================================
# Methods, threads, functional: bit for bit
# =============================================================================================

@pytest.mark.parametrize("s,dt,wmode", CELLS_W)
def test_methods_agree_bit_for_bit(s, dt, wmode):
    """loss, loss_gradient and __call__ give the same loss bits; out buffers the same bits as
    returned arrays."""
    t, p = _data(s, dt, salt=4)
    w = _weights(s, dt, wmode, p.shape, salt=4)
    obj = s.cls(**s.params)
    for red in REDUCTIONS:
        lv, lg = obj.loss_gradient(t, p, sample_weight=w, reduction=red)
        _same_bits(obj.loss(t, p, sample_weight=w, reduction=red), lv, f"loss vs loss_gradient [{red}]")
        go = np.empty_like(p)
        assert obj.gradient(t, p, sample_weight=w, reduction=red, gradient_out=go) is go
        _same_bits(go, obj.gradient(t, p, sample_weight=w, reduction=red), f"gradient_out [{red}]")
    _same_bits(obj(t, p, w), obj.loss(t, p, sample_weight=w), "__call__ vs loss")
    lo = np.empty(p.shape[0] if s.rowwise else p.shape, dt)
    go, ho = np.empty_like(p), np.empty_like(p)
    lv, lg = obj.loss_gradient(t, p, sample_weight=w, reduction="none", loss_out=lo, gradient_out=go)
    assert lv is lo and lg is go
    _same_bits(lo, obj.loss(t, p, sample_weight=w, reduction="none"), "loss_out")
    _same_bits(go, obj.loss_gradient(t, p, sample_weight=w, reduction="none")[1], "gradient_out")
    gh_g, gh_h = obj.gradient_hessian(t, p, sample_weight=w)
    g2, h2 = obj.gradient_hessian(t, p, sample_weight=w, gradient_out=go, hessian_out=ho)
    assert g2 is go and h2 is ho
    _same_bits(go, gh_g, "gradient_hessian's gradient_out")
    _same_bits(ho, gh_h, "hessian_out")




# BCE on probabilities with a pos_weight once rounded its gradient differently in
# loss_gradient() than in gradient() and gradient_hessian() on the FMA builds (gcc contracted its
# x * y + z differently per loop); its math now writes each as f_fma.
CELLS_GRAD_BITS = CELLS_W


@pytest.mark.parametrize("s,dt,wmode", CELLS_GRAD_BITS)
def test_gradients_agree_bit_for_bit(s, dt, wmode):
    """gradient, loss_gradient and gradient_hessian give the same gradient bits."""
    t, p = _data(s, dt, salt=4)
    w = _weights(s, dt, wmode, p.shape, salt=4)
    obj = s.cls(**s.params)
    for red in REDUCTIONS:
        _same_bits(obj.gradient(t, p, sample_weight=w, reduction=red),
                   obj.loss_gradient(t, p, sample_weight=w, reduction=red)[1],
                   f"gradient vs loss_gradient [{red}]")
    _same_bits(obj.gradient_hessian(t, p, sample_weight=w)[0],
               obj.gradient(t, p, sample_weight=w, reduction="none"),
               "gradient_hessian vs gradient[none]")


def _all_results(obj, t, p, w):
    out = [obj(t, p), obj.loss(t, p, sample_weight=w), obj.loss(t, p, reduction="sum")]
    out += list(obj.loss_gradient(t, p, sample_weight=w))
    out += list(obj.loss_gradient(t, p, reduction="none"))
    out.append(obj.gradient(t, p, sample_weight=w, reduction="sum"))
    out += list(obj.gradient_hessian(t, p, sample_weight=w))
    return out


@pytest.mark.parametrize("s,dt", CELLS)
def test_bit_identical_for_1_2_3_threads(s, dt):
    shape = LARGE[s.cls.family]
    t, p = _data(s, dt, shape, salt=5)
    w = _weights(s, dt, "row" if s.rowwise else "full", shape, salt=5)
    base = _all_results(s.cls(**s.params, n_threads=1), t, p, w)
    assert np.isfinite(base[0])
    for nt in (2, 3):
        got = _all_results(s.cls(**s.params, n_threads=nt), t, p, w)
        for i, (a, b) in enumerate(zip(base, got)):
            _same_bits(b, a, f"n_threads={nt} vs 1, result #{i}")
    # and the large input agrees with the reference (weighted mean)
    Rv = _ref(s, t, p)
    want, mwant, _, _ = _expected(s, Rv, p, w, "mean")
    _close(base[1], want, mwant, dt, "loss[mean] on the large input")


@pytest.mark.parametrize("s,dt,wmode", CELLS_W)
def test_functional_equals_class(s, dt, wmode):
    t, p = _data(s, dt, salt=6)
    w = _weights(s, dt, wmode, p.shape, salt=6)
    obj = s.cls(**s.params)
    f = getattr(fl, s.name)
    assert f is s.cls.functional and f.__name__ == s.name
    for red in REDUCTIONS:
        _same_bits(f(t, p, sample_weight=w, reduction=red, **s.params),
                   obj.loss(t, p, sample_weight=w, reduction=red), f"functional[{red}]")
    _same_bits(f(t, p, n_threads=2, **s.params), obj(t, p), "functional, n_threads=2")


# =============================================================================================
# Domain errors
# =============================================================================================

FLOAT_CANDIDATES = [-0.5, 1.5, -1.0, 2.0, -1e-3, 1 + 1e-3, 0.0, -np.inf, np.inf, 1e6, -1e6]


def _bad_value(s, ref, arg, t, p):
    """A value the reference's domain rejects for `arg`, found among a few candidates."""
    T, P = _as_seen(s, t, p)
    if arg == "y_true" and s.labels:
        k = p.shape[1]
        cands = [-1, k, k + 7, 2**40, -2**40]
    else:
        cands = FLOAT_CANDIDATES
    for v in cands:
        tt, pp = T.copy(), P.copy()
        a = tt if arg == "y_true" else pp
        a.flat[0] = v
        mask = ref.domain(dict(s.params), tt, pp).get(arg)
        if mask is not None and np.asarray(mask).flat[0]:
            return v
    raise AssertionError(f"{s.id}: the reference declares a domain on {arg}, but none of "
                         f"{cands} lies outside it; give _bad_value a candidate that does")


def _index_text(mask, flat):
    idx = np.unravel_index(flat, np.shape(mask))
    return str(int(idx[0])) if len(idx) == 1 else str(tuple(int(i) for i in idx))


def _declares_domain(s, dt):
    ref = R.REFERENCES.get(s.name)   # (none: test_every_declared_loss_has_a_reference fails)
    return ref is not None and bool(ref.domain(dict(s.params), *_as_seen(s, *_data(s, dt))))


DOMAIN_CELLS = [pytest.param(s, dt, id=f"{s.id}-{dt.name}")
                for s in SETTINGS for dt in DTYPES if _declares_domain(s, dt)]


@pytest.mark.parametrize("s,dt", DOMAIN_CELLS)
@pytest.mark.parametrize("size", ["small", "large"])
def test_domain_errors_name_the_argument_and_the_index(s, dt, size):
    ref = reference_for(s.name)
    shape = SMALL[s.cls.family] if size == "small" else LARGE[s.cls.family]
    t, p = _data(s, dt, shape, salt=7)
    T, P = _as_seen(s, t, p)
    checked = ref.domain(dict(s.params), T, P)
    assert not any(np.any(m) for m in checked.values()), "the generated data must be valid"
    obj = s.cls(**s.params)
    for arg in checked:
        bad = _bad_value(s, ref, arg, t, p)
        n = int(np.prod(checked[arg].shape))
        for first, second in ((0, None), (n // 2, n - 1), (n - 1, None)):
            tt, pp = (t.copy(), p.copy())
            a = tt if arg == "y_true" else pp
            a.flat[first] = bad
            if second is not None:
                a.flat[second] = bad
            mask = np.asarray(ref.domain(dict(s.params), *_as_seen(s, tt, pp))[arg])
            assert np.flatnonzero(mask)[0] == first, "the reference must flag the planted value"
            text = f"index {_index_text(mask, first)}"
            for method, call in [
                    ("loss", lambda: obj.loss(tt, pp)),
                    ("loss[none]", lambda: obj.loss(tt, pp, reduction="none")),
                    ("gradient", lambda: obj.gradient(tt, pp, reduction="sum")),
                    ("loss_gradient", lambda: obj.loss_gradient(tt, pp)),
                    ("gradient_hessian", lambda: obj.gradient_hessian(tt, pp)),
                    ("functional", lambda: getattr(fl, s.name)(tt, pp, **s.params)),
                    ("threads", lambda: s.cls(**s.params, n_threads=3).loss(tt, pp))]:
                with pytest.raises(ValueError) as info:
                    call()
                msg = str(info.value)
                assert arg in msg and text in msg, \
                    f"{method}: {msg!r} should name {arg} and {text!r} (value {bad!r})"


# =============================================================================================
# Peers, where installed
# =============================================================================================

PEER_CELLS = [pytest.param(s, peer, id=f"{s.id}-{peer.name}")
              for s in SETTINGS
              for peer in ((R.REFERENCES[s.name].peers or ()) if s.name in R.REFERENCES else ())
              if peer.applies(dict(s.params), s.labels)]


@pytest.mark.parametrize("s,peer", PEER_CELLS)
def test_equals_its_peers(s, peer):
    mod = peer.load()
    if mod is None:
        pytest.skip(f"{peer.module} is not installed")
    t, p = _data(s, F64, salt=8)
    T, P = _as_seen(s, t, p)
    want = np.asarray(peer.loss(mod, dict(s.params), T, P), dtype=np.float64)
    got = s.cls(**s.params).loss(t, p, reduction=peer.reduction)
    Rv = _ref(s, t, p)
    mag = Rv["ml"] if peer.reduction == "none" else float(np.mean(Rv["ml"]))
    _close(got, want.reshape(np.shape(got)), mag, F64, f"{peer.name}", rtol=1e-9)


# Every default setting whose reference gives its exact math (`Reference.exact`).
EXACT_CELLS = [pytest.param(s, dt, id=f"{s.id}-{dt.name}") for s in SETTINGS for dt in DTYPES
               if s.label == "default" and reference_for(s.name).exact is not None]
# Max relative error allowed against the exact math (the docstrings state what is measured).
EXACT_RTOL = {F32: 2e-6, F64: 4e-15}


@pytest.mark.parametrize("s,dt", EXACT_CELLS)
def test_accuracy_against_mpmath(s, dt):
    """Loss, gradient and hessian per element against mpmath at 50 digits, over the inputs
    the reference names; where the exact value is a normal number of the dtype."""
    mpmath = pytest.importorskip("mpmath")
    ref = reference_for(s.name)
    t, p = ref.exact_inputs(s.params, dt)
    obj = s.cls(**s.params)
    loss = obj.loss(t, p, reduction="none")
    grad, hess = obj.gradient_hessian(t, p)
    tiny = 16 * float(np.finfo(dt).tiny)
    worst = {}
    with mpmath.workdps(50):
        for i in range(p.size):
            exact = ref.exact(s.params, mpmath.mpf(float(t.flat[i])), mpmath.mpf(float(p.flat[i])))
            for what, got, want in zip(("loss", "gradient", "hessian"),
                                       (loss.flat[i], grad.flat[i], hess.flat[i]), exact):
                if abs(want) >= tiny:
                    err = float(abs((mpmath.mpf(float(got)) - want) / want))
                    if err > worst.get(what, (0.0,))[0]:
                        worst[what] = (err, float(t.flat[i]), float(p.flat[i]))
    print(f"\n[{s.id} {dt.name}] max relative error vs mpmath over {p.size} points: " +
          ", ".join(f"{w} {e:.2g} (y_true={a!r}, y_pred={b!r})" for w, (e, a, b) in worst.items()))
    for what, (err, a, b) in worst.items():
        assert err <= EXACT_RTOL[dt], (
            f"{what}: relative error {err:.3g} at y_true={a!r}, y_pred={b!r}")
