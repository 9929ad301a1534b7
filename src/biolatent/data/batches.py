"""The batch covariate of expression data (``data.batch_column``): each sample's batch (lab, donor, sequencing run)
as an integer code in ``SampleSet.fields[BATCH_FIELD]``, the names in ``DataInfo.batch_categories``.

A batch-aware model (scVI-style VAE, Lopez et al. 2018) conditions on the code; embedding other data with a
trained model maps that data's batch names onto the codes the model was trained with (``recode_batches``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from biolatent.errors import DataError

BATCH_FIELD = "batch_index"


def batch_codes(obs: pd.DataFrame, column: str, where: str,
                option: str = "data.batch_column") -> tuple[torch.Tensor, list[str]]:
    """int64 codes (N,) of ``obs[column]`` and the batch names (sorted) they index; a missing column or a sample
    without a batch is a one-line error naming ``option`` (the setting that named the column)."""
    if column not in obs.columns:
        columns = ", ".join(map(str, obs.columns)) or "none"
        raise DataError(f"{where}: {option} {column!r} is not a metadata column (columns: {columns})")
    values = obs[column]
    missing = int(values.isna().sum())
    if missing:
        raise DataError(f"{where}: {missing} of {len(values)} samples have no {column!r} (batch); give every "
                        "sample a batch or drop those samples")
    names = values.astype(str).to_numpy()
    categories = sorted(set(names.tolist()))
    codes = np.searchsorted(np.asarray(categories), names)
    return torch.from_numpy(codes.astype(np.int64)), categories


def recode_batches(codes: torch.Tensor, categories: list[str], trained: list[str]) -> torch.Tensor:
    """``codes`` over ``categories`` -> codes over the ``trained`` batch names; a batch the model never saw is a
    one-line error (a conditioned model has no parameters for it)."""
    unseen = sorted(set(categories) - set(trained))
    if unseen:
        raise DataError(f"batch {unseen[0]!r} was not seen at training (batches of the model: "
                        f"{', '.join(trained)}); embed data of those batches or train with this one")
    mapping = torch.tensor([trained.index(name) for name in categories], dtype=torch.int64)
    return mapping[codes]
