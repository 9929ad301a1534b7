"""Multi-process (DDP) training: train.batch_size is the global batch, each process trains on a disjoint share of the
single-process batches, and a run's loss curve does not depend on the number of processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from biolatent.errors import ConfigError, DataError
from biolatent.methods.simclr import nt_xent_logits, nt_xent_loss
from biolatent.train.fit import check_world_size
from biolatent.train.loader import GlobalBatchSampler, global_batch_sizes, rank_share

# The 1- and 2-process loss curves of the deterministic SimCLR run below agree to about 1e-7 relative (float32
# sums in another order, measured: at most 5e-8 on the loss, 5e-7 on the weights); the tolerance leaves room for
# other BLAS builds.
CURVE_RTOL = 1e-5
WEIGHTS_ATOL = 1e-5


@pytest.mark.parametrize(("n", "batch_size"), [(117, 32), (120, 32), (50, 16), (9, 32), (13, 4)])
def test_processes_split_the_single_process_batches(n, batch_size):
    """Each global batch is the one-process batch, split into contiguous shares that differ by at most a sample."""
    one = GlobalBatchSampler(n, batch_size, seed=3)
    for world in (1, 2, 3, 4):
        if n < 2 * world or batch_size < 2 * world:
            continue  # too few samples for this many processes (refused by check_world_size)
        ranks = [GlobalBatchSampler(n, batch_size, seed=3, world_size=world, rank=r) for r in range(world)]
        for epoch in range(3):
            for sampler in [one, *ranks]:
                sampler.set_epoch(epoch)
            batches, shares = list(one), [list(r) for r in ranks]
            kept = len(shares[0])
            assert all(len(s) == kept for s in shares)
            # only a last partial batch too small to give every process 2 samples is left out
            assert kept == len(batches) or (kept == len(batches) - 1 and len(batches[-1]) < 2 * world)
            for step in range(kept):
                parts = [s[step] for s in shares]
                sizes = [len(p) for p in parts]
                assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 2
                # the one-process batch, each sample on one process
                assert [i for part in parts for i in part] == batches[step]
            seen = [i for s in shares for b in s for i in b]
            assert len(seen) == len(set(seen))  # disjoint, never a sample twice in an epoch
        assert kept >= 1


def test_last_partial_batch_is_dropped_when_a_process_would_get_fewer_than_two():
    assert global_batch_sizes(117, 32) == [32, 32, 32, 21]
    assert global_batch_sizes(65, 32) == [32, 32]  # one sample left over: dropped on one process too
    assert global_batch_sizes(67, 32, world_size=2) == [32, 32]  # 3 samples cannot give two processes 2 each
    assert global_batch_sizes(68, 32, world_size=2) == [32, 32, 4]
    assert global_batch_sizes(20, 32, world_size=2) == [20]  # fewer samples than a batch: one batch of all
    assert [rank_share(21, 2, r) for r in range(2)] == [(0, 11), (11, 21)]
    assert [rank_share(10, 3, r) for r in range(3)] == [(0, 4), (4, 7), (7, 10)]


def test_world_size_errors_are_one_line():
    check_world_size(3, 32, 1)  # one process: nothing to check
    check_world_size(4, 4, 2)
    with pytest.raises(ConfigError, match="must be a multiple of 4"):
        check_world_size(100, 30, 4)
    with pytest.raises(ConfigError, match="leaves 1 sample per process: use at least 8"):
        check_world_size(100, 4, 4)
    with pytest.raises(DataError, match="3 samples cannot feed 2 training processes"):
        check_world_size(3, 4, 2)


def test_memory_check_counts_each_process_share(monkeypatch):
    """A GPU holds one process's share of the global batch; on the CPU a node's processes share its RAM."""
    import biolatent.train.memory as memory
    from biolatent.config import TrainConfig

    estimate = memory.StepMemory(per_sample=0.1 * memory.GB, fixed=0.5 * memory.GB)
    train = TrainConfig(batch_size=128)
    one_share = 0.5 * memory.GB + memory.PEAK_FACTOR * 3.2 * memory.GB  # 32 samples
    monkeypatch.setattr(memory, "uses_cuda", lambda _: True)
    assert memory.check_step_memory(estimate, train, available=8 * memory.GB, processes=4) == pytest.approx(one_share)
    with pytest.raises(ConfigError, match=r"use train\.batch_size: 42 or less"):  # one process: 128 does not fit
        memory.check_step_memory(estimate, train, available=8 * memory.GB)
    with pytest.raises(ConfigError, match=r"\(32 on each of 4 processes\).*use train\.batch_size: 80 or less"):
        memory.check_step_memory(estimate, train, available=4 * memory.GB, processes=4)  # 20 per GPU
    monkeypatch.setattr(memory, "uses_cuda", lambda _: False)
    assert memory.check_step_memory(estimate, train, available=30 * memory.GB, processes=4) == pytest.approx(
        4 * one_share)
    two_nodes = train.model_copy(update={"num_nodes": 2})
    assert memory.check_step_memory(estimate, two_nodes, available=30 * memory.GB, processes=4) == pytest.approx(
        2 * one_share)


def test_nt_xent_over_shares_equals_the_global_batch():
    """SimCLR's loss on gathered projections: each share's anchors against every projection. Weighted by share,
    the processes' losses and the gradients they send to each projection add up to those of one process."""
    torch.manual_seed(0)
    z1 = torch.randn(11, 6, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(11, 6, dtype=torch.float64, requires_grad=True)
    full = nt_xent_loss(z1, z2, 0.2)
    (g1, g2) = torch.autograd.grad(full, (z1, z2))
    total = torch.zeros((), dtype=torch.float64)
    for start, stop in (rank_share(11, 2, r) for r in range(2)):  # shares of 6 and 5 samples
        logits, positives = nt_xent_logits(z1[start:stop], z2[start:stop], 0.2, z1, z2, offset=start)
        total = total + F.cross_entropy(logits, positives) * (stop - start) / 11
    torch.testing.assert_close(total, full, rtol=1e-12, atol=0)
    s1, s2 = torch.autograd.grad(total, (z1, z2))
    torch.testing.assert_close(s1, g1, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s2, g2, rtol=1e-10, atol=1e-12)


def _gather_worker(rank: int, init_file: str) -> None:
    import torch.distributed as dist

    from biolatent.methods.distributed import gather_all, gather_with_grad

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        rows = 3 if rank == 0 else 2  # unequal shares, as the last batch of an epoch may have
        x = (torch.arange(rows * 2, dtype=torch.float64).reshape(rows, 2) + 10 * rank).requires_grad_(True)
        everything, offset = gather_all(x)
        assert everything.shape == (5, 2) and offset == 3 * rank
        assert torch.equal(everything[offset:offset + rows], x.detach())
        gathered, offset = gather_with_grad(x)
        # each process weights every gathered row by (its rank + 1): x's gradient sums both processes' weights
        (gathered.sum(dim=1) * (rank + 1)).sum().backward()
        assert x.grad is not None and torch.equal(x.grad, torch.full_like(x, 3.0))
    finally:
        dist.destroy_process_group()


def test_gathers_on_two_gloo_processes(tmp_path):
    """gather_all / gather_with_grad with unequal rows: every row in rank order, gradients summed over processes."""
    import torch.multiprocessing as mp

    mp.spawn(_gather_worker, args=(str(tmp_path / "init"),), nprocs=2, join=True)


def test_too_many_processes_for_the_data_is_a_one_line_error(run_cli, tiny_config, tmp_path):
    """Refused before anything is written, with one error line (the check runs before DDP launches processes)."""
    config = tiny_config("counts", "vae", epochs=1)
    ddp = ["--set", "train.accelerator=cpu", "--set", "train.strategy=ddp"]
    for devices, batch, fragment in [(2, 5, "must be a multiple of 2"), (3, 3, "leaves 1 sample per process"),
                                     (64, 128, "120 samples cannot feed 64 training processes")]:
        run = tmp_path / f"run{devices}"
        result = run_cli("pretrain", config, "--out", run, "--quiet", *ddp, "--set", f"train.devices={devices}",
                         "--set", f"train.batch_size={batch}")
        result.expect_error(fragment)
        assert not run.exists()


def test_secondary_processes_of_every_launcher_are_recognised(monkeypatch):
    """Only the first process writes the run directory: Lightning, torchrun and srun each mark the others."""
    from biolatent.workflows.pretrain import launched_rank

    for variable in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(variable, raising=False)
    assert launched_rank() == 0
    for variable, value in [("SLURM_PROCID", "0"), ("LOCAL_RANK", "0")]:
        monkeypatch.setenv(variable, value)
    assert launched_rank() == 0
    for variable in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.setenv(variable, "3")
        assert launched_rank() == 3
        monkeypatch.setenv(variable, "0")


def _pretrain(config: Path, run: Path, *extra: str) -> pd.DataFrame:
    exe = Path(sys.executable).with_name("biolatent")
    proc = subprocess.run([str(exe), "pretrain", str(config), "--out", str(run), "--quiet", *extra],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return pd.read_csv(run / "history.tsv", sep="\t")


@pytest.mark.slow
def test_two_processes_train_as_one_and_resume(tmp_path):
    """SimCLR on 117 cells (global batches 32, 32, 32, 21: the last split 11 / 10) with deterministic views and no
    dropout: the 2-process DDP run gives the 1-process loss curve and weights within CURVE_RTOL / WEIGHTS_ATOL, its
    negatives gathered over both processes; a 2-process run of 2 epochs resumed (2 processes) to 3 continues the
    same curve. About 60 s on 2 CPU cores (three DDP launches)."""
    import yaml

    from biolatent.data.simulate import write_counts_dataset

    data = write_counts_dataset(tmp_path / "data", n_cells=117, n_genes=40, n_types=3, seed=0)
    config = tmp_path / "simclr.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"modality": "counts", "path": str(data)},
        "method": {"name": "simclr"},
        "model": {"name": "mlp", "hidden_dims": [32], "out_dim": 16, "dropout": 0.0},
        "views": {"keep_range": [1.0, 1.0], "gene_dropout": 0.0},  # views without randomness
        # a constant learning rate: the schedule of a 2-epoch run is that of the first 2 of 3
        "train": {"epochs": 3, "batch_size": 32, "seed": 0, "accelerator": "cpu", "lr_schedule": "constant"},
    }))
    ddp = ["--set", "train.devices=2", "--set", "train.strategy=ddp"]
    one = _pretrain(config, tmp_path / "one")
    two = _pretrain(config, tmp_path / "two", *ddp)
    assert list(two.columns) == list(one.columns) and len(two) == len(one) == 3
    for column in ("loss", "accuracy", "lr"):
        torch.testing.assert_close(torch.tensor(two[column].to_numpy()), torch.tensor(one[column].to_numpy()),
                                   rtol=CURVE_RTOL, atol=0)
    assert one["loss"].iloc[-1] < one["loss"].iloc[0]  # it trains
    a = load_file(str(tmp_path / "one" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=WEIGHTS_ATOL)

    resumed = tmp_path / "resumed"
    first = _pretrain(config, resumed, *ddp, "--set", "train.epochs=2")
    assert len(first) == 2
    again = _pretrain(config, resumed, *ddp, "--resume")
    assert again["epoch"].tolist() == [1, 2, 3]
    torch.testing.assert_close(torch.tensor(again["loss"].to_numpy()), torch.tensor(one["loss"].to_numpy()),
                               rtol=CURVE_RTOL, atol=0)
    c = load_file(str(resumed / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(c[key], a[key], rtol=0, atol=WEIGHTS_ATOL)


def test_cross_modal_infonce_over_shares_equals_the_global_batch():
    """CLIP's (and ContIG's, records-CLIP's) symmetric InfoNCE on gathered embeddings: each share's rows against
    every pair of the global batch. Weighted by share, losses and gradients add up to those of one process."""
    from biolatent.methods.clip import paired_logits

    torch.manual_seed(1)
    a = F.normalize(torch.randn(9, 5, dtype=torch.float64), dim=1).requires_grad_(True)
    b = F.normalize(torch.randn(9, 5, dtype=torch.float64), dim=1).requires_grad_(True)

    def loss_of(ab: torch.Tensor, ba: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return 0.3 * F.cross_entropy(ab / 0.1, targets) + 0.7 * F.cross_entropy(ba / 0.1, targets)

    full = loss_of(*paired_logits(a, b))
    ga, gb = torch.autograd.grad(full, (a, b))
    total = torch.zeros((), dtype=torch.float64)
    for start, stop in (rank_share(9, 2, r) for r in range(2)):  # shares of 5 and 4 pairs
        total = total + loss_of(*paired_logits(a[start:stop], b[start:stop], a, b, offset=start)) * (stop - start) / 9
    torch.testing.assert_close(total, full, rtol=1e-12, atol=0)
    sa, sb = torch.autograd.grad(total, (a, b))
    torch.testing.assert_close(sa, ga, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sb, gb, rtol=1e-10, atol=1e-12)
