"""Metadata columns: which values are missing, and whether a column holds classes or a continuous target.

The task rule (``label_task``) is shared by ``evaluate`` (probes and splits) and the UMAP colouring of ``discover``
and ``report``, so it lives below all of them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

Task = Literal["classification", "regression"]
TASKS: tuple[str, ...] = ("classification", "regression")
REGRESSION_MIN_VALUES = 10  # a numeric column with more distinct values than this is a regression target


def missing_mask(series: pd.Series) -> np.ndarray:
    """NaN/None and, in text columns, empty or blank strings."""
    missing = series.isna().to_numpy(dtype=bool, copy=True)  # writable under copy-on-write (pandas 3)
    if series.dtype == object or isinstance(series.dtype, pd.StringDtype):
        missing |= series.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
    return missing


def is_number_column(series: pd.Series) -> bool:
    dtype = series.dtype
    return (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
            and not isinstance(dtype, pd.CategoricalDtype))


def label_task(values: pd.Series) -> Task:
    """``"regression"`` or ``"classification"`` for a label column (the rule of ``--task auto``).

    A column is a regression target when its dtype is numeric (not bool, not categorical) and its
    non-missing values either take more than ``REGRESSION_MIN_VALUES`` distinct values, or take more than
    two distinct values of which at least one is not a whole number (``0.55, 0.61, 0.7``). Everything else
    is classification: text, categorical and boolean columns, and numeric codes with at most
    ``REGRESSION_MIN_VALUES`` whole-number values (``0/1``, a stage 1..4, a site number).
    """
    series = pd.Series(values)
    if not is_number_column(series):
        return "classification"
    kept = series[~missing_mask(series)].to_numpy(dtype=np.float64)
    distinct = np.unique(kept[np.isfinite(kept)])
    if distinct.size > REGRESSION_MIN_VALUES:
        return "regression"
    fractional = bool(np.any(distinct != np.round(distinct)))
    return "regression" if distinct.size > 2 and fractional else "classification"
