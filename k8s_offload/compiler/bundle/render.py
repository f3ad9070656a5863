"""Bundle output formats: `text` (one readable line per entity), `json`, `p4rt-text`, `p4rt-bin`.

All are deterministic: the same bundle gives the same bytes.
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

from google.protobuf import text_format

from k8s_offload.compiler.bundle.model import ActionCall, Bundle, TableEntry
from k8s_offload.compiler.bundle.p4rt import write_request
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.bundle.values import format_match, format_value, json_value

if TYPE_CHECKING:
    import jinja2

FORMATS = ("text", "json", "p4rt-text", "p4rt-bin")


@cache
def _template() -> jinja2.Template:
    import jinja2  # only the text format needs it

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("k8s_offload.compiler", "templates"),
        autoescape=False,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("bundle.txt.j2")


def _action_text(schema: Schema, call: ActionCall) -> str:
    act = schema.action(call.name)
    widths = {p.name: p.bitwidth for p in act.params}
    args = ", ".join(f"{n}={format_value(n, widths[n], v)}" for n, v in call.params)
    return f"{act.alias}({args})"


def _entry_action_text(schema: Schema, e: TableEntry) -> str:
    if e.action is not None:
        return _action_text(schema, e.action)
    if e.member_id is not None:
        return f"member {e.member_id}"
    return f"group {e.group_id}"


def to_text(schema: Schema, bundle: Bundle) -> str:
    entries: list[dict[str, object]] = []
    width = 0
    for e in bundle.entries:
        info = schema.table(e.table)
        width = max(width, len(info.alias))
        match = " ".join(
            f"{name.rsplit('.', 1)[-1]}={format_match(name, info.field(name).bitwidth, m)}"
            for name, m in e.match
        )
        entries.append(
            {
                "table": info.alias,
                "default": e.is_default,
                "match": match,
                "priority": e.priority,
                "action": _entry_action_text(schema, e),
                "origin": ", ".join(e.origin),
            }
        )
    members = [
        {
            "profile": schema.profile(m.profile).alias,
            "id": m.member_id,
            "action": _action_text(schema, m.action),
            "origin": ", ".join(m.origin),
        }
        for m in bundle.members
    ]
    groups = [
        {
            "profile": schema.profile(g.profile).alias,
            "id": g.group_id,
            "max_size": g.max_size,
            "members": ", ".join(str(mid) if w == 1 else f"{mid}x{w}" for mid, w in g.members),
            "origin": ", ".join(g.origin),
        }
        for g in bundle.groups
    ]
    return _template().render(members=members, groups=groups, entries=entries, width=width)


def _action_json(schema: Schema, call: ActionCall) -> dict[str, Any]:
    act = schema.action(call.name)
    widths = {p.name: p.bitwidth for p in act.params}
    return {"name": call.name, "params": {n: json_value(n, widths[n], v) for n, v in call.params}}


def to_json_obj(schema: Schema, bundle: Bundle) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for e in bundle.entries:
        info = schema.table(e.table)
        match: dict[str, Any] = {}
        for name, m in e.match:
            width = info.field(name).bitwidth
            kind = type(m).__name__.lower()
            match[name] = {kind: format_match(name, width, m)}
        item: dict[str, Any] = {"table": e.table}
        if e.is_default:
            item["default"] = True
        else:
            item["match"] = match
        if e.priority:
            item["priority"] = e.priority
        if e.action is not None:
            item["action"] = _action_json(schema, e.action)
        elif e.member_id is not None:
            item["member_id"] = e.member_id
        else:
            item["group_id"] = e.group_id
        item["origin"] = list(e.origin)
        entries.append(item)
    return {
        "members": [
            {
                "profile": m.profile,
                "member_id": m.member_id,
                "action": _action_json(schema, m.action),
                "origin": list(m.origin),
            }
            for m in bundle.members
        ],
        "groups": [
            {
                "profile": g.profile,
                "group_id": g.group_id,
                "max_size": g.max_size,
                "members": [{"member_id": mid, "weight": w} for mid, w in g.members],
                "origin": list(g.origin),
            }
            for g in bundle.groups
        ],
        "entries": entries,
    }


def render(schema: Schema, bundle: Bundle, fmt: str) -> bytes:
    if fmt == "text":
        return to_text(schema, bundle).encode()
    if fmt == "json":
        return (json.dumps(to_json_obj(schema, bundle), indent=2, sort_keys=False) + "\n").encode()
    if fmt == "p4rt-text":
        return text_format.MessageToString(write_request(schema, bundle)).encode()
    if fmt == "p4rt-bin":
        data: bytes = write_request(schema, bundle).SerializeToString(deterministic=True)
        return data
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
