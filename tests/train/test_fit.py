"""The generic trainer: seeded reproducibility, safetensors checkpoints, and exact resume of a killed run."""

from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

from biolatent.build import load_config
from biolatent.train.module import warmup_cosine
from biolatent.workflows.pretrain import pretrain


class _SimulatedCrash(RuntimeError):
    pass


class _Crash(L.Callback):
    """Kills training after a given number of epochs, as a power cut would."""

    def __init__(self, after_epochs: int) -> None:
        self.after_epochs = after_epochs

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch + 1 == self.after_epochs:
            raise _SimulatedCrash("power cut")


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model.safetensors"))


@pytest.mark.parametrize(("modality", "method"), [("counts", "simclr"), ("counts", "vae")])
def test_seeded_runs_are_reproducible(tiny_config, tmp_path, modality, method):
    config = load_config(tiny_config(modality, method, epochs=2))
    pretrain(config, tmp_path / "a", progress=False, say=lambda _: None)
    pretrain(config, tmp_path / "b", progress=False, say=lambda _: None)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    other = load_config(tiny_config(modality, method, epochs=2, seed=1))
    pretrain(other, tmp_path / "c", progress=False, say=lambda _: None)
    c = _weights(tmp_path / "c")
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_resume_after_a_crash_matches_an_unbroken_run(tiny_config, tmp_path):
    config = load_config(tiny_config("counts", "simclr", epochs=3, warmup_epochs=1))
    pretrain(config, tmp_path / "unbroken", progress=False, say=lambda _: None)

    crashed = tmp_path / "crashed"
    with pytest.raises(_SimulatedCrash):
        pretrain(config, crashed, progress=False, callbacks=[_Crash(2)], say=lambda _: None)
    assert not (crashed / "model.safetensors").exists()  # no final weights from a killed run
    assert not (crashed / "metrics.json").exists()
    assert (crashed / "checkpoints" / "last.safetensors").is_file()

    pretrain(config, crashed, resume=True, progress=False, say=lambda _: None)
    a, b = _weights(tmp_path / "unbroken"), _weights(crashed)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7)
    history = (crashed / "history.tsv").read_text().splitlines()
    assert len(history) == 1 + 3  # header + one row per epoch, no duplicates


def test_fresh_run_refuses_a_used_folder_and_resume_needs_a_checkpoint(tiny_config, tmp_path):
    from biolatent.errors import BiolatentError

    config = load_config(tiny_config("counts", "vae", epochs=1))
    pretrain(config, tmp_path / "run", progress=False, say=lambda _: None)
    with pytest.raises(BiolatentError, match="not empty"):
        pretrain(config, tmp_path / "run", progress=False, say=lambda _: None)
    with pytest.raises(BiolatentError, match="nothing to resume"):
        pretrain(config, tmp_path / "empty", resume=True, progress=False, say=lambda _: None)
    changed = config.model_copy(update={"train": config.train.model_copy(update={"lr": 0.5})})
    with pytest.raises(BiolatentError, match=r"only train\.epochs may change"):
        pretrain(changed, tmp_path / "run", resume=True, progress=False, say=lambda _: None)


def test_warmup_cosine_schedule():
    assert warmup_cosine(0, 10, 100) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100) == pytest.approx(0.5)
    assert warmup_cosine(100, 10, 100) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_through_the_cli(tiny_config, tmp_path):
    """strategy/devices pass through to Lightning: two processes train, only the first writes the run."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("biolatent")
    run = tmp_path / "ddp"
    proc = subprocess.run(
        [str(exe), "pretrain", str(tiny_config("counts", "simclr", epochs=2)), "--out", str(run), "--quiet",
         "--set", "train.strategy=ddp", "--set", "train.devices=2", "--set", "train.accelerator=cpu"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    history = (run / "history.tsv").read_text().splitlines()
    assert len(history) == 3
    weights = load_file(str(run / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
