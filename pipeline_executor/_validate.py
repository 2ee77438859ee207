"""Validators of option values shared by every public entry point.

One function per kind of value, so that every option of that kind takes the same values and
is refused with a message of the same shape.
"""

from __future__ import annotations

import threading

from ._errors import PipelineDefinitionError

__all__ = ["check_duration"]


def check_duration(subject: str, option: str, value: object) -> float:
    """A duration in seconds: a number (not a bool) > 0 and <= ``threading.TIMEOUT_MAX``.

    The upper bound is the longest wait ``threading`` accepts: anything above it would pass
    here and fail later, mid-run, with an ``OverflowError``. NaN (which fails every
    comparison) and infinity are refused (an infinite wait is spelled ``None`` where an
    option allows it; the caller checks that).

    Returns:
        ``value`` as a float.

    Raises:
        PipelineDefinitionError: naming ``subject`` and ``option``.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value <= threading.TIMEOUT_MAX
    ):
        raise PipelineDefinitionError(
            subject,
            f"{option} must be a number of seconds > 0 and <= {threading.TIMEOUT_MAX:g} "
            f"(threading.TIMEOUT_MAX), got {value!r}",
        )
    return float(value)
