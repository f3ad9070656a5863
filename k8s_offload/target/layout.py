"""Where every field of a packet's state lives: one flat list of ints, one slot per field.

Headers get a validity slot followed by their field slots in wire order; structs are flattened
recursively; control-local variables and action parameters get slots of their own. Slot 0 holds
the per-packet context. A packet starts as a copy of `initial` (all zero, every header invalid),
which is the state bmv2 gives a fresh packet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from k8s_offload.p4 import ast

__all__ = ["HeaderSlots", "Layout"]

Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HeaderSlots:
    """A header instance: validity slot, (slot, width) of each field in wire order, size in bytes."""

    name: str
    valid: int
    fields: tuple[tuple[int, int], ...]
    nbytes: int


@dataclass(slots=True)
class Layout:
    slots: dict[Path, int] = field(default_factory=dict)
    widths: dict[int, int] = field(default_factory=dict)
    headers: dict[Path, HeaderSlots] = field(default_factory=dict)
    initial: list[Any] = field(default_factory=lambda: [None])

    def scalar(self, path: Path, width: int) -> int:
        """A fresh slot for a bit/bool value at `path` (reused if the path already has one)."""
        if path in self.slots:
            return self.slots[path]
        index = len(self.initial)
        self.initial.append(0)
        self.slots[path] = index
        self.widths[index] = width
        return index

    def add(self, path: Path, t: ast.Type) -> None:
        """Allocate slots for a value of type `t` rooted at `path`."""
        if isinstance(t, ast.HeaderType):
            valid = self.scalar((*path, "$valid"), 1)
            fields = tuple(
                (self.scalar((*path, f.name), ast.type_width(f.type)), ast.type_width(f.type))
                for f in t.fields
            )
            self.headers[path] = HeaderSlots(".".join(path), valid, fields, (t.width + 7) // 8)
        elif isinstance(t, ast.StructType):
            for f in t.fields:
                self.add((*path, f.name), f.type)
        elif isinstance(t, ast.BitsType | ast.BoolType):
            self.scalar(path, ast.type_width(t))
        elif isinstance(t, ast.EnumType):
            self.scalar(path, 32)  # error/enum values (parser_error) are stored as member indices
        else:
            raise NotImplementedError(f"{'.'.join(path)}: values of type {t} are not simulated")

    def slot(self, path: Path) -> int:
        try:
            return self.slots[path]
        except KeyError:
            raise KeyError(f"no field {'.'.join(path)}") from None
