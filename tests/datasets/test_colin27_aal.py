"""colin27-aal (Debian mricron-data): the converter on a tiny fixture (fast) and the real package (slow,
network; skipped when the Debian archive is unreachable)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biolatent.datasets import RegistryUnreachable
from biolatent.datasets import colin27_aal as ca
from biolatent.datasets.apt import fetch_apt
from biolatent.errors import DataError
from biolatent.io.nifti import read_nifti, write_nifti


def _members(tmp_path: Path, label_shift: int = 0) -> dict[str, Path]:
    """A 24^3 'brain' of three intensity classes and 116 regions (cycled over the brain voxels), AAL-style names."""
    rng = np.random.default_rng(0)
    t1 = np.zeros((24, 24, 24), np.float32)
    t1[2:22, 2:22, 2:22] = 60 + rng.normal(0, 3, (20, 20, 20))  # "CSF"
    t1[4:20, 4:20, 4:20] = 90 + rng.normal(0, 3, (16, 16, 16))  # "GM"
    t1[8:16, 8:16, 8:16] = 115 + rng.normal(0, 3, (8, 8, 8))  # "WM"
    labels = np.zeros(t1.shape, np.float32)
    labels[2:22, 2:22, 2:22] = 1 + np.arange(20**3).reshape(20, 20, 20) % 116
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    shifted = affine.copy()
    shifted[0, 3] = 2.0 * label_shift  # the label map's grid starts label_shift voxels further along x
    write_nifti(tmp_path / "t1.nii.gz", t1, affine=affine)
    write_nifti(tmp_path / "aal.nii.gz", np.roll(labels, -label_shift, axis=0), affine=shifted)
    (tmp_path / "aal.txt").write_text("".join(f"{k} Region_{k} {2000 + k}\n" for k in range(1, 117)) + "\n")
    return {ca.T1: tmp_path / "t1.nii.gz", ca.AAL: tmp_path / "aal.nii.gz", ca.AAL_NAMES: tmp_path / "aal.txt"}


@pytest.mark.parametrize("shift", [0, 1])
def test_convert_writes_every_map_on_the_t1_grid(tmp_path, shift):
    out = tmp_path / "out"
    out.mkdir()
    ca.convert(_members(tmp_path, shift), out)
    maps = {n: read_nifti(out / f"{n}.nii.gz", ndim=3) for n in ("t1", "gm", "wm", "csf", "brain_mask", "labels")}
    for volume in maps.values():
        assert volume.data.shape == (24, 24, 24) and np.allclose(volume.affine, maps["t1"].affine)
    labels = maps["labels"].data
    assert len(np.unique(labels)) == 117 and (labels[2:22, 2:22, 2:22] > 0).all() and labels[0].max() == 0
    gm, wm, csf, mask = (maps[n].data for n in ("gm", "wm", "csf", "brain_mask"))
    assert wm[12, 12, 12] > 0.9 and gm[5, 5, 5] > 0.9 and csf[2, 2, 2] > 0.9  # classes named by their means
    np.testing.assert_allclose((gm + wm + csf)[mask > 0], 1.0, atol=1e-5)
    assert maps["t1"].data.max() == pytest.approx(1.0)
    names = pd.read_csv(out / "labels.tsv", sep="\t")
    assert list(names.columns) == ["index", "name", "aal_code"] and names.name.iloc[0] == "Region_1"


def test_bad_names_file_is_a_one_line_error(tmp_path):
    members = _members(tmp_path)
    members[ca.AAL_NAMES].write_text("1 Precentral_L\n")
    with pytest.raises(DataError, match="line 1: expected 'index name code'"):
        ca.convert(members, tmp_path)


@pytest.mark.slow
@pytest.mark.network
def test_real_colin27_aal(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOLATENT_CACHE", str(tmp_path / "cache"))
    try:
        folder = fetch_apt("colin27-aal", progress=lambda _: None)
    except RegistryUnreachable as exc:
        pytest.skip(f"Debian archive unreachable: {exc}")
    maps = {n: read_nifti(folder / f"{n}.nii.gz", ndim=3) for n in ("t1", "gm", "wm", "csf", "brain_mask", "labels")}
    for volume in maps.values():
        assert volume.data.shape == (181, 217, 181) and volume.spacing == (1.0, 1.0, 1.0)
        np.testing.assert_allclose(volume.affine[:3, 3], [-90.0, -125.0, -71.0])
    labels = maps["labels"].data
    assert len(np.unique(labels)) == 117 and labels.max() == 116
    names = pd.read_csv(folder / "labels.tsv", sep="\t")
    assert len(names) == 116 and names.name.iloc[0] == "Precentral_L" and names.name.iloc[-1] == "Vermis_10"
    t1, gm, wm, csf = (maps[n].data for n in ("t1", "gm", "wm", "csf"))
    assert t1[wm > 0.9].mean() > t1[gm > 0.9].mean() > t1[csf > 0.9].mean()
    assert 1.4e6 < (maps["brain_mask"].data > 0).sum() < 2.1e6
    assert (gm[labels > 0] + csf[labels > 0]).mean() > wm[labels > 0].mean()  # AAL parcellates grey matter
