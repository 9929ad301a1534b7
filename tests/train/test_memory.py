"""The memory check of a training step (issue 11 item 9) and the 1-based epoch label (item 10).

A cine config with only a path, a method and epochs used to default to batch 128 with a full-resolution 3D stem:
~40 GB of saved activations, and the kernel killed the run without a word from biolatent.
"""

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from biolatent.build import load_config
from biolatent.config import TrainConfig
from biolatent.errors import ConfigError
from biolatent.train.memory import (
    AVAILABLE_ENV,
    PEAK_FACTOR,
    StepMemory,
    check_step_memory,
    estimate_step_memory,
    saved_activation_bytes,
)
from biolatent.train.progress import epoch_label

GB = 1e9
LAPTOP = 16 * GB


class _ConvStack(nn.Module):
    """Conv -> ReLU -> Flatten -> Linear -> mean square; what autograd saves is countable by hand."""

    def __init__(self, norm: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4) if norm else nn.Identity()
        self.linear = nn.Linear(4 * 8 * 8, 5)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = torch.relu(self.norm(self.conv(batch["x"])))
        return self.linear(hidden.flatten(1)).pow(2).mean()


def _hand_count(batch: int) -> int:
    """float32 bytes: the conv's input (B, 1, 8, 8), the ReLU's output (B, 4, 8, 8) -- which the Linear saves again
    through a flattened view of the same storage -- and pow's input (B, 5); weights are not activations."""
    return 4 * batch * (1 * 8 * 8 + 4 * 8 * 8 + 5)


def test_saved_activations_match_a_count_by_hand():
    torch.manual_seed(0)
    model = _ConvStack()
    for batch in (2, 8):
        assert saved_activation_bytes(model, {"x": torch.rand(batch, 1, 8, 8)}) == _hand_count(batch)
    estimate = estimate_step_memory(model, torch.rand(10, 1, 8, 8))
    assert estimate.per_sample == _hand_count(1)
    n_params = sum(p.numel() for p in model.parameters())
    assert estimate.fixed == 4 * 4 * n_params  # weights, gradients, AdamW's two moments in float32
    assert estimate.peak(64) == pytest.approx(estimate.fixed + PEAK_FACTOR * 64 * _hand_count(1))


def test_the_probe_leaves_the_method_and_the_random_stream_untouched():
    torch.manual_seed(0)
    model = _ConvStack(norm=True).train()
    x = torch.rand(6, 1, 8, 8) + 3.0  # a forward in train mode would move BatchNorm's running mean
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    estimate_step_memory(model, x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)


def test_check_names_the_largest_batch_that_fits():
    estimate = StepMemory(per_sample=0.1 * GB, fixed=0.5 * GB)
    train = TrainConfig(batch_size=128)
    assert check_step_memory(estimate, train.model_copy(update={"batch_size": 8}), available=2 * GB) == (
        pytest.approx(0.5 * GB + PEAK_FACTOR * 0.8 * GB))
    with pytest.raises(ConfigError) as error:
        check_step_memory(estimate, train, available=2 * GB)
    fits = int((2 - 0.5) / (PEAK_FACTOR * 0.1))  # 8
    message = str(error.value)
    assert "\n" not in message and f"use train.batch_size: {fits} or less" in message
    assert f"batch 128 needs about {(0.5 + PEAK_FACTOR * 12.8):.1f} GB" in message
    check_step_memory(estimate, train.model_copy(update={"batch_size": fits}), available=2 * GB)
    with pytest.raises(ConfigError, match="even a batch of 2 does not fit"):
        check_step_memory(estimate, train, available=0.6 * GB)


def test_cli_refuses_a_run_that_does_not_fit_before_writing_anything(tiny_config, run_cli, monkeypatch, tmp_path):
    from biolatent.build import build_method
    from biolatent.data.loaders import load_samples

    path = tiny_config("counts", "simclr", epochs=1)
    config = load_config(path)
    samples = load_samples(config.data)
    estimate = estimate_step_memory(build_method(config, samples.info), samples.x)
    budget = estimate.peak(10) + 0.5 * PEAK_FACTOR * estimate.per_sample  # room for 10 samples, not 11
    monkeypatch.setenv(AVAILABLE_ENV, repr(budget / GB))

    out = tmp_path / "run"
    run_cli("pretrain", path, "--out", out).expect_error("batch 32 needs about", "use train.batch_size: 10 or less")
    assert not out.exists() or not any(out.iterdir())

    fitted = run_cli("pretrain", path, "--out", out, "--set", "train.batch_size=10")
    assert fitted.code == 0, fitted.err
    recorded = json.loads((out / "metrics.json").read_text())["pretrain"]["step_memory_gb"]
    assert recorded == pytest.approx(estimate.peak(10) / GB, rel=1e-6)


def _heart_config(tmp_path: Path, n: int) -> Path:
    """The issue's config: only the data path, the method and the epochs; every other setting a default."""
    from biolatent.data.simulate.heart import simulate_heart_cohort

    simulate_heart_cohort(n, tmp_path / "heart", seed=0)
    config = {"data": {"modality": "cine", "path": str(tmp_path / "heart")}, "method": {"name": "simclr"},
              "train": {"epochs": 1}}
    (tmp_path / "heart.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "heart.yaml"


@pytest.mark.slow  # a real training run; see issue 16 part 8 (fast set under 3 minutes)
def test_heart_defaults_fit_a_laptop_and_the_old_ones_are_refused(tmp_path):
    from biolatent.build import build_method
    from biolatent.data.loaders import load_samples

    config = load_config(_heart_config(tmp_path, n=4))
    assert config.train.batch_size == 32 and config.model.model_extra["stem_stride"] == 2  # recorded, not None
    samples = load_samples(config.data)
    assert tuple(samples.x.shape[1:]) == (10, 32, 32, 32)
    estimate = estimate_step_memory(build_method(config, samples.info), samples.x)
    assert estimate.peak(config.train.batch_size) < LAPTOP / 4

    old = load_config(_heart_config(tmp_path / "old", n=4), ["train.batch_size=128", "model.stem_stride=1"])
    torch.manual_seed(0)
    old_estimate = estimate_step_memory(build_method(old, samples.info), samples.x)
    assert old_estimate.activations(128) > 2 * LAPTOP  # the defect: ~40 GB, the OOM kill of the issue
    with pytest.raises(ConfigError, match=r"use train\.batch_size: \d+ or less"):
        check_step_memory(old_estimate, old.train, available=LAPTOP)


def test_other_modalities_keep_their_defaults(tiny_config):
    raw = load_config(tiny_config("image2d", "simclr")).model_dump()
    raw["train"].pop("batch_size")
    raw["model"].pop("stem_stride")
    config = load_config(raw)
    assert config.train.batch_size == 128 and config.model.model_extra["stem_stride"] == 1


@pytest.mark.slow
def test_heart_epoch_at_the_defaults_peaks_under_16_gb(tmp_path):
    config = _heart_config(tmp_path, n=120)
    command = [sys.executable, "-m", "biolatent.cli", "pretrain", str(config), "--out", str(tmp_path / "run")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-2000:]
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # kB on Linux
    assert peak < LAPTOP
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["pretrain"]
    assert metrics["epochs"] == 1 and metrics["step_memory_gb"] < LAPTOP / GB


def test_epoch_label_is_one_based_and_counts_epochs_before_a_resume():
    assert epoch_label(2, 0, 3) == "Epoch 3/3"
    assert epoch_label(0, 5, 10) == "Epoch 6/10"
    assert epoch_label(4) == "Epoch 5"


def test_progress_bar_reads_3_of_3_at_the_end_of_a_3_epoch_run(tiny_config, tmp_path, capsys):
    from biolatent.workflows.pretrain import pretrain

    config = load_config(tiny_config("counts", "vae", epochs=3))
    pretrain(config, tmp_path / "run", progress=True, say=lambda _: None)
    text = capsys.readouterr().out
    assert "Epoch 3/3" in text and "Epoch 2/2" not in text and "Epoch 0" not in text
