"""The driver's side of a Ray stage: one :class:`ActorHost` per actor (see ``_ray``).

An actor host is a thread of this process that waits on its actor's ``run`` call (and, for
the last stage, moves the actor's chunks into this process's buffer), reports how it ended,
and answers the supervisor's questions by asking the actor. :class:`ActorLink` is what the
supervisor sees of the chunks between two stages' actors: counts asked of the actors.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ._channel import Activity, Meter, Sender
from ._errors import Aborted, Broken, WorkerDiedError
from ._stages import Role, StageSpec
from ._state import StageState
from ._stats import BufferStatistics
from ._supervise import Supervisor

__all__ = ["ActorHost", "ActorLink", "Settings", "death_cause"]

_ACTOR_CLASS: list[Any] = []  # the Ray actor class, made once per process
_ASK_TIMEOUT = 2.0  # seconds to wait for an actor's answer about its counts or its line


class Settings(Protocol):
    """What a host reads of its engine (``_ray.RayEngine``)."""

    ray: Any
    resources: Mapping[str, Mapping[str, Any]]
    linger: float
    queued: int
    in_flight: int

    def chunk_of(self, stage: StageSpec) -> int:
        """The most items a chunk of ``stage``'s output carries."""
        ...


def _actor_class(ray: Any) -> Any:
    if not _ACTOR_CLASS:
        from ._ray_actor import StageActor

        _ACTOR_CLASS.append(ray.remote(StageActor))
    return _ACTOR_CLASS[0]


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a Ray actor (its ``__cause__``)."""

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""'


def death_cause(text: str) -> str:
    """The cause of an actor's death in one line, from the text of Ray's ``ActorDiedError``."""
    match = re.search(r"The actor (?:is dead|died) because (.*)", text, re.DOTALL)
    cause = match.group(1) if match is not None else text
    cause = cause.split(" Some common causes")[0]
    return " ".join(cause.split()).rstrip(".")


class ActorHost:
    """One instance of a stage in a Ray actor, watched by a thread of this process."""

    def __init__(
        self,
        supervisor: Supervisor,
        stage: StageSpec,
        index: int,
        engine: Settings,
        consumers: int,
        sender: Sender[object] | None,
        upstreams: Sequence[ActorHost] | None,
    ) -> None:
        self.stage = stage
        self.name = f"pipeline-{stage.name}-{index}"
        self.meter = Meter()
        self.outcome: StageState | None = None
        self.sender = sender
        self._pump_meter = Meter()  # the waits of this process's thread on the buffer
        if sender is not None:
            sender.meter = self._pump_meter
        self._supervisor = supervisor
        self._engine = engine
        self._consumers = consumers
        self._upstreams = upstreams
        self.actor: Any = None
        self._run_ref: Any = None
        self.pid: int | None = None
        self.node: str | None = None
        self._counts: tuple[int, int, float, float, float | None] = (0, 0, 0.0, 0.0, None)
        self._counted_at = 0.0
        self._cancelled = False
        self._killed = False
        # Joined before the caller gets control back; daemon as every host thread is.
        self.thread = threading.Thread(target=self._work, name=self.name, daemon=True)

    @property
    def title(self) -> str:
        """``Ray actor <name> (pid N, node <id>)``."""
        node = self.node[:12] if self.node is not None else None
        return f"Ray actor {self.name} (pid {self.pid}, node {node})"

    # -- the supervisor's hooks ----------------------------------------------------------

    def prepare(self) -> None:
        """Create the actor (Ray starts it meanwhile; nothing of this process forks)."""
        engine, stage = self._engine, self.stage
        import cloudpickle

        payload = cloudpickle.dumps((stage.fn, stage.args, dict(stage.kwargs)))
        options = dict(engine.resources.get(stage.name, {}))
        options["max_concurrency"] = self._consumers + 4  # run, streams, stop, counts, where
        cls = _actor_class(engine.ray)
        self.actor = cls.options(**options).remote(
            payload, self._consumers, engine.chunk_of(stage), engine.linger, engine.queued
        )

    def start(self) -> None:
        """Call the actor's ``run`` (upstream actors exist: hosts are prepared in order) and
        start the thread that watches it."""
        if self.actor is None:
            self.prepare()
        assert self.actor is not None
        upstreams = None if self._upstreams is None else [h.actor for h in self._upstreams]
        self._run_ref = self.actor.run.remote(upstreams, self._engine.in_flight)
        self.meter.started = time.perf_counter()
        self.thread.start()

    def started(self) -> bool:
        """Whether its thread runs or ran."""
        return self.thread.ident is not None

    def join(self, timeout: float | None) -> bool:
        """Wait for its thread; whether it has ended."""
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def cancel(self) -> None:
        """Ask the actor to stop: its input and output raise the stop at the next item. One
        still starting (a new process can take seconds) is killed instead: none of the
        stage's code has run there, and waiting for it would outlast the grace period."""
        self._cancelled = True
        if self.actor is None:
            return
        if self.pid is None:
            self._engine.ray.kill(self.actor)
        else:
            self.actor.stop.remote()

    def kill(self) -> bool:
        """``ray.kill`` the actor (it outlived the grace period)."""
        if self.actor is None:
            return False
        self._killed = True
        self._engine.ray.kill(self.actor)
        return True

    def items(self) -> tuple[int, int]:
        """Items its generator took and produced, as the actor last said."""
        self._refresh()
        return self._counts[0], self._counts[1]

    def cpu(self) -> float | None:
        """CPU seconds of the actor's process, as it last said."""
        self._refresh()
        return self._counts[4]

    def describe(self) -> str:
        """What the actor is doing, as it says: waiting, or its line of user code."""
        if self.outcome is not None:
            return self.outcome.value
        ray = self._engine.ray
        try:
            where: str = ray.get(self.actor.where.remote(), timeout=_ASK_TIMEOUT)
        except Exception as exc:  # dead, or too busy to answer
            return f"not answering ({type(exc).__name__})"
        return where

    def _refresh(self) -> None:
        if self.outcome is not None or self.actor is None or not self.started():
            return
        if time.monotonic() - self._counted_at < 0.2:
            return
        try:
            counts = self._engine.ray.get(self.actor.counts.remote(), timeout=_ASK_TIMEOUT)
        except Exception:  # dead or busy: keep what it said last
            return
        self._set_counts(tuple(counts))

    def _set_counts(self, counts: tuple[Any, ...]) -> None:
        taken, produced, starved, blocked, cpu = counts
        self._counts = (taken, produced, starved, blocked, cpu)
        self._counted_at = time.monotonic()
        self.meter.starved = starved + self._pump_meter.starved
        self.meter.blocked = blocked + self._pump_meter.blocked

    # -- the watching thread -------------------------------------------------------------

    def _work(self) -> None:
        ray = self._engine.ray
        outcome = StageState.CANCELLED
        try:
            try:
                self.pid, self.node = ray.get(self.actor.info.remote())
                if self.sender is not None:
                    self._pump()
                result: tuple[Any, ...] = ray.get(self._run_ref)
            except ray.exceptions.RayActorError as exc:
                if self._cancelled or self._killed:
                    outcome = StageState.CANCELLED
                else:
                    outcome = self._supervisor.record(self._died(exc), self, stopping=False)
            else:
                outcome = self._ended(result)
        except BaseException as exc:  # our own plumbing failed: the caller sees it
            outcome = self._supervisor.record(exc, self, stopping=False)
        finally:
            if self.sender is not None:
                self.sender.close()
            self.meter.ended = time.perf_counter()
            self.meter.activity = Activity.BUSY
            self._supervisor.finished(self, outcome)

    def _pump(self) -> None:
        """Move the actor's chunks into this process's buffer, for the sink or the caller."""
        ray, sender = self._engine.ray, self.sender
        assert sender is not None
        from ._ray_actor import UpstreamFailed

        stream = self.actor.outputs.options(
            num_returns="streaming",
            _generator_backpressure_num_objects=self._engine.in_flight,
        ).remote()
        try:
            sender.reserve()
            send = sender.send
            meter = self._pump_meter
            while True:
                started = time.perf_counter()
                try:
                    ref = next(stream)
                except StopIteration:
                    return
                chunk: list[object] = ray.get(ref)
                meter.starved += time.perf_counter() - started
                for item in chunk:
                    send(item)
                del chunk
        except Broken:  # the sink finished early: so does this stage
            self.actor.consumer_done.remote()
        except (Aborted, UpstreamFailed):  # the pipeline stops, or the stage failed:
            pass  # its run call says which
        finally:
            del stream

    def _ended(self, result: tuple[Any, ...]) -> StageState:
        kind = result[0]
        self._set_counts(result[1:6])
        if kind == "done":
            return StageState.FINISHED
        if kind == "stopped":
            return StageState.CANCELLED
        from ._worker import rebuild_exception  # not at import: it imports multiprocessing

        data, text, stopping = result[6:9]
        exc = rebuild_exception(data)
        exc.__cause__ = _RemoteTraceback(text)
        return self._supervisor.record(exc, self, stopping=stopping)

    def _died(self, exc: BaseException) -> WorkerDiedError:
        self._refresh_final()
        taken, produced = self._counts[0], self._counts[1]
        if self.stage.role is Role.SOURCE:
            holding = f"after producing {produced} items"
        else:
            holding = f"after taking {taken} items and producing {produced}"
        return WorkerDiedError(
            self.stage.label,
            self.name,
            self.pid,
            None,
            holding,
            kind="Ray actor",
            cause=death_cause(str(exc)),
        )

    def _refresh_final(self) -> None:
        self._counted_at = 0.0
        self._refresh()


class ActorLink:
    """The chunks between the actors of one stage and those of the next, as the supervisor
    sees them: counts asked of the actors (there is no buffer here to abort)."""

    def __init__(self, producers: Sequence[ActorHost], bound: int) -> None:
        self.producers = producers
        self.consumers: Sequence[ActorHost] = ()
        self._bound = bound
        self._peak = 0

    def moved(self) -> int:
        """Items produced into it and taken out of it so far."""
        return sum(sum(h.items()) for h in (*self.producers, *self.consumers))

    def statistics(self) -> BufferStatistics:
        """Counts as the actors last said; ``capacity`` is the bound in items."""
        items_in = sum(h.items()[1] for h in self.producers)
        items_out = sum(h.items()[0] for h in self.consumers)
        used = max(0, items_in - items_out)
        self._peak = max(self._peak, used)
        return BufferStatistics(
            capacity=self._bound,
            used=used,
            queued=used,
            peak_used=self._peak,
            items_in=items_in,
            items_out=items_out,
            producers=sum(h.outcome is None for h in self.producers),
            consumers=sum(h.outcome is None for h in self.consumers),
        )

    def abort(self) -> None:
        """Nothing to wake here: each actor is told to stop by its host."""
