"""fastloss's side-by-side benchmark against NumPy, PyTorch and scikit-learn.

Run ``python -m bench`` from the repository root (``python -m bench --help`` for options).
"""
import glob
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _drop_source_tree_from_path():
    # `python -m bench` from the repository root puts the root first on sys.path (as '' or as
    # its absolute path), and then `import fastloss` finds the bare source folder ./fastloss
    # instead of the installed package: after a normal `pip install .` that folder has no
    # compiled kernels, so the import fails (or, worse, mixes source and installed files).
    # An in-place or editable build leaves the kernels in the source folder; then that folder
    # *is* the installed package and the root must stay where it is.
    src = os.path.join(_ROOT, "fastloss")
    if glob.glob(os.path.join(src, "_ext_baseline*.so")) or \
            glob.glob(os.path.join(src, "_ext_baseline*.pyd")):
        return
    # Moved to the end rather than dropped: `bench` itself must stay importable, also in the
    # spawned worker processes (bench/isolate.py), which start from this sys.path.
    root = os.path.realpath(_ROOT)
    kept = [p for p in sys.path if os.path.realpath(p or os.curdir) != root]
    sys.path[:] = kept + [root]


_drop_source_tree_from_path()

try:
    import fastloss  # noqa: F401
except ImportError as exc:
    sys.exit(f"bench: cannot import fastloss ({exc}).\n"
             f"Install it with the benchmark extras, from the repository root:\n"
             f"    pip install \".[bench]\"\n"
             f"then run `python -m bench` again.")
