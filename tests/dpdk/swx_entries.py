"""A bundle as DPDK SWX pipeline CLI commands (`swx-run` script lines) for k8s_dp_pna.p4.

Names come from p4c-dpdk's context.json (P4 name -> spec name, per table: an action two tables
use is copied, `_0` and `_1`). Match values: exact `0x..`, LPM and ternary `value/mask`, a range
key (p4c-dpdk makes it ternary) as the value/mask of the aligned block the dpdk profile writes, an
absent key `0/0`; DPDK's parser reads a value wider than 64 bits only as hex of the field's full
width (keys and action arguments alike). SWX priorities run the other
way from P4Runtime's (a lower value wins): P4Runtime priority p becomes PRIORITY_BASE - p, and an
LPM entry 128 - prefix length. Selector members get SWX member ids 0, 1, ... in bundle order;
groups get the ids the pipeline hands out (`selector ... group add`, 0, 1, ... on a fresh
pipeline). Default entries have no swx-run command and are returned apart.

The parameters k8s_dp_pna.p4 appends to two v1model actions are derived here from the 128-bit
ones (`set_nat_source` addr4, `set_backend6` addr_hi/addr_lo): test scaffolding until the dpdk
profile lowers for the PNA schema itself (issue 19 item 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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

PRIORITY_BASE = 1 << 24
SELECTOR_TABLE = "K8sIngress.svc_selector"
SELECTOR = "svc_selector_sel"


@dataclass(frozen=True)
class SwxScript:
    lines: list[str]
    defaults: list[TableEntry]


Names = tuple[dict[str, str], dict[str, dict[str, str]], dict[str, list[tuple[str, int]]], dict[str, int]]


def _names(context: Mapping[str, Any]) -> Names:
    """Per table: its spec name, its actions' spec names (p4c-dpdk copies an action used by two
    tables, `_0` and `_1`), its key fields and widths; and every action parameter's width."""
    widths: dict[str, int] = {}
    tables: dict[str, str] = {}
    actions: dict[str, dict[str, str]] = {}
    keys: dict[str, list[tuple[str, int]]] = {}
    for t in context["tables"]:
        tables[t["name"]] = t["target_name"]
        keys[t["name"]] = [(m["name"], int(m["bit_width"])) for m in t.get("match_key_fields", [])]
        actions[t["name"]] = {a["name"]: a["target_name"].split(".", 1)[-1] for a in t.get("actions", [])}
        for a in t.get("actions", []):
            for p in a.get("p4_parameters", []):
                widths[f"{a['name']}.{p['name']}"] = int(p["bit_width"])
    return tables, actions, keys, widths


def _pna_params(call: ActionCall) -> tuple[tuple[str, int], ...]:
    params = dict(call.params)
    short = call.name.rsplit(".", 1)[-1]
    if short == "set_nat_source":
        addr = params["addr"]
        params["addr4"] = addr & 0xFFFFFFFF if addr >> 32 == 0xFFFF else 0
    elif short == "set_backend6":
        params["addr_hi"], params["addr_lo"] = params["addr"] >> 64, params["addr"] & (1 << 64) - 1
    return tuple(params.items())


def _hex(width: int, value: int) -> str:
    """DPDK's entry parser reads a field wider than 64 bits only as hex of its full width."""
    return f"0x{value:0{(width + 3) // 4}x}" if width > 64 else f"{value:#x}"


def _action(actions: Mapping[str, str], widths: Mapping[str, int], call: ActionCall) -> str:
    params = _pna_params(call)
    args = "".join(f" {name} {_hex(widths[f'{call.name}.{name}'], value)}" for name, value in params)
    return f"action {actions[call.name]}{args}"


def _value(width: int, m: Match | None) -> str:
    full = (1 << width) - 1
    if m is None:
        return f"{_hex(width, 0)}/{_hex(width, 0)}"
    if isinstance(m, Exact):
        return _hex(width, m.value)
    if isinstance(m, Lpm):
        mask = full ^ ((1 << (width - m.prefix_len)) - 1)
        return f"{_hex(width, m.value)}/{_hex(width, mask)}"
    if isinstance(m, Ternary):
        return f"{_hex(width, m.value)}/{_hex(width, m.mask)}"
    if isinstance(m, Range):
        size = m.high - m.low + 1
        if size & (size - 1) or m.low % size:
            raise ValueError(f"range {m.low}..{m.high} is not one value/mask block")
        return f"{_hex(width, m.low)}/{_hex(width, full ^ (size - 1))}"
    raise ValueError(f"no SWX form for {m!r}")


def swx_script(context: Mapping[str, Any], bundle: Bundle, ports: list[int]) -> SwxScript:
    """`table ... add`, `selector ...` and `commit` lines; `port_out` maps each of `ports` to itself."""
    tables, actions, keys, widths = _names(context)
    lines: list[str] = []
    member_ids = {m.member_id: i for i, m in enumerate(bundle.members)}
    member_table = tables[SELECTOR_TABLE]
    for m in bundle.members:
        act = _action(actions[SELECTOR_TABLE], widths, m.action)
        lines.append(f"table {member_table} add match {member_ids[m.member_id]:#x} {act}")
    group_ids = {g.group_id: i for i, g in enumerate(bundle.groups)}
    for g in bundle.groups:
        lines.append(f"selector {SELECTOR} group add")
        lines += [
            f"selector {SELECTOR} member add {group_ids[g.group_id]} {member_ids[mid]} {w}"
            for mid, w in g.members
        ]
    defaults: list[TableEntry] = []
    for e in bundle.entries:
        if e.is_default:
            defaults.append(e)
            continue
        match = dict(e.match)
        values = [_value(width, match.get(name)) for name, width in keys[e.table]]
        priority = ""
        lpm = [m for m in match.values() if isinstance(m, Lpm)]
        if e.priority:
            priority = f" priority {PRIORITY_BASE - e.priority}"
        elif lpm:
            priority = f" priority {128 - lpm[0].prefix_len}"
        if e.action is not None:
            act = _action(actions[e.table], widths, e.action)
        elif e.member_id is not None:
            act = f"action svc_frontend_set_member_id member_id {member_ids[e.member_id]:#x}"
        else:
            act = f"action svc_frontend_set_group_id group_id {group_ids[e.group_id or 0]:#x}"
        lines.append(f"table {tables[e.table]} add match {' '.join(values)}{priority} {act}")
    lines += [f"table port_out add match {p:#x} action send port {p:#x}" for p in ports]
    lines.append("commit")
    return SwxScript(lines, defaults)
