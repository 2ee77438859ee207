"""Immutable snapshots of what the runner counts while a pipeline runs."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BufferStatistics"]


@dataclass(frozen=True)
class BufferStatistics:
    """A snapshot of one stage's output buffer.

    Attributes:
        capacity: the stage's ``buffer``: at most this many items are alive at once.
        used: items alive now: being produced, waiting, or held by a consumer.
        queued: items waiting in the buffer for a consumer.
        peak_used: the highest ``used`` seen so far.
        items_in: items the stage has put into the buffer.
        items_out: items consumers have taken from it.
        producers: threads still producing into it.
        consumers: threads still consuming from it.
    """

    capacity: int
    used: int
    queued: int
    peak_used: int
    items_in: int
    items_out: int
    producers: int
    consumers: int
