"""The live progress display (``progress=True``), drawn with rich, an optional extra."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, TextIO

from ._errors import PipelineDefinitionError
from ._stats import PipelineStats

if TYPE_CHECKING:
    from rich.live import Live
    from rich.table import Table

__all__ = ["ProgressDisplay", "require_rich"]


def require_rich() -> None:
    """Check that rich, which the display needs, can be imported.

    Raises:
        PipelineDefinitionError: it cannot; the message names the extra to install.
    """
    try:
        importlib.import_module("rich.console")
        importlib.import_module("rich.live")
    except ModuleNotFoundError as exc:
        raise PipelineDefinitionError(
            "pipeline",
            "progress needs the optional extra 'progress' (rich): "
            "pip install 'pipeline_executor[progress]'",
        ) from exc


class ProgressDisplay:
    """A table of the stages, redrawn in place on a terminal, ending with the verdict."""

    def __init__(self, file: TextIO) -> None:
        """Prepare to draw on ``file``.

        Raises:
            PipelineDefinitionError: rich, the optional extra it needs, is not installed.
        """
        require_rich()
        from rich.console import Console
        from rich.live import Live

        console = Console(file=file, force_terminal=True)
        self._live: Live = Live(console=console, auto_refresh=False, transient=False)

    def start(self) -> None:
        """Begin drawing."""
        self._live.start()

    def update(self, stats: PipelineStats) -> None:
        """Redraw with ``stats``."""
        self._live.update(_table(stats), refresh=True)

    def stop(self, stats: PipelineStats) -> None:
        """Draw the final statistics and stop (stopping draws, so it is drawn once)."""
        self._live.update(_table(stats), refresh=False)
        self._live.stop()


def _table(stats: PipelineStats) -> Table:
    from rich.table import Table

    table = Table(title=f"pipeline, {stats.elapsed:.1f} s", caption=stats.verdict())
    for column in ("stage", "threads", "done", "items/s", "busy", "starved", "blocked", "buffer"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for s in stats.stages:
        done = s.items_in if s.role == "sink" else s.items_out
        rate = done / stats.elapsed if stats.elapsed > 0 else 0.0
        table.add_row(
            f"{s.position} {s.name}",
            str(s.threads),
            f"{done:,}",
            f"{rate:,.0f}",
            f"{s.share(s.busy, stats.elapsed):.0%}",
            f"{s.share(s.starved, stats.elapsed):.0%}",
            f"{s.share(s.blocked, stats.elapsed):.0%}",
            f"{s.buffer.peak_used}/{s.buffer.capacity}" if s.buffer else "-",
        )
    return table
