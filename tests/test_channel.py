"""The bounded buffer on its own: counting, closing, breaking, aborting, waking."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import pytest

from pipeline_executor._channel import Aborted, Broken, Channel, ChannelTimeout
from pipeline_executor._stats import BufferStatistics

WAIT = 10.0  # a wait this long means a hang: the test fails instead


def test_items_arrive_in_order_then_the_stream_ends() -> None:
    """One producer, one consumer: every item once, in order, then StopIteration."""
    channel = Channel[int](4, producers=1, consumers=1)
    sender, receiver = channel.senders[0], channel.receivers[0]
    sender.reserve()
    for i in range(3):
        sender.send(i)
    sender.close()
    assert list(receiver) == [0, 1, 2]
    assert next(receiver, None) is None


def test_statistics_count_what_moved() -> None:
    """The snapshot counts items in and out, what is queued, held and reserved."""
    channel = Channel[int](4, producers=1, consumers=1)
    sender, receiver = channel.senders[0], channel.receivers[0]
    sender.reserve()
    sender.send(1)
    sender.send(2)
    assert next(receiver) == 1
    # Used: item 1 held by the consumer, item 2 queued, a slot reserved for the next item.
    stats = channel.statistics()
    assert stats == BufferStatistics(
        capacity=4, used=3, queued=1, peak_used=3, items_in=2, items_out=1,
        producers=1, consumers=1, max_items=4, min_capacity=4,
    )  # fmt: skip
    sender.close()
    assert list(receiver) == [2]
    receiver.close()
    final = channel.statistics()
    assert (final.used, final.queued, final.producers, final.consumers) == (0, 0, 0, 0)


def test_a_full_buffer_blocks_its_producer_until_the_consumer_asks_for_more() -> None:
    """With capacity 2, a third item cannot be produced before the consumer moves on."""
    channel = Channel[int](2, producers=1, consumers=1)
    sender, receiver = channel.senders[0], channel.receivers[0]
    sent: list[threading.Event] = [threading.Event() for _ in range(3)]

    def produce() -> None:
        sender.reserve()
        for i in range(3):
            sender.send(i)
            sent[i].set()
        sender.close()

    thread = threading.Thread(target=produce)
    thread.start()
    assert sent[0].wait(WAIT)
    # Item 0 queued, item 1 in the making: both slots are used, so item 1 is not sent
    # until the consumer has taken item 0 and asked for the next one.
    assert not sent[1].wait(0.05)
    assert next(receiver) == 0
    assert next(receiver) == 1  # asking for item 1 released item 0's slot
    assert sent[1].wait(WAIT)
    assert list(receiver) == [2]
    thread.join(WAIT)
    assert not thread.is_alive()


def test_abort_wakes_a_blocked_producer_and_a_blocked_consumer() -> None:
    """Both waiters wake with Aborted."""
    full = Channel[int](1, producers=1, consumers=1)
    empty = Channel[int](1, producers=1, consumers=1)
    errors: list[BaseException] = []
    waiting = threading.Barrier(3)

    def blocked_producer() -> None:
        sender = full.senders[0]
        sender.reserve()
        waiting.wait(WAIT)
        try:
            sender.send(1)  # publishes, then waits for a slot for the next item
        except BaseException as exc:
            errors.append(exc)

    def blocked_consumer() -> None:
        waiting.wait(WAIT)
        try:
            next(empty.receivers[0])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=blocked_producer), threading.Thread(target=blocked_consumer)]
    for thread in threads:
        thread.start()
    waiting.wait(WAIT)
    full.abort()
    empty.abort()
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive()
    assert [type(e) for e in errors] == [Aborted, Aborted]


def test_when_every_consumer_is_gone_producers_get_broken_and_items_are_dropped() -> None:
    """Broken: the producer learns that nothing more is wanted; queued items are released."""
    channel = Channel[object](8, producers=1, consumers=2)
    sender = channel.senders[0]
    sender.reserve()
    sender.send(object())
    channel.receivers[0].close()
    sender.send(object())  # one consumer is left: still open
    channel.receivers[1].close()
    assert channel.statistics().queued == 0
    with pytest.raises(Broken):
        sender.send(object())


def test_a_consumer_wait_with_a_timeout_raises_channel_timeout() -> None:
    """Nothing to take within the timeout: ChannelTimeout, and the receiver still works."""
    channel = Channel[int](2, producers=1, consumers=1)
    receiver = channel.receivers[0]
    receiver.timeout = 0.01
    with pytest.raises(ChannelTimeout):
        next(receiver)
    sender = channel.senders[0]
    sender.reserve()
    sender.send(7)
    sender.close()
    assert list(receiver) == [7]


def test_the_stream_ends_only_when_every_producer_has_closed() -> None:
    """Two producers: the consumer sees the end after both closed."""
    channel = Channel[int](4, producers=2, consumers=1)
    first, second = channel.senders
    receiver = channel.receivers[0]
    receiver.timeout = 0.01
    first.reserve()
    first.send(1)
    first.close()
    assert next(receiver) == 1
    with pytest.raises(ChannelTimeout):
        next(receiver)  # the second producer may still send
    second.reserve()
    second.close()
    assert next(receiver, None) is None


@pytest.mark.parametrize("consumers", [2, 4])
def test_several_consumers_each_get_distinct_items(consumers: int) -> None:
    """Every item goes to exactly one consumer."""
    channel = Channel[int](16, producers=1, consumers=consumers)
    got: list[list[int]] = [[] for _ in range(consumers)]

    def consume(i: int) -> None:
        got[i].extend(channel.receivers[i])
        channel.receivers[i].close()

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(consumers)]
    for thread in threads:
        thread.start()
    sender = channel.senders[0]
    sender.reserve()
    for i in range(2000):
        sender.send(i)
    sender.close()
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive()
    assert sorted(x for part in got for x in part) == list(range(2000))


class LyingDeque(deque[int]):
    """Looks non-empty once, then is empty: another consumer took the item in between."""

    def __init__(self) -> None:
        super().__init__()
        self.lied = False

    def __bool__(self) -> bool:
        if not self.lied:
            self.lied = True
            return True
        return len(self) > 0


def test_an_item_taken_by_another_consumer_between_look_and_take_is_not_an_error() -> None:
    """Regression: the waiting consumer saw an item that a lock-free popleft then took."""
    channel = Channel[int](4, producers=1, consumers=2)
    channel.items = LyingDeque()
    channel.producer_done(
        channel.senders[0], 0
    )  # no producer left: after the lost race, the stream ends
    with pytest.raises(StopIteration):
        channel.wait_item(channel.receivers[0], None)


class SignallingCondition(threading.Condition):
    """A Condition that tells, through ``waiting``, each time a thread starts to wait on it."""

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__(lock)
        self.waits = 0
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        self.waiting.set()
        return super().wait(timeout)


def watch_producers(channel: Channel[Any]) -> SignallingCondition:
    """Replace the channel's not-full condition by one that signals each wait."""
    condition = SignallingCondition(channel._lock)  # pyright: ignore[reportPrivateUsage]
    channel._not_full = condition  # pyright: ignore[reportPrivateUsage]
    return condition


def watch_consumers(channel: Channel[Any]) -> SignallingCondition:
    """Replace the channel's not-empty condition by one that signals each wait."""
    condition = SignallingCondition(channel._lock)  # pyright: ignore[reportPrivateUsage]
    channel._not_empty = condition  # pyright: ignore[reportPrivateUsage]
    return condition


# -- used and peak_used count live items, not reserved slots ------------------------------


def test_used_counts_live_items_and_goes_down_as_they_are_consumed() -> None:
    """10 items in a buffer of 8192: used is 10, then one less for each item consumed."""
    channel = Channel[int](8192, producers=1, consumers=1)
    sender, receiver = channel.senders[0], channel.receivers[0]
    sender.reserve()
    for i in range(10):
        sender.send(i)
    sender.close()
    used = [channel.statistics().used]
    for _ in range(10):
        next(receiver)  # holds this item, done with the one before
        used.append(channel.statistics().used)
    assert next(receiver, None) is None
    used.append(channel.statistics().used)
    assert used == [10, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    assert channel.statistics().peak_used == 10


# -- the bound is exact: a producer waits only while `capacity` items are alive -----------


def test_a_producer_gets_the_slots_of_items_a_holding_consumer_is_done_with() -> None:
    """Consumer took 3 and holds the third: a buffer of 16 lets the 18th item start, no more."""
    channel = Channel[int](16, producers=1, consumers=1)
    waits = watch_producers(channel)
    sender, receiver = channel.senders[0], channel.receivers[0]
    started: list[int] = []

    def produce() -> None:
        sender.reserve()
        try:
            for i in range(100):
                started.append(i)  # item i has its slot: it is being produced
                sender.send(i)
        except Aborted:
            pass
        finally:
            sender.close()

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        assert [next(receiver) for _ in range(3)] == [0, 1, 2]
        waits.waiting.clear()
        assert waits.waiting.wait(WAIT)  # the producer waits for a slot again...
        assert len(started) == 18  # ...with items 2 (held) to 17 (queued) alive: 16
        assert channel.statistics().used == 16
    finally:
        channel.abort()
        thread.join(WAIT)
    assert not thread.is_alive()


def test_a_waiting_producer_gets_the_slots_a_sibling_reserved_ahead() -> None:
    """Two producers of one stage: the spare slots of one go to the other once it waits."""
    channel = Channel[int](64, producers=2, consumers=1)  # each reserves 8 at a time
    waits = watch_producers(channel)
    fast, slow = channel.senders
    started: list[int] = []

    def produce_fast() -> None:
        fast.reserve()
        try:
            for i in range(1000):
                started.append(i)
                fast.send(i)
        except Aborted:
            pass
        finally:
            fast.close()

    slow.reserve()  # 1 slot for its item in the making, 7 spare
    thread = threading.Thread(target=produce_fast)
    thread.start()
    try:
        assert waits.waiting.wait(WAIT)
        assert len(started) == 64 - 8  # the slow one's 8 slots are taken
        waits.waiting.clear()
        slow.send(-1)  # hands back its 7 spare slots, keeps one for its next item
        assert waits.waiting.wait(WAIT)
        assert len(started) == 64 - 2  # one queued and one in the making are the slow one's
        assert channel.statistics().used == 64
    finally:
        channel.abort()
        thread.join(WAIT)
        slow.close()
    assert not thread.is_alive()


# -- after a stop, a consumer's input ends -------------------------------------------------


def test_after_an_abort_the_first_next_raises_and_every_later_one_ends_the_stream() -> None:
    """A consumer that swallows Aborted sees StopIteration next, and iteration ends."""
    channel = Channel[int](4, producers=1, consumers=1)
    receiver = channel.receivers[0]
    channel.abort()
    with pytest.raises(Aborted):
        next(receiver)
    assert list(receiver) == []


def test_a_cancelled_receiver_raises_the_cancellation_once_then_ends() -> None:
    """cancel() stops one consumer alone, even with items queued for it."""
    channel = Channel[int](4, producers=1, consumers=1)
    sender, receiver = channel.senders[0], channel.receivers[0]
    sender.reserve()
    sender.send(1)
    receiver.cancel(Broken)
    with pytest.raises(Broken):
        next(receiver)
    assert receiver.halted
    assert list(receiver) == []


# -- no internal exception shows up as the context of what a waiter gets -----------------


class InterruptedCondition(threading.Condition):
    """A Condition whose wait is interrupted by Ctrl-C, as the signal handler would raise it."""

    def wait(self, timeout: float | None = None) -> bool:
        raise KeyboardInterrupt


def test_ctrl_c_while_a_consumer_waits_has_no_internal_context() -> None:
    """KeyboardInterrupt while next() waits on an empty buffer chains to nothing of ours."""
    channel = Channel[int](4, producers=1, consumers=1)
    lock = channel._lock  # pyright: ignore[reportPrivateUsage]
    channel._not_empty = InterruptedCondition(lock)  # pyright: ignore[reportPrivateUsage]
    with pytest.raises(KeyboardInterrupt) as info:
        next(channel.receivers[0])
    assert info.value.__context__ is None


def test_an_abort_while_a_consumer_waits_has_no_internal_context() -> None:
    """The Aborted a waiting consumer gets chains to nothing of ours."""
    channel = Channel[int](4, producers=1, consumers=1)
    waits = watch_consumers(channel)

    def abort_when_waiting() -> None:
        assert waits.waiting.wait(WAIT)
        channel.abort()

    thread = threading.Thread(target=abort_when_waiting)
    thread.start()
    with pytest.raises(Aborted) as info:
        next(channel.receivers[0])
    thread.join(WAIT)
    assert info.value.__context__ is None


def test_a_batch_delivered_at_once_wakes_as_many_waiting_consumers_as_it_has_items() -> None:
    """A worker process's batch, delivered at once, wakes one waiting consumer per item."""
    channel = Channel[int](4, producers=1, consumers=2)
    got: list[int] = []

    def consume(receiver: Any) -> None:
        receiver.timeout = WAIT
        got.append(next(receiver))

    threads = [
        threading.Thread(target=consume, args=(receiver,), daemon=True)
        for receiver in channel.receivers
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + WAIT
    while channel.getters_waiting < 2:  # both consumers wait on the empty buffer
        assert time.monotonic() < deadline, "the consumers never waited"
        time.sleep(0.001)  # sleep-ok: polling a condition, with a deadline that fails the test
    sender = channel.senders[0]
    while sender.credits < 2:
        sender.acquire()
    sender.deliver([1, 2])
    for thread in threads:
        thread.join(WAIT / 2)
        assert not thread.is_alive(), "a consumer was left waiting"
    assert sorted(got) == [1, 2]


def test_once_the_producers_finish_a_batch_is_at_most_half_a_consumers_part_of_the_rest() -> None:
    """share() passes ``most`` while producers run; after, what is left over 2 x consumers."""
    channel = Channel[int](128, producers=1, consumers=2)
    sender = channel.senders[0]
    sender.reserve()
    for i in range(100):
        sender.send(i)
    receiver = channel.receivers[0]
    assert receiver.share(256) == 256  # the producer may still send: no end in sight
    sender.close()
    assert receiver.share(256) == 25  # 100 left, 2 consumers
    assert receiver.share(10) == 10
    assert len(receiver.take(25)) == 25
    assert receiver.share(256) == 18  # 75 left
    while receiver.poll(256):
        pass
    assert receiver.share(256) == 1  # nothing left: still at least one
