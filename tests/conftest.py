"""Fixtures shared by every test: no thread may outlive its test; one Ray cluster per run."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

JOIN_TIMEOUT = 10.0

# The default profile runs each property's own max_examples; `--hypothesis-profile=stress`
# is the long local run.
settings.register_profile("stress", max_examples=5000, deadline=None)


_SESSION_THREADS: set[threading.Thread] = set()
"""Threads of the session's Ray cluster, started during the first test that asks for it."""


@pytest.fixture(autouse=True)
def no_thread_survives() -> Iterator[None]:
    """Fail the test if it leaves a thread running (joining each with a timeout, never sleeping)."""
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before | _SESSION_THREADS]
    for thread in leftover:
        thread.join(JOIN_TIMEOUT)
    alive = [t.name for t in leftover if t.is_alive()]
    assert not alive, f"threads outlived the test: {alive}"


@dataclass(frozen=True)
class RayCluster:
    """The one Ray cluster of a test run: two nodes on this machine, each with a custom
    resource naming it, so that tests can pin stages to either."""

    cluster: Any
    head: str  # node ids
    other: str


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """One two-node Ray cluster for the whole run (never one per test): small object stores,
    no dashboard, no auth, no usage report, on 127.0.0.1 only."""
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # listen on 127.0.0.1 only
    ray = pytest.importorskip("ray", reason="ray is not installed on this Python")
    from ray.cluster_utils import Cluster

    # A head node started here installs Ray's own SIGTERM handler (exit status 1): the
    # signal tests need Python's default back.
    sigterm = signal.getsignal(signal.SIGTERM)
    small = 80 << 20  # bytes of object store per node
    cluster: Any = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "resources": {"node_a": 100},
            "object_store_memory": small,
            "include_dashboard": False,
        },
    )
    cluster.add_node(
        num_cpus=2, resources={"node_b": 100}, object_store_memory=small, include_dashboard=False
    )
    root = str(Path(__file__).resolve().parent.parent)
    ray.init(
        address=cluster.address,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": root}},  # test modules travel by reference
    )
    signal.signal(signal.SIGTERM, sigterm)
    _SESSION_THREADS.update(threading.enumerate())
    ids = {tuple(n["Resources"]): n["NodeID"] for n in ray.nodes() if n["Alive"]}
    head = next(i for keys, i in ids.items() if "node_a" in keys)
    other = next(i for keys, i in ids.items() if "node_b" in keys)
    try:
        yield RayCluster(cluster, head, other)
    finally:
        ray.shutdown()
        cluster.shutdown()
