"""The test suite's one table of loss references: `REFERENCES`, keyed by the name of each loss's
functional in `fastloss.LOSSES` (``"huber"``, ``"binary_cross_entropy"``, ...).

Declaring a loss in fastloss (see fastloss/_registry.py) puts it into every test matrix at once
(tests/test_registry.py, tests/test_hardening.py); the one test-side edit a new loss needs is its
entry here. A declared loss without one makes the suite fail (`reference_for`), and so does a
declared data kind (``cls.inputs(params)``) without a generator here (`data_kind`).

An entry (`Reference`) holds, for one loss:

* ``values(params, t, p)``: independent float64 NumPy formulas -- none calls fastloss.
  ``params`` is the full parameter dict (defaults filled in); ``t`` and ``p`` are arrays as
  fastloss sees them: ``p`` in y_pred's dtype, ``t`` cast to that dtype (integer class labels,
  as int64, excepted). Elementwise losses return per-element ``l``, ``g``, ``h`` (loss, its
  derivative and second derivative w.r.t. y_pred) and ``ml``, ``mg``, ``mh``: the size of the
  terms each is made of, which sets the tolerances (cancellation between terms is judged
  against the terms, not their difference). Row-wise losses return the per-row loss ``l``,
  per-element ``g`` and ``h`` (the diagonal of each row's hessian), ``ml``/``mg``/``mh``,
  ``dn`` (a row's share of the ``"mean"`` normalizer), ``skip``/``bad`` (ignored rows, rows
  with an invalid label) and three masks of known-bug locations (``nanq``, ``anyq``,
  ``oddrow``) that tests/test_hardening.py tolerates only with its TOLERATE_KNOWN_BUGS switch.
* ``domain(params, t, p)``: ``{argument: bool mask of the elements (rows, for labels) outside
  the loss's domain}`` for each argument the loss checks (empty: nothing is checked). A
  ValueError naming the argument and the first offending index is then the contract.
* ``kinks(params, t, p, radius)``: bool mask of the ``y_pred`` elements within ``radius`` of a
  point where the loss is not twice differentiable (or a clamp switches on), or None when it is
  smooth everywhere; finite-difference checks skip those elements.
* ``peers``: other implementations (`Peer`) to compare with where they are installed, or None
  with ``no_peer`` saying why there is none.

The data generators (`DATA`) make inputs of each `fastloss._registry.DATA_KINDS` kind: well
behaved arrays for the registry matrix (``make``) and the fuzzing's ingredients (bases and
lists of special values, `specials`).

Tolerances (the references compute in float64 from the inputs as fastloss sees them):
float64: rtol 1e-10; float32: rtol 1e-6 (16 ulp), per element
``rtol * (|expected| + the term sizes)`` -- see tests/test_hardening.py's docstring.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
RTOL = {F32: 1e-6, F64: 1e-10}
QMIN = 3.720075976020836e-44       # exp(-100): below it the clamped log is constant
# torch's BCE epsilon is the float32 constant 1e-12 (in float64 computations too).
BCE_EPS = float(np.float32(1e-12))
SUB = {F64: 5e-324, F32: 1e-45}
HUGE = {F64: 1e300, F32: 1e37}     # capped so that 2*d and sums of two stay finite


# =============================================================================================
# The table's entries
# =============================================================================================

@dataclass(frozen=True)
class Peer:
    """Another implementation of a loss, compared with fastloss where ``module`` imports.

    ``loss(module, params, t, p)`` gives, in float64, the unweighted per-element (per-row)
    loss for ``reduction="none"``, or the mean for ``reduction="mean"``. ``applies(params,
    labels)`` says which settings it covers (``labels``: y_true holds integer class labels).
    """
    name: str
    module: str
    loss: Callable
    reduction: str = "none"
    applies: Callable = lambda params, labels: True

    def load(self):
        """The peer's module, or None where it is not installed."""
        try:
            return importlib.import_module(self.module)
        except ImportError:
            return None


def _no_domain(params, t, p):
    return {}


def _smooth(params, t, p, radius):
    return None


@dataclass(frozen=True)
class Reference:
    family: str                                   # "elementwise" or "rowwise", as declared
    values: Callable                              # (params, t, p) -> dict (see module doc)
    peers: Optional[Tuple[Peer, ...]]             # None: no peer, and `no_peer` says why
    no_peer: str = ""
    domain: Callable = _no_domain                 # (params, t, p) -> {argument: bad mask}
    kinks: Callable = _smooth                     # (params, t, p, radius) -> mask or None
    # Optional, for tests/test_registry.py::test_accuracy_against_mpmath: the exact math of
    # one element, (params, t, p) -> (loss, gradient, hessian) as mpmath numbers, and the
    # inputs that probe it, (params, dtype) -> (t, p) arrays (elementwise losses).
    exact: Optional[Callable] = None
    exact_inputs: Optional[Callable] = None


def reference_for(name: str) -> Reference:
    """The table's entry for the loss whose functional is ``name``; a clear failure if none."""
    try:
        return REFERENCES[name]
    except KeyError:
        raise AssertionError(
            f"loss {name!r} is declared in fastloss.LOSSES but has no NumPy reference in "
            f"tests/references.py: add REFERENCES[{name!r}] = Reference(family, values, peers "
            f"(or None with no_peer='why'), domain, kinks) there") from None


# =============================================================================================
# Shared NumPy helpers (float64)
# =============================================================================================

def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _sigmoid(x):
    """Stable logistic function: no overflow, NaN stays NaN."""
    x = _f64(x)
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _clamped_log(x):
    """PyTorch's log for probabilities: log clamped at -100; NaN stays NaN."""
    with np.errstate(all="ignore"):
        return np.maximum(np.log(_f64(x)), -100.0)


def _xlogx(t):
    """t log t with 0 log 0 = 0 and +inf for t < 0, as scipy.special.rel_entr's first term."""
    t = _f64(t)
    with np.errstate(all="ignore"):
        return np.where(t > 0, t * np.log(np.where(t > 0, t, 1)),
                        np.where(t == 0, 0.0, np.where(t < 0, np.inf, t)))


def _diff(t, p):
    """d = p - t formed in y_pred's dtype (one IEEE operation, as any implementation in that
    dtype must), and as float64."""
    with np.errstate(all="ignore"):
        d_dt = p - t
    return d_dt, _f64(d_dt)


def _terms(l, g, h):
    return dict(l=l, g=g, h=h, ml=np.abs(l), mg=np.abs(g), mh=np.abs(h))


# =============================================================================================
# Elementwise references: per-element (loss, gradient, hessian) and the size of their terms
# =============================================================================================

def ref_mean_squared_error(params, t, p):
    with np.errstate(all="ignore"):
        _, d = _diff(t, p)
        l, g = d * d, 2 * d
        h = np.where(np.isnan(d), np.nan, 2.0)
    return _terms(l, g, h)


def ref_mean_absolute_error(params, t, p):
    with np.errstate(all="ignore"):
        _, d = _diff(t, p)
        l, g = np.abs(d), np.sign(d)
        h = np.where(np.isnan(d), np.nan, 0.0)
    return _terms(l, g, h)


def ref_huber(params, t, p):
    dt = p.dtype
    delta = float(params["delta"])
    with np.errstate(all="ignore"):
        d_dt, d = _diff(t, p)
        isnan = np.isnan(d)
        inside = np.abs(d_dt) < dt.type(delta)        # the branch, in the working dtype
        l = np.where(inside, 0.5 * d * d, delta * (np.abs(d) - 0.5 * delta))
        g = np.where(inside, d, delta * np.sign(d))
        h = np.where(inside, 1.0, np.where(isnan, np.nan, 0.0))
    return _terms(l, g, h)


def ref_binary_cross_entropy(params, t, p):
    dt = p.dtype
    with np.errstate(all="ignore"):
        # Smoothed targets in the working dtype.
        e = float(params["label_smoothing"])
        y = _f64(t * dt.type(1 - e) + dt.type(e / 2))
        pw = params["pos_weight"]
        if pw is None:
            c = np.ones(p.shape)
        else:
            c = np.broadcast_to(_f64(np.asarray(pw, dtype=np.float64).astype(dt)), p.shape)
        z = _f64(p)
        lw = 1 + (c - 1) * y
        if params["from_logits"]:
            # The stable form documented in BinaryCrossEntropy's docstring (torch's, pos_weight
            # included): (1 + (pw-1) y) log1p(exp(-|z|)) + ((1-y) z if z >= 0 else -pw y z).
            sp = np.log1p(np.exp(-np.abs(z)))
            lin = np.where(z >= 0, (1 - y) * z, -c * y * z)
            l = lw * sp + lin
            sz, snz = _sigmoid(z), _sigmoid(-z)
            g = (1 - y) * sz - c * y * snz              # = (1 + (pw-1) y) sigmoid(z) - pw y
            h = lw * sz * snz
            ay = np.abs(y)
            ml = np.abs(lw * sp) + np.abs(lin) + ay * (np.abs(c - 1) * sp + np.maximum(1, c) * np.abs(z))
            mg = np.abs((1 - y) * sz) + np.abs(c * y * snz) + ay * (sz + c * snz)
            mh = (1 + 2 * np.abs(c - 1) * ay) * sz * snz
        else:
            # torch.nn.functional.binary_cross_entropy: logs clamped at -100, gradient and
            # hessian denominators at float32(1e-12).
            lp, l1p = _clamped_log(z), np.maximum(np.log1p(-z), -100.0)
            l = -(c * y * lp + (1 - y) * l1p)
            den = np.maximum(z * (1 - z), BCE_EPS)
            g = (lw * z - c * y) / den
            d1, d2 = np.maximum(z * z, BCE_EPS), np.maximum((1 - z) ** 2, BCE_EPS)
            h = c * y / d1 + (1 - y) / d2
            ay = np.abs(y)
            ml = np.abs(c * y * lp) + np.abs((1 - y) * l1p) + ay * (np.abs(c * lp) + np.abs(l1p))
            # (the last terms: a subnormal numerator, rounded to the subnormal grid of the
            # dtype, is amplified by up to 1e12 by the clamped denominator)
            sub = 4 * float(np.finfo(dt).smallest_subnormal) / RTOL[dt]
            mg = (np.abs(lw * z) + np.abs(c * y) + ay * (np.abs(c - 1) * np.abs(z) + c) + sub) / den
            mh = np.abs(c * y / d1) + np.abs((1 - y) / d2) + ay * (c / d1 + 1 / d2) + \
                sub * (1 / d1 + 1 / d2)
    return dict(l=l, g=g, h=h, ml=ml, mg=mg, mh=mh)


def ref_log_cosh(params, t, p):
    """log(cosh(d)) without overflow, to full relative precision at tiny d:
    log1p(2 sinh(|d|/2)**2) below |d| = 20, |d| - log 2 + log1p(exp(-2|d|)) above."""
    with np.errstate(all="ignore"):
        _, d = _diff(t, p)
        a = np.abs(d)
        s = np.sinh(0.5 * np.minimum(a, 20.0))
        l = np.where(a < 20, np.log1p(2 * s * s), a - np.log(2.0) + np.log1p(np.exp(-2 * a)))
        g = np.tanh(d)
        h = 1 / np.cosh(d) ** 2
        # the hessian may be formed as 1 - tanh(d)**2: judged against its terms
        return dict(l=l, g=g, h=h, ml=np.abs(l), mg=np.abs(g), mh=1 + g * g)


def exact_log_cosh(params, t, p):
    """mpmath: log cosh(d), tanh(d), sech(d)**2."""
    import mpmath
    d = p - t
    return mpmath.log(mpmath.cosh(d)), mpmath.tanh(d), mpmath.sech(d) ** 2


def exact_inputs_log_cosh(params, dtype):
    """d = +-10**x for x in [-12, 3], and 0."""
    a = np.logspace(-12, 3, 4001)
    p = np.concatenate([a, -a, [0.0]]).astype(dtype)
    return np.zeros_like(p), p



# Count and positive-target losses (log link): Poisson, Gamma, Tweedie

_HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)


def _stirling(params, y):
    """torch's full=True term: y log y - y + log(2 pi y)/2 where y > 1, else 0."""
    if not params.get("full"):
        return np.zeros_like(y)
    with np.errstate(all="ignore"):
        ys = np.where(y > 1, y, 2.0)
        return np.where(y > 1, ys * np.log(ys) - ys + 0.5 * np.log(2 * np.pi * ys), 0.0)


def ref_poisson(params, t, p):
    with np.errstate(all="ignore"):
        y, z = _f64(t), _f64(p)
        st = _stirling(params, y)
        if params["log_input"]:
            e = np.exp(z)
            if p.dtype == F32:      # exp overflows where float32's does
                e = np.where(z > 88.72283935546875, np.inf, e)
            yz = y * z
            l = np.where(np.isinf(e) & np.isinf(yz) & (yz > 0) & (y < np.inf), np.inf, e - yz)
            l = l + st
            g, h = e - y, e
            ml = np.abs(e) + np.abs(yz) + np.abs(st)
            return dict(l=l, g=g, h=h, ml=ml, mg=np.abs(e) + np.abs(y), mh=np.abs(h))
        eps = float(p.dtype.type(params["eps"]))
        m = _f64(p.dtype.type(p + p.dtype.type(eps))) if p.dtype == F32 else z + eps
        lg = np.log(m)
        l = z - y * lg + st
        g = 1 - y / m
        h = y / (m * m)
        ml = np.abs(z) + np.abs(y * lg) + np.abs(st)
        return dict(l=l, g=g, h=h, ml=ml, mg=1 + np.abs(y / m), mh=np.abs(h))


def _exp_dt(x, dt):
    """exp in float64, infinite where the dtype's exp overflows."""
    e = np.exp(x)
    return np.where(x > (88.72283935546875 if dt == F32 else 709.782712893384), np.inf, e)


def ref_gamma(params, t, p):
    with np.errstate(all="ignore"):
        y, z = _f64(t), _f64(p)
        ye = y * _exp_dt(-z, p.dtype)
        l = np.where(z > -np.inf, z + ye, ye)
        return dict(l=l, g=1 - ye, h=ye, ml=np.abs(z) + np.abs(ye), mg=1 + np.abs(ye),
                    mh=np.abs(ye))


def ref_tweedie(params, t, p):
    pw = float(params["power"])
    if pw == 1:
        return ref_poisson(dict(log_input=True, full=False, eps=1e-8), t, p)
    if pw == 2:
        return ref_gamma(params, t, p)
    with np.errstate(all="ignore"):
        y, z = _f64(t), _f64(p)
        if pw == 0:
            e = _exp_dt(z, p.dtype)
            r = e - y
            return dict(l=0.5 * r * r, g=e * r, h=e * (2 * e - y), ml=0.5 * (e + np.abs(y)) ** 2,
                        mg=e * (e + np.abs(y)), mh=e * (2 * e + np.abs(y)))
        a, b = 2 - pw, 1 - pw
        # The exponents a*z, b*z are formed in y_pred's dtype (one rounding, as any
        # implementation in that dtype must): exp amplifies their rounding by |a z|.
        ea = _exp_dt(_f64(p.dtype.type(a) * p), p.dtype)
        ebz = _f64(p.dtype.type(b) * p)
        yb = y * _exp_dt(ebz, p.dtype)
        ta, tb = ea / a, yb / b
        both = np.isinf(ea) & np.isinf(yb)
        first = z > 0
        l = np.where(both, np.where(first, ta, -tb), ta - tb)
        g = np.where(both, np.where(first, ea, -yb), ea - yb)
        h = np.where(both, np.where(first, a * ea, -b * yb), a * ea - b * yb)
        return dict(l=l, g=g, h=h, ml=np.abs(ta) + np.abs(tb), mg=np.abs(ea) + np.abs(yb),
                    mh=np.abs(a * ea) + np.abs(b * yb))


def exact_poisson(params, t, p):
    import mpmath
    e = mpmath.exp(p)
    return e - t * p, e - t, e


def exact_gamma(params, t, p):
    import mpmath
    ye = t * mpmath.exp(-p)
    return p + ye, 1 - ye, ye


def exact_tweedie(params, t, p):
    import mpmath
    pw = mpmath.mpf(params["power"])
    a, b = 2 - pw, 1 - pw
    ea, eb = mpmath.exp(a * p), t * mpmath.exp(b * p)
    return ea / a - eb / b, ea - eb, a * ea - b * eb


def _exact_inputs(ys, terms):
    """y_true in ``ys`` times z = +-10**x, x in [-8, log10(700)] (float64) or [-8, log10(80)]
    (float32), and 0 -- less the points where the loss or the gradient is a difference of
    terms within a factor 2 of each other (``terms(params, y, z)`` gives (value, size of the
    terms) of each): there an error relative to the terms, not to the value, is the claim
    (see the docstrings)."""
    def inputs(params, dtype):
        top = np.log10(700.0 if np.dtype(dtype) == F64 else 80.0)
        a = np.logspace(-8, top, 400)
        z = np.concatenate([a, -a, [0.0]])
        t = np.repeat(np.asarray(ys, dtype=np.float64), z.size).astype(dtype)
        p = np.tile(z, len(ys)).astype(dtype)
        keep = np.ones(p.size, bool)
        with np.errstate(all="ignore"):
            for value, size in terms(params, _f64(t), _f64(p)):
                keep &= ~(np.abs(value) < 0.5 * size)
        return t[keep], p[keep]
    return inputs


def _poisson_terms(params, y, z):
    e = np.exp(z)
    return [(e - y * z, e + np.abs(y * z)), (e - y, e + y)]


def _gamma_terms(params, y, z):
    ye = y * np.exp(-z)
    return [(z + ye, np.abs(z) + ye), (1 - ye, 1 + ye)]


def _tweedie_terms(params, y, z):
    pw = float(params["power"])
    a, b = 2 - pw, 1 - pw
    ea, eb = np.exp(a * z), y * np.exp(b * z)
    return [(ea / a - eb / b, np.abs(ea / a) + np.abs(eb / b)), (ea - eb, ea + eb),
            (a * ea - b * eb, np.abs(a * ea) + np.abs(b * eb))]


def _count_domain(params, t, p):
    with np.errstate(invalid="ignore"):
        out = {"y_true": _f64(t) < 0}
        if not params["log_input"]:
            out["y_pred"] = _f64(p) < 0
    return out


def _positive_domain(params, t, p):
    with np.errstate(invalid="ignore"):
        return {"y_true": _f64(t) <= 0}


def _tweedie_domain(params, t, p):
    pw = float(params["power"])
    if pw <= 0:
        return {}
    with np.errstate(invalid="ignore"):
        return {"y_true": (_f64(t) < 0) if pw < 2 else (_f64(t) <= 0)}


def _poisson_kinks(params, t, p, radius):
    if params["log_input"]:
        return None
    return _f64(p) <= radius           # the domain's edge


def _torch_poisson(torch, prm, t, p):
    return _np(torch.nn.functional.poisson_nll_loss(
        _tt(torch, p), _tt(torch, t), log_input=prm["log_input"], full=prm["full"],
        eps=prm["eps"], reduction="none"))


def _sklearn_half(cls_name, **kw):
    def loss(mod, prm, t, p):
        obj = getattr(mod, cls_name)(**{k: prm[v] for k, v in kw.items()})
        shape = np.shape(p)
        return _np(obj.loss(np.ascontiguousarray(_f64(t).ravel()),
                            np.ascontiguousarray(_f64(p).ravel()))).reshape(shape)
    return loss


def _sklearn_tweedie(mod, prm, t, p):
    return _sklearn_half("HalfTweedieLoss", power="power")(mod, prm, t, p)

def ref_quantile(params, t, p):
    """Pinball loss; gradient -q where y_true > y_pred, else 1 - q (the contract: 1 - q at the
    kink, where sklearn's PinballLoss takes -q); hessian exactly 0."""
    q = float(params["quantile"])
    with np.errstate(all="ignore"):
        _, d = _diff(t, p)
        isnan = np.isnan(d)
        l = np.where(d < 0, q * -d, (1 - q) * d)
        g = np.where(isnan, np.nan, np.where(d < 0, -q, 1 - q))
        h = np.where(isnan, np.nan, 0.0)
    return _terms(l, g, h)


def ref_smooth_l1(params, t, p):
    """torch's smooth_l1_loss: 0.5 d**2 / beta inside |d| < beta, |d| - beta/2 outside."""
    dt = p.dtype
    beta = float(params["beta"])
    with np.errstate(all="ignore"):
        d_dt, d = _diff(t, p)
        isnan = np.isnan(d)
        inside = np.abs(d_dt) < dt.type(beta)        # the branch, in the working dtype
        b = beta if beta > 0 else 1.0                 # (unused where beta == 0)
        l = np.where(inside, 0.5 * d * d / b, np.abs(d) - 0.5 * beta)
        g = np.where(inside, d / b, np.sign(d))
        h = np.where(inside, 1 / b, np.where(isnan, np.nan, 0.0))
        # |d| - beta/2 cancels near |d| = beta: judged against its terms
        ml = np.where(inside, np.abs(l), np.abs(d) + 0.5 * beta)
    return dict(l=l, g=g, h=h, ml=ml, mg=np.abs(g), mh=np.abs(h))


def _smooth_l1_kinks(params, t, p, radius):
    return np.abs(np.abs(_f64(p) - _f64(t)) - float(params["beta"])) <= radius


def ref_pseudo_huber(params, t, p):
    """delta**2 (sqrt(1 + r**2) - 1) as d**2 / (sqrt(1 + r**2) + 1), with np.hypot (no
    overflow): l = |d| * (|d| / (hypot(1, r) + 1)), g = d / hypot(1, r), h = hypot(1, r)**-3."""
    delta = float(params["delta"])
    with np.errstate(all="ignore"):
        _, d = _diff(t, p)
        a = np.abs(d)
        s = np.hypot(1.0, a / delta)
        l = a * ((a / delta) / (s + 1)) * delta
        l = np.where(np.isinf(a), np.inf, l)
        g = np.where(np.isinf(d), np.sign(d) * delta, d / s)
        h = (1 / s) ** 3
    return _terms(l, g, h)


def exact_pseudo_huber(params, t, p):
    import mpmath
    delta = mpmath.mpf(params["delta"])
    d = p - t
    s = mpmath.sqrt(1 + (d / delta) ** 2)
    # delta**2 (s - 1) written without its cancellation (which 50 digits do not absorb at
    # d = 1e-26)
    return d * d / (s + 1), d / s, s ** -3


def exact_inputs_pseudo_huber(params, dtype):
    """d = +-10**x for x in [-150, 200] (float32: [-18, 37]), and 0."""
    lo, hi = (-150, 200) if np.dtype(dtype) == F64 else (-18, 37)
    a = np.logspace(lo, hi, 3001)
    p = np.concatenate([a, -a, [0.0]]).astype(dtype)
    return np.zeros_like(p), p


def ref_mean_squared_log_error(params, t, p):
    with np.errstate(all="ignore"):
        t64, p64 = _f64(t), _f64(p)
        lt, lp = np.log1p(t64), np.log1p(p64)
        e = lp - lt
        u = 1 / (1 + p64)
        l = e * e
        g = 2 * e * u
        h = 2 * (1 - e) * u * u
        m = np.abs(lp) + np.abs(lt)                 # e cancels where y_pred ~ y_true
        return dict(l=l, g=g, h=h, ml=m * m, mg=2 * m * np.abs(u),
                    mh=2 * (1 + m) * u * u)


def _above_minus_one_domain(params, t, p):
    with np.errstate(invalid="ignore"):
        return {"y_true": np.asarray(t) <= -1, "y_pred": np.asarray(p) <= -1}


def exact_mean_squared_log_error(params, t, p):
    import mpmath
    e = mpmath.log1p(p) - mpmath.log1p(t)
    u = 1 / (1 + p)
    return e * e, 2 * e * u, 2 * (1 - e) * u * u


def exact_inputs_mean_squared_log_error(params, dtype):
    """y_true in {0, +-1e-3, 0.5, -0.5, 3, 1e6}, y_pred = -1 + 10**x and 10**x for x in
    [-12, 12] (float32: [-6, 12]), and y_pred = y_true (1 +- 10**-x) for x in [1, 15]
    (float32: [1, 7]), where e = log1p(y_pred) - log1p(y_true) cancels in the formula but
    not in the kernel's one-log1p form, and y_pred in [1e250, 1e308] (float32: [1e28, 1e38])
    over y_true = -1 + ulp and -0.9; kept where the hessian's 1 - e does not cancel
    (|1 - e| >= 1/2, in the dtype's rounding of the inputs)."""
    dt = np.dtype(dtype)
    lo = -12 if dt == F64 else -6
    x = 10.0 ** np.linspace(lo, 12, 301)
    preds = np.concatenate([(-1 + x[x < 1]), x, [0.0]]).astype(dt)
    preds = preds[preds > -1]
    rel = 10.0 ** -np.linspace(1, 15 if dt == F64 else 7, 57)
    ts, ps = [], []
    for y in (0.0, 1e-3, -1e-3, 0.5, -0.5, 3.0, 1e6):
        near = np.concatenate([y * (1 + rel), y * (1 - rel)]).astype(dt)
        near = near[(near > -1) & (near != dt.type(y))] if y != 0 else near[:0]
        ts.append(np.full(preds.size + near.size, y, dt))
        ps.append(np.concatenate([preds, near]))
    # Near the dtype's limit over 1 + y_true near 0, where the kernel's quotient is scaled.
    huge = 10.0 ** np.linspace(250, 308, 30) if dt == F64 else 10.0 ** np.linspace(28, 38, 30)
    for y in (np.nextafter(dt.type(-1), dt.type(0)), dt.type(-0.9)):
        ts.append(np.full(huge.size, y, dt))
        ps.append(huge.astype(dt))
    t, p = np.concatenate(ts), np.concatenate(ps)
    e = np.log1p(_f64(p)) - np.log1p(_f64(t))
    keep = np.abs(1 - e) >= 0.5
    return t[keep], p[keep]


# =============================================================================================
# Row-wise references: categorical cross-entropy and KL divergence share the softmax
# =============================================================================================

def _zero_dead_rows(dead, *arrays):
    """Ignored or invalid rows contribute nothing: 0 in per-row and (n, k) arrays alike."""
    return tuple(np.where(dead if a.ndim == 1 else dead[:, None], 0.0, a) for a in arrays)


def _rowwise(params, t, p, targets):
    """Per-row loss and per-element gradient/hessian (unweighted, unscaled) of a loss whose
    row is ``sum_j(target terms) - sum_j a_j log q_j``; ``targets`` gives the a_j and the
    target-only terms (see `_cce_targets`, `_kl_targets`)."""
    dt = p.dtype
    eps = float(np.finfo(dt).eps)
    z = _f64(p)
    n, k = z.shape
    logits = params["from_logits"]
    with np.errstate(all="ignore"):
        if logits:
            # log-softmax with the log-sum-exp as log1p(sum of the non-max terms), so that a
            # tiny loss (one logit far ahead) keeps its relative precision.
            m = z.max(axis=1, keepdims=True) if n else np.zeros((0, 1))
            zm = z - m
            ez = np.exp(zm)
            rows = np.arange(n)
            amax = np.argmax(z, axis=1) if n else np.zeros(0, int)
            finite_max = zm[rows, amax] == 0
            rest_terms = ez.copy()
            rest_terms[rows, amax] = 0
            rest = rest_terms.sum(axis=1)
            lse = np.where(finite_max, np.log1p(rest), np.log(ez.sum(axis=1)))[:, None]
            s = np.where(finite_max, 1 + rest, ez.sum(axis=1))[:, None]
            lq = zm - lse
            q = ez / s
            qerr = 8 * eps * (np.abs(zm) + np.abs(lse)) if dt == F32 else np.zeros_like(z)
            qerr = np.where(np.isfinite(qerr), qerr, 0.0)
        else:
            q = z
            lq = _clamped_log(z)
            qerr = np.zeros_like(z)
        a, loss, mag, dn, skip, bad = targets(params, t, lq, n, k, dt)
        big_a = a.sum(axis=1, keepdims=True)
        if logits:
            # the loss is A * lse - sum_j a_j (z_j - max z): the float32 rounding of z - max z
            # makes lse = log(sum_j q_j ...) err by sum_j q_j qerr_j (0 in float64)
            mag = mag + np.abs(big_a[:, 0]) * (q * qerr).sum(axis=1) / RTOL[dt]
        if logits:
            g = q * big_a - a
            h = big_a * q * (1 - q)
            mg = np.abs(q * big_a) * (1 + qerr / RTOL[dt]) + np.abs(a)
            mh = np.abs(big_a) * np.abs(q) * (1 + qerr / RTOL[dt])
        else:
            live = q > QMIN                          # 0 where the log is clamped
            g = np.where(live, -a / np.where(live, q, 1), 0.0)
            h = np.where(live, a / np.where(live, q * q, 1), 0.0)
            # NaN in y_pred propagates (API.md: "NaN and inf in the data propagate").
            g = np.where(np.isnan(q), np.nan, g)
            h = np.where(np.isnan(q), np.nan, h)
            mg, mh = np.abs(g), np.abs(h)
        # Where two bugs fixed since would show (test_hardening.py tolerates these masks only
        # with TOLERATE_KNOWN_BUGS): test_bug_rowwise_probabilities_nan_gradient (0 instead of
        # NaN) and test_bug_rowwise_logits_inf_max_gradient (a row whose largest logit is +inf,
        # or a one-class row holding NaN/inf, with a finite gradient/hessian, not NaN).
        nanq = np.isnan(q) & (not logits)
        if logits and n:
            odd = (z.max(axis=1) == np.inf) | ((k == 1) & ~np.isfinite(z[:, 0]))
            anyq = np.broadcast_to(odd[:, None], z.shape)
        else:
            odd = np.zeros(n, bool)
            anyq = np.zeros(z.shape, bool)
        dead = skip | bad
        loss, mag, dn, g, h, mg, mh = _zero_dead_rows(dead, loss, mag, dn, g, h, mg, mh)
    return dict(l=loss, ml=mag, g=g, h=h, mg=mg, mh=mh, dn=dn, skip=skip, bad=bad, nanq=nanq,
                anyq=anyq, oddrow=odd & ~dead)


def _labels(t):
    """Whether y_true holds integer class labels (rather than target rows)."""
    return np.asarray(t).dtype.kind in "biu"


def _bad_labels(params, t, k):
    """(ignored rows, rows whose label is outside [0, k) and not ignore_index)."""
    y = np.asarray(t, dtype=np.int64)
    ig = params.get("ignore_index")
    skip = (y == ig) if ig is not None else np.zeros(y.shape, bool)
    return skip, ~skip & ((y < 0) | (y >= k))


def _cce_targets(params, t, lq, n, k, dt):
    """a_j = w_j t_j (integer labels: torch's smoothing), the row losses and normalizers."""
    e = float(params["label_smoothing"])
    cw_param = params["class_weight"]
    cw = np.ones(k) if cw_param is None else _f64(np.asarray(cw_param, np.float64).astype(dt))
    if _labels(t):
        y = np.asarray(t, dtype=np.int64)
        skip, bad = _bad_labels(params, y, k)
        ok = ~skip & ~bad
        ys = np.where(ok, y, 0)
        e_dt, ek = float(dt.type(e)), float(dt.type(e / k))
        onehot = np.zeros((n, k))
        onehot[np.arange(n), ys] = 1.0
        cwy = cw[ys]
        a = ek * cw[None, :] + (1 - e_dt) * cwy[:, None] * onehot
        lq_y = lq[np.arange(n), ys]
        # torch: (1 - e) * nll + e/k * smoothing term (the latter only when e != 0)
        loss = -(1 - e_dt) * cwy * lq_y
        mag = np.abs(loss)
        if e != 0:
            term = ek * (cw[None, :] * lq)
            loss = loss - term.sum(axis=1)
            mag = mag + np.abs(term).sum(axis=1)
        return a, loss, mag, cwy, skip, bad
    a = _f64((t * dt.type(1 - e) + dt.type(e / k)) * cw.astype(dt))
    terms = a * lq
    return a, -terms.sum(axis=1), np.abs(terms).sum(axis=1), np.ones(n), \
        np.zeros(n, bool), np.zeros(n, bool)


def _kl_targets(params, t, lq, n, k, dt):
    """KL divergence: a = t, plus sum t log t (0 log 0 = 0)."""
    a = _f64(t)
    xl = _xlogx(a)
    terms = a * lq
    return a, xl.sum(axis=1) - terms.sum(axis=1), \
        np.abs(xl).sum(axis=1) + np.abs(terms).sum(axis=1), np.ones(n), \
        np.zeros(n, bool), np.zeros(n, bool)


def ref_categorical_cross_entropy(params, t, p):
    return _rowwise(params, t, p, _cce_targets)


def ref_kl_divergence(params, t, p):
    return _rowwise(params, t, p, _kl_targets)


# =============================================================================================
# Classification losses of the second wave: focal (binary, categorical), hinge, multi-margin
# =============================================================================================

def _focal_amp(params, u, dt):
    """Relative error allowed for u**gamma beyond a few roundings: exp(gamma log u) (gamma not
    an integer 0..4) errs by ~|gamma log u| ulp of the dtype."""
    gm = float(params["gamma"])
    if gm in (0.0, 1.0, 2.0, 3.0, 4.0):
        return np.ones(np.shape(u))
    with np.errstate(all="ignore"):
        lu = np.abs(gm * np.log(np.abs(_f64(u))))
    return 1 + np.where(np.isfinite(lu), lu, 0.0) * 4 * float(np.finfo(dt).eps) / RTOL[dt]


def _powz(u, e):
    """u**e with NumPy's rules, except 0**e = 0 for e > 0, 1 for e == 0, inf for e < 0."""
    with np.errstate(all="ignore"):
        return np.power(u, e)


def ref_binary_focal(params, t, p):
    """torchvision's sigmoid_focal_loss: a_t (1 - p_t)**gamma bce, differentiated the textbook
    way (u = 1 - p_t, u' and u'' by the chain rule), limits taken where u = 0; gamma = 0
    without alpha is BCE (see ref_binary_cross_entropy)."""
    dt = p.dtype
    gm = float(params["gamma"])
    alpha = params["alpha"]
    if gm == 0 and alpha is None:
        return ref_binary_cross_entropy(dict(params, pos_weight=None), t, p)
    e = float(params["label_smoothing"])
    with np.errstate(all="ignore"):
        y = _f64(t * dt.type(1 - e) + dt.type(e / 2))
        z = _f64(p)
        at = np.ones(z.shape) if alpha is None else alpha * y + (1 - alpha) * (1 - y)
        c = 1 - 2 * y
        if params["from_logits"]:
            s, sn = _sigmoid(z), _sigmoid(-z)
            sp = np.log1p(np.exp(-np.abs(z)))
            # hard labels at infinite logits: (1-y) z and y z take their limit 0
            lin = np.where(z >= 0, np.where(y == 1, 0.0, (1 - y) * z),
                           np.where(y == 0, 0.0, -y * z))
            B = sp + lin
            Bp = (1 - y) * s - y * sn
            Bpp = s * sn
            u = (1 - y) * s + y * sn
            du = c * s * sn
            d2u = du * (sn - s)
            # u' B and u'' B -> 0 where u' underflows (B grows only like |z|)
            duB = np.where(du == 0, 0.0, du * B)
            d2uB = np.where(du == 0, 0.0, d2u * B)
            pw, pw1, pw2 = _powz(u, gm), _powz(u, gm - 1), _powz(u, gm - 2)
            l = at * pw * B
            g = at * (gm * pw1 * duB + pw * Bp)
            h = at * (gm * (gm - 1) * pw2 * du * duB + 2 * gm * pw1 * du * Bp
                      + gm * pw1 * d2uB + pw * Bpp)
            zero = u == 0                   # u underflowed: each derivative's limit
            g = np.where(zero, at * pw * Bp, g)
            h = np.where(zero, at * pw * Bpp, h)
            # sizes of the terms (Bp: (1-y)s and y sn; u: the power's error)
            mB = np.abs(sp) + np.abs(lin)
            r = np.where(u != 0, du / np.where(u != 0, u, 1), 0.0)
            amp = _focal_amp(params, u, dt)
            ml = np.abs(at * pw) * mB * amp
            mBp = np.abs((1 - y) * s) + np.abs(y * sn)
            mg = np.abs(at * pw) * (gm * np.abs(r) * mB + mBp) * amp
            mh = np.abs(at * pw) * (gm * np.abs(gm - 1) * r * r * mB + 2 * gm * np.abs(r) * mBp
                                    + gm * np.abs(r) * (s + sn) * mB + Bpp) * amp
        else:
            lp, l1p = _clamped_log(z), np.maximum(np.log1p(-z), -100.0)
            B = -(y * lp + (1 - y) * l1p)
            q = 1 - z
            Bp = (z - y) / np.maximum(z * q, BCE_EPS)
            Bpp = y / np.maximum(z * z, BCE_EPS) + (1 - y) / np.maximum(q * q, BCE_EPS)
            u = (1 - y) * z + y * q
            pw, pw1, pw2 = _powz(u, gm), _powz(u, gm - 1), _powz(u, gm - 2)
            l = at * pw * B
            g = at * (gm * pw1 * c * B + pw * Bp)
            h = at * (gm * (gm - 1) * pw2 * c * c * B + 2 * gm * pw1 * c * Bp + pw * Bpp)
            # where u = 0 (y hard, p at the same end; B = 0 there): B / u -> 1, so the limits
            # are g = a_t u^gamma B', h = a_t (gamma c u^(gamma-1) ((gamma-1) c + 2 B') + u^gamma B'')
            zero = u == 0
            g = np.where(zero, at * pw * Bp, g)
            pw1z = np.where(gm == 0, 0.0, pw1)
            h = np.where(zero, at * (gm * c * pw1z * ((gm - 1) * c + 2 * Bp) + pw * Bpp), h)
            ay = np.abs(y)
            mB = np.abs(y * lp) + np.abs((1 - y) * l1p) + ay * (np.abs(lp) + np.abs(l1p))
            sub = 4 * float(np.finfo(dt).smallest_subnormal) / RTOL[dt]
            den = np.maximum(z * q, BCE_EPS)
            mBp = (np.abs(z) + ay + sub) / den
            mBpp = np.abs(Bpp) + sub * (1 / np.maximum(z * z, BCE_EPS) + 1 / np.maximum(q * q, BCE_EPS))
            amp = _focal_amp(params, u, dt)
            rB = np.where(u != 0, np.abs(c) * mB / np.where(u != 0, np.abs(u), 1), np.abs(c))
            ml = np.abs(at * pw) * mB * amp
            mg = np.abs(at * pw) * (gm * rB + mBp) * amp
            mh = np.abs(at) * (gm * np.abs(c * pw1z) * (np.abs(gm - 1) * rB + 2 * mBp)
                               + np.abs(pw) * mBpp) * amp
    return dict(l=l, g=g, h=h, ml=ml, mg=mg, mh=mh)


def exact_binary_focal(params, t, p):
    """mpmath: the focal loss of one element on logits and its first two derivatives by the
    chain rule in the textbook form (u = 1 - p_t, u' = (1-2y) s sn, u'' = u' (sn - s),
    bce' = s - y, bce'' = s sn), with the sigmoids and their logs formed without cancellation."""
    import mpmath
    gm = mpmath.mpf(params["gamma"])
    y, z = t, p
    s, sn = 1 / (1 + mpmath.exp(-z)), 1 / (1 + mpmath.exp(z))
    ls, lsn = -mpmath.log1p(mpmath.exp(-z)), -mpmath.log1p(mpmath.exp(z))
    u = (1 - y) * s + y * sn
    du = (1 - 2 * y) * s * sn
    d2u = du * (sn - s)
    B = -(y * ls + (1 - y) * lsn)
    Bp = (1 - y) * s - y * sn
    Bpp = s * sn
    l = u ** gm * B
    g = gm * u ** (gm - 1) * du * B + u ** gm * Bp
    h = (gm * (gm - 1) * u ** (gm - 2) * du ** 2 * B + 2 * gm * u ** (gm - 1) * du * Bp
         + gm * u ** (gm - 1) * d2u * B + u ** gm * Bpp)
    return l, g, h


def exact_inputs_binary_focal(params, dtype):
    """y_true in {0, 1, 0.3} times z = +-10**x, x in [-8, 2.85] (float32: [-8, 1.9]), and 0;
    kept where the value and its derivatives are not differences of terms within a factor 2
    (not at the minimum of the gradient or the hessian's zero crossings)."""
    top = 2.85 if np.dtype(dtype) == F64 else 1.9
    a = np.logspace(-8, top, 300)
    z = np.concatenate([a, -a, [0.0]])
    ys = [0.0, 1.0, 0.3]
    t = np.repeat(np.asarray(ys), z.size).astype(dtype)
    p = np.tile(z, len(ys)).astype(dtype)
    Rv = ref_binary_focal(dict(params), t.astype(np.float64), p.astype(np.float64))
    keep = np.ones(p.size, bool)
    for k, m in (("g", "mg"), ("h", "mh")):
        keep &= ~(np.abs(Rv[k]) < 0.5 * Rv[m])
    return t[keep], p[keep]


def ref_hinge(params, t, p):
    """max(0, margin - s y_pred) (squared: its square), s = 1 where y_true == 1 else -1;
    gradient 0 at the kink; NaN propagates."""
    margin = float(params["margin"])
    with np.errstate(all="ignore"):
        y, x = _f64(t), _f64(p)
        s = np.where(y == 1, 1.0, -1.0)
        # formed in y_pred's dtype, as the kernel: margin - s * y_pred is one rounding
        m = _f64(p.dtype.type(margin) - p.dtype.type(1) * (s.astype(p.dtype) * p))
        m = np.where(np.isnan(y), np.nan, m)
        act = m > 0
        nan = np.where(np.isnan(m), np.nan, 0.0)
        if params["squared"]:
            l = np.where(act, m * m, nan)
            g = np.where(act, -2 * s * m, nan)
            h = np.where(act, 2.0, nan)
            ml = np.where(act, (np.abs(margin) + np.abs(x)) ** 2, 0.0)
            mg = np.where(act, 2 * (np.abs(margin) + np.abs(x)), 0.0)
        else:
            l = np.where(act, m, nan)
            g = np.where(act, -s, nan)
            h = nan
            ml = np.where(act, np.abs(margin) + np.abs(x), 0.0)
            mg = np.abs(g)
    return dict(l=l, g=g, h=h, ml=ml, mg=mg, mh=np.abs(h))


def _signs_domain(params, t, p):
    """y_true in {-1, 0, 1} (NaN is not checked: it propagates)."""
    with np.errstate(invalid="ignore"):
        y = _f64(t)
        return {"y_true": ~np.isin(y, (-1.0, 0.0, 1.0)) & ~np.isnan(y)}


def _hinge_kinks(params, t, p, radius):
    y = _f64(t)
    s = np.where(y == 1, 1.0, -1.0)
    return np.abs(float(params["margin"]) - s * _f64(p)) <= radius


def _row_probs(params, p):
    """q, log q and 1 - q of each row (softmax of logits, or the probabilities), and q's
    float32 error bound (see _rowwise). 1 - q of a row's largest class is the sum of the
    other classes' terms over the total (no cancellation)."""
    dt = p.dtype
    eps = float(np.finfo(dt).eps)
    z = _f64(p)
    n, k = z.shape
    with np.errstate(all="ignore"):
        if params["from_logits"]:
            mx = z.max(axis=1, keepdims=True) if n else np.zeros((0, 1))
            zm = z - mx
            ez = np.exp(zm)
            rows = np.arange(n)
            amax = np.argmax(z, axis=1) if n else np.zeros(0, int)
            rest_terms = ez.copy()
            rest_terms[rows, amax] = 0
            rest = rest_terms.sum(axis=1)
            tot = (1 + rest)[:, None]
            lq = zm - np.log1p(rest)[:, None]
            q = ez / tot
            m = 1 - q
            m[rows, amax] = rest / (1 + rest)
            qerr = 8 * eps * (np.abs(zm) + np.abs(np.log1p(rest))[:, None]) if dt == F32 \
                else np.zeros_like(z)
            qerr = np.where(np.isfinite(qerr), qerr, 0.0)
        else:
            q = z
            lq = _clamped_log(z)
            m = 1 - z
            qerr = np.zeros_like(z)
    return q, lq, m, qerr


def ref_categorical_focal(params, t, p):
    """-sum_c a_c (1 - q_c)**gamma log q_c with a_c cross-entropy's targets (_cce_targets);
    derivatives by the chain rule through q (softmax) with f(q) = (1-q)**gamma log q:
    v_c = a_c q_c f'(q_c), g_j = q_j V - v_j; psi_c = a_c q_c (q f')'(q_c),
    h_j = q_j (1-q_j) V - q_j**2 Psi + psi_j (2 q_j - 1); on probabilities -a f' and -a f''."""
    gm = float(params["gamma"])
    if gm == 0:
        return ref_categorical_cross_entropy(params, t, p)
    dt = p.dtype
    n, k = p.shape
    q, lq, m, qerr = _row_probs(params, p)
    a, _, _, dn, skip, bad = _cce_targets(params, t, lq, n, k, dt)
    with np.errstate(all="ignore"):
        pw = _powz(m, gm)
        pw1 = np.where(m == 0, 0.0, _powz(m, gm - 1))
        pw2 = np.where(m == 0, 0.0, _powz(m, gm - 2))
        amp = _focal_amp(params, m, dt)
        if _labels(t) and float(params["label_smoothing"]) == 0:
            # one target class: the others' terms are absent (0, whatever their q), as
            # cross-entropy's reference takes the label's log q only
            only = a != 0
            pw, pw1, pw2 = (np.where(only, x, 0.0) for x in (pw, pw1, pw2))
            lq = np.where(only, lq, 0.0)
        terms = a * pw * lq
        loss = -terms.sum(axis=1)
        mag = (np.abs(terms) * amp).sum(axis=1)
        # log q / (1 - q), -1 in the limit q -> 1
        rho = np.where(m != 0, lq / np.where(m != 0, m, 1), -1.0)
        if params["from_logits"]:
            fq = a * pw * (1 - gm * q * rho)                 # a q f'(q) = a (m^g - g q m^(g-1) log q)
            V = fq.sum(axis=1, keepdims=True)
            # (q f')' = -g m^(g-1) (2 + log q) + g (g-1) q m^(g-2) log q
            psi = a * q * (-gm * pw1 * (2 + lq) + gm * (gm - 1) * q * pw1 * rho)
            Psi = psi.sum(axis=1, keepdims=True)
            g = q * V - fq
            # h_j = q m V - q^2 (Psi - psi_j) + psi_j (q - m - q^2) = ... - m^2 psi_j
            h = q * m * V - q * q * (Psi - psi) - m * m * psi
            big = (np.abs(fq) * amp).sum(axis=1, keepdims=True)
            bigpsi = np.abs(psi).sum(axis=1, keepdims=True)
            mg = (q * big + np.abs(fq) * amp) * (1 + qerr / RTOL[dt])
            mh = (q * np.abs(m) * big + q * q * bigpsi + m * m * np.abs(psi)) * amp \
                * (1 + qerr / RTOL[dt])
            Amag = (np.abs(a) * amp).sum(axis=1)
            mag = mag + Amag * (q * qerr).sum(axis=1) / RTOL[dt]
        else:
            live = q > QMIN
            invq = np.where(live, 1 / np.where(live, q, 1), 0.0)
            g = -a * pw * (invq - gm * rho)
            h = a * gm * pw1 * (2 * invq - (gm - 1) * rho) + a * pw * invq * invq
            g = np.where(np.isnan(q), np.nan, g)
            h = np.where(np.isnan(q), np.nan, h)
            mg = np.abs(a * pw) * (invq + gm * np.abs(rho)) * amp
            mh = (np.abs(a * gm * pw1) * (2 * invq + np.abs(gm - 1) * np.abs(rho))
                  + np.abs(a * pw) * invq * invq) * amp
        dead = skip | bad
        loss, mag, dn, g, h, mg, mh = _zero_dead_rows(dead, loss, mag, dn, g, h, mg, mh)
    z = _f64(p)
    if params["from_logits"] and n:
        odd = (z.max(axis=1) == np.inf) | ((k == 1) & ~np.isfinite(z[:, 0]))
    else:
        odd = np.zeros(n, bool)
    # A row whose largest logit is +inf: z - max z holds inf - inf, so the row is NaN, as in
    # NumPy, torch and CategoricalCrossEntropy (the formulas above take the limit instead).
    nan_row = odd & ~(skip | bad)
    loss = np.where(nan_row, np.nan, loss)
    g = np.where(nan_row[:, None], np.nan, g)
    h = np.where(nan_row[:, None], np.nan, h)
    return dict(l=loss, ml=mag, g=g, h=h, mg=mg, mh=mh, dn=dn, skip=skip, bad=bad,
                nanq=np.isnan(q) & (not params["from_logits"]),
                anyq=np.broadcast_to(odd[:, None], z.shape), oddrow=odd & ~dead)


def ref_multi_margin(params, t, p):
    """torch's multi_margin_loss: w_y / k * sum_{j != y} max(0, margin - x_y + x_j)**p; NaN
    propagates (where torch's kernel drops it); the mean is over rows."""
    dt = p.dtype
    x = _f64(p)
    n, k = x.shape
    margin = float(params["margin"])
    pp = int(params["p"])
    cw_param = params["class_weight"]
    cw = np.ones(k) if cw_param is None else _f64(np.asarray(cw_param, np.float64).astype(dt))
    y = np.asarray(t, dtype=np.int64)
    bad = (y < 0) | (y >= k)
    ys = np.where(bad, 0, y)
    rows = np.arange(n)
    with np.errstate(all="ignore"):
        xy = x[rows, ys][:, None]
        # (margin - x_y) + x_j in y_pred's dtype, as torch and the kernel
        base = (dt.type(margin) - p[rows, ys].astype(dt))[:, None]
        M = _f64(base + p)
        other = np.ones((n, k), bool)
        other[rows, ys] = False
        act = (M > 0) & other
        nan = np.where(np.isnan(M) & other, np.nan, 0.0)
        scale = (cw[ys] / k)[:, None]
        if pp == 1:
            terms = np.where(act, M, nan)
            gj = np.where(act, 1.0, nan)
            hj = nan
        else:
            terms = np.where(act, M * M, nan)
            gj = np.where(act, 2 * M, nan)
            hj = np.where(act, 2.0, nan)
        loss = (terms.sum(axis=1) * scale[:, 0])
        g = gj * scale
        g[rows, ys] = -gj.sum(axis=1) * scale[:, 0]
        h = hj * scale
        h[rows, ys] = hj.sum(axis=1) * scale[:, 0]
        sz = np.where(act, (np.abs(margin) + np.abs(xy) + np.abs(x)) ** pp, 0.0)
        ml = sz.sum(axis=1) * scale[:, 0]
        mgj = np.where(act, pp * (np.abs(margin) + np.abs(xy) + np.abs(x)) ** (pp - 1), 0.0) * scale
        mg = mgj.copy()
        mg[rows, ys] = mgj.sum(axis=1)
        mh = np.abs(h)
    dead = bad
    z = np.zeros(n, bool)
    return dict(l=np.where(dead, 0.0, loss), ml=np.where(dead, 0.0, ml),
                g=np.where(dead[:, None], 0.0, g), h=np.where(dead[:, None], 0.0, h),
                mg=np.where(dead[:, None], 0.0, mg), mh=np.where(dead[:, None], 0.0, mh),
                dn=np.ones(n), skip=z, bad=bad, nanq=np.zeros(x.shape, bool),
                anyq=np.zeros(x.shape, bool), oddrow=z)


def _class_labels_domain(params, t, p):
    """Integer labels must lie in [0, n_classes) (per row)."""
    y = np.asarray(t, dtype=np.int64)
    return {"y_true": (y < 0) | (y >= p.shape[1])}


def _multi_margin_kinks(params, t, p, radius):
    x = _f64(p)
    y = np.asarray(t, dtype=np.int64)
    n = x.shape[0]
    ys = np.clip(y, 0, x.shape[1] - 1)
    M = float(params["margin"]) - x[np.arange(n), ys][:, None] + x
    near = np.abs(M) <= 2 * radius
    near[np.arange(n), ys] = False
    # a kink of any class moves the label's own derivative too
    return near | near.any(axis=1, keepdims=True) & (np.arange(x.shape[1]) == ys[:, None])


def tv_focal(torch, inputs, targets, alpha=0.25, gamma=2.0, from_logits=True):
    """torchvision.ops.sigmoid_focal_loss (torchvision 0.28), reduction="none", transcribed:
    torchvision cannot be installed next to this torch (its wheel's operators fail to
    register), and the function is these lines; `from_logits=False`: the same lines on
    probabilities (binary_cross_entropy for the logits' version)."""
    F = torch.nn.functional
    if from_logits:
        p = torch.sigmoid(inputs)
        ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    else:
        p = inputs
        ce_loss = F.binary_cross_entropy(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss


def _torch_focal(torch, prm, t, p):
    """tv_focal with fastloss's parameters (its alpha=None is torchvision's alpha < 0)."""
    loss = tv_focal(torch, _tt(torch, p), _tt(torch, _smoothed(prm, t)),
                    -1 if prm["alpha"] is None else prm["alpha"], float(prm["gamma"]),
                    prm["from_logits"])
    return _np(loss)


def _torch_categorical_focal(torch, prm, t, p):
    """keras.losses.CategoricalFocalCrossentropy's formula (alpha = class weights), in torch:
    -sum t w (1 - q)**gamma log q."""
    F = torch.nn.functional
    z = _tt(torch, p)
    n, k = z.shape
    if prm["from_logits"]:
        q, lq = F.softmax(z, 1), F.log_softmax(z, 1)
    else:
        q, lq = z, torch.log(z).clamp(min=-100)
    if _labels(t):
        y = np.asarray(t, np.int64)
        ig = prm["ignore_index"]
        keep = np.ones(n, bool) if ig is None else y != ig      # ignored rows: loss 0
        tt = F.one_hot(torch.from_numpy(np.where(keep, y, 0)), k).double()
        tt = tt * _tt(torch, keep.astype(float))[:, None]
    else:
        tt = _tt(torch, t)
    e = float(prm["label_smoothing"])
    tt = tt * (1 - e) + e / k
    if _labels(t):
        tt = tt * _tt(torch, keep.astype(float))[:, None]
    if prm["class_weight"] is not None:
        tt = tt * _tt(torch, prm["class_weight"])
    return _np(-(tt * (1 - q) ** float(prm["gamma"]) * lq).sum(1))


def _torch_multi_margin(torch, prm, t, p):
    F = torch.nn.functional
    w = None if prm["class_weight"] is None else _tt(torch, prm["class_weight"])
    return _np(F.multi_margin_loss(_tt(torch, p), torch.from_numpy(np.asarray(t, np.int64)),
                                   p=int(prm["p"]), margin=float(prm["margin"]), weight=w,
                                   reduction="none"))


def _sklearn_hinge(metrics, prm, t, p):
    y = np.where(_f64(t).ravel() == 1, 1, -1)
    return float(metrics.hinge_loss(y, _f64(p).ravel(), labels=[-1, 1]))


# =============================================================================================
# Domains and kinks
# =============================================================================================

def _probabilities_domain(params, t, p):
    """BCE on probabilities checks y_pred in [0, 1] (NaN is not checked: it propagates)."""
    if params["from_logits"]:
        return {}
    with np.errstate(invalid="ignore"):
        return {"y_pred": (p < 0) | (p > 1)}


def _labels_domain(params, t, p):
    """Integer labels must lie in [0, n_classes) unless they are ignore_index (per row)."""
    if not _labels(t):
        return {}
    return {"y_true": _bad_labels(params, t, p.shape[1])[1]}


def _abs_kink(params, t, p, radius):
    return np.abs(_f64(p) - _f64(t)) <= radius


def _huber_kinks(params, t, p, radius):
    return np.abs(np.abs(_f64(p) - _f64(t)) - float(params["delta"])) <= radius


def _bce_kinks(params, t, p, radius):
    if params["from_logits"]:
        return None
    q = _f64(p)      # the clamps of the logs (exp(-100)) and of the denominators (1e-12, p**2)
    return (q <= 1e-6 + radius) | (q >= 1 - 1e-6 - radius)


def _rowwise_kinks(params, t, p, radius):
    if params["from_logits"]:
        return None
    return _f64(p) <= QMIN + radius        # the log's clamp at -100


# =============================================================================================
# Peers
# =============================================================================================

def _np(x):
    """A peer's result as a float64 NumPy array (torch tensors included)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _tt(torch, a):
    return torch.from_numpy(np.array(a, dtype=np.float64))


def _smoothed(params, t):
    e = float(params["label_smoothing"])
    return _f64(t) * (1 - e) + e / 2


def _pos_weight(params, shape):
    pw = params["pos_weight"]
    return np.ones(shape) if pw is None else np.broadcast_to(_f64(pw), shape)


def _torch_bce(torch, prm, t, p):
    F = torch.nn.functional
    y = _tt(torch, _smoothed(prm, t))
    if prm["from_logits"]:
        pw = None if prm["pos_weight"] is None else _tt(torch, np.atleast_1d(_f64(prm["pos_weight"])))
        return _np(F.binary_cross_entropy_with_logits(_tt(torch, p), y, pos_weight=pw,
                                                      reduction="none"))
    return _np(F.binary_cross_entropy(_tt(torch, p), y, reduction="none"))


def _scipy_bce(sps, prm, t, p):
    y, z = _smoothed(prm, t), _f64(p)
    pw = _pos_weight(prm, z.shape)
    if prm["from_logits"]:
        return -(pw * y * sps.log_expit(z) + (1 - y) * sps.log_expit(-z))
    return -(pw * sps.xlogy(y, z) + sps.xlog1py(1 - y, -z))


def _torch_cce(torch, prm, t, p):
    F = torch.nn.functional
    w = None if prm["class_weight"] is None else _tt(torch, prm["class_weight"])
    ig = -100 if prm["ignore_index"] is None else int(prm["ignore_index"])
    target = torch.from_numpy(np.asarray(t, np.int64)) if _labels(t) else _tt(torch, t)
    if prm["from_logits"]:
        return _np(F.cross_entropy(_tt(torch, p), target, weight=w, ignore_index=ig,
                                   reduction="none",
                                   label_smoothing=float(prm["label_smoothing"])))
    logq = torch.log(_tt(torch, p)).clamp(min=-100)
    return _np(F.nll_loss(logq, target, weight=w, ignore_index=ig, reduction="none"))


def _torch_kl(torch, prm, t, p):
    F = torch.nn.functional
    z = _tt(torch, p)
    logq = F.log_softmax(z, dim=1) if prm["from_logits"] else torch.log(z).clamp(min=-100)
    return _np(F.kl_div(logq, _tt(torch, t), reduction="none").sum(1))


def _scipy_kl(sps, prm, t, p):
    q = sps.softmax(_f64(p), axis=1) if prm["from_logits"] else _f64(p)
    return sps.rel_entr(_f64(t), q).sum(axis=1)


def _torch(fname, **kw):
    def loss(torch, prm, t, p):
        f = getattr(torch.nn.functional, fname)
        return _np(f(_tt(torch, p), _tt(torch, t), reduction="none",
                     **{k: prm[v] for k, v in kw.items()}))
    return loss


def _sklearn_pinball(L, prm, t, p):
    """sklearn._loss.loss.PinballLoss: per-element loss (its gradient, -q at the kink where
    ours is 1 - q, and its hessian 1, where ours is 0, are compared in
    tests/test_quantile_smooth_msle.py)."""
    obj = L.PinballLoss(quantile=float(prm["quantile"]))
    return obj.loss(_f64(t).ravel(), _f64(p).ravel()).reshape(np.shape(p))


def _xgboost_pseudo_huber(np_, prm, t, p):
    """XGBoost's documented reg:pseudohubererror (src/objective/regression_obj.cu,
    PseudoHuberRegression, huber_slope = delta), written out independently: loss
    slope**2 * (sqrt(1 + (d/slope)**2) - 1); its gradient and hessian are
    `xgboost_pseudo_huber_grad_hess` (tests/test_quantile_smooth_msle.py)."""
    # In np.longdouble: in float64 the formula cancels for small d (the reason fastloss
    # computes it otherwise), which would leave nothing to compare.
    slope = np.longdouble(prm["delta"])
    z = np.asarray(p, np.longdouble) - np.asarray(t, np.longdouble)
    with np.errstate(all="ignore"):
        return _f64(slope ** 2 * (np_.sqrt(1 + (z / slope) ** 2) - 1))


def xgboost_pseudo_huber_grad_hess(t, p, slope):
    """XGBoost's PseudoHuberRegression::GetGradient: z = p - y, scale_sqrt = sqrt(1 + (z/slope)**2),
    grad = z / scale_sqrt, hess = slope**2 / ((z**2 + slope**2) * scale_sqrt)."""
    z = _f64(p) - _f64(t)
    scale = 1 + (z / slope) ** 2
    scale_sqrt = np.sqrt(scale)
    return z / scale_sqrt, slope ** 2 / ((z * z + slope ** 2) * scale_sqrt)


def _sklearn(fname, **kw):
    def loss(metrics, prm, t, p):
        return float(getattr(metrics, fname)(_f64(t).ravel(), _f64(p).ravel(),
                                             **{k: prm[v] for k, v in kw.items()}))
    return loss


# =============================================================================================
# THE TABLE: one entry per loss, keyed by the name of its functional in fastloss.LOSSES
# =============================================================================================

REFERENCES: Dict[str, Reference] = {
    "mean_squared_error": Reference(
        "elementwise", ref_mean_squared_error,
        peers=(Peer("torch.nn.functional.mse_loss", "torch", _torch("mse_loss")),
               Peer("sklearn.metrics.mean_squared_error", "sklearn.metrics",
                    _sklearn("mean_squared_error"), reduction="mean"))),
    "mean_absolute_error": Reference(
        "elementwise", ref_mean_absolute_error, kinks=_abs_kink,
        peers=(Peer("torch.nn.functional.l1_loss", "torch", _torch("l1_loss")),
               Peer("sklearn.metrics.mean_absolute_error", "sklearn.metrics",
                    _sklearn("mean_absolute_error"), reduction="mean"))),
    "huber": Reference(
        "elementwise", ref_huber, kinks=_huber_kinks,
        peers=(Peer("torch.nn.functional.huber_loss", "torch", _torch("huber_loss", delta="delta")),
               Peer("scipy.special.huber", "scipy.special",
                    lambda sps, prm, t, p: sps.huber(float(prm["delta"]), _f64(p) - _f64(t))))),
    "binary_cross_entropy": Reference(
        "elementwise", ref_binary_cross_entropy, domain=_probabilities_domain, kinks=_bce_kinks,
        peers=(Peer("torch.nn.functional.binary_cross_entropy(_with_logits)", "torch", _torch_bce,
                    # torch has no pos_weight on probabilities
                    applies=lambda prm, labels: prm["from_logits"] or prm["pos_weight"] is None),
               Peer("scipy.special.log_expit / xlogy / xlog1py", "scipy.special", _scipy_bce))),
    "categorical_cross_entropy": Reference(
        "rowwise", ref_categorical_cross_entropy, domain=_labels_domain, kinks=_rowwise_kinks,
        peers=(Peer("torch.nn.functional.cross_entropy / nll_loss", "torch", _torch_cce,
                    # probabilities: nll_loss of the clamped log, labels without smoothing only
                    applies=lambda prm, labels: prm["from_logits"] or (
                        labels and prm["label_smoothing"] == 0)),)),
    "kl_divergence": Reference(
        "rowwise", ref_kl_divergence, kinks=_rowwise_kinks,
        peers=(Peer("torch.nn.functional.kl_div(..., reduction='none').sum(1)", "torch", _torch_kl),
               Peer("scipy.special.rel_entr(t, q).sum(1)", "scipy.special", _scipy_kl))),
    "log_cosh": Reference(
        "elementwise", ref_log_cosh, exact=exact_log_cosh, exact_inputs=exact_inputs_log_cosh,
        peers=(Peer("optax.losses.log_cosh", "optax",
                    lambda optax, prm, t, p: _np(optax.losses.log_cosh(_f64(p), _f64(t)))),)),
    "poisson": Reference(
        "elementwise", ref_poisson, domain=_count_domain, kinks=_poisson_kinks,
        exact=exact_poisson, exact_inputs=_exact_inputs([0.0, 0.5, 1.0, 3.0, 1e3], _poisson_terms),
        peers=(Peer("torch.nn.functional.poisson_nll_loss", "torch", _torch_poisson),
               Peer("sklearn._loss.loss.HalfPoissonLoss", "sklearn._loss.loss",
                    _sklearn_half("HalfPoissonLoss"),
                    applies=lambda prm, labels: prm["log_input"] and not prm["full"]))),
    "gamma": Reference(
        "elementwise", ref_gamma, domain=_positive_domain,
        exact=exact_gamma, exact_inputs=_exact_inputs([1e-3, 0.5, 1.0, 3.0, 1e3], _gamma_terms),
        peers=(Peer("sklearn._loss.loss.HalfGammaLoss", "sklearn._loss.loss",
                    _sklearn_half("HalfGammaLoss")),)),
    "tweedie": Reference(
        "elementwise", ref_tweedie, domain=_tweedie_domain,
        exact=exact_tweedie, exact_inputs=_exact_inputs([0.0, 0.5, 1.0, 3.0, 1e3], _tweedie_terms),
        peers=(Peer("sklearn._loss.loss.HalfTweedieLoss", "sklearn._loss.loss",
                    _sklearn_tweedie),)),
    "quantile": Reference(
        "elementwise", ref_quantile, kinks=_abs_kink,
        peers=(Peer("sklearn._loss.loss.PinballLoss", "sklearn._loss.loss", _sklearn_pinball),
               Peer("sklearn.metrics.mean_pinball_loss", "sklearn.metrics",
                    _sklearn("mean_pinball_loss", alpha="quantile"), reduction="mean"))),
    "smooth_l1": Reference(
        "elementwise", ref_smooth_l1, kinks=_smooth_l1_kinks,
        peers=(Peer("torch.nn.functional.smooth_l1_loss", "torch",
                    _torch("smooth_l1_loss", beta="beta")),)),
    "pseudo_huber": Reference(
        "elementwise", ref_pseudo_huber, exact=exact_pseudo_huber,
        exact_inputs=exact_inputs_pseudo_huber,
        peers=(Peer("XGBoost reg:pseudohubererror (documented formula)", "numpy",
                    _xgboost_pseudo_huber),)),
    "mean_squared_log_error": Reference(
        "elementwise", ref_mean_squared_log_error, domain=_above_minus_one_domain,
        exact=exact_mean_squared_log_error, exact_inputs=exact_inputs_mean_squared_log_error,
        peers=(Peer("sklearn.metrics.mean_squared_log_error", "sklearn.metrics",
                    _sklearn("mean_squared_log_error"), reduction="mean"),)),
    "binary_focal": Reference(
        "elementwise", ref_binary_focal, domain=_probabilities_domain, kinks=_bce_kinks,
        exact=exact_binary_focal, exact_inputs=exact_inputs_binary_focal,
        peers=(Peer("torchvision.ops.sigmoid_focal_loss (transcribed)", "torch", _torch_focal),)),
    "hinge": Reference(
        "elementwise", ref_hinge, domain=_signs_domain, kinks=_hinge_kinks,
        peers=(Peer("sklearn.metrics.hinge_loss", "sklearn.metrics", _sklearn_hinge,
                    reduction="mean",
                    applies=lambda prm, labels: prm["margin"] == 1 and not prm["squared"]),)),
    "categorical_focal": Reference(
        "rowwise", ref_categorical_focal, domain=_labels_domain, kinks=_rowwise_kinks,
        peers=(Peer("keras CategoricalFocalCrossentropy's formula, in torch", "torch",
                    _torch_categorical_focal),)),
    "multi_margin": Reference(
        "rowwise", ref_multi_margin, domain=_class_labels_domain, kinks=_multi_margin_kinks,
        peers=(Peer("torch.nn.functional.multi_margin_loss", "torch", _torch_multi_margin),)),
}


# =============================================================================================
# Data: generators per data kind (fastloss._registry.DATA_KINDS)
# =============================================================================================

def _make_real(rng, shape, dtype, params, form, partner):
    if partner is None or np.shape(partner) != tuple(shape) or partner.dtype.kind != "f":
        return rng.normal(size=shape).astype(dtype)
    # a prediction near its target, |d| spread from 1e-3 to ~10: both sides of any threshold
    scale = 10.0 ** rng.uniform(-3, 0.7, size=shape)
    return (_f64(partner) + rng.normal(size=shape) * scale).astype(dtype)


def _make_above_minus_one(rng, shape, dtype, params, form, partner):
    # log1p's argument: expm1 of a normal spread, in (-0.99, 20) at 3 sigma
    return np.expm1(rng.normal(size=shape)).astype(dtype)


def _make_logit(rng, shape, dtype, params, form, partner):
    return (rng.normal(size=shape) * 3).astype(dtype)


def _make_probability(rng, shape, dtype, params, form, partner):
    return rng.uniform(0.02, 0.98, size=shape).astype(dtype)


def _make_binary(rng, shape, dtype, params, form, partner):
    hard = (rng.random(shape) < 0.4).astype(np.float64)
    return np.where(rng.random(shape) < 0.5, hard, rng.random(shape)).astype(dtype)


def _soft_rows(rng, shape, dtype, zeros=0.0):
    r = rng.random(shape) ** 3
    if zeros:
        r[rng.random(shape) < zeros] = 0.0
        r[r.sum(axis=1) == 0, 0] = 1.0
    return (r / r.sum(axis=1, keepdims=True)).astype(dtype)


def _make_labels(rng, shape, dtype, params, form, partner):
    n, k = shape
    if form == "targets":
        return _soft_rows(rng, shape, dtype)
    y = rng.integers(0, k, size=n)
    ig = params.get("ignore_index")
    if ig is not None and -2**63 <= ig < 2**63:
        y[::7] = ig                               # some ignored rows
    return y


def _make_signs(rng, shape, dtype, params, form, partner):
    return np.where(rng.random(shape) < 0.5, 1.0, -1.0).astype(dtype)


def _make_class_labels(rng, shape, dtype, params, form, partner):
    return rng.integers(0, shape[1], size=shape[0])


def _make_distribution(rng, shape, dtype, params, form, partner):
    return _soft_rows(rng, shape, dtype, zeros=0.15)   # exact zeros: 0 log 0


def _make_count(rng, shape, dtype, params, form, partner):
    y = rng.poisson(2.0, size=shape).astype(np.float64)
    frac = rng.random(shape) < 0.3                  # some rates, not only integers
    return np.where(frac, rng.gamma(2.0, 1.0, size=shape), y).astype(dtype)


def _make_positive(rng, shape, dtype, params, form, partner):
    return (rng.gamma(2.0, 1.0, size=shape) + 1e-3).astype(dtype)


def _make_nonnegative(rng, shape, dtype, params, form, partner):
    return (rng.gamma(2.0, 1.0, size=shape) + 0.05).astype(dtype)


@dataclass(frozen=True)
class DataKind:
    """How to make values of one data kind.

    ``make(rng, shape, dtype, params, form, partner)``: well-behaved values for y_pred's
    ``shape`` (``partner``: the y_true already made, for a y_pred; ``form``: one of ``forms``).
    Fuzzing (tests/test_hardening.py): a random base array (one of ``float_bases`` /
    ``int_bases``, by the dtype) with special values from the `specials` lists mixed in:
    ``specials``; ``unchecked`` instead where the loss does not check this argument's domain;
    ``bad`` (values outside the domain) in some invalid-argument ("chaos") cases where it does;
    ``odd`` in a few cases. ``rows``: the values are target rows (normalized at times);
    ``rare_value``: put into a few cases (unchecked, it propagates).
    """
    make: Callable
    forms: Tuple[str, ...] = ("",)
    float_bases: Tuple[str, ...] = ("normal",)
    int_bases: Tuple[str, ...] = ("smallint",)
    specials: str = "real"
    unchecked: Optional[str] = None
    bad: Optional[str] = None
    odd: Optional[str] = None
    rows: bool = False
    rare_value: Optional[float] = None


DATA: Dict[str, DataKind] = {
    "real": DataKind(_make_real),
    "logit": DataKind(_make_logit, specials="logit"),
    "probability": DataKind(_make_probability, float_bases=("uniform",), int_bases=("binary",),
                            specials="prob", unchecked="rprob", bad="bad_prob"),
    "binary": DataKind(_make_binary, float_bases=("binary", "uniform"),
                       int_bases=("binary", "uniform"), specials="target", odd="odd_target"),
    # integer labels (n,) or target rows of y_pred's shape
    "labels": DataKind(_make_labels, forms=("labels", "targets"), float_bases=("uniform", "binary"),
                       int_bases=("uniform", "binary"), specials="soft", rows=True),
    "distribution": DataKind(_make_distribution, float_bases=("uniform", "binary"),
                             int_bases=("uniform", "binary"), specials="soft", rows=True,
                             rare_value=-0.25),          # rel_entr: +inf
    "count": DataKind(_make_count, float_bases=("uniform", "binary"),
                      int_bases=("binary", "uniform"), specials="count", bad="bad_count"),
    "positive": DataKind(_make_positive, float_bases=("uniform",), int_bases=("uniform",),
                         specials="positive", bad="bad_positive"),
    "nonnegative": DataKind(_make_nonnegative, float_bases=("uniform", "binary"),
                            int_bases=("binary", "uniform"), specials="count",
                            bad="bad_count"),
    # {-1, 1} (0 counts as -1); anything else is refused
    "signs": DataKind(_make_signs, float_bases=("signs",), int_bases=("signs",),
                      specials="signs", bad="bad_signs"),
    # integer class labels only (float targets are a TypeError)
    "class_labels": DataKind(_make_class_labels, forms=("labels",), float_bases=("uniform",),
                             int_bases=("uniform",), specials="soft"),
    # > -1 (log1p's argument); y_true and y_pred both checked
    "above_minus_one": DataKind(_make_above_minus_one, float_bases=("uniform", "normal"),
                                int_bases=("binary", "smallint"), specials="above_minus_one",
                                bad="bad_above_minus_one"),
}


def data_kind(kind: str, loss: str = "?") -> DataKind:
    """The generator of a data kind; a clear failure for a kind this file does not know."""
    try:
        return DATA[kind]
    except KeyError:
        raise AssertionError(
            f"data kind {kind!r} (declared by loss {loss!r} in its inputs()) has no generator in "
            f"tests/references.py: add DATA[{kind!r}] = DataKind(...) there") from None


def specials(dt, name):
    """The fuzzing's special values of one list (see `DataKind`), for dtype ``dt``."""
    dt = np.dtype(dt) if np.dtype(dt) in (F32, F64) else F64
    s, h = SUB[dt], HUGE[dt]
    if name == "real":
        return [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, s, -s, 1e-30, h, -h, 0.5, 1e-12]
    if name == "logit":
        return [0.0, -0.0, np.inf, -np.inf, np.nan, h, -h, 1e30, -1e30, 40.0, -40.0, 100.0,
                -100.0, 800.0, -800.0, s, -s]
    if name == "prob":
        return [0.0, -0.0, 1.0, np.nan, s, 1e-12, 1 - 1e-7, 0.5, 3e-44, 1e-300]
    if name == "bad_prob":
        return [-1e-3, 1.5, np.inf, -np.inf, -s, 1 + 1e-6]
    if name == "target":
        return [0.0, 1.0, 0.5, np.nan, 0.0, 1.0]
    if name == "odd_target":
        # soft targets outside [0, 1] (not checked, not specified): moderate ones only, since
        # the float32 underflow of sigmoid(-|z|) would be amplified by a huge target.
        return [-1.0, 2.0, -0.5, 1.5]
    if name == "soft":
        return [0.0, 1.0, np.nan, 1e-300, s, 0.5]
    if name == "above_minus_one":
        # -0.99999988 is the float32 neighbour of -1 (> -1 in both dtypes)
        return [0.0, -0.0, 1.0, -0.5, -0.99999988, 1e-30, s, -s, 1e-12, h, np.inf, np.nan, 3.0]
    if name == "signs":
        return [1.0, -1.0, 0.0, -0.0, np.nan, 1.0, -1.0]
    if name == "bad_signs":
        return [0.5, 2.0, -2.0, np.inf, -np.inf, 1e-3, s]
    if name == "bad_above_minus_one":
        return [-1.0, -1.5, -np.inf, -h, -2.0]
    if name == "rprob":
        return [0.0, 1.0, np.nan, s, 1e-45, 2.0, np.inf, 1e-300, 3e-44]
    if name == "count":
        return [0.0, -0.0, 1.0, 2.0, 0.5, 3.0, 1e-300, s, 1e6, np.nan, 17.0]
    if name == "bad_count":
        return [-1.0, -1e-3, -s, -np.inf]
    if name == "positive":
        return [1.0, 0.5, 2.0, 1e-300, s, 1e6, np.nan, 1e-3]
    if name == "bad_positive":
        return [0.0, -0.0, -1.0, -np.inf]
    raise AssertionError(f"no special-value list {name!r} in tests/references.py")


# =============================================================================================
# Enumerating the declarations (reads `cls.params` / `cls.inputs` only; no fastloss call)
# =============================================================================================

def full_params(cls, params=None) -> dict:
    """Every parameter of a loss class: ``params`` with the defaults filled in."""
    params = {} if params is None else params
    return {p.name: params.get(p.name, p.default) for p in cls.params}


def param_settings(cls):
    """``[(label, params)]``: the defaults, then each example value of each parameter on its
    own (the others at their defaults)."""
    base = full_params(cls)
    out = [("default", dict(base))]
    for p in cls.params:
        for v in p.examples:
            out.append((f"{p.name}={v!r}", dict(base, **{p.name: v})))
    return out


@dataclass(frozen=True)
class Setting:
    """One cell of a registry matrix: a loss, its parameters and the form of its data."""
    name: str
    cls: Any
    label: str
    params: Mapping[str, Any]
    kinds: Mapping[str, str]
    form: str

    @property
    def id(self):
        """e.g. ``huber``, ``huber(delta=0.7)``, ``categorical_cross_entropy-labels``."""
        label = "" if self.label == "default" else f"({self.label.replace(' ', '')})"
        return f"{self.name}{label}" + (f"-{self.form}" if self.form else "")

    @property
    def rowwise(self):
        return self.cls.family == "rowwise"

    @property
    def labels(self):
        return self.kinds["y_true"] in ("labels", "class_labels") and self.form == "labels"

    def data(self, rng, shape, dtype):
        """(y_true, y_pred) for y_pred's ``shape``, made by the kinds' generators."""
        t = data_kind(self.kinds["y_true"], self.name).make(
            rng, shape, dtype, self.params, self.form, None)
        p = data_kind(self.kinds["y_pred"], self.name).make(
            rng, shape, dtype, self.params, self.form, t)
        return t, p


def settings(losses) -> list:
    """Every `Setting` of every loss in ``losses`` (fastloss.LOSSES): each parameter setting of
    `param_settings`, times each form of its y_true's data kind."""
    out = []
    for name, cls in losses.items():
        for label, params in param_settings(cls):
            kinds = dict(cls.inputs(params))
            for arg in ("y_true", "y_pred"):
                data_kind(kinds[arg], name)               # known, or fail here
            for form in data_kind(kinds["y_true"], name).forms:
                out.append(Setting(name, cls, label, params, kinds, form))
    return out


def checked_arguments(name, params) -> set:
    """The arguments whose values the loss checks (keys of its reference's domain)."""
    ref = reference_for(name)
    probe_t, probe_p = np.zeros((1, 1)), np.full((1, 1), 0.5)
    checked = set(ref.domain(params, probe_t, probe_p))
    checked |= set(ref.domain(params, np.zeros(1, np.int64), probe_p))
    return checked
