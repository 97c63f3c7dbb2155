"""Cross-entropy losses: BinaryCrossEntropy, CategoricalCrossEntropy, KLDivergence.

Every expected value comes from an independent reference written here in NumPy
(float64 / np.longdouble), scipy.special, or PyTorch (when importable); fastloss is never
its own reference. Finite differences check the gradient and hessian formulas themselves.
"""
import re

import numpy as np
import pytest
import scipy.special as sps

import fastloss as fl

LD = np.longdouble
LOG_CLAMP = -100.0
QMIN = np.exp(-100.0)  # below it the clamped log is constant: derivative 0
# Relative tolerances for a fastloss result in a dtype against a float64/longdouble reference.
RTOL = {np.float64: 1e-12, np.float32: 2e-5}
ATOL = {np.float64: 1e-13, np.float32: 1e-6}


@pytest.fixture(scope="module")
def torch():
    """The torch module, or a clean skip of just the tests that need it."""
    return pytest.importorskip("torch")


def close(actual, desired, rtol, atol=0.0, msg=""):
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    assert actual.shape == desired.shape, f"shape {actual.shape} != {desired.shape} {msg}"
    np.testing.assert_allclose(actual.astype(np.float64), desired.astype(np.float64),
                               rtol=rtol, atol=atol, equal_nan=True, err_msg=msg)


# ======================================================================================
# Independent references
# ======================================================================================

def _softplus(x):
    """log(1 + exp(x)) in longdouble, without overflow."""
    x = np.asarray(x, LD)
    return np.where(x > 0, x + np.log1p(np.exp(-np.abs(x))), np.log1p(np.exp(np.minimum(x, 0))))


def _sigmoid(x):
    x = np.asarray(x, LD)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def ref_bce(y, p, *, from_logits, pw=1.0, e=0.0):
    """BCE per element, its derivative and second derivative w.r.t. y_pred (longdouble).

    Probabilities: PyTorch's conventions (log clamped at -100; gradient and hessian
    denominators clamped at 1e-12). Logits: the exact longdouble value.
    """
    y = np.asarray(y, LD) * (1 - LD(e)) + LD(e) / 2
    p = np.asarray(p, LD)
    pw = np.asarray(pw, LD)
    if from_logits:
        loss = pw * y * _softplus(-p) + (1 - y) * _softplus(p)
        s = _sigmoid(p)
        grad = (1 + (pw - 1) * y) * s - pw * y
        hess = (1 + (pw - 1) * y) * s * _sigmoid(-p)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = np.maximum(np.log(p), LOG_CLAMP)
            l1p = np.maximum(np.log(1 - p), LOG_CLAMP)
        loss = -(pw * y * lp + (1 - y) * l1p)
        eps = LD(1e-12)
        grad = (p * (1 + (pw - 1) * y) - pw * y) / np.maximum(p * (1 - p), eps)
        hess = pw * y / np.maximum(p * p, eps) + (1 - y) / np.maximum((1 - p) ** 2, eps)
    return loss, grad, hess


def ref_log_softmax(z):
    """log_softmax over the last axis in longdouble, accurate even for tiny losses."""
    z = np.asarray(z, LD)
    m = z.max(-1, keepdims=True)
    am = z.argmax(-1)[..., None]
    ex = np.exp(z - m)
    np.put_along_axis(ex, am, 0, axis=-1)           # log S = log1p(sum of the others)
    return z - m - np.log1p(ex.sum(-1, keepdims=True))


def ref_cce_targets(y_true, k, *, cw=None, e=0.0, ignore=None):
    """Effective per-class targets a = w * t (n, k) and each row's mean normalizer."""
    y_true = np.asarray(y_true)
    cw = np.ones(k) if cw is None else np.asarray(cw, np.float64)
    if y_true.dtype.kind in "iub":
        lab = y_true.astype(np.int64)
        valid = np.ones(lab.shape, bool) if ignore is None else lab != ignore
        assert np.all((lab[valid] >= 0) & (lab[valid] < k))
        onehot = np.zeros((lab.size, k))
        onehot[np.flatnonzero(valid), lab[valid]] = 1
        t = (1 - e) * onehot + e / k
        t[~valid] = 0
        den = np.where(valid, cw[np.where(valid, lab, 0)], 0.0)
    else:
        t = (1 - e) * y_true.astype(np.float64) + e / k
        den = np.ones(y_true.shape[0])
    return np.asarray(t * cw, LD), den


def ref_rowwise(kind, y_true, y_pred, *, from_logits, cw=None, e=0.0, ignore=None):
    """Per-row loss, per-element gradient and hessian (unweighted), and row normalizers.

    kind "cce": -sum_j a_j log q_j. kind "kl": sum_j t_j (log t_j - log q_j).
    The gradient/hessian formulas are checked against finite differences separately.
    """
    z = np.asarray(y_pred)
    k = z.shape[1]
    if kind == "cce":
        a, den = ref_cce_targets(y_true, k, cw=cw, e=e, ignore=ignore)
    else:
        a, den = np.asarray(y_true, LD), np.ones(z.shape[0])
    if from_logits:
        lq = ref_log_softmax(z)
        q = np.exp(lq)
    else:
        q = np.asarray(z, LD)
        with np.errstate(divide="ignore"):
            lq = np.maximum(np.log(q), LOG_CLAMP)
    loss = -(a * lq).sum(-1)
    if kind == "kl":
        with np.errstate(divide="ignore", invalid="ignore"):
            loss = loss + np.where(a > 0, a * np.log(np.where(a > 0, a, 1)), 0).sum(-1)
    A = a.sum(-1, keepdims=True)
    if from_logits:
        grad = q * A - a
        hess = A * q * (1 - q)
    else:
        live = q > QMIN
        safe = np.where(live, q, 1)
        grad = np.where(live, -a / safe, 0)
        hess = np.where(live, a / safe ** 2, 0)
    return loss, grad, hess, den


def ref_reduce(loss, grad, hess, den, sw=None, rowwise=True):
    """Apply sample weights and reductions the way API.md defines them."""
    n = loss.shape[0]
    sw = np.ones(n) if sw is None else np.asarray(sw, np.float64)
    swr = sw.reshape((-1,) + (1,) * (grad.ndim - 1)) if rowwise else sw
    wl = sw * loss
    D = np.sum(sw * den)
    return {
        "none": (wl, swr * grad),
        "sum": (wl.sum(), swr * grad),
        "mean": (wl.sum() / D, swr * grad / D),
        "hess": swr * hess,
    }


def fd_columns(f, x, h):
    """Central finite differences of f (returning one value per row, or per element),
    perturbing column j of every row at once: rows (elements) are independent, so this gives
    d f_r / d x_rj for all r in 2 * k evaluations. Returns an array shaped like x."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    x2 = x.reshape(x.shape[0], -1)
    o2 = out.reshape(x2.shape)
    for j in range(x2.shape[1]):
        xp, xm = x2.copy(), x2.copy()
        xp[:, j] += h
        xm[:, j] -= h
        fp, fm = f(xp.reshape(x.shape)), f(xm.reshape(x.shape))
        if fp.ndim == x.ndim:  # elementwise or a per-element gradient: take column j
            fp, fm = fp.reshape(x2.shape)[:, j], fm.reshape(x2.shape)[:, j]
        o2[:, j] = (fp - fm) / (2 * h)
    return out


# ======================================================================================
# Data
# ======================================================================================

def bce_data(rng, shape, from_logits, soft=True, dtype=np.float64):
    if soft:
        y = rng.random(shape)
    else:
        y = (rng.random(shape) < 0.4).astype(np.float64)
    if from_logits:
        p = rng.normal(scale=4.0, size=shape)
    else:
        p = rng.uniform(0.02, 0.98, size=shape)
    return y.astype(dtype), p.astype(dtype)


def row_data(rng, n, k, from_logits, dtype=np.float64):
    if from_logits:
        z = rng.normal(scale=3.0, size=(n, k))
    else:
        z = rng.uniform(0.05, 1.0, size=(n, k))  # not renormalized: any values in (0, 1]
    return z.astype(dtype)


def soft_targets(rng, n, k, dtype=np.float64):
    t = rng.random((n, k)) ** 3
    return (t / t.sum(1, keepdims=True)).astype(dtype)


def onehot(labels, k, dtype=np.float64):
    return np.eye(k, dtype=dtype)[labels]


PW_CASES = {
    "none": None,
    "scalar": 2.5,
    "column": np.array([0.5, 1.0, 3.0, 0.0]),
}


# ======================================================================================
# BinaryCrossEntropy
# ======================================================================================

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("pw_case", list(PW_CASES))
@pytest.mark.parametrize("e", [0.0, 0.1])
@pytest.mark.parametrize("soft", [False, True])
def test_bce_matches_numpy_reference(dtype, from_logits, pw_case, e, soft):
    rng = np.random.default_rng(11)
    y, p = bce_data(rng, (30, 4), from_logits, soft=soft, dtype=dtype)
    pw = PW_CASES[pw_case]
    bce = fl.BinaryCrossEntropy(from_logits=from_logits, pos_weight=pw, label_smoothing=e)
    pw_ref = 1.0 if pw is None else np.asarray(pw, dtype)
    loss, grad, hess = ref_bce(y, p, from_logits=from_logits, pw=pw_ref, e=e)
    rt, at = RTOL[dtype], ATOL[dtype]

    none = bce.loss(y, p, reduction="none")
    assert none.dtype == dtype and none.shape == p.shape
    close(none, loss, rt, at)
    close(bce.loss(y, p, reduction="sum"), loss.sum(), rt, at * p.size)
    mean = bce(y, p)
    assert isinstance(mean, float)
    close(mean, loss.mean(), rt, at)
    g = bce.gradient(y, p)
    assert g.dtype == dtype and g.shape == p.shape
    close(g, grad / p.size, rt, at / p.size)
    close(bce.gradient(y, p, reduction="sum"), grad, rt, at)
    close(bce.gradient(y, p, reduction="none"), grad, rt, at)
    lv, lg = bce.loss_gradient(y, p, reduction="mean")
    close(lv, loss.mean(), rt, at)
    close(lg, grad / p.size, rt, at / p.size)
    gh, hh = bce.gradient_hessian(y, p)
    close(gh, grad, rt, at)
    close(hh, hess, rt, at)
    # the functional shortcut is the same computation
    f = fl.binary_cross_entropy(y, p, from_logits=from_logits, pos_weight=pw,
                                label_smoothing=e, reduction="none")
    np.testing.assert_array_equal(f, none)


@pytest.mark.parametrize("from_logits", [False, True])
def test_bce_sample_weight(from_logits):
    rng = np.random.default_rng(5)
    y, p = bce_data(rng, (20, 3), from_logits)
    loss, grad, hess = ref_bce(y, p, from_logits=from_logits, pw=1.7)
    bce = fl.BinaryCrossEntropy(from_logits=from_logits, pos_weight=1.7)
    for w in (rng.random((20, 3)), rng.random(20)):
        wb = w if w.ndim == 2 else np.broadcast_to(w[:, None], p.shape)
        close(bce.loss(y, p, sample_weight=w, reduction="none"), wb * loss, 1e-12)
        close(bce.loss(y, p, sample_weight=w, reduction="sum"), (wb * loss).sum(), 1e-12)
        close(bce(y, p, sample_weight=w), np.average(loss, weights=wb), 1e-12)
        close(bce.gradient(y, p, sample_weight=w), wb * grad / wb.sum(), 1e-12)
        g, h = bce.gradient_hessian(y, p, sample_weight=w)
        close(g, wb * grad, 1e-12)
        close(h, wb * hess, 1e-12)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("pw_case", ["scalar", "column"])
def test_bce_gradient_hessian_finite_differences(from_logits, pw_case):
    rng = np.random.default_rng(3)
    y, p = bce_data(rng, (25, 4), from_logits)
    bce = fl.BinaryCrossEntropy(from_logits=from_logits, pos_weight=PW_CASES[pw_case],
                                label_smoothing=0.05)
    h = 1e-6
    g, hs = bce.gradient_hessian(y, p)
    fd_g = fd_columns(lambda x: bce.loss(y, x, reduction="none"), p, h)
    fd_h = fd_columns(lambda x: bce.gradient(y, x, reduction="none"), p, h)
    close(g, fd_g, 1e-6, 1e-8)
    close(hs, fd_h, 1e-5, 1e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_probabilities_match_torch(torch, dtype):
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    y, p = bce_data(rng, (40, 5), from_logits=False, soft=True, dtype=dtype)
    p[0, :3] = [0.0, 1.0, 0.0]       # clamped logs and clamped gradient denominators
    y[0, :3] = [1.0, 0.0, 0.0]
    p[1, :2] = [1.0, 1e-30 if dtype == np.float64 else 1e-20]
    w = rng.random(p.shape).astype(dtype)
    bce = fl.BinaryCrossEntropy()
    tp = torch.tensor(p, requires_grad=True)
    tl = F.binary_cross_entropy(tp, torch.tensor(y), reduction="none")
    rt = RTOL[dtype] * 10
    close(bce.loss(y, p, reduction="none"), tl.detach().numpy(), rt)
    # Where p (1 - p) < 1e-12 torch's own backward is only consistent to ~5e-9 relative
    # (its vectorized path scales -1e12 by grad_output as 1.000000004e12), so the clamped
    # entries get a looser tolerance.
    clamped = p.astype(np.float64) * (1 - p.astype(np.float64)) < 1e-12
    tm = F.binary_cross_entropy(tp, torch.tensor(y))
    (tg,) = torch.autograd.grad(tm, tp)
    val, g = bce.loss_gradient(y, p)
    close(val, tm.item(), rt)
    close(g[~clamped], tg.numpy()[~clamped], rt)
    close(g[clamped], tg.numpy()[clamped], 1e-7)
    # torch's elementwise `weight` with "sum" is our sample_weight with "sum"
    ts = F.binary_cross_entropy(tp, torch.tensor(y), weight=torch.tensor(w), reduction="sum")
    (tg,) = torch.autograd.grad(ts, tp)
    val, g = bce.loss_gradient(y, p, sample_weight=w, reduction="sum")
    close(val, ts.item(), rt)
    close(g[~clamped], tg.numpy()[~clamped], rt)
    close(g[clamped], tg.numpy()[clamped], 1e-7)
    tn = F.binary_cross_entropy(tp, torch.tensor(y), reduction="none").sum()
    (tg,) = torch.autograd.grad(tn, tp)
    g = bce.gradient(y, p, reduction="none")
    close(g[~clamped], tg.numpy()[~clamped], rt)
    close(g[clamped], tg.numpy()[clamped], 1e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("pw_case", list(PW_CASES))
@pytest.mark.parametrize("e", [0.0, 0.2])
def test_bce_logits_match_torch(torch, dtype, pw_case, e):
    F = torch.nn.functional
    rng = np.random.default_rng(8)
    y, z = bce_data(rng, (40, 4), from_logits=True, soft=True, dtype=dtype)
    z[0] = [30.0, -30.0, 80.0, -80.0]
    pw = PW_CASES[pw_case]
    bce = fl.BinaryCrossEntropy(from_logits=True, pos_weight=pw, label_smoothing=e)
    kw = {} if pw is None else {"pos_weight": torch.tensor(np.asarray(pw, dtype))}
    ys = torch.tensor((y * (1 - e) + e / 2).astype(dtype))  # torch has no BCE label smoothing
    tz = torch.tensor(z, requires_grad=True)
    rt = RTOL[dtype] * 10
    tl = F.binary_cross_entropy_with_logits(tz, ys, reduction="none", **kw)
    close(bce.loss(y, z, reduction="none"), tl.detach().numpy(), rt, ATOL[dtype])
    tm = F.binary_cross_entropy_with_logits(tz, ys, **kw)
    (tg,) = torch.autograd.grad(tm, tz)
    val, g = bce.loss_gradient(y, z)
    close(val, tm.item(), rt)
    close(g, tg.numpy(), rt, ATOL[dtype] / z.size)


@pytest.mark.parametrize("dtype, big", [(np.float64, 800.0), (np.float32, 90.0)])
def test_bce_extreme_logits_finite(dtype, big):
    z = np.array([big, big, -big, -big, big, -big], dtype)
    y = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 0.5], dtype)
    for pw in (None, 3.0):
        bce = fl.BinaryCrossEntropy(from_logits=True, pos_weight=pw)
        c = 1.0 if pw is None else pw
        loss, g = bce.loss_gradient(y, z, reduction="none")
        g2, h = bce.gradient_hessian(y, z)
        for a in (loss, g, g2, h):
            assert np.all(np.isfinite(a)), a
        # wrong-side logits cost |z| (times pos_weight), right-side ones ~ 0
        close(loss[[0, 3]], [big, c * big], 1e-7)
        assert 0 <= loss[1] < 1e-30 and 0 <= loss[2] < 1e-30
        close(loss[[4, 5]], [0.5 * big, 0.5 * c * big], 1e-6)
        close(g[[0, 3]], [1.0, -c], 1e-7)
        assert abs(g[1]) < 1e-30 and abs(g[2]) < 1e-30
        assert np.all(h >= 0) and np.all(h < 1e-30)
        assert np.isfinite(bce(y, z))


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-15), (np.float32, 1e-6)])
def test_bce_tiny_loss_accurate(dtype, rtol):
    # l(z=40, y=1) = log1p(exp(-40)) ~ 4.25e-18: no cancellation to 0
    bce = fl.BinaryCrossEntropy(from_logits=True)
    z = np.array([40.0, -40.0, 30.0], dtype)
    y = np.array([1.0, 0.0, 1.0], dtype)
    loss, g = bce.loss_gradient(y, z, reduction="none")
    want = np.log1p(np.exp(-np.abs(np.asarray(z, LD))))
    assert np.all(np.abs((loss.astype(LD) - want) / want) < rtol), (loss, want)
    want_g = np.array([-1, 1, -1], LD) * np.exp(-np.abs(np.asarray(z, LD))) \
        / (1 + np.exp(-np.abs(np.asarray(z, LD))))
    assert np.all(np.abs((g.astype(LD) - want_g) / want_g) < 4 * rtol), (g, want_g)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_probabilities_at_zero_and_one(dtype):
    bce = fl.BinaryCrossEntropy()
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0], dtype)
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.25], dtype)
    loss, g = bce.loss_gradient(y, p, reduction="none")
    close(loss, [100, 100, 0, 0, 50, 75], 1e-7)
    # torch: (p - y) / max(p (1 - p), 1e-12)
    close(g, [-1e12, 1e12, 0, 0, -0.5e12, 0.75e12], 1e-6)
    assert bce(y, p) == pytest.approx(325 / 6)
    _, h = bce.gradient_hessian(y, p)
    assert np.all(np.isfinite(h))


BAD_PROBS = [-0.1, 1.5, -np.inf, np.inf, -1e-300, 1 + 1e-15]


@pytest.mark.parametrize("bad", BAD_PROBS)
@pytest.mark.parametrize("method", ["loss", "gradient", "loss_gradient", "gradient_hessian",
                                    "__call__"])
def test_bce_probabilities_out_of_range_raise(bad, method):
    bce = fl.BinaryCrossEntropy()
    p = np.full(12, 0.5)
    p[7] = bad
    y = np.zeros(12)
    with pytest.raises(ValueError, match=r"y_pred.*index 7\b"):
        getattr(bce, method)(y, p)


def test_bce_out_of_range_index_2d_and_first_of_many():
    bce = fl.BinaryCrossEntropy(n_threads=3)
    p = np.full((4, 5), 0.5)
    p[1, 2] = 2.0
    p[3, 0] = -1.0
    with pytest.raises(ValueError) as info:
        bce(np.zeros_like(p), p)
    msg = str(info.value)
    assert "y_pred" in msg
    # the index of a 2-D array is a (row, column) tuple; numpy 2 may print its scalars'
    # repr, so accept both "(1, 2)" and "(np.int64(1), np.int64(2))"
    assert re.search(r"\((np\.int64\()?1\)?, (np\.int64\()?2\)?\)", msg), msg
    # the first bad element wins even when blocks run on several threads
    p = np.full(200_000, 0.5)
    p[[150_001, 170_000, 199_999]] = 7.0
    with pytest.raises(ValueError, match=r"index 150001\b"):
        bce(np.zeros_like(p), p)


def test_bce_inplace_gradient_reports_true_bad_index():
    bce = fl.BinaryCrossEntropy()
    y = np.array([1.0, 0.0])
    p = np.array([0.5, 1.5])
    with pytest.raises(ValueError, match=r"1\.5.*index 1\b"):
        bce.gradient(y, p, gradient_out=p)


def test_bce_nan_propagates():
    y = np.array([1.0, 0.0, 1.0])
    for from_logits in (False, True):
        bce = fl.BinaryCrossEntropy(from_logits=from_logits)
        p = np.array([0.3, np.nan, 0.6])
        loss, g = bce.loss_gradient(y, p, reduction="none")
        assert np.isnan(loss[1]) and np.isnan(g[1])
        assert np.all(np.isfinite(loss[[0, 2]])) and np.all(np.isfinite(g[[0, 2]]))
        assert np.isnan(bce(y, p))
        g, h = bce.gradient_hessian(y, p)
        assert np.isnan(g[1]) and np.isnan(h[1])


def test_bce_accuracy(capsys):
    """Max relative error of the per-element loss against a longdouble reference, logits in
    [-50, 50], hard and soft targets, with and without pos_weight (measured values printed)."""
    rng = np.random.default_rng(2024)
    z64 = np.concatenate([np.linspace(-50, 50, 40_001), rng.uniform(-50, 50, 40_000)])
    bounds = {np.float64: 1e-14, np.float32: 1e-6}
    measured = {}
    for dtype in (np.float64, np.float32):
        z = z64.astype(dtype)
        worst = 0.0
        for y0 in (0.0, 1.0, None):
            y = (rng.random(z.size) if y0 is None else np.full(z.size, y0)).astype(dtype)
            for pw in (None, 0.3, 4.0):
                bce = fl.BinaryCrossEntropy(from_logits=True, pos_weight=pw)
                got = bce.loss(y, z, reduction="none").astype(LD)
                want, _, _ = ref_bce(y, z, from_logits=True, pw=1.0 if pw is None else pw)
                nz = want > 0
                rel = np.abs(got[nz] - want[nz]) / want[nz]
                worst = max(worst, float(rel.max()))
        measured[np.dtype(dtype).name] = worst
        assert worst < bounds[dtype], (dtype, worst)
    with capsys.disabled():
        print(f"\n[test_bce_accuracy] max relative error of the BCE loss (logits in [-50, 50]): "
              f"{measured}")


# ======================================================================================
# CategoricalCrossEntropy
# ======================================================================================

CW5 = np.array([1.0, 2.0, 0.5, 0.0, 3.0])


def make_labels(rng, n, k, ignore=None, dtype=np.int64):
    lab = rng.integers(0, k, n)
    if ignore is not None:
        lab[rng.random(n) < 0.25] = ignore
        lab[0] = ignore
        lab[1] = 1 if ignore != 1 else 2
    return lab.astype(dtype)


def check_rowwise(obj, y_true, y_pred, ref, dtype, sw=None):
    """Compare all methods and reductions of a row-wise loss with `ref_reduce` output."""
    rt, at = RTOL[dtype], ATOL[dtype]
    none = obj.loss(y_true, y_pred, sample_weight=sw, reduction="none")
    assert none.dtype == dtype and none.shape == (y_pred.shape[0],)
    close(none, ref["none"][0], rt, at)
    close(obj.loss(y_true, y_pred, sample_weight=sw, reduction="sum"), ref["sum"][0], rt, at)
    m = obj(y_true, y_pred, sample_weight=sw)
    assert isinstance(m, float)
    close(m, ref["mean"][0], rt, at)
    for red in ("none", "sum", "mean"):
        g = obj.gradient(y_true, y_pred, sample_weight=sw, reduction=red)
        assert g.dtype == dtype and g.shape == y_pred.shape
        close(g, ref[red][1], rt, at, msg=red)
        lv, lg = obj.loss_gradient(y_true, y_pred, sample_weight=sw, reduction=red)
        close(lv, ref[red][0], rt, at, msg=red)
        close(lg, ref[red][1], rt, at, msg=red)
    g, h = obj.gradient_hessian(y_true, y_pred, sample_weight=sw)
    close(g, ref["none"][1], rt, at)
    close(h, ref["hess"], rt, at)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("cw", [None, CW5], ids=["no_cw", "cw"])
@pytest.mark.parametrize("e", [0.0, 0.15])
@pytest.mark.parametrize("ignore", [None, -100, 1])
def test_cce_labels_match_numpy_reference(dtype, from_logits, cw, e, ignore):
    rng = np.random.default_rng(21)
    n, k = 40, 5
    z = row_data(rng, n, k, from_logits, dtype)
    lab = make_labels(rng, n, k, ignore)
    cce = fl.CategoricalCrossEntropy(from_logits=from_logits, class_weight=cw,
                                     label_smoothing=e, ignore_index=ignore)
    loss, grad, hess, den = ref_rowwise("cce", lab, z, from_logits=from_logits, cw=cw, e=e,
                                        ignore=ignore)
    check_rowwise(cce, lab, z, ref_reduce(loss, grad, hess, den), dtype)
    if ignore is not None:
        ign = lab == ignore
        assert np.all(cce.loss(lab, z, reduction="none")[ign] == 0)
        assert np.all(cce.gradient(lab, z)[ign] == 0)
    f = fl.categorical_cross_entropy(lab, z, from_logits=from_logits, class_weight=cw,
                                     label_smoothing=e, ignore_index=ignore, reduction="none")
    np.testing.assert_array_equal(f, cce.loss(lab, z, reduction="none"))


@pytest.mark.parametrize("label_dtype", [np.int64, np.int32, np.uint8, np.uint64, np.int16])
@pytest.mark.parametrize("from_logits", [False, True])
def test_cce_label_dtypes(label_dtype, from_logits):
    rng = np.random.default_rng(4)
    z = row_data(rng, 30, 6, from_logits)
    lab = rng.integers(0, 6, 30)
    cce = fl.CategoricalCrossEntropy(from_logits=from_logits, class_weight=np.arange(1, 7.0))
    want = cce.loss_gradient(lab.astype(np.int64), z)
    got = cce.loss_gradient(lab.astype(label_dtype), z)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    loss, grad, hess, den = ref_rowwise("cce", lab, z, from_logits=from_logits,
                                        cw=np.arange(1, 7.0))
    close(got[0], loss.sum() / den.sum(), 1e-12)
    # plain Python lists of ints are labels too
    assert cce(lab.tolist(), z) == want[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("target", ["onehot", "soft"])
@pytest.mark.parametrize("cw", [None, CW5], ids=["no_cw", "cw"])
@pytest.mark.parametrize("e", [0.0, 0.1])
def test_cce_float_targets_match_numpy_reference(dtype, from_logits, target, cw, e):
    rng = np.random.default_rng(22)
    n, k = 40, 5
    z = row_data(rng, n, k, from_logits, dtype)
    lab = rng.integers(0, k, n)
    t = onehot(lab, k, dtype) if target == "onehot" else soft_targets(rng, n, k, dtype)
    cce = fl.CategoricalCrossEntropy(from_logits=from_logits, class_weight=cw,
                                     label_smoothing=e)
    loss, grad, hess, den = ref_rowwise("cce", t, z, from_logits=from_logits, cw=cw, e=e)
    assert np.all(den == 1)  # float targets: torch divides the mean by the number of rows
    check_rowwise(cce, t, z, ref_reduce(loss, grad, hess, den), dtype)
    if target == "onehot" and cw is None:
        # one-hot float targets agree with the same integer labels
        close(cce(t, z), cce(lab, z), RTOL[dtype])
        close(cce.gradient(t, z), cce.gradient(lab, z), RTOL[dtype], ATOL[dtype])


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("target", ["labels", "soft"])
def test_cce_sample_weight(from_logits, target):
    rng = np.random.default_rng(23)
    n, k = 50, 5
    z = row_data(rng, n, k, from_logits)
    sw = rng.random(n) * 3
    sw[3] = 0.0
    if target == "labels":
        yt = make_labels(rng, n, k, ignore=-100)
        kw = dict(class_weight=CW5, ignore_index=-100, label_smoothing=0.05)
        loss, grad, hess, den = ref_rowwise("cce", yt, z, from_logits=from_logits, cw=CW5,
                                            e=0.05, ignore=-100)
        valid = yt != -100
        # API.md: mean = sum(sw * l) / sum(sw * cw[label]) over non-ignored rows
        want_mean = np.sum(sw * loss) / np.sum((sw * CW5[np.where(valid, yt, 0)])[valid])
    else:
        yt = soft_targets(rng, n, k)
        kw = dict(class_weight=CW5, label_smoothing=0.05)
        loss, grad, hess, den = ref_rowwise("cce", yt, z, from_logits=from_logits, cw=CW5,
                                            e=0.05)
        want_mean = np.sum(sw * loss) / np.sum(sw)   # sum(sw * l) / sum(sw)
    cce = fl.CategoricalCrossEntropy(from_logits=from_logits, **kw)
    ref = ref_reduce(loss, grad, hess, den, sw)
    close(ref["mean"][0], want_mean, 1e-14)
    check_rowwise(cce, yt, z, ref, np.float64, sw=sw)


def test_rowwise_sample_weight_errors():
    z = np.zeros((4, 3))
    lab = np.array([0, 1, 2, 0])
    for obj, yt in ((fl.CategoricalCrossEntropy(from_logits=True), lab),
                    (fl.CategoricalCrossEntropy(from_logits=True), np.full((4, 3), 1 / 3)),
                    (fl.KLDivergence(from_logits=True), np.full((4, 3), 1 / 3))):
        for sw in (np.ones(3), np.ones((4, 3)), np.ones(5)):
            with pytest.raises(ValueError, match="sample_weight"):
                obj(yt, z, sample_weight=sw)
        for bad in (-1.0, np.nan, np.inf):
            sw = np.ones(4)
            sw[2] = bad
            with pytest.raises(ValueError, match=r"sample_weight.*index 2\b"):
                obj.gradient(yt, z, sample_weight=sw)


def test_rowwise_input_layouts_and_dtypes():
    """Non-contiguous, Fortran-ordered, read-only and integer inputs give the same results."""
    rng = np.random.default_rng(9)
    z = row_data(rng, 20, 4, True)
    lab = rng.integers(0, 4, 20)
    t = soft_targets(rng, 20, 4)
    wide = np.repeat(z, 2, axis=1)[:, ::2]          # strided view equal to z
    ro = z.copy()
    ro.flags.writeable = False
    for obj, yt in ((fl.CategoricalCrossEntropy(from_logits=True), lab),
                    (fl.CategoricalCrossEntropy(from_logits=True), t),
                    (fl.KLDivergence(from_logits=True), t)):
        want_l, want_g = obj.loss_gradient(yt, z)
        for zz in (wide, np.asfortranarray(z), ro, z.tolist()):
            lv, g = obj.loss_gradient(yt, zz)
            assert lv == want_l
            np.testing.assert_array_equal(g, want_g)
        lab_strided = np.repeat(lab, 2)[::2]
        if yt is lab:
            assert obj(lab_strided, z) == want_l
    zi = rng.integers(-3, 4, size=(20, 4))
    cce = fl.CategoricalCrossEntropy(from_logits=True)
    assert cce.gradient(lab, zi).dtype == np.float64
    assert cce(lab, zi) == cce(lab, zi.astype(np.float64))
    # y_true follows y_pred's dtype for float targets; float32 stays float32
    g = fl.KLDivergence(from_logits=True).gradient(t, z.astype(np.float32))
    assert g.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cw", [None, CW5], ids=["no_cw", "cw"])
@pytest.mark.parametrize("e", [0.0, 0.1])
@pytest.mark.parametrize("ignore", [None, -100, 2])
def test_cce_labels_match_torch(torch, dtype, cw, e, ignore):
    F = torch.nn.functional
    rng = np.random.default_rng(31)
    n, k = 60, 5
    z = row_data(rng, n, k, True, dtype)
    lab = make_labels(rng, n, k, ignore)
    cce = fl.CategoricalCrossEntropy(from_logits=True, class_weight=cw, label_smoothing=e,
                                     ignore_index=ignore)
    tkw = dict(label_smoothing=e, ignore_index=-100 if ignore is None else ignore)
    if cw is not None:
        tkw["weight"] = torch.tensor(cw.astype(dtype))
    tz = torch.tensor(z, requires_grad=True)
    tlab = torch.tensor(lab)
    rt, at = RTOL[dtype] * 10, ATOL[dtype]
    for red in ("none", "sum", "mean"):
        tl = F.cross_entropy(tz, tlab, reduction=red, **tkw)
        (tg,) = torch.autograd.grad(tl.sum(), tz)
        val, g = cce.loss_gradient(lab, z, reduction=red)
        close(val, tl.detach().numpy(), rt, at, msg=red)
        close(g, tg.numpy(), rt, at, msg=red)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cw", [None, CW5], ids=["no_cw", "cw"])
@pytest.mark.parametrize("e", [0.0, 0.1])
def test_cce_float_targets_match_torch(torch, dtype, cw, e):
    F = torch.nn.functional
    rng = np.random.default_rng(32)
    z = row_data(rng, 50, 5, True, dtype)
    t = soft_targets(rng, 50, 5, dtype)
    t[:10] = onehot(rng.integers(0, 5, 10), 5, dtype)
    cce = fl.CategoricalCrossEntropy(from_logits=True, class_weight=cw, label_smoothing=e)
    tkw = dict(label_smoothing=e)
    if cw is not None:
        tkw["weight"] = torch.tensor(cw.astype(dtype))
    tz = torch.tensor(z, requires_grad=True)
    for red in ("none", "sum", "mean"):
        tl = F.cross_entropy(tz, torch.tensor(t), reduction=red, **tkw)
        (tg,) = torch.autograd.grad(tl.sum(), tz)
        val, g = cce.loss_gradient(t, z, reduction=red)
        close(val, tl.detach().numpy(), RTOL[dtype] * 10, ATOL[dtype], msg=red)
        close(g, tg.numpy(), RTOL[dtype] * 10, ATOL[dtype], msg=red)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("target", ["labels", "soft"])
def test_cce_gradient_hessian_finite_differences(from_logits, target):
    rng = np.random.default_rng(41)
    n, k = 30, 5
    z = row_data(rng, n, k, from_logits)
    if target == "labels":
        yt = make_labels(rng, n, k, ignore=-100)
        kw = dict(class_weight=CW5, label_smoothing=0.1, ignore_index=-100)
    else:
        yt = soft_targets(rng, n, k)
        kw = dict(class_weight=CW5, label_smoothing=0.1)
    sw = rng.random(n) + 0.5
    cce = fl.CategoricalCrossEntropy(from_logits=from_logits, **kw)
    h = 1e-6
    g, hs = cce.gradient_hessian(yt, z, sample_weight=sw)
    fd_g = fd_columns(lambda x: cce.loss(yt, x, sample_weight=sw, reduction="none"), z, h)
    fd_h = fd_columns(lambda x: cce.gradient(yt, x, sample_weight=sw, reduction="none"), z, h)
    close(g, fd_g, 1e-6, 1e-8)
    close(hs, fd_h, 1e-5, 1e-7)
    # the mean's gradient, against differences of the mean itself (one element at a time)
    gm = cce.gradient(yt, z, sample_weight=sw)
    for (i, j) in [(2, 0), (5, 3), (17, 4)]:
        zp, zm = z.copy(), z.copy()
        zp[i, j] += h
        zm[i, j] -= h
        fd = (cce(yt, zp, sample_weight=sw) - cce(yt, zm, sample_weight=sw)) / (2 * h)
        assert gm[i, j] == pytest.approx(fd, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("from_logits", [False, True])
def test_cce_single_class(dtype, from_logits):
    z = np.array([[3.0], [-2.0], [0.5]], dtype) if from_logits else np.array(
        [[1.0], [0.25], [0.5]], dtype)
    lab = np.zeros(3, np.int64)
    cce = fl.CategoricalCrossEntropy(from_logits=from_logits)
    loss, g = cce.loss_gradient(lab, z, reduction="none")
    if from_logits:
        close(loss, np.zeros(3), 0, 1e-7)     # softmax of one class is 1
        close(g, np.zeros((3, 1)), 0, 1e-7)
        _, h = cce.gradient_hessian(lab, z)
        close(h, np.zeros((3, 1)), 0, 1e-7)
    else:
        close(loss, -np.log(z[:, 0].astype(np.float64)), RTOL[dtype])
        close(g, -1 / z.astype(np.float64), RTOL[dtype])
    with pytest.raises(ValueError, match=r"y_true.*index 1\b"):
        cce(np.array([0, 1, 0]), z)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cce_many_classes(dtype):
    rng = np.random.default_rng(51)
    n, k = 37, 1000   # rows of k > block size stress the scratch-buffer path
    z = row_data(rng, n, k, True, dtype)
    lab = rng.integers(0, k, n)
    cw = rng.random(k) + 0.1
    cce = fl.CategoricalCrossEntropy(from_logits=True, class_weight=cw, label_smoothing=0.05)
    loss, grad, hess, den = ref_rowwise("cce", lab, z, from_logits=True, cw=cw, e=0.05)
    check_rowwise(cce, lab, z, ref_reduce(loss, grad, hess, den), dtype)
    t = soft_targets(rng, n, k, dtype)
    loss, grad, hess, den = ref_rowwise("cce", t, z, from_logits=True, cw=cw, e=0.05)
    check_rowwise(cce, t, z, ref_reduce(loss, grad, hess, den), dtype)
    k2 = 3000
    z2 = row_data(rng, 5, k2, False, dtype)
    lab2 = rng.integers(0, k2, 5)
    c2 = fl.CategoricalCrossEntropy(label_smoothing=0.2)
    loss, grad, hess, den = ref_rowwise("cce", lab2, z2, from_logits=False, e=0.2)
    check_rowwise(c2, lab2, z2, ref_reduce(loss, grad, hess, den), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cce_all_mass_in_one_class(dtype):
    cce = fl.CategoricalCrossEntropy(from_logits=True)
    z = np.array([[1000.0, 0.0], [1000.0, 0.0], [0.0, -1000.0], [-1000.0, 1000.0]], dtype)
    lab = np.array([0, 1, 1, 0])
    loss, g = cce.loss_gradient(lab, z, reduction="none")
    _, h = cce.gradient_hessian(lab, z)
    for a in (loss, g, h):
        assert np.all(np.isfinite(a))
    close(loss, [0.0, 1000.0, 1000.0, 2000.0], 1e-7)
    close(g, [[0, 0], [1, -1], [1, -1], [-1, 1]], 0, 1e-7)
    close(h, np.zeros((4, 2)), 0, 1e-30)
    # and with label smoothing the big logit gap is paid on the smoothed share
    cs = fl.CategoricalCrossEntropy(from_logits=True, label_smoothing=0.2)
    close(cs.loss(lab[:1], z[:1], reduction="none"), [0.1 * 1000.0], 1e-7)
    # probabilities: a zero probability costs 100 (clamped log) and has zero gradient
    cp = fl.CategoricalCrossEntropy()
    q = np.array([[1.0, 0.0], [1.0, 0.0]], dtype)
    loss, g = cp.loss_gradient(np.array([0, 1]), q, reduction="none")
    close(loss, [0.0, 100.0], 0, 1e-12)
    close(g, [[-1, 0], [0, 0]], 0, 1e-12)
    _, h = cp.gradient_hessian(np.array([0, 1]), q)
    close(h, [[1, 0], [0, 0]], 0, 1e-12)


def test_cce_logits_accuracy(capsys):
    """Per-row loss of CCE on logits in [-50, 50] against a longdouble log-softmax.

    Measured: relative error where the loss is not tiny, and the mixed error
    |got - ref| / (1 + ref) over all rows (printed)."""
    rng = np.random.default_rng(99)
    measured = {}
    bounds_rel = {np.float64: 1e-14, np.float32: 1e-6}
    bounds_mixed = {np.float64: 2e-15, np.float32: 1e-6}
    for dtype in (np.float64, np.float32):
        worst_rel = worst_mixed = 0.0
        for k, n in ((2, 50_000), (10, 20_000), (1000, 200)):
            z = rng.uniform(-50, 50, size=(n, k)).astype(dtype)
            lab = rng.integers(0, k, n)
            got = fl.CategoricalCrossEntropy(from_logits=True).loss(
                lab, z, reduction="none").astype(LD)
            want = -ref_log_softmax(z)[np.arange(n), lab]
            err = np.abs(got - want)
            ok = want >= 1.0
            worst_rel = max(worst_rel, float((err[ok] / want[ok]).max()))
            worst_mixed = max(worst_mixed, float((err / (1 + want)).max()))
        measured[np.dtype(dtype).name] = {"rel(loss>=1)": worst_rel, "mixed": worst_mixed}
        assert worst_rel < bounds_rel[dtype], (dtype, worst_rel)
        assert worst_mixed < bounds_mixed[dtype], (dtype, worst_mixed)
    with capsys.disabled():
        print(f"\n[test_cce_logits_accuracy] CCE logits in [-50, 50]: {measured}")


def test_cce_logits_tiny_loss_relative_accuracy():
    z = np.array([[40.0, 0.0], [20.0, -20.0]])
    got = fl.CategoricalCrossEntropy(from_logits=True).loss(np.array([0, 0]), z,
                                                            reduction="none")
    want = -ref_log_softmax(z)[:, 0]
    assert np.all(np.abs(got - want) / want < 1e-14), (got, want)


BAD_LABELS = [
    (np.int64, -1), (np.int64, "k"), (np.int64, 2 ** 62), (np.uint64, 2 ** 63 + 5),
    (np.int32, -1), (np.int32, "k"), (np.uint8, 200),
]


@pytest.mark.parametrize("label_dtype, bad", BAD_LABELS)
@pytest.mark.parametrize("method", ["loss", "gradient", "loss_gradient", "gradient_hessian"])
@pytest.mark.parametrize("kw", [{}, {"ignore_index": -100, "class_weight": CW5}],
                         ids=["plain", "ignore_cw"])
def test_cce_labels_out_of_range_raise(label_dtype, bad, method, kw):
    k = 5
    bad = k if bad == "k" else bad
    lab = np.array([0, 1, 2, 3, 4, 0, 1], dtype=np.uint64 if label_dtype == np.uint64
                   else np.int64)
    lab[4] = bad
    lab = lab.astype(label_dtype)
    z = np.zeros((7, k))
    for from_logits in (True, False):
        cce = fl.CategoricalCrossEntropy(from_logits=from_logits, **kw)
        with pytest.raises(ValueError, match=r"y_true.*index 4\b"):
            getattr(cce, method)(lab, z if from_logits else z + 0.2)


def test_cce_labels_out_of_range_first_row_multithreaded():
    n, k = 50_000, 10
    z = np.zeros((n, k))
    lab = np.zeros(n, np.int64)
    lab[[31_234, 40_000, n - 1]] = [k, -5, 10 ** 12]
    for nt in (1, 3):
        cce = fl.CategoricalCrossEntropy(from_logits=True, n_threads=nt, class_weight=np.ones(k))
        for method in ("loss", "gradient"):
            with pytest.raises(ValueError, match=r"y_true.*index 31234\b"):
                getattr(cce, method)(lab, z)


@pytest.mark.parametrize("ignore", [-100, 5, 10 ** 15, -1])
def test_cce_ignore_index_out_of_range_is_fine(ignore):
    rng = np.random.default_rng(6)
    k = 5
    z = row_data(rng, 8, k, True)
    lab = np.array([0, ignore, 2, ignore, 4, 1, ignore, 3])
    cce = fl.CategoricalCrossEntropy(from_logits=True, ignore_index=ignore)
    loss, g = cce.loss_gradient(lab, z, reduction="none")
    ign = lab == ignore
    assert np.all(loss[ign] == 0) and np.all(g[ign] == 0)
    keep = ~ign
    want = fl.CategoricalCrossEntropy(from_logits=True)(lab[keep], z[keep])
    close(cce(lab, z), want, 1e-14)
    gm = cce.gradient(lab, z)
    close(gm[keep], fl.CategoricalCrossEntropy(from_logits=True).gradient(lab[keep], z[keep]),
          1e-14, 1e-17)
    # an ignored value that is out of range still errs where it is not the ignore_index
    other = fl.CategoricalCrossEntropy(from_logits=True, ignore_index=-7)
    with pytest.raises(ValueError, match=r"y_true.*index 1\b"):
        other(lab, z)


@pytest.mark.parametrize("cw", [None, CW5], ids=["no_cw", "cw"])
def test_cce_all_rows_ignored(cw):
    z = np.random.default_rng(2).normal(size=(4, 5))
    lab = np.full(4, -100)
    cce = fl.CategoricalCrossEntropy(from_logits=True, ignore_index=-100, class_weight=cw)
    assert np.isnan(cce(lab, z))
    assert cce.loss(lab, z, reduction="sum") == 0.0
    assert np.all(cce.loss(lab, z, reduction="none") == 0)
    val, g = cce.loss_gradient(lab, z)
    assert np.isnan(val)
    assert np.all(g == 0)
    g, h = cce.gradient_hessian(lab, z)
    assert np.all(g == 0) and np.all(h == 0)


def test_cce_all_ignored_matches_torch(torch):
    F = torch.nn.functional
    z = np.random.default_rng(2).normal(size=(4, 5))
    lab = np.full(4, -100)
    t = F.cross_entropy(torch.tensor(z), torch.tensor(lab), ignore_index=-100)
    assert np.isnan(t.item())
    assert np.isnan(fl.categorical_cross_entropy(lab, z, from_logits=True, ignore_index=-100))


# ======================================================================================
# KLDivergence
# ======================================================================================

def kl_targets(rng, n, k, dtype=np.float64):
    t = soft_targets(rng, n, k)
    t[rng.random((n, k)) < 0.3] = 0.0      # zeros: 0 * log(0) = 0
    t[0] = 0.0
    t[0, 2] = 1.0
    t[1] = 0.0                              # an all-zero row: loss 0
    t = t / np.maximum(t.sum(1, keepdims=True), 1e-300)
    return t.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("from_logits", [False, True])
def test_kl_matches_scipy(dtype, from_logits):
    rng = np.random.default_rng(61)
    n, k = 40, 6
    z = row_data(rng, n, k, from_logits, dtype)
    t = kl_targets(rng, n, k, dtype)
    kl = fl.KLDivergence(from_logits=from_logits)
    z64, t64 = z.astype(np.float64), t.astype(np.float64)
    q = sps.softmax(z64, axis=1) if from_logits else z64
    want = sps.rel_entr(t64, q).sum(-1)
    rt, at = RTOL[dtype] * 10, ATOL[dtype] * 10
    got = kl.loss(t, z, reduction="none")
    assert got.dtype == dtype and got.shape == (n,)
    close(got, want, rt, at)
    assert got[1] == 0
    close(kl(t, z), want.mean(), rt, at)
    close(kl.loss(t, z, reduction="sum"), want.sum(), rt, at * n)
    loss, grad, hess, den = ref_rowwise("kl", t, z, from_logits=from_logits)
    close(loss, want, 1e-12, 1e-14)           # the longdouble reference agrees with scipy
    check_rowwise(kl, t, z, ref_reduce(loss, grad, hess, den), dtype)
    sw = rng.random(n)
    check_rowwise(kl, t, z, ref_reduce(loss, grad, hess, den, sw), dtype, sw=sw)
    np.testing.assert_array_equal(
        fl.kl_divergence(t, z, from_logits=from_logits, reduction="none"), got)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("from_logits", [False, True])
def test_kl_matches_torch_batchmean(torch, dtype, from_logits):
    F = torch.nn.functional
    rng = np.random.default_rng(62)
    n, k = 40, 6
    z = row_data(rng, n, k, from_logits, dtype)
    t = kl_targets(rng, n, k, dtype)
    tz = torch.tensor(z, requires_grad=True)
    log_q = torch.log_softmax(tz, dim=1) if from_logits else torch.log(tz)
    tm = F.kl_div(log_q, torch.tensor(t), reduction="batchmean")
    (tg,) = torch.autograd.grad(tm, tz)
    val, g = fl.KLDivergence(from_logits=from_logits).loss_gradient(t, z)
    close(val, tm.item(), RTOL[dtype] * 10, ATOL[dtype])
    close(g, tg.numpy(), RTOL[dtype] * 10, ATOL[dtype])


def test_kl_zero_probability_where_target_zero():
    # q = 0 where t = 0 contributes 0; q = 0 where t > 0 is clamped (log q = -100)
    t = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    q = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
    kl = fl.KLDivergence()
    loss, g = kl.loss_gradient(t, q, reduction="none")
    close(loss, [0.0, 0.0 + 100.0], 1e-14, 1e-15)
    close(loss[:1], sps.rel_entr(t[:1], q[:1]).sum(-1), 0, 1e-15)
    assert np.all(np.isfinite(g))
    close(g, [[-1.0, -1.0, 0.0], [0.0, 0.0, 0.0]], 0, 1e-15)


def test_kl_negative_and_nan_targets_follow_rel_entr():
    # rel_entr(t < 0, q) = inf; NaN propagates; neither raises
    t = np.array([[-0.1, 1.1], [np.nan, 1.0], [0.0, 1.0]])
    q = np.full((3, 2), 0.5)
    got = fl.KLDivergence().loss(t, q, reduction="none")
    close(got, sps.rel_entr(t, q).sum(-1), 1e-14)
    assert np.isinf(got[0]) and np.isnan(got[1])


@pytest.mark.parametrize("from_logits", [False, True])
def test_kl_gradient_hessian_finite_differences(from_logits):
    rng = np.random.default_rng(63)
    z = row_data(rng, 30, 5, from_logits)
    t = kl_targets(rng, 30, 5)
    sw = rng.random(30) + 0.5
    kl = fl.KLDivergence(from_logits=from_logits)
    h = 1e-6
    g, hs = kl.gradient_hessian(t, z, sample_weight=sw)
    fd_g = fd_columns(lambda x: kl.loss(t, x, sample_weight=sw, reduction="none"), z, h)
    fd_h = fd_columns(lambda x: kl.gradient(t, x, sample_weight=sw, reduction="none"), z, h)
    close(g, fd_g, 1e-6, 1e-8)
    close(hs, fd_h, 1e-5, 1e-7)


# ======================================================================================
# Out buffers, in place, threads
# ======================================================================================

def _three_losses(rng, dtype):
    """(loss object, y_true, y_pred) for BCE (2-D), CCE (labels), CCE (soft) and KL."""
    n, k = 30, 4
    y, p = bce_data(rng, (n, k), True, dtype=dtype)
    z = row_data(rng, n, k, True, dtype)
    return [
        (fl.BinaryCrossEntropy(from_logits=True, pos_weight=np.array([1.0, 2, 3, 4])), y, p),
        (fl.CategoricalCrossEntropy(from_logits=True, class_weight=CW5[:k], ignore_index=-1),
         make_labels(rng, n, k, ignore=-1), z),
        (fl.CategoricalCrossEntropy(label_smoothing=0.1), soft_targets(rng, n, k, dtype),
         row_data(rng, n, k, False, dtype)),
        (fl.KLDivergence(from_logits=True), soft_targets(rng, n, k, dtype), z),
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_out_buffers(dtype):
    rng = np.random.default_rng(71)
    for obj, yt, yp in _three_losses(rng, dtype):
        rowwise = not isinstance(obj, fl.BinaryCrossEntropy)
        lshape = (yp.shape[0],) if rowwise else yp.shape
        sw = rng.random(yp.shape[0])
        want_l = obj.loss(yt, yp, sample_weight=sw, reduction="none")
        want_g, want_h = obj.gradient_hessian(yt, yp, sample_weight=sw)
        lo = np.full(lshape, np.nan, dtype)
        go = np.full(yp.shape, np.nan, dtype)
        ho = np.full(yp.shape, np.nan, dtype)
        r = obj.loss(yt, yp, sample_weight=sw, reduction="none", loss_out=lo)
        assert r is lo
        np.testing.assert_array_equal(lo, want_l)
        r = obj.gradient(yt, yp, sample_weight=sw, reduction="none", gradient_out=go)
        assert r is go
        np.testing.assert_array_equal(go, want_g)
        go[:] = np.nan
        lo[:] = np.nan
        val, r = obj.loss_gradient(yt, yp, sample_weight=sw, reduction="none", loss_out=lo,
                                   gradient_out=go)
        assert val is lo and r is go
        np.testing.assert_array_equal(lo, want_l)
        np.testing.assert_array_equal(go, want_g)
        go[:] = np.nan
        g, h = obj.gradient_hessian(yt, yp, sample_weight=sw, gradient_out=go, hessian_out=ho)
        assert g is go and h is ho
        np.testing.assert_array_equal(go, want_g)
        np.testing.assert_array_equal(ho, want_h)
        # wrong shape / dtype / layout -> ValueError naming the buffer
        other = np.float32 if dtype == np.float64 else np.float64
        bad_l = [np.empty(lshape, other), np.empty((lshape[0] + 1,) + lshape[1:], dtype)]
        if rowwise:
            bad_l.append(np.empty(yp.shape, dtype))     # row-wise loss_out is (n,)
        for b in bad_l:
            with pytest.raises(ValueError, match="loss_out"):
                obj.loss(yt, yp, reduction="none", loss_out=b)
        for b in (np.empty(yp.shape, other), np.empty(yp.shape[::-1], dtype).T,
                  np.empty((yp.shape[0], yp.shape[1] + 1), dtype)):
            with pytest.raises(ValueError, match="gradient_out"):
                obj.gradient(yt, yp, gradient_out=b)
            with pytest.raises(ValueError, match="hessian_out"):
                obj.gradient_hessian(yt, yp, hessian_out=b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("which", ["bce_logits", "bce_probs", "cce_logits", "cce_probs",
                                   "cce_soft"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gradient_out_is_y_pred_in_place(dtype, which, reduction):
    rng = np.random.default_rng(72)
    n, k = 3000, 7     # several row blocks
    if which.startswith("bce"):
        logits = which == "bce_logits"
        yt, yp = bce_data(rng, (n, k), logits, dtype=dtype)
        obj = fl.BinaryCrossEntropy(from_logits=logits, pos_weight=np.arange(1.0, k + 1),
                                    label_smoothing=0.1)
    else:
        logits = which != "cce_probs"
        yp = row_data(rng, n, k, logits, dtype)
        yt = soft_targets(rng, n, k, dtype) if which == "cce_soft" else \
            make_labels(rng, n, k, ignore=-100)
        obj = fl.CategoricalCrossEntropy(from_logits=logits, label_smoothing=0.1,
                                         ignore_index=-100, class_weight=np.arange(1.0, k + 1))
    # compare each method with itself out of place (gradient() and loss_gradient() may
    # differ in the last bit: their loops are compiled separately)
    want_g = obj.gradient(yt, yp.copy(), reduction=reduction)
    buf = yp.copy()
    g = obj.gradient(yt, buf, reduction=reduction, gradient_out=buf)
    assert g is buf
    np.testing.assert_array_equal(buf, want_g)
    want_l, want_g = obj.loss_gradient(yt, yp.copy(), reduction=reduction)
    buf = yp.copy()
    lv, g = obj.loss_gradient(yt, buf, reduction=reduction, gradient_out=buf)
    assert g is buf
    np.testing.assert_array_equal(buf, want_g)
    np.testing.assert_array_equal(lv, want_l)


def test_other_overlaps_rejected():
    z = np.random.default_rng(1).normal(size=(5, 3))
    lab = np.array([0, 1, 2, 0, 1])
    cce = fl.CategoricalCrossEntropy(from_logits=True)
    g = np.empty_like(z)
    with pytest.raises(ValueError, match="hessian_out"):
        cce.gradient_hessian(lab, z, gradient_out=g, hessian_out=g)
    with pytest.raises(ValueError, match="hessian_out"):
        cce.gradient_hessian(lab, z, hessian_out=z)


THREAD_CASES = ["bce_logits", "bce_probs_pw", "cce_labels", "cce_soft", "kl"]


def _thread_case(which, dtype):
    rng = np.random.default_rng(81)
    if which.startswith("bce"):
        logits = which == "bce_logits"
        yt, yp = bce_data(rng, (50_000, 5), logits, dtype=dtype)   # 250k elements
        obj = dict(from_logits=logits, label_smoothing=0.05,
                   pos_weight=None if logits else np.arange(1.0, 6.0))
        return fl.BinaryCrossEntropy, obj, yt, yp, rng.random(50_000).astype(dtype)
    n, k = 50_000, 10
    z = row_data(rng, n, k, True, dtype)
    sw = rng.random(n).astype(dtype)
    if which == "cce_labels":
        return (fl.CategoricalCrossEntropy,
                dict(from_logits=True, class_weight=np.arange(1.0, k + 1), ignore_index=-100,
                     label_smoothing=0.1), make_labels(rng, n, k, ignore=-100), z, sw)
    if which == "cce_soft":
        return (fl.CategoricalCrossEntropy, dict(from_logits=True),
                soft_targets(rng, n, k, dtype), z, sw)
    return fl.KLDivergence, dict(from_logits=True), soft_targets(rng, n, k, dtype), z, sw


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("which", THREAD_CASES)
def test_bit_identical_across_thread_counts(dtype, which):
    cls, params, yt, yp, sw = _thread_case(which, dtype)
    results = []
    for nt in (1, 2, 3, 7):
        obj = cls(n_threads=nt, **params)
        mean, g = obj.loss_gradient(yt, yp)
        s = obj.loss(yt, yp, reduction="sum")
        wmean, wg = obj.loss_gradient(yt, yp, sample_weight=sw)
        gh = obj.gradient_hessian(yt, yp)
        results.append((mean, s, wmean, g, wg) + tuple(gh))
    first = results[0]
    assert np.isfinite(first[0])
    for other in results[1:]:
        for a, b in zip(first[:3], other[:3]):
            assert a == b                 # reduced results: exactly the same float
        for a, b in zip(first[3:], other[3:]):
            np.testing.assert_array_equal(a, b)
    # the functional forms agree with the class (and with each other across threads)
    assert cls.functional(yt, yp, n_threads=3, **params) == first[0]


# ======================================================================================
# Shapes and parameters
# ======================================================================================

ROWWISE_CLASSES = [c for c in fl.LOSSES.values() if c.family == "rowwise"]   # every row-wise loss


@pytest.mark.parametrize("cls", ROWWISE_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("shape", [(6,), (2, 3, 4), (), (3, 0)])
def test_rowwise_y_pred_must_be_2d(cls, shape):
    yp = np.full(shape, 0.5)
    yt = np.full(shape, 0.5)
    names = {p.name for p in cls.params}
    obj = cls(**({"from_logits": True} if "from_logits" in names else {}))
    for method in ("loss", "gradient", "gradient_hessian"):
        with pytest.raises(ValueError, match="y_pred"):
            getattr(obj, method)(yt, yp)
    if cls.inputs({p.name: p.default for p in cls.params})["y_true"] == "labels" and len(shape) >= 1:
        with pytest.raises(ValueError, match="y_pred"):
            obj(np.zeros(shape[0], np.int64), yp)


@pytest.mark.parametrize("y_true", [
    np.zeros(5, np.int64), np.zeros(7, np.int32), np.zeros((6, 1), np.int64),
    np.zeros((6, 4), np.int64), np.zeros(6), np.zeros((6, 3)), np.zeros((4, 6)),
    np.zeros((6, 4, 1)),
], ids=["labels_short", "labels_long", "labels_2d", "int_onehot", "float_1d",
        "float_narrow", "float_transposed", "float_3d"])
def test_cce_y_true_shape_errors(y_true):
    z = np.zeros((6, 4))
    cce = fl.CategoricalCrossEntropy(from_logits=True)
    for method in ("loss", "gradient", "loss_gradient", "gradient_hessian"):
        with pytest.raises(ValueError, match="y_true"):
            getattr(cce, method)(y_true, z)


def test_kl_y_true_shape_errors():
    z = np.zeros((6, 4))
    kl = fl.KLDivergence(from_logits=True)
    for yt in (np.zeros(6), np.zeros((6, 3)), np.zeros(6, np.int64)):
        with pytest.raises(ValueError, match="y_true"):
            kl(yt, z)


def test_bce_y_true_shape_error():
    with pytest.raises(ValueError, match="y_true"):
        fl.BinaryCrossEntropy()(np.zeros(4), np.full((4, 1), 0.5))


def test_class_weight_length_mismatch():
    for n_cw in (3, 5):
        cce = fl.CategoricalCrossEntropy(from_logits=True, class_weight=np.ones(n_cw))
        for yt in (np.zeros(6, np.int64), np.zeros((6, 4))):
            with pytest.raises(ValueError, match="class_weight"):
                cce(yt, np.zeros((6, 4)))
            with pytest.raises(ValueError, match="class_weight"):
                cce.gradient_hessian(yt, np.zeros((6, 4)))


def test_pos_weight_length_and_shapes():
    p = np.full((6, 4), 0.5)
    for n_pw in (3, 6, 24):
        bce = fl.BinaryCrossEntropy(pos_weight=np.ones(n_pw))
        with pytest.raises(ValueError, match="pos_weight"):
            bce(np.zeros_like(p), p)
    # a 1-D pos_weight of y_pred's last-axis length works for any number of dimensions
    pw = np.array([1.0, 2.0, 3.0, 4.0])
    bce = fl.BinaryCrossEntropy(pos_weight=pw)
    y = np.ones((3, 2, 4))
    p3 = np.full((3, 2, 4), 0.5)
    close(bce.loss(y, p3, reduction="none"), np.broadcast_to(pw * np.log(2), p3.shape), 1e-15)
    close(bce.loss(np.ones(4), np.full(4, 0.5), reduction="none"), pw * np.log(2), 1e-15)
    with pytest.raises(ValueError, match="pos_weight"):
        bce(np.array(1.0), np.array(0.5))           # 0-d y_pred has no last axis


@pytest.mark.parametrize("cls, kw, name", [
    (fl.BinaryCrossEntropy, dict(label_smoothing=1.5), "label_smoothing"),
    (fl.BinaryCrossEntropy, dict(label_smoothing=-0.1), "label_smoothing"),
    (fl.BinaryCrossEntropy, dict(label_smoothing=np.nan), "label_smoothing"),
    (fl.BinaryCrossEntropy, dict(pos_weight=-1.0), "pos_weight"),
    (fl.BinaryCrossEntropy, dict(pos_weight=np.nan), "pos_weight"),
    (fl.BinaryCrossEntropy, dict(pos_weight=np.inf), "pos_weight"),
    (fl.BinaryCrossEntropy, dict(pos_weight=[1.0, -2.0]), "pos_weight"),
    (fl.BinaryCrossEntropy, dict(pos_weight=[1.0, np.nan]), "pos_weight"),
    (fl.BinaryCrossEntropy, dict(pos_weight=[]), "pos_weight"),
    (fl.BinaryCrossEntropy, dict(pos_weight=np.ones((2, 2))), "pos_weight"),
    (fl.CategoricalCrossEntropy, dict(label_smoothing=1.5), "label_smoothing"),
    (fl.CategoricalCrossEntropy, dict(label_smoothing=-0.1), "label_smoothing"),
    (fl.CategoricalCrossEntropy, dict(class_weight=[1.0, -1.0, 2.0]), "class_weight"),
    (fl.CategoricalCrossEntropy, dict(class_weight=[1.0, np.nan]), "class_weight"),
    (fl.CategoricalCrossEntropy, dict(class_weight=[1.0, np.inf]), "class_weight"),
    (fl.CategoricalCrossEntropy, dict(class_weight=2.0), "class_weight"),
    (fl.CategoricalCrossEntropy, dict(class_weight=np.ones((2, 2))), "class_weight"),
    (fl.KLDivergence, dict(n_threads=0), "n_threads"),
    (fl.CategoricalCrossEntropy, dict(n_threads=-2), "n_threads"),
])
def test_constructor_errors(cls, kw, name):
    with pytest.raises(ValueError, match=name):
        cls(**kw)
    func = getattr(fl, cls.function)             # the functional the registry made for it
    with pytest.raises(ValueError, match=name):
        func(np.zeros((2, 2)), np.full((2, 2), 0.5), **kw)


def test_cce_ignore_index_beyond_int64():
    try:
        cce = fl.CategoricalCrossEntropy(from_logits=True, ignore_index=2 ** 70)
    except ValueError as exc:
        assert "ignore_index" in str(exc)
        return
    z = np.zeros((2, 3))
    assert cce(np.array([0, 2]), z) == pytest.approx(np.log(3))


def test_constructor_boundaries_are_valid():
    for e in (0.0, 1.0):
        fl.BinaryCrossEntropy(label_smoothing=e)
        fl.CategoricalCrossEntropy(label_smoothing=e)
    fl.BinaryCrossEntropy(pos_weight=0.0)
    fl.CategoricalCrossEntropy(class_weight=[0.0, 1.0])
    # label_smoothing=1 makes BCE targets 0.5 whatever y_true is
    b = fl.BinaryCrossEntropy(from_logits=True, label_smoothing=1.0)
    assert b(np.array([0.0, 1.0]), np.array([0.0, 0.0])) == pytest.approx(np.log(2), rel=1e-15)


def test_repr_and_params_round_trip():
    import pickle
    objs = [fl.BinaryCrossEntropy(from_logits=True, pos_weight=np.array([1.0, 2.0]),
                                  label_smoothing=0.1),
            fl.CategoricalCrossEntropy(class_weight=[1.0, 2.0, 3.0], ignore_index=-100,
                                       label_smoothing=0.2, n_threads=2),
            fl.KLDivergence(from_logits=True)]
    z = np.random.default_rng(0).uniform(0.1, 0.9, size=(4, 3))
    for o in objs:
        r = repr(o)
        assert type(o).__name__ in r
        for key in o.get_params():
            assert key in r
        o2 = pickle.loads(pickle.dumps(o))
        assert repr(o2) == r
        if isinstance(o, fl.BinaryCrossEntropy):
            yt, yp = np.zeros((4, 2)), z[:, :2]
        elif isinstance(o, fl.CategoricalCrossEntropy):
            yt, yp = np.array([0, 1, 2, -100]), z
        else:
            yt, yp = z / z.sum(1, keepdims=True), z
        assert o(yt, yp) == o2(yt, yp)
