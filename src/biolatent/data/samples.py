"""The in-memory sample set every modality loads into, and the facts about it that models need."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch


@dataclass(frozen=True)
class DataInfo:
    """What an encoder or method needs to know about the data to be built."""

    modality: str  # "counts" | "dna" | "image2d" | "volume" | "cine" | "spatial"
    n_features: int | None = None  # counts: number of genes
    is_counts: bool = False  # counts: non-negative integers (NB likelihood, binomial down-sampling allowed)
    channels: int | None = None  # image2d, volume: image channels; cine: channels of one frame (1)
    image_size: int | None = None  # image2d: square side in pixels; volume, cine: cube side in voxels
    spatial_dims: int | None = None  # image2d: 2; volume, cine: 3
    frames: int | None = None  # cine: time frames per cycle
    max_length: int | None = None  # dna: bases per sequence (padded)
    kmer: int | None = None  # dna: k of the overlapping k-mer tokenizer
    vocab_size: int | None = None  # records: code tokens incl. the special ones (max_length: tokens per patient)
    # paired genetics (``data.paired``): width of each genetic part the batches carry, by its batch key
    genetic_parts: dict[str, int] | None = None
    # paired records (``data.paired.attach_records``): the records' vocabulary size and tokens per subject
    records_vocab_size: int | None = None
    records_max_length: int | None = None
    # counts with ``data.batch_column``: the batch names, in the order of their codes in ``fields["batch_index"]``
    batch_categories: list[str] | None = None

    @property
    def n_batches(self) -> int:
        """Number of batches a batch-aware model conditions on (0: no batch column)."""
        return len(self.batch_categories or ())


@dataclass
class SampleSet:
    """All samples of a dataset (in memory, or read from their file when indexed).

    ``x`` layout per modality: counts float32 (N, G), in memory or, with ``data.backed``, rows read from the .h5ad
    file when indexed (``biolatent.data.backed.BackedCounts``); dna int64 (N, L) base codes (see
    ``biolatent.data.sequence``: A=0 C=1 G=2 T=3 N=4 PAD=5); image2d float32 (N, C, H, W) in [0, 1];
    volume float32 (N, C, S, S, S) (x, y, z of canonical RAS after the channel axis); cine float32
    (N, T, S, S, S), the T time frames of one-channel MRI in the channel axis; spatial: an H&E tile per spot,
    (N, 3, S, S) like image2d but cut on access (``biolatent.data.spatial.SpotTiles``), expression in ``fields``.
    ``obs`` is indexed by the sample ids (str, unique) and holds every metadata column.
    ``fields`` are other per-sample tensors that training batches carry under their key (e.g. ``mask``: an
    anatomy mask (N, 1, S, S, S) bool). ``groups`` (N,) int64 codes of the subject/patient each sample belongs
    to: batches then carry ``x_pair``, another sample of the same group (MICLe's positives).
    """

    info: DataInfo
    x: torch.Tensor
    obs: pd.DataFrame
    feature_names: list[str] | None = None
    extra: dict[str, object] = field(default_factory=dict)
    fields: dict[str, torch.Tensor] = field(default_factory=dict)
    groups: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if len(self.obs) != self.x.shape[0]:
            raise ValueError(f"obs has {len(self.obs)} rows but x has {self.x.shape[0]} samples")
        for key, value in self.fields.items():
            if value.shape[0] != self.x.shape[0]:
                raise ValueError(f"field {key!r} has {value.shape[0]} rows but x has {self.x.shape[0]} samples")
        if self.groups is not None and self.groups.shape != (self.x.shape[0],):
            raise ValueError(f"groups must have shape ({self.x.shape[0]},), got {tuple(self.groups.shape)}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def ids(self) -> list[str]:
        return [str(i) for i in self.obs.index]
