"""mni152: the MNI ICBM152 2009a (symmetric, non-linear) T1 template and its tissue probability maps.

ICBM152 2009a (Fonov et al. 2011, NeuroImage 54:313, "Unbiased average age-appropriate atlases for pediatric
studies"; Fonov et al. 2009, NeuroImage 47:S102; Collins et al. 1999), 197 x 233 x 189 voxels at 1 mm (RAS),
as shipped in the nilearn 0.14.1 wheel (``nilearn/datasets/data``). The wheel holds the skull-stripped T1 and
the grey- and white-matter probability maps only (no CSF map, no brain mask), so conversion derives them:

* ``brain_mask.nii.gz``: ``gm + wm > 0.2``, closed by 3 iterations (6-connected) and hole-filled (so the
  ventricles are inside);
* ``csf.nii.gz``: ``clip(1 - gm - wm, 0, 1)`` inside that mask (ventricles, sulci), 0 outside.

Every output is float32 in [0, 1] (uint8 / 255) with the template's own affine. Used by
``biolatent.data.simulate.brain`` as the anatomy of SynthSeg-style synthetic subjects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biolatent.datasets.recipe import DatasetRecipe
from biolatent.errors import DataError

ROOT = "nilearn/datasets/data/"
MEMBERS = {  # output name -> wheel member
    "t1": ROOT + "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": ROOT + "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": ROOT + "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
SHAPE = (197, 233, 189)
WHEEL_SHA256 = "725206484e9fb3f6691f9c2d20204a068759d5072f12055324702ee0cb2bbe8a"  # nilearn-0.14.1-py3-none-any.whl


def brain_mask(gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """Hole-filled, closed ``gm + wm > 0.2``: the whole brain including the ventricles."""
    from scipy import ndimage

    mask = ndimage.binary_closing(gm + wm > 0.2, iterations=3)
    return ndimage.binary_fill_holes(mask)


def convert(members: dict[str, Path], out_dir: Path) -> None:
    """``t1``, ``gm``, ``wm`` (rescaled to [0, 1]) and the derived ``csf``, ``brain_mask`` as ``<name>.nii.gz``."""
    import nibabel as nib

    from biolatent.io.nifti import write_nifti

    maps, affine = {}, None
    for name, member in MEMBERS.items():
        image = nib.load(members[member])
        data = np.asarray(image.dataobj, dtype=np.float32) / 255.0
        if data.shape != SHAPE:
            raise DataError(f"mni152: {member} has shape {data.shape}, expected {SHAPE}")
        if affine is not None and not np.allclose(image.affine, affine):
            raise DataError(f"mni152: {member} does not share the T1's affine")
        affine = image.affine
        maps[name] = data
    assert affine is not None
    mask = brain_mask(maps["gm"], maps["wm"])
    maps["csf"] = np.clip(1.0 - maps["gm"] - maps["wm"], 0.0, 1.0) * mask
    maps["brain_mask"] = mask.astype(np.float32)
    for name, data in maps.items():
        write_nifti(out_dir / f"{name}.nii.gz", data, affine=affine)


RECIPE = DatasetRecipe(
    name="mni152",
    description="MNI ICBM152 2009a T1 template + GM/WM (+ derived CSF, brain mask) maps, 197x233x189 at 1 mm",
    modality="volume3d",
    package="nilearn",
    version="0.14.1",
    members=tuple(MEMBERS.values()),
    sha256={
        MEMBERS["t1"]: "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6",
        MEMBERS["gm"]: "97a5ca69bd24db37a9cb7b32525e1733a209af904129bf1cd36da06d24243bed",
        MEMBERS["wm"]: "382d92812de4744f9c86c7a0e4f680dc317a0a50e4da1f0153618a6798c7b7db",
    },
    convert=convert,
    data_config={"modality": "volume3d", "path": "t1.nii.gz", "gm": "gm.nii.gz", "wm": "wm.nii.gz",
                 "csf": "csf.nii.gz", "brain_mask": "brain_mask.nii.gz"},
    labels=[],
)
