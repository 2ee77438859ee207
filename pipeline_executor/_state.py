"""``StageState``: where a stage is, or how it ended.

Apart from the statistics snapshots (``_stats``) because every run needs it, from its first
host on, while a snapshot is taken only for a monitor, the live display or a failure's report.
"""

from __future__ import annotations

import enum

__all__ = ["StageState"]


class StageState(enum.Enum):
    """Where a stage is, or how it ended."""

    RUNNING = "running"
    FINISHED = "finished"  # every thread returned on its own
    CANCELLED = "cancelled"  # stopped by the pipeline (a failure elsewhere, an early stop)
    FAILED = "failed"  # a thread raised
    ABANDONED = "abandoned"  # a thread did not stop within the grace period
