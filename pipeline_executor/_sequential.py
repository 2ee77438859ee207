"""The sequential mode: every stage in the caller's thread, lazily chained, no threads at all.

For debugging (a breakpoint in a stage just works, a traceback runs through every stage) and
for the seed's ``parallelism="coroutine"``. Each stage's generator is called with the previous
one's as its input; pulling an item from the last pulls it through every stage. The promises
that do not need concurrency hold: the failing stage is named in a note on its own exception,
and every stage's generator is closed (its ``finally`` runs) before the caller gets control
back, last stage first. ``threads``, ``processes`` and ``buffer`` are ignored: one instance of
each stage runs, and nothing is buffered.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import cast

from ._errors import add_note
from ._stages import Role, StageSpec

__all__ = ["iterate", "run"]


class _Chain:
    """The stages' generators of one sequential run, and which exceptions were named."""

    def __init__(self, stages: Sequence[StageSpec]) -> None:
        self.stages = stages
        self.opened: list[Iterator[object]] = []
        self.named: set[int] = set()  # ids of exceptions already given a stage note

    def build(self) -> Iterator[object] | None:
        """Chain every stage but a sink; the last one's items (``None``: no stage)."""
        items: Iterator[object] | None = None
        for stage in self.stages:
            if stage.role is Role.SINK:
                break
            call = stage.args if items is None else (items, *stage.args)
            produced = self.call(stage, call)
            iterator = iter(cast("Iterable[object]", produced))
            self.opened.append(iterator)
            items = self._named(stage, iterator)
        return items

    def _named(self, stage: StageSpec, iterator: Iterator[object]) -> Iterator[object]:
        """``iterator``'s items; an exception from its stage's own code gets the stage's note
        (the innermost stage it passes through is the one that raised it)."""
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except BaseException as exc:
                self._note(exc, stage)
                raise
            yield item

    def call(self, stage: StageSpec, args: tuple[object, ...]) -> object:
        """``stage``'s function called with ``args`` and its constants, the failure named."""
        try:
            return stage.fn(*args, **stage.kwargs)
        except BaseException as exc:
            self._note(exc, stage)
            raise

    def _note(self, exc: BaseException, stage: StageSpec) -> None:
        if id(exc) not in self.named:
            self.named.add(id(exc))
            add_note(exc, f"pipeline_executor: raised by {stage.label} (sequential mode)")

    def close(self) -> None:
        """Close every generator, last stage first, so each ``finally`` runs now."""
        opened, self.opened = self.opened, []
        for iterator in reversed(opened):
            close = getattr(iterator, "close", None)
            if callable(close):
                close()


def iterate(stages: Sequence[StageSpec]) -> Iterator[object]:
    """The last stage's items, every stage run in this thread as they are pulled."""
    chain = _Chain(stages)
    try:
        items = chain.build()
        assert items is not None
        yield from items
    finally:
        chain.close()


def run(stages: Sequence[StageSpec]) -> object:
    """Run every stage in this thread and return what the sink returned."""
    chain = _Chain(stages)
    try:
        items = chain.build()
        sink = stages[-1]
        return chain.call(sink, (items, *sink.args))
    finally:
        chain.close()
