"""The failure matrix: every way a stage can end, at every position, run every way.

{source, middle, last} x {raises on its first item, in the middle, after its last item;
returns early; raises KeyboardInterrupt; raises SystemExit} x threads {1, 2, 4} x buffer
{threads, default, large} x consumption {run(), a for loop to the end, break after a few
items, an exception in the loop body}. Each case checks the outcome (the exact exception
object with the right stage noted, or the exact result), that every started stage's
``finally`` ran, that it finished in bounded time, and (the autouse fixture) that no thread
survived.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import pytest

from pipeline_executor import Pipeline

N = 50  # items from the source
MIDDLE = 25  # the item value the "middle" behaviours act on
EARLY = 5  # how many items an early-returning stage takes (per thread)
BOUND = 10.0  # seconds: any case slower than this counts as a hang


class StageError(Exception):
    """What a failing stage raises."""


class LoopError(Exception):
    """What the caller's loop body raises."""


BEHAVIOURS = ["raise_first", "raise_middle", "raise_after_last", "return_early", "ki", "exit"]
RAISES: dict[str, type[BaseException]] = {
    "raise_first": StageError,
    "raise_middle": StageError,
    "raise_after_last": StageError,
    "ki": KeyboardInterrupt,
    "exit": SystemExit,
}


@dataclass
class Record:
    """What the stages did, recorded from their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    started: list[str] = field(default_factory=list)
    finalized: list[str] = field(default_factory=list)
    raised: list[BaseException] = field(default_factory=list)
    sunk: list[int] = field(default_factory=list)

    def add(self, where: list[object], what: object) -> None:
        with self.lock:
            where.append(what)


def behave(record: Record, name: str, behaviour: str | None, items: Iterable[int]) -> Iterator[int]:
    """Pass items through, misbehaving as told; records its start, finally, and raise."""
    record.add(record.started, name)  # type: ignore[arg-type]
    try:
        for taken, x in enumerate(items):
            trigger = (behaviour == "raise_first" and taken == 0) or (
                behaviour in ("raise_middle", "ki", "exit") and x == MIDDLE
            )
            if trigger:
                error = RAISES[behaviour or ""](f"{name} {behaviour}")
                record.add(record.raised, error)  # type: ignore[arg-type]
                raise error
            if behaviour == "return_early" and taken == EARLY:
                return
            yield x
        if behaviour == "raise_after_last":
            error = StageError(f"{name} {behaviour}")
            record.add(record.raised, error)  # type: ignore[arg-type]
            raise error
    finally:
        record.add(record.finalized, name)  # type: ignore[arg-type]


def build(
    record: Record, position: str, behaviour: str, threads: int, buffer: int | None, sink: bool
) -> tuple[Pipeline[int], Callable[..., object] | None]:
    def of(where: str) -> str | None:
        return behaviour if where == position else None

    def source() -> Iterator[int]:
        yield from behave(record, "source", of("source"), range(N))

    def middle(xs: Iterable[int]) -> Iterator[int]:
        yield from behave(record, "middle", of("middle"), xs)

    pipeline = Pipeline.source(source, buffer=buffer).then(middle, threads=threads, buffer=buffer)
    if sink:

        def last(xs: Iterable[int]) -> None:
            for x in behave(record, "last", of("last"), xs):
                record.add(record.sunk, x)  # type: ignore[arg-type]

        return pipeline, last

    def last_stage(xs: Iterable[int]) -> Iterator[int]:
        yield from behave(record, "last", of("last"), xs)

    last_stage.__name__ = "last"  # the stage is named like the sink it stands for
    return pipeline.then(last_stage, threads=threads, buffer=buffer), None


def expected_count(position: str, behaviour: str, threads: int) -> int | None:
    """How many items reach the end when nothing raises; None when it depends on timing."""
    if behaviour != "return_early":
        return N
    if position == "source":
        return EARLY
    return EARLY * threads  # each instance takes EARLY items, and there are plenty


STAGE_LABELS = {
    "source": "stage 1 'source' (source)",
    "middle": "stage 2 'middle' (then)",
}


@pytest.mark.parametrize("consumption", ["run", "loop", "break", "body_raises"])
@pytest.mark.parametrize("buffer", ["threads", "default", "large"])
@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("behaviour", BEHAVIOURS)
@pytest.mark.parametrize("position", ["source", "middle", "last"])
def test_failure_matrix(
    position: str, behaviour: str, threads: int, buffer: str, consumption: str
) -> None:
    """The outcome is exact, every started finally ran, and it ended in bounded time."""
    record = Record()
    size = {"threads": threads, "default": None, "large": 1000}[buffer]
    pipeline, sink = build(record, position, behaviour, threads, size, consumption == "run")
    received: list[int] = []
    started = time.monotonic()
    outcome: BaseException | None = None
    try:
        if sink is not None:
            pipeline.sink(sink, threads=threads).run()
            received = record.sunk
        else:
            for x in pipeline:
                received.append(x)
                if consumption == "break" and len(received) == 3:
                    break
                if consumption == "body_raises" and len(received) == 3:
                    raise LoopError("body")
    except BaseException as exc:  # what reached the caller, KeyboardInterrupt included
        outcome = exc
    elapsed = time.monotonic() - started

    assert elapsed < BOUND
    assert sorted(record.finalized) == sorted(record.started)
    if behaviour in RAISES and outcome is not None and not isinstance(outcome, LoopError):
        # The stage's own exception object, its stage named in the first note.
        assert any(outcome is raised for raised in record.raised)
        label = STAGE_LABELS.get(position, f"stage 3 'last' ({'sink' if sink else 'then'})")
        assert getattr(outcome, "__notes__", [""])[0].startswith(
            f"pipeline_executor: raised by {label} in thread pipeline-{position}-"
        )
    elif outcome is not None:
        assert isinstance(outcome, LoopError), outcome
        assert consumption == "body_raises"
    if consumption in ("run", "loop"):
        if behaviour in RAISES:
            assert outcome is not None, "the failure did not reach the caller"
        else:
            assert outcome is None
            count = expected_count(position, behaviour, threads)
            assert len(received) == count
            assert len(set(received)) == count
            assert set(received) <= set(range(N))
    else:  # break or body_raises: the loop left after 3 items, or a failure came first
        assert len(received) <= 3
        if outcome is None or isinstance(outcome, LoopError):
            assert len(received) == 3 or behaviour == "return_early"
