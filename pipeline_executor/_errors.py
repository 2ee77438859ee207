"""Exceptions raised by pipeline_executor, and the one helper that annotates them.

Hierarchy::

    PipelineError                     base of every exception this library defines
    ├── PipelineDefinitionError       bad options or constants (also a ValueError)
    ├── PipelineTypeError             stages whose types do not fit (also a TypeError)
    ├── InactivityError               nothing moved for a while (also a TimeoutError)
    ├── WorkerDiedError               a worker process died (a signal, os._exit, the OOM killer)
    ├── ItemPickleError               an item or result of a process stage does not pickle
                                      (also a TypeError)
    └── RemoteStageError              a worker's exception that could not be pickled back

    PipelineTypeWarning               an annotation that cannot be resolved (counted as Any),
                                      or a constant that does not fit its annotation under
                                      execute() (a UserWarning)

Errors raised *by a stage* are never wrapped: the caller receives the stage's own exception
object, with its own type and traceback, and a note (PEP 678) naming the stage.

A stage in a worker process raises a copy of its exception (pickled back with its type and
attributes), with the worker's traceback as its ``__cause__``; one that cannot be pickled
arrives as :class:`RemoteStageError`.

Which failure is raised when several stages fail (:func:`is_consequence` decides, once, for
every engine):

1. The first failure recorded by the supervisor is the root cause; it is raised.
2. Other failures that happened independently (raised by the stage's own code, not by our
   stop of it) are listed in the root cause's notes, each with its stage.
3. A :class:`Cancelled` (what a stage's buffers raise into it when the pipeline stops it) is
   never a failure.
4. An exception raised while the stage was being stopped (during its ``Cancelled``, or while
   its generator was closed after one) is a consequence, never reported, when the pipeline is
   aborting; when the stage was stopped only because the stages after it finished early
   (``Broken``), it is a failure of its own and is reported.
"""

from __future__ import annotations

import signal
import sys
import warnings
from types import FrameType
from typing import cast

__all__ = [
    "Aborted",
    "Broken",
    "Cancelled",
    "InactivityError",
    "ItemPickleError",
    "PipelineDefinitionError",
    "PipelineError",
    "PipelineTypeError",
    "PipelineTypeWarning",
    "RemoteStageError",
    "WorkerDiedError",
    "add_note",
    "is_consequence",
    "raised_while_cancelled",
    "warn_at_caller",
]

_PACKAGE = __name__.rpartition(".")[0]


def add_note(exc: BaseException, note: str) -> None:
    """Attach ``note`` to ``exc``: ``add_note`` on 3.11+, a ``__notes__`` list before."""
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:  # pragma: no cover - exercised on 3.10 only
        notes: object = getattr(exc, "__notes__", None)
        if not isinstance(notes, list):
            notes = []
            exc.__notes__ = notes  # type: ignore[attr-defined]
        cast("list[str]", notes).append(note)


class Cancelled(BaseException):
    """Raised into a stage to stop it. A ``BaseException``, like ``GeneratorExit``, so that a
    stage's ``except Exception`` does not swallow it; it never reaches the user."""


class Aborted(Cancelled):
    """The pipeline is being stopped (a failure, an interrupt, the consumer went away)."""


class Broken(Cancelled):
    """Every consumer of a buffer has finished: nothing more needs to be produced."""


def raised_while_cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while a :class:`Cancelled` was being handled (its
    ``__context__`` chain holds one)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, Cancelled):
            return True
        seen.add(id(cause))
        cause = cause.__context__
    return False


def is_consequence(exc: BaseException, *, stopping: bool, aborting: bool) -> bool:
    """Whether ``exc``, raised by a stage, is a consequence of our stop rather than a failure.

    Rules 3 and 4 of the module docstring. ``stopping``: the stage was being stopped when it
    raised (a worker process decides this itself, as pickling drops ``__context__``);
    ``aborting``: the pipeline is aborting, not merely ending early.
    """
    if isinstance(exc, Cancelled):
        return True
    return aborting and (stopping or raised_while_cancelled(exc))


def warn_at_caller(message: str, category: type[Warning]) -> None:
    """Issue a warning attributed to the first frame outside this package: the user's line.

    The ``stacklevel`` is counted by walking out of the package's own frames, as their
    number differs between ``run()``, a ``for`` loop over a pipeline and ``execute()``.
    """
    frame: FrameType | None = sys._getframe(1)  # pyright: ignore[reportPrivateUsage]
    level = 2  # stacklevel=2 names this frame (our caller); each frame further out adds one
    while frame is not None and _in_package(frame.f_globals.get("__name__")):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def _in_package(module: object) -> bool:
    return isinstance(module, str) and (module == _PACKAGE or module.startswith(_PACKAGE + "."))


class PipelineError(Exception):
    """Base class of every exception defined by pipeline_executor."""


class PipelineDefinitionError(PipelineError, ValueError):
    """A stage was given bad options or constants; raised when the pipeline is built.

    Attributes:
        stage: how the stage is named in messages, e.g. ``"stage 2 'parse' (then)"``.
        problem: what is wrong, in words.
    """

    def __init__(self, stage: str, problem: str) -> None:
        super().__init__(f"{stage}: {problem}")
        self.stage = stage
        self.problem = problem


class PipelineTypeError(PipelineError, TypeError):
    """Adjacent stages, or a stage and its constants, have types that do not fit.

    Raised when the pipeline is built, or by a stage whose items are checked
    (``with_item_checks()``) when it yields an item of the wrong type.

    Attributes:
        stage: how the stage is named in messages, e.g. ``"stage 3 'parse' (then)"``.
        problem: what is wrong, in words, with the expected and the found type; the
            message is ``f"{stage} {problem}"``.
    """

    def __init__(self, stage: str, problem: str) -> None:
        super().__init__(f"{stage} {problem}")
        self.stage = stage
        self.problem = problem


class PipelineTypeWarning(UserWarning):
    """A stage's types could not be checked as written, or, under ``execute()``, do not fit.

    Issued for an annotation that cannot be resolved at run time (it counts as ``Any``), and
    under ``execute()`` for a constant whose value does not fit its parameter's annotation: a
    warning, not an error, as the seed API promised not to check constants' types.
    """


class InactivityError(PipelineError, TimeoutError):
    """No item moved between any two stages for ``timeout`` seconds; the pipeline was stopped.

    The message lists what each stage's threads were doing when it fired: waiting for
    input, waiting for space in its buffer, or inside its own code at ``file:line``.

    Attributes:
        timeout: the ``inactivity_timeout`` that was exceeded, in seconds.
        diagnosis: one line per thread, as in the message.
    """

    def __init__(self, timeout: float, diagnosis: tuple[str, ...] = ()) -> None:
        message = (
            f"no item moved between any two stages for {timeout:g} s (inactivity_timeout); "
            "the pipeline was stopped"
        )
        if diagnosis:
            message += "; its threads were:\n" + "\n".join(f"  {line}" for line in diagnosis)
        super().__init__(message)
        self.timeout = timeout
        self.diagnosis = diagnosis


class WorkerDiedError(PipelineError):
    """A stage's worker process or Ray actor ended without saying goodbye: killed by a signal
    (SIGKILL is often the out-of-memory killer), a crash (SIGSEGV), ``os._exit``, or, for an
    actor, the loss of its node.

    Attributes:
        stage: how the stage is named in messages.
        worker: the worker's name, e.g. ``"pipeline-parse-1"``.
        pid: its process id.
        exitcode: its exit code (negative: the number of the signal that killed it); ``None``
            for a Ray actor, whose cause Ray tells in words.
        cause: the cause in words, e.g. ``"killed by SIGKILL (likely the out-of-memory killer)"``.
        holding: what it was doing with items when it died, in words.
    """

    def __init__(
        self,
        stage: str,
        worker: str,
        pid: int | None,
        exitcode: int | None,
        holding: str,
        *,
        kind: str = "worker process",
        cause: str | None = None,
    ) -> None:
        if cause is None:
            cause = describe_exit(exitcode)
        super().__init__(f"{stage}: {kind} {worker} (pid {pid}) died: {cause}, {holding}")
        self.stage = stage
        self.worker = worker
        self.pid = pid
        self.exitcode = exitcode
        self.cause = cause
        self.holding = holding


def describe_exit(exitcode: int | None) -> str:
    """An exit code in words: the signal by name, and what SIGKILL usually means."""
    if exitcode is None:
        return "it is still running"
    if exitcode >= 0:
        return f"it exited with status {exitcode} without finishing (os._exit or exit())"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    if -exitcode == getattr(signal, "SIGKILL", None):
        return f"killed by {name} (likely the out-of-memory killer)"
    return f"killed by {name}"


class RemoteStageError(PipelineError):
    """A stage in a worker process raised an exception that could not be pickled back.

    Attributes:
        type_name: the qualified name of the exception's type.
        text: ``str()`` of the exception.
        remote_traceback: the traceback, formatted in the worker.
    """

    def __init__(self, type_name: str, text: str, remote_traceback: str) -> None:
        super().__init__(
            f"{type_name}: {text} (raised in a worker process; it could not be pickled, "
            f"so this carries its type name, message and traceback)\n{remote_traceback}"
        )
        self.type_name = type_name
        self.text = text
        self.remote_traceback = remote_traceback


class ItemPickleError(PipelineError, TypeError):
    """An item passed to a worker process, or one it produced, cannot be pickled.

    Attributes:
        stage: how the stage is named in messages.
        direction: ``"to"`` (an input item) or ``"from"`` (an output item) the worker.
        worker: how the worker is named, e.g. ``"worker process pipeline-parse-0 (pid 12)"``.
        position: the item's position (1 for the first) in what crossed that worker's pipe.
        item_type: the item's type name.
        reason: the pickler's error, in words: it names the part that does not pickle.
    """

    def __init__(
        self,
        stage: str,
        direction: str,
        worker: str,
        position: int,
        item: object,
        error: BaseException,
    ) -> None:
        what = "input item" if direction == "to" else "output item"
        self.stage = stage
        self.direction = direction
        self.worker = worker
        self.position = position
        self.item_type = type(item).__name__
        self.reason = f"{type(error).__name__}: {error}"
        super().__init__(
            f"{stage}: {what} {position} ({self.item_type}) cannot be pickled to pass it "
            f"{direction} {worker}: {self.reason}"
        )
