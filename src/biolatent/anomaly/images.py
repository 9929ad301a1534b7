"""Image sets for anomaly detection: ``write_slice_set`` writes the synthetic 2D slices of
``biolatent.data.simulate.lesions2d`` as a folder with ``meta.tsv`` (columns ``id``, ``path``, ``is_anomaly`` (0/1)
and ``mask``: a PNG of the lesion, empty for none), read by the core loader (``data.modality: image2d``,
``data.lesion_column: mask``; ``data.image_sets``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from biolatent.errors import DataError
from biolatent.rundir import atomic_path

META = "meta.tsv"


def write_slice_set(out_dir: str | Path, n: int, *, size: int = 64, lesions: bool = False, seed: int = 0,
                    lesion_fraction: float = 0.5) -> Path:
    """``images/<id>.png``, ``masks/<id>.png`` and ``meta.tsv`` (id, path, is_anomaly, mask, lesion_pixels).

    With ``lesions``, a seeded ``lesion_fraction`` of the slices carry lesions (the others stay healthy).
    """
    from biolatent.data.simulate.lesions2d import simulate_slices
    from biolatent.io.images import write_png

    out_dir = Path(out_dir)
    if (out_dir / META).exists():
        raise DataError(f"{out_dir} already holds a set ({META}): choose another --out")
    images, masks = simulate_slices(n, size=size, lesions=False, seed=seed)
    if lesions:
        if not 0.0 < lesion_fraction <= 1.0:
            raise DataError(f"lesion_fraction must lie in (0, 1], got {lesion_fraction}")
        lesioned, lesion_masks = simulate_slices(n, size=size, lesions=True, seed=seed)
        chosen = np.random.default_rng([seed, 1]).random(n) < lesion_fraction
        images[chosen], masks[chosen] = lesioned[chosen], lesion_masks[chosen]
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    if lesions:
        (out_dir / "masks").mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        subject = f"slice-{i + 1:04d}"
        write_png(out_dir / "images" / f"{subject}.png", (images[i, 0] * 255).round().astype(np.uint8))
        mask = ""
        if lesions:
            mask = f"masks/{subject}.png"
            write_png(out_dir / mask, masks[i].astype(np.uint8) * 255)
        rows.append({"id": subject, "path": f"images/{subject}.png", "is_anomaly": int(masks[i].any()),
                     "mask": mask, "lesion_pixels": int(masks[i].sum())})
    with atomic_path(out_dir / META) as tmp:
        pd.DataFrame(rows).to_csv(tmp, sep="\t", index=False)
    return out_dir / META
