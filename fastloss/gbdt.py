"""Custom objectives and metrics for XGBoost and LightGBM, from any fastloss loss.

``xgboost_objective(loss)`` and ``lightgbm_objective(loss)`` give the callables each library
takes as a custom objective (``sklearn_api=True``: the form its scikit-learn estimators take);
``xgboost_metric(loss)`` and ``lightgbm_metric(loss)`` give evaluation metrics;
``initial_margin`` gives the constant start the libraries' ``boost_from_average`` would use.
Neither library is a requirement of fastloss (``pip install "fastloss[gbdt]"``); this module
never imports them.

Hessian conventions (``hessian=``):

* ``"native"`` (default): the gradient and hessian of the library's own objective for this
  loss, so training grows the same trees as the built-in given the same base score and
  parameters (see `NATIVE`); for losses without a built-in, ``"exact"``, except that the
  piecewise-linear ones (MAE, quantile) get a constant hessian of 1 (the libraries' own
  choice for L1/quantile, whose leaves they re-fit afterwards -- a step no custom objective
  can take, so those models cannot be reproduced).
* ``"exact"``: the loss's own second derivative (``gradient_hessian``), raised to
  ``hessian_floor`` where the loss is piecewise linear (MAE, quantile, Huber, smooth L1:
  an exact 0 would stop the trees from growing).
* a float ``c``: a constant hessian ``c`` (times the sample weight).

Each round's work is one fused pass of the loss's kernel over the predictions, with the
conventions' factors, floor, output dtype and layout applied inside that pass: XGBoost gets
``(n,)`` or ``(n, K)`` float32 arrays; LightGBM gets float32 (its dtype) and, multiclass,
class-major arrays read straight from its Fortran-ordered float64 predictions (no copy on
either side). The two output buffers are reused across rounds: the returned arrays are
overwritten by the next round. Labels and weights are read from the library's data object
once and cached for that object (float class labels become int64 once; an empty weight
array means no weights).

Threads (good neighbour): the objective runs between the library's own parallel regions.
XGBoost's wheels bundle their own OpenMP runtime, whose idle threads keep spinning while
fastloss's run, and the other way round: on 2 cores a 2-thread binary objective made whole
XGBoost rounds 1.8x slower (55 vs 30 ms at 160k rows) though the objective itself takes
0.3 ms. So XGBoost adapters run on 1 thread unless ``n_threads`` (or the loss's own
``n_threads``) says otherwise. (fastloss's own threads sleep within 50 us of a call's end,
see the README's Threads section; XGBoost's keep spinning into the objective's time.)
LightGBM adapters keep the loss's setting (None: all CPUs): there the 2-thread multiclass
objective took 4.7 ms against 8.1 ms on one thread.
"""
from __future__ import annotations

import inspect
import math
import weakref
from typing import Any, Optional, Union

import numpy as np

from fastloss import _entry
from fastloss._base import Loss

__all__ = ["xgboost_objective", "lightgbm_objective", "xgboost_metric", "lightgbm_metric",
           "initial_margin", "NATIVE"]

_GRAD, _HESS, _LOSS = 2, 4, 1

# max_delta_step of XGBoost's count:poisson and LightGBM's poisson_max_delta_step (both 0.7).
_POISSON_MAX_DELTA_STEP = 0.7

#: Which built-in objective ``hessian="native"`` reproduces, per library and loss, and how:
#: (built-in, gradient factor, hessian factor, hessian floor, constant hessian or None).
NATIVE = {
    "xgboost": {
        "mean_squared_error": ("reg:squarederror", 0.5, 0.5, None, None),
        "binary_cross_entropy": ("binary:logistic", 1.0, 1.0, 1e-16, None),
        "categorical_cross_entropy": ("multi:softprob", 1.0, 2.0, 1e-16, None),
        "pseudo_huber": ("reg:pseudohubererror (huber_slope=delta)", 1.0, 1.0, None, None),
        "poisson": ("count:poisson (max_delta_step=0.7)", 1.0, "poisson", None, None),
        "gamma": ("reg:gamma", 1.0, 1.0, None, None),
        "tweedie": ("reg:tweedie (tweedie_variance_power=power)", 1.0, 1.0, None, None),
    },
    "lightgbm": {
        "mean_squared_error": ("regression", 0.5, 0.5, None, None),
        "binary_cross_entropy": ("binary", 1.0, 1.0, None, None),
        "categorical_cross_entropy": ("multiclass", 1.0, "multiclass", None, None),
        "huber": ("huber (alpha=delta)", 1.0, 1.0, None, 1.0),
        "poisson": ("poisson (poisson_max_delta_step=0.7)", 1.0, "poisson", None, None),
        "gamma": ("gamma", 1.0, 1.0, None, None),
        "tweedie": ("tweedie (tweedie_variance_power=power)", 1.0, 1.0, None, None),
    },
}

# Losses whose exact hessian is 0 somewhere (everywhere, for those marked True). Names not
# (yet) registered are harmless here.
_PIECEWISE_LINEAR = {"mean_absolute_error": True, "quantile": True, "huber": False,
                     "smooth_l1": False, "hinge": False, "multi_margin": False}


def _check_loss(loss) -> Loss:
    if isinstance(loss, type) and issubclass(loss, Loss):
        loss = loss()
    if not isinstance(loss, Loss):
        raise TypeError(f"loss must be a fastloss loss object, got {type(loss).__name__}")
    return loss


def _check_margins(loss: Loss) -> None:
    p = loss.get_params()
    if p.get("from_logits") is False or p.get("log_input") is False:
        what = "from_logits=True" if "from_logits" in p else "log_input=True"
        raise ValueError(f"a boosted model's raw scores are unbounded: use "
                         f"{type(loss).__name__}({what}) as its objective")


def _conventions(loss: Loss, library: str, hessian, hessian_floor: float, n_classes=None):
    """(gscale, hscale, hfloor, constant hessian or None) for this loss and mode."""
    name = loss.function
    if isinstance(hessian, str):
        if hessian not in ("native", "exact"):
            raise ValueError(f"hessian must be 'native', 'exact' or a float, got {hessian!r}")
        if hessian == "native" and name in NATIVE[library]:
            _, gs, hs, floor, const = NATIVE[library][name]
            if hs == "poisson":
                hs = math.exp(_POISSON_MAX_DELTA_STEP)
            elif hs == "multiclass":
                hs = n_classes / (n_classes - 1.0) if n_classes and n_classes > 1 else 1.0
            return gs, hs, -math.inf if floor is None else floor, const
        if hessian == "native" and _PIECEWISE_LINEAR.get(name):
            return 1.0, 1.0, -math.inf, 1.0
        floor = hessian_floor if name in _PIECEWISE_LINEAR else -math.inf
        return 1.0, 1.0, floor, None
    c = float(hessian)
    if not (c > 0 and math.isfinite(c)):
        raise ValueError(f"a constant hessian must be a finite float > 0, got {hessian!r}")
    return 1.0, 1.0, -math.inf, c


def _labels(loss: Loss, y: np.ndarray, dtype) -> np.ndarray:
    """Labels as the kernel takes them: int64 class labels for class losses."""
    y = np.asarray(y)
    if loss.family == "rowwise":
        if y.ndim == 1 and y.dtype.kind == "f":
            yi = y.astype(np.int64)
            if not np.array_equal(yi, y):
                raise ValueError("y_true: class labels must be whole numbers")
            return yi
        return y
    return np.ascontiguousarray(y, dtype=dtype)


class _Adapter:
    """State shared by objectives and metrics: the loss, and the cached labels/weights."""

    _default_threads = None   # when neither the caller nor the loss sets n_threads

    def __init__(self, loss, n_threads):
        loss = _check_loss(loss)
        if n_threads is None and loss.n_threads is None:
            n_threads = self._default_threads
        if n_threads is not None or loss.n_threads is not None:
            params = loss.get_params()
            params["n_threads"] = n_threads if n_threads is not None else loss.n_threads
            loss = type(loss)(**params)
        self.loss = loss
        self._reset()

    def _reset(self):
        self._key = None        # weak (or strong) reference to the data object seen last
        self._y = self._w = None
        self._dtype = None

    def __getstate__(self):
        return {"loss": self.loss, **{k: v for k, v in self.__dict__.items()
                                       if k in self._STATE}}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    _STATE = ()

    def _data(self, data, dtype, get_label, get_weight):
        """Labels and weights of `data`, converted once per data object and dtype."""
        key = self._key() if self._key is not None else None
        if key is not data or self._dtype != dtype:
            y = _labels(self.loss, get_label(data), dtype)
            w = get_weight(data)
            w = None if w is None or np.size(w) == 0 else np.ascontiguousarray(w, dtype=dtype)
            try:
                self._key = weakref.ref(data)
            except TypeError:
                self._key = lambda data=data: data
            self._y, self._w, self._dtype = y, w, dtype
            self._new_data()
        return self._y, self._w

    def _new_data(self):
        pass


class _Objective(_Adapter):
    _STATE = ("library", "hessian", "hessian_floor", "sklearn_api")

    def __init__(self, loss, library, hessian, hessian_floor, sklearn_api, n_threads):
        super().__init__(loss, n_threads)
        _check_margins(self.loss)
        self.library = library
        self.hessian = hessian
        self.hessian_floor = float(hessian_floor)
        self.sklearn_api = bool(sklearn_api)
        _conventions(self.loss, library, hessian, self.hessian_floor, 3)  # checks `hessian`

    def _reset(self):
        super()._reset()
        self._g = self._h = None
        self._conv = None
        self._hess_filled = False

    def _new_data(self):
        self._hess_filled = False

    def _buffers(self, shape):
        if self._g is None or self._g.shape != shape:
            self._g = np.empty(shape, np.float32)
            self._h = np.empty(shape, np.float32)
            self._hess_filled = False
        return self._g, self._h

    def _conventions(self, n_classes, out32, class_major):
        c = self._conv
        if c is None or c[0] != (n_classes, out32, class_major):
            gs, hs, floor, const = _conventions(self.loss, self.library, self.hessian,
                                                self.hessian_floor, n_classes)
            c = self._conv = ((n_classes, out32, class_major),
                              _entry.Conventions(gs, hs, floor, out32, class_major), const)
        return c[1], c[2]

    def _compute(self, y, w, p, class_major):
        """Gradient and hessian of the margins `p` into the reused float32 buffers."""
        rowwise = self.loss.family == "rowwise"
        if rowwise and p.ndim != 2:
            raise ValueError(f"{type(self.loss).__name__} needs one margin per class: train "
                             f"with num_class (XGBoost) / num_class (LightGBM) > 1")
        k = (p.shape[0] if class_major else p.shape[1]) if rowwise else None
        conv, const = self._conventions(k, p.dtype != np.float32, class_major)
        g, h = self._buffers(p.shape)
        if const is None:
            _entry.run(self.loss._spec, y, p, w, "none", None, g, h, _GRAD | _HESS, conv)
        else:
            _entry.run(self.loss._spec, y, p, w, "none", None, g, None, _GRAD, conv)
            if not self._hess_filled:   # constant: written once per data object
                if w is None:
                    h.fill(const)
                else:
                    np.multiply(w if h.ndim == 1 or class_major else w[:, None], const,
                                out=h, casting="unsafe")
                self._hess_filled = True
        return g, h

    def __repr__(self):
        api = ", sklearn_api=True" if self.sklearn_api else ""
        return (f"{self.library}_objective({self.loss!r}, hessian={self.hessian!r}{api})")


def _xgb_label(d):
    return d.get_label()


def _xgb_weight(d):
    return d.get_weight()


def _lgb_label(d):
    return d.get_label()


def _lgb_weight(d):
    return d.get_weight()


class XGBoostObjective(_Objective):
    """An XGBoost custom objective; see `xgboost_objective`."""

    _default_threads = 1   # XGBoost's own OpenMP runtime: see the module docstring

    def __init__(self, loss, hessian="native", hessian_floor=1e-6, sklearn_api=False,
                 n_threads=None):
        super().__init__(loss, "xgboost", hessian, hessian_floor, sklearn_api, n_threads)

    def __call__(self, *args, **kwargs):
        if self.sklearn_api:
            return self._sklearn(*args, **kwargs)
        preds, dtrain = args
        p = np.asarray(preds)
        y, w = self._data(dtrain, p.dtype, _xgb_label, _xgb_weight)
        return self._compute(y, w, p, False)

    def _sklearn(self, y_true, y_pred, sample_weight=None):
        p = np.asarray(y_pred)
        y = _labels(self.loss, y_true, p.dtype)
        w = None if sample_weight is None or np.size(sample_weight) == 0 else \
            np.ascontiguousarray(sample_weight, dtype=p.dtype)
        if self._w is not w:   # the constant hessian follows the weights
            self._hess_filled = False
            self._w = w
        return self._compute(y, w, p, False)


class LightGBMObjective(_Objective):
    """A LightGBM custom objective; see `lightgbm_objective`."""

    def __init__(self, loss, hessian="native", hessian_floor=1e-6, sklearn_api=False,
                 n_threads=None):
        super().__init__(loss, "lightgbm", hessian, hessian_floor, sklearn_api, n_threads)

    def __call__(self, *args, **kwargs):
        if self.sklearn_api:
            return self._sklearn(*args, **kwargs)
        preds, train_set = args
        y, w = self._data(train_set, np.asarray(preds).dtype, _lgb_label, _lgb_weight)
        return self._lgb(y, w, preds)

    def _lgb(self, y, w, preds):
        p = np.asarray(preds)
        if p.ndim == 2 and p.flags.f_contiguous and not p.flags.c_contiguous:
            # LightGBM's (n, K) Fortran-ordered scores: read as their class-major transpose,
            # and returned as transposes of class-major buffers (LightGBM ravels them in
            # Fortran order: a view).
            g, h = self._compute(y, w, p.T, True)
            return g.T, h.T
        return self._compute(y, w, p, False)

    def _sklearn(self, y_true, y_pred, weight=None):
        p = np.asarray(y_pred)
        if self._key is None or self._key() is not y_true or self._dtype != p.dtype:
            self._data(y_true, p.dtype, lambda y: y, lambda y: None)
        y = self._y
        w = None if weight is None or np.size(weight) == 0 else weight
        if w is not None:
            if self._w is None or self._wsrc is not w:
                self._wsrc = w
                self._w = np.ascontiguousarray(w, dtype=p.dtype)
                self._hess_filled = False
            w = self._w
        elif self._w is not None:
            self._w = None
            self._hess_filled = False
        return self._lgb(y, w, p)

    def _reset(self):
        super()._reset()
        self._wsrc = None


def _signature(params):
    return inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                default=d) for n, d in params])


# The libraries read the parameters of their estimators' objectives.
class _XGBSklearn(XGBoostObjective):
    __signature__ = _signature([("y_true", inspect.Parameter.empty),
                                ("y_pred", inspect.Parameter.empty), ("sample_weight", None)])


class _LGBSklearn(LightGBMObjective):
    # LightGBM counts the parameters: three means (y_true, y_pred, weight).
    __signature__ = _signature([("y_true", inspect.Parameter.empty),
                                ("y_pred", inspect.Parameter.empty), ("weight", None)])


def xgboost_objective(loss, *, hessian: Union[str, float] = "native",
                      hessian_floor: float = 1e-6, sklearn_api: bool = False,
                      n_threads: Optional[int] = None):
    """An XGBoost custom objective computing `loss`'s gradient and hessian.

    Parameters
    ----------
    loss : fastloss loss object (or class)
        Its ``y_pred`` is the booster's raw margin: class and binary losses need
        ``from_logits=True``, Poisson ``log_input=True``.
    hessian : {"native", "exact"} or float, default "native"
        ``"native"``: XGBoost's own convention for this loss (`NATIVE`), which grows the same
        trees as its built-in objective (``reg:squarederror`` is ``0.5 * d**2``, so the MSE
        gradient and hessian are halved; ``multi:softprob``'s hessian is ``2 q (1 - q)``;
        ``count:poisson``'s ``exp(raw + 0.7)``; floors of 1e-16 as XGBoost's). ``"exact"``:
        the loss's second derivative, raised to `hessian_floor` where the loss is piecewise
        linear. A float: that constant (times the weight).
    hessian_floor : float, default 1e-6
        See `hessian`.
    sklearn_api : bool, default False
        False: ``obj(predt, dtrain) -> (grad, hess)`` for ``xgboost.train(obj=...)``.
        True: ``obj(y_true, y_pred, sample_weight=None)`` for ``XGBRegressor(objective=...)``.
    n_threads : int, optional
        Threads of the fastloss pass (default: the loss's own ``n_threads``, else 1: XGBoost
        runs its own OpenMP runtime, whose threads and fastloss's would spin against each
        other; see the module docstring).

    Returns
    -------
    callable
        Returns float32 arrays shaped like the predictions (``(n,)`` or ``(n, K)``), the
        same two buffers every round. Picklable.

    Examples
    --------
    >>> import fastloss as fl
    >>> from fastloss.gbdt import xgboost_objective
    >>> obj = xgboost_objective(fl.BinaryCrossEntropy(from_logits=True))
    >>> obj
    xgboost_objective(BinaryCrossEntropy(from_logits=True, pos_weight=None, label_smoothing=0.0, n_threads=1), hessian='native')
    """
    cls = _XGBSklearn if sklearn_api else XGBoostObjective
    return cls(loss, hessian=hessian, hessian_floor=hessian_floor, sklearn_api=sklearn_api,
               n_threads=n_threads)


def lightgbm_objective(loss, *, hessian: Union[str, float] = "native",
                       hessian_floor: float = 1e-6, sklearn_api: bool = False,
                       n_threads: Optional[int] = None):
    """A LightGBM custom objective computing `loss`'s gradient and hessian.

    Parameters
    ----------
    loss : fastloss loss object (or class)
        As in `xgboost_objective`.
    hessian : {"native", "exact"} or float, default "native"
        ``"native"``: LightGBM's convention (`NATIVE`): ``regression`` halves the MSE
        gradient and hessian, ``multiclass`` scales the hessian by ``K / (K - 1)``,
        ``huber`` has a constant hessian 1, ``poisson`` ``exp(raw + 0.7)``.
        ``"exact"`` and a float as in `xgboost_objective`.
    hessian_floor : float, default 1e-6
    sklearn_api : bool, default False
        False: ``fobj(preds, train_set) -> (grad, hess)`` for ``lightgbm.train`` (pass it as
        ``params["objective"]``). True: ``fobj(y_true, y_pred, weight)`` for
        ``LGBMRegressor(objective=...)`` / ``LGBMClassifier``.
    n_threads : int, optional

    Returns
    -------
    callable
        Returns float32 arrays; multiclass, ``(n, K)`` views of class-major buffers, computed
        from LightGBM's Fortran-ordered float64 scores without a copy. Picklable.

    Examples
    --------
    >>> import fastloss as fl
    >>> from fastloss.gbdt import lightgbm_objective
    >>> fobj = lightgbm_objective(fl.CategoricalCrossEntropy(from_logits=True))
    """
    cls = _LGBSklearn if sklearn_api else LightGBMObjective
    return cls(loss, hessian=hessian, hessian_floor=hessian_floor, sklearn_api=sklearn_api,
               n_threads=n_threads)


class _Metric(_Adapter):
    def _value(self, y, w, p):
        p = np.asarray(p)
        if self.loss.family == "rowwise" and p.ndim == 2 and p.flags.f_contiguous \
                and not p.flags.c_contiguous:
            return _entry.run(self.loss._spec, y, p.T, w, "mean", None, None, None, _LOSS,
                              _CLASS_MAJOR)
        return self.loss(y, p, sample_weight=w)


_CLASS_MAJOR = _entry.Conventions(class_major=True)


class XGBoostMetric(_Metric):
    """An XGBoost ``custom_metric``; see `xgboost_metric`."""

    _default_threads = 1

    def __call__(self, predt, dmatrix):
        p = np.asarray(predt)
        y, w = self._data(dmatrix, p.dtype, _xgb_label, _xgb_weight)
        return self.loss.function, self._value(y, w, p)

    def __repr__(self):
        return f"xgboost_metric({self.loss!r})"


class LightGBMMetric(_Metric):
    """A LightGBM ``feval``; see `lightgbm_metric`."""

    def __call__(self, preds, eval_data):
        p = np.asarray(preds)
        y, w = self._data(eval_data, p.dtype, _lgb_label, _lgb_weight)
        return self.loss.function, self._value(y, w, p), False

    def __repr__(self):
        return f"lightgbm_metric({self.loss!r})"


def xgboost_metric(loss, *, n_threads: Optional[int] = None) -> XGBoostMetric:
    """``custom_metric(predt, dmatrix) -> (name, mean loss)`` for ``xgboost.train``.

    The loss sees the predictions as XGBoost hands them: raw margins when the objective is a
    custom one (use ``from_logits=True``), transformed ones (probabilities) with a built-in
    objective. Labels and weights as in `xgboost_objective`; the name is the loss's
    functional name.
    """
    return XGBoostMetric(loss, n_threads)


def lightgbm_metric(loss, *, n_threads: Optional[int] = None) -> LightGBMMetric:
    """``feval(preds, eval_data) -> (name, mean loss, False)`` for ``lightgbm.train``.

    As `xgboost_metric`; multiclass scores are read in LightGBM's Fortran order, without a copy.
    """
    return LightGBMMetric(loss, n_threads)


def initial_margin(loss, y_true, *, sample_weight=None, n_classes: Optional[int] = None
                   ) -> Union[float, np.ndarray]:
    """The constant raw score that minimizes `loss` on ``y_true``: LightGBM's
    ``boost_from_average`` start (for its ``init_score`` with a custom objective; the
    tests check regression, binary and poisson), and a sound ``base_margin`` for XGBoost
    (whose own base-score estimate may differ: give both sides the same ``base_margin``).

    MSE, Huber, pseudo-Huber, log-cosh, smooth L1: the weighted mean (LightGBM's
    ``regression``/``huber``); binary cross-entropy: the logit of the weighted mean;
    Poisson, gamma, Tweedie (log link): the log of the weighted mean; MAE: the weighted
    median; quantile: the weighted quantile; categorical cross-entropy: the log class
    frequencies (an array of length `n_classes`).
    """
    loss = _check_loss(loss)
    name = loss.function
    y = np.asarray(y_true, dtype=np.float64)
    w = None if sample_weight is None or np.size(sample_weight) == 0 else \
        np.asarray(sample_weight, dtype=np.float64)
    if name == "categorical_cross_entropy":
        k = n_classes if n_classes is not None else int(y.max()) + 1
        counts = np.bincount(y.astype(np.int64), weights=w, minlength=k)
        with np.errstate(divide="ignore"):
            return np.log(counts / counts.sum())
    if name in ("mean_absolute_error", "quantile"):
        q = loss.get_params()["quantile"] if name == "quantile" else 0.5
        order = np.argsort(y, kind="stable")
        cw = np.cumsum(np.ones_like(y) if w is None else w[order])
        return float(y[order][np.searchsorted(cw, q * cw[-1])])
    mean = float(np.average(y, weights=w))
    if name == "binary_cross_entropy":
        return math.log(mean / (1 - mean))
    if name in ("poisson", "gamma", "tweedie"):
        return math.log(mean)
    return mean
