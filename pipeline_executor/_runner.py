"""The threaded backend: runs each stage's instances on named threads joined by bounded buffers.

Ownership. An :class:`_Execution` owns every thread it starts and joins it before the caller
gets control back; the only exception is a thread stuck in a call that cannot be interrupted,
which is abandoned after a grace period with a warning naming its stage and its line.

Failure. A worker catches every ``BaseException`` its stage raises, records it, and stops the
pipeline: every buffer is aborted, so every thread blocked on one wakes, closes its stage's
generator (running its ``finally`` blocks) and returns. The caller raises the first failure
(see ``_errors`` for the rule) once the threads are joined, with a shutdown report attached.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, TextIO, cast

from ._budget import Budget, peak_rss, run_budget, split_budget
from ._channel import Aborted, Cancelled, Channel, ChannelTimeout, Receiver
from ._errors import InactivityError, add_note, warn_at_caller
from ._monitor import Monitor, attach, detach
from ._observe import (
    Worker,
    add_shutdown_report,
    memory_statistics,
    report_progress,
    snapshot,
)
from ._order import order_stage
from ._progress import ProgressDisplay
from ._signals import interrupts_deferred, sigterm_as_exit
from ._stages import StageSpec
from ._stats import MemoryStatistics, PipelineStats, StageState

__all__ = ["GRACE_PERIOD", "THREADS", "ThreadBackend"]

GRACE_PERIOD = 1.0
"""Seconds a stopped pipeline waits for its threads before abandoning the ones still running."""


class _Failure(NamedTuple):
    exc: BaseException
    stage: StageSpec | None  # None: the cause came from outside every stage
    thread: str


def _stopped_by_us(exc: BaseException) -> bool:
    """Whether ``exc`` happened while handling the cancellation we threw into the stage."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, Cancelled):
            return True
        seen.add(id(cause))
        cause = cause.__context__
    return False


def _close(iterator: object) -> None:
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


class _Watchdog:
    """Tells when no item has moved through any buffer for ``timeout`` seconds."""

    def __init__(self, timeout: float, channels: Sequence[Channel[object]]) -> None:
        self.timeout = timeout
        self.interval = timeout / 4
        self._channels = channels
        self._moved = -1
        self._since = time.monotonic()

    def stalled(self) -> bool:
        """Whether nothing moved since at least ``timeout`` seconds ago."""
        now = time.monotonic()
        moved = sum(channel.moved() for channel in self._channels)
        if moved != self._moved:
            # Something moved since the last check, so at most now - _since ago.
            self._moved = moved
            self._since = now
            return False
        return now - self._since >= self.timeout


class _Execution:
    """One run of a pipeline: its buffers, its threads, and what went wrong."""

    def __init__(self, stages: Sequence[StageSpec], budget: Budget | None = None) -> None:
        self._stages = stages
        self._budget = budget if budget is not None else run_budget(None)
        self._rss_started = peak_rss()
        self._memory_at_end: MemoryStatistics | None = None  # frozen once the run has ended
        self._lock = threading.Lock()  # guards _failures, _aborted, _running
        self._failures: list[_Failure] = []
        self._aborted = False
        # Set when the last stage has finished or the pipeline is stopping: what run() waits for.
        self._last_stage_done = threading.Event()
        self._last_stage_running = stages[-1].threads
        self._all_done = threading.Event()
        self._result: object = None
        self._started_at = time.perf_counter()
        self._ended_at: float | None = None
        # CPU of the whole process (every thread, ours or not) at the start and the end.
        self._cpu_started = time.process_time()
        self._cpu_ended: float | None = None
        self.channels: list[Channel[object]] = []
        self._out: dict[int, Channel[object]] = {}  # stage position -> its output buffer
        self.workers: list[Worker] = []
        self._running: set[Worker] = set()  # the workers whose thread has not finished
        self._helpers: list[threading.Thread] = []  # the monitor's thread, if any
        receivers: list[Receiver[object]] = []
        shares = split_budget(self._budget, [stage.buffer for stage in stages])
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
                self.channels.append(out)
                self._out[stage.position] = out
                receivers = out.receivers
                if stage.ordered and stage.threads > 1:  # outputs in input order (_order)
                    order_stage(inputs, out.senders)
            for i in range(stage.threads):
                worker = Worker(
                    stage, inputs[i] if inputs else None, out.senders[i] if out else None
                )
                for end in (worker.receiver, worker.sender):
                    if end is not None:
                        end.meter = worker.meter
                worker.thread = threading.Thread(
                    target=self._work,
                    args=(worker,),
                    name=f"pipeline-{stage.name}-{i}",
                    # Every thread is joined before the caller gets control back; daemon
                    # only so that a thread abandoned while stuck, or a pipeline never
                    # closed, cannot keep the interpreter from exiting (see _abort_at_exit).
                    daemon=True,
                )
                self.workers.append(worker)
        # The caller's receiver when the last stage is not a sink.
        self.output: Receiver[object] | None = receivers[0] if receivers else None

    # -- in the workers ------------------------------------------------------------------

    def _work(self, worker: Worker) -> None:
        stage, receiver, out = worker.stage, worker.receiver, worker.sender
        worker.meter.started = time.perf_counter()
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
                    self._result = result
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
            outcome = self._record(exc, stage, stopped=_stopped_by_us(exc))
        finally:
            try:
                _close(iterator)  # in this thread: the generator's finally runs here
            except BaseException as exc:
                failed = self._record(exc, stage, stopped=stopped or _stopped_by_us(exc))
                if failed is StageState.FAILED:
                    outcome = failed
            iterator = None
            if receiver is not None:
                receiver.close()
            if out is not None:
                out.close()
            worker.cpu = time.thread_time()
            worker.meter.ended = time.perf_counter()
            worker.outcome = outcome
            self._finished(worker)

    def _record(self, exc: BaseException, stage: StageSpec, *, stopped: bool) -> StageState:
        """Record a failure; say whether it counts as one or as a consequence of our stop."""
        if isinstance(exc, Cancelled):
            return StageState.CANCELLED
        with self._lock:
            # A failure while we were stopping the stage is a consequence of the stop when
            # the pipeline is aborting; after a downstream stage merely finished early, it
            # is a failure of its own.
            if stopped and self._aborted:
                return StageState.CANCELLED
            self._failures.append(_Failure(exc, stage, threading.current_thread().name))
            first = not self._aborted
            self._aborted = True
        if first:
            self._abort_channels()
        return StageState.FAILED

    def _finished(self, worker: Worker) -> None:
        with self._lock:
            self._running.discard(worker)
            if worker.stage.position == len(self._stages):
                self._last_stage_running -= 1
                if self._last_stage_running == 0:
                    self._last_stage_done.set()
            if not self._running:
                self._ended_at = time.perf_counter()
                self._cpu_ended = time.process_time()
                self._all_done.set()

    # -- in the caller -------------------------------------------------------------------

    def start(self) -> None:
        """Start every thread; if one cannot start, stop and join the ones that did."""
        _LIVE.add(self)
        self._started_at = time.perf_counter()
        self._cpu_started = time.process_time()
        with self._lock:
            self._running = set(self.workers)
        started = 0
        try:
            # A signal in the middle of Thread.start() would leave us not knowing whether
            # that thread runs: hold SIGINT and SIGTERM back until every thread is started
            # (the threads inherit the mask, so signals can only go to the caller's thread).
            with interrupts_deferred():
                for worker in self.workers:
                    worker.thread.start()
                    started += 1
        except BaseException:  # e.g. "can't start new thread": nothing else has run yet
            with self._lock:
                for worker in self.workers[started:]:
                    self._running.discard(worker)
                    worker.outcome = StageState.CANCELLED
                if not self._running:
                    self._all_done.set()
            self.abort()
            self.shutdown()
            raise

    def watch(self, monitor: Monitor | None, display: ProgressDisplay | None) -> None:
        """Feed ``monitor`` and the progress display, from a helper thread, until the end."""
        if monitor is not None:
            attach(monitor, self.snapshot)
        callback = monitor.on_progress if monitor is not None else None
        if callback is None and display is None:
            return
        helper = threading.Thread(
            target=report_progress,
            args=(self.snapshot, self._all_done, self.abort, callback, display),
            kwargs={"interval": monitor.interval if monitor is not None else 0.5},
            name="pipeline-monitor",
            daemon=True,
        )
        if display is not None:
            display.start()
        self._helpers.append(helper)
        helper.start()

    def abort(self, cause: BaseException | None = None) -> None:
        """Stop every stage now; ``cause``, if given and first, is what the caller will raise."""
        with self._lock:
            if cause is not None and not self._aborted:
                self._failures.insert(0, _Failure(cause, None, threading.current_thread().name))
            already = self._aborted
            self._aborted = True
        if not already:
            self._abort_channels()

    def _abort_channels(self) -> None:
        self._last_stage_done.set()
        for channel in self.channels:
            channel.abort()

    def stall(self, timeout: float) -> None:
        """Nothing moved for ``timeout`` seconds: describe every thread, then stop."""
        self.abort(InactivityError(timeout, self.diagnosis(self.workers)))

    def wait(self, inactivity_timeout: float | None) -> None:
        """Wait until the last stage has finished or the pipeline is stopping."""
        if inactivity_timeout is None:
            self._last_stage_done.wait()
            return
        watchdog = _Watchdog(inactivity_timeout, self.channels)
        while not self._last_stage_done.wait(watchdog.interval):
            if watchdog.stalled():
                self.stall(inactivity_timeout)

    def shutdown(self, grace: float = GRACE_PERIOD) -> None:
        """Join every thread; abandon, with a warning, any still running after ``grace`` s."""
        _LIVE.discard(self)
        if not self._all_done.wait(grace):
            with self._lock:
                stuck = [w for w in self.workers if w in self._running]
            if stuck:
                self.abort()  # stop the others, if the pipeline was not stopping already
                lines = "\n".join(f"  {line}" for line in self.diagnosis(stuck))
                for worker in stuck:
                    worker.outcome = StageState.ABANDONED
                warn_at_caller(
                    f"pipeline_executor: {self._names(stuck)} did not stop within {grace:g} s "
                    "of the pipeline stopping; abandoned (the thread exits when its current "
                    f"call returns):\n{lines}",
                    RuntimeWarning,
                )
                if self._ended_at is None:
                    self._ended_at = time.perf_counter()
                    self._cpu_ended = time.process_time()
        with self._lock:
            running = set(self._running)
        for worker in self.workers:
            if worker not in running and worker.thread.ident is not None:
                worker.thread.join()
        for helper in self._helpers:
            helper.join(grace)

    @staticmethod
    def _names(workers: Sequence[Worker]) -> str:
        return "; ".join(f"{w.stage.label} in thread {w.thread.name}" for w in workers)

    def diagnosis(self, workers: Sequence[Worker]) -> tuple[str, ...]:
        """One line per thread: its stage, and what it is doing."""
        return tuple(f"{w.stage.label}, thread {w.thread.name}: {w.describe()}" for w in workers)

    def snapshot(self) -> PipelineStats:
        """The statistics of the run so far (or of the whole run, once it has ended)."""
        memory = self._memory_at_end
        if memory is None:
            memory = memory_statistics(self._budget, self.channels, self._rss_started)
            if self._ended_at is not None:  # every later snapshot tells the same
                self._memory_at_end = memory
        return snapshot(
            self._stages,
            self.workers,
            self._out,
            self._started_at,
            self._ended_at,
            cpu_started=self._cpu_started,
            cpu_ended=self._cpu_ended,
            memory=memory,
        )

    def finish(self, monitor: Monitor | None) -> PipelineStats:
        """The final statistics, handed to ``monitor``; call after :meth:`shutdown`."""
        final = self.snapshot()
        if monitor is not None:
            detach(monitor, final)
        return final

    def raise_failure(self, final: PipelineStats) -> None:
        """Raise the root failure, its notes naming its stage and every other failure."""
        with self._lock:
            failures, self._failures = self._failures, []
        if not failures:
            return
        root = failures[0]
        if root.stage is not None:
            add_note(
                root.exc,
                f"pipeline_executor: raised by {root.stage.label} in thread {root.thread}",
            )
        for other in failures[1:]:
            where = other.stage.label if other.stage is not None else "the pipeline"
            add_note(
                root.exc,
                f"pipeline_executor: {where} in thread {other.thread} also failed: "
                f"{type(other.exc).__name__}: {other.exc}",
            )
        add_shutdown_report(root.exc, final)
        exc = root.exc
        del root, failures
        try:
            raise exc
        finally:
            del exc

    def result(self) -> object:
        """The sink's return value (``None`` for a sink on several threads); dropped after."""
        result, self._result = self._result, None
        return result


_LIVE: weakref.WeakSet[_Execution] = weakref.WeakSet()
"""Executions started and not yet shut down."""


@atexit.register
def _abort_at_exit() -> None:
    """At interpreter exit, stop what still runs (a pipeline iterated but never closed), so
    that its stages' ``finally`` blocks run before the daemon threads are dropped."""
    for execution in list(_LIVE):
        execution.abort()
        execution.shutdown()


class ThreadBackend:
    """Runs each stage's instances on threads of this process, joined by bounded buffers."""

    def __repr__(self) -> str:
        return "ThreadBackend()"

    def iterate(
        self,
        stages: Sequence[StageSpec],
        *,
        inactivity_timeout: float | None,
        monitor: Monitor | None = None,
        progress: TextIO | None = None,
        memory_budget: Budget | None = None,
    ) -> Iterator[object]:
        """Run ``stages`` and yield the last one's items in the caller's thread."""
        display = ProgressDisplay(progress) if progress is not None else None
        execution = _Execution(stages, memory_budget)
        output = execution.output
        assert output is not None, "iterate() needs a pipeline without a sink"
        watchdog = None
        if inactivity_timeout is not None:
            watchdog = _Watchdog(inactivity_timeout, execution.channels)
            output.timeout = watchdog.interval
        completed = False
        interrupted: BaseException | None = None
        execution.watch(monitor, display)
        try:
            with sigterm_as_exit():
                execution.start()
                yield from _receive(execution, output, watchdog)
            completed = True
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):  # not the consumer leaving: Ctrl-C, SIGTERM
                interrupted = exc
            raise
        finally:
            if not completed:  # the consumer stopped early, raised, or was interrupted
                execution.abort()
            output.close()
            execution.shutdown()
            final = execution.finish(monitor)
            if interrupted is not None:
                add_shutdown_report(interrupted, final)
                interrupted = None
        execution.raise_failure(final)

    def run(
        self,
        stages: Sequence[StageSpec],
        *,
        inactivity_timeout: float | None,
        monitor: Monitor | None = None,
        progress: TextIO | None = None,
        memory_budget: Budget | None = None,
    ) -> object:
        """Run ``stages`` to the end of the sink and return what the sink returned."""
        display = ProgressDisplay(progress) if progress is not None else None
        execution = _Execution(stages, memory_budget)
        execution.watch(monitor, display)
        try:
            with sigterm_as_exit():
                execution.start()
                execution.wait(inactivity_timeout)
        except BaseException as exc:  # Ctrl-C or SIGTERM while waiting: stop, join, re-raise
            execution.abort()
            execution.shutdown()
            add_shutdown_report(exc, execution.finish(monitor))
            raise
        execution.shutdown()
        execution.raise_failure(execution.finish(monitor))
        return execution.result()


def _receive(
    execution: _Execution, output: Receiver[object], watchdog: _Watchdog | None
) -> Iterator[object]:
    """Yield the last stage's items until its end, a stop, or the watchdog firing."""
    while True:
        try:
            item = next(output)
        except (StopIteration, Aborted):
            return
        except ChannelTimeout:
            pass  # leave the handler: a Ctrl-C meanwhile must not chain to our exception
        else:
            yield item
            del item  # the next item is asked for: this one is no longer held
            continue
        assert watchdog is not None
        if watchdog.stalled():
            execution.stall(watchdog.timeout)
            return


THREADS = ThreadBackend()
"""The default backend."""
