"""Packaging: what the sdist carries, what the import error says, what show_config reports
about vector math (checked against the symbols the loaded module really imports), and the
portable build's modules (glibc symbol versions, RUNPATH, debug info).

The references are independent of fastloss's own code: git's list of tracked files, the ELF
symbol tables of the compiled modules (pyelftools), the dynamic loader's own failures, and
NumPy's float64 log1p/expm1. Tests skip cleanly where a tool is missing (git, build,
pyelftools) or the build kind makes them meaningless (say why)."""
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest

import fastloss as fl
from fastloss import _config

from isolated import run_isolated

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.dirname(os.path.abspath(fl.__file__))
CI = os.path.join(ROOT, ".ci")
KINDS = {"scalar libm", "libmvec", "libmvec, bound at run time"}


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    """The sdist CI built (FASTLOSS_SDIST), else one built from this checkout."""
    given = os.environ.get("FASTLOSS_SDIST")
    if given:
        return given
    if not os.path.exists(os.path.join(ROOT, "setup.py")):
        pytest.skip("no setup.py here (tests copied out of the tree) and no FASTLOSS_SDIST")
    # Not importorskip("build"): from the repository root that finds setuptools' build/
    # folder (a namespace package) where the `build` frontend is not installed.
    try:
        frontend = importlib.util.find_spec("build.__main__")
    except ImportError:
        frontend = None
    if frontend is None:
        pytest.skip("python -m build is not installed (the release extra)")
    out = tmp_path_factory.mktemp("sdist")
    # --no-isolation: this environment already has the build requirements (it built fastloss).
    r = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation",
                        "--outdir", str(out), ROOT], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (path,) = glob.glob(str(out / "fastloss-*.tar.gz"))
    return path


def _members(path):
    with tarfile.open(path) as t:
        names = [m.name for m in t.getmembers() if m.isfile()]
    top = names[0].split("/")[0]
    return {n[len(top) + 1:] for n in names}


# The C sources written by hand (every other .c is Cython's output, made by the build).
HAND_WRITTEN_C = ("fastloss/_mvec_shim.c", "fastloss/_omp_shim.c", "bench/c_reference/rowwise.c")


def test_sdist_carries_the_sources_tests_and_bench(sdist):
    members = _members(sdist)
    for needed in ("setup.py", "pyproject.toml", "README.md", "LICENSE",
                   "fastloss/_ext_baseline.pyx", "fastloss/_entry.pyx", "fastloss/_kernels.pxi",
                   "fastloss/_simd_math.h", "fastloss/_threads.h", "fastloss/_mvec_shim.c",
                   "fastloss/_omp_shim.c",
                   "fastloss/_glibc_compat.h", "bench/__main__.py", "tests/conftest.py",
                   ".ci/run", ".ci/wheel_check.py", *HAND_WRITTEN_C):
        assert needed in members, f"the sdist lacks {needed}"
    generated = sorted(m for m in members if m.endswith((".c", ".so", ".pyd"))
                       and m not in HAND_WRITTEN_C)
    assert not generated, f"the sdist carries generated files: {generated}"
    assert not any(m.startswith("build/") for m in members), "the sdist carries build/"


def test_sdist_carries_every_tracked_source(sdist):
    """Independent of MANIFEST.in: every file git tracks under fastloss/, bench/, tests/."""
    if shutil.which("git") is None or not os.path.exists(os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout")
    r = subprocess.run(["git", "ls-files", "fastloss", "bench", "tests"], cwd=ROOT,
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("git ls-files failed: " + r.stderr.strip())
    missing = sorted(set(r.stdout.split()) - _members(sdist))
    assert not missing, f"tracked files missing from the sdist: {missing}"


def test_show_config_reports_vector_math():
    cfg = fl.show_config(file=open(os.devnull, "w"))
    assert set(cfg["vector_math"]) == {"exp", "log", "log1p", "expm1"}
    assert set(cfg["vector_math"].values()) <= KINDS, cfg["vector_math"]
    assert isinstance(cfg["portable_build"], bool)
    assert isinstance(cfg["exp_inline"], bool)
    assert (cfg["vector_math"]["exp"] == "libmvec") == cfg["vector_math_libmvec"]


def _undefined_symbols(path):
    elffile = pytest.importorskip("elftools.elf.elffile", reason="pyelftools is not installed")
    with open(path, "rb") as f:
        elf = elffile.ELFFile(f)
        dynsym = elf.get_section_by_name(".dynsym")
        return {s.name for s in dynsym.iter_symbols() if s.entry.st_shndx == "SHN_UNDEF"}


def test_vector_math_matches_the_module_symbols():
    """What show_config says against what the active module imports and libmvec exports."""
    if not sys.platform.startswith("linux"):
        pytest.skip("ELF modules only")
    vm = fl.show_config(file=open(os.devnull, "w"))["vector_math"]
    undefined = _undefined_symbols(_config.ext.__file__)
    for fn in ("exp", "log", "log1p", "expm1"):
        linked = {s for s in undefined if s.startswith("_ZGV") and s.split("_", 2)[-1] in
                  (fn, fn + "f")}
        if vm[fn] == "libmvec":
            assert linked, f"{fn}: reported libmvec, but the module imports no vector {fn}"
        else:
            assert not linked, f"{fn}: reported {vm[fn]!r}, but the module imports {linked}"
        if vm[fn] == "libmvec, bound at run time":
            import ctypes
            lib = ctypes.CDLL("libmvec.so.1")
            assert hasattr(lib, f"_ZGVbN2v_{fn}"), f"{fn}: bound, yet libmvec lacks it"


@pytest.mark.skipif(_config.ext.build_info()["vector_math"]["log1p"] != "libmvec, bound at run time",
                    reason="log1p/expm1 are not bound at run time in this build")
def test_without_runtime_libmvec_the_scalar_fallback_gives_the_same_losses():
    """FASTLOSS_LIBMVEC_RUNTIME=0 runs what a glibc < 2.35 runs: log1p/expm1 one lane at a
    time. Losses built on log1p equal NumPy's float64 formulas, as with libmvec."""
    rc, out = run_isolated("""
        import numpy as np
        vm = fl.show_config(file=open(__import__("os").devnull, "w"))["vector_math"]
        assert vm["log1p"] == "scalar libm" and vm["expm1"] == "scalar libm", vm
        rng = np.random.default_rng(0)
        z = rng.normal(scale=4, size=100_003)
        y = (rng.random(z.size) < 0.5).astype(float)
        p = rng.random(z.size) * 3
        t = rng.random(z.size) * 3
        for name, got, want in [
            ("bce", fl.BinaryCrossEntropy(from_logits=True).loss(y, z, reduction="none"),
             np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z)))),
            ("logcosh", fl.LogCosh().loss(t, p, reduction="none"),
             np.log(np.cosh(p - t))),
            ("msle", fl.MeanSquaredLogError().loss(t, p, reduction="none"),
             (np.log1p(p) - np.log1p(t)) ** 2),
        ]:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=name)
            print("OK", name, flush=True)
        for n in (1, 2):   # the same bits for every thread count, as always
            same(f"bce threads {n}", fl.BinaryCrossEntropy(from_logits=True, n_threads=n)(y, z),
                 fl.BinaryCrossEntropy(from_logits=True, n_threads=1)(y, z))
    """, env={"FASTLOSS_LIBMVEC_RUNTIME": "0"})
    assert rc == 0, out


def _copy_package(tmp_path, with_modules):
    """A copy of the installed package (its Python files, its compiled modules or not)."""
    dst = tmp_path / "site" / "fastloss"
    dst.mkdir(parents=True)
    for f in os.listdir(PKG):
        src = os.path.join(PKG, f)
        if os.path.isfile(src) and (f.endswith(".py") or
                                    (with_modules and f.endswith((".so", ".pyd")))):
            shutil.copy(src, dst / f)
    return str(tmp_path / "site")


def _import_in(site, env=None):
    full = dict(os.environ, PYTHONPATH=site, **(env or {}))
    r = subprocess.run([sys.executable, "-c", "import fastloss"], capture_output=True,
                       text=True, cwd=site, env=full, timeout=120)
    return r.returncode, r.stderr


def test_import_error_without_compiled_modules(tmp_path):
    rc, err = _import_in(_copy_package(tmp_path, with_modules=False))
    assert rc != 0
    assert "compiled kernels are missing" in err, err[-2000:]


def test_import_error_names_a_broken_openmp_runtime(tmp_path):
    """The dynamic loader finds a libgomp.so.1 without OpenMP in it (an empty library first
    on the search path): the error names the runtime and how to install it, not "kernels are
    missing"."""
    if not sys.platform.startswith("linux") or not _config.BUILD_INFO.get("openmp"):
        pytest.skip("only Linux OpenMP builds load libgomp")
    if "libgomp.so.1" not in _needed(_config._entry.__file__):
        pytest.skip("this build does not link libgomp.so.1")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to make the empty library")
    site = _copy_package(tmp_path, with_modules=True)
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "empty.c").write_text("int fastloss_test_nothing;\n")
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(libs / "libgomp.so.1"),
                    str(libs / "empty.c")], check=True, capture_output=True)
    rc, err = _import_in(site, {"LD_LIBRARY_PATH": str(libs)})
    assert rc != 0, "fastloss imported with an empty libgomp.so.1"
    assert "GNU OpenMP runtime" in err and "apt-get install libgomp1" in err, err[-2000:]
    assert "kernels are missing" not in err, err[-2000:]


def _needed(path):
    dyn = pytest.importorskip("elftools.elf.dynamic", reason="pyelftools is not installed")
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return [t.needed for s in elf.iter_sections() if isinstance(s, dyn.DynamicSection)
                for t in s.iter_tags() if t.entry.d_tag == "DT_NEEDED"]


def test_portable_build_modules_pass_the_wheel_check():
    """The portable build's modules: glibc symbol versions <= 2.28, no RUNPATH, no debug
    info, stripped (.ci/wheel_check.py, which reads the ELF files with pyelftools)."""
    if not fl.show_config(file=open(os.devnull, "w"))["portable_build"]:
        pytest.skip("not a portable build (FASTLOSS_PORTABLE=1): glibc versions are the "
                    "build machine's")
    if not sys.platform.startswith("linux"):
        pytest.skip("ELF modules only")
    pytest.importorskip("elftools", reason="pyelftools is not installed")
    check = os.path.join(CI, "wheel_check.py")
    if not os.path.exists(check):
        pytest.skip(".ci/wheel_check.py is not next to these tests")
    modules = sorted(glob.glob(os.path.join(PKG, "*.so")))
    r = subprocess.run([sys.executable, check, "--max-glibc", "2.28", *modules],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def _portable_openmp():
    cfg = fl.show_config(file=open(os.devnull, "w"))
    return cfg["openmp_runtime"] == "libgomp.so.1, loaded at run time" or (
        cfg["portable_build"] and cfg["openmp"] and sys.platform.startswith("linux"))


@pytest.mark.skipif(not _portable_openmp(), reason="only portable Linux builds open libgomp "
                    "at run time (others link it)")
def test_portable_build_links_no_openmp_runtime_and_shares_the_loaded_one():
    """No module NEEDs libgomp (manylinux allows none); the libgomp.so.1 opened at import is
    the one a neighbour that links it uses (threadpoolctl lists one libgomp), and
    threadpoolctl's limits set fastloss's default thread count."""
    for so in glob.glob(os.path.join(PKG, "*.so")):
        assert not any("gomp" in n or "omp" in n for n in _needed(so)), (so, _needed(so))
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if fl.show_config(file=open(os.devnull, "w"))["cpus"] < 2:
        pytest.skip("one CPU: every default is 1")
    rc, out = run_isolated("""
        import os
        from threadpoolctl import threadpool_info, threadpool_limits
        cfg = fl.show_config(file=open(os.devnull, "w"))
        assert cfg["openmp_runtime"] == "libgomp.so.1, loaded at run time", cfg["openmp_runtime"]
        gomp = [i for i in threadpool_info() if i.get("internal_api") == "openmp"]
        assert len(gomp) == 1, gomp
        with threadpool_limits(1):
            assert fl.show_config(file=open(os.devnull, "w"))["default_threads"] == 1
        with threadpool_limits(2):
            assert fl.show_config(file=open(os.devnull, "w"))["default_threads"] == 2
        assert (fl.show_config(file=open(os.devnull, "w"))["default_threads"]
                == cfg["default_threads"])
        print("OK", gomp[0]["filepath"], flush=True)
    """)
    assert rc == 0, out


@pytest.mark.skipif(not _portable_openmp(), reason="only portable Linux builds open libgomp "
                    "at run time (others link it)")
def test_portable_build_without_libgomp_imports_and_reads_omp_num_threads(tmp_path):
    """A system without a usable libgomp.so.1 (an empty library first on the search path):
    the portable build still imports and runs; OMP_NUM_THREADS sets the default."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to make the empty library")
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "empty.c").write_text("int fastloss_test_nothing;\n")
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(libs / "libgomp.so.1"),
                    str(libs / "empty.c")], check=True, capture_output=True)
    rc, out = run_isolated("""
        import os
        import numpy as np
        cfg = fl.show_config(file=open(os.devnull, "w"))
        assert cfg["openmp_runtime"] == "none", cfg["openmp_runtime"]
        assert cfg["default_threads"] == 1, cfg["default_threads"]
        y = np.linspace(0, 1, 100_000)
        same("threads", fl.MeanSquaredError(n_threads=2)(y, y[::-1]),
             fl.MeanSquaredError(n_threads=1)(y, y[::-1]))
    """, env={"LD_LIBRARY_PATH": str(libs), "OMP_NUM_THREADS": "1"})
    assert rc == 0, out
