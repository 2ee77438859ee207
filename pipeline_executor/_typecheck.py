"""Build-time compatibility of adjacent stages: the seam the builder calls for every stage.

The builder calls :func:`check_stage` for each stage it adds, with the stage before it, before
any thread exists. Today it accepts every pair: the checks of item types between stages and
of constant values against annotations belong here, and nothing else needs to change to add
them.
"""

from __future__ import annotations

from ._stages import StageSpec

__all__ = ["check_stage"]


def check_stage(previous: StageSpec | None, stage: StageSpec) -> None:
    """Check that ``stage`` can follow ``previous`` (``None`` for a source).

    Raises:
        PipelineTypeError: the types of the two stages do not fit (not yet checked).
    """
    del previous, stage
