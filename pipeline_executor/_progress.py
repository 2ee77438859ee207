"""The progress display (``progress=``): a live table on a terminal, plain lines elsewhere.

* On a terminal (``file.isatty()``) a table of the stages is redrawn in place with rich, the
  optional extra, sized to the terminal (long stage names wrap, never cut). While it is live,
  log records that ``logging`` handlers would write to that terminal, and ``print`` to a
  standard stream that is a terminal, are printed above the table instead of through it.
* Anywhere else (a log file, a pipe, ``io.StringIO``) it writes plain lines, no escape codes:
  one every :data:`PLAIN_EVERY` seconds, and the final report.
* Either way rich must be installed: :func:`require_rich` is called for every ``progress``
  other than ``False``, terminal or not, so a program does not fail only when run in one.
* Rates are recent: items per second over the last :data:`WINDOW` snapshots (while it runs;
  the final table gives the averages). With the source's length known (``from_iterable`` of a
  sized collection), the source's count shows its total and the title an ETA: when the
  source will have yielded its last item at its recent rate (later stages then finish what
  their buffers hold).
"""

from __future__ import annotations

import importlib
import sys
from collections import deque
from typing import TYPE_CHECKING, TextIO, cast

from ._errors import PipelineDefinitionError
from ._stats import REPORT_COLUMNS, PipelineStats, report_row

if TYPE_CHECKING:
    import logging

    from rich.console import Console, Group
    from rich.live import Live

__all__ = ["PLAIN_EVERY", "WINDOW", "ProgressDisplay", "RecentRates", "eta", "require_rich"]

WINDOW = 10
"""Snapshots the recent rate is taken over (5 s at the display's default 0.5 s interval)."""

PLAIN_EVERY = 5.0
"""Seconds between two plain progress lines (a line per snapshot would flood a log file)."""


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


def _is_terminal(file: object) -> bool:
    isatty = getattr(file, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # closed or detached
        return False


class RecentRates:
    """Items per second of each stage over the last ``window`` snapshots of a run."""

    def __init__(self, window: int = WINDOW) -> None:
        self._seen: deque[tuple[float, tuple[int, ...]]] = deque(maxlen=window + 1)

    def update(self, stats: PipelineStats) -> tuple[float, ...]:
        """Record ``stats``; the rate of each stage since the oldest snapshot kept (since the
        start, until ``window`` snapshots have been seen)."""
        done = tuple(s.items_in if s.role == "sink" else s.items_out for s in stats.stages)
        if not self._seen:
            self._seen.append((0.0, tuple(0 for _ in done)))
        self._seen.append((stats.elapsed, done))
        then, before = self._seen[0]
        span = stats.elapsed - then
        if span <= 0:
            return tuple(0.0 for _ in done)
        return tuple((now - old) / span for now, old in zip(done, before, strict=True))


def eta(stats: PipelineStats, rates: tuple[float, ...]) -> float | None:
    """Seconds until the source has yielded its last item at its recent rate, if its length
    is known and it is still going; else ``None``."""
    source = stats.stages[0] if stats.stages else None
    if source is None or source.expected is None or not rates or rates[0] <= 0:
        return None
    remaining = source.expected - source.items_out
    return remaining / rates[0] if remaining > 0 else None


def _title(stats: PipelineStats, rates: tuple[float, ...] | None) -> str:
    state = "running" if stats.running else "ended after"
    title = f"pipeline, {state} {stats.elapsed:.1f} s"
    source = stats.stages[0] if stats.stages else None
    if stats.running and source is not None and source.expected:
        title += f", source {source.items_out / source.expected:.0%}"
        left = eta(stats, rates or ())
        if left is not None:
            title += f", ETA {left:,.0f} s"
    return title


class ProgressDisplay:
    """Shows a run's progress on ``file``: live on a terminal, plain lines elsewhere."""

    def __init__(self, file: TextIO) -> None:
        """Prepare to show progress on ``file``.

        Raises:
            PipelineDefinitionError: rich, the optional extra it needs, is not installed.
        """
        require_rich()
        self._drawer: _LiveTable | _PlainLines = (
            _LiveTable(file) if _is_terminal(file) else _PlainLines(file)
        )

    def start(self) -> None:
        """Begin showing."""
        self._drawer.start()

    def update(self, stats: PipelineStats) -> None:
        """Show ``stats`` (a live snapshot)."""
        self._drawer.update(stats)

    def stop(self, stats: PipelineStats) -> None:
        """Show the final statistics and stop."""
        self._drawer.stop(stats)


class _PlainLines:
    """Plain periodic lines, then the report: for files that are not terminals."""

    def __init__(self, file: TextIO, every: float = PLAIN_EVERY) -> None:
        self._file = file
        self._every = every
        self._last: float | None = None
        self._rates = RecentRates()

    def start(self) -> None:
        """Nothing to draw until the first snapshot."""

    def update(self, stats: PipelineStats) -> None:
        rates = self._rates.update(stats)
        if self._last is not None and stats.elapsed - self._last < self._every:
            return
        self._last = stats.elapsed
        counts: list[str] = []
        for stage, rate in zip(stats.stages, rates, strict=True):
            done = stage.items_in if stage.role == "sink" else stage.items_out
            total = f"/{stage.expected:,}" if stage.expected is not None else ""
            counts.append(f"{stage.position} {stage.name} {done:,}{total} ({rate:,.0f}/s)")
        self._write(f"{_title(stats, rates)}: {'; '.join(counts)}")

    def stop(self, stats: PipelineStats) -> None:
        self._write(stats.report())

    def _write(self, text: str) -> None:
        self._file.write(text + "\n")
        self._file.flush()


class _LiveTable:
    """The table redrawn in place with rich; log records and prints go above it."""

    def __init__(self, file: TextIO) -> None:
        from rich.console import Console
        from rich.live import Live

        self._file = file
        # Standard streams that share the screen with the table are redirected through it;
        # one that is a pipe or a file (``python job.py > out.txt``) is left alone.
        stdout, stderr = (
            stream is file or (stream is not None and _is_terminal(stream))
            for stream in (sys.stdout, sys.stderr)
        )
        self._console: Console = Console(file=file, force_terminal=True)
        self._live: Live = Live(
            console=self._console,
            auto_refresh=False,
            transient=False,
            redirect_stdout=stdout,
            redirect_stderr=stderr,
        )
        self._rates = RecentRates()
        self._swapped: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    def start(self) -> None:
        self._route_logging()  # first: once live, sys.stderr may be rich's proxy
        self._live.start()

    def update(self, stats: PipelineStats) -> None:
        rates = self._rates.update(stats)
        self._live.update(_table(stats, rates), refresh=True)

    def stop(self, stats: PipelineStats) -> None:
        """Draw the final statistics, stop (stopping draws, so it is drawn once), and give
        the log handlers their streams back."""
        try:
            self._live.update(_table(stats, None), refresh=False)
            self._live.stop()
        finally:
            for handler, stream in reversed(self._swapped):
                handler.setStream(stream)
            self._swapped.clear()

    def _route_logging(self) -> None:
        """Point every ``logging`` handler that writes to this terminal at the console, which
        prints above the table; :meth:`stop` points them back."""
        from rich.file_proxy import FileProxy

        screens = {id(self._file)}
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            if stream is not None and _is_terminal(stream):
                screens.add(id(stream))
        for handler in _stream_handlers():
            stream = handler.stream
            if id(stream) in screens:
                # A TextIOBase that forwards all but write() and flush() to the stream.
                handler.setStream(cast("TextIO", FileProxy(self._console, stream)))
                self._swapped.append((handler, stream))


def _stream_handlers() -> list[logging.StreamHandler[TextIO]]:
    """Every ``StreamHandler`` of every logger that exists (once each)."""
    if "logging" not in sys.modules:  # nothing imported it, so no handler exists
        return []
    import logging  # here, not at the top: importing it costs milliseconds at start-up

    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    found: dict[int, logging.StreamHandler[TextIO]] = {}
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                stream_handler = cast("logging.StreamHandler[TextIO]", handler)
                found.setdefault(id(stream_handler), stream_handler)
    return list(found.values())


def _table(stats: PipelineStats, rates: tuple[float, ...] | None) -> Group:
    """The report as a rich table; ``rates`` (recent) replace the averages while it runs.

    Compact (no vertical rules) to fit 80 columns; on a narrower terminal every cell folds
    onto more lines rather than being cut, so no name or number is lost.
    """
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=_title(stats, rates),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=0,
    )
    rows = [
        report_row(stage, stats.elapsed, rates[index] if rates is not None else None)
        for index, stage in enumerate(stats.stages)
    ]
    for index, column in enumerate(REPORT_COLUMNS):
        if index == 0:  # the stage's name takes what the figures leave, folding onto lines
            longest = max(len(column), *(len(row[0]) for row in rows))
            table.add_column(column, justify="left", overflow="fold", min_width=min(longest, 12))
        else:  # figures keep their width
            width = max(len(column), *(len(row[index]) for row in rows))
            table.add_column(column, justify="right", no_wrap=True, min_width=width)
    for row in rows:
        table.add_row(*row)
    return Group(table, Text(stats.verdict()))  # the verdict wraps to the terminal's width
