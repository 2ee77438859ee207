"""How large buffers cross between two endpoints: once into shared memory, intact, in new
segments and in reused ones (tested here in one process, over a real pipe)."""

from __future__ import annotations

import os
import pickle
from typing import Any

import pytest

from pipeline_executor._pipes import pipe
from pipeline_executor._transport import Endpoint


def _segments() -> int:
    """Shared-memory segments this process has open (each counted once, however many
    descriptors and mappings of it the two endpoints hold)."""
    inodes: set[int] = set()
    for fd in os.listdir("/proc/self/fd"):
        path = f"/proc/self/fd/{fd}"
        try:
            if "memfd:pipeline-" in os.readlink(path):
                inodes.add(os.stat(path).st_ino)
        except FileNotFoundError:  # the listing's own descriptor, closed by now
            pass
    return len(inodes)


def _cross(sender: Endpoint, receiver: Endpoint, items: list[Any]) -> list[Any]:
    sender.send_batch(("items",), items)
    message = receiver.receive()
    assert message[0] == "items"
    return receiver.receive_batch(message)


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="shared memory needs memfd (Linux)")
def test_large_buffers_arrive_intact_in_new_segments_and_in_reused_ones() -> None:
    """Each round sends a split-size array (copied on two threads), a plain large one and a
    read-only one, with new contents: the first round fills new segments, the later rounds
    reuse them (no more segments open), and every buffer arrives byte for byte."""
    np: Any = pytest.importorskip("numpy")
    ours, theirs = pipe(duplex=True)
    sender, receiver = Endpoint(ours), Endpoint(theirs)
    try:
        open_after_first = 0
        for round_ in range(4):
            random = np.random.default_rng(round_)  # new contents, everywhere, each round
            big = random.integers(0, 256, 9 << 20, dtype=np.uint8)
            plain = random.integers(0, 256, 2 << 20, dtype=np.uint8)
            frozen = np.frombuffer(
                random.integers(0, 256, 2 << 20, dtype=np.uint8).tobytes(), np.uint8
            )
            assert not frozen.flags.writeable
            got = _cross(sender, receiver, [big, plain, frozen])
            same = [bool((a == b).all()) for a, b in zip(got, [big, plain, frozen], strict=True)]
            assert same == [True, True, True]
            del got  # the last views die: the receiver tells the sender with its next message
            receiver.send(("ack",))
            assert sender.receive() == ("ack",)
            if round_ == 0:
                open_after_first = _segments()
            assert _segments() == open_after_first  # reused, not made anew
        assert open_after_first == 3
    finally:
        sender.close()
        receiver.close()
        ours.close()
        theirs.close()
    assert _segments() == 0


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="shared memory needs memfd (Linux)")
def test_a_buffer_passed_back_returns_as_a_view_of_the_senders_own_segment() -> None:
    """An array the receiver sends back as it got it crosses without a copy: what comes back
    shares the memory of the receiver's view, and is intact."""
    np: Any = pytest.importorskip("numpy")
    ours, theirs = pipe(duplex=True)
    sender, receiver = Endpoint(ours), Endpoint(theirs)
    try:
        array = np.arange(3 << 20, dtype=np.uint8)
        (got,) = _cross(sender, receiver, [array])
        (back,) = _cross(receiver, sender, [got])
        assert bool((back == array).all())
        got[0] = 99  # the receiver's view and the view passed back share the memory
        assert int(back[0]) == 99
        assert pickle.PickleBuffer(back).raw().nbytes == array.nbytes
    finally:
        sender.close()
        receiver.close()
        ours.close()
        theirs.close()


@pytest.mark.parametrize("size", [10, 3 << 20])
def test_a_message_sent_before_a_batch_arrives_first(size: int) -> None:
    """A message that rides with a batch (small ones share its write; a batch with a new
    segment goes apart) arrives before the batch, and the batch whole."""
    np: Any = pytest.importorskip("numpy")
    ours, theirs = pipe(duplex=True)
    sender, receiver = Endpoint(ours), Endpoint(theirs)
    try:
        array = np.arange(size, dtype=np.uint8)
        sender.send_batch(("out", 3), [array, "x"], before=("need", 2, 40, False))
        assert receiver.receive() == ("need", 2, 40, False)
        message = receiver.receive()
        assert message[:2] == ("out", 3)
        got = receiver.receive_batch(message)
        assert bool((got[0] == array).all())
        assert got[1] == "x"
        del got
    finally:
        sender.close()
        receiver.close()
        ours.close()
        theirs.close()


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="shared memory needs memfd (Linux)")
def test_a_large_copy_is_whole_when_no_helper_thread_can_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where the process can start no more threads, a copy that would be split between two
    is made whole on the sending thread: the array still arrives intact."""
    np: Any = pytest.importorskip("numpy")
    import threading

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    ours, theirs = pipe(duplex=True)
    sender, receiver = Endpoint(ours), Endpoint(theirs)
    try:
        random = np.random.default_rng(7)
        first = random.integers(0, 256, 9 << 20, dtype=np.uint8)
        del _cross(sender, receiver, [first])[0]  # fills a new segment (no copy thread)
        receiver.send(("ack",))
        assert sender.receive() == ("ack",)
        monkeypatch.setattr(threading.Thread, "start", refuse)
        second = random.integers(0, 256, 9 << 20, dtype=np.uint8)
        (got,) = _cross(sender, receiver, [second])  # into the reused one: split, refused
        assert bool((got == second).all())
    finally:
        monkeypatch.undo()
        sender.close()
        receiver.close()
        ours.close()
        theirs.close()
