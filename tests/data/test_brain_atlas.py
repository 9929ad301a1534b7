"""Many-label synthetic brains: an atlas label map carried by the template is warped with each subject (the
SynthSeg-style simulator on ``colin27-aal``; here on the ellipsoid template cut into 64 parcels)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biolatent.data.simulate.brain import BrainTemplate, atlas_template, ellipsoid_template, simulate_brain
from biolatent.errors import DataError
from biolatent.io.nifti import read_nifti


@pytest.fixture(scope="module")
def parcellated() -> BrainTemplate:
    """The ellipsoid template with 64 regions: 4 x 4 x 4 blocks of the grid, inside the brain."""
    base = ellipsoid_template()
    shape = np.asarray(base.gm.shape)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    block = [(idx[a] * 4 // shape[a]) for a in range(3)]
    regions = 1 + block[0] * 16 + block[1] * 4 + block[2]
    regions = np.where(base.gm + base.wm + base.csf > 0.5, regions, 0)
    names = {k: f"region_{k}" for k in range(1, 65)}
    return BrainTemplate(base.gm, base.wm, base.csf, base.affine, name="parcels", regions=regions,
                         region_names=names)


def test_regions_follow_the_subjects_own_deformation(parcellated):
    first, second = (simulate_brain(parcellated, 0, i, size=32) for i in (0, 1))
    for subject in (first, second):
        assert subject.regions is not None and subject.regions.shape == subject.image.shape
        present = set(np.unique(subject.regions).tolist()) - {0}
        assert len(present) >= 40  # many distinct regions survive the warp and the 32^3 grid
        assert (subject.regions[~subject.brain] == 0).all()  # kept inside the rendered brain
    assert (first.regions != second.regions).mean() > 0.02  # each subject warps the atlas its own way
    again = simulate_brain(parcellated, 0, 0, size=32)
    assert np.array_equal(again.regions, first.regions)  # seeded
    plain = simulate_brain(ellipsoid_template(), 0, 0, size=32)
    assert plain.regions is None and np.array_equal(plain.image, first.image)  # the atlas changes no image


def test_cohort_writes_the_atlas_labels_on_the_image_grid(parcellated, tmp_path):
    from biolatent.anomaly.volumes import write_brain_set

    meta = pd.read_csv(write_brain_set(tmp_path / "set", 2, size=32, template=parcellated), sep="\t")
    for row in meta.itertuples():
        image = read_nifti(tmp_path / "set" / row.path, ndim=3)
        labels = read_nifti(tmp_path / "set" / row.labels, ndim=3)
        assert labels.data.shape == image.data.shape and np.allclose(labels.affine, image.affine)
        assert len(np.unique(labels.data)) > 40 and labels.data.max() <= 64
    names = pd.read_csv(tmp_path / "set" / "label_names.tsv", sep="\t")
    assert len(names) == 64 and names.name.iloc[0] == "region_1"


def test_region_map_of_another_shape_is_refused(parcellated):
    with pytest.raises(DataError, match="one shape"):
        BrainTemplate(parcellated.gm, parcellated.wm, parcellated.csf, parcellated.affine,
                      regions=parcellated.regions[:-1])


def test_unknown_atlas_is_a_one_line_error(run_cli, tmp_path):
    with pytest.raises(DataError, match=r"unknown atlas 'aal3'.*colin27-aal"):
        atlas_template("aal3")
    result = run_cli("data", "simulate", "brain", "--atlas", "aal3", "--out", tmp_path / "x", "--n", "2")
    assert result.code != 0 and "unknown atlas 'aal3'" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "x" / "meta.tsv").exists()


@pytest.mark.slow
@pytest.mark.network
def test_real_colin27_aal_cohort(tmp_path, monkeypatch, run_cli):
    from biolatent.datasets import RegistryUnreachable

    monkeypatch.setenv("BIOLATENT_CACHE", str(tmp_path / "cache"))
    try:
        template = atlas_template("colin27-aal")
    except RegistryUnreachable as exc:
        pytest.skip(f"Debian archive unreachable: {exc}")
    assert template.regions is not None and len(template.region_names) == 116
    result = run_cli("data", "simulate", "brain", "--atlas", "colin27-aal", "--out", tmp_path / "aal", "--n", "2",
                     "--size", "32")
    assert result.code == 0, result.err
    meta = pd.read_csv(tmp_path / "aal" / "meta.tsv", sep="\t")
    for row in meta.itertuples():
        image = read_nifti(tmp_path / "aal" / row.path, ndim=3)
        labels = read_nifti(tmp_path / "aal" / row.labels, ndim=3)
        assert labels.data.shape == image.data.shape == (32, 32, 32) and np.allclose(labels.affine, image.affine)
        assert len(np.unique(labels.data)) - 1 >= 100  # most of AAL's 116 regions, even at 32^3
    subject = simulate_brain(template, 0, 0, size=32)
    wm, gm, csf = (subject.tissue[i] > 0.7 for i in (1, 0, 2))
    assert subject.image[wm].mean() > subject.image[gm].mean() > subject.image[csf].mean()  # T1-like contrast
