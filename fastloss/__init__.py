"""fastloss: fused, parallel loss functions and their gradients for NumPy on the CPU.

Every loss has the same methods: ``loss``, ``gradient``, ``loss_gradient`` (one fused pass)
and ``gradient_hessian``, with ``sample_weight``, reductions, explicit out buffers and
``n_threads``. See ``fastloss.show_config()`` for how this copy was built.
"""
__version__ = "0.1.0"

from fastloss._base import Loss
from fastloss._config import show_config
from fastloss.losses import (
    BinaryCrossEntropy,
    CategoricalCrossEntropy,
    Huber,
    KLDivergence,
    MeanAbsoluteError,
    MeanSquaredError,
    binary_cross_entropy,
    categorical_cross_entropy,
    huber,
    kl_divergence,
    mean_absolute_error,
    mean_squared_error,
)

__all__ = [
    "Loss", "show_config", "__version__",
    "MeanSquaredError", "MeanAbsoluteError", "Huber", "BinaryCrossEntropy",
    "CategoricalCrossEntropy", "KLDivergence",
    "mean_squared_error", "mean_absolute_error", "huber", "binary_cross_entropy",
    "categorical_cross_entropy", "kl_divergence",
]
