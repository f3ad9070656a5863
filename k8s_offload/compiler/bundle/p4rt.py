"""A bundle as P4Runtime messages: ids from P4Info, values as canonical bytestrings (spec §8.4)."""

from __future__ import annotations

from typing import Any

from k8s_offload.compiler.bundle.model import (
    ActionCall,
    Bundle,
    Exact,
    Lpm,
    Optional,
    ProfileGroup,
    ProfileMember,
    Range,
    TableEntry,
    Ternary,
)
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.p4rt.proto import p4runtime as p4r


def encode(value: int) -> bytes:
    """Canonical P4Runtime bytestring: big-endian, no leading zero bytes, at least one byte."""
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def action_message(schema: Schema, call: ActionCall) -> Any:
    msg = p4r.Action()
    _fill_action(msg, schema, call)
    return msg


def _fill_action(msg: Any, schema: Schema, call: ActionCall) -> None:
    act = schema.action(call.name)
    msg.action_id = act.id
    ids = {p.name: p.id for p in act.params}
    for name, value in call.params:
        msg.params.add(param_id=ids[name], value=encode(value))


def table_entry_message(schema: Schema, entry: TableEntry) -> Any:
    msg = p4r.TableEntry()
    _fill_table_entry(msg, schema, entry)
    return msg


def _fill_table_entry(msg: Any, schema: Schema, entry: TableEntry) -> None:
    """Fill a TableEntry message in place (a bundle's updates are built inside the request)."""
    info = schema.table(entry.table)
    msg.table_id = info.id
    if entry.priority:
        msg.priority = entry.priority
    if entry.is_default:
        msg.is_default_action = True
    for name, m in entry.match:
        f = info.field(name)
        fm = msg.match.add(field_id=f.id)
        if isinstance(m, Exact):
            fm.exact.value = encode(m.value)
        elif isinstance(m, Lpm):
            fm.lpm.value = encode(m.value)
            fm.lpm.prefix_len = m.prefix_len
        elif isinstance(m, Ternary):
            fm.ternary.value = encode(m.value)
            fm.ternary.mask = encode(m.mask)
        elif isinstance(m, Range):
            fm.range.low = encode(m.low)
            fm.range.high = encode(m.high)
        elif isinstance(m, Optional):
            fm.optional.value = encode(m.value)
    if entry.action is not None:
        _fill_action(msg.action.action, schema, entry.action)
    elif entry.member_id is not None:
        msg.action.action_profile_member_id = entry.member_id
    elif entry.group_id is not None:
        msg.action.action_profile_group_id = entry.group_id


def member_message(schema: Schema, member: ProfileMember) -> Any:
    msg = p4r.ActionProfileMember()
    _fill_member(msg, schema, member)
    return msg


def _fill_member(msg: Any, schema: Schema, member: ProfileMember) -> None:
    msg.action_profile_id = schema.profile(member.profile).id
    msg.member_id = member.member_id
    _fill_action(msg.action, schema, member.action)


def group_message(schema: Schema, group: ProfileGroup) -> Any:
    msg = p4r.ActionProfileGroup()
    _fill_group(msg, schema, group)
    return msg


def _fill_group(msg: Any, schema: Schema, group: ProfileGroup) -> None:
    msg.action_profile_id = schema.profile(group.profile).id
    msg.group_id = group.group_id
    msg.max_size = group.max_size
    for member_id, weight in group.members:
        msg.members.add(member_id=member_id, weight=weight)


def _fill_updates(out: Any, schema: Schema, bundle: Bundle, kind: int) -> None:
    """Updates in dependency order (members, groups, entries); default entries are MODIFYs."""
    for m in bundle.members:
        _fill_member(out.add(type=kind).entity.action_profile_member, schema, m)
    for g in bundle.groups:
        _fill_group(out.add(type=kind).entity.action_profile_group, schema, g)
    modify = p4r.Update.MODIFY
    for e in bundle.entries:
        _fill_table_entry(out.add(type=modify if e.is_default else kind).entity.table_entry, schema, e)


def updates(schema: Schema, bundle: Bundle, kind: int = p4r.Update.INSERT) -> list[Any]:
    """Updates in dependency order (members, groups, entries); default entries are MODIFYs."""
    req = p4r.WriteRequest()
    _fill_updates(req.updates, schema, bundle, kind)
    return list(req.updates)


def write_request(schema: Schema, bundle: Bundle, device_id: int = 1) -> Any:
    """The whole bundle as one WriteRequest (what `--format p4rt-text|p4rt-bin` prints), its
    updates built in place (building each apart and copying it in cost as much again)."""
    req = p4r.WriteRequest(device_id=device_id)
    _fill_updates(req.updates, schema, bundle, p4r.Update.INSERT)
    return req
