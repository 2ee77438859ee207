"""How items cross between processes: pickled in batches, large buffers through shared memory.

A batch is pickled with protocol 5. Buffers that pickle out of band (numpy arrays, ``bytes``
views, ``PickleBuffer``) of at least :data:`SHARED_AT` bytes are copied once into a shared
memory segment of their own instead of into the pickle; the receiver maps the segment, removes
its name at once, and rebuilds the object on the mapping itself, without a copy. A segment is
never reused, so an object built on one stays valid for as long as anyone holds it; the memory
is freed when the last view of it goes. Segments are named ``<prefix><n>``: the run's prefix
lets the parent remove, after the run, any segment whose message was never read (a stop with
items in flight), so none outlives its pipeline. Where POSIX shared memory is missing,
everything travels inside the pickle.

Functions, and items the standard pickler refuses (lambdas, local classes), go through
cloudpickle.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import pickle
from collections.abc import Iterable
from typing import Any

_posixshmem: Any
try:
    import _posixshmem  # type: ignore[import-not-found, no-redef]  # CPython's shm_open
except ImportError:  # pragma: no cover - not POSIX
    _posixshmem = None

__all__ = ["SHARED_AT", "Packer", "PickleFailure", "remove_segments", "unpack"]

SHARED_AT = 1 << 20
"""Out-of-band buffers this large (bytes) or larger cross through shared memory."""

_SHM_DIR = "/dev/shm"


class PickleFailure(Exception):
    """A batch could not be pickled; ``index`` is the first item that fails, ``error`` why."""

    def __init__(self, index: int, item: object, error: BaseException) -> None:
        super().__init__(f"item {index} ({type(item).__name__}): {error}")
        self.index = index
        self.item = item
        self.error = error


class Packer:
    """Pickles batches for one sender, putting large buffers into shared memory segments."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._numbers = itertools.count()

    def pack(self, items: list[Any]) -> tuple[bytes, list[tuple[str, int]]]:
        """``items`` as a pickle and the segments (name, size) that carry its large buffers.

        Raises:
            PickleFailure: naming the first item that does not pickle.
        """
        segments: list[tuple[str, int]] = []
        callback = self._to_segment(segments) if _posixshmem is not None else None
        try:
            return pickle.dumps(items, protocol=5, buffer_callback=callback), segments
        except Exception:  # the standard pickler refused something: try cloudpickle
            remove_names(name for name, _ in segments)
            segments.clear()
        import cloudpickle

        try:
            return cloudpickle.dumps(items, protocol=5, buffer_callback=callback), segments
        except Exception:
            remove_names(name for name, _ in segments)
        for index, item in enumerate(items):
            try:
                cloudpickle.dumps(item)
            except Exception as exc:
                raise PickleFailure(index, item, exc) from None
        raise AssertionError("a batch that failed to pickle has no failing item")

    def _to_segment(self, segments: list[tuple[str, int]]) -> Any:
        def callback(buffer: pickle.PickleBuffer) -> bool:
            try:
                raw = buffer.raw()
            except BufferError:  # not contiguous: in band
                return True
            size = raw.nbytes
            if size < SHARED_AT:
                return True
            name = f"{self._prefix}{next(self._numbers)}"
            fd = _posixshmem.shm_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
            try:
                os.ftruncate(fd, size)
                with mmap.mmap(fd, size) as mapping:
                    mapping[:] = raw  # the one copy
            finally:
                os.close(fd)
            segments.append((name, size))
            return False

        return callback


def unpack(data: bytes, segments: list[tuple[str, int]]) -> Any:
    """The batch :meth:`Packer.pack` made, built on its segments in place."""
    if not segments:
        return pickle.loads(data)
    buffers: list[memoryview] = []
    try:
        for name, size in segments:
            fd = _posixshmem.shm_open(name, os.O_RDWR, mode=0o600)
            try:
                mapping = mmap.mmap(fd, size)
            finally:
                os.close(fd)
                _posixshmem.shm_unlink(name)  # the mapping lives on while it is used
            buffers.append(memoryview(mapping))
    except BaseException:
        remove_names(name for name, _ in segments)
        raise
    return pickle.loads(data, buffers=buffers)


def remove_names(names: Iterable[str]) -> None:
    """Remove these segments' names (their memory goes once nobody maps them)."""
    if _posixshmem is None:  # pragma: no cover - not POSIX
        return
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            _posixshmem.shm_unlink(name)


def remove_segments(prefix: str) -> None:
    """Remove every segment named with ``prefix`` that nobody received (Linux lists them)."""
    try:
        leftovers = [n for n in os.listdir(_SHM_DIR) if n.startswith(prefix.lstrip("/"))]
    except OSError:  # pragma: no cover - no /dev/shm
        return
    remove_names("/" + name for name in leftovers)
