"""Supervision of one run, written once for every engine: failures, stop, join, statistics.

An engine hosts each instance of each stage (a thread of this process; a thread of this
process proxying a worker process; later a Ray actor) and moves items between them. It hands
the :class:`Supervisor` a :class:`Wiring`: the links between stages (which the watchdog and the
statistics read, and which abort wakes), one :class:`Host` per stage instance, and the receiver
of the last stage's items when the caller iterates. Everything else is here, once: the failure
rule, abort, the grace period and what happens to a host that outlives it, the inactivity
watchdog, the stall diagnosis, statistics and the notes every raised exception carries, and
what the caller's thread does with Ctrl-C and SIGTERM. :func:`run` and :func:`iterate` are the
only two lifecycles, and the only callers of the supervisor's caller-side methods, in the
order ``watch, start, wait | receive, [abort], shutdown, finish, raise_failure, result``.

State. One lock guards ``_failures``, ``_aborted``, ``_running``, ``_last_running`` and
``_ended_at``. ``_failures[0]`` is the root cause (an abort with a cause puts it first only
when nothing failed before). The one thread that turns ``_aborted`` true aborts the links and
cancels the hosts, once. ``_all_done`` is set exactly when ``_running`` becomes empty.
``host.outcome`` is written once by the host's own thread as it ends, or by the caller's
thread when it gives the host up after the grace period (a host's thread then leaves it).
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, TextIO

from ._channel import Aborted, ChannelTimeout, Meter, Receiver
from ._errors import InactivityError, add_note, is_consequence, warn_at_caller
from ._record import Record
from ._signals import Signals, handlers_deferred, interrupts_deferred, signals_as_stop
from ._stages import StageSpec
from ._state import StageState

if TYPE_CHECKING:  # a plain run needs none of these modules: imported where they are used
    from ._budget import Budget
    from ._monitor import Monitor
    from ._progress import ProgressDisplay
    from ._stats import BufferStatistics, MemoryStatistics, PipelineStats

__all__ = [
    "GRACE_PERIOD",
    "Engine",
    "Host",
    "Link",
    "RunOptions",
    "Supervisor",
    "Wiring",
    "iterate",
    "run",
]

GRACE_PERIOD = 1.0
"""Seconds a stopped pipeline waits for its hosts before giving up the ones still running."""

SIGNAL_POLL = 0.1
"""Seconds the caller's thread blocks at most, at once, inside a run. CPython runs a signal's
handler in the main thread, between bytecodes, and a blocked wait is woken only by a signal
that lands on that thread while it blocks: one that lands on another thread, or just before
the wait begins, would otherwise go unheard until the wait ends (for an endless source,
never), whether the handler is ours (Ctrl-C) or the application's own."""


class RunOptions(Record):
    """What a caller chose for one run.

    Attributes:
        inactivity_timeout: stop with :class:`InactivityError` when nothing moved this long.
        monitor: fed statistics while the run goes on.
        progress: where to draw the live display (``None``: nowhere).
        start_method: how worker processes start (``None``: the engine's safe default).
        memory_budget: what the auto buffers may hold in all (``None``: the default budget).
    """

    inactivity_timeout: float | None = None
    monitor: Monitor | None = None
    progress: TextIO | None = None
    start_method: str | None = None
    memory_budget: Budget | None = None


class Link(Protocol):
    """A buffer between two stages, as the supervisor sees it."""

    def moved(self) -> int:
        """How many items have gone in and out so far (any thread, no lock needed)."""
        ...

    def statistics(self) -> BufferStatistics:
        """A snapshot of its counters."""
        ...

    def abort(self) -> None:
        """Wake every waiter on both sides; every later call raises ``Aborted``."""
        ...


class Host(Protocol):
    """One instance of one stage, hosted by an engine.

    The host's own thread (or whatever runs it) reports to the supervisor with
    :meth:`Supervisor.record`, :meth:`Supervisor.finished` and :meth:`Supervisor.set_result`.
    """

    stage: StageSpec
    name: str  # pipeline-<stage>-<i>
    meter: Meter  # starved and blocked time, measured where it waits on its links
    outcome: StageState | None

    @property
    def title(self) -> str:
        """How messages name it, e.g. ``thread pipeline-parse-1``."""
        ...

    def prepare(self) -> None:
        """Create what must exist before any thread of the run starts (a worker process: a
        fork while threads run can inherit a lock held forever). Called for every host
        before any host's :meth:`start`."""
        ...

    def start(self) -> None:
        """Start it (in the caller's thread, signals held back)."""
        ...

    def started(self) -> bool:
        """Whether :meth:`start` got it running."""
        ...

    def join(self, timeout: float | None) -> bool:
        """Wait for it to end; whether it has."""
        ...

    def cancel(self) -> None:
        """The pipeline is stopping: wake whatever it waits on besides its links."""
        ...

    def kill(self) -> bool:
        """It outlived the grace period: end it by force if that can be done (a process can,
        a thread cannot); whether it was."""
        ...

    def items(self) -> tuple[int, int]:
        """Items taken from its input and put into its output so far."""
        ...

    def cpu(self) -> float | None:
        """CPU seconds it has used, where the platform tells."""
        ...

    def describe(self) -> str:
        """What it is doing now: its outcome, what it waits for, or its line of user code."""
        ...


class Wiring(Record):
    """What an engine built for one run."""

    links: Sequence[Link]
    outputs: Mapping[int, Link]  # stage position -> its output link
    hosts: Sequence[Host]
    output: Receiver[object] | None  # the caller's receiver when the last stage is no sink
    memory: Callable[[], MemoryStatistics | None] | None = None  # the budget's statistics


class Engine(Protocol):
    """Hosts stage instances and moves items between them; supervision is not its business."""

    def wire(
        self, stages: Sequence[StageSpec], supervisor: Supervisor, options: RunOptions
    ) -> Wiring:
        """Build (without starting) the hosts and links of one run."""
        ...


class _Failure(Record):
    exc: BaseException
    stage: StageSpec | None  # None: the cause came from outside every stage
    where: str  # e.g. "thread pipeline-parse-1"


class _Watchdog:
    """Tells when no item has moved through any link for ``timeout`` seconds."""

    def __init__(self, timeout: float, links: Sequence[Link]) -> None:
        self.timeout = timeout
        self.interval = timeout / 4
        self._links = links
        self._moved = -1
        self._since = time.monotonic()

    def stalled(self) -> bool:
        """Whether nothing moved since at least ``timeout`` seconds ago."""
        now = time.monotonic()
        moved = sum(link.moved() for link in self._links)
        if moved != self._moved:
            # Something moved since the last check, so at most now - _since ago.
            self._moved = moved
            self._since = now
            return False
        return now - self._since >= self.timeout


class Supervisor:
    """One run of a pipeline: its hosts, what went wrong, and how it ended."""

    def __init__(self, stages: Sequence[StageSpec]) -> None:
        self.stages = stages
        self._lock = threading.Lock()  # see the module docstring for what it guards
        self._failures: list[_Failure] = []
        self._aborted = False
        # Set when the last stage has finished or the pipeline is stopping: what run() waits for.
        self._last_stage_done = threading.Event()
        self._last_running = stages[-1].threads
        self._all_done = threading.Event()
        self._result: object = None
        self._started_at = time.perf_counter()
        self._ended_at: float | None = None
        # CPU of the whole process (every thread, ours or not) at the start and the end.
        self._cpu_started = time.process_time()
        self._cpu_ended: float | None = None
        self._running: set[Host] = set()
        self._interrupt: BaseException | None = None  # a deferred Ctrl-C or SIGTERM
        self._memory_at_end: MemoryStatistics | None = None
        self._final: PipelineStats | None = None
        self._helper: threading.Thread | None = None  # the monitor's thread, if any
        self._on_end: list[Callable[[], None]] = []
        self.wiring = Wiring((), {}, (), None)

    def adopt(self, wiring: Wiring) -> None:
        """Take charge of what the engine built."""
        self.wiring = wiring

    def on_end(self, cleanup: Callable[[], None]) -> None:
        """Call ``cleanup`` once every host has been joined or given up."""
        self._on_end.append(cleanup)

    # -- called by the hosts -------------------------------------------------------------

    def record(self, exc: BaseException, host: Host, *, stopping: bool) -> StageState:
        """Record what ``host``'s stage raised; say whether it counts as a failure or as a
        consequence of our stop (see ``_errors.is_consequence``)."""
        with self._lock:
            if is_consequence(exc, stopping=stopping, aborting=self._aborted):
                return StageState.CANCELLED
            self._failures.append(_Failure(exc, host.stage, host.title))
            first = not self._aborted
            self._aborted = True
        if first:
            self._abort_links()
        return StageState.FAILED

    def finished(self, host: Host, outcome: StageState) -> None:
        """``host`` has ended with ``outcome`` (kept unless it was given up already)."""
        with self._lock:
            if host.outcome is None:
                host.outcome = outcome
            self._running.discard(host)
            if host.stage.position == len(self.stages):
                self._last_running -= 1
                if self._last_running == 0:
                    self._last_stage_done.set()
            if not self._running:
                self._mark_end()
                self._all_done.set()

    def _mark_end(self) -> None:
        # Lock held.
        if self._ended_at is None:
            self._ended_at = time.perf_counter()
            self._cpu_ended = time.process_time()

    def set_result(self, value: object) -> None:
        """The sink (on one instance) returned ``value``."""
        self._result = value

    # -- in the caller -------------------------------------------------------------------

    def start(
        self, monitor: Monitor | None, display: ProgressDisplay | None, signals: Signals
    ) -> None:
        """Prepare every host, then start the helpers (the monitor's, the signals') and every
        host; if one cannot start, stop and join the ones that did."""
        _LIVE.add(self)
        hosts = self.wiring.hosts
        self._started_at = time.perf_counter()
        self._cpu_started = time.process_time()
        with self._lock:
            self._running = set(hosts)
        started = 0
        failing: Host | None = None  # the host being prepared or started
        try:
            # A signal in the middle of a start would leave us not knowing whether that host
            # runs: hold SIGINT and SIGTERM back until every host is started (threads inherit
            # the mask, so they can only go to the caller's thread), and while processes and
            # threads start, run no signal handler (an application's may raise, and another
            # thread may take a Ctrl-C); they run right after.
            with interrupts_deferred(), handlers_deferred():
                for failing in hosts:
                    failing.prepare()  # worker processes, before any thread of the run
                failing = None
                self.watch(monitor, display)
                signals.watch(self.interrupt)
                for failing in hosts:
                    failing.start()
                    started += 1
                failing = None
        except BaseException as exc:  # e.g. "can't start new thread": nothing else has run
            with self._lock:
                for host in hosts[started:]:
                    self._running.discard(host)
                    host.outcome = StageState.FAILED if host is failing else StageState.CANCELLED
                if not self._running:
                    self._all_done.set()
            if failing is not None:
                add_note(
                    exc,
                    f"pipeline_executor: raised by {failing.stage.label} while starting "
                    f"{failing.title}",
                )
            del exc
            self.abort()
            for host in hosts[started:]:
                host.kill()  # a worker process prepared for a host that never started
            self.shutdown()
            raise

    def watch(self, monitor: Monitor | None, display: ProgressDisplay | None) -> None:
        """Feed ``monitor`` and the progress display, from a helper thread, until the end."""
        if monitor is not None:
            from ._monitor import attach

            attach(monitor, self.snapshot)
        callback = monitor.on_progress if monitor is not None else None
        if callback is None and display is None:
            return
        from ._observe import report_progress

        self._helper = threading.Thread(
            target=report_progress,
            args=(self.snapshot, self._all_done, self.abort, callback, display),
            kwargs={"interval": monitor.interval if monitor is not None else 0.5},
            name="pipeline-monitor",
            daemon=True,
        )
        if display is not None:
            display.start()
        self._helper.start()

    def abort(self, cause: BaseException | None = None) -> None:
        """Stop every stage now; ``cause``, if given and first, is what the caller will raise."""
        with self._lock:
            if cause is not None and not self._aborted:
                self._failures.insert(0, _Failure(cause, None, "the pipeline"))
            already = self._aborted
            self._aborted = True
        if not already:
            self._abort_links()

    def interrupt(self, exc: BaseException) -> None:
        """A Ctrl-C or SIGTERM came while the caller waited: stop; the caller raises ``exc``."""
        with self._lock:
            if self._interrupt is None:
                self._interrupt = exc
        self.abort()

    @property
    def interrupted(self) -> BaseException | None:
        """The deferred Ctrl-C or SIGTERM, if one came."""
        return self._interrupt

    def _abort_links(self) -> None:
        self._last_stage_done.set()
        for link in self.wiring.links:
            link.abort()
        for host in self.wiring.hosts:
            host.cancel()

    def stall(self, timeout: float) -> None:
        """Nothing moved for ``timeout`` seconds: describe every host, then stop."""
        self.abort(InactivityError(timeout, self.diagnosis(self.wiring.hosts)))

    def wait(self, inactivity_timeout: float | None) -> None:
        """Wait until the last stage has finished or the pipeline is stopping."""
        if inactivity_timeout is None:
            while not self._last_stage_done.wait(SIGNAL_POLL):
                pass  # a signal's handler runs here (see SIGNAL_POLL)
            return
        watchdog = _Watchdog(inactivity_timeout, self.wiring.links)
        while not self._last_stage_done.wait(min(watchdog.interval, SIGNAL_POLL)):
            if watchdog.stalled():
                self.stall(inactivity_timeout)

    def shutdown(self, grace: float = GRACE_PERIOD) -> None:
        """Join every host. After ``grace`` seconds, kill those that can be killed and give up
        the others, with a warning naming each and its line."""
        _LIVE.discard(self)
        hosts = self.wiring.hosts
        if not self._all_done.wait(grace):
            with self._lock:
                stuck = [h for h in hosts if h in self._running]
            if stuck:
                self.abort()  # stop the others, if the pipeline was not stopping already
                lines = "\n".join(f"  {line}" for line in self.diagnosis(stuck))
                killed = [h for h in stuck if h.kill()]
                abandoned = [h for h in stuck if h not in killed]
                for host in killed:
                    host.join(grace)
                with self._lock:
                    for host in stuck:
                        if host in self._running:
                            host.outcome = StageState.ABANDONED
                    self._mark_end()
                what: list[str] = []
                if killed:
                    what.append(f"killed {self._names(killed)}")
                if abandoned:
                    what.append(
                        f"abandoned {self._names(abandoned)} (a thread cannot be stopped by "
                        "force: it is left to finish the call it is in, and cannot keep the "
                        "interpreter from exiting)"
                    )
                warn_at_caller(
                    f"pipeline_executor: {self._names(stuck)} did not stop within {grace:g} s "
                    f"of the pipeline stopping; {'; '.join(what)}:\n{lines}",
                    RuntimeWarning,
                )
        with self._lock:
            running = set(self._running)
        for host in hosts:
            if host not in running and host.started():
                host.join(None)
        if self._helper is not None:
            self._helper.join(grace)
        cleanups, self._on_end = self._on_end, []
        for cleanup in cleanups:
            cleanup()

    @staticmethod
    def _names(hosts: Sequence[Host]) -> str:
        return "; ".join(f"{h.stage.label} in {h.title}" for h in hosts)

    def diagnosis(self, hosts: Sequence[Host]) -> tuple[str, ...]:
        """One line per host: its stage, and what it is doing."""
        return tuple(f"{h.stage.label}, {h.title}: {h.describe()}" for h in hosts)

    def snapshot(self) -> PipelineStats:
        """The statistics of the run so far (or of the whole run, once it has ended)."""
        from ._observe import snapshot  # statistics: for a monitor, the display or a report

        wiring = self.wiring
        return snapshot(
            self.stages,
            wiring.hosts,
            wiring.outputs,
            self._started_at,
            self._ended_at,
            cpu_started=self._cpu_started,
            cpu_ended=self._cpu_ended,
            memory=self._memory(),
        )

    def _memory(self) -> MemoryStatistics | None:
        """The budget's line of the statistics; read once the run has ended, so that every
        later snapshot (the display's last, the monitor's final) tells the same."""
        memory = self._memory_at_end
        if memory is None and self.wiring.memory is not None:
            memory = self.wiring.memory()
            if self._ended_at is not None:
                self._memory_at_end = memory
        return memory

    def final(self) -> PipelineStats:
        """The statistics of the whole run, taken once, at the first call after
        :meth:`shutdown`: what the monitor keeps and the failure's report tell the same."""
        if self._final is None:
            self._final = self.snapshot()
        return self._final

    def finish(self, monitor: Monitor | None) -> None:
        """Hand ``monitor`` the final statistics; call after :meth:`shutdown`. Without a
        monitor, a run that ends well takes no snapshot at all."""
        if monitor is not None:
            from ._monitor import detach

            detach(monitor, self.final())

    def raise_failure(self, interrupted: BaseException | None) -> None:
        """Raise the root failure with its notes: the stage that raised it, every other
        failure, and how each stage ended. ``interrupted``: what stopped the caller's wait
        (Ctrl-C, SIGTERM), which is raised instead, with the failures in its notes."""
        with self._lock:
            failures, self._failures = self._failures, []
        if interrupted is not None:
            failures.insert(0, _Failure(interrupted, None, "the caller"))
        if not failures:
            return
        root = failures[0]
        if root.stage is not None:
            add_note(root.exc, f"pipeline_executor: raised by {root.stage.label} in {root.where}")
        for other in failures[1:]:
            stage = other.stage.label if other.stage is not None else "the pipeline"
            add_note(
                root.exc,
                f"pipeline_executor: {stage} in {other.where} also failed: "
                f"{type(other.exc).__name__}: {other.exc}",
            )
        from ._observe import add_shutdown_report

        add_shutdown_report(root.exc, self.final())
        exc = root.exc
        del root, failures, interrupted
        try:
            raise exc
        finally:
            del exc

    def result(self) -> object:
        """The sink's return value (``None`` for a sink on several instances); dropped after."""
        result, self._result = self._result, None
        return result


_LIVE: weakref.WeakSet[Supervisor] = weakref.WeakSet()
"""Runs started and not yet shut down."""


@atexit.register
def _abort_at_exit() -> None:
    """At interpreter exit, stop what still runs (a pipeline iterated but never closed), so
    that its stages' ``finally`` blocks run before the daemon threads are dropped."""
    for supervisor in list(_LIVE):
        supervisor.abort()
        supervisor.shutdown()


def _begin(
    stages: Sequence[StageSpec], engine: Engine, options: RunOptions
) -> tuple[Supervisor, ProgressDisplay | None]:
    display = None
    if options.progress is not None:
        from ._progress import ProgressDisplay

        display = ProgressDisplay(options.progress)
    supervisor = Supervisor(stages)
    supervisor.adopt(engine.wire(stages, supervisor, options))
    return supervisor, display


def iterate(stages: Sequence[StageSpec], engine: Engine, options: RunOptions) -> Iterator[object]:
    """Run ``stages`` on ``engine`` and yield the last one's items in the caller's thread."""
    supervisor, display = _begin(stages, engine, options)
    output = supervisor.wiring.output
    assert output is not None, "iterate() needs a pipeline without a sink"
    watchdog = None
    output.timeout = SIGNAL_POLL
    if options.inactivity_timeout is not None:
        watchdog = _Watchdog(options.inactivity_timeout, supervisor.wiring.links)
        output.timeout = min(watchdog.interval, SIGNAL_POLL)
    completed = False
    interrupted: BaseException | None = None
    with signals_as_stop() as signals:
        try:
            supervisor.start(options.monitor, display, signals)
            yield from _receive(supervisor, output, watchdog, signals)
            completed = True
        except BaseException as exc:
            if not isinstance(exc, GeneratorExit):  # not the consumer leaving: Ctrl-C, SIGTERM
                interrupted = exc
            raise
        finally:
            # A signal while we stop and join can only ask for the stop under way: deferred.
            signals.waiting = True
            if not completed:  # the consumer stopped early, raised, or was interrupted
                supervisor.abort()
            output.close()
            supervisor.shutdown()
            supervisor.finish(options.monitor)
            signals.waiting = False
            if interrupted is None and not completed:  # a signal raised in the loop's body
                interrupted = signals.raised
            if interrupted is not None:
                _note_interrupt(supervisor, interrupted)
                interrupted = signals.raised = None
    supervisor.raise_failure(supervisor.interrupted)


def run(stages: Sequence[StageSpec], engine: Engine, options: RunOptions) -> object:
    """Run ``stages`` on ``engine`` to the end of the sink and return what the sink returned."""
    supervisor, display = _begin(stages, engine, options)
    with signals_as_stop() as signals:
        try:
            supervisor.start(options.monitor, display, signals)
            signals.waiting = True  # a Ctrl-C or SIGTERM from now on stops the run
            supervisor.wait(options.inactivity_timeout)
        except BaseException as exc:  # an interrupt that came before the wait began
            signals.waiting = True
            supervisor.abort()
            supervisor.shutdown()
            supervisor.finish(options.monitor)
            _note_interrupt(supervisor, exc)
            raise
        supervisor.shutdown()
        signals.waiting = False
    supervisor.finish(options.monitor)
    supervisor.raise_failure(supervisor.interrupted)
    return supervisor.result()


def _note_interrupt(supervisor: Supervisor, exc: BaseException) -> None:
    """An interrupt is re-raised as itself; failures that raced it go into its notes."""
    try:
        supervisor.raise_failure(exc)
    except BaseException as raised:
        if raised is not exc:  # pragma: no cover - raise_failure raises what it was given
            raise
        del raised


def _receive(
    supervisor: Supervisor,
    output: Receiver[object],
    watchdog: _Watchdog | None,
    signals: Signals,
) -> Iterator[object]:
    """Yield the last stage's items until its end, a stop, or the watchdog firing. While it
    waits for one, a Ctrl-C or SIGTERM is deferred (a stop request, then raised by the caller);
    while the caller's own code runs, it is raised there at once."""
    while True:
        signals.waiting = True
        try:
            item = next(output)
        except (StopIteration, Aborted):
            signals.waiting = False
            return
        except ChannelTimeout:
            signals.waiting = False  # leave the handler: a Ctrl-C must not chain to ours
        else:
            signals.waiting = False
            yield item
            del item  # the next item is asked for: this one is no longer held
            continue
        # A wait is at most SIGNAL_POLL long, so that a signal's handler runs between two.
        if watchdog is not None and watchdog.stalled():
            supervisor.stall(watchdog.timeout)
            return
