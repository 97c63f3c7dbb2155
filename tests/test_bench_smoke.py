"""The benchmark (`python -m bench`) runs end to end on tiny sizes, with or without its
optional peers (PyTorch, scikit-learn, matplotlib), for every loss in `fastloss.LOSSES`:
a newly registered loss that the benchmark cannot run fails here."""
import glob
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _import_bench():
    # bench/ is not installed: import it from the repository root, as `python -m bench` does.
    # bench/__init__.py then decides which fastloss to use (the installed package unless the
    # source folder holds an in-place build), so sys.path is restored right after.
    saved = list(sys.path)
    sys.path.insert(0, ROOT)
    try:
        import bench  # noqa: F401
        from bench import cli, peers, report, runner, workloads
    finally:
        sys.path[:] = saved
    return cli, peers, report, runner, workloads


cli, peers, report, runner, W = _import_bench()
fl = W.fl
ALL = list(fl.LOSSES)


def run_bench(out_dir, disable="", args=()):
    env = dict(os.environ, FASTLOSS_BENCH_DISABLE=disable)
    # From the repository root, as users run it: bench/__init__.py must then find the
    # installed fastloss, not the bare source folder.
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--sizes", "1000", "--repeat", "1",
         "--out", str(out_dir), *args],
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
    # Every registered loss is benchmarked by default, each under its title.
    assert {r["loss"] for r in results} == set(ALL)
    assert [x["loss"] for x in data["losses"]] == ALL
    for name in ALL:
        assert f"== {W.title(name)} " in stdout
        assert any(r["loss"] == name and r["kind"] == "fastloss" for r in results)
    kinds = {r["kind"] for r in results}
    assert {"fastloss", "numpy"} <= kinds
    for r in results:
        assert r["median_s"] > 0 and r["elements_per_s"] > 0
        assert r["repeats"] == 1
    # NumPy ran and was checked against fastloss wherever it has the loss; elsewhere the
    # report says there is no NumPy peer.
    checked = {c["loss"] for c in data["checks"] if c["impl"] == "NumPy (1 thread)"}
    assert checked == {x for x in ALL if x in peers.NUMPY}
    assert {m["loss"] for m in data["missing_peers"] if m["kind"] == "numpy"} == \
        {x for x in ALL if x not in peers.NUMPY}
    assert "MSE n=10^3" in stdout  # the headline row present at these sizes
    if disable:
        assert kinds <= {"fastloss", "numpy", "memref"}
        assert {s["peer"] for s in data["skipped"]} == {"torch", "sklearn", "matplotlib"}
        assert not glob.glob(os.path.join(str(tmp_path), "*.png"))
    assert data["conditions"]["fastloss_config"]["active_isa"]


def test_bench_loss_option_takes_aliases(tmp_path):
    data, stdout = run_bench(tmp_path, "torch,sklearn,matplotlib",
                             ["--loss", "mse", "--loss", "categorical_cross_entropy",
                              "--threads", "1", "--dtype", "float64"])
    assert {r["loss"] for r in data["results"]} == {"mean_squared_error",
                                                      "categorical_cross_entropy"}


@pytest.mark.parametrize("name", ALL)
def test_every_registered_loss_is_benchmarked(name):
    """Each loss through every operation, dtype, thread setting and shape the benchmark
    has, at 1000 elements, in process: data made from its declared input kinds, fastloss
    (and fastloss-alloc) timed, and its peers, where it has any, checked against it."""
    threads = sorted({1, W.all_threads()})
    ws = W.plan(True, [name], sizes=[1000], threads=threads)
    assert ws and {w.loss for w in ws} == {name}
    assert {w.op for w in ws} == set(W.OPS) and {w.dtype for w in ws} == set(W.DTYPES)
    assert all((w.k is not None) == W.is_rowwise(name) for w in ws)
    s = runner.Settings(repeat=1, sample_s=0.0005, alloc=True, memref_n=1000)
    results = runner.run(ws, s, stream=io.StringIO())
    recs = report.records(results, s.memref_n)
    for res in results:
        kinds = [t.kind for t in res["timings"]]
        assert kinds[0] == "fastloss"
        assert ("fastloss-alloc" in kinds) == (res["workload"].op == "loss_gradient")
        if name in peers.NUMPY:
            assert "numpy" in kinds and any(c["impl"].startswith("NumPy") for c in res["checks"])
        else:
            assert {"kind": "numpy", "peer": "NumPy", "reason": "no NumPy peer"} in res["missing"]
    text = report.tables(results, recs, max(threads))
    assert f"== {W.title(name)} " in text
    report.bandwidth(recs)
    report.headline(recs, max(threads))
    info = W.workload_info(name)
    json.dumps(info)
    assert set(info["inputs"].values()) <= set(W.GENERATORS)


def test_a_loss_without_peers_is_timed_alone_and_reported(monkeypatch):
    monkeypatch.delitem(peers.NUMPY, "huber")
    monkeypatch.setattr(peers.TORCH, "module", None)
    monkeypatch.setattr(peers.SKLEARN, "module", None)
    w = W.Workload("huber", "loss_gradient", 1000, None, "float64", 1)
    s = runner.Settings(repeat=1, sample_s=0.0005, alloc=True, memref_n=None)
    results = runner.run([w], s, stream=io.StringIO())
    assert [t.kind for t in results[0]["timings"]] == ["fastloss", "fastloss-alloc"]
    assert [c["impl"] for c in results[0]["checks"]] == ["fastloss (alloc)"]
    recs = report.records(results, None)
    text = report.tables(results, recs, 1)
    row = next(line for line in text.splitlines() if "no NumPy peer" in line)
    assert row.split()[0] == "NumPy"
    assert report.bandwidth(recs) == ("", [])


def test_every_data_kind_has_a_generator():
    from fastloss._registry import DATA_KINDS
    assert set(DATA_KINDS) <= set(W.GENERATORS)
    rng = np.random.default_rng(0)
    for dt in (np.dtype("float32"), np.dtype("float64")):
        b = W.gen_binary(rng, 1000, None, dt)
        assert b.dtype == dt and set(np.unique(b)) == {0.0, 1.0}
        p = W.gen_probability(rng, 1000, None, dt)
        assert p.dtype == dt and p.min() > 0 and p.max() < 1
        q = W.gen_probability(rng, 1000, 10, dt)
        assert q.shape == (100, 10) and np.allclose(q.sum(axis=1), 1, atol=1e-5)
        t = W.gen_distribution(rng, 1000, 10, dt)
        assert t.shape == (100, 10) and t.min() > 0 and np.allclose(t.sum(axis=1), 1, atol=1e-5)
        lab = W.gen_labels(rng, 1000, 10, dt)
        assert lab.dtype == np.int64 and lab.shape == (100,) and 0 <= lab.min() <= lab.max() < 10
    with pytest.raises(ValueError, match="elementwise"):
        W.gen_labels(rng, 1000, None, np.dtype("float64"))


def test_a_kind_without_generator_fails_loudly(monkeypatch):
    monkeypatch.delitem(W.GENERATORS, "real")
    with pytest.raises(ValueError, match=r"no data generator for the data kind 'real'.*"
                                         r"GENERATORS in bench/workloads.py"):
        W.plan(False, ["mean_squared_error"], sizes=[1000])


def test_data_of_the_first_losses():
    """The six original losses keep the data they had: d ~ N(0, 2) for regression, 0/1
    targets with N(0, 4) logits for BCE, uniform labels with N(0, 1) logits for CCE,
    softmax-normalised targets for KL (elementwise data bit for bit as before)."""
    n, k = 200_000, 10
    for name in ("mean_squared_error", "mean_absolute_error", "huber"):
        d = W.make_data(name, n, None, "float64")
        rng = np.random.default_rng(0)
        assert np.array_equal(d.y_true, rng.standard_normal(n))
        assert np.array_equal(d.y_pred, rng.standard_normal(n))
    d = W.make_data("binary_cross_entropy", n, None, "float32")
    assert d.y_true.dtype == d.y_pred.dtype == np.float32
    assert set(np.unique(d.y_true)) == {0, 1} and abs(d.y_true.mean() - 0.5) < 0.01
    assert abs(d.y_pred.std() - 2) < 0.02
    d = W.make_data("categorical_cross_entropy", n, k, "float64")
    assert d.y_true.dtype == np.int64 and d.y_true.shape == (n // k,)
    assert np.all(np.abs(np.bincount(d.y_true, minlength=k) / (n // k) - 1 / k) < 0.01)
    assert d.y_pred.shape == (n // k, k) and abs(d.y_pred.std() - 1) < 0.02
    d = W.make_data("kl_divergence", n, k, "float64")
    assert d.y_true.shape == d.y_pred.shape == (n // k, k)
    assert d.y_true.min() > 0 and np.allclose(d.y_true.sum(axis=1), 1)
    assert abs(d.y_pred.std() - 1) < 0.02


def test_registry_names_titles_and_aliases():
    assert list(W.LOSSES) == ALL
    assert W.title("binary_cross_entropy") == "BinaryCrossEntropy(from_logits=True)"
    assert W.title("categorical_cross_entropy").startswith(
        "CategoricalCrossEntropy(from_logits=True)")
    for name in ALL:
        cls = fl.LOSSES[name]
        assert W.title(name).startswith(cls.__name__)
        assert W.resolve(name) == W.resolve(cls.__name__) == name
        if any(p.name == "from_logits" for p in cls.params):
            assert W.params_of(name)["from_logits"] is True
    assert W.resolve("mse") == "mean_squared_error" and W.resolve("KL") == "kl_divergence"
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        W.resolve("nope")
    a = cli.parse_args(["--loss", "kl,mse", "--loss", "Huber"])
    assert a.losses == [x for x in ALL if x in ("mean_squared_error", "huber", "kl_divergence")]


def test_pipeline_rows_run_isolated(capsys):
    """The pipeline rows run each variant in its own worker process and print the targets'
    verdicts (one variant per pipeline here, with a short sample: a smoke test, not a timing)."""
    saved = list(sys.path)
    sys.path.insert(0, ROOT)
    try:
        from bench import pipelines
    finally:
        sys.path[:] = saved
    rows = [r for r in pipelines.variants()
            if r[1] in ("fastloss BCE alone (1 thread)", "iteration, fastloss CCE (1 thread)",
                        "one process: fastloss BCE alone (default threads)",
                        "one process: NumPy step alone")]
    assert len(rows) == 4      # the last two share one process, idle before each sample
    res = pipelines.run(repeat=1, sample_s=0.001, rows=rows)
    assert set(res) == {r[1] for r in rows}
    assert all(r["median_s"] > 0 for r in res.values())
    out = capsys.readouterr().out
    assert "own worker process" in out and "target" in out


def test_bench_dask_smoke(tmp_path):
    """`python -m bench --dask` at tiny sizes: runs, and fastloss.dask's value is the
    in-memory call's bit for bit."""
    pytest.importorskip("dask.array")
    pytest.importorskip("distributed")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--dask", "--sizes", "20000", "--chunk", "3000",
         "--repeat", "1", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "overhead per chunk" in proc.stdout
    files = glob.glob(os.path.join(str(tmp_path), "fastloss-dask-*.json"))
    assert len(files) == 1, files
    with open(files[0]) as f:
        data = json.load(f)
    assert {r["loss"] for r in data["rows"]} == {"mean_squared_error", "binary_cross_entropy"}
    assert all(r["bit_identical"] for r in data["rows"]), data["rows"]
    assert data["conditions"]["n"] == 20000 and data["conditions"]["chunk"] == 3000


def _rowwise_bench(tmp_path, env_extra):
    env = dict(os.environ, FASTLOSS_BENCH_DISABLE="torch,sklearn,matplotlib", **env_extra)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--rowwise", "--sizes", "20000", "--repeat", "2",
         "--out", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = glob.glob(os.path.join(str(tmp_path), "fastloss-bench-rowwise-*.json"))
    assert len(files) == 1, files
    with open(files[0]) as f:
        return json.load(f)["rowwise"], proc.stdout


def test_rowwise_bench_prints_the_fractions(tmp_path):
    """`python -m bench --rowwise` times CCE, KL and focal, and the C reference where this
    machine can build it (the build compiled fastloss, so it normally can)."""
    from bench import c_reference
    res, stdout = _rowwise_bench(tmp_path, {})
    got = {(r["loss"], r["k"], r["dtype"]) for r in res["rows"]}
    with_c = c_reference.load()[0] is not None
    losses = ["CCE", "KL", "focal"] + (["C"] if with_c else [])
    assert got == {(x, k, d) for x in losses for k in (10, 1000)
                   for d in ("float32", "float64")}
    for r in res["rows"]:
        assert r["median_s"] > 0 and r["samples"] == 2 and r["rows"] * r["k"] <= 20000
        if r["loss"] == "C":
            assert r["c_over_cce"] > 0
        elif r["loss"] != "CCE":
            assert r["over_cce"] > 0
        if r["dtype"] == "float32":
            assert r["f32_over_f64_throughput"] > 0
    if with_c:
        assert "C time / fastloss CCE time" in stdout and res["check"]
    else:
        assert "C reference: skipped" in stdout
    assert "(target" not in stdout   # the targets are for 10^7 elements, not these sizes


def test_rowwise_bench_skips_the_c_rows_without_a_compiler(tmp_path):
    res, stdout = _rowwise_bench(tmp_path, {"CC": os.path.join(str(tmp_path), "no-such-cc")})
    assert "C reference: skipped: no C compiler" in stdout
    assert res["c_reference"] is None and res["c_skipped"]
    assert {r["loss"] for r in res["rows"]} == {"CCE", "KL", "focal"}


def test_against_mse_bench_times_every_elementwise_loss(tmp_path):
    """`python -m bench --against-mse`: every elementwise loss of the registry, MSE first,
    each with its per-round time ratio to MSE; the targets are quoted only at 10^7."""
    env = dict(os.environ, FASTLOSS_BENCH_DISABLE="torch,sklearn,matplotlib")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--against-mse", "--sizes", "20000", "--repeat", "2",
         "--dtype", "float32", "--out", str(tmp_path)], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = glob.glob(os.path.join(str(tmp_path), "fastloss-bench-against-mse-*.json"))
    assert len(files) == 1, files
    with open(files[0]) as f:
        res = json.load(f)["against_mse"]
    elementwise = [x for x in ALL if not W.is_rowwise(x)]
    assert [r["loss"] for r in res["rows"]] == ["mean_squared_error"] + [
        x for x in elementwise if x != "mean_squared_error"]
    assert res["n"] == 20000 and res["dtype"] == "float32"
    for r in res["rows"]:
        assert r["median_s"] > 0 and r["samples"] == 2 and r["over_mse"] > 0
    assert "/ MSE" in proc.stdout and "(target" not in proc.stdout


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("k", [1, 10, 1000])
def test_c_reference_computes_cross_entropy(dtype, k):
    """The C kernel the benchmark compares with, against NumPy in float64: its fractions
    mean something only if it does the same job."""
    from bench import c_reference
    lib, why = c_reference.load()
    if lib is None:
        pytest.skip(why)
    rng = np.random.default_rng(k)
    n = 333   # not a multiple of the C kernel's block of rows
    z = (5 * rng.standard_normal((n, k))).astype(dtype)
    y = rng.integers(0, k, size=n)
    g = np.full_like(z, np.nan)
    loss, _ = c_reference.ce_logits(y, z, g, 2)
    z64 = z.astype(np.float64)
    lse = z64.max(axis=1) + np.log(np.exp(z64 - z64.max(axis=1, keepdims=True)).sum(axis=1))
    want = np.mean(lse - z64[np.arange(n), y])
    p = np.exp(z64 - lse[:, None])
    p[np.arange(n), y] -= 1
    rtol = 1e-12 if dtype == "float64" else 1e-5
    assert abs(loss - want) <= rtol * max(abs(want), 1e-300) + (1e-15 if k == 1 else 0)
    np.testing.assert_allclose(g, p / n, rtol=0, atol=rtol / n)
