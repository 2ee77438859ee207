"""What the supervisor knows about its stage instances, turned into statistics and reports."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from ._budget import peak_rss
from ._errors import add_note
from ._stages import Role, StageSpec, returns_none
from ._state import StageState

if TYPE_CHECKING:
    from ._budget import Budget
    from ._channel import Channel, Meter
    from ._progress import ProgressDisplay
    from ._stats import BufferStatistics, MemoryStatistics, PipelineStats

__all__ = ["Observed", "add_shutdown_report", "memory_statistics", "report_progress", "snapshot"]


class _HasStatistics(Protocol):
    def statistics(self) -> BufferStatistics: ...


class Observed(Protocol):
    """What statistics read of one stage instance (a ``_supervise.Host``)."""

    stage: StageSpec
    meter: Meter
    outcome: StageState | None

    def items(self) -> tuple[int, int]:
        """Items taken from its input and put into its output so far."""
        ...

    def cpu(self) -> float | None:
        """CPU seconds it has used, where the platform tells."""
        ...


def _stage_state(workers: Sequence[Observed]) -> StageState:
    outcomes = [w.outcome for w in workers]
    if None in outcomes:
        return StageState.RUNNING
    for state in (StageState.FAILED, StageState.ABANDONED, StageState.CANCELLED):
        if state in outcomes:
            return state
    return StageState.FINISHED


def add_shutdown_report(exc: BaseException, final: PipelineStats) -> None:
    """Note on ``exc`` how each stage ended, with its items in and out."""
    lines = ["pipeline_executor: how each stage ended:"]
    for s in final.stages:
        counts: list[str] = []
        if s.role != "source":
            counts.append(f"{s.items_in:,} in")
        if s.role != "sink":
            counts.append(f"{s.items_out:,} out")
        lines.append(f"  {s.label}: {s.state.value}, {', '.join(counts)}")
    add_note(exc, "\n".join(lines))


def _threadable(stage: StageSpec) -> bool:
    """Whether ``threads=`` may be raised: not for a source, nor for a sink that returns a
    value (``make_stage`` asks a sink on several threads to be annotated ``-> None``)."""
    if stage.role is Role.SOURCE:
        return False
    if stage.role.is_operator:  # map, filter and flat_map take threads; the others do not
        return stage.inner is not None
    if stage.role is Role.STAGE or stage.threads > 1:
        return True
    return returns_none(stage.fn)


def _cpus() -> int | None:
    """The CPUs this process may run on (its affinity where the platform tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover  # not Linux
        return os.cpu_count()


def snapshot(
    stages: Sequence[StageSpec],
    workers: Sequence[Observed],
    outputs: Mapping[int, _HasStatistics],
    started: float,
    ended: float | None,
    *,
    cpu_started: float | None = None,
    cpu_ended: float | None = None,
    memory: MemoryStatistics | None = None,
) -> PipelineStats:
    """Statistics of a run from its workers' meters and its buffers (any thread, any time).

    ``cpu_started`` and ``cpu_ended`` are ``time.process_time()`` at the start and the end
    of the run: the CPU of the whole process, every thread included.
    """
    from ._stats import PipelineStats, StageStats  # only a snapshot needs them: see _state

    now = time.perf_counter()
    cpu_now = cpu_ended if cpu_ended is not None else time.process_time()
    result: list[StageStats] = []
    for stage in stages:
        mine = [w for w in workers if w.stage is stage]
        cpus = [w.cpu() for w in mine]
        counts = [w.items() for w in mine]
        out = outputs.get(stage.position)
        result.append(
            StageStats(
                position=stage.position,
                name=stage.name,
                role=stage.role.value,
                threads=stage.threads,
                state=_stage_state(mine),
                items_in=sum(c[0] for c in counts),
                items_out=sum(c[1] for c in counts),
                busy=sum(w.meter.busy(now) for w in mine),
                starved=sum(w.meter.starved for w in mine),
                blocked=sum(w.meter.blocked for w in mine),
                cpu=None if None in cpus else sum(c for c in cpus if c is not None),
                buffer=out.statistics() if out is not None else None,
                threadable=_threadable(stage),
                expected=stage.length,
                failed=sum(w.meter.items.failed for w in mine),
                timed_out=sum(w.meter.items.timed_out for w in mine),
                reorder_peak=_reorder_peak(mine),
                abandoned=tuple(name for w in mine for name in w.meter.items.abandoned),
                processes=stage.processes,
            )
        )
    return PipelineStats(
        elapsed=(ended if ended is not None else now) - started,
        stages=tuple(result),
        running=ended is None,
        process_cpu=None if cpu_started is None else cpu_now - cpu_started,
        cpus=_cpus(),
        memory=memory,
    )


def memory_statistics(
    budget: Budget, channels: Sequence[Channel[object]], rss_started: int | None
) -> MemoryStatistics | None:
    """The memory line of a run's statistics; ``None`` if none of its buffers is auto."""
    autos = [c.statistics() for c in channels if c.auto is not None]
    if not autos:
        return None
    from ._stats import MemoryStatistics

    rss = peak_rss()
    return MemoryStatistics(
        budget_bytes=budget.total,
        budget_source=budget.source,
        auto_buffers=len(autos),
        peak_bytes=sum(b.peak_bytes or 0 for b in autos),
        rss_growth=None if rss is None or rss_started is None else rss - rss_started,
    )


def _reorder_peak(workers: Sequence[Observed]) -> int:
    from ._order import OrderedSender  # loaded already if any stage keeps its order

    for w in workers:
        sender = getattr(w, "sender", None)
        if isinstance(sender, OrderedSender):
            return sender.book.peak
    return 0


def report_progress(
    take_snapshot: Callable[[], PipelineStats],
    done: threading.Event,
    stop: Callable[[BaseException], None],
    callback: Callable[[PipelineStats], object] | None,
    display: ProgressDisplay | None,
    *,
    interval: float,
) -> None:
    """The helper thread's loop: a snapshot every ``interval`` s to the callback and the
    display until ``done``, then the final one. A failing callback stops the pipeline."""
    try:
        while not done.wait(interval):
            stats = take_snapshot()
            if display is not None:
                display.update(stats)
            if callback is not None:
                callback(stats)
        stats = take_snapshot()
        if display is not None:
            last = display
            display = None  # stopped: the finally below must not stop it again
            last.stop(stats)
        if callback is not None:
            callback(stats)
    except BaseException as exc:  # the callback failed: that stops the pipeline
        add_note(exc, "pipeline_executor: raised by the on_progress callback")
        stop(exc)
    finally:
        if display is not None:  # the callback failed: still give back the terminal and logs
            display.stop(take_snapshot())
