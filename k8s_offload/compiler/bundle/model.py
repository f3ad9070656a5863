"""The entities of a bundle, in P4Info names, with the Kubernetes objects they come from."""

from __future__ import annotations

from dataclasses import dataclass

from k8s_offload.compiler.records import fast_init


@fast_init
@dataclass(frozen=True, slots=True)
class Exact:
    value: int


@fast_init
@dataclass(frozen=True, slots=True)
class Lpm:
    value: int
    prefix_len: int


@fast_init
@dataclass(frozen=True, slots=True)
class Ternary:
    value: int
    mask: int


@fast_init
@dataclass(frozen=True, slots=True)
class Range:
    low: int
    high: int


@fast_init
@dataclass(frozen=True, slots=True)
class Optional:
    value: int


Match = Exact | Lpm | Ternary | Range | Optional


@fast_init
@dataclass(frozen=True, slots=True)
class ActionCall:
    """An action by P4Info name with its parameters in declaration order."""

    name: str
    params: tuple[tuple[str, int], ...] = ()


@fast_init
@dataclass(frozen=True, slots=True)
class TableEntry:
    """One table entry. Don't-care fields are absent from `match`, as P4Runtime requires.

    Exactly one of `action`, `member_id`, `group_id` is set. `origin` names the Kubernetes objects
    (or node facts) that made the entry, so device errors can be traced back to them.
    """

    table: str
    match: tuple[tuple[str, Match], ...]
    action: ActionCall | None = None
    member_id: int | None = None
    group_id: int | None = None
    priority: int = 0
    is_default: bool = False
    origin: tuple[str, ...] = ()


@fast_init
@dataclass(frozen=True, slots=True)
class ProfileMember:
    profile: str
    member_id: int
    action: ActionCall
    origin: tuple[str, ...] = ()


@fast_init
@dataclass(frozen=True, slots=True)
class ProfileGroup:
    profile: str
    group_id: int
    members: tuple[tuple[int, int], ...]  # (member_id, weight), sorted by member_id
    max_size: int
    origin: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Bundle:
    """Everything for one device, in dependency order: members, groups, then table entries."""

    members: tuple[ProfileMember, ...] = ()
    groups: tuple[ProfileGroup, ...] = ()
    entries: tuple[TableEntry, ...] = ()

    def counts(self) -> dict[str, int]:
        """Entities per table and profile, for the summary line and capacity checks."""
        out: dict[str, int] = {}
        for m in self.members:
            key = f"{m.profile} (members)"
            out[key] = out.get(key, 0) + 1
        for g in self.groups:
            key = f"{g.profile} (groups)"
            out[key] = out.get(key, 0) + 1
        for e in self.entries:
            if not e.is_default:
                out[e.table] = out.get(e.table, 0) + 1
        return out


def match_values(m: Match) -> tuple[int, ...]:
    """The numbers a match is made of, for ordering entries deterministically."""
    # Exact types first: this runs for every key of every entry when the bundle is sorted.
    if type(m) is Exact:
        return (m.value,)
    if type(m) is Lpm:
        return (m.value, m.prefix_len)
    if type(m) is Range:
        return (m.low, m.high)
    if isinstance(m, Exact | Optional):
        return (m.value,)
    if isinstance(m, Lpm):
        return (m.value, m.prefix_len)
    if isinstance(m, Ternary):
        return (m.value, m.mask)
    return (m.low, m.high)
