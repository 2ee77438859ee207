"""Tricky timings, repeated so that a race shows up as a failure rather than a rare hang.

Each scenario runs PIPELINE_REPEAT times (500 by default, as in CI); the long local run is
``PIPELINE_REPEAT=20000 .venv/bin/python -m pytest tests/test_races.py --timeout=0
-o faulthandler_timeout=0`` (about 4 minutes).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator

import pytest

from pipeline_executor import Pipeline

from .stages import Boom, add_one, collect, endless, numbers, total

REPEAT = int(os.environ.get("PIPELINE_REPEAT", "500"))


def fail_on_last(xs: Iterable[int], last: int) -> Iterator[int]:
    for x in xs:
        if x == last:
            raise Boom("last")
        yield x


@pytest.mark.parametrize("threads", [1, 2])
def test_an_error_on_the_last_item_races_the_normal_end(threads: int) -> None:
    """The failure always wins over the end of the stream."""
    pipeline = (
        Pipeline.source(numbers, n=20)
        .then(add_one, threads=threads, buffer=threads)
        .then(fail_on_last, threads=threads, last=20)
        .sink(total)
    )
    for _ in range(REPEAT):
        with pytest.raises(Boom):
            pipeline.run()


def test_break_while_the_producer_waits_for_a_full_buffer() -> None:
    """With buffer=1 the source is blocked when the consumer leaves; it is woken and closed."""
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            yield from endless()
        finally:
            closed.set()

    pipeline = Pipeline.source(source, buffer=1).then(add_one, buffer=1)
    for _ in range(REPEAT):
        closed.clear()
        for x in pipeline:
            assert x == 1
            break
        assert closed.is_set()


def test_many_threads_on_the_smallest_buffer() -> None:
    """threads == buffer everywhere: nothing lost, nothing duplicated, no deadlock."""
    pipeline = (
        Pipeline.source(numbers, buffer=1, n=30)
        .then(add_one, threads=4, buffer=4)
        .then(add_one, threads=3, buffer=3)
        .sink(collect)
    )
    for _ in range(REPEAT):
        assert sorted(pipeline.run()) == list(range(2, 32))


def test_a_multithreaded_sink_failing_early() -> None:
    """One of several sink threads fails at once: raised, every thread joined."""

    def sink(xs: Iterable[int]) -> None:
        for x in xs:
            if x == 0:
                raise Boom("sink")

    pipeline = Pipeline.source(endless, buffer=2).sink(sink, threads=3)
    for _ in range(REPEAT):
        with pytest.raises(Boom):
            pipeline.run()
