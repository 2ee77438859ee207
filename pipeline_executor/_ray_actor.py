"""The Ray actor side of a Ray stage: runs one instance of the stage's generator.

Used only inside Ray worker processes, and made a Ray actor class by ``_ray`` (so that this
module imports nothing of Ray at import time). One actor per stage instance:

* :meth:`StageActor.run` calls the user's function once, in the method's thread, over an
  input that merges one streaming call to each upstream actor's :meth:`StageActor.outputs`,
  and puts what the generator yields into an :class:`Outbox` in chunks. It returns how the
  generator ended (a tuple, never a raised exception: an exception travels by type, args and
  attributes, as from a worker process, with its traceback as text).
* :meth:`StageActor.outputs` is a streaming generator: one per consumer (an actor of the next
  stage, or the caller's process for the last stage), each yielding the next full chunk, so
  consumers share the work. Ray holds back a stream whose consumer has not taken its chunks.
* :meth:`StageActor.consumer_done` (a consumer has ended: once all have, the next output
  raises ``Broken`` into the generator), :meth:`StageActor.stop` (the pipeline stops: the
  input and the outbox raise ``Aborted``), :meth:`StageActor.where` and
  :meth:`StageActor.counts` answer the caller while ``run`` goes on (the actor is threaded).

Chunks. A chunk goes out when it has ``chunk`` items, when the generator is about to wait for
input, or when a consumer waits and the oldest pending item is ``linger`` seconds old. The
outbox holds at most ``queued`` full chunks besides the one being filled.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

from ._diagnose import location
from ._errors import Aborted, Broken, Cancelled, RemoteStageError, raised_while_cancelled

__all__ = ["Outbox", "StageActor", "UpstreamFailed", "pack_exception"]


class UpstreamFailed(Exception):
    """An upstream actor's stage failed: its streams end with this (the caller reports the
    failure itself; the consumers only stop)."""


def pack_exception(exc: BaseException) -> tuple[bytes, str]:
    """``exc`` by type, args and attributes (cloudpickled), and its traceback as text; one
    that cannot be pickled becomes a :class:`RemoteStageError` carrying its text."""
    import cloudpickle

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        data = cloudpickle.dumps((type(exc), exc.args, exc.__dict__))
        cls, args, state = cloudpickle.loads(data)
        cls.__new__(cls, *args).__dict__.update(state)
    except Exception:
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        error = RemoteStageError(name, str(exc), text)
        data = cloudpickle.dumps((RemoteStageError, error.args, error.__dict__))
    return data, text


class Outbox:
    """The chunks one actor has produced and its consumers have not taken yet.

    The lock guards every field. The run thread calls :meth:`put`, :meth:`flush` and
    :meth:`end`; each consumer's stream thread calls :meth:`take`; the caller's calls
    (:meth:`stop`, :meth:`consumer_done`) come on further threads.
    """

    def __init__(self, chunk: int, linger: float, queued: int, consumers: int) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._chunk = chunk
        self._linger = linger
        self._queued = queued
        self._consumers = consumers
        self._full: deque[list[object]] = deque()
        self._pending: list[object] = []
        self._since = 0.0  # when the oldest pending item came
        self._ended = False  # the generator has finished: no more items
        self._failed = False  # the generator raised: streams end with UpstreamFailed
        self._stop: type[Cancelled] | None = None  # what the producer gets instead of room
        self.blocked = 0.0  # seconds the producer waited for room
        self.waiting = False  # the producer waits for room now
        self.produced = 0

    def put(self, item: object) -> None:
        """Add one output; when a chunk is full, wait for room for it.

        Raises:
            Aborted: the pipeline is stopping.
            Broken: every consumer has ended.
        """
        with self._cond:
            if self._stop is not None:
                raise self._stop
            pending = self._pending
            if not pending:  # a consumer waiting for a chunk starts its linger from now
                self._since = time.monotonic()
                self._cond.notify_all()
            pending.append(item)
            self.produced += 1
            if len(pending) >= self._chunk:
                self._push()

    def flush(self) -> None:
        """Send the pending items now (the generator is about to wait for input)."""
        with self._cond:
            if self._pending and self._stop is None:
                self._push()

    def _push(self) -> None:
        # Lock held. Wait for room, then queue the pending items as one chunk.
        if len(self._full) >= self._queued:
            started = time.perf_counter()
            self.waiting = True
            while len(self._full) >= self._queued and self._stop is None and self._pending:
                self._cond.wait()
            self.waiting = False
            self.blocked += time.perf_counter() - started
        if self._stop is not None:
            raise self._stop
        if self._pending:  # a waiting consumer may have taken them meanwhile
            self._full.append(self._pending)
            self._pending = []
            self._cond.notify_all()

    def end(self, *, failed: bool) -> None:
        """The generator has finished (``failed``: by raising); streams end after the rest."""
        with self._cond:
            if self._ended:
                return
            if self._pending and not failed and self._stop is None:
                self._full.append(self._pending)
            self._pending = []
            self._ended = True
            self._failed = failed
            self._cond.notify_all()

    def take(self) -> list[object] | None:
        """The next chunk for one consumer, or ``None`` at the end.

        Raises:
            UpstreamFailed: the generator raised.
        """
        with self._cond:
            while True:
                if self._stop is not None:
                    return None
                if self._full:
                    chunk = self._full.popleft()
                    self._cond.notify_all()
                    return chunk
                if self._ended:
                    if self._failed:
                        raise UpstreamFailed
                    return None
                timeout = None
                if self._pending:  # a slow producer: take its partial chunk after linger
                    timeout = self._since + self._linger - time.monotonic()
                    if timeout <= 0:
                        chunk, self._pending = self._pending, []
                        return chunk
                self._cond.wait(timeout)

    def consumer_done(self) -> None:
        """One consumer has ended; when none is left, the producer gets ``Broken``."""
        with self._cond:
            self._consumers -= 1
            if self._consumers <= 0 and self._stop is None:
                self._stop = Broken
                self._cond.notify_all()

    def stop(self) -> None:
        """The pipeline stops: the producer gets ``Aborted``, every stream ends."""
        with self._cond:
            self._stop = Aborted
            self._full.clear()
            self._pending = []
            self._cond.notify_all()


class _Input(Iterator[object]):
    """The items of every upstream actor, merged, for the generator of one actor."""

    def __init__(self, actor: StageActor, upstreams: Sequence[Any], in_flight: int) -> None:
        self._ray: Any = importlib.import_module("ray")
        self._actor = actor
        self._chunk: deque[object] = deque()
        self._streams: list[Any] = [
            up.outputs.options(
                num_returns="streaming", _generator_backpressure_num_objects=in_flight
            ).remote()
            for up in upstreams
        ]
        self.cancelled = False  # raised the stop once: the input has ended
        self.taken = 0
        self.starved = 0.0

    def __next__(self) -> object:
        actor = self._actor
        if self.cancelled:
            raise StopIteration
        chunk = self._chunk
        while not chunk:
            if actor.stopping:
                self._cancel()
            if not self._streams:
                raise StopIteration
            self._refill()
        if actor.stopping:
            self._cancel()
        self.taken += 1
        return chunk.popleft()

    def _cancel(self) -> None:
        self.cancelled = True
        raise Aborted

    def _refill(self) -> None:
        ray, streams = self._ray, self._streams
        ready, _ = ray.wait(streams, num_returns=1, timeout=0)
        if not ready:  # about to wait: do not hold a partial chunk back meanwhile
            self._actor.outbox.flush()
            started = time.perf_counter()
            self._actor.activity = "waiting for input"
            ready, _ = ray.wait(streams, num_returns=1)
            self._actor.activity = "inside its own code"
            self.starved += time.perf_counter() - started
        stream = ready[0]
        try:
            ref = next(stream)
        except StopIteration:
            streams.remove(stream)
            return
        try:
            self._chunk.extend(ray.get(ref))
        except UpstreamFailed:  # the caller reports that failure: this stage only stops
            self._cancel()
        except ray.exceptions.RayActorError:
            if self._actor.stopping:
                self._cancel()
            raise  # an upstream actor died: never taken for the end of the input

    def close(self) -> None:
        """Drop the streams (Ray cancels what they still had to send)."""
        self._streams = []
        self._chunk.clear()


class StageActor:
    """One instance of a stage (made a threaded Ray actor by ``_ray``)."""

    def __init__(
        self, payload: bytes, consumers: int, chunk: int, linger: float, queued: int
    ) -> None:
        self.payload = payload
        self.outbox = Outbox(chunk, linger, queued, consumers)
        self.stopping = False
        self.activity = "starting"
        self.started = time.perf_counter()
        self.ident: int | None = None
        self.input: _Input | None = None

    def info(self) -> tuple[int, str]:
        """Its process id and node id."""
        ray: Any = importlib.import_module("ray")
        return os.getpid(), str(ray.get_runtime_context().get_node_id())

    def run(self, upstreams: Sequence[Any] | None, in_flight: int) -> tuple[Any, ...]:
        """Run the generator to its end; how it ended, with the counts of :meth:`counts`."""
        import cloudpickle

        self.ident = threading.get_ident()
        self.activity = "inside its own code"
        outbox = self.outbox
        iterator: Iterator[object] | None = None
        stopping = False
        try:
            try:
                # Unpickled here, not in the constructor: a stage module missing on the
                # worker then fails as the stage's own ImportError, with the stage named.
                fn, args, kwargs = cloudpickle.loads(self.payload)
                if upstreams is not None:
                    self.input = _Input(self, upstreams, in_flight)
                    result: object = fn(self.input, *args, **kwargs)
                else:
                    result = fn(*args, **kwargs)
                iterator = iter(cast("Iterable[object]", result))
                del result
                put = outbox.put
                for item in iterator:
                    put(item)
            except Cancelled as stop:
                stopping = True
                _close(iterator)
                # Stopped by the pipeline or a failure upstream: the stages after it stop
                # too, rather than take the end of their input for the end of the data.
                outbox.end(failed=isinstance(stop, Aborted))
                return ("stopped", *self.counts())
            except BaseException as exc:
                stopping = raised_while_cancelled(exc) or (
                    self.input is not None and self.input.cancelled
                )
                raise
            try:
                _close(iterator)  # its finally runs here, before the output ends
            finally:
                iterator = None
            outbox.end(failed=False)
            return ("done", *self.counts())
        except BaseException as exc:
            outbox.end(failed=True)
            data, text = pack_exception(exc)
            return ("error", *self.counts(), data, text, stopping or raised_while_cancelled(exc))
        finally:
            iterator = None
            outbox.end(failed=False)  # a no-op unless stopped
            if self.input is not None:
                self.input.close()
            self.activity = "finished"
            for upstream in upstreams or ():
                upstream.consumer_done.remote()

    def outputs(self) -> Iterator[list[object]]:
        """Stream chunks to one consumer until the end (a streaming generator method)."""
        take = self.outbox.take
        while (chunk := take()) is not None:
            yield chunk

    def consumer_done(self) -> None:
        """A consumer has ended."""
        self.outbox.consumer_done()

    def stop(self) -> None:
        """The pipeline stops: the generator's input and output raise ``Aborted``."""
        self.stopping = True
        self.outbox.stop()

    def counts(self) -> tuple[int, int, float, float, float]:
        """Items taken and produced, seconds starved and blocked, CPU seconds."""
        taken = self.input.taken if self.input is not None else 0
        starved = self.input.starved if self.input is not None else 0.0
        outbox = self.outbox
        return (taken, outbox.produced, starved, outbox.blocked, time.process_time())

    def where(self) -> str:
        """What the generator is doing: waiting, or its line of user code."""
        if self.outbox.waiting:
            return "waiting for space in its buffer"
        if self.activity == "inside its own code" and self.ident is not None:
            where = location(self.ident)
            if where is not None:
                return f"inside its own code at {where}"
        return self.activity


def _close(iterator: object) -> None:
    close = getattr(iterator, "close", None)
    if callable(close):
        close()
