"""The threaded backend: runs each stage's instances on named threads joined by bounded buffers.

Ownership. An :class:`_Execution` owns every thread it starts and joins it before the caller
gets control back; the only exception is a thread stuck in a call that cannot be interrupted,
which is abandoned after a grace period with a warning naming its stage.

Failure. A worker catches every ``BaseException`` its stage raises, records it, and stops the
pipeline: every buffer is aborted, so every thread blocked on one wakes, closes its stage's
generator (running its ``finally`` blocks) and returns. The caller raises the first failure
(see ``_errors`` for the rule) once the threads are joined.
"""

from __future__ import annotations

import atexit
import threading
import time
import warnings
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, cast

from ._channel import Aborted, Cancelled, Channel, ChannelTimeout, Receiver, Sender
from ._errors import InactivityError, add_note
from ._signals import interrupts_deferred, sigterm_as_exit
from ._stages import StageSpec

__all__ = ["GRACE_PERIOD", "ThreadBackend"]

GRACE_PERIOD = 1.0
"""Seconds a stopped pipeline waits for its threads before abandoning the ones still running."""


class _Failure(NamedTuple):
    exc: BaseException
    stage: StageSpec | None  # None: the cause came from outside every stage (inactivity)
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

    def check(self) -> None:
        """Raise :class:`InactivityError` if nothing moved since ``timeout`` seconds ago."""
        now = time.monotonic()
        moved = sum(channel.moved() for channel in self._channels)
        if moved != self._moved:
            # Something moved since the last check, so at most now - _since ago.
            self._moved = moved
            self._since = now
        elif now - self._since >= self.timeout:
            raise InactivityError(self.timeout)


class _Execution:
    """One run of a pipeline: its buffers, its threads, and what went wrong."""

    def __init__(self, stages: Sequence[StageSpec]) -> None:
        self._stages = stages
        self._lock = threading.Lock()  # guards _failures, _aborted, _running
        self._failures: list[_Failure] = []
        self._aborted = False
        # Set when the last stage has finished or the pipeline is stopping: what run() waits for.
        self._last_stage_done = threading.Event()
        self._last_stage_running = stages[-1].threads
        self._all_done = threading.Event()
        self._result: object = None
        self.channels: list[Channel[object]] = []
        self._threads: list[threading.Thread] = []
        self._stage_of: dict[threading.Thread, StageSpec] = {}
        self._running: dict[threading.Thread, StageSpec] = {}  # the threads not finished yet
        receivers: list[Receiver[object]] = []
        for index, stage in enumerate(stages):
            inputs = receivers
            out: Channel[object] | None = None
            if stage.buffer is None:
                receivers = []
            else:
                consumers = stages[index + 1].threads if index + 1 < len(stages) else 1
                out = Channel[object](stage.buffer, producers=stage.threads, consumers=consumers)
                self.channels.append(out)
                receivers = out.receivers
            for i in range(stage.threads):
                receiver = inputs[i] if inputs else None
                sender = out.senders[i] if out is not None else None
                thread = threading.Thread(
                    target=self._work,
                    args=(stage, receiver, sender),
                    name=f"pipeline-{stage.name}-{i}",
                    # Every thread is joined before the caller gets control back; daemon
                    # only so that a thread abandoned while stuck, or a pipeline never
                    # closed, cannot keep the interpreter from exiting (see _abort_at_exit).
                    daemon=True,
                )
                self._threads.append(thread)
                self._stage_of[thread] = stage
        # The caller's receiver when the last stage is not a sink.
        self.output: Receiver[object] | None = receivers[0] if receivers else None

    # -- in the workers ------------------------------------------------------------------

    def _work(
        self, stage: StageSpec, receiver: Receiver[object] | None, out: Sender[object] | None
    ) -> None:
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
        except Cancelled:
            stopped = True
        except BaseException as exc:  # every failure is the caller's to see
            self._record(exc, stage, stopped=_stopped_by_us(exc))
        finally:
            try:
                _close(iterator)  # in this thread: the generator's finally runs here
            except BaseException as exc:
                self._record(exc, stage, stopped=stopped or _stopped_by_us(exc))
            iterator = None
            if receiver is not None:
                receiver.close()
            if out is not None:
                out.close()
            self._finished(stage)

    def _record(self, exc: BaseException, stage: StageSpec, *, stopped: bool) -> None:
        if isinstance(exc, Cancelled):
            return
        with self._lock:
            # A failure while we were stopping the stage is a consequence of the stop when
            # the pipeline is aborting; after a downstream stage merely finished early, it
            # is a failure of its own.
            if stopped and self._aborted:
                return
            self._failures.append(_Failure(exc, stage, threading.current_thread().name))
            first = not self._aborted
            self._aborted = True
        if first:
            self._abort_channels()

    def _finished(self, stage: StageSpec) -> None:
        with self._lock:
            del self._running[threading.current_thread()]
            if stage.position == len(self._stages):
                self._last_stage_running -= 1
                if self._last_stage_running == 0:
                    self._last_stage_done.set()
            if not self._running:
                self._all_done.set()

    # -- in the caller -------------------------------------------------------------------

    def start(self) -> None:
        """Start every thread; if one cannot start, stop and join the ones that did."""
        _LIVE.add(self)
        with self._lock:
            self._running = dict(self._stage_of)
        started = 0
        try:
            # A Ctrl-C in the middle of Thread.start() would leave us not knowing whether
            # that thread runs: hold SIGINT back until every thread is started (the threads
            # inherit the mask, so the signal can only go to the caller's thread).
            with interrupts_deferred():
                for thread in self._threads:
                    thread.start()
                    started += 1
        except BaseException:  # e.g. "can't start new thread": nothing else has run yet
            with self._lock:
                for unstarted in self._threads[started:]:
                    del self._running[unstarted]
                if not self._running:
                    self._all_done.set()
            self.abort()
            self.shutdown()
            raise

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

    def wait(self, inactivity_timeout: float | None) -> None:
        """Wait until the last stage has finished or the pipeline is stopping."""
        if inactivity_timeout is None:
            self._last_stage_done.wait()
            return
        watchdog = _Watchdog(inactivity_timeout, self.channels)
        while not self._last_stage_done.wait(watchdog.interval):
            try:
                watchdog.check()
            except InactivityError as exc:
                self.abort(exc)

    def shutdown(self, grace: float = GRACE_PERIOD) -> None:
        """Join every thread; abandon, with a warning, any still running after ``grace`` s."""
        _LIVE.discard(self)
        if not self._all_done.wait(grace):
            with self._lock:
                stuck = list(self._running.items())
            if stuck:
                # Stop the others, if the pipeline was not stopping already.
                self.abort()
                names = "; ".join(f"{stage.label} in thread {t.name}" for t, stage in stuck)
                warnings.warn(
                    f"pipeline_executor: {names} did not stop within {grace:g} s of the "
                    "pipeline stopping; abandoned (the thread exits when its current call "
                    "returns)",
                    RuntimeWarning,
                    stacklevel=4,
                )
        with self._lock:
            running = set(self._running)
        for thread in self._threads:
            if thread not in running and thread.ident is not None:
                thread.join()

    def raise_failure(self) -> None:
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
        self, stages: Sequence[StageSpec], *, inactivity_timeout: float | None
    ) -> Iterator[object]:
        """Run ``stages`` and yield the last one's items in the caller's thread."""
        execution = _Execution(stages)
        output = execution.output
        assert output is not None, "iterate() needs a pipeline without a sink"
        watchdog = None
        if inactivity_timeout is not None:
            watchdog = _Watchdog(inactivity_timeout, execution.channels)
            output.timeout = watchdog.interval
        completed = False
        try:
            with sigterm_as_exit():
                execution.start()
                yield from _receive(execution, output, watchdog)
            completed = True
        finally:
            if not completed:  # the consumer stopped early, raised, or was interrupted
                execution.abort()
            output.close()
            execution.shutdown()
        execution.raise_failure()

    def run(self, stages: Sequence[StageSpec], *, inactivity_timeout: float | None) -> object:
        """Run ``stages`` to the end of the sink and return what the sink returned."""
        execution = _Execution(stages)
        try:
            with sigterm_as_exit():
                execution.start()
                execution.wait(inactivity_timeout)
        except BaseException:  # Ctrl-C or SIGTERM while waiting: stop, join, re-raise as is
            execution.abort()
            execution.shutdown()
            raise
        execution.shutdown()
        execution.raise_failure()
        return execution.result()


def _receive(
    execution: _Execution, output: Receiver[object], watchdog: _Watchdog | None
) -> Iterator[object]:
    """Yield the last stage's items until its end, a stop, or the watchdog firing."""
    while True:
        try:
            item = next(output)
        except StopIteration:
            return
        except ChannelTimeout:
            assert watchdog is not None
            try:
                watchdog.check()
            except InactivityError as exc:
                execution.abort(exc)
                return
            continue
        except Aborted:
            return
        yield item
        del item  # the next item is asked for: this one is no longer held


THREADS = ThreadBackend()
"""The default backend."""
