"""The bounded buffer between the threads of one stage and the threads of the next.

Counting. Every slot of a buffer of ``capacity`` is, at any moment, exactly one of: *free*;
*reserved* by a producer (a credit for the item it is computing or will compute next);
*queued*; or *held* by a consumer that has not yet asked for its next item. A producer gets
its slot before it asks the user's generator for an item, and a consumer hands a slot back
only once it asks for the next item, so ``free + reserved + queued + held == capacity`` and no
more than ``capacity`` of a stage's items ever exist. (Reserving ahead only over-counts.)

Speed. Each producer (:class:`Sender`) and consumer (:class:`Receiver`) keeps its own counts.
Items go in with ``deque.append`` and out with ``deque.popleft``, which are atomic under the
GIL, so the hot path takes no lock: the lock is taken only to reserve slots (in chunks), hand
slots back (in chunks, early only when a producer waits), and to wait and wake. Nobody is
woken unless somebody waits, and nobody polls.

The lost-wakeup race, and why it cannot happen: a consumer about to wait first counts itself
in ``getters_waiting`` (under the lock), then looks at the deque again, then waits (releasing
the lock). A producer appends, then reads ``getters_waiting``; if it reads 0, its append came
before the consumer's second look, which therefore sees the item. If it reads more, it takes
the lock, so its notify reaches a consumer that is already waiting.

States, as trio and ``queue.Queue.shutdown`` tell them apart:

* closed: every producer has finished; consumers drain what is queued, then see the end.
* broken: every consumer has finished; producers get :class:`Broken`, queued items are dropped.
* aborted: the pipeline stops now; every waiter on either side wakes with :class:`Aborted`,
  and every producer and consumer gets it at its next item.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

from ._meter import Aborted, Activity, Broken, Cancelled, ChannelTimeout, Meter
from ._stats import BufferStatistics

__all__ = [
    "Aborted",
    "Activity",
    "Broken",
    "Cancelled",
    "Channel",
    "ChannelTimeout",
    "Meter",
    "Receiver",
    "Sender",
]

_T = TypeVar("_T")


class Channel(Generic[_T]):
    """A bounded buffer written by ``producers`` Senders and read by ``consumers`` Receivers."""

    def __init__(self, capacity: int, *, producers: int, consumers: int) -> None:
        # The lock guards every field but `items` (whose append/popleft are atomic) and the
        # fields documented as read without it.
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self.items: deque[_T] = deque()
        self.capacity = capacity
        self._free = capacity
        self._peak = 0
        self._producers = producers  # producer threads that have not finished
        self._consumers = consumers  # consumer threads that have not finished
        # Waiters, and how many were already notified but have not run yet, so that a burst
        # of items costs one notify. A waiter decrements both itself; a signalled count that
        # ends low only costs an extra notify, never a missed one. Read without the lock by
        # the other side, as a hint (see the lost-wakeup note above).
        self.getters_waiting = 0
        self.getters_signalled = 0
        self.putters_waiting = 0
        self._putters_signalled = 0
        # What producers / consumers get instead of slots / items; None while running.
        # Written under the lock, read without it once per item.
        self.producer_stop: type[Cancelled] | None = None
        self.consumer_stop: type[Cancelled] | None = None
        # Slots a producer reserves at once: enough to make the lock rare, few enough that
        # the producers of a multi-threaded stage do not starve each other.
        self.chunk = max(1, capacity // (4 * producers))
        self.senders = [Sender(self) for _ in range(producers)]
        self.receivers = [Receiver(self) for _ in range(consumers)]

    def __repr__(self) -> str:
        return (
            f"<Channel free={self._free}/{self.capacity} queued={len(self.items)} "
            f"producers={self._producers} consumers={self._consumers}>"
        )

    # -- producer side (called by Sender) ------------------------------------------------

    def reserve(self, most: int) -> int:
        """Reserve between 1 and ``most`` free slots, waiting while there are none.

        Raises:
            Aborted: the pipeline is stopping.
            Broken: every consumer has finished.
        """
        with self._lock:
            if self._free == 0:
                self.putters_waiting += 1
                try:
                    while True:
                        if self.producer_stop is not None:
                            raise self.producer_stop
                        if self._free:
                            break
                        self._not_full.wait()
                        if self._putters_signalled:
                            self._putters_signalled -= 1
                finally:
                    self.putters_waiting -= 1
            if self.producer_stop is not None:
                raise self.producer_stop
            taken = min(self._free, most)
            self._free -= taken
            used = self.capacity - self._free
            if used > self._peak:
                self._peak = used
            return taken

    def wake_getter(self) -> None:
        """Wake one consumer that waits and was not woken yet."""
        with self._lock:
            if self.getters_waiting > self.getters_signalled:
                self.getters_signalled += 1
                self._not_empty.notify()

    def producer_done(self, unused: int) -> None:
        """One producer has finished, handing back ``unused`` reserved slots."""
        with self._lock:
            self._free += unused
            self._wake_putters(unused)
            self._producers -= 1
            if self._producers == 0:
                self._not_empty.notify_all()

    def _wake_putters(self, freed: int) -> None:
        # Lock held.
        wake = min(freed, self.putters_waiting - self._putters_signalled)
        if wake > 0:
            self._putters_signalled += wake
            self._not_full.notify(wake)

    # -- consumer side (called by Receiver) ----------------------------------------------

    def release(self, count: int) -> None:
        """Hand back ``count`` slots of items consumers are done with."""
        with self._lock:
            self._free += count
            self._wake_putters(count)

    def wait_item(self, release: int, timeout: float | None) -> _T:
        """Hand back ``release`` slots, then take one item, waiting while there is none.

        Raises:
            StopIteration: every producer has finished and nothing is queued.
            ChannelTimeout: ``timeout`` ran out with nothing to take.
            Aborted: the pipeline is stopping.
        """
        with self._lock:
            if release:
                self._free += release
                self._wake_putters(release)
            while True:
                if self.consumer_stop is not None:
                    raise self.consumer_stop
                # Count ourselves as waiting *before* the last look (see the module notes).
                self.getters_waiting += 1
                try:
                    if self.items:
                        try:
                            return self.items.popleft()
                        except IndexError:  # another consumer's lock-free popleft won it
                            continue
                    if self._producers == 0:
                        raise StopIteration
                    notified = self._not_empty.wait(timeout)
                finally:
                    self.getters_waiting -= 1
                    if self.getters_signalled:
                        self.getters_signalled -= 1
                if notified or self.items or self._producers == 0:
                    continue
                if self.consumer_stop is None:
                    raise ChannelTimeout

    def consumer_done(self, release: int) -> None:
        """One consumer has finished; when the last one goes, the buffer breaks."""
        with self._lock:
            self._free += release
            self._consumers -= 1
            if self._consumers == 0:
                if self.producer_stop is None:
                    self.producer_stop = Broken
                self.items.clear()  # nobody will read them: do not keep them alive
                self._not_full.notify_all()
            else:
                self._wake_putters(release)

    # -- both ----------------------------------------------------------------------------

    def abort(self) -> None:
        """Stop both sides now: every waiter wakes and gets :class:`Aborted`."""
        with self._lock:
            self.producer_stop = Aborted
            self.consumer_stop = Aborted
            self.items.clear()
            self._not_full.notify_all()
            self._not_empty.notify_all()

    def moved(self) -> int:
        """How many items have gone in and out so far; read without the lock."""
        return sum(s.count for s in self.senders) + sum(r.count for r in self.receivers)

    def statistics(self) -> BufferStatistics:
        """An immutable snapshot of this buffer's counters."""
        with self._lock:
            return BufferStatistics(
                capacity=self.capacity,
                used=self.capacity - self._free,
                queued=len(self.items),
                peak_used=self._peak,
                items_in=sum(s.count for s in self.senders),
                items_out=sum(r.count for r in self.receivers),
                producers=self._producers,
                consumers=self._consumers,
            )


class Sender(Generic[_T]):
    """The end one producer thread puts a stage's output into.

    Protocol: :meth:`reserve` once, then :meth:`send` each item (which also reserves the slot
    for the next one), then :meth:`close` once, whatever happened.
    """

    __slots__ = ("_append", "_channel", "_closed", "_credits", "count", "meter")

    def __init__(self, channel: Channel[_T]) -> None:
        self._channel = channel
        self._append = channel.items.append
        self._credits = 0  # reserved slots not yet filled; one is for the item in the making
        self._closed = False
        self.count = 0  # items sent; written only by this producer's thread
        self.meter = Meter()  # the runner gives each thread its own

    def __repr__(self) -> str:
        return f"<Sender of {self._channel!r}>"

    def reserve(self) -> None:
        """Reserve the slot for the first item.

        Raises:
            Aborted: the pipeline is stopping.
            Broken: every consumer has finished.
        """
        self._credits = self._reserve()

    def _reserve(self) -> int:
        meter = self.meter
        meter.activity = Activity.BLOCKED
        start = time.perf_counter()
        try:
            return self._channel.reserve(self._channel.chunk)
        finally:
            meter.blocked += time.perf_counter() - start
            meter.activity = Activity.BUSY

    def send(self, item: _T) -> None:
        """Publish ``item``, produced in a reserved slot, then reserve the next slot.

        Raises:
            Aborted: the pipeline is stopping; ``item`` is dropped.
            Broken: every consumer has finished; ``item`` is dropped.
        """
        channel = self._channel
        if channel.producer_stop is not None:
            raise channel.producer_stop
        self._append(item)
        self.count += 1
        if channel.getters_waiting > channel.getters_signalled:
            channel.wake_getter()
        self._credits -= 1
        if not self._credits:
            self._credits = self._reserve()

    def close(self) -> None:
        """This producer has finished: hand back its unused slots; the last one closes."""
        if not self._closed:
            self._closed = True
            credits, self._credits = self._credits, 0
            self._channel.producer_done(credits)


class Receiver(Generic[_T]):
    """The iterator one consumer thread reads a stage's input from.

    An item handed out stays counted in the buffer until the consumer asks for the next one.
    """

    __slots__ = (
        "_channel",
        "_closed",
        "_popleft",
        "_release_at",
        "_returned",
        "count",
        "meter",
        "timeout",
    )

    def __init__(self, channel: Channel[_T]) -> None:
        self._channel = channel
        self._popleft = channel.items.popleft
        self.count = 0  # items handed out; written only by this consumer's thread
        self._returned = 0  # of those, how many slots were handed back
        # Hand slots back before running dry only when a producer waits, and then in
        # chunks, so that a full buffer does not cost a lock round-trip per item.
        self._release_at = max(1, channel.capacity // 4)
        self._closed = False
        self.timeout: float | None = None
        self.meter = Meter()  # the runner gives each thread its own

    def __repr__(self) -> str:
        return f"<Receiver of {self._channel!r}>"

    def __iter__(self) -> Receiver[_T]:
        return self

    def __next__(self) -> _T:
        channel = self._channel
        if channel.consumer_stop is not None:
            raise channel.consumer_stop
        try:
            item = self._popleft()
        except IndexError:
            return self._wait()
        count = self.count = self.count + 1
        # Items before this one are done with (we were asked for this one).
        if count - self._returned > self._release_at and channel.putters_waiting:
            channel.release(count - 1 - self._returned)
            self._returned = count - 1
        return item

    def _wait(self) -> _T:
        if self._closed:
            raise StopIteration
        done, self._returned = self.count - self._returned, self.count
        meter = self.meter
        meter.activity = Activity.STARVED
        start = time.perf_counter()
        try:
            item = self._channel.wait_item(done, self.timeout)
        finally:
            meter.starved += time.perf_counter() - start
            meter.activity = Activity.BUSY
        self.count += 1
        return item

    def close(self) -> None:
        """This consumer has finished: hand back what it holds and deregister it."""
        if not self._closed:
            self._closed = True
            done, self._returned = self.count - self._returned, self.count
            self._channel.consumer_done(done)
