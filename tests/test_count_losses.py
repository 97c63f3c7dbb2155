"""Poisson, Gamma and Tweedie beyond the registry matrix: their gradients and hessians against
scikit-learn's ``gradient_hessian`` and XGBoost's documented ``reg:gamma`` / ``reg:tweedie``
formulas, torch's autograd of ``poisson_nll_loss``, continuity of Tweedie in its power, raw
predictions at the ends of exp's range, and the constructor errors."""
from __future__ import annotations

import numpy as np
import pytest

import fastloss as fl

POWERS = [-1.0, 0.0, 1.0, 1.2, 1.5, 1.999999, 2.0, 2.5, 3.0]


def _data(rng, n, positive):
    y = rng.poisson(2.0, n).astype(np.float64)
    if positive:
        y = y + rng.uniform(0.01, 1, n)
    z = rng.normal(size=n) * 2
    return y, z


def _close(got, want, rtol=1e-12, atol=0.0):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    bad = ~(np.abs(got - want) <= rtol * np.abs(want) + atol)
    assert not np.any(bad), (got[bad][:5], want[bad][:5])


# ---- XGBoost's documented gradient and hessian (independent code) --------------------------

def xgb_gamma(y, z):
    """reg:gamma (src/objective/regression_loss.h, GammaDeviance): grad 1 - y/exp(z),
    hess y/exp(z)."""
    return 1 - y / np.exp(z), y / np.exp(z)


def xgb_tweedie(y, z, rho):
    """reg:tweedie (src/objective/regression_obj.cu, TweedieRegression)."""
    grad = -y * np.exp((1 - rho) * z) + np.exp((2 - rho) * z)
    hess = -y * (1 - rho) * np.exp((1 - rho) * z) + (2 - rho) * np.exp((2 - rho) * z)
    return grad, hess


def test_gamma_gradient_hessian_equal_xgboost_reg_gamma():
    y, z = _data(np.random.default_rng(0), 1000, True)
    g, h = fl.Gamma().gradient_hessian(y, z)
    want_g, want_h = xgb_gamma(y, z)
    _close(g, want_g, atol=1e-15 * (1 + want_h))
    _close(h, want_h)


@pytest.mark.parametrize("power", [p for p in POWERS if p >= 1])
def test_tweedie_gradient_hessian_equal_xgboost_reg_tweedie(power):
    y, z = _data(np.random.default_rng(1), 1000, power >= 2)
    g, h = fl.Tweedie(power=power).gradient_hessian(y, z)
    want_g, want_h = xgb_tweedie(y, z, power)
    scale = np.exp((2 - power) * z) + y * np.exp((1 - power) * z)
    _close(g, want_g, rtol=0, atol=1e-15 * scale)
    _close(h, want_h, rtol=0, atol=2e-15 * scale * (1 + abs(power)))


# ---- scikit-learn's half losses: values, gradients and hessians ----------------------------

def _sk():
    return pytest.importorskip("sklearn._loss.loss")


@pytest.mark.parametrize("name,make", [
    ("poisson", lambda sk: (fl.Poisson(), sk.HalfPoissonLoss())),
    ("gamma", lambda sk: (fl.Gamma(), sk.HalfGammaLoss()))]
    + [(f"tweedie{p}", (lambda p: lambda sk: (fl.Tweedie(power=p),
                                               sk.HalfTweedieLoss(power=p)))(p)) for p in POWERS])
def test_equal_sklearn_half_losses_with_gradients_and_hessians(name, make):
    sk = _sk()
    ours, theirs = make(sk)
    positive = name == "gamma" or (name.startswith("tweedie") and float(name[7:]) >= 2)
    y, z = _data(np.random.default_rng(2), 500, positive)
    if name.startswith("tweedie") and float(name[7:]) <= 0:
        y = y - 1.5                                     # any real target for power <= 0
    l = ours.loss(y, z, reduction="none")
    g, h = ours.gradient_hessian(y, z)
    want_l = theirs.loss(y, z)
    want_g, want_h = theirs.gradient_hessian(y, z)
    mag = np.abs(want_l) + np.abs(want_g) + np.abs(want_h) + 1
    _close(l, want_l, rtol=0, atol=1e-13 * mag)
    _close(g, want_g, rtol=0, atol=1e-13 * mag)
    _close(h, want_h, rtol=0, atol=1e-13 * mag)


# ---- torch: poisson_nll_loss and its autograd ------------------------------------------------

@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("eps", [1e-8, 1e-3])
def test_poisson_equals_torch_with_autograd(log_input, full, eps):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    y = rng.poisson(3.0, 400).astype(np.float64)
    z = rng.normal(size=400) if log_input else rng.gamma(2.0, 1.0, 400)
    zt = torch.tensor(z, requires_grad=True)
    out = torch.nn.functional.poisson_nll_loss(zt, torch.tensor(y), log_input=log_input,
                                               full=full, eps=eps, reduction="mean")
    out.backward()
    loss, grad = fl.Poisson(log_input=log_input, full=full, eps=eps).loss_gradient(y, z)
    _close(loss, out.item(), rtol=1e-13)
    _close(grad, zt.grad.numpy(), rtol=1e-12, atol=1e-18)


# ---- Tweedie's continuity in the power -------------------------------------------------------

@pytest.mark.parametrize("at,other", [(1.0, lambda: fl.Poisson()), (2.0, lambda: fl.Gamma())])
@pytest.mark.parametrize("delta", [-1e-9, 1e-9, -1e-6, 1e-6])
def test_tweedie_continuous_at_one_and_two(at, other, delta):
    if at == 1.0 and delta < 0:
        pytest.skip("powers in (0, 1) are invalid")
    y, z = _data(np.random.default_rng(4), 1000, True)
    p = at + delta
    tw = fl.Tweedie(power=p)
    g, h = tw.gradient_hessian(y, z)
    g0, h0 = other().gradient_hessian(y, z)
    scale = np.exp(z) + y if at == 1 else 1 + y * np.exp(-z)
    # the derivatives differ from the limit by O(delta * |z| * terms)
    tol = 4 * abs(delta) * (1 + np.abs(z)) * scale * (1 + np.abs(z)) + 1e-15 * scale
    assert np.all(np.abs(g - g0) <= tol)
    assert np.all(np.abs(h - h0) <= tol)
    # The loss: the continuous part l - (1/a - y/b) tends to Poisson - 1 / Gamma - y (the
    # constants are large near the special powers, so the check is absolute, relative to them).
    a, b = 2 - p, 1 - p
    const = 1 / a - y / b
    part = tw.loss(y, z, reduction="none") - const
    limit = other().loss(y, z, reduction="none") - (1.0 if at == 1 else y)
    tol_l = 4 * abs(delta) * (1 + np.abs(z)) ** 2 * scale + 4e-15 * np.abs(const) + 1e-14
    assert np.all(np.abs(part - limit) <= tol_l)


def test_tweedie_at_exactly_one_and_two_is_poisson_and_gamma():
    y, z = _data(np.random.default_rng(5), 300, True)
    for p, other in ((1, fl.Poisson()), (2, fl.Gamma())):
        tw = fl.Tweedie(power=p)
        for method in ("loss", "gradient"):
            np.testing.assert_array_equal(getattr(tw, method)(y, z, reduction="none"),
                                          getattr(other, method)(y, z, reduction="none"))
        np.testing.assert_array_equal(tw.gradient_hessian(y, z)[1],
                                      other.gradient_hessian(y, z)[1])
    y0 = y - 2.0
    e = np.exp(z)
    _close(fl.Tweedie(power=0).loss(y0, z, reduction="none"), 0.5 * (e - y0) ** 2,
           rtol=1e-13, atol=1e-15)


# ---- raw predictions at the ends of exp's range ----------------------------------------------

BIG = {np.float64: 700.0, np.float32: 80.0}
OVER = {np.float64: 710.0, np.float32: 89.0}


@pytest.mark.parametrize("dt", [np.float64, np.float32])
@pytest.mark.parametrize("make", [lambda: fl.Poisson(), lambda: fl.Gamma()]
                         + [(lambda p: lambda: fl.Tweedie(power=p))(p) for p in POWERS])
def test_huge_raw_predictions_never_give_nan(dt, make):
    obj = make()
    for big in (BIG[dt], OVER[dt]):
        z = np.array([big, -big, big, -big, big, -big], dt)
        y = np.array([1.0, 1.0, 1e6, 1e6, 0.5, 3.0], dt)
        l = obj.loss(y, z, reduction="none")
        g, h = obj.gradient_hessian(y, z)
        for name, a in (("loss", l), ("gradient", g), ("hessian", h)):
            assert not np.any(np.isnan(a)), (name, big, a)


@pytest.mark.parametrize("dt", [np.float64, np.float32])
def test_overflow_gives_what_the_math_says(dt):
    over = OVER[dt]
    y = np.array([2.0, 2.0], dt)
    z = np.array([over, -over], dt)
    l = fl.Poisson().loss(y, z, reduction="none")
    g, h = fl.Poisson().gradient_hessian(y, z)
    assert l[0] == np.inf and g[0] == np.inf and h[0] == np.inf
    tiny = np.finfo(dt).tiny                        # exp(-over): subnormal, as the math says
    assert l[1] == dt(2 * over) and g[1] == -2 and 0 <= h[1] < tiny
    l = fl.Gamma().loss(y, z, reduction="none")
    g, h = fl.Gamma().gradient_hessian(y, z)
    assert l[0] == dt(over) and g[0] == 1 and 0 <= h[0] < 2 * tiny
    assert l[1] == np.inf and g[1] == -np.inf and h[1] == np.inf
    # a y*z that overflows too: still +inf, not inf - inf
    yy = np.array([np.finfo(dt).max], dt)
    assert fl.Poisson().loss(yy, np.array([over], dt), reduction="none")[0] == np.inf
    assert fl.Gamma().loss(np.array([1.0], dt), np.array([-np.inf], dt), reduction="none")[0] == np.inf


# ---- constructor errors ----------------------------------------------------------------------

@pytest.mark.parametrize("power", [0.5, 1e-9, 1 - 1e-12, np.nan, np.inf, -np.inf])
def test_tweedie_power_in_zero_one_raises(power):
    with pytest.raises(ValueError, match="power"):
        fl.Tweedie(power=power)
    with pytest.raises(ValueError, match="power"):
        fl.tweedie(np.ones(2), np.zeros(2), power=power)


@pytest.mark.parametrize("power", [True, "1.5", None])
def test_tweedie_power_type(power):
    with pytest.raises(TypeError, match="power"):
        fl.Tweedie(power=power)


@pytest.mark.parametrize("eps", [-1e-8, np.nan, np.inf])
def test_poisson_eps_raises(eps):
    with pytest.raises(ValueError, match="eps"):
        fl.Poisson(eps=eps)
