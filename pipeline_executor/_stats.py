"""Immutable snapshots of what the runner counts, the report, and the bottleneck verdict.

Counting costs nothing per item beyond the counters the buffers keep anyway: the time a
thread spends *starved* (waiting for input) and *blocked* (waiting for space downstream) is
measured only on the slow paths where it waits, and *busy* is the rest of its time alive
(inside the stage's code, or waiting for the GIL to run it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["BufferStatistics", "PipelineStats", "StageState", "StageStats"]


@dataclass(frozen=True)
class BufferStatistics:
    """A snapshot of one stage's output buffer.

    Attributes:
        capacity: the stage's ``buffer``: at most this many items are alive at once.
        used: items alive now: being produced, waiting, or held by a consumer.
        queued: items waiting in the buffer for a consumer.
        peak_used: the highest ``used`` seen so far.
        items_in: items the stage has put into the buffer.
        items_out: items consumers have taken from it.
        producers: threads still producing into it.
        consumers: threads still consuming from it.
    """

    capacity: int
    used: int
    queued: int
    peak_used: int
    items_in: int
    items_out: int
    producers: int
    consumers: int


class StageState(enum.Enum):
    """Where a stage is, or how it ended."""

    RUNNING = "running"
    FINISHED = "finished"  # every thread returned on its own
    CANCELLED = "cancelled"  # stopped by the pipeline (a failure elsewhere, an early stop)
    FAILED = "failed"  # a thread raised
    ABANDONED = "abandoned"  # a thread did not stop within the grace period


@dataclass(frozen=True)
class StageStats:
    """One stage's counters at the time of the snapshot.

    Attributes:
        position: 1 for the source, then 2, 3, ...
        name: the stage function's name.
        role: ``"source"``, ``"then"`` or ``"sink"``.
        threads: how many threads run it.
        state: running, or how it ended.
        items_in: items its threads took from the previous stage.
        items_out: items its threads put into its buffer.
        busy: seconds its threads spent in its own code (summed over threads).
        starved: seconds its threads spent waiting for input.
        blocked: seconds its threads spent waiting for space in its buffer.
        cpu: CPU seconds its threads used, where the platform tells (else ``None``).
        buffer: its output buffer (``None`` for a sink).
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

    @property
    def label(self) -> str:
        """How messages name this stage, e.g. ``stage 2 'parse' (then)``."""
        return f"stage {self.position} {self.name!r} ({self.role})"

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
    """

    elapsed: float
    stages: tuple[StageStats, ...]
    running: bool

    def __str__(self) -> str:
        return self.report()

    def report(self) -> str:
        """A table (stage, threads, items, items/s, busy %, starved %, blocked %, buffer
        peak/size) and, last, the one-line verdict."""
        header = ("stage", "threads", "in", "out", "items/s", "busy", "starved", "blocked",
                  "buffer")  # fmt: skip
        rows: list[tuple[str, ...]] = [header]
        for s in self.stages:
            done = s.items_in if s.role == "sink" else s.items_out
            rate = done / self.elapsed if self.elapsed > 0 else 0.0
            buffer = f"{s.buffer.peak_used}/{s.buffer.capacity}" if s.buffer else "-"
            rows.append(
                (
                    f"{s.position} {s.name} ({s.role})",
                    str(s.threads),
                    "-" if s.role == "source" else f"{s.items_in:,}",
                    "-" if s.role == "sink" else f"{s.items_out:,}",
                    f"{rate:,.0f}",
                    f"{s.share(s.busy, self.elapsed):.0%}",
                    f"{s.share(s.starved, self.elapsed):.0%}",
                    f"{s.share(s.blocked, self.elapsed):.0%}",
                    buffer,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
            for row in rows
        ]
        state = "running" if self.running else "ended"
        lines.append(f"{state} after {self.elapsed:.2f} s; {self.verdict()}")
        return "\n".join(lines)

    def verdict(self) -> str:
        """One plain-language sentence: which stage limits the pipeline, and what to do."""
        if not self.stages or self.elapsed <= 0:
            return "too early to tell"
        busy = {s.position: s.share(s.busy, self.elapsed) for s in self.stages}
        busiest = max(self.stages, key=self._load)
        last = self.stages[-1]
        if self._load(busiest) < 0.5:
            if last.role != "sink" and last.share(last.blocked, self.elapsed) > 0.8:
                return (
                    f"consumer-bound: {last.name!r} waits "
                    f"{last.share(last.blocked, self.elapsed):.0%} of the time for the caller "
                    "to take items -> the loop over the pipeline is the slowest part"
                )
            return (
                f"no bottleneck: no stage is busy half of the time (busiest {busiest.name!r} "
                f"{busy[busiest.position]:.0%})"
            )
        if busiest.role == "source":
            others = [s.share(s.starved, self.elapsed) for s in self.stages[1:]]
            if others and min(others) > 0.8:
                return (
                    f"source-bound: every stage starves more than 80% -> speed up {busiest.name!r}"
                )
            return f"bottleneck: the source {busiest.name!r} (busy {busy[1]:.0%}) -> speed it up"
        detail = f"busy {busy[busiest.position]:.0%} on {busiest.threads} thread(s)"
        upstream = self.stages[busiest.position - 2]
        upstream_blocked = upstream.share(upstream.blocked, self.elapsed)
        if upstream_blocked > 0.2:
            detail += f"; upstream {upstream.name!r} blocked {upstream_blocked:.0%}"
        return f"bottleneck: {busiest.name!r} ({detail}) -> {self._advice(busiest)}"

    def _load(self, stage: StageStats) -> float:
        """How much of the run a stage kept busy: its busy share, or the CPUs it used.

        Under the GIL a thread waiting to get it back after a wait counts as waiting, so a
        CPU-bound stage on several threads looks half idle; its CPU time tells the truth.
        """
        cores = (stage.cpu or 0.0) / self.elapsed
        return max(stage.share(stage.busy, self.elapsed), cores)

    def _advice(self, stage: StageStats) -> str:
        if stage.cpu is not None and stage.busy > 0:
            computing = stage.cpu / stage.busy  # of its busy time, how much ran on a CPU
            cores = stage.cpu / self.elapsed  # how many CPUs it kept busy at once
            if stage.threads > 1 and cores < 1.2 and computing > 0.8 / stage.threads:
                return (
                    f"CPU-bound under the GIL ({cores:.1f} CPUs on {stage.threads} threads): "
                    "more threads will not help; use processes or code that releases the GIL"
                )
            if stage.threads == 1 and computing > 0.8:
                return (
                    f"give {stage.name!r} more threads if its work releases the GIL (I/O, "
                    "numpy, hashlib); it is CPU-bound, and pure Python would not speed up"
                )
        return f"give {stage.name!r} more threads"
