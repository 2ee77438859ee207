"""Ctrl-C in the caller, stuck stages, and the inactivity timeout (README, "Errors")."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterable, Iterator

import pytest

from pipeline_executor import InactivityError, Pipeline, PipelineError

from .stages import Boom, Recorder, endless, numbers, total

WAIT = 10.0


@pytest.fixture(autouse=True)
def ctrl_c_raises_keyboard_interrupt() -> Iterator[None]:
    """Python's own SIGINT handler, even where this run was started with SIGINT ignored
    (as a shell does for background jobs)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def interrupt_main_thread() -> None:
    """What Ctrl-C does: SIGINT, delivered to the main thread (where the caller waits)."""
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


def watched(recorder: Recorder, name: str, items: Iterable[int]) -> Iterator[int]:
    recorder.start(name)
    try:
        yield from items
    finally:
        recorder.finish(name)


@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_while_run_waits_stops_everything_and_is_reraised(threads: int) -> None:
    """KeyboardInterrupt while run() waits: every stage closed, threads joined, re-raised fast."""
    recorder = Recorder()
    sent = threading.Event()

    def source() -> Iterator[int]:
        yield from watched(recorder, "source", endless())

    def forever(xs: Iterable[int]) -> Iterator[int]:
        for x in watched(recorder, "forever", xs):
            if x == 100 and not sent.is_set():
                sent.set()
                interrupt_main_thread()
            yield x

    pipeline = Pipeline.source(source).then(forever, threads=threads).sink(total)
    with pytest.raises(KeyboardInterrupt) as info:
        pipeline.run()
    interrupted_at = time.monotonic()
    # Re-raised as it was, with only the shutdown report added.
    (report,) = getattr(info.value, "__notes__", [])
    assert report.startswith("pipeline_executor: how each stage ended:\n  stage 1 'source' (")
    assert sorted(recorder.finalized) == sorted(recorder.started)
    assert not [t for t in threading.enumerate() if t.name.startswith("pipeline-")]
    assert time.monotonic() - interrupted_at < 2.0


def test_ctrl_c_while_iterating_stops_everything() -> None:
    """KeyboardInterrupt while the caller waits for the next item stops the pipeline."""
    recorder = Recorder()
    block = threading.Event()

    def stalls(xs: Iterable[int]) -> Iterator[int]:
        for x in watched(recorder, "stalls", xs):
            if x == 5:
                interrupt_main_thread()
                block.wait(0.5)  # the caller is waiting for an item meanwhile
            yield x

    with pytest.raises(KeyboardInterrupt):
        for _ in Pipeline.source(endless).then(stalls):
            pass
    assert recorder.finalized == ["stalls"]


REPEATS = 50


def test_ctrl_c_while_the_caller_waits_is_clean_every_time() -> None:
    """Ctrl-C that lands while the caller waits inside the library, at any moment of that wait,
    is a plain KeyboardInterrupt with no internal context, and the pipeline stops and joins:
    the library never lets it be raised into the middle of its own lock waits (where CPython
    could leave a lock released: "release unlocked lock", then a hang). Repeated, as it races."""
    for _ in range(REPEATS):
        _interrupt_while_waiting()


def slow(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        time.sleep(0.01)  # sleep-ok: a slow stage, so that the caller waits for its items
        yield x


def _drain(items: Iterable[int]) -> None:
    for _ in items:
        pass


def _interrupt_while_waiting() -> None:
    started = threading.Event()

    def starts(xs: Iterable[int]) -> Iterator[int]:
        started.set()
        yield from xs

    def interrupter() -> None:
        assert started.wait(WAIT)
        interrupt_main_thread()

    helper = threading.Thread(target=interrupter)
    helper.start()
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            _drain(Pipeline.source(endless).then(starts).then(slow))
    finally:
        helper.join(WAIT)
    assert info.value.__context__ is None
    assert not [t for t in threading.enumerate() if t.name.startswith("pipeline-")]


def test_a_stuck_stage_does_not_block_the_caller_forever() -> None:
    """A stage stuck in a call we cannot interrupt is abandoned after the grace period."""
    release = threading.Event()
    stuck = threading.Event()

    def stuck_stage(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            stuck.set()
            release.wait()  # uninterruptible as far as the pipeline knows
            yield x

    def failing_source() -> Iterator[int]:
        yield 1
        assert stuck.wait(WAIT)
        raise Boom("source")

    pipeline = Pipeline.source(failing_source).then(stuck_stage).sink(total)
    try:
        with (
            pytest.warns(
                RuntimeWarning,
                match=r"stage 2 'stuck_stage' \(then\) in thread "
                r"pipeline-stuck_stage-0 did not stop within 1 s",
            ) as warned,
            pytest.raises(Boom, match=r"^source") as raised,
        ):
            pipeline.run()
    finally:
        release.set()  # let the abandoned thread finish; the fixture joins it
    # The warning says where the stuck stage is; the report says it was abandoned.
    (warning,) = warned
    stuck_line = str(warning.message).splitlines()[1]
    assert stuck_line.startswith(
        "  stage 2 'stuck_stage' (then), thread pipeline-stuck_stage-0: inside its own code at "
        f"{__file__}:"
    )
    assert " in stuck_stage (now at " in stuck_line
    report: list[str] = getattr(raised.value, "__notes__", [""])
    assert "  stage 2 'stuck_stage' (then): abandoned, 1 in, 0 out" in report[-1]


@pytest.mark.parametrize("threads", [1, 2])
def test_inactivity_timeout_stops_a_stalled_run(threads: int) -> None:
    """No item moves for the timeout: the pipeline stops with InactivityError."""
    release = threading.Event()
    recorder = Recorder()

    def stalls(xs: Iterable[int]) -> Iterator[int]:
        for x in watched(recorder, "stalls", xs):
            if x == 3:
                release.wait(WAIT)  # returns when the test releases it
            yield x

    pipeline = Pipeline.source(numbers, n=10).then(stalls, threads=threads).sink(total)
    started = time.monotonic()
    try:
        # The stalled stage is inside its own code, so it is also abandoned, and named.
        with (
            pytest.warns(RuntimeWarning, match=r"^pipeline_executor: stage 2 'stalls' \(then\)"),
            pytest.raises(InactivityError) as info,
        ):
            pipeline.run(inactivity_timeout=0.2)
    finally:
        release.set()
    assert time.monotonic() - started >= 0.2
    assert info.value.timeout == 0.2
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, PipelineError)
    message, *threads_doing = str(info.value).splitlines()
    assert message == (
        "no item moved between any two stages for 0.2 s (inactivity_timeout); "
        "the pipeline was stopped; its threads were:"
    )
    assert threads_doing[0] == "  stage 1 'numbers' (source), thread pipeline-numbers-0: finished"
    stalled = [line for line in threads_doing if "inside its own code at " in line]
    assert len(stalled) == 1
    assert stalled[0].startswith("  stage 2 'stalls' (then), thread pipeline-stalls-")
    assert f"{__file__}:" in stalled[0]
    assert " in stalls (now at " in stalled[0]  # the stage's line, and the wait inside it
    assert info.value.diagnosis == tuple(line[2:] for line in threads_doing)


def test_inactivity_timeout_while_iterating() -> None:
    """The caller waiting for an item that never comes gets InactivityError."""
    release = threading.Event()

    def stalls(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            if x == 3:
                release.wait(WAIT)
            yield x

    got: list[int] = []

    def consume() -> None:
        for x in Pipeline.source(numbers, n=10).then(stalls).iter(inactivity_timeout=0.2):
            got.append(x)  # noqa: PERF402 - the loop body is what is being tested

    try:
        with pytest.warns(RuntimeWarning, match="'stalls'"), pytest.raises(InactivityError):
            consume()
    finally:
        release.set()
    assert got == [0, 1, 2]


def test_inactivity_timeout_does_not_fire_while_items_move() -> None:
    """A slow but moving pipeline runs to the end."""
    ticks = threading.Semaphore(0)

    def paced(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            ticks.acquire(timeout=0.01)  # about 10 ms per item, never released: a pace
            yield x

    result = Pipeline.source(numbers, n=40).then(paced).sink(total).run(inactivity_timeout=0.2)
    assert result == sum(range(40))
