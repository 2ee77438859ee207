"""Ordered output on several threads: input order, within the buffer bound, without hangs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator

import pytest

from pipeline_executor import Monitor, Pipeline

from .stages import Boom, numbers

WAIT = 10.0
REPEAT = 20


class Alive:
    """Counts the items a stage has produced and the caller has not yet moved past."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.produced = 0
        self.done = 0  # items the caller is done with (it is about to ask for the next)
        self.peak = 0

    def made(self) -> None:
        with self._lock:
            self.produced += 1
            self.peak = max(self.peak, self.produced - self.done)

    def moving_on(self) -> None:
        with self._lock:
            self.done += 1


def test_a_slow_item_holds_back_at_most_buffer_others() -> None:
    """One item 100x slower: the rest wait for it within the buffer, and come out in order."""
    alive = Alive()

    def work(x: int) -> int:
        time.sleep(0.1 if x == 0 else 0.001)  # sleep-ok: the slow item is the workload
        alive.made()
        return x

    monitor = Monitor()
    got: list[int] = []
    for x in Pipeline.source(numbers, n=200).map(work, threads=4, buffer=8).iter(monitor=monitor):
        got.append(x)
        alive.moving_on()  # the last thing before the loop asks for the next item
    assert got == list(range(200))
    stage = monitor.stats().stages[1]
    assert stage.buffer is not None
    assert stage.buffer.peak_used <= 8
    assert alive.peak <= 8
    assert 0 < stage.reorder_peak <= 8


def test_ordered_then_places_outputs_after_their_instance_s_last_input() -> None:
    """then(ordered=True) with a 1:1 generator on 3 threads gives input order."""
    second_done = threading.Event()

    def late_first(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            if x == 0:
                assert second_done.wait(WAIT)
            elif x == 1:
                second_done.set()
            yield x

    got = list(Pipeline.source(numbers, n=50).then(late_first, threads=3, ordered=True))
    assert got == list(range(50))


@pytest.mark.parametrize("buffer", [3, 4, 7])
def test_ordered_flat_map_with_a_tiny_buffer_never_hangs(buffer: int) -> None:
    """Expanding items on 3 threads into a buffer barely larger than that finishes, in order."""
    want = [y for x in range(300) for y in [x] * (x % 4)]
    for _ in range(REPEAT):
        got = list(
            Pipeline.source(numbers, n=300).flat_map(
                lambda x: [x] * (x % 4), threads=3, buffer=buffer
            )
        )
        assert got == want


def test_a_failure_while_items_are_parked_is_raised_and_every_thread_joined() -> None:
    """A later item fails while earlier ones wait: the caller gets the failure itself."""
    failed = threading.Event()

    def fail_at_five(x: int) -> int:
        if x == 0:
            assert failed.wait(WAIT)  # item 0 is the head: the others park meanwhile
        if x == 5:
            failed.set()
            raise Boom("five")
        return x

    with pytest.raises(Boom, match=r"^five\n"):
        list(Pipeline.source(numbers, n=50).map(fail_at_five, threads=4, buffer=16))


def test_take_after_an_ordered_map_stops_it_with_items_parked() -> None:
    """An early stop downstream of parked items ends cleanly with the first items."""
    assert list(Pipeline.source(numbers, n=10_000).map(str, threads=4, buffer=64).take(5)) == [
        "0",
        "1",
        "2",
        "3",
        "4",
    ]


def test_an_ordered_stage_counts_its_items_in_and_out() -> None:
    """The statistics of an ordered stage count through its ordered ends."""
    monitor = Monitor()
    list(Pipeline.source(numbers, n=100).map(str, threads=3).iter(monitor=monitor))
    stage = monitor.stats().stages[1]
    assert (stage.items_in, stage.items_out) == (100, 100)


def test_an_ordered_stage_with_more_threads_than_its_input_buffer_never_hangs() -> None:
    """Instances waiting their turn to take hand back the slot of the item they are done with."""
    want = [x for x in range(500) if x % 3]
    for _ in range(REPEAT):
        got = list(
            Pipeline.source(numbers, n=500, buffer=2)
            .then(drop_every_third, threads=4, buffer=4, ordered=True)
            .filter(bool, threads=2, buffer=2)
        )
        assert got == want


def drop_every_third(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        if x % 3:
            yield x
