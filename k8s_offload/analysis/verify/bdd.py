"""Binary decision diagrams over the key fields of the pipeline, on CUDD (`dd.cudd`).

Every key field of the program gets one BDD variable per bit, most significant bit first, so a
prefix or a range bound is a short path. Variable order is fixed (dynamic reordering is off):
the fields are few and their bits are consulted in the order an LPM or a comparator needs.

Cubes are built from cached 8-bit chunks: with CUDD behind a Python binding, the cost is the
number of calls, and a 128-bit address is 16 chunk ANDs instead of 128 bit ANDs.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

CHUNK = 8


class BackendMissing(RuntimeError):
    """The CUDD backend of `dd` cannot be imported; the pure-Python one is too slow to substitute."""


def load_cudd() -> Any:
    """`dd.cudd`, or a clear error: the verifier never falls back to `dd.autoref` silently."""
    try:
        return importlib.import_module("dd.cudd")
    except ImportError as exc:
        raise BackendMissing(
            "the verifier needs the CUDD backend of the `dd` package (dd.cudd), an optional extra: "
            "pip install 'k8s-offload[verify]' (or pip install 'dd==0.6.0', a binary wheel with it "
            f"on Linux x86_64, CPython 3.9-3.13) ({exc})"
        ) from exc


BDDNode = Any
"""A `dd.cudd.Function`; hashable, and equal exactly when the functions are equal."""


def short(field: str) -> str:
    """`meta.dst_addr` -> `dst_addr`: variable and counterexample names."""
    return field.rsplit(".", 1)[-1]


class Space:
    """A CUDD manager with the key fields of one program declared as bit vectors."""

    def __init__(self, fields: Iterable[tuple[str, int]]) -> None:
        cudd = load_cudd()
        self.bdd: Any = cudd.BDD()
        self.bdd.configure(reordering=False)
        self.widths: dict[str, int] = {}
        self._vars: dict[str, list[BDDNode]] = {}
        self._names: dict[str, list[str]] = {}
        self._chunks: dict[tuple[str, int, int, int], BDDNode] = {}
        for name, width in fields:
            self.add_field(name, width)
        self.true: BDDNode = self.bdd.true
        self.false: BDDNode = self.bdd.false

    def add_field(self, name: str, width: int) -> None:
        name = short(name)
        if name in self.widths:
            if self.widths[name] != width:
                raise ValueError(f"field {name} declared with widths {self.widths[name]} and {width}")
            return
        names = [f"{name}_{width - 1 - i}" for i in range(width)]  # MSB first
        self.bdd.declare(*names)
        self.widths[name] = width
        self._names[name] = names
        self._vars[name] = [self.bdd.var(n) for n in names]

    def names(self, field: str) -> list[str]:
        return self._names[short(field)]

    # -- building blocks -------------------------------------------------------------------
    def _chunk(self, field: str, index: int, value: int, mask: int) -> BDDNode:
        """Bits [index*CHUNK, ...) counted from the MSB, where `mask` is set, equal to `value`."""
        key = (field, index, value, mask)
        u = self._chunks.get(key)
        if u is None:
            bits = self._vars[field][index * CHUNK : (index + 1) * CHUNK]
            u = self.true
            n = len(bits)
            for j in range(n - 1, -1, -1):  # bottom-up: each AND adds one node
                bit = 1 << (n - 1 - j)
                if mask & bit:
                    u = u & (bits[j] if value & bit else ~bits[j])
            self._chunks[key] = u
        return u

    def masked(self, field: str, value: int, mask: int) -> BDDNode:
        """`field & mask == value & mask` (exact: full mask; LPM and ternary: their masks)."""
        field = short(field)
        width = self.widths[field]
        u = self.true
        nchunks = (width + CHUNK - 1) // CHUNK
        for index in range(nchunks - 1, -1, -1):
            lo_shift = max(width - (index + 1) * CHUNK, 0)
            size = min(CHUNK, width - index * CHUNK)
            part_mask = (mask >> lo_shift) & ((1 << size) - 1)
            if part_mask:
                part_value = (value >> lo_shift) & part_mask
                u = self._chunk(field, index, part_value, part_mask) & u
        return u

    def exact(self, field: str, value: int) -> BDDNode:
        return self.masked(field, value, (1 << self.widths[short(field)]) - 1)

    def prefix(self, field: str, value: int, prefix_len: int) -> BDDNode:
        width = self.widths[short(field)]
        mask = ((1 << prefix_len) - 1) << (width - prefix_len)
        return self.masked(field, value, mask)

    def at_least(self, field: str, low: int) -> BDDNode:
        """`field >= low`, built from the least significant bit up (one node per bit)."""
        bits = self._vars[short(field)]
        width = len(bits)
        u = self.true
        for i in range(width - 1, -1, -1):
            u = bits[i] & u if low >> width - 1 - i & 1 else bits[i] | u
        return u

    def at_most(self, field: str, high: int) -> BDDNode:
        bits = self._vars[short(field)]
        width = len(bits)
        u = self.true
        for i in range(width - 1, -1, -1):
            u = ~bits[i] | u if high >> width - 1 - i & 1 else ~bits[i] & u
        return u

    def in_range(self, field: str, low: int, high: int) -> BDDNode:
        return self.at_least(field, low) & self.at_most(field, high)

    def xor(self, u: BDDNode, v: BDDNode) -> BDDNode:
        """Where two functions differ (`dd.cudd.Function` has no `^`)."""
        return self.bdd.apply("xor", u, v)

    # -- reading results back --------------------------------------------------------------
    def support_fields(self, u: BDDNode) -> set[str]:
        return {name.rsplit("_", 1)[0] for name in self.bdd.support(u)}

    def pick(self, u: BDDNode, fields: Iterable[str]) -> dict[str, int] | None:
        """One satisfying assignment as field values (bits outside the BDD's support are 0)."""
        if u == self.false:
            return None
        fields = [short(f) for f in fields]
        care = {n for f in fields for n in self._names[f]}
        assignment = self.bdd.pick(u, care_vars=care & self.bdd.support(u)) or {}
        out: dict[str, int] = {}
        for f in fields:
            value = 0
            for n in self._names[f]:
                value = (value << 1) | int(bool(assignment.get(n, False)))
            out[f] = value
        return out

    def let(self, u: BDDNode, values: Mapping[str, int]) -> BDDNode:
        """Substitute constants for whole fields (used to test a counterexample against a BDD)."""
        sub: dict[str, bool] = {}
        for f, value in values.items():
            names = self._names[short(f)]
            width = len(names)
            for i, n in enumerate(names):
                sub[n] = bool((value >> (width - 1 - i)) & 1)
        return self.bdd.let(sub, u)

    def count_nodes(self) -> int:
        with warnings.catch_warnings():  # dd warns that the unrelated "mem" key changed units
            warnings.simplefilter("ignore")
            return int(self.bdd.statistics()["n_nodes"])


def any_of(space: Space, nodes: Iterable[BDDNode]) -> BDDNode:
    """Disjunction as a balanced tree: each OR then works on BDDs of similar size."""
    layer = list(nodes)
    if not layer:
        return space.false
    while len(layer) > 1:
        nxt = [layer[i] | layer[i + 1] for i in range(0, len(layer) - 1, 2)]
        if len(layer) % 2:
            nxt.append(layer[-1])
        layer = nxt
    return layer[0]
