"""Second-wave elementwise regression losses: what the registry matrix (tests/test_registry.py)
does not pin by itself -- constructor errors, the conventions at the kinks, the extremes, the
domain errors, and the peers' gradients and hessians. Peers are skipped where not installed."""
import numpy as np
import pytest

import fastloss as fl
from references import xgboost_pseudo_huber_grad_hess

RNG = np.random.default_rng(20261201)


# ---- constructor checks --------------------------------------------------------------------

@pytest.mark.parametrize("cls,name,bad", [
    (fl.Quantile, "quantile", [0.0, 1.0, -0.1, 1.5, np.nan, np.inf]),
    (fl.SmoothL1, "beta", [-1.0, -1e-300, np.nan, np.inf]),
    (fl.PseudoHuber, "delta", [0.0, -1.0, np.nan, np.inf]),
])
def test_bad_parameters_raise(cls, name, bad):
    for v in bad:
        with pytest.raises(ValueError, match=name):
            cls(**{name: v})
    with pytest.raises(TypeError, match=name):
        cls(**{name: "1"})
    with pytest.raises(TypeError, match=name):
        cls(**{name: True})


def test_functionals_take_the_parameters():
    t, p = np.zeros(3), np.array([-0.75, 0.5, 2.0])
    assert fl.quantile(t, p, quantile=0.25) == fl.Quantile(quantile=0.25).loss(t, p)
    assert fl.smooth_l1(t, p, beta=0.0) == fl.SmoothL1(beta=0.0).loss(t, p)
    assert fl.pseudo_huber(t, p, delta=3.0) == fl.PseudoHuber(delta=3.0).loss(t, p)
    assert fl.mean_squared_log_error(t, p) == fl.MeanSquaredLogError().loss(t, p)


# ---- Quantile --------------------------------------------------------------------------------

@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
def test_quantile_kink_and_exact_zero_hessian(dt, q):
    t = np.array([0.0, 1.0, 1.0, 2.0], dt)
    p = np.array([0.0, 0.0, 1.0, 3.0], dt)
    obj = fl.Quantile(quantile=q)
    g, h = obj.gradient_hessian(t, p)
    qd = dt(q)
    np.testing.assert_array_equal(g, np.array([1 - q, -q, 1 - q, 1 - q]).astype(dt))
    assert np.all(h == 0) and not np.any(np.signbit(h))
    l = obj.loss(t, p, reduction="none")
    np.testing.assert_allclose(l, [0, qd * 1, 0, (1 - qd) * 1], rtol=1e-6)
    assert not np.any(np.signbit(l))
    gn, hn = obj.gradient_hessian(np.array([np.nan, 0.0]), np.array([0.0, np.nan]))
    assert np.all(np.isnan(gn)) and np.all(np.isnan(hn))


def test_quantile_against_sklearn_pinball():
    L = pytest.importorskip("sklearn._loss.loss")
    metrics = pytest.importorskip("sklearn.metrics")
    t = RNG.normal(size=500)
    p = RNG.normal(size=500)
    p[::7] = t[::7]                                   # the kink
    kink = t == p
    w = RNG.random(500)
    for q in (0.1, 0.5, 0.9):
        sk = L.PinballLoss(quantile=q)
        g_sk, h_sk = sk.gradient_hessian(t, p)
        g, h = fl.Quantile(quantile=q).gradient_hessian(t, p)
        np.testing.assert_array_equal(g[~kink], g_sk[~kink])
        # the documented difference at the kink: the contract's 1 - q, scikit-learn's -q
        # (both subgradients)
        assert np.all(g[kink] == 1 - q) and np.all(g_sk[kink] == -q)
        np.testing.assert_array_equal(sk.loss(t, p), fl.Quantile(quantile=q).loss(
            t, p, reduction="none"))
        # the documented difference: scikit-learn's pinball hessian is 1, ours exactly 0
        assert np.all(h_sk == 1) and np.all(h == 0)
        np.testing.assert_allclose(fl.quantile(t, p, quantile=q, sample_weight=w),
                                   metrics.mean_pinball_loss(t, p, alpha=q, sample_weight=w),
                                   rtol=1e-13)


# ---- SmoothL1 --------------------------------------------------------------------------------

@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_smooth_l1_beta_zero_is_l1_without_nan(dt):
    t = np.zeros(5, dt)
    p = np.array([-2.0, -1e-30, 0.0, 1e-30, 3.0], dt)
    obj, mae = fl.SmoothL1(beta=0.0), fl.MeanAbsoluteError()
    for red in ("none", "sum", "mean"):
        np.testing.assert_array_equal(obj.loss(t, p, reduction=red), mae.loss(t, p, reduction=red))
        np.testing.assert_array_equal(obj.gradient(t, p, reduction=red),
                                      mae.gradient(t, p, reduction=red))
    g, h = obj.gradient_hessian(t, p)
    np.testing.assert_array_equal(g, [-1, -1, 0, 1, 1])
    assert np.all(h == 0)


def test_smooth_l1_is_huber_over_beta():
    t, p = RNG.normal(size=200), RNG.normal(size=200) * 3
    for beta in (0.5, 1.0, 2.0):
        np.testing.assert_allclose(fl.SmoothL1(beta=beta).loss(t, p, reduction="none") * beta,
                                   fl.Huber(delta=beta).loss(t, p, reduction="none"),
                                   rtol=1e-15, atol=0)


def test_smooth_l1_gradient_against_torch_autograd():
    torch = pytest.importorskip("torch")
    t, p = RNG.normal(size=300), RNG.normal(size=300) * 2
    for beta in (0.0, 0.5, 1.0, 2.0):
        x = torch.from_numpy(p.copy()).requires_grad_()
        out = torch.nn.functional.smooth_l1_loss(x, torch.from_numpy(t), beta=beta)
        out.backward()
        loss, grad = fl.SmoothL1(beta=beta).loss_gradient(t, p)
        np.testing.assert_allclose(loss, out.item(), rtol=1e-13)
        np.testing.assert_allclose(grad, x.grad.numpy(), rtol=1e-13, atol=1e-300)


# ---- PseudoHuber -----------------------------------------------------------------------------

@pytest.mark.parametrize("dt,big", [(np.float64, 1e200), (np.float32, 1e30)])
def test_pseudo_huber_extremes(dt, big):
    p = np.array([big, -big, np.inf, -np.inf, 1e-8, 0.0, np.nan], dt)
    t = np.zeros_like(p)
    for delta in (0.5, 1.0, 3.0):
        obj = fl.PseudoHuber(delta=delta)
        l = obj.loss(t, p, reduction="none")
        g, h = obj.gradient_hessian(t, p)
        B = float(dt(big))
        # delta**2 (sqrt(1 + (B/delta)**2) - 1) = delta B - delta**2 + O(1/B)
        np.testing.assert_allclose(l[:2], delta * B - delta ** 2, rtol=4 * np.finfo(dt).eps)
        assert l[2] == np.inf and l[3] == np.inf
        np.testing.assert_array_equal(g[:4], dt(delta) * np.array([1, -1, 1, -1], dt))
        assert np.all(h[:4] == 0)
        np.testing.assert_allclose(l[4], float(dt(1e-8)) ** 2 / 2, rtol=2 * np.finfo(dt).eps)
        r2 = (float(dt(1e-8)) / delta) ** 2
        np.testing.assert_allclose(g[4], float(dt(1e-8)) / np.sqrt(1 + r2), rtol=2 * np.finfo(dt).eps)
        np.testing.assert_allclose(h[4], (1 + r2) ** -1.5, rtol=2 * np.finfo(dt).eps)
        assert l[5] == 0 and g[5] == 0 and h[5] == 1
        assert np.isnan(l[6]) and np.isnan(g[6]) and np.isnan(h[6])


def test_pseudo_huber_against_xgboost_formulas():
    """XGBoost's documented reg:pseudohubererror gradient and hessian, as independent code
    (tests/references.py); xgboost itself is not needed."""
    t, p = RNG.normal(size=1000), RNG.normal(size=1000) * 4
    for slope in (0.5, 1.0, 3.0):
        g_x, h_x = xgboost_pseudo_huber_grad_hess(t, p, slope)
        g, h = fl.PseudoHuber(delta=slope).gradient_hessian(t, p)
        np.testing.assert_allclose(g, g_x, rtol=1e-14)
        np.testing.assert_allclose(h, h_x, rtol=1e-14)


# ---- MeanSquaredLogError ---------------------------------------------------------------------

@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_msle_domain_errors(dt):
    obj = fl.MeanSquaredLogError()
    ok = np.array([0.0, 1.0, -0.5, np.nextafter(dt(-1), dt(0)), 3.0], dt)
    assert np.isfinite(obj.loss(ok, ok[::-1]))
    for arg in ("y_true", "y_pred"):
        for bad in (-1.0, -2.0, -np.inf):
            a = ok.copy()
            a[3] = bad
            t, p = (a, ok) if arg == "y_true" else (ok, a)
            for call in (obj.loss, obj.gradient, obj.loss_gradient, obj.gradient_hessian):
                with pytest.raises(ValueError, match=rf"^{arg}: .*> -1.*index 3"):
                    call(t, p)
    # both at the same index: y_true; the first offending index wins across the arguments
    t, p = ok.copy(), ok.copy()
    t[2] = p[2] = -1
    with pytest.raises(ValueError, match=r"^y_true: .*index 2"):
        obj.loss(t, p)
    t, p = ok.copy(), ok.copy()
    t[4], p[1] = -3, -3
    with pytest.raises(ValueError, match=r"^y_pred: .*index 1"):
        obj.loss(t, p)
    # NaN is not a domain error: it propagates
    t = ok.copy()
    t[0] = np.nan
    assert np.isnan(obj.loss(t, ok))


def test_msle_against_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    t = np.expm1(RNG.normal(size=400))
    p = np.expm1(RNG.normal(size=400))
    w = RNG.random(400)
    np.testing.assert_allclose(fl.mean_squared_log_error(t, p),
                               metrics.mean_squared_log_error(t, p), rtol=1e-13)
    np.testing.assert_allclose(fl.mean_squared_log_error(t, p, sample_weight=w),
                               metrics.mean_squared_log_error(t, p, sample_weight=w),
                               rtol=1e-13)
