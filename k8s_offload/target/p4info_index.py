"""P4Info read once into id-keyed lookups, so validating an update is dictionary work.

Only what a P4Runtime server checks is kept: tables (keys, action refs and scopes, size,
implementation), actions (params and widths), action profiles, counters and registers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from k8s_offload.p4rt.proto import p4info

__all__ = ["ActionInfo", "KeyField", "P4InfoIndex", "ProfileInfo", "TableInfo"]

EXACT = "exact"
LPM = "lpm"
TERNARY = "ternary"
RANGE = "range"
OPTIONAL = "optional"

_MATCH_KINDS = {
    p4info.MatchField.EXACT: EXACT,
    p4info.MatchField.LPM: LPM,
    p4info.MatchField.TERNARY: TERNARY,
    p4info.MatchField.RANGE: RANGE,
    p4info.MatchField.OPTIONAL: OPTIONAL,
}


@dataclass(frozen=True, slots=True)
class KeyField:
    """One match field: its P4Info id, name, width and match kind (one of the constants above)."""

    id: int
    name: str
    bitwidth: int
    kind: str


@dataclass(frozen=True, slots=True)
class ActionInfo:
    id: int
    name: str
    params: dict[int, tuple[str, int]]  # param id -> (name, bitwidth), in declaration order
    param_ids: tuple[int, ...] = field(init=False)  # the keys of `params`, in that order
    param_specs: tuple[tuple[int, str, int], ...] = field(init=False)  # (id, name, bitwidth), in order

    def __post_init__(self) -> None:
        object.__setattr__(self, "param_ids", tuple(self.params))
        object.__setattr__(self, "param_specs", tuple((p, n, w) for p, (n, w) in self.params.items()))


@dataclass(slots=True)
class TableInfo:
    id: int
    name: str
    keys: tuple[KeyField, ...]
    actions: dict[int, int]  # action id -> p4info ActionRef scope
    size: int
    implementation_id: int  # 0 for a direct table
    initial_default: tuple[int, tuple[int, ...]] | None  # (action id, args in param order)
    const_default: bool
    needs_priority: bool = field(init=False)
    # Derived once, so checking a write is dictionary work: match field id -> key position, and
    # the names errors give (only formatted when an update is rejected).
    positions: dict[int, int] = field(init=False)
    where: str = field(init=False)
    key_what: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.needs_priority = any(k.kind in (TERNARY, RANGE, OPTIONAL) for k in self.keys)
        self.positions = {k.id: i for i, k in enumerate(self.keys)}
        self.where = f"table {self.name!r}"
        self.key_what = tuple(f"table {self.name!r} match field {k.name!r}" for k in self.keys)


@dataclass(frozen=True, slots=True)
class ProfileInfo:
    id: int
    name: str
    table_ids: tuple[int, ...]
    with_selector: bool
    size: int
    max_group_size: int  # 0: no limit beyond size


class P4InfoIndex:
    """Id-keyed views of one P4Info message."""

    def __init__(self, info: Any) -> None:
        self.p4info = info
        self.actions: dict[int, ActionInfo] = {}
        for action in info.actions:
            params = {p.id: (p.name, p.bitwidth) for p in action.params}
            self.actions[action.preamble.id] = ActionInfo(action.preamble.id, action.preamble.name, params)
        self.tables: dict[int, TableInfo] = {}
        for table in info.tables:
            keys = tuple(
                KeyField(m.id, m.name, m.bitwidth, _MATCH_KINDS.get(m.match_type, "other"))
                for m in table.match_fields
            )
            initial = None
            if table.HasField("initial_default_action"):
                call = table.initial_default_action
                args = {a.param_id: int.from_bytes(a.value, "big") for a in call.arguments}
                order = self.actions[call.action_id].params if call.action_id in self.actions else {}
                initial = (call.action_id, tuple(args.get(pid, 0) for pid in order))
            self.tables[table.preamble.id] = TableInfo(
                id=table.preamble.id,
                name=table.preamble.name,
                keys=keys,
                actions={ref.id: ref.scope for ref in table.action_refs},
                size=table.size,
                implementation_id=table.implementation_id,
                initial_default=initial,
                const_default=table.const_default_action_id != 0,
            )
        self.profiles: dict[int, ProfileInfo] = {
            p.preamble.id: ProfileInfo(
                p.preamble.id, p.preamble.name, tuple(p.table_ids), p.with_selector, p.size, p.max_group_size
            )
            for p in info.action_profiles
        }
        # Profile id -> the actions its members may run: those of every table it implements.
        self.profile_actions: dict[int, dict[int, int]] = {}
        for pid, prof in self.profiles.items():
            allowed: dict[int, int] = {}
            for tid in prof.table_ids:
                allowed.update(self.tables[tid].actions if tid in self.tables else {})
            self.profile_actions[pid] = allowed
        self.counters: dict[int, tuple[str, int, int]] = {
            c.preamble.id: (c.preamble.name, c.size, c.spec.unit) for c in info.counters
        }
        self.registers: dict[int, tuple[str, int, int]] = {
            r.preamble.id: (r.preamble.name, r.size, r.type_spec.bitstring.bit.bitwidth)
            for r in info.registers
        }
        self.names = {t.name: t.id for t in self.tables.values()}
        self.names.update({a.name: a.id for a in self.actions.values()})
        self.names.update({p.name: p.id for p in self.profiles.values()})
        self.names.update({n: i for i, (n, _, _) in self.counters.items()})
        self.names.update({n: i for i, (n, _, _) in self.registers.items()})

    def id_of(self, name: str) -> int:
        """The id of a table, action, profile, counter or register by its P4Info name (or alias)."""
        if name in self.names:
            return self.names[name]
        for full, ident in self.names.items():
            if full.rsplit(".", 1)[-1] == name:
                return ident
        raise KeyError(name)
