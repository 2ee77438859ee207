"""The seed's list-style API, ``execute(tasks=[PipelineTask(...)])``, on the builder's engine."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._builder import Pipeline, RunnablePipeline
from ._errors import PipelineDefinitionError, add_note
from ._introspect import is_generator_function
from ._stages import Role, StageSpec, make_stage
from ._typecheck import Strictness, check_alone, check_stage
from ._validate import check_duration

__all__ = ["PipelineTask", "execute"]


@dataclass
class PipelineTask:
    """One step of a pipeline given to :func:`execute`; a plain, mutable record, as in the seed.

    Attributes:
        generator: the step's function: the first task's takes only constants; every other
            task's takes an iterable of the previous task's items first.
        constants: keyword arguments for ``generator``.
        packets_in_flight: the step's ``buffer``: the most of its output items alive at once,
            an exact count; ``None`` for the default, an auto buffer bounded by bytes too.
        num_threads: the step's ``threads``; the first task runs on one thread.
        num_workers: the seed's later name for ``num_threads`` (Techcyte pipeline-lib 0.5):
            instances of the step, threads or worker processes as ``execute``'s
            ``parallelism`` says; give one of the two.
        max_message_size: accepted for code written against pipeline-lib, and ignored: items
            of any size cross between processes here, and buffers of 1 MiB or more always go
            through shared memory, allocated as items need it.
        shared_buffer: accepted and ignored, likewise: a large buffer is always read in place,
            and safely (its memory is not reused while anything can see it).
    """

    generator: Callable[..., Any]
    constants: Mapping[str, Any] | None = None
    packets_in_flight: int | None = None
    num_threads: int = 1
    num_workers: int | None = None
    max_message_size: int | None = None
    shared_buffer: bool = False


class Parallelism(enum.Enum):
    """How :func:`execute` runs its tasks; the values are the seed's (pipeline-lib's) names."""

    THREAD = "thread"
    PROCESS_FORK = "process-fork"
    PROCESS_SPAWN = "process-spawn"
    COROUTINE = "coroutine"

    @property
    def start_method(self) -> str | None:
        """The start method of the worker processes, in a process mode."""
        return {Parallelism.PROCESS_FORK: "fork", Parallelism.PROCESS_SPAWN: "spawn"}.get(self)


def execute(
    tasks: Sequence[PipelineTask],
    parallelism: str = "thread",
    type_check_pipeline: bool = True,
    inactivity_timeout: float | None = None,
    memory_budget: int | float | str | None = None,
) -> Any:
    """Run ``tasks`` as a pipeline: the first is the source, the last the sink.

    ``parallelism`` (the seed's later form): ``"thread"`` runs each task's instances on
    threads; ``"process-fork"`` and ``"process-spawn"`` run every task, source and sink
    included, in worker processes started that way (so everything must pickle, and the
    sink's value travels back); ``"coroutine"`` runs the tasks in the caller's thread one
    after another, lazily chained, with no threads (for debugging). ``type_check_pipeline=False``
    skips the build-time type checks.

    A last task that is a generator function has its items drained and dropped. A single
    task is the whole job: a generator function is drained as a lone source; any other
    function is called once with its constants, in the caller's thread, and what it returns
    is returned (``inactivity_timeout`` does not apply to such a call). No tasks: nothing runs.

    ``memory_budget`` is what the auto buffers may fill together, as for ``run()``.

    Returns:
        What the sink returned; ``None`` when the last task yields (its items are dropped)
        or there are no tasks.

    Raises:
        PipelineDefinitionError: ``tasks`` is not a sequence of :class:`PipelineTask` (a
            generator, a single task), a task has bad options or constants, or
            ``parallelism`` is not one of the four.
        PipelineTypeError: a task's annotations are missing or do not fit its neighbours.
        InactivityError: nothing moved for ``inactivity_timeout`` seconds.
        BaseException: whatever a task raised, as itself, with a note naming it.
    """
    given: object = tasks  # checked: untyped callers may pass anything
    if not isinstance(given, Sequence):
        hint = "; a single task goes in a list: execute([task])"
        raise PipelineDefinitionError(
            "execute",
            f"tasks must be a sequence of PipelineTask (a list or a tuple), got {given!r} "
            f"({type(given).__name__}){hint if isinstance(given, PipelineTask) else ''}",
        )
    mode = _parallelism(parallelism)
    if inactivity_timeout is not None:
        check_duration("execute", "inactivity_timeout", inactivity_timeout)
    if not tasks:
        return None
    stages = _stages(tasks, mode, type_check=bool(type_check_pipeline))
    if len(stages) == 1 and not is_generator_function(stages[0].fn):
        return _call_alone(stages[0])
    options: dict[str, Any] = {
        "inactivity_timeout": inactivity_timeout,
        "start_method": mode.start_method,
        "sequential": mode is Parallelism.COROUTINE,
        "memory_budget": memory_budget,
    }
    if stages[-1].role is Role.SINK:
        return RunnablePipeline[Any](tuple(stages)).run(**options)
    pipeline: Pipeline[object] = Pipeline(tuple(stages))
    for _ in pipeline.iter(**options):
        pass
    return None


def _parallelism(value: object) -> Parallelism:
    if isinstance(value, Parallelism):
        return value
    try:
        return Parallelism(value)
    except ValueError:
        names = ", ".join(repr(p.value) for p in Parallelism)
        raise PipelineDefinitionError(
            "execute", f"parallelism must be one of {names}, got {value!r}"
        ) from None


def _stages(
    tasks: Sequence[PipelineTask], mode: Parallelism, *, type_check: bool
) -> list[StageSpec]:
    """Each task validated and (unless told not to) type-checked against the previous one."""
    stages: list[StageSpec] = []
    last = len(tasks)
    for position, task in enumerate(tasks, start=1):
        if not isinstance(task, PipelineTask):
            raise PipelineDefinitionError(
                f"task {position}", f"expected a PipelineTask, got {task!r}"
            )
        is_sink = position == last and position > 1 and not is_generator_function(task.generator)
        role = Role.SOURCE if position == 1 else Role.SINK if is_sink else Role.STAGE
        instances = _instances(task, position)
        in_processes = mode.start_method is not None
        stage = make_stage(
            task.generator,
            role,
            position,
            threads=1 if in_processes else instances,
            processes=instances if in_processes else None,
            buffer=None if is_sink else task.packets_in_flight,
            kwargs=task.constants,
        )
        if not type_check:
            pass
        elif last == 1 and not is_generator_function(stage.fn):
            check_alone(stage)
        else:
            stage = check_stage(stages[-1] if stages else None, stage, Strictness.SEED)
        stages.append(stage)
    return stages


def _instances(task: PipelineTask, position: int) -> object:
    """``num_workers`` or ``num_threads``: the two names of one count."""
    if task.num_workers is None:
        return task.num_threads
    if task.num_threads not in (1, task.num_workers):
        raise PipelineDefinitionError(
            f"task {position}",
            f"num_threads={task.num_threads!r} and num_workers={task.num_workers!r} are two "
            "names of one count; give one of them",
        )
    return task.num_workers


def _call_alone(stage: StageSpec) -> object:
    """Run a lone task's function once, here; its failure reaches the caller as itself."""
    try:
        return stage.fn(**stage.kwargs)
    except BaseException as exc:
        add_note(exc, f"pipeline_executor: raised by {stage.label}, run alone by execute()")
        raise
