"""The item-size estimate, type by type; and the memory budget, its sources and its split."""

from __future__ import annotations

import array
import importlib
import sys
import types
from typing import Any, cast

import pytest

from pipeline_executor import AutoBuffer, PipelineDefinitionError, register_sizeof, sizeof
from pipeline_executor._budget import (
    BUFFER_CAP,
    ENVIRONMENT_VARIABLE,
    Budget,
    memory_limit,
    parse_bytes,
    run_budget,
    split_budget,
)

MIB = 1 << 20


def test_bytes_and_bytearray_count_their_length() -> None:
    """bytes and bytearray: len."""
    assert sizeof(b"x" * 1000) == 1000
    assert sizeof(bytearray(MIB)) == MIB


def test_str_counts_its_characters_and_header() -> None:
    """str: sys.getsizeof, which includes the characters."""
    text = "y" * 1000
    assert sizeof(text) == sys.getsizeof(text) > 1000


def test_a_memoryview_slice_counts_what_it_keeps_alive() -> None:
    """A slice of a memoryview keeps its whole exporter alive."""
    assert sizeof(memoryview(bytearray(10 * MIB))[:10]) == 10 * MIB


def test_array_array_counts_its_items() -> None:
    """array.array: itemsize x len."""
    assert sizeof(array.array("d", [1.0] * 1000)) == 8000


def test_numpy_arrays_count_the_root_buffer() -> None:
    """A view counts the array it keeps alive; a broadcast array what it was made from."""
    np = pytest.importorskip("numpy")
    big = np.ones(MIB // 8)
    assert sizeof(big) == MIB
    assert sizeof(big[:10]) == MIB
    assert sizeof(big[::2][:3]) == MIB
    assert sizeof(np.broadcast_to(1.0, (10**7,))) == 8


def test_torch_tensors_count_their_storage() -> None:
    """A tensor, a view of it and an expand count the storage, not getsizeof's 80 bytes."""
    torch = pytest.importorskip("torch")
    tensor = torch.ones(MIB // 4)
    assert sizeof(tensor) == MIB
    assert sizeof(tensor[:10]) == MIB
    assert sizeof(torch.ones(1).expand(10**7)) == 4


def test_pil_images_count_their_decoded_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PIL image: width x height x bands x bytes per band (PIL itself or a stand-in)."""
    try:
        new: Any = importlib.import_module("PIL.Image").new
    except ImportError:  # the dispatch is by module and class name: a stand-in shows it

        class FakeImage:
            def __init__(self, mode: str, size: tuple[int, int]) -> None:
                self.mode, (self.width, self.height) = mode, size

            def getbands(self) -> tuple[str, ...]:
                return tuple(self.mode) if self.mode != "I;16" else ("I",)

        module = types.ModuleType("PIL.Image")
        module.Image = FakeImage  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "PIL.Image", module)
        new = FakeImage
    assert sizeof(new("RGB", (1920, 1080))) == 1920 * 1080 * 3
    assert sizeof(new("I;16", (100, 100))) == 100 * 100 * 2


def test_containers_are_sampled_and_scaled() -> None:
    """A list or dict of alike elements is within 25% of their exact sum, from a sample."""
    rows = [b"z" * 1000 for _ in range(1000)]
    exact = sys.getsizeof(rows) + 1000 * 1000
    assert 0.75 * exact <= sizeof(rows) <= 1.25 * exact
    table = dict.fromkeys(range(1000), b"z" * 1000)
    exact = sys.getsizeof(table) + sum(sys.getsizeof(i) + 1000 for i in table)
    assert 0.75 * exact <= sizeof(table) <= 1.25 * exact
    assert sizeof({"image": bytes(MIB), "label": 3}) >= MIB


def test_the_estimate_is_deterministic() -> None:
    """The same object gives the same estimate (the sample is evenly spaced, not random)."""
    rows: list[object] = [bytes(i) for i in range(5000)]
    assert len({sizeof(rows) for _ in range(5)}) == 1


def test_an_unknown_object_counts_getsizeof_or_its_nbytes() -> None:
    """Anything else: an int nbytes if it has one, else sys.getsizeof."""

    class Plain:
        pass

    class WithNbytes:
        nbytes = 12345

    plain = Plain()
    assert sizeof(plain) == sys.getsizeof(plain)
    assert sizeof(WithNbytes()) == 12345


class Frame:
    def __init__(self, pixels: bytes) -> None:
        self.pixels = pixels


class ColourFrame(Frame):
    pass


def test_a_registered_type_and_its_subclasses_use_its_function() -> None:
    """register_sizeof teaches the estimate a type, subclasses included."""
    register_sizeof(Frame, lambda frame: len(frame.pixels))
    assert sizeof(Frame(bytes(5000))) == 5000
    assert sizeof(ColourFrame(bytes(7000))) == 7000


def test_a_registered_function_returning_a_non_size_is_a_type_error() -> None:
    """A registered function must return an int >= 0."""

    class Bad:
        pass

    def bad(item: Bad) -> Any:
        return "big"

    register_sizeof(Bad, bad)
    with pytest.raises(
        TypeError,
        match=r"^the sizeof function registered for .*Bad returned 'big'; "
        r"expected an int >= 0$",
    ):
        sizeof(Bad())


def test_register_sizeof_checks_its_arguments() -> None:
    """A non-type or a non-callable is a TypeError."""
    not_a_type: Any = 3
    with pytest.raises(TypeError, match=r"^register_sizeof: cls must be a type, got 3$"):
        register_sizeof(not_a_type, len)
    with pytest.raises(TypeError, match=r"^register_sizeof: fn must be callable, got 'x'$"):
        register_sizeof(Frame, cast("Any", "x"))


# -- the budget ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1), ("4096", 4096), ("512MiB", 512 * MIB), ("2GB", 2 * 10**9), ("1.5 GiB", 1536 * MIB),
     (0.25, 256 * MIB), ("0.5", 512 * MIB)],
)  # fmt: skip
def test_a_budget_is_bytes_or_a_fraction_of_the_limit(value: object, expected: int) -> None:
    """An int, a size with a unit, or a fraction 0 < f <= 1 of the memory limit."""
    assert parse_bytes(value, "run", "memory_budget", limit=1024 * MIB) == expected


@pytest.mark.parametrize("value", [0, -5, True, "lots", "12XB", 2.0, float("nan"), None])
def test_a_bad_budget_is_a_definition_error(value: object) -> None:
    """Anything else names the option and the value."""
    with pytest.raises(
        PipelineDefinitionError,
        match=r"^run: memory_budget must be a number of bytes >= 1 \(an int, or a string such "
        r"as '512MiB'\) or a fraction 0 < f <= 1 of the memory limit, got ",
    ):
        parse_bytes(value, "run", "memory_budget", limit=1024 * MIB)


def test_the_budget_comes_from_the_run_then_the_environment_then_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """memory_budget= wins over the environment variable, which wins over 25% of the limit."""
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    default = run_budget(None)
    assert default.default
    assert default.total == memory_limit() // 4
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "64MiB")
    assert run_budget(None) == Budget(64 * MIB, f"{ENVIRONMENT_VARIABLE}=64MiB", default=False)
    assert run_budget("1MiB").total == MIB
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "much")
    with pytest.raises(PipelineDefinitionError, match=rf"^{ENVIRONMENT_VARIABLE}: its value"):
        run_budget(None)


def test_the_memory_limit_is_at_most_physical_memory() -> None:
    """The least of RAM, the cgroup limit and RLIMIT_RSS: never above RAM."""
    import os

    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < memory_limit() <= physical


def test_own_budgets_come_first_and_the_rest_is_shared() -> None:
    """max_bytes is taken first; the other auto buffers share the rest; fixed ones get none."""
    budget = Budget(100 * MIB, "test", default=False)
    buffers: list[object] = [AutoBuffer(), 16, AutoBuffer(max_bytes=40 * MIB), AutoBuffer(), None]
    assert split_budget(budget, buffers) == [30 * MIB, None, 40 * MIB, 30 * MIB, None]


def test_a_default_budget_gives_each_buffer_at_most_the_cap() -> None:
    """Under the default budget, a buffer's share is at most 256 MiB."""
    budget = Budget(64 << 30, "25% of 256 GiB", default=True)
    assert split_budget(budget, [AutoBuffer(), AutoBuffer()]) == [BUFFER_CAP, BUFFER_CAP]
