"""What every host of the local engine shares: a named thread of this process that runs one
instance of a stage (or proxies it, for a worker process), its ends of the buffers, and the
meter both ends write."""

from __future__ import annotations

import threading
from typing import Protocol

from ._channel import Meter, Receiver, Sender
from ._stages import StageSpec
from ._state import StageState

__all__ = ["LocalHost", "Reports"]


class Reports(Protocol):
    """What a host tells its supervisor (``_supervise.Supervisor``)."""

    def record(self, exc: BaseException, host: LocalHost, *, stopping: bool) -> StageState:
        """What the stage raised; whether it counts as a failure."""
        ...

    def finished(self, host: LocalHost, outcome: StageState) -> None:
        """The host has ended."""
        ...

    def set_result(self, value: object) -> None:
        """The sink returned ``value``."""
        ...


class LocalHost:
    """One instance of a stage, run or proxied by a daemon thread named ``pipeline-<stage>-<i>``.

    Subclasses give the thread's body (``_work``) and the supervisor's hooks that differ.
    """

    def __init__(
        self,
        supervisor: Reports,
        stage: StageSpec,
        index: int,
        receiver: Receiver[object] | None,
        sender: Sender[object] | None,
    ) -> None:
        self.stage = stage
        self.name = f"pipeline-{stage.name}-{index}"
        self.meter = Meter()
        self.outcome: StageState | None = None
        self.receiver = receiver
        self.sender = sender
        for end in (receiver, sender):
            if end is not None:
                end.meter = self.meter
        self._supervisor = supervisor
        # Every thread is joined before the caller gets control back; daemon only so that
        # one given up while stuck cannot keep the interpreter from exiting.
        self.thread = threading.Thread(target=self._work, name=self.name, daemon=True)

    def _work(self) -> None:
        raise NotImplementedError

    @property
    def title(self) -> str:
        """How messages name it, e.g. ``thread pipeline-parse-1``."""
        raise NotImplementedError

    def cancel(self) -> None:
        """The pipeline is stopping: wake whatever it waits on besides its buffers."""
        raise NotImplementedError

    def kill(self) -> bool:
        """End it by force, if that can be done; whether it was."""
        raise NotImplementedError

    def cpu(self) -> float | None:
        """CPU seconds it has used, where the platform tells."""
        raise NotImplementedError

    def describe(self) -> str:
        """What it is doing now."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Nothing to create before the run's threads start (a process host forks here)."""

    def start(self) -> None:
        """Start its thread."""
        self.thread.start()

    def started(self) -> bool:
        """Whether its thread runs or ran."""
        return self.thread.ident is not None

    def join(self, timeout: float | None) -> bool:
        """Wait for its thread; whether it has ended."""
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def items(self) -> tuple[int, int]:
        """Items taken from its input and put into its output."""
        return (
            self.receiver.count if self.receiver is not None else 0,
            self.sender.count if self.sender is not None else 0,
        )
