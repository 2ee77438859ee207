"""``Monitor``: statistics of a pipeline run, live from any thread and final after."""

from __future__ import annotations

import threading
from collections.abc import Callable

from ._errors import PipelineDefinitionError, PipelineError
from ._stats import PipelineStats
from ._validate import check_duration

__all__ = ["Monitor", "attach", "detach"]


class Monitor:
    """Watches a run: pass it to ``run(monitor=...)`` or ``iter(monitor=...)``.

    ``stats()`` gives a snapshot at any time, from any thread, while the run goes on, and the
    final statistics once it has ended (until the monitor watches another run). With
    ``on_progress``, a thread of the run calls it with a snapshot every ``interval`` seconds
    and once more with the final statistics; an exception it raises stops the pipeline.

    >>> from pipeline_executor import Monitor, Pipeline
    >>> monitor = Monitor()
    >>> Pipeline.from_iterable(range(100)).sink(sum).run(monitor=monitor)
    4950
    >>> [(s.name, s.items_in, s.items_out) for s in monitor.stats().stages]
    [('from_iterable', 0, 100), ('sum', 100, 0)]

    Args:
        on_progress: called with a :class:`PipelineStats` snapshot every ``interval`` s.
        interval: seconds between calls of ``on_progress``; > 0 and <= ``threading.TIMEOUT_MAX``.

    Raises:
        PipelineDefinitionError: ``interval`` is not a number of seconds > 0 and
            <= ``threading.TIMEOUT_MAX``.
    """

    def __init__(
        self,
        on_progress: Callable[[PipelineStats], object] | None = None,
        *,
        interval: float = 1.0,
    ) -> None:
        self.interval = check_duration("Monitor", "interval", interval)
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self._source: Callable[[], PipelineStats] | None = None
        self._final: PipelineStats | None = None

    def __repr__(self) -> str:
        state = "watching" if self._source else "idle" if self._final is None else "done"
        return f"Monitor(on_progress={self.on_progress!r}, interval={self.interval:g}) [{state}]"

    def stats(self) -> PipelineStats:
        """A snapshot of the run being watched, or the final statistics of the last one.

        Raises:
            PipelineError: the monitor has not been given to a run yet.
        """
        with self._lock:
            source, final = self._source, self._final
        if source is not None:
            return source()
        if final is not None:
            return final
        raise PipelineError("this Monitor has not watched a run yet: pass it to run() or iter()")


def attach(monitor: Monitor, source: Callable[[], PipelineStats]) -> None:
    """Let ``monitor`` take snapshots from ``source`` while a run goes on.

    Raises:
        PipelineDefinitionError: the monitor is watching another run.
    """
    with monitor._lock:  # pyright: ignore[reportPrivateUsage]
        if monitor._source is not None:  # pyright: ignore[reportPrivateUsage]
            raise PipelineDefinitionError(
                "Monitor", "it is watching another run; give each concurrent run its own"
            )
        monitor._source = source  # pyright: ignore[reportPrivateUsage]
        monitor._final = None  # pyright: ignore[reportPrivateUsage]


def detach(monitor: Monitor, final: PipelineStats) -> None:
    """The run has ended: keep its final statistics."""
    with monitor._lock:  # pyright: ignore[reportPrivateUsage]
        monitor._source = None  # pyright: ignore[reportPrivateUsage]
        monitor._final = final  # pyright: ignore[reportPrivateUsage]
