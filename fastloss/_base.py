"""The loss base class: argument handling shared by every loss."""
from __future__ import annotations

from typing import ClassVar, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

# _config first: it loads the compiled modules, or says why they do not load.
from fastloss._config import ext  # noqa: F401  (selects the kernels _entry runs on)
from fastloss import _entry
from fastloss import _validation as _v

_run = _entry.run
# Bit flags understood by the kernels (see WANT_* in _jobs.pxi).
_LOSS, _GRAD, _HESS = 1, 2, 4


def _rebuild(cls, params):
    return cls(**params)


class Loss:
    """Base class of all fastloss losses.

    Subclasses are declarations (see `fastloss._registry`); everything else (the five methods,
    reductions, weights, out buffers, threads, pickling, ``repr``) lives here. Loss objects
    are immutable.
    """

    function: ClassVar[str]
    family: ClassVar[str]
    params: ClassVar[tuple]
    __slots__ = ("_params", "_spec")

    def _init(self, n_threads, params: dict) -> None:
        nt = _v.n_threads(n_threads)
        object.__setattr__(self, "_params", dict(params, n_threads=n_threads))
        object.__setattr__(self, "_spec", _entry.Spec(type(self).kernel(params), nt))

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} objects are immutable")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} objects are immutable")

    def __reduce__(self):
        return _rebuild, (type(self), dict(self._params))

    def __repr__(self) -> str:
        def fmt(v):
            return np.array2string(v, separator=", ") if isinstance(v, np.ndarray) else repr(v)
        args = ", ".join(f"{k}={fmt(v)}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"

    @property
    def __name__(self) -> str:
        # scikit-learn's make_scorer and XGBoost's metric wrappers name a score function by
        # it; the class's own __name__ is unaffected (type's descriptor wins there).
        return self.function

    def get_params(self) -> dict:
        """The constructor arguments, as a new dict."""
        return dict(self._params)

    @property
    def n_threads(self) -> Optional[int]:
        return self._params["n_threads"]

    def __call__(self, y_true: ArrayLike, y_pred: ArrayLike,
                 sample_weight: Optional[ArrayLike] = None) -> float:
        """The mean loss: ``self.loss(y_true, y_pred, sample_weight=sample_weight)``."""
        return _run(self._spec, y_true, y_pred, sample_weight, "mean", None, None, None, _LOSS)

    def loss(self, y_true: ArrayLike, y_pred: ArrayLike, *,
             sample_weight: Optional[ArrayLike] = None, reduction: str = "mean",
             loss_out: Optional[np.ndarray] = None) -> Union[float, np.ndarray]:
        """The loss.

        Parameters
        ----------
        y_true, y_pred : array-like
            Targets and predictions (see the class docstring for shapes).
        sample_weight : array-like, optional
            Finite, >= 0 weights: ``y_pred``'s shape, or ``(y_pred.shape[0],)`` for one weight
            per first-axis row (the only form for row-wise losses).
        reduction : {"mean", "sum", "none"}
            ``"sum"``: ``sum(w * l)``; ``"mean"``: ``sum(w * l) / sum(w)``;
            ``"none"``: ``w * l`` per element (per row for row-wise losses).
        loss_out : ndarray, optional
            Buffer for ``reduction="none"``: C-contiguous, writeable, exact shape and dtype.

        Returns
        -------
        float or ndarray
            A Python float (accumulated in float64) for ``"mean"``/``"sum"``; an array in
            ``y_pred``'s dtype for ``"none"``.
        """
        return _run(self._spec, y_true, y_pred, sample_weight, reduction, loss_out, None, None,
                    _LOSS)

    def gradient(self, y_true: ArrayLike, y_pred: ArrayLike, *,
                 sample_weight: Optional[ArrayLike] = None, reduction: str = "mean",
                 gradient_out: Optional[np.ndarray] = None) -> np.ndarray:
        """Derivative of ``self.loss(..., reduction=reduction)`` with respect to ``y_pred``.

        For ``"none"``, each element's (row's) own weighted loss differentiated.
        ``gradient_out`` may be ``y_pred`` itself (in place).
        """
        return _run(self._spec, y_true, y_pred, sample_weight, reduction, None, gradient_out,
                    None, _GRAD)

    def loss_gradient(self, y_true: ArrayLike, y_pred: ArrayLike, *,
                      sample_weight: Optional[ArrayLike] = None, reduction: str = "mean",
                      loss_out: Optional[np.ndarray] = None,
                      gradient_out: Optional[np.ndarray] = None
                      ) -> Tuple[Union[float, np.ndarray], np.ndarray]:
        """``(loss, gradient)`` computed in one pass over the data; see `loss` and `gradient`."""
        return _run(self._spec, y_true, y_pred, sample_weight, reduction, loss_out,
                    gradient_out, None, _LOSS | _GRAD)

    def gradient_hessian(self, y_true: ArrayLike, y_pred: ArrayLike, *,
                         sample_weight: Optional[ArrayLike] = None,
                         gradient_out: Optional[np.ndarray] = None,
                         hessian_out: Optional[np.ndarray] = None
                         ) -> Tuple[np.ndarray, np.ndarray]:
        """Per-element gradient and diagonal hessian (as ``reduction="none"``), weighted.

        This is what XGBoost/LightGBM custom objectives take.
        """
        return _run(self._spec, y_true, y_pred, sample_weight, "none", None, gradient_out,
                    hessian_out, _GRAD | _HESS)
