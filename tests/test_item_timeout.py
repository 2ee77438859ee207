"""Per-item timeouts: a stuck call fails its item, its thread is abandoned and replaced."""

from __future__ import annotations

import re
import threading
import time

import pytest

from pipeline_executor import InactivityError, Monitor, Pipeline

from .stages import numbers

WAIT = 10.0


class Stuck:
    """A call that blocks on chosen items until the test releases it."""

    def __init__(self, *stuck: int) -> None:
        self.stuck = set(stuck)
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, x: int) -> int:
        if x in self.stuck:
            self.entered.set()
            self.release.wait(WAIT)
        return x


class StuckFilter(Stuck):
    """The same, as a predicate."""

    def __call__(self, x: int) -> bool:
        return super().__call__(x) >= 0


class Slow(Stuck):
    """A call that takes 0.6 s on chosen items: longer than the inactivity timeout of the
    diagnosis tests, shorter than the grace period a stopped pipeline gives its threads."""

    def __call__(self, x: int) -> int:
        if x in self.stuck:
            time.sleep(0.6)  # sleep-ok: the slow call is the workload being diagnosed
        return x


def helper_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if "-call-" in t.name]


def test_a_stuck_call_fails_its_item_with_a_timeout_error_through_on_error() -> None:
    """The item goes to on_error as TimeoutError naming the stage and position; others pass."""
    stuck = Stuck(2)
    errors: list[tuple[int, str]] = []
    monitor = Monitor()
    try:
        with pytest.warns(RuntimeWarning, match=r"pipeline-Stuck-0-call-0 is abandoned"):
            got = list(
                Pipeline.source(numbers, n=5)
                .map(stuck, timeout=0.5, on_error=lambda x, e: errors.append((x, str(e))))
                .iter(monitor=monitor)
            )
    finally:
        stuck.release.set()
    assert got == [0, 1, 3, 4]
    assert errors == [(2, "stage 2 'Stuck' (map): the call on item 2 did not return within 0.5 s")]
    stage = monitor.stats().stages[1]
    assert (stage.failed, stage.timed_out, stage.abandoned) == (
        1,
        1,
        ("pipeline-Stuck-0-call-0",),
    )


def test_the_abandoned_thread_is_named_in_the_warning() -> None:
    """The warning says which stage, which item, which thread, and that it is replaced."""
    stuck = Stuck(0)
    try:
        with pytest.warns(RuntimeWarning) as record:
            list(Pipeline.source(numbers, n=2).map(stuck, timeout=0.5, on_error=print))
    finally:
        stuck.release.set()
    assert [str(w.message) for w in record] == [
        "pipeline_executor: stage 2 'Stuck' (map): the call on item 0 did not return within "
        "0.5 s; its thread pipeline-Stuck-0-call-0 is abandoned (it ends when the call "
        "returns) and a new thread takes the next items"
    ]


def test_without_on_error_a_timeout_stops_the_pipeline() -> None:
    """The default policy applies to timeouts too: TimeoutError reaches the caller."""
    stuck = StuckFilter(1)
    message = "stage 2 'StuckFilter' (filter): the call on item 1 did not return within 0.5 s"
    try:
        with (
            pytest.warns(RuntimeWarning),
            pytest.raises(TimeoutError, match=f"^{re.escape(message)}\n"),
        ):
            list(Pipeline.source(numbers, n=3).filter(stuck, timeout=0.5))
    finally:
        stuck.release.set()


def test_a_second_timeout_while_the_first_call_is_still_stuck_fails_the_stage() -> None:
    """One thread may leave one call abandoned; the next timeout meanwhile stops the stage."""
    stuck = Stuck(1, 3)
    message = (
        "stage 2 'Stuck' (map): the call on item 3 did not return within 0.5 s, while this "
        "thread's previous timed-out call (thread pipeline-Stuck-0-call-0) still runs: at "
        "most one abandoned call per thread (1 per stage), so the stage stops"
    )
    try:
        with (
            pytest.warns(RuntimeWarning),
            pytest.raises(TimeoutError, match=f"^{re.escape(message)}\n"),
        ):
            list(Pipeline.source(numbers, n=5).map(stuck, timeout=0.5, on_error=print))
    finally:
        stuck.release.set()


def test_helper_threads_are_joined_when_the_stage_ends_normally() -> None:
    """No call thread is left once a run without timeouts has returned."""
    got = list(Pipeline.source(numbers, n=20).map(str, threads=3, timeout=5.0))
    assert got == [str(i) for i in range(20)]
    assert helper_threads() == []


def test_a_stall_diagnosis_names_the_operator_s_function_not_the_wrapper() -> None:
    """With a timeout the call runs on a helper thread; the diagnosis still shows its line."""
    with pytest.raises(InactivityError) as caught:
        list(Pipeline.source(numbers, n=1).map(Slow(0), timeout=30.0).iter(inactivity_timeout=0.2))
    line = next(d for d in caught.value.diagnosis if "(map)" in d)
    assert re.search(r"inside its own code at .*test_item_timeout\.py:\d+ in __call__", line)


def test_a_stall_diagnosis_of_a_map_without_timeout_names_the_function() -> None:
    """Without a timeout the call runs in the stage's thread, under the library's wrapper."""
    with pytest.raises(InactivityError) as caught:
        list(Pipeline.source(numbers, n=1).map(Slow(0)).iter(inactivity_timeout=0.2))
    line = next(d for d in caught.value.diagnosis if "(map)" in d)
    assert re.search(r"inside its own code at .*test_item_timeout\.py:\d+ in __call__", line)
