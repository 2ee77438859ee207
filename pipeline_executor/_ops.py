"""The bodies of the per-item operators: map, filter, flat_map, batch, unbatch and take.

Each operator is a stage like any other: its ``StageSpec.fn`` is one of the classes below, a
picklable object whose ``__call__(items, *args, **kwargs)`` is a generator over the stage's
input, so an engine hosts it exactly as it hosts a user's generator (in a thread today, in a
worker process later). Ordering is not done here but by the engine (``_order``), from the
same events for every stage.

Error policy. With ``on_error``, an item whose call raises an ``Exception`` is handed to
``on_error(item, exc)`` in the stage's thread, counted, and dropped; without it, the exception
stops the pipeline as from any stage. ``BaseException``s that are not ``Exception``s
(``KeyboardInterrupt``, our own stop) are never handled.

Timeouts. With ``timeout``, each call runs on a helper thread owned by the body (one per stage
instance, named after it, joined when the body ends normally); the body waits on a condition
with the remaining time, never polls. A call that has not returned in time fails the item
with ``TimeoutError`` (through ``on_error``); as a thread cannot be interrupted, its helper
is abandoned (a daemon, named in the statistics and in a ``RuntimeWarning``; it ends when the
call returns) and a new helper takes the next item. Each instance may have one abandoned call
still running at a time, so a stage has at most ``threads`` of them: a timeout while the
instance's previous abandoned call still runs fails the stage.

Counts go to the ``ItemCounters`` of the thread's ``Meter``, found once when the body starts.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ._diagnose import DELEGATES
from ._meter import ChannelTimeout, ItemCounters, Meter

__all__ = [
    "BatchBody",
    "FilterBody",
    "FlatMapBody",
    "MapBody",
    "PerItemBody",
    "TakeBody",
    "UnbatchBody",
]

_MISSING: Any = object()


def _counters(items: object) -> ItemCounters:
    meter = getattr(items, "meter", None)
    return meter.items if isinstance(meter, Meter) else ItemCounters()


class _Helper:
    """One helper thread that makes an instance's calls, one at a time, for its timeout."""

    def __init__(self, name: str) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._job: tuple[Callable[..., object], tuple[object, ...], Mapping[str, object]] | None
        self._job = None
        self._outcome: tuple[bool, object] | None = None  # (returned, value or exception)
        self._closing = False
        self.abandoned = False  # the caller stopped waiting for the current call
        self.returned = False  # an abandoned call has since returned
        # A daemon, so that a call stuck for good never keeps the interpreter from exiting.
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while self._job is None and not self._closing:
                    cond.wait()
                if self._job is None:
                    return
                fn, args, kwargs = self._job
                self._job = None
            try:
                outcome: tuple[bool, object] = (True, fn(*args, **kwargs))
            except BaseException as exc:  # handed to the waiting body, which raises it
                outcome = (False, exc)
            del fn, args, kwargs
            with cond:
                if self.abandoned:
                    self.returned = True
                    return
                self._outcome = outcome
                cond.notify_all()
            del outcome

    def call(
        self,
        fn: Callable[..., object],
        args: tuple[object, ...],
        kwargs: Mapping[str, object],
        timeout: float,
    ) -> object:
        """``fn(*args, **kwargs)`` on the helper: its value, or ``_MISSING`` after ``timeout``.

        Raises:
            BaseException: what the call raised, as itself.
        """
        cond = self._cond
        me = threading.get_ident()
        DELEGATES[me] = self.thread.ident or me  # a stall diagnosis looks at the call
        try:
            with cond:
                self._job = (fn, args, kwargs)
                cond.notify_all()
                deadline = time.monotonic() + timeout
                while self._outcome is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self.abandoned = True
                        return _MISSING
                    cond.wait(remaining)
                (returned, value), self._outcome = self._outcome, None
        finally:
            del DELEGATES[me]
        if returned:
            return value
        assert isinstance(value, BaseException)
        try:
            raise value
        finally:
            del value

    def close(self) -> None:
        """Let the idle helper end, and join it."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self.thread.join()


class PerItemBody:
    """What map, filter and flat_map share: the user's function, the policy, the timeout."""

    __slots__ = ("fn", "label", "on_error", "threads", "timeout")

    def __init__(
        self,
        fn: Callable[..., object],
        on_error: Callable[[Any, Exception], object] | None,
        timeout: float | None,
        threads: int,
    ) -> None:
        self.fn = fn
        self.on_error = on_error
        self.timeout = timeout
        self.threads = threads
        self.label = ""  # set by the builder once the stage is described

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.fn!r}>"

    def call_one(
        self, item: object, args: tuple[object, ...], kwargs: Mapping[str, object]
    ) -> object:
        """The user's function on one item (what a helper thread runs, with a timeout)."""
        return self.fn(item, *args, **kwargs)

    def _results(
        self, items: Iterable[object], args: tuple[object, ...], kwargs: Mapping[str, object]
    ) -> Iterator[tuple[object, object]]:
        """(item, what its call returned) for each item whose call succeeded."""
        counters = _counters(items)
        on_error, timeout = self.on_error, self.timeout
        helpers = _Helpers(self, counters) if timeout is not None else None
        call = self.call_one
        try:
            for index, item in enumerate(items):
                try:
                    if helpers is None:
                        result = call(item, args, kwargs)
                    else:
                        result = helpers.call(items, index, item, args, kwargs)
                except Exception as exc:
                    if on_error is None or (helpers is not None and exc is helpers.fatal):
                        raise
                    counters.failed += 1
                    on_error(item, exc)
                    del exc
                    continue
                yield item, result
                del item, result
        finally:
            if helpers is not None:
                helpers.close()


class _Helpers:
    """An instance's current helper thread, and the abandoned one that may still run."""

    def __init__(self, body: PerItemBody, counters: ItemCounters) -> None:
        self._body = body
        self._counters = counters
        self._name = threading.current_thread().name
        self._made = 0
        self._current: _Helper | None = None
        self._stuck: _Helper | None = None
        self.fatal: TimeoutError | None = None  # the timeout that stops the stage, if any

    def call(
        self,
        items: object,
        index: int,
        item: object,
        args: tuple[object, ...],
        kwargs: Mapping[str, object],
    ) -> object:
        body = self._body
        assert body.timeout is not None
        helper = self._current
        if helper is None:
            helper = self._current = _Helper(f"{self._name}-call-{self._made}")
            self._made += 1
        value = helper.call(body.call_one, (item, args, kwargs), {}, body.timeout)
        if value is not _MISSING:
            return value
        return self._timed_out(helper, _position(items, index, body.threads), item)

    def _timed_out(self, helper: _Helper, where: str, item: object) -> object:
        body, counters = self._body, self._counters
        self._current = None
        counters.timed_out += 1
        counters.abandoned.append(helper.thread.name)
        stuck, self._stuck = self._stuck, helper
        warnings.warn(
            f"pipeline_executor: {body.label}: the call on {where} did not return within "
            f"{body.timeout:g} s; its thread {helper.thread.name} is abandoned (it ends when "
            "the call returns) and a new thread takes the next items",
            RuntimeWarning,
            stacklevel=2,
        )
        error = TimeoutError(
            f"{body.label}: the call on {where} did not return within {body.timeout:g} s"
        )
        if stuck is not None and not stuck.returned:
            self.fatal = TimeoutError(
                f"{error}, while this thread's previous timed-out call (thread "
                f"{stuck.thread.name}) still runs: at most one abandoned call per thread "
                f"({body.threads} per stage), so the stage stops"
            )
            raise self.fatal
        raise error

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


def _position(items: object, index: int, threads: int) -> str:
    """How a message names an item: its 0-based position in the stage's input, where known."""
    seq = getattr(items, "position", None)
    if isinstance(seq, int):
        return f"item {seq}"
    if threads == 1:
        return f"item {index}"
    return f"item {index} taken by thread {threading.current_thread().name}"


class MapBody(PerItemBody):
    """``map``: yields ``fn(item, *args, **kwargs)`` for each item."""

    __slots__ = ()

    def __call__(
        self, items: Iterable[object], *args: object, **kwargs: object
    ) -> Iterator[object]:
        fn = self.fn
        if self.on_error is None and self.timeout is None:
            if args or kwargs:
                for item in items:
                    yield fn(item, *args, **kwargs)
            else:
                for item in items:
                    yield fn(item)
            return
        for _, result in self._results(items, args, kwargs):
            yield result


class FilterBody(PerItemBody):
    """``filter``: yields the items for which ``fn(item, *args, **kwargs)`` is true."""

    __slots__ = ()

    def __call__(
        self, items: Iterable[object], *args: object, **kwargs: object
    ) -> Iterator[object]:
        fn = self.fn
        if self.on_error is None and self.timeout is None:
            for item in items:
                if fn(item, *args, **kwargs):
                    yield item
            return
        for item, keep in self._results(items, args, kwargs):
            if keep:
                yield item


class FlatMapBody(PerItemBody):
    """``flat_map``: yields every item of ``fn(item, *args, **kwargs)`` for each item.

    With ``on_error`` or ``timeout``, an item's outputs are collected (by the call, on the
    helper thread with a timeout) before the first is yielded, so a failing item yields none.
    """

    __slots__ = ()

    def call_one(
        self, item: object, args: tuple[object, ...], kwargs: Mapping[str, object]
    ) -> object:
        """The user's function on one item, its outputs collected."""
        return list(self.fn(item, *args, **kwargs))  # type: ignore[call-overload]

    def __call__(
        self, items: Iterable[object], *args: object, **kwargs: object
    ) -> Iterator[object]:
        if self.on_error is None and self.timeout is None:
            fn = self.fn
            for item in items:
                yield from fn(item, *args, **kwargs)  # type: ignore[misc]
            return
        for _, outputs in self._results(items, args, kwargs):
            yield from outputs  # type: ignore[misc]


class BatchBody:
    """``batch``: lists of ``size`` items, the last one shorter; with ``timeout``, a partial
    list as soon as its first item has waited that long."""

    __slots__ = ("size", "timeout")
    __name__ = "batch"

    def __init__(self, size: int, timeout: float | None) -> None:
        self.size = size
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<BatchBody size={self.size} timeout={self.timeout}>"

    def __call__(self, items: Iterable[object]) -> Iterator[list[object]]:
        size = self.size
        if self.timeout is None:
            batch: list[object] = []
            for item in items:
                batch.append(item)
                if len(batch) == size:
                    yield batch
                    batch = []
            if batch:
                yield batch
            return
        yield from self._timed(items, size, self.timeout)

    @staticmethod
    def _timed(items: Iterable[object], size: int, timeout: float) -> Iterator[list[object]]:
        # The engine's input end waits at most `timeout` seconds when told so, raising
        # ChannelTimeout (it counts the wait as starved; nothing polls).
        source: Any = items
        batch: list[object] = []
        deadline = 0.0
        try:
            while True:
                if batch:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        yield batch
                        batch = []
                        continue
                    source.timeout = remaining
                else:
                    source.timeout = None
                try:
                    item = next(source)
                except StopIteration:
                    break
                except ChannelTimeout:
                    continue  # the deadline has passed: the next turn yields the batch
                if not batch:
                    deadline = time.monotonic() + timeout
                batch.append(item)
                if len(batch) == size:
                    yield batch
                    batch = []
            if batch:
                yield batch
        finally:
            source.timeout = None


class UnbatchBody:
    """``unbatch``: yields every item of every iterable it is given."""

    __slots__ = ()
    __name__ = "unbatch"

    def __repr__(self) -> str:
        return "<UnbatchBody>"

    def __call__(self, items: Iterable[Iterable[object]]) -> Iterator[object]:
        for chunk in items:
            yield from chunk


class TakeBody:
    """``take``: the first ``n`` items; then it returns, which stops the stages before it."""

    __slots__ = ("n",)
    __name__ = "take"

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"<TakeBody n={self.n}>"

    def __call__(self, items: Iterable[object]) -> Iterator[object]:
        left = self.n
        if left == 0:
            return
        for item in items:
            yield item
            left -= 1
            if left == 0:
                return
