"""``benchmarks/volume_throughput.py``: the --quick smoke run's tables, and the script's helpers in-process."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "volume_throughput.py"
CONFIGS = sorted([*ROOT.glob("configs/volume/*.yaml"), *ROOT.glob("configs/cine/*.yaml")])
COLUMNS = [
    "config", "method", "modality", "encoder", "batch_size", "size", "frames", "params_M", "samples_per_s",
    "frames_per_s", "step_ms", "loader_wait_fraction", "num_workers",
]
VIEWS_COLUMNS = ["modality", "batch_size", "input_shape", "biolatent_ms", "torchio_ms", "torchio_over_biolatent"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, str]:
    out = tmp_path_factory.mktemp("volume_throughput")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out-dir", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads((out / "volume_throughput-cpu.json").read_text())
    return payload, (out / "volume_throughput-cpu.md").read_text(), result.stdout


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        return importlib.import_module("volume_throughput")
    finally:
        sys.path.remove(str(SCRIPT.parent))


@pytest.mark.slow
def test_one_row_per_example_config_with_its_method(quick_run: tuple[dict, str, str]) -> None:
    payload, markdown, stdout = quick_run
    assert len(CONFIGS) >= 9  # 6 brain methods (+ ablations), 3 cine
    rows = {row["config"]: row for row in payload["rows"]}
    assert set(rows) == {f"{p.parent.name}/{p.name}" for p in CONFIGS}
    for path in CONFIGS:
        raw = yaml.safe_load(path.read_text())
        row = rows[f"{path.parent.name}/{path.name}"]
        assert (row["method"], row["modality"]) == (raw["method"]["name"], raw["data"]["modality"])
        assert row["encoder"] == raw["model"]["name"]
        assert set(COLUMNS) <= set(row)
    assert payload["columns"] == COLUMNS and payload["meta"]["quick"] is True
    header = "| " + " | ".join(COLUMNS) + " |"
    assert header in markdown and header in stdout


@pytest.mark.slow
def test_throughput_numbers_are_consistent(quick_run: tuple[dict, str, str]) -> None:
    payload, _, _ = quick_run
    for row in payload["rows"]:
        name = row["config"]
        assert row["batch_size"] == 4 and row["size"] == 16 and row["steps"] == 2 and row["num_workers"] == 0
        assert row["samples_per_s"] > 0 and row["params_M"] > 0, name
        assert 0.0 <= row["loader_wait_fraction"] < 1.0, name
        assert row["step_ms"] == pytest.approx(row["compute_ms"] + row["wait_ms"])
        assert row["samples_per_s"] == pytest.approx(row["batch_size"] / (row["step_ms"] / 1e3))
        assert row["loader_wait_fraction"] == pytest.approx(row["wait_ms"] / row["step_ms"])
        assert row["fit_s"] > row["step_ms"] * row["steps"] / 1e3  # start-up and warm-up are outside the steps
        if row["modality"] == "cine":
            assert row["frames"] == 10
            assert row["frames_per_s"] == pytest.approx(row["samples_per_s"] * 10)
        else:
            assert row["frames"] is None and row["frames_per_s"] is None


@pytest.mark.slow
def test_views_comparison_rows(quick_run: tuple[dict, str, str]) -> None:
    payload, markdown, _ = quick_run
    assert payload["views_columns"] == VIEWS_COLUMNS
    views = {row["modality"]: row for row in payload["views"]}
    assert set(views) == {"volume", "cine"}
    assert views["volume"]["input_shape"] == "1x16x16x16" and views["cine"]["input_shape"] == "10x16x16x16"
    for row in views.values():
        assert row["batch_size"] == 4 and row["biolatent_ms"] > 0 and row["torchio_ms"] > 0
        assert row["torchio_over_biolatent"] == pytest.approx(row["torchio_ms"] / row["biolatent_ms"])
    assert "| " + " | ".join(VIEWS_COLUMNS) + " |" in markdown


def test_synthetic_volumes_are_seeded_and_pass_anatomy_masking(bench: ModuleType) -> None:
    from biolatent.build import build_method, load_config

    x = bench.synthetic_volumes(6, 16, seed=0)
    assert x.shape == (6, 1, 16, 16, 16) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert torch.equal(x, bench.synthetic_volumes(6, 16, seed=0))
    assert not torch.equal(x, bench.synthetic_volumes(6, 16, seed=1))
    assert not torch.equal(x[0], x[1])  # every sample its own head
    samples = bench.synthetic_samples("volume", 6, 16, 10, seed=0)
    assert samples.groups.tolist() == [0, 0, 1, 1, 2, 2]  # MICLe: two scans per subject
    raw = yaml.safe_load((ROOT / "configs/volume/brain_mae.yaml").read_text())
    config = load_config({"data": {"modality": "volume", "path": "x", "image_size": 16}, "method": raw["method"],
                          "model": raw["model"]})
    build_method(config, samples.info).check_samples(samples)  # anatomy-aware masking finds the head


def test_synthetic_cines_contract_over_the_cycle(bench: ModuleType) -> None:
    x = bench.synthetic_cines(3, 16, 10, seed=0)
    assert x.shape == (3, 10, 16, 16, 16)
    assert torch.equal(x, bench.synthetic_cines(3, 16, 10, seed=0))
    assert not torch.equal(x, bench.synthetic_cines(3, 16, 10, seed=1))
    bright = (x > 0.8).flatten(2).sum(-1)  # cavity voxels per frame
    assert bool((bright[:, 0] > bright[:, 5]).all())  # end-diastole (t = 0) > end-systole (t = 0.5)
    assert torch.equal(bright[:, 1], bright[:, 9])  # the cycle is symmetric about t = 0.5


def test_steady_state_timer_drops_the_warmup_steps(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    import biolatent.train.timing as timing

    clock = iter([0.0, 5.0, 9.0, 10.0, 12.0, 13.0, 16.0])  # epoch start, (start, end) of 3 steps
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    timer = bench.SteadyStateTimer(warmup=1)
    timer.on_train_epoch_start(None, None)
    for step in range(3):
        timer.on_train_batch_start(None, None, None, step)
        timer.on_train_batch_end(None, None, None, None, step)
    assert timer.warmup_s == pytest.approx(9.0)  # 5 s waiting + 4 s computing: the first step
    assert timer.steps == 2
    assert timer.wait_s == pytest.approx(1.0 + 1.0) and timer.compute_s == pytest.approx(2.0 + 3.0)
    assert timer.wait_fraction == pytest.approx(2.0 / 7.0)


def test_torchio_pipeline_mirrors_the_views_defaults(bench: ModuleType) -> None:
    views = bench.VolumeViews(image_size=32)
    transforms = bench.torchio_pipeline(views, 32).transforms
    names = [type(t).__name__ for t in transforms]
    assert names == ["RandomFlip", "RandomAffine", "RandomElasticDeformation", "RandomBiasField", "RandomGamma",
                     "RandomMotion", "RandomGhosting", "RandomNoise"]
    probability = {type(t).__name__: t.probability for t in transforms}
    assert probability["RandomElasticDeformation"] == views.elastic_prob == 0.3
    assert probability["RandomBiasField"] == views.bias_field_prob
    assert probability["RandomGamma"] == views.gamma_prob
    assert probability["RandomMotion"] == views.motion_prob
    assert probability["RandomGhosting"] == views.ghosting_prob
    assert probability["RandomNoise"] == views.noise_prob
    assert transforms[2].max_displacement == pytest.approx((0.8, 0.8, 0.8))  # 0.05 normalised = 0.025 x 32 mm


def test_bad_arguments_are_refused(bench: ModuleType) -> None:
    with pytest.raises(SystemExit, match="unknown config"):
        bench.example_configs(["brain_nope"])
    assert [p.stem for p in bench.example_configs(["heart_mae", "brain_dino"])] == ["heart_mae", "brain_dino"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--size", "12"])
    assert bench.parse_args(["--quick"]).size == 16 and bench.parse_args([]).batch_size == 16
