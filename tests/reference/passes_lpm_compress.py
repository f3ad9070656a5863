"""Pass `lpm_compress` (table entries): the peer-class LPM tables rewritten by ORTC (ortc.py).

The lowering emits one LPM entry per network of every peer set, so `10.0.0.0/16 except
10.0.10.0/24` arrives as the eight prefixes left by subtraction and a selector's pods as one /32
each. Rewritten, the table computes the same address -> class function with the fewest entries:
adjacent networks of one class aggregate, an `except` becomes the /16 with its class and the /24
with the class of what remains (class 0 = no class, when nothing remains), and entries with
their parent's class disappear. Classes themselves are unchanged, so the rule tables are too.
Addresses the exact host table holds (pass `exact_hosts`, which runs first here) are looked up
there first, so the LPM may answer them anything: they enter ORTC as don't care.
"""

from __future__ import annotations

import functools
from collections import defaultdict

from k8s_offload.compiler.bundle.model import ActionCall, Exact, Lpm, TableEntry
from tests.reference.passes_ortc import DONT_CARE, MISS, compress

WIDTH = 128
CLASS_TABLES = ("eg_peer_class", "in_peer_class")


@functools.cache
def is_class_table(table: str) -> bool:
    """Cached: asked once per entry of the bundle, for a handful of table names."""
    return table.rsplit(".", 1)[-1] in CLASS_TABLES


def lpm_compress(entries: list[TableEntry]) -> list[TableEntry]:
    by_table: dict[str, list[TableEntry]] = defaultdict(list)
    rest: list[TableEntry] = []
    hosts: dict[str, list[int]] = defaultdict(list)  # class table -> addresses its host table holds
    for e in entries:
        (by_table[e.table] if is_class_table(e.table) and not e.is_default else rest).append(e)
        if e.table.endswith("_peer_host") and not e.is_default:
            ((_, m),) = e.match
            assert isinstance(m, Exact)
            hosts[e.table.removesuffix("_peer_host") + "_peer_class"].append(m.value)
    for table, group in sorted(by_table.items()):
        proto = group[0]
        assert proto.action is not None
        ((field, _),) = proto.match
        action, (param, _) = proto.action.name, proto.action.params[0]
        labels = []
        for e in group:
            ((_, m),) = e.match
            assert isinstance(m, Lpm) and e.action is not None
            labels.append((m.value, m.prefix_len, e.action.params[0][1]))
        labels += [(a, WIDTH, DONT_CARE) for a in hosts[table]]
        labels.sort()
        calls: dict[int, ActionCall] = {}  # one shared call per class
        for value, plen, label in compress(labels, WIDTH):
            call = calls.get(label)
            if call is None:
                call = calls[label] = ActionCall(action, ((param, 0 if label == MISS else label),))
            rest.append(
                TableEntry(
                    table,
                    ((field, Lpm(value, plen)),) if plen else (),  # a /0 is don't care: omitted
                    call,
                    origin=proto.origin,
                )
            )
    return rest
