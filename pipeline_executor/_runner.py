"""The default backend: the builder's two calls, run by the supervisor on the local engine.

``_supervise`` owns a run (failures, stop, join and grace, statistics, watchdog, signals);
``_threads`` hosts the stage instances on threads and worker processes. This module only
turns the builder's keyword options into :class:`~pipeline_executor._supervise.RunOptions`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, TextIO, cast

from ._errors import PipelineDefinitionError
from ._stages import StageSpec
from ._supervise import GRACE_PERIOD, Engine, RunOptions, iterate, run
from ._threads import LOCAL

if TYPE_CHECKING:
    from ._budget import Budget
    from ._monitor import Monitor

__all__ = ["GRACE_PERIOD", "THREADS", "Engine", "ThreadBackend"]


def _engine(engine: object) -> Engine:
    """``engine``, or the local engine for ``None``.

    Raises:
        PipelineDefinitionError: it is no engine.
    """
    if engine is None:
        return LOCAL
    if not callable(getattr(engine, "wire", None)):
        raise PipelineDefinitionError(
            "pipeline", f"engine must be None or an engine such as RayEngine(), got {engine!r}"
        )
    return cast("Engine", engine)


class ThreadBackend:
    """Runs each stage's instances on threads of this process (or in worker processes, for
    process stages), joined by bounded buffers."""

    def __repr__(self) -> str:
        return "ThreadBackend()"

    def iterate(
        self,
        stages: Sequence[StageSpec],
        *,
        inactivity_timeout: float | None,
        monitor: Monitor | None = None,
        progress: TextIO | None = None,
        start_method: str | None = None,
        memory_budget: Budget | None = None,
        engine: object = None,
    ) -> Iterator[object]:
        """Run ``stages`` and yield the last one's items in the caller's thread."""
        options = RunOptions(inactivity_timeout, monitor, progress, start_method, memory_budget)
        return iterate(stages, _engine(engine), options)

    def run(
        self,
        stages: Sequence[StageSpec],
        *,
        inactivity_timeout: float | None,
        monitor: Monitor | None = None,
        progress: TextIO | None = None,
        start_method: str | None = None,
        memory_budget: Budget | None = None,
        engine: object = None,
    ) -> object:
        """Run ``stages`` to the end of the sink and return what the sink returned."""
        options = RunOptions(inactivity_timeout, monitor, progress, start_method, memory_budget)
        return run(stages, _engine(engine), options)


THREADS = ThreadBackend()
"""The default backend."""
