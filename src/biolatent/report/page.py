"""The pieces of a report page and its rendering: sections of tables, figures and notes, the HTML template.

``build`` (a run's report) and ``discovery`` (the discovery report) both fill ``Section``s and call ``render``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from biolatent.errors import DataError


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Fig:
    key: str
    caption: str
    base64: str


@dataclass
class Section:
    key: str
    title: str
    source: str
    command: str
    status: str = "ok"  # ok | missing | error
    message: str = ""
    pre: str | None = None
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Fig] = field(default_factory=list)
    details: list[Table] = field(default_factory=list)


def fmt(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return "n/a" if not np.isfinite(value) else f"{value:.4g}"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    return "n/a" if value is None else str(value)


def read_json_object(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path.name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path.name} does not hold a JSON object")
    return data


def collapse_warning(run_dir: Path) -> list[str]:
    """The pretraining's collapse flags (``metrics.json`` ``pretrain.collapse``, see ``evaluate.collapse``) when
    its embeddings collapsed, else ``[]``; an unreadable metrics file is the metrics section's business."""
    try:
        collapse = read_json_object(run_dir / "metrics.json").get("pretrain", {}).get("collapse", {})
    except (OSError, DataError, AttributeError):
        return []
    if not isinstance(collapse, dict) or not collapse.get("collapsed"):
        return []
    return [str(flag) for flag in collapse.get("flags", [])] or ["collapsed"]


def render(run_dir: Path, sections: list[Section]) -> str:
    """The HTML text (jinja2 template ``templates/report.html``, autoescape on)."""
    import jinja2

    template_text = resources.files("biolatent.report").joinpath("templates/report.html").read_text("utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(template_text).render(
        run_name=run_dir.resolve().name, run_dir=str(run_dir), sections=sections, collapse=collapse_warning(run_dir),
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
