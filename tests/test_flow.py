"""Items flow: threads share one input, outputs merge, streams end, early stops do not hang."""

from __future__ import annotations

import contextlib
import gc
import threading
import weakref
from collections.abc import Iterable, Iterator

import pytest

from pipeline_executor import Pipeline

from .stages import Recorder, add_one, collect, double, endless, numbers, take, total

WAIT = 10.0


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_every_item_reaches_the_end_exactly_once(threads: int) -> None:
    """threads=n: each item goes to exactly one instance; outputs merge (README, "Threads")."""
    result = (
        Pipeline.source(numbers, n=1000)
        .then(add_one, threads=threads)
        .then(double, threads=threads, buffer=max(threads, 3))
        .sink(collect)
        .run()
    )
    assert sorted(result) == [2 * (x + 1) for x in range(1000)]


def test_one_thread_per_stage_keeps_the_order() -> None:
    """With one thread everywhere, items keep their order."""
    result = Pipeline.source(numbers, n=500).then(add_one).then(double).sink(collect).run()
    assert result == [2 * (x + 1) for x in range(500)]


@pytest.mark.parametrize("threads", [1, 3])
def test_each_thread_runs_its_own_instance_named_after_the_stage(threads: int) -> None:
    """threads=n calls the function n times, each in a thread named pipeline-<stage>-<i>."""
    names: set[str] = set()
    lock = threading.Lock()

    def tag(xs: Iterable[int]) -> Iterator[str]:
        with lock:
            names.add(threading.current_thread().name)
        for _ in xs:
            yield threading.current_thread().name

    seen = set(Pipeline.source(numbers, n=100).then(tag, threads=threads))
    expected = {f"pipeline-tag-{i}" for i in range(threads)}
    assert names == expected
    assert seen <= expected


def test_the_source_runs_in_its_own_thread_and_items_arrive_in_the_callers() -> None:
    """Iteration yields in the caller's thread; the source runs elsewhere."""
    where: list[str] = []

    def source() -> Iterator[int]:
        where.append(threading.current_thread().name)
        yield 1

    for _ in Pipeline.source(source):
        where.append(threading.current_thread().name)  # noqa: PERF401 - in the loop on purpose
    assert where == ["pipeline-source-0", threading.current_thread().name]


@pytest.mark.parametrize("threads", [1, 2])
def test_a_finished_source_lets_the_rest_drain(threads: int) -> None:
    """When the source ends, downstream stages finish their buffered work."""
    result = Pipeline.source(numbers, n=300).then(add_one, threads=threads).sink(total).run()
    assert result == sum(range(1, 301))


@pytest.mark.parametrize("threads", [1, 2])
def test_a_stage_ending_after_its_input_lets_the_rest_drain(threads: int) -> None:
    """A stage that yields more after its input ended is drained downstream."""

    def then_three_more(xs: Iterable[int]) -> Iterator[int]:
        yield from xs
        yield from (-1, -2, -3)

    result = Pipeline.source(numbers, n=10).then(then_three_more, threads=threads).sink(collect)
    items = result.run()
    assert sorted(items) == sorted([*range(10), *[-1, -2, -3] * threads])


@pytest.mark.parametrize("threads", [1, 2])
def test_a_stage_stopping_early_stops_its_upstream_and_closes_it(threads: int) -> None:
    """Take-first-n on an endless source ends; the source is closed (README, "Ending early")."""
    recorder = Recorder()

    def watched_endless() -> Iterator[int]:
        try:
            yield from endless()
        finally:
            recorder.finish("source")

    def take_per_thread(xs: Iterable[int], n: int) -> Iterator[int]:
        yield from take(xs, n)

    result = (
        Pipeline.source(watched_endless, buffer=4)
        .then(take_per_thread, threads=threads, buffer=max(threads, 2), n=5)
        .sink(collect)
        .run()
    )
    assert len(result) == 5 * threads
    assert recorder.finalized == ["source"]


def test_a_sink_that_returns_early_stops_everything_upstream() -> None:
    """A sink that reads a few items and returns ends the run with its value."""

    def first_three(xs: Iterable[int]) -> list[int]:
        return list(take(xs, 3))

    assert Pipeline.source(endless).then(add_one, threads=2).sink(first_three).run() == [1, 2, 3]


@pytest.mark.parametrize("threads", [1, 2])
def test_an_early_stop_closes_every_upstream_stage(threads: int) -> None:
    """Ending early through a middle stage: both the source and the middle stage are closed."""
    recorder = Recorder()

    def source() -> Iterator[int]:
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

    got = list(Pipeline.source(source, buffer=2).then(middle, threads=threads).then(take, n=7))
    assert len(got) == 7
    if threads == 1:
        assert got == list(range(7))
    assert 1 <= len(recorder.started) <= threads
    assert sorted(recorder.finalized) == [*recorder.started, "source"]


def test_iterating_twice_runs_twice() -> None:
    """Each iteration is a new run (README, "Stages")."""
    calls: list[int] = []

    def counted(n: int) -> Iterator[int]:
        calls.append(n)
        yield from range(n)

    pipeline = Pipeline.source(counted, n=3).then(add_one)
    assert list(pipeline) == [1, 2, 3]
    assert list(pipeline) == [1, 2, 3]
    assert calls == [3, 3]


def test_from_iterable_feeds_the_items() -> None:
    """from_iterable turns a collection into a source, rerunnable."""
    pipeline = Pipeline.from_iterable([3, 1, 2]).then(double)
    assert list(pipeline) == [6, 2, 4]
    assert list(pipeline) == [6, 2, 4]


def test_none_items_pass_through() -> None:
    """None is an item like any other."""
    assert list(Pipeline.from_iterable([None, None])) == [None, None]


def test_a_stage_may_return_any_iterable() -> None:
    """A stage need not be a generator: a list is fine."""

    def listed(xs: Iterable[int]) -> list[int]:
        return [x * 10 for x in xs]

    assert list(Pipeline.source(numbers, n=3).then(listed)) == [0, 10, 20]


def test_an_empty_source_ends_every_stage() -> None:
    """Zero items: every stage sees the end, the sink still returns."""
    assert Pipeline.source(numbers, n=0).then(add_one, threads=3).sink(collect).run() == []


@pytest.mark.parametrize("how", ["break", "close", "with", "closing", "gc", "raise"])
@pytest.mark.parametrize("threads", [1, 2])
def test_leaving_the_loop_early_stops_the_pipeline(how: str, threads: int) -> None:
    """Break, close(), a with block, dropping the iterator or raising closes every generator."""
    recorder = Recorder()

    def source() -> Iterator[int]:
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

    pipeline = Pipeline.source(source).then(middle, threads=threads)
    if how == "break":
        for x in pipeline:
            if x == 10:
                break
    elif how == "close":
        iterator = pipeline.iter()
        assert isinstance(next(iterator), int)
        iterator.close()
    elif how == "with":
        with pipeline.iter() as items:
            assert isinstance(next(items), int)
    elif how == "closing":
        with contextlib.closing(iter(pipeline)) as items:
            for x in items:
                if x == 10:
                    break
    elif how == "gc":
        iterator = iter(pipeline)
        assert isinstance(next(iterator), int)
        del iterator
        gc.collect()
    else:

        def loop_raises() -> None:
            for x in pipeline:
                if x == 10:
                    raise KeyError(x)

        with pytest.raises(KeyError):
            loop_raises()
    # The stop joined every thread before returning: the records are complete now. An
    # instance the stop reached before it started has no finally to run.
    assert 1 <= len(recorder.started) <= threads
    assert sorted(recorder.finalized) == [*recorder.started, "source"]


def test_the_memory_bound_is_exact_with_an_endless_source_and_a_slow_consumer() -> None:
    """At most `buffer` items of a stage live: being made, waiting, or held (README, "Buffers")."""
    made = [0]
    done = [0]
    peak = [0]

    def source() -> Iterator[int]:
        while True:
            made[0] += 1  # this item now exists (it is being produced)
            yield made[0]

    def slow_sink(xs: Iterable[int]) -> int:
        for _ in xs:
            peak[0] = max(peak[0], made[0] - done[0])
            # Each item is held while the sink waits for the source to fill the buffer.
            done[0] += 1
            if done[0] == 2000:
                break
        return done[0]

    for buffer in (1, 3, 17):
        made[0] = done[0] = peak[0] = 0
        assert Pipeline.source(source, buffer=buffer).sink(slow_sink).run() == 2000
        assert 1 <= peak[0] <= buffer


def test_items_held_by_a_middle_stage_count_against_the_bound() -> None:
    """Two stages of buffer 2 and 3: no more than 2 + 3 items alive between source and sink."""
    made = [0]
    done = [0]
    peak = [0]

    def source() -> Iterator[int]:
        while True:
            made[0] += 1
            yield made[0]

    def sink(xs: Iterable[int]) -> None:
        for _ in xs:
            peak[0] = max(peak[0], made[0] - done[0])
            done[0] += 1
            if done[0] == 3000:
                return

    Pipeline.source(source, buffer=2).then(add_one, threads=2, buffer=3).sink(sink).run()
    assert 1 <= peak[0] <= 5


class Item:
    """An item that can be weakly referenced."""


def test_no_reference_to_items_survives_a_run() -> None:
    """Items are dropped once delivered: weak references die with the run."""
    refs: list[weakref.ref[Item]] = []

    def source() -> Iterator[Item]:
        for _ in range(50):
            item = Item()
            refs.append(weakref.ref(item))
            yield item

    def first(xs: Iterable[Item]) -> int:
        for n, _ in enumerate(xs, start=1):
            if n == 5:
                return n
        return 0

    assert Pipeline.source(source, buffer=8).sink(first).run() == 5
    gc.collect()
    assert [r for r in refs if r() is not None] == []


def test_a_source_is_held_back_only_by_items_alive() -> None:
    """The caller took 3 items and holds the third: a buffer=16 source starts its 18th item."""
    started = 0
    eighteen = threading.Event()

    def counting() -> Iterator[int]:
        nonlocal started
        for i in range(1000):
            started += 1
            if started == 18:
                eighteen.set()
            yield i

    for i, x in enumerate(Pipeline.source(counting, buffer=16)):
        assert x == i
        if i == 2:
            assert eighteen.wait(WAIT)  # items 0 and 1 are done with: their slots are free
            break
