"""Start-up stays cheap: a first plain pipeline imports only what it needs (the figure itself
is ``benchmarks/bench.py --only startup``); the lazily loaded public names still work."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from tests.fresh import run_fresh

FIRST_RUN = """
    import sys
    from collections.abc import Iterable, Iterator
    from pipeline_executor import Pipeline

    def numbers(n: int) -> Iterator[int]:
        yield from range(n)

    def add(xs: Iterable[int], k: int) -> Iterator[int]:
        for x in xs:
            yield x + k

    assert Pipeline.source(numbers, n=100).then(add, k=1).sink(sum).run() == 5050
    assert list(Pipeline.source(numbers, n=3).then(add, k=1)) == [1, 2, 3]
"""

NOT_IMPORTED = {
    # optional or third-party: each costs tens of milliseconds
    "typeguard",
    "typing_inspect",
    "typing_extensions",
    "rich",
    "ray",
    "cloudpickle",
    "numpy",
    "multiprocessing",
    "asyncio",
    "logging",
    # the standard library's heavier modules, which a plain run has no use for
    "dataclasses",
    "inspect",  # with ast, dis and tokenize: stage signatures are read without it
    "ast",
    "dis",
    "tokenize",
    "pathlib",
    "sysconfig",
    "difflib",
    "copy",
    "array",
    "math",
    # our modules for what the run does not do: processes, Ray, operators, ordered output,
    # the sequential mode, execute(), a monitor, progress, statistics snapshots
    "pipeline_executor._compat",
    "pipeline_executor._diagnose",
    "pipeline_executor._monitor",
    "pipeline_executor._observe",
    "pipeline_executor._ops",
    "pipeline_executor._order",
    "pipeline_executor._preload",
    "pipeline_executor._process",
    "pipeline_executor._progress",
    "pipeline_executor._ray",
    "pipeline_executor._ray_actor",
    "pipeline_executor._ray_host",
    "pipeline_executor._sequential",
    "pipeline_executor._stats",
    "pipeline_executor._transport",
    "pipeline_executor._verdict",
    "pipeline_executor._worker",
}
if sys.version_info >= (3, 13):  # before 3.13, typing imports re itself
    NOT_IMPORTED.add("re")


def test_a_first_run_imports_nothing_it_does_not_need() -> None:
    """A first plain run imports none of the heavy, optional or other-feature modules."""
    check = f"print(sorted({sorted(NOT_IMPORTED)!r} & sys.modules.keys()))"
    out = run_fresh(textwrap.dedent(FIRST_RUN) + check)
    assert out == "[]"


FORK_RUN = """
    import sys
    sys.path.insert(0, {root!r})
    from pipeline_executor import Pipeline
    from tests.process_stages import numbers, square, total

    if __name__ == "__main__":
        pipeline = Pipeline.source(numbers, n=100).then(square, processes=2).sink(total)
        assert pipeline.run(start_method="fork") == sum(x * x for x in range(100))
"""

NOT_IMPORTED_BY_FORK = {
    # multiprocessing and what it imports (13-16 ms of a first fork pipeline's 20 here)
    "multiprocessing",
    "socket",
    "selectors",
    "tempfile",
    "shutil",
    "subprocess",
    # what only large buffers (ctypes) or a failure (traceback) need
    "ctypes",
    "traceback",
    "cloudpickle",
}


def test_a_first_fork_pipeline_imports_no_multiprocessing() -> None:
    """Workers forked by the engine itself: a first fork pipeline of module-level stages
    imports neither multiprocessing nor what it would import, nor what large items or a
    failure would need."""
    check = f"print(sorted({sorted(NOT_IMPORTED_BY_FORK)!r} & sys.modules.keys()))"
    root = str(Path(__file__).resolve().parent.parent)
    out = run_fresh(textwrap.dedent(FORK_RUN.format(root=root)) + "    " + check)
    assert out == "[]"


def test_a_lazy_name_is_imported_on_first_use() -> None:
    """``pipeline_executor.Monitor`` imports its module then, and says it is public."""
    out = run_fresh(
        """
        import sys
        import pipeline_executor
        before = "pipeline_executor._monitor" in sys.modules
        monitor_type = pipeline_executor.Monitor
        print(before, "pipeline_executor._monitor" in sys.modules, monitor_type.__module__)
        """
    )
    assert out == "False True pipeline_executor"


def test_dir_lists_every_public_name_before_any_is_loaded() -> None:
    """``dir()`` of the package shows the lazily loaded names too, loaded or not."""
    out = run_fresh(
        """
        import pipeline_executor
        print(sorted(set(pipeline_executor.__all__) - set(dir(pipeline_executor))))
        """
    )
    assert out == "[]"


def test_an_unknown_name_is_an_attribute_error() -> None:
    """A name the package does not have raises AttributeError, as before the lazy names."""
    out = run_fresh(
        """
        import pipeline_executor
        try:
            pipeline_executor.Nope
        except AttributeError as exc:
            print(exc)
        """
    )
    assert out == "module 'pipeline_executor' has no attribute 'Nope'"


def test_a_snapshot_says_its_public_module_before_the_package_names_its_class() -> None:
    """Snapshot classes, reached through a monitor, say they live in pipeline_executor."""
    out = run_fresh(
        """
        import pipeline_executor
        from pipeline_executor import Monitor, Pipeline
        monitor = Monitor()
        Pipeline.from_iterable([1, 2]).sink(sum).run(monitor=monitor)
        stats = monitor.stats()
        print("PipelineStats" in vars(pipeline_executor),
              type(stats).__module__, type(stats.stages[0]).__module__,
              type(stats.stages[0].buffer).__module__, type(stats.memory).__module__)
        """
    )
    assert out == "False pipeline_executor pipeline_executor pipeline_executor pipeline_executor"
