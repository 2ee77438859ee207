"""Auto buffers: the count follows the items' estimated size within a bytes budget."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterable, Iterator

import pytest

from pipeline_executor import (
    AutoBuffer,
    BufferStatistics,
    MemoryStatistics,
    Monitor,
    Pipeline,
    PipelineStats,
    StageState,
    StageStats,
    _observe,
    _supervise,
)
from pipeline_executor._bound import EVERY, REGROW_AFTER, WARMUP
from pipeline_executor._channel import Aborted, Channel, Sender
from pipeline_executor._signals import signals_as_stop
from pipeline_executor._threads import LOCAL

from .test_channel import watch_producers

WAIT = 10.0
KIB = 1 << 10
MIB = 1 << 20


def auto_channel(budget: int, *, producers: int = 1, consumers: int = 1) -> Channel[bytes]:
    return Channel[bytes].for_buffer(AutoBuffer(), budget, producers=producers, consumers=consumers)


def send_and_take(channel: Channel[bytes], items: Iterable[bytes]) -> None:
    """One producer sends each item and the consumer takes it at once."""
    sender, receiver = channel.senders[0], channel.receivers[0]
    for item in items:
        sender.send(item)
        next(receiver)


def test_the_first_large_item_shrinks_the_count_at_once() -> None:
    """A 100 KiB item in a 1 MiB buffer: the count drops from 8192 to 10 at that item."""
    channel = auto_channel(MIB)
    channel.senders[0].reserve()
    assert channel.capacity == 8192
    send_and_take(channel, [bytes(100 * KIB)])
    stats = channel.statistics()
    assert (stats.capacity, stats.item_bytes, stats.limited_by) == (10, 100 * KIB, "bytes")
    assert (stats.auto, stats.max_items, stats.resizes) == (True, 8192, 1)


def test_the_count_stays_between_one_item_per_thread_and_the_cap() -> None:
    """Items larger than the budget: one per thread of both stages; tiny ones: the cap."""
    huge = auto_channel(MIB, producers=2, consumers=3)
    huge.senders[0].reserve()
    huge.senders[0].send(bytes(2 * MIB))
    assert (huge.capacity, huge.statistics().limited_by) == (5, "threads")
    tiny = auto_channel(MIB)
    tiny.senders[0].reserve()
    send_and_take(tiny, [b"x"] * 100)
    assert (tiny.capacity, tiny.statistics().limited_by) == (8192, "items")


def test_the_count_grows_back_after_a_run_of_smaller_items() -> None:
    """After REGROW_AFTER samples at most half the estimate, the count grows, in one step."""
    channel = auto_channel(MIB)
    channel.senders[0].reserve()
    send_and_take(channel, [bytes(100 * KIB)])
    send_and_take(channel, [bytes(10 * KIB)] * (REGROW_AFTER - 1))
    assert channel.capacity == 10
    send_and_take(channel, [bytes(10 * KIB)])
    assert channel.capacity == 102
    assert channel.statistics().resizes == 2
    assert channel.statistics().min_capacity == 10


def test_a_small_change_of_size_does_not_resize() -> None:
    """Items a little smaller (more than half the estimate) leave the count alone."""
    channel = auto_channel(MIB)
    channel.senders[0].reserve()
    send_and_take(channel, [bytes(100 * KIB)] + [bytes(60 * KIB)] * 40)
    assert channel.capacity == 10
    assert channel.statistics().resizes == 1


def test_small_items_are_sampled_every_item_only_while_the_buffer_is_young() -> None:
    """After WARMUP samples of small items, one item in EVERY is sampled."""
    channel = auto_channel(256 * MIB)
    channel.senders[0].reserve()
    send_and_take(channel, [b"x"] * (WARMUP + EVERY * 10))
    assert WARMUP + 9 <= channel.statistics().samples <= WARMUP + 11


class CheckedChannel(Channel[bytes]):
    """Records, at every admission, the live items against the count bound in force."""

    admissions: list[tuple[int, int]]

    def _note_peak(self) -> None:
        if not hasattr(self, "admissions"):
            self.admissions = []
        # Only where a slot is reserved (under the lock): a consumer's wait or a producer's
        # end also note the peak, and after a shrink the items admitted under the old count
        # are alive there, above the new one, with nothing wrong.
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        if caller is not None and caller.f_code.co_name == "reserve":
            self.admissions.append((self._live(), self.capacity))
        super()._note_peak()


def test_no_admission_exceeds_the_count_in_force() -> None:
    """Sizes alternate 1 B / 256 KiB: at each reservation, live items fit the bound in force."""
    channel = CheckedChannel.for_buffer(AutoBuffer(), MIB, producers=1, consumers=1)
    assert isinstance(channel, CheckedChannel)
    sender, receiver = channel.senders[0], channel.receivers[0]
    small, large = b"x", bytes(256 * KIB)

    def produce() -> None:
        sender.reserve()
        try:
            for i in range(3000):
                sender.send(large if (i // 100) % 2 else small)
        finally:
            sender.close()

    thread = threading.Thread(target=produce)
    thread.start()
    taken = sum(1 for _ in receiver)
    thread.join(WAIT)
    assert taken == 3000
    # At a reservation the reserving producer is not counted yet: its new item makes one more.
    assert len(channel.admissions) > 100  # the small items' and the large items' reservations
    assert all(live + 1 <= capacity or live <= 1 for live, capacity in channel.admissions)
    assert channel.statistics().min_capacity == 4


def test_a_starving_sibling_s_reserved_slots_do_not_hold_a_producer_back() -> None:
    """Two producers, one idle with slots it reserved before a shrink: the other still fills
    the buffer to the count in force, and no further; the idle one hands its slots back."""
    channel = auto_channel(MIB, producers=2)
    waits = watch_producers(channel)
    first, second = channel.senders
    first.reserve()
    second.reserve()  # 1024 slots (8192 / (4 x 2)): one handed out, the rest banked

    def produce() -> None:
        try:
            for _ in range(100):
                first.send(bytes(200 * KIB))  # the first one shrinks the count to 5
        except Aborted:
            pass

    thread = threading.Thread(target=produce)
    idle = threading.Thread(target=send_swallowing_abort, args=(second, b"x"))
    thread.start()
    try:
        assert waits.waiting.wait(WAIT)  # the first producer waits...
        assert channel.capacity == 5
        assert channel.statistics().used == 5  # ...only once 5 items are alive
        waits.waiting.clear()
        idle.start()  # sees the shrink: hands back all it had reserved, then waits: full
        assert waits.waiting.wait(WAIT)
        assert second.credits + second._banked == 0  # pyright: ignore[reportPrivateUsage]
    finally:
        channel.abort()
        thread.join(WAIT)
        if idle.ident is not None:
            idle.join(WAIT)
    assert not thread.is_alive()
    assert not idle.is_alive()


def send_swallowing_abort(sender: Sender[bytes], item: bytes) -> None:
    try:
        sender.send(item)
    except Aborted:
        pass


def test_an_item_larger_than_the_whole_budget_still_flows() -> None:
    """A budget of 1 KiB and 64 KiB items: every item arrives, one per thread at a time."""

    def blobs() -> Iterator[bytes]:
        for _ in range(50):
            yield bytes(64 * KIB)

    def copy(items: Iterable[bytes]) -> Iterator[bytes]:
        for item in items:
            yield bytes(item)

    monitor = Monitor()
    pipeline = (
        Pipeline.source(blobs, buffer=AutoBuffer(max_bytes=KIB))
        .then(copy, threads=2, buffer=AutoBuffer(max_bytes=KIB))
        .sink(lambda items: sum(1 for _ in items))
    )
    assert pipeline.run(monitor=monitor) == 50
    first, second = (s.buffer for s in monitor.stats().stages[:2])
    assert first is not None
    assert second is not None
    assert (first.capacity, first.limited_by, first.peak_used <= 3) == (3, "threads", True)
    assert (second.capacity, second.limited_by) == (3, "threads")


def test_memory_budget_of_a_run_is_shared_by_its_auto_buffers() -> None:
    """run(memory_budget=...) splits evenly: 8 MiB over two buffers of 1 MiB items is 4 each."""

    def blobs() -> Iterator[bytes]:
        for _ in range(40):
            yield bytes(MIB)

    def copy(items: Iterable[bytes]) -> Iterator[bytes]:
        for item in items:
            yield bytes(item)

    monitor = Monitor()
    pipeline = Pipeline.source(blobs).then(copy).sink(lambda items: sum(1 for _ in items))
    assert pipeline.run(monitor=monitor, memory_budget="8MiB") == 40
    for stage in monitor.stats().stages[:2]:
        assert stage.buffer is not None
        assert (stage.buffer.budget_bytes, stage.buffer.capacity) == (4 * MIB, 4)
        assert stage.buffer.peak_bytes is not None
        assert stage.buffer.peak_bytes <= 4 * MIB


def test_a_fixed_buffer_keeps_its_exact_count_and_samples_nothing() -> None:
    """buffer=k: no estimate, no resize, whatever the items."""
    channel = Channel[bytes].for_buffer(16, None, producers=1, consumers=1)
    channel.senders[0].reserve()
    send_and_take(channel, [bytes(MIB)] * 20)
    stats = channel.statistics()
    assert (stats.auto, stats.capacity, stats.item_bytes, stats.samples) == (False, 16, None, 0)


def test_an_aborted_auto_buffer_stops_its_producer() -> None:
    """Abort while the count shrinks: the blocked producer wakes with Aborted."""
    channel = auto_channel(MIB)
    sender = channel.senders[0]
    errors: list[BaseException] = []

    def produce() -> None:
        sender.reserve()
        try:
            while True:
                sender.send(bytes(512 * KIB))  # the count shrinks to 2, then it blocks
        except Aborted as exc:
            errors.append(exc)
        finally:
            sender.close()

    thread = threading.Thread(target=produce)
    thread.start()
    next(channel.receivers[0])
    channel.abort()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert [type(e) for e in errors] == [Aborted]


# -- seeing it: the report's cell and memory line, the verdict -----------------------------


def synthetic_run(*, blocked: float, starved: float, limited_by: str) -> PipelineStats:
    """A 10 s run: a source feeding a sink through an auto buffer of 4 items of 50 MiB."""
    buffer = BufferStatistics(
        capacity=4, used=0, queued=0, peak_used=4, items_in=200, items_out=200, producers=0,
        consumers=0, auto=True, max_items=8192, min_capacity=4, limited_by=limited_by,
        item_bytes=50 * MIB, bytes_used=0, peak_bytes=200 * MIB, budget_bytes=256 * MIB,
        resizes=1, samples=200,
    )  # fmt: skip

    def stage(position: int, role: str, **times: float) -> StageStats:
        return StageStats(
            position=position, name=role, role=role, threads=1, state=StageState.FINISHED,
            items_in=200, items_out=200, busy=times.get("busy", 0.0),
            starved=times.get("starved", 0.0), blocked=times.get("blocked", 0.0), cpu=None,
            buffer=buffer if role == "source" else None, threadable=role != "source",
        )  # fmt: skip

    return PipelineStats(
        elapsed=10.0,
        stages=(stage(1, "source", busy=3, blocked=blocked), stage(2, "sink", starved=starved)),
        running=False,
        memory=MemoryStatistics(256 * MIB, "memory_budget='256MiB'", 1, 200 * MIB, 300 * MIB),
    )


def test_a_byte_limited_buffer_that_starves_its_consumer_gets_a_verdict() -> None:
    """Producer blocked, consumer starved, the count set by bytes: say so and how to fix it."""
    run = synthetic_run(blocked=4.0, starved=4.0, limited_by="bytes")
    assert run.verdict() == (
        "buffer-bound: the buffer of 'source' is limited by its memory budget (4 items of "
        "about 50.0 MiB); 'source' blocked 40% while 'sink' starved 40% -> give it more: "
        "buffer=AutoBuffer(max_bytes=...) on that stage, or run(memory_budget=...)"
    )


def test_a_buffer_limited_by_items_gets_no_memory_verdict() -> None:
    """The same waits with the count at its cap: not a matter of memory."""
    run = synthetic_run(blocked=4.0, starved=4.0, limited_by="items")
    assert not run.verdict().startswith("buffer-bound")


def test_the_report_shows_item_sizes_and_the_memory_line() -> None:
    """An auto buffer's cell gives its item size; a line gives the budget and the RSS growth."""
    report = synthetic_run(blocked=0.0, starved=0.0, limited_by="bytes").report().splitlines()
    assert report[1].endswith("4/4 x50.0MiB")
    assert report[-2] == (
        "memory: budget 256.0 MiB (memory_budget='256MiB') over 1 auto buffer(s); their "
        "estimated peaks add up to 200.0 MiB; process peak RSS +300.0 MiB"
    )


def test_a_real_run_reports_its_budget() -> None:
    """run(memory_budget=...) appears in the final statistics' memory line."""
    monitor = Monitor()
    Pipeline.source(lambda: iter([b"x"] * 10)).sink(lambda xs: sum(1 for _ in xs)).run(
        monitor=monitor, memory_budget="16MiB"
    )
    memory = monitor.stats().memory
    assert memory is not None
    assert (memory.budget_bytes, memory.budget_source, memory.auto_buffers) == (
        16 * MIB,
        "memory_budget='16MiB'",
        1,
    )


def test_the_memory_line_of_an_ended_run_never_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every snapshot after the end tells the same peak RSS growth (the display's report and
    the monitor's are the same text)."""
    readings = iter(range(0, 10**12, MIB))
    monkeypatch.setattr(_observe, "peak_rss", lambda: next(readings))
    stages = Pipeline.source(lambda: iter([b"x"] * 10)).sink(lambda xs: sum(1 for _ in xs))
    runnable = stages._stages  # pyright: ignore[reportPrivateUsage]
    supervisor = _supervise.Supervisor(runnable)
    supervisor.adopt(LOCAL.wire(runnable, supervisor, _supervise.RunOptions()))
    with signals_as_stop() as signals:
        supervisor.start(None, None, signals)
        supervisor.wait(None)
        supervisor.shutdown()
    first, second = supervisor.snapshot(), supervisor.snapshot()
    assert first.memory is not None
    assert first.memory == second.memory


def test_an_auto_buffer_equals_one_with_the_same_fields() -> None:
    """Equal fields, equal buffers and hashes; any other field or type is unequal."""
    assert AutoBuffer(KIB, 4, len) == AutoBuffer(max_bytes=KIB, max_items=4, sizeof=len)
    assert hash(AutoBuffer(KIB, 4, len)) == hash(AutoBuffer(KIB, 4, len))
    assert AutoBuffer() != AutoBuffer(max_items=4)
    assert AutoBuffer() != (None, None, None)


def test_an_auto_buffer_is_immutable() -> None:
    """Assigning or deleting a field raises AttributeError naming it."""
    buffer = AutoBuffer(max_items=4)
    with pytest.raises(AttributeError, match=r"^cannot assign to field 'max_items': an "):
        buffer.max_items = 5  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(AttributeError, match=r"^cannot delete field 'max_items': an "):
        del buffer.max_items  # pyright: ignore[reportAttributeAccessIssue]
    assert buffer.max_items == 4


def test_an_auto_buffer_pickles_and_copies_as_itself() -> None:
    """pickle and copy rebuild an equal buffer from its fields."""
    import copy
    import pickle

    buffer = AutoBuffer("64MiB", 16, None)
    assert pickle.loads(pickle.dumps(buffer)) == buffer
    assert copy.copy(buffer) == buffer
    assert copy.deepcopy(buffer) == buffer
