"""The sktime / aeon ``.ts`` time-series format (UCR / UEA archives): ``@`` header lines, then ``@data`` and one
line per series, its channels separated by ``:`` and their values by ``,``, the class label last when the header
says ``@classLabel true``. ``?`` is a missing value (NaN). Lines starting with ``#`` or ``%`` (ARFF-style, as in
aeon's ``UnitTest``) are comments. Channels of one series share their length; series may
differ in length when the header says ``@equalLength false``.

Only the plain (values only) layout is read; timestamped values ``(t, v)`` are refused with a DataError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biolatent.errors import DataError

COMMENT = ("#", "%")  # comment lines (``%``: ARFF's marker, used by some archive files)


@dataclass(frozen=True)
class TsFile:
    """A parsed ``.ts`` file: ``series[i]`` float64 (C, T_i); ``labels`` the class labels (str) or None; ``header``
    the ``@key value`` lines (keys lower-cased)."""

    series: list[np.ndarray]
    labels: list[str] | None
    header: dict[str, str]


def _flag(header: dict[str, str], key: str, path: Path) -> bool | None:
    value = header.get(key)
    if value is None:
        return None
    if value.split()[0].lower() not in ("true", "false"):
        raise DataError(f"{path}: @{key} must be true or false, got {value!r}")
    return value.split()[0].lower() == "true"


def _values(text: str, path: Path, line_no: int) -> np.ndarray:
    if "(" in text:
        raise DataError(f"{path} line {line_no}: timestamped values '(t, v)' are not supported; write plain values")
    try:
        return np.array([np.nan if v.strip() == "?" else float(v) for v in text.split(",")], dtype=np.float64)
    except ValueError:
        raise DataError(f"{path} line {line_no}: a value that is not a number in {text[:60]!r}") from None


def read_ts(path: str | Path) -> TsFile:
    """Read a ``.ts`` file (module docstring); DataError (one line) on a malformed file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f".ts file not found: {path}")
    header: dict[str, str] = {}
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data, has_labels, n_channels = False, False, None
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line_no, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line or line.startswith(COMMENT):
                continue
            if not in_data:
                if not line.startswith("@"):
                    raise DataError(f"{path} line {line_no}: expected an @ header line or @data, got {line[:40]!r}")
                key, _, value = line[1:].partition(" ")
                if key.lower() == "data":
                    in_data = True
                    has_labels = bool(_flag(header, "classlabel", path))
                    continue
                header[key.lower()] = value.strip()
                continue
            parts = line.split(":")
            if has_labels:
                if len(parts) < 2:
                    raise DataError(f"{path} line {line_no}: @classLabel true but the line has no ':label'")
                labels.append(parts[-1].strip())
                parts = parts[:-1]
            channels = [_values(part, path, line_no) for part in parts]
            if n_channels is None:
                n_channels = len(channels)
            elif len(channels) != n_channels:
                raise DataError(f"{path} line {line_no}: {len(channels)} channels where the first series has "
                                f"{n_channels}")
            lengths = {c.size for c in channels}
            if len(lengths) != 1:
                raise DataError(f"{path} line {line_no}: the channels of one series differ in length "
                                f"({sorted(lengths)})")
            series.append(np.stack(channels))
    if not in_data:
        raise DataError(f"{path}: no @data line (not a .ts file?)")
    if not series:
        raise DataError(f"{path}: no series after @data")
    if _flag(header, "equallength", path) and len({s.shape[1] for s in series}) > 1:
        raise DataError(f"{path}: @equalLength true but the series have lengths "
                        f"{min(s.shape[1] for s in series)}..{max(s.shape[1] for s in series)}")
    return TsFile(series, labels if has_labels else None, header)
