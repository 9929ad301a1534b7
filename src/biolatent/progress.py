"""Progress lines with an ETA for steps that take more than a few seconds (evaluate, embed, report).

``StepProgress(total, say, label)`` prints ``"<label> [i/N]<detail>; 1m05s elapsed, about 2m10s left"`` after
a step, at most once every ``every_s`` seconds (and always after the last step), estimated from the mean
time of the steps so far. Lines go to ``say`` (the CLI's echo; tests collect them).
"""

from __future__ import annotations

import time
from collections.abc import Callable


def duration_text(seconds: float) -> str:
    """``"42s"`` or ``"2m05s"``."""
    whole = round(seconds)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def eta_text(elapsed: float, done: int, total: int) -> str:
    """``"; 1m05s elapsed, about 2m10s left"`` from the time the first ``done`` of ``total`` steps took."""
    if done == 0:
        return ""
    left = elapsed / done * (total - done)
    return f"; {duration_text(elapsed)} elapsed, about {duration_text(left)} left"


class StepProgress:
    """Counts ``total`` steps and reports them with an ETA through ``say`` (throttled to ``every_s``)."""

    def __init__(self, total: int, say: Callable[[str], None] | None, label: str, every_s: float = 5.0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.total, self.say, self.label, self.every_s, self.clock = total, say, label, every_s, clock
        self.done = 0
        self.started = clock()
        self.last_said = self.started

    def step(self, detail: str = "") -> None:
        """One step finished; report it if ``every_s`` passed since the last line or it was the last step."""
        self.done += 1
        now = self.clock()
        if self.say is None or (now - self.last_said < self.every_s and self.done < self.total):
            return
        self.last_said = now
        eta = eta_text(now - self.started, self.done, self.total)
        self.say(f"{self.label} [{self.done}/{self.total}]{detail}{eta}")
