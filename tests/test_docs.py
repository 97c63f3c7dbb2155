"""The README's usage example and every docstring example run as written."""
import doctest
import io
import pathlib
import re

import pytest

import fastloss
import fastloss._config
import fastloss.losses

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_python_blocks_run():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize("module", [fastloss.losses, fastloss._config])
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
