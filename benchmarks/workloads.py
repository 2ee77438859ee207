"""The stage functions the benchmarks share: plain generators, at module level so that they
pickle under every start method, and free of any pipeline library, so that a peer's
benchmark (``peer_pipeline_lib.py``) runs the very same work; and how both time it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def spin(x: int) -> int:
    """About 0.5 ms of pure Python."""
    total = 0
    for i in range(6000):
        total += (i * x) % 7
    return total


def spin_stage(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        yield spin(x)


def add_one(x: int) -> int:
    return x + 1


def add_one_stage(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        yield x + 1


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


def arrays(n: int, size: int) -> Iterator[Any]:
    """``n`` fresh numpy arrays of ``size`` bytes."""
    import numpy as np

    for _ in range(n):
        yield np.ones(size, dtype=np.uint8)


def listed(items: list[Any]) -> Iterator[Any]:
    yield from items


def touch(xs: Iterable[Any]) -> Iterator[Any]:
    yield from xs


def consume(xs: Iterable[Any]) -> int:
    count = 0
    for _ in xs:
        count += 1
    return count


def die_at(xs: Iterable[int], at: int, when: Any) -> Iterator[int]:
    """Passes items on; on item ``at`` writes the time into ``when`` (a shared
    ``multiprocessing.Value``) and SIGKILLs its own process."""
    for x in xs:
        if x == at:
            when.value = time.monotonic()
            os.kill(os.getpid(), signal.SIGKILL)
        yield x


def timings(repeats: int, *contenders: Callable[[], object]) -> list[list[float]]:
    """Each contender's times (seconds) over ``repeats`` rounds, one run of each per round, so
    that a drift of the machine's speed reaches every contender alike."""
    times: list[list[float]] = [[] for _ in contenders]
    for _ in range(repeats):
        for fn, runs in zip(contenders, times, strict=True):
            started = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - started)
    return times


def rounds(repeats: int, *contenders: Callable[[], object]) -> list[float]:
    """Each contender's best time (seconds) over ``repeats`` rounds (see :func:`timings`)."""
    return [min(runs) for runs in timings(repeats, *contenders)]
