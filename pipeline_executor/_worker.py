"""The worker-process side of a process stage: runs one instance of the stage's generator.

The parent's proxy (``_process``) and this loop speak over one pipe. The worker asks for input
in batches sized to about :data:`TARGET` seconds of its own work (so that a slow stage's
workers share the input evenly to the end, and a fast one's travel :data:`BATCH` at a time),
and asks for the next batch before its inbox runs dry, so that it need not wait a round trip
between batches: that early request (``wait`` false) is answered at once, with what the
stage's input holds now or with nothing; a worker whose inbox is empty asks with ``wait`` true,
and the parent answers when it has an item or the input has ended. A request due within a
batch rides with the next batch of results, in the same write: every message wakes the
parent, and on a machine whose cores all run workers, each wake takes one from a worker.
It produces an item only while it holds a credit for a slot of the stage's output buffer, so
the buffer bounds stay exact across the boundary: every item it was passed counts as alive
upstream until it says it is done with it. Outputs go back in batches, flushed when a batch
is full, when the worker is about to wait, or when the last batch left :data:`LINGER` seconds
ago or more (so a slow stage's results leave one by one, as they are made, and a fast one's
at most every ``LINGER``); a result made within ``LINGER`` of the last batch, followed by a
long stretch of the stage's own code, is sent by the linger thread ``LINGER`` after that
batch, not when the stage next yields or reads.

Messages, parent -> worker: ``("go", n)``, ``("items", ...)``, ``("end",)``, ``("none",)``,
``("credit", n)``. Worker -> parent: ``("ready",)``, ``("need", done, most, wait)`` (``done``:
how many of the items it was passed it is done with), ``("out", taken, ...)``,
``("counts", state)`` (what a per-item operator counted: failed and timed-out items, abandoned
calls), ``("done", taken, cpu, result)``, ``("stopped", taken, cpu)``,
``("error", exc, traceback, stopping, taken, cpu)``. A batch (``items``, ``out``) travels as
``_transport.Endpoint`` sends it: where its large buffers are, then the batch. ``taken``
counts the items the generator has pulled, so that the parent frees their slots upstream
only once they are done with. The first two messages are a handshake: the worker, booted, says
``ready`` and runs none of the stage's code until the parent's ``go`` (with its first credits):
so a parent stopping before its ``go`` may kill the worker at once, instead of waiting for it
to finish booting (a spawned worker imports the main module first: seconds, with torch).

A second pipe, the control pipe, is watched by a thread: ``b"s"`` asks the worker to stop at
its next item (its input then raises the cancellation, and its generator is closed here, so its
``finally`` runs in the worker); ``b"w"`` asks where the generator is (answered on the status
pipe); the end of the pipe means the parent is gone, and the worker exits at once: no worker
outlives its pipeline. The worker ignores SIGINT: Ctrl-C reaches the parent, which stops it.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, cast

from ._diagnose import location
from ._errors import Cancelled, ItemPickleError, RemoteStageError, raised_while_cancelled
from ._meter import ItemCounters, Meter
from ._pipes import Conn, wait
from ._transport import Endpoint, PickleFailure

__all__ = [
    "BATCH",
    "COSTLY",
    "HELD",
    "LINGER",
    "TARGET",
    "Payload",
    "Worker",
    "main",
    "rebuild_exception",
]

BATCH = 256
"""The most items a batch carries."""

LINGER = 0.02
"""Seconds between batches of results, at least, unless one fills up or the worker waits.
Each batch wakes two of the parent's threads, which take a core from a worker while every
core is busy: a batch every 5 ms cost 2 workers of a pure-Python stage 1% more time than one
every 20 ms, and the parent 30% more CPU (as the Ray engine's ``linger``)."""

COSTLY = 0.001
"""Seconds a result's sending takes, from which results no longer linger (:data:`LINGER`)."""

TARGET = 0.02
"""Seconds of the worker's own work an input batch should hold, as last measured."""

_perf = time.perf_counter

HELD = {signal.SIGINT, signal.SIGTERM}
"""The signals a worker process starts with blocked (its parent's thread blocks them while it
starts the worker), so that a Ctrl-C while it boots prints nothing from it. ``main`` ignores
SIGINT, then unblocks them."""


class Payload:
    """What a worker runs, pickled inside multiprocessing's own pickling of the process, so
    that multiprocessing objects passed as constants (``Lock``, ``Queue``, ``Event``) reach the
    worker as the same shared object. ``by_reference``: the standard pickler takes it all (as
    the build-time check found), so it goes as it is and the worker imports no cloudpickle;
    otherwise it is pickled with cloudpickle, so that lambdas and closures travel."""

    def __init__(self, obj: object, by_reference: bool = False) -> None:
        self.obj = obj
        self.by_reference = by_reference

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if self.by_reference:
            return (Payload, (self.obj,))
        return (_load, (_dumps(self.obj),))


def _dumps(obj: object) -> bytes:
    """``obj`` pickled with cloudpickle, knowing multiprocessing's own reductions too (shared
    ctypes and their arenas, connections), which only its pickler has: so that a ``Value`` or
    an ``Array`` passed as a constant travels by its shared memory while the process starts.
    (Under fork nothing is pickled: the worker inherits the payload, and cloudpickle, 11 ms of
    imports, is not needed.)"""
    from multiprocessing.reduction import ForkingPickler

    import cloudpickle

    class _Pickler(cloudpickle.Pickler):
        def __init__(self, file: io.BytesIO, table: Mapping[Any, Any]) -> None:
            self.dispatch_table = table  # read as the pickler is made: so set before
            super().__init__(file)

    buffer = io.BytesIO()
    table = {**ForkingPickler(io.BytesIO()).dispatch_table, **cloudpickle.Pickler.dispatch_table}
    _Pickler(buffer, table).dump(obj)
    return buffer.getvalue()


def _load(data: bytes) -> Payload:
    import cloudpickle

    return Payload(cloudpickle.loads(data))


class _Stop(Exception):
    """The parent asked this worker to stop (internal to this module)."""


class Worker:
    """One worker process's side of the pipe: its input, its results, and what the parent
    was told."""

    def __init__(
        self,
        conn: Conn,
        control: Conn,
        status: Conn,
        title: str,
        progress: Any,
    ) -> None:
        self.progress = progress  # shared with the parent: how many items the generator took
        self.conn = conn
        self.control = control
        self.status = status
        self.endpoint = Endpoint(conn)
        conn.drain = self.drain
        self.main_ident = threading.get_ident()
        self.stop_requested = False
        self.wake_r, self.wake_w = os.pipe()
        self.inbox: deque[object] = deque()
        self.input_ended = False
        self.asking = False  # a request for input is unanswered
        self.refused = False  # the last early request was answered with nothing
        self.want = 1  # the next request's size: until a first measure, one item
        self.asked_at = 0.0  # when the last request went out,
        self.asked_done = 0  # and how many items the generator was done with then
        self.cancelled = False  # the input has raised the cancellation once
        self.taken = 0
        # Slots of the output buffer: granted by the parent (counted under the lock) and
        # used by the main thread (counted by it alone, without the lock).
        self.granted = 0
        self.used = 0
        self.go = False  # the parent's word to run the stage has come
        # Results not sent yet: the main thread appends, a send takes from the left (either
        # thread's, under the lock), so the main thread appends without the lock.
        self.pending: deque[object] = deque()
        self.flushed_at = 0.0  # when the last batch of results was sent
        self.linger = LINGER  # how long results may wait for more to go with them
        # Held by the main thread while it runs this module's code (never the stage's), and
        # by the linger thread while it sends results that waited too long: one of them at a
        # time uses the pipe and this object.
        self.lock = threading.Lock()
        self.results_wait = threading.Condition(self.lock)  # the linger thread waits on it
        self.lingering = False  # the linger thread waits for a first result to come
        self.failed: BaseException | None = None  # what the linger thread's send raised
        self.closed = False  # the last message has gone: nothing more is sent
        self.label = ""
        self.title = title
        self.counters = ItemCounters()
        self._counted: object = self.counters.__getstate__()  # what the parent was last told
        self.sent = 0  # outputs sent to the parent
        self.takes_input = False  # the stage reads an input (not a source)

    # -- the control thread --------------------------------------------------------------

    def watch_control(self) -> None:
        while True:
            try:
                request = bytes(self.control.recv_bytes())
            except (EOFError, OSError):
                os._exit(1)  # the parent is gone: nobody will read what we make
            if request == b"s":
                self.stop_requested = True
                os.write(self.wake_w, b"s")
            elif request == b"w":
                where = location(self.main_ident) or "nowhere"
                self.status.send_bytes(where.encode())

    # -- the linger thread ---------------------------------------------------------------

    def send_lingering(self) -> None:
        """Send results that have waited :attr:`linger` while the stage's own code runs
        (otherwise the main thread sends them as it makes its next result or waits): a
        result is never held back longer than that, however long the next one takes."""
        with self.lock:
            while not (self.closed or self.failed):
                if not self.pending:
                    self.lingering = True
                    if not self.pending:  # the main thread appends without the lock: it
                        self.results_wait.wait()  # saw lingering set, or we see its result
                    self.lingering = False
                    continue
                left = self.flushed_at + self.linger - time.perf_counter()
                if left > 0:
                    self.results_wait.wait(left)
                    continue
                try:
                    self.flush()
                except BaseException as exc:  # for the main thread to raise, as its own
                    self.failed = exc

    def raise_failed(self) -> None:
        """Raise what the linger thread's send raised (called with the lock held)."""
        failed = self.failed
        if failed is not None:
            raise failed

    # -- talking to the parent -----------------------------------------------------------

    def receive(self) -> tuple[Any, ...]:
        """The parent's next message; raises _Stop when the parent asked us to stop."""
        while True:
            if self.stop_requested:
                raise _Stop
            ready = wait([self.conn, self.wake_r])
            if self.conn in ready:
                return self.endpoint.receive()
            os.read(self.wake_r, 1)

    def drain(self) -> None:
        """Read and take in the parent's next message, which is there: while a write to the
        parent would block (the parent may be blocked writing a batch of items to us)."""
        self.handle(self.endpoint.receive())

    def handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "items":
            self.inbox.extend(self.endpoint.receive_batch(message))
            self.asking = self.refused = False
        elif kind == "end":
            self.input_ended = True
            self.asking = False
        elif kind == "none":  # the input holds nothing now: wait to ask until this batch ends
            self.asking = False
            self.refused = True
        elif kind == "credit":
            self.granted += message[1]
        elif kind == "go":
            self.granted += message[1]
            self.go = True

    def wait_go(self) -> None:
        """Tell the parent this worker has booted, and wait for its word to run the stage
        (raises _Stop if it asks to stop instead)."""
        self.endpoint.send(("ready",))
        while not self.go:
            self.handle(self.receive())

    def report_counts(self) -> None:
        """Tell the parent what the operator counted, if that changed."""
        state = self.counters.__getstate__()
        if state != self._counted:
            self._counted = (state[0], state[1], list(state[2]))
            self.endpoint.send(("counts", state))

    def flush(self, waiting: bool = False) -> None:
        """Send the results made so far. The next request for input rides with them when it
        is due within a batch, or now (``waiting``: the worker is out of input), since every
        message wakes the parent, which takes a core from a worker while all are busy."""
        self.report_counts()
        pending = self.pending
        if pending:
            popleft = pending.popleft
            batch = [popleft() for _ in range(len(pending))]
            need = None
            if self.takes_input and not (self.asking or self.input_ended):
                if waiting:
                    need = self._need(self.taken, wait=True)
                elif len(self.inbox) <= self.want and not self.refused:
                    need = self._need(self.taken - 1, wait=False)
            started = time.perf_counter()
            try:
                self.endpoint.send_batch(("out", self.taken), batch, before=need)
            except PickleFailure as failure:
                raise ItemPickleError(
                    self.label,
                    "from",
                    self.title,
                    self.sent + failure.index + 1,
                    failure.item,
                    failure.error,
                ) from failure.error
            self.sent += len(batch)
            self.flushed_at = now = time.perf_counter()
            # Results this costly to send (a large buffer's copy) gain nothing from waiting
            # for company: the next ones leave as they are made.
            self.linger = LINGER if now - started < COSTLY * len(batch) else 0.0

    # -- the generator's input -----------------------------------------------------------

    def ask(self, done: int, wait: bool) -> None:
        """Ask the parent for about :data:`TARGET` seconds' worth of items, as measured over
        the items the generator finished since the last request (waits included: a worker
        whose input or output is slow asks for few, rather than hold what another worker
        could take). ``done``: how many items it has finished."""
        self.endpoint.send(self._need(done, wait))

    def _need(self, done: int, wait: bool) -> tuple[Any, ...]:
        """The request :meth:`ask` sends (from now on, it is unanswered)."""
        now = time.perf_counter()
        finished = done - self.asked_done
        if finished > 0:
            spent = (now - self.asked_at) / finished
            self.want = BATCH if spent * BATCH <= TARGET else max(1, int(TARGET / spent))
        self.asked_at, self.asked_done = now, done
        self.asking = True
        return ("need", done, self.want, wait)

    def next_input(self) -> object:
        """The generator's next input item. Without the lock while the inbox holds items and
        no request is due (the linger thread's sends only add to the inbox, and a decision
        to ask is taken again under the lock)."""
        if self.failed is not None:
            raise self.failed
        if self.cancelled:
            raise StopIteration  # a stage that swallowed the cancellation still ends
        inbox = self.inbox
        if not inbox:
            self._wait_input()
        if self.stop_requested:
            self.cancelled = True
            raise Cancelled
        self.taken += 1
        self.progress.value = self.taken
        item = inbox.popleft()
        if len(inbox) <= self.want // 2 and not (self.asking or self.refused or self.input_ended):
            self._ask_early()
        return item

    def _ask_early(self) -> None:
        """Ask for the next batch before this one runs out, unless the linger thread's send
        has just asked (or been answered) meanwhile."""
        with self.lock:
            if not (self.asking or self.refused or self.input_ended):
                self.ask(self.taken - 1, wait=False)

    def _wait_input(self) -> None:
        """Until the inbox holds an item: raises StopIteration at the input's end."""
        inbox = self.inbox
        with self.lock:
            try:
                while not inbox:
                    if self.stop_requested:
                        raise _Stop
                    if self.input_ended:
                        raise StopIteration
                    if not self.conn.poll(0):  # about to wait: its outputs go first
                        self.flush(waiting=True)
                        if inbox or self.input_ended:  # an answer came while the flush wrote
                            continue
                        if not self.asking:
                            self.ask(self.taken, wait=True)
                    # (An early request's answer, read only now, is usually here already: no
                    # flush then, which would cost the parent a wake per batch of input.)
                    self.handle(self.receive())
            except _Stop:
                self.cancelled = True
                raise Cancelled from None

    def wait_credit(self) -> None:
        with self.lock:
            self.raise_failed()
            self.flush()
            while self.granted <= self.used:
                self.handle(self.receive())

    def add(self, item: object) -> None:
        """A result the generator made, in a slot it holds: sent with the next batch (see
        :meth:`flush`). Without the lock, but to send."""
        if self.failed is not None:
            raise self.failed
        pending = self.pending
        pending.append(item)
        self.used += 1
        if len(pending) >= BATCH or _perf() - self.flushed_at >= self.linger:
            with self.lock:
                self.flush()
        elif self.lingering:
            self._watch()

    def _watch(self) -> None:
        """Wake the linger thread for a first result to watch (once: it runs when the GIL
        lets it)."""
        with self.lock:
            if self.lingering:
                self.lingering = False
                self.results_wait.notify()

    def finish(self, message: tuple[Any, ...], *, results: bool = True) -> None:
        """Send the last results (not when the worker stops or failed: the parent drops
        them), the operator's counts and ``message``, the last message of all."""
        with self.lock:
            if results:
                self.raise_failed()
                self.flush()
            self.closed = True
            self.results_wait.notify()
            self.report_counts()
            self.endpoint.send(message)


class _Input(Iterator[object]):
    """The iterator a process stage's generator reads its items from. Its ``meter`` holds
    what a per-item operator counts (the operator finds it there, as on a thread)."""

    def __init__(self, worker: Worker) -> None:
        self._next = worker.next_input
        self.meter = Meter()
        worker.counters = self.meter.items

    def __next__(self) -> object:
        return self._next()


def main(
    conn: Conn,
    control: Conn,
    status: Conn,
    payload: Payload,
    close_fds: tuple[int, ...],
) -> None:
    """The worker process's entry point."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a pending one goes, unseen
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)
    for fd in close_fds:  # under fork: the parent's ends of every pipe, so EOF means death
        try:
            os.close(fd)
        except OSError:
            pass
    what: tuple[Any, ...] = cast("tuple[Any, ...]", payload.obj)
    fn, args, kwargs, takes_input, has_output, single, label, name, progress = what
    title = f"worker process {name} (pid {os.getpid()})"
    worker = Worker(conn, control, status, title, progress)
    worker.label = label
    worker.takes_input = takes_input
    threading.Thread(target=worker.watch_control, name="pipeline-control", daemon=True).start()
    stopping = False
    iterator: Iterator[object] | None = None
    try:
        try:
            worker.wait_go()
            call_args: tuple[Any, ...] = (_Input(worker), *args) if takes_input else args
            result: Any = fn(*call_args, **kwargs)
            if not has_output:
                value: object = result if single else None
                del result
                worker.finish(("done", worker.taken, time.process_time(), value))
                return
            iterator = iter(cast("Iterable[object]", result))
            del result
            threading.Thread(
                target=worker.send_lingering, name="pipeline-linger", daemon=True
            ).start()
            add = worker.add
            while True:
                if worker.granted <= worker.used:
                    worker.wait_credit()
                if worker.stop_requested:
                    raise _Stop
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                add(item)
            with worker.lock:
                worker.raise_failed()
                worker.flush()
        except (Cancelled, _Stop):
            stopping = True
            _close(iterator)
            worker.finish(("stopped", worker.taken, time.process_time()), results=False)
            return
        except BaseException as exc:
            stopping = raised_while_cancelled(exc) or worker.cancelled
            raise
        try:
            _close(iterator)
        finally:
            iterator = None
        worker.finish(("done", worker.taken, time.process_time(), None))
    except BaseException as exc:
        try:
            _send_error(exc, stopping or raised_while_cancelled(exc), worker)
        except OSError:  # the parent is gone: nobody to tell, and nothing to print
            os._exit(1)
    finally:
        iterator = None


def _close(iterator: object) -> None:
    close = getattr(iterator, "close", None)
    if callable(close):
        close()


def _send_error(exc: BaseException, stopping: bool, worker: Worker) -> None:
    import traceback  # lazily, as cloudpickle: only a failure needs them

    import cloudpickle

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        # By type, args and attributes, not by calling its constructor again: a class whose
        # __init__ takes other arguments than its args (a common sight) still comes back.
        data = cloudpickle.dumps((type(exc), exc.args, exc.__dict__))
        rebuild_exception(data)
    except Exception:
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        error = RemoteStageError(name, str(exc), text)
        data = cloudpickle.dumps((RemoteStageError, error.args, error.__dict__))
    worker.finish(("error", data, text, stopping, worker.taken, time.process_time()), results=False)


def rebuild_exception(data: bytes) -> BaseException:
    """An exception from what :func:`_send_error` pickled: its type, args and attributes."""
    import cloudpickle

    cls, args, state = cloudpickle.loads(data)
    exc: BaseException = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc
