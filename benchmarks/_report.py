"""Shared output helpers of the benchmark scripts: a markdown table, and JSON + markdown files on disk.

Every result JSON records the script's full arguments (its resolved argparse namespace) under ``"arguments"``
(:func:`write_results`), so a published run can be repeated and the script defaults checked against it
(``tests/benchmarks/test_bench_arguments.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def format_value(value: Any) -> str:
    """A table cell: floats with 3-4 significant digits, everything else as ``str``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 1:
            return f"{value:.4g}" if magnitude < 100 else f"{value:.1f}"
        return f"{value:.3g}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """GitHub markdown table of ``rows`` restricted to ``columns`` (in that order)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_value(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def host_info() -> dict[str, Any]:
    """Library versions and the machine, for the provenance of a result file."""
    import torch

    info: dict[str, Any] = {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["cuda"] = torch.version.cuda
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def device_tag() -> str:
    """The accelerator a benchmark's trainings run on (``train.accelerator: auto`` picks a visible GPU), for the
    result file's name: ``cuda`` or ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def supervised_note(block: dict[str, Any]) -> str:
    """The supervised baseline's budget as ``evaluate`` recorded it (``evaluate.json["supervised"]``), one line."""
    from biolatent.train.supervised import budget_sentence

    if "lr_grid" in block:
        return budget_sentence(block) + (f" Rule: {block['rule']}." if block.get("rule") else "")
    return (f"Supervised baseline: at most {block.get('max_steps', '?')} optimizer steps at the run's learning rate, "
            "early-stopped on a validation part of the labelled subset (recorded before the learning-rate grid).")


def _json_value(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def arguments(args: argparse.Namespace) -> dict[str, Any]:
    """Every argument of ``args`` (after the script resolved its defaults) as a JSON value: paths as strings."""
    return {key: _json_value(value) for key, value in sorted(vars(args).items())}


def write_results(
    out_dir: Path, stem: str, payload: dict[str, Any], markdown: str, *, args: argparse.Namespace
) -> tuple[Path, Path]:
    """Write ``out_dir/stem.json`` (``payload`` plus ``"arguments"``: the full ``args``, see :func:`arguments`)
    and ``out_dir/stem.md`` (``markdown``); return both paths."""
    payload = {**payload, "arguments": arguments(args)}
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(json_path)
    tmp = md_path.with_suffix(".md.tmp")
    tmp.write_text(markdown.rstrip() + "\n", encoding="utf-8")
    tmp.replace(md_path)
    return json_path, md_path


def timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of ``command``; a failure stops the benchmark with its output."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0
