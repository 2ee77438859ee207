"""The bottleneck verdict: which stage limits a run, how sure that is, and what the user can do.

The policy reads the run as a chain of buffers. Where a stage's input buffer is under pressure
(its producer is *blocked* on it, or it is *filling*: far more items waiting than consumers
hold, never full yet) while the stage itself is busy and not blocked downstream, that stage is
slower than what feeds it; a busy source whose consumer *starves* is slower than what follows.
Busy shares alone mislead twice: a thread waiting for the GIL counts as busy, and a producer
filling an empty buffer is never blocked, however much faster it is. CPU time of the whole
process (threads the library did not start included, such as a math library's own) decides
between "more threads", "the GIL" and "all CPUs busy".

Advice names only actions valid for the stage's role: a source, and a sink that returns a
value, run on one thread. A verdict drawn from weaker evidence says "likely"; with none, it
says so instead of guessing. The thresholds below are named so the policy can be read and
tuned in one place; this module imports nothing of ours (it sees statistics through
``RunView``), so ``_stats`` can depend on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = [
    "BLOCKED",
    "BUSY",
    "COMPUTING",
    "FILLING_MIN_ITEMS",
    "FILLING_SHARE",
    "GIL_CORES",
    "GIL_SHARE",
    "KEEPS_UP",
    "MIN_ELAPSED",
    "SATURATED",
    "SOURCE_BOUND",
    "STARVED",
    "RunView",
    "verdict",
]

MIN_ELAPSED = 0.5
"""Seconds a run must last before a verdict: shorter runs are "too short to judge".

Measured here (2 cores shared with other work): starting and joining the threads of a
3-stage run takes 2-5 ms, which is at most 1% of the shares at 0.5 s; the GIL hands over
every 5 ms, so 0.5 s is about 100 turns. On the four real scenarios of ``tests/test_stats.py``
(a sleeping stage, a pure-Python stage on 2 threads, a slow source, a slow sink), run 5 times
at each length, every verdict from 0.5 s on agreed with the verdict of a 3 s run; the
2-thread pure-Python one disagreed in 1-2 of 5 runs of 0.1-0.3 s.
"""

BUSY = 0.5
"""A stage busy (or using CPUs) at least this share of its threads' time may limit the run."""

BLOCKED = 0.2
"""A producer blocked this share of its time found its buffer full: what follows is slower,
unless its consumer starves (see ``KEEPS_UP``)."""

STARVED = 0.2
"""A stage after the source starving this share of its time waits for the source."""

KEEPS_UP = 0.5
"""A consumer starving at least this share of its time keeps up on average: its producer's
blocked time was bursts, or waiting to get the GIL back, not backpressure."""

SOURCE_BOUND = 0.8
"""Every stage after the source starving more than this share: plainly source-bound."""

FILLING_MIN_ITEMS = 16
"""A buffer that never filled counts as *filling* only with at least this many items
waiting at its peak beyond one per thread of the stages it joins..."""

FILLING_SHARE = 0.1
"""...and at least this share of the items that went through it (a fast producer hands
over bursts of items between two switches of the GIL; bursts are not a backlog)."""

GIL_CORES = 1.3
"""A process using at most this many CPUs in all may be held to one by the GIL."""

GIL_SHARE = 0.5
"""A stage using at least this share of the CPU of a process held to about one computes
under the GIL (a share, not CPU seconds: other processes on the machine lower both)."""

COMPUTING = 0.3
"""A stage that spent at least this share of its busy time on a CPU computes, rather than
waits (on I/O, a sleep, or the threads of a library it calls). Busy time includes waiting
for the GIL, and for a CPU on a loaded machine: a pure-Python stage on 2 threads measured
0.4-0.9 here, a sleeping one under 0.05."""

SATURATED = 0.9
"""A process using this share of the CPUs it may run on is limited by them, not by threads."""

ON_CPU = 0.75
"""Worker processes that compute (see :data:`COMPUTING`) but were on a CPU for less than this
share of their busy time also waited, on I/O or for CPUs that other work held: a pure-Python
stage on 2 workers measured 0.95-1.00 on the quiet machine here, 0.6 beside a test run."""


class BufferView(Protocol):
    """What the verdict reads of a buffer (see ``BufferStatistics``)."""

    @property
    def capacity(self) -> int: ...
    @property
    def peak_used(self) -> int: ...
    @property
    def items_in(self) -> int: ...
    @property
    def limited_by(self) -> str: ...
    @property
    def item_bytes(self) -> int | None: ...


class StageView(Protocol):
    """What the verdict reads of a stage (see ``StageStats``)."""

    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def threads(self) -> int: ...
    @property
    def busy(self) -> float: ...
    @property
    def starved(self) -> float: ...
    @property
    def blocked(self) -> float: ...
    @property
    def cpu(self) -> float | None: ...
    @property
    def threadable(self) -> bool: ...
    @property
    def processes(self) -> bool: ...
    @property
    def buffer(self) -> BufferView | None: ...
    def share(self, seconds: float, elapsed: float) -> float: ...


class RunView(Protocol):
    """What the verdict reads of a run (see ``PipelineStats``)."""

    @property
    def elapsed(self) -> float: ...
    @property
    def running(self) -> bool: ...
    @property
    def stages(self) -> Sequence[StageView]: ...
    @property
    def process_cpu(self) -> float | None: ...
    @property
    def cpus(self) -> int | None: ...


def verdict(run: RunView) -> str:
    """One plain-language sentence: which stage limits ``run``, the evidence, and what to do."""
    if not run.stages:
        return "too early to tell"
    if run.elapsed < MIN_ELAPSED:
        needs = f"a verdict needs {MIN_ELAPSED:g} s of run"
        if run.running:
            return f"too early to judge ({run.elapsed:.2f} s so far; {needs})"
        return f"too short to judge ({run.elapsed:.2f} s; {needs})"
    return _Reading(run).verdict()


class _Reading:
    """One run's statistics, read by the policy."""

    def __init__(self, run: RunView) -> None:
        self.run = run
        self.stages = run.stages
        self.elapsed = run.elapsed
        self.process = None if run.process_cpu is None else run.process_cpu / run.elapsed

    def share(self, stage: StageView, seconds: float) -> float:
        return stage.share(seconds, self.elapsed)

    def cores(self, stage: StageView) -> float | None:
        return None if stage.cpu is None else stage.cpu / self.elapsed

    def load(self, stage: StageView) -> float:
        """Busy share, or the CPUs it used (a CPU-bound stage on several threads waits for the
        GIL between its turns, which its busy share does not count)."""
        cores = self.cores(stage) or 0.0
        if stage.processes:  # one CPU each at most: their share of the CPUs they could use
            cores /= stage.threads
        return max(self.share(stage, stage.busy), cores)

    def held_back(self, index: int) -> bool:
        """Whether stage ``index`` waited for space because what follows it is slower."""
        stage = self.stages[index]
        if self.share(stage, stage.blocked) < BLOCKED:
            return False
        if index + 1 == len(self.stages):  # the caller's loop: nothing measured of it
            return True
        after = self.stages[index + 1]
        return self.share(after, after.starved) < KEEPS_UP

    def filling(self, index: int) -> bool:
        """Whether the buffer after stage ``index`` built up a backlog without ever filling."""
        producer = self.stages[index]
        buffer = producer.buffer
        if buffer is None or buffer.peak_used >= buffer.capacity:
            return False
        consumers = self.stages[index + 1].threads if index + 1 < len(self.stages) else 1
        backlog = buffer.peak_used - producer.threads - consumers
        return backlog >= max(FILLING_MIN_ITEMS, FILLING_SHARE * buffer.items_in)

    def pressed(self, index: int) -> bool:
        """Whether what feeds stage ``index`` is faster than it (for the source: whether
        what follows it waits for it)."""
        if index == 0:
            if len(self.stages) == 1:
                return True
            after = self.stages[1]
            return self.share(after, after.starved) >= STARVED
        return self.held_back(index - 1) or self.filling(index - 1)

    def waited_for(self, index: int) -> bool:
        """Whether the stage after ``index`` starves most of the time: it waits for this one.

        With a full buffer before the stage too, that settles it however low its busy share
        (waiting for the GIL after each hand-off counts as blocked or starved, not busy).
        """
        if index + 1 == len(self.stages):
            return False
        after = self.stages[index + 1]
        return self.share(after, after.starved) >= KEEPS_UP

    def verdict(self) -> str:
        starving = self.starved_by_bytes()
        if starving is not None:
            return starving
        candidates = [
            i
            for i, s in enumerate(self.stages)
            if self.pressed(i)
            and not self.held_back(i)
            and (self.load(s) >= BUSY or self.waited_for(i))
        ]
        if candidates:
            index = max(candidates, key=lambda i: self.load(self.stages[i]))
            return self.blame(index, sure=len(candidates) == 1)
        last = self.stages[-1]
        if last.role != "sink" and (
            self.held_back(len(self.stages) - 1) or self.filling(len(self.stages) - 1)
        ):
            blocked = self.share(last, last.blocked)
            how = (
                f"waits {blocked:.0%} of the time for the caller to take items"
                if blocked >= BLOCKED
                else "fills its buffer faster than the caller takes items"
            )
            return (
                f"consumer-bound: {last.name!r} {how} -> the loop over the "
                "pipeline is the slowest part"
            )
        busiest = max(self.stages, key=self.load)
        if self.load(busiest) < BUSY:
            return (
                f"no bottleneck: no stage is busy half of the time (busiest {busiest.name!r} "
                f"{self.load(busiest):.0%})"
            )
        return (
            f"no clear bottleneck: {busiest.name!r} is busy {self.load(busiest):.0%} of the "
            "time, but no buffer before it is full or filling; nothing to advise yet"
        )

    def starved_by_bytes(self) -> str | None:
        """A buffer whose count its bytes budget sets, with its producer blocked and its
        consumer starved: it is too small for the items, and only its budget can say so."""
        for index, stage in enumerate(self.stages[:-1]):
            buffer, after = stage.buffer, self.stages[index + 1]
            if (
                buffer is None
                or buffer.limited_by == "items"
                or self.share(stage, stage.blocked) < BLOCKED
                or self.share(after, after.starved) < STARVED
            ):
                continue
            size = buffer.item_bytes or 0
            return (
                f"buffer-bound: the buffer of {stage.name!r} is limited by its memory budget "
                f"({buffer.capacity:,} items of about {_size(size)}); {stage.name!r} blocked "
                f"{self.share(stage, stage.blocked):.0%} while {after.name!r} starved "
                f"{self.share(after, after.starved):.0%} -> give it more: "
                "buffer=AutoBuffer(max_bytes=...) on that stage, or run(memory_budget=...)"
            )
        return None

    def blame(self, index: int, *, sure: bool) -> str:
        stage = self.stages[index]
        if index == 0 and len(self.stages) > 1:
            later = [self.share(s, s.starved) for s in self.stages[1:]]
            if min(later) > SOURCE_BOUND:
                lead = f"source-bound: every later stage waits for {stage.name!r} "
                lead += f"more than {SOURCE_BOUND:.0%} of the time"
                return f"{lead} -> {self.advice(stage)}"
        unit = "worker process(es)" if stage.processes else "thread(s)"
        detail = f"busy {self.load(stage):.0%} on {stage.threads} {unit}"
        if index > 0:
            before = self.stages[index - 1]
            if self.held_back(index - 1):
                blocked = self.share(before, before.blocked)
                detail += f"; upstream {before.name!r} blocked {blocked:.0%}"
            else:
                buffer = before.buffer
                assert buffer is not None  # filling() found a buffer
                detail += (
                    f"; upstream {before.name!r} is faster: the buffer between them is filling "
                    f"({buffer.peak_used:,} of {buffer.capacity:,} at its peak, never full)"
                )
        else:
            after = self.stages[1] if len(self.stages) > 1 else None
            if after is not None:
                detail += f"; {after.name!r} starved {self.share(after, after.starved):.0%}"
        head = "bottleneck" if sure else "likely bottleneck"
        return f"{head}: {stage.name!r} ({detail}) -> {self.advice(stage)}"

    def advice(self, stage: StageView) -> str:
        """What can speed ``stage`` up, given what its CPU time and the process's say."""
        if stage.processes:
            return self.process_advice(stage)
        cores = self.cores(stage)
        process = self.process
        cpus = self.run.cpus
        if process is not None and cpus and process >= SATURATED * cpus:
            return (
                f"the process kept the {cpus} CPU(s) it may use busy ({process:.1f} in use): "
                f"CPU-bound, more threads will not help; make {stage.name!r} cheaper or use "
                "more cores"
            )
        if process is None or cores is None:
            return (
                f"{_more_threads(stage)}, if its work waits (I/O) or releases the GIL: the "
                "CPU it used was not measured"
            )
        computing = stage.busy > 0 and cores * self.elapsed >= COMPUTING * stage.busy
        if computing and process <= GIL_CORES and cores >= GIL_SHARE * process:
            used = f"{cores:.1f} CPU, the whole process {process:.1f}"
            if stage.threads > 1:
                return (
                    f"likely CPU-bound under the GIL ({stage.threads} threads used {used}): "
                    "more threads will not help; use worker processes or code that releases "
                    "the GIL"
                )
            if not stage.threadable:
                return (
                    f"it computes on its one thread ({used}): speed up {stage.name!r}, or move "
                    f"its work into worker processes; {_one_thread(stage)}"
                )
            return (
                f"it computes on its one thread ({used}): more threads help only if its work "
                "releases the GIL (I/O, numpy, hashlib); pure Python needs worker processes"
            )
        more = _more_threads(stage)
        if process > GIL_CORES:
            return f"not held by the GIL (the process used {process:.1f} CPUs) -> {more}"
        return more

    def process_advice(self, stage: StageView) -> str:
        """What can speed up a stage whose instances are worker processes (no GIL between
        them; their CPU is their own, not this process's)."""
        cores = self.cores(stage)
        n = stage.threads
        if cores is None:
            return (
                f"give {stage.name!r} more processes if CPUs are free (its workers' CPU was "
                "not measured)"
            )
        total = cores + (self.process or 0.0)
        cpus = self.run.cpus
        if cpus and total >= SATURATED * cpus:
            return (
                f"its {n} worker process(es) and this process kept the {cpus} CPU(s) busy "
                f"({total:.1f} in use): more processes will not help; make {stage.name!r} "
                "cheaper or use more cores"
            )
        if stage.busy > 0 and cores * self.elapsed >= COMPUTING * stage.busy:
            on_cpu = cores * self.elapsed / stage.busy
            if on_cpu < ON_CPU:
                return (
                    f"its {n} worker process(es) were on a CPU for {on_cpu:.0%} of their busy "
                    f"time ({cores:.1f} CPUs) and waited the rest, on I/O or for CPUs that "
                    f"other work held: give {stage.name!r} more processes if CPUs are free"
                )
            return (
                f"its {n} worker process(es) compute all the time ({cores:.1f} CPUs): give "
                f"{stage.name!r} more processes"
            )
        return (
            f"its {n} worker process(es) mostly wait ({cores:.1f} CPUs): if its work waits "
            f"on I/O, threads are cheaper; else give {stage.name!r} more processes"
        )


def _one_thread(stage: StageView) -> str:
    if stage.role == "source":
        return "a source runs on one thread"
    return "a sink that returns a value runs on one thread"


def _more_threads(stage: StageView) -> str:
    """The advice "more threads", in the form valid for the stage's role."""
    if stage.threadable:
        return f"give {stage.name!r} more threads"
    if stage.role == "source":
        return (
            f"a source runs on one thread: speed up {stage.name!r}, or move its slow part "
            "into a then() stage with threads after it"
        )
    return (
        f"{stage.name!r} returns a value, so it runs on one thread: speed it up, move its work "
        "into a threaded stage before it, or make it return None (annotated '-> None') and "
        "give it threads"
    )


def _size(size: int) -> str:
    """Bytes, readably: ``512 B``, ``4.0 KiB``, ``50.0 MiB``, ``2.0 GiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
