"""The public losses, each declared once (see `fastloss._registry` for what a declaration holds).

The methods come from `fastloss._base.Loss`, the math from the loss's block in
``_elementwise_losses.pxi`` or ``_rowwise_losses.pxi``; constructors, functionals
(``fl.huber``, ...) and ``__all__`` are made from these declarations.
"""
from __future__ import annotations

import numpy as np

from fastloss import _validation as _v
from fastloss._base import Loss
from fastloss._registry import LOSSES, Kernel, Param, exported_names, register

PROBABILITY_ERROR = ("probabilities must lie in [0, 1], found {value!r} at index {index} "
                     "(pass from_logits=True for logits)")
FROM_LOGITS = Param("from_logits", False, _v.boolean, "bool",
                    "Whether ``y_pred`` holds logits rather than probabilities.", (True,))


@register
class MeanSquaredError(Loss):
    """Mean squared error, elementwise: ``l = (y_pred - y_true)**2``.

    Gradient ``2 d``, hessian ``2`` (``d = y_pred - y_true``). Any shape; ``y_true`` and
    ``y_pred`` of the same shape. Reductions, weights and dtypes as in `Loss.loss`; equals
    ``torch.nn.functional.mse_loss`` for the unweighted mean.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> fl.MeanSquaredError()(np.array([0.0, 1.0]), np.array([1.0, 3.0]))
    2.5
    >>> fl.MeanSquaredError().gradient(np.array([0.0, 1.0]), np.array([1.0, 3.0]))
    array([1., 2.])
    """
    function = "mean_squared_error"
    family = "elementwise"
    params = ()
    __slots__ = ()

    def kernel(p):
        return Kernel("MeanSquaredError")

    def inputs(p):
        return {"y_true": "real", "y_pred": "real"}


@register
class MeanAbsoluteError(Loss):
    """Mean absolute error, elementwise: ``l = abs(y_pred - y_true)``.

    Gradient ``sign(d)`` with 0 at ``d == 0`` (as ``numpy.sign``), hessian 0.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> fl.MeanAbsoluteError().loss(np.zeros(3), np.array([-1.0, 0.0, 2.0]), reduction="sum")
    3.0
    """
    function = "mean_absolute_error"
    family = "elementwise"
    params = ()
    __slots__ = ()

    def kernel(p):
        return Kernel("MeanAbsoluteError")

    def inputs(p):
        return {"y_true": "real", "y_pred": "real"}


@register
class Huber(Loss):
    """Huber loss, elementwise, with ``d = y_pred - y_true``::

        l = 0.5 * d**2                     if abs(d) < delta
            delta * (abs(d) - 0.5 * delta)  otherwise

    Gradient ``d`` or ``delta * sign(d)``; hessian 1 inside, 0 outside. Equals
    ``torch.nn.functional.huber_loss(..., delta=delta)``.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> fl.Huber(delta=1.0).loss(np.zeros(2), np.array([0.5, 3.0]), reduction="none")
    array([0.125, 2.5  ])
    """
    function = "huber"
    family = "elementwise"
    params = (Param("delta", 1.0, _v.positive, "float",
                    "The threshold, finite and > 0.", (0.7, 1e-3, 3.0)),)
    __slots__ = ()

    def kernel(p):
        return Kernel("Huber", {"delta": p["delta"]})

    def inputs(p):
        return {"y_true": "real", "y_pred": "real"}


@register
class BinaryCrossEntropy(Loss):
    """Binary cross-entropy, elementwise::

        l = -(pw * y * log(p) + (1 - y) * log(1 - p)),   y = y_true * (1 - e) + e / 2

    with ``p = y_pred`` (probabilities) or ``p = sigmoid(y_pred)`` (``from_logits=True``).
    ``y_true`` may be soft (any value in [0, 1]; it is not checked).

    Conventions (PyTorch's): on probabilities each log is clamped at -100 and the gradient is
    ``(p*(1 + (pw-1) y) - pw*y) / max(p*(1-p), 1e-12)`` as
    ``torch.nn.functional.binary_cross_entropy``; probabilities outside [0, 1] raise
    ValueError naming the first offending index (NaN propagates). On logits, the stable form
    ``(1 + (pw-1) y) * log1p(exp(-|z|)) + ((1-y) z if z >= 0 else -pw y z)``, which neither
    overflows (|z| = 800 in float64, 90 in float32) nor loses tiny losses to cancellation;
    it equals ``binary_cross_entropy_with_logits`` with ``pos_weight``. The hessian is
    ``(1 + (pw-1) y) sigmoid(z) sigmoid(-z)`` on logits and
    ``pw y / max(p^2, 1e-12) + (1-y) / max((1-p)^2, 1e-12)`` on probabilities.

    Notes
    -----
    exp/log/log1p come from glibc's vector math library where available (within 4 ulp).
    Measured max relative error of the loss against a ``numpy.longdouble`` reference over
    logits in [-50, 50]: see ``tests/test_cross_entropy.py::test_bce_accuracy``
    (float64: below 1e-14; float32: below 1e-6).

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> bce = fl.BinaryCrossEntropy(from_logits=True)
    >>> round(bce(np.array([1.0, 0.0]), np.array([2.0, -1.0])), 6)
    0.220095
    """
    function = "binary_cross_entropy"
    family = "elementwise"
    params = (
        FROM_LOGITS,
        Param("pos_weight", None, _v.weights_or_scalar, "float or 1-D array",
              "Weight ``pw`` of the positive term: a scalar, or one per entry of ``y_pred``'s "
              "last axis. Finite and >= 0.", (2.0, 0.5)),
        Param("label_smoothing", 0.0, _v.unit_interval, "float in [0, 1]", "``e`` above.",
              (0.1,)),
    )
    __slots__ = ()

    def kernel(p):
        e = p["label_smoothing"]
        smoothing = {"smooth_scale": 1 - e, "smooth_shift": e / 2}
        if p["from_logits"]:
            return Kernel("BinaryCrossEntropyLogits", smoothing, column=p["pos_weight"],
                          column_name="pos_weight")
        return Kernel("BinaryCrossEntropyProbabilities", smoothing, column=p["pos_weight"],
                      column_name="pos_weight", errors={"y_pred": PROBABILITY_ERROR})

    def inputs(p):
        return {"y_true": "binary", "y_pred": "logit" if p["from_logits"] else "probability"}


@register
class CategoricalCrossEntropy(Loss):
    """Categorical cross-entropy over the last axis, one loss per row::

        l = -sum_c w_c * t_c * log(q_c)

    ``y_pred`` has shape ``(n_samples, n_classes)``: probabilities ``q`` (each log clamped
    at -100, not renormalized), or logits with ``from_logits=True`` (``q = softmax``, its
    log-sum-exp computed stably in the same pass). ``y_true`` is either integer class labels
    of shape ``(n_samples,)`` or float targets of ``y_pred``'s shape (one-hot or soft).
    Label smoothing ``e``: ``t = (1 - e) * t + e / n_classes``. ``w`` is ``class_weight``.

    Matches ``torch.nn.functional.cross_entropy`` (``weight=class_weight``,
    ``ignore_index``, ``label_smoothing``) including its ``"mean"`` normalizer: the sum of
    ``class_weight[label]`` (times ``sample_weight``) over non-ignored rows for labels, the
    (weighted) number of rows for float targets. Ignored rows have loss and gradient 0; if
    every row is ignored the mean is NaN. Labels outside ``[0, n_classes)`` other than
    ``ignore_index`` raise ValueError naming the first offending row; nothing is read out of
    bounds. Integer labels of other dtypes than int64 are converted to int64.

    Gradient w.r.t. logits ``q_j A - a_j`` and hessian ``A q_j (1 - q_j)`` where
    ``a_j = w_j t_j`` and ``A = sum_j a_j``; w.r.t. probabilities ``-a_j / q_j`` and
    ``a_j / q_j**2`` (0 where the log is clamped).

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> cce = fl.CategoricalCrossEntropy(from_logits=True)
    >>> round(cce(np.array([0, 2]), np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])), 6)
    0.669079
    """
    function = "categorical_cross_entropy"
    family = "rowwise"
    params = (
        FROM_LOGITS,
        Param("class_weight", None, _v.weights_1d, "1-D array of length n_classes",
              "Finite, >= 0."),
        Param("label_smoothing", 0.0, _v.unit_interval, "float in [0, 1]",
              "``e`` above.", (0.1,)),
        Param("ignore_index", None, _v.index_or_none, "int",
              "A label value whose rows are ignored (PyTorch uses -100).", (-100,)),
    )
    __slots__ = ()

    def kernel(p):
        return Kernel("CategoricalCrossEntropy",
                      inputs="softmax" if p["from_logits"] else "probabilities", labels=True,
                      class_weight=p["class_weight"], label_smoothing=p["label_smoothing"],
                      ignore_index=p["ignore_index"])

    def inputs(p):
        return {"y_true": "labels", "y_pred": "logit" if p["from_logits"] else "probability"}


@register
class KLDivergence(Loss):
    """Kullback-Leibler divergence KL(t || q) over the last axis, one value per row::

        l = sum_c t_c * (log(t_c) - log(q_c)),   0 * log(0) = 0

    ``t = y_true`` (float, ``y_pred``'s shape), ``q = y_pred`` (probabilities, log clamped at
    -100) or ``softmax(y_pred)`` with ``from_logits=True``. Equals
    ``scipy.special.rel_entr(t, q).sum(-1)`` wherever the clamp is inactive, and its mean
    equals ``torch.nn.functional.kl_div(log_q, t, reduction="batchmean")``.
    Gradient w.r.t. logits ``q_j T - t_j`` (``T = sum_j t_j``), w.r.t. probabilities
    ``-t_j / q_j``.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> round(fl.KLDivergence()(np.array([[0.5, 0.5]]), np.array([[0.25, 0.75]])), 6)
    0.143841
    """
    function = "kl_divergence"
    family = "rowwise"
    params = (FROM_LOGITS,)
    __slots__ = ()

    def kernel(p):
        return Kernel("KLDivergence", inputs="softmax" if p["from_logits"] else "probabilities")

    def inputs(p):
        return {"y_true": "distribution",
                "y_pred": "logit" if p["from_logits"] else "probability"}


@register
class LogCosh(Loss):
    """Log-cosh loss, elementwise: ``l = log(cosh(y_pred - y_true))``.

    Gradient ``tanh(d)``, hessian ``1 - tanh(d)**2`` (``d = y_pred - y_true``): quadratic
    (``d**2 / 2``) near 0, linear (``|d| - log 2``) far from it, smooth everywhere. Computed
    from ``exp(-|d|)`` and ``expm1(-|d|)`` without overflow at any ``d`` (``|d| = 1e3`` gives
    ``999.3068...``) and with full relative precision at tiny ``d`` (``1e-8`` gives
    ``5e-17``). Equals ``keras.losses.log_cosh`` and ``optax.losses.log_cosh`` (whose
    formula ``d + softplus(-2 d) - log 2`` loses the tiny values to cancellation).

    Notes
    -----
    Measured max relative error against mpmath (50 digits) over ``d = +-10**x``, ``x`` in
    [-12, 3] (8002 points; where the exact value is a normal number of the dtype):
    float64 loss 5.9e-16, gradient 5.3e-16, hessian 8.8e-16; float32 3.0e-7, 2.1e-7,
    4.5e-7, the worst of the baseline, AVX2 and AVX-512 kernels
    (``tests/test_registry.py::test_accuracy_against_mpmath``); the AVX2 and AVX-512 kernels
    (inline exp, expm1 and log1p) reach 4.7e-16, 3.3e-16, 4.9e-16 and 2.2e-7, 1.9e-7, 3.0e-7.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> fl.LogCosh().loss(np.zeros(3), np.array([1e-8, 1.0, 1e3]), reduction="none")
    array([5.00000000e-17, 4.33780830e-01, 9.99306853e+02])
    """
    function = "log_cosh"
    family = "elementwise"
    params = ()
    __slots__ = ()

    def kernel(p):
        return Kernel("LogCosh")

    def inputs(p):
        return {"y_true": "real", "y_pred": "real"}


def _eps(name, value):
    v = _v._scalar(name, value)
    if not (v >= 0 and v < float("inf")):
        raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")
    return v


def _power(name, value):
    v = _v._scalar(name, value)
    if not (abs(v) < float("inf")) or 0 < v < 1:
        raise ValueError(f"{name}: must be a finite number <= 0 or >= 1 (no Tweedie "
                         f"distribution has a power in (0, 1)), got {value!r}")
    return v


COUNT_ERROR = "y_true must be >= 0, found {value!r} at index {index}"
POSITIVE_ERROR = "y_true must be > 0, found {value!r} at index {index}"


@register
class Poisson(Loss):
    """Poisson negative log-likelihood, elementwise, as ``torch.nn.functional.poisson_nll_loss``::

        l = exp(y_pred) - y * y_pred              (log_input=True: y_pred is the log-rate)
        l = y_pred - y * log(y_pred + eps)        (log_input=False: y_pred is the rate)

    plus, with ``full=True``, Stirling's term ``y*log(y) - y + 0.5*log(2*pi*y)`` where
    ``y > 1`` (0 elsewhere, as torch). ``y = y_true >= 0`` (counts or rates, zeros allowed),
    and ``y_pred >= 0`` when not ``log_input``: ValueError naming the argument and the first
    offending index otherwise (NaN propagates). With ``log_input`` it equals
    ``sklearn._loss.HalfPoissonLoss`` (gradient ``exp(z) - y``, hessian ``exp(z)``); without,
    gradient ``1 - y/(mu + eps)``, hessian ``y/(mu + eps)**2``.

    Raw predictions beyond exp's range give what the math says: ``z = 710`` (float64) or
    ``89`` (float32) gives loss, gradient and hessian ``+inf`` (also where ``y*z`` overflows:
    no ``inf - inf``), ``z = -710`` gives ``-y*z``, ``-y`` and ``exp(z)`` (subnormal, then 0).

    Notes
    -----
    Measured max relative error against mpmath (50 digits), ``log_input=True``, over
    ``y_true`` in {0, 0.5, 1, 3, 1e3} times raw predictions ``z = +-10**x``, ``x`` in
    [-8, log10(700)] (float64) and [-8, log10(80)] (float32), where the exact value is a
    normal number of the dtype (loss, gradient, hessian):
    float64 3.4e-16, 3.4e-16, 3.4e-16; float32 2.2e-7, 2.1e-7, 1.8e-7, the worst of the
    baseline, AVX2 and AVX-512 kernels; excluded are the points where the loss or the
    gradient is a difference of terms within a factor 2 of each other
    (``tests/test_registry.py::test_accuracy_against_mpmath``): near the minimum
    (``exp(z) ~ y``) the error is relative to the terms' size, not to the value.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> fl.Poisson().loss(np.array([0.0, 2.0]), np.array([0.0, 1.0]), reduction="none")
    array([1.        , 0.71828183])
    """
    function = "poisson"
    family = "elementwise"
    params = (
        Param("log_input", True, _v.boolean, "bool",
              "Whether ``y_pred`` is the log-rate (else the rate, >= 0).", (False,)),
        Param("full", False, _v.boolean, "bool",
              "Add Stirling's approximation of ``log(y!)`` where ``y > 1``.", (True,)),
        Param("eps", 1e-8, _eps, "float",
              "Added to the rate inside the log when not ``log_input``; finite, >= 0.",
              (1e-3,)),
    )
    __slots__ = ()

    def kernel(p):
        full = "Full" if p["full"] else ""
        if p["log_input"]:
            return Kernel("PoissonLog" + full, {}, errors={"y_true": COUNT_ERROR})
        return Kernel("PoissonRate" + full, {"eps": p["eps"]},
                      errors={"y_true": COUNT_ERROR,
                              "y_pred": "y_pred (a rate, log_input=False) must be >= 0, "
                                        "found {value!r} at index {index}"})

    def inputs(p):
        return {"y_true": "count", "y_pred": "logit" if p["log_input"] else "nonnegative"}


@register
class Gamma(Loss):
    """Gamma deviance (half, up to terms in ``y`` alone), log link, elementwise::

        l = y_pred + y * exp(-y_pred)

    ``y = y_true > 0`` (ValueError naming the first offending index otherwise; NaN
    propagates). Equals ``sklearn._loss.HalfGammaLoss``; gradient ``1 - y*exp(-z)`` and
    hessian ``y*exp(-z)`` are XGBoost's ``reg:gamma``. ``y*exp(-z)`` is formed as a product:
    where ``exp(-z)`` overflows (``z < -709.78`` in float64, ``-88.72`` in float32) the loss
    and hessian are ``+inf`` and the gradient ``-inf`` for any ``y > 0``; ``z = -inf`` gives
    ``+inf`` (not ``-inf + inf``).

    Notes
    -----
    Measured max relative error against mpmath (50 digits) over ``y_true`` in
    {1e-3, 0.5, 1, 3, 1e3} times ``z = +-10**x``, ``x`` in [-8, log10(700)] (float64) and
    [-8, log10(80)] (float32), where the exact value is a normal number of the dtype:
    (loss, gradient, hessian) float64 3.9e-16, 4.7e-16, 3.5e-16; float32 2.3e-7, 2.5e-7, 2.1e-7,
    the worst of the baseline, AVX2 and AVX-512 kernels
    (``tests/test_registry.py::test_accuracy_against_mpmath``); excluded are the points where
    the loss or the gradient is a difference of terms within a factor 2 of each other (the
    gradient near ``exp(z) = y``): there the error is relative to the terms' size, not to
    the value.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> fl.Gamma().loss(np.array([1.0, 2.0]), np.array([0.0, 1.0]), reduction="none")
    array([1.        , 1.73575888])
    """
    function = "gamma"
    family = "elementwise"
    params = ()
    __slots__ = ()

    def kernel(p):
        return Kernel("Gamma", errors={"y_true": POSITIVE_ERROR})

    def inputs(p):
        return {"y_true": "positive", "y_pred": "logit"}


@register
class Tweedie(Loss):
    """Tweedie deviance (half, up to terms in ``y`` alone), log link, elementwise, with
    ``a = 2 - power``, ``b = 1 - power``::

        l = exp(a * y_pred) / a - y * exp(b * y_pred) / b

    as ``sklearn._loss.HalfTweedieLoss(power)``, which also names the special powers:
    ``power = 0``: ``0.5*(exp(y_pred) - y)**2``; ``power = 1``: `Poisson` (``exp(z) - y*z``);
    ``power = 2``: `Gamma` (``z + y*exp(-z)``). Gradient ``exp(a z) - y*exp(b z)`` and
    hessian ``a*exp(a z) - b*y*exp(b z)`` (XGBoost's ``reg:tweedie``, for every power).

    Continuity in the power: the gradient and hessian are continuous in ``power``
    everywhere, 1 and 2 included: at ``power = 1 + 1e-9`` and ``2 +- 1e-9`` they differ from
    `Poisson`'s and `Gamma`'s by the change of the math itself, about ``|power - 1| * |z|``
    relative to the terms (measured: at most 1e-8 over ``z ~ N(0, 4)``); exactly at 1 and 2
    the `Poisson` and `Gamma` kernels run, bit for bit.

    The loss, which is sklearn's (the contract's), is not: it differs from the special forms
    by terms in ``y`` alone, so that the gradient is unaffected. Precisely, for ``power`` not
    in {0, 1, 2}, ``l = c(power) + 1/a - y/b`` where the continuous part
    ``c = expm1(a z)/a - y*expm1(b z)/b`` tends to ``Poisson - 1`` as ``power -> 1`` and to
    ``Gamma - y`` as ``power -> 2``; and at ``power -> 0`` ``l`` tends to the power-0 form
    minus ``y**2/2``. The ``1/a - y/b`` terms grow like ``1/|power - 1|`` near 1 and
    ``1/|power - 2|`` near 2: the loss there is large (``~1e9 y`` at ``1 + 1e-9``) and
    accurate relative to itself, but its changes in ``y_pred`` are small next to it.

    ``power`` in (0, 1) raises ValueError. Domain: ``y_true >= 0`` for ``1 <= power < 2``,
    ``y_true > 0`` for ``power >= 2``, any ``y_true`` for ``power <= 0`` (ValueError naming
    the first offending index; NaN propagates). Where both terms of a difference overflow
    (only for ``power < 0`` or ``> 3`` at ``|z| <= 709``) the sign of ``z`` picks the
    dominant term's infinity (exact unless ``|log y|`` is close to ``|z|``), never
    ``inf - inf``.

    Notes
    -----
    Measured max relative error against mpmath (50 digits), ``power = 1.5``, over ``y_true``
    in {0, 0.5, 1, 3, 1e3} times ``z = +-10**x``, ``x`` in [-8, log10(700)] (float64) and
    [-8, log10(80)] (float32), where the exact value is a normal number of the dtype:
    (loss, gradient, hessian) float64 3.9e-16, 4.6e-16, 3.9e-16; float32 2.3e-7, 2.3e-7,
    2.3e-7, the worst of the baseline, AVX2 and AVX-512 kernels
    (``tests/test_registry.py::test_accuracy_against_mpmath``); excluded are the points
    where the loss, gradient or hessian is a difference of terms within a factor 2 of each
    other (near the minimum, ``exp(z) ~ y``): there the error is relative to the terms'
    size, not to the value.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> fl.Tweedie(power=1.5).loss(np.array([1.0]), np.array([0.0]), reduction="none")
    array([4.])
    """
    function = "tweedie"
    family = "elementwise"
    params = (Param("power", 1.5, _power, "float",
                    "The Tweedie power: finite, <= 0 or >= 1.",
                    (0.0, 1.0, 1.2, 1.999999, 2.0, 3.0, -1.0)),)
    __slots__ = ()

    def kernel(p):
        pw = p["power"]
        if pw == 0:
            return Kernel("TweedieNormal")
        if pw == 1:
            return Kernel("PoissonLog", {}, errors={"y_true": COUNT_ERROR})
        if pw == 2:
            return Kernel("Gamma", errors={"y_true": POSITIVE_ERROR})
        a, b = 2.0 - pw, 1.0 - pw
        return Kernel("Tweedie", {"a": a, "b": b, "inv_a": 1 / a, "inv_b": 1 / b,
                                  "check": 0.0 if pw <= 0 else (1.0 if pw < 2 else 2.0)},
                      errors={"y_true": COUNT_ERROR if pw < 2 else POSITIVE_ERROR})

    def inputs(p):
        pw = p["power"]
        return {"y_true": "real" if pw <= 0 else ("count" if pw < 2 else "positive"),
                "y_pred": "logit"}


@register
class Quantile(Loss):
    """Quantile (pinball) loss, elementwise, with quantile ``q``::

        l = q * (y_true - y_pred)          if y_true >= y_pred
            (1 - q) * (y_pred - y_true)    otherwise

    Gradient ``-q`` where ``y_true > y_pred``, ``1 - q`` otherwise: at the kink
    (``y_true == y_pred``) the gradient is ``1 - q``. Both ``-q`` and ``1 - q`` are
    subgradients there; ``sklearn._loss.loss.PinballLoss`` (1.9) takes ``-q`` at the kink
    (its test is ``y_true >= y_pred``) and equals fastloss everywhere else. The hessian is
    exactly 0 (NaN where ``d`` is NaN): the loss is piecewise linear. scikit-learn's
    ``PinballLoss`` returns a hessian of 1 instead (a GBDT convenience); fastloss follows
    the math. Loss values equal ``PinballLoss``'s, and the mean equals
    ``sklearn.metrics.mean_pinball_loss(y_true, y_pred, alpha=q)``. ``q = 0.5`` is half the
    absolute error.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> fl.Quantile(quantile=0.9).loss(np.zeros(3), np.array([-1.0, 0.0, 2.0]), reduction="none")
    array([0.9, 0. , 0.2])
    >>> fl.Quantile(quantile=0.9).gradient(np.zeros(3), np.array([-1.0, 0.0, 2.0]), reduction="sum")
    array([-0.9,  0.1,  0.1])
    """
    function = "quantile"
    family = "elementwise"
    params = (Param("quantile", 0.5, _v.open_unit_interval, "float in (0, 1)",
                    "The quantile ``q`` predicted, in the open interval (0, 1).", (0.1, 0.9)),)
    __slots__ = ()

    def kernel(p):
        return Kernel("Quantile", {"quantile": p["quantile"]})

    def inputs(p):
        return {"y_true": "real", "y_pred": "real"}


@register
class SmoothL1(Loss):
    """Smooth L1 loss, elementwise, with ``d = y_pred - y_true``::

        l = 0.5 * d**2 / beta         if abs(d) < beta
            abs(d) - 0.5 * beta        otherwise

    Gradient ``d / beta`` or ``sign(d)``; hessian ``1 / beta`` inside, 0 outside (NaN where
    ``d`` is NaN). ``beta = 0`` is the L1 loss (gradient ``sign(d)``, 0 at ``d == 0``; no
    division by 0 happens: ``1 / beta`` is formed once, in Python, and never used then).
    Equals ``torch.nn.functional.smooth_l1_loss(..., beta=beta)``; ``Huber(delta)`` is
    ``delta * SmoothL1(beta=delta)``.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> fl.SmoothL1(beta=1.0).loss(np.zeros(2), np.array([0.5, 3.0]), reduction="none")
    array([0.125, 2.5  ])
    """
    function = "smooth_l1"
    family = "elementwise"
    params = (Param("beta", 1.0, _v.nonnegative, "float",
                    "The threshold, finite and >= 0 (0: the L1 loss).", (0.0, 0.5, 2.0)),)
    __slots__ = ()

    def kernel(p):
        beta = p["beta"]
        return Kernel("SmoothL1", {"beta": beta, "inv_beta": 1 / beta if beta > 0 else 0.0})

    def inputs(p):
        return {"y_true": "real", "y_pred": "real"}


@register
class PseudoHuber(Loss):
    """Pseudo-Huber loss, elementwise: ``l = delta**2 * (sqrt(1 + (d/delta)**2) - 1)``,
    ``d = y_pred - y_true``.

    Gradient ``d / sqrt(1 + (d/delta)**2)``, hessian ``(1 + (d/delta)**2)**-1.5``: XGBoost's
    ``reg:pseudohubererror`` (its ``huber_slope`` is ``delta``). Computed as
    ``delta * |d| * (r / (sqrt(1 + r**2) + 1))`` with ``r = |d| / delta``, so that tiny ``d``
    keep their relative precision (``d**2 / 2``, where the textbook form cancels to 0) and
    huge ``d`` neither overflow nor lose digits (``r**2`` is never formed beyond
    ``r = 2**27``, ``2**13`` in float32): ``|d| = 1e200`` gives ``1e200 - 1`` in float64 and
    ``|d| = 1e30`` gives ``1e30`` in float32, with gradient ``+-delta`` and hessian 0 (the
    exact ``1e-600`` underflows). ``d = +-inf`` gives loss inf, gradient ``+-delta``.

    Notes
    -----
    Measured max relative error against mpmath (50 digits) over ``d = +-10**x``, ``x`` in
    [-150, 200] (float32: [-18, 37]), delta = 1, where the exact value is a normal number
    of the dtype: float64 loss 3.2e-16, gradient 3.2e-16, hessian 7.7e-16; float32 1.8e-7, 1.5e-7,
    4.0e-7, the worst of the baseline, AVX2 and AVX-512 kernels
    (``tests/test_registry.py::test_accuracy_against_mpmath``).

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> fl.PseudoHuber().loss(np.zeros(3), np.array([1e-8, 1.0, 1e200]), reduction="none")
    array([5.00000000e-017, 4.14213562e-001, 1.00000000e+200])
    """
    function = "pseudo_huber"
    family = "elementwise"
    params = (Param("delta", 1.0, _v.positive, "float",
                    "The scale ``delta`` (XGBoost's ``huber_slope``), finite and > 0.",
                    (0.5, 3.0)),)
    __slots__ = ()

    def kernel(p):
        return Kernel("PseudoHuber", {"delta": p["delta"], "inv_delta": 1 / p["delta"]})

    def inputs(p):
        return {"y_true": "real", "y_pred": "real"}


@register
class MeanSquaredLogError(Loss):
    """Squared logarithmic error, elementwise: ``l = (log1p(y_pred) - log1p(y_true))**2``.

    Gradient ``2 e / (1 + y_pred)``, hessian ``2 (1 - e) / (1 + y_pred)**2`` with
    ``e = log1p(y_pred) - log1p(y_true)``. Both ``y_true`` and ``y_pred`` must be > -1
    (ValueError naming the argument and the first offending index, ``y_true`` first where
    both are out at the same index; NaN propagates). The mean equals
    ``sklearn.metrics.mean_squared_log_error`` (which also raises for values <= -1).

    Notes
    -----
    ``e`` is computed as ``+-log1p(|y_pred - y_true| / (1 + min(y_pred, y_true)))``: one
    log1p of an argument that carries the difference itself, so ``e`` keeps full relative
    precision where ``y_pred`` is close to ``y_true`` (the difference of two log1p's cancels
    there), and no large terms are subtracted. Only the hessian's ``1 - e`` cancels, near
    ``e = 1``. Measured max relative error against mpmath (50 digits) over ``y_true`` in
    {0, +-1e-3, 0.5, -0.5, 3, 1e6} and ``y_pred`` = ``-1 + 10**x`` and ``10**x`` for ``x`` in
    [-12, 12] (float32: [-6, 12]), ``y_pred = y_true (1 +- 10**-x)`` for ``x`` in [1, 15]
    (float32: [1, 7]), and ``y_pred`` up to 1e308 (float32: 1e38) over ``y_true = -1 + ulp``,
    where the exact value is a normal number of the dtype and ``|1 - e| >= 1/2``: float64
    loss 7.5e-16, gradient 5.2e-16, hessian 6.0e-16; float32 3.7e-7, 2.5e-7, 2.7e-7, the
    worst of the baseline, AVX2 and AVX-512 kernels
    (``tests/test_registry.py::test_accuracy_against_mpmath``).

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> round(fl.MeanSquaredLogError()(np.array([0.0, 3.0]), np.array([np.e - 1, 3.0])), 12)
    0.5
    """
    function = "mean_squared_log_error"
    family = "elementwise"
    params = ()
    __slots__ = ()

    def kernel(p):
        return Kernel("MeanSquaredLogError", errors={
            "y_true": "values must be > -1, found {value!r} at index {index}",
            "y_pred": "values must be > -1, found {value!r} at index {index}"})

    def inputs(p):
        return {"y_true": "above_minus_one", "y_pred": "above_minus_one"}


def _finite(name, value):
    v = _v._scalar(name, value)
    if not abs(v) < float("inf"):
        raise ValueError(f"{name}: must be a finite number, got {value!r}")
    return v


def _alpha(name, value):
    return None if value is None else _v.unit_interval(name, value)


def _norm_power(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: must be 1 or 2, got {value!r}")
    if value not in (1, 2):
        raise ValueError(f"{name}: must be 1 or 2, got {value!r}")
    return int(value)


def _gamma_int(gamma):
    """gamma where it is an integer 0..4 (its powers are formed by multiplication), else -1."""
    return float(gamma) if gamma in (0.0, 1.0, 2.0, 3.0, 4.0) else -1.0


GAMMA = Param("gamma", 2.0, _v.nonnegative, "float",
              "The focusing exponent, finite and >= 0 (0: cross-entropy itself).",
              (0.0, 0.5, 1.0, 3.0))
SIGNS_ERROR = "labels must be -1, 0 or 1, found {value!r} at index {index}"


@register
class BinaryFocal(Loss):
    """Binary focal loss (Lin et al. 2017), elementwise, as torchvision's
    ``sigmoid_focal_loss``::

        l = a_t * (1 - p_t)**gamma * bce(y, p)
        p_t = p y + (1 - p)(1 - y),   a_t = alpha y + (1 - alpha)(1 - y)  (1 when alpha is None)

    with ``p = sigmoid(y_pred)`` (``from_logits=True``, the default) or ``p = y_pred``, ``bce``
    exactly `BinaryCrossEntropy`'s (on probabilities: torch's clamps, logs at -100 and the
    gradient's denominators at 1e-12; ValueError naming the first ``y_pred`` outside [0, 1]),
    and ``y = y_true * (1 - e) + e / 2`` (label smoothing ``e``; ``y`` soft anywhere in
    [0, 1], used in ``p_t`` and ``a_t`` too). torchvision's ``alpha < 0`` ("no weighting") is
    ``alpha=None`` here. ``gamma = 0`` without alpha runs `BinaryCrossEntropy`'s kernel: the
    same bits for every method.

    ``1 - p_t`` is formed as ``(1 - y) p + y (1 - p)`` with ``1 - p = sigmoid(-z)``: no
    cancellation where it is tiny (a confident, correct prediction), so small losses keep
    their relative precision. Gradients and hessians are w.r.t. ``y_pred`` (the logit, or the
    probability): the exact derivatives of the formula, written with ``r = (d/dz)(1-p_t) /
    (1-p_t)``, which stays bounded, so logits of any size (``+-800``, ``+-inf``) give no
    ``0 * inf``; on probabilities the hessian follows `BinaryCrossEntropy`'s (its ``bce''``
    with the same clamps). For integer ``gamma`` in 0..4 the power is formed by
    multiplication; otherwise as ``exp(gamma log(1 - p_t))``, whose relative error grows like
    ``|gamma log(1 - p_t)|`` ulp.

    Notes
    -----
    Measured max relative error against mpmath (50 digits), defaults (gamma = 2,
    from_logits), ``y_true`` in {0, 1, 0.3} times logits ``z = +-10**x``, ``x`` in [-8, 2.85]
    (float32: [-8, 1.9]), where the exact value is a normal number of the dtype and the
    gradient or hessian is not a difference of terms within a factor 2 of each other (near
    its zero crossings, where the error is relative to the terms): float64 loss 9.5e-16,
    gradient 8.7e-16, hessian 1.1e-15; float32 5.3e-7, 5.5e-7, 5.7e-7 (computed in float32
    throughout, so twice as fast as float64), the worst of the baseline, AVX2 and AVX-512
    kernels (``tests/test_registry.py::test_accuracy_against_mpmath``).
    The hessian equals torch's double backward of torchvision's formula on logits; on
    probabilities torch's double backward of ``binary_cross_entropy`` errs by ~1e-7 where
    ``p`` is near 0 or 1, and the hessian is checked against second differences in
    ``numpy.longdouble`` instead (``tests/test_classification_losses.py``).

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> focal = fl.BinaryFocal(gamma=2.0, alpha=0.25)
    >>> focal.loss(np.array([1.0, 0.0]), np.array([2.0, -1.0]), reduction="none")
    array([0.00045089, 0.01699354])
    """
    function = "binary_focal"
    family = "elementwise"
    params = (
        GAMMA,
        Param("alpha", None, _alpha, "float in [0, 1] or None",
              "Weight of the positive class (``1 - alpha`` of the negative); None: none "
              "(torchvision's alpha = -1).", (0.25,)),
        Param("from_logits", True, _v.boolean, "bool",
              "Whether ``y_pred`` holds logits rather than probabilities.", (False,)),
        Param("label_smoothing", 0.0, _v.unit_interval, "float in [0, 1]", "``e`` above.",
              (0.1,)),
    )
    __slots__ = ()

    def kernel(p):
        e = p["label_smoothing"]
        fields = {"smooth_scale": 1 - e, "smooth_shift": e / 2}
        errors = {} if p["from_logits"] else {"y_pred": PROBABILITY_ERROR}
        if p["gamma"] == 0 and p["alpha"] is None:
            return Kernel("BinaryCrossEntropyLogits" if p["from_logits"]
                          else "BinaryCrossEntropyProbabilities", fields, errors=errors)
        alpha = p["alpha"]
        gi = _gamma_int(p["gamma"])
        fields.update({f"p{i}": 1.0 if i == gi else 0.0 for i in range(5)})
        fields.update(gamma=p["gamma"],
                      has_alpha=0.0 if alpha is None else 1.0,
                      alpha=1.0 if alpha is None else alpha,
                      one_minus_alpha=1.0 if alpha is None else 1 - alpha)
        name = "BinaryFocalLogits" if p["from_logits"] else "BinaryFocalProbabilities"
        # integer gamma 0..4: powers by multiplication; else exp(gamma log u)
        return Kernel(name if gi >= 0 else name + "Pow", fields, errors=errors)

    def inputs(p):
        return {"y_true": "binary", "y_pred": "logit" if p["from_logits"] else "probability"}


@register
class Hinge(Loss):
    """Hinge loss for binary labels, elementwise::

        l = max(0, margin - s * y_pred)          (squared=True: its square)

    with ``s = 1`` where ``y_true == 1`` and ``s = -1`` where ``y_true`` is 0 or -1 (both
    label conventions work). Any other ``y_true`` is a ValueError naming the first offending
    index (NaN is not checked: it propagates, as do NaN scores). Gradient ``-s`` (squared:
    ``-2 s m``) where ``m = margin - s y_pred > 0``, else 0 -- 0 at the kink ``m = 0`` too;
    hessian 0 (squared: 2 where ``m > 0``, else 0). Equals ``keras.losses.Hinge`` /
    ``SquaredHinge`` (margin 1) and ``optax.losses.hinge_loss``.

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> fl.Hinge().loss(np.array([1, -1, 0]), np.array([0.3, 0.5, -2.0]), reduction="none")
    array([0.7, 1.5, 0. ])
    >>> fl.Hinge(squared=True).loss(np.array([1, -1, 0]), np.array([0.3, 0.5, -2.0]))
    0.9133333333333332
    """
    function = "hinge"
    family = "elementwise"
    params = (
        Param("squared", False, _v.boolean, "bool", "The squared hinge.", (True,)),
        Param("margin", 1.0, _finite, "float", "The margin, a finite number.", (0.5, 2.0)),
    )
    __slots__ = ()

    def kernel(p):
        return Kernel("Hinge", {"margin": p["margin"], "squared": 1.0 if p["squared"] else 0.0},
                      errors={"y_true": SIGNS_ERROR})

    def inputs(p):
        return {"y_true": "signs", "y_pred": "real"}


@register
class CategoricalFocal(Loss):
    """Categorical focal loss over the last axis, one loss per row::

        l = -sum_c w_c * t_c * (1 - q_c)**gamma * log(q_c)

    Targets, class weights ``w``, label smoothing, ``ignore_index``, probabilities vs logits
    (``from_logits=True`` by default here) and the ``"mean"`` normalizer are exactly
    `CategoricalCrossEntropy`'s (integer labels or float target rows; torch's normalizer for
    labels: the sum of ``class_weight[label]`` over non-ignored rows). ``gamma = 0`` runs
    `CategoricalCrossEntropy`'s kernel: the same bits. Equals
    ``keras.losses.CategoricalFocalCrossentropy`` (its ``alpha`` is a uniform
    ``class_weight``).

    ``1 - q_c`` is formed without cancellation: for the row's largest class from the other
    classes' softmax terms (``rest / (1 + rest)``), so that a confident, correct row keeps
    full relative precision. With ``m = 1 - q``, ``a_c = w_c t_c`` and
    ``rho = log(q) / m`` (bounded), the gradient w.r.t. logits is ``q_j V - v_j``,
    ``v_c = a_c m_c**gamma (1 - gamma q_c rho_c)``, ``V = sum_c v_c``; the hessian is the
    diagonal of each row's Hessian w.r.t. its logits (exact; see ``_rowwise_losses.pxi``);
    w.r.t. probabilities ``-a_j m_j**gamma (1/q_j - gamma rho_j)`` and its derivative (the
    ``1/q`` terms 0 where the log is clamped at -100, as cross-entropy's). Integer ``gamma``
    in 1..4: powers by multiplication, else ``exp(gamma log m)``.

    Notes
    -----
    A confident row keeps its relative precision: for logits ``[g, 0, -1]`` (``g`` up to 40,
    loss ~1e-35) the loss and the label's gradient are within 8 ulp of mpmath (float64 and
    float32). Where a row's logits are not exactly representable differences of its
    largest, the rounding of ``z_j - max z`` (every softmax's) bounds it: measured 7.5e-15
    (float64) and 1.5e-6 (float32) relative over 200 rows with gaps 0.5 to 40 (float32: 14)
    and N(0, 1) other logits (``tests/test_classification_losses.py``).

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> cf = fl.CategoricalFocal(gamma=2.0)
    >>> cf.loss(np.array([0, 2]), np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), reduction="none")
    array([0.01086933, 0.48827213])
    """
    function = "categorical_focal"
    family = "rowwise"
    params = (
        GAMMA,
        Param("class_weight", None, _v.weights_1d, "1-D array of length n_classes",
              "Finite, >= 0."),
        Param("from_logits", True, _v.boolean, "bool",
              "Whether ``y_pred`` holds logits rather than probabilities.", (False,)),
        Param("label_smoothing", 0.0, _v.unit_interval, "float in [0, 1]",
              "As `CategoricalCrossEntropy`'s: ``t = (1 - e) t + e / n_classes``.", (0.1,)),
        Param("ignore_index", None, _v.index_or_none, "int",
              "A label value whose rows are ignored (PyTorch uses -100).", (-100,)),
    )
    __slots__ = ()

    def kernel(p):
        shared = dict(inputs="softmax" if p["from_logits"] else "probabilities", labels=True,
                      class_weight=p["class_weight"], label_smoothing=p["label_smoothing"],
                      ignore_index=p["ignore_index"])
        if p["gamma"] == 0:
            return Kernel("CategoricalCrossEntropy", **shared)
        return Kernel("CategoricalFocal", {"gamma": p["gamma"],
                                           "gamma_int": _gamma_int(p["gamma"])}, **shared)

    def inputs(p):
        return {"y_true": "labels", "y_pred": "logit" if p["from_logits"] else "probability"}


@register
class MultiMargin(Loss):
    """Multi-class margin loss, one loss per row, as ``torch.nn.functional.multi_margin_loss``::

        l = w_y / n_classes * sum_{j != y} max(0, margin - x_y + x_j)**p

    ``x = y_pred`` (scores, any real), ``y = y_true`` integer class labels of shape
    ``(n_samples,)`` (float targets are a TypeError; labels outside ``[0, n_classes)`` a
    ValueError naming the first offending row, never read out of bounds), ``w`` the
    ``class_weight`` (torch's ``weight``). ``"mean"`` averages over rows (sample-weighted, as
    always; the class weights do not enter it), as torch. Gradient ``w_y/k * p m_j**(p-1)``
    for each ``j != y`` with ``m_j = margin - x_y + x_j > 0`` (0 at ``m_j = 0``), minus their
    sum at ``y``; hessian 0 for ``p = 1``, ``2 w_y / k`` per active ``j`` (and their count
    times that at ``y``) for ``p = 2``. NaN scores propagate (torch's kernel drops them).

    Examples
    --------
    >>> import numpy as np, fastloss as fl
    >>> mm = fl.MultiMargin()
    >>> mm.loss(np.array([0, 1]), np.array([[2.0, 1.5, 0.0], [0.0, 0.5, 1.0]]), reduction="none")
    array([0.16666667, 0.66666667])
    """
    function = "multi_margin"
    family = "rowwise"
    params = (
        Param("p", 1, _norm_power, "int", "The exponent: 1 or 2.", (2,)),
        Param("margin", 1.0, _finite, "float", "The margin, a finite number.", (0.5,)),
        Param("class_weight", None, _v.weights_1d, "1-D array of length n_classes",
              "Finite, >= 0: torch's ``weight``."),
    )
    __slots__ = ()

    def kernel(p):
        return Kernel("MultiMargin", {"margin": p["margin"],
                                      "squared": 1.0 if p["p"] == 2 else 0.0},
                      inputs="raw", labels=True, dense_targets=False, normalizer="rows",
                      class_weight=p["class_weight"], loss_name="MultiMargin",
                      errors={"y_true": "class label {value!r} at index {index} is outside "
                                        "[0, n_classes)"})

    def inputs(p):
        return {"y_true": "class_labels", "y_pred": "real"}


globals().update({cls.function: cls.functional for cls in LOSSES.values()})
__all__ = exported_names()
