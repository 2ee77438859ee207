"""The seed's list-style API, ``execute(tasks=[PipelineTask(...)])``, on the builder's engine."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._builder import Pipeline, RunnablePipeline
from ._errors import PipelineDefinitionError
from ._stages import Role, StageSpec, make_stage
from ._typecheck import Strictness, check_stage

__all__ = ["PipelineTask", "execute"]


@dataclass
class PipelineTask:
    """One step of a pipeline given to :func:`execute`; a plain, mutable record, as in the seed.

    Attributes:
        generator: the step's function: the first task's takes only constants; every other
            task's takes an iterable of the previous task's items first.
        constants: keyword arguments for ``generator``.
        packets_in_flight: the step's ``buffer``: the most of its output items alive at once;
            ``None`` for the default.
        num_threads: the step's ``threads``; the first task runs on one thread.
    """

    generator: Callable[..., Any]
    constants: Mapping[str, Any] | None = None
    packets_in_flight: int | None = None
    num_threads: int = 1


def execute(tasks: Sequence[PipelineTask], *, inactivity_timeout: float | None = None) -> None:
    """Run ``tasks`` as a pipeline: the first is the source, the last the sink.

    A last task that is a generator function has its items drained and dropped; a single task
    runs alone, its items dropped.

    Raises:
        PipelineDefinitionError: no tasks, or a task with bad options or constants.
        InactivityError: nothing moved for ``inactivity_timeout`` seconds.
        BaseException: whatever a task raised, as itself, with a note naming it.
    """
    if isinstance(tasks, PipelineTask) or not tasks:
        raise PipelineDefinitionError(
            "execute", f"tasks must be a non-empty sequence of PipelineTask, got {tasks!r}"
        )
    stages: list[StageSpec] = []
    last = len(tasks)
    for position, task in enumerate(tasks, start=1):
        if not isinstance(task, PipelineTask):
            raise PipelineDefinitionError(
                f"task {position}", f"expected a PipelineTask, got {task!r}"
            )
        is_sink = position == last and position > 1 and not _yields(task.generator)
        role = Role.SOURCE if position == 1 else Role.SINK if is_sink else Role.STAGE
        stage = make_stage(
            task.generator,
            role,
            position,
            threads=task.num_threads,
            buffer=None if is_sink else task.packets_in_flight,
            kwargs=task.constants,
        )
        stages.append(check_stage(stages[-1] if stages else None, stage, Strictness.SEED))
    if stages[-1].role is Role.SINK:
        RunnablePipeline(tuple(stages)).run(inactivity_timeout=inactivity_timeout)
    else:
        pipeline: Pipeline[object] = Pipeline(tuple(stages))
        for _ in pipeline.iter(inactivity_timeout=inactivity_timeout):
            pass


def _yields(fn: Callable[..., Any]) -> bool:
    from ._introspect import is_generator_function

    return is_generator_function(fn)
