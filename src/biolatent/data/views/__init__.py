"""Batched, seeded augmentation views, one ``nn.Module`` per modality.

Every view: ``sample_params(n, device, generator=None) -> dict[str, Tensor]`` draws all random
parameters; ``apply(x, params)`` is deterministic given them; ``forward(x, generator=None)`` does both.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from biolatent.data.samples import DataInfo
from biolatent.data.views.base import ViewModule
from biolatent.data.views.counts import CountsViews
from biolatent.data.views.dna import DnaViews
from biolatent.data.views.image import ImageViews
from biolatent.data.views.records import RecordsViews
from biolatent.data.views.volume import VolumeViews

VIEWS: dict[str, type[ViewModule]] = {
    "counts": CountsViews,
    "dna": DnaViews,
    "image2d": ImageViews,
    "volume": VolumeViews,
    "cine": VolumeViews,
    "spatial": ImageViews,  # H&E tiles around spots
    "records": RecordsViews,
}

__all__ = ["VIEWS", "CountsViews", "DnaViews", "ImageViews", "ViewModule", "VolumeViews", "build_views"]


def build_views(info: DataInfo, **overrides: Any) -> nn.Module:
    """The default views of ``info.modality`` built from the data facts; ``overrides`` win."""
    if info.modality not in VIEWS:
        raise ValueError(f"no views for modality {info.modality!r}; known: {', '.join(sorted(VIEWS))}")
    from_info: dict[str, Any]
    if info.modality == "counts":
        from_info = {"is_counts": info.is_counts, "n_features": info.n_features}
    elif info.modality in ("dna", "records"):
        from_info = {"max_length": info.max_length}
    else:  # image2d, spatial, volume, cine: square / cubic views of side info.image_size
        if info.image_size is None and "image_size" not in overrides:
            raise ValueError(f"{info.modality} views need info.image_size (or an image_size override)")
        from_info = {"image_size": info.image_size}
    return VIEWS[info.modality](**{**from_info, **overrides})
