"""The in-memory sample set every modality loads into, and the facts about it that models need."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch


@dataclass(frozen=True)
class DataInfo:
    """What an encoder or method needs to know about the data to be built."""

    modality: str  # "counts" | "dna" | "image2d"
    n_features: int | None = None  # counts: number of genes
    is_counts: bool = False  # counts: non-negative integers (NB likelihood, binomial down-sampling allowed)
    channels: int | None = None  # image2d
    image_size: int | None = None  # image2d: square side in pixels
    max_length: int | None = None  # dna: bases per sequence (padded)
    kmer: int | None = None  # dna: k of the overlapping k-mer tokenizer


@dataclass
class SampleSet:
    """All samples of a dataset in memory.

    ``x`` layout per modality: counts float32 (N, G); dna int64 (N, L) base codes (see
    ``biolatent.data.sequence``: A=0 C=1 G=2 T=3 N=4 PAD=5); image2d float32 (N, C, H, W) in [0, 1].
    ``obs`` is indexed by the sample ids (str, unique) and holds every metadata column.
    """

    info: DataInfo
    x: torch.Tensor
    obs: pd.DataFrame
    feature_names: list[str] | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.obs) != self.x.shape[0]:
            raise ValueError(f"obs has {len(self.obs)} rows but x has {self.x.shape[0]} samples")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def ids(self) -> list[str]:
        return [str(i) for i in self.obs.index]
