"""The count bound of an auto buffer: its bytes budget over the estimated item size, clamped.

``capacity = clamp(budget // item_bytes, floor, cap)`` where ``floor`` is one item per thread of
the two stages the buffer joins (so every thread can hold an item, whatever its size) and
``cap`` is ``max(8192, threads)`` (what small items need to flow fast). ``item_bytes`` is the
largest recent sample: it rises at the first larger sample, and the count shrinks at once; it
falls only after :data:`REGROW_AFTER` samples in a row at most half of it, to the largest of
those, and the count then grows only by a step of at least :data:`GROW_STEP` (or to the cap).

Sampling (by the producers, on the slow path they take anyway when their run of reserved
slots ends): every item while the buffer is young (:data:`WARMUP` samples) or while items
are large (:data:`LARGE`); otherwise every :data:`EVERY` th item. (Sampling every item of
16 KiB cost 1.5x on the benchmark; an item of 64 KiB costs far more to make than a sample.)

What that promises. Exactly: the count bound in force is never exceeded, nor ever outside
``[floor, cap]``. By estimate: in steady state a buffer's estimated bytes stay within its
budget, plus one item per thread when a single item is larger than ``budget / floor``. After
a jump in item size, each producer thread can add at most :data:`EVERY` items of the new size
before its next sample sees one (none once items are large: they are all sampled).

This object holds the state only; its channel changes it under its lock, except the counters
of the lock-free sample (``samples``, ``small_run``, ``small_max``), whose races among sibling
producers only shift when the count grows back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["EVERY", "GROW_STEP", "LARGE", "REGROW_AFTER", "WARMUP", "AutoBound"]

WARMUP = 16
"""The first samples of a buffer: every item is sampled until then."""

EVERY = 64
"""The sampling interval for small items: a sample costs about 0.4 us, so 6 ns per item
(2% of a hop between threads; 32 measured 4-5% on the 3-hop benchmark)."""

LARGE = 64 << 10
"""Items at least this large are all sampled (their own cost dwarfs the sample's)."""

REGROW_AFTER = 16
"""Samples in a row at most half the estimate before the estimate falls."""

GROW_STEP = 1.25
"""The count grows back only by this factor at least (or to the cap): no resize per sample."""


class AutoBound:
    """The sizing state of one auto buffer (see the module notes)."""

    __slots__ = (
        "budget",
        "cap",
        "capacity",
        "floor",
        "interval",
        "item_bytes",
        "min_capacity",
        "resizes",
        "samples",
        "sizer",
        "small_max",
        "small_run",
    )

    def __init__(self, budget: int, floor: int, cap: int, sizer: Callable[[Any], int]) -> None:
        self.budget = max(1, budget)
        self.cap = cap
        self.floor = min(floor, cap)
        self.sizer = sizer
        self.capacity = cap  # nothing is known of the items yet
        self.min_capacity = cap
        self.item_bytes = 0  # the estimate in force; 0 before the first sample
        self.samples = 0
        self.small_run = 0
        self.small_max = 0
        self.resizes = 0
        self.interval = 1

    def __repr__(self) -> str:
        return (
            f"<AutoBound {self.capacity} in [{self.floor}, {self.cap}] "
            f"item_bytes={self.item_bytes} budget={self.budget}>"
        )

    def estimate(self, item_bytes: int) -> int:
        """Put ``item_bytes`` in force; return the count bound it calls for (the channel
        decides whether to apply a growth)."""
        self.item_bytes = item_bytes
        self.small_run = 0
        self.small_max = 0
        self.interval = self._interval()
        return self.target()

    def target(self) -> int:
        """The count bound the estimate calls for."""
        return max(self.floor, min(self.cap, self.budget // max(1, self.item_bytes)))

    def grows_to(self, target: int) -> bool:
        """Whether a growth from the count in force to ``target`` is worth a resize."""
        return target >= self.capacity * GROW_STEP or (target == self.cap > self.capacity)

    def limited_by(self) -> str:
        """Which limit sets the count now: ``"bytes"``, ``"items"`` (the cap) or ``"threads"``
        (the floor: items so large that one per thread already exceeds the budget)."""
        if not self.item_bytes:
            return "items"
        wanted = self.budget // self.item_bytes
        if wanted >= self.cap:
            return "items"
        return "threads" if wanted < self.floor else "bytes"

    def _interval(self) -> int:
        if self.samples < WARMUP or self.item_bytes >= LARGE:
            return 1
        return EVERY
