"""Batches from a SampleSet (in memory, or rows read per batch from a file): an indexed dataset and an
epoch-seeded shuffling sampler."""

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

    def __getitems__(self, items: list[int]) -> list[dict[str, torch.Tensor]]:
        """The items of a whole batch (the ``DataLoader`` calls this when present). An ``x`` that is not a tensor
        (e.g. ``biolatent.data.backed.BackedCounts``, rows in a file) is read once for the batch, not row by row;
        the items are the same as ``[self[i] for i in items]``."""
        if isinstance(self.x, torch.Tensor):
            return [self[i] for i in items]
        rows = [int(self.indices[i]) for i in items]
        pairs = [self.partner(row) for row in rows] if self.members is not None else []
        values = self.x[torch.tensor(rows + pairs, dtype=torch.long)]
        batch = []
        for k, row in enumerate(rows):
            item = {"x": values[k], "index": torch.tensor(row)}
            if self.y is not None:
                item["y"] = self.y[row]
            for key, field_values in self.fields.items():
                item[key] = field_values[row]
            if pairs:
                item["x_pair"], item["index_pair"] = values[len(rows) + k], torch.tensor(pairs[k])
            batch.append(item)
        return batch

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


def global_batch_sizes(n: int, batch_size: int, world_size: int = 1) -> list[int]:
    """The sizes of one epoch's global batches over ``n`` samples: ``min(batch_size, n)`` each, the last one
    partial, dropped when it would leave a process fewer than 2 samples (on one process: a single sample)."""
    batch_size = min(batch_size, n)
    sizes = [batch_size] * (n // batch_size)
    if n % batch_size >= 2 * world_size:
        sizes.append(n % batch_size)
    return sizes


def rank_share(size: int, world_size: int, rank: int) -> tuple[int, int]:
    """(start, stop) of ``rank``'s contiguous share of a global batch of ``size`` samples: the shares differ by at
    most one sample, the first ``size % world_size`` ranks holding the larger ones."""
    base, extra = divmod(size, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + int(rank < extra)


class GlobalBatchSampler(Sampler[list[int]]):
    """This process's share of each global batch: the global batches are those of one process
    (consecutive ``batch_size`` positions of the :class:`EpochSeededSampler` shuffle), each split over the
    ``world_size`` processes (:func:`rank_share`). All processes draw the same shuffle, so together they see
    exactly the batches of a single-process run, each sample once.

    ``rank`` None reads this process's rank from ``torch.distributed`` when iterating (0 without a process group):
    Lightning's launchers start the process group after the loader is built.
    """

    def __init__(self, n: int, batch_size: int, seed: int, epoch_offset: int = 0, world_size: int = 1,
                 rank: int | None = None) -> None:
        self.sampler = EpochSeededSampler(n, seed, epoch_offset)
        self.sizes = global_batch_sizes(n, batch_size, world_size)
        self.batch_size = min(batch_size, n)
        self.world_size = world_size
        self.rank = rank

    def set_epoch(self, epoch: int) -> None:  # Lightning calls ``self.sampler.set_epoch`` at each epoch start
        self.sampler.set_epoch(epoch)

    def current_rank(self) -> int:
        if self.rank is not None:
            return self.rank
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            if dist.get_world_size() != self.world_size:
                raise RuntimeError(f"the loader was built for {self.world_size} processes, "
                                   f"torch.distributed has {dist.get_world_size()}")
            return dist.get_rank()
        return 0

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        rank = self.current_rank()
        for k, size in enumerate(self.sizes):
            start, stop = rank_share(size, self.world_size, rank)
            offset = k * self.batch_size
            yield order[offset + start:offset + stop]

    def __len__(self) -> int:
        return len(self.sizes)


def training_loader(
    dataset: IndexedDataset, batch_size: int, seed: int, epoch_offset: int = 0, num_workers: int = 0,
    world_size: int = 1, rank: int | None = None,
) -> DataLoader:
    """Shuffled batches of ``batch_size`` samples over all ``world_size`` processes together (the global batch),
    this process's share of each (:class:`GlobalBatchSampler`); the last partial batch is dropped when it would
    leave a process fewer than 2 samples."""
    return DataLoader(
        dataset,
        batch_sampler=GlobalBatchSampler(len(dataset), batch_size, seed, epoch_offset, world_size, rank),
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


def inference_loader(dataset: IndexedDataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
