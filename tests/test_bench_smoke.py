"""The benchmark (`python -m bench`) runs end to end on tiny sizes, with or without its
optional peers (PyTorch, scikit-learn, matplotlib)."""
import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_bench(out_dir, disable=""):
    env = dict(os.environ, FASTLOSS_BENCH_DISABLE=disable)
    # From the repository root, as users run it: bench/__init__.py must then find the
    # installed fastloss, not the bare source folder.
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--sizes", "1000", "--repeat", "1",
         "--loss", "mse,cce", "--out", str(out_dir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = glob.glob(os.path.join(str(out_dir), "*.json"))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return json.load(f), proc.stdout


@pytest.mark.parametrize("disable", ["", "torch,sklearn,matplotlib"],
                         ids=["installed-peers", "no-optional-peers"])
def test_bench_smoke(tmp_path, disable):
    data, stdout = run_bench(tmp_path, disable)
    results = data["results"]
    assert results
    assert {r["loss"] for r in results} == {"mse", "cce"}
    kinds = {r["kind"] for r in results}
    assert {"fastloss", "numpy"} <= kinds
    for r in results:
        assert r["median_s"] > 0 and r["elements_per_s"] > 0
        assert r["repeats"] == 1
    # NumPy ran and was checked against fastloss on every workload.
    assert {c["impl"] for c in data["checks"]} >= {"NumPy (1 thread)"}
    assert "MSE n=10^3" in stdout  # the headline row present at these sizes
    if disable:
        assert kinds <= {"fastloss", "numpy", "memref"}
        assert {s["peer"] for s in data["skipped"]} == {"torch", "sklearn", "matplotlib"}
        assert not glob.glob(os.path.join(str(tmp_path), "*.png"))
    assert data["conditions"]["fastloss_config"]["active_isa"]
