"""Provenance of a run: what produced it (versions, git SHA, config hash, seed, machine)."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import biolatent

_LIBRARIES = (
    "torch", "lightning", "numpy", "scipy", "pandas", "scikit-learn", "anndata", "scanpy",
    "transformers", "kornia", "pydantic", "safetensors",
)


def git_sha() -> str:
    """The commit of the biolatent source tree, or 'unknown' outside a git checkout."""
    here = Path(biolatent.__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
        sha = out.stdout.strip()
        if out.returncode != 0 or not sha:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True,
            text=True, timeout=5, check=False,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def collect(command: str, config_hash: str | None = None, seed: int | None = None, **extra: Any) -> dict:
    info: dict[str, Any] = {
        "biolatent_version": biolatent.__version__,
        "git_sha": git_sha(),
        "command": command,
        "argv": " ".join(sys.argv),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": library_versions(),
    }
    info["device"] = _device()
    if config_hash is not None:
        info["config_hash"] = config_hash
    if seed is not None:
        info["seed"] = seed
    info.update(extra)
    return info


def _device() -> str:
    """The accelerator a run could use (name of the first CUDA device), else 'cpu'. Asked of torch only when the
    command has loaded it: a command that never touches torch (``gwas``, ``h2``) runs on the CPU and is not made
    to import it (about 2 s) for its provenance."""
    torch = sys.modules.get("torch")
    if torch is None:
        return "cpu"
    try:
        if torch.cuda.is_available():
            return f"cuda: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    except Exception:  # provenance must never break a run
        pass
    return "cpu"
