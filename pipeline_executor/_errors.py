"""Exceptions raised by pipeline_executor, and the one helper that annotates them.

Hierarchy::

    PipelineError                     base of every exception this library defines
    ├── PipelineDefinitionError       bad options or constants (also a ValueError)
    ├── PipelineTypeError             stages whose types do not fit (also a TypeError)
    └── InactivityError               nothing moved for a while (also a TimeoutError)

    PipelineTypeWarning               an annotation that cannot be resolved (counted as Any),
                                      or a constant that does not fit its annotation under
                                      execute() (a UserWarning)

Errors raised *by a stage* are never wrapped: the caller receives the stage's own exception
object, with its own type and traceback, and a note (PEP 678) naming the stage.

Which failure is raised when several stages fail:

1. The first failure recorded by the runner is the root cause; it is raised.
2. Other failures that happened independently (raised by the stage's own code, not by our
   shutdown of it) are listed in the root cause's notes, each with its stage.
3. A failure caused by our own shutdown (an exception whose ``__context__`` chain contains the
   cancellation we threw into the stage) is never reported: it is a consequence, not a cause.
"""

from __future__ import annotations

import sys
import warnings
from types import FrameType
from typing import cast

__all__ = [
    "InactivityError",
    "PipelineDefinitionError",
    "PipelineError",
    "PipelineTypeError",
    "PipelineTypeWarning",
    "add_note",
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
