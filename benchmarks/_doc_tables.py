"""Tables of docs/results.md rendered from a stored ``benchmarks/results/*.json`` (where the doc shows a subset).

A block ``<!-- generated from benchmarks/results/X.json, table NAME: do not edit -->`` is filled by
``TABLES[NAME]``: which list of rows in the JSON, which columns (key, header, format) and how rows are named.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Formatter = Callable[[Any], str]


def fixed(digits: int) -> Formatter:
    """A number with ``digits`` decimals; a missing value or NaN as ``-``."""
    def fmt(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return f"{float(value):.{digits}f}"
    return fmt


def thousands(value: Any) -> str:
    """A rate as a whole number with thousands separators (two significant digits below 10)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = float(value)
    if value < 10:
        return f"{value:.2g}"
    return f"{value:,.0f}"


def rate(value: Any) -> str:
    """A rate: 2 significant digits below 1, 1 decimal below 100, else a whole number."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    value = float(value)
    if value < 1:
        return f"{value:.2g}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def yes_no(value: Any) -> str:
    return "yes" if value else "no"


def plain(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Table:
    """``rows`` = the JSON key holding the list of row dicts; ``columns`` = (key, header, format)."""

    rows: str
    columns: Sequence[tuple[str, str, Formatter]]
    labels: dict[str, str] = field(default_factory=dict)  # first-column value -> the name shown

    def render(self, payload: dict[str, Any]) -> str:
        if self.rows not in payload:
            raise KeyError(f"no {self.rows!r} list in the stored output")
        lines = ["| " + " | ".join(h for _, h, _ in self.columns) + " |",
                 "|" + "---|" * len(self.columns)]
        first = self.columns[0][0]
        for row in payload[self.rows]:
            cells = [fmt(row.get(key)) for key, _, fmt in self.columns]
            cells[0] = self.labels.get(str(row.get(first)), cells[0])
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


_ANOMALY_MAPS = [("sample_auroc", "{unit} AUROC"), ("sample_ap", "{unit} AP"), ("{px}_auroc", "{px} AUROC"),
                 ("{px}_ap", "{px} AP"), ("{px}_dice_val_threshold", "Dice at the healthy threshold"),
                 ("{px}_dice_best", "best Dice (test labels: upper bound)"),
                 ("{px}_dice_postprocessed", "Dice after StRegA post-processing")]


def _anomaly(unit: str, px: str, time_key: str, time_header: str, rate_key: str, rate_header: str,
             labels: dict[str, str], *, mode: bool = False) -> Table:
    columns: list[tuple[str, str, Formatter]] = [("detector", "detector", plain)]
    if mode:  # volumes: natively in 3D or slice-wise (n/a: the trivial baselines)
        columns.append(("mode", "mode", plain))
    columns += [(k.format(px=px), h.format(unit=unit, px=px), fixed(3)) for k, h in _ANOMALY_MAPS]
    columns += [("lesions_detected", "lesions detected", fixed(2)), (time_key, time_header, fixed(0)),
                (rate_key, rate_header, rate)]
    return Table("rows", columns, labels)


TABLES: dict[str, Table] = {
    "simulation_truth": Table("rows", [
        ("design", "design", plain), ("h2_true", "true h2", plain), ("greml_mean", "mean GREML", fixed(3)),
        ("greml_sd", "SD", fixed(3)), ("greml_mean_se", "mean SE", fixed(3)),
        ("ci_coverage", "95% CI coverage", fixed(2)), ("he_mean", "mean HE", fixed(3)),
        ("power_variant", "power (variant)", fixed(3)), ("power_locus", "power (locus)", fixed(3)),
        ("lead_fdr", "lead FDR", fixed(3))]),
    "anomaly_series": Table("rows", [
        ("detector", "detector", plain), ("auroc", "point AUROC", fixed(3)), ("ap", "point AP", fixed(3)),
        ("dice_val_threshold", "Dice at the healthy threshold", fixed(3)),
        ("dice_best", "best Dice (test labels: upper bound)", fixed(3)), ("top_hit", "top hit", yes_no),
        ("points_per_s", "scoring points/s", thousands)],
        {"anomaly_transformer+ssm": "anomaly_transformer + state-space branch (MAAT-style)"}),
    "anomaly_images": _anomaly("sample", "pixel", "fit_s", "fit s", "images_per_s", "images/s",
                               {"supervised (reference)": "supervised (reference, 200 labelled slices)"}),
    "anomaly_volumes": _anomaly("volume", "voxel", "fit_s", "fit s", "volumes_per_s", "volumes/s scored",
                                {"supervised (reference)": "supervised (reference, 13 labelled brains)"}, mode=True),
}
