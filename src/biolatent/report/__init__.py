"""report.html: one self-contained HTML file (inline CSS, base64 PNG figures) built from a run directory."""

from biolatent.report.build import build_report

__all__ = ["build_report"]
