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
from biolatent.data.views.series import SeriesViews
from biolatent.data.views.volume import VolumeViews

VIEWS: dict[str, type[ViewModule]] = {
    "counts": CountsViews,
    "dna": DnaViews,
    "image2d": ImageViews,
    "volume": VolumeViews,
    "cine": VolumeViews,
    "spatial": ImageViews,  # H&E tiles around spots
    "records": RecordsViews,
    "series": SeriesViews,  # one sample per series (N, C, T)
}

__all__ = ["VIEWS", "VIEW_FAMILIES", "CountsViews", "DnaViews", "ImageViews", "ViewModule", "VolumeViews",
           "build_views", "view_families"]

_IMAGE_FAMILIES: dict[str, dict[str, Any]] = {
    "crop": {"crop_scale": [1.0, 1.0]},
    "flip": {"flip": False},
    "rotate90": {"rotate90": False},
    "color_jitter": {"color_jitter": 0.0},
    "stain_jitter": {"stain_jitter": 0.0},
    "blur": {"blur_prob": 0.0},
}
_VOLUME_FAMILIES: dict[str, dict[str, Any]] = {
    "crop": {"crop_scale": [1.0, 1.0]},
    "flip": {"flip": False},
    "rotation": {"rotate_degrees": 0.0},
    "scaling": {"scale": [1.0, 1.0]},
    "elastic": {"elastic_prob": 0.0},
    "bias_field": {"bias_field_prob": 0.0},
    "gamma": {"gamma_prob": 0.0},
    "noise": {"noise_prob": 0.0},
    "ghosting": {"ghosting_prob": 0.0},
    "motion": {"motion_prob": 0.0},
}
# per modality: view family -> the views overrides that switch that family off (and nothing else)
VIEW_FAMILIES: dict[str, dict[str, dict[str, Any]]] = {
    "counts": {
        "thinning": {"keep_range": [1.0, 1.0]},  # binomial thinning (counts only)
        "noise": {"noise_scale": 0.0},  # Gaussian noise (continuous values only)
        "gene_dropout": {"gene_dropout": 0.0},
    },
    "dna": {
        "reverse_complement": {"reverse_complement_prob": 0.0},
        "shift": {"max_shift": 0},
        "mutation": {"mutation_rate": 0.0},
    },
    "image2d": _IMAGE_FAMILIES,
    "spatial": _IMAGE_FAMILIES,
    "volume": _VOLUME_FAMILIES,
    "cine": _VOLUME_FAMILIES,
    "records": {"masking": {"mask_rate": 0.0}},
    "series": {"jitter": {"noise_scale": 0.0}, "scaling": {"scale_sigma": 0.0}},
}


def view_families(info: DataInfo) -> dict[str, dict[str, Any]]:
    """The view families of ``info.modality`` that act on its data: name -> views overrides switching it off.

    Counts data keeps ``thinning`` (integer counts) or ``noise`` (continuous values), whichever applies.
    """
    if info.modality not in VIEW_FAMILIES:
        raise ValueError(f"no view families for modality {info.modality!r}; known: {', '.join(sorted(VIEW_FAMILIES))}")
    families = dict(VIEW_FAMILIES[info.modality])
    if info.modality == "counts":
        families.pop("noise" if info.is_counts else "thinning")
    return families


def build_views(info: DataInfo, **overrides: Any) -> nn.Module:
    """The default views of ``info.modality`` built from the data facts; ``overrides`` win."""
    if info.modality not in VIEWS:
        raise ValueError(f"no views for modality {info.modality!r}; known: {', '.join(sorted(VIEWS))}")
    from_info: dict[str, Any]
    if info.modality == "counts":
        from_info = {"is_counts": info.is_counts, "n_features": info.n_features}
    elif info.modality in ("dna", "records"):
        from_info = {"max_length": info.max_length}
    elif info.modality == "series":
        from_info = {"channels": info.channels, "max_length": info.max_length}
    else:  # image2d, spatial, volume, cine: square / cubic views of side info.image_size
        if info.image_size is None and "image_size" not in overrides:
            raise ValueError(f"{info.modality} views need info.image_size (or an image_size override)")
        from_info = {"image_size": info.image_size}
    return VIEWS[info.modality](**{**from_info, **overrides})
