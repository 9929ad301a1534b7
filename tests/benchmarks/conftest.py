"""The benchmark scripts' tests import the scripts (``benchmarks/`` is not a package) through ``bench_script``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def import_benchmark(name: str) -> ModuleType:
    """The module of ``benchmarks/<name>.py`` (its sibling helpers importable while it loads)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture
def bench_script() -> Callable[[str], ModuleType]:
    return import_benchmark
