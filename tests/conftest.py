"""Fixtures shared by every test: no thread may outlive its test."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from hypothesis import settings

JOIN_TIMEOUT = 10.0

# The default profile runs each property's own max_examples; `--hypothesis-profile=stress`
# is the long local run.
settings.register_profile("stress", max_examples=5000, deadline=None)


@pytest.fixture(autouse=True)
def no_thread_survives() -> Iterator[None]:
    """Fail the test if it leaves a thread running (joining each with a timeout, never sleeping)."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before]
    for thread in leftover:
        thread.join(JOIN_TIMEOUT)
    alive = [t.name for t in leftover if t.is_alive()]
    assert not alive, f"threads outlived the test: {alive}"
