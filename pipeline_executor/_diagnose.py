"""Where a running thread is: the line of the stage's own code it is executing."""

from __future__ import annotations

import functools
import os
import sys
from types import FrameType

__all__ = ["DELEGATES", "location"]

DELEGATES: dict[int, int] = {}
"""Threads whose own code runs, for the moment, in another thread: a per-item operator with a
timeout waits while a helper thread makes the call. Thread ident -> the helper's ident; each
entry written and removed only by the waiting thread."""

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


@functools.cache
def _stdlib() -> str:
    import sysconfig  # only a diagnosis needs it: it costs a millisecond at every start-up

    return os.path.abspath(sysconfig.get_paths()["stdlib"])


def _ours_or_stdlib(filename: str) -> bool:
    path = os.path.abspath(filename)
    return path.startswith(_PACKAGE) or (path.startswith(_stdlib()) and "site-packages" not in path)


def _describe(frame: FrameType) -> str:
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


def location(thread_ident: int | None) -> str | None:
    """``file:line in function`` of the innermost frame of the thread's own (user) code,
    with the innermost frame of all added when that is elsewhere (a library's wait, say);
    ``None`` when the thread is not running."""
    if thread_ident is None:
        return None
    thread_ident = DELEGATES.get(thread_ident, thread_ident)
    frame = sys._current_frames().get(thread_ident)  # pyright: ignore[reportPrivateUsage]
    if frame is None:
        return None
    innermost = frame
    user: FrameType | None = frame
    while user is not None and _ours_or_stdlib(user.f_code.co_filename):
        user = user.f_back
    if user is None:
        return _describe(innermost)
    if user is innermost:
        return _describe(user)
    return f"{_describe(user)} (now at {_describe(innermost)})"
