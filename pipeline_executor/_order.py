"""Ordered output for a stage on several threads: an order book fed by events.

Events. Whatever hosts a stage's instances (threads here; a process proxy later, the tags
travelling with the batches) reports three things per instance ``i``: *took s* (it took the
input item with sequence number ``s``, numbered in the order the items left the input
buffer), *done with its item* (it asked for the next one, or finished), and *emitted an item*
(an output produced after taking ``s``). The book places every output after the outputs of
the item its instance took most recently: an output of ``s`` is published at once if ``s``
is the *head* (the lowest sequence number not done with), and parked otherwise until the head
passes ``s``. A 1:1, filtering or flat-mapping instance thus comes out in input order.

Memory. A parked item keeps the buffer slot it was produced in (``Sender.park``), so the
buffer's exact bound covers the reorder window: a slow item holds back at most ``buffer``
others. The window stops short of the whole buffer, by one slot plus the slots the other
instances may have reserved ahead: otherwise they could fill every slot with parked items
while the head instance waits for a slot for its own output, and nothing would move again.
An instance that finds the window full waits (counted as blocked) until the head moves; the
head instance never waits for the book, so the head always moves on.

Locks. The book's lock guards its fields and is held while publishing parked items (which
takes the output buffer's lock briefly, never the other way round), so that nothing of a later
item is published before them. A separate take lock makes "take an item, number it" atomic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from ._channel import Activity, Meter, Receiver, Sender

__all__ = ["OrderBook", "OrderedReceiver", "OrderedSender", "order_stage"]


class OrderBook:
    """The reorder state of one stage in one run (see the module notes)."""

    def __init__(self, instances: int) -> None:
        self._lock = threading.Lock()
        self._moved = threading.Condition(self._lock)  # the head moved, or an instance ended
        # Instance i publishes parked items through senders[i] (set once, before any runs).
        self.senders: Sequence[Sender[object]] = ()
        self._head = 0  # lowest sequence number some instance is not yet done with
        self._done: set[int] = set()  # sequence numbers above the head that are done with
        self._parked: dict[int, list[object]] = {}  # outputs waiting, by sequence number
        self.parked = 0  # how many items are parked now
        self.peak = 0  # the most ever parked at once
        self._running = instances
        # Written and read only by instance i's own thread: what it took most recently, and
        # whether it is still working on it.
        self._last: list[int | None] = [None] * instances
        self._holding = [False] * instances
        self._next = 0  # the next sequence number; guarded by take_lock
        self.take_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<OrderBook head={self._head} parked={self.parked}>"

    @property
    def window(self) -> int:
        """The most items parked at once, as the buffer stands now (an auto buffer's count
        changes as it learns its items' size)."""
        return OrderedSender.window(self.senders[0], len(self.senders))

    def number(self) -> int:
        """The next sequence number; call with ``take_lock`` held, right after taking."""
        seq = self._next
        self._next = seq + 1
        return seq

    def last(self, instance: int) -> int | None:
        """The sequence number of the item instance ``instance`` took most recently."""
        return self._last[instance]

    def took(self, instance: int, seq: int) -> None:
        """Instance ``instance`` took the input item numbered ``seq``."""
        self._last[instance] = seq
        self._holding[instance] = True

    def done_with(self, instance: int) -> None:
        """Instance ``instance`` will emit nothing more for its item (it asks for the next)."""
        if not self._holding[instance]:
            return
        self._holding[instance] = False
        seq = self._last[instance]
        assert seq is not None
        with self._lock:
            self._done.add(seq)
            if seq == self._head:
                self._advance(instance)

    def _advance(self, instance: int) -> None:
        # Lock held. Move the head past every done sequence number, publishing what was
        # parked for them and for the new head (whose instance publishes directly from now on).
        old = self._head
        head = old
        while head in self._done:
            self._done.remove(head)
            head += 1
        self._head = head
        if self._parked:
            publish = self.senders[instance].publish
            for seq in range(old, head + 1):
                items = self._parked.pop(seq, None)
                if items is not None:
                    self.parked -= len(items)
                    for item in items:
                        publish(item)
                    del items
        self._moved.notify_all()

    def emit(self, instance: int, item: object, meter: Meter, stopped: OrderedSender) -> bool:
        """Instance ``instance`` produced ``item``: ``True`` if it must publish it now itself,
        ``False`` if the book parked it (then the caller uses up its slot with ``park``).

        Raises:
            Cancelled: ``stopped``'s buffer was stopped while waiting for room.
        """
        seq = self._last[instance]
        if seq is None:
            return True  # nothing taken yet: there is nothing it must come after
        with self._lock:
            if seq <= self._head:
                return True
            if self.parked >= self.window:
                meter.activity = Activity.BLOCKED
                start = time.perf_counter()
                try:
                    while seq > self._head and self.parked >= self.window:
                        stop = stopped.stop()
                        if stop is not None:
                            raise stop
                        self._moved.wait()
                finally:
                    meter.blocked += time.perf_counter() - start
                    meter.activity = Activity.BUSY
                if seq <= self._head:
                    return True
            self._parked.setdefault(seq, []).append(item)
            self.parked += 1
            if self.parked > self.peak:
                self.peak = self.parked
            return False

    def finished(self, instance: int) -> None:
        """Instance ``instance`` has ended (returned, failed or was stopped)."""
        self.done_with(instance)
        with self._lock:
            self._running -= 1
            if self._running == 0:
                self._parked.clear()  # only left after a stop: nobody will read them
                self.parked = 0
            self._moved.notify_all()


class OrderedSender(Sender[object]):
    """A producer end that hands each item to the stage's :class:`OrderBook`."""

    __slots__ = ("_book", "_instance")

    def __init__(self, original: Sender[object], book: OrderBook, instance: int) -> None:
        channel = original._channel
        super().__init__(channel, channel.auto is not None)
        self._book = book
        self._instance = instance

    @staticmethod
    def window(sender: Sender[object], instances: int) -> int:
        """The most items parked at once behind ``sender``'s buffer: all its slots but one
        for the head instance and those the other instances may hold reserved (see the
        module notes)."""
        channel = sender._channel
        return max(0, channel.capacity - (instances - 1) * channel.chunk - 1)

    @property
    def book(self) -> OrderBook:
        """The order book this end reports to."""
        return self._book

    def stop(self) -> type[BaseException] | None:
        """What producers get instead of slots, if the buffer is stopped."""
        return self._channel.producer_stop

    def send(self, item: object) -> None:
        """Publish ``item`` now if its turn has come, else park it (see :class:`OrderBook`)."""
        if self._book.emit(self._instance, item, self.meter, self):
            super().send(item)
        else:
            self.park(item)

    def close(self) -> None:
        """Tell the book this instance has ended (publishing what waited for it), then close."""
        if not self._closed:
            self._book.finished(self._instance)
        super().close()


class OrderedReceiver(Receiver[object]):
    """A consumer end that numbers each item as its instance takes it."""

    __slots__ = ("_book", "_instance")

    def __init__(self, original: Receiver[object], book: OrderBook, instance: int) -> None:
        super().__init__(original._channel)
        self._book = book
        self._instance = instance

    @property
    def position(self) -> int | None:
        """The 0-based position in the stage's input of the item this instance took last."""
        return self._book.last(self._instance)

    def __next__(self) -> object:
        book = self._book
        book.done_with(self._instance)
        lock = book.take_lock
        if not lock.acquire(blocking=False):  # another instance is taking (or waiting to)
            # Hand back the slot of the item we are done with before waiting our turn: the
            # producer may be waiting for exactly that slot to give the taker its item.
            self._channel.hand_back_all(self)
            meter = self.meter
            meter.activity = Activity.STARVED
            start = time.perf_counter()
            lock.acquire()
            meter.starved += time.perf_counter() - start
            meter.activity = Activity.BUSY
        try:
            item = super().__next__()
            seq = book.number()
        finally:
            lock.release()
        book.took(self._instance, seq)
        return item


def order_stage(receivers: list[Receiver[object]], senders: list[Sender[object]]) -> OrderBook:
    """Make a stage's output come out in input order; one call per ordered stage.

    ``receivers`` and ``senders`` must be the buffers' own lists (``channel.receivers`` of
    the stage's input, ``channel.senders`` of its output), one entry per instance: their
    entries are replaced, in place, by ordered ends of the same buffers, so that the buffers
    count through them. Call it before handing the ends to the stage's instances.

    Returns:
        The stage's order book (its ``peak`` is the reorder window's peak).
    """
    n = len(senders)
    if len(receivers) != n:
        raise ValueError(f"{len(receivers)} receivers for {n} senders")
    book = OrderBook(n)
    senders[:] = [OrderedSender(sender, book, i) for i, sender in enumerate(senders)]
    book.senders = tuple(senders)
    receivers[:] = [OrderedReceiver(r, book, i) for i, r in enumerate(receivers)]
    return book
