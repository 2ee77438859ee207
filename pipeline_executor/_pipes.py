"""A worker's pipes, and workers started by a bare ``os.fork``: what multiprocessing offers for
them, without importing it.

multiprocessing's connections, and its ``Process`` for the fork method, import ``socket``,
``tempfile``, ``shutil``, ``subprocess`` and more: 13-16 ms of a first pipeline's time here,
more than the rest of its start. So the pipes of every start method are :class:`Conn`\\ s, which
need only ``os``, ``pickle`` and ``select`` (a spawned or forkserver worker is handed its ends
as multiprocessing hands over a file descriptor), and a fork worker is a :class:`ForkProcess`.

A forked worker sets up what multiprocessing's own child would, where the caller uses
multiprocessing at all: its after-fork hooks (a ``Queue`` passed as a constant resets its
feeder thread), no children of the parent's, and no children of its own (it is daemonic, as
multiprocessing's workers are). Its standard input is ``/dev/null``; its output is flushed as it
ends.
"""

from __future__ import annotations

import mmap
import os
import pickle
import select
import signal
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "Conn",
    "ForkProcess",
    "SharedCount",
    "flush_standard_streams",
    "pipe",
    "shareable",
    "wait",
]

_HEADER = struct.Struct("!Q")  # a message's length, before it
_JOIN_AT = 1 << 16  # messages up to this size go out with their header in one write
_MEMFD = hasattr(os, "memfd_create")


class Conn:
    """One end of a worker's pipe: messages framed by their length, pickled objects or raw
    bytes; on a duplex pipe (a Unix socket), file descriptors too. Each direction is read by
    one thread at a time; several may write short messages (a control pipe's requests): one
    of up to 4 KiB with its header goes out in a single write, which no other write splits.

    ``drain``, where set, reads one message from the peer: it is called whenever a write would
    block, so that this end never waits to write while the peer waits to write to it (a
    deadlock once both messages outgrow the pipe). A worker's end has it: its parent may be
    writing a batch of items while the worker writes its results.
    """

    __slots__ = ("_fd", "drain")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.drain: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"Conn({self._fd})"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Pickled only while multiprocessing starts a spawn or forkserver worker: the child
        # gets its own copy of the descriptor, as multiprocessing's connections do.
        from multiprocessing.reduction import DupFd

        return (_rebuild, (DupFd(self.fileno()),))

    def fileno(self) -> int:
        """The file descriptor.

        Raises:
            OSError: the end is closed.
        """
        if self._fd < 0:
            raise OSError("the pipe's end is closed")
        return self._fd

    def close(self) -> None:
        """Close this end (again: nothing)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` as one message.

        Raises:
            OSError: the peer is gone (a ``ConnectionError``), or this end is closed.
        """
        self.send_frames((data,))

    def send_frames(self, frames: Sequence[bytes | bytearray | memoryview]) -> None:
        """Send each of ``frames`` as a message, in order: with a single write while together
        they are small (one wake of the reader, not one per message).

        Raises:
            OSError: as :meth:`send_bytes`.
        """
        fd = self.fileno()
        views = [memoryview(frame).cast("B") for frame in frames]
        small = sum(view.nbytes for view in views) <= _JOIN_AT
        joined = bytearray()
        for view in views:
            joined += _HEADER.pack(view.nbytes)
            if small or view.nbytes <= _JOIN_AT:
                joined += view
            else:
                _write(fd, memoryview(joined), self.drain)
                _write(fd, view, self.drain)
                joined = bytearray()
        if joined:
            _write(fd, memoryview(joined), self.drain)

    def recv_bytes(self) -> bytearray:
        """The next message's bytes, waiting for it.

        Raises:
            EOFError: the peer closed its end (before a message, or inside one).
            OSError: this end is closed.
        """
        fd = self.fileno()
        (size,) = _HEADER.unpack(_read(fd, _HEADER.size))
        return _read(fd, size)

    def send(self, obj: object) -> None:
        """Send ``obj``, pickled."""
        self.send_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))

    def recv(self) -> Any:
        """The next message, unpickled (see :meth:`recv_bytes`)."""
        return pickle.loads(self.recv_bytes())

    def poll(self, timeout: float | None = 0.0) -> bool:
        """Whether a message (or the peer's end) can be read within ``timeout`` seconds."""
        return bool(wait([self], timeout))

    def send_fds(self, fds: Sequence[int]) -> None:
        """Pass ``fds`` to the peer (duplex pipes only), after what was sent before."""
        import _socket  # the C module alone: socket.py costs 3-4 ms to import

        sock = _socket.socket(fileno=self.fileno())
        try:
            sock.settimeout(None)  # blocking, whatever socket.setdefaulttimeout() says
            rights = struct.pack(f"{len(fds)}i", *fds)
            sock.sendmsg([b"F"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        finally:
            sock.detach()

    def recv_fds(self, count: int) -> list[int]:
        """The ``count`` file descriptors the peer passed next (close-on-exec here).

        Raises:
            EOFError: the peer is gone.
            OSError: another count came.
        """
        import _socket

        sock = _socket.socket(fileno=self.fileno())
        try:
            sock.settimeout(None)
            size = struct.calcsize("i") * count
            flags = getattr(_socket, "MSG_CMSG_CLOEXEC", 0)
            message, ancillary, _, _ = sock.recvmsg(1, _socket.CMSG_SPACE(size), flags)
        finally:
            sock.detach()
        if not message:
            raise EOFError
        fds: list[int] = []
        for level, kind, data in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                whole = len(data) - len(data) % 4
                fds.extend(struct.unpack(f"{whole // 4}i", data[:whole]))
        if len(fds) != count:
            for fd in fds:
                os.close(fd)
            raise OSError(f"expected {count} file descriptors from the peer, got {len(fds)}")
        return fds


def _rebuild(fd: Any) -> Conn:
    return Conn(fd.detach())


def _write(fd: int, view: memoryview, drain: Callable[[], None] | None) -> None:
    done = 0
    if drain is None:
        while done < view.nbytes:  # a pipe takes a large write in parts
            done += os.write(fd, view[done:])
        return
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)  # a duplex end
    try:
        if sock.gettimeout() is not None:  # socket.setdefaulttimeout() made it non-blocking
            sock.settimeout(None)
        while done < view.nbytes:
            try:
                done += sock.send(view[done:], _socket.MSG_DONTWAIT)
            except BlockingIOError:
                poller = select.poll()
                poller.register(fd, select.POLLIN | select.POLLOUT)
                if any(events & ~select.POLLOUT for _, events in poller.poll()):
                    try:
                        drain()  # the peer may be waiting to write to us: read it first
                    except EOFError:
                        raise BrokenPipeError("the peer closed its end") from None
    finally:
        sock.detach()


def _read(fd: int, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = os.readv(fd, [view[got:]])
        if n == 0:
            raise EOFError
        got += n
    return buffer


def pipe(duplex: bool) -> tuple[Conn, Conn]:
    """A new pipe's two ends: both ways (a Unix socket pair), or (reader, writer)."""
    if not duplex:
        reader, writer = os.pipe()
        return Conn(reader), Conn(writer)
    import _socket

    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    return Conn(ours.detach()), Conn(theirs.detach())


def wait(ends: Sequence[Any], timeout: float | None = None) -> list[Any]:
    """Those of ``ends`` (:class:`Conn`\\ s, or objects with ``fileno()``, or descriptors)
    that can be read, or have reached their end, within ``timeout`` seconds (``None``: no
    limit)."""
    poller = select.poll()
    by_fd: dict[int, Any] = {}
    for end in ends:
        fd = end if isinstance(end, int) else end.fileno()
        by_fd[fd] = end
        poller.register(fd, select.POLLIN)
    milliseconds = None if timeout is None else max(0, -int(-timeout * 1000 // 1))
    return [by_fd[fd] for fd, _ in poller.poll(milliseconds)]


class SharedCount:
    """A count this process and a worker share (8 bytes of memory both map): what
    ``multiprocessing.RawValue("q")`` is, without multiprocessing's heap, whose import (with
    ctypes and tempfile) cost each forkserver worker 7 ms as it started. A forked worker
    inherits the mapping; where ``memfd_create`` exists, a spawned or forkserver worker is
    handed the memory's file descriptor as it starts (until :meth:`close`). :func:`shareable`
    says whether this is so."""

    __slots__ = ("_fd", "_final", "_map", "_view")

    def __init__(self, fd: int = -1) -> None:
        """Anonymous memory (``fd`` -1), which forked children share, or the memory file
        ``fd`` (this object's own now)."""
        self._fd = fd
        self._map: mmap.mmap | None = mmap.mmap(fd, 8)
        self._view = memoryview(self._map).cast("q")
        self._final = 0

    @classmethod
    def passable(cls) -> SharedCount:
        """A count that can be passed to a spawned or forkserver worker (see
        :func:`shareable`)."""
        fd = os.memfd_create("pipeline-count", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, 8)
            return cls(fd)
        except BaseException:
            os.close(fd)
            raise

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Pickled only while multiprocessing starts a worker, as a Conn is.
        from multiprocessing.reduction import DupFd

        if self._fd < 0:
            raise TypeError("this count is shared with forked workers only")
        return (_rebuild_count, (DupFd(self._fd),))

    @property
    def value(self) -> int:
        """The count now (after :meth:`freeze`: then)."""
        try:
            return int(self._view[0])
        except ValueError:  # released by freeze (in another thread, maybe just now)
            return self._final

    @value.setter
    def value(self, count: int) -> None:
        self._view[0] = count

    def close(self) -> None:
        """Close the file descriptor (once the worker has started): the memory stays mapped."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def freeze(self) -> None:
        """Keep the count as it is now and unmap the memory (the worker has ended): the
        mapping holds a descriptor of its own, not to be kept beyond the run."""
        mapping, self._map = self._map, None
        if mapping is not None:
            self._final = int(self._view[0])
            self._view.release()
            mapping.close()


def shareable() -> bool:
    """Whether a :class:`SharedCount` can be passed to a spawned or forkserver worker."""
    return _MEMFD


def _rebuild_count(fd: Any) -> SharedCount:
    count = SharedCount(fd.detach())
    count.close()
    return count


class ForkProcess:
    """A worker process started by ``os.fork``, running ``target(*args)``: the part of
    multiprocessing's ``Process`` a worker needs (``pid``, ``exitcode``, ``kill``, ``join``)."""

    def __init__(self, target: Callable[..., object], args: tuple[Any, ...], name: str) -> None:
        self.name = name
        self.pid: int | None = None
        self._target = target
        self._args = args
        self._sentinel = -1  # readable once the process has ended
        self._exitcode: int | None = None

    def start(self) -> None:
        """Fork, and run the target in the child."""
        sentinel, held = os.pipe()
        try:
            pid = os.fork()
        except BaseException:
            os.close(sentinel)
            os.close(held)
            raise
        if pid == 0:  # pragma: no cover - the child (coverage does not follow a bare fork)
            code = 1
            try:
                os.close(sentinel)
                code = _child(self._target, self._args)
            finally:
                os._exit(code)
        os.close(held)  # only the child holds it: its end is the child's
        self.pid, self._sentinel = pid, sentinel
        self._args = ()  # the parent has no use for them any more

    @property
    def exitcode(self) -> int | None:
        """How it ended (``-N``: killed by signal N), or ``None`` while it runs."""
        if self._exitcode is None and self.pid is not None:
            self._reap(os.WNOHANG)
        return self._exitcode

    def join(self, timeout: float | None = None) -> None:
        """Wait for it to end, up to ``timeout`` seconds (``None``: no limit)."""
        if self.pid is None or self._exitcode is not None:
            return
        if timeout is not None and not wait([self._sentinel], timeout):
            self._reap(os.WNOHANG)
            return
        self._reap(0)

    def kill(self) -> None:
        """SIGKILL it, unless it has ended."""
        if self.pid is not None and self.exitcode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:  # pragma: no cover - ended just now
                pass

    def _reap(self, flags: int) -> None:
        assert self.pid is not None
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped by someone else (a SIGCHLD handler): unknown
            return
        if pid:
            self._exitcode = os.waitstatus_to_exitcode(status)
            os.close(self._sentinel)
            self._sentinel = -1


def _child(target: Callable[..., object], args: tuple[Any, ...]) -> int:  # pragma: no cover
    """What a forked worker runs: the target, as multiprocessing's child would; its exit code."""
    try:
        try:
            _stdin_closed()
            _as_multiprocessing_child()
            target(*args)
            return 0
        finally:
            _ending()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    finally:
        flush_standard_streams()


def flush_standard_streams() -> None:
    """Flush ``sys.stdout`` and ``sys.stderr``, where they still can be: before a process
    exits without Python's own clean-up, or forks children that would print it again."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:
            pass  # closed, broken, or replaced by something that cannot flush


def _stdin_closed() -> None:  # pragma: no cover - runs in a forked child
    """Standard input from ``/dev/null``: a worker never reads the parent's terminal."""
    if sys.stdin is None:
        return
    try:
        sys.stdin.close()
        sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - for the process's life
    except (OSError, ValueError):
        pass


def _as_multiprocessing_child() -> None:  # pragma: no cover - runs in a forked child
    """What multiprocessing's fork child does first, where this process uses multiprocessing
    (else there is nothing to set up)."""
    process: Any = sys.modules.get("multiprocessing.process")
    if process is not None:
        process._children = set()  # the parent's children are not ours to reap
        process.current_process()._config["daemon"] = True  # so it starts none of its own
    util: Any = sys.modules.get("multiprocessing.util")
    if util is not None:
        util._finalizer_registry.clear()
        util._run_after_forkers()  # a Queue's feeder, a Lock's owner...


def _ending() -> None:  # pragma: no cover - runs in a forked child
    """What a process does as it exits, which ``os._exit`` skips: multiprocessing's exit
    function where it is used (a ``Queue`` sends what it holds), and the wait for the threads
    the stage started that are not daemons."""
    util: Any = sys.modules.get("multiprocessing.util")
    if util is not None:
        util._exit_function()
    shutdown: Any = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
