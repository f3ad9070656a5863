"""`--format p4rt-ctl`: the bundle as the command lines of IPDK's `p4rt-ctl` (networking recipe,
clients/p4rt-ctl), replayable in order: members, then groups, then entries and defaults.

p4rt-ctl reads a flow as comma-separated `field=value` pairs and takes each pair's match kind
from the switch's P4Info: `v` exact, `v/len` LPM (a decimal length), `v/mask` ternary, and for a
range field `low/high`; `priority=N` comes after the key and before `action=NAME(p,...)`
(positional parameters, in declaration order; a bare `NAME` without any), or `member_id=N` /
`group_id=N` for a table with an action profile (which takes no priority). Default actions are
`set-default-entry SWITCH TABLE NAME(p,...)`. Every number is written in hex (`0x...`, which
p4rt-ctl reads for keys and parameters alike) so that no value is mistaken for a decimal prefix
length or an address form.

What p4rt-ctl cannot say is refused (BundleError, exit 1 at the command line) rather than
written wrongly: member weights other than 1 (it has no weight syntax), member or group id 0 (it
rejects them), an entry with no key field at all (its parser needs one before `priority=` or
`action=`), `optional` keys, and a priority on a table with an action profile.
"""

from __future__ import annotations

from k8s_offload.compiler.bundle.model import (
    ActionCall,
    Bundle,
    Exact,
    Lpm,
    Match,
    Range,
    TableEntry,
    Ternary,
)
from k8s_offload.compiler.bundle.schema import BundleError, Schema

__all__ = ["DEFAULT_BRIDGE", "to_p4rt_ctl"]

DEFAULT_BRIDGE = "br0"


def _hex(value: int) -> str:
    return f"0x{value:x}"


def _match(table: str, field: str, m: Match) -> str:
    if isinstance(m, Exact):
        return f"{field}={_hex(m.value)}"
    if isinstance(m, Lpm):
        return f"{field}={_hex(m.value)}/{m.prefix_len}"
    if isinstance(m, Ternary):
        return f"{field}={_hex(m.value)}/{_hex(m.mask)}"
    if isinstance(m, Range):
        return f"{field}={_hex(m.low)}/{_hex(m.high)}"
    raise BundleError(f"table {table}: p4rt-ctl has no syntax for the {type(m).__name__.lower()} key {field}")


def _action(schema: Schema, call: ActionCall) -> str:
    values = dict(call.params)
    declared = [p.name for p in schema.action(call.name).params]
    missing = [n for n in declared if n not in values]
    if missing:
        raise BundleError(f"action {call.name}: no value for parameter(s) {', '.join(missing)}")
    if not declared:  # p4rt-ctl reads `NAME()` as one empty parameter and fails on it
        return call.name
    return f"{call.name}({','.join(_hex(values[n]) for n in declared)})"


def _entry(schema: Schema, bridge: str, e: TableEntry) -> str:
    if e.is_default:
        if e.action is None:
            raise BundleError(f"table {e.table}: a default entry needs an action")
        return f'p4rt-ctl set-default-entry {bridge} {e.table} "{_action(schema, e.action)}"\n'
    if not e.match:
        raise BundleError(f"table {e.table}: p4rt-ctl cannot write an entry without a key field")
    parts = [_match(e.table, field, m) for field, m in e.match]
    if e.action is not None:
        if e.priority:
            parts.append(f"priority={e.priority}")
        parts.append(f"action={_action(schema, e.action)}")
    else:
        if e.priority:
            raise BundleError(f"table {e.table}: p4rt-ctl takes no priority with a member or group")
        ref = ("member_id", e.member_id) if e.member_id is not None else ("group_id", e.group_id)
        if not ref[1]:
            raise BundleError(f"table {e.table}: p4rt-ctl rejects {ref[0]} 0")
        parts.append(f"{ref[0]}={ref[1]}")
    return f'p4rt-ctl add-entry {bridge} {e.table} "{",".join(parts)}"\n'


def to_p4rt_ctl(schema: Schema, bundle: Bundle, bridge: str = DEFAULT_BRIDGE) -> str:
    """One `p4rt-ctl` command per line, in the bundle's dependency order."""
    lines: list[str] = []
    for m in bundle.members:
        if m.member_id == 0:
            raise BundleError(f"action profile {m.profile}: p4rt-ctl rejects member_id 0")
        lines.append(
            f"p4rt-ctl add-action-profile-member {bridge} {m.profile} "
            f'"action={_action(schema, m.action)},member_id={m.member_id}"\n'
        )
    for g in bundle.groups:
        if g.group_id == 0:
            raise BundleError(f"action profile {g.profile}: p4rt-ctl rejects group_id 0")
        weighted = [f"{mid}x{w}" for mid, w in g.members if w != 1]
        if weighted:
            raise BundleError(
                f"action profile {g.profile} group {g.group_id}: p4rt-ctl has no member weights "
                f"({', '.join(weighted)})"
            )
        members = ",".join(str(mid) for mid, _ in g.members)
        lines.append(
            f"p4rt-ctl add-action-profile-group {bridge} {g.profile} "
            f'"group_id={g.group_id},reference_members=({members}),max_size={g.max_size}"\n'
        )
    lines.extend(_entry(schema, bridge, e) for e in bundle.entries)
    return "".join(lines)
