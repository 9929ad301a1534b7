"""Longitudinal health records -> BEHRT-style token tensors (``modality: records``).

Events (patient, time, code, value) come from a long table (csv/tsv/parquet) or an OMOP CDM folder
(``biolatent.io.omop``). Times are days: numbers as given, dates as days since 1970-01-01. Per patient, events at or
before the prediction time (``data.prediction_time`` or the metadata column ``data.prediction_time_column``) are
kept, grouped into visits (one visit per distinct day) and laid out as ``[CLS] visit1 [SEP] visit2 [SEP] ...``;
the most recent ``max_length`` tokens are kept (after [CLS]).

``SampleSet.x`` is int64 (N, 4, L): row 0 token ids (``PAD_ID`` = 0 pads), row 1 age in whole years at the event
(0..``MAX_AGE``), row 2 segment (visits alternate 0/1, as BEHRT), row 3 visit index (position). Packing the four
rows into ``x`` lets the one training loop, ``embed`` and the baselines hand an encoder its whole input. The
vocabulary is ``extra["vocab"]`` (token id -> code).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from biolatent.config import RecordsData
from biolatent.data.inputs import join_metadata, require_path
from biolatent.data.record_tokens import CLS_ID, MAX_AGE, SEP_ID, SPECIAL_TOKENS, UNK_ID
from biolatent.data.samples import DataInfo, SampleSet
from biolatent.errors import DataError

DAYS_PER_YEAR = 365.25
_EPOCH = pd.Timestamp("1970-01-01")


def to_days(values: pd.Series | object, what: str) -> pd.Series | float:
    """Numbers stay days; dates (strings, datetimes) become days since 1970-01-01; DataError if neither."""
    if not isinstance(values, pd.Series):
        if values is None:
            return np.nan
        return float(to_days(pd.Series([values]), what).iloc[0])
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().sum() == values.notna().sum():
        return numeric.astype(float)
    dates = pd.to_datetime(values, errors="coerce")
    bad = dates.isna() & values.notna()
    if bad.any():
        raise DataError(f"{what}: {values[bad].iloc[0]!r} is neither a date nor a number of days")
    return (dates - _EPOCH).dt.total_seconds() / 86400.0


def _read_any(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        sep = "," if path.suffix.lower() == ".csv" else "\t"
        return pd.read_csv(path, sep=sep, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DataError(f"cannot read records table {path}: {str(exc).splitlines()[0]}") from None


def read_event_table(cfg: RecordsData, path: Path) -> tuple[pd.DataFrame, pd.Series | None]:
    """A long table -> (events: patient str, time days, code str, value float; birth days by patient or None)."""
    table = _read_any(path)
    columns = [str(c) for c in table.columns]
    for role, column in (("patient", cfg.patient_column), ("time", cfg.time_column), ("code", cfg.code_column)):
        if column not in columns:
            raise DataError(f"records table {path} has no {role} column {column!r} (columns: {', '.join(columns)}; "
                            f"set data.{role}_column)")
    events = pd.DataFrame({
        "patient": table[cfg.patient_column].astype(str),
        "time": to_days(table[cfg.time_column], f"{path} column {cfg.time_column!r}"),
        "code": table[cfg.code_column].astype(str),
    })
    has_value = cfg.value_column is not None and cfg.value_column in columns
    events["value"] = pd.to_numeric(table[cfg.value_column], errors="coerce") if has_value else np.nan
    if events["time"].isna().any():
        raise DataError(f"records table {path}: {int(events['time'].isna().sum())} events have no time")
    births = None
    if cfg.births is not None:
        births_table = _read_any(require_path(cfg.births, "records births"))
        # the births may come from the metadata table itself, keyed by its id column
        key = cfg.patient_column if cfg.patient_column in births_table.columns else cfg.id_column
        for column in (key if key in births_table.columns else cfg.patient_column, cfg.birth_column):
            if column not in births_table.columns:
                raise DataError(f"births table {cfg.births} has no column {column!r} "
                                f"(columns: {', '.join(map(str, births_table.columns))})")
        births = pd.Series(to_days(births_table[cfg.birth_column], f"{cfg.births} column {cfg.birth_column!r}").values,
                           index=births_table[key].astype(str).values)
    return events, births


def _read_events(cfg: RecordsData) -> tuple[pd.DataFrame, pd.Series | None, list[str]]:
    """-> (events, births, patient ids in order)."""
    path = require_path(cfg.path, "records")
    if path.is_dir():
        from biolatent.io.omop import read_omop

        events, births = read_omop(path)
        return events, births, list(births.index)
    events, births = read_event_table(cfg, path)
    patients = list(pd.unique(events["patient"])) if births is None else list(births.index)
    missing = sorted(set(events["patient"]) - set(patients))
    if missing:
        raise DataError(f"{len(missing)} patients of the records table have no birth in {cfg.births} "
                        f"(e.g. {missing[0]!r})")
    return events, births, patients


def check_dates(events: pd.DataFrame, births: pd.Series | None, data_end: float, where: str) -> None:
    """DataError for an event dated before its patient's birth or after the data's end."""
    if births is not None:
        birth = events["patient"].map(births)
        early = events["time"] < birth
        if early.any():
            row = events[early].iloc[0]
            raise DataError(f"{where}: {int(early.sum())} events are dated before the patient's birth (e.g. "
                            f"patient {row['patient']!r}, code {row['code']!r}, day {row['time']:g} < birth "
                            f"{birth[early].iloc[0]:g})")
    if np.isfinite(data_end):
        late = events["time"] > data_end
        if late.any():
            row = events[late].iloc[0]
            raise DataError(f"{where}: {int(late.sum())} events are dated after the data's end ({data_end:g} days; "
                            f"e.g. patient {row['patient']!r}, code {row['code']!r} at {row['time']:g})")


def bin_values(events: pd.DataFrame, bins: int) -> pd.Series:
    """Codes with numeric values -> ``code:qK`` (per-code quantile bin 1..bins); other codes unchanged."""
    codes = events["code"].copy()
    has = events["value"].notna()
    for code, values in events.loc[has, "value"].groupby(events.loc[has, "code"]):
        ranks = values.rank(method="average", pct=True)
        q = np.clip(np.ceil(ranks.to_numpy() * bins), 1, bins).astype(int)
        codes.loc[values.index] = [f"{code}:q{k}" for k in q]
    return codes


def build_vocab(codes: pd.Series, min_count: int) -> list[str]:
    """Special tokens, then codes seen at least ``min_count`` times by decreasing count (ties by name)."""
    counts = codes.value_counts()
    kept = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))
    return [*SPECIAL_TOKENS, *kept]


def tokenise(events: pd.DataFrame, patients: list[str], births: pd.Series | None, vocab: list[str],
             max_length: int) -> torch.Tensor:
    """Visible events -> int64 (N, 4, max_length): tokens, age, segment, visit index (see module docstring)."""
    index = {code: i for i, code in enumerate(vocab)}
    out = np.zeros((len(patients), 4, max_length), dtype=np.int64)
    out[:, 0, 0] = CLS_ID
    grouped = {p: g for p, g in events.sort_values(["patient", "time"], kind="stable").groupby("patient", sort=False)}
    for row, patient in enumerate(patients):
        group = grouped.get(patient)
        if group is None:
            continue
        birth = births.get(patient, np.nan) if births is not None else np.nan
        tokens: list[int] = []
        ages: list[int] = []
        visits: list[int] = []
        for visit, (day, day_events) in enumerate(group.groupby("time", sort=True)):
            age = 0 if not np.isfinite(birth) else int(np.clip((day - birth) // DAYS_PER_YEAR, 0, MAX_AGE))
            ids = [index.get(code, UNK_ID) for code in day_events["code"]] + [SEP_ID]
            tokens += ids
            ages += [age] * len(ids)
            visits += [visit] * len(ids)
        keep = max_length - 1  # the most recent events
        tokens, ages, visits = tokens[-keep:], ages[-keep:], visits[-keep:]
        first = visits[0] if visits else 0
        n = len(tokens)
        out[row, 0, 1 : n + 1] = tokens
        out[row, 1, 1 : n + 1] = ages
        out[row, 1, 0] = ages[0] if ages else 0
        rel = np.asarray(visits, dtype=np.int64) - first
        out[row, 2, 1 : n + 1] = rel % 2
        out[row, 3, 1 : n + 1] = rel + 1  # [CLS] is position 0
    return torch.from_numpy(out)


def _prediction_times(cfg: RecordsData, obs: pd.DataFrame) -> pd.Series:
    """Per patient (obs order) the last visible day (inf: all)."""
    times = pd.Series(np.inf, index=obs.index)
    if cfg.prediction_time is not None:
        times[:] = to_days(cfg.prediction_time, "data.prediction_time")
    if cfg.prediction_time_column is not None:
        if cfg.prediction_time_column not in obs.columns:
            raise DataError(f"data.prediction_time_column {cfg.prediction_time_column!r} is not a metadata column "
                            f"(columns: {', '.join(map(str, obs.columns)) or 'none: set data.metadata'})")
        column = to_days(obs[cfg.prediction_time_column], f"metadata column {cfg.prediction_time_column!r}")
        times = pd.Series(np.fmin(times.to_numpy(), column.fillna(np.inf).to_numpy()), index=obs.index)
    return times


def load_records(cfg: RecordsData) -> SampleSet:
    """Records -> SampleSet with x int64 (N, 4, max_length), one sample per patient (ids = patient ids)."""
    events, births, patients = _read_events(cfg)
    where = str(cfg.path)
    data_end = to_days(cfg.data_end, "data.data_end") if cfg.data_end is not None else np.inf
    check_dates(events, births, float(data_end), where)
    if not patients:
        raise DataError(f"{where}: no patients")
    obs = pd.DataFrame(index=pd.Index(patients, dtype=str))
    obs = join_metadata(obs, cfg.metadata, cfg.id_column)
    horizon = _prediction_times(cfg, obs)
    visible = events[events["time"] <= events["patient"].map(horizon).fillna(np.inf)].copy()
    visible["code"] = bin_values(visible, cfg.value_bins) if cfg.value_bins else visible["code"]
    vocab = build_vocab(visible["code"], cfg.min_count)
    x = tokenise(visible, patients, births, vocab, cfg.max_length)
    obs["n_events"] = visible.groupby("patient").size().reindex(patients).fillna(0).astype(np.int64).to_numpy()
    info = DataInfo(modality="records", max_length=cfg.max_length, vocab_size=len(vocab))
    return SampleSet(info, x, obs, extra={"vocab": vocab, "source": where})
