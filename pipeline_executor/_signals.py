"""What the caller's thread does about signals while a pipeline runs (POSIX main thread only).

* ``interrupts_deferred``: SIGINT and SIGTERM are held back while worker processes and
  threads are being started, so that a signal cannot leave us not knowing whether one runs;
  they fire right after. ``handlers_deferred`` holds off, while threads start, every Python
  signal handler (an application's own may raise: a SIGALRM timeout); each runs right after.
* ``sigterm_as_exit``: while a pipeline runs in the main thread, and only if SIGTERM still has
  Python's default action (which kills the process at once, running no ``finally``), SIGTERM
  raises a ``SystemExit(143)`` instead: the pipeline stops like on Ctrl-C, and the caller's and
  every stage's ``finally`` blocks run. A handler the application installed itself is left
  alone.
* ``signals_as_stop``: while a pipeline runs in the main thread, and only for the signals
  whose handling is still Python's default (SIGINT's ``default_int_handler``, SIGTERM's
  default action), a signal that arrives while the caller waits or runs *inside the library*
  is not raised there: raising an exception into ``threading.Condition.wait`` can leave its lock
  released (``RuntimeError: release unlocked lock``, then a hang). The handler only writes a
  byte to a pipe; a helper thread reads it and stops the pipeline, which wakes the caller, who
  then raises ``KeyboardInterrupt`` (or the ``SystemExit`` below) as usual. A signal that
  arrives while the caller runs its own code (a ``for`` loop's body) is raised there at once.
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
from collections.abc import Callable, Generator
from types import FrameType
from typing import Any

__all__ = [
    "SIGTERM_EXIT_STATUS",
    "Signals",
    "TerminatedExit",
    "handlers_deferred",
    "interrupts_deferred",
    "signals_as_stop",
    "sigterm_as_exit",
]

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


@contextlib.contextmanager
def handlers_deferred() -> Generator[None, None, None]:
    """While inside, every Python signal handler is replaced by one that only notes the
    signal; on exit the handlers are back, and each one whose signal came is called then,
    in the main thread, as CPython would have called it.

    A handler (an application's SIGALRM timeout, say) runs in the main thread and may raise;
    raised inside ``Thread.start()``, it would leave the thread neither surely started nor
    surely not (and joining it would raise "cannot join thread before it is started"
    instead). Blocking the signals would not do: another thread that does not block them
    takes them, and the main thread still runs the handler at once. Nor would raising a
    noted signal again: it goes to the main thread, which may block it (an application
    that leaves its signals to another thread does), and would wait there forever.
    """
    if not _in_main_thread():  # a handler raises only in the main thread: not in ours
        yield
        return
    noted: dict[int, FrameType | None] = {}  # by signal, in the order they came

    def note(signum: int, frame: FrameType | None) -> None:
        noted.setdefault(signum, frame)

    replaced: dict[int, Any] = {}
    try:
        for signum in signal.valid_signals():
            handler = signal.getsignal(signum)
            if callable(handler):
                replaced[signum] = handler
                signal.signal(signum, note)
        yield
    finally:
        for number, previous in replaced.items():
            signal.signal(number, previous)
        for number, frame in noted.items():
            replaced[number](number, frame)


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


class Signals:
    """The signals a run turns into a stop (see ``signals_as_stop`` in the module docstring).

    ``waiting`` is set by the caller's thread while it waits inside the library; the handlers
    read it (a plain attribute: no lock, as a handler may run while any lock is held).
    """

    def __init__(self, handled: frozenset[int]) -> None:
        self.waiting = False
        # What a handler raised into the caller's own code (a for loop's body), so that the
        # run can still note on it how each stage ended as the loop's iterator is closed.
        self.raised: BaseException | None = None
        self.handled = handled
        self._read, self._write = os.pipe() if handled else (-1, -1)
        self._thread: threading.Thread | None = None

    def on_sigint(self, signum: int, frame: FrameType | None) -> None:
        del signum
        if not self.waiting and not _ours(frame):
            self.raised = KeyboardInterrupt()
            raise self.raised
        os.write(self._write, b"i")

    def on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        del signum
        if not self.waiting and not _ours(frame):
            self.raised = TerminatedExit()
            raise self.raised
        os.write(self._write, b"t")

    def watch(self, stop: Callable[[BaseException], None]) -> None:
        """Start the helper thread that hands each deferred signal to ``stop``."""
        if self.handled and self._thread is None:
            thread = threading.Thread(
                target=self._relay, args=(stop,), name="pipeline-signals", daemon=True
            )
            thread.start()
            self._thread = thread  # once it runs: one whose start failed is not joined

    def _relay(self, stop: Callable[[BaseException], None]) -> None:
        while True:
            what = os.read(self._read, 1)
            if what == b"i":
                stop(KeyboardInterrupt())
            elif what == b"t":
                stop(TerminatedExit())
            else:  # b"q": the run is over
                return

    def close(self) -> None:
        """Stop the helper thread and give back the pipe."""
        if not self.handled:
            return
        os.write(self._write, b"q")
        if self._thread is not None:
            self._thread.join()
        os.close(self._read)
        os.close(self._write)


def _ours(frame: FrameType | None) -> bool:
    """Whether the main thread was interrupted in this library's own code (where it is on
    its way into or out of a wait, holding what a traceback would keep alive)."""
    module = frame.f_globals.get("__name__", "") if frame is not None else ""
    return isinstance(module, str) and module.startswith(_PACKAGE)


_PACKAGE = __name__.rpartition(".")[0] + "."


@contextlib.contextmanager
def signals_as_stop() -> Generator[Signals, None, None]:
    """While inside, SIGINT and SIGTERM that arrive while ``Signals.waiting`` become a stop
    request (see the module docstring); outside the main thread, or where the application
    installed its own handlers, nothing changes."""
    handled: set[int] = set()
    if _in_main_thread():
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            handled.add(signal.SIGINT)
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            handled.add(signal.SIGTERM)
    signals = Signals(frozenset(handled))
    if signal.SIGINT in handled:
        signal.signal(signal.SIGINT, signals.on_sigint)
    if signal.SIGTERM in handled:
        signal.signal(signal.SIGTERM, signals.on_sigterm)
    try:
        yield signals
    finally:
        try:
            if signal.SIGINT in handled and signal.getsignal(signal.SIGINT) == signals.on_sigint:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            if signal.SIGTERM in handled and signal.getsignal(signal.SIGTERM) == signals.on_sigterm:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
        finally:
            signals.close()
