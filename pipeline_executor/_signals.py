"""What the caller's thread does about signals while a pipeline runs (POSIX main thread only).

* ``interrupts_deferred``: SIGINT and SIGTERM are held back while threads are being started,
  so that a signal cannot leave us not knowing whether a thread runs; they fire right after.
* ``sigterm_as_exit``: while a pipeline runs in the main thread, and only if SIGTERM still has
  Python's default action (which kills the process at once, running no ``finally``), SIGTERM
  raises a ``SystemExit(143)`` instead: the pipeline stops like on Ctrl-C, and the caller's and
  every stage's ``finally`` blocks run. A handler the application installed itself is left
  alone.
* If that exception ends the program uncaught, the process then dies of SIGTERM, as CPython
  does for an unhandled ``KeyboardInterrupt`` (a parent's ``waitpid`` sees the signal:
  ``Popen.returncode == -15``), rather than exiting with status 143, which a supervisor reads
  as a program that chose to fail. How: the interpreter's top-level handler reads the
  exception's ``code`` with no Python frame on the stack (a caller that catches it and reads
  ``code`` has one); that read registers an ``atexit`` hook, which runs the other exit
  functions, flushes stdout and stderr, restores SIGTERM's default action and sends the signal
  to the process. A caller that catches the exception keeps running and exits as it likes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Generator
from types import FrameType

__all__ = ["SIGTERM_EXIT_STATUS", "TerminatedExit", "interrupts_deferred", "sigterm_as_exit"]

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


class TerminatedExit(SystemExit):
    """The ``SystemExit(143)`` SIGTERM raises while a pipeline runs; uncaught, the process
    dies of SIGTERM (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(SIGTERM_EXIT_STATUS)

    @property  # pyright: ignore[reportIncompatibleVariableOverride]
    def code(self) -> int:  # type: ignore[override]  # read-only: always the SIGTERM status
        """The exit status, 143; read by the interpreter when nothing caught the exception."""
        if sys._getframe(0).f_back is None:  # pyright: ignore[reportPrivateUsage]
            # No Python frame called us: the interpreter's top-level handler is reading it,
            # so the exception ends the program. Registered last, this hook runs first.
            atexit.register(_die_of_sigterm)
        return SIGTERM_EXIT_STATUS


def _die_of_sigterm() -> None:
    """Finish the exit (the other ``atexit`` functions, the standard streams), then die of
    SIGTERM; if the signal does not kill us, the interpreter exits with status 143."""
    atexit.unregister(_die_of_sigterm)
    atexit._run_exitfuncs()  # pyright: ignore[reportPrivateUsage]  # the ones registered before
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # closed or broken: nothing left to lose
            stream.flush()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    os.kill(os.getpid(), signal.SIGTERM)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    del signum, frame
    raise TerminatedExit


@contextlib.contextmanager
def sigterm_as_exit() -> Generator[None, None, None]:
    """While inside, SIGTERM raises :class:`TerminatedExit`, a ``SystemExit(143)``, in the
    main thread (see the module docstring)."""
    if not _in_main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_exit)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is _raise_exit:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
