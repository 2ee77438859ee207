"""Immutable snapshots of what the runner counts, and the report (its verdict: ``_verdict``).

Counting costs nothing per item beyond the counters the buffers keep anyway: the time a
thread spends *starved* (waiting for input) and *blocked* (waiting for space downstream) is
measured only on the slow paths where it waits, and *busy* is the rest of its time alive
(inside the stage's code, or waiting for the GIL to run it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._state import StageState
from ._verdict import verdict

__all__ = [
    "REPORT_COLUMNS",
    "BufferStatistics",
    "MemoryStatistics",
    "PipelineStats",
    "StageState",
    "StageStats",
    "buffer_cell",
    "report_row",
    "size_text",
]


@dataclass(frozen=True)
class BufferStatistics:
    """A snapshot of one stage's output buffer.

    Attributes:
        capacity: the count bound in force: at most this many items are alive at once (a
            fixed ``buffer=k``, or what an auto buffer's budget and item size call for now).
        used: items alive now: being produced, waiting, or held by a consumer (not the slots
            producers reserved ahead, nor those of items consumers are done with).
        queued: items waiting in the buffer for a consumer.
        peak_used: the highest ``used`` seen so far, looked at whenever a thread of either side
            reserves slots, waits or finishes, and at each snapshot (not at every item, which
            would cost on the hot path); it equals ``capacity`` once a producer has waited.
        items_in: items the stage has put into the buffer.
        items_out: items consumers have taken from it.
        producers: threads still producing into it.
        consumers: threads still consuming from it.
        auto: whether the count follows the items' size (``buffer=None`` or an
            ``AutoBuffer``), else it is the fixed ``buffer=k``.
        max_items: the most items it may ever hold (the cap an auto buffer grows back to).
        min_capacity: the lowest ``capacity`` it had so far.
        limited_by: what sets ``capacity`` now: ``"items"`` (the fixed count, or the cap),
            ``"bytes"`` (the budget over the item size) or ``"threads"`` (one item per
            thread of both stages, the floor, for items larger than that share of the budget).
        item_bytes: an auto buffer's estimated item size in force, in bytes (else ``None``).
        bytes_used: ``used * item_bytes``: the estimated bytes of the items alive now.
        peak_bytes: the highest ``bytes_used`` seen so far (looked at as ``peak_used`` is).
        budget_bytes: the bytes an auto buffer may fill (its share of the run's budget).
        resizes: how many times an auto buffer's count changed.
        samples: how many items an auto buffer estimated.
    """

    capacity: int
    used: int
    queued: int
    peak_used: int
    items_in: int
    items_out: int
    producers: int
    consumers: int
    auto: bool = False
    max_items: int = 0
    min_capacity: int = 0
    limited_by: str = "items"
    item_bytes: int | None = None
    bytes_used: int | None = None
    peak_bytes: int | None = None
    budget_bytes: int | None = None
    resizes: int = 0
    samples: int = 0


@dataclass(frozen=True)
class StageStats:
    """One stage's counters at the time of the snapshot.

    Attributes:
        position: 1 for the source, then 2, 3, ...
        name: the stage function's name.
        role: ``"source"``, ``"then"`` or ``"sink"``.
        threads: how many instances run it: threads, or worker processes when ``processes``.
        state: running, or how it ended.
        items_in: items its threads took from the previous stage.
        items_out: items its threads put into its buffer.
        busy: seconds its threads spent in its own code (summed over threads).
        starved: seconds its threads spent waiting for input.
        blocked: seconds its threads spent waiting for space in its buffer.
        cpu: CPU seconds its threads used, where the platform tells (else ``None``); threads
            its code started itself (a math library's) are not counted here, only in
            :attr:`PipelineStats.process_cpu`.
        buffer: its output buffer (``None`` for a sink).
        threadable: whether it may be given more threads: a source, and a sink not annotated
            ``-> None`` (it returns a value), run on one thread.
        processes: whether its instances are worker processes (``cpu`` is then theirs).
        expected: how many items it will yield, when known before the run (a source made by
            ``Pipeline.from_iterable`` of a sized collection: its ``len()`` at build time).
        failed: items whose call raised and that ``on_error`` handled (per-item operators).
        timed_out: items whose call did not return within the operator's ``timeout``.
        reorder_peak: the most output items that waited at once for their turn to come out
            in input order (they count in ``buffer``).
        abandoned: the helper threads left running a call that timed out.
    """

    position: int
    name: str
    role: str
    threads: int
    state: StageState
    items_in: int
    items_out: int
    busy: float
    starved: float
    blocked: float
    cpu: float | None
    buffer: BufferStatistics | None
    threadable: bool = True
    expected: int | None = None
    failed: int = 0
    timed_out: int = 0
    reorder_peak: int = 0
    abandoned: tuple[str, ...] = ()
    processes: bool = False

    @property
    def label(self) -> str:
        """How messages name this stage, e.g. ``stage 2 'parse' (then)``."""
        return f"stage {self.position} {self.name!r} ({self.role})"

    def item_note(self) -> str:
        """What the report adds about failed, timed-out and reordered items ("" if none)."""
        parts: list[str] = []
        if self.failed:
            parts.append(f"{self.failed:,} failed (handled by on_error)")
        if self.timed_out:
            parts.append(f"{self.timed_out:,} timed out")
        if self.abandoned:
            parts.append(f"abandoned thread(s) {', '.join(self.abandoned)}")
        if self.reorder_peak:
            parts.append(f"reorder window peak {self.reorder_peak:,}")
        return f"{self.label}: {'; '.join(parts)}" if parts else ""

    def share(self, seconds: float, elapsed: float) -> float:
        """``seconds`` as a fraction of the time its threads had (``threads x elapsed``)."""
        if elapsed <= 0:
            return 0.0
        return min(1.0, max(0.0, seconds / (self.threads * elapsed)))


@dataclass(frozen=True)
class PipelineStats:
    """A snapshot of a whole run: ``str()`` of it is the report, ending with the verdict.

    Attributes:
        elapsed: seconds since the run started (until it ended, once it has).
        stages: one entry per stage, source first.
        running: whether the run was still going when the snapshot was taken.
        process_cpu: CPU seconds the whole process used since the run started (until it
            ended), every thread included, the library's or not; ``None`` if not measured.
        cpus: how many CPUs the process may run on, where the platform tells.
        memory: the memory budget of the auto buffers and the process's peak memory growth
            (``None`` when no buffer is auto).
    """

    elapsed: float
    stages: tuple[StageStats, ...]
    running: bool
    process_cpu: float | None = None
    cpus: int | None = None
    memory: MemoryStatistics | None = None

    def __str__(self) -> str:
        return self.report()

    def report(self) -> str:
        """A table (one row per stage, see :data:`REPORT_COLUMNS`) and, last, the verdict."""
        rows = [REPORT_COLUMNS, *(report_row(s, self.elapsed) for s in self.stages)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(REPORT_COLUMNS))]
        lines = [
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
            for row in rows
        ]
        if self.memory is not None:
            lines.append(self.memory.footer())
        lines.extend(note for s in self.stages if (note := s.item_note()))
        state = "running" if self.running else "ended"
        lines.append(f"{state} after {self.elapsed:.2f} s; {self.verdict()}")
        return "\n".join(lines)

    def verdict(self) -> str:
        """One plain-language sentence: which stage limits the pipeline, the evidence, and
        what to do; "likely" where it is an inference, and no advice where the evidence is
        missing or the run too short (the policy and its thresholds: ``_verdict``)."""
        return verdict(self)


REPORT_COLUMNS = ("stage", "threads", "in", "out", "items/s", "busy", "starved", "blocked",
                  "buffer")  # fmt: skip
"""The report's columns; :func:`report_row` fills one row (the live display uses both)."""


def report_row(stage: StageStats, elapsed: float, rate: float | None = None) -> tuple[str, ...]:
    """One stage's cells under :data:`REPORT_COLUMNS`; ``rate`` (items/s) defaults to the
    average since the start. The source's ``out`` shows its total when it is known."""
    done = stage.items_in if stage.role == "sink" else stage.items_out
    if rate is None:
        rate = done / elapsed if elapsed > 0 else 0.0
    out = "-" if stage.role == "sink" else f"{stage.items_out:,}"
    if stage.expected is not None:
        out += f"/{stage.expected:,}"
    buffer = stage.buffer
    return (
        f"{stage.position} {stage.name} ({stage.role})",
        f"{stage.threads} proc" if stage.processes else str(stage.threads),
        "-" if stage.role == "source" else f"{stage.items_in:,}",
        out,
        f"{rate:,.0f}",
        f"{stage.share(stage.busy, elapsed):.0%}",
        f"{stage.share(stage.starved, elapsed):.0%}",
        f"{stage.share(stage.blocked, elapsed):.0%}",
        buffer_cell(buffer),
    )


def buffer_cell(buffer: BufferStatistics | None) -> str:
    """The report's buffer cell: ``peak/capacity``, and for an auto buffer its estimated item
    size, e.g. ``3/4 x50.0MiB``."""
    if buffer is None:
        return "-"
    cell = f"{buffer.peak_used}/{buffer.capacity}"
    if buffer.auto and buffer.item_bytes:
        cell += f" x{size_text(buffer.item_bytes).replace(' ', '')}"
    return cell


def size_text(size: int) -> str:
    """Bytes, readably: ``512 B``, ``4.0 KiB``, ``50.0 MiB``, ``2.0 GiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


@dataclass(frozen=True)
class MemoryStatistics:
    """What a run's auto buffers may fill, and what the process's memory did.

    Attributes:
        budget_bytes: the run's memory budget, shared by its auto buffers.
        budget_source: where it came from (``memory_budget=``, the environment variable, or
            the default share of the memory limit).
        auto_buffers: how many of the run's buffers are auto.
        peak_bytes: the sum of the auto buffers' estimated peaks (``peak_bytes``).
        rss_growth: how much the process's peak resident memory rose since the run started,
            in bytes, where the platform tells (it includes the stages' own work).
    """

    budget_bytes: int
    budget_source: str
    auto_buffers: int
    peak_bytes: int
    rss_growth: int | None

    def footer(self) -> str:
        """One line for the report."""
        rss = "" if self.rss_growth is None else f"; process peak RSS +{size_text(self.rss_growth)}"
        return (
            f"memory: budget {size_text(self.budget_bytes)} ({self.budget_source}) over "
            f"{self.auto_buffers} auto buffer(s); their estimated peaks add up to "
            f"{size_text(self.peak_bytes)}{rss}"
        )


# The package imports this module only when a snapshot's class is first asked for (PEP 562),
# so it cannot rewrite their module before a run hands out a snapshot: they say it here.
for _cls in (BufferStatistics, StageStats, PipelineStats, MemoryStatistics):
    _cls.__module__ = "pipeline_executor"
del _cls
