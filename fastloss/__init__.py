"""fastloss: fused, parallel loss functions and their gradients for NumPy on the CPU.

Every loss has the same methods: ``loss``, ``gradient``, ``loss_gradient`` (one fused pass)
and ``gradient_hessian``, with ``sample_weight``, reductions, explicit out buffers and
``n_threads``. ``fastloss.LOSSES`` maps each functional's name to its class. See
``fastloss.show_config()`` for how this copy was built.
"""
__version__ = "0.1.0"

from fastloss._base import Loss
from fastloss._config import show_config
from fastloss._registry import LOSSES
from fastloss._sklearn import make_scorer
from fastloss import losses as _losses
from fastloss.losses import *  # noqa: F401,F403  (every declared loss and its functional)

__all__ = ["Loss", "LOSSES", "make_scorer", "show_config", "__version__"] + _losses.__all__
