"""Port ranges per target profile.

`bmv2` matches `range` keys natively: one entry per disjoint interval (the lowering's form).
`dpdk` (p4c-dpdk, DPDK SWX) accepts a `range` key only when one value/mask expresses it, i.e. an
aligned power-of-two block (../shared/reference/optimization-and-p4runtime.md §1.4). The P4 key
stays `range`; entries are emitted as blocks, each still a Range entry, with priorities.

- `expand_blocks` (always run for dpdk, not an optimization): every interval becomes its aligned
  blocks, all at priority 1 (they are disjoint): up to 2w-2 = 30 entries per interval.
- pass `range_encoding`: per (table, rule set, protocol), the port -> rule-mask function is
  rewritten by ORTC with priority = prefix length + 1, so nested blocks act as longest-prefix
  match: a single interval then costs at most 16 entries (tested), usually far fewer
  (1..65534 is three). No-op for bmv2.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import replace

from k8s_offload.compiler.bundle.model import ActionCall, Match, Range, TableEntry
from k8s_offload.compiler.passes.ortc import MISS, blocks, compress

WIDTH = 16
PORT_TABLES = ("eg_port_rules", "in_port_rules", "eg_tier_port_rules", "in_tier_port_rules")
PROFILES = ("bmv2", "dpdk")


@functools.cache
def is_port_table(table: str) -> bool:
    return table.rsplit(".", 1)[-1] in PORT_TABLES


def _split(e: TableEntry) -> tuple[tuple[tuple[str, Match], ...], str, Range]:
    """(the key without the port, the port field, the port range; full range when absent)."""
    rest = tuple((f, m) for f, m in e.match if not f.endswith("dport"))
    port = [(f, m) for f, m in e.match if f.endswith("dport")]
    if port:
        field, m = port[0]
        assert isinstance(m, Range)
        return rest, field, m
    return rest, "meta.dport", Range(0, (1 << WIDTH) - 1)


def _block_entry(
    e: TableEntry,
    rest: tuple[tuple[str, Match], ...],
    field: str,
    value: int,
    plen: int,
    rules: int,
    priority: int,
) -> TableEntry:
    high = value + (1 << (WIDTH - plen)) - 1
    match = rest if plen == 0 else (*rest, (field, Range(value, high)))
    assert e.action is not None
    action = ActionCall(e.action.name, (("rules", rules),))
    return replace(e, match=match, action=action, priority=priority)


def expand_blocks(entries: list[TableEntry]) -> list[TableEntry]:
    out: list[TableEntry] = []
    for e in entries:
        if not is_port_table(e.table) or e.is_default:
            out.append(e)
            continue
        rest, field, r = _split(e)
        if len(blocks(r.low, r.high, WIDTH)) == 1:
            out.append(e)
            continue
        assert e.action is not None
        rules = e.action.params[0][1]
        spans = blocks(r.low, r.high, WIDTH)
        out.extend(_block_entry(e, rest, field, v, p, rules, e.priority) for v, p in spans)
    return out


def range_encoding(entries: list[TableEntry], profile: str) -> list[TableEntry]:
    if profile != "dpdk":
        return entries
    groups: dict[tuple[str, tuple[tuple[str, Match], ...]], list[TableEntry]] = defaultdict(list)
    out: list[TableEntry] = []
    for e in entries:
        if is_port_table(e.table) and not e.is_default:
            groups[(e.table, _split(e)[0])].append(e)
        else:
            out.append(e)
    for (_, rest), group in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        labelled: list[tuple[int, int, int]] = []
        for e in group:
            _, field, r = _split(e)
            assert e.action is not None
            rules = e.action.params[0][1]
            labelled.extend((v, p, rules) for v, p in blocks(r.low, r.high, WIDTH))
        for value, plen, label in compress(labelled, WIDTH):
            rules = 0 if label == MISS else label
            out.append(_block_entry(group[0], rest, field, value, plen, rules, plen + 1))
    return out
