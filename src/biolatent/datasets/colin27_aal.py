"""colin27-aal: the Colin27 T1 (brain-extracted) and the AAL atlas of 116 regions on it, for many-label evaluation.

Source: the Debian package ``mricron-data`` (MRIcron's templates, Chris Rorden), folder
``/usr/share/mricron/templates/``:

* ``ch2bet.nii.gz``: Colin27 ("ch2"), the average of 27 T1 scans of one subject (Holmes et al. 1998, J Comput
  Assist Tomogr 22:324, "Enhancement of MR images using registration for signal averaging"), brain-extracted
  (BET) and in MNI space, 181 x 217 x 181 voxels at 1 mm, uint8;
* ``aal.nii.gz``: the Automated Anatomical Labeling atlas (Tzourio-Mazoyer et al. 2002, NeuroImage 15:273), drawn
  on this very brain: 116 regions (90 cerebral, 26 cerebellar), on the same grid;
* ``aal.nii.txt``: the region names (``index name code`` per line).

Conversion (``convert``), every map on the T1's grid with its affine (the label map is resampled onto it with
nearest neighbours if a future package ships it on another grid):

* ``t1.nii.gz``: the T1 rescaled to [0, 1] (float32); ``brain_mask.nii.gz``: its nonzero voxels, hole-filled;
* ``gm.nii.gz``, ``wm.nii.gz``, ``csf.nii.gz``: tissue probabilities, the posteriors of a three-class Gaussian
  mixture of the T1 intensities inside the mask (the intensity model of unified segmentation, Ashburner & Friston
  2005, NeuroImage 26:839, without its spatial priors), so that ``biolatent.data.simulate.brain`` renders
  SynthSeg-style subjects from this anatomy as it does from ``mni152``;
* ``labels.nii.gz``: the AAL map (integer 0..116, 0 outside any region) and ``labels.tsv``: index, name,
  aal_code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.datasets.recipe import AptRecipe
from biolatent.errors import DataError

ROOT = "/usr/share/mricron/templates/"
T1 = ROOT + "ch2bet.nii.gz"
AAL = ROOT + "aal.nii.gz"
AAL_NAMES = ROOT + "aal.nii.txt"
N_REGIONS = 116


def read_region_names(path: Path) -> pd.DataFrame:
    """``aal.nii.txt`` (``index name code`` per line) -> a table index, name, aal_code."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
            raise DataError(f"{path.name} line {number}: expected 'index name code', got {line.strip()!r}")
        rows.append({"index": int(parts[0]), "name": parts[1], "aal_code": int(parts[2])})
    return pd.DataFrame(rows, columns=["index", "name", "aal_code"])


def tissue_posteriors(t1: np.ndarray, mask: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """GM, WM, CSF probabilities (float32, 0 outside ``mask``): a three-component Gaussian mixture of the T1
    intensities inside the mask (fit on every 10th voxel), components named by their means (CSF < GM < WM)."""
    from sklearn.mixture import GaussianMixture

    values = t1[mask].astype(np.float64)[:, None]
    if len(values) < 1000:
        raise DataError(f"the brain mask holds {len(values)} voxels: too few to model three tissues")
    low, high = np.percentile(values, [5, 95])
    model = GaussianMixture(3, means_init=np.array([[low], [(low + high) / 2], [high]]), random_state=seed)
    model.fit(values[::10])
    order = np.argsort(model.means_.ravel())  # csf, gm, wm
    posterior = model.predict_proba(values)
    maps = {}
    for name, component in zip(("csf", "gm", "wm"), order, strict=True):
        tissue = np.zeros(t1.shape, np.float32)
        tissue[mask] = posterior[:, component]
        maps[name] = tissue
    return maps


def convert(members: dict[str, Path], out_dir: Path) -> None:
    """``t1``, ``brain_mask``, ``gm``, ``wm``, ``csf``, ``labels`` (``.nii.gz``) and ``labels.tsv`` (module
    docstring)."""
    import nibabel as nib
    from scipy import ndimage

    from biolatent.io.nifti import write_nifti

    t1_image, aal_image = nib.load(members[T1]), nib.load(members[AAL])
    t1 = np.asarray(t1_image.dataobj, dtype=np.float32)
    labels = np.rint(np.asarray(aal_image.dataobj, dtype=np.float32)).astype(np.int16)
    if t1.ndim != 3 or labels.ndim != 3:
        raise DataError(f"colin27-aal: expected 3D maps, got {t1.shape} (T1) and {labels.shape} (AAL)")
    if labels.shape != t1.shape or not np.allclose(aal_image.affine, t1_image.affine, atol=1e-4):
        matrix = np.linalg.inv(aal_image.affine) @ t1_image.affine  # T1 voxel -> AAL voxel
        labels = ndimage.affine_transform(labels, matrix[:3, :3], offset=matrix[:3, 3], output_shape=t1.shape,
                                          order=0, mode="constant", cval=0)
    names = read_region_names(members[AAL_NAMES])
    present = set(np.unique(labels).tolist()) - {0}
    if not present <= set(names["index"]) or len(present) < N_REGIONS:
        raise DataError(f"colin27-aal: the AAL map holds {len(present)} regions, the names file "
                        f"{len(names)}; expected {N_REGIONS} named regions")
    mask = ndimage.binary_fill_holes(t1 > 0)
    affine = t1_image.affine
    write_nifti(out_dir / "t1.nii.gz", t1 / float(t1.max()), affine=affine)
    write_nifti(out_dir / "brain_mask.nii.gz", mask.astype(np.float32), affine=affine)
    for name, tissue in tissue_posteriors(t1, mask).items():
        write_nifti(out_dir / f"{name}.nii.gz", tissue, affine=affine)
    write_nifti(out_dir / "labels.nii.gz", labels.astype(np.float32), affine=affine)
    names.to_csv(out_dir / "labels.tsv", sep="\t", index=False)


RECIPE = AptRecipe(
    name="colin27-aal",
    description="Colin27 T1 (ch2bet, 181x217x181 at 1 mm, MNI space) + the AAL atlas of 116 regions on it "
                "(+ derived GM/WM/CSF posteriors, brain mask): many-label registration evaluation",
    modality="volume3d",
    package="mricron-data",
    version="1.2.20211006+dfsg-4",
    members=(T1, AAL, AAL_NAMES),
    sha256={
        T1: "592a2d20abdf36eefcb540ca8958428040edffc1bc1a18ba1dcfbabac77c5dd1",
        AAL: "b512dcd3f36b77f56be7a9a038134096e66314b7e8c31d25875b96bcf6991454",
        AAL_NAMES: "1788d6556a9ec056de9867b2382cf1ce1b51b87ae4cfd9cd25de48ae4dde709e",
    },
    convert=convert,
    data_config={"modality": "volume3d", "path": "t1.nii.gz", "labels": "labels.nii.gz",
                 "label_names": "labels.tsv", "gm": "gm.nii.gz", "wm": "wm.nii.gz", "csf": "csf.nii.gz",
                 "brain_mask": "brain_mask.nii.gz"},
    labels=[],
)
