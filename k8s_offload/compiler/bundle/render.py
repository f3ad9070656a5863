"""Bundle output formats: `text` (one readable line per entity), `json`, `p4rt-text`, `p4rt-bin`,
`p4rt-ctl` (IPDK's command lines, compiler/bundle/p4rtctl.py).

All are deterministic: the same bundle gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import groupby
from operator import attrgetter
from typing import Any

from google.protobuf import text_format

from k8s_offload import gcpause
from k8s_offload.compiler.bundle.model import ActionCall, Bundle, Match
from k8s_offload.compiler.bundle.p4rt import write_request
from k8s_offload.compiler.bundle.p4rtctl import DEFAULT_BRIDGE, to_p4rt_ctl
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.bundle.values import format_match, json_value, match_formatter, value_formatter

FORMATS = ("text", "json", "p4rt-text", "p4rt-bin", "p4rt-ctl")


class _Text:
    """The text format: one line per member, group and entry. What a line needs from the schema
    (aliases, each field's and parameter's formatter) is looked up once per table and action, and
    an origin shared by many entities is joined once: at size M this renders 41 MB, where the
    jinja2 template it replaced spent most of its time on lookups per value."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.tables: dict[str, tuple[str, Callable[[tuple[tuple[str, Match], ...]], str]]] = {}
        self.actions: dict[str, Callable[[tuple[tuple[str, int], ...]], str]] = {}
        self.origins: dict[int, tuple[tuple[str, ...], str]] = {}

    def table(self, name: str) -> tuple[str, Callable[[tuple[tuple[str, Match], ...]], str]]:
        """A table's alias and how its entries' matches read (`field=value ...`)."""
        found = self.tables.get(name)
        if found is None:
            info = self.schema.table(name)
            fields = {
                f.name: (f"{f.name.rsplit('.', 1)[-1]}=", match_formatter(f.name, f.bitwidth))
                for f in info.fields
            }

            def general(match: tuple[tuple[str, Match], ...]) -> str:
                return " ".join([label + fmt(m) for label, fmt, m in ((*fields[n], m) for n, m in match)])

            fmt = general
            if len(fields) == 1:  # the commonest shape: one key field, always present
                ((only, (label, fmt1)),) = fields.items()

                def one(match: tuple[tuple[str, Match], ...]) -> str:
                    if len(match) == 1 and match[0][0] == only:
                        return label + fmt1(match[0][1])
                    return general(match)

                fmt = one
            found = self.tables[name] = (info.alias, fmt)
        return found

    def action(self, call: ActionCall) -> str:
        fmt = self.actions.get(call.name)
        if fmt is None:
            fmt = self.actions[call.name] = self._action_format(call.name)
        return fmt(call.params)

    def _action_format(self, name: str) -> Callable[[tuple[tuple[str, int], ...]], str]:
        """`alias(p=v, ...)` of one action's calls; a call's params are in declaration order (the
        schema builds them so), which the one- and two-parameter forms rely on."""
        act = self.schema.action(name)
        alias = act.alias
        formats = {p.name: value_formatter(p.name, p.bitwidth) for p in act.params}
        declared = [p.name for p in act.params]

        def general(params: tuple[tuple[str, int], ...]) -> str:
            return f"{alias}({', '.join([f'{n}={formats[n](v)}' for n, v in params])})"

        if len(declared) == 1:
            (n1,), (f1,) = declared, formats.values()

            def one(params: tuple[tuple[str, int], ...]) -> str:
                if len(params) != 1:
                    return general(params)
                return f"{alias}({n1}={f1(params[0][1])})"

            return one
        if len(declared) == 2:
            (n1, n2), (f1, f2) = declared, formats.values()

            def two(params: tuple[tuple[str, int], ...]) -> str:
                if len(params) != 2 or params[0][0] != n1:
                    return general(params)
                return f"{alias}({n1}={f1(params[0][1])}, {n2}={f2(params[1][1])})"

            return two
        return general

    def origin(self, origin: tuple[str, ...]) -> str:
        """`  # a, b`, or nothing for an empty origin; joined once per distinct tuple object."""
        found = self.origins.get(id(origin))
        if found is None or found[0] is not origin:
            joined = ", ".join(origin)
            found = self.origins[id(origin)] = (origin, f"  # {joined}" if joined else "")
        return found[1]

    def render(self, bundle: Bundle) -> str:
        lines: list[str] = []
        add, origin, action = lines.append, self.origin, self.action
        schema = self.schema
        profiles: dict[str, str] = {}
        for m in bundle.members:
            profile = profiles.get(m.profile) or _alias(profiles, schema, m.profile)
            add(f"member {profile} {m.member_id} -> {action(m.action)}{origin(m.origin)}\n")
        for g in bundle.groups:
            profile = profiles.get(g.profile) or _alias(profiles, schema, g.profile)
            members = ", ".join([str(mid) if w == 1 else f"{mid}x{w}" for mid, w in g.members])
            add(f"group {profile} {g.group_id} max_size={g.max_size} members=[{members}]{origin(g.origin)}\n")
        runs = [(name, list(run)) for name, run in groupby(bundle.entries, key=attrgetter("table"))]
        width = max((len(self.table(name)[0]) for name, _ in runs), default=0)
        origins = self.origins
        for name, run in runs:
            alias, match_text = self.table(name)
            alias = alias.ljust(width)
            for e in run:
                match = "default" if e.is_default else match_text(e.match)
                priority = f" priority={e.priority}" if e.priority else ""
                if e.action is not None:
                    act = action(e.action)
                elif e.member_id is not None:
                    act = f"member {e.member_id}"
                else:
                    act = f"group {e.group_id}"
                o = e.origin
                known = origins.get(id(o))
                comment = known[1] if known is not None and known[0] is o else origin(o)
                add(f"{alias} {match}{priority} -> {act}{comment}\n")
        return "".join(lines)


def _alias(profiles: dict[str, str], schema: Schema, name: str) -> str:
    found = profiles[name] = schema.profile(name).alias
    return found


def to_text(schema: Schema, bundle: Bundle) -> str:
    return _Text(schema).render(bundle)


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


def render(schema: Schema, bundle: Bundle, fmt: str, bridge: str = DEFAULT_BRIDGE) -> bytes:
    """The bundle in `fmt`. The cyclic GC is paused meanwhile: a rendering allocates hundreds of
    thousands of acyclic tuples and dicts (the text form's line parts and origin cache, the JSON
    form's tree), and a full collection they trigger rescans the whole compilation still in
    memory (about 2 s at size M, for nothing)."""
    with gcpause.paused():
        return _render(schema, bundle, fmt, bridge)


def _render(schema: Schema, bundle: Bundle, fmt: str, bridge: str) -> bytes:
    if fmt == "text":
        return to_text(schema, bundle).encode()
    if fmt == "json":
        return (json.dumps(to_json_obj(schema, bundle), indent=2, sort_keys=False) + "\n").encode()
    if fmt == "p4rt-text":
        return text_format.MessageToString(write_request(schema, bundle)).encode()
    if fmt == "p4rt-ctl":
        return to_p4rt_ctl(schema, bundle, bridge).encode()
    if fmt == "p4rt-bin":
        data: bytes = write_request(schema, bundle).SerializeToString(deterministic=True)
        return data
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
