"""Warnings are attributed to the user's line, however deep in the package they are issued."""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator

import pytest

from pipeline_executor import Pipeline, PipelineTask, PipelineTypeWarning, execute

from .stages import Boom, total

WAIT = 10.0


class Stuck:
    """A pipeline whose stage 2 is stuck in a call the pipeline cannot interrupt when the
    source fails, so the stop abandons it with a RuntimeWarning."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.stuck = threading.Event()

    def source(self) -> Iterator[int]:
        yield 1
        assert self.stuck.wait(WAIT)
        raise Boom("source")

    def stage(self, xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            self.stuck.set()
            self.release.wait()  # uninterruptible as far as the pipeline knows
            yield x

    def pipeline(self) -> Pipeline[int]:
        return Pipeline.source(self.source).then(self.stage)


def here() -> int:
    """The line number of the caller's next line."""
    return sys._getframe(1).f_lineno + 1  # pyright: ignore[reportPrivateUsage]


def abandoned(run: Callable[[Stuck], None]) -> warnings.WarningMessage:
    """Run ``run`` with a stuck pipeline (it raises the source's Boom); the abandon warning."""
    scenario = Stuck()
    try:
        with (
            pytest.warns(RuntimeWarning, match=r"did not stop within") as records,
            pytest.raises(Boom, match=r"^source"),
        ):
            run(scenario)
    finally:
        scenario.release.set()  # let the abandoned thread finish; the fixture joins it
    (record,) = records
    return record


def test_a_stuck_stage_warning_names_the_line_of_run() -> None:
    """Under run(), the RuntimeWarning points at the run() call."""
    lines: list[int] = []

    def run(scenario: Stuck) -> None:
        lines.append(here())
        scenario.pipeline().sink(total).run()

    record = abandoned(run)
    assert (record.filename, record.lineno) == (__file__, lines[0])


@pytest.mark.parametrize("form", ["iter(pipeline)", "pipeline.iter()"])
def test_a_stuck_stage_warning_names_the_line_of_the_for_loop(form: str) -> None:
    """Under a for loop, the RuntimeWarning points at the for statement, not its caller."""
    lines: list[int] = []

    def run(scenario: Stuck) -> None:
        pipeline = scenario.pipeline()
        items = pipeline if form == "iter(pipeline)" else pipeline.iter()
        lines.append(here())
        for _ in items:
            pass

    record = abandoned(run)
    assert (record.filename, record.lineno) == (__file__, lines[0])


def test_a_stuck_stage_warning_names_the_line_of_execute() -> None:
    """Under execute(), the RuntimeWarning points at the execute() call, not into the package."""
    lines: list[int] = []

    def run(scenario: Stuck) -> None:
        tasks = [
            PipelineTask(scenario.source),
            PipelineTask(scenario.stage),
            PipelineTask(total),
        ]
        lines.append(here())
        execute(tasks)

    record = abandoned(run)
    assert (record.filename, record.lineno) == (__file__, lines[0])


def test_a_constant_warning_under_execute_names_the_line_of_execute() -> None:
    """The PipelineTypeWarning for a constant points at the execute() call, not its caller."""

    def tagged(n: int, tag: str) -> Iterator[object]:
        yield from [tag] * n

    def drop(xs: Iterable[object]) -> None:
        for _ in xs:
            pass

    def user_code() -> int:
        line = here()
        execute([PipelineTask(tagged, constants={"n": 2, "tag": 1}), PipelineTask(drop)])
        return line

    with pytest.warns(PipelineTypeWarning) as records:
        line = user_code()
    (record,) = records
    assert (record.filename, record.lineno) == (__file__, line)
