"""VIEW_FAMILIES: every family's overrides build the modality's views and switch that family off."""

from __future__ import annotations

import pytest

from biolatent.data.samples import DataInfo
from biolatent.data.views import VIEW_FAMILIES, build_views, view_families

INFOS = {
    "counts": DataInfo("counts", n_features=10, is_counts=True),
    "dna": DataInfo("dna", max_length=40),
    "image2d": DataInfo("image2d", channels=3, image_size=16, spatial_dims=2),
    "spatial": DataInfo("spatial", channels=3, image_size=16, spatial_dims=2),
    "volume": DataInfo("volume", channels=1, image_size=8, spatial_dims=3),
    "cine": DataInfo("cine", channels=1, image_size=8, spatial_dims=3, frames=2),
    "records": DataInfo("records", max_length=12, vocab_size=20),
    "series": DataInfo("series", channels=2, max_length=16),
}


@pytest.mark.parametrize("modality", sorted(VIEW_FAMILIES))
def test_every_family_switches_off_through_the_views_keywords(modality):
    info = INFOS[modality]
    for family, overrides in VIEW_FAMILIES[modality].items():
        views = build_views(info, **overrides)
        for key, value in overrides.items():
            current = getattr(views, key, None)
            if current is None and hasattr(views, "settings"):
                current = views.settings[key]
            if isinstance(value, list):
                assert list(current) == value, (family, key)
            elif key != "flip":  # flip=False empties flip_axes (volume) or turns the flips off (image)
                assert current == value, (family, key)


def test_counts_keep_the_family_that_acts_on_their_values():
    assert "thinning" in view_families(INFOS["counts"]) and "noise" not in view_families(INFOS["counts"])
    continuous = DataInfo("counts", n_features=10, is_counts=False)
    assert "noise" in view_families(continuous) and "thinning" not in view_families(continuous)
