"""Every example runs, as a user would run it, and prints what it did."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def test_quickstart_counts_the_words() -> None:
    """The demo counts 20,000 lines' words and prints the top three."""
    out = run_example("quickstart.py")
    assert "counted " in out
    assert " words in 20,000 lines in " in out
    assert "longest of 1,000 lines has 12 words" in out


def test_report_prints_progress_then_the_report_with_its_verdict() -> None:
    """The report example names the stage it slows down on purpose."""
    out = run_example("report.py")
    assert "items written" in out
    assert "wrote 300 items" in out
    assert out.rstrip().splitlines()[-1].startswith("ended after ")
    assert "bottleneck: 'infer' (busy " in out


def test_http_fetch_keeps_every_page_it_could_fetch_and_lists_the_failures() -> None:
    """The I/O example fetches the 192 good pages of 200 and names the 8 that failed."""
    out = run_example("http_fetch.py")
    assert out.startswith("fetched 192 pages, 98,304 bytes, in ")
    assert "8 pages failed, 4 of them timed out (4 threads abandoned):" in out
    assert "  /page/7: HTTPError: HTTP Error 500: Internal Server Error" in out
    assert (
        "  /page/33: TimeoutError: stage 2 'fetch' (map): the call on item 33 did not return "
        "within 2 s"
    ) in out


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="torch is not installed (pip install 'pipeline_executor[torch]'); CI installs it",
)
def test_pytorch_batcher_classifies_every_image() -> None:
    """The seed's example, offline: 24 generated images classified by a local model."""
    out = run_example("pytorch_batcher.py")
    assert out.startswith("classified 24 images: {")
