"""The progress display: live on a terminal, plain lines elsewhere, logs above the table."""

from __future__ import annotations

import io
import logging
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import TextIO

import pytest

from pipeline_executor import (
    BufferStatistics,
    Monitor,
    Pipeline,
    PipelineDefinitionError,
    PipelineStats,
    StageState,
    StageStats,
)
from pipeline_executor._progress import ProgressDisplay, RecentRates, eta

from .stages import add_one, numbers, total

WAIT = 10.0

pytest.importorskip("rich", reason="the progress extra is not installed; CI installs it")


class Terminal(io.StringIO):
    """A file that says it is a terminal: the live display draws on it."""

    def isatty(self) -> bool:
        return True


def screen(raw: str) -> list[str]:
    """What a terminal shows after ``raw``: text, CR, LF, cursor up/down/column, erase line."""
    rows: list[list[str]] = [[]]
    row = col = 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]", raw):
        if token == "\n":
            row, col = row + 1, 0
        elif token == "\r":
            col = 0
        elif token.startswith("\x1b["):
            arg, op = token[2:-1], token[-1]
            n = int(arg) if arg.isdigit() else 1
            if op == "A":
                row = max(0, row - n)
            elif op == "B":
                row += n
            elif op == "G":
                col = n - 1
            elif op == "K":
                while len(rows) <= row:
                    rows.append([])
                rows[row] = rows[row][:col] if arg in ("", "0") else []
            continue  # colours, cursor visibility: nothing on screen
        else:
            while len(rows) <= row:
                rows.append([])
            line = rows[row]
            line.extend(" " * (col - len(line)))
            if col < len(line):
                line[col] = token
            else:
                line.append(token)
            col += 1
    return ["".join(r).rstrip() for r in rows if "".join(r).strip()]


def synthetic(
    elapsed: float, source_out: int, sink_in: int, *, expected: int | None = None
) -> PipelineStats:
    """A running 2-stage pipeline at ``elapsed`` seconds."""
    buffer = BufferStatistics(
        capacity=8,
        used=0,
        queued=0,
        peak_used=8,
        items_in=source_out,
        items_out=sink_in,
        producers=1,
        consumers=1,
    )

    def running(position: int, role: str, items_in: int, items_out: int) -> StageStats:
        return StageStats(
            position=position,
            name=f"s{position}",
            role=role,
            threads=1,
            state=StageState.RUNNING,
            items_in=items_in,
            items_out=items_out,
            busy=0.0,
            starved=0.0,
            blocked=0.0,
            cpu=None,
            buffer=buffer if role == "source" else None,
            expected=expected if role == "source" else None,
        )

    return PipelineStats(
        elapsed=elapsed,
        stages=(running(1, "source", 0, source_out), running(2, "sink", sink_in, 0)),
        running=True,
    )


# -- plain lines ----------------------------------------------------------------------------


def test_a_file_that_is_not_a_terminal_gets_plain_lines_and_the_report() -> None:
    """No escape codes in a log file: the run ends with the plain report there."""
    out = io.StringIO()
    monitor = Monitor()
    Pipeline.source(numbers, n=100).then(add_one).sink(total).run(progress=out, monitor=monitor)
    assert "\x1b" not in out.getvalue()
    assert out.getvalue().endswith(monitor.stats().report() + "\n")


def test_plain_lines_come_every_five_seconds_with_recent_rates_total_and_eta() -> None:
    """One line per 5 s of run, counts with the source's total, rates over the last snapshots."""
    out = io.StringIO()
    display = ProgressDisplay(out)
    display.start()
    for tick in range(1, 25):  # 0.5 s apart: the source yields 40/s, then 2/s from 5 s on
        elapsed = tick / 2
        source_out = int(40 * elapsed) if elapsed <= 5 else 200 + int(2 * (elapsed - 5))
        display.update(synthetic(elapsed, source_out, source_out - 4, expected=301))
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "pipeline, running 0.5 s, source 7%, ETA 7 s",
        "pipeline, running 5.5 s, source 67%, ETA 3 s",
        "pipeline, running 10.5 s, source 70%, ETA 45 s",
    ]
    assert lines[2].endswith(": 1 s1 211/301 (2/s); 2 s2 207 (2/s)")


def test_the_recent_rate_forgets_snapshots_older_than_the_window() -> None:
    """Fast at first, then slow: the rate is the slow one, not the since-start average."""
    rates = RecentRates(window=4)
    last: tuple[float, ...] = ()
    assert rates.update(synthetic(1.0, 100, 0)) == (100.0, 0.0)  # since the start, at first
    for tick in range(2, 10):
        last = rates.update(synthetic(float(tick), 100 + 5 * (tick - 1), 0))
    assert last == (5.0, 0.0)


def test_eta_is_the_time_the_source_needs_for_the_rest_at_its_recent_rate() -> None:
    """100 expected, 40 out, 10/s: 6 s; unknown length or a stalled source: none."""
    assert eta(synthetic(4.0, 40, 40, expected=100), (10.0, 10.0)) == 6.0
    assert eta(synthetic(4.0, 40, 40), (10.0, 10.0)) is None
    assert eta(synthetic(4.0, 40, 40, expected=100), (0.0, 10.0)) is None


def test_from_iterable_of_a_collection_knows_its_total() -> None:
    """len() of the collection is the source's expected count, shown in the report."""
    monitor = Monitor()
    Pipeline.from_iterable([1, 2, 3]).sink(total).run(monitor=monitor)
    assert monitor.stats().stages[0].expected == 3
    assert "3/3" in monitor.stats().report().splitlines()[1]


def test_a_source_of_unknown_length_has_no_total() -> None:
    """A generator function's length is unknown until it ends."""
    monitor = Monitor()
    Pipeline.source(numbers, n=3).sink(total).run(monitor=monitor)
    assert monitor.stats().stages[0].expected is None
    assert Pipeline.from_iterable(iter([1])).sink(total).run() == 1


# -- the live table -------------------------------------------------------------------------


def test_log_lines_from_a_stage_print_above_the_live_table() -> None:
    """A logging handler writing to the terminal does not garble the table."""
    terminal = Terminal()
    logger = logging.getLogger("test_progress.chatty")
    handler = logging.StreamHandler(terminal)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    drawn = threading.Condition()
    draws = [0]

    def on_progress(stats: PipelineStats) -> None:  # called right after each redraw
        with drawn:
            draws[0] += 1
            drawn.notify_all()

    def wait_for_draw(after: int) -> int:
        with drawn:
            assert drawn.wait_for(lambda: draws[0] > after, WAIT)
            return draws[0]

    def chatty(xs: Iterable[int]) -> Iterator[int]:
        seen = wait_for_draw(0)
        for x in xs:
            if x < 3:
                logger.warning("log line %d", x)
                seen = wait_for_draw(seen)
            yield x

    try:
        Pipeline.source(numbers, n=10).then(chatty).sink(total).run(
            progress=terminal, monitor=Monitor(on_progress, interval=0.01)
        )
    finally:
        logger.removeHandler(handler)
    shown = screen(terminal.getvalue())
    assert shown[:3] == ["WARNING log line 0", "WARNING log line 1", "WARNING log line 2"]
    assert [line for line in shown if "log line" in line] == shown[:3]
    assert sum("pipeline, ended after" in line for line in shown) == 1
    assert handler.stream is terminal  # given back after the run


def test_a_long_stage_name_wraps_instead_of_being_cut() -> None:
    """A name longer than the terminal is wide is shown whole, over several lines."""
    name = "transform_" + "very_" * 18 + "long_name"

    def stage(xs: Iterable[int]) -> Iterator[int]:
        yield from xs

    stage.__name__ = name
    terminal = Terminal()
    Pipeline.source(numbers, n=10).then(stage).sink(total).run(progress=terminal)
    shown = screen(terminal.getvalue())
    assert max(len(line) for line in shown) <= 80
    header = next(i for i, line in enumerate(shown) if line.startswith("stage "))
    width = shown[header].index("threads")  # the stage column is what comes before
    first_cells = "".join(line[:width].replace(" ", "") for line in shown[header + 2 :])
    assert f"2{name}(then)" in first_cells  # its folded pieces, joined


# -- the extra ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["a terminal", "a file", "stderr, not a terminal"])
def test_progress_without_rich_is_the_same_clear_error_everywhere(
    monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Terminal or not, a missing extra is an error at the call, naming the extra."""
    monkeypatch.setitem(sys.modules, "rich.console", None)
    progress: dict[str, bool | TextIO] = {
        "a terminal": Terminal(),
        "a file": io.StringIO(),
        "stderr, not a terminal": True,
    }
    with pytest.raises(
        PipelineDefinitionError,
        match=r"^pipeline: progress needs the optional extra 'progress' \(rich\): "
        r"pip install 'pipeline_executor\[progress\]'$",
    ):
        Pipeline.source(numbers, n=10).sink(total).run(progress=progress[where])


def test_progress_true_writes_nothing_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Piped or captured output stays clean."""
    Pipeline.source(numbers, n=10).sink(total).run(progress=True)
    assert capsys.readouterr().err == ""
