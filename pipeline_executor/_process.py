"""Process stages: one worker process per instance, proxied by a thread of this process.

A :class:`ProcessHost` is a host like a thread one, for the supervisor: its thread (the
proxy) takes the stage's input from the upstream buffer and passes it to the worker in
batches when the worker asks for it, grants the worker credits for slots of the stage's output
buffer, and publishes the worker's outputs there. So the buffers, the failure rule, the stop,
the statistics and the watchdog are the thread engine's, unchanged; this module adds what a
process needs: starting it safely, noticing its death (the pipe's end, then its exit code),
stopping it (a control pipe it watches), asking it where it is, and killing it when it
outlives the grace period. See ``_worker`` for the other side of the pipe.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ._channel import Activity, Receiver, Sender
from ._errors import (
    Cancelled,
    ItemPickleError,
    PipelineDefinitionError,
    WorkerDiedError,
)
from ._hosting import LocalHost, Reports
from ._pipes import Conn, ForkProcess, SharedCount, pipe, shareable, wait
from ._stages import Role, StageSpec
from ._state import StageState
from ._transport import Endpoint, PickleFailure
from ._worker import BATCH, HELD, Payload, main, rebuild_exception

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

__all__ = ["Launcher", "ProcessHost", "context"]

_PARENT_FDS: set[int] = set()
"""This process's ends of every worker's pipes: a forked worker closes them all, so that only
the parent holds what the worker watches."""

_runs = itertools.count()


class _NoCount:
    value = 0  # no worker has started: it has taken nothing


_NO_COUNT = _NoCount()


def default_start_method() -> str:
    """forkserver where it exists (safe while threads run), spawn elsewhere."""
    import multiprocessing

    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class Launcher:
    """How a run's worker processes start: forked by :class:`ForkProcess` (the fork method:
    multiprocessing is not even imported), or by multiprocessing's context of the method."""

    def __init__(self, method: str, ctx: BaseContext | None) -> None:
        self.method = method
        self._ctx = ctx

    def __repr__(self) -> str:
        return f"Launcher({self.method!r})"

    def count(self) -> Any:
        """A count shared with a worker (``.value``), to pass in its payload."""
        if self._ctx is None:
            return SharedCount()
        if shareable():
            return SharedCount.passable()
        return self._ctx.RawValue("q", 0)  # pragma: no cover - no memfd_create (not Linux)

    def process(self, target: Any, args: tuple[Any, ...], name: str) -> Any:
        """A worker process, not started, running ``target(*args)``."""
        if self._ctx is None:
            return ForkProcess(target, args, name)
        make: Any = getattr(self._ctx, "Process")  # noqa: B009 - BaseContext does not declare it
        return make(target=target, args=args, name=name, daemon=True)


def context(start_method: str | None) -> Launcher:
    """How workers start under ``start_method`` (``None``: the safe default).

    Raises:
        PipelineDefinitionError: an unknown or unavailable start method.
    """
    if start_method == "fork" and hasattr(os, "fork"):
        return Launcher("fork", None)
    import multiprocessing

    method = default_start_method() if start_method is None else start_method
    if method not in multiprocessing.get_all_start_methods():
        raise PipelineDefinitionError(
            "pipeline",
            f"start_method must be one of {', '.join(multiprocessing.get_all_start_methods())}"
            f" or None, got {start_method!r}",
        )
    ctx = multiprocessing.get_context(method)
    # multiprocessing starts its resource tracker with the first spawned or forkserver
    # process, and then unblocks SIGINT and SIGTERM in the thread that starts it, whatever
    # they were before: started now, before the run blocks them (see _held), it cannot.
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    if method == "forkserver":
        # The server imports these once, so that each worker it forks starts with them: the
        # main module (multiprocessing's own default; see _preload), the worker loop, and
        # cloudpickle, which the payload of a stage that is a lambda, a closure or a function
        # of the main module, or has multiprocessing objects as constants, needs to unpickle.
        # (Preloaded only when this process had imported it, a later such stage's every
        # worker imported it as it started: a worker that died then waited up to 97 ms for
        # its sibling still booting, instead of 15.)
        preload: Any = getattr(ctx, "set_forkserver_preload")  # noqa: B009 - per-context method
        preload(
            ["__main__", "pipeline_executor._preload", "pipeline_executor._worker", "cloudpickle"]
        )
        _await_forkserver(Launcher(method, ctx))
    return Launcher(method, ctx)


_served = False  # this process has seen its forkserver fork a process


def _await_forkserver(launcher: Launcher) -> None:
    """Start the forkserver (once per process) and wait until it forks a first process.

    Called as the run is wired, before it holds signals back to start its workers: the server
    imports the main module first, which may take seconds (torch), and a Ctrl-C meanwhile
    must stop the caller then, not once the server is ready. The process it forks is
    ``int()``: it ends at once.
    """
    global _served
    if _served:
        return
    with _held():  # the server, and every worker it forks, starts with these blocked
        _ensure_forkserver()
    try:  # start() returns once the server has forked it
        launcher.process(int, (), "pipeline-forkserver-ready").start()
    except BaseException:  # a Ctrl-C while the server imports the main module
        _end_forkserver()
        raise
    _served = True


def _end_forkserver() -> None:
    """Kill the forkserver and forget it, so that a later run starts another: stopped while
    it imports the main module, it would outlive the caller until the import ends (only then
    does it look at the pipe that tells it its parent is gone)."""
    from multiprocessing import forkserver

    server: Any = getattr(forkserver, "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None:  # pragma: no cover - it never started
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    stop = getattr(server, "_stop", None)  # closes its ends and reaps it
    if callable(stop):
        stop()


def _ensure_forkserver() -> None:
    """Start the forkserver, if it is not running, telling it where the main module is (see
    ``_preload``: Python before 3.13.8 does not)."""
    from multiprocessing import forkserver, spawn

    from ._preload import VARIABLE

    path = spawn.get_preparation_data("ignore").get("init_main_from_path")
    previous = os.environ.get(VARIABLE)
    if path is not None:
        os.environ[VARIABLE] = path
    try:
        forkserver.ensure_running()
    finally:
        if previous is None:
            os.environ.pop(VARIABLE, None)
        else:
            os.environ[VARIABLE] = previous


@contextlib.contextmanager
def _held() -> Generator[None, None, None]:
    """SIGINT and SIGTERM blocked in this thread while a worker process (or the forkserver)
    starts, so that it starts with them blocked (a child inherits its parent thread's mask,
    across exec too): a Ctrl-C to the whole process group while it is still booting cannot
    print a traceback from it. The worker ignores SIGINT, then unblocks both, before any of
    the stage's code runs. (Ignoring SIGINT here instead, process-wide, would drop a Ctrl-C
    that came meanwhile: setting SIG_IGN discards a pending SIGINT, and one that another
    thread takes while SIG_IGN is set is lost too.)"""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process (its ``__cause__``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


class WorkerFailure(Exception):
    """What the worker raised, rebuilt here, and whether it raised it while being stopped."""

    def __init__(self, exc: BaseException, stopping: bool) -> None:
        super().__init__(exc)
        self.exc = exc
        self.stopping = stopping


class ProcessHost(LocalHost):
    """One instance of a stage in a worker process, proxied by a thread of this process."""

    def __init__(
        self,
        supervisor: Reports,
        stage: StageSpec,
        index: int,
        receiver: Receiver[object] | None,
        sender: Sender[object] | None,
        launcher: Launcher,
    ) -> None:
        super().__init__(supervisor, stage, index, receiver, sender)
        self._launcher = launcher
        self._process: Any = None
        self._conn: Conn | None = None
        self._endpoint: Endpoint | None = None
        self._control: Conn | None = None
        self._status: Conn | None = None
        self._status_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        self._cancelled = False
        self._going = False  # the worker has been told to run the stage (see _worker)
        self._killed = False
        self._cpu: float | None = None
        # The same count, written by the worker as it takes each item (a plain shared int,
        # no lock): what a dead worker was on. Made as the worker starts.
        self._progress: Any = _NO_COUNT
        # What went to the worker and is not done with: (position of its first item, batch).
        self._batches: deque[tuple[int, list[object]]] = deque()
        self._sent = 0  # items passed to the worker
        self._released = 0  # of those, slots handed back upstream

    @property
    def title(self) -> str:
        """``worker process <name> (pid N)``, without the pid before it has one."""
        pid = self._process.pid if self._process is not None else None
        return f"worker process {self.name}" + ("" if pid is None else f" (pid {pid})")

    # -- the supervisor's hooks ----------------------------------------------------------

    def prepare(self) -> None:
        """Start the worker process (before any thread of the run: see ``Host.prepare``)."""
        stage = self.stage
        conn, child_conn = pipe(duplex=True)
        control_r, control_w = pipe(duplex=False)
        status_r, status_w = pipe(duplex=False)
        self._progress = self._launcher.count()
        mine = (conn.fileno(), control_w.fileno(), status_r.fileno(), self._wake_r, self._wake_w)
        _PARENT_FDS.update(mine)
        payload = Payload(
            (
                stage.fn,
                stage.args,
                dict(stage.kwargs),
                stage.role is not Role.SOURCE,
                stage.role is not Role.SINK,
                stage.threads == 1,
                stage.label,
                self.name,
                # In the payload, not beside it: pickled by the same pickler as the constants,
                # an arena it shares with a Value or Array constant is passed once (a spawned
                # child refuses a file descriptor passed twice).
                self._progress,
            ),
            by_reference=stage.by_reference,
        )
        # A forked worker inherits this process's ends of every pipe: it closes them, so that
        # the end of its control pipe means the parent is gone. Others inherit nothing.
        forked = self._launcher.method == "fork"
        inherited = tuple(_PARENT_FDS) if forked else ()
        process = self._launcher.process(
            main, (child_conn, control_r, status_w, payload, inherited), self.name
        )
        self._process = process
        self._conn, self._control, self._status = conn, control_w, status_r
        try:
            with _held():
                if self._launcher.method == "forkserver":
                    _ensure_forkserver()
                process.start()
        except BaseException:
            self._close_ends()  # so that a later worker's fork does not close reused numbers
            raise
        finally:
            for end in (child_conn, control_r, status_w):
                end.close()
            if isinstance(self._progress, SharedCount):
                self._progress.close()  # the worker has its own descriptor, or the mapping
        self._endpoint = Endpoint(conn)

    def cancel(self) -> None:
        """Tell the worker to stop at its next item, and wake the proxy."""
        self._cancelled = True
        self._tell(b"s")
        try:
            os.write(self._wake_w, b"c")
        except OSError:  # pragma: no cover - already closed: the proxy has ended
            pass

    def kill(self) -> bool:
        """SIGKILL the worker process; the proxy then ends as its pipe closes (one that never
        started leaves the process to be reaped here)."""
        process = self._process
        if process is None or process.pid is None or process.exitcode is not None:
            return False  # never started (its start failed), or already ended
        self._killed = True
        process.kill()
        if not self.started():  # nor will it: no proxy will close its pipes
            process.join()
            self._close_ends()
        return True

    def cpu(self) -> float | None:
        """The worker process's CPU seconds: as it reported at its end, or read from /proc."""
        if self._cpu is not None:
            return self._cpu
        process = self._process
        if process is None or process.pid is None:
            return None
        try:
            with open(f"/proc/{process.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def items(self) -> tuple[int, int]:
        """Items the worker's generator has taken (as the worker counts them: those passed to
        it ahead are not yet in) and results put into the output buffer."""
        taken = int(self._progress.value) if self.receiver is not None else 0
        return taken, self.sender.count if self.sender is not None else 0

    def describe(self) -> str:
        """What the worker is doing: its line of user code, asked of the worker itself."""
        if self.outcome is not None:
            return self.outcome.value
        if self.meter.activity is not Activity.BUSY:
            return str(self.meter.activity.value)
        status = self._status
        if status is None or not self._going:
            return "starting (its worker process has not reached the stage yet)"
        with self._status_lock:
            try:
                while status.poll(0):  # an answer that came too late for an earlier asker
                    status.recv_bytes()
                self._tell(b"w")
                if status.poll(0.5):
                    answer = status.recv_bytes()
                    where = answer.decode()
                    return f"inside its own code at {where}"
            except (EOFError, OSError):
                pass
        return "inside its own code (the worker did not say where)"

    def _tell(self, request: bytes) -> None:
        control = self._control
        if control is not None:
            try:
                control.send_bytes(request)
            except OSError:  # the worker has gone; its pipe's end tells the proxy
                pass

    # -- the proxy thread ----------------------------------------------------------------

    def _work(self) -> None:
        self.meter.started = time.perf_counter()
        outcome = StageState.FINISHED
        try:
            self._proxy()
        except Cancelled:
            outcome = self._stop_worker()
        except WorkerFailure as failure:
            outcome = self._supervisor.record(failure.exc, self, stopping=failure.stopping)
        except BaseException as exc:
            outcome = self._supervisor.record(exc, self, stopping=False)
            self._stop_worker()
        finally:
            self._end(outcome)

    def _proxy(self) -> None:
        sender, receiver = self.sender, self.receiver
        while True:
            message = self._receive()
            kind = message[0]
            if kind == "ready":  # its first message, unless it failed before
                self._send(("go", sender.acquire() if sender is not None else 0))
                self._going = True
            elif kind == "need":
                self._done_with(message[1])
                self._feed(message[2], wait=message[3])
            elif kind == "out":
                assert sender is not None
                self._done_with(message[1] - 1)
                items = self._receive_batch(message)
                sender.deliver(items)
                if sender.running_low():  # else the worker has slots enough in hand
                    last = items[-1] if items else None  # an auto buffer estimates it
                    self._send(("credit", sender.acquire(last)))
                    del last
                del items
            elif kind == "counts":
                self.meter.items.__setstate__(message[1])
            elif kind == "done":
                self._cpu = message[2]
                if self.stage.role is Role.SINK and self.stage.threads == 1:
                    self._supervisor.set_result(message[3])
                return
            elif kind == "stopped":
                self._cpu = message[2]
                raise Cancelled
            else:  # "error"
                self._cpu = message[5]
                raise WorkerFailure(self._rebuild(message[1], message[2]), message[3])
            if receiver is None and kind == "need":  # pragma: no cover - a source never asks
                raise AssertionError

    def _feed(self, most: int, wait: bool) -> None:
        """Answer the worker's request for up to ``most`` items: with what the input holds
        now, or (``wait``: it has nothing left) the first items to come, or the input's end."""
        receiver = self.receiver
        assert receiver is not None
        most = receiver.share(max(1, min(most, BATCH)))
        try:
            batch = receiver.take(most) if wait else receiver.poll(most)
        except StopIteration:
            self._send(("end",))
            return
        if not batch:
            self._send(("none",))
            return
        try:
            self._send_batch(batch)
        except PickleFailure as failure:
            position = self._sent + failure.index + 1
            raise ItemPickleError(
                self.stage.label, "to", self.title, position, failure.item, failure.error
            ) from failure.error
        self._batches.append((self._sent + 1, batch))
        self._sent += len(batch)

    def _done_with(self, done: int) -> None:
        """The worker's generator is done with the first ``done`` items passed to it."""
        done -= self._released
        if done > 0 and self.receiver is not None:
            self.receiver.give_back(done)
            self._released += done
            batches = self._batches
            while batches and batches[0][0] + len(batches[0][1]) - 1 <= self._released:
                batches.popleft()

    def _send(self, message: tuple[Any, ...]) -> None:
        assert self._endpoint is not None
        try:
            self._endpoint.send(message)
        except (BrokenPipeError, ConnectionResetError, EOFError):
            # The worker has ended: what it sent before (its "done", say) is still to be
            # read, and the end of the pipe after it tells a death.
            pass

    def _send_batch(self, batch: list[object]) -> None:
        assert self._endpoint is not None
        try:
            self._endpoint.send_batch(("items",), batch)
        except (BrokenPipeError, ConnectionResetError, EOFError):
            pass  # as in _send

    def _receive_batch(self, message: tuple[Any, ...]) -> list[object]:
        assert self._endpoint is not None
        try:
            return self._endpoint.receive_batch(message)
        except (EOFError, OSError):
            raise self._died() from None

    def _receive(self) -> tuple[Any, ...]:
        """The worker's next message, waiting also for a stop."""
        conn = self._conn
        assert conn is not None
        while True:
            if self._cancelled:
                raise Cancelled
            ready = wait([conn, self._wake_r])
            if conn in ready:
                assert self._endpoint is not None
                try:
                    return self._endpoint.receive()
                except (EOFError, OSError):
                    raise self._died() from None
            os.read(self._wake_r, 1)

    def _stop_worker(self) -> StageState:
        """We are stopping: tell the worker, drop what it still sends, and see how it ends."""
        self._tell(b"s")
        endpoint = self._endpoint
        if endpoint is None:
            return StageState.CANCELLED
        if not self._going:
            # None of the stage's code has run there, nor can before our go: end it now,
            # rather than wait for it to finish booting.
            self._process.kill()
        while True:
            try:
                message = endpoint.receive()
                kind = message[0]
                if kind == "out":
                    endpoint.receive_batch(message)  # dropped: the stage is stopping
                elif kind == "counts":
                    self.meter.items.__setstate__(message[1])
            except (EOFError, OSError):  # it exited (or was killed after the grace period)
                return StageState.CANCELLED
            if kind in ("done", "stopped"):
                return StageState.CANCELLED
            elif kind == "error":
                exc = self._rebuild(message[1], message[2])
                return self._supervisor.record(exc, self, stopping=True)

    def _close_ends(self) -> None:
        """Close this process's ends of the worker's pipes (once), and unmap its count."""
        if isinstance(self._progress, SharedCount):
            self._progress.freeze()  # the worker is gone, or never ran
        if self._endpoint is not None:
            self._endpoint.close()
            self._endpoint = None
        for end in (self._conn, self._control, self._status):
            if end is not None:
                _PARENT_FDS.discard(end.fileno())
                end.close()
        self._conn = self._control = self._status = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                _PARENT_FDS.discard(fd)
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def _died(self) -> WorkerDiedError:
        process = self._process
        process.join(1.0)
        taken = int(self._progress.value)  # what it had taken, as it said itself
        held = "holding no item"
        for first, batch in self._batches:
            if first <= taken < first + len(batch):
                kind = type(batch[taken - first]).__name__
                held = f"while on its input item {taken} ({kind}; {self._sent} passed to it)"
        if self.stage.role is Role.SOURCE:
            held = f"after producing {self.sender.count if self.sender else 0} items"
        if self._killed:
            held += "; it was killed after not stopping within the grace period"
        return WorkerDiedError(self.stage.label, self.name, process.pid, process.exitcode, held)

    def _rebuild(self, data: bytes, text: str) -> BaseException:
        exc = rebuild_exception(data)
        exc.__cause__ = _RemoteTraceback(text)
        return exc

    def _end(self, outcome: StageState) -> None:
        if self.receiver is not None:
            self.receiver.close()
        if self.sender is not None:
            self.sender.close()
        process = self._process
        if process is not None:
            process.join()
            if self._cpu is None:
                self._cpu = self.cpu()
        self._close_ends()
        self.meter.ended = time.perf_counter()
        self._supervisor.finished(self, outcome)
