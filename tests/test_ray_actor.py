"""The actor side of a Ray stage, run in this process without Ray: its outbox of chunks and
a source actor's run and streams."""

from __future__ import annotations

import threading

import pytest

from pipeline_executor._errors import Aborted, Broken
from pipeline_executor._ray_actor import Outbox, StageActor, UpstreamFailed
from pipeline_executor._worker import rebuild_exception
from tests import conformance_stages as cs

WAIT = 10.0


def test_full_chunks_go_out_in_order() -> None:
    """Items leave in chunks of the chunk size, in order, then the end."""
    outbox = Outbox(chunk=3, linger=60.0, queued=10, consumers=1)
    for i in range(7):
        outbox.put(i)
    outbox.end(failed=False)
    assert [outbox.take(), outbox.take(), outbox.take(), outbox.take()] == [
        [0, 1, 2],
        [3, 4, 5],
        [6],
        None,
    ]


def test_a_waiting_consumer_gets_a_partial_chunk_after_linger() -> None:
    """A consumer that waits takes the pending items once the oldest is linger seconds old."""
    outbox = Outbox(chunk=100, linger=0.01, queued=2, consumers=1)
    outbox.put("only")
    assert outbox.take() == ["only"]


def test_flush_sends_the_pending_items() -> None:
    """Before the producer waits for input, its partial chunk is queued."""
    outbox = Outbox(chunk=100, linger=60.0, queued=2, consumers=1)
    outbox.put(1)
    outbox.flush()
    assert outbox.take() == [1]


def test_a_full_outbox_holds_the_producer_until_a_chunk_is_taken() -> None:
    """With ``queued`` full chunks waiting, the producer's next full chunk waits for room."""
    outbox = Outbox(chunk=1, linger=60.0, queued=1, consumers=1)
    outbox.put(0)
    done = threading.Event()

    def produce() -> None:
        outbox.put(1)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    assert not done.wait(0.05)  # it waits for room (a bounded look, not a coordination)
    assert outbox.take() == [0]
    assert done.wait(WAIT)
    producer.join(WAIT)
    assert outbox.take() == [1]
    assert outbox.blocked > 0


def test_when_every_consumer_is_done_the_producer_is_broken() -> None:
    """Once its last consumer has ended, the producer's next item raises Broken."""
    outbox = Outbox(chunk=1, linger=60.0, queued=1, consumers=2)
    outbox.consumer_done()
    outbox.put(0)
    outbox.consumer_done()
    with pytest.raises(Broken):
        outbox.put(1)


def test_a_stop_wakes_the_producer_and_ends_every_stream() -> None:
    """stop() makes the producer's wait raise Aborted and every take return the end."""
    outbox = Outbox(chunk=1, linger=60.0, queued=1, consumers=1)
    outbox.put(0)
    raised: list[BaseException] = []

    def produce() -> None:
        try:
            outbox.put(1)
        except Aborted as exc:
            raised.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    outbox.stop()
    producer.join(WAIT)
    assert [type(e) for e in raised] == [Aborted]
    assert outbox.take() is None


def test_a_failed_producer_ends_its_streams_with_upstream_failed() -> None:
    """Streams of a stage that raised end with UpstreamFailed, not with the end of data."""
    outbox = Outbox(chunk=5, linger=60.0, queued=2, consumers=1)
    outbox.put(0)
    outbox.end(failed=True)
    outbox.end(failed=False)  # a second end changes nothing
    with pytest.raises(UpstreamFailed):
        outbox.take()


def test_a_source_actor_runs_its_generator_into_its_streams() -> None:
    """A source's run yields every item into the stream, and says it is done with counts."""
    import cloudpickle

    actor = StageActor(cloudpickle.dumps((cs.numbers, (), {"n": 10})), 1, 4, 60.0, 10)
    result = actor.run(None, 2)
    assert result[:3] == ("done", 0, 10)
    assert [x for chunk in actor.outputs() for x in chunk] == list(range(10))
    assert actor.where() == "finished"


def test_a_source_actor_that_raises_returns_the_exception_packed() -> None:
    """A failure comes back as data: its type, args and attributes, and the traceback."""
    import cloudpickle

    def failing() -> object:
        raise cs.StageError("boom", code=3)

    actor = StageActor(cloudpickle.dumps((failing, (), dict[str, object]())), 1, 4, 60.0, 10)
    result = actor.run(None, 2)
    assert result[0] == "error"
    exc = rebuild_exception(result[6])
    assert (type(exc), str(exc), getattr(exc, "code", None)) == (cs.StageError, "boom", 3)
    assert "in failing\ntests.conformance_stages.StageError: boom" in result[7]
    assert result[8] is False


def test_a_stopped_source_actor_closes_its_generator() -> None:
    """stop() before the run: the generator's next output raises the stop, and the run says
    it stopped."""
    import cloudpickle

    actor = StageActor(cloudpickle.dumps((cs.numbers, (), {"n": 10})), 1, 4, 60.0, 10)
    actor.stop()
    assert actor.run(None, 2)[0] == "stopped"
    assert list(actor.outputs()) == []
