"""A failure anywhere stops everything and reaches the caller as itself (README, "Errors")."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Iterable, Iterator

import pytest

from pipeline_executor import Pipeline

from .stages import Boom, Recorder, add_one, collect, endless, numbers, total

WAIT = 10.0


REPORT = "pipeline_executor: how each stage ended:"


def notes(exc: BaseException) -> list[str]:
    """The notes naming failures: all but the shutdown report, which must come last."""
    everything: list[str] = list(getattr(exc, "__notes__", []))
    assert everything[-1].startswith(REPORT)
    return everything[:-1]


def report(exc: BaseException) -> list[str]:
    """The shutdown report's lines, one per stage."""
    everything: list[str] = list(getattr(exc, "__notes__", []))
    return everything[-1].splitlines()[1:]


def raise_at(xs: Iterable[int], at: int) -> Iterator[int]:
    for x in xs:
        if x == at:
            raise Boom(f"item {x}")
        yield x


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("at", [0, 50, 99])
def test_a_stage_exception_reaches_the_caller_as_itself(threads: int, at: int) -> None:
    """The same type and message, with a note naming stage, position and thread."""
    pipeline = Pipeline.source(numbers, n=100).then(raise_at, threads=threads, at=at).sink(total)
    with pytest.raises(Boom) as info:
        pipeline.run()
    assert str(info.value) == f"item {at}"
    (note,) = notes(info.value)
    assert note.startswith("pipeline_executor: raised by stage 2 'raise_at' (then) in thread ")
    assert note.removeprefix(
        "pipeline_executor: raised by stage 2 'raise_at' (then) in thread "
    ) in {f"pipeline-raise_at-{i}" for i in range(threads)}


def test_the_exception_object_and_its_traceback_are_the_originals() -> None:
    """Not a copy: the object raised in the stage, with the stage's frame in its traceback."""
    raised: list[BaseException] = []

    def failing(xs: Iterable[int]) -> Iterator[int]:
        for _ in xs:
            error = Boom("original")
            raised.append(error)
            raise error
        yield 0

    with pytest.raises(Boom) as info:
        list(Pipeline.source(numbers, n=5).then(failing))
    assert info.value is raised[0]
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "failing" in frames


def test_a_source_failure_is_named() -> None:
    """The source's failure names stage 1."""

    def broken_source() -> Iterator[int]:
        yield 1
        raise Boom("source")

    with pytest.raises(Boom) as info:
        Pipeline.source(broken_source).then(add_one).sink(total).run()
    assert str(info.value) == "source"
    assert notes(info.value) == [
        "pipeline_executor: raised by stage 1 'broken_source' (source) in thread "
        "pipeline-broken_source-0"
    ]


@pytest.mark.parametrize("threads", [1, 2])
def test_a_sink_failure_is_named(threads: int) -> None:
    """A failing sink names its stage."""

    def bad_sink(xs: Iterable[int]) -> None:
        for x in xs:
            if x == 10:
                raise Boom("sink")

    with pytest.raises(Boom) as info:
        Pipeline.source(numbers, n=100).sink(bad_sink, threads=threads).run()
    assert str(info.value) == "sink"
    assert notes(info.value)[0].startswith(
        "pipeline_executor: raised by stage 2 'bad_sink' (sink) in thread pipeline-bad_sink-"
    )


def test_a_failure_while_iterating_is_raised_in_the_loop() -> None:
    """Iteration raises the stage's exception in the caller's loop."""
    got: list[int] = []

    def consume() -> None:
        for x in Pipeline.source(numbers, n=100).then(raise_at, at=5):
            got.append(x)  # noqa: PERF402 - the loop body is what is being tested

    with pytest.raises(Boom, match=r"^item 5"):
        consume()
    # Items already queued when the stage failed are dropped, not delivered.
    assert got == list(range(len(got)))
    assert len(got) <= 5


@pytest.mark.parametrize("threads", [1, 2])
def test_every_running_generator_is_closed_after_a_failure(threads: int) -> None:
    """Every started stage's finally runs, upstream and downstream of the failure."""
    recorder = Recorder()

    def source() -> Iterator[int]:
        recorder.start("source")
        try:
            yield from endless()
        finally:
            recorder.finish("source")

    def middle(xs: Iterable[int]) -> Iterator[int]:
        recorder.start("middle")
        try:
            yield from xs
        finally:
            recorder.finish("middle")

    def failing(xs: Iterable[int]) -> Iterator[int]:
        recorder.start("failing")
        try:
            yield from raise_at(xs, 500)
        finally:
            recorder.finish("failing")

    def sink(xs: Iterable[int]) -> int:
        recorder.start("sink")
        try:
            return sum(xs)
        finally:
            recorder.finish("sink")

    pipeline = (
        Pipeline.source(source)
        .then(middle, threads=threads)
        .then(failing, threads=threads)
        .then(middle, threads=threads)
        .sink(sink)
    )
    with pytest.raises(Boom):
        pipeline.run()
    assert "failing" in recorder.started
    assert sorted(recorder.finalized) == sorted(recorder.started)


def test_independent_failures_are_listed_in_the_first_ones_notes() -> None:
    """Two stages fail on their own: the first is raised, the other is in its notes."""
    both_failing = threading.Barrier(2)

    def fail_together(xs: Iterable[int], name: str) -> Iterator[int]:
        for _ in xs:
            both_failing.wait(WAIT)  # neither raises before both are about to
            raise Boom(name)
        yield 0

    pipeline = (
        Pipeline.source(numbers, n=10)
        .then(fail_together, threads=2, buffer=4, name="x")
        .sink(total)
    )
    with pytest.raises(Boom) as info:
        pipeline.run()
    first, second = notes(info.value)
    assert first.startswith("pipeline_executor: raised by stage 2 'fail_together' (then)")
    assert second.startswith("pipeline_executor: stage 2 'fail_together' (then) in thread ")
    assert second.endswith(" also failed: Boom: x")


def test_failures_caused_by_our_stop_are_not_reported() -> None:
    """A stage that raises while being cancelled does not bury the root cause."""

    def cleanup_fails(xs: Iterable[int]) -> Iterator[int]:
        try:
            yield from xs
        finally:
            raise RuntimeError("cleanup")

    pipeline = (
        Pipeline.source(endless)  # so cleanup_fails only ever ends by being cancelled
        .then(cleanup_fails)
        .then(raise_at, at=3)
        .sink(total)
    )
    with pytest.raises(Boom) as info:
        pipeline.run()
    assert len(notes(info.value)) == 1


def test_a_cleanup_failure_after_an_early_stop_is_reported() -> None:
    """No failure elsewhere: an error in a finally while stopping early is a real failure."""

    def cleanup_fails() -> Iterator[int]:
        try:
            yield from endless()
        finally:
            raise RuntimeError("cleanup")

    def first(xs: Iterable[int]) -> int:
        return next(iter(xs))

    with pytest.raises(RuntimeError) as info:
        Pipeline.source(cleanup_fails).sink(first).run()
    assert str(info.value) == "cleanup"
    assert "stage 1 'cleanup_fails' (source)" in notes(info.value)[0]


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("threads", [1, 2])
def test_base_exceptions_inside_a_stage_take_the_same_path(
    error: type[BaseException], threads: int
) -> None:
    """KeyboardInterrupt or SystemExit raised by a stage reach the caller, stage named."""

    def interrupting(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            if x == 20:
                raise error("inside")
            yield x

    with pytest.raises(error) as info:
        Pipeline.source(numbers, n=100).then(interrupting, threads=threads).sink(collect).run()
    assert "stage 2 'interrupting' (then)" in notes(info.value)[0]


def test_swallowing_exception_does_not_swallow_our_stop() -> None:
    """A stage's `except Exception` does not catch the cancellation: the run still ends."""

    def stubborn(xs: Iterable[int]) -> Iterator[int]:
        while True:
            try:
                yield next(iter(xs))
            except Exception:  # a careless stage
                continue

    with pytest.raises(Boom):
        Pipeline.source(endless).then(stubborn).then(raise_at, at=100).sink(total).run()


def test_an_exception_object_is_not_kept_after_it_was_raised() -> None:
    """The runner drops its reference to the failure once delivered."""
    import gc
    import weakref

    refs: list[weakref.ref[Boom]] = []

    def failing(xs: Iterable[int]) -> Iterator[int]:
        for _ in xs:
            error = Boom()
            refs.append(weakref.ref(error))
            raise error
        yield 0

    try:
        Pipeline.source(numbers, n=3).then(failing).sink(total).run()
    except Boom:
        pass
    gc.collect()
    assert refs
    assert refs[0]() is None


def test_every_failure_carries_a_report_of_how_each_stage_ended() -> None:
    """One line per stage: its state and its items in and out."""

    def failing(xs: Iterable[int]) -> Iterator[int]:
        for _ in xs:
            raise Boom("first")
        yield 0

    with pytest.raises(Boom) as info:
        Pipeline.source(numbers, buffer=1, n=3).then(failing, buffer=1).sink(total).run()
    # With buffer=1 the source cannot make item 1 before item 0 is done with: it was stopped.
    assert report(info.value) == [
        "  stage 1 'numbers' (source): cancelled, 1 out",
        "  stage 2 'failing' (then): failed, 1 in, 0 out",
        "  stage 3 'total' (sink): cancelled, 0 in",
    ]
