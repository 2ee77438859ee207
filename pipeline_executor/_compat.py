"""The seed's list-style API, ``execute(tasks=[PipelineTask(...)])``, on the builder's engine."""

from __future__ import annotations

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
    """

    generator: Callable[..., Any]
    constants: Mapping[str, Any] | None = None
    packets_in_flight: int | None = None
    num_threads: int = 1


def execute(
    tasks: Sequence[PipelineTask],
    *,
    inactivity_timeout: float | None = None,
    memory_budget: int | float | str | None = None,
) -> Any:
    """Run ``tasks`` as a pipeline: the first is the source, the last the sink.

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
            generator, a single task), or a task has bad options or constants.
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
    if inactivity_timeout is not None:
        check_duration("execute", "inactivity_timeout", inactivity_timeout)
    if not tasks:
        return None
    stages = _stages(tasks)
    if len(stages) == 1 and not is_generator_function(stages[0].fn):
        return _call_alone(stages[0])
    if stages[-1].role is Role.SINK:
        return RunnablePipeline[Any](tuple(stages)).run(
            inactivity_timeout=inactivity_timeout, memory_budget=memory_budget
        )
    pipeline: Pipeline[object] = Pipeline(tuple(stages))
    for _ in pipeline.iter(inactivity_timeout=inactivity_timeout, memory_budget=memory_budget):
        pass
    return None


def _stages(tasks: Sequence[PipelineTask]) -> list[StageSpec]:
    """Each task validated and type-checked against the previous one."""
    stages: list[StageSpec] = []
    last = len(tasks)
    for position, task in enumerate(tasks, start=1):
        if not isinstance(task, PipelineTask):
            raise PipelineDefinitionError(
                f"task {position}", f"expected a PipelineTask, got {task!r}"
            )
        is_sink = position == last and position > 1 and not is_generator_function(task.generator)
        role = Role.SOURCE if position == 1 else Role.SINK if is_sink else Role.STAGE
        stage = make_stage(
            task.generator,
            role,
            position,
            threads=task.num_threads,
            buffer=None if is_sink else task.packets_in_flight,
            kwargs=task.constants,
        )
        if last == 1 and not is_generator_function(stage.fn):
            check_alone(stage)
        else:
            stage = check_stage(stages[-1] if stages else None, stage, Strictness.SEED)
        stages.append(stage)
    return stages


def _call_alone(stage: StageSpec) -> object:
    """Run a lone task's function once, here; its failure reaches the caller as itself."""
    try:
        return stage.fn(**stage.kwargs)
    except BaseException as exc:
        add_note(exc, f"pipeline_executor: raised by {stage.label}, run alone by execute()")
        raise
