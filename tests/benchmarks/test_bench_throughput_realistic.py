"""``benchmarks/throughput.py --realistic``: the published-scale cases, channels-last, compile, pinned memory."""

from __future__ import annotations

import importlib
import json
import math
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
SCRIPT = BENCHMARKS / "throughput.py"


@pytest.fixture(scope="module")
def throughput() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("throughput")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_realistic_cases_are_the_published_encoders(throughput: ModuleType) -> None:
    cases = {c.name: c for c in throughput.REALISTIC_CASES}
    assert set(cases) == {"simclr-resnet50-224", "mae-vitb16-224", "simclr-resnet18_3d-96"}
    assert cases["simclr-resnet50-224"].model["block"] == "bottleneck"
    assert cases["mae-vitb16-224"].model == {"patch_size": 16, "dim": 768, "depth": 12, "heads": 12}
    assert cases["simclr-resnet18_3d-96"].spatial_dims == 3 and cases["simclr-resnet18_3d-96"].image_size == 96


def test_peer_figures_carry_their_source_and_hardware(throughput: ModuleType) -> None:
    assert {p["peer"] for p in throughput.PEER_THROUGHPUT} == {"lightly", "solo-learn", "MONAI"}
    for peer in throughput.PEER_THROUGHPUT:
        if peer["published"] is not None:
            assert peer["source"].startswith("https://") and peer["hardware"]
        else:
            assert peer["samples_per_s"] is None and "no comparable" in peer["note"]


def test_options_need_realistic(throughput: ModuleType) -> None:
    with pytest.raises(SystemExit):
        throughput.parse_args(["--compile"])
    args = throughput.parse_args(["--realistic", "--quick", "--channels-last"])
    assert args.batch_size == 2 and args.steps == 1 and args.channels_last
    assert throughput.parse_args(["--realistic"]).batch_size is None  # each case's own


@pytest.mark.parametrize("channels_last", [False, True])
def test_one_tiny_realistic_row(throughput: ModuleType, channels_last: bool) -> None:
    """A 3D bottleneck case shrunk to seconds on the CPU: the row has the promised columns and sane numbers."""
    case = replace(throughput.REALISTIC_CASES[2], name="tiny-3d",
                   model={"block": "bottleneck", "widths": (4, 8), "blocks": (1, 1), "stem_kernel": 7,
                          "stem_stride": 2, "stem_pool": True})
    row = throughput.benchmark_realistic(case, device=torch.device("cpu"), precision="32-true", batch_size=2, size=16,
                                         steps=1, warmup=0, peak_tflops=1.0, channels_last=channels_last,
                                         compile_method=False)
    assert row["status"] == "ok" and row["input"] == "1x16x16x16"
    assert row["memory_format"] == ("channels_last_3d" if channels_last else "contiguous_format")
    for key in ("samples_per_s", "step_ms", "gflop_per_step", "mfu", "params_M", "encoder_params_M"):
        assert math.isfinite(row[key]) and row[key] > 0, key
    assert row["samples_per_s"] == pytest.approx(2 / (row["step_ms"] / 1e3))
    assert row["views_per_step"] == 2 and row["compiled"] is False
    assert "h2d_ms_pinned" not in row  # no GPU: no host -> device copy to time


def test_compile_failure_is_recorded_and_the_case_runs_eagerly(throughput: ModuleType,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(fn: object, *args: object, **kwargs: object) -> object:
        def fail(*a: object, **k: object) -> None:
            raise RuntimeError("no compiler here")
        return fail

    monkeypatch.setattr(torch, "compile", broken)
    case = replace(throughput.REALISTIC_CASES[0], name="tiny-2d",
                   model={"widths": (4, 8), "blocks": (1, 1)})
    row = throughput.benchmark_realistic(case, device=torch.device("cpu"), precision="32-true", batch_size=2, size=16,
                                         steps=1, warmup=0, peak_tflops=1.0, channels_last=False,
                                         compile_method=True)
    assert row["status"] == "compile failed, eager: RuntimeError: no compiler here"
    assert row["compiled"] is False and row["samples_per_s"] > 0


@pytest.mark.slow
def test_quick_realistic_run_writes_its_own_files(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--realistic", "--quick", "--channels-last", "--out-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((tmp_path / "throughput-realistic-cpu-channels-last-quick.json").read_text())
    rows = payload["rows"]
    assert [r["case"] for r in rows] == ["simclr-resnet50-224", "mae-vitb16-224", "simclr-resnet18_3d-96"]
    assert all(r["status"] == "ok" and r["samples_per_s"] > 0 for r in rows)
    encoders = {r["case"]: r["encoder_params_M"] for r in rows}
    assert encoders["simclr-resnet50-224"] == pytest.approx(23.508032)
    assert encoders["mae-vitb16-224"] == pytest.approx(85.64736)
    assert payload["peers"] and payload["arguments"]["realistic"] is True
    markdown = (tmp_path / "throughput-realistic-cpu-channels-last-quick.md").read_text()
    assert "Published throughput of the peers" in markdown


def test_out_of_memory_is_recorded_per_case(throughput: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_memory(case: object, size: int) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    monkeypatch.setattr(throughput, "realistic_method", out_of_memory)
    row = throughput.benchmark_realistic(throughput.REALISTIC_CASES[0], device=torch.device("cpu"),
                                         precision="32-true", batch_size=2, size=16, steps=1, warmup=0,
                                         peak_tflops=1.0, channels_last=False, compile_method=False)
    assert row["status"].startswith("oom: CUDA out of memory") and "samples_per_s" not in row


def test_a_case_past_its_timeout_is_recorded_and_the_files_are_written(
    throughput: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def hang(case: object, **kwargs: object) -> None:
        time.sleep(30)

    monkeypatch.setattr(throughput, "benchmark_realistic", hang)
    start = time.perf_counter()
    rows = throughput.main(["--realistic", "--quick", "--case-timeout", "0.5", "--realistic-cases", "mae-vitb16-224",
                            "--out-dir", str(tmp_path)])
    assert time.perf_counter() - start < 20
    assert rows == [{"case": "mae-vitb16-224", "method": "mae", "encoder": "vit", "batch_size": 2,
                     "status": "timeout after 0.5 s"}]
    payload = json.loads((tmp_path / "throughput-realistic-cpu-quick.json").read_text())
    assert payload["meta"]["complete"] is True and payload["rows"] == rows
