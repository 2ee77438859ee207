"""The bounded buffer between the threads of one stage and the threads of the next.

Counting. The bound is ``capacity`` live items: an item is *live* while it is being produced
(its producer has a slot for it), queued, or held by a consumer that has not yet asked for its
next item. Every slot is, at any moment, exactly one of: *free*; *spare* (reserved ahead by a
producer for items it has not started); *live*; or *done* (its item was consumed, but the slot
has not been handed back yet). ``free + spare + live + done == capacity``, so no more than
``capacity`` items ever exist. The bound is exact in both directions: a producer about to wait
first takes back every *done* slot, and a sibling producer hands its *spare* slots back at its
next item once a producer waits; so a producer waits only while ``capacity`` items are live (or
a sibling is in the middle of an item with slots reserved ahead).

Speed. Each producer (:class:`Sender`) and consumer (:class:`Receiver`) keeps its own counts.
Items go in with ``deque.append`` and out with ``deque.popleft``, which are atomic under the
GIL, so the hot path takes no lock: the lock is taken to reserve slots (in chunks), when a
producer would wait (it takes back *done* slots from the consumers' counts), when a consumer
finds a producer waiting that nobody woke yet, and to wait and wake. Nobody is woken unless
somebody waits, and nobody polls.

Lost wakeups, and why they cannot happen. A consumer about to wait first counts itself in
``getters_waiting`` (under the lock), then looks at the deque again, then waits (releasing the
lock). A producer appends, then reads ``getters_waiting`` and ``getters_signalled``; if it
reads no unsignalled waiter, its append came before the consumer's second look, which
therefore sees the item. If it reads one, it takes the lock, so its notify reaches a consumer
that is already waiting. The other way round is the same: a producer about to wait counts
itself in ``putters_waiting`` before it reads the consumers' counts; a consumer increments its
count, then reads ``putters_waiting``, so either the producer sees the consumed item or the
consumer sees the waiter (and takes the lock, which the producer holds until it waits).

Which thread writes what. ``Sender._credits``, ``Sender.count``: its producer only.
``Receiver.count`` and ``Receiver.holding``: its consumer only (``holding`` is set before
``count`` grows, and read after it, so a reader never takes back the slot of a held item).
``Receiver._returned``: under the lock only. Everything else of the channel: under the lock,
except the fields documented as read without it.

States, as trio and ``queue.Queue.shutdown`` tell them apart:

* closed: every producer has finished; consumers drain what is queued, then see the end.
* broken: every consumer has finished; producers get :class:`Broken`, queued items are dropped.
* aborted: the pipeline stops now; every waiter on either side wakes with :class:`Aborted`,
  and every producer and consumer gets it at its next item.

After a stop, a consumer's input ends: the first ``next()`` raises the cancellation, every
later one raises ``StopIteration``, so a stage that swallows the cancellation still finishes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, NoReturn, TypeVar, cast

from ._bound import REGROW_AFTER, WARMUP, AutoBound
from ._budget import DEFAULT_MAX_ITEMS, AutoBuffer
from ._meter import Aborted, Activity, Broken, Cancelled, ChannelTimeout, Meter
from ._sizeof import sizeof

if TYPE_CHECKING:
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

_NOTHING: deque[object] = deque()
"""Never appended to: a stopped receiver pops from it, so its next item takes the slow path."""


class Channel(Generic[_T]):
    """A bounded buffer written by ``producers`` Senders and read by ``consumers`` Receivers."""

    def __init__(
        self, capacity: int, *, producers: int, consumers: int, auto: AutoBound | None = None
    ) -> None:
        # The lock guards every field but `items` (whose append/popleft are atomic) and the
        # fields documented as read without it.
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self.items: deque[_T] = deque()
        self.capacity = capacity
        self._free = capacity
        self._peak = 0
        self._peak_bytes = 0
        # An auto buffer's sizing state (None: a fixed count). A shrink starts a new epoch;
        # until every open producer has seen it (handing back what it reserved ahead),
        # `attention` stays set and `_unacked` counts those that have not.
        self.auto = auto
        self.epoch = 0
        self._unacked = 0
        self._producers = producers  # producer threads that have not finished
        self._consumers = consumers  # consumer threads that have not finished
        # Waiters, and how many were already notified but have not run yet, so that a burst
        # of items costs one notify. A waiter decrements both itself; a signalled count that
        # ends low only costs an extra notify, never a missed one. Read without the lock by
        # the other side, as a hint (see the lost-wakeup note above).
        self.getters_waiting = 0
        self.getters_signalled = 0
        self.putters_waiting = 0
        self.putters_signalled = 0
        # What producers / consumers get instead of slots / items; None while running.
        # Written under the lock, read without it once per item.
        self.producer_stop: type[Cancelled] | None = None
        self.consumer_stop: type[Cancelled] | None = None
        # Not None while a producer must look at the channel before its next item: the
        # buffer stopped, or a producer waits (so siblings hand back their spare slots).
        # Written under the lock, read without it once per item.
        self.attention: object = None
        # Slots a producer reserves at once: enough to make the lock rare, few enough that
        # the producers of a multi-threaded stage do not starve each other.
        self.chunk = max(1, capacity // (4 * producers))
        self.senders = [Sender(self, auto is not None) for _ in range(producers)]
        self.receivers = [Receiver(self) for _ in range(consumers)]

    @classmethod
    def for_buffer(
        cls, buffer: int | AutoBuffer, budget: int | None, *, producers: int, consumers: int
    ) -> Channel[_T]:
        """The channel for a stage's ``buffer`` option: a fixed count, or an auto buffer
        filling at most ``budget`` bytes (its share of the run's budget)."""
        if isinstance(buffer, int):
            return cls(buffer, producers=producers, consumers=consumers)
        cap = buffer.max_items or max(DEFAULT_MAX_ITEMS, producers)
        bound = AutoBound(budget or 1, producers + consumers, cap, buffer.sizeof or sizeof)
        return cls(cap, producers=producers, consumers=consumers, auto=bound)

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
            if self._free <= 0:
                # Count ourselves as waiting *before* reading the consumers' counts.
                self.putters_waiting += 1
                self.attention = True
                try:
                    while True:
                        if self.producer_stop is not None:
                            raise self.producer_stop
                        self._reclaim()
                        if self._free > 0 or self._admits():
                            break
                        self._not_full.wait()
                        if self.putters_signalled:
                            self.putters_signalled -= 1
                finally:
                    self.putters_waiting -= 1
                    self._settle()
            if self.producer_stop is not None:
                raise self.producer_stop
            if self.putters_waiting:  # others wait: take only the slot we need
                most = 1
            taken = max(1, min(self._free, most))  # 1 when admitted with `free` <= 0
            self._free -= taken
            self._note_peak()
            return taken

    def _admits(self) -> bool:
        # Lock held, no free slot. An auto buffer admits an item while fewer than `capacity`
        # are alive, even if sibling producers still hold slots they reserved before a shrink
        # (up to a sample window each): one of them may be starving for input that only
        # this producer's progress would bring, so waiting for its slots could deadlock. A
        # fixed buffer never needs this: siblings reserve at most a quarter of it ahead.
        return self.auto is not None and self._live() < self.capacity

    def _reclaim(self) -> None:
        # Lock held. Take back the slots of items consumers are done with: all that each
        # consumer counted but the last, which it may still hold. A count read while it
        # grows is only lower, which takes back less, never a held item's slot.
        for receiver in self.receivers:
            done = receiver.done_with() - receiver.returned
            if done > 0:
                receiver.returned += done
                self._free += done

    def acknowledge(self, sender: Sender[_T], spare: int) -> None:
        """``sender`` hands back ``spare`` slots it had reserved ahead, and has seen the
        latest shrink."""
        with self._lock:
            if spare > 0:
                self._free += spare
                self._wake_putters(spare)
            self._ack(sender)
            self._settle()

    def _ack(self, sender: Sender[_T]) -> None:
        # Lock held.
        if sender.epoch != self.epoch:
            sender.epoch = self.epoch
            self._unacked -= 1

    def _settle(self) -> None:
        # Lock held. Producers may stop looking at the channel before each item.
        if self._unacked <= 0 and not self.putters_waiting and self.producer_stop is None:
            self.attention = None

    def estimate(self, item_bytes: int) -> None:
        """Put a new item size in force: shrink the count at once, or grow it in a step."""
        auto = self.auto
        assert auto is not None
        with self._lock:
            old = self.capacity
            new = auto.estimate(item_bytes)
            if new < old:
                # Admitted items drain first: `free` may go below 0, and nothing is admitted
                # until it is above. Slots reserved ahead come back as producers see the epoch.
                self._free += new - old
                self.epoch += 1
                self._unacked = self._producers
                self.attention = True
            elif new > old and auto.grows_to(new):
                self._free += new - old
                self._wake_putters(new - old)
            else:
                return
            self.capacity = auto.capacity = new
            auto.min_capacity = min(auto.min_capacity, new)
            auto.resizes += 1
            self.chunk = max(1, new // (4 * len(self.senders)))

    def share(self, most: int) -> int:
        """``most``, or fewer once every producer has finished: half of what is left divided
        among the consumers, so that the last items split evenly between them instead of
        one consumer holding a whole batch while the others have nothing to do. (Read
        without the lock: a stale count only sizes a batch.)"""
        if self._producers:
            return most
        return max(1, min(most, len(self.items) // (2 * max(1, self._consumers))))

    def wake_getter(self) -> None:
        """Wake one consumer that waits and was not woken yet."""
        with self._lock:
            if self.getters_waiting > self.getters_signalled:
                self.getters_signalled += 1
                self._not_empty.notify()

    def producer_done(self, sender: Sender[_T], unused: int) -> None:
        """One producer has finished, handing back ``unused`` reserved slots."""
        with self._lock:
            self._note_peak()
            self._free += unused
            self._wake_putters(unused)
            self._ack(sender)
            self._producers -= 1
            self._settle()
            if self._producers == 0:
                self._not_empty.notify_all()

    def _wake_putters(self, freed: int) -> None:
        # Lock held.
        wake = min(freed, self.putters_waiting - self.putters_signalled)
        if wake > 0:
            self.putters_signalled += wake
            self._not_full.notify(wake)

    # -- consumer side (called by Receiver) ----------------------------------------------

    def hand_back(self, receiver: Receiver[_T]) -> None:
        """A producer waits: hand back the slots of items ``receiver`` is done with."""
        with self._lock:
            done = receiver.done_with() - receiver.returned
            if done > 0:
                receiver.returned += done
                self._free += done
                self._wake_putters(done)

    def hand_back_all(self, receiver: Receiver[_T]) -> None:
        """Hand back every slot ``receiver`` counted, its last item's too: it is done with
        that one as well, and is about to wait for its turn to take the next (``_order``)."""
        with self._lock:
            done = receiver.count - receiver.returned
            if done:
                receiver.returned = receiver.count
                self._free += done
                self._wake_putters(done)

    def wait_item(self, receiver: Receiver[_T], timeout: float | None) -> _T:
        """Hand back every slot ``receiver`` counted, then take one item, waiting while there
        is none.

        Raises:
            StopIteration: every producer has finished and nothing is queued.
            ChannelTimeout: ``timeout`` ran out with nothing to take.
            Aborted: the pipeline is stopping.
        """
        with self._lock:
            self._note_peak()
            asked = receiver.done_with(asking=True)
            done = asked - receiver.returned
            if done > 0:
                receiver.returned = asked
                self._free += done
                self._wake_putters(done)
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

    def consumer_done(self, receiver: Receiver[_T]) -> None:
        """One consumer has finished; when the last one goes, the buffer breaks."""
        with self._lock:
            done = receiver.count - receiver.returned
            receiver.returned = receiver.count
            self._free += done
            self._consumers -= 1
            if self._consumers == 0:
                if self.producer_stop is None:
                    self.producer_stop = Broken
                self.attention = True
                self.items.clear()  # nobody will read them: do not keep them alive
                self._not_full.notify_all()
            else:
                self._wake_putters(done)

    # -- both ----------------------------------------------------------------------------

    def abort(self) -> None:
        """Stop both sides now: every waiter wakes and gets :class:`Aborted`."""
        with self._lock:
            self.producer_stop = Aborted
            self.consumer_stop = Aborted
            self.attention = True
            self.items.clear()
            self._not_full.notify_all()
            self._not_empty.notify_all()

    def _live(self) -> int:
        # Lock held. Items being produced (a producer with a slot for its next item), queued,
        # or held (a consumer that counted more than it handed back holds its last one). A
        # producer between its append and its countdown is counted twice: one per thread.
        making = sum(1 for s in self.senders if s.credits > 0)
        holding = sum(r.holding() for r in self.receivers)
        return len(self.items) + making + holding

    def _note_peak(self) -> None:
        # Lock held.
        live = min(self._live(), max(self.capacity, self._peak))
        if live > self._peak:
            self._peak = live
        if self.auto is not None and live * self.auto.item_bytes > self._peak_bytes:
            self._peak_bytes = live * self.auto.item_bytes

    def moved(self) -> int:
        """How many items have gone in and out so far; read without the lock."""
        return sum(s.count for s in self.senders) + sum(r.count for r in self.receivers)

    def statistics(self) -> BufferStatistics:
        """An immutable snapshot of this buffer's counters."""
        from ._stats import BufferStatistics  # only a snapshot needs it (see _state)

        with self._lock:
            self._note_peak()
            used = min(self._live(), self._peak)
            auto = self.auto
            return BufferStatistics(
                capacity=self.capacity,
                used=used,
                queued=len(self.items),
                peak_used=self._peak,
                items_in=sum(s.count for s in self.senders),
                items_out=sum(r.count for r in self.receivers),
                producers=self._producers,
                consumers=self._consumers,
                auto=auto is not None,
                max_items=self.capacity if auto is None else auto.cap,
                min_capacity=self.capacity if auto is None else auto.min_capacity,
                limited_by="items" if auto is None else auto.limited_by(),
                item_bytes=None if auto is None else auto.item_bytes,
                bytes_used=None if auto is None else used * auto.item_bytes,
                peak_bytes=None if auto is None else self._peak_bytes,
                budget_bytes=None if auto is None else auto.budget,
                resizes=0 if auto is None else auto.resizes,
                samples=0 if auto is None else auto.samples,
            )


class Sender(Generic[_T]):
    """The end one producer thread puts a stage's output into.

    Protocol: :meth:`reserve` once, then :meth:`send` each item (which also reserves the slot
    for the next one), then :meth:`close` once, whatever happened.
    """

    __slots__ = (
        "_append",
        "_banked",
        "_channel",
        "_closed",
        "_refill",
        "count",
        "credits",
        "epoch",
        "meter",
    )

    def __init__(self, channel: Channel[_T], auto: bool = False) -> None:
        self._channel = channel
        self._append = channel.items.append
        # What to do when the reserved run of slots ends: reserve more; for an auto buffer,
        # first sample the item just sent. Either way the per-item path is the same.
        self._refill: Callable[[_T], int] = self._sample if auto else self._next_slots
        self._banked = 0  # an auto buffer's slots reserved beyond the next sample point
        self.epoch = 0  # the channel's shrinks this producer has seen
        # Reserved slots not yet filled; one is for the item in the making. Written only by
        # this producer's thread; read by anyone (statistics).
        self.credits = 0
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
        self.credits = self._reserve()
        auto = self._channel.auto
        if auto is not None:  # hand out slots only up to the first sample point
            self._banked = self.credits - 1
            self.credits = 1

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
        if channel.attention is not None:
            self._attend()
        self._append(item)
        self.count += 1
        if channel.getters_waiting > channel.getters_signalled:
            channel.wake_getter()
        self.credits -= 1
        if not self.credits:
            self.credits = self._refill(item)

    def _next_slots(self, item: _T) -> int:
        del item
        return self._reserve()

    def _sample(self, item: _T) -> int:
        """An auto buffer's slow path: estimate ``item``, adapt the count if it calls for it
        (under the lock only then), and hand out slots up to the next sample point."""
        channel = self._channel
        auto = channel.auto
        assert auto is not None
        size = auto.sizer(item)
        auto.samples += 1
        estimate = auto.item_bytes
        if size > estimate:
            channel.estimate(size)
        elif size * 2 <= estimate:
            auto.small_run += 1
            auto.small_max = max(auto.small_max, size)
            if auto.small_run >= REGROW_AFTER:
                channel.estimate(auto.small_max)
        else:
            auto.small_run = 0
            if auto.samples == WARMUP:  # young no more: the interval may widen
                channel.estimate(estimate)
        if self.epoch != channel.epoch:  # the count shrank: hand back what was reserved ahead
            banked, self._banked = self._banked, 0
            channel.acknowledge(self, banked)
        banked = self._banked
        if not banked:
            banked = self._reserve()
        taken = auto.interval
        if taken > banked:
            taken = banked
        self._banked = banked - taken
        return taken

    def _attend(self) -> None:
        """The buffer stopped (raise its stop), a producer waits or the count shrank (hand
        back the slots reserved ahead)."""
        channel = self._channel
        stop = channel.producer_stop
        if stop is not None:
            raise stop
        spare = self.credits - 1 + self._banked  # keep the slot of the item being sent
        if spare > 0 or self.epoch != channel.epoch:
            self.credits = 1
            self._banked = 0
            channel.acknowledge(self, spare)

    def park(self, item: _T) -> None:
        """Use up the slot ``item`` was produced in without publishing it, then reserve the
        next slot as :meth:`send` does.

        For reordering (``_order``): the caller keeps the item aside and later hands it to
        :meth:`publish` of a producer of this buffer. Until then the item is *parked*: its
        slot is neither free, spare nor done, so a fixed buffer's exact bound covers the
        items waiting to be reordered. (An auto buffer admits a producer while fewer than
        ``capacity`` items are live, parked ones not counted, so that the producer they wait
        for is never refused; there they come on top, at most one buffer's worth.)

        Raises:
            Aborted: the pipeline is stopping.
            Broken: every consumer has finished.
        """
        if self._channel.attention is not None:
            self._attend()
        self.credits -= 1
        if not self.credits:
            self.credits = self._refill(item)

    def publish(self, item: _T) -> None:
        """Publish an item parked by :meth:`park` (of any producer of this buffer) without
        using up a slot: the item already has one. Dropped if the buffer is stopped."""
        channel = self._channel
        if channel.producer_stop is not None:
            return  # aborted or broken: nobody will read it, and the producers learn it anyway
        self._append(item)
        self.count += 1
        if channel.getters_waiting > channel.getters_signalled:
            channel.wake_getter()

    def acquire(self, sample: _T | None = None) -> int:
        """Reserve more slots for items produced elsewhere (a worker process), waiting while
        there are none; :meth:`deliver` fills them. Returns how many it got.

        With an auto buffer, ``sample`` (the last item published, ``None`` before the first)
        is estimated first, as :meth:`send` estimates its own items, so that the count
        follows the sizes of items made elsewhere too; the slots then stop at the next sample
        point, as for :meth:`send`.

        Raises:
            Aborted: the pipeline is stopping.
            Broken: every consumer has finished.
        """
        if self._channel.auto is None:
            got = self._reserve()
        elif sample is None:  # before the first item: one slot, the first sample point
            banked = self._banked or self._reserve()
            self._banked = banked - 1
            got = 1
        else:
            # One estimate per batch: the slots banked up to the next sample point go to the
            # worker at once, so that it is not held to one round trip per sample interval.
            got = self._sample(sample) + self._banked
            self._banked = 0
        self.credits += got
        return got

    def running_low(self) -> bool:
        """Whether the producer elsewhere holds less than half a chunk of the slots
        :meth:`acquire` got it: time to get it more, before it has to wait for them."""
        return self.credits < max(1, self._channel.chunk // 2)

    def deliver(self, items: list[_T]) -> None:
        """Publish ``items`` (one batch from a worker process), produced elsewhere in slots got
        from :meth:`acquire`, at once.

        Raises:
            Aborted: the pipeline is stopping; ``items`` are dropped.
            Broken: every consumer has finished; ``items`` are dropped.
        """
        channel = self._channel
        stop = channel.producer_stop
        if stop is not None:
            raise stop
        channel.items.extend(items)
        self.count += len(items)
        self.credits -= len(items)
        for _ in range(min(len(items), channel.getters_waiting - channel.getters_signalled)):
            channel.wake_getter()

    def close(self) -> None:
        """This producer has finished: hand back its unused slots; the last one closes."""
        if not self._closed:
            self._closed = True
            unused = self.credits + self._banked
            self.credits = self._banked = 0
            self._channel.producer_done(self, unused)


class Receiver(Generic[_T]):
    """The iterator one consumer thread reads a stage's input from.

    An item handed out stays counted in the buffer until the consumer asks for the next one.
    Once the buffer is aborted, or :meth:`cancel` was called, the first ``next()`` raises the
    cancellation and every later one raises ``StopIteration``.
    """

    __slots__ = (
        "_channel",
        "_closed",
        "_halted",
        "_pending",
        "_popleft",
        "count",
        "meter",
        "released",
        "returned",
        "timeout",
    )

    def __init__(self, channel: Channel[_T]) -> None:
        self._channel = channel
        self._popleft: Callable[[], _T] = channel.items.popleft
        self.count = 0  # items handed out; written only by this consumer's thread
        self.returned = 0  # of those, how many slots were handed back; under the lock
        self._closed = False
        self._pending: type[Cancelled] | None = None  # a stop for this consumer alone
        self._halted = False  # the cancellation was raised: from now on, the end
        self.timeout: float | None = None
        self.meter = Meter()  # the runner gives each thread its own
        # For a consumer that passes items on (a worker process's proxy, see take()): how many
        # of its items it said it is done with; None for a consumer that is done with every
        # item but the last. Written by its consumer only.
        self.released: int | None = None

    def __repr__(self) -> str:
        return f"<Receiver of {self._channel!r}>"

    def __iter__(self) -> Receiver[_T]:
        return self

    def __next__(self) -> _T:
        channel = self._channel
        if channel.consumer_stop is not None:
            self._halt(channel.consumer_stop)
        try:
            item = self._popleft()
        except IndexError:
            pass  # leave the handler first: what waiting raises must not chain to it
        else:
            self.count += 1
            if channel.putters_waiting > channel.putters_signalled:
                channel.hand_back(self)
            return item
        return self._wait()

    def done_with(self, *, asking: bool = False) -> int:
        """How many of its items this consumer is done with: all but the last it holds (all,
        when it is ``asking`` for another), or what it said with :meth:`give_back`."""
        if self.released is not None:
            return self.released
        return self.count if asking else self.count - 1

    def holding(self) -> int:
        """How many of its items it holds (alive, not done with)."""
        if self.released is not None:
            return self.count - max(self.released, self.returned)
        return 1 if self.count > self.returned else 0

    def take(self, most: int) -> list[_T]:
        """Take between 1 and ``most`` items, waiting for the first, for a consumer that passes
        them on (a worker process): they stay alive until :meth:`give_back` says otherwise.

        Raises:
            StopIteration: every producer has finished and nothing is queued.
            Aborted: the pipeline is stopping.
        """
        return self.poll(most) or [self._wait()]

    def poll(self, most: int) -> list[_T]:
        """As :meth:`take`, but never waiting: up to ``most`` of the items queued now, perhaps
        none (the end of the input is for :meth:`take` to tell).

        Raises:
            Aborted: the pipeline is stopping.
        """
        if self.released is None:
            self.released = self.count
        channel = self._channel
        if channel.consumer_stop is not None:
            self._halt(channel.consumer_stop)
        taken: list[_T] = []
        popleft = self._popleft
        while len(taken) < most:
            try:
                taken.append(popleft())
            except IndexError:
                break
        if taken:
            self.count += len(taken)
            if channel.putters_waiting > channel.putters_signalled:
                channel.hand_back(self)
        return taken

    def share(self, most: int) -> int:
        """How many items to pass on at once, at most ``most`` (see :meth:`Channel.share`)."""
        return self._channel.share(most)

    def give_back(self, count: int) -> None:
        """``count`` more of the items got from :meth:`take` are done with: their slots may be
        reused (at once, if a producer waits)."""
        assert self.released is not None, "give_back() follows take()"
        self.released += count
        channel = self._channel
        if channel.putters_waiting > channel.putters_signalled:
            channel.hand_back(self)

    @property
    def halted(self) -> bool:
        """Whether this consumer was given a cancellation (and its input has ended)."""
        return self._halted

    def cancel(self, stop: type[Cancelled]) -> None:
        """Stop this consumer alone: its next ``next()`` raises ``stop``, later ones
        ``StopIteration``. Call from the consumer's own thread."""
        self._pending = stop
        self._popleft = cast("Callable[[], _T]", _NOTHING.popleft)  # always empty

    def _halt(self, stop: type[Cancelled]) -> NoReturn:
        if self._halted:
            raise StopIteration
        self._halted = True
        raise stop

    def _wait(self) -> _T:
        if self._pending is not None:
            self._halt(self._pending)
        if self._closed:
            raise StopIteration
        meter = self.meter
        meter.activity = Activity.STARVED
        start = time.perf_counter()
        try:
            item = self._channel.wait_item(self, self.timeout)
        except Cancelled:
            self._halted = True
            raise
        finally:
            meter.starved += time.perf_counter() - start
            meter.activity = Activity.BUSY
        self.count += 1
        return item

    def close(self) -> None:
        """This consumer has finished: hand back what it holds and deregister it."""
        if not self._closed:
            self._closed = True
            self._channel.consumer_done(self)
