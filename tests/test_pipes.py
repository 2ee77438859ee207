"""A worker's pipes (``Conn``) and the fork workers (``ForkProcess``) the engine starts itself."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
from typing import Any

import pytest

from pipeline_executor._pipes import Conn, ForkProcess, SharedCount, pipe, shareable, wait

WAIT = 10.0


@pytest.mark.parametrize("duplex", [True, False])
@pytest.mark.parametrize("size", [0, 1, (1 << 16) - 8, 1 << 16, (1 << 16) + 1, 5 << 20])
def test_a_message_arrives_whole_whatever_its_size(duplex: bool, size: int) -> None:
    """Messages around the size where header and body part, and one far larger than a pipe
    holds (written in parts while the reader reads), arrive byte for byte."""
    reader, writer = pipe(duplex)
    data = bytes(i % 251 for i in range(size))

    def send() -> None:
        writer.send_bytes(data)
        writer.send("next")

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert reader.recv_bytes() == data
        assert reader.recv() == "next"
    finally:
        sender.join(WAIT)
        reader.close()
        writer.close()
    assert not sender.is_alive()


@pytest.mark.parametrize("sizes", [(3, 0, 40), (1 << 16, 1), (10, 5 << 20, 7)])
def test_frames_arrive_as_separate_messages_in_order(sizes: tuple[int, ...]) -> None:
    """Frames sent together (joined in one write while small, apart once one is large)
    arrive as the messages they were."""
    reader, writer = pipe(duplex=True)
    frames = [bytes([n % 251]) * n for n in sizes]
    sender = threading.Thread(target=writer.send_frames, args=(frames,))
    sender.start()
    try:
        assert [reader.recv_bytes() for _ in frames] == frames
    finally:
        sender.join(WAIT)
        reader.close()
        writer.close()
    assert not sender.is_alive()


@pytest.mark.parametrize("drained", [True, False])
def test_an_end_with_a_drain_reads_its_peer_while_both_write_more_than_a_pipe_holds(
    drained: bool,
) -> None:
    """Both ends write a message larger than the pipe holds, each before reading: the end
    with a drain reads the peer's message while its own write would block, so both arrive
    (without one, both writers wait on each other for good: the peer's write times out)."""
    ours, theirs = pipe(duplex=True)
    big = bytes(range(256)) * (16 << 10)  # 4 MiB
    got: list[bytes] = []
    if drained:
        ours.drain = lambda: got.append(bytes(ours.recv_bytes()))
    theirs_got: list[bytes] = []

    def peer() -> None:
        theirs.send_bytes(big[::-1])
        theirs_got.append(bytes(theirs.recv_bytes()))

    other = threading.Thread(target=peer, daemon=True)
    other.start()
    if not drained:
        ours.send_bytes(big[:100])  # small: it fits, and the peer's write still blocks
        other.join(0.2)
        assert other.is_alive()  # nobody reads its message
        assert ours.recv_bytes() == big[::-1]  # read, so that the peer can end
        other.join(WAIT)
        assert theirs_got == [big[:100]]
    else:
        ours.send_bytes(big)  # blocks partway; drains the peer's message meanwhile
        other.join(WAIT)
        assert not other.is_alive()
        assert got == [big[::-1]]
        assert theirs_got == [big]
    ours.close()
    theirs.close()


def test_a_drain_that_meets_the_peers_end_is_a_broken_pipe() -> None:
    """The peer's message is cut short while the drain reads it: the write that was waiting
    raises a ConnectionError (the peer is gone), as a write to a gone peer does."""
    ours, theirs = pipe(duplex=True)
    draining = threading.Event()

    def drain() -> None:
        draining.set()
        ours.recv_bytes()

    ours.drain = drain

    def peer() -> None:
        os.write(theirs.fileno(), (1 << 20).to_bytes(8, "big") + b"only part")
        draining.wait(WAIT)
        theirs.close()

    other = threading.Thread(target=peer)
    other.start()
    with pytest.raises(ConnectionError):  # reset, or the end inside the peer's message
        ours.send_bytes(bytes(8 << 20))  # the peer reads nothing: the write blocks
    other.join(WAIT)
    assert draining.is_set()
    ours.close()


def test_a_duplex_pipe_carries_messages_both_ways() -> None:
    ours, theirs = pipe(duplex=True)
    ours.send(("need", 1, 2, True))
    assert theirs.recv() == ("need", 1, 2, True)
    theirs.send_bytes(memoryview(b"abc"))
    assert ours.recv_bytes() == b"abc"
    ours.close()
    theirs.close()


def test_the_peers_end_is_an_eof_error_before_or_inside_a_message() -> None:
    """A closed peer: EOFError at a message's start, and inside a message cut short."""
    reader, writer = pipe(duplex=False)
    writer.close()
    with pytest.raises(EOFError):
        reader.recv_bytes()
    reader.close()
    reader, writer = pipe(duplex=False)
    os.write(writer.fileno(), (100).to_bytes(8, "big") + b"only part")
    writer.close()
    with pytest.raises(EOFError):
        reader.recv_bytes()
    reader.close()


def test_writing_to_a_gone_peer_is_a_broken_pipe_and_a_closed_end_an_os_error() -> None:
    reader, writer = pipe(duplex=False)
    reader.close()
    with pytest.raises(BrokenPipeError):
        writer.send_bytes(b"x")
    writer.close()
    writer.close()  # again: nothing
    with pytest.raises(OSError, match="closed"):
        writer.send_bytes(b"x")
    with pytest.raises(OSError, match="closed"):
        reader.fileno()


def test_poll_and_wait_see_what_can_be_read() -> None:
    """``poll`` waits up to its timeout; ``wait`` returns the ends (Conns or descriptors)
    that can be read, an end whose peer is gone among them."""
    reader, writer = pipe(duplex=False)
    r, w = os.pipe()
    assert not reader.poll(0)
    assert not reader.poll(0.01)
    assert wait([reader, r], 0) == []
    writer.send(1)
    assert reader.poll(WAIT)
    assert wait([reader, r], 0) == [reader]
    os.close(w)  # the descriptor's peer is gone: readable (its end)
    assert set(wait([reader, r], WAIT)) == {reader, r}
    assert reader.recv() == 1
    assert wait([reader, r], None) == [r]
    for end in (reader, writer):
        end.close()
    os.close(r)


def test_file_descriptors_pass_in_order_and_arrive_close_on_exec() -> None:
    """Descriptors passed between two messages arrive between them, open on the same files,
    and are not inherited by a program the receiver runs."""
    ours, theirs = pipe(duplex=True)
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(3)]
        for k, f in enumerate(files):
            f.write(b"file %d" % k)
            f.flush()
        ours.send("before")
        ours.send_fds([f.fileno() for f in files])
        ours.send("after")
        assert theirs.recv() == "before"
        fds = theirs.recv_fds(3)
        assert theirs.recv() == "after"
        try:
            for k, fd in enumerate(fds):
                assert os.pread(fd, 100, 0) == b"file %d" % k
                assert not os.get_inheritable(fd)
                assert fd not in {f.fileno() for f in files}
        finally:
            for fd in fds:
                os.close(fd)
            ours.close()
            theirs.close()


def test_another_count_of_descriptors_than_expected_is_an_error_and_leaks_none() -> None:
    ours, theirs = pipe(duplex=True)
    r, w = os.pipe()
    ours.send_fds([r, w])
    before = set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    with pytest.raises(OSError, match="expected 1 file descriptors from the peer, got 2"):
        theirs.recv_fds(1)
    if before is not None:
        assert set(os.listdir("/proc/self/fd")) <= before
    ours.close()
    with pytest.raises(EOFError):
        theirs.recv_fds(1)
    for fd in (r, w):
        os.close(fd)
    theirs.close()


def pid_and_code(process: ForkProcess) -> tuple[int | None, int | None]:
    """The process's pid and exit code now (a call, so that a type checker does not keep
    what an earlier assertion said about them)."""
    return process.pid, process.exitcode


def child_exits(how: str, count: SharedCount | None = None, end: Conn | None = None) -> None:
    """What a forked child does, by ``how``."""
    if how == "count" and count is not None:
        count.value = 12345678901
    if how == "raise":
        raise ValueError("from the child")
    if how == "exit":
        sys.exit(3)
    if how == "exit-text":
        sys.exit("said why")
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "wait" and end is not None:
        end.recv_bytes()


@pytest.mark.parametrize(
    ("how", "code"),
    [("return", 0), ("raise", 1), ("exit", 3), ("exit-text", 1), ("kill", -signal.SIGKILL)],
)
def test_a_fork_process_ends_with_multiprocessings_exit_codes(how: str, code: int) -> None:
    """0 on return, 1 on an exception (its traceback printed), the code of SystemExit, and
    minus the signal that killed it."""
    process = ForkProcess(child_exits, (how,), "child")
    assert pid_and_code(process) == (None, None)
    process.start()
    assert pid_and_code(process)[0] is not None
    process.join(WAIT)
    assert process.exitcode == code
    process.join()  # again: at once
    process.kill()  # ended: nothing
    assert process.exitcode == code


def test_a_fork_process_shares_a_count_and_is_killed_and_joined() -> None:
    """A SharedCount the child writes is what the parent reads; ``join`` with a timeout
    returns while the child runs; ``kill`` ends it."""
    count = SharedCount()
    process = ForkProcess(child_exits, ("count", count), "child")
    process.start()
    process.join(WAIT)
    assert process.exitcode == 0
    assert count.value == 12345678901
    count.close()
    count.freeze()
    assert count.value == 12345678901

    reader, writer = pipe(duplex=False)
    process = ForkProcess(child_exits, ("wait", None, reader), "child")
    process.start()
    process.join(0.01)
    assert pid_and_code(process)[1] is None
    process.kill()
    process.join(WAIT)
    assert pid_and_code(process)[1] == -signal.SIGKILL
    reader.close()
    writer.close()


def count_to(count: SharedCount, value: int) -> None:
    """What a spawned child does with a count it was passed."""
    count.value = value


def _count_descriptors() -> int:
    return sum(
        "memfd:pipeline-count" in os.readlink(f"/proc/self/fd/{fd}")
        for fd in os.listdir("/proc/self/fd")
        if os.path.exists(f"/proc/self/fd/{fd}")
    )


@pytest.mark.skipif(not shareable(), reason="a spawned child shares a count through memfd")
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_spawned_child_shares_a_count_which_freezes_and_holds_no_descriptor(
    method: str,
) -> None:
    """A count handed to a spawned or forkserver child is the same memory (without
    multiprocessing's heap); closed and frozen, it keeps its last value and no descriptor."""
    import multiprocessing

    before = _count_descriptors()
    count = SharedCount.passable()
    context: Any = multiprocessing.get_context(method)
    process = context.Process(target=count_to, args=(count, 7))
    process.start()
    count.close()  # the child has its own descriptor now
    process.join(WAIT)
    assert process.exitcode == 0
    assert count.value == 7
    count.freeze()
    count.freeze()  # again: nothing
    assert count.value == 7
    assert _count_descriptors() == before


def test_a_fork_that_fails_leaks_no_descriptor(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> int:
        raise OSError("fork refused")

    monkeypatch.setattr(os, "fork", refuse)
    before = set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    process = ForkProcess(child_exits, ("return",), "child")
    with pytest.raises(OSError, match="fork refused"):
        process.start()
    assert process.pid is None
    if before is not None:
        assert set(os.listdir("/proc/self/fd")) <= before
