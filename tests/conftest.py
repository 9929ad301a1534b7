"""Shared fixtures: tiny seeded datasets on disk and a way to run the CLI in-process."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import yaml


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def expect_error(self, *fragments: str) -> None:
        """Exit code 1, exactly one ``error:`` line holding every fragment, and no traceback."""
        assert self.code == 1, self.err
        errors = [line for line in self.err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in self.err, self.err
        for fragment in fragments:
            assert fragment in errors[0], errors[0]


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run ``biolatent ARGS`` through the real entry point (error handling included), in-process."""
    from biolatent.cli import main

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["biolatent", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def counts_h5ad(tmp_path_factory) -> Path:
    from biolatent.data.simulate import write_counts_dataset

    return write_counts_dataset(tmp_path_factory.mktemp("counts"), n_cells=120, n_genes=40, n_types=3, seed=0)


@pytest.fixture(scope="session")
def dna_files(tmp_path_factory) -> tuple[Path, Path]:
    from biolatent.data.simulate import write_dna_dataset

    return write_dna_dataset(tmp_path_factory.mktemp("dna"), n=80, length=40, seed=0)


@pytest.fixture(scope="session")
def image_files(tmp_path_factory) -> tuple[Path, Path]:
    from biolatent.data.simulate import write_image_dataset

    return write_image_dataset(tmp_path_factory.mktemp("images"), n=40, size=32, seed=0)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


TINY_MODELS = {
    "mlp": {"hidden_dims": [32], "out_dim": 16},
    "bert": {"hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64},
    "nt": {"hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64},
    "resnet": {"widths": [8, 16], "blocks": [1, 1]},
    "vit": {"patch_size": 8, "dim": 32, "depth": 1, "heads": 2},
}


@pytest.fixture
def tiny_config(tmp_path, counts_h5ad, dna_files, image_files):
    """``tiny_config(modality, method, **train)`` -> path of a small, fast run config."""

    def make(modality: str, method: str, model: str | None = None, **train) -> Path:
        if modality == "counts":
            data = {"modality": "counts", "path": str(counts_h5ad)}
            model = model or "mlp"
        elif modality == "dna":
            data = {"modality": "dna", "path": str(dna_files[0]), "metadata": str(dna_files[1]), "kmer": 3}
            model = model or "bert"
        else:
            data = {"modality": "image2d", "path": str(image_files[0]), "metadata": str(image_files[1]),
                    "image_size": 32}
            model = model or ("vit" if method == "mae" else "resnet")
        config = {
            "data": data,
            "method": {"name": method},
            "model": {"name": model, **TINY_MODELS[model]},
            "train": {"epochs": 2, "batch_size": 32, "seed": 0, **train},
        }
        return write_config(tmp_path / f"{modality}-{method}.yaml", config)

    return make


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def import_benchmark(name: str) -> ModuleType:
    """The module of ``benchmarks/<name>.py`` (not a package; its sibling helpers importable while it loads)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture
def bench_script() -> Callable[[str], ModuleType]:
    """``bench_script(name)`` -> the imported benchmark script ``benchmarks/<name>.py``."""
    return import_benchmark
