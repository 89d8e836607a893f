"""The auto-pause rule: a mailing whose recent attempts mostly fail is paused, not burnt through.

A provider that refuses one mailing's messages (a text it rejects, numbers of a blocked range)
while accepting others' is not the circuit breaker's business (that pauses everything when the
provider is down); this looks at each mailing on its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container


class FailureWatch:
    """Per mailing, the outcomes of its last ``window`` attempts; ``record`` says when the share
    of failures reaches ``ratio`` (once the window is full), and why."""

    def __init__(self, *, ratio: float, window: int) -> None:
        self.ratio = ratio
        self.window = window
        self._recent: dict[int, deque[bool]] = {}
        self._failures: dict[int, int] = {}

    def record(self, mailing_id: int, *, failed: bool) -> str | None:
        recent = self._recent.get(mailing_id)
        if recent is None:
            recent = self._recent[mailing_id] = deque(maxlen=self.window)
            self._failures[mailing_id] = 0
        if len(recent) == self.window and recent[0]:
            self._failures[mailing_id] -= 1
        recent.append(failed)
        if failed:
            self._failures[mailing_id] += 1
        failures = self._failures[mailing_id]
        if len(recent) < self.window or failures < self.ratio * self.window:
            return None
        self.forget(mailing_id)  # judged afresh after a resume
        return (
            f"auto-paused: the provider refused {failures} of its last {self.window} attempts "
            f"(NOTIFLOW_AUTO_PAUSE_FAILURE_RATIO={self.ratio:g})"
        )

    def forget(self, mailing_id: int) -> None:
        self._recent.pop(mailing_id, None)
        self._failures.pop(mailing_id, None)

    def retain(self, running: Container[int]) -> None:
        """Forget the mailings that no longer run."""
        for mailing_id in [m for m in self._recent if m not in running]:
            self.forget(mailing_id)
