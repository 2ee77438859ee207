"""What the caller's thread does about signals while a pipeline runs (POSIX main thread only).

* ``interrupts_deferred``: SIGINT and SIGTERM are held back while threads are being started,
  so that a signal cannot leave us not knowing whether a thread runs; they fire right after.
* ``sigterm_as_exit``: while a pipeline runs in the main thread, and only if SIGTERM still has
  Python's default action (which kills the process at once, running no ``finally``), SIGTERM
  raises ``SystemExit(143)`` instead: the pipeline stops like on Ctrl-C, every stage's
  ``finally`` runs, and the process exits with the status a SIGTERM death would give. A
  handler the application installed itself is left alone.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Generator
from types import FrameType

__all__ = ["SIGTERM_EXIT_STATUS", "interrupts_deferred", "sigterm_as_exit"]

SIGTERM_EXIT_STATUS = 128 + signal.SIGTERM
"""What ``SystemExit`` carries when SIGTERM stopped a pipeline: the shell's status for it."""


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def interrupts_deferred() -> Generator[None, None, None]:
    """Block SIGINT and SIGTERM in the main thread for the duration; pending ones fire on exit.

    Threads started meanwhile inherit the mask, so the signals can only reach the main thread.
    """
    if not _in_main_thread() or not hasattr(signal, "pthread_sigmask"):  # pragma: no cover
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise SystemExit(SIGTERM_EXIT_STATUS)


@contextlib.contextmanager
def sigterm_as_exit() -> Generator[None, None, None]:
    """While inside, SIGTERM raises ``SystemExit(143)`` in the main thread (see the module)."""
    if not _in_main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_exit)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is _raise_exit:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
