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
    act = schema.action(call.name)
    msg = p4r.Action(action_id=act.id)
    ids = {p.name: p.id for p in act.params}
    for name, value in call.params:
        msg.params.add(param_id=ids[name], value=encode(value))
    return msg


def table_entry_message(schema: Schema, entry: TableEntry) -> Any:
    info = schema.table(entry.table)
    msg = p4r.TableEntry(table_id=info.id, priority=entry.priority, is_default_action=entry.is_default)
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
        msg.action.action.CopyFrom(action_message(schema, entry.action))
    elif entry.member_id is not None:
        msg.action.action_profile_member_id = entry.member_id
    elif entry.group_id is not None:
        msg.action.action_profile_group_id = entry.group_id
    return msg


def member_message(schema: Schema, member: ProfileMember) -> Any:
    prof = schema.profile(member.profile)
    msg = p4r.ActionProfileMember(action_profile_id=prof.id, member_id=member.member_id)
    msg.action.CopyFrom(action_message(schema, member.action))
    return msg


def group_message(schema: Schema, group: ProfileGroup) -> Any:
    prof = schema.profile(group.profile)
    msg = p4r.ActionProfileGroup(action_profile_id=prof.id, group_id=group.group_id, max_size=group.max_size)
    for member_id, weight in group.members:
        msg.members.add(member_id=member_id, weight=weight)
    return msg


def updates(schema: Schema, bundle: Bundle, kind: int = p4r.Update.INSERT) -> list[Any]:
    """Updates in dependency order (members, groups, entries); default entries are MODIFYs."""
    out: list[Any] = []
    for m in bundle.members:
        u = p4r.Update(type=kind)
        u.entity.action_profile_member.CopyFrom(member_message(schema, m))
        out.append(u)
    for g in bundle.groups:
        u = p4r.Update(type=kind)
        u.entity.action_profile_group.CopyFrom(group_message(schema, g))
        out.append(u)
    for e in bundle.entries:
        u = p4r.Update(type=p4r.Update.MODIFY if e.is_default else kind)
        u.entity.table_entry.CopyFrom(table_entry_message(schema, e))
        out.append(u)
    return out


def write_request(schema: Schema, bundle: Bundle, device_id: int = 1) -> Any:
    """The whole bundle as one WriteRequest (what `--format p4rt-text|p4rt-bin` prints)."""
    req = p4r.WriteRequest(device_id=device_id)
    req.updates.extend(updates(schema, bundle))
    return req
