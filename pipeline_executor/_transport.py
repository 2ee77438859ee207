"""How items cross between processes: pickled in batches, large buffers in shared memory.

Each side of a worker's pipe is an :class:`Endpoint`. A batch is pickled with protocol 5;
buffers that pickle out of band (numpy arrays, ``bytearray``, ``PickleBuffer``) of at least
:data:`SHARED_AT` bytes are copied once into a shared-memory segment of the sender's
:class:`_Arena` instead of into the pickle, and the receiver rebuilds the object on a mapping
of that segment, without a copy. A buffer that already lies in a segment the peer sent (a
worker passing on the array it was given) goes back as a reference to it: no copy at all.

Safety by construction: a segment is reused only once every view of it is gone. The receiver
maps a segment afresh for each object it rebuilds and watches that mapping; when the last view
dies, it tells the sender with its next message, and only then does the sender write into the
segment again. Segments are anonymous memory (``memfd_create``) passed as file descriptors over
the pipe, so none can outlive the processes that map it, whatever happens to them. Where
``memfd_create`` is missing (not Linux), everything travels inside the pickle.

Functions, and items the standard pickler refuses (lambdas, local classes), go through
cloudpickle.
"""

from __future__ import annotations

import mmap
import os
import pickle
import threading
import weakref
from collections import deque
from typing import Any

from ._pipes import Conn

__all__ = ["SHARED_AT", "Endpoint", "PickleFailure"]

SHARED_AT = 1 << 20
"""Out-of-band buffers this large (bytes) or larger cross through shared memory."""

_SHARED = hasattr(os, "memfd_create")
_GRAIN = 1 << 20  # segment sizes are rounded up to this, so that near sizes share segments
_KEEP_FREE = 8  # free segments an arena keeps for reuse; more are given back to the system


class PickleFailure(Exception):
    """A batch could not be pickled; ``index`` is the first item that fails, ``error`` why."""

    def __init__(self, index: int, item: object, error: BaseException) -> None:
        super().__init__(f"item {index} ({type(item).__name__}): {error}")
        self.index = index
        self.item = item
        self.error = error


class _Segment:
    __slots__ = ("address", "fd", "filled", "id", "lent", "mapping", "sent", "size")

    def __init__(self, segment_id: int, size: int) -> None:
        self.id = segment_id
        self.size = size
        self.fd = os.memfd_create(f"pipeline-{segment_id}", os.MFD_CLOEXEC)
        os.ftruncate(self.fd, size)
        self.mapping: mmap.mmap | None = None  # ours, to write into; never exported
        self.address = 0  # where that mapping starts
        self.filled = False  # whether anything was written into it yet
        self.lent = 0  # views of it alive elsewhere (the peer's, and ours of it come back)
        self.sent = False  # whether the peer has its file descriptor

    def write(self, raw: memoryview) -> None:
        """Copy ``raw`` (contiguous bytes) to the start of the segment: the one copy.

        A new segment is filled with ``pwrite``, which gives the segment its memory in one
        call instead of one page fault per page (on a VM, where faults are dear, this
        halves a fresh segment's cost); later writes copy into a mapping made once, with its
        pages mapped up front.
        """
        if not self.filled:
            done = 0
            while done < raw.nbytes:  # a write may stop short (a signal, a huge size)
                done += os.pwrite(self.fd, raw[done:], done)
            self.filled = True
            return
        if self.mapping is None:
            self.mapping = mmap.mmap(
                self.fd, self.size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            )
            address = _address(memoryview(self.mapping))
            assert address is not None
            self.address = address
        _copy(self.mapping, self.address, raw)

    def close(self) -> None:
        if self.mapping is not None:
            self.mapping.close()
        os.close(self.fd)


class _Arena:
    """The segments one sender writes items into, each reused once no view of it is left."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # views die, and are counted back, in any thread
        self._segments: dict[int, _Segment] = {}
        self._free: list[_Segment] = []
        self._next_id = 0

    def lend(self, size: int) -> _Segment:
        with self._lock:
            fits = [s for s in self._free if s.size >= size]
            if fits:
                segment = min(fits, key=lambda s: s.size)
                self._free.remove(segment)
            else:
                self._next_id += 1
                segment = _Segment(self._next_id, -(-size // _GRAIN) * _GRAIN)
                self._segments[segment.id] = segment
            segment.lent += 1
            return segment

    def get(self, segment_id: int) -> _Segment:
        return self._segments[segment_id]

    def add_view(self, segment: _Segment) -> None:
        with self._lock:
            segment.lent += 1

    def release(self, segment_id: int) -> None:
        """One view of the segment died (here, or at the peer, who said so)."""
        with self._lock:
            segment = self._segments.get(segment_id)
            if segment is None:
                return
            segment.lent -= 1
            if segment.lent == 0:
                if len(self._free) < _KEEP_FREE:
                    self._free.append(segment)
                else:
                    del self._segments[segment_id]
                    segment.close()

    def close(self) -> None:
        """Give every segment's descriptor and our mapping back; the memory lives on in the
        mappings of objects still alive (a segment's memory goes with its last mapping)."""
        with self._lock:
            segments, self._segments, self._free = self._segments, {}, []
        for segment in segments.values():
            segment.close()


def _address(view: memoryview) -> int | None:
    """Where a writable buffer's memory starts (``None`` for a read-only one)."""
    if view.readonly:
        return None
    import ctypes  # lazily: only large buffers need it (2 ms of a first pipeline's start)

    probe = ctypes.c_char.from_buffer(view)
    try:
        return ctypes.addressof(probe)
    finally:
        del probe  # release the export at once


_SPLIT_AT = 8 << 20
"""Copies this large (bytes) or larger are split between two threads, where two CPUs are."""


def _two_cpus() -> bool:
    """Whether this process may run on two CPUs or more."""
    try:
        return len(os.sched_getaffinity(0)) > 1
    except AttributeError:  # not Linux
        return (os.cpu_count() or 1) > 1


def _copy(mapping: mmap.mmap, address: int, raw: memoryview) -> None:
    """Copy ``raw`` to the start of ``mapping`` (which starts at ``address``) with the GIL
    released (``ctypes.memmove``), so that the process's other threads run meanwhile; a large
    copy in two halves on two threads, which here takes two thirds of one thread's time (a
    single thread does not reach the memory's bandwidth)."""
    source = _address(raw)
    size = raw.nbytes
    if source is None:  # read-only: no address to copy from, so under the GIL
        mapping[:size] = raw
        return
    import ctypes

    if size < _SPLIT_AT or not _two_cpus():
        ctypes.memmove(address, source, size)
        return
    half = size // 2
    helper = threading.Thread(
        target=ctypes.memmove,
        args=(address + half, source + half, size - half),
        name="pipeline-copy",
    )
    try:
        helper.start()
    except RuntimeError:  # "can't start new thread": the whole copy on this one
        ctypes.memmove(address, source, size)
        return
    try:
        ctypes.memmove(address, source, half)
    finally:
        helper.join()


class Endpoint:
    """One side of a worker's pipe: sends and receives batches, and messages that carry
    the ids of the peer's segments whose last view here has died."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn
        self._arena = _Arena()
        self._peer_fds: dict[int, int] = {}  # the peer's segment id -> our descriptor of it
        # The peer's segments mapped here, by id: (start address, size, the mapping).
        self._mapped: dict[int, tuple[int, int, weakref.ref[mmap.mmap]]] = {}
        self._mapped_lock = threading.Lock()
        self._released: deque[int] = deque()  # the peer's segments to tell it about

    # -- messages ------------------------------------------------------------------------

    def send(self, message: tuple[Any, ...]) -> None:
        """Send ``message``, with the ids of the peer's segments we no longer see."""
        self._conn.send_bytes(self._message(message))

    def _message(self, message: tuple[Any, ...]) -> bytes:
        """``message`` pickled, with the ids of the peer's segments we no longer see."""
        released = self._take_released()
        return pickle.dumps((*message, released), protocol=pickle.HIGHEST_PROTOCOL)

    def receive(self) -> tuple[Any, ...]:
        """The peer's next message (without the releases, which are applied here).

        Raises:
            EOFError, OSError: the peer is gone.
        """
        message: tuple[Any, ...] = self._conn.recv()
        for segment_id in message[-1]:
            self._arena.release(segment_id)
        return message[:-1]

    def _take_released(self) -> list[int]:
        released: list[int] = []
        while True:
            try:
                released.append(self._released.popleft())
            except IndexError:
                return released

    # -- batches -------------------------------------------------------------------------

    def send_batch(
        self, header: tuple[Any, ...], items: list[Any], before: tuple[Any, ...] | None = None
    ) -> None:
        """Send ``header`` and the batch ``items`` after it, and the message ``before``
        (where given) ahead of them, with one write while they are small.

        Raises:
            PickleFailure: naming the first item that does not pickle.
        """
        data, placed, lent = self._pickle(items, cloud=False)
        if data is None:  # the standard pickler refused something: cloudpickle may not
            data, placed, lent = self._pickle(items, cloud=True)
            if data is None:
                raise _failure(items)
        descriptors: list[tuple[str, int, int, int]] = []
        new: list[_Segment] = []
        for (where, segment_id, offset, size), segment in _with_segments(placed, lent):
            if segment is not None and not segment.sent:
                where = "new"  # the peer gets its descriptor with this message
                new.append(segment)
            descriptors.append((where, segment_id, offset, size))
        first = () if before is None else (self._message(before),)
        message = self._message((*header, descriptors, len(new)))
        if not new:  # the header and the batch in one write
            self._conn.send_frames((*first, message, data))
            return
        self._conn.send_frames((*first, message))
        self._conn.send_fds([segment.fd for segment in new])
        for segment in new:
            segment.sent = True
        self._conn.send_bytes(data)

    def _pickle(
        self, items: list[Any], *, cloud: bool
    ) -> tuple[bytes | None, list[tuple[str, int, int, int]], list[_Segment]]:
        """The pickle, where its large buffers went, and the segments lent for them; no
        pickle (and nothing lent) when the pickler refused an item."""
        placed: list[tuple[str, int, int, int]] = []  # (where, segment id, offset, size)
        lent: list[_Segment] = []
        callback = self._placer(placed, lent) if _SHARED else None
        try:
            if cloud:
                import cloudpickle

                return cloudpickle.dumps(items, protocol=5, buffer_callback=callback), placed, lent
            return pickle.dumps(items, protocol=5, buffer_callback=callback), placed, lent
        except Exception:
            for segment in lent:
                self._arena.release(segment.id)
            return None, [], []

    def receive_batch(self, message: tuple[Any, ...]) -> list[Any]:
        """The batch that follows ``message`` (a batch's header, as :meth:`receive` gave it),
        rebuilt on its segments in place.

        Raises:
            EOFError, OSError: the peer is gone.
        """
        placed: list[tuple[str, int, int, int]] = message[-2]
        count: int = message[-1]
        if count:
            fds = self._conn.recv_fds(count)
            new = [p for p in placed if p[0] == "new"]
            for (_, segment_id, _, _), fd in zip(new, fds, strict=True):
                old = self._peer_fds.pop(segment_id, None)
                if old is not None:
                    os.close(old)
                self._peer_fds[segment_id] = fd
        data = self._conn.recv_bytes()
        buffers = [self._view(*p) for p in placed]
        items: list[Any] = pickle.loads(data, buffers=buffers)
        return items

    def _view(self, where: str, segment_id: int, offset: int, size: int) -> memoryview:
        """A view of a segment's bytes on a fresh mapping, watched until its last view dies."""
        if where == "back":  # one of ours, passed back to us
            segment = self._arena.get(segment_id)
            mapping = mmap.mmap(segment.fd, segment.size)
            self._arena.add_view(segment)
            weakref.finalize(mapping, self._arena.release, segment_id).atexit = False
        else:
            fd = self._peer_fds[segment_id]
            mapping = mmap.mmap(fd, offset + size)
            start = _address(memoryview(mapping))
            assert start is not None
            with self._mapped_lock:
                self._mapped[segment_id] = (start, offset + size, weakref.ref(mapping))
            weakref.finalize(mapping, self._gone, segment_id).atexit = False
        return memoryview(mapping)[offset : offset + size]

    def _gone(self, segment_id: int) -> None:
        # A view of the peer's segment died (in any thread): tell the peer with our next
        # message. (A segment is mapped here at most once at a time: the peer reuses it only
        # after we said so.)
        with self._mapped_lock:
            self._mapped.pop(segment_id, None)
        self._released.append(segment_id)

    def _placer(self, placed: list[tuple[str, int, int, int]], lent: list[_Segment]) -> Any:
        def callback(buffer: pickle.PickleBuffer) -> bool:
            try:
                raw = buffer.raw()
            except BufferError:  # not contiguous: in band
                return True
            size = raw.nbytes
            if size < SHARED_AT:
                return True
            back = self._peer_segment_of(raw)
            if back is not None:
                placed.append(("back", *back, size))
                return False
            segment = self._arena.lend(size)
            lent.append(segment)
            segment.write(raw)
            placed.append(("known", segment.id, 0, size))
            return False

        return callback

    def _peer_segment_of(self, raw: memoryview) -> tuple[int, int] | None:
        """(segment id, offset) when ``raw`` lies in a segment of the peer's mapped here."""
        start = _address(raw)
        if start is None:
            return None
        with self._mapped_lock:
            for segment_id, (base, size, ref) in self._mapped.items():
                if base <= start and start + raw.nbytes <= base + size and ref() is not None:
                    return segment_id, start - base
        return None

    def close(self) -> None:
        """Give back every descriptor; objects built on segments stay valid."""
        self._arena.close()
        for fd in self._peer_fds.values():
            os.close(fd)
        self._peer_fds.clear()


def _with_segments(
    placed: list[tuple[str, int, int, int]], lent: list[_Segment]
) -> list[tuple[tuple[str, int, int, int], _Segment | None]]:
    """Each placement with the segment lent for it (``None`` for one passed back)."""
    segments = iter(lent)
    return [(p, next(segments) if p[0] == "known" else None) for p in placed]


def _failure(items: list[Any]) -> PickleFailure:
    """Which item of a batch that does not pickle is to blame."""
    import cloudpickle

    for index, item in enumerate(items):
        try:
            cloudpickle.dumps(item)
        except Exception as exc:
            return PickleFailure(index, item, exc)
    return PickleFailure(0, items, TypeError("the batch does not pickle"))
