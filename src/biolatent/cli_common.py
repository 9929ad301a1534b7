"""What every ``biolatent`` sub-command module shares."""

from __future__ import annotations

import typer


def say(message: str) -> None:
    """Progress and notes go to stderr (stdout carries the command's result)."""
    typer.echo(message, err=True)
