"""What a thread is told by a buffer (the cancellations, defined in ``_errors`` where the
failure rule needs them, and a timeout) and what it measures."""

from __future__ import annotations

import enum

from ._errors import Aborted, Broken, Cancelled

__all__ = [
    "Aborted",
    "Activity",
    "Broken",
    "Cancelled",
    "ChannelTimeout",
    "ItemCounters",
    "Meter",
]


class ChannelTimeout(Exception):
    """A consumer's wait with a timeout ran out with nothing to take."""


class Activity(enum.Enum):
    """What a thread is doing, as its :class:`Meter` last saw."""

    BUSY = "inside its own code"
    STARVED = "waiting for input"
    BLOCKED = "waiting for space in its buffer"


class ItemCounters:
    """What a per-item operator counts, in one thread: a small picklable record, so that a
    stage instance in another process can send its counts back with its results.

    Attributes:
        failed: items whose call raised and that ``on_error`` handled (timeouts included).
        timed_out: items whose call did not return within the operator's ``timeout``.
        abandoned: names of the helper threads left running a call that timed out.
    """

    __slots__ = ("abandoned", "failed", "timed_out")

    def __init__(self) -> None:
        self.failed = 0
        self.timed_out = 0
        self.abandoned: list[str] = []

    def __getstate__(self) -> tuple[int, int, list[str]]:
        return self.failed, self.timed_out, self.abandoned

    def __setstate__(self, state: tuple[int, int, list[str]]) -> None:
        self.failed, self.timed_out, self.abandoned = state


class Meter:
    """One thread's clock, written only by that thread and read by anyone.

    Only the slow paths (where the thread is about to wait) touch it, so it costs nothing per
    item. ``busy`` is what is left of the thread's life once its waits are taken out.
    ``items`` is what a per-item operator counts (the operator finds it once, at its start).
    """

    __slots__ = ("activity", "blocked", "ended", "items", "started", "starved")

    def __init__(self) -> None:
        self.items = ItemCounters()
        self.activity = Activity.BUSY
        self.starved = 0.0  # seconds waiting for input
        self.blocked = 0.0  # seconds waiting for space downstream
        self.started: float | None = None  # perf_counter() when the thread began
        self.ended: float | None = None  # perf_counter() when it finished

    def busy(self, now: float) -> float:
        """Seconds alive and not waiting, as of ``now`` (a ``perf_counter()`` reading)."""
        if self.started is None:
            return 0.0
        alive = (self.ended if self.ended is not None else now) - self.started
        return max(0.0, alive - self.starved - self.blocked)
