"""scikit-learn scorers from fastloss losses (``fl.make_scorer``)."""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from fastloss._base import Loss

_METHODS = ("predict_proba", "decision_function", "predict")


class LossScorer:
    """A scikit-learn scorer ``scorer(estimator, X, y, sample_weight=None) -> -loss``.

    Made by `make_scorer`. Picklable (a fitted ``GridSearchCV`` using it can be saved).
    """

    _sign = -1   # greater_is_better=False: scikit-learn maximizes -loss

    def __init__(self, loss: Loss, response_method):
        if isinstance(loss, type) and issubclass(loss, Loss):
            loss = loss()
        if not isinstance(loss, Loss):
            raise TypeError(f"loss must be a fastloss loss object, got {type(loss).__name__}")
        methods = (response_method,) if isinstance(response_method, str) else \
            tuple(response_method)
        for m in methods:
            if m not in _METHODS:
                raise ValueError(f"response_method must be one of {_METHODS} (or a tuple of "
                                 f"them), got {response_method!r}")
        self.loss = loss
        self.response_method = response_method
        self._methods = methods

    def __repr__(self):
        return f"make_scorer({self.loss!r}, response_method={self.response_method!r})"

    def _response(self, estimator, X):
        for m in self._methods:
            if hasattr(estimator, m):
                return m, getattr(estimator, m)(X)
        raise AttributeError(f"{type(estimator).__name__} has none of {self._methods}")

    def __call__(self, estimator, X, y, sample_weight=None) -> float:
        method, pred = self._response(estimator, X)
        pred = np.asarray(pred)
        y = np.asarray(y)
        classes = getattr(estimator, "classes_", None)
        if classes is not None and method != "predict":
            y = _class_indices(y, np.asarray(classes))
            if pred.ndim == 1 or (pred.ndim == 2 and pred.shape[1] == 1):
                pred = pred.reshape(-1)          # binary decision_function: the positive class
            elif self.loss.family == "elementwise" and pred.shape[1] == 2:
                pred = pred[:, 1]                # binary predict_proba: the positive class
            if self.loss.family == "elementwise":
                y = y.astype(pred.dtype)
        return self._sign * self.loss(y, pred, sample_weight=sample_weight)


def _class_indices(y, classes):
    """Position of each label in ``classes_`` (sorted, as scikit-learn keeps it)."""
    idx = np.searchsorted(classes, y)
    idx = np.clip(idx, 0, len(classes) - 1)
    bad = classes[idx] != y
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"y_true: label {y[first]!r} at index {first} is not among the "
                         f"estimator's classes_ {classes.tolist()}")
    return idx.astype(np.int64)


def make_scorer(loss: Loss, *, response_method: Union[str, Sequence[str]] = "predict"
                ) -> LossScorer:
    """A scikit-learn scorer (``greater_is_better=False``) evaluating `loss`.

    Parameters
    ----------
    loss : fastloss loss object
    response_method : {"predict", "predict_proba", "decision_function"} or tuple of them
        How predictions are obtained (the first the estimator has). With ``predict_proba``
        or ``decision_function``, labels are mapped through the estimator's ``classes_`` to
        their column (string or 1-based labels work); for an elementwise loss (binary
        cross-entropy) the positive class's column is taken.

    Returns
    -------
    LossScorer
        ``scorer(estimator, X, y, sample_weight=None)`` returns minus the mean loss.

    Examples
    --------
    >>> import fastloss as fl
    >>> scorer = fl.make_scorer(fl.CategoricalCrossEntropy(), response_method="predict_proba")
    """
    return LossScorer(loss, response_method)
