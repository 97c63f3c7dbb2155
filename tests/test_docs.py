"""The README's usage example and every docstring example run as written."""
import doctest
import io
import pathlib
import re
import sys

import pytest

import fastloss
import fastloss._config
import fastloss.losses
import importlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _importable(module):
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def test_readme_python_blocks_run():
    """Every top-level python block runs. (Blocks indented inside a list, as in "Adding a loss",
    are excerpts of a declaration: running one would declare a loss into the registry.)"""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    assert blocks, "README has no python example"
    assert any("import fastloss as fl" in b for b in blocks), "the usage example is not run"
    before = dict(fastloss.LOSSES)
    for block in blocks:
        # The optional libraries' examples (GBDT, scikit-learn, Dask) run where they are
        # installed.
        needs = re.findall(r"^(?:import|from) (xgboost|lightgbm|sklearn|dask[\w.]*)\b", block,
                           flags=re.M)
        if not all(map(_importable, needs)):
            continue
        exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})
    assert dict(fastloss.LOSSES) == before, "a README example changed the registry"


# the modules that declare the registered losses (fastloss/losses.py today), and _config
DOC_MODULES = [sys.modules[m] for m in sorted({c.__module__ for c in fastloss.LOSSES.values()}
                                               | {"fastloss.losses"})] + [fastloss._config]
DOC_MODULES += [importlib.import_module(m) for m in ("fastloss.gbdt", "fastloss._sklearn")]


@pytest.mark.parametrize("module", DOC_MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module) if t.examples]
    assert tests or module is fastloss._config
    for t in tests:
        runner.run(t, out=io.StringIO().write)
    assert runner.failures == 0, runner.summarize(verbose=False)


def test_readme_test_command_is_what_ci_runs():
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if "ci:test-command" in line)
    assert lines[i + 1].startswith("pip install") and "pytest" in lines[i + 1]
    assert "ci:test-command" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("name", list(fastloss.LOSSES))
def test_every_declared_loss_has_a_passing_docstring_example(name):
    cls = fastloss.LOSSES[name]
    tests = [t for t in doctest.DocTestFinder().find(cls, name=cls.__name__,
                                                   globs={"__name__": "__doctest__"})
             if t.examples and t.name == cls.__name__]
    assert tests, f"{cls.__name__} has no docstring example"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for t in tests:
        runner.run(t, out=io.StringIO().write)
    assert runner.failures == 0, runner.summarize(verbose=False)
    for p in cls.params:                         # the generated Parameters section
        assert f"{p.name} : {p.type}, default {p.default!r}" in cls.__doc__, (name, p.name)
