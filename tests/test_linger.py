"""How long a worker process's results wait for company before they go to the parent: a
worker's batching, tested in this process over a real pipe (the parent's end read here)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from pipeline_executor import _worker
from pipeline_executor._pipes import Conn, SharedCount, pipe
from pipeline_executor._transport import Endpoint

WAIT = 10.0


@pytest.fixture
def ends() -> Iterator[tuple[_worker.Worker, Conn, Endpoint]]:
    """A worker of a source stage (no input), with slots for 100 results, and the parent's
    end of its pipe."""
    ours, theirs = pipe(duplex=True)
    control_r, control_w = pipe(duplex=False)
    status_r, status_w = pipe(duplex=False)
    worker = _worker.Worker(theirs, control_r, status_w, "worker process test", SharedCount())
    worker.granted = 100
    parent = Endpoint(ours)
    yield worker, ours, parent
    with worker.lock:
        worker.closed = True
        worker.results_wait.notify()
    for end in (ours, theirs, control_r, control_w, status_r, status_w):
        end.close()


def _results(parent: Endpoint) -> list[object]:
    message = parent.receive()
    assert message[0] == "out"
    return parent.receive_batch(message)


def test_a_result_made_just_after_a_batch_is_sent_by_the_linger_thread(
    ends: tuple[_worker.Worker, Conn, Endpoint],
) -> None:
    """The first result goes at once; the next, made at once after it, waits for company,
    and the linger thread sends it about LINGER later, with nothing more made meanwhile."""
    worker, ours, parent = ends
    threading.Thread(target=worker.send_lingering, daemon=True).start()
    worker.add("first")
    assert ours.poll(0)  # sent by add itself: the last batch left long ago
    assert _results(parent) == ["first"]
    worker.add("second")
    assert ours.poll(WAIT)
    assert _results(parent) == ["second"]


def test_results_costly_to_send_do_not_wait_for_company(
    ends: tuple[_worker.Worker, Conn, Endpoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a batch whose sending took COSTLY or more per result, the next result goes as
    it is made; after a cheap one, it waits (here for a LINGER longer than the test)."""
    worker, ours, parent = ends
    monkeypatch.setattr(_worker, "LINGER", 60.0)
    monkeypatch.setattr(_worker, "COSTLY", 0.0)  # every send is costly
    worker.add(1)
    assert _results(parent) == [1]
    assert worker.linger == 0.0
    worker.add(2)
    assert ours.poll(0)
    assert _results(parent) == [2]
    monkeypatch.setattr(_worker, "COSTLY", 60.0)  # no send is
    worker.add(3)
    assert _results(parent) == [3]
    assert worker.linger == 60.0
    worker.add(4)
    assert not ours.poll(0)  # waits for company
    with worker.lock:
        worker.flush()
    assert _results(parent) == [4]
