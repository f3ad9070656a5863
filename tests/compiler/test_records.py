"""`fast_init`: the same objects as the dataclass's own `__init__`, only built quicker."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import InitVar, dataclass, field
from typing import Any

import pytest

from k8s_offload.compiler.bundle.model import Exact, TableEntry
from k8s_offload.compiler.ir.model import PodEndpoint
from k8s_offload.compiler.records import fast_init


@dataclass(frozen=True, slots=True)
class _Plain:
    a: int
    b: str = "x"
    c: tuple[int, ...] = field(default=(), compare=False)
    d: int = field(default=3, kw_only=True)
    e: int = field(default=7, init=False)


@fast_init
@dataclass(frozen=True, slots=True)
class _Fast:
    """`_Plain` again, built by `fast_init`."""

    a: int
    b: str = "x"
    c: tuple[int, ...] = field(default=(), compare=False)
    d: int = field(default=3, kw_only=True)
    e: int = field(default=7, init=False)


def _fields(obj: object) -> dict[str, object]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((1,), {}), ((1, "y"), {}), ((1, "y", (2,)), {"d": 9}), ((), {"a": 4, "c": (5,), "b": "z"})],
)
def test_same_fields_as_the_dataclass_init(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    assert _fields(_Fast(*args, **kwargs)) == _fields(_Plain(*args, **kwargs))


def test_signature_errors_and_frozenness_are_the_dataclass_ones() -> None:
    plain = [(p.name, p.kind, p.default) for p in inspect.signature(_Plain.__init__).parameters.values()]
    fast = [(p.name, p.kind, p.default) for p in inspect.signature(_Fast.__init__).parameters.values()]
    assert fast == plain
    with pytest.raises(TypeError):
        _Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Fast(1, "y", (), 4)  # type: ignore[call-arg]  # d is keyword-only
    obj = _Fast(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        obj.a = 2  # type: ignore[misc]
    assert obj == _Fast(1, c=(9,)) and hash(obj) == hash(_Fast(1, c=(9,)))
    assert pickle.loads(pickle.dumps(obj)) == obj


def test_compiler_records_use_it_and_post_init_still_runs() -> None:
    assert TableEntry.__init__.__module__ == TableEntry.__module__
    assert Exact.__init__.__qualname__ == "Exact.__init__"
    entry = TableEntry("t", (("f", Exact(5)),), origin=("Pod a/b",))
    assert (entry.table, entry.match, entry.action, entry.priority, entry.origin) == (
        "t",
        (("f", Exact(5)),),
        None,
        0,
        ("Pod a/b",),
    )
    pod = PodEndpoint(None, (), None, None, "n", False, None, None, ())  # type: ignore[arg-type]
    assert pod.ips == ()  # computed by __post_init__


def test_refuses_what_it_cannot_reproduce() -> None:
    @dataclass(frozen=True, slots=True)
    class WithFactory:
        a: list[int] = field(default_factory=list)

    @dataclass(slots=True)
    class Mutable:
        a: int

    with pytest.raises(TypeError, match="default_factory"):
        fast_init(WithFactory)
    with pytest.raises(TypeError, match="frozen"):
        fast_init(Mutable)

    @dataclass(frozen=True, slots=True)
    class WithInitVar:
        a: int
        b: InitVar[int] = 0

    with pytest.raises(TypeError, match="cannot reproduce"):
        fast_init(WithInitVar)
