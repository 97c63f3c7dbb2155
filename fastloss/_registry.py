"""The loss registry: every loss is declared once, and everything else follows from it.

A declaration (see `fastloss/losses.py`) is a subclass of `fastloss.Loss` decorated with
`register`, holding:

* its docstring: formula, conventions, reference, example (the ``Parameters`` section is
  written from the parameters);
* ``function``: the name of its functional form (``fl.<function>``);
* ``params``: its constructor parameters, as `Param` (name, default, check, type, doc and
  example values);
* ``kernel(params)``: which compiled kernel runs it and with what (a `Kernel`), given the
  checked parameters; the kernel's math is one block of ``_elementwise_losses.pxi`` or
  ``_rowwise_losses.pxi``;
* ``inputs(params)``: the kinds of values ``y_true`` and ``y_pred`` hold (see `DATA_KINDS`),
  which documents the loss and lets the tests, the fingerprint and the benchmark make data
  for it.

`register` makes the constructor, the functional, the ``Parameters`` docs and the entry in
`LOSSES`; `fastloss.__all__` and the test, fingerprint and benchmark matrices enumerate
`LOSSES`.
"""
from __future__ import annotations

import inspect
import re
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from numpy.typing import ArrayLike

from fastloss import _validation as _v

#: What ``y_true``/``y_pred`` of a loss hold, by the names ``inputs(params)`` returns.
DATA_KINDS = {
    "real": "any real numbers",
    "logit": "real scores on the link scale (logits)",
    "probability": "probabilities in [0, 1]",
    "binary": "binary targets in [0, 1] (0/1 or soft)",
    "labels": "integer class labels of shape (n_samples,), or target rows of y_pred's shape",
    "distribution": "rows of probabilities (each row sums to 1)",
    "count": "counts or rates >= 0 (zeros included)",
    "positive": "positive numbers (> 0)",
    "nonnegative": "numbers >= 0 (a rate)",
    "above_minus_one": "real numbers > -1 (arguments of log1p)",
    "signs": "binary labels in {-1, 1} (0 counts as -1)",
    "class_labels": "integer class labels of shape (n_samples,) only",
}

#: Every declared loss, by the name of its functional, in declaration order.
_LOSSES: Dict[str, type] = {}
LOSSES = types.MappingProxyType(_LOSSES)

FAMILIES = ("elementwise", "rowwise")


@dataclass(frozen=True)
class Param:
    """A constructor parameter of a loss.

    ``check(name, value)`` validates a user's value (raising TypeError/ValueError naming the
    parameter) and returns the value to keep. ``examples`` are valid values besides the
    default that tests, the fingerprint and the benchmark use.
    """
    name: str
    default: Any
    check: Callable[[str, Any], Any]
    type: str
    doc: str
    examples: Tuple[Any, ...] = ()


@dataclass(frozen=True)
class Kernel:
    """What runs a loss: the compiled kernel (its struct name in the family's kernel file) and
    its inputs.

    ``fields`` fill the kernel's parameter struct. ``errors`` maps an argument (``"y_true"``,
    ``"y_pred"``) to the message of the kernel's domain check for it ({value!r} and {index}
    are filled in). Elementwise: ``column`` is a per-last-axis parameter (scalar or 1-D),
    named ``column_name`` in messages. Row-wise: ``inputs`` ("softmax" for logits,
    "probabilities", or "raw" for scores the row math reads as they are), whether integer
    ``labels`` are accepted and whether float target rows are (``dense_targets``; without
    them y_true must be labels, and ``loss_name`` names the loss in that error), the shared
    row-wise parameters, and the ``"mean"`` normalizer: ``"targets"`` (cross-entropy's: the
    label's class weight per row, with labels) or ``"rows"`` (the rows, sample-weighted).
    """
    name: str
    fields: Mapping[str, float] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    column: Any = None
    column_name: str = ""
    inputs: str = "softmax"
    labels: bool = False
    class_weight: Any = None
    label_smoothing: float = 0.0
    ignore_index: Optional[int] = None
    dense_targets: bool = True
    normalizer: str = "targets"
    loss_name: str = ""


_N_THREADS_DOC = """n_threads : int or None, default None
        Threads for large inputs. None uses OpenMP's default (``OMP_NUM_THREADS``,
        threadpoolctl limits); either is capped at the CPUs the process may use, and small
        inputs always run on one thread. Reduced results are bit-identical for every thread
        count."""


def _parameters_section(params) -> str:
    lines = ["Parameters", "----------"]
    for p in params:
        lines.append(f"{p.name} : {p.type}, default {p.default!r}")
        lines.append(f"    {p.doc}")
    lines.append(_N_THREADS_DOC.replace("\n        ", "\n    "))
    return "\n".join(lines)


def _with_parameters(doc: str, params) -> str:
    """Insert the generated Parameters section before Notes/Examples (or at the end)."""
    doc = inspect.cleandoc(doc)
    section = _parameters_section(params)
    m = re.search(r"^(Notes|Examples|References)\n-+$", doc, re.M)
    if m:
        return doc[:m.start()] + section + "\n\n" + doc[m.start():]
    return doc + "\n\n" + section


def _make_init(cls):
    params = cls.params
    names = [p.name for p in params]

    def __init__(self, **kwargs):
        n_threads = kwargs.pop("n_threads", None)
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise TypeError(f"{cls.__name__}() got unexpected keyword argument(s) "
                            f"{', '.join(map(repr, unknown))}; it takes {names + ['n_threads']}")
        values = {p.name: p.check(p.name, kwargs.get(p.name, p.default)) for p in params}
        self._init(n_threads, values)

    __init__.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default)
           for p in params]
        + [inspect.Parameter("n_threads", inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Optional[int])])
    __init__.__qualname__ = f"{cls.__name__}.__init__"
    return __init__


_CACHEABLE = (bool, int, float, str)


def _make_functional(cls):
    """``fl.<function>(y_true, y_pred, *, sample_weight, reduction, n_threads, **params)``."""
    cache: dict = {}

    def f(y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: Optional[ArrayLike] = None,
          reduction: str = "mean", n_threads: Optional[int] = None, **params: Any):
        # Only plain scalar parameters are cached: a cache of arrays or long tuples would keep
        # them alive. Types are part of the key: 1 == 1.0 == True, but only an int is a valid
        # n_threads.
        key = obj = None
        if all(v is None or type(v) in _CACHEABLE for v in params.values()) and \
                (n_threads is None or type(n_threads) in _CACHEABLE):
            key = (type(n_threads), n_threads,
                   tuple(sorted((k, type(v), v) for k, v in params.items())))
            obj = cache.get(key)
        if obj is None:
            obj = cls(n_threads=n_threads, **params)
            if key is not None and len(cache) < 64:
                cache[key] = obj
        return obj.loss(y_true, y_pred, sample_weight=sample_weight, reduction=reduction)

    f.__name__ = f.__qualname__ = cls.function
    # Pickled by reference as fastloss.<function> (scikit-learn scorers, joblib).
    f.__module__ = "fastloss"
    f.__doc__ = (f"Functional form of `{cls.__name__}`: equals "
                 f"``{cls.__name__}(**params, n_threads=n_threads).loss(y_true, y_pred, "
                 f"sample_weight=sample_weight, reduction=reduction)``.\n\n"
                 f"See `fastloss.{cls.__name__}` for the formula and conventions.")
    return f


def register(cls):
    """Class decorator: complete a loss declaration and add it to `LOSSES`."""
    for attr in ("function", "family", "params", "kernel", "inputs"):
        if attr not in cls.__dict__:
            raise TypeError(f"loss declaration {cls.__name__} lacks {attr!r}")
    if cls.family not in FAMILIES:
        raise TypeError(f"{cls.__name__}.family must be one of {FAMILIES}, got {cls.family!r}")
    if cls.function in _LOSSES:
        raise TypeError(f"{cls.__name__}: the function name {cls.function!r} is taken by "
                        f"{_LOSSES[cls.function].__name__}")
    if not cls.__doc__ or "Examples" not in cls.__doc__:
        raise TypeError(f"{cls.__name__} needs a docstring with an example")
    for attr in ("kernel", "inputs"):
        fn = cls.__dict__[attr]
        if not isinstance(fn, staticmethod):
            setattr(cls, attr, staticmethod(fn))
    cls.__init__ = _make_init(cls)
    cls.__doc__ = _with_parameters(cls.__doc__, cls.params)
    cls.functional = staticmethod(_make_functional(cls))
    _LOSSES[cls.function] = cls
    return cls


def exported_names():
    """Names of every loss class and functional, in declaration order."""
    return [n for cls in _LOSSES.values() for n in (cls.__name__, cls.function)]

