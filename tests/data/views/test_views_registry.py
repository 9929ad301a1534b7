"""build_views: the default views of each modality, built from DataInfo."""

from __future__ import annotations

import pytest
import torch

from biolatent.data.samples import DataInfo
from biolatent.data.views import VIEWS, CountsViews, DnaViews, ImageViews, VolumeViews, build_views
from biolatent.data.views.records import RecordsViews
from biolatent.data.views.series import SeriesViews


def test_registry_names() -> None:
    assert {"counts": CountsViews, "dna": DnaViews, "image2d": ImageViews, "volume": VolumeViews,
            "cine": VolumeViews, "spatial": ImageViews, "records": RecordsViews, "series": SeriesViews} == VIEWS


def test_build_views_uses_data_facts_and_overrides() -> None:
    counts = build_views(DataInfo("counts", n_features=12, is_counts=True), gene_dropout=0.0)
    assert isinstance(counts, CountsViews) and counts.is_counts and counts.gene_dropout == 0.0
    assert counts.sample_params(2, "cpu")["drop"].shape == (2, 12)
    assert not build_views(DataInfo("counts", n_features=12)).is_counts
    dna = build_views(DataInfo("dna", max_length=20), mutation_rate=0.01)
    assert isinstance(dna, DnaViews) and dna.sample_params(2, "cpu")["mutate"].shape == (2, 20)
    image = build_views(DataInfo("image2d", channels=3, image_size=16), rotate90=False)
    assert isinstance(image, ImageViews) and image.image_size == 16 and not image.rotate90


@pytest.mark.parametrize(
    ("info", "x"),
    [
        (DataInfo("counts", n_features=10, is_counts=True), torch.randint(0, 20, (4, 10)).float()),
        (DataInfo("dna", max_length=25), torch.randint(0, 5, (4, 25))),
        (DataInfo("image2d", channels=3, image_size=16), torch.rand(4, 3, 16, 16)),
        (DataInfo("records", max_length=12, vocab_size=30), torch.randint(0, 30, (4, 4, 12))),
    ],
)
def test_built_views_are_seeded_modules(info: DataInfo, x: torch.Tensor) -> None:
    views = build_views(info)
    assert isinstance(views, torch.nn.Module)
    a = views(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, views(x, torch.Generator().manual_seed(0)))
    assert a.shape == x.shape and a.dtype == x.dtype
    torch.manual_seed(1)
    b = views(x)  # global RNG when no generator is given
    torch.manual_seed(1)
    assert torch.equal(b, views(x))


def test_unknown_modality() -> None:
    with pytest.raises(ValueError, match="no views"):
        build_views(DataInfo("audio"))


def test_records_views_mask_codes_only() -> None:
    rows = [[3, 7, 8, 4, 9, 4, 0, 0], [50] * 8, [0, 0, 0, 0, 1, 1, 0, 0], [0, 1, 1, 1, 2, 2, 0, 0]]
    x = torch.tensor(rows).unsqueeze(0).repeat(64, 1, 1)
    views = build_views(DataInfo("records", max_length=8, vocab_size=10), mask_rate=0.5)
    out = views(x, torch.Generator().manual_seed(0))
    assert torch.equal(out[:, 1:], x[:, 1:])  # ages, segments, positions untouched
    changed = out[:, 0] != x[:, 0]
    assert (out[:, 0][changed] == 2).all()  # [MASK]
    assert not changed[:, [0, 3, 5, 6, 7]].any()  # [CLS], [SEP], [PAD] never
    assert 0.3 < changed[:, [1, 2, 4]].float().mean() < 0.7
