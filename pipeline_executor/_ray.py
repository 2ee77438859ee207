"""The Ray engine: each instance of a source or ``then`` stage is a Ray actor; the sink, and
the caller's loop, stay in this process.

Items move actor to actor, in chunks, through Ray's object store (``_ray_actor`` is the
actor's side); only the last stage's items come to this process, where a buffer of
``_channel`` hands them to the sink's threads or to the caller's loop. The supervisor sees one
``_ray_host.ActorHost`` per actor: a driver-side thread that waits on the actor's ``run`` call
(and, for the last stage, moves its chunks into that buffer) and reports how it ended.
``cancel`` asks the actor to stop (its generator is closed there, so its ``finally`` runs);
``kill``, after the grace period, is ``ray.kill``. Once every host has ended, every actor of
the run is killed (not before: an actor whose generator has ended still serves the chunks its
consumers have not fetched).

Ray is imported only when a :class:`RayEngine` runs a pipeline.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from collections.abc import Mapping, Sequence
from typing import Any, cast

from ._channel import Channel
from ._errors import PipelineDefinitionError
from ._ray_host import ActorHost, ActorLink
from ._stages import Role, StageSpec
from ._supervise import Host, Link, RunOptions, Supervisor, Wiring
from ._threads import ThreadHost

__all__ = ["RayEngine"]


def _ray() -> Any:
    """Import Ray. Before its first import: a local instance started here listens on
    127.0.0.1 only (Ray takes the loopback address as the node's only when it is told that
    clusters are off), and Ray's usage report, which would reach the internet, is off."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError as exc:
        raise PipelineDefinitionError(
            "pipeline", "RayEngine needs ray: pip install 'pipeline_executor[ray]'"
        ) from exc
    return ray


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PipelineDefinitionError(
            "RayEngine", f"{name} must be an int >= {minimum}, got {value!r}"
        )
    return value


def _check_address(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise PipelineDefinitionError("RayEngine", f"address must be a str or None, got {value!r}")
    return value


def _check_linger(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise PipelineDefinitionError(
            "RayEngine", f"linger must be a number of seconds > 0, got {value!r}"
        )
    return float(value)


def _check_resources_option(value: object) -> dict[str, Mapping[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PipelineDefinitionError(
            "RayEngine", f"resources must be a mapping of stage names, got {value!r}"
        )
    resources: dict[str, Mapping[str, Any]] = {}
    for name, options in cast("Mapping[object, object]", value).items():
        if not isinstance(name, str) or not isinstance(options, Mapping):
            raise PipelineDefinitionError(
                "RayEngine",
                "resources must map stage names to mappings of Ray actor options, "
                f"got {name!r}: {options!r}",
            )
        if "max_concurrency" in options:
            raise PipelineDefinitionError(
                "RayEngine", f"resources[{name!r}]: max_concurrency is set by the engine"
            )
        resources[name] = cast("Mapping[str, Any]", options)
    return resources


class RayEngine:
    """Runs a pipeline on a Ray cluster: every instance of the source and of each ``then``
    stage is a Ray actor (``threads=k`` or ``processes=k``: k actors), and items move actor
    to actor in chunks. The sink runs in this process, as does the caller's loop.

    Args:
        address: the cluster to connect to (``"auto"``, ``"ray://..."``, ``"host:port"``), or
            ``None``: the Ray instance this process is connected to already, else a local one
            started on first use (listening on 127.0.0.1 only). A cluster the engine did not
            start is never shut down by it; one it started lives until :meth:`shutdown` or
            the interpreter's exit.
        resources: Ray actor options per stage name, e.g. ``{"model": {"num_gpus": 1,
            "resources": {"node_b": 1}}}`` (``num_cpus``, ``num_gpus``, ``memory``,
            ``resources``, and Ray's other actor options).
        chunk: the most items a chunk carries (a stage with a smaller ``buffer=n`` uses
            that; an auto buffer's byte bound does not apply between actors).
        linger: seconds a partial chunk may wait while a consumer waits for it.
        queued: full chunks an actor may hold for its consumers.
        in_flight: chunks sent on each stream that its consumer has not taken yet.
        init: more keyword arguments for ``ray.init`` when the engine connects.

    Raises:
        PipelineDefinitionError: an option of the wrong type or out of range.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        resources: Mapping[str, Mapping[str, Any]] | None = None,
        chunk: int = 256,
        linger: float = 0.02,
        queued: int = 2,
        in_flight: int = 2,
        init: Mapping[str, Any] | None = None,
    ) -> None:
        self.address = _check_address(address)
        self.resources: Mapping[str, Mapping[str, Any]] = _check_resources_option(resources)
        self.chunk = _check_count("chunk", chunk, 1)
        self.linger = _check_linger(linger)
        self.queued = _check_count("queued", queued, 1)
        self.in_flight = _check_count("in_flight", in_flight, 1)
        self.init: dict[str, Any] = dict(init or {})
        self.ray: Any = None
        self._started = False

    def __repr__(self) -> str:
        return (
            f"RayEngine(address={self.address!r}, chunk={self.chunk}, linger={self.linger:g}, "
            f"queued={self.queued}, in_flight={self.in_flight})"
        )

    def chunk_of(self, stage: StageSpec) -> int:
        """The most items a chunk of ``stage``'s output carries."""
        buffer = stage.buffer
        return min(self.chunk, buffer) if isinstance(buffer, int) else self.chunk

    def bound(self, stage: StageSpec, consumers: int) -> int:
        """The most items of ``stage``'s output alive at once between its actors and the
        next stage's: ``threads x (queued + 1 + consumers x (in_flight + 1)) x chunk``."""
        per_actor = self.queued + 1 + consumers * (self.in_flight + 1)
        return stage.threads * per_actor * self.chunk_of(stage)

    def connect(self) -> Any:
        """Connect to the cluster (starting a local one if ``address`` is ``None`` and none
        is connected); the ``ray`` module."""
        ray = _ray()
        if not ray.is_initialized():
            options = dict(self.init)
            if self.address is None:
                options.setdefault("include_dashboard", False)
            # Starting a local node, Ray installs a SIGTERM handler of its own that exits
            # with status 1; keep the caller's (by default: a stop of the pipeline, then
            # SystemExit(143), whose atexit shuts Ray down).
            main = threading.current_thread() is threading.main_thread()
            previous = signal.getsignal(signal.SIGTERM) if main else None
            ray.init(address=self.address, **options)
            if main:
                signal.signal(signal.SIGTERM, previous)
            self._started = True
        self.ray = ray
        return ray

    def shutdown(self) -> None:
        """Shut down the Ray instance this engine started, if it did (never another)."""
        if self._started and self.ray is not None:
            self.ray.shutdown()
            self._started = False

    def wire(
        self, stages: Sequence[StageSpec], supervisor: Supervisor, options: RunOptions
    ) -> Wiring:
        """One actor per instance of the source and each ``then`` stage, a buffer in this
        process for the last stage's items, and the sink's threads reading it.

        Raises:
            PipelineDefinitionError: ``resources`` names no such stage, names the sink, or
                asks for what no node of the cluster has.
        """
        del options  # the start method is for worker processes
        self._check_resources(stages)
        self.connect()
        self._check_cluster(stages)
        sink = stages[-1] if stages[-1].role is Role.SINK else None
        remote = stages[:-1] if sink is not None else stages
        hosts: list[Host] = []
        links: list[Link] = []
        outputs: dict[int, Link] = {}
        upstreams: list[ActorHost] | None = None
        previous: ActorLink | None = None
        local: Channel[object] | None = None
        for index, stage in enumerate(remote):
            last = index == len(remote) - 1
            after = sink.threads if sink is not None else 1
            consumers = 1 if last else remote[index + 1].threads
            if last:
                capacity = max(stage.threads, self.chunk_of(stage))
                local = Channel[object](capacity, producers=stage.threads, consumers=after)
            mine = [
                ActorHost(
                    supervisor,
                    stage,
                    i,
                    self,
                    consumers,
                    local.senders[i] if last and local is not None else None,
                    upstreams,
                )
                for i in range(stage.threads)
            ]
            hosts.extend(mine)
            if previous is not None:
                previous.consumers = mine
            link: Link
            if last and local is not None:
                link = local
            else:
                previous = ActorLink(mine, self.bound(stage, consumers))
                link = previous
            links.append(link)
            outputs[stage.position] = link
            upstreams = mine
        assert local is not None
        # An actor whose generator has ended still serves the chunks its consumers have not
        # fetched: the run's actors are killed together, once every host has ended.
        actors = [h for h in hosts if isinstance(h, ActorHost)]
        supervisor.on_end(lambda: self._kill(actors))
        if sink is not None:
            hosts.extend(
                ThreadHost(supervisor, sink, i, local.receivers[i], None)
                for i in range(sink.threads)
            )
        return Wiring(links, outputs, hosts, None if sink is not None else local.receivers[0])

    def _kill(self, hosts: Sequence[ActorHost]) -> None:
        """Kill every actor of a run (it has ended): none outlives its run."""
        for host in hosts:
            if host.actor is not None:
                self.ray.kill(host.actor)

    def _check_resources(self, stages: Sequence[StageSpec]) -> None:
        names = {s.name: s for s in stages}
        for name in self.resources:
            stage = names.get(name)
            if stage is None:
                known = ", ".join(repr(s.name) for s in stages)
                raise PipelineDefinitionError(
                    "RayEngine", f"resources names no stage of the pipeline: {name!r} ({known})"
                )
            if stage.role is Role.SINK:
                raise PipelineDefinitionError(
                    stage.label, "the sink runs in the caller's process: it takes no resources"
                )

    def _check_cluster(self, stages: Sequence[StageSpec]) -> None:
        """An actor asking for what no node has would wait forever: refuse it now."""
        total: dict[str, float] = dict(self.ray.cluster_resources())
        for stage in stages:
            options = self.resources.get(stage.name, {})
            wanted: dict[str, float] = dict(options.get("resources", {}))
            for key, ray_key in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
                if options.get(key):
                    wanted[ray_key] = options[key]
            for key, amount in wanted.items():
                if total.get(key, 0) < amount:
                    raise PipelineDefinitionError(
                        stage.label,
                        f"no node of the Ray cluster has {amount:g} of {key!r} "
                        f"(the cluster has {total.get(key, 0):g})",
                    )
