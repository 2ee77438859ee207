"""After the stop, a stage's input ends and its output is dropped, so even a stage that
swallows the stop finishes; nothing of ours shows up as an exception's context."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import pytest

from pipeline_executor import Monitor, Pipeline, StageState

from .stages import Boom, endless, total

WAIT = 10.0


def swallows_around_next(xs: Iterable[int]) -> Iterator[int]:
    """Catches everything around next(), as a careless retry loop does."""
    it = iter(xs)
    while True:
        try:
            x = next(it)
        except StopIteration:
            return
        except BaseException:  # the careless stage under test
            continue
        yield x


def swallows_around_yield(xs: Iterable[int]) -> Iterator[int]:
    """Catches everything around its yield, then keeps pulling without yielding."""
    stopped = False
    for x in xs:
        if stopped:
            continue
        try:
            yield x
        except BaseException:  # the careless stage under test
            stopped = True


def test_a_stage_that_swallows_the_abort_around_next_still_finishes() -> None:
    """A failure elsewhere: the careless stage's next() raises once, then its input ends."""
    reached = threading.Event()

    def failing_source() -> Iterator[int]:
        yield from range(10)
        assert reached.wait(WAIT)
        raise Boom("source")

    def sink(xs: Iterable[int]) -> int:
        done = 0
        for _ in xs:
            done += 1
            if done == 10:
                reached.set()
        return done

    monitor = Monitor()
    pipeline = Pipeline.source(failing_source).then(swallows_around_next).sink(sink)
    with pytest.raises(Boom, match=r"^source\n"):
        pipeline.run(monitor=monitor)
    assert monitor.stats().stages[1].state is StageState.CANCELLED


def test_a_stage_that_swallows_the_stop_around_its_yield_still_finishes() -> None:
    """The sink returns early: the careless stage's input ends when it pulls again."""

    def first_three(xs: Iterable[int]) -> int:
        done = 0
        for _ in xs:
            done += 1
            if done == 3:
                return done
        return done

    monitor = Monitor()
    pipeline = (
        Pipeline.source(endless, buffer=2).then(swallows_around_yield, buffer=2).sink(first_three)
    )
    assert pipeline.run(monitor=monitor) == 3
    assert [s.state for s in monitor.stats().stages] == [
        StageState.CANCELLED,
        StageState.CANCELLED,
        StageState.FINISHED,
    ]


def test_the_cancellation_a_stage_catches_chains_to_nothing_of_ours() -> None:
    """What a stage's next() raises on a stop has no internal exception as its context."""
    caught: list[BaseException] = []
    waiting = threading.Event()

    def catches(xs: Iterable[int]) -> Iterator[int]:
        it = iter(xs)
        while True:
            waiting.set()
            try:
                x = next(it)  # waits here, on an empty buffer, when the source fails
            except StopIteration:
                return
            except BaseException as exc:  # records what it sees
                caught.append(exc)
                raise
            yield x

    def failing_source() -> Iterator[int]:
        yield from ()
        assert waiting.wait(WAIT)
        raise Boom("source")

    with pytest.raises(Boom):
        Pipeline.source(failing_source).then(catches).sink(total).run()
    (exc,) = caught
    assert exc.__context__ is None
