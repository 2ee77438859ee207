"""What the Ray engine adds to the conformance suite: options, nodes, dead and stuck actors,
the buffer bound in chunks, and that no actor outlives its run."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from pipeline_executor import (
    InactivityError,
    Monitor,
    Pipeline,
    PipelineDefinitionError,
    RayEngine,
    WorkerDiedError,
)
from tests import conformance_stages as cs
from tests.conftest import RayCluster

WAIT = 5.0  # seconds within which every actor of a run must be dead


def alive_actors() -> list[str]:
    """Our actors that Ray's state (the GCS actor table) says are not dead. The public state
    API (``ray.util.state``) needs the dashboard, which the tests do not start."""
    from ray._private import state

    table = cast("dict[str, dict[str, Any]]", state.actors())
    return [
        str(a["ActorID"])
        for a in table.values()
        if a["ActorClassName"] == "StageActor" and a["State"] != "DEAD"
    ]


def assert_no_actor_alive() -> None:
    """Every actor of every run so far is dead within ``WAIT`` seconds."""
    deadline = time.monotonic() + WAIT
    while alive_actors():
        assert time.monotonic() < deadline, f"actors still alive: {alive_actors()}"
        time.sleep(0.05)  # sleep-ok: Ray's state table offers no wait; bounded by WAIT


def test_importing_the_package_does_not_import_ray() -> None:
    """``import pipeline_executor`` leaves ray unimported: it costs nothing until used."""
    code = "import sys, pipeline_executor; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout == "False\n"


def test_bad_options_are_refused_when_the_engine_is_made() -> None:
    """A chunk size that is no positive int is an error naming the option."""
    with pytest.raises(
        PipelineDefinitionError, match=r"^RayEngine: chunk must be an int >= 1, got 0$"
    ):
        RayEngine(chunk=0)


def test_the_engine_has_a_useful_repr() -> None:
    """repr shows the address and the chunking options."""
    assert repr(RayEngine(chunk=8)) == (
        "RayEngine(address=None, chunk=8, linger=0.02, queued=2, in_flight=2)"
    )


def test_resources_must_name_a_stage() -> None:
    """Resources for a stage the pipeline does not have are refused before anything runs."""
    engine = RayEngine(resources={"sqare": {"num_cpus": 1}})
    pipeline = Pipeline.source(cs.numbers, n=3).then(cs.square)
    with pytest.raises(
        PipelineDefinitionError,
        match=r"^RayEngine: resources names no stage of the pipeline: 'sqare' "
        r"\('numbers', 'square'\)$",
    ):
        list(pipeline.iter(engine=engine))


def test_an_engine_that_is_no_engine_is_refused() -> None:
    """``engine=`` takes an engine, and says so."""
    pipeline = Pipeline.source(cs.numbers, n=3).sink(cs.total)
    with pytest.raises(
        PipelineDefinitionError,
        match=r"^pipeline: engine must be None or an engine such as RayEngine\(\), got 'ray'$",
    ):
        pipeline.run(engine="ray")  # type: ignore[arg-type]


def test_resources_no_node_has_are_refused(ray_cluster: RayCluster) -> None:
    """An actor asking for what no node has would wait forever: it is an error instead."""
    engine = RayEngine(resources={"square": {"resources": {"gpu_node": 1}}})
    pipeline = Pipeline.source(cs.numbers, n=3).then(cs.square)
    with pytest.raises(
        PipelineDefinitionError,
        match=r"^stage 2 'square' \(then\): no node of the Ray cluster has 1 of 'gpu_node' "
        r"\(the cluster has 0\)$",
    ):
        list(pipeline.iter(engine=engine))


def test_items_cross_nodes_actor_to_actor(ray_cluster: RayCluster) -> None:
    """Pinned by custom resources, the source runs on one node and the next stage on the
    other: every item was produced on the first and consumed on the second."""
    engine = RayEngine(
        chunk=16,
        resources={
            "on_node": {"resources": {"node_a": 1}},
            "consumed_on_node": {"resources": {"node_b": 1}},
        },
    )
    pipeline = Pipeline.source(cs.on_node, n=100).then(cs.consumed_on_node, threads=2)
    items = list(pipeline.iter(engine=engine))
    assert sorted(i for _, _, i in items) == list(range(100))
    assert {(made, used) for made, used, _ in items} == {(ray_cluster.head, ray_cluster.other)}


def test_a_node_lost_mid_run_fails_the_run_naming_the_stage(ray_cluster: RayCluster) -> None:
    """Removing the node a stage runs on raises WorkerDiedError naming the stage and the
    node's death, without a hang."""
    sigterm = signal.getsignal(signal.SIGTERM)  # a node started here installs Ray's own
    node = ray_cluster.cluster.add_node(num_cpus=1, resources={"node_c": 10})
    signal.signal(signal.SIGTERM, sigterm)
    pinned = {"forever": {"resources": {"node_a": 1}}, "square": {"resources": {"node_c": 1}}}
    engine = RayEngine(chunk=1, resources=pinned)
    pipeline = Pipeline.source(cs.forever).then(cs.square)

    def consume() -> None:
        for i, _ in enumerate(pipeline.iter(engine=engine)):
            if i == 0:
                ray_cluster.cluster.remove_node(node)

    with pytest.raises(WorkerDiedError) as caught:
        consume()
    message = str(caught.value)
    assert re.match(
        r"^stage 2 'square' \(then\): Ray actor pipeline-square-0 \(pid \d+\) died: its node "
        r"has died\b",
        message,
    ), message
    assert_no_actor_alive()


def test_an_actor_that_exits_raises_worker_died(ray_cluster: RayCluster) -> None:
    """os._exit in a stage is a WorkerDiedError naming the stage, the actor and the cause."""
    pipeline = Pipeline.source(cs.numbers, n=100).then(cs.exit_at, at=5).sink(cs.total)
    with pytest.raises(WorkerDiedError) as caught:
        pipeline.run(engine=RayEngine(chunk=4))
    assert re.match(
        r"^stage 2 'exit_at' \(then\): Ray actor pipeline-exit_at-0 \(pid \d+\) died: its "
        r"worker process has died\. .*, after taking \d+ items and producing \d+$",
        str(caught.value),
    )
    assert_no_actor_alive()


def test_an_actor_killed_by_a_signal_raises_worker_died(ray_cluster: RayCluster) -> None:
    """An actor whose process is SIGKILLed (the out-of-memory killer's way) is a
    WorkerDiedError naming the stage, not a hang nor a short result."""
    pipeline = Pipeline.source(cs.numbers, n=100).then(cs.killed_at, at=5).sink(cs.total)
    with pytest.raises(WorkerDiedError) as caught:
        pipeline.run(engine=RayEngine(chunk=4))
    assert re.match(
        r"^stage 2 'killed_at' \(then\): Ray actor pipeline-killed_at-0 \(pid \d+\) died: ",
        str(caught.value),
    )
    assert_no_actor_alive()


def test_a_stage_error_carries_the_actors_traceback(ray_cluster: RayCluster) -> None:
    """The remote traceback, with the stage's own line, is the exception's cause."""
    pipeline = Pipeline.source(cs.numbers, n=100).then(cs.fail_at, at=5).sink(cs.total)
    with pytest.raises(cs.StageError) as caught:
        pipeline.run(engine=RayEngine())
    assert 'conformance_stages.py", line' in str(caught.value.__cause__)
    assert "raise StageError" in str(caught.value.__cause__)
    assert_no_actor_alive()


def test_a_stuck_actor_is_diagnosed_and_killed(ray_cluster: RayCluster) -> None:
    """The inactivity timeout names the stuck actor and its line, then the actor is killed
    after the grace period, and none is left."""
    pipeline = Pipeline.source(cs.numbers, n=100).then(cs.stuck_at, at=3).sink(cs.total)
    with (
        pytest.warns(RuntimeWarning, match=r"killed stage 2 'stuck_at' \(then\) in Ray actor"),
        pytest.raises(InactivityError) as caught,
    ):
        pipeline.run(engine=RayEngine(chunk=1), inactivity_timeout=1.0)
    lines = "\n".join(caught.value.diagnosis)
    assert re.search(
        r"stage 2 'stuck_at' \(then\), Ray actor pipeline-stuck_at-0 \(pid \d+, node \w+\): "
        r"inside its own code at .*conformance_stages\.py:\d+",
        lines,
    ), lines
    assert_no_actor_alive()


def test_break_leaves_no_actor_alive(ray_cluster: RayCluster) -> None:
    """Leaving the loop over an endless pipeline kills every actor of the run."""
    for x in Pipeline.source(cs.forever).then(cs.square, threads=2).iter(engine=RayEngine()):
        if x > 100:
            break
    assert_no_actor_alive()


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """Python's own SIGINT handler, even where the tests were started with SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def interrupt_main_thread() -> None:
    """What Ctrl-C does: SIGINT, delivered to the main thread (where the caller waits)."""
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_stops_the_run_and_leaves_no_actor_alive(ray_cluster: RayCluster) -> None:
    """SIGINT while run() waits raises KeyboardInterrupt and kills every actor."""
    started = threading.Event()

    def sink(xs: Iterable[int]) -> None:
        for _ in xs:
            started.set()

    def interrupt() -> None:
        assert started.wait(30)
        interrupt_main_thread()

    helper = threading.Thread(target=interrupt)
    helper.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            Pipeline.source(cs.forever).then(cs.square).sink(sink).run(engine=RayEngine())
    finally:
        helper.join(30)
    assert_no_actor_alive()


def test_statistics_count_each_stage(ray_cluster: RayCluster) -> None:
    """The final statistics count every stage's items and the actors' busy time."""
    monitor = Monitor()
    pipeline = Pipeline.source(cs.numbers, n=500).then(cs.square, threads=2).sink(cs.total)
    pipeline.run(engine=RayEngine(chunk=32), monitor=monitor)
    stats = monitor.stats()
    source, middle, sink = stats.stages
    assert (source.items_out, middle.items_in, middle.items_out, sink.items_in) == (
        500,
        500,
        500,
        500,
    )
    assert middle.busy > 0
    assert "2 square (then)" in stats.report()


def test_the_buffer_bound_holds_in_chunks(ray_cluster: RayCluster, tmp_path: Path) -> None:
    """However slow the consumer, the source runs ahead of it by at most the documented
    bound: per link, threads x (queued + 1 + consumers x (in_flight + 1)) chunks, plus this
    process's buffer and the item the loop holds."""
    engine = RayEngine(chunk=8)
    progress = tmp_path / "progress"
    pipeline = Pipeline.source(cs.recording, n=3000, where=str(progress)).then(cs.square)
    per_link = 1 * (2 + 1 + 1 * (2 + 1)) * 8  # one actor each side, the default options
    bound = 2 * per_link + 8 + 1
    worst = 0
    for i, _ in enumerate(pipeline.iter(engine=engine)):
        worst = max(worst, int(progress.read_text()) - i)
    print(f"the source ran ahead by at most {worst} items (bound {bound})")
    assert 8 < worst <= bound


def test_a_slow_stream_is_not_held_back_by_its_chunk(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    """With chunks of 256, the first item of a slow source reaches the caller long before
    the source has made a chunk's worth: the linger flush sends it on."""
    progress = tmp_path / "progress"
    pipeline = Pipeline.source(cs.recording, n=5, where=str(progress), pause=0.5)
    items = pipeline.then(cs.square).iter(engine=RayEngine(chunk=256))
    assert next(iter(items)) == 0
    assert int(progress.read_text()) < 5
    close: Any = getattr(items, "close")  # noqa: B009 - a PipelineIterator
    close()
    assert_no_actor_alive()
