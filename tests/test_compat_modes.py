"""``execute(tasks, parallelism=...)``, the seed's later form (Techcyte pipeline-lib 0.5).

The suite is shaped like pipeline-lib's own: a source, a worker on several workers, a sink,
run in every mode; the seed's three error rules in every mode (a source that finishes lets
the rest drain; a worker that finishes after its input lets the rest drain; any failure stops
everything and is raised with the failing step named). Tasks live at module level so that
they pickle under spawn.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from pipeline_executor import PipelineDefinitionError, PipelineTask, PipelineTypeError, execute

MODES = ["thread", "process-fork", "process-spawn", "coroutine"]


class TaskError(Exception):
    """What a failing task raises."""


def produce(count: int) -> Iterable[int]:
    yield from range(count)


def square(numbers: Iterable[int]) -> Iterable[int]:
    for number in numbers:
        yield number * number


def fail_at(numbers: Iterable[int], bad: int) -> Iterable[int]:
    for number in numbers:
        if number == bad:
            raise TaskError(f"bad number {number}")
        yield number


def first(numbers: Iterable[int], count: int) -> Iterable[int]:
    """Finishes after ``count`` items, before its input is exhausted."""
    for index, number in enumerate(numbers):
        if index == count:
            return
        yield number


def add_up(numbers: Iterable[int]) -> int:
    return sum(numbers)


def record(numbers: Iterable[int], where: str) -> None:
    Path(where).write_text(",".join(str(n) for n in sorted(numbers)))


def thread_names(numbers: Iterable[int]) -> Iterable[str]:
    for _ in numbers:
        yield threading.current_thread().name


def gather(names: Iterable[str]) -> set[str]:
    return set(names)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_the_sinks_value(mode: str) -> None:
    """Source, a worker on two workers, sink: the same result in every mode."""
    tasks = [
        PipelineTask(produce, constants={"count": 500}, packets_in_flight=8),
        PipelineTask(square, num_workers=2, packets_in_flight=8),
        PipelineTask(add_up),
    ]
    assert execute(tasks, parallelism=mode) == sum(n * n for n in range(500))


@pytest.mark.parametrize("mode", MODES)
def test_a_last_task_that_yields_is_drained(mode: str, tmp_path: Path) -> None:
    """A sink with side effects and no value, and a last task that yields, run to the end."""
    out = tmp_path / "out.txt"
    execute(
        [
            PipelineTask(produce, constants={"count": 50}),
            PipelineTask(square, num_workers=2),
            PipelineTask(record, constants={"where": str(out)}),
        ],
        parallelism=mode,
    )
    assert out.read_text() == ",".join(str(n * n) for n in range(50))
    assert execute([PipelineTask(produce, constants={"count": 5}), PipelineTask(square)]) is None


@pytest.mark.parametrize("mode", MODES)
def test_rule_1_a_finished_source_lets_the_rest_drain(mode: str) -> None:
    """Rule 1: the source stops normally first; the workers consume what it made."""
    tasks = [
        PipelineTask(produce, constants={"count": 10}),
        PipelineTask(square, num_workers=2),
        PipelineTask(add_up),
    ]
    assert execute(tasks, parallelism=mode) == sum(n * n for n in range(10))


@pytest.mark.parametrize("mode", MODES)
def test_rule_2_a_worker_that_finishes_early_lets_the_rest_drain(mode: str) -> None:
    """Rule 2: a worker stops normally before its input ends; the rest finishes normally."""
    tasks = [
        PipelineTask(produce, constants={"count": 10_000}),
        PipelineTask(first, constants={"count": 7}),
        PipelineTask(square),
        PipelineTask(add_up),
    ]
    assert execute(tasks, parallelism=mode) == sum(n * n for n in range(7))


@pytest.mark.parametrize("mode", MODES)
def test_rule_3_a_failure_stops_everything_and_names_the_task(mode: str) -> None:
    """Rule 3: any failure stops the pipeline and is raised as itself, its step named."""
    tasks = [
        PipelineTask(produce, constants={"count": 1000}),
        PipelineTask(fail_at, constants={"bad": 500}, num_workers=2),
        PipelineTask(add_up),
    ]
    with pytest.raises(TaskError, match=r"^bad number 500") as info:
        execute(tasks, parallelism=mode)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "stage 2 'fail_at' (then)" in notes


def test_the_coroutine_mode_runs_in_the_callers_thread() -> None:
    """ "coroutine" starts no thread: every task runs in the caller's."""
    names = execute(
        [
            PipelineTask(produce, constants={"count": 5}),
            PipelineTask(thread_names, num_workers=3),
            PipelineTask(gather),
        ],
        parallelism="coroutine",
    )
    assert names == {threading.current_thread().name}


@pytest.mark.parametrize("mode", ["process-fork", "process-spawn"])
def test_process_modes_run_every_task_in_a_worker_process(mode: str) -> None:
    """In a process mode even the source and the sink run in worker processes."""
    names = execute(
        [
            PipelineTask(produce, constants={"count": 5}),
            PipelineTask(thread_names, num_workers=2),
            PipelineTask(gather),
        ],
        parallelism=mode,
    )
    assert names == {"MainThread"}  # each worker process's own main thread


def test_the_seeds_later_options_are_accepted() -> None:
    """``max_message_size`` and ``shared_buffer`` are accepted (our transport needs neither),
    ``type_check_pipeline=False`` skips the type checks, ``inactivity_timeout`` applies."""
    tasks = [
        PipelineTask(produce, constants={"count": 20}, max_message_size=1 << 20),
        PipelineTask(square, shared_buffer=True),
        PipelineTask(_count_strings),
    ]
    assert execute(tasks, type_check_pipeline=False, inactivity_timeout=10) == sum(
        n * n for n in range(20)
    )
    with pytest.raises(PipelineTypeError, match=r"expects items of type str"):
        execute(tasks)  # checked by default


def _count_strings(items: Iterable[str]) -> int:
    """Annotated for strings, given ints: only the type check minds."""
    return sum(int(item) for item in items)


def test_an_unknown_parallelism_is_a_definition_error() -> None:
    """A mode that does not exist is named in a clear error."""
    with pytest.raises(
        PipelineDefinitionError,
        match=r"^execute: parallelism must be one of 'thread', 'process-fork', 'process-spawn', "
        r"'coroutine', got 'processes'$",
    ):
        execute([PipelineTask(produce, constants={"count": 1})], parallelism="processes")


def test_num_threads_and_num_workers_must_agree() -> None:
    """The two names of one count cannot say two things."""
    task: Any = PipelineTask(square, num_threads=2, num_workers=3)
    with pytest.raises(PipelineDefinitionError, match=r"^task 2: num_threads=2 and num_workers=3"):
        execute([PipelineTask(produce, constants={"count": 1}), task, PipelineTask(add_up)])
