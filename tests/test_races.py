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


BIG = bytes(8 << 20)  # one object: the estimate counts 8 MiB per item, nothing is copied


def alternating(n: int, every: int) -> Iterator[bytes]:
    """1 B and 8 MiB items in turns of ``every``: each turn resizes the auto buffers."""
    for i in range(n):
        yield BIG if (i // every) % 2 else b"x"


def passthrough(xs: Iterable[bytes]) -> Iterator[bytes]:
    yield from xs


def fail_at(xs: Iterable[bytes], at: int) -> Iterator[bytes]:
    for i, x in enumerate(xs):
        if i == at:
            raise Boom("while resizing")
        yield x


def resizing(every: int) -> Pipeline[bytes]:
    return (
        Pipeline.source(alternating, n=20 * every, every=every)
        .then(passthrough, threads=2)
        .then(passthrough, threads=2)
    )


def test_auto_buffers_resizing_all_the_time_lose_nothing() -> None:
    """Sizes alternate 1 B / 8 MiB on 2 x 2 threads: every item arrives once."""
    pipeline = resizing(every=7)
    for _ in range(REPEAT // 5):
        got = list(pipeline.iter(memory_budget="48MiB"))
        assert sorted(map(len, got)) == [1] * 70 + [8 << 20] * 70


def test_leaving_early_while_auto_buffers_shrink() -> None:
    """The caller stops right at a switch to large items: everything stops and is joined."""
    pipeline = resizing(every=5)
    for n in range(REPEAT):
        for i, _ in enumerate(pipeline.iter(memory_budget="48MiB")):
            if i == 5 + n % 3:
                break


def test_a_failure_while_auto_buffers_shrink() -> None:
    """A stage fails at a switch to large items: the failure is raised, nothing hangs."""
    for n in range(REPEAT):
        pipeline = resizing(every=5).then(fail_at, at=5 + n % 3).sink(collect_all)
        with pytest.raises(Boom, match=r"^while resizing"):
            pipeline.run(memory_budget="48MiB")


def collect_all(xs: Iterable[bytes]) -> int:
    return sum(1 for _ in xs)
