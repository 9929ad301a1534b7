"""Batches from an in-memory SampleSet: an indexed dataset and an epoch-seeded shuffling sampler."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class IndexedDataset(Dataset):
    """Rows of ``x`` (and optional labels ``y``) with their positions, as the batch dict methods expect.

    ``fields``: other per-sample tensors, put in the batch under their key (e.g. ``mask``). ``groups`` (N,) int
    codes of each sample's subject: every item then also carries ``x_pair`` / ``index_pair``, a uniformly drawn
    other sample of the same subject (the sample itself when its subject has one) -- MICLe's positives.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None = None, indices: torch.Tensor | None = None,
                 fields: dict[str, torch.Tensor] | None = None, groups: torch.Tensor | None = None):
        self.x = x
        self.y = y
        self.indices = torch.arange(x.shape[0]) if indices is None else indices
        self.fields = dict(fields or {})
        self.members: list[torch.Tensor] | None = None
        if groups is not None:
            order = torch.argsort(groups, stable=True)
            counts = torch.bincount(groups)
            by_group = torch.split(order, counts.tolist())
            self.members = [by_group[int(g)] for g in groups]

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def partner(self, row: int) -> int:
        """Another sample of ``row``'s subject, drawn uniformly (global torch RNG); ``row`` itself if alone."""
        assert self.members is not None
        members = self.members[row]
        if members.numel() == 1:
            return row
        pick = int(torch.randint(0, members.numel() - 1, (1,)))
        others = members[members != row]
        return int(others[pick])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = int(self.indices[i])
        item = {"x": self.x[row], "index": torch.tensor(row)}
        if self.y is not None:
            item["y"] = self.y[row]
        for key, values in self.fields.items():
            item[key] = values[row]
        if self.members is not None:
            pair = self.partner(row)
            item["x_pair"], item["index_pair"] = self.x[pair], torch.tensor(pair)
        return item


class EpochSeededSampler(Sampler[int]):
    """A shuffle that depends only on (seed, epoch): a resumed run sees the same order as an unbroken one.

    ``epoch_offset`` is the number of epochs already completed before this trainer started.
    """

    def __init__(self, n: int, seed: int, epoch_offset: int = 0) -> None:
        self.n = n
        self.seed = seed
        self.epoch_offset = epoch_offset
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at each epoch start
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch + self.epoch_offset)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


def training_loader(
    dataset: IndexedDataset, batch_size: int, seed: int, epoch_offset: int = 0, num_workers: int = 0
) -> DataLoader:
    """Shuffled batches; the last partial batch is dropped when it would hold a single sample."""
    n = len(dataset)
    batch_size = min(batch_size, n)
    drop_last = n % batch_size == 1
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochSeededSampler(n, seed, epoch_offset),
        drop_last=drop_last,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


def inference_loader(dataset: IndexedDataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
