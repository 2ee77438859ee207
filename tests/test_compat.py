"""The seed's execute(tasks=[PipelineTask(...)]) on the same engine (README, "The execute API")."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any, cast

import pytest

from pipeline_executor import (
    PipelineDefinitionError,
    PipelineTask,
    PipelineTypeError,
    PipelineTypeWarning,
    execute,
)

from .stages import Boom, add_one, numbers


class Sink:
    """A sink that remembers what it consumed, from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, xs: Iterable[int]) -> None:
        for x in xs:
            with self.lock:
                self.items.append(x)
                self.threads.add(threading.current_thread().name)


def test_the_seed_shape_runs_source_workers_and_sink() -> None:
    """Source, a multi-threaded worker, a sink: every item arrives; execute returns None."""
    sink = Sink()
    execute(
        tasks=[
            PipelineTask(numbers, constants={"n": 100}, packets_in_flight=2),
            PipelineTask(add_one, packets_in_flight=4, num_threads=2),
            PipelineTask(sink),
        ]
    )
    assert sorted(sink.items) == list(range(1, 101))


def test_num_threads_maps_to_threads_on_the_sink() -> None:
    """num_threads on the last task runs that many sink threads."""
    sink = Sink()
    execute([PipelineTask(numbers, constants={"n": 500}), PipelineTask(sink, num_threads=3)])
    assert sorted(sink.items) == list(range(500))
    assert sink.threads <= {f"pipeline-Sink-{i}" for i in range(3)}


def test_packets_in_flight_maps_to_buffer() -> None:
    """packets_in_flight bounds the items alive, as buffer does."""
    made = [0]
    done = [0]
    peak = [0]

    def source() -> Iterator[int]:
        for i in range(500):
            made[0] += 1
            yield i

    def sink(xs: Iterable[int]) -> None:
        for _ in xs:
            peak[0] = max(peak[0], made[0] - done[0])
            done[0] += 1

    execute([PipelineTask(source, packets_in_flight=3), PipelineTask(sink)])
    assert done[0] == 500
    assert 1 <= peak[0] <= 3


def test_a_single_task_runs_alone() -> None:
    """One task is a source whose items are drained."""
    seen: list[int] = []

    def only() -> Iterator[int]:
        for i in range(5):
            seen.append(i)
            yield i

    execute([PipelineTask(only)])
    assert seen == [0, 1, 2, 3, 4]


def test_a_generator_as_the_last_task_is_drained() -> None:
    """A last task that yields (the seed's 'iterator' sink) runs to the end."""
    seen: list[int] = []

    def last(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            seen.append(x)
            yield x

    execute([PipelineTask(numbers, constants={"n": 4}), PipelineTask(last)])
    assert seen == [0, 1, 2, 3]


def test_a_task_failure_is_raised_with_the_task_named() -> None:
    """Any failure stops everything and is raised as itself, the failing step named."""

    def failing(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            if x == 3:
                raise Boom("worker")
            yield x

    with pytest.raises(Boom) as info:
        execute(
            [
                PipelineTask(numbers, constants={"n": 10}),
                PipelineTask(failing, num_threads=2, packets_in_flight=2),
                PipelineTask(Sink()),
            ]
        )
    assert str(info.value) == "worker"
    assert "stage 2 'failing' (then)" in getattr(info.value, "__notes__", [""])[0]


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        (
            [PipelineTask(numbers, constants={"n": 1}, num_threads=2)],
            "stage 1 'numbers' (source): a source runs on exactly one thread, got threads=2",
        ),
        (
            [PipelineTask(numbers, constants={"n": 1}), PipelineTask(add_one, num_threads=0)],
            "stage 2 'add_one' (then): threads must be >= 1, got 0",
        ),
        (
            [PipelineTask(numbers, constants={"m": 1})],
            "stage 1 'numbers' (source): unknown constant 'm' (its constants are: n)",
        ),
        (
            [PipelineTask(numbers, constants={"n": 1}, packets_in_flight=0)],
            "stage 1 'numbers' (source): buffer must be >= 1, got 0",
        ),
    ],
)
def test_bad_tasks_are_rejected_before_anything_runs(
    tasks: list[PipelineTask], message: str
) -> None:
    """Definition errors name the task's position and function."""
    with pytest.raises(PipelineDefinitionError, match=f"^{re.escape(message)}$"):
        execute(tasks)


def test_no_tasks_run_nothing_and_return_none() -> None:
    """execute([]) is an empty job: it returns None."""
    assert execute([]) is None


def test_tasks_that_are_not_a_sequence_are_rejected() -> None:
    """A generator of tasks could be consumed only once: a definition error, naming its type."""
    tasks = (task for task in [PipelineTask(numbers, constants={"n": 1})])
    message = (
        f"execute: tasks must be a sequence of PipelineTask (a list or a tuple), got {tasks!r} "
        "(generator)"
    )
    with pytest.raises(PipelineDefinitionError, match=f"^{re.escape(message)}$"):
        execute(tasks)  # type: ignore[arg-type]


def test_a_single_task_not_in_a_list_is_rejected_with_the_fix() -> None:
    """execute(task) says to put it in a list."""
    task = PipelineTask(numbers, constants={"n": 1})
    message = (
        f"execute: tasks must be a sequence of PipelineTask (a list or a tuple), got {task!r} "
        "(PipelineTask); a single task goes in a list: execute([task])"
    )
    with pytest.raises(PipelineDefinitionError, match=f"^{re.escape(message)}$"):
        execute(task)  # type: ignore[arg-type]


def test_execute_returns_what_the_sink_returns() -> None:
    """The sink's return value comes back from execute()."""

    def total(xs: Iterable[int]) -> int:
        return sum(xs)

    assert execute([PipelineTask(numbers, constants={"n": 5}), PipelineTask(total)]) == 10


def test_a_single_plain_task_runs_alone_with_its_constants() -> None:
    """A lone task that is not a generator is the whole job: called once, its value returned."""
    calls: list[tuple[int, str]] = []

    def job(n: int, label: str) -> None:
        calls.append((n, label))

    def answer(n: int) -> int:
        return n * 2

    assert execute([PipelineTask(job, constants={"n": 3, "label": "x"})]) is None
    assert calls == [(3, "x")]
    assert execute([PipelineTask(answer, constants={"n": 21})]) == 42


def test_a_single_task_failure_reaches_the_caller_as_itself_with_the_task_named() -> None:
    """The lone task's own exception, with a note naming it."""
    error = Boom("alone")

    def job() -> None:
        raise error

    with pytest.raises(Boom) as info:
        execute([PipelineTask(job)])
    assert info.value is error
    assert getattr(error, "__notes__", []) == [
        "pipeline_executor: raised by stage 1 'job' (source), run alone by execute()"
    ]


def test_a_single_task_is_checked_before_it_runs() -> None:
    """A lone task's constants and annotations are checked as any task's are."""
    called: list[object] = []

    def job(n: int) -> None:
        called.append(n)

    def unannotated(n):  # type: ignore[no-untyped-def]  # pyright: ignore[reportMissingParameterType]
        called.append(n)  # pyright: ignore[reportUnknownArgumentType]

    untyped: Any = cast("Any", unannotated)

    with pytest.raises(
        PipelineDefinitionError,
        match=r"^stage 1 'job' \(source\): unknown constant 'm' \(its constants are: n\)",
    ):
        execute([PipelineTask(job, constants={"m": 1})])
    with pytest.raises(
        PipelineTypeError,
        match=r"^stage 1 'unannotated' \(source\) has no annotation on parameter\(s\) 'n'; "
        r"execute\(\) needs them all$",
    ):
        execute([PipelineTask(untyped, constants={"n": 1})])
    with pytest.warns(PipelineTypeWarning, match=r"expects its constant 'n' to be int"):
        execute([PipelineTask(job, constants={"n": "1"})])
    assert called == ["1"]


def test_a_non_task_is_rejected() -> None:
    """Anything but a PipelineTask in the list is a definition error."""
    with pytest.raises(PipelineDefinitionError, match=r"^task 2: expected a PipelineTask, got 3$"):
        execute([PipelineTask(numbers, constants={"n": 1}), 3])  # type: ignore[list-item]


def test_a_task_can_be_changed_before_it_runs() -> None:
    """Tasks are plain records, as in the seed: lists of them can be built and adjusted."""
    sink = Sink()
    task = PipelineTask(add_one)
    task.num_threads = 2
    task.packets_in_flight = 4
    execute([PipelineTask(numbers, constants={"n": 10}), task, PipelineTask(sink)])
    assert sorted(sink.items) == list(range(1, 11))
