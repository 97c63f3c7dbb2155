"""Shared test helpers: a tolerance-aware comparison and an optional PyTorch fixture."""
import numpy as np
import pytest


def assert_close(actual, desired, rtol=1e-12, atol=0.0, err_msg=""):
    """Compare a fastloss result with an independent reference.

    Shapes must match exactly (no broadcasting); NaN must appear in the same places.
    Python floats and arrays of any float dtype are compared in float64.
    """
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    assert actual.shape == desired.shape, (
        f"shape {actual.shape} != expected {desired.shape}. {err_msg}"
    )
    np.testing.assert_allclose(
        actual.astype(np.float64), desired.astype(np.float64), rtol=rtol, atol=atol,
        equal_nan=True, err_msg=err_msg,
    )


@pytest.fixture(scope="session")
def torch():
    """The torch module, or a clean skip when PyTorch is not installed."""
    return pytest.importorskip("torch")
