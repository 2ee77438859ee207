"""The public surface: exactly these names, all documented, all said to live in the package."""

from __future__ import annotations

import pipeline_executor


def test_the_export_list_is_pinned() -> None:
    """Adding or removing a public name is a decision: this test makes it visible."""
    assert pipeline_executor.__all__ == [
        "AutoBuffer",
        "BufferStatistics",
        "InactivityError",
        "ItemPickleError",
        "MemoryStatistics",
        "Monitor",
        "Pipeline",
        "PipelineDefinitionError",
        "PipelineError",
        "PipelineIterator",
        "PipelineStats",
        "PipelineTask",
        "PipelineTypeError",
        "PipelineTypeWarning",
        "RayEngine",
        "RemoteStageError",
        "RunnablePipeline",
        "StageState",
        "StageStats",
        "WorkerDiedError",
        "execute",
        "register_sizeof",
        "sizeof",
    ]


def test_every_export_says_it_lives_in_the_package() -> None:
    """Tracebacks and reprs say pipeline_executor.X, not a private module."""
    for name in pipeline_executor.__all__:
        assert getattr(pipeline_executor, name).__module__ == "pipeline_executor", name


def test_every_export_and_public_method_has_a_docstring() -> None:
    """Public API is documented."""
    for name in pipeline_executor.__all__:
        obj = getattr(pipeline_executor, name)
        assert obj.__doc__, name
        for attr in vars(obj) if isinstance(obj, type) else ():
            member = getattr(obj, attr)
            if not attr.startswith("_") and callable(member):
                assert member.__doc__, f"{name}.{attr}"


def test_the_package_ships_its_types() -> None:
    """py.typed is there, so type checkers read the inline types."""
    from importlib.resources import files

    assert files("pipeline_executor").joinpath("py.typed").is_file()
