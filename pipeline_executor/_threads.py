"""The local engine: stage instances on threads of this process, or in worker processes,
joined by the bounded buffers of ``_channel``.

:class:`ThreadHost` runs one instance of a stage on a named daemon thread: it calls the
stage's function with its input receiver, sends what the generator yields, and closes the
generator in its own thread whatever happens (so the stage's ``finally`` runs there). A
process stage's instances are :class:`~pipeline_executor._process.ProcessHost`s, whose thread
is a proxy for a worker process; both report to the same supervisor.

Worker threads are daemon threads only so that one stuck in a call nothing can interrupt, or
a pipeline iterated and never closed, cannot keep the interpreter from exiting: every thread
is joined before the caller gets control back, except one given up after the grace period.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, cast

from ._budget import peak_rss, run_budget, split_budget
from ._channel import Activity, Channel, Receiver, Sender
from ._errors import Cancelled
from ._hosting import LocalHost
from ._stages import StageSpec
from ._state import StageState
from ._supervise import Host, RunOptions, Supervisor, Wiring

if TYPE_CHECKING:
    from ._budget import Budget
    from ._process import Launcher
    from ._stats import MemoryStatistics

__all__ = ["LOCAL", "LocalEngine", "ThreadHost"]


def _close(iterator: object) -> None:
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


class ThreadHost(LocalHost):
    """One instance of a stage on a thread of this process."""

    def __init__(
        self,
        supervisor: Supervisor,
        stage: StageSpec,
        index: int,
        receiver: Receiver[object] | None,
        sender: Sender[object] | None,
    ) -> None:
        super().__init__(supervisor, stage, index, receiver, sender)
        self._cpu: float | None = None  # CPU seconds, recorded by the thread as it ends

    @property
    def title(self) -> str:
        """``thread <name>``."""
        return f"thread {self.name}"

    def cancel(self) -> None:
        """Nothing to do: a thread waits only on its buffers, which the abort wakes."""

    def kill(self) -> bool:
        """A thread cannot be killed."""
        return False

    def cpu(self) -> float | None:
        """CPU seconds used so far (read from the thread's clock while it runs)."""
        if self._cpu is not None or self.thread.ident is None:
            return self._cpu
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(self.thread.ident))
        except (AttributeError, OSError, ValueError):  # not POSIX, or just ended
            return None

    def describe(self) -> str:
        """What it is doing: its outcome, what it waits for, or the line of its own code."""
        if self.outcome is not None:
            return self.outcome.value
        if self.meter.activity is Activity.BUSY:
            from ._diagnose import location  # only a diagnosis asks

            where = location(self.thread.ident)
            if where is not None:
                return f"inside its own code at {where}"
        return self.meter.activity.value

    def _work(self) -> None:
        stage, receiver, out = self.stage, self.receiver, self.sender
        supervisor = self._supervisor
        self.meter.started = time.perf_counter()
        outcome = StageState.FINISHED
        stopped = False  # we cancelled this stage
        iterator: Iterator[object] | None = None
        try:
            if out is not None:
                out.reserve()
            call_args = stage.args if receiver is None else (receiver, *stage.args)
            result = stage.fn(*call_args, **stage.kwargs)
            if out is None:
                if stage.threads == 1:
                    supervisor.set_result(result)
            else:
                iterator = iter(cast("Iterable[object]", result))
                del result
                send = out.send
                for item in iterator:
                    send(item)
            if receiver is not None and receiver.halted:  # it swallowed our stop, then ended
                outcome = StageState.CANCELLED
        except Cancelled as stop:
            stopped = True
            outcome = StageState.CANCELLED
            if receiver is not None:  # even a stage that swallows the stop finds its input
                receiver.cancel(type(stop))  # ended while we close it
        except BaseException as exc:  # every failure is the caller's to see
            outcome = supervisor.record(exc, self, stopping=False)
        finally:
            try:
                _close(iterator)  # in this thread: the generator's finally runs here
            except BaseException as exc:
                if supervisor.record(exc, self, stopping=stopped) is StageState.FAILED:
                    outcome = StageState.FAILED
            iterator = None
            if receiver is not None:
                receiver.close()
            if out is not None:
                out.close()
            self._cpu = time.thread_time()
            self.meter.ended = time.perf_counter()
            supervisor.finished(self, outcome)


def _process() -> ModuleType:
    """The process hosts' module, imported when a run first has a process stage: importing
    multiprocessing would cost every other run about 30 ms."""
    from . import _process as module

    return module


class LocalEngine:
    """Runs every stage on this machine: threads, and worker processes for process stages."""

    def __repr__(self) -> str:
        return "LocalEngine()"

    def wire(
        self, stages: Sequence[StageSpec], supervisor: Supervisor, options: RunOptions
    ) -> Wiring:
        """One buffer per stage with an output, one host per stage instance."""
        links: list[Channel[object]] = []
        outputs: dict[int, Channel[object]] = {}
        hosts: list[Host] = []
        launcher: Launcher | None = None
        if any(stage.processes for stage in stages):
            launcher = _process().context(options.start_method)
        budget = options.memory_budget if options.memory_budget is not None else run_budget(None)
        shares = split_budget(budget, [stage.buffer for stage in stages])
        rss_started = peak_rss()
        receivers: list[Receiver[object]] = []
        for index, stage in enumerate(stages):
            inputs = receivers
            out: Channel[object] | None = None
            if stage.buffer is None:
                receivers = []
            else:
                consumers = stages[index + 1].threads if index + 1 < len(stages) else 1
                out = Channel[object].for_buffer(
                    stage.buffer, shares[index], producers=stage.threads, consumers=consumers
                )
                links.append(out)
                outputs[stage.position] = out
                receivers = out.receivers
                if stage.ordered and stage.threads > 1:  # outputs in input order (_order)
                    from ._order import order_stage

                    order_stage(inputs, out.senders)
            for i in range(stage.threads):
                receiver = inputs[i] if inputs else None
                sender = out.senders[i] if out is not None else None
                if stage.processes:
                    assert launcher is not None
                    host = _process().ProcessHost(supervisor, stage, i, receiver, sender, launcher)
                    hosts.append(host)
                else:
                    hosts.append(ThreadHost(supervisor, stage, i, receiver, sender))
        # Worker processes start before any thread of the run: a process forked while one of
        # our threads holds a lock (the import lock, say) would inherit it held, forever.
        hosts.sort(key=lambda host: not host.stage.processes)
        return Wiring(
            links,
            outputs,
            hosts,
            receivers[0] if receivers else None,
            memory=lambda: _memory_statistics(budget, links, rss_started),
        )


def _memory_statistics(
    budget: Budget, links: Sequence[Channel[object]], rss_started: int | None
) -> MemoryStatistics | None:
    """The memory line of the statistics, asked for only when a snapshot is taken."""
    from ._observe import memory_statistics

    return memory_statistics(budget, links, rss_started)


LOCAL = LocalEngine()
"""The default engine."""
