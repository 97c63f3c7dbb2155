"""BinaryFocal, Hinge, CategoricalFocal and MultiMargin (issue 11): against their peers
(torchvision's sigmoid_focal_loss, torch's multi_margin_loss, keras's categorical focal
formula, scikit-learn's hinge_loss), torch autograd gradients and double-backward hessians,
finite differences in numpy.longdouble, mpmath at the extremes, bit-for-bit reductions to the
cross-entropies at gamma = 0, and every error. (The registry matrix, fuzzing, fingerprint and
benchmark take them in through fastloss.LOSSES; this file holds what is particular to them.)

torchvision cannot be installed next to this torch (its wheel's operators fail to register),
so its sigmoid_focal_loss -- fifteen lines of torch -- is transcribed in references.py (`tv_focal`) and
differentiated by torch autograd, as the issue allows.
"""
import pickle

import numpy as np
import pytest

import fastloss as fl
from references import tv_focal

F64, F32 = np.dtype(np.float64), np.dtype(np.float32)
LD = np.longdouble


def _rng(seed):
    return np.random.default_rng(seed)


def _torch():
    return pytest.importorskip("torch")


def _rel(a, b, floor=1e-300):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / (np.abs(b) + floor))) if a.size else 0.0


# =============================================================================================
# BinaryFocal
# =============================================================================================

def _binary_data(seed, n=400, from_logits=True):
    rng = _rng(seed)
    z = rng.normal(size=n) * 3
    y = np.where(rng.random(n) < 0.5, (rng.random(n) < 0.4).astype(float), rng.random(n))
    return y, (z if from_logits else 1 / (1 + np.exp(-z)))


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_binary_focal_equals_torchvision(from_logits, gamma, alpha, smoothing):
    """Values and autograd gradients (of the mean and the sum) of torchvision's formula, with
    targets smoothed as y (1 - e) + e / 2 first; on logits also the hessian by double backward."""
    torch = _torch()
    y, x = _binary_data(int(gamma * 10) + (alpha is None), from_logits=from_logits)
    ys = y * (1 - smoothing) + smoothing / 2
    xt = torch.tensor(x, requires_grad=True)
    ref = tv_focal(torch, xt, torch.tensor(ys), -1 if alpha is None else alpha, gamma,
                   from_logits)
    g_ref, = torch.autograd.grad(ref.mean(), xt, create_graph=True)
    obj = fl.BinaryFocal(gamma=gamma, alpha=alpha, from_logits=from_logits,
                         label_smoothing=smoothing)
    assert _rel(obj.loss(y, x, reduction="none"), ref.detach().numpy()) < 1e-9
    assert abs(obj(y, x) - ref.mean().item()) <= 1e-12 * ref.mean().item()
    # torch's (1 - p_t) cancels for confident predictions: compare with a scale-aware floor
    g = obj.gradient(y, x)
    assert np.allclose(g, g_ref.detach().numpy(), rtol=1e-9, atol=1e-15)
    if from_logits:
        h_ref, = torch.autograd.grad(g_ref.sum(), xt)
        _, h = obj.gradient_hessian(y, x)
        assert np.allclose(h, h_ref.numpy() * x.size, rtol=1e-8, atol=1e-13)


def _focal_longdouble(y, x, gamma, alpha, from_logits):
    """The focal loss in numpy.longdouble, textbook form (BCE from log-sigmoids)."""
    y, x = np.asarray(y, LD), np.asarray(x, LD)
    if from_logits:
        ls = -np.log1p(np.exp(-x))           # log sigmoid(z)
        lsn = -np.log1p(np.exp(x))           # log sigmoid(-z)
        s, sn = np.exp(ls), np.exp(lsn)
    else:
        s, sn = x, 1 - x
        ls, lsn = np.log(s), np.log(sn)
    u = (1 - y) * s + y * sn
    at = LD(1) if alpha is None else alpha * y + (1 - alpha) * (1 - y)
    return at * u ** LD(gamma) * -(y * ls + (1 - y) * lsn)


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("alpha", [None, 0.25])
def test_binary_focal_hessian_matches_longdouble_differences(from_logits, gamma, alpha):
    """The hessian (second derivative w.r.t. the logit, or the probability) against central
    second differences of the loss computed in numpy.longdouble, and the gradient against
    first differences."""
    y, x = _binary_data(7, n=200, from_logits=from_logits)
    if not from_logits:
        x = np.clip(x, 1e-3, 1 - 1e-3)       # away from the clamps
    obj = fl.BinaryFocal(gamma=gamma, alpha=alpha, from_logits=from_logits)
    g, h = obj.gradient_hessian(y, x)
    xl = x.astype(LD)
    scale = np.abs(xl) + 1 if from_logits else np.minimum(xl, 1 - xl)
    f = lambda v: _focal_longdouble(y, v, gamma, alpha, from_logits)  # noqa: E731
    step = LD(1e-6) * scale
    fd_g = (f(xl + step) - f(xl - step)) / (2 * step)
    step = LD(1e-4) * scale
    fd_h = (f(xl + step) - 2 * f(xl) + f(xl - step)) / (step * step)
    assert np.allclose(g, fd_g.astype(np.float64), rtol=1e-7, atol=1e-12)
    assert np.allclose(h, fd_h.astype(np.float64), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_binary_focal_gamma0_is_bce_bit_for_bit(dtype, from_logits, smoothing):
    y, x = _binary_data(3, n=5000, from_logits=from_logits)
    y, x = y.astype(dtype), x.astype(dtype)
    w = _rng(4).uniform(0.1, 2, x.size).astype(dtype)
    focal = fl.BinaryFocal(gamma=0.0, from_logits=from_logits, label_smoothing=smoothing)
    bce = fl.BinaryCrossEntropy(from_logits=from_logits, label_smoothing=smoothing)
    for red in ("mean", "sum", "none"):
        for sw in (None, w):
            a = focal.loss(y, x, sample_weight=sw, reduction=red)
            b = bce.loss(y, x, sample_weight=sw, reduction=red)
            assert np.array_equal(a, b)
            la, ga = focal.loss_gradient(y, x, sample_weight=sw, reduction=red)
            lb, gb = bce.loss_gradient(y, x, sample_weight=sw, reduction=red)
            assert np.array_equal(la, lb) and np.array_equal(ga, gb)
            assert np.array_equal(focal.gradient(y, x, sample_weight=sw, reduction=red),
                                  bce.gradient(y, x, sample_weight=sw, reduction=red))
    for pa, pb in zip(focal.gradient_hessian(y, x, sample_weight=w),
                      bce.gradient_hessian(y, x, sample_weight=w)):
        assert np.array_equal(pa, pb)
    assert fl.binary_focal(y, x, gamma=0.0, from_logits=from_logits,
                           label_smoothing=smoothing) == bce(y, x)


def test_binary_focal_extreme_logits():
    """Confident predictions: tiny losses at full relative precision (against mpmath),
    infinite logits give the limits, no NaN from 0 * inf."""
    mpmath = pytest.importorskip("mpmath")
    obj = fl.BinaryFocal()
    z = np.array([30.0, 80.0, 700.0, 800.0, np.inf, -np.inf, -30.0])
    y = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    loss = obj.loss(y, z, reduction="none")
    g, h = obj.gradient_hessian(y, z)
    with mpmath.workdps(60):
        for i in range(4):
            zz = mpmath.mpf(float(z[i]))
            e = mpmath.exp(-zz)
            exact = (e / (1 + e)) ** 2 * mpmath.log1p(e)       # u = sigmoid(-z), bce = log1p(e)
            if exact > 1e-300:
                assert abs(loss[i] - exact) <= 4e-16 * exact, (z[i], loss[i], exact)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(g)) and np.all(np.isfinite(h))
    assert loss[4] == 0 and g[4] == 0 and h[4] == 0 and loss[5] == 0 and g[5] == 0
    # confidently wrong: linear loss, gradient +-1 (as BCE)
    lw = obj.loss(np.array([0.0, 1.0]), np.array([800.0, -800.0]), reduction="none")
    gw = obj.gradient(np.array([0.0, 1.0]), np.array([800.0, -800.0]), reduction="none")
    assert np.array_equal(lw, [800.0, 800.0]) and np.array_equal(gw, [1.0, -1.0])
    # float32: the same, no overflow
    l32 = obj.loss(y.astype(F32), z.astype(F32), reduction="none")
    assert np.all(np.isfinite(l32))
    # NaN propagates
    assert np.isnan(obj.loss(np.array([1.0]), np.array([np.nan])))


def test_binary_focal_errors():
    with pytest.raises(ValueError, match="gamma"):
        fl.BinaryFocal(gamma=-1.0)
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="gamma"):
            fl.BinaryFocal(gamma=bad)
    for bad in (-0.1, 1.5, np.nan):
        with pytest.raises(ValueError, match="alpha"):
            fl.BinaryFocal(alpha=bad)
    with pytest.raises(TypeError, match="alpha"):
        fl.BinaryFocal(alpha="0.25")
    with pytest.raises(ValueError, match="label_smoothing"):
        fl.BinaryFocal(label_smoothing=1.5)
    obj = fl.BinaryFocal(from_logits=False)
    p = np.full(100_003, 0.5)
    p[77_777] = 1.5
    for call in (lambda: obj(np.ones_like(p), p), lambda: obj.gradient_hessian(np.ones_like(p), p),
                 lambda: fl.BinaryFocal(from_logits=False, n_threads=2).loss_gradient(
                     np.ones_like(p), p)):
        with pytest.raises(ValueError, match=r"y_pred.*index 77777"):
            call()


# =============================================================================================
# Hinge
# =============================================================================================

@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("margin", [1.0, 0.5, 2.0])
def test_hinge_values_gradients_hessians(squared, margin):
    rng = _rng(11)
    y = rng.choice([-1.0, 0.0, 1.0], size=300)
    x = rng.normal(size=300) * 2
    s = np.where(y == 1, 1.0, -1.0)
    m = np.maximum(margin - s * x, 0)
    want = m * m if squared else m
    obj = fl.Hinge(squared=squared, margin=margin)
    assert np.allclose(obj.loss(y, x, reduction="none"), want, rtol=1e-15, atol=0)
    g, h = obj.gradient_hessian(y, x)
    assert np.allclose(g, -2 * s * m if squared else np.where(m > 0, -s, 0.0), rtol=1e-15)
    assert np.array_equal(h, np.where(m > 0, 2.0, 0.0) if squared else np.zeros(300))
    # torch autograd of the same expression (keras's Hinge / SquaredHinge)
    torch = _torch()
    xt = torch.tensor(x, requires_grad=True)
    mt = (margin - torch.tensor(s) * xt).clamp_min(0)
    lt = (mt * mt if squared else mt).mean()
    gt, = torch.autograd.grad(lt, xt)
    assert np.allclose(obj.gradient(y, x), gt.numpy(), rtol=1e-15, atol=1e-18)
    # at the kink the gradient is 0
    assert obj.gradient(np.array([1.0]), np.array([margin]), reduction="sum")[0] == 0


def test_hinge_equals_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = _rng(12)
    y = rng.choice([-1, 1], size=500)
    x = rng.normal(size=500)
    assert abs(fl.hinge(y, x) - metrics.hinge_loss(y, x)) < 1e-15
    # 0/1 labels: 0 is the negative class
    assert fl.hinge(np.where(y == 1, 1, 0), x) == fl.hinge(y, x)


def test_hinge_label_errors_name_y_true_and_index():
    obj = fl.Hinge()
    for bad in (0.5, 2.0, -2.0, np.inf, -np.inf, 1e-300):
        y = np.ones(100_003)
        y[54_321] = bad
        y[99_999] = 3.0
        for call in (lambda: obj(y, np.zeros_like(y)),
                     lambda: fl.Hinge(squared=True, n_threads=3).gradient(y, np.zeros_like(y)),
                     lambda: obj.gradient_hessian(y, np.zeros_like(y))):
            with pytest.raises(ValueError, match=r"y_true: labels must be -1, 0 or 1, found .* "
                                                 r"at index 54321"):
                call()
    y2 = np.ones((3, 4))
    y2[2, 1] = 7
    with pytest.raises(ValueError, match=r"index \(2, 1\)"):
        obj(y2, np.zeros((3, 4)))
    # NaN is not checked: it propagates
    assert np.isnan(obj(np.array([np.nan, 1.0]), np.zeros(2)))
    assert np.isnan(obj(np.array([1.0, 1.0]), np.array([np.nan, 0.0])))
    with pytest.raises(ValueError, match="margin"):
        fl.Hinge(margin=np.inf)
    with pytest.raises(TypeError, match="margin"):
        fl.Hinge(margin=None)


# =============================================================================================
# CategoricalFocal
# =============================================================================================

def _rows(seed, n=60, k=5):
    rng = _rng(seed)
    z = rng.normal(size=(n, k)) * 2
    y = rng.integers(0, k, n)
    t = rng.random((n, k)) ** 3
    t /= t.sum(1, keepdims=True)
    return z, y, t, rng.uniform(0.5, 2, k)


def _torch_categorical_focal(torch, x, target, gamma, w=None, e=0.0, ignore=None,
                             logits=True):
    """keras's CategoricalFocalCrossentropy formula in torch (alpha = class weights):
    -sum_c w_c t_c (1 - q_c)**gamma log q_c, torch's smoothing, ignored rows 0."""
    F = torch.nn.functional
    k = x.shape[1]
    q = F.softmax(x, 1) if logits else x
    lq = F.log_softmax(x, 1) if logits else torch.log(x).clamp(min=-100)
    if target.dtype == torch.int64:
        keep = (target != ignore) if ignore is not None else torch.ones_like(target, dtype=bool)
        t = F.one_hot(torch.where(keep, target, 0), k).double()
        t = (t * (1 - e) + e / k) * keep[:, None]
    else:
        t = target * (1 - e) + e / k
    if w is not None:
        t = t * w
    return -(t * (1 - q) ** gamma * lq).sum(1)


@pytest.mark.parametrize("logits", [True, False])
@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("form", ["labels", "dense"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_categorical_focal_equals_torch_autograd(logits, gamma, form, weighted, smoothing):
    """Values, the gradient of the mean (CCE's normalizer) and the hessian diagonal (double
    backward, one class at a time) of the formula in torch."""
    torch = _torch()
    z, y, t, cw = _rows(int(gamma * 7) + weighted)
    x = z if logits else np.exp(z) / np.exp(z).sum(1, keepdims=True)
    target = y if form == "labels" else t
    w = cw if weighted else None
    obj = fl.CategoricalFocal(gamma=gamma, class_weight=w, label_smoothing=smoothing,
                              from_logits=logits)
    xt = torch.tensor(x, requires_grad=True)
    tt = torch.tensor(target)
    lt = _torch_categorical_focal(torch, xt, tt, gamma, None if w is None else torch.tensor(w),
                                  smoothing, logits=logits)
    assert _rel(obj.loss(target, x, reduction="none"), lt.detach().numpy()) < 1e-12
    den = float(np.sum(w[y])) if (form == "labels" and weighted) else len(x)
    g_ref, = torch.autograd.grad(lt.sum() / den, xt, create_graph=True)
    value, g = obj.loss_gradient(target, x)
    assert abs(value - lt.sum().item() / den) <= 1e-13 * abs(value)
    assert np.allclose(g, g_ref.detach().numpy(), rtol=1e-11, atol=1e-15)
    H = np.empty_like(x)
    for j in range(x.shape[1]):
        hj, = torch.autograd.grad(g_ref[:, j].sum(), xt, retain_graph=True)
        H[:, j] = hj[:, j].numpy() * den
    _, h = obj.gradient_hessian(target, x)
    assert np.allclose(h, H, rtol=1e-10, atol=1e-13)


def test_categorical_focal_ignore_index_and_mean_normalizer():
    """ignore_index rows are 0 and leave the normalizer (torch's: the sum of the class
    weights of the labels of the other rows), sample weights multiply each row's share."""
    torch = _torch()
    z, y, _, cw = _rows(5)
    y[::4] = -100
    sw = _rng(6).uniform(0.5, 2, len(y))
    obj = fl.CategoricalFocal(class_weight=cw, ignore_index=-100)
    per = _torch_categorical_focal(torch, torch.tensor(z), torch.tensor(y), 2.0,
                                   torch.tensor(cw), ignore=-100).numpy()
    keep = y != -100
    want = np.sum(sw * per) / np.sum(sw[keep] * cw[y[keep]])
    assert abs(obj(y, z, sample_weight=sw) - want) <= 1e-14 * want
    assert np.all(obj.loss(y, z, reduction="none")[~keep] == 0)
    assert np.all(obj.gradient(y, z)[~keep] == 0)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("logits", [True, False])
@pytest.mark.parametrize("form", ["labels", "dense"])
def test_categorical_focal_gamma0_is_cce_bit_for_bit(dtype, logits, form):
    z, y, t, cw = _rows(8, n=3000, k=7)
    y[::9] = -1
    x = (z if logits else np.exp(z) / np.exp(z).sum(1, keepdims=True)).astype(dtype)
    target = y if form == "labels" else t.astype(dtype)
    sw = _rng(9).uniform(0.1, 2, len(x)).astype(dtype)
    for kw in ({}, {"class_weight": cw}, {"label_smoothing": 0.1},
               {"ignore_index": -1, "class_weight": cw, "label_smoothing": 0.2}):
        if form == "dense" and "ignore_index" in kw:
            kw = {k: v for k, v in kw.items() if k != "ignore_index"}
        if form == "labels" and "ignore_index" not in kw:
            target = np.where(y < 0, 0, y)
        elif form == "labels":
            target = y
        focal = fl.CategoricalFocal(gamma=0.0, from_logits=logits, **kw)
        cce = fl.CategoricalCrossEntropy(from_logits=logits, **kw)
        for red in ("mean", "sum", "none"):
            for w in (None, sw):
                assert np.array_equal(focal.loss(target, x, sample_weight=w, reduction=red),
                                      cce.loss(target, x, sample_weight=w, reduction=red))
                la, ga = focal.loss_gradient(target, x, sample_weight=w, reduction=red)
                lb, gb = cce.loss_gradient(target, x, sample_weight=w, reduction=red)
                assert np.array_equal(la, lb) and np.array_equal(ga, gb)
        for a, b in zip(focal.gradient_hessian(target, x, sample_weight=sw),
                        cce.gradient_hessian(target, x, sample_weight=sw)):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_categorical_focal_confident_row_keeps_relative_precision(dtype):
    """1 - q of a confident, correct row is formed from the other classes' terms, not as
    1 - q: the loss (~1e-35 at a logit gap of 40) keeps its relative precision (mpmath)."""
    mpmath = pytest.importorskip("mpmath")
    gaps = [5.0, 12.0, 20.0, 40.0] if dtype == F64 else [5.0, 8.0, 12.0]
    z = np.array([[g, 0.0, -1.0] for g in gaps], dtype)
    y = np.zeros(len(gaps), np.int64)
    obj = fl.CategoricalFocal(gamma=2.0)
    loss = obj.loss(y, z, reduction="none")
    g, h = obj.gradient_hessian(y, z)
    with mpmath.workdps(80):
        for i, gap in enumerate(gaps):
            zz = [mpmath.mpf(float(v)) for v in z[i]]
            s = sum(mpmath.exp(v) for v in zz)
            q = [mpmath.exp(v) / s for v in zz]
            m = 1 - q[0]
            lq = zz[0] - mpmath.log(s)
            exact = -(m ** 2) * lq
            tol = 8 * float(np.finfo(dtype).eps)
            assert abs(float(loss[i]) - exact) <= tol * exact, (gap, loss[i], exact)
            # the label's gradient -m v (no cancellation): v = m^2 (1 - 2 q log q / m)
            v = m ** 2 * (1 - 2 * q[0] * lq / m)
            assert abs(float(g[i, 0]) + m * v) <= tol * m * v
    assert np.all(loss > 0) and np.all(h >= 0)


def test_categorical_focal_errors():
    obj = fl.CategoricalFocal()
    z = np.zeros((10, 3))
    with pytest.raises(ValueError, match=r"y_true: class label 3 at index 7"):
        obj(np.r_[np.zeros(7, int), 3, 0, 0], z)
    with pytest.raises(ValueError, match="gamma"):
        fl.CategoricalFocal(gamma=-0.5)
    with pytest.raises(ValueError, match="class_weight"):
        obj.__class__(class_weight=[1.0, 2.0])(np.zeros(10, int), z)
    with pytest.raises(ValueError, match="y_true"):
        obj(np.zeros((10, 4)), z)


# =============================================================================================
# MultiMargin
# =============================================================================================

@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("margin", [1.0, 0.3, 2.5])
@pytest.mark.parametrize("weighted", [False, True])
def test_multi_margin_equals_torch(p, margin, weighted):
    torch = _torch()
    F = torch.nn.functional
    rng = _rng(p * 10 + weighted)
    n, k = 80, 6
    x = rng.normal(size=(n, k))
    y = rng.integers(0, k, n)
    cw = rng.uniform(0.3, 2, k) if weighted else None
    obj = fl.MultiMargin(p=p, margin=margin, class_weight=cw)
    xt = torch.tensor(x, requires_grad=True)
    wt = None if cw is None else torch.tensor(cw)
    per = F.multi_margin_loss(xt, torch.tensor(y), p=p, margin=margin, weight=wt,
                              reduction="none")
    mean = F.multi_margin_loss(xt, torch.tensor(y), p=p, margin=margin, weight=wt)
    assert np.allclose(obj.loss(y, x, reduction="none"), per.detach().numpy(), rtol=1e-15,
                       atol=1e-16)
    value, g = obj.loss_gradient(y, x)
    assert abs(value - mean.item()) <= 1e-15 * max(1.0, abs(value))
    g_ref, = torch.autograd.grad(mean, xt, create_graph=True)
    assert np.allclose(g, g_ref.detach().numpy(), rtol=1e-14, atol=1e-17)
    # sample weights: numpy.average of the rows
    sw = rng.uniform(0.1, 3, n)
    want = np.average(per.detach().numpy(), weights=sw)
    assert abs(obj(y, x, sw) - want) <= 1e-14 * want
    # hessian diagonal: 0 for p = 1; for p = 2 double backward of the formula written out
    # (torch has no double backward for multi_margin_loss itself)
    _, h = obj.gradient_hessian(y, x)
    if p == 1:
        assert np.all(h == 0)
    else:
        rows = torch.arange(n)
        yt = torch.tensor(y)
        m = (margin - xt[rows, yt][:, None] + xt).clamp_min(0)
        other = torch.ones(n, k, dtype=torch.float64)
        other[rows, yt] = 0
        wy = torch.ones(n, dtype=torch.float64) if cw is None else torch.tensor(cw)[yt]
        lt = (wy[:, None] * other * m ** 2).sum() / k
        g1, = torch.autograd.grad(lt, xt, create_graph=True)
        H = np.empty_like(x)
        for j in range(k):
            hj, = torch.autograd.grad(g1[:, j].sum(), xt, retain_graph=True)
            H[:, j] = hj[:, j].numpy()
        assert np.allclose(h, H, rtol=1e-14, atol=1e-16)


def test_multi_margin_labels_checked():
    obj = fl.MultiMargin()
    x = np.zeros((50_000, 4))
    for bad, where in ((4, 31_337), (-1, 12), (2**40, 49_999)):
        y = np.zeros(50_000, np.int64)
        y[where] = bad
        for call in (lambda: obj(y, x), lambda: obj.gradient_hessian(y, x),
                     lambda: fl.MultiMargin(p=2, n_threads=3).loss_gradient(y, x)):
            with pytest.raises(ValueError, match=rf"y_true: class label {bad} at index {where} "
                                                 rf"is outside \[0, n_classes\)$"):
                call()
    big = np.zeros(3, np.uint64)
    big[1] = 2**63 + 5
    with pytest.raises(ValueError, match="index 1"):
        obj(big, np.zeros((3, 4)))
    with pytest.raises(TypeError, match="MultiMargin takes integer class labels"):
        obj(np.zeros(3), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="y_true"):
        obj(np.zeros((3, 4)), np.zeros((3, 4)))
    for bad in (0, 3, 1.5, True):
        with pytest.raises((ValueError, TypeError), match="p"):
            fl.MultiMargin(p=bad)
    with pytest.raises(ValueError, match="margin"):
        fl.MultiMargin(margin=np.nan)


def test_multi_margin_nan_and_inf_scores():
    obj = fl.MultiMargin()
    x = np.array([[0.0, np.nan, 1.0], [np.inf, 0.0, 1.0]])
    loss = obj.loss(np.array([0, 0]), x, reduction="none")
    assert np.isnan(loss[0]) and loss[1] == 0        # x_y = +inf: every margin is met


# =============================================================================================
# Registry: functional, pickling, docs
# =============================================================================================

@pytest.mark.parametrize("name", ["binary_focal", "hinge", "categorical_focal", "multi_margin"])
def test_declared_pickled_documented(name):
    cls = fl.LOSSES[name]
    f = getattr(fl, name)
    assert f.__name__ == name and pickle.loads(pickle.dumps(f)) is f
    obj = cls()
    back = pickle.loads(pickle.dumps(obj))
    assert type(back) is cls and back.get_params() == obj.get_params()
    assert "Examples" in cls.__doc__ and "Parameters" in cls.__doc__
    assert cls.__name__ in fl.__all__ and name in fl.__all__
