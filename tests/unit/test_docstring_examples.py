"""Every runnable example in the package's docstrings runs and prints what it says (DESIGN: docstrings carry a
runnable example). Examples marked ``+SKIP`` need a cluster or data and are left out."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import mixsize_ray

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(m.name for m in pkgutil.walk_packages(mixsize_ray.__path__, "mixsize_ray.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", [*MODULES, "benchmarks.reproduce_claims", "benchmarks.figure", "benchmarks.common",
                                  "benchmarks.bench_calibration",
                                  "benchmarks.bench_step_time", "benchmarks.bench_flops", "benchmarks.bench_refusals",
                                  "tests.cli_corpus.runner", "tests.unit.test_no_wall_clock_asserts"])
def test_docstring_examples(name, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)  # examples name files as the README does (search_spaces/...)
    monkeypatch.setenv("MIXSIZE_RAY_DATA_DIR", str(tmp_path / "data"))
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples failed"
