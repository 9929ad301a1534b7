"""Image sets listed by ``meta.tsv`` -> SampleSet (the ``image2d`` modality of a folder that holds one).

``meta.tsv`` has the columns ``id``, ``path`` (relative to the folder) and any metadata (kept in ``obs``, e.g.
``is_anomaly``); the listed images are read in its order (``biolatent.io.images``: grayscale stays one channel,
bilinear resize to ``image_size``). ``lesion_column`` names a column of lesion-mask images (empty: no lesion), each
the size of its image (else a one-line DataError) and resized with nearest neighbours: bool (N, 1, S, S) in
``SampleSet.fields["lesion"]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from biolatent.config import Image2dData
from biolatent.data.inputs import META, join_metadata, read_meta
from biolatent.data.samples import DataInfo, SampleSet
from biolatent.errors import DataError

LESION = "lesion"  # SampleSet.fields key of lesion masks (images and volumes)


def load_image_set(cfg: Image2dData, folder: Path) -> SampleSet:
    """The images ``folder/meta.tsv`` lists (module docstring)."""
    from biolatent.io.images import image_size_of, read_image_files, read_mask_file

    lesion = cfg.lesion_column
    meta = read_meta(folder, [lesion] if lesion else [])
    if cfg.max_samples is not None:
        meta = meta.iloc[: cfg.max_samples]
    files = [folder / str(p) for p in meta["path"]]
    for sid, file in zip(meta["id"], files, strict=True):
        if not file.is_file():
            raise DataError(f"{folder / META}: image {file.name!r} of {sid!r} not found")
    x = read_image_files(files, cfg.image_size)
    fields: dict[str, torch.Tensor] = {}
    if lesion is not None:
        if lesion not in meta.columns:
            raise DataError(f"data.lesion_column {lesion!r} is not a column of {folder / META}")
        masks = np.zeros((len(files), 1, cfg.image_size, cfg.image_size), dtype=bool)
        for i, (sid, file, relative) in enumerate(zip(meta["id"], files, meta[lesion], strict=True)):
            if str(relative).strip():
                try:
                    masks[i, 0] = read_mask_file(folder / str(relative).strip(), cfg.image_size, image_size_of(file))
                except DataError as exc:
                    raise DataError(f"lesion mask of {sid!r}: {exc}") from None
        fields[LESION] = torch.from_numpy(masks)
    ids = [str(v) for v in meta["id"]]
    obs = meta.drop(columns=["id"]).set_index(pd.Index(ids))
    obs = join_metadata(obs, cfg.metadata, cfg.id_column)
    info = DataInfo(modality="image2d", channels=int(x.shape[1]), image_size=cfg.image_size, spatial_dims=2)
    return SampleSet(info, torch.from_numpy(x), obs, fields=fields)
